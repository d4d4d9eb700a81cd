//! The model card: `MODEL_CARD.md` and its plots (`plots/{roc,calibration,confusion,training}.png`).
//!
//! The card is drawn by one renderer ([`render`]) from what the model folder records: `model.json`'s
//! card (the validation report, the epoch log, the teacher, and each later step's measurements —
//! int8, pruning, cross-validation, review rule, robustness, heat maps, the gate's routing) and
//! `lesion.json`'s. Steps record data, never Markdown, and every step that writes `model.json`
//! redraws the card, so a committed card that differs from [`render`]'s is stale (CI checks it).
//! The only facts not taken from the records are each data set's citation, licence and
//! preprocessing (`data_sheet`), copied from the data folders' READMEs.

mod data_sheet;
mod markdown;
pub mod plots;
mod sections;

use crate::Error;
use crate::distill::TeacherReport;
use crate::metrics::{self, Estimate, Report};
use crate::trainer::EpochLog;
use bedside_model::artifact::ModelInfo;
use std::path::Path;

/// Everything the card's body is written from: all of it recorded in `model.json`'s card by the
/// steps that measured it ([`record_validation`], training's history and teacher).
pub struct CardInputs<'a> {
    pub info: &'a ModelInfo,
    /// The shipped model on the validation split (calibrated probabilities, the task's decision rule).
    pub validation: Report,
    pub history: Vec<EpochLog>,
    pub teacher: Option<TeacherReport>,
    /// Training images per class.
    pub train_counts: Vec<usize>,
    /// Parameters of the shipped (BatchNorm-folded) network.
    pub params: usize,
    /// Size of `model-fp32.bin`.
    pub weights_bytes: u64,
    /// Short hash of the commit the validation figures were measured with, and of the one the
    /// weights were made with (training, or the pruning run that shipped them).
    pub commit: Option<String>,
    pub training_commit: Option<String>,
}

