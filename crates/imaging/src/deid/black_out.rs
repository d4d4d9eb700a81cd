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

impl Rect {
    /// The whole pixels a rectangle drawn over a `columns` × `rows` image covers. `[x, y, width,
    /// height]` is in image pixels as the viewer maps the pointer (zoom and pan undone): fractional,
    /// with a negative width or height when dragged up or to the left, and possibly reaching past
    /// the image. Every pixel it touches is covered (a black-out must not leave a sliver of a
    /// name), clamped to the image; an empty rectangle or one wholly outside is refused.
    pub fn drawn(drawn: [f64; 4], columns: u32, rows: u32) -> Result<Rect, Error> {
        let [x, y, width, height] = drawn;
        let shown = || format!("{x},{y},{width},{height}");
        if !drawn.iter().all(|v| v.is_finite()) {
            return Err(Error::BlackOut { rect: shown(), why: "its corners are not numbers".into() });
        }
        if width == 0.0 || height == 0.0 {
            return Err(Error::BlackOut {
                rect: shown(),
                why: "it is empty (give it a width and a height)".into(),
            });
        }
        let (left, right) = (x.min(x + width), x.max(x + width));
        let (top, bottom) = (y.min(y + height), y.max(y + height));
        // Clamped before converting, so a corner far outside cannot overflow the pixel numbers.
        let edge = |v: f64, limit: u32| v.clamp(0.0, f64::from(limit));
        let (x0, x1) = (edge(left.floor(), columns) as u32, edge(right.ceil(), columns) as u32);
        let (y0, y1) = (edge(top.floor(), rows) as u32, edge(bottom.ceil(), rows) as u32);
        if x0 >= x1 || y0 >= y1 {
            return Err(Error::BlackOut {
                rect: shown(),
                why: format!("it lies outside the {columns}×{rows} image"),
            });
        }
        Ok(Rect { x: x0, y: y0, width: x1 - x0, height: y1 - y0 })
    }

    /// This rectangle clamped to a `columns` × `rows` image; refused when it is empty or lies wholly
    /// outside, where blacking it out would hide nothing the clinician meant to hide.
    pub fn within(self, columns: u32, rows: u32) -> Result<Rect, Error> {
        let shown = || format!("{},{},{},{}", self.x, self.y, self.width, self.height);
        if self.width == 0 || self.height == 0 {
            return Err(Error::BlackOut {
                rect: shown(),
                why: "it is empty (give it a width and a height)".into(),
            });
        }
        let x_end = self.x.saturating_add(self.width).min(columns);
        let y_end = self.y.saturating_add(self.height).min(rows);
        if self.x >= x_end || self.y >= y_end {
            return Err(Error::BlackOut {
                rect: shown(),
                why: format!("it lies outside the {columns}×{rows} image"),
            });
        }
        Ok(Rect { x: self.x, y: self.y, width: x_end - self.x, height: y_end - self.y })
    }
}

/// `bytes` with `rect` (clamped to the image, see [`Rect::within`]) black in every frame. A DICOM
/// file comes back with native pixel data in Explicit VR Little Endian, whatever it was encoded in
/// (a compressed one is decoded: nothing of the original stream survives, and YBR colour comes out
/// as RGB); everything else in it is unchanged. A photo comes back as a PNG. Black is what the
/// photometric interpretation draws as black: the lowest value, the highest for MONOCHROME1, index 0
/// for PALETTE COLOR.
pub fn black_out(bytes: &[u8], rect: Rect, limits: &Limits) -> Result<Vec<u8>, Error> {
    let Some(body) = dicom_body(bytes) else {
        let mut image = crate::photo::decode_upright(bytes, limits)?;
        let (width, height) = (image.width(), image.height());
        let rect = rect.within(width, height)?;
        let mut rgba = image.to_rgba16();
        for (x, y) in pixels(rect) {
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
    let rect = rect.within(info.columns, info.rows)?;
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
        for (x, y) in pixels(rect) {
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

/// The pixels of `rect`, already within the image.
fn pixels(rect: Rect) -> impl Iterator<Item = (u32, u32)> {
    (rect.y..rect.y + rect.height).flat_map(move |y| (rect.x..rect.x + rect.width).map(move |x| (x, y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect { x, y, width, height }
    }

    #[test]
    fn a_drawn_rectangle_covers_every_pixel_it_touches_whichever_way_it_was_dragged() {
        assert_eq!(Rect::drawn([10.4, 20.6, 5.2, 3.0], 100, 80).unwrap(), rect(10, 20, 6, 4));
        // Dragged up and to the left from (15.6, 23.6): the same pixels.
        assert_eq!(Rect::drawn([15.6, 23.6, -5.2, -3.0], 100, 80).unwrap(), rect(10, 20, 6, 4));
        assert_eq!(Rect::drawn([0.0, 0.0, 1.0, 1.0], 100, 80).unwrap(), rect(0, 0, 1, 1));
    }

    #[test]
    fn a_rectangle_partly_outside_the_image_is_clamped_to_it() {
        assert_eq!(Rect::drawn([-12.5, 70.0, 30.0, 40.0], 100, 80).unwrap(), rect(0, 70, 18, 10));
        assert_eq!(Rect::drawn([90.0, -1e12, 1e12, 2e12], 100, 80).unwrap(), rect(90, 0, 10, 80));
        assert_eq!(rect(95, 75, 10, 10).within(100, 80).unwrap(), rect(95, 75, 5, 5));
        assert_eq!(rect(0, 0, u32::MAX, u32::MAX).within(100, 80).unwrap(), rect(0, 0, 100, 80));
    }

    #[test]
    fn an_empty_rectangle_or_one_wholly_outside_is_refused_with_a_clear_error() {
        let message = |r: Result<Rect, Error>| r.expect_err("refused").to_string();
        assert_eq!(
            message(Rect::drawn([5.0, 5.0, 0.0, 7.0], 100, 80)),
            "cannot black out the rectangle 5,5,0,7: it is empty (give it a width and a height)"
        );
        assert_eq!(
            message(rect(3, 4, 10, 0).within(100, 80)),
            "cannot black out the rectangle 3,4,10,0: it is empty (give it a width and a height)"
        );
        assert_eq!(
            message(Rect::drawn([-30.0, 10.0, 20.0, 5.0], 100, 80)),
            "cannot black out the rectangle -30,10,20,5: it lies outside the 100×80 image"
        );
        assert_eq!(
            message(rect(100, 0, 5, 5).within(100, 80)),
            "cannot black out the rectangle 100,0,5,5: it lies outside the 100×80 image"
        );
        assert!(message(Rect::drawn([f64::NAN, 0.0, 5.0, 5.0], 100, 80)).contains("not numbers"));
    }
}
