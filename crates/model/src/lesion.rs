//! Lesion outlines (breast ultrasound, dermatoscopy): a small decoder on the classifier's own
//! feature maps, and what is measured on the mask it draws.
//!
//! The decoder is a feature pyramid: the head's map at 1/32 of the input is merged top-down with the
//! blocks at 1/16, 1/8 and 1/4 ([`crate::student::Architecture::taps`]), and the lesion logits at 1/4 are resampled
//! bilinearly to the input size. It reads the forward pass the diagnosis already made, so an
//! outline costs a few million multiply–accumulates more, and the classifier stays exactly as it was
//! validated: its weights are frozen while the decoder learns from the lesion masks. A decoder is
//! therefore tied to one classifier's weights — [`LesionInfo::classifier_sha256`] names them, and
//! loading it beside other weights is an error.
//!
//! Files: `lesion.json` ([`LesionInfo`]) and `lesion.bin` (int8, the same format as `model.bin`)
//! beside the task's `model.json`.

use crate::student::{ConvBn, ConvShape, StudentConfig};
use crate::task::Task;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The layout version of `lesion.json` / `lesion.bin` this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The decoder's shape: what it reads from the student, and its own width.
#[derive(Config, Debug, PartialEq)]
pub struct LesionConfig {
    /// Channels of the student's taps (1/4, 1/8, 1/16; see [`StudentConfig::tap_channels`]).
    pub taps: Vec<usize>,
    /// Channels of the student's head (1/32).
    pub head: usize,
    /// Channels of every pyramid level.
    #[config(default = 32)]
    pub channels: usize,
}

impl LesionConfig {
    /// The decoder for `student`'s feature maps.
    pub fn for_student(student: &StudentConfig) -> LesionConfig {
        LesionConfig::new(student.tap_channels(), student.head_channels)
    }

    /// The decoder's layers (parameter names follow the fields: `lateral.0.conv.weight`, …,
    /// `out.weight`).
    pub fn layout(&self) -> LesionLayout {
        let c = self.channels;
        LesionLayout {
            // Lateral 1×1 projections: the head first, then the taps from the deepest to the shallowest.
            lateral: std::iter::once(self.head)
                .chain(self.taps.iter().rev().copied())
                .map(|c_in| ConvShape::new([c_in, c], 1))
                .collect(),
            smooth: self
                .taps
                .iter()
                .map(|_| ConvShape { relu6: true, ..ConvShape::new([c, c], 3) })
                .collect(),
            out: ConvShape::new([c, 1], 1),
        }
    }

    pub fn init(&self, device: &Device) -> LesionDecoder {
        let layout = self.layout();
        let conv_bn = |shape: &ConvShape| ConvBn::from_shape(device, shape, 1e-5);
        let lateral = layout.lateral.iter().map(conv_bn).collect();
        let smooth = layout.smooth.iter().map(conv_bn).collect();
        let out = Conv2dConfig::new([layout.out.c_in, layout.out.c_out], [1, 1]).init(device);
        LesionDecoder { lateral, smooth, out }
    }
}

/// The decoder's layers as they are built (see [`ConvShape`]); `out` has a bias and no BatchNorm.
#[derive(Debug, Clone, PartialEq)]
pub struct LesionLayout {
    pub lateral: Vec<ConvShape>,
    pub smooth: Vec<ConvShape>,
    pub out: ConvShape,
}

#[derive(Module, Debug)]
pub struct LesionDecoder {
    pub lateral: Vec<ConvBn>,
    pub smooth: Vec<ConvBn>,
    pub out: Conv2d,
}

/// Nearest-neighbour 2× upsampling, cut to `[h, w]` (a side of 2k+1 at one level is k+1 below it).
fn upsample_to(x: Tensor<4>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [n, c, xh, xw] = x.dims();
    x.reshape([n, c, xh, 1, xw, 1]).repeat_dim(3, 2).repeat_dim(5, 2).reshape([n, c, 2 * xh, 2 * xw]).slice([
        0..n,
        0..c,
        0..h,
        0..w,
    ])
}

