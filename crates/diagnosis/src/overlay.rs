//! The heat map and the lesion outline drawn over the picture, for a report or a PNG (`bedside
//! predict --heatmap / --outline / --mask`). The browser composes the same layers on its canvas
//! instead, so the overlay follows zoom and pan.

use crate::Diagnosis;
use crate::preprocess::first_view;
use bedside_imaging::{Frame, Study};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage, RgbaImage};

/// How strongly the heat map's colour replaces the picture where the map is strongest.
const OPACITY: f32 = 0.5;

/// The outline's colour: a yellow that stands out on grey films and on skin alike.
const OUTLINE: Rgb<u8> = Rgb([255, 214, 0]);

/// The frame as the screen shows it first (default window), in RGB.
fn picture(study: &Study, frame: &Frame) -> RgbImage {
    let display = first_view(study, frame);
    let (w, h) = (frame.columns, frame.rows);
    if frame.is_grey() {
        RgbImage::from_fn(w, h, |x, y| {
            let v = display[(y * w + x) as usize];
            Rgb([v, v, v])
        })
    } else {
        RgbImage::from_raw(w, h, display).expect("render_display gives columns × rows × 3 bytes")
    }
}

/// The lesion mask at the frame's own size, 1 inside (all 0 where there is no lesion outline); a
/// mask found on a coarser grid ([`crate::OUTLINE_SIDE`]) is scaled up to the region, nearest
/// neighbour.
pub fn lesion_mask(frame: &Frame, diagnosis: &Diagnosis) -> Vec<u8> {
    let (w, h) = (frame.columns as usize, frame.rows as usize);
    let mut out = vec![0u8; w * h];
    if let Some(lesion) = &diagnosis.lesion {
        let [x0, y0, rw, rh] = diagnosis.region.map(|v| v as usize);
        let (mw, mh) = (lesion.mask.width as usize, lesion.mask.height as usize);
        for y in 0..rh.min(h.saturating_sub(y0)) {
            let row = &lesion.mask.values[(y * mh / rh.max(1)).min(mh - 1) * mw..][..mw];
            for x in 0..rw.min(w.saturating_sub(x0)) {
                out[(y0 + y) * w + x0 + x] = u8::from(row[(x * mw / rw.max(1)).min(mw - 1)] > 0);
            }
        }
    }
    out
}

/// The outline's pixels in the mask's coordinates: the lesion's boundary, one pixel thick and 2
/// more for every 600 pixels of the picture's longer side (counted in mask pixels), so it stays
/// visible on a large picture.
fn outline_pixels(diagnosis: &Diagnosis, longer_side: u32) -> Vec<(u32, u32)> {
    let Some(lesion) = &diagnosis.lesion else { return Vec::new() };
    let (w, h) = (i64::from(lesion.mask.width), i64::from(lesion.mask.height));
    let shrink = f64::from(lesion.mask.width) / f64::from(diagnosis.region[2].max(1));
    let radius = (f64::from(longer_side) * shrink.min(1.0) / 600.0) as i64;
    let mut on = vec![false; (w * h) as usize];
    for (bx, by) in lesion.mask.boundary() {
        for dy in -radius..=radius {
            for dx in -radius..=radius {
                let (x, y) = (i64::from(bx) + dx, i64::from(by) + dy);
                if (0..w).contains(&x) && (0..h).contains(&y) {
                    on[(y * w + x) as usize] = true;
                }
            }
        }
    }
    (0..on.len()).filter(|&i| on[i]).map(|i| ((i as i64 % w) as u32, (i as i64 / w) as u32)).collect()
}

/// The outline as an RGBA layer over the region the model saw, at the mask's size (the region's, or
/// [`crate::OUTLINE_SIDE`] long for a larger region; transparent off the line): what the page draws
/// over the picture, scaled to the region, following zoom and pan. `None` without a lesion decoder.
pub fn outline_rgba(frame: &Frame, diagnosis: &Diagnosis) -> Option<Vec<u8>> {
    let lesion = diagnosis.lesion.as_ref()?;
    let w = lesion.mask.width as usize;
    let mut rgba = vec![0u8; w * lesion.mask.height as usize * 4];
    for (x, y) in outline_pixels(diagnosis, frame.columns.max(frame.rows)) {
        let i = (y as usize * w + x as usize) * 4;
        rgba[i..i + 4].copy_from_slice(&[OUTLINE[0], OUTLINE[1], OUTLINE[2], 255]);
    }
    Some(rgba)
}

/// The frame as the screen shows it first, with the lesion's outline drawn over it (each mask pixel
/// of a scaled-down mask covering its block of the region).
pub fn outline(study: &Study, frame: &Frame, diagnosis: &Diagnosis) -> RgbImage {
    let mut picture = picture(study, frame);
    let Some(lesion) = &diagnosis.lesion else { return picture };
    let [x0, y0, rw, rh] = diagnosis.region;
    let (mw, mh) = (lesion.mask.width.max(1), lesion.mask.height.max(1));
    // Mask pixel m covers region pixels m·r/n up to (m+1)·r/n.
    let span = |m: u32, r: u32, n: u32| (m * r / n)..((m + 1) * r / n).max(m * r / n + 1);
    for (mx, my) in outline_pixels(diagnosis, frame.columns.max(frame.rows)) {
        for y in span(my, rh, mh) {
            for x in span(mx, rw, mw) {
                if x0 + x < frame.columns && y0 + y < frame.rows {
                    picture.put_pixel(x0 + x, y0 + y, OUTLINE);
                }
            }
        }
    }
    picture
}

/// The frame as the screen shows it first (default window), with the diagnosis's heat map blended
/// over the region the model saw.
pub fn overlay(study: &Study, frame: &Frame, diagnosis: &Diagnosis) -> RgbImage {
    let (w, h) = (frame.columns, frame.rows);
    let mut picture = picture(study, frame);
    let map = &diagnosis.heat_map;
    let Some(rgba) = RgbaImage::from_raw(map.width, map.height, map.to_rgba()) else { return picture };
    let [x0, y0, rw, rh] = diagnosis.region;
    let scaled = imageops::resize(&rgba, rw.max(1), rh.max(1), FilterType::Triangle);
    for (x, y, px) in scaled.enumerate_pixels() {
        let (px_x, px_y) = (x0 + x, y0 + y);
        if px_x >= w || px_y >= h {
            continue;
        }
        let alpha = OPACITY * px[3] as f32 / 255.0;
        let under = picture.get_pixel_mut(px_x, px_y);
        for c in 0..3 {
            under[c] = (under[c] as f32 * (1.0 - alpha) + px[c] as f32 * alpha).round() as u8;
        }
    }
    picture
}
