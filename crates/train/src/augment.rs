//! Training-time augmentation on 8-bit images at the model's input shape: optionally one acquisition
//! shift (the shift panel's corruptions, milder), then a random affine warp (rotation, scale, shift,
//! optional mirror), brightness and contrast, optional Gaussian noise, then the input's own
//! standardisation and normalisation ([`InputSpec::normalise_levels`]).

use crate::rng::Rng;
use bedside_model::input::InputSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Largest rotation either way, in degrees.
    pub rotate_degrees: f32,
    /// Zoom range (1 = none).
    pub scale: (f32, f32),
    /// Largest shift as a fraction of the side.
    pub shift: f32,
    /// Mirror left–right half the time (only where anatomy allows it).
    pub mirror: bool,
    /// Largest brightness offset and contrast factor change (fractions).
    pub brightness: f32,
    pub contrast: f32,
    /// Largest standard deviation of Gaussian pixel noise, as a fraction of full scale; each view
    /// draws its own between 0 and this (0: none, and no random draws, so older recipes repeat).
    #[serde(default)]
    pub noise: f32,
    /// Share of views that first get one acquisition shift ([`shift_view`]): 0 draws nothing, so
    /// older recipes repeat.
    #[serde(default)]
    pub shift_share: f32,
}

impl Augment {
    pub fn none() -> Self {
        Augment {
            rotate_degrees: 0.0,
            scale: (1.0, 1.0),
            shift: 0.0,
            mirror: false,
            brightness: 0.0,
            contrast: 0.0,
            noise: 0.0,
            shift_share: 0.0,
        }
    }

    /// Mild, anatomy-preserving defaults for medical images.
    pub fn standard(mirror: bool) -> Self {
        Augment {
            rotate_degrees: 10.0,
            scale: (0.9, 1.1),
            shift: 0.06,
            mirror,
            brightness: 0.1,
            contrast: 0.15,
            noise: 0.0,
            shift_share: 0.0,
        }
    }

    /// The random warp of one view: the first draws from `rng`, so that [`Augment::apply_with_mask`]
    /// can repeat them for the mask.
    fn draw_warp(&self, rng: &mut Rng, w: usize, h: usize) -> Warp {
        let angle = rng.uniform(-self.rotate_degrees, self.rotate_degrees).to_radians();
        let zoom = rng.uniform(self.scale.0, self.scale.1);
        let (dx, dy) = (
            rng.uniform(-self.shift, self.shift) * w as f32,
            rng.uniform(-self.shift, self.shift) * h as f32,
        );
        let flip = self.mirror && rng.unit() < 0.5;
        let (cos, sin) = (angle.cos() / zoom, angle.sin() / zoom);
        Warp { cos, sin, dx, dy, flip, w, h }
    }

    /// [`Augment::apply`], and the same warp applied to the picture's lesion mask (`width × height`
    /// bytes, non-zero inside), written to `mask_out` as the share of each pixel inside (0–1).
    pub fn apply_with_mask(
        &self,
        pixels: &[u8],
        mask: &[u8],
        spec: &InputSpec,
        rng: &mut Rng,
        out: &mut [f32],
        mask_out: &mut [f32],
    ) {
        let (w, h) = (spec.width as usize, spec.height as usize);
        let warp = self.draw_warp(&mut rng.clone(), w, h);
        self.apply(pixels, spec, rng, out);
        let binary: Vec<u8> = mask.iter().map(|&m| u8::from(m > 0)).collect();
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = warp.source(x, y);
                mask_out[y * w + x] = bilinear(&binary, w, h, 1, 0, sx, sy);
            }
        }
    }

    /// Writes one augmented, normalised image (planar `[c, h, w]`) into `out`.
    pub fn apply(&self, pixels: &[u8], spec: &InputSpec, rng: &mut Rng, out: &mut [f32]) {
        let (w, h, c) = (spec.width as usize, spec.height as usize, spec.channels as usize);
        // The warp first: apply_with_mask repeats these draws for the mask.
        let warp = self.draw_warp(rng, w, h);
        let shifted;
        let pixels = if self.shift_share > 0.0 && rng.unit() < self.shift_share {
            shifted = shift_view(pixels, spec, rng);
            &shifted[..]
        } else {
            pixels
        };
        let gain = 1.0 + rng.uniform(-self.contrast, self.contrast);
        let offset = rng.uniform(-self.brightness, self.brightness) * 255.0;
        let mut levels = vec![0.0; w * h * c];
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = warp.source(x, y);
                for ch in 0..c {
                    let v = bilinear(pixels, w, h, c, ch, sx, sy);
                    levels[(y * w + x) * c + ch] = ((v - 127.5) * gain + 127.5 + offset).clamp(0.0, 255.0);
                }
            }
        }
        if self.noise > 0.0 {
            let sigma = rng.uniform(0.0, self.noise) * 255.0;
            for v in &mut levels {
                *v = (*v + rng.normal() * sigma).clamp(0.0, 255.0);
            }
        }
        // Then the product's own standardisation and scaling, as on an unaugmented picture.
        spec.normalise_levels(&levels, out);
    }
}

