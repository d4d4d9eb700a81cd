//! DICOM objects: header attributes and frame-by-frame pixel decoding, through our own JPEG, JPEG-LS
//! and RLE decoders (`jpeg`, `jpegls`, `rle`) and `dicom-pixeldata` for the rest.

use crate::error::one_line;
use crate::lengths::{self, Encoding};
use crate::palette::Palette;
use crate::peak;
use crate::{
    Error, Frame, Info, Limits, Rescale, Samples, Source, Study, Window, jpeg, jpeg2000, jpegls, rle,
};
use dicom_core::Tag;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::transfer_syntax::{Codec, DataRWAdapter};
use dicom_object::{
    DefaultDicomObject, FileMetaTable, InMemDicomObject, OpenFileOptions, file::ReadPreamble,
};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_transfer_syntax_registry::entries;
use std::borrow::Cow;
use std::sync::Arc;

/// The part of `bytes` that starts at the `DICM` magic: after a 128-byte preamble, or at the start.
pub(crate) fn dicom_body(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.get(128..132) == Some(b"DICM") {
        Some(&bytes[128..])
    } else if bytes.starts_with(b"DICM") {
        Some(bytes)
    } else {
        None
    }
}

/// Pixel layout attributes needed to turn decoded bytes into stored values.
pub(crate) struct DicomSource {
    pub(crate) object: DefaultDicomObject,
    pub(crate) bits_allocated: u16,
    pub(crate) signed: bool,
    pub(crate) samples: u16,
    photometric: String,
    /// Planar configuration 1: colour planes one after another (RRR…GGG…BBB).
    planar: bool,
    /// Explicit VR Big Endian: OW words of 32-bit samples come high word first.
    big_endian: bool,
    rescale: Rescale,
    /// PALETTE COLOR's tables, read once; a broken table fails drawing, not the raw array.
    palette: Option<Result<Palette, Error>>,
}

