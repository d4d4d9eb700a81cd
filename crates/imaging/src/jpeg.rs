//! JPEG frames (baseline, extended, lossless) through `jpeg-decoder`, with no colour transform of the
//! decoder's own. `jpeg-decoder` guesses YCbCr for any three-component stream without markers that say
//! otherwise, which turns streams stored as RGB into false colour; here the photometric interpretation
//! decides, corrected by the stream's markers as pydicom corrects it (component IDs "RGB" mean RGB; a
//! JFIF marker means YCbCr), and YCbCr is then converted like every other YBR_FULL frame.

use crate::dicom::encapsulated_frame;
use crate::{Error, Limits};
use dicom_object::DefaultDicomObject;
use jpeg_decoder::{ColorTransform, Decoder, PixelFormat, UnsupportedFeature};

/// The transfer syntaxes decoded here.
pub(crate) const TRANSFER_SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2.4.50", // baseline (8-bit)
    "1.2.840.10008.1.2.4.51", // extended (12-bit): refused by jpeg-decoder for lossy streams
    "1.2.840.10008.1.2.4.57", // lossless
    "1.2.840.10008.1.2.4.70", // lossless, first-order prediction
];
const BASELINE: &str = "1.2.840.10008.1.2.4.50";

/// A decoded frame: samples interleaved, little-endian at `bits_allocated`, and the photometric
/// interpretation they are in.
pub(crate) struct Decoded {
    pub data: Vec<u8>,
    pub photometric: String,
}

/// What the frame's pixel layout must be, from the DICOM header.
pub(crate) struct Expected<'a> {
    pub rows: u32,
    pub columns: u32,
    pub samples: u16,
    pub bits_allocated: u16,
    pub frames: u32,
    pub photometric: &'a str,
    pub transfer_syntax: &'a str,
}

/// Decodes frame `index`; the stream must agree with the header on size and number of components.
pub(crate) fn decode_frame(
    object: &DefaultDicomObject,
    index: u32,
    expected: &Expected,
    limits: &Limits,
) -> Result<Decoded, Error> {
    let fail = |detail: String| Error::PixelData { frame: index, detail };
    let stream = encapsulated_frame(object, index, expected.frames).map_err(fail)?;
    limits.check_ratio(expected.rows, expected.columns, stream.len())?;
    let mut decoder = Decoder::new(stream.as_slice());
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_frame_bytes).unwrap_or(usize::MAX));
    if expected.samples == 3 {
        // "RGB" copies the three components as they are (its `None` writes them planar, past the end).
        decoder.set_color_transform(ColorTransform::RGB);
    }
    let pixels = decoder.decode().map_err(|e| match e {
        jpeg_decoder::Error::Unsupported(UnsupportedFeature::SamplePrecision(bits)) => {
            Error::Unsupported { what: format!("{bits}-bit lossy JPEG") }
        }
        e => fail(format!("JPEG: {}", crate::error::one_line(&e.to_string()))),
    })?;
    let info = decoder.info().ok_or_else(|| fail("JPEG: no frame header".into()))?;
    if (u32::from(info.width), u32::from(info.height)) != (expected.columns, expected.rows) {
        return Err(fail(format!(
            "the JPEG stream is {}×{} but the header says {}×{}",
            info.width, info.height, expected.columns, expected.rows
        )));
    }
    let components = match info.pixel_format {
        PixelFormat::L8 | PixelFormat::L16 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::CMYK32 => 4,
    };
    if components != expected.samples {
        return Err(fail(format!(
            "the JPEG stream has {components} component(s) but Samples per Pixel is {}",
            expected.samples
        )));
    }
    let data = match (info.pixel_format, expected.bits_allocated) {
        // 8-bit precision in 16 bits allocated: each sample widens to a little-endian u16.
        (PixelFormat::L8 | PixelFormat::RGB24, 16) => pixels.iter().flat_map(|&b| [b, 0]).collect(),
        _ => pixels,
    };
    Ok(Decoded { data, photometric: photometric(&stream, expected) })
}

