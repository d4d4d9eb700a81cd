//! Does the heat map point at what the model uses? Two standard checks on validation images.
//!
//! - **Deletion / insertion.** Pixels are removed (set to the training mean) from the picture in the
//!   heat map's order, hottest first, and the calibrated probability of the predicted class is
//!   followed step by step; the area under that curve is the deletion AUC (lower: the map found the
//!   evidence). Insertion starts from a blurred copy of the picture and puts the sharp pixels back in
//!   the same order (higher is better). Both are compared with the same procedure in a random pixel order.
//! - **Model randomisation** (Adebayo et al., 2018). Maps must change when the weights do: the rank
//!   correlation (Spearman) between each image's map and the map of the same class after
//!   re-initialising the classifier, and after re-initialising the whole network, should be near 0.

use crate::data::Dataset;
use crate::rng::Rng;
use crate::{Error, Progress};
use bedside_model::artifact::ModelInfo;
use bedside_model::heat_map::HeatMap;
use bedside_model::infer::forward_with_maps;
use bedside_model::student::Student;
use burn::prelude::*;
use serde::Serialize;

/// Steps of the deletion and insertion curves (fractions 0, 1/STEPS, …, 1 of the pixels).
pub const STEPS: usize = 16;

/// Seeded random initialisations the randomisation check averages over.
pub const RANDOM_INITS: u64 = 3;

#[derive(Debug, Clone, Serialize)]
pub struct HeatMapCheck {
    pub images: usize,
    pub steps: usize,
    pub deletion_auc: f64,
    pub deletion_auc_random: f64,
    pub insertion_auc: f64,
    pub insertion_auc_random: f64,
    /// Mean Spearman correlation of the class activation maps with those after randomising.
    pub rank_correlation_random_classifier: f64,
    pub rank_correlation_random_network: f64,
}

/// Logits and raw class activation maps of a batch of normalised inputs.
fn run(model: &Student, info: &ModelInfo, inputs: Vec<f32>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, [usize; 2]) {
    let device = Device::flex();
    let (logits, maps) = forward_with_maps(model, &info.input, inputs, &device);
    let [n, classes, h, w] = maps.dims();
    let logits: Vec<f32> = logits.into_data().try_into_vec().expect("f32 logits");
    let maps: Vec<f32> = maps.into_data().try_into_vec().expect("f32 maps");
    let per_image = classes * h * w;
    let logits = logits.chunks(classes).map(<[f32]>::to_vec).collect();
    let maps = maps.chunks(per_image).take(n).map(<[f32]>::to_vec).collect();
    (logits, maps, [h, w])
}

/// Calibrated probability of `class` for every input of a batch.
fn probability_of(model: &Student, info: &ModelInfo, inputs: Vec<f32>, class: usize) -> Vec<f32> {
    let (logits, _, _) = run(model, info, inputs);
    logits.iter().map(|l| info.interpret(l).probabilities[class]).collect()
}

/// Each channel plane box-blurred twice with `radius` (a blurred canvas for insertion: starting
/// from a flat one, any scattered pixels would look like evidence to the network).
fn blurred(x: &[f32], channels: usize, w: usize, h: usize, radius: usize) -> Vec<f32> {
    let blur_line = |line: &mut [f32], buf: &mut Vec<f32>| {
        buf.clear();
        buf.extend_from_slice(line);
        for (i, v) in line.iter_mut().enumerate() {
            let (lo, hi) = (i.saturating_sub(radius), (i + radius).min(buf.len() - 1));
            *v = buf[lo..=hi].iter().sum::<f32>() / (hi - lo + 1) as f32;
        }
    };
    let mut out = x.to_vec();
    let mut buf = Vec::new();
    let mut column = vec![0.0; h];
    for plane in out.chunks_mut(w * h).take(channels) {
        for _ in 0..2 {
            for row in plane.chunks_mut(w) {
                blur_line(row, &mut buf);
            }
            for x in 0..w {
                for y in 0..h {
                    column[y] = plane[y * w + x];
                }
                blur_line(&mut column, &mut buf);
                for y in 0..h {
                    plane[y * w + x] = column[y];
                }
            }
        }
    }
    out
}

