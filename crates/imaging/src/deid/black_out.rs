//! Hiding burned-in text: a rectangle the clinician draws, set to black in every frame.

use crate::dicom::dicom_body;
use crate::{Error, Limits, Source};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use serde::{Deserialize, Serialize};

/// Explicit VR Little Endian: what a blacked-out DICOM file is written in.
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// A rectangle of pixels, from the top-left corner of the (upright) image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// `bytes` with `rect` (clipped to the image) black in every frame. A DICOM file comes back with
/// native pixel data in Explicit VR Little Endian, whatever it was encoded in (a compressed one is
/// decoded: nothing of the original stream survives, and YBR colour comes out as RGB); everything
/// else in it is unchanged. A photo comes back as a PNG. Black is what the photometric
/// interpretation draws as black: the lowest value, the highest for MONOCHROME1, index 0 for
/// PALETTE COLOR.
pub fn black_out(bytes: &[u8], rect: Rect, limits: &Limits) -> Result<Vec<u8>, Error> {
    let Some(body) = dicom_body(bytes) else {
        let mut image = crate::photo::decode_upright(bytes, limits)?;
        let (width, height) = (image.width(), image.height());
        let mut rgba = image.to_rgba16();
        for (x, y) in pixels(rect, width, height) {
            let alpha = rgba.get_pixel(x, y)[3];
            rgba.put_pixel(x, y, image::Rgba([0, 0, 0, alpha]));
        }
        image = if image.color().has_alpha() || image.color().bytes_per_pixel() > 4 {
            rgba.into()
        } else {
            image::DynamicImage::from(rgba).into_rgb8().into()
        };
        return super::photo::png(&image);
    };
    let study = crate::dicom::open(body, limits)?;
    let Source::Dicom(source) = &study.source else { return Err(Error::NotDicom) };
    if source.bits_allocated == 1 {
        return Err(Error::Unsupported { what: "blacking out 1-bit pixel data".into() });
    }
    let layout = study.raw_layout()?;
    let info = study.info();
    let bits = u32::from(info.bits_stored.clamp(1, 32));
    let black: i64 = match (info.photometric_interpretation.as_str(), source.signed) {
        ("MONOCHROME1", false) => (1i64 << bits) - 1,
        ("MONOCHROME1", true) => (1i64 << (bits - 1)) - 1,
        ("MONOCHROME2", true) => -(1i64 << (bits - 1)),
        _ => 0,
    };
    let samples = usize::from(source.samples);
    let size = layout.dtype.size();
    let mut black_bytes = Vec::new();
    layout.dtype.push_le(black as i32, &mut black_bytes);

    let mut pixel_data = Vec::new();
    for frame in 0..info.frames {
        let mut raw = study.raw_frame(frame)?;
        for (x, y) in pixels(rect, info.columns, info.rows) {
            let first = (y as usize * info.columns as usize + x as usize) * samples * size;
            for sample in raw[first..first + samples * size].chunks_exact_mut(size) {
                sample.copy_from_slice(&black_bytes);
            }
        }
        pixel_data.extend_from_slice(&raw);
    }
    if pixel_data.len() % 2 == 1 {
        pixel_data.push(0);
    }

    let ybr = info.photometric_interpretation.starts_with("YBR");
    let Source::Dicom(source) = study.source else { return Err(Error::NotDicom) };
    let mut object = source.object;
    let vr = if layout.dtype.size() == 1 { VR::OB } else { VR::OW };
    object.put(DataElement::new(tags::PIXEL_DATA, vr, PrimitiveValue::U8(pixel_data.into())));
    // The raw array is YBR_FULL/YBR_FULL_422 converted to RGB and colour interleaved.
    if ybr {
        object.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from("RGB")));
    }
    if samples == 3 {
        object.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, PrimitiveValue::from(0u16)));
    }
    object.meta_mut().transfer_syntax = EXPLICIT_VR_LITTLE_ENDIAN.to_string();
    object.meta_mut().update_information_group_length();
    let mut out = Vec::new();
    object.write_all(&mut out).map_err(|e| Error::DicomWrite(crate::dicom::error_chain(&e)))?;
    Ok(out)
}

/// The pixels of `rect` inside a `width` × `height` image.
fn pixels(rect: Rect, width: u32, height: u32) -> impl Iterator<Item = (u32, u32)> {
    let (x_end, y_end) =
        (rect.x.saturating_add(rect.width).min(width), rect.y.saturating_add(rect.height).min(height));
    (rect.y.min(y_end)..y_end).flat_map(move |y| (rect.x.min(x_end)..x_end).map(move |x| (x, y)))
}