impl<'a> CardInputs<'a> {
    /// The body's inputs as `info.card` records them.
    pub fn from_info(info: &'a ModelInfo) -> Result<CardInputs<'a>, Error> {
        let card = &info.card;
        fn get<T: serde::de::DeserializeOwned>(card: &serde_json::Value, key: &str) -> Result<T, Error> {
            serde_json::from_value(card[key].clone()).map_err(|e| {
                Error::Data(format!(
                    "model.json: card.{key}: {e} (measure it again with `bedside card --model <folder> --remeasure`)"
                ))
            })
        }
        let teacher = &card["teacher"];
        let teacher = (!teacher.is_null())
            .then(|| {
                serde_json::from_value(serde_json::json!({
                    "settings": teacher["settings"],
                    "val_auc": teacher["val_auc_per_epoch"],
                    "validation": teacher["validation"],
                    "lesion_val_dice": teacher.get("lesion_val_dice_per_epoch").cloned().unwrap_or_else(|| serde_json::json!([])),
                }))
            })
            .transpose()
            .map_err(|e| Error::Data(format!("model.json: card.teacher: {e}")))?;
        Ok(CardInputs {
            info,
            validation: get(card, "validation")?,
            history: get(card, "history")?,
            teacher,
            train_counts: get(card, "train_counts")?,
            params: get(card, "params")?,
            weights_bytes: get(card, "weights_bytes")?,
            commit: get(card, "commit")?,
            training_commit: get(card, "training_commit")?,
        })
    }
}

/// Reliability bins, the same as the ECE in [`metrics::report`].
const BINS: usize = 15;
/// Bootstrap resamples for the intervals, as in [`metrics::report`].
const RESAMPLES: usize = 1000;

/// Records in `info.card` what the card's body says about the weights now in the folder: their
/// validation report, the training images per class, the network's size and the commit measuring
/// them.
pub fn record_validation(
    info: &mut ModelInfo,
    validation: &Report,
    train_counts: &[usize],
    params: usize,
    weights_bytes: u64,
) {
    info.card["validation"] = serde_json::to_value(validation).expect("report serialises");
    info.card["train_counts"] = serde_json::json!(train_counts);
    info.card["params"] = params.into();
    info.card["weights_bytes"] = weights_bytes.into();
    info.card["commit"] = crate::pipeline::commit().into();
}

/// Draws `dir/plots/{roc,calibration,confusion,training}.png` from the validation probabilities the
/// report was measured on and the training history in `info.card`.
pub fn draw_plots(
    dir: &Path,
    info: &ModelInfo,
    report: &Report,
    val_probabilities: &[Vec<f32>],
    val_labels: &[usize],
) -> Result<(), Error> {
    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(|e| Error::io("could not create", &plot_dir, e))?;
    let positive = info.task.positive_index();
    let n = val_labels.len();
    let curves = roc_curves(info, val_probabilities, val_labels);
    let (fpr, tpr) = (1.0 - report.specificity.value, report.sensitivity.value);
    let operating = (fpr.is_finite() && tpr.is_finite()).then(|| {
        let label = format!("operating point: sensitivity {}, specificity {}", num(tpr), num(1.0 - fpr));
        ((fpr, tpr), label)
    });
    plots::roc(&plot_dir.join("roc.png"), &format!("ROC on validation ({n} images)"), &curves, operating)?;
    let bins = metrics::reliability(val_probabilities, val_labels, BINS);
    let title = format!("Calibration on validation: ECE {} (T = {:.3})", num(report.ece), info.temperature);
    plots::reliability(&plot_dir.join("calibration.png"), &title, BINS, &bins)?;
    let title = format!("Confusion matrix on validation ({n} images)");
    plots::confusion(&plot_dir.join("confusion.png"), &title, &info.classes, &report.confusion)?;
    let history: Vec<EpochLog> = serde_json::from_value(info.card["history"].clone())
        .map_err(|e| Error::Data(format!("model.json has no training history to plot: {e}")))?;
    plots::training(&plot_dir.join("training.png"), &info.classes[positive], &history)
}

/// `MODEL_CARD.md` of the model folder `dir`, drawn from its `model.json` (and `lesion.json` where
/// the folder has a lesion decoder): the one renderer of every card. Each step that measures a
/// model records its numbers there; nothing edits the Markdown itself.
pub fn render(dir: &Path) -> Result<String, Error> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("could not read", &path, e))?;
    let info = ModelInfo::from_json(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let lesion_path = dir.join("lesion.json");
    let lesion: Option<serde_json::Value> = if lesion_path.is_file() {
        let text = std::fs::read_to_string(&lesion_path)
            .map_err(|e| Error::io("could not read", &lesion_path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Data(format!("{}: {e}", lesion_path.display())))?;
        Some(value["card"].clone())
    } else {
        None
    };
    render_info(&info, lesion.as_ref()).map_err(|e| match e {
        Error::Data(message) => Error::Data(format!("{}: {message}", dir.display())),
        other => other,
    })
}

/// The card of `info` (with the lesion decoder's recorded card, if any).
pub fn render_info(info: &ModelInfo, lesion: Option<&serde_json::Value>) -> Result<String, Error> {
    let inputs = CardInputs::from_info(info)?;
    let sections = sections::render(info, lesion)?;
    Ok(markdown::card(&inputs, &sections))
}

/// Writes `dir/MODEL_CARD.md` from the folder's `model.json` ([`render`]).
pub fn write(dir: &Path) -> Result<(), Error> {
    let card = render(dir)?;
    let path = dir.join("MODEL_CARD.md");
    std::fs::write(&path, card).map_err(|e| Error::io("could not write", &path, e))
}

/// Draws `dir/plots/pruning.png` from a pruning curve.
pub fn pruning_plot(dir: &Path, points: &[crate::prune::Point], shipped: usize) -> Result<(), Error> {
    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(|e| Error::io("could not create", &plot_dir, e))?;
    let points: Vec<plots::PrunePoint> = points
        .iter()
        .enumerate()
        .map(|(i, p)| plots::PrunePoint {
            params: p.params,
            pruned: p.auc_pruned,
            fine_tuned: p.auc,
            int8: p.int8_auc,
            shipped: i == shipped,
        })
        .collect();
    plots::pruning(&plot_dir.join("pruning.png"), "Pruning: validation AUC against size", &points)
}

/// The positive class's ROC curve, and for three or more classes every class against the rest.
fn roc_curves(info: &ModelInfo, val_probabilities: &[Vec<f32>], val_labels: &[usize]) -> Vec<plots::Curve> {
    let classes = &info.classes;
    let positive = info.task.positive_index();
    let shown: Vec<usize> = if classes.len() == 2 { vec![positive] } else { (0..classes.len()).collect() };
    shown
        .into_iter()
        .filter_map(|c| {
            let scores: Vec<f32> = val_probabilities.iter().map(|p| p[c]).collect();
            let truth: Vec<bool> = val_labels.iter().map(|&y| y == c).collect();
            let auc = metrics::roc_auc(&scores, &truth)?;
            let rest = if classes.len() == 2 { classes[1 - c].clone() } else { "rest".into() };
            Some(plots::Curve {
                label: format!("{} vs {rest}, AUC {}", classes[c], num(auc)),
                points: metrics::roc_curve(&scores, &truth),
                emphasis: c == positive,
            })
        })
        .collect()
}

/// A proportion or AUC as it appears everywhere in the card.
fn num(value: f64) -> String {
    if value.is_finite() { format!("{value:.3}") } else { "n/a".into() }
}

/// `value (low–high)`: a point estimate with its 95 % interval.
fn estimate(e: &Estimate) -> String {
    if e.low.is_finite() && e.high.is_finite() {
        format!("{} ({}–{})", num(e.value), num(e.low), num(e.high))
    } else {
        num(e.value)
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Validation images per class: the rows of the confusion matrix.
fn val_counts(report: &Report) -> Vec<usize> {
    report.confusion.iter().map(|row| row.iter().sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Augment;
    use crate::distill::TeacherSettings;
    use crate::pipeline;
    use crate::rng::Rng;
    use crate::trainer::TrainSettings;
    use bedside_model::artifact::FORMAT_VERSION;
    use bedside_model::student::StudentConfig;
    use bedside_model::task::Task;

    /// Calibrated-looking probabilities: the true class gets a random head start.
    fn synthetic(task: Task, n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let k = task.classes().len();
        let mut rng = Rng::new(seed);
        let labels: Vec<usize> = (0..n).map(|i| (i + rng.below(3)) % k).collect();
        let logits: Vec<Vec<f32>> = labels
            .iter()
            .map(|&y| {
                (0..k)
                    .map(|c| rng.uniform(-1.0, 1.0) + if c == y { rng.uniform(0.0, 3.0) } else { 0.0 })
                    .collect()
            })
            .collect();
        (metrics::softmax(&logits, 1.0), labels)
    }

    fn settings(task: Task) -> TrainSettings {
        TrainSettings {
            network: StudentConfig::new(task.classes().len()),
            epochs: 6,
            batch_size: 32,
            learning_rate: 2e-3,
            weight_decay: 0.01,
            seed: 0,
            augment: Augment::standard(task.mirror_is_valid()),
            intensity: Default::default(),
            class_weights: true,
            max_batches: None,
            distillation: None,
            gate_data: None,
        }
    }

    fn write(task: Task, teacher: Option<&TeacherReport>) -> (std::path::PathBuf, String, ModelInfo, Report) {
        let (probabilities, labels) = synthetic(task, 240, 3);
        let threshold =
            task.uses_threshold().then(|| pipeline::choose_threshold(task, &probabilities, &labels));
        let input = pipeline::input_shape(task);
        let network = StudentConfig {
            in_channels: input.channels as usize,
            ..StudentConfig::new(task.classes().len())
        };
        let mut info = ModelInfo {
            format_version: FORMAT_VERSION,
            task,
            classes: task.classes().iter().map(|c| c.to_string()).collect(),
            input,
            network,
            temperature: 1.2345,
            threshold,
            review: None,
            heat_map: Default::default(),
            card: serde_json::json!({
                "training_command": format!("bedside train --task {}", task.name()),
                "settings": settings(task),
                "training_commit": "abc1234",
            }),
        };
        // Pairs of images from one patient.
        let groups: Vec<usize> = (0..labels.len()).map(|i| i / 2).collect();
        let report = pipeline::evaluate_probabilities(&info, &probabilities, &labels, &groups);
        let history: Vec<EpochLog> = (1..=6)
            .map(|e| EpochLog {
                epoch: e,
                train_loss: 1.2 / e as f64,
                learning_rate: 2e-3 / e as f64,
                val_loss: Some(1.0 / e as f64 + 0.2),
                val_auc: Some(0.6 + 0.05 * e as f64),
                seconds: 12.0,
            })
            .collect();
        info.card["history"] = serde_json::to_value(&history).unwrap();
        if let Some(teacher) = teacher {
            info.card["teacher"] = serde_json::json!({
                "settings": teacher.settings,
                "val_auc_per_epoch": teacher.val_auc,
                "validation": teacher.validation,
            });
        }
        // One folder per call: the tests run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bedside-card-{}-{call}", std::process::id()));
        let train_counts: Vec<usize> = (0..task.classes().len()).map(|c| 100 + 10 * c).collect();
        record_validation(&mut info, &report, &train_counts, 1_234_567, 4_938_268);
        draw_plots(&dir, &info, &report, &probabilities, &labels).unwrap();
        std::fs::write(dir.join("model.json"), serde_json::to_string_pretty(&info).unwrap()).unwrap();
        super::write(&dir).unwrap();
        let card = std::fs::read_to_string(dir.join("MODEL_CARD.md")).unwrap();
        (dir, card, info, report)
    }

    fn check_plots(dir: &Path) {
        for name in ["roc", "calibration", "confusion", "training"] {
            let path = dir.join("plots").join(format!("{name}.png"));
            let img = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
            assert_eq!(img.dimensions(), plots::SIZE, "{name}");
            let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
            assert!(colours.len() > 30, "{name}: only {} colours", colours.len());
            let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
            let share = inked as f64 / (img.width() * img.height()) as f64;
            assert!((0.02..0.9).contains(&share), "{name}: {share:.3} of the pixels are not white");
            // The title is text at the top: dark glyph pixels must be there.
            let dark = (0..60)
                .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 110))
                .count();
            assert!(dark > 50, "{name}: no title text ({dark} dark pixels)");
        }
    }

    #[test]
    fn skin_card_has_every_class_the_threshold_and_the_table_values() {
        let (dir, card, info, report) = write(Task::Skin, None);
        check_plots(&dir);
        for class in &info.classes {
            assert!(card.contains(&format!("| {class} |")), "class {class} missing from the card");
        }
        let threshold = info.threshold.expect("skin uses a threshold");
        assert!(card.contains(&format!("**Threshold {threshold:.4}**")), "threshold missing");
        assert!(card.contains(&format!("| AUC (macro, one-vs-rest) | {} |", estimate(&report.auc))));
        assert!(card.contains(&format!("| AUC of mel vs rest | {} |", estimate(&report.positive_auc))));
        assert!(card.contains("CC BY-NC 4.0"));
        assert!(card.contains("bedside train --task skin"));
        assert!(card.contains("`abc1234`"));
        assert!(card.contains("1,234,567 parameters"));
        assert!(card.contains("bedside eval --model models/skin --split val"));
        for plot in ["roc", "calibration", "confusion", "training"] {
            assert!(card.contains(&format!("(plots/{plot}.png)")), "{plot} not embedded");
        }
        assert!(!card.contains("Smoke run"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn chest_card_reports_the_teacher_and_breast_card_its_threshold() {
        let (probabilities, labels) = synthetic(Task::Chest, 100, 9);
        let predicted: Vec<usize> = probabilities.iter().map(|p| Task::Chest.decide(p, 0.5)).collect();
        let teacher = TeacherReport {
            settings: TeacherSettings {
                views: 3,
                stage: 5,
                epochs: 6,
                batch_size: 32,
                learning_rate: 1e-3,
                seed: 0,
                class_weights: true,
                lesion_weight: 0.0,
            },
            val_auc: vec![0.81, 0.9],
            validation: metrics::report(
                &probabilities,
                &labels,
                &predicted,
                1,
                &(0..labels.len()).collect::<Vec<_>>(),
                200,
            ),
            history: vec![],
            lesion_val_dice: vec![],
        };
        let (dir, card, _, report) = write(Task::Chest, Some(&teacher));
        check_plots(&dir);
        assert!(card.contains("Teacher (for distillation, not shipped)"));
        assert!(card.contains("0.810, 0.900"), "teacher AUC per epoch");
        assert!(card.contains(&format!("| AUC (pneumonia) | {} |", estimate(&teacher.validation.auc))));
        assert!(card.contains(&format!("| AUC (pneumonia) | {} |", estimate(&report.auc))));
        assert!(card.contains("CC BY 4.0"));
        std::fs::remove_dir_all(dir).ok();

        let (dir, card, info, _) = write(Task::Breast, None);
        assert!(info.threshold.is_some(), "breast calls malignant at a threshold");
        assert!(card.contains("**Threshold") && card.contains("malignant"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn sections_are_drawn_from_what_each_step_recorded() {
        let (dir, before, mut info, _) = write(Task::Chest, None);
        assert!(!before.contains("## int8 weights"));
        let comparison = serde_json::json!({
            "n": 524, "fp32_auc": 0.9981, "int8_auc": 0.9979, "fp32_positive_auc": 0.9981,
            "int8_positive_auc": 0.9979, "fp32_accuracy": 0.983, "int8_accuracy": 0.981,
            "max_probability_difference": 0.0412, "label_agreement": 0.996,
            "fp32_bytes": 2_700_000, "int8_bytes": 800_000,
        });
        info.card["int8"] = serde_json::json!({
            "format": "bedside-int8 v1", "calibration_images": 96, "logit_mse_unclipped": 0.01,
            "logit_mse_calibrated": 0.004, "validation": comparison, "params": 671_826,
            "macs": 61_000_000u64, "command": "bedside quantize --model models/chest",
        });
        std::fs::write(dir.join("model.json"), serde_json::to_string_pretty(&info).unwrap()).unwrap();
        let card = render(&dir).unwrap();
        assert!(card.contains("## int8 weights"));
        assert!(card.contains("| AUC | 0.9981 | 0.9979 |"));
        assert!(card.contains("Measured with `bedside quantize --model models/chest`"));
        // The section sits after the results, before how they were measured, once.
        let at = |text: &str| card.find(text).unwrap();
        assert!(at("## Results on validation") < at("## int8 weights"));
        assert!(at("## int8 weights") < at("## How the numbers were measured"));
        assert_eq!(card.matches("## int8 weights").count(), 1);
        // The body is the same whatever sections follow it.
        assert!(card.starts_with(&before[..before.find("## How the numbers were measured").unwrap()]));

        // A record that does not read as its step writes it is an error naming it, not a card.
        info.card["int8"]["validation"] = serde_json::json!("broken");
        std::fs::write(dir.join("model.json"), serde_json::to_string_pretty(&info).unwrap()).unwrap();
        let error = render(&dir).unwrap_err().to_string();
        assert!(error.contains("card.int8"), "{error}");
        // So is a body without its validation figures.
        info.card.as_object_mut().unwrap().remove("int8");
        info.card.as_object_mut().unwrap().remove("train_counts");
        std::fs::write(dir.join("model.json"), serde_json::to_string_pretty(&info).unwrap()).unwrap();
        let error = render(&dir).unwrap_err().to_string();
        assert!(error.contains("card.train_counts") && error.contains("--remeasure"), "{error}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn card_formatting() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(estimate(&Estimate { value: 0.5, low: 0.25, high: f64::NAN }), "0.500");
    }
}
