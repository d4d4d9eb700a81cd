//! The student's training loop: AdamW with warm-up and cosine decay, class-weighted cross-entropy,
//! optional distillation from cached teacher logits, a checkpoint after every epoch (`--resume`
//! continues from it), a progress bar and a per-epoch log.

use crate::augment::Augment;
use crate::data::Dataset;
use crate::rng::Rng;
use crate::{Error, Progress};
use bedside_model::input::{InputSpec, Intensity};
use bedside_model::student::{Student, StudentConfig};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything that determines a training run (saved with its checkpoints and the model card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub network: StudentConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub augment: Augment,
    /// Grey-level standardisation of the input (recorded in `model.json`'s input spec).
    #[serde(default)]
    pub intensity: Intensity,
    /// Weigh each class by (N / (K · n_class))^½ in the loss, against imbalance.
    pub class_weights: bool,
    /// Stop each epoch after this many batches (smoke runs).
    pub max_batches: Option<usize>,
    pub distillation: Option<DistillSettings>,
    /// Which task images and photographs the gate learns from and is validated on (gate only;
    /// `None`: [`GateData::default`]). Recorded so that later steps measure on the same set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_data: Option<crate::gate::GateData>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillSettings {
    pub temperature: f32,
    /// Weight of the distillation term; the label term gets 1 − alpha.
    pub alpha: f32,
}

/// The teacher's logits for fixed augmented views of every training image: `[example][view][class]`.
/// View `v` of example `i` is [`view_rng`]`(seed, i, v)` applied with the student's augmentation.
pub struct TeacherTargets {
    pub logits: Vec<Vec<Vec<f32>>>,
}

/// The random stream that defines augmented view `view` of example `index` (shared with the
/// teacher so both see the same view).
pub fn view_rng(seed: u64, index: usize, view: usize) -> Rng {
    Rng::new(seed).fork(0x5EED_0000 + (index as u64) * 64 + view as u64)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub learning_rate: f64,
    /// Validation loss and AUC of the positive class, when a validation set is given.
    pub val_loss: Option<f64>,
    pub val_auc: Option<f64>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    settings: TrainSettings,
    input: InputSpec,
    epochs_done: usize,
    history: Vec<EpochLog>,
}

/// The student of another run (its last checkpoint in `run_dir`) as the starting point for
/// `network`, with a new classifier for `network`'s classes: transfer learning for a task with few
/// images (breast: 543), from one with more of a similar kind (chest: 4,708 grey X-rays). The rest
/// of the network must be the same shape; `seed` draws the new classifier. Returns the student and
/// a description for the card.
pub fn pretrained_start(
    run_dir: &Path,
    network: &StudentConfig,
    seed: u64,
) -> Result<(Student, String), Error> {
    let state_path = run_dir.join("checkpoint.json");
    let model_path = run_dir.join("checkpoint-model.bpk");
    let text =
        std::fs::read_to_string(&state_path).map_err(|e| Error::io("could not read", &state_path, e))?;
    let saved: CheckpointState =
        serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", state_path.display())))?;
    let source = &saved.settings.network;
    let mut reshaped = source.clone();
    reshaped.num_classes = network.num_classes;
    if reshaped != *network {
        return Err(Error::Data(format!(
            "{} holds a network of another shape ({} input channels, width {}, head {}, hidden {:?}); \
             only the number of classes may differ",
            run_dir.display(),
            source.in_channels,
            source.width,
            source.head_channels,
            source.hidden
        )));
    }
    let device = Device::flex();
    // The new classifier is drawn from the backend's generator: seeded, so the run is repeatable.
    device.seed(seed);
    let record = ModuleRecord::load(&model_path)
        .map_err(|e| Error::Model(format!("{}: {e}", model_path.display())))?;
    let mut model = source.init(&device).load_record(record);
    model.classifier = burn::nn::LinearConfig::new(network.head_channels, network.num_classes).init(&device);
    let description = format!(
        "the student of the run in `{}` ({} epoch{} on {} classes, batch {}, seed {}), its classifier \
         replaced by a new one for this task's classes; then every layer trained",
        run_dir.display(),
        saved.epochs_done,
        if saved.epochs_done == 1 { "" } else { "s" },
        source.num_classes,
        saved.settings.batch_size,
        saved.settings.seed
    );
    Ok((model, description))
}

