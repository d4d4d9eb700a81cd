//! Training and measuring the lesion decoder ([`bedside_model::lesion`]) on the task's masks.
//!
//! The classifier is frozen: each batch goes through it without gradients (augmented exactly like
//! its mask), and only the decoder learns, from binary cross-entropy plus a soft Dice loss over the
//! batch (Dice alone ignores the empty masks of BUSI's normal images; cross-entropy alone favours
//! the background, which covers most of each picture). Measured on validation as the page draws it:
//! int8 weights, probability ≥ the threshold, the largest region kept with its holes filled.

use crate::augment::Augment;
use crate::data::Dataset;
use crate::metrics::{Estimate, grouped_mean};
use crate::rng::Rng;
use crate::{Error, Progress};
use bedside_model::artifact::ModelInfo;
use bedside_model::infer::forward_all;
use bedside_model::lesion::{LesionConfig, LesionDecoder, Mask, overlap};
use bedside_model::student::Student;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Everything that determines a decoder's training run (recorded in `lesion.json`'s card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionSettings {
    pub decoder: LesionConfig,
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub learning_rate: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub weight_decay: f64,
    pub seed: u64,
    pub augment: Augment,
    /// Stop each epoch after this many batches (smoke runs).
    pub max_batches: Option<usize>,
    /// Run the frozen classifier once on this many fixed augmented views of every training image
    /// and train on those features (one view drawn per image and epoch), instead of augmenting and
    /// running it anew for every batch: for a classifier that costs far more than the decoder.
    #[serde(default)]
    pub cached_views: Option<usize>,
}

/// The classifier's head map and taps for fixed augmented views of every training image, with the
/// view's mask: `[example][view]`.
struct FeatureViews {
    head: Vec<Vec<Vec<f32>>>,
    taps: Vec<Vec<Vec<Vec<f32>>>>,
    masks: Vec<Vec<Vec<f32>>>,
    /// Each tensor's shape without the batch axis: the head's, then the taps'.
    dims: Vec<[usize; 3]>,
}

