//! Knowledge distillation: adapt the ImageNet teacher to a task cheaply, then give the student its
//! soft targets.
//!
//! 1. The frozen early stages of EfficientNet-Lite0 run once over a few fixed augmented views of
//!    every training image (view `v` of image `i` is [`view_rng`]`(seed, i, v)`, the same random
//!    stream the student's augmentation uses, so both networks see the same picture); their
//!    feature maps are cached under the run folder.
//! 2. The teacher's last stages and a new head train on the cached maps only.
//! 3. The adapted teacher's logits for every cached view become the student's soft targets.
//!
//! With a lesion weight (`TeacherSettings::lesion_weight`, breast and skin), step 2 also trains a
//! small lesion decoder on the frozen maps at 1/4, 1/8 and 1/16 and the trained head's map, from the
//! authors' outlines of each cached view: the trained stages then learn where the lesion is, not
//! only what it is. The decoder is dropped afterwards (`bedside lesion` trains the shipped one on
//! the finished classifier).

use crate::augment::Augment;
use crate::data::Dataset;
use crate::metrics;
use crate::trainer::{TeacherTargets, view_rng};
use crate::{Error, Progress};
use bedside_model::input::InputSpec;
use bedside_model::lesion::{LesionConfig, LesionDecoder};
use bedside_model::task::Task;
use bedside_model::teacher::{FEATURES, INPUT_SIZE, Teacher, channels_before};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherSettings {
    /// Fixed augmented views cached per training image.
    pub views: usize,
    /// Stages before this one stay frozen and are cached; this one onwards trains.
    pub stage: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// The loss weights classes as the student's does (`TrainSettings::class_weights`); teachers
    /// adapted before this setting existed were weighted.
    #[serde(default = "weighted")]
    pub class_weights: bool,
    /// Weight of the lesion-outline loss trained alongside the classification loss (0: none).
    /// Needs `stage` in [`LESION_STAGES`] and the task's masks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lesion_weight: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// The stage whose entering map (at 1/16) is the decoder's deepest tap; the maps entering stages 2
/// (1/4) and 3 (1/8) are the others.
pub const LESION_STAGE: usize = 5;

/// First trained stages the joint outline loss supports: the taps entering frozen stages are cached
/// ([`LesionViews`]); those at or after the first trained stage are computed as the network trains.
pub const LESION_STAGES: std::ops::RangeInclusive<usize> = 2..=LESION_STAGE;

/// The decoder's taps (the maps entering stages 2, 3 and [`LESION_STAGE`]) and the head's map, from
/// the map `x` entering `stage` for the views `picks`: a tap entering a frozen stage is read from
/// `lesion`'s cache, one entering a trained stage is computed here.
fn head_and_taps(
    teacher: &Teacher,
    stage: usize,
    x: Tensor<4>,
    lesion: &LesionViews,
    picks: &[(usize, usize)],
) -> (Tensor<4>, [Tensor<4>; 3]) {
    let device = x.device();
    let (mut current, mut at) = (x, stage);
    let mut reach = |boundary: usize| {
        current = teacher.forward_stages(current.clone(), at, boundary);
        at = boundary;
        current.clone()
    };
    let quarter = if stage > 2 { lesion.quarter.batch(picks, &device) } else { reach(2) };
    let eighth = if stage > 3 { lesion.eighth.batch(picks, &device) } else { reach(3) };
    let sixteenth = reach(LESION_STAGE);
    (teacher.features_from(LESION_STAGE, sixteenth.clone()), [quarter, eighth, sixteenth])
}

fn weighted() -> bool {
    true
}

/// The teacher's input for a task: 224 px on the long side at the student's aspect ratio, RGB (grey
/// images as three equal channels), normalised as the ImageNet weights expect ((x − 127) / 128).
pub fn teacher_input(task: Task) -> InputSpec {
    let (w, h, _) = task.input_shape();
    let size = INPUT_SIZE as u32;
    let (width, height) = if w >= h { (size, size * h / w) } else { (size * w / h, size) };
    let (mean, std) = (crate::teacher::MEAN / 255.0, crate::teacher::STD / 255.0);
    InputSpec {
        width,
        height,
        channels: 3,
        framing: task.framing(),
        mean: vec![mean; 3],
        std: vec![std; 3],
        intensity: Default::default(),
        mirror_average: false,
    }
}

/// Cached feature maps: `views` maps of `dims` per example, example-major.
pub struct FeatureCache {
    pub dims: [usize; 3],
    pub views: usize,
    pub data: Vec<f32>,
}

impl FeatureCache {
    /// The maps of these examples (by index), in that order.
    pub fn subset(&self, examples: &[usize]) -> FeatureCache {
        let per_example = self.len() * self.views;
        let data = examples
            .iter()
            .flat_map(|&i| self.data[i * per_example..(i + 1) * per_example].iter().copied())
            .collect();
        FeatureCache { dims: self.dims, views: self.views, data }
    }

    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    fn batch(&self, picks: &[(usize, usize)], device: &Device) -> Tensor<4> {
        let len = self.len();
        let mut values = Vec::with_capacity(picks.len() * len);
        for &(example, view) in picks {
            let start = (example * self.views + view) * len;
            values.extend_from_slice(&self.data[start..start + len]);
        }
        let [c, h, w] = self.dims;
        Tensor::from_data(TensorData::new(values, [picks.len(), c, h, w]), device)
    }
}

/// Runs the frozen teacher up to `settings.stage` on `views` views of every example (one plain,
/// unaugmented view when `augment` is `None`), reusing the cache file in `dir` if it is there.
#[allow(clippy::too_many_arguments)]
pub fn cache_features(
    teacher: &Teacher,
    data: &Dataset,
    spec: &InputSpec,
    augment: Option<&Augment>,
    settings: &TeacherSettings,
    dir: &Path,
    name: &str,
    progress: &Progress,
) -> Result<FeatureCache, Error> {
    let views = if augment.is_some() { settings.views } else { 1 };
    // Views augmented beyond the standard recipe are other maps: they get their own file.
    let extra = match augment {
        Some(a) if a.noise > 0.0 || a.shift_share > 0.0 => {
            format!("-noise{}-shift{}", a.noise, a.shift_share)
        }
        _ => String::new(),
    };
    let path = dir.join(format!("teacher-features-{name}-stage{}-views{views}{extra}.f32", settings.stage));
    let device = Device::flex();
    let (c, h, w) = (spec.channels as usize, spec.height as usize, spec.width as usize);
    let probe = teacher.forward_stem_to(Tensor::zeros([1, c, h, w], &device), settings.stage);
    let [_, fc, fh, fw] = probe.dims();
    let dims = [fc, fh, fw];
    let expected = data.len() * views * fc * fh * fw;
    if let Ok(bytes) = std::fs::read(&path)
        && bytes.len() == expected * 4
    {
        let data = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        return Ok(FeatureCache { dims, views, data });
    }
    let bar = progress.bar((data.len() * views) as u64, &format!("teacher {name}"));
    let mut out = Vec::with_capacity(expected);
    let per_image = c * h * w;
    let picks: Vec<(usize, usize)> = (0..data.len()).flat_map(|i| (0..views).map(move |v| (i, v))).collect();
    for chunk in picks.chunks(16) {
        let mut pixels = vec![0f32; chunk.len() * per_image];
        for (k, &(i, v)) in chunk.iter().enumerate() {
            let target = &mut pixels[k * per_image..(k + 1) * per_image];
            match augment {
                Some(a) => {
                    a.apply(&data.examples[i].pixels, spec, &mut view_rng(settings.seed, i, v), target)
                }
                None => target.copy_from_slice(&spec.normalise(&data.examples[i].pixels)),
            }
        }
        let x = Tensor::from_data(TensorData::new(pixels, [chunk.len(), c, h, w]), &device);
        let maps = teacher.forward_stem_to(x, settings.stage).into_data();
        out.extend_from_slice(maps.as_slice::<f32>().expect("f32 features"));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).map_err(|e| Error::io("could not write", &path, e))?;
    Ok(FeatureCache { dims, views, data: out })
}

/// For training the teacher on the lesion outlines too: the frozen maps at 1/4 and 1/8 of every
/// cached view (the map at 1/16 is the feature cache itself) and the view's mask averaged down to
/// 1/4, the decoder's own resolution.
pub struct LesionViews {
    pub quarter: FeatureCache,
    pub eighth: FeatureCache,
    pub masks: FeatureCache,
}

impl LesionViews {
    /// The views of these examples (by index), in that order.
    pub fn subset(&self, examples: &[usize]) -> LesionViews {
        LesionViews {
            quarter: self.quarter.subset(examples),
            eighth: self.eighth.subset(examples),
            masks: self.masks.subset(examples),
        }
    }
}

/// The task's masks of `data` ([`crate::data::require_masks`]) and [`cache_lesion_views`] of them.
#[allow(clippy::too_many_arguments)]
pub fn lesion_views(
    teacher: &Teacher,
    data: &Dataset,
    data_dir: &Path,
    spec: &InputSpec,
    augment: Option<&Augment>,
    settings: &TeacherSettings,
    name: &str,
    progress: &Progress,
) -> Result<LesionViews, Error> {
    let masks = crate::data::require_masks(data_dir, data, spec)?;
    Ok(cache_lesion_views(teacher, data, &masks, spec, augment, settings, name, progress))
}

/// Runs the frozen stages up to 1/8 of the input on the same views [`cache_features`] renders (`views` per
/// example from [`view_rng`], or one plain view when `augment` is `None`), warping each mask with
/// its picture. Kept in memory: a few gigabytes for a few hundred images and 12 views.
#[allow(clippy::too_many_arguments)]
pub fn cache_lesion_views(
    teacher: &Teacher,
    data: &Dataset,
    masks: &[Vec<u8>],
    spec: &InputSpec,
    augment: Option<&Augment>,
    settings: &TeacherSettings,
    name: &str,
    progress: &Progress,
) -> LesionViews {
    let views = if augment.is_some() { settings.views } else { 1 };
    let device = Device::flex();
    let (c, h, w) = (spec.channels as usize, spec.height as usize, spec.width as usize);
    let per_image = c * h * w;
    let (qh, qw) = (h.div_ceil(4), w.div_ceil(4));
    let empty = |dims: [usize; 3]| FeatureCache {
        dims,
        views,
        data: Vec::with_capacity(data.len() * views * dims.iter().product::<usize>()),
    };
    let mut out = LesionViews {
        quarter: empty([channels_before(2), qh, qw]),
        eighth: empty([channels_before(3), h.div_ceil(8), w.div_ceil(8)]),
        masks: empty([1, qh, qw]),
    };
    let bar = progress.bar((data.len() * views) as u64, &format!("lesion maps {name}"));
    let picks: Vec<(usize, usize)> = (0..data.len()).flat_map(|i| (0..views).map(move |v| (i, v))).collect();
    for chunk in picks.chunks(16) {
        let mut pixels = vec![0f32; chunk.len() * per_image];
        let mut mask = vec![0f32; h * w];
        for (k, &(i, v)) in chunk.iter().enumerate() {
            let target = &mut pixels[k * per_image..(k + 1) * per_image];
            match augment {
                Some(a) => a.apply_with_mask(
                    &data.examples[i].pixels,
                    &masks[i],
                    spec,
                    &mut view_rng(settings.seed, i, v),
                    target,
                    &mut mask,
                ),
                None => {
                    target.copy_from_slice(&spec.normalise(&data.examples[i].pixels));
                    mask.iter_mut().zip(&masks[i]).for_each(|(m, &t)| *m = f32::from(u8::from(t > 0)));
                }
            }
            // The share of each 4 × 4 cell inside the lesion.
            for y in 0..qh {
                for x in 0..qw {
                    let (mut sum, mut n) = (0.0, 0.0);
                    for sy in 4 * y..(4 * y + 4).min(h) {
                        for sx in 4 * x..(4 * x + 4).min(w) {
                            sum += mask[sy * w + sx];
                            n += 1.0;
                        }
                    }
                    out.masks.data.push(sum / n);
                }
            }
        }
        let x = Tensor::from_data(TensorData::new(pixels, [chunk.len(), c, h, w]), &device);
        let quarter = teacher.forward_stem_to(x, 2);
        let eighth = teacher.forward_stages(quarter.clone(), 2, 3);
        out.quarter.data.extend_from_slice(quarter.into_data().as_slice::<f32>().expect("f32 maps"));
        out.eighth.data.extend_from_slice(eighth.into_data().as_slice::<f32>().expect("f32 maps"));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    out
}

/// Training on the outlines reads the decoder's taps at stage boundaries the cache provides.
pub fn check_lesion_stage(settings: &TeacherSettings) -> Result<(), Error> {
    if settings.lesion_weight > 0.0 && !LESION_STAGES.contains(&settings.stage) {
        return Err(Error::Data(format!(
            "training on the lesion outlines needs the first trained stage between {} and {} (not {})",
            LESION_STAGES.start(),
            LESION_STAGES.end(),
            settings.stage
        )));
    }
    Ok(())
}

/// The joint loss's decoder: the shipped decoder's layout on the teacher's maps.
fn lesion_decoder(device: &Device) -> LesionDecoder {
    LesionConfig::new(vec![channels_before(2), channels_before(3), channels_before(LESION_STAGE)], FEATURES)
        .with_channels(16)
        .init(device)
}

/// [`teacher_logits`] of every cached map, and the joint decoder's mean Dice at 1/4 (probability
/// ≥ 0.5 against a mask cell at least half inside) over the views with a lesion, from one pass of
/// the head: a check on the joint decoder while it trains, not the shipped decoder's figure.
fn logits_and_dice(
    teacher: &Teacher,
    decoder: &LesionDecoder,
    stage: usize,
    maps: &FeatureCache,
    lesion: &LesionViews,
) -> (Vec<Vec<f32>>, f64) {
    let device = Device::flex();
    let count = maps.data.len() / maps.len();
    let mut all_logits = Vec::with_capacity(count);
    let [_, qh, qw] = lesion.masks.dims;
    let (mut sum, mut n) = (0.0, 0usize);
    let picks: Vec<(usize, usize)> = (0..count).map(|k| (k / maps.views, k % maps.views)).collect();
    for chunk in picks.chunks(32) {
        let (head, taps) = head_and_taps(teacher, stage, maps.batch(chunk, &device), lesion, chunk);
        let classes = teacher.classify(head.clone()).into_data();
        let classes = classes.as_slice::<f32>().expect("f32 logits");
        all_logits.extend(classes.chunks(classes.len() / chunk.len()).map(<[f32]>::to_vec));
        let logits = decoder.forward(head, &taps, [qh, qw]).into_data();
        let logits = logits.as_slice::<f32>().expect("f32 logits");
        let truth = lesion.masks.batch(chunk, &device).into_data();
        let truth = truth.as_slice::<f32>().expect("f32 masks");
        for (p, t) in logits.chunks(qh * qw).zip(truth.chunks(qh * qw)) {
            let t: Vec<u8> = t.iter().map(|&v| u8::from(v >= 0.5)).collect();
            if t.iter().any(|&v| v > 0) {
                let p: Vec<u8> = p.iter().map(|&v| u8::from(v >= 0.0)).collect();
                sum += bedside_model::lesion::overlap(&p, &t).0;
                n += 1;
            }
        }
    }
    (all_logits, if n == 0 { f64::NAN } else { sum / n as f64 })
}

/// Where an adaptation's weights and report are saved in a run folder.
fn adaptation_paths(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    (dir.join("teacher-adapted.bpk"), dir.join("teacher.json"))
}

/// The report of an adaptation with these settings already finished in `dir`, if there is one.
fn finished_adaptation(dir: &Path, settings: &TeacherSettings) -> Option<TeacherReport> {
    let (record_path, report_path) = adaptation_paths(dir);
    let report = serde_json::from_str::<TeacherReport>(&std::fs::read_to_string(report_path).ok()?).ok()?;
    (record_path.is_file() && report.settings == *settings).then_some(report)
}

/// What adapting the teacher produced and measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherReport {
    pub settings: TeacherSettings,
    /// Validation AUC of the positive class after each epoch.
    pub val_auc: Vec<f64>,
    pub validation: metrics::Report,
    /// Each epoch's log (absent from teachers adapted before it was recorded).
    #[serde(default)]
    pub history: Vec<crate::trainer::EpochLog>,
    /// With a lesion weight: the joint decoder's Dice at 1/4 on validation after each epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lesion_val_dice: Vec<f64>,
}

/// Trains the teacher's stages from `settings.stage` on and a new head on cached features; returns
/// the adapted teacher (validation mode) and its validation report. Reuses a finished adaptation
/// saved in `dir` with the same settings. `val` holds each image's label and group (for intervals).
/// `lesion` (train views, and validation's to report on) is needed when `settings.lesion_weight`
/// is not 0.
#[allow(clippy::too_many_arguments)]
pub fn adapt_teacher(
    imagenet: Teacher,
    task: Task,
    train: (&FeatureCache, &[usize]),
    val: (&FeatureCache, &[usize], &[String]),
    lesion: Option<(&LesionViews, Option<&LesionViews>)>,
    settings: &TeacherSettings,
    dir: &Path,
    progress: &Progress,
) -> Result<(Teacher, TeacherReport), Error> {
    let classes = task.classes().len();
    let device = Device::flex().autodiff();
    // The new head and the dropout masks come from the backend's generator: seeded, repeatable.
    device.seed(settings.seed ^ 0x7EAC);
    let (record_path, report_path) = adaptation_paths(dir);
    let mut teacher =
        imagenet.fork(&device).train().with_head(classes, &device).freeze_before(settings.stage);
    if let Some(report) = finished_adaptation(dir, settings) {
        let record = ModuleRecord::load(&record_path)
            .map_err(|e| Error::Model(format!("{}: {e}", record_path.display())))?;
        progress.println(format!("reusing the adapted teacher in {}", dir.display()));
        return Ok((teacher.load_record(record).valid(), report));
    }

    check_lesion_stage(settings)?;
    let lesion = match (settings.lesion_weight > 0.0, lesion) {
        (false, _) => None,
        (true, Some(views)) => Some(views),
        (true, None) => return Err(Error::Data("a lesion weight needs the task's masks".into())),
    };
    let mut decoder = lesion.map(|_| lesion_decoder(&device));
    let mut decoder_optimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
    let mut lesion_val_dice = Vec::new();
    let (features, labels) = train;
    let counts: Vec<usize> = (0..classes).map(|c| labels.iter().filter(|&&l| l == c).count()).collect();
    let weights = crate::trainer::class_weights(&counts, settings.class_weights);
    let mut optimizer = AdamWConfig::new().with_weight_decay(0.01).init();
    let steps_per_epoch = labels.len().div_ceil(settings.batch_size);
    let total = (steps_per_epoch * settings.epochs).max(1);
    let mut rng = crate::rng::Rng::new(settings.seed ^ 0x7EAC);
    let (mut val_auc, mut history) = (Vec::new(), Vec::new());
    for epoch in 0..settings.epochs {
        let started = std::time::Instant::now();
        let (mut loss_sum, mut lr) = (0.0, 0.0);
        let mut order: Vec<usize> = (0..labels.len()).collect();
        rng.shuffle(&mut order);
        let bar = progress.bar(steps_per_epoch as u64, &format!("teacher {}/{}", epoch + 1, settings.epochs));
        for (b, batch) in order.chunks(settings.batch_size).enumerate() {
            let picks: Vec<(usize, usize)> = batch.iter().map(|&i| (i, rng.below(features.views))).collect();
            let mut targets = vec![0f32; batch.len() * classes];
            let mut weight_sum = 0.0;
            for (k, &i) in batch.iter().enumerate() {
                targets[k * classes + labels[i]] = weights[labels[i]];
                weight_sum += weights[labels[i]];
            }
            let y = Tensor::<2>::from_data(TensorData::new(targets, [batch.len(), classes]), &device);
            let x = features.batch(&picks, &device);
            let (head, taps) = match lesion {
                Some((views, _)) => {
                    let (head, taps) = head_and_taps(&teacher, settings.stage, x, views, &picks);
                    (head, Some(taps))
                }
                None => (teacher.features_from(settings.stage, x), None),
            };
            let logits = teacher.classify(head.clone());
            let mut loss = -(log_softmax(logits, 1) * y).sum() / weight_sum;
            if let (Some(decoder), Some((views, _)), Some(taps)) = (&decoder, lesion, taps) {
                let [_, qh, qw] = views.masks.dims;
                let target = views.masks.batch(&picks, &device).reshape([picks.len(), qh, qw]);
                let outline = crate::lesion::outline_loss(decoder.forward(head, &taps, [qh, qw]), target);
                loss = loss + outline.mul_scalar(settings.lesion_weight);
            }
            loss_sum += f64::from(loss.clone().into_data().as_slice::<f32>().map_or(f32::NAN, |v| v[0]));
            // Cosine decay from the start: the head is new, the tail is pretrained.
            let t = (epoch * steps_per_epoch + b) as f64 / total as f64;
            lr = settings.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
            let mut grads = loss.backward();
            if let Some(d) = decoder.take() {
                let decoder_grads = GradientsParams::from_module(&mut grads, &d);
                decoder = Some(decoder_optimizer.step(lr, d, decoder_grads));
            }
            let grads = GradientsParams::from_grads(grads, &teacher);
            teacher = optimizer.step(lr, teacher, grads);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let (logits, dice) = match (&decoder, lesion) {
            (Some(d), Some((_, Some(val_views)))) => {
                let (logits, dice) =
                    logits_and_dice(&teacher.valid(), &d.valid(), settings.stage, val.0, val_views);
                (logits, Some(dice))
            }
            _ => (teacher_logits(&teacher.valid(), settings.stage, val.0), None),
        };
        let auc = positive_auc(task, &logits, val.1);
        lesion_val_dice.extend(dice);
        let log = crate::trainer::EpochLog {
            epoch: epoch + 1,
            train_loss: loss_sum / steps_per_epoch as f64,
            learning_rate: lr,
            val_loss: Some(metrics::nll(&metrics::softmax(&logits, 1.0), val.1)),
            val_auc: Some(auc),
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.println(format!(
            "teacher epoch {}/{}  train loss {:.4}  val AUC {auc:.4}{}  {:.0} s",
            epoch + 1,
            settings.epochs,
            log.train_loss,
            dice.map_or(String::new(), |d| format!("  val lesion Dice at 1/4 {d:.3}")),
            log.seconds
        ));
        val_auc.push(auc);
        history.push(log);
    }
    let teacher = teacher.valid();
    let logits = teacher_logits(&teacher, settings.stage, val.0);
    let probabilities = metrics::softmax(&logits, 1.0);
    let predicted: Vec<usize> = probabilities.iter().map(|p| task.decide(p, 0.5)).collect();
    let validation = metrics::report(&probabilities, val.1, &predicted, task.positive_index(), val.2, 1000);
    let report = TeacherReport { settings: settings.clone(), val_auc, validation, history, lesion_val_dice };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    teacher
        .clone()
        .into_record()
        .save(&record_path)
        .map_err(|e| Error::Model(format!("{}: {e}", record_path.display())))?;
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    std::fs::write(&report_path, json).map_err(|e| Error::io("could not write", &report_path, e))?;
    Ok((teacher, report))
}

fn positive_auc(task: Task, logits: &[Vec<f32>], labels: &[usize]) -> f64 {
    let positive = task.positive_index();
    let probabilities = metrics::softmax(logits, 1.0);
    let scores: Vec<f32> = probabilities.iter().map(|p| p[positive]).collect();
    let truth: Vec<bool> = labels.iter().map(|&l| l == positive).collect();
    metrics::roc_auc(&scores, &truth).unwrap_or(f64::NAN)
}

/// Logits for every cached map, `[example × view]` in cache order.
pub fn teacher_logits(teacher: &Teacher, stage: usize, cache: &FeatureCache) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let count = cache.data.len() / cache.len();
    let picks: Vec<(usize, usize)> = (0..count).map(|k| (k / cache.views, k % cache.views)).collect();
    let mut out = Vec::with_capacity(count);
    for chunk in picks.chunks(64) {
        let logits = teacher.forward_from(stage, cache.batch(chunk, &device)).into_data();
        let values = logits.as_slice::<f32>().expect("f32 logits");
        out.extend(values.chunks(values.len() / chunk.len()).map(<[f32]>::to_vec));
    }
    out
}

/// The whole teacher side for one task: load the data at the teacher's input size, cache, adapt,
/// and return the soft targets for the student plus the teacher's report.
pub fn teacher_targets(
    task: Task,
    data_dir: &Path,
    augment: &Augment,
    settings: &TeacherSettings,
    dir: &Path,
    progress: &Progress,
) -> Result<(TeacherTargets, TeacherReport), Error> {
    let (teacher, report, train_cache) = adapted_teacher(task, data_dir, augment, settings, dir, progress)?;
    let flat = teacher_logits(&teacher, settings.stage, &train_cache);
    let logits = flat.chunks(train_cache.views).map(<[Vec<f32>]>::to_vec).collect();
    Ok((TeacherTargets { logits }, report))
}

/// Loads the data at the teacher's input size, caches the frozen stages' maps and adapts the
/// teacher: the adapted teacher (validation mode), its report, and the training views' cache.
pub fn adapted_teacher(
    task: Task,
    data_dir: &Path,
    augment: &Augment,
    settings: &TeacherSettings,
    dir: &Path,
    progress: &Progress,
) -> Result<(Teacher, TeacherReport, FeatureCache), Error> {
    check_lesion_stage(settings)?;
    let spec = teacher_input(task);
    let train = crate::data::load(task, data_dir, "train", &spec, progress)?;
    let val = crate::data::load(task, data_dir, "val", &spec, progress)?;
    let imagenet =
        crate::teacher::load_imagenet_teacher(&Device::flex()).map_err(|e| Error::Model(e.to_string()))?;
    let frozen = imagenet.valid();
    let train_cache =
        cache_features(&frozen, &train, &spec, Some(augment), settings, dir, "train", progress)?;
    let val_cache = cache_features(&frozen, &val, &spec, None, settings, dir, "val", progress)?;
    let labels = |d: &Dataset| d.examples.iter().map(|e| e.label).collect::<Vec<usize>>();
    let (train_labels, val_labels) = (labels(&train), labels(&val));
    // A finished adaptation is reused as it is: no need for the outlines' maps then.
    let lesion = if settings.lesion_weight > 0.0 && finished_adaptation(dir, settings).is_none() {
        let views = |data: &Dataset, augment: Option<&Augment>, name: &str| {
            lesion_views(&frozen, data, data_dir, &spec, augment, settings, name, progress)
        };
        Some((views(&train, Some(augment), "train")?, views(&val, None, "val")?))
    } else {
        None
    };
    let (teacher, report) = adapt_teacher(
        frozen,
        task,
        (&train_cache, &train_labels),
        (&val_cache, &val_labels, &val.groups()),
        lesion.as_ref().map(|(t, v)| (t, Some(v))),
        settings,
        dir,
        progress,
    )?;
    Ok((teacher, report, train_cache))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn teacher_input_keeps_the_students_aspect_ratio() {
        let skin = teacher_input(Task::Skin);
        assert_eq!((skin.width, skin.height, skin.channels), (224, 168, 3));
        let chest = teacher_input(Task::Chest);
        assert_eq!((chest.width, chest.height), (224, 224));
        assert!((chest.mean[0] - 127.0 / 255.0).abs() < 1e-6);
    }

    /// Whichever stage training starts from, the decoder reads the same maps and the head the same
    /// features as one pass from the stem computes.
    #[test]
    fn the_outline_taps_do_not_depend_on_the_first_trained_stage() {
        let device = Device::flex();
        device.seed(5);
        let teacher = bedside_model::teacher::TeacherConfig::new().with_num_classes(3).init(&device);
        let x = Tensor::<4>::random([1, 3, 64, 48], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let maps: Vec<Tensor<4>> =
            [2, 3, LESION_STAGE].iter().map(|&s| teacher.forward_stem_to(x.clone(), s)).collect();
        let head = teacher.features_from(0, teacher.forward_stem_to(x.clone(), 0));
        // The cache of one view, as `cache_lesion_views` holds it.
        let cache = |map: &Tensor<4>| {
            let [_, c, h, w] = map.dims();
            let data = map.clone().into_data().as_slice::<f32>().unwrap().to_vec();
            FeatureCache { dims: [c, h, w], views: 1, data }
        };
        let lesion = LesionViews {
            quarter: cache(&maps[0]),
            eighth: cache(&maps[1]),
            masks: FeatureCache { dims: [1, 1, 1], views: 1, data: vec![0.0] },
        };
        for stage in LESION_STAGES {
            let x_at_stage = teacher.forward_stem_to(x.clone(), stage);
            let (got_head, taps) = head_and_taps(&teacher, stage, x_at_stage, &lesion, &[(0, 0)]);
            for (got, want) in taps.iter().chain([&got_head]).zip(maps.iter().chain([&head])) {
                assert_eq!(got.dims(), want.dims(), "stage {stage}");
                got.clone()
                    .into_data()
                    .assert_approx_eq::<f32>(&want.clone().into_data(), Default::default());
            }
        }
    }

    /// Student and teacher render view `v` of an image from the same random stream at their own
    /// sizes: the two pictures must show the same thing.
    #[test]
    fn student_and_teacher_see_the_same_view() {
        let task = Task::Breast;
        let student = crate::pipeline::input_shape(task);
        let teacher = teacher_input(task);
        // A bright square off-centre on a dark background, at a source size of 160×160.
        let source: Vec<u8> =
            (0..160 * 160).map(|i| if (i % 160) > 100 && (i / 160) < 50 { 230 } else { 20 }).collect();
        let small = student.fit(&source, 160, 160, 1);
        let large = teacher.fit(&source, 160, 160, 1);
        let augment = Augment::standard(true);
        for view in 0..4 {
            let mut s = vec![0f32; 128 * 128];
            let mut t = vec![0f32; 3 * 224 * 224];
            augment.apply(&small, &student, &mut view_rng(9, 3, view), &mut s);
            augment.apply(&large, &teacher, &mut view_rng(9, 3, view), &mut t);
            // Compare the teacher's first plane sampled at the student's pixel centres.
            let (mut agree, mut total) = (0, 0);
            for y in 0..128 {
                for x in 0..128 {
                    let (tx, ty) = (x * 224 / 128, y * 224 / 128);
                    let bright_s = s[y * 128 + x] > 0.0;
                    let bright_t = t[ty * 224 + tx] > 0.0;
                    agree += (bright_s == bright_t) as usize;
                    total += 1;
                }
            }
            assert!(agree as f64 / total as f64 > 0.97, "view {view}: {agree}/{total} pixels agree");
        }
        // A different stream gives a different view.
        let (mut a, mut b) = (vec![0f32; 128 * 128], vec![0f32; 128 * 128]);
        augment.apply(&small, &student, &mut view_rng(9, 3, 0), &mut a);
        augment.apply(&small, &student, &mut Rng::new(1), &mut b);
        assert_ne!(a, b);
    }
}
