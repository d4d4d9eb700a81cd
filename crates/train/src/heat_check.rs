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
use crate::metrics::{Estimate, grouped_mean};
use crate::rng::Rng;
use crate::{Error, Progress};
use bedside_model::artifact::ModelInfo;
use bedside_model::heat_map::{HeatMap, HeatMapKind};
use bedside_model::infer::forward_with_maps;
use bedside_model::student::Student;
use burn::prelude::*;
use serde::Serialize;

/// Steps of the deletion and insertion curves (fractions 0, 1/STEPS, …, 1 of the pixels).
pub const STEPS: usize = 16;

/// Seeded random initialisations the randomisation check averages over.
pub const RANDOM_INITS: u64 = 3;

/// Bootstrap resamples of the grouped intervals.
const RESAMPLES: usize = 1000;

/// The pointing game's tolerance: a peak this share of the input's longer side from the lesion
/// still counts as a hit.
pub const POINTING_TOLERANCE: f64 = 0.05;

/// One measure of the heat map beside the same measure of two baselines that know nothing of the
/// picture: a random map of the heat map's coarseness and a centre prior (a Gaussian at the centre,
/// σ a quarter of each side — strong where lesions are photographed in the middle). Each with a 95 %
/// interval from resampling whole groups (patient, lesion, cluster), and the paired differences.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Compared {
    pub heat_map: Estimate,
    pub random: Estimate,
    pub centre: Estimate,
    pub heat_map_minus_random: Estimate,
    pub heat_map_minus_centre: Estimate,
}

impl Compared {
    /// Per-image values of the heat map and the two baselines (in that order), with each image's group.
    fn of(values: &[[f64; 3]], groups: &[&str]) -> Compared {
        let column = |k: usize| values.iter().map(|v| v[k]).collect::<Vec<_>>();
        let difference = |k: usize| values.iter().map(|v| v[0] - v[k]).collect::<Vec<_>>();
        Compared {
            heat_map: grouped_mean(&column(0), groups, RESAMPLES),
            random: grouped_mean(&column(1), groups, RESAMPLES),
            centre: grouped_mean(&column(2), groups, RESAMPLES),
            heat_map_minus_random: grouped_mean(&difference(1), groups, RESAMPLES),
            heat_map_minus_centre: grouped_mean(&difference(2), groups, RESAMPLES),
        }
    }

    /// Whether the heat map beats both baselines by a margin the intervals show (`higher`: higher
    /// is better).
    fn beats_both(&self, higher: bool) -> bool {
        let clear = |d: &Estimate| if higher { d.low > 0.0 } else { d.high < 0.0 };
        clear(&self.heat_map_minus_random) && clear(&self.heat_map_minus_centre)
    }
}

/// Does the map point at the lesion? Measured against the authors' delineations, on validation
/// images that have a lesion.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Localisation {
    /// Validation images with a non-empty lesion mask.
    pub images: usize,
    /// Lesion area as a share of the model's view: what a uniform map puts inside.
    pub lesion_share: Estimate,
    /// Share of images whose heat-map peak lies in the lesion, or within
    /// [`POINTING_TOLERANCE`] of the longer side from it.
    pub pointing_game: Compared,
    /// Share of the heat map's mass (as drawn: negative evidence cut to 0) inside the lesion.
    pub mass_in_lesion: Compared,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HeatMapCheck {
    /// The map measured (the model's `heat_map`).
    #[serde(default)]
    pub kind: HeatMapKind,
    /// Images of the deletion / insertion and randomisation checks.
    pub images: usize,
    pub steps: usize,
    /// Probability of the predicted class as the hottest pixels are removed (lower is better).
    pub deletion_auc: Compared,
    /// Probability as the hottest pixels are put back into a blurred copy (higher is better).
    pub insertion_auc: Compared,
    /// Mean Spearman correlation of the class activation maps with those after randomising.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub rank_correlation_random_classifier: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub rank_correlation_random_network: f64,
    /// Against lesion masks, where the task has them.
    pub localisation: Option<Localisation>,
}