/// One acquisition shift drawn at random: a corruption of the shift panel
/// ([`crate::robustness::Corruption`]) at a level drawn uniformly between none and the panel's
/// severity 3 — brightness and gamma either way, as exposure and processing curves differ both ways
/// between machines. Severities 4 and 5 stay unseen, so the panel still measures extrapolation.
pub fn shift_view(pixels: &[u8], spec: &InputSpec, rng: &mut Rng) -> Vec<u8> {
    use crate::robustness::{Corruption, corrupt};
    let all = Corruption::ALL;
    let corruption = all[((rng.unit() * all.len() as f32) as usize).min(all.len() - 1)];
    let moderate = corruption.levels()[2];
    let clean = match corruption {
        Corruption::GaussianNoise | Corruption::Blur | Corruption::Brightness => 0.0,
        Corruption::Contrast | Corruption::Gamma => 1.0,
        Corruption::Jpeg => 90.0,
    };
    let mut level = clean + rng.unit() * (moderate - clean);
    let either_way = rng.unit() < 0.5;
    match corruption {
        Corruption::Brightness if either_way => level = -level,
        Corruption::Gamma if either_way => level = 1.0 / level,
        Corruption::Blur if level < 0.1 => return pixels.to_vec(),
        _ => {}
    }
    corrupt(pixels, spec, corruption, level, rng)
}

/// A rotation, zoom, shift and mirror about the picture's centre.
struct Warp {
    cos: f32,
    sin: f32,
    dx: f32,
    dy: f32,
    flip: bool,
    w: usize,
    h: usize,
}

impl Warp {
    /// Where output pixel (x, y) comes from in the source (the inverse map).
    fn source(&self, x: usize, y: usize) -> (f32, f32) {
        let (cx, cy) = ((self.w as f32 - 1.0) / 2.0, (self.h as f32 - 1.0) / 2.0);
        let xo = if self.flip { self.w - 1 - x } else { x } as f32 - cx - self.dx;
        let yo = y as f32 - cy - self.dy;
        (self.cos * xo + self.sin * yo + cx, -self.sin * xo + self.cos * yo + cy)
    }
}

