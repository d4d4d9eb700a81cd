//! What a model expects as input, and the one function that produces it from pixels.
//!
//! Training, the CLI and the browser all go through [`InputSpec::fit`] and [`InputSpec::normalise`],
//! so an image is framed and scaled the same way wherever it is seen.

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// How a picture of any shape is framed to the model's input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// The whole picture, squashed to the input shape (the chest films were published this way).
    Squash,
    /// The largest centred crop with the input's aspect ratio, then resized (skin: 4:3).
    CenterCrop,
}

/// How a framed picture's grey levels are standardised before scaling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intensity {
    /// As the picture is drawn (the file's default window).
    #[default]
    AsShown,
    /// Histogram-equalised, each channel on its own: a film taken with another exposure, contrast
    /// or gamma — any change that keeps darker darker — reaches the model as the same input, so the
    /// model cannot learn "how dark the film is", which differs between machines and periods.
    Equalised,
}

/// Input shape, framing and normalisation of a model; stored with the model in `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    /// 1: grey (a colour picture is converted to luma); 3: RGB.
    pub channels: u32,
    pub framing: Framing,
    /// Per-channel mean and standard deviation of the training pixels (after [`Intensity`]), on
    /// a 0–1 scale.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Grey-level standardisation before scaling; absent in `model.json` means as shown.
    #[serde(default, skip_serializing_if = "is_as_shown")]
    pub intensity: Intensity,
    /// Test-time augmentation: the logits and heat maps are the average over the picture and its
    /// left–right mirror image ([`crate::infer`]); only where a mirror image is a valid example.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror_average: bool,
}

fn is_as_shown(intensity: &Intensity) -> bool {
    *intensity == Intensity::AsShown
}

impl InputSpec {
    /// Frames and resizes 8-bit pixels (`channels_in` = 1 or 3, row-major, interleaved) to the
    /// input shape; returns `width × height × channels` bytes, interleaved.
    pub fn fit(&self, pixels: &[u8], width: u32, height: u32, channels_in: u32) -> Vec<u8> {
        match (channels_in, self.channels) {
            (1, 1) => self.fit_image(GrayImage::from_raw(width, height, pixels.to_vec())),
            (3, 3) => self.fit_image(RgbImage::from_raw(width, height, pixels.to_vec())),
            (3, 1) => {
                let rgb = RgbImage::from_raw(width, height, pixels.to_vec());
                self.fit_image(rgb.map(|img| image::DynamicImage::ImageRgb8(img).into_luma8()))
            }
            _ => {
                let grey = GrayImage::from_raw(width, height, pixels.to_vec());
                self.fit_image(grey.map(|img| image::DynamicImage::ImageLuma8(img).into_rgb8()))
            }
        }
    }

    /// A lesion mask (`width × height`, non-zero inside) framed and resized exactly as
    /// [`InputSpec::fit`] frames its picture: `input width × input height` bytes, 1 inside, 0 outside.
    pub fn fit_mask(&self, mask: &[u8], width: u32, height: u32) -> Vec<u8> {
        let Some(img) =
            GrayImage::from_raw(width, height, mask.iter().map(|&v| if v > 0 { 255 } else { 0 }).collect())
        else {
            return vec![0; (self.width * self.height) as usize];
        };
        self.fit_image(Some(img)).into_iter().map(|v| u8::from(v >= 128)).collect()
    }

    fn fit_image<P>(&self, img: Option<image::ImageBuffer<P, Vec<u8>>>) -> Vec<u8>
    where
        P: image::Pixel<Subpixel = u8> + 'static,
    {
        let Some(img) = img else {
            return vec![0; (self.width * self.height * self.channels) as usize];
        };
        let (w, h) = img.dimensions();
        let framed = match self.region(w, h) {
            [0, 0, rw, rh] if (rw, rh) == (w, h) => img,
            [x, y, rw, rh] => imageops::crop_imm(&img, x, y, rw, rh).to_image(),
        };
        if framed.dimensions() == (self.width, self.height) {
            return framed.into_raw();
        }
        imageops::resize(&framed, self.width, self.height, FilterType::Triangle).into_raw()
    }