/// The colour space the decoded samples are in: the header's, unless the stream's component IDs spell
/// "RGB" (then RGB) or it has a JFIF marker and the header names no YCbCr (then YCbCr). Decoded frames
/// are never subsampled, so YBR_FULL_422 comes back as YBR_FULL.
fn photometric(stream: &[u8], expected: &Expected) -> String {
    let header = expected.photometric;
    if expected.samples != 3 {
        return header.to_string();
    }
    let (ids, jfif) = markers(stream);
    let photometric = if ids == b"RGB" || ids == b"rgb" {
        "RGB"
    } else if jfif && !header.contains("YBR") {
        if expected.transfer_syntax == BASELINE { "YBR_FULL_422" } else { "YBR_FULL" }
    } else {
        header
    };
    if photometric == "YBR_FULL_422" { "YBR_FULL".into() } else { photometric.into() }
}

/// Component IDs of the frame header and whether an APPn segment starts with "JFIF", from the marker
/// segments before the first scan. Malformed streams give what was read so far.
fn markers(stream: &[u8]) -> (Vec<u8>, bool) {
    let (mut ids, mut jfif) = (Vec::new(), false);
    let mut at = 2; // after SOI
    while at + 4 <= stream.len() {
        if stream[at] != 0xFF {
            break;
        }
        let marker = stream[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan, end of image
        }
        let length = u16::from_be_bytes([stream[at + 2], stream[at + 3]]) as usize;
        let payload = stream.get(at + 4..at + 2 + length).unwrap_or(&[]);
        match marker {
            0xE0..=0xEF => jfif |= payload.starts_with(b"JFIF"),
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let count = payload.get(5).copied().unwrap_or(0) as usize;
                ids = (0..count).filter_map(|i| payload.get(6 + 3 * i).copied()).collect();
            }
            _ => {}
        }
        at += 2 + length.max(2);
    }
    (ids, jfif)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(photometric: &str) -> Expected<'_> {
        Expected {
            rows: 1,
            columns: 1,
            samples: 3,
            bits_allocated: 8,
            frames: 1,
            photometric,
            transfer_syntax: BASELINE,
        }
    }

    /// SOI, an APP0 with `app0`, a SOF0 with three components of these IDs, then SOS.
    fn stream(app0: &[u8], ids: [u8; 3]) -> Vec<u8> {
        let mut s = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, (app0.len() + 2) as u8];
        s.extend_from_slice(app0);
        s.extend_from_slice(&[0xFF, 0xC0, 0, 17, 8, 0, 1, 0, 1, 3]);
        for id in ids {
            s.extend_from_slice(&[id, 0x11, 0]);
        }
        s.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        s
    }

    #[test]
    fn markers_find_component_ids_and_jfif() {
        assert_eq!(markers(&stream(b"JFIF\0", *b"RGB")), (b"RGB".to_vec(), true));
        assert_eq!(markers(&stream(b"Exif\0", [1, 2, 3])), (vec![1, 2, 3], false));
        assert_eq!(markers(&[0xFF, 0xD8, 0xFF]), (vec![], false), "truncated");
    }

    #[test]
    fn the_stream_corrects_the_header_as_pydicom_does() {
        let rgb = expected("RGB");
        assert_eq!(photometric(&stream(b"JFIF\0", [1, 2, 3]), &rgb), "YBR_FULL", "JFIF means YCbCr");
        assert_eq!(photometric(&stream(b"Exif\0", [1, 2, 3]), &rgb), "RGB", "no marker: as the header says");
        let ybr = expected("YBR_FULL_422");
        assert_eq!(photometric(&stream(b"JFIF\0", *b"RGB"), &ybr), "RGB", "component IDs R, G, B");
        assert_eq!(photometric(&stream(b"Exif\0", [1, 2, 3]), &ybr), "YBR_FULL", "decoded at full size");
    }
}
