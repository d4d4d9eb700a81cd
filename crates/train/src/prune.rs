//! Structured pruning driven by the training images, then fine-tuning, measured as a curve.
//!
//! A channel's importance is how much it sends on: its mean absolute activation over training
//! images times the L2 norm of the weights that read it (the block's projection for a hidden channel,
//! the classifier for a head channel). BatchNorm is already folded into the shipped weights, so its
//! scales are not available as a criterion; the activation-times-weight score covers them (a channel
//! with a small BN scale has small activations). At each ratio the same share of every block's hidden
//! channels and of the head's channels goes, the network is fine-tuned briefly on the training split,
//! recalibrated on validation and quantised to int8 like the shipped model.
//!
//! Fine-tuning distils from the trained network itself (its logits on a few fixed augmented views of
//! every training image) as well as from the labels: the unpruned network is the best teacher of
//! what the pruned one has lost, and it costs one cached pass over the training images.

use crate::data::Dataset;
use crate::pipeline::{self, Fitted};
use crate::quantise;
use crate::trainer::{self, DistillSettings, TeacherTargets, TrainSettings, view_rng};
use crate::{Error, Progress};
use bedside_model::artifact::{ModelInfo, student_to_bytes};
use bedside_model::prune::{Keep, prune};
use bedside_model::quant;
use bedside_model::student::Student;
use burn::module::Module;
use burn::prelude::*;
use serde::Serialize;
use std::path::Path;

/// How to prune and fine-tune.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PruneSettings {
    /// Shares of channels removed, each a point of the curve (0 < r < 1).
    pub ratios: Vec<f64>,
    /// Fine-tuning epochs at each ratio.
    pub epochs: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub learning_rate: f64,
    /// Training images the channels are ranked on (spread evenly over the train split).
    pub score_images: usize,
    /// Training images int8 clipping is calibrated on, as `bedside quantize`.
    pub calibration_images: usize,
    /// Fixed augmented views of each training image the trained network's logits are cached for.
    pub views: usize,
    /// Weight of distillation from the trained network (the labels get 1 − alpha), and its temperature.
    pub distill_alpha: f32,
    pub distill_temperature: f32,
    /// Stop each fine-tuning epoch after this many batches (smoke runs).
    pub max_batches: Option<usize>,
}

/// Fewest channels any pruned layer keeps.
const MIN_CHANNELS: usize = 8;

/// Importance of every prunable channel: per block (`None` for the first, which has no expansion)
/// and for the head.
#[derive(Debug, Clone)]
pub struct Scores {
    pub blocks: Vec<Option<Vec<f64>>>,
    pub head: Vec<f64>,
}

/// Ranks channels by mean |activation| on `data` × the norm of the weights reading them.
pub fn channel_scores(model: &Student, info: &ModelInfo, data: &Dataset) -> Scores {
    let device = Device::flex();
    let spec = &info.input;
    let shape = |n| [n, spec.channels as usize, spec.height as usize, spec.width as usize];
    let mut blocks: Vec<Option<Vec<f64>>> =
        model.blocks.iter().map(|b| b.expand.as_ref().map(|_| Vec::new())).collect();
    let mut head = Vec::new();
    let add = |sum: &mut Vec<f64>, map: Tensor<4>| {
        let [n, c, _, _] = map.dims();
        let mean = map.abs().mean_dim(3).mean_dim(2).reshape([n, c]).sum_dim(0).reshape([c]);
        let values = mean.into_data().convert::<f32>().to_vec_f32();
        sum.resize(c, 0.0);
        for (s, v) in sum.iter_mut().zip(values) {
            *s += v as f64;
        }
    };
    for batch in data.examples.chunks(32) {
        let pixels: Vec<f32> = batch.iter().flat_map(|e| spec.normalise(&e.pixels)).collect();
        let mut x =
            model.stem.forward(Tensor::from_data(TensorData::new(pixels, shape(batch.len())), &device));
        for (block, sum) in model.blocks.iter().zip(blocks.iter_mut()) {
            let (out, hidden) = block.forward_with_hidden(x);
            if let Some(sum) = sum {
                add(sum, hidden);
            }
            x = out;
        }
        add(&mut head, model.head.forward(x));
    }
    // Norm of the weights each channel feeds: project conv [out, hidden, 1, 1], classifier [head, classes].
    let norms = |w: Tensor<2>, dim: usize| -> Vec<f64> {
        let squared = w.powf_scalar(2.0).sum_dim(dim);
        squared.sqrt().into_data().convert::<f32>().to_vec_f32().into_iter().map(f64::from).collect()
    };
    for (block, sum) in model.blocks.iter().zip(blocks.iter_mut()) {
        if let Some(sum) = sum {
            let [o, h, _, _] = block.project.conv.weight.dims();
            let w = block.project.conv.weight.val().reshape([o, h]);
            for (s, n) in sum.iter_mut().zip(norms(w, 0)) {
                *s *= n;
            }
        }
    }
    for (s, n) in head.iter_mut().zip(norms(model.classifier.weight.val(), 1)) {
        *s *= n;
    }
    Scores { blocks, head }
}