/// Mean of a curve sampled at equal steps (trapezoid rule over 0–1).
fn area(curve: &[f32]) -> f64 {
    let n = curve.len() - 1;
    (0..n).map(|i| (curve[i] + curve[i + 1]) as f64 / 2.0).sum::<f64>() / n as f64
}

fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            ranks[k] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation (0 when either side is constant).
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    let (ma, mb) = (mean(&ra), mean(&rb));
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let var = |r: &[f64], m: f64| r.iter().map(|x| (x - m).powi(2)).sum::<f64>();
    let denominator = (var(&ra, ma) * var(&rb, mb)).sqrt();
    if denominator > 0.0 { cov / denominator } else { 0.0 }
}

/// Runs both checks on up to `images` examples of `data` (spread over the set).
pub fn check(
    info: &ModelInfo,
    model: &Student,
    data: &Dataset,
    images: usize,
    progress: &Progress,
) -> Result<HeatMapCheck, Error> {
    let data = data.every_nth(images);
    let spec = &info.input;
    let (c, h, w) = (spec.channels as usize, spec.height as usize, spec.width as usize);
    let plane = h * w;
    let device = Device::flex();
    // Randomised copies from RANDOM_INITS seeded initialisations (one is noisy): a fresh classifier,
    // and a fresh network, both folded like the shipped one.
    let randomised: Vec<[Student; 2]> = (0..RANDOM_INITS)
        .map(|seed| {
            device.seed(seed);
            let fresh = info.network.init(&device).fold_batchnorm();
            let mut random_classifier = model.clone();
            random_classifier.classifier = fresh.classifier.clone();
            [random_classifier, fresh]
        })
        .collect();

    let bar = progress.bar(data.len() as u64, "heat-map checks");
    let mut sums = [0.0f64; 6];
    for (i, example) in data.examples.iter().enumerate() {
        let x = spec.normalise(&example.pixels);
        let canvas = blurred(&x, c, w, h, w.max(h) / 16);
        let (logits, maps, [mh, mw]) = run(model, info, x.clone());
        let class = info.interpret(&logits[0]).label;
        let cells = mh * mw;
        let own = &maps[0][class * cells..(class + 1) * cells];
        // Pixel order: the raw map (negative evidence included, so there are no ties at 0)
        // resampled to the input size, hottest first; and a random order.
        let raw =
            HeatMap { width: mw as u32, height: mh as u32, values: own.to_vec() }.resized(w as u32, h as u32);
        let mut by_heat: Vec<usize> = (0..plane).collect();
        by_heat.sort_by(|&a, &b| raw.values[b].total_cmp(&raw.values[a]));
        // The baseline: a random map of the same coarseness, resampled the same way, so both orders
        // remove smooth blobs (scattered single pixels would look like noise to the network).
        let mut rng = Rng::new(i as u64);
        let noise: Vec<f32> = (0..cells).map(|_| rng.unit()).collect();
        let noise =
            HeatMap { width: mw as u32, height: mh as u32, values: noise }.resized(w as u32, h as u32);
        let mut random: Vec<usize> = (0..plane).collect();
        random.sort_by(|&a, &b| noise.values[b].total_cmp(&noise.values[a]));

        for (o, order) in [&by_heat, &random].into_iter().enumerate() {
            let mut deletion = Vec::with_capacity((STEPS + 1) * x.len());
            let mut insertion = Vec::with_capacity((STEPS + 1) * x.len());
            for step in 0..=STEPS {
                let k = plane * step / STEPS;
                let mut removed = x.clone();
                let mut inserted = canvas.clone();
                for &p in &order[..k] {
                    for ch in 0..c {
                        removed[ch * plane + p] = 0.0;
                        inserted[ch * plane + p] = x[ch * plane + p];
                    }
                }
                deletion.extend(removed);
                insertion.extend(inserted);
            }
            sums[o] += area(&probability_of(model, info, deletion, class));
            sums[2 + o] += area(&probability_of(model, info, insertion, class));
        }
        for pair in &randomised {
            for (r, randomised) in pair.iter().enumerate() {
                let (_, maps, _) = run(randomised, info, x.clone());
                sums[4 + r] +=
                    spearman(own, &maps[0][class * cells..(class + 1) * cells]) / RANDOM_INITS as f64;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = data.len().max(1) as f64;
    Ok(HeatMapCheck {
        images: data.len(),
        steps: STEPS,
        deletion_auc: sums[0] / n,
        deletion_auc_random: sums[1] / n,
        insertion_auc: sums[2] / n,
        insertion_auc_random: sums[3] / n,
        rank_correlation_random_classifier: sums[4] / n,
        rank_correlation_random_network: sums[5] / n,
    })
}

impl HeatMapCheck {
    /// What the numbers say, in plain words (margins: a few hundredths of the curve's range).
    fn reading(&self) -> String {
        let faithful = self.deletion_auc < self.deletion_auc_random - 0.02
            && self.insertion_auc > self.insertion_auc_random + 0.02;
        let mut out = if faithful {
            "Removing the hottest regions first lowers the probability faster than removing a random map's \
             regions, and putting them back first raises it faster: the maps point at evidence the model uses."
                .to_string()
        } else {
            "**On these checks the maps do no better than a random map of the same coarseness**: removing or \
             restoring the hottest regions first does not move the probability clearly faster. Read them \
             as a rough hint of where the model looked, no more."
                .to_string()
        };
        let sensitive = |r: f64| r.abs() < 0.3;
        out += match (
            sensitive(self.rank_correlation_random_classifier),
            sensitive(self.rank_correlation_random_network),
        ) {
            (true, true) => " The maps change when the weights are randomised, as they must.",
            (true, false) => {
                " They change when the classifier is randomised, but a randomly initialised network still gives \
                 similar maps: part of each map is the picture's own structure rather than anything learned."
            }
            (false, _) => {
                " They stay similar when the classifier is randomised: they say little about the class."
            }
        };
        out
    }

    /// The model card's section.
    pub fn card_section(&self) -> String {
        format!(
            "## Heat maps\n\n\
             **A heat map shows where the model looked, not where disease is.** It is the class activation \
             map of the predicted class (the last feature map weighted by that class's head weights), so it \
             marks the regions that pushed the model towards its answer; it is not a segmentation, and a \
             wrong answer comes with a confident-looking map too.\n\n\
             Checked on {n} validation images ({steps} steps per curve):\n\n\
             | check | heat-map order | random-map order |\n|---|---|---|\n\
             | deletion AUC (probability of the predicted class as the hottest pixels are removed; lower is better) | {d:.3} | {dr:.3} |\n\
             | insertion AUC (as they are put back into a blurred copy; higher is better) | {ins:.3} | {ir:.3} |\n\n\
             | model randomisation (maps must change; {inits} seeded initialisations) | mean rank correlation with the shipped maps |\n|---|---|\n\
             | classifier re-initialised | {rc:.3} |\n\
             | whole network re-initialised | {rn:.3} |\n\n\
             {reading}\n\n\
             The random map has the heat map's coarseness (one cell per 32 × 32 pixels), so both orders remove \
             smooth regions. Removed pixels are set to the training mean; insertion starts from the picture box-blurred over \
             1/16 of its size. Measured with `bedside heatmaps --model <this folder>`.\n",
            n = self.images,
            steps = self.steps,
            d = self.deletion_auc,
            dr = self.deletion_auc_random,
            ins = self.insertion_auc,
            ir = self.insertion_auc_random,
            rc = self.rank_correlation_random_classifier,
            rn = self.rank_correlation_random_network,
            reading = self.reading(),
            inits = RANDOM_INITS,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_is_rank_based() {
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 400.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn blurring_keeps_the_mean_of_a_flat_picture_and_smooths_an_edge() {
        let flat = vec![0.5; 16];
        assert!(blurred(&flat, 1, 4, 4, 1).iter().all(|v| (v - 0.5).abs() < 1e-6));
        let edge: Vec<f32> = (0..16).map(|i| if i % 4 < 2 { 0.0 } else { 1.0 }).collect();
        let out = blurred(&edge, 1, 4, 4, 1);
        assert!(out[1] > 0.0 && out[2] < 1.0, "{out:?}");
    }

    #[test]
    fn area_is_the_curve_mean() {
        assert!((area(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((area(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
    }
}