/// The `out × src` matrix of bilinear resampling along one axis, sampling at pixel centres (as
/// [`crate::heat_map::HeatMap::resized`] does).
pub fn resample_matrix(out: usize, src: usize) -> Vec<f32> {
    let mut m = vec![0.0; out * src];
    for i in 0..out {
        let pos = ((i as f32 + 0.5) * src as f32 / out as f32 - 0.5).clamp(0.0, (src - 1) as f32);
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(src - 1);
        let f = pos - lo as f32;
        m[i * src + lo] += 1.0 - f;
        m[i * src + hi] += f;
    }
    m
}

impl LesionDecoder {
    /// Lesion logits `[n, 1, h/4, w/4]` from the student's head map and taps
    /// ([`crate::student::Student::forward_with_taps`]).
    pub fn forward_coarse(&self, head: Tensor<4>, taps: &[Tensor<4>]) -> Tensor<4> {
        let mut x = self.lateral[0].forward(head);
        for (i, tap) in taps.iter().rev().enumerate() {
            let [_, _, h, w] = tap.dims();
            let merged = upsample_to(x, [h, w]) + self.lateral[i + 1].forward(tap.clone());
            x = self.smooth[i].forward(merged);
        }
        self.out.forward(x)
    }

    /// Lesion logits `[n, height, width]` at the input size.
    pub fn forward(&self, head: Tensor<4>, taps: &[Tensor<4>], [height, width]: [usize; 2]) -> Tensor<3> {
        let coarse = self.forward_coarse(head, taps);
        let [n, _, h, w] = coarse.dims();
        let device = coarse.device();
        let rows = Tensor::<2>::from_data(TensorData::new(resample_matrix(height, h), [height, h]), &device);
        let cols = Tensor::<2>::from_data(TensorData::new(resample_matrix(width, w), [width, w]), &device);
        let rows = rows.unsqueeze::<3>().repeat_dim(0, n);
        let cols = cols.transpose().unsqueeze::<3>().repeat_dim(0, n);
        rows.matmul(coarse.reshape([n, h, w])).matmul(cols)
    }

    /// Multiply–accumulates for one `height × width` input (convolutions and the final bilinear
    /// resampling; BatchNorm assumed folded), to set beside [`crate::student::Student::macs`].
    pub fn macs(&self, height: usize, width: usize) -> u64 {
        let conv = |c: &Conv2d, side: (usize, usize)| {
            let [c_out, c_in, kh, kw] = c.weight.dims();
            (side.0 * side.1 * c_out * c_in * kh * kw) as u64
        };
        // Level sides: 1/32 for the head, then 1/16, 1/8 and 1/4 (⌈side / stride⌉, as the student).
        let at = |stride: usize| (height.div_ceil(stride), width.div_ceil(stride));
        let mut total = conv(&self.lateral[0].conv, at(32));
        for (i, stride) in [16, 8, 4].into_iter().enumerate().take(self.smooth.len()) {
            total += conv(&self.lateral[i + 1].conv, at(stride)) + conv(&self.smooth[i].conv, at(stride));
        }
        let (h4, w4) = at(4);
        total += conv(&self.out, (h4, w4));
        // Rows then columns of the resampling matmuls.
        total + (height * h4 * w4 + height * w4 * width) as u64
    }

    /// The same decoder with every BatchNorm folded into its convolution.
    pub fn fold_batchnorm(self) -> Self {
        LesionDecoder {
            lateral: self.lateral.into_iter().map(ConvBn::fold).collect(),
            smooth: self.smooth.into_iter().map(ConvBn::fold).collect(),
            out: self.out,
        }
    }
}

/// `lesion.json`: what a lesion decoder is and how to use its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionInfo {
    pub format_version: u32,
    pub task: Task,
    pub decoder: LesionConfig,
    /// SHA-256 (hex) of the `model.bin` whose feature maps the decoder was trained on.
    pub classifier_sha256: String,
    /// A pixel is inside the lesion where its probability is at least this.
    pub threshold: f32,
    /// Free-form card data (training, validation Dice and IoU, the command).
    #[serde(default)]
    pub card: serde_json::Value,
}