trait ToVec {
    fn to_vec_f32(self) -> Vec<f32>;
}

impl ToVec for TensorData {
    fn to_vec_f32(self) -> Vec<f32> {
        self.try_to_vec::<f32>().expect("f32 data")
    }
}

/// The channels kept at `ratio`: the highest-scoring `(1 − ratio)` share of each layer (at least
/// [`MIN_CHANNELS`]), in their original order.
pub fn plan(scores: &Scores, ratio: f64) -> Keep {
    let top = |scores: &[f64]| {
        let keep = (((1.0 - ratio) * scores.len() as f64).round() as usize)
            .clamp(MIN_CHANNELS.min(scores.len()), scores.len());
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut kept = order[..keep].to_vec();
        kept.sort_unstable();
        kept
    };
    Keep { blocks: scores.blocks.iter().map(|s| s.as_deref().map(top)).collect(), head: top(&scores.head) }
}

/// One point of the curve.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Point {
    /// Share of the prunable channels removed (0: the trained network).
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub ratio: f64,
    pub params: usize,
    pub macs: u64,
    pub fp32_bytes: usize,
    pub int8_bytes: usize,
    /// Validation AUC straight after removing the channels, before fine-tuning.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub auc_pruned: f64,
    /// Validation AUC and accuracy after fine-tuning and recalibration, fp32 and int8.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub int8_auc: f64,
    /// int8 validation AUC of the positive class against the rest: for skin and breast the
    /// macro AUC can hold while the one a clinician acts on (mel, malignant) falls. NaN in curves
    /// measured before it was.
    #[serde(default = "not_measured")]
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub int8_positive_auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub accuracy: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub int8_accuracy: f64,
    pub temperature: f32,
    pub threshold: Option<f32>,
    /// Wall-clock seconds of fine-tuning.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub seconds: f64,
}

/// A pruned, fine-tuned candidate and what it measured.
pub struct Candidate {
    pub point: Point,
    pub info: ModelInfo,
    pub fp32: Vec<u8>,
    pub int8: Vec<u8>,
    pub fitted: Fitted,
}

/// Measures `model` as shipped would be: recalibrated on `val`, fp32 and int8.
fn measure(
    info: &ModelInfo,
    model: Student,
    train: &Dataset,
    val: &Dataset,
    settings: &PruneSettings,
    progress: &Progress,
) -> Result<Candidate, Error> {
    let fitted = pipeline::fit(info.task, &model, &info.input, val);
    let info = ModelInfo { temperature: fitted.temperature, threshold: fitted.threshold, ..info.clone() };
    let params = model.num_params();
    let macs = model.macs(info.input.height as usize, info.input.width as usize);
    let fp32 = student_to_bytes(model).map_err(|e| Error::Model(e.to_string()))?;
    let weights = quant::read_fp32(fp32.clone()).map_err(|e| Error::Model(e.to_string()))?;
    let calibration =
        quantise::calibrate(&info, &weights, &train.every_nth(settings.calibration_images), progress)?;
    let int8 = quant::to_int8(&weights, &calibration.clips).map_err(|e| Error::Model(e.to_string()))?;
    let c = quantise::compare(&info, &fp32, &int8, val)?;
    let point = Point {
        ratio: 0.0,
        params,
        macs,
        fp32_bytes: fp32.len(),
        int8_bytes: int8.len(),
        auc_pruned: c.fp32_auc,
        auc: c.fp32_auc,
        int8_auc: c.int8_auc,
        int8_positive_auc: c.int8_positive_auc,
        accuracy: c.fp32_accuracy,
        int8_accuracy: c.int8_accuracy,
        temperature: info.temperature,
        threshold: info.threshold,
        seconds: 0.0,
    };
    Ok(Candidate { point, info, fp32, int8, fitted })
}