impl FeatureViews {
    #[allow(clippy::too_many_arguments)]
    fn compute(
        settings: &LesionSettings,
        views: usize,
        spec: &bedside_model::input::InputSpec,
        student: &Student,
        train: &Dataset,
        masks: &[Vec<u8>],
        progress: &Progress,
    ) -> FeatureViews {
        let (c, h, w) = (spec.channels as usize, spec.height as usize, spec.width as usize);
        let per_image = c * h * w;
        let picks: Vec<(usize, usize)> =
            (0..train.len()).flat_map(|i| (0..views).map(move |v| (i, v))).collect();
        let mut out = FeatureViews {
            head: vec![Vec::with_capacity(views); train.len()],
            taps: vec![Vec::with_capacity(views); train.len()],
            masks: vec![Vec::with_capacity(views); train.len()],
            dims: Vec::new(),
        };
        let bar = progress.bar(picks.len() as u64, "lesion features");
        let device = Device::flex();
        for chunk in picks.chunks(16) {
            let mut pixels = vec![0f32; chunk.len() * per_image];
            let mut targets = vec![0f32; chunk.len() * h * w];
            for (k, &(i, v)) in chunk.iter().enumerate() {
                let mut rng = Rng::new(settings.seed).fork(0x1E51_0000 + (i as u64) * 64 + v as u64);
                settings.augment.apply_with_mask(
                    &train.examples[i].pixels,
                    &masks[i],
                    spec,
                    &mut rng,
                    &mut pixels[k * per_image..(k + 1) * per_image],
                    &mut targets[k * h * w..(k + 1) * h * w],
                );
            }
            let (head, taps) = features(student, pixels, [chunk.len(), c, h, w], &device);
            let split = |t: Tensor<4>| -> ([usize; 3], Vec<Vec<f32>>) {
                let [n, a, b, d] = t.dims();
                let values: Vec<f32> = t.into_data().try_into_vec().expect("f32 features");
                ([a, b, d], values.chunks(values.len() / n).map(<[f32]>::to_vec).collect())
            };
            let (head_dims, heads) = split(head);
            let taps: Vec<([usize; 3], Vec<Vec<f32>>)> = taps.into_iter().map(split).collect();
            if out.dims.is_empty() {
                out.dims = std::iter::once(head_dims).chain(taps.iter().map(|t| t.0)).collect();
            }
            for (k, &(i, _)) in chunk.iter().enumerate() {
                out.head[i].push(heads[k].clone());
                out.taps[i].push(taps.iter().map(|t| t.1[k].clone()).collect());
                out.masks[i].push(targets[k * h * w..(k + 1) * h * w].to_vec());
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        out
    }

    /// The batch of `(example, view)` picks: head map, taps and masks as tensors on `device`.
    fn batch(&self, picks: &[(usize, usize)], device: &Device) -> (Tensor<4>, Vec<Tensor<4>>, Vec<f32>) {
        let n = picks.len();
        let tensor = |dims: [usize; 3], values: Vec<f32>| {
            Tensor::<4>::from_data(TensorData::new(values, [n, dims[0], dims[1], dims[2]]), device)
        };
        let head =
            tensor(self.dims[0], picks.iter().flat_map(|&(i, v)| self.head[i][v].iter().copied()).collect());
        let taps = (0..self.dims.len() - 1)
            .map(|t| {
                tensor(
                    self.dims[t + 1],
                    picks.iter().flat_map(|&(i, v)| self.taps[i][v][t].iter().copied()).collect(),
                )
            })
            .collect();
        let masks = picks.iter().flat_map(|&(i, v)| self.masks[i][v].iter().copied()).collect();
        (head, taps, masks)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LesionEpoch {
    pub epoch: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub train_loss: f64,
    /// Mean Dice on the validation images with a lesion, fp32 weights.
    pub val_dice: Option<f64>,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub seconds: f64,
}

/// The classifier's head map and taps for a batch of normalised inputs, computed without
/// gradients and handed to `device` as plain tensors.
fn features(
    student: &Student,
    input: Vec<f32>,
    shape: [usize; 4],
    to: &Device,
) -> (Tensor<4>, Vec<Tensor<4>>) {
    let device = Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new(input, shape), &device);
    let (_, head, taps) = student.forward_with_taps(x);
    let move_to = |t: Tensor<4>| Tensor::<4>::from_data(t.into_data(), to);
    (move_to(head), taps.into_iter().map(move_to).collect())
}

/// Lesion logits `[n][h·w]` at the input size for normalised inputs, from the same pass the page
/// runs ([`bedside_model::infer::forward_all`], mirror-averaged where the input spec says so).
pub fn predict_logits(
    info: &ModelInfo,
    student: &Student,
    decoder: &LesionDecoder,
    inputs: Vec<f32>,
) -> Vec<Vec<f32>> {
    let (_, _, logits) = forward_all(student, Some(decoder), &info.input, inputs, &Device::flex());
    let values: Vec<f32> =
        logits.expect("a decoder was given").into_data().try_into_vec().expect("f32 logits");
    values.chunks((info.input.width * info.input.height) as usize).map(<[f32]>::to_vec).collect()
}

/// Binary cross-entropy on the lesion logits (in the numerically stable form) plus a soft Dice
/// loss over the whole batch, against targets in 0–1.
pub(crate) fn outline_loss(logits: Tensor<3>, target: Tensor<3>) -> Tensor<1> {
    let bce = (logits.clone().clamp_min(0.0) - logits.clone() * target.clone()
        + logits.clone().abs().neg().exp().add_scalar(1.0).log())
    .mean();
    let p = burn::tensor::activation::sigmoid(logits);
    let dice = (p.clone() * target.clone()).sum().mul_scalar(2.0).add_scalar(1.0)
        / (p.sum() + target.sum()).add_scalar(1.0);
    bce + dice.neg().add_scalar(1.0)
}

/// Trains a decoder on `train` (with `train_masks`, framed to the input) reading `student`'s
/// features; reports Dice on `val` after every epoch.
#[allow(clippy::too_many_arguments)]
pub fn train(
    settings: &LesionSettings,
    info: &ModelInfo,
    student: &Student,
    train: &Dataset,
    train_masks: &[Vec<u8>],
    val: Option<(&Dataset, &[Vec<u8>])>,
    threshold: f32,
    progress: &Progress,
) -> Result<(LesionDecoder, Vec<LesionEpoch>), Error> {
    let device = Device::flex().autodiff();
    device.seed(settings.seed);
    let mut decoder = settings.decoder.init(&device);
    let mut optimizer = AdamWConfig::new().with_weight_decay(settings.weight_decay as f32).init();
    let spec = &info.input;
    let (c, h, w) = (spec.channels as usize, spec.height as usize, spec.width as usize);
    let per_image = c * h * w;
    let batches = train.len().div_ceil(settings.batch_size);
    let per_epoch = settings.max_batches.map_or(batches, |m| m.min(batches));
    let total = per_epoch * settings.epochs;
    let seed_rng = Rng::new(settings.seed);
    let cached = settings
        .cached_views
        .map(|views| FeatureViews::compute(settings, views, spec, student, train, train_masks, progress));
    let mut history = Vec::new();
    for epoch in 0..settings.epochs {
        let started = std::time::Instant::now();
        let mut rng = seed_rng.fork(epoch as u64);
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let bar = progress.bar(per_epoch as u64, &format!("lesion epoch {}/{}", epoch + 1, settings.epochs));
        let mut loss_sum = 0.0;
        for (b, batch) in order.chunks(settings.batch_size).take(per_epoch).enumerate() {
            let n = batch.len();
            let (head, taps, targets) = match &cached {
                Some(views) => {
                    let picks: Vec<(usize, usize)> =
                        batch.iter().map(|&i| (i, rng.below(views.head[i].len()))).collect();
                    views.batch(&picks, &device)
                }
                None => {
                    let mut pixels = vec![0f32; n * per_image];
                    let mut targets = vec![0f32; n * h * w];
                    for (k, &i) in batch.iter().enumerate() {
                        settings.augment.apply_with_mask(
                            &train.examples[i].pixels,
                            &train_masks[i],
                            spec,
                            &mut rng,
                            &mut pixels[k * per_image..(k + 1) * per_image],
                            &mut targets[k * h * w..(k + 1) * h * w],
                        );
                    }
                    let (head, taps) = features(student, pixels, [n, c, h, w], &device);
                    (head, taps, targets)
                }
            };
            let logits = decoder.forward(head, &taps, [h, w]);
            let t = Tensor::<3>::from_data(TensorData::new(targets, [n, h, w]), &device);
            let loss = outline_loss(logits, t);
            let value = loss.clone().into_data().as_slice::<f32>().map(|s| s[0]).unwrap_or(f32::NAN);
            if !value.is_finite() {
                return Err(Error::Model(format!(
                    "the lesion loss diverged at epoch {} batch {b}",
                    epoch + 1
                )));
            }
            loss_sum += f64::from(value);
            let step = epoch * per_epoch + b;
            let lr = settings.learning_rate
                * 0.5
                * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
            let grads = GradientsParams::from_grads(loss.backward(), &decoder);
            decoder = optimizer.step(lr, decoder, grads);
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / (b + 1) as f64));
        }
        bar.finish_and_clear();
        let val_dice = val.map(|(data, masks)| {
            let valid = decoder.valid();
            evaluate(info, student, &valid, data, masks, threshold).dice.value
        });
        let log = LesionEpoch {
            epoch: epoch + 1,
            train_loss: loss_sum / per_epoch.max(1) as f64,
            val_dice,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.println(format!(
            "lesion epoch {:>2}/{}  train loss {:.4}  val Dice {}  {:.0} s",
            log.epoch,
            settings.epochs,
            log.train_loss,
            log.val_dice.map_or("-".into(), |d| format!("{d:.3}")),
            log.seconds
        ));
        history.push(log);
    }
    Ok((decoder.valid(), history))
}

/// The decoder's masks against the authors' outlines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LesionReport {
    /// Images with a lesion, and their Dice and IoU (as drawn: [`Mask::drawn`]), with intervals
    /// from resampling whole groups.
    pub images: usize,
    pub dice: Estimate,
    pub iou: Estimate,
    /// Dice of the raw thresholded mask (every region kept, holes left).
    pub dice_all_regions: Estimate,
    /// Images without a lesion (BUSI's normal ones), and the share of them drawn with no outline.
    pub empty_images: usize,
    pub empty_drawn_empty: Option<f64>,
    pub threshold: f32,
}

/// Dice and IoU on every example of `data` (its `masks` in order).
pub fn evaluate(
    info: &ModelInfo,
    student: &Student,
    decoder: &LesionDecoder,
    data: &Dataset,
    masks: &[Vec<u8>],
    threshold: f32,
) -> LesionReport {
    let spec = &info.input;
    let (w, h) = (spec.width, spec.height);
    let (mut dice, mut iou, mut all, mut groups) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut empty, mut empty_ok) = (0usize, 0usize);
    for (chunk, chunk_masks) in data.examples.chunks(32).zip(masks.chunks(32)) {
        let inputs: Vec<f32> = chunk.iter().flat_map(|e| spec.normalise(&e.pixels)).collect();
        for ((example, truth), logits) in
            chunk.iter().zip(chunk_masks).zip(predict_logits(info, student, decoder, inputs))
        {
            let raw = Mask::from_logits(&logits, w, h, threshold);
            let drawn = Mask::drawn(&logits, w, h, threshold);
            if truth.iter().all(|&m| m == 0) {
                empty += 1;
                empty_ok += usize::from(drawn.area() == 0);
                continue;
            }
            let (d, i) = overlap(&drawn.values, truth);
            dice.push(d);
            iou.push(i);
            all.push(overlap(&raw.values, truth).0);
            groups.push(example.group.as_str());
        }
    }
    LesionReport {
        images: dice.len(),
        dice: grouped_mean(&dice, &groups, 1000),
        iou: grouped_mean(&iou, &groups, 1000),
        dice_all_regions: grouped_mean(&all, &groups, 1000),
        empty_images: empty,
        empty_drawn_empty: (empty > 0).then(|| empty_ok as f64 / empty as f64),
        threshold,
    }
}

