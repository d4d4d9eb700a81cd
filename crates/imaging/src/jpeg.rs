//! JPEG frames (baseline, extended, lossless) through `jpeg-decoder`, or `jpeg_dct` for the 12-bit DCT
//! streams it refuses and for 8-bit colour DCT streams, with no colour transform of the decoder's
//! own. Colour goes to `jpeg_dct` because the YBR→RGB conversion multiplies a chroma difference by up
//! to 1.772: `jpeg-decoder`'s IDCT and chroma upsampling round differently from libjpeg's (YCbCr
//! within 3, RGB within 5 on the 4:2:2 corpus files), while `jpeg_dct` computes both as libjpeg does
//! and matches it exactly on the corpus. Grey 8-bit streams, with no conversion to amplify a
//! difference, and chroma ratios other than 1 and 2 stay with `jpeg-decoder`.
//!
//! `jpeg-decoder` guesses YCbCr for any three-component stream without markers that say otherwise,
//! which turns streams stored as RGB into false colour; here the photometric interpretation
//! decides, corrected by the stream's markers as pydicom corrects it (component IDs "RGB" mean RGB;
//! a JFIF marker means YCbCr), and YCbCr is then converted like every other YBR_FULL frame.

use crate::dicom::encapsulated_frame;
use crate::jpeg_dct;
use crate::{Error, Limits};
use dicom_object::DefaultDicomObject;
use jpeg_decoder::{ColorTransform, Decoder, PixelFormat, UnsupportedFeature};

/// The transfer syntaxes decoded here.
pub(crate) const TRANSFER_SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2.4.50", // baseline (8-bit)
    "1.2.840.10008.1.2.4.51", // extended (12-bit): its 12-bit DCT streams go to `jpeg_dct`
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
    let markers = markers(&stream);
    // Chosen by the frame header rather than on jpeg-decoder's refusal, which may come from some
    // other segment first.
    if jpeg_dct::is_twelve_bit_dct(markers.sof) {
        if expected.bits_allocated != 16 {
            return Err(fail(format!("12-bit JPEG in {} bits allocated", expected.bits_allocated)));
        }
        let data = jpeg_dct::decode(&stream, index, expected.rows, expected.columns, expected.samples)?;
        return Ok(Decoded { data, photometric: photometric(&markers, expected) });
    }
    if jpeg_dct::is_eight_bit_colour_dct(markers.sof, &markers.sampling) {
        // Bytes, widened like `jpeg-decoder`'s below when 16 bits are allocated.
        let data = jpeg_dct::decode(&stream, index, expected.rows, expected.columns, expected.samples)?;
        let data = match expected.bits_allocated {
            16 => data.iter().flat_map(|&b| [b, 0]).collect(),
            _ => data,
        };
        return Ok(Decoded { data, photometric: photometric(&markers, expected) });
    }
    let mut decoder = Decoder::new(&stream[..]);
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_decode_bytes).unwrap_or(usize::MAX));
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
    Ok(Decoded { data, photometric: photometric(&markers, expected) })
}

/// The colour space the decoded samples are in: the header's, unless the stream's component IDs spell
/// "RGB" (then RGB) or it has a JFIF marker and the header names no YCbCr (then YCbCr). Decoded frames
/// are never subsampled, so YBR_FULL_422 comes back as YBR_FULL.
fn photometric(markers: &Markers, expected: &Expected) -> String {
    let header = expected.photometric;
    if expected.samples != 3 {
        return header.to_string();
    }
    let photometric = if markers.ids == b"RGB" || markers.ids == b"rgb" {
        "RGB"
    } else if markers.jfif && !header.contains("YBR") {
        if expected.transfer_syntax == BASELINE { "YBR_FULL_422" } else { "YBR_FULL" }
    } else {
        header
    };
    if photometric == "YBR_FULL_422" { "YBR_FULL".into() } else { photometric.into() }
}

/// What the marker segments before the first scan say; malformed streams give what was read so far.
#[derive(Debug, Default, PartialEq)]
struct Markers {
    /// Component IDs of the frame header.
    ids: Vec<u8>,
    /// Whether an APPn segment starts with "JFIF".
    jfif: bool,
    /// The frame header's marker and sample precision.
    sof: Option<(u8, u8)>,
    /// The frame header's sampling factors (H << 4 | V), one per component.
    sampling: Vec<u8>,
}

fn markers(stream: &[u8]) -> Markers {
    let mut found = Markers::default();
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
            0xE0..=0xEF => found.jfif |= payload.starts_with(b"JFIF"),
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let count = payload.get(5).copied().unwrap_or(0) as usize;
                found.ids = (0..count).filter_map(|i| payload.get(6 + 3 * i).copied()).collect();
                found.sampling = (0..count).filter_map(|i| payload.get(7 + 3 * i).copied()).collect();
                found.sof = payload.first().map(|&precision| (marker, precision));
            }
            _ => {}
        }
        at += 2 + length.max(2);
    }
    found
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
        let (sof, sampling) = (Some((0xC0, 8)), vec![0x11; 3]);
        assert_eq!(
            markers(&stream(b"JFIF\0", *b"RGB")),
            Markers { ids: b"RGB".to_vec(), jfif: true, sof, sampling: sampling.clone() }
        );
        assert_eq!(
            markers(&stream(b"Exif\0", [1, 2, 3])),
            Markers { ids: vec![1, 2, 3], jfif: false, sof, sampling }
        );
        assert_eq!(markers(&[0xFF, 0xD8, 0xFF]), Markers::default(), "truncated");
    }

    #[test]
    fn the_stream_corrects_the_header_as_pydicom_does() {
        let rgb = expected("RGB");
        assert_eq!(
            photometric(&markers(&stream(b"JFIF\0", [1, 2, 3])), &rgb),
            "YBR_FULL",
            "JFIF means YCbCr"
        );
        assert_eq!(
            photometric(&markers(&stream(b"Exif\0", [1, 2, 3])), &rgb),
            "RGB",
            "no marker: as the header says"
        );
        let ybr = expected("YBR_FULL_422");
        assert_eq!(photometric(&markers(&stream(b"JFIF\0", *b"RGB")), &ybr), "RGB", "component IDs R, G, B");
        assert_eq!(
            photometric(&markers(&stream(b"Exif\0", [1, 2, 3])), &ybr),
            "YBR_FULL",
            "decoded at full size"
        );
    }
}