/// The trained model (ratio 0) and one fine-tuned candidate per ratio. Fine-tuning checkpoints go
/// to `run_dir/<ratio>`; with `resume` a finished or interrupted ratio continues from there.
#[allow(clippy::too_many_arguments)]
pub fn curve(
    info: &ModelInfo,
    model: &Student,
    train: &Dataset,
    val: &Dataset,
    settings: &PruneSettings,
    run_dir: &Path,
    resume: bool,
    progress: &Progress,
) -> Result<Vec<Candidate>, Error> {
    let trained: TrainSettings = serde_json::from_value(info.card["settings"].clone())
        .map_err(|e| Error::Data(format!("model.json has no training settings to fine-tune with: {e}")))?;
    let mut out = vec![measure(info, model.clone(), train, val, settings, progress)?];
    progress.println(format!("trained network: {}", summary(&out[0].point)));
    let scores = channel_scores(model, info, &train.every_nth(settings.score_images));
    let targets = own_targets(model, info, train, &trained, settings.views, progress);
    for &ratio in &settings.ratios {
        let (network, pruned) = prune(&info.network, model.clone(), &plan(&scores, ratio))
            .map_err(|e| Error::Model(e.to_string()))?;
        let info = ModelInfo { network: network.clone(), ..info.clone() };
        let auc_pruned =
            quantise::probabilities(&info, &pruned, val, bedside_infer::Precision::Fp32)?.1.auc.value;
        let fine_tune = TrainSettings {
            network,
            epochs: settings.epochs,
            learning_rate: settings.learning_rate,
            max_batches: settings.max_batches,
            distillation: Some(DistillSettings {
                temperature: settings.distill_temperature,
                alpha: settings.distill_alpha,
            }),
            ..trained.clone()
        };
        let dir = run_dir.join(format!("{ratio:.2}"));
        let tuned = trainer::train_student(
            &fine_tune,
            Some(&pruned),
            &info.input,
            train,
            Some(val),
            Some(&targets),
            &dir,
            resume,
            progress,
        )?;
        let mut candidate = measure(&info, tuned.model, train, val, settings, progress)?;
        candidate.point.ratio = ratio;
        candidate.point.auc_pruned = auc_pruned;
        // From the epoch log, which a resumed run restores: the fine-tuning's own time.
        candidate.point.seconds = tuned.history.iter().map(|h| h.seconds).sum();
        candidate.info.card["pruning_fine_tune"] =
            serde_json::to_value(&fine_tune).expect("settings serialise");
        progress.println(format!("ratio {ratio:.2}: {}", summary(&candidate.point)));
        out.push(candidate);
    }
    Ok(out)
}