impl LesionReport {
    /// The model card's section: `command` trained the decoder, `measured_by` measured it; `macs`
    /// are the decoder's and the classifier's multiply–accumulates per picture.
    pub fn card_section_with(
        &self,
        settings: &LesionSettings,
        seconds: f64,
        command: &str,
        measured_by: &str,
        macs: [u64; 2],
    ) -> String {
        let cell = |e: &Estimate| format!("{:.3} ({:.3}–{:.3})", e.value, e.low, e.high);
        let mut out = format!(
            "## Lesion outline\n\n\
             A small decoder reads the classifier's own feature maps (1/4, 1/8, 1/16 and 1/32 of the input) \
             and marks each pixel of the model's view as lesion or not; the page draws the outline of the \
             largest marked region and reports its area and longest diameter. The classifier's weights \
             are frozen while the decoder learns, so every number above this section is unchanged by it. \
             It reads the forward pass the diagnosis already makes and adds {decoder_m:.1} million \
             multiply–accumulates to the classifier's {student_m:.1} million per picture ({share:.0} %; \
             both doubled where the picture is also read mirrored). The decoder was trained on the authors' lesion outlines of the train split \
             ({epochs} epochs, batch {batch}, AdamW at {lr}, seed {seed}, the classifier's augmentation \
             applied to picture and mask alike{views}; {minutes:.1} min of wall time on a 2-core CPU) with \
             `{command}`.\n\n\
             Validation, int8 weights, probability ≥ {threshold}, the largest region kept with its holes \
             filled (as the page draws it); 95 % intervals from resampling whole groups:\n\n\
             | images with a lesion | Dice | IoU | Dice of the raw mask (every region, holes left) |\n|---|---|---|---|\n\
             | {n} | {dice} | {iou} | {all} |\n\n\
             Measured with `{measured_by}`.\n",
            epochs = settings.epochs,
            views = settings.cached_views.map_or(String::new(), |v| format!(
                ", on {v} fixed augmented views of every training image that the classifier read once"
            )),
            batch = settings.batch_size,
            lr = settings.learning_rate,
            seed = settings.seed,
            minutes = seconds / 60.0,
            threshold = self.threshold,
            decoder_m = macs[0] as f64 / 1e6,
            student_m = macs[1] as f64 / 1e6,
            share = 100.0 * macs[0] as f64 / macs[1] as f64,
            n = self.images,
            dice = cell(&self.dice),
            iou = cell(&self.iou),
            all = cell(&self.dice_all_regions),
        );
        if let Some(share) = self.empty_drawn_empty {
            out += &format!(
                "\nOf the {} validation images without a lesion, {:.0} % are drawn with no outline.\n",
                self.empty_images,
                share * 100.0
            );
        }
        out +=
            "\nAn outline is where the model puts the lesion, not a measurement a clinician has checked.\n";
        out
    }
}