/// Bilinear sample with edge clamping (replicating the border keeps film edges from turning black).
fn bilinear(pixels: &[u8], w: usize, h: usize, c: usize, ch: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| pixels[(yy * w + xx) * c + ch] as f32;
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedside_model::input::Framing;

    fn spec() -> InputSpec {
        InputSpec {
            width: 8,
            height: 6,
            channels: 1,
            framing: Framing::Squash,
            mean: vec![0.0],
            std: vec![1.0],
            intensity: Default::default(),
            mirror_average: false,
        }
    }

    #[test]
    fn no_augmentation_is_plain_normalisation() {
        let pixels: Vec<u8> = (0..48).map(|i| (i * 5) as u8).collect();
        let mut out = vec![0.0; 48];
        Augment::none().apply(&pixels, &spec(), &mut Rng::new(3), &mut out);
        let expected = spec().normalise(&pixels);
        assert!(out.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn mirror_reverses_rows() {
        let pixels: Vec<u8> = (0..48).map(|i| (i % 8 * 30) as u8).collect();
        let mirror = Augment { mirror: true, ..Augment::none() };
        let mut rng = Rng::new(0);
        let mut seen_flip = false;
        for _ in 0..8 {
            let mut out = vec![0.0; 48];
            mirror.apply(&pixels, &spec(), &mut rng, &mut out);
            if out[0] > out[7] {
                seen_flip = true;
                assert!((out[0] - 210.0 / 255.0).abs() < 1e-5 && out[7].abs() < 1e-5);
            }
        }
        assert!(seen_flip, "mirrors about half the time");
    }

    #[test]
    fn the_mask_moves_with_its_picture() {
        // A bright 2×2 block with its mask: after any warp the mask still covers the bright pixels.
        let mask: Vec<u8> =
            (0..48).map(|i| u8::from((2..4).contains(&(i % 8)) && (1..3).contains(&(i / 8)))).collect();
        let pixels: Vec<u8> = mask.iter().map(|&m| m * 250).collect();
        let warp = Augment { mirror: true, ..Augment::standard(true) };
        let mut rng = Rng::new(11);
        for _ in 0..8 {
            let (mut out, mut mask_out) = (vec![0.0; 48], vec![0.0; 48]);
            warp.apply_with_mask(&pixels, &mask, &spec(), &mut rng, &mut out, &mut mask_out);
            let brightest = (0..48).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
            assert!(mask_out[brightest] > 0.5, "{mask_out:?}");
            assert!(mask_out.iter().all(|m| (0.0..=1.0).contains(m)));
        }
    }

    #[test]
    fn shifted_views_differ_and_the_mask_still_follows() {
        let mask: Vec<u8> =
            (0..48).map(|i| u8::from((2..4).contains(&(i % 8)) && (1..3).contains(&(i / 8)))).collect();
        let pixels: Vec<u8> = mask.iter().map(|&m| 40 + m * 200).collect();
        let (plain, shifted) =
            (Augment::standard(false), Augment { shift_share: 1.0, ..Augment::standard(false) });
        let mut changed = 0;
        for seed in 0..40 {
            let (mut a, mut b, mut mask_out) = (vec![0.0; 48], vec![0.0; 48], vec![0.0; 48]);
            plain.apply(&pixels, &spec(), &mut Rng::new(seed), &mut a);
            shifted.apply_with_mask(&pixels, &mask, &spec(), &mut Rng::new(seed), &mut b, &mut mask_out);
            changed += usize::from(a != b);
            let brightest = (0..48).max_by(|&x, &y| b[x].total_cmp(&b[y])).unwrap();
            assert!(mask_out[brightest] > 0.5, "seed {seed}: {mask_out:?}");
        }
        // Only a negligible blur leaves a view as it was.
        assert!(changed >= 30, "{changed} of 40 views shifted");
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            assert_eq!(shift_view(&pixels, &spec(), &mut rng).len(), pixels.len());
        }
    }

    #[test]
    fn noise_is_added_only_when_asked() {
        let flat = vec![128u8; 48];
        let noisy = Augment { noise: 0.1, ..Augment::none() };
        let mut out = vec![0.0; 48];
        noisy.apply(&flat, &spec(), &mut Rng::new(5), &mut out);
        let mean = out.iter().sum::<f32>() / 48.0;
        let sd = (out.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 48.0).sqrt();
        // σ is drawn between 0 and 0.1 of full scale; the spec's std is 1, so values are on 0–1.
        assert!(sd > 0.0 && sd < 0.2, "noise sd {sd}");
        Augment::none().apply(&flat, &spec(), &mut Rng::new(5), &mut out);
        assert!(out.iter().all(|&v| v == 128.0 / 255.0), "no noise unless asked");
    }
}