/// Parses the file meta group and the data set after it.
pub(crate) fn parse(body: &[u8]) -> Result<DefaultDicomObject, Error> {
    let header_error = |e: &(dyn std::error::Error + 'static)| Error::DicomHeader(error_chain(e));
    let body = &*lengths::lenient_meta(body);
    // dicom-rs allocates what a length claims before reading it: lengths are checked first.
    lengths::check_meta(&body[4..]).map_err(Error::DicomHeader)?;
    let mut rest = body;
    let meta = FileMetaTable::from_reader(&mut rest).map_err(|e| header_error(&e))?;
    // Some writers declare an explicit-VR transfer syntax but encode the data set in implicit VR
    // (pydicom's SC_rgb_jpeg.dcm is one); a reader that trusts the header fails on the first element.
    let ts = meta.transfer_syntax().trim_end_matches(['\0', ' ']);
    // Implicit VR has no VR to check, and a deflated data set is compressed bytes.
    let checkable = !matches!(ts, "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1.99");
    let implicit = checkable && rest.len() >= 6 && !is_vr(&rest[4..6]);
    let encoding = match ts {
        _ if implicit => Some(Encoding { explicit_vr: false, big_endian: false }),
        "1.2.840.10008.1.2" => Some(Encoding { explicit_vr: false, big_endian: false }),
        "1.2.840.10008.1.2.2" => Some(Encoding { explicit_vr: true, big_endian: true }),
        // Deflated: the lengths are inside the compressed stream, checked below.
        "1.2.840.10008.1.2.1.99" => None,
        _ => Some(Encoding::EXPLICIT_LE),
    };
    match encoding {
        Some(encoding) => lengths::check(rest, encoding).map_err(Error::DicomHeader)?,
        None if ts == "1.2.840.10008.1.2.1.99" => check_deflated(rest)?,
        None => {}
    }
    if implicit {
        let dataset =
            InMemDicomObject::read_dataset_with_ts(rest, &entries::IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .map_err(|e| header_error(&e))?;
        return Ok(dataset.with_exact_meta(meta));
    }
    OpenFileOptions::new().read_preamble(ReadPreamble::Never).from_reader(body).map_err(|e| header_error(&e))
}

/// Most bytes a deflated data set may inflate to (a deflate bomb is refused before dicom-rs parses it).
const MAX_INFLATED: u64 = 512 << 20;

/// Walks the lengths of a deflated data set as it inflates, as dicom-rs will inflate it (found by
/// fuzzing: a few hundred deflated bytes claimed a 2.3 GB value), holding a few bytes at a time
/// rather than the inflated data set. A stream that fails to inflate is dicom-rs's to report.
fn check_deflated(deflated: &[u8]) -> Result<(), Error> {
    let Codec::Dataset(Some(adapter)) = entries::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN.codec() else {
        return Ok(());
    };
    let inflating = adapter.adapt_reader(Box::new(deflated));
    lengths::check_stream(inflating, Encoding::EXPLICIT_LE, MAX_INFLATED).map_err(Error::DicomHeader)
}

/// Two upper-case letters: what an explicit-VR element carries after its tag.
fn is_vr(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_uppercase)
}

pub(crate) fn open(body: &[u8], limits: &Limits) -> Result<Study, Error> {
    let object = parse(body)?;
    if object.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(Error::NoPixelData);
    }
    let rows: u16 = required_int(&object, tags::ROWS, "Rows")?;
    let columns: u16 = required_int(&object, tags::COLUMNS, "Columns")?;
    let samples: u16 = int(&object, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_allocated: u16 = required_int(&object, tags::BITS_ALLOCATED, "Bits Allocated")?;
    let bits_stored: u16 = int(&object, tags::BITS_STORED).unwrap_or(bits_allocated);
    let signed = int::<u16>(&object, tags::PIXEL_REPRESENTATION) == Some(1);
    let planar = samples == 3 && int::<u16>(&object, tags::PLANAR_CONFIGURATION) == Some(1);
    let frames = int::<i64>(&object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    // Beyond u32 a count would wrap (2^32 frames became none at all).
    let frames = u32::try_from(frames)
        .map_err(|_| invalid("Number of Frames", format!("{frames} is more than any file holds")))?;
    let photometric = text(&object, tags::PHOTOMETRIC_INTERPRETATION)
        .unwrap_or_else(|| if samples == 3 { "RGB" } else { "MONOCHROME2" }.to_string());

    if rows == 0 || columns == 0 {
        return Err(invalid("Rows/Columns", format!("{columns}×{rows} has no pixels")));
    }
    if !matches!(samples, 1 | 3) {
        return Err(invalid("Samples per Pixel", format!("{samples} (expected 1 or 3)")));
    }
    if !matches!(bits_allocated, 1 | 8 | 16 | 32) {
        return Err(Error::Unsupported { what: format!("Bits Allocated {bits_allocated}") });
    }
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(invalid("Bits Stored", format!("{bits_stored} with {bits_allocated} allocated")));
    }
    if photometric == "PALETTE COLOR" && samples != 1 {
        return Err(invalid("Samples per Pixel", format!("{samples} with PALETTE COLOR (expected 1)")));
    }
    let transfer_syntax = object.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let own_codec = jpeg::TRANSFER_SYNTAXES.contains(&transfer_syntax.as_str())
        || jpegls::TRANSFER_SYNTAXES.contains(&transfer_syntax.as_str())
        || transfer_syntax == rle::TRANSFER_SYNTAX;
    if let Some(ts) = TransferSyntaxRegistry.get(&transfer_syntax)
        && !own_codec
        && !ts.can_decode_all()
    {
        // Said up front and by name, rather than as a decoder failure on the first frame.
        return Err(Error::Unsupported { what: format!("{} pixel data", ts.name()) });
    }
    let rescale = Rescale {
        slope: float(&object, tags::RESCALE_SLOPE).unwrap_or(1.0),
        intercept: float(&object, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    };
    let window = match (float(&object, tags::WINDOW_CENTER), float(&object, tags::WINDOW_WIDTH)) {
        (Some(center), Some(width)) if width >= 1.0 => Some(Window { center, width }),
        _ => None,
    };
    let info = Info {
        rows: rows.into(),
        columns: columns.into(),
        frames,
        modality: text(&object, tags::MODALITY),
        photometric_interpretation: photometric.clone(),
        transfer_syntax: Some(transfer_syntax.clone()),
        bits_stored,
        pixel_spacing: pixel_spacing(&object),
        original_size: None,
    };
    let attributes = attributes(&object, &info, &transfer_syntax, rescale, window);
    let big_endian = transfer_syntax == "1.2.840.10008.1.2.2";
    let codec = codec(&object, &transfer_syntax, samples, bits_allocated);
    let pixels = u64::from(rows) * u64::from(columns);
    let mut decode_peak = peak::dicom_frame(
        codec,
        pixels,
        samples.into(),
        bits_allocated.div_ceil(8).into(),
        photometric == "PALETTE COLOR",
    );
    if big_endian && bits_allocated == 32 {
        // The word swap below copies every frame's samples at once.
        decode_peak = decode_peak.saturating_add(pixels * u64::from(samples) * 4 * u64::from(frames));
    }
    // Refused here, on opening, rather than on the first frame.
    limits.check(rows.into(), columns.into(), decode_peak)?;
    let palette = (photometric == "PALETTE COLOR").then(|| Palette::read(&object, signed, big_endian));
    let source = DicomSource {
        object,
        bits_allocated,
        signed,
        samples,
        photometric,
        planar,
        big_endian,
        rescale,
        palette,
    };
    let source = Source::Dicom(Box::new(source));
    Ok(Study { info, attributes, rescale, window, source, limits: *limits, decode_peak })
}

/// The path [`DicomSource::decode_frame`] takes for this file, as the `peak` module counts it:
/// native pixel data is read in place; the own codecs by transfer syntax (`jpeg_dct` for the lossy
/// JPEG streams it takes: colour, or more than 8 bits); the rest through dicom-rs.
fn codec(
    object: &DefaultDicomObject,
    transfer_syntax: &str,
    samples: u16,
    bits_allocated: u16,
) -> peak::Codec {
    let native = object.element(tags::PIXEL_DATA).is_ok_and(|e| matches!(e.value(), Value::Primitive(_)));
    let lossy_jpeg = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"].contains(&transfer_syntax);
    match transfer_syntax {
        _ if native => peak::Codec::Native,
        _ if lossy_jpeg && (samples == 3 || bits_allocated > 8) => peak::Codec::JpegDct,
        ts if jpeg::TRANSFER_SYNTAXES.contains(&ts) => peak::Codec::Jpeg,
        ts if jpegls::TRANSFER_SYNTAXES.contains(&ts) => peak::Codec::JpegLs,
        rle::TRANSFER_SYNTAX => peak::Codec::Rle,
        _ => peak::Codec::DicomRs,
    }
}

/// What a 32-bit unsigned sample above `i32::MAX` becomes in [`Frame::stored`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsigned32 {
    /// Clamped to `i32::MAX`: ordered values, for drawing.
    Saturate,
    /// Its bit pattern (read back with `as u32`), for the exact raw array.
    BitPattern,
}

impl DicomSource {
    /// Frame `index` as it is drawn: PALETTE COLOR indices come looked up, as RGB at the tables'
    /// depth, so that every consumer of a frame (drawing, the models) sees the colours the file means.
    pub(crate) fn frame(&self, index: u32, info: &Info, limits: &Limits) -> Result<Frame, Error> {
        let frame = self.decode_frame(index, info, limits, Unsigned32::Saturate)?;
        match &self.palette {
            None => Ok(frame),
            Some(palette) => {
                let palette = palette.as_ref().map_err(Clone::clone)?;
                Ok(palette.apply(&frame))
            }
        }
    }

    pub(crate) fn decode_frame(
        &self,
        index: u32,
        info: &Info,
        limits: &Limits,
        unsigned32: Unsigned32,
    ) -> Result<Frame, Error> {
        let bytes_per_sample = self.bits_allocated.div_ceil(8);
        let pixels = info.rows as usize * info.columns as usize;
        let element = self.object.element(tags::PIXEL_DATA).map_err(|_| Error::NoPixelData)?;
        let (photometric, planar, data) = match element.value() {
            // Native pixel data is sliced here rather than in dicom-pixeldata, which sizes frames
            // without regard to YBR_FULL_422 subsampling and only reports "out of range" when short.
            Value::Primitive(value) => {
                let mut all = native_bytes(value);
                // The parser turned each big-endian OW word little-endian; a 32-bit sample is two
                // such words, high first, so the words of each pair trade places.
                if self.big_endian && self.bits_allocated == 32 && matches!(value, PrimitiveValue::U16(_)) {
                    let bytes = all.to_mut();
                    for sample in bytes.chunks_exact_mut(4) {
                        sample.rotate_left(2);
                    }
                }
                let data = match all {
                    Cow::Borrowed(all) => native_frame(all, index, pixels, self)?,
                    Cow::Owned(all) => Cow::Owned(native_frame(&all, index, pixels, self)?.into_owned()),
                };
                (self.photometric.clone(), self.planar, data)
            }
            // Own codecs first, where dicom-rs's differ from what the files mean.
            _ if jpeg::TRANSFER_SYNTAXES.contains(&info.transfer_syntax.as_deref().unwrap_or("")) => {
                let expected = jpeg::Expected {
                    rows: info.rows,
                    columns: info.columns,
                    samples: self.samples,
                    bits_allocated: self.bits_allocated,
                    frames: info.frames,
                    photometric: &self.photometric,
                    transfer_syntax: info.transfer_syntax.as_deref().unwrap_or(""),
                };
                let decoded = jpeg::decode_frame(&self.object, index, &expected, limits)?;
                (decoded.photometric, false, Cow::Owned(decoded.data))
            }
            _ if jpegls::TRANSFER_SYNTAXES.contains(&info.transfer_syntax.as_deref().unwrap_or("")) => {
                let stream = encapsulated_frame(&self.object, index, info.frames)
                    .map_err(|detail| Error::PixelData { frame: index, detail })?;
                let data = jpegls::decode_frame(
                    &stream,
                    index,
                    info.rows,
                    info.columns,
                    self.samples,
                    self.bits_allocated,
                )?;
                (self.photometric.clone(), false, Cow::Owned(data))
            }
            _ if info.transfer_syntax.as_deref() == Some(rle::TRANSFER_SYNTAX) => {
                let stream = encapsulated_frame(&self.object, index, info.frames)
                    .map_err(|detail| Error::PixelData { frame: index, detail })?;
                let data = rle::decode_frame(&stream, index, pixels, self.samples, self.bits_allocated)?;
                // Every segment is full size: there is no subsampled chroma to expand.
                let photometric = if self.photometric == "YBR_FULL_422" {
                    "YBR_FULL".into()
                } else {
                    self.photometric.clone()
                };
                (photometric, false, Cow::Owned(data))
            }
            _ => {
                if jpeg2000::TRANSFER_SYNTAXES.contains(&info.transfer_syntax.as_deref().unwrap_or(""))
                    && let Ok(stream) = encapsulated_frame(&self.object, index, info.frames)
                {
                    jpeg2000::check_size(&stream, info.columns, info.rows, self.samples)
                        .and_then(|()| jpeg2000::check_quantisation(&stream))
                        .map_err(|detail| Error::PixelData { frame: index, detail })?;
                }
                let decoded = self
                    .object
                    .decode_pixel_data_frame(index)
                    .map_err(|e| Error::PixelData { frame: index, detail: error_chain(&e) })?;
                let photometric = decoded.photometric_interpretation().as_str().to_string();
                (photometric, false, Cow::Owned(decoded.into_data()))
            }
        };

        let (samples, mut stored) = if photometric == "YBR_FULL_422" && self.bits_allocated == 8 {
            (3, Samples::from(expand_ybr_422(&data, pixels)))
        } else {
            let needed = pixels * self.samples as usize;
            let layout = SampleLayout {
                bits_allocated: self.bits_allocated,
                bits_stored: info.bits_stored,
                signed: self.signed,
                unsigned32,
            };
            let stored = stored_values(&data, layout, needed);
            if stored.len() < needed {
                let expected = (needed * bytes_per_sample as usize) as u64;
                return Err(Error::Truncated { frame: index, expected, actual: data.len() as u64 });
            }
            (self.samples, if planar { stored.interleaved(pixels) } else { stored })
        };
        if photometric.starts_with("YBR_FULL") && samples == 3 {
            stored = ybr_full_to_rgb(stored);
        }
        Ok(Frame {
            columns: info.columns,
            rows: info.rows,
            samples: samples as u8,
            bits_stored: info.bits_stored,
            invert: photometric == "MONOCHROME1",
            rescale: if samples == 1 { self.rescale } else { Rescale::IDENTITY },
            stored,
        })
    }
}

/// The encoded bytes of frame `index` of encapsulated pixel data (PS3.5 A.4): one fragment per
/// frame, or the fragments the Basic Offset Table or, where that is empty, the Extended Offset
/// Table (7FE0,0001) groups into it; with neither, the fragments each codestream starts (or ends)
/// in.
pub(crate) fn encapsulated_frame(
    object: &DefaultDicomObject,
    index: u32,
    frames: u32,
) -> Result<Cow<'_, [u8]>, String> {
    let element = object.element(tags::PIXEL_DATA).map_err(|e| e.to_string())?;
    let Value::PixelSequence(sequence) = element.value() else {
        return Err("the pixel data is not encapsulated".into());
    };
    let fragments = sequence.fragments();
    // One fragment per frame is borrowed; a frame of several is copied into one stream.
    if fragments.len() == 1 || fragments.len() == frames as usize {
        return fragments
            .get(index as usize)
            .map(|f| Cow::Borrowed(f.as_slice()))
            .ok_or_else(|| format!("no fragment for frame {index}"));
    }
    let extended: Vec<u64> = match object.element(Tag(0x7FE0, 0x0001)) {
        Ok(table) if sequence.offset_table().is_empty() => {
            table.to_multi_int::<u64>().map_err(|e| format!("the extended offset table: {e}"))?
        }
        _ => Vec::new(),
    };
    let offsets: Vec<u64> = if extended.is_empty() {
        sequence.offset_table().iter().map(|&o| u64::from(o)).collect()
    } else {
        extended
    };
    if offsets.is_empty() && frames > 1 {
        let groups = codestream_frames(fragments, frames)?;
        return Ok(Cow::Owned(groups[index as usize].concat()));
    }
    let start = match (index, offsets.get(index as usize)) {
        (_, Some(&offset)) => offset as usize,
        (0, None) => 0,
        (_, None) => return Err(format!("the offset table has no entry for frame {index}")),
    };
    let end = offsets.get(index as usize + 1).map_or(usize::MAX, |&o| o as usize);
    // Offsets count each fragment's 8-byte item header.
    let mut at = 0;
    let mut stream = Vec::new();
    for fragment in fragments {
        if at >= end {
            break;
        }
        if at >= start {
            stream.extend_from_slice(fragment);
        }
        at += fragment.len() + 8;
    }
    Ok(Cow::Owned(stream))
}