/// A trained student (in validation mode) and its training log.
pub struct Trained {
    pub model: Student,
    pub history: Vec<EpochLog>,
}

fn lr_at(settings: &TrainSettings, step: usize, total: usize, per_epoch: usize) -> f64 {
    let warmup = per_epoch.max(1);
    if step < warmup {
        return settings.learning_rate * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    settings.learning_rate * (0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Loss weight per class from the examples per class: (N / (K · n_class))^½ when `weighted`,
/// else 1 each.
pub fn class_weights(counts: &[usize], weighted: bool) -> Vec<f32> {
    if !weighted {
        return vec![1.0; counts.len()];
    }
    let (n, k) = (counts.iter().sum::<usize>() as f32, counts.len() as f32);
    counts.iter().map(|&c| (n / (k * c.max(1) as f32)).sqrt()).collect()
}

/// Trains a student on `train`, checkpointing into `run_dir`; with `resume`, continues from the
/// last checkpoint there (the settings must be the same). `start` fine-tunes given weights (of the
/// shape `settings.network` describes, BatchNorm folded or not) instead of a fresh initialisation.
#[allow(clippy::too_many_arguments)]
pub fn train_student(
    settings: &TrainSettings,
    start: Option<&Student>,
    input: &InputSpec,
    train: &Dataset,
    val: Option<&Dataset>,
    teacher: Option<&TeacherTargets>,
    run_dir: &Path,
    resume: bool,
    progress: &Progress,
) -> Result<Trained, Error> {
    let device = Device::flex().autodiff();
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io("could not create", run_dir, e))?;
    let state_path = run_dir.join("checkpoint.json");
    let model_path = run_dir.join("checkpoint-model.bpk");
    let optim_path = run_dir.join("checkpoint-optim.bpk");

    // Initial weights and dropout masks come from the backend's generator, which is seeded from
    // entropy unless told otherwise: seed it, and again at every epoch so a resumed run draws
    // the same masks as an uninterrupted one.
    device.seed(settings.seed);
    let mut model = match start {
        Some(start) => start.clone().fork(&device).train(),
        None => settings.network.init(&device),
    };
    let mut optimizer = AdamWConfig::new().with_weight_decay(settings.weight_decay as f32).init();
    let mut state =
        CheckpointState { settings: settings.clone(), input: input.clone(), epochs_done: 0, history: vec![] };
    if resume && state_path.is_file() {
        let text =
            std::fs::read_to_string(&state_path).map_err(|e| Error::io("could not read", &state_path, e))?;
        let saved: CheckpointState =
            serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", state_path.display())))?;
        if saved.settings != *settings || saved.input != *input {
            return Err(Error::Data(format!(
                "{} was trained with other settings; remove it or run without --resume",
                run_dir.display()
            )));
        }
        let record = ModuleRecord::load(&model_path)
            .map_err(|e| Error::Model(format!("{}: {e}", model_path.display())))?;
        model = model.load_record(record);
        optimizer = optimizer
            .load(&optim_path)
            .map_err(|e| Error::Model(format!("{}: {e}", optim_path.display())))?;
        state = saved;
        progress.println(format!("resuming after epoch {} from {}", state.epochs_done, run_dir.display()));
    }

    let counts = train.class_counts();
    let weights = class_weights(&counts, settings.class_weights);
    let classes = settings.network.num_classes;
    let (c, h, w) = (input.channels as usize, input.height as usize, input.width as usize);
    let per_image = c * h * w;
    let batches = train.len().div_ceil(settings.batch_size);
    let per_epoch = settings.max_batches.map_or(batches, |m| m.min(batches));
    let total_steps = per_epoch * settings.epochs;
    let seed_rng = Rng::new(settings.seed);

    for epoch in state.epochs_done..settings.epochs {
        let started = std::time::Instant::now();
        let mut rng = seed_rng.fork(epoch as u64);
        device.seed(rng.fork(u64::MAX).next_u64());
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let bar = progress.bar(per_epoch as u64, &format!("epoch {}/{}", epoch + 1, settings.epochs));
        let mut loss_sum = 0.0;
        let mut lr = 0.0;
        for (b, batch) in order.chunks(settings.batch_size).take(per_epoch).enumerate() {
            let n = batch.len();
            let mut pixels = vec![0f32; n * per_image];
            let mut targets = vec![0f32; n * classes];
            let mut soft = teacher.map(|_| vec![0f32; n * classes]);
            let mut weight_sum = 0.0;
            for (k, &i) in batch.iter().enumerate() {
                let example = &train.examples[i];
                let out = &mut pixels[k * per_image..(k + 1) * per_image];
                match (teacher, &mut soft) {
                    (Some(t), Some(soft)) => {
                        // One of the fixed views the teacher saw, and the teacher's soft target for it.
                        let view = rng.below(t.logits[i].len());
                        settings.augment.apply(
                            &example.pixels,
                            input,
                            &mut view_rng(settings.seed, i, view),
                            out,
                        );
                        let temperature = settings.distillation.as_ref().map_or(1.0, |d| d.temperature);
                        let p = bedside_model::infer::calibrated(&t.logits[i][view], temperature);
                        soft[k * classes..(k + 1) * classes].copy_from_slice(&p);
                    }
                    _ => settings.augment.apply(&example.pixels, input, &mut rng, out),
                }
                targets[k * classes + example.label] = weights[example.label];
                weight_sum += weights[example.label];
            }
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, c, h, w]), &device);
            let y = Tensor::<2>::from_data(TensorData::new(targets, [n, classes]), &device);
            let logits = model.forward(x);
            let hard = -(log_softmax(logits.clone(), 1) * y).sum() / weight_sum;
            let loss = match (&settings.distillation, soft) {
                (Some(d), Some(soft)) => {
                    let t = Tensor::<2>::from_data(TensorData::new(soft, [n, classes]), &device);
                    // KL(teacher ‖ student) at temperature T, scaled by T² to keep gradient sizes.
                    let log_student = log_softmax(logits / d.temperature, 1);
                    let kd = (t.clone() * (t.clamp_min(1e-8).log() - log_student)).sum() / n as f32;
                    hard * (1.0 - d.alpha) + kd * (d.alpha * d.temperature * d.temperature)
                }
                _ => hard,
            };
            let loss_value = loss.clone().into_data().as_slice::<f32>().map(|s| s[0]).unwrap_or(f32::NAN);
            if !loss_value.is_finite() {
                return Err(Error::Model(format!("the loss diverged at epoch {} batch {b}", epoch + 1)));
            }
            loss_sum += loss_value as f64;
            lr = lr_at(settings, epoch * per_epoch + b, total_steps, per_epoch);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / (b + 1) as f64));
        }
        bar.finish_and_clear();

        let (val_loss, val_auc) = match val {
            Some(val) => {
                let logits = predict_logits(&model.valid(), input, val, settings.batch_size);
                let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
                let probs = crate::metrics::softmax(&logits, 1.0);
                let positive = train.task.positive_index();
                let scores: Vec<f32> = probs.iter().map(|p| p[positive]).collect();
                let truth: Vec<bool> = labels.iter().map(|&l| l == positive).collect();
                (Some(crate::metrics::nll(&probs, &labels)), crate::metrics::roc_auc(&scores, &truth))
            }
            None => (None, None),
        };
        let log = EpochLog {
            epoch: epoch + 1,
            train_loss: loss_sum / per_epoch.max(1) as f64,
            learning_rate: lr,
            val_loss,
            val_auc,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.println(format!(
            "epoch {:>2}/{}  train loss {:.4}  val loss {}  val AUC {}  lr {:.2e}  {:.0} s",
            log.epoch,
            settings.epochs,
            log.train_loss,
            log.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            log.val_auc.map_or("-".into(), |v| format!("{v:.4}")),
            log.learning_rate,
            log.seconds
        ));
        state.history.push(log);
        state.epochs_done = epoch + 1;
        model
            .clone()
            .into_record()
            .save(&model_path)
            .map_err(|e| Error::Model(format!("{}: {e}", model_path.display())))?;
        optimizer.save(&optim_path).map_err(|e| Error::Model(format!("{}: {e}", optim_path.display())))?;
        let json = serde_json::to_string_pretty(&state).expect("state serialises");
        std::fs::write(&state_path, json).map_err(|e| Error::io("could not write", &state_path, e))?;
    }
    Ok(Trained { model: model.valid(), history: state.history })
}