/// Why a lesion decoder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LesionError {
    #[error("lesion.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("lesion.json has format version {found}; this build reads version {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error(
        "lesion.json was trained on the features of another classifier (sha256 {expected}, but model.bin \
         is {found}): retrain it with `bedside lesion --model <folder>`"
    )]
    OtherClassifier { expected: String, found: String },
    #[error("lesion.json reads {what} the classifier does not have ({rule})")]
    Shape { what: &'static str, rule: String },
    #[error("the lesion weights do not fit lesion.json: {0}")]
    WeightsDoNotFit(#[source] burn::store::RecordError),
    #[error("{0}")]
    Weights(String),
}

/// SHA-256 of a weights file, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl LesionInfo {
    /// Parses `lesion.json` and checks it against the classifier it will read: the same weights
    /// (`classifier_sha256`, of the task's `model.bin`; see [`sha256_hex`]) and the network's widths.
    pub fn from_json(
        text: &str,
        network: &StudentConfig,
        classifier_sha256: &str,
    ) -> Result<LesionInfo, LesionError> {
        let info: LesionInfo = serde_json::from_str(text)?;
        if info.format_version != FORMAT_VERSION {
            return Err(LesionError::Version { found: info.format_version });
        }
        let found = classifier_sha256.to_string();
        if found != info.classifier_sha256 {
            return Err(LesionError::OtherClassifier { expected: info.classifier_sha256, found });
        }
        let expected = LesionConfig::for_student(network);
        if (info.decoder.taps.clone(), info.decoder.head) != (expected.taps.clone(), expected.head) {
            let rule = format!("the network's taps are {:?} and its head {}", expected.taps, expected.head);
            return Err(LesionError::Shape { what: "feature maps", rule });
        }
        if !(info.threshold > 0.0 && info.threshold < 1.0 && (1..=512).contains(&info.decoder.channels)) {
            let rule = "threshold in (0, 1), 1–512 channels".to_string();
            return Err(LesionError::Shape { what: "a threshold or width", rule });
        }
        Ok(info)
    }
}

/// Serialises a trained decoder (BatchNorm folded here) into fp32 burnpack bytes.
pub fn decoder_to_bytes(decoder: LesionDecoder) -> Result<Vec<u8>, LesionError> {
    let bytes = decoder
        .fold_batchnorm()
        .into_record()
        .into_bytes()
        .map_err(|e| LesionError::Weights(format!("could not serialise the lesion weights: {e}")))?;
    Ok(bytes.to_vec())
}

/// Loads `lesion.bin` (int8) or fp32 bytes into the decoder `config` describes, folded.
pub fn decoder_from_bytes(
    config: &LesionConfig,
    bytes: Vec<u8>,
    device: &Device,
) -> Result<LesionDecoder, LesionError> {
    let bytes = if crate::quant::is_int8(&bytes) {
        let weights = crate::quant::to_fp32(bytes).map_err(|e| LesionError::Weights(e.to_string()))?;
        crate::quant::write_fp32(&weights).map_err(|e| LesionError::Weights(e.to_string()))?
    } else {
        bytes
    };
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| LesionError::Weights(format!("the lesion weights are not a burnpack: {e}")))?
        .cast_to_module_dtype();
    config
        .init(device)
        .fold_batchnorm()
        .try_load_record(record)
        .map_err(LesionError::WeightsDoNotFit)
        .map(|m| m.valid())
}

/// A lesion mask, 1 inside and 0 outside, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub width: u32,
    pub height: u32,
    pub values: Vec<u8>,
}

impl Mask {
    /// Pixels at or above `threshold` of sigmoid(`logits`).
    pub fn from_logits(logits: &[f32], width: u32, height: u32, threshold: f32) -> Mask {
        let cut = (threshold / (1.0 - threshold)).ln();
        Mask { width, height, values: logits.iter().map(|&l| u8::from(l >= cut)).collect() }
    }

    /// The outline the page draws from lesion logits: pixels at or above `threshold`, the largest
    /// region only, its holes filled (a lesion is one solid region; see [`Mask::largest_component`]
    /// and [`Mask::filled`]).
    pub fn drawn(logits: &[f32], width: u32, height: u32, threshold: f32) -> Mask {
        Mask::from_logits(logits, width, height, threshold).largest_component().filled()
    }