    /// The part of a `width × height` picture the model sees, as `[x, y, width, height]`: all of
    /// it when squashed, else the largest centred window with the input's aspect ratio. A heat map
    /// covers exactly this region.
    pub fn region(&self, width: u32, height: u32) -> [u32; 4] {
        match self.framing {
            Framing::Squash => [0, 0, width, height],
            Framing::CenterCrop => {
                let (w, h) = (width as u64, height as u64);
                let (cw, ch) = if w * self.height as u64 > h * self.width as u64 {
                    (h * self.width as u64 / self.height as u64, h)
                } else {
                    (w, w * self.height as u64 / self.width as u64)
                };
                let (cw, ch) = (cw.max(1) as u32, ch.max(1) as u32);
                [width.saturating_sub(cw) / 2, height.saturating_sub(ch) / 2, cw, ch]
            }
        }
    }

    /// Interleaved bytes at the input shape → normalised planar floats `[channels, height, width]`.
    pub fn normalise(&self, fitted: &[u8]) -> Vec<f32> {
        let levels: Vec<f32> = fitted.iter().map(|&v| f32::from(v)).collect();
        let mut out = vec![0.0; levels.len()];
        self.normalise_levels(&levels, &mut out);
        out
    }

    /// [`InputSpec::normalise`] of grey levels on the 0–255 scale that may be fractional (an
    /// augmented picture), into `out`.
    pub fn normalise_levels(&self, levels: &[f32], out: &mut [f32]) {
        let c = self.channels as usize;
        let plane = (self.width * self.height) as usize;
        let standardised = self.standardise(levels);
        for (i, px) in standardised.as_deref().unwrap_or(levels).chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                out[ch * plane + i] = (v / 255.0 - self.mean[ch]) / self.std[ch];
            }
        }
    }

    /// The grey levels (0–255, interleaved) after [`Intensity`]: what the mean and standard
    /// deviation are measured on.
    pub fn levels(&self, fitted: &[u8]) -> Vec<f32> {
        let levels: Vec<f32> = fitted.iter().map(|&v| f32::from(v)).collect();
        self.standardise(&levels).unwrap_or(levels)
    }

    /// `None` where the levels stay as they are.
    fn standardise(&self, levels: &[f32]) -> Option<Vec<f32>> {
        match self.intensity {
            Intensity::AsShown => None,
            Intensity::Equalised => Some(equalise(levels, self.channels as usize)),
        }
    }
}