/// Logits of a model in validation mode for every example, in batches, without augmentation.
pub fn predict_logits(
    model: &Student,
    input: &InputSpec,
    data: &Dataset,
    batch_size: usize,
) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let mut out = Vec::with_capacity(data.len());
    for batch in data.examples.chunks(batch_size) {
        let pixels: Vec<f32> = batch.iter().flat_map(|e| input.normalise(&e.pixels)).collect();
        out.extend(bedside_model::infer::logits(model, input, pixels, &device));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_warms_up_then_decays() {
        let settings = TrainSettings {
            network: StudentConfig::new(2),
            epochs: 10,
            batch_size: 32,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            seed: 0,
            augment: Augment::none(),
            intensity: Default::default(),
            class_weights: false,
            max_batches: None,
            distillation: None,
            gate_data: None,
        };
        let lrs: Vec<f64> = (0..100).map(|s| lr_at(&settings, s, 100, 10)).collect();
        assert!(lrs[0] < lrs[9] && (lrs[9] - 1e-3).abs() < 1e-12, "linear warm-up over the first epoch");
        assert!(lrs.windows(2).skip(10).all(|w| w[1] <= w[0]), "then never rises");
        assert!(lrs[99] < 1e-4 && lrs[99] > 0.0);
    }

    /// At learning rate 0 a fine-tuning run must hand back the weights it started from (a fresh
    /// initialisation would give other outputs).
    #[test]
    fn fine_tuning_starts_from_the_given_weights() {
        let input = crate::pipeline::input_shape(bedside_model::task::Task::Chest);
        let side = (input.width * input.height) as usize;
        let examples = (0..4)
            .map(|i| crate::data::Example {
                file: String::new(),
                label: i % 2,
                group: i.to_string(),
                pixels: (0..side).map(|p| ((p * (i + 1)) % 251) as u8).collect(),
            })
            .collect();
        let data = Dataset { task: bedside_model::task::Task::Chest, examples };
        let settings = TrainSettings {
            network: StudentConfig::new(2).with_in_channels(1),
            epochs: 1,
            batch_size: 2,
            learning_rate: 0.0,
            weight_decay: 0.01,
            seed: 0,
            augment: Augment::none(),
            intensity: Default::default(),
            class_weights: false,
            max_batches: None,
            distillation: None,
            gate_data: None,
        };
        let start = settings.network.init(&Device::flex()).fold_batchnorm();
        let dir = std::env::temp_dir().join(format!("bedside-fine-tune-{}", std::process::id()));
        let trained = train_student(
            &settings,
            Some(&start),
            &input,
            &data,
            None,
            None,
            &dir,
            false,
            &Progress::hidden(),
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let before = predict_logits(&start.valid(), &input, &data, 4);
        let after = predict_logits(&trained.model, &input, &data, 4);
        for (a, b) in before.iter().flatten().zip(after.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{before:?} vs {after:?}");
        }
    }
}