    /// With every hole filled: outside pixels that cannot reach the picture's edge become inside.
    pub fn filled(&self) -> Mask {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut outside = vec![false; w * h];
        let mut stack: Vec<usize> = (0..w * h)
            .filter(|&p| {
                let (x, y) = (p % w, p / w);
                (x == 0 || y == 0 || x + 1 == w || y + 1 == h) && self.values[p] == 0
            })
            .collect();
        for &p in &stack {
            outside[p] = true;
        }
        while let Some(p) = stack.pop() {
            for q in neighbours(p, w, h) {
                if self.values[q] == 0 && !outside[q] {
                    outside[q] = true;
                    stack.push(q);
                }
            }
        }
        Mask {
            width: self.width,
            height: self.height,
            values: outside.iter().map(|&o| u8::from(!o)).collect(),
        }
    }

    pub fn area(&self) -> usize {
        self.values.iter().filter(|&&v| v > 0).count()
    }

    /// Only the largest 4-connected region (one lesion per picture, as the training outlines
    /// almost always have; specks elsewhere are noise).
    pub fn largest_component(&self) -> Mask {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut label = vec![0u32; w * h];
        let (mut best, mut best_size, mut next) = (0u32, 0usize, 0u32);
        let mut stack = Vec::new();
        for start in 0..w * h {
            if self.values[start] == 0 || label[start] != 0 {
                continue;
            }
            next += 1;
            let mut size = 0;
            label[start] = next;
            stack.push(start);
            while let Some(p) = stack.pop() {
                size += 1;
                for q in neighbours(p, w, h) {
                    if self.values[q] != 0 && label[q] == 0 {
                        label[q] = next;
                        stack.push(q);
                    }
                }
            }
            if size > best_size {
                (best, best_size) = (next, size);
            }
        }
        let values = label.iter().map(|&l| u8::from(l != 0 && l == best)).collect();
        Mask { width: self.width, height: self.height, values }
    }

    /// Inside pixels with a 4-neighbour outside (or on the picture's edge): the outline to draw.
    pub fn boundary(&self) -> Vec<(u32, u32)> {
        let (w, h) = (self.width as usize, self.height as usize);
        let inside = |x: isize, y: isize| {
            x >= 0
                && y >= 0
                && (x as usize) < w
                && (y as usize) < h
                && self.values[y as usize * w + x as usize] > 0
        };
        let mut out = Vec::new();
        for y in 0..h as isize {
            for x in 0..w as isize {
                if inside(x, y)
                    && [(-1, 0), (1, 0), (0, -1), (0, 1)].iter().any(|(dx, dy)| !inside(x + dx, y + dy))
                {
                    out.push((x as u32, y as u32));
                }
            }
        }
        out
    }

    /// Area and longest diameter (the largest distance between two outline pixels' centres), in
    /// pixels, or in millimetres when `spacing` (row spacing, column spacing in mm) is known.
    pub fn measure(&self, spacing: Option<[f64; 2]>) -> Measurement {
        self.measure_scaled([1.0, 1.0], spacing)
    }

    /// [`Mask::measure`] of a mask drawn on a coarser grid than the picture: each mask pixel is
    /// `scale` (rows, columns) picture pixels, so the figures are in picture pixels (or mm).
    pub fn measure_scaled(&self, scale: [f64; 2], spacing: Option<[f64; 2]>) -> Measurement {
        let [sy, sx] = spacing.unwrap_or([1.0, 1.0]);
        let [sy, sx] = [sy * scale[0], sx * scale[1]];
        // The farthest pair lies on the convex hull, which has far fewer points than the outline.
        let points: Vec<(f64, f64)> =
            self.boundary().into_iter().map(|(x, y)| (f64::from(x) * sx, f64::from(y) * sy)).collect();
        let hull = convex_hull(points);
        let mut longest = 0.0f64;
        for (i, &(x0, y0)) in hull.iter().enumerate() {
            for &(x1, y1) in &hull[i + 1..] {
                longest = longest.max((x1 - x0).hypot(y1 - y0));
            }
        }
        Measurement {
            area: self.area() as f64 * sx * sy,
            longest_diameter: longest,
            units: if spacing.is_some() { "mm" } else { "px" },
        }
    }
}