/// Histogram equalisation of each channel (levels rounded to 256 bins): a level becomes the share
/// of the picture at or below it, above the darkest level's share, on 0–255. A flat channel stays
/// as it is.
fn equalise(levels: &[f32], channels: usize) -> Vec<f32> {
    let bin = |v: f32| v.round().clamp(0.0, 255.0) as usize;
    let mut out = levels.to_vec();
    for ch in 0..channels {
        let mut cdf = [0u32; 256];
        for px in levels.chunks_exact(channels) {
            cdf[bin(px[ch])] += 1;
        }
        for i in 1..256 {
            cdf[i] += cdf[i - 1];
        }
        let total = cdf[255];
        let darkest = cdf.iter().copied().find(|&n| n > 0).unwrap_or(0);
        if total == darkest {
            continue;
        }
        let span = (total - darkest) as f32;
        for px in out.chunks_exact_mut(channels) {
            px[ch] = ((cdf[bin(px[ch])] - darkest) * 255) as f32 / span;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: u32, height: u32, channels: u32, framing: Framing) -> InputSpec {
        let n = channels as usize;
        InputSpec {
            width,
            height,
            channels,
            framing,
            mean: vec![0.5; n],
            std: vec![0.25; n],
            intensity: Intensity::AsShown,
            mirror_average: false,
        }
    }

    #[test]
    fn equalised_input_is_the_same_whatever_the_exposure_and_gamma() {
        let mut equalised = spec(8, 8, 1, Framing::Squash);
        equalised.intensity = Intensity::Equalised;
        let film: Vec<u8> = (0..64u32).map(|i| (i * 7 % 61 + i / 4) as u8).collect();
        // Brighter, more contrast and another gamma: a change that keeps every level apart and in
        // order.
        let shifted: Vec<u8> = film
            .iter()
            .map(|&v| (30.0 + 1.5 * f32::from(v) + 0.01 * f32::from(v).powi(2)).round() as u8)
            .collect();
        assert_ne!(film, shifted);
        assert_eq!(equalised.normalise(&film), equalised.normalise(&shifted));
        // As shown, the same two films are far apart.
        let plain = spec(8, 8, 1, Framing::Squash);
        let (a, b) = (plain.normalise(&film), plain.normalise(&shifted));
        let gap = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(gap > 0.5, "{gap}");
        // Equalised levels span the scale: the darkest level is 0, the brightest 255.
        let levels = equalised.levels(&film);
        assert_eq!(levels.iter().copied().fold(f32::MAX, f32::min), 0.0);
        assert_eq!(levels.iter().copied().fold(0.0, f32::max), 255.0);
        // A flat picture stays as it is.
        assert_eq!(equalised.levels(&[90; 64]), vec![90.0; 64]);
    }

    #[test]
    fn squash_keeps_the_whole_picture() {
        // Left half black, right half white, 8×2: squashed to 4×4 the halves stay halves.
        let pixels: Vec<u8> = (0..16).map(|i| if i % 8 < 4 { 0 } else { 255 }).collect();
        let out = spec(4, 4, 1, Framing::Squash).fit(&pixels, 8, 2, 1);
        assert_eq!(out.len(), 16);
        assert!(out[0] < 20 && out[3] > 235, "{out:?}");
    }

    #[test]
    fn center_crop_drops_the_sides_of_a_wide_picture() {
        // 12×3 with white outer thirds: a 4:3-ish 4×3 centre crop sees only the black middle.
        let pixels: Vec<u8> = (0..36).map(|i| if (4..8).contains(&(i % 12)) { 0 } else { 255 }).collect();
        let out = spec(4, 3, 1, Framing::CenterCrop).fit(&pixels, 12, 3, 1);
        assert_eq!(out, vec![0; 12]);
        assert_eq!(spec(4, 3, 1, Framing::CenterCrop).region(12, 3), [4, 0, 4, 3]);
        assert_eq!(spec(4, 3, 1, Framing::CenterCrop).region(400, 600), [0, 150, 400, 300]);
        assert_eq!(spec(4, 4, 1, Framing::Squash).region(12, 3), [0, 0, 12, 3]);
    }

    #[test]
    fn a_mask_is_framed_as_its_picture() {
        // 12×3, lesion in the right third: a 4×3 centre crop of a colour model sees none of it;
        // squashed to 4×4 it stays in the rightmost column, one byte per pixel whatever the channels.
        let mask: Vec<u8> = (0..36).map(|i| u8::from(i % 12 >= 9)).collect();
        assert_eq!(spec(4, 3, 3, Framing::CenterCrop).fit_mask(&mask, 12, 3), vec![0; 12]);
        let squashed = spec(4, 4, 3, Framing::Squash).fit_mask(&mask, 12, 3);
        assert_eq!(squashed, [0, 0, 0, 1].repeat(4));
    }

    #[test]
    fn colour_to_grey_and_normalisation() {
        let red = [255u8, 0, 0].repeat(4);
        let out = spec(2, 2, 1, Framing::Squash).fit(&red, 2, 2, 3);
        assert!(out.iter().all(|&v| (50..=80).contains(&v)), "luma of red: {out:?}");
        let planar = spec(1, 2, 3, Framing::Squash).normalise(&[255, 0, 128, 0, 255, 128]);
        assert_eq!(planar.len(), 6);
        assert_eq!(&planar[..2], &[2.0, -2.0]); // red plane: (1 - .5)/.25, (0 - .5)/.25
        assert_eq!(&planar[2..4], &[-2.0, 2.0]);
    }
}
