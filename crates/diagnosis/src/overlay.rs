//! The heat map drawn over the picture, for a report or a PNG (`bedside predict --heatmap`).
//! The browser composes the same two layers on its canvas instead, so the overlay follows zoom and pan.

use crate::Diagnosis;
use crate::preprocess::first_view;
use bedside_imaging::{Frame, Study};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage, RgbaImage};

/// How strongly the heat map's colour replaces the picture where the map is strongest.
const OPACITY: f32 = 0.5;

/// The frame as the screen shows it first (default window), with the diagnosis's heat map blended
/// over the region the model saw.
pub fn overlay(study: &Study, frame: &Frame, diagnosis: &Diagnosis) -> RgbImage {
    let display = first_view(study, frame);
    let (w, h) = (frame.columns, frame.rows);
    let mut picture = if frame.is_grey() {
        RgbImage::from_fn(w, h, |x, y| {
            let v = display[(y * w + x) as usize];
            Rgb([v, v, v])
        })
    } else {
        RgbImage::from_raw(w, h, display).expect("render_display gives columns × rows × 3 bytes")
    };
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