/// The model card's lesion section, drawn from `lesion.json`'s card (what `bedside lesion` recorded).
pub fn card_section(lesion_card: &serde_json::Value) -> Result<String, crate::Error> {
    let field = |key: &str| {
        let value = &lesion_card[key];
        (!value.is_null())
            .then_some(value)
            .ok_or_else(|| crate::Error::Data(format!("lesion.json: card.{key} is missing")))
    };
    let parse_failed =
        |key: &str, e: serde_json::Error| crate::Error::Data(format!("lesion.json: card.{key}: {e}"));
    let report: LesionReport =
        serde_json::from_value(field("validation")?.clone()).map_err(|e| parse_failed("validation", e))?;
    let settings: LesionSettings =
        serde_json::from_value(field("settings")?.clone()).map_err(|e| parse_failed("settings", e))?;
    let macs: [u64; 2] =
        serde_json::from_value(field("macs")?.clone()).map_err(|e| parse_failed("macs", e))?;
    let text = |key: &str| field(key).map(|v| v.as_str().unwrap_or_default().to_string());
    Ok(report.card_section_with(
        &settings,
        field("seconds")?.as_f64().unwrap_or(f64::NAN),
        &text("command")?,
        &text("measured_by")?,
        macs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder learns a mask it can see: bright discs on a dark background, the disc as the lesion.
    #[test]
    fn the_decoder_learns_where_a_bright_disc_is() {
        // The shipped chest classifier (a 128-pixel grey student) as the frozen encoder: trained
        // features, as in use, and cheap enough to run 12 epochs in a unit test.
        let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/chest");
        let mut info_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(models.join("model.json")).unwrap()).unwrap();
        info_json["input"]["mirror_average"] = false.into();
        let info: ModelInfo = serde_json::from_value(info_json).unwrap();
        let (w, h) = (info.input.width as usize, info.input.height as usize);
        let mut rng = Rng::new(3);
        let (mut examples, mut masks) = (Vec::new(), Vec::new());
        for i in 0..24 {
            let (cx, cy, r) = (rng.uniform(30.0, 98.0), rng.uniform(30.0, 98.0), rng.uniform(10.0, 25.0));
            let inside = |x: usize, y: usize| (x as f32 - cx).hypot(y as f32 - cy) < r;
            let mask: Vec<u8> = (0..w * h).map(|p| u8::from(inside(p % w, p / w))).collect();
            let pixels = mask.iter().map(|&m| if m > 0 { 200 } else { 40 }).collect();
            examples.push(crate::data::Example {
                file: String::new(),
                label: 0,
                group: i.to_string(),
                pixels,
            });
            masks.push(mask);
        }
        let data = Dataset { task: bedside_model::task::Task::Chest, examples };
        let device = Device::flex();
        device.seed(1);
        let weights = std::fs::read(models.join("model.bin")).unwrap();
        let student = bedside_model::artifact::student_from_bytes(&info.network, weights, &device).unwrap();
        let settings = LesionSettings {
            decoder: LesionConfig::for_student(&info.network),
            epochs: 12,
            batch_size: 8,
            learning_rate: 3e-3,
            weight_decay: 1e-4,
            seed: 0,
            augment: Augment::none(),
            max_batches: None,
            cached_views: None,
        };
        let untrained = settings.decoder.init(&device).fold_batchnorm();
        let before = evaluate(&info, &student, &untrained, &data, &masks, 0.5);
        let (decoder, history) =
            train(&settings, &info, &student, &data, &masks, None, 0.5, &Progress::hidden()).unwrap();
        let after = evaluate(&info, &student, &decoder.fold_batchnorm(), &data, &masks, 0.5);
        assert_eq!(history.len(), 12);
        assert!(history[11].train_loss < history[0].train_loss, "{history:?}");
        assert!(
            after.dice.value > 0.6 && after.dice.value > before.dice.value + 0.2,
            "{before:?} → {after:?}"
        );
        // The same from features computed once on two fixed views of each picture.
        let cached = LesionSettings { cached_views: Some(2), ..settings };
        let (decoder, history) =
            train(&cached, &info, &student, &data, &masks, None, 0.5, &Progress::hidden()).unwrap();
        let from_cache = evaluate(&info, &student, &decoder.fold_batchnorm(), &data, &masks, 0.5);
        assert!(history[11].train_loss < history[0].train_loss, "{history:?}");
        assert!(from_cache.dice.value > 0.6, "{before:?} → {from_cache:?}");
    }
}