/// The two baseline maps of an image at the input size: a random map of `cells_w × cells_h` cells
/// (seeded by `seed`) resampled like a heat map, and the centre prior.
fn baselines(cells_w: u32, cells_h: u32, w: u32, h: u32, seed: u64) -> [HeatMap; 2] {
    let mut rng = Rng::new(seed);
    let noise: Vec<f32> = (0..cells_w * cells_h).map(|_| rng.unit()).collect();
    let random = HeatMap { width: cells_w, height: cells_h, values: noise }.resized(w, h);
    let (sx, sy) = (w as f32 / 4.0, h as f32 / 4.0);
    let centre = (0..h)
        .flat_map(|y| {
            (0..w).map(move |x| {
                let dx = (x as f32 + 0.5 - w as f32 / 2.0) / sx;
                let dy = (y as f32 + 0.5 - h as f32 / 2.0) / sy;
                (-(dx * dx + dy * dy) / 2.0).exp()
            })
        })
        .collect();
    [random, HeatMap { width: w, height: h, values: centre }]
}

/// Pixel indices, hottest first.
fn order(map: &HeatMap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..map.values.len()).collect();
    order.sort_by(|&a, &b| map.values[b].total_cmp(&map.values[a]));
    order
}

/// Whether `map`'s peak lies within `tolerance` pixels of a lesion pixel of `mask` (same size).
pub fn pointing_hit(map: &HeatMap, mask: &[u8], tolerance: f64) -> bool {
    let (w, h) = (map.width as i64, map.height as i64);
    let peak = order(map)[0] as i64;
    let (px, py) = (peak % w, peak / w);
    let r = tolerance.floor() as i64;
    (py - r..=py + r).filter(|y| (0..h).contains(y)).any(|y| {
        (px - r..=px + r).filter(|x| (0..w).contains(x)).any(|x| {
            let d2 = ((x - px).pow(2) + (y - py).pow(2)) as f64;
            d2 <= tolerance * tolerance && mask[(y * w + x) as usize] > 0
        })
    })
}