/// The 4-neighbours of pixel `p` of a `w × h` row-major grid that lie inside it.
fn neighbours(p: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    let (x, y) = (p % w, p / w);
    [(x > 0).then(|| p - 1), (x + 1 < w).then(|| p + 1), (y > 0).then(|| p - w), (y + 1 < h).then(|| p + w)]
        .into_iter()
        .flatten()
}

/// Andrew's monotone chain: the convex hull's corners (collinear points dropped).
fn convex_hull(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let cross =
        |o: (f64, f64), a: (f64, f64), b: (f64, f64)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(2 * points.len());
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Box<dyn Iterator<Item = &(f64, f64)>> =
            if pass == 0 { Box::new(points.iter()) } else { Box::new(points.iter().rev()) };
        for &p in ordered {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// What the page and `bedside predict` report of a lesion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// mm² or px².
    pub area: f64,
    pub longest_diameter: f64,
    /// `"mm"` or `"px"`.
    pub units: &'static str,
}

/// Dice coefficient and IoU of two masks of one size (both 1 when both are empty).
pub fn overlap(predicted: &[u8], truth: &[u8]) -> (f64, f64) {
    let (mut both, mut p, mut t) = (0usize, 0usize, 0usize);
    for (&a, &b) in predicted.iter().zip(truth) {
        let (a, b) = (a > 0, b > 0);
        both += usize::from(a && b);
        p += usize::from(a);
        t += usize::from(b);
    }
    if p + t == 0 {
        return (1.0, 1.0);
    }
    (2.0 * both as f64 / (p + t) as f64, both as f64 / (p + t - both) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(w: u32, h: u32, inside: impl Fn(u32, u32) -> bool) -> Mask {
        let values =
            (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| u8::from(inside(x, y))).collect();
        Mask { width: w, height: h, values }
    }

    #[test]
    fn the_largest_region_is_kept() {
        // A 3×3 block and a separate speck.
        let m = mask(8, 8, |x, y| (x < 3 && y < 3) || (x == 6 && y == 6));
        let kept = m.largest_component();
        assert_eq!(kept.area(), 9);
        assert_eq!(kept.values[6 * 8 + 6], 0);
        assert_eq!(mask(4, 4, |_, _| false).largest_component().area(), 0);
    }

    #[test]
    fn holes_are_filled_and_open_bays_are_not() {
        // A ring (hole in the middle) and a U open at the top edge.
        let ring = mask(7, 7, |x, y| (1..6).contains(&x) && (1..6).contains(&y) && !(x == 3 && y == 3));
        assert_eq!(ring.filled().area(), 25);
        let u = mask(5, 5, |x, y| (x == 1 || x == 3 || y == 3) && (1..4).contains(&x) && y <= 3);
        assert_eq!(u.filled(), u, "the bay reaches the edge: not a hole");
        let drawn = Mask::drawn(&[5.0, 5.0, 5.0, 5.0, -5.0, 5.0, 5.0, 5.0, 5.0], 3, 3, 0.5);
        assert_eq!(drawn.area(), 9);
    }

    #[test]
    fn measurements_in_pixels_and_millimetres() {
        // A 4 × 3 rectangle: area 12, diagonal between the corner pixels' centres √(3² + 2²).
        let m = mask(10, 10, |x, y| (2..6).contains(&x) && (5..8).contains(&y));
        let px = m.measure(None);
        assert_eq!((px.area, px.units), (12.0, "px"));
        assert!((px.longest_diameter - 13f64.sqrt()).abs() < 1e-9);
        // Rows 0.5 mm apart, columns 0.2 mm.
        let mm = m.measure(Some([0.5, 0.2]));
        assert_eq!(mm.units, "mm");
        assert!((mm.area - 12.0 * 0.1).abs() < 1e-9);
        assert!((mm.longest_diameter - (0.6f64.powi(2) + 1.0f64.powi(2)).sqrt()).abs() < 1e-9);
        assert_eq!(m.boundary().len(), 10, "a 4 × 3 block has 2 inner pixels");
    }

    #[test]
    fn the_longest_diameter_of_a_disc_is_its_width() {
        let disc = mask(101, 101, |x, y| (f64::from(x) - 50.0).hypot(f64::from(y) - 50.0) <= 40.0);
        let d = disc.measure(None).longest_diameter;
        assert!((79.0..=81.0).contains(&d), "{d}");
        assert_eq!(convex_hull(vec![(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (1.0, 0.2)]).len(), 3);
    }

    #[test]
    fn dice_and_iou() {
        assert_eq!(overlap(&[1, 1, 0, 0], &[1, 0, 0, 0]), (2.0 / 3.0, 0.5));
        assert_eq!(overlap(&[0, 0], &[0, 0]), (1.0, 1.0));
        assert_eq!(overlap(&[1, 0], &[0, 1]), (0.0, 0.0));
    }

    #[test]
    fn a_probability_threshold_on_logits() {
        let m = Mask::from_logits(&[-1.0, 0.0, 0.5, 3.0], 4, 1, 0.5);
        assert_eq!(m.values, vec![0, 1, 1, 1]);
        let strict = Mask::from_logits(&[-1.0, 0.0, 0.5, 3.0], 4, 1, 0.9);
        assert_eq!(strict.values, vec![0, 0, 0, 1]);
    }

    #[test]
    fn resampling_rows_sum_to_one_and_keep_a_constant() {
        for (out, src) in [(128, 32), (96, 24), (5, 3), (3, 5)] {
            let m = resample_matrix(out, src);
            for row in m.chunks(src) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
    }

    /// The shipped breast decoder loads beside the shipped classifier, and only beside it.
    #[test]
    fn a_decoder_is_tied_to_its_classifier() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/breast");
        let info =
            crate::artifact::ModelInfo::from_json(&std::fs::read_to_string(dir.join("model.json")).unwrap())
                .unwrap();
        let text = std::fs::read_to_string(dir.join("lesion.json")).unwrap();
        let sha = sha256_hex(&std::fs::read(dir.join("model.bin")).unwrap());
        let lesion = LesionInfo::from_json(&text, &info.network, &sha).unwrap();
        let decoder = decoder_from_bytes(
            &lesion.decoder,
            std::fs::read(dir.join("lesion.bin")).unwrap(),
            &Device::flex(),
        );
        assert!(decoder.is_ok(), "{:?}", decoder.err());
        let fp32 = sha256_hex(&std::fs::read(dir.join("model-fp32.bin")).unwrap());
        let err = LesionInfo::from_json(&text, &info.network, &fp32).unwrap_err();
        assert!(matches!(err, LesionError::OtherClassifier { .. }), "{err}");
        assert!(err.to_string().contains("retrain it with `bedside lesion"), "{err}");
        let narrower = StudentConfig { width: 0.35, ..info.network.clone() };
        assert!(matches!(LesionInfo::from_json(&text, &narrower, &sha), Err(LesionError::Shape { .. })));
        let garbage = decoder_from_bytes(&lesion.decoder, vec![1, 2, 3], &Device::flex());
        assert!(garbage.is_err());
    }

    #[test]
    fn the_decoder_maps_student_features_to_input_sized_logits() {
        let device = Device::flex();
        let student = StudentConfig::new(3).init(&device);
        let decoder = LesionConfig::for_student(&StudentConfig::new(3)).init(&device);
        let x = Tensor::<4>::zeros([2, 1, 96, 128], &device);
        let (_, head, taps) = student.forward_with_taps(x);
        assert_eq!(taps.len(), 3);
        let logits = decoder.forward(head, &taps, [96, 128]);
        assert_eq!(logits.dims(), [2, 96, 128]);
        // Less than the classifier's own work (at 32 channels; the cards give the shipped ratios).
        let (decoder, student) = (decoder.macs(96, 128), student.macs(96, 128));
        assert!(decoder > 1_000_000 && decoder < student, "{decoder} vs {student}");
    }
}