/// `fragments` split into `frames` frames without an offset table: each frame's codestream starts a
/// fragment with its start marker (JPEG and JPEG-LS SOI `FF D8`, JPEG 2000 SOC + SIZ `FF 4F FF 51`,
/// or a JP2 signature box), or, failing that, ends one with its end marker (EOI or EOC `FF D9`,
/// before at most one byte of padding).
fn codestream_frames(fragments: &[Vec<u8>], frames: u32) -> Result<Vec<&[Vec<u8>]>, String> {
    const JP2: [u8; 8] = [0, 0, 0, 0x0C, b'j', b'P', b' ', b' '];
    let starts = |f: &Vec<u8>| {
        f.starts_with(&[0xFF, 0xD8]) || f.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) || f.starts_with(&JP2)
    };
    let ends = |f: &Vec<u8>| {
        let trimmed = if f.last() == Some(&0) { &f[..f.len() - 1] } else { &f[..] };
        trimmed.ends_with(&[0xFF, 0xD9])
    };
    let split = |boundary: &dyn Fn(usize) -> bool| {
        let mut groups = Vec::new();
        let mut first = 0;
        for i in 1..=fragments.len() {
            if i == fragments.len() || boundary(i) {
                groups.push(&fragments[first..i]);
                first = i;
            }
        }
        groups
    };
    if fragments.first().is_some_and(starts) {
        let groups = split(&|i| starts(&fragments[i]));
        if groups.len() == frames as usize {
            return Ok(groups);
        }
    }
    let groups = split(&|i| ends(&fragments[i - 1]));
    if groups.len() == frames as usize && fragments.last().is_some_and(ends) {
        return Ok(groups);
    }
    Err(format!(
        "{} fragments for {frames} frames, no offset table, and the codestreams' markers do not split them into {frames} frames",
        fragments.len()
    ))
}