/// Share of `map`'s mass (negative values cut to 0) inside `mask`; 0 for an all-zero map.
pub fn mass_in(map: &HeatMap, mask: &[u8]) -> f64 {
    let (inside, total) = map.values.iter().zip(mask).fold((0.0, 0.0), |(i, t), (&v, &m)| {
        let v = f64::from(v.max(0.0));
        (if m > 0 { i + v } else { i }, t + v)
    });
    if total > 0.0 { inside / total } else { 0.0 }
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

/// The predicted class and its raw activation map at the input size, for a batch of one input.
fn own_map(model: &Student, info: &ModelInfo, x: Vec<f32>) -> (usize, Vec<f32>, HeatMap, [u32; 2]) {
    let (logits, maps, [mh, mw]) = run(model, info, x);
    let prediction = info.interpret(&logits[0]);
    let class = prediction.label;
    let own = info.heat_map.evidence(&maps[0], &prediction.probabilities, class);
    let raw = HeatMap { width: mw as u32, height: mh as u32, values: own.clone() }
        .resized(info.input.width, info.input.height);
    (class, own, raw, [mw as u32, mh as u32])
}

/// Pointing game and mass-in-lesion on every example of `data` whose mask (`masks`, in the same
/// order) has a lesion; `None` when no example has one.
fn localise(
    info: &ModelInfo,
    model: &Student,
    data: &Dataset,
    masks: &[Vec<u8>],
    progress: &Progress,
) -> Option<Localisation> {
    let spec = &info.input;
    let (w, h) = (spec.width, spec.height);
    let tolerance = POINTING_TOLERANCE * f64::from(w.max(h));
    let with_lesion: Vec<usize> = (0..data.len()).filter(|&i| masks[i].iter().any(|&m| m > 0)).collect();
    if with_lesion.is_empty() {
        return None;
    }
    let bar = progress.bar(with_lesion.len() as u64, "pointing game");
    let (mut pointing, mut mass, mut share, mut groups) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in &with_lesion {
        let (example, mask) = (&data.examples[i], &masks[i]);
        let (_, own, raw, [mw, mh]) = own_map(model, info, spec.normalise(&example.pixels));
        // As drawn: negative evidence cut to 0, scaled, resampled.
        let drawn = HeatMap::from_activation(&own, mw, mh).resized(w, h);
        let [random, centre] = baselines(mw, mh, w, h, i as u64);
        pointing
            .push([&raw, &random, &centre].map(|m| f64::from(u8::from(pointing_hit(m, mask, tolerance)))));
        mass.push([&drawn, &random, &centre].map(|m| mass_in(m, mask)));
        share.push(mask.iter().filter(|&&m| m > 0).count() as f64 / mask.len() as f64);
        groups.push(example.group.as_str());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Some(Localisation {
        images: with_lesion.len(),
        lesion_share: grouped_mean(&share, &groups, RESAMPLES),
        pointing_game: Compared::of(&pointing, &groups),
        mass_in_lesion: Compared::of(&mass, &groups),
    })
}

/// Deletion / insertion and the randomisation check on up to `images` examples of `data` (spread
/// over the set); the pointing game and mass-in-lesion on every example with a lesion in `masks`
/// (the examples' masks in order, where the task has them).
pub fn check(
    info: &ModelInfo,
    model: &Student,
    data: &Dataset,
    masks: Option<&[Vec<u8>]>,
    images: usize,
    progress: &Progress,
) -> Result<HeatMapCheck, Error> {
    if let Some(masks) = masks {
        assert_eq!(masks.len(), data.len(), "one mask per example");
    }
    let localisation = masks.and_then(|masks| localise(info, model, data, masks, progress));
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

    let bar = progress.bar(data.len() as u64, "deletion and insertion");
    let (mut deletion, mut insertion, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    let mut correlations = [0.0f64; 2];
    for (i, example) in data.examples.iter().enumerate() {
        let x = spec.normalise(&example.pixels);
        let canvas = blurred(&x, c, w, h, w.max(h) / 16);
        // Pixel order: the raw map (negative evidence included, so there are no ties at 0)
        // resampled to the input size, hottest first. The random map has the same coarseness and
        // is resampled the same way, so every order removes smooth blobs (scattered single pixels
        // would look like noise to the network).
        let (class, own, raw, [mw, mh]) = own_map(model, info, x.clone());
        let [random, centre] = baselines(mw, mh, w as u32, h as u32, i as u64);
        let (mut del, mut ins) = ([0.0; 3], [0.0; 3]);
        for (o, map) in [&raw, &random, &centre].into_iter().enumerate() {
            let order = order(map);
            let mut removed_steps = Vec::with_capacity((STEPS + 1) * x.len());
            let mut inserted_steps = Vec::with_capacity((STEPS + 1) * x.len());
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
                removed_steps.extend(removed);
                inserted_steps.extend(inserted);
            }
            del[o] = area(&probability_of(model, info, removed_steps, class));
            ins[o] = area(&probability_of(model, info, inserted_steps, class));
        }
        deletion.push(del);
        insertion.push(ins);
        groups.push(example.group.as_str());
        for pair in &randomised {
            for (r, randomised) in pair.iter().enumerate() {
                // The same class's map, drawn as the model draws it, from the randomised weights.
                let (logits, maps, _) = run(randomised, info, x.clone());
                let probabilities = info.interpret(&logits[0]).probabilities;
                let theirs = info.heat_map.evidence(&maps[0], &probabilities, class);
                correlations[r] += spearman(&own, &theirs) / RANDOM_INITS as f64;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = data.len().max(1) as f64;
    Ok(HeatMapCheck {
        kind: info.heat_map,
        images: data.len(),
        steps: STEPS,
        deletion_auc: Compared::of(&deletion, &groups),
        insertion_auc: Compared::of(&insertion, &groups),
        rank_correlation_random_classifier: correlations[0] / n,
        rank_correlation_random_network: correlations[1] / n,
        localisation,
    })
}

/// `0.123 (0.100–0.150)`.
fn cell(e: &Estimate) -> String {
    format!("{:.3} ({:.3}–{:.3})", e.value, e.low, e.high)
}

/// A table row: the heat map, both baselines and the two differences.
fn row(what: &str, c: &Compared) -> String {
    format!(
        "| {what} | {} | {} | {} | {} | {} |\n",
        cell(&c.heat_map),
        cell(&c.random),
        cell(&c.centre),
        cell(&c.heat_map_minus_random),
        cell(&c.heat_map_minus_centre)
    )
}

impl HeatMapCheck {
    /// What the numbers say, in plain words: a claim only where the grouped intervals of the
    /// differences exclude 0.
    fn reading(&self) -> String {
        let faithful = self.deletion_auc.beats_both(false) && self.insertion_auc.beats_both(true);
        let mut out = if faithful {
            "Removing the hottest regions first lowers the probability faster than removing a random map's \
             or the centre prior's regions, and putting them back first raises it faster: the maps point at \
             evidence the model uses."
                .to_string()
        } else {
            "**On deletion and insertion the maps do not beat both baselines by a margin the intervals \
             show**: removing or restoring the hottest regions first does not clearly move the probability \
             faster than a map that knows nothing of the picture. Read them as a rough hint of where the \
             model looked, no more."
                .to_string()
        };
        if let Some(l) = &self.localisation {
            out += if l.pointing_game.beats_both(true) && l.mass_in_lesion.beats_both(true) {
                " Against the lesion outlines, the maps' peaks and mass fall in the lesion more often than \
                 either baseline's."
            } else {
                " **Against the lesion outlines, the maps do not clearly beat both baselines** (see the \
                 differences): they do not show where the lesion is."
            };
        }
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

    /// The model card's section; `command` measured it.
    pub fn card_section(&self, command: &str) -> String {
        let header = "| check | heat map | random map | centre prior | heat map − random | heat map − centre |\n\
                      |---|---|---|---|---|---|\n";
        let what = match self.kind {
            HeatMapKind::Class => ", so it marks the regions that pushed the model towards its answer",
            HeatMapKind::Contrast => {
                " less the mean of every class's map weighted by its probability: evidence that raises every \
                 class alike changes no probability and cancels, so it marks the regions that pushed the model \
                 towards its answer rather than another"
            }
        };
        let mut out = format!(
            "## Heat maps\n\n\
             **A heat map shows where the model looked, not where disease is.** It is the class activation \
             map of the predicted class (the last feature map weighted by that class's head weights){what}; \
             it is not a segmentation, and a wrong answer comes with a confident-looking map too.\n\n\
             Each measure is compared with two maps that know nothing of the picture: a random map of the \
             heat map's coarseness and a centre prior (a Gaussian at the centre, σ a quarter of each side). \
             Means over validation images with 95 % intervals from resampling whole groups (patient, lesion \
             or near-duplicate cluster, as the split keeps them together).\n\n\
             Deletion and insertion on {n} validation images ({steps} steps per curve):\n\n{header}{del}{ins}\n",
            n = self.images,
            steps = self.steps,
            del = row(
                "deletion AUC (probability of the predicted class as the hottest pixels are removed; lower is better)",
                &self.deletion_auc
            ),
            ins = row(
                "insertion AUC (as they are put back into a blurred copy; higher is better)",
                &self.insertion_auc
            ),
        );
        if let Some(l) = &self.localisation {
            out += &format!(
                "Against the authors' lesion outlines, on the {n} validation images with a lesion (the lesion \
                 covers {share} of the model's view on average):\n\n{header}{point}{mass}\n\
                 The pointing game counts a hit when the map's hottest point lies in the lesion or within \
                 {tol:.0} % of the picture's longer side of it; mass in lesion is the share of the map, as \
                 drawn, inside the outline.\n\n",
                n = l.images,
                share = cell(&l.lesion_share),
                point = row("pointing game (higher is better)", &l.pointing_game),
                mass = row("mass in lesion (higher is better)", &l.mass_in_lesion),
                tol = POINTING_TOLERANCE * 100.0,
            );
        }
        out += &format!(
            "| model randomisation (maps must change; {inits} seeded initialisations) | mean rank correlation with the shipped maps |\n|---|---|\n\
             | classifier re-initialised | {rc:.3} |\n\
             | whole network re-initialised | {rn:.3} |\n\n\
             {reading}\n\n\
             The heat map has one cell per 32 × 32 input pixels, drawn smooth by bilinear resampling; the \
             random map has the same coarseness, so every order removes smooth regions. Removed pixels are \
             set to the training mean; insertion starts from the picture box-blurred over 1/16 of its size. \
             Measured with `{command}`.\n",
            rc = self.rank_correlation_random_classifier,
            rn = self.rank_correlation_random_network,
            reading = self.reading(),
            inits = RANDOM_INITS,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_says_which_map_was_measured_and_old_records_measured_the_class_map() {
        let e = serde_json::json!({"value": 0.5, "low": 0.4, "high": 0.6});
        let c = serde_json::json!({"heat_map": e, "random": e, "centre": e,
            "heat_map_minus_random": e, "heat_map_minus_centre": e});
        let old = serde_json::json!({"images": 3, "steps": STEPS, "deletion_auc": c, "insertion_auc": c,
            "rank_correlation_random_classifier": 0.1, "rank_correlation_random_network": 0.0,
            "localisation": null});
        let mut check: HeatMapCheck = serde_json::from_value(old).unwrap();
        assert_eq!(check.kind, HeatMapKind::Class);
        let class = check.card_section("bedside heatmaps");
        assert!(
            class.contains("class activation map of the predicted class (") && !class.contains("cancels")
        );
        check.kind = HeatMapKind::Contrast;
        let contrast = check.card_section("bedside heatmaps");
        assert!(
            contrast.contains("weighted by its probability") && contrast.contains("cancels"),
            "{contrast}"
        );
    }

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
    fn pointing_and_mass_follow_the_lesion() {
        // 8×8 map peaking at (6, 1); lesion: the 2×2 block at (6..8, 0..2).
        let mut values = vec![0.1; 64];
        values[8 + 6] = 1.0;
        values[0] = -5.0; // negative evidence carries no mass
        let map = HeatMap { width: 8, height: 8, values };
        let mask: Vec<u8> = (0..64).map(|i| u8::from(i % 8 >= 6 && i / 8 < 2)).collect();
        assert!(pointing_hit(&map, &mask, 0.0));
        let elsewhere: Vec<u8> = (0..64).map(|i| u8::from(i % 8 == 3 && i / 8 == 1)).collect();
        assert!(!pointing_hit(&map, &elsewhere, 2.9), "3 pixels away");
        assert!(pointing_hit(&map, &elsewhere, 3.0));
        let mass = mass_in(&map, &mask);
        assert!((mass - 1.3 / (1.0 + 62.0 * 0.1)).abs() < 1e-6, "{mass}");
        assert_eq!(mass_in(&HeatMap { width: 8, height: 8, values: vec![-1.0; 64] }, &mask), 0.0);
    }

    #[test]
    fn the_centre_prior_peaks_at_the_centre_and_the_random_map_is_seeded() {
        let [random, centre] = baselines(4, 3, 16, 12, 7);
        assert_eq!(order(&centre)[0], 5 * 16 + 7, "one of the four central pixels, the first in order");
        assert_eq!(random.values, baselines(4, 3, 16, 12, 7)[0].values);
        assert_ne!(random.values, baselines(4, 3, 16, 12, 8)[0].values);
    }

    #[test]
    fn area_is_the_curve_mean() {
        assert!((area(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((area(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
    }
}