/// The trained network's logits for `views` fixed augmented views of every training image, the
/// views the fine-tuning loop draws from ([`view_rng`] with the training seed).
fn own_targets(
    model: &Student,
    info: &ModelInfo,
    train: &Dataset,
    settings: &TrainSettings,
    views: usize,
    progress: &Progress,
) -> TeacherTargets {
    let spec = &info.input;
    let per_image = spec.channels as usize * spec.height as usize * spec.width as usize;
    let picks: Vec<(usize, usize)> = (0..train.len()).flat_map(|i| (0..views).map(move |v| (i, v))).collect();
    let bar = progress.bar(picks.len() as u64, "own logits");
    let mut logits = vec![Vec::with_capacity(views); train.len()];
    for chunk in picks.chunks(64) {
        let mut pixels = vec![0f32; chunk.len() * per_image];
        for (k, &(i, v)) in chunk.iter().enumerate() {
            let out = &mut pixels[k * per_image..(k + 1) * per_image];
            settings.augment.apply(&train.examples[i].pixels, spec, &mut view_rng(settings.seed, i, v), out);
        }
        let batch = bedside_model::infer::logits(model, spec, pixels, &Device::flex());
        for (&(i, _), l) in chunk.iter().zip(batch) {
            logits[i].push(l);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    TeacherTargets { logits }
}

fn summary(p: &Point) -> String {
    format!(
        "{} parameters, {:.1} M MACs, int8 {:.0} KB, val AUC {:.4} right after pruning → {:.4} fine-tuned (int8 {:.4})",
        p.params,
        p.macs as f64 / 1e6,
        p.int8_bytes as f64 / 1000.0,
        p.auc_pruned,
        p.auc,
        p.int8_auc
    )
}

/// Largest drop in validation AUC (int8, against the trained network's int8) a shipped pruned
/// point may cost: the same budget int8 quantisation is held to.
pub const MAX_AUC_DROP: f64 = 0.005;
/// Largest drop in validation accuracy at the recalibrated operating point: the ranking (AUC) can
/// hold while the decisions a clinician sees get worse.
pub const MAX_ACCURACY_DROP: f64 = 0.01;

/// The point to ship: the most pruned whose int8 validation AUC, positive-class AUC and accuracy
/// are within [`MAX_AUC_DROP`], [`MAX_AUC_DROP`] and [`MAX_ACCURACY_DROP`] of the trained
/// network's (index 0, the trained network itself, when none is).
pub fn choose(points: &[Point]) -> usize {
    let (auc, positive_auc, accuracy) =
        (points[0].int8_auc, points[0].int8_positive_auc, points[0].int8_accuracy);
    (1..points.len())
        .filter(|&i| points[i].int8_auc >= auc - MAX_AUC_DROP)
        .filter(|&i| points[i].int8_positive_auc >= positive_auc - MAX_AUC_DROP)
        .filter(|&i| points[i].int8_accuracy >= accuracy - MAX_ACCURACY_DROP)
        .max_by(|&a, &b| points[a].ratio.total_cmp(&points[b].ratio))
        .unwrap_or(0)
}

fn not_measured() -> f64 {
    f64::NAN
}

/// What `bedside prune` recorded in `model.json` ("pruning"): the card's pruning section is drawn
/// from it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PruningSummary {
    pub points: Vec<Point>,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub shipped_ratio: f64,
    pub choice: Choice,
    pub settings: PruneSettings,
    pub command: String,
}

impl PruningSummary {
    /// The model card's pruning section; `positive` names the positive class.
    pub fn card_section(&self, positive: &str) -> String {
        let shipped = self.points.iter().position(|p| p.ratio == self.shipped_ratio).unwrap_or(0);
        card_section(&self.points, shipped, self.choice, positive, &self.settings, &self.command)
    }
}

/// How the shipped point of a curve was chosen (`bedside prune --ship`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// By [`choose`].
    Auto,
    /// The trained network was kept whatever the curve showed.
    Kept,
    /// A ratio named by hand.
    Named,
}