/// One frame's bytes out of native (uncompressed) pixel data; 1-bit samples come out one byte each.
fn native_frame<'a>(
    all: &'a [u8],
    index: u32,
    pixels: usize,
    source: &DicomSource,
) -> Result<Cow<'a, [u8]>, Error> {
    let samples = pixels * source.samples as usize;
    let truncated = |expected: u64| Error::Truncated { frame: index, expected, actual: all.len() as u64 };
    if source.bits_allocated == 1 {
        // Frames of packed bits need not start on a byte boundary.
        // In u64: on wasm32 a late frame's offset can pass usize::MAX.
        let first_bit = u64::from(index) * samples as u64;
        let end_byte = (first_bit + samples as u64).div_ceil(8);
        if (all.len() as u64) < end_byte {
            return Err(truncated(end_byte));
        }
        let first_bit = first_bit as usize;
        let bits = first_bit..first_bit + samples;
        return Ok(Cow::Owned(bits.map(|bit| (all[bit / 8] >> (bit % 8)) & 1).collect()));
    }
    let frame_bytes = if source.photometric == "YBR_FULL_422" && source.bits_allocated == 8 {
        pixels * 2 // two luma and two shared chroma samples per pair of pixels
    } else {
        samples * source.bits_allocated.div_ceil(8) as usize
    };
    let end = frame_bytes as u64 * (u64::from(index) + 1);
    if (all.len() as u64) < end {
        return Err(truncated(end));
    }
    Ok(Cow::Borrowed(&all[end as usize - frame_bytes..end as usize]))
}

