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

/// Input shape, framing and normalisation of a model; stored with the model in `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    /// 1: grey (a colour picture is converted to luma); 3: RGB.
    pub channels: u32,
    pub framing: Framing,
    /// Per-channel mean and standard deviation of the training pixels, on a 0–1 scale.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
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
        let c = self.channels as usize;
        let plane = (self.width * self.height) as usize;
        let mut out = vec![0.0; plane * c];
        for (i, px) in fitted.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                out[ch * plane + i] = (v as f32 / 255.0 - self.mean[ch]) / self.std[ch];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: u32, height: u32, channels: u32, framing: Framing) -> InputSpec {
        let n = channels as usize;
        InputSpec { width, height, channels, framing, mean: vec![0.5; n], std: vec![0.25; n] }
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
