//! Attention heat maps: class activation maps (CAM) from the student's last feature map.
//!
//! The student ends in global average pooling → linear, so the logit of class k is the mean over
//! positions of `Σ_c w[c, k] · features[c, y, x]` plus a bias. That per-position sum is the class
//! activation map: it needs no gradients, so the browser computes it in the same forward pass.
//! A heat map shows where the model looked; it is not a segmentation of disease.

use crate::student::Student;
use burn::prelude::*;

impl Student {
    /// Class activation maps `[batch, classes, h, w]` for the head's feature map
    /// `[batch, head_channels, h, w]` (see [`Student::forward_with_features`]). Without the bias,
    /// so the mean over positions plus the classifier's bias is the logit.
    pub fn class_activation_maps(&self, features: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = features.dims();
        let weight = self.classifier.weight.val(); // [head_channels, classes]
        let [_, classes] = weight.dims();
        let per_position = features.reshape([n, c, h * w]).swap_dims(1, 2); // [n, h·w, c]
        per_position.matmul(weight.unsqueeze::<3>()).swap_dims(1, 2).reshape([n, classes, h, w])
    }
}

/// Which per-position evidence a model's heat map draws (`heat_map` in `model.json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeatMapKind {
    /// The predicted class's activation map: where the evidence raising its logit lies.
    #[default]
    Class,
    /// Its activation map less the probability-weighted mean of every class's, `map_c − Σ_k p_k ·
    /// map_k`: each position's first-order share of the log of its calibrated probability. Evidence
    /// that raises every class's logit alike moves no probability and cancels, so the map marks what
    /// sets the predicted class above the others.
    Contrast,
}

impl HeatMapKind {
    pub fn is_class(&self) -> bool {
        *self == HeatMapKind::Class
    }

    /// The raw map of `class` from every class's activation maps (`classes × cells`, row-major
    /// per class) and the calibrated probabilities; before [`HeatMap::from_activation`].
    pub fn evidence(self, maps: &[f32], probabilities: &[f32], class: usize) -> Vec<f32> {
        let cells = maps.len() / probabilities.len().max(1);
        let map = |k: usize| &maps[k * cells..(k + 1) * cells];
        match self {
            HeatMapKind::Class => map(class).to_vec(),
            HeatMapKind::Contrast => {
                let mut own = map(class).to_vec();
                for (k, &p) in probabilities.iter().enumerate() {
                    own.iter_mut().zip(map(k)).for_each(|(v, &m)| *v -= p * m);
                }
                own
            }
        }
    }
}

/// A heat map with values in 0–1 (1 = where the class's evidence is strongest), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
}

impl HeatMap {
    /// One class's raw activation map → a heat map: negative evidence is cut to 0 and the rest
    /// scaled so the strongest position is 1 (all zeros when the class has no positive evidence).
    pub fn from_activation(raw: &[f32], width: u32, height: u32) -> HeatMap {
        assert_eq!(raw.len(), (width * height) as usize, "activation map of {width}×{height}");
        let max = raw.iter().copied().fold(0.0f32, f32::max);
        let values = raw.iter().map(|&v| if max > 0.0 { v.max(0.0) / max } else { 0.0 }).collect();
        HeatMap { width, height, values }
    }

    /// Bilinear resampling to `width × height`, sampling at pixel centres (as image resizers do),
    /// so each cell of a coarse map covers the same area of the picture as it did in the network.
    pub fn resized(&self, width: u32, height: u32) -> HeatMap {
        let (sw, sh) = (self.width as usize, self.height as usize);
        if sw == 0 || sh == 0 || width == 0 || height == 0 {
            return HeatMap { width, height, values: vec![0.0; (width * height) as usize] };
        }
        let axis = |out: u32, src: usize| -> Vec<(usize, usize, f32)> {
            (0..out)
                .map(|i| {
                    let pos = ((i as f32 + 0.5) * src as f32 / out as f32 - 0.5).clamp(0.0, (src - 1) as f32);
                    let lo = pos.floor() as usize;
                    (lo, (lo + 1).min(src - 1), pos - lo as f32)
                })
                .collect()
        };
        let (xs, ys) = (axis(width, sw), axis(height, sh));
        let at = |x: usize, y: usize| self.values[y * sw + x];
        let mut values = Vec::with_capacity(xs.len() * ys.len());
        for &(y0, y1, fy) in &ys {
            for &(x0, x1, fx) in &xs {
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                values.push(top * (1.0 - fy) + bottom * fy);
            }
        }
        HeatMap { width, height, values }
    }