/// The model card's pruning section; `positive` names the positive class.
pub fn card_section(
    points: &[Point],
    shipped: usize,
    choice: Choice,
    positive: &str,
    settings: &PruneSettings,
    command: &str,
) -> String {
    let mut md = String::from("## Pruning\n\n");
    let chosen = match choice {
        Choice::Auto => format!(
            "AUC is on the validation split, which also chose the shipped point (the most pruned within \
             {MAX_AUC_DROP} int8 AUC, {MAX_AUC_DROP} int8 AUC of {positive} and {MAX_ACCURACY_DROP} int8 \
             accuracy of the trained network), so it is an optimistic estimate for that point."
        ),
        Choice::Kept => "AUC is on the validation split. The curve was only measured: the trained network \
                         is shipped unpruned."
            .to_string(),
        Choice::Named => "AUC is on the validation split; the shipped point was named by hand after \
                          looking at it, so it is an optimistic estimate for that point."
            .to_string(),
    };
    md += &format!(
        "Structured pruning removes whole channels: the same share of every block's expanded channels and \
         of the head's channels, ranked on {} training images by mean |activation| × the norm of the \
         weights reading the channel. Each pruned network was fine-tuned for {} epochs (learning rate \
         {:.0e}, the training augmentation) on the labels and, with weight {}, on the trained network's \
         own outputs (temperature {}) for {} fixed augmented views of each image; then recalibrated \
         (temperature, threshold) and quantised to int8 like the shipped model. {chosen}\n\n",
        settings.score_images,
        settings.epochs,
        settings.learning_rate,
        settings.distill_alpha,
        settings.distill_temperature,
        settings.views,
    );
    md += "![Validation AUC against parameters](plots/pruning.png)\n\n";
    md += &format!(
        "| removed | parameters | MACs | int8 size | AUC after pruning | AUC fine-tuned (fp32) | int8 AUC | \
         int8 AUC of {positive} | int8 accuracy | fine-tuning |\n"
    );
    md += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (i, p) in points.iter().enumerate() {
        let mark = if i == shipped { " **(shipped)**" } else { "" };
        // Ratio 0 is the trained network: nothing removed, nothing fine-tuned.
        let (pruned, tuning) = if p.ratio == 0.0 {
            ("—".to_string(), "—".to_string())
        } else {
            (format!("{:.4}", p.auc_pruned), format!("{:.0} s", p.seconds))
        };
        md += &format!(
            "| {:.0} %{mark} | {} | {:.1} M | {:.0} KB | {pruned} | {:.4} | {:.4} | {} | {:.4} | {tuning} |\n",
            100.0 * p.ratio,
            p.params,
            p.macs as f64 / 1e6,
            p.int8_bytes as f64 / 1000.0,
            p.auc,
            p.int8_auc,
            if p.int8_positive_auc.is_finite() {
                format!("{:.4}", p.int8_positive_auc)
            } else {
                "not measured".into()
            },
            p.int8_accuracy,
        );
    }
    md += &format!(
        "\nThe 0 % row is the trained network as it was before pruning. Measured with `{command}` \
         (fine-tuning times on two CPU cores, shared with other work).\n"
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(ratio: f64, int8_auc: f64) -> Point {
        point_with(ratio, int8_auc, 0.9)
    }

    fn point_with(ratio: f64, int8_auc: f64, int8_accuracy: f64) -> Point {
        Point {
            ratio,
            params: 0,
            macs: 0,
            fp32_bytes: 0,
            int8_bytes: 0,
            auc_pruned: 0.0,
            auc: int8_auc,
            int8_auc,
            int8_positive_auc: int8_auc,
            accuracy: int8_accuracy,
            int8_accuracy,
            temperature: 1.0,
            threshold: None,
            seconds: 0.0,
        }
    }

    #[test]
    fn the_most_pruned_point_within_budget_ships() {
        let points = [point(0.0, 0.95), point(0.25, 0.948), point(0.5, 0.946), point(0.75, 0.90)];
        assert_eq!(choose(&points), 2);
        let points = [point(0.0, 0.95), point(0.25, 0.94)];
        assert_eq!(choose(&points), 0, "nothing within budget: the trained network");
        let points = [point_with(0.0, 0.99, 0.98), point_with(0.5, 0.99, 0.975), point_with(0.7, 0.99, 0.96)];
        assert_eq!(choose(&points), 1, "the same AUC but worse decisions does not ship");
        // Breast, measured: macro AUC held at 50 % while the malignant AUC fell by 0.04.
        let mut points = [point(0.0, 0.878), point(0.5, 0.876)];
        points[0].int8_positive_auc = 0.883;
        points[1].int8_positive_auc = 0.839;
        assert_eq!(choose(&points), 0, "a worse positive-class AUC does not ship");
    }

    #[test]
    fn plans_keep_the_best_channels_in_order() {
        let scores = Scores {
            blocks: vec![None, Some((0..16).map(|i| (i % 5) as f64).collect())],
            head: (0..40).map(|i| i as f64).collect(),
        };
        let keep = plan(&scores, 0.5);
        assert_eq!(keep.blocks[0], None);
        let block = keep.blocks[1].as_ref().unwrap();
        assert_eq!(block.len(), 8);
        assert!(block.windows(2).all(|w| w[0] < w[1]));
        // Scores 4 and 3 (six channels), then the first two of score 2 (ties by index).
        assert_eq!(block, &[2, 3, 4, 7, 8, 9, 13, 14]);
        assert_eq!(keep.head, (20..40).collect::<Vec<_>>());
        // Never below the floor.
        assert_eq!(plan(&scores, 0.95).blocks[1].as_ref().unwrap().len(), MIN_CHANNELS);
    }
}
