//! The raw pixel array of a DICOM file, defined as pydicom's default `Dataset.pixel_array`: the stored
//! values before the Modality and VOI LUTs and before any PALETTE COLOR lookup, after YBR_FULL and
//! YBR_FULL_422 are converted to RGB, colour samples interleaved. Its MD5 over the little-endian bytes
//! lets a decode be compared bit for bit with a reference decoder (`bedside decode --raw-md5`).

use crate::dicom::Unsigned32;
use crate::{Error, Source, Study};
use md5::{Digest, Md5};
use serde::Serialize;

/// Element type of the raw array, named as numpy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Uint8,
    Int8,
    Uint16,
    Int16,
    Uint32,
    Int32,
}

impl Dtype {
    /// pydicom's rule: Bits Allocated 1 gives `uint8`, otherwise Bits Allocated wide, signed when
    /// Pixel Representation is 1 (the decoded precision never changes it).
    fn from_header(bits_allocated: u16, signed: bool) -> Dtype {
        match (bits_allocated, signed) {
            (1, _) | (8, false) => Dtype::Uint8,
            (8, true) => Dtype::Int8,
            (16, false) => Dtype::Uint16,
            (16, true) => Dtype::Int16,
            (_, false) => Dtype::Uint32,
            (_, true) => Dtype::Int32,
        }
    }

    /// numpy's name: `"uint8"`, `"int16"`, …
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Uint8 => "uint8",
            Dtype::Int8 => "int8",
            Dtype::Uint16 => "uint16",
            Dtype::Int16 => "int16",
            Dtype::Uint32 => "uint32",
            Dtype::Int32 => "int32",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Uint8 | Dtype::Int8 => 1,
            Dtype::Uint16 | Dtype::Int16 => 2,
            Dtype::Uint32 | Dtype::Int32 => 4,
        }
    }

    /// Appends one stored value as this type, little-endian. The value already fits: stored values
    /// are masked or sign-extended to Bits Stored, and 32-bit unsigned ones carry their bit pattern.
    pub(crate) fn push_le(self, value: i32, out: &mut Vec<u8>) {
        match self {
            Dtype::Uint8 | Dtype::Int8 => out.push(value as u8),
            Dtype::Uint16 | Dtype::Int16 => out.extend_from_slice(&(value as u16).to_le_bytes()),
            Dtype::Uint32 | Dtype::Int32 => out.extend_from_slice(&value.to_le_bytes()),
        }
    }
}

/// Element type and shape of a DICOM file's raw array, as numpy gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawLayout {
    pub dtype: Dtype,
    /// `[rows, columns]`, with `frames` first when there is more than one and `3` last for colour.
    pub shape: Vec<u32>,
}

/// MD5 digests of the raw array, lower-case hex, with its layout (`bedside decode --raw-md5`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawDigest {
    #[serde(flatten)]
    pub layout: RawLayout,
    /// Of one frame (the one asked for; the first by default).
    pub md5_first: String,
    /// Of every frame, in order.
    pub md5_all: String,
}

impl Study {
    /// The raw array's element type and shape; an error for photos, which have no stored values of
    /// their own.
    pub fn raw_layout(&self) -> Result<RawLayout, Error> {
        let Source::Dicom(source) = &self.source else { return Err(Error::NotDicom) };
        let info = &self.info;
        let mut shape = vec![info.rows, info.columns];
        if info.frames > 1 {
            shape.insert(0, info.frames);
        }
        if source.samples == 3 {
            shape.push(3);
        }
        Ok(RawLayout { dtype: Dtype::from_header(source.bits_allocated, source.signed), shape })
    }

    /// One frame (from 0) of the raw array as little-endian bytes: `rows × columns × samples` elements
    /// of [`RawLayout::dtype`].
    pub fn raw_frame(&self, index: u32) -> Result<Vec<u8>, Error> {
        let dtype = self.raw_layout()?.dtype;
        let Source::Dicom(source) = &self.source else { return Err(Error::NotDicom) };
        if index >= self.info.frames {
            return Err(Error::NoSuchFrame { index, frames: self.info.frames });
        }
        let frame = source.decode_frame(index, &self.info, &self.limits, Unsigned32::BitPattern)?;
        let mut out = Vec::with_capacity(frame.stored.len() * dtype.size());
        frame.stored.for_each(|value| dtype.push_le(value, &mut out));
        Ok(out)
    }

    /// The layout and MD5 digests of the raw array: of frame `index` and of all frames. Frames are
    /// decoded one at a time, so a long cine loop never sits in memory whole.
    pub fn raw_digest(&self, index: u32) -> Result<RawDigest, Error> {
        let layout = self.raw_layout()?;
        if index >= self.info.frames {
            return Err(Error::NoSuchFrame { index, frames: self.info.frames });
        }
        let (mut all, mut md5_first) = (Md5::new(), String::new());
        for frame in 0..self.info.frames {
            let bytes = self.raw_frame(frame)?;
            if frame == index {
                md5_first = hex(&Md5::digest(&bytes));
            }
            all.update(bytes);
        }
        Ok(RawDigest { layout, md5_first, md5_all: hex(&all.finalize()) })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_follows_bits_allocated_and_pixel_representation() {
        assert_eq!(Dtype::from_header(1, false), Dtype::Uint8);
        assert_eq!(Dtype::from_header(1, true), Dtype::Uint8, "bit-packed is always unsigned");
        assert_eq!(Dtype::from_header(8, true), Dtype::Int8);
        assert_eq!(Dtype::from_header(16, false).name(), "uint16");
        assert_eq!(Dtype::from_header(16, true).name(), "int16");
        assert_eq!(Dtype::from_header(32, false).size(), 4);
    }

    #[test]
    fn values_are_written_little_endian_in_their_own_width() {
        let mut out = Vec::new();
        Dtype::Int16.push_le(-2, &mut out);
        Dtype::Uint32.push_le(u32::MAX as i32, &mut out);
        Dtype::Uint8.push_le(200, &mut out);
        assert_eq!(out, [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 200]);
    }

    #[test]
    fn md5_is_lower_case_hex_of_the_bytes() {
        // RFC 1321's test vector for "abc".
        assert_eq!(hex(&Md5::digest(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
    }
}