    /// RGBA8 for an overlay: the [`PALETTE`] scale from dark violet (little) through teal to
    /// yellow (most), with alpha rising with the value so weak regions leave the picture visible.
    pub fn to_rgba(&self) -> Vec<u8> {
        self.values
            .iter()
            .flat_map(|&v| {
                let [r, g, b] = colour(v);
                [r, g, b, (v.clamp(0.0, 1.0) * 255.0).round() as u8]
            })
            .collect()
    }
}

/// Viridis (van der Walt and Smith, matplotlib's default) at nine even steps: a sequential scale
/// that reads the same to the colour-blind, in grey print, and rises steadily in lightness, so
/// "more" always looks brighter. The page's legend is drawn from these stops.
pub const PALETTE: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// The overlay's colour at `v` in 0–1: [`PALETTE`], linearly interpolated.
pub fn colour(v: f32) -> [u8; 3] {
    let t = v.clamp(0.0, 1.0) * (PALETTE.len() - 1) as f32;
    let i = (t.floor() as usize).min(PALETTE.len() - 2);
    let f = t - i as f32;
    let mix =
        |k: usize| (f32::from(PALETTE[i][k]) * (1.0 - f) + f32::from(PALETTE[i + 1][k]) * f).round() as u8;
    [mix(0), mix(1), mix(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contrast_map_cancels_evidence_every_class_shares() {
        // Two cells, three classes; cell 1 raises every class's logit by 5.
        let maps = [1.0, 5.0, 0.0, 5.0, 0.0, 5.0];
        let p = [0.5, 0.25, 0.25];
        assert_eq!(HeatMapKind::Class.evidence(&maps, &p, 0), vec![1.0, 5.0]);
        assert_eq!(HeatMapKind::Contrast.evidence(&maps, &p, 0), vec![0.5, 0.0]);
        // Two classes: (1 − p) times the difference of the two maps.
        let (maps, p) = ([2.0, 0.0, 1.0, 3.0], [0.75, 0.25]);
        assert_eq!(HeatMapKind::Contrast.evidence(&maps, &p, 0), vec![0.25, -0.75]);
    }

    #[test]
    fn activation_is_cut_at_zero_and_scaled_to_one() {
        let map = HeatMap::from_activation(&[-2.0, 0.0, 1.0, 4.0], 2, 2);
        assert_eq!(map.values, vec![0.0, 0.0, 0.25, 1.0]);
        let none = HeatMap::from_activation(&[-1.0, -3.0], 2, 1);
        assert_eq!(none.values, vec![0.0, 0.0], "no positive evidence: nothing highlighted");
    }

    #[test]
    fn resizing_keeps_corners_and_interpolates_between() {
        let map = HeatMap { width: 2, height: 1, values: vec![0.0, 1.0] };
        let wide = map.resized(4, 2);
        assert_eq!((wide.width, wide.height, wide.values.len()), (4, 2, 8));
        // Pixel centres 0.5..3.5 of 4 map to source positions -0.25, 0.25, 0.75, 1.25 (clamped).
        assert_eq!(&wide.values[..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&wide.values[..4], &wide.values[4..], "one source row: rows repeat");
    }

    #[test]
    fn colour_scale_is_viridis_rising_in_lightness_and_alpha_follows() {
        assert_eq!(colour(0.0), [68, 1, 84]);
        assert_eq!(colour(0.5), [33, 144, 141]);
        assert_eq!(colour(1.0), [253, 231, 37]);
        assert_eq!(colour(1.0 / 16.0), [70, 23, 103], "halfway between the first two stops");
        // Luma rises monotonically, so the scale also reads in grey.
        let luma = |[r, g, b]: [u8; 3]| 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
        let lumas: Vec<f32> = (0..=20).map(|i| luma(colour(i as f32 / 20.0))).collect();
        assert!(lumas.windows(2).all(|w| w[1] > w[0]), "{lumas:?}");
        let rgba = HeatMap { width: 2, height: 1, values: vec![0.0, 1.0] }.to_rgba();
        assert_eq!(rgba, vec![68, 1, 84, 0, 253, 231, 37, 255]);
    }
}