/// Native pixel data as little-endian bytes. OW data parses into 16-bit words, which on a
/// little-endian machine (x86, ARM, wasm32) already are those bytes: borrowed, not copied (a
/// full-size CR is 7 MB).
fn native_bytes(value: &PrimitiveValue) -> Cow<'_, [u8]> {
    match value {
        PrimitiveValue::U16(words) if cfg!(target_endian = "little") => {
            Cow::Borrowed(bytemuck::cast_slice(words.as_slice()))
        }
        _ => value.to_bytes(),
    }
}

/// How decoded little-endian bytes hold the stored values.
#[derive(Debug, Clone, Copy)]
struct SampleLayout {
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    unsigned32: Unsigned32,
}

/// Little-endian decoded bytes → the first `needed` stored values (fewer if the data is short), in
/// the narrowest width that holds them. The bits above `bits_stored` are not part of the value
/// (PS3.5 8.1.1): signed values are sign-extended from the top stored bit, unsigned ones masked.
fn stored_values(data: &[u8], layout: SampleLayout, needed: usize) -> Samples {
    let SampleLayout { bits_allocated, bits_stored, signed, unsigned32 } = layout;
    let u32_value = |v: u32| match unsigned32 {
        Unsigned32::Saturate => v.min(i32::MAX as u32) as i32,
        Unsigned32::BitPattern => v as i32,
    };
    // The bits above `bits_stored` are dropped in the same pass (one pass over a full-size CR, not
    // two). 1-bit samples arrive one per byte, already 0 or 1.
    let shift = if bits_allocated > 1 && bits_stored < bits_allocated && bits_allocated <= 32 {
        32 - bits_stored as u32
    } else {
        0
    };
    let keep = |v: i32| match (shift, signed) {
        (0, _) => v,
        (_, true) => (v << shift) >> shift,
        (_, false) => ((v as u32) << shift >> shift) as i32,
    };
    let width = match bits_allocated {
        1 | 8 => 1,
        16 => 2,
        _ => 4,
    };
    let data = &data[..data.len().min(needed.saturating_mul(width))];
    // Kept values fit the narrower types: at most `bits_allocated` bits, sign-extended or masked.
    match bits_allocated {
        1 | 8 if signed => data.iter().map(|&b| keep(b as i8 as i32) as i16).collect::<Vec<_>>().into(),
        1 | 8 => data.iter().map(|&b| keep(b as i32) as u8).collect::<Vec<_>>().into(),
        16 if signed => data
            .chunks_exact(2)
            .map(|c| keep(i16::from_le_bytes([c[0], c[1]]) as i32) as i16)
            .collect::<Vec<_>>()
            .into(),
        16 => data
            .chunks_exact(2)
            .map(|c| keep(u16::from_le_bytes([c[0], c[1]]) as i32) as u16)
            .collect::<Vec<_>>()
            .into(),
        _ if signed => data
            .chunks_exact(4)
            .map(|c| keep(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect::<Vec<_>>()
            .into(),
        _ => data
            .chunks_exact(4)
            .map(|c| keep(u32_value(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect::<Vec<_>>()
            .into(),
    }
}

/// YBR_FULL_422 native layout (Y1 Y2 Cb Cr per pixel pair) → full YCbCr triplets.
fn expand_ybr_422(data: &[u8], pixels: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels * 3);
    for quad in data.chunks_exact(4) {
        let (cb, cr) = (quad[2], quad[3]);
        out.extend_from_slice(&[quad[0], cb, cr, quad[1], cb, cr]);
    }
    out.truncate(pixels * 3);
    out
}

/// Full-range YCbCr → RGB (PS3.3 C.7.6.3.1.2), 8-bit; in single precision with the coefficients
/// and rounding of pydicom's default conversion, so the values match it exactly. In place where
/// the samples are bytes and no one else holds them.
fn ybr_full_to_rgb(stored: Samples) -> Samples {
    let (cb_g, cr_g) = ((-0.114 * 1.772 / 0.587) as f32, (-0.299 * 1.402 / 0.587) as f32);
    let round = |v: f32| (v + 0.5).floor().clamp(0.0, 255.0);
    let rgb = |y: f32, cb: f32, cr: f32| {
        let (cb, cr) = (cb - 128.0, cr - 128.0);
        [round(y + 1.402 * cr), round(y + cb_g * cb + cr_g * cr), round(y + 1.772 * cb)]
    };
    match stored {
        Samples::U8(values) => {
            let mut values = Arc::unwrap_or_clone(values);
            for px in values.chunks_exact_mut(3) {
                let out = rgb(f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
                px.copy_from_slice(&out.map(|v| v as u8));
            }
            values.into()
        }
        other => {
            let mut values = other.to_i32();
            for px in values.chunks_exact_mut(3) {
                let out = rgb(px[0] as f32, px[1] as f32, px[2] as f32);
                px.copy_from_slice(&out.map(|v| v as i32));
            }
            values.into()
        }
    }
}

/// Millimetres between rows and between columns: Pixel Spacing, else the first ultrasound region
/// (PS3.3 C.8.5.5) whose physical units are centimetres on both axes.
fn pixel_spacing(object: &DefaultDicomObject) -> Option<[f64; 2]> {
    let usable = |v: &[f64]| v.iter().all(|&mm| mm > 0.0 && mm.is_finite());
    let spacing =
        object.element_opt(tags::PIXEL_SPACING).ok().flatten().and_then(|e| e.to_multi_float64().ok());
    if let Some(v) = spacing.filter(|v| v.len() == 2 && usable(v)) {
        return Some([v[0], v[1]]);
    }
    let regions = object.element_opt(tags::SEQUENCE_OF_ULTRASOUND_REGIONS).ok().flatten()?;
    regions.items()?.iter().find_map(|region| {
        let units = |tag| region.element_opt(tag).ok().flatten().and_then(|e| e.to_int::<i32>().ok());
        let delta = |tag| region.element_opt(tag).ok().flatten().and_then(|e| e.to_float64().ok());
        const CENTIMETRES: i32 = 3;
        if units(tags::PHYSICAL_UNITS_X_DIRECTION)? != CENTIMETRES
            || units(tags::PHYSICAL_UNITS_Y_DIRECTION)? != CENTIMETRES
        {
            return None;
        }
        let (dx, dy) =
            (delta(tags::PHYSICAL_DELTA_X)?.abs() * 10.0, delta(tags::PHYSICAL_DELTA_Y)?.abs() * 10.0);
        usable(&[dx, dy]).then_some([dy, dx])
    })
}

fn attributes(
    object: &DefaultDicomObject,
    info: &Info,
    transfer_syntax: &str,
    rescale: Rescale,
    window: Option<Window>,
) -> Vec<(String, String)> {
    let ts_name = TransferSyntaxRegistry
        .get(transfer_syntax)
        .map_or_else(|| transfer_syntax.to_string(), |ts| ts.name().to_string());
    let spacing = info.pixel_spacing.map(|[rows, columns]| format!("{rows} × {columns} mm"));
    let mut out = vec![
        ("Patient", text(object, tags::PATIENT_NAME)),
        ("Patient ID", text(object, tags::PATIENT_ID)),
        ("Study date", text(object, tags::STUDY_DATE)),
        ("Study", text(object, tags::STUDY_DESCRIPTION)),
        ("Series", text(object, tags::SERIES_DESCRIPTION)),
        ("Modality", info.modality.clone()),
        ("Body part", text(object, tags::BODY_PART_EXAMINED)),
        ("Manufacturer", text(object, tags::MANUFACTURER)),
        ("Size", Some(format!("{} × {}", info.columns, info.rows))),
        ("Frames", Some(info.frames.to_string())),
        ("Photometric", Some(info.photometric_interpretation.clone())),
        ("Bits stored", Some(info.bits_stored.to_string())),
        ("Transfer syntax", Some(ts_name)),
        ("Pixel spacing", spacing),
        ("Window", window.map(|w| format!("C {} / W {}", w.center, w.width))),
    ];
    if rescale != Rescale::IDENTITY {
        let text = format!("slope {}, intercept {}", rescale.slope, rescale.intercept);
        out.push(("Rescale", Some(text)));
    }
    out.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect()
}

fn invalid(attribute: &'static str, detail: String) -> Error {
    Error::InvalidAttribute { attribute, detail }
}

/// The patient's age in years at the examination: Patient's Age (AS, "055Y", "006M", "010W",
/// "003D"), else Patient's Birth Date against the study's date (Study, Series, Acquisition or
/// Content Date, the first present). `None` where the file says neither, or says nonsense.
pub(crate) fn patient_age_years(object: &DefaultDicomObject) -> Option<f64> {
    if let Some(age) = text(object, tags::PATIENT_AGE).and_then(|a| age_string(&a)) {
        return Some(age);
    }
    let birth = text(object, tags::PATIENT_BIRTH_DATE).and_then(|d| date(&d))?;
    let seen = [tags::STUDY_DATE, tags::SERIES_DATE, tags::ACQUISITION_DATE, tags::CONTENT_DATE]
        .into_iter()
        .find_map(|tag| text(object, tag).and_then(|d| date(&d)))?;
    let years = seen - birth;
    (0.0..=150.0).contains(&years).then_some(years)
}

/// An AS value (PS3.5 6.2: three digits and D, W, M or Y) in years.
fn age_string(value: &str) -> Option<f64> {
    let (number, unit) = value.trim().split_at_checked(value.trim().len().checked_sub(1)?)?;
    let n: f64 = number.parse().ok()?;
    let years = match unit {
        "Y" => n,
        "M" => n / 12.0,
        "W" => n * 7.0 / 365.25,
        "D" => n / 365.25,
        _ => return None,
    };
    (0.0..=150.0).contains(&years).then_some(years)
}

/// A DA value ("YYYYMMDD", or the old "YYYY.MM.DD") as a fractional year.
fn date(value: &str) -> Option<f64> {
    let digits: String = value.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 8 {
        return None;
    }
    let (y, m, d): (f64, f64, f64) =
        (digits[..4].parse().ok()?, digits[4..6].parse().ok()?, digits[6..].parse().ok()?);
    ((1.0..=12.0).contains(&m) && (1.0..=31.0).contains(&d))
        .then(|| y + (m - 1.0) / 12.0 + (d - 1.0) / 365.25)
}

fn text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let element = object.element_opt(tag).ok().flatten()?;
    let value = element.to_str().ok()?;
    let value = value.trim_matches(['\0', ' ']);
    (!value.is_empty()).then(|| value.to_string())
}

fn int<T>(object: &DefaultDicomObject, tag: Tag) -> Option<T>
where
    T: Clone + num_traits::NumCast + std::str::FromStr<Err = std::num::ParseIntError>,
{
    object.element_opt(tag).ok().flatten()?.to_int::<T>().ok()
}

fn required_int<T>(object: &DefaultDicomObject, tag: Tag, attribute: &'static str) -> Result<T, Error>
where
    T: Clone + num_traits::NumCast + std::str::FromStr<Err = std::num::ParseIntError>,
{
    let element =
        object.element_opt(tag).ok().flatten().ok_or_else(|| invalid(attribute, "missing".into()))?;
    element.to_int::<T>().map_err(|e| invalid(attribute, e.to_string()))
}

/// First value of a (possibly multi-valued) decimal attribute.
fn float(object: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    let values = object.element_opt(tag).ok().flatten()?.to_multi_float64().ok()?;
    values.first().copied().filter(|v| v.is_finite())
}

/// "outer: inner: innermost" — snafu errors keep the useful detail in their sources. A file cut short
/// says so first, since "failed to fill whole buffer" is all the innermost error knows.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut ended_early = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            ended_early |= io.kind() == std::io::ErrorKind::UnexpectedEof;
        }
        source = e.source();
    }
    let chain = one_line(&full_chain(error));
    if ended_early { format!("it ends early (truncated): {chain}") } else { chain }
}

fn full_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(bits_allocated: u16, bits_stored: u16, signed: bool, unsigned32: Unsigned32) -> SampleLayout {
        SampleLayout { bits_allocated, bits_stored, signed, unsigned32 }
    }

    #[test]
    fn bits_above_bits_stored_are_not_part_of_the_value() {
        // 0xF123 with 12 bits stored: unsigned 0x123; signed, bit 11 clear, +0x123.
        let data = 0xF123u16.to_le_bytes();
        assert_eq!(stored_values(&data, layout(16, 12, false, Unsigned32::Saturate), 1).to_i32(), [0x123]);
        assert_eq!(stored_values(&data, layout(16, 12, true, Unsigned32::Saturate), 1).to_i32(), [0x123]);
        // 0x0800 with 12 bits stored, signed: the sign bit is set, -2048.
        let data = 0x0800u16.to_le_bytes();
        assert_eq!(stored_values(&data, layout(16, 12, true, Unsigned32::Saturate), 1).to_i32(), [-2048]);
    }

    #[test]
    fn large_unsigned_32_bit_values_saturate_for_drawing_and_keep_their_bits_for_raw() {
        let data = u32::MAX.to_le_bytes();
        assert_eq!(stored_values(&data, layout(32, 32, false, Unsigned32::Saturate), 1).to_i32(), [i32::MAX]);
        assert_eq!(stored_values(&data, layout(32, 32, false, Unsigned32::BitPattern), 1).to_i32(), [-1]);
    }

    #[test]
    fn ybr_full_converts_as_pydicom_does() {
        // Expected values from pydicom 3.0.2's convert_color_space(..., "YBR_FULL", "RGB").
        let px = vec![128u8, 128, 128, 76, 85, 255, 255, 0, 0];
        let rgb = [128, 128, 128, 254, 0, 0, 76, 255, 28];
        assert_eq!(ybr_full_to_rgb(px.clone().into()), Samples::from(rgb.map(|v| v as u8).to_vec()));
        let wide: Vec<i32> = px.iter().map(|&v| i32::from(v)).collect();
        assert_eq!(ybr_full_to_rgb(wide.into()).to_i32(), rgb);
    }

    #[test]
    fn ages_are_read_from_age_strings_and_dates() {
        assert_eq!(age_string("055Y"), Some(55.0));
        assert_eq!(age_string("018M"), Some(1.5));
        assert!((age_string("052W").unwrap() - 0.9966).abs() < 1e-3);
        assert_eq!(age_string("Y"), None);
        assert_eq!(age_string("999X"), None);
        let years = date("19950926").unwrap() - date("1940.03.05").unwrap();
        assert!((years - 55.56).abs() < 0.01, "{years}");
        assert_eq!(date("1995-13-01"), None);
        assert_eq!(date("199509"), None);
    }

    #[test]
    fn samples_keep_the_width_of_the_data() {
        let data = [0x23u8, 0xF1, 0x00, 0x08];
        let sixteen = stored_values(&data, layout(16, 12, false, Unsigned32::Saturate), 2);
        assert!(matches!(sixteen, Samples::U16(_)), "{sixteen:?}");
        assert!(matches!(
            stored_values(&data, layout(16, 12, true, Unsigned32::Saturate), 2),
            Samples::I16(_)
        ));
        let eight = stored_values(&data, layout(8, 8, false, Unsigned32::Saturate), 3);
        assert_eq!((eight.bytes(), eight.to_i32()), (3, vec![0x23, 0xF1, 0x00]), "only the samples needed");
        assert!(matches!(stored_values(&data, layout(8, 8, true, Unsigned32::Saturate), 4), Samples::I16(_)));
    }
}
