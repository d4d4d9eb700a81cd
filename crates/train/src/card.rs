//! The model card: `MODEL_CARD.md` and its plots (`plots/{roc,calibration,confusion,training}.png`),
//! written beside the artifact at the end of a training run.
//!
//! Every number in the card comes from the run's own inputs ([`CardInputs`]): the artifact's
//! [`ModelInfo`], the validation report, the epoch log and the calibrated validation probabilities.
//! The only facts not taken from the run are each data set's citation, licence and preprocessing
//! (`data_sheet`), copied from the data folders' READMEs.

mod data_sheet;
mod markdown;
pub mod plots;

use crate::Error;
use crate::distill::TeacherReport;
use crate::metrics::{self, Estimate, Report};
use crate::rng::Rng;
use crate::trainer::EpochLog;
use bedside_model::artifact::ModelInfo;
use std::path::Path;

/// Everything the card is written from.
pub struct CardInputs<'a> {
    pub info: &'a ModelInfo,
    /// The shipped model on the validation split (calibrated probabilities, the task's decision rule).
    pub validation: &'a Report,
    pub history: &'a [EpochLog],
    pub teacher: Option<&'a TeacherReport>,
    /// Calibrated probabilities of every validation image, and its label.
    pub val_probabilities: &'a [Vec<f32>],
    pub val_labels: &'a [usize],
    /// Training images per class.
    pub train_counts: &'a [usize],
    /// Parameters of the shipped (BatchNorm-folded) network.
    pub params: usize,
    /// Size of `model-fp32.bin`.
    pub weights_bytes: u64,
    /// Short hash of the commit the run was built from.
    pub commit: Option<String>,
}

/// Reliability bins, the same as the ECE in [`metrics::report`].
const BINS: usize = 15;
/// Bootstrap resamples for the per-class recall intervals, as in [`metrics::report`].
const RESAMPLES: usize = 1000;

/// Writes `dir/MODEL_CARD.md` and `dir/plots/*.png`.
pub fn write_card(dir: &Path, inputs: &CardInputs) -> Result<(), Error> {
    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(|e| Error::io("could not create", &plot_dir, e))?;
    let info = inputs.info;
    let report = inputs.validation;
    let positive = info.task.positive_index();
    let n = inputs.val_labels.len();

    let curves = roc_curves(inputs);
    let (fpr, tpr) = (1.0 - report.specificity.value, report.sensitivity.value);
    let operating = (fpr.is_finite() && tpr.is_finite()).then(|| {
        let label = format!("operating point: sensitivity {}, specificity {}", num(tpr), num(1.0 - fpr));
        ((fpr, tpr), label)
    });
    plots::roc(&plot_dir.join("roc.png"), &format!("ROC on validation ({n} images)"), &curves, operating)?;
    let bins = metrics::reliability(inputs.val_probabilities, inputs.val_labels, BINS);
    let title = format!("Calibration on validation: ECE {} (T = {:.3})", num(report.ece), info.temperature);
    plots::reliability(&plot_dir.join("calibration.png"), &title, BINS, &bins)?;
    let title = format!("Confusion matrix on validation ({n} images)");
    plots::confusion(&plot_dir.join("confusion.png"), &title, &info.classes, &report.confusion)?;
    plots::training(&plot_dir.join("training.png"), &info.classes[positive], inputs.history)?;

    let path = dir.join("MODEL_CARD.md");
    std::fs::write(&path, markdown::card(inputs)).map_err(|e| Error::io("could not write", &path, e))
}

/// Rewrites `dir/MODEL_CARD.md` and its plots for weights that changed after training (pruned and
/// fine-tuned): the epoch log and the teacher come from `info.card`, where training recorded them.
/// Sections later steps wrote (int8, heat maps, robustness) are dropped: they measured other weights.
#[allow(clippy::too_many_arguments)]
pub fn rewrite(
    dir: &Path,
    info: &ModelInfo,
    validation: &Report,
    val_probabilities: &[Vec<f32>],
    val_labels: &[usize],
    train_counts: &[usize],
    params: usize,
    weights_bytes: u64,
) -> Result<(), Error> {
    let history: Vec<EpochLog> = serde_json::from_value(info.card["history"].clone()).map_err(|e| {
        Error::Data(format!(
            "{}: model.json has no training history to rewrite the card from: {e}",
            dir.display()
        ))
    })?;
    let teacher = &info.card["teacher"];
    let teacher = (!teacher.is_null())
        .then(|| {
            serde_json::from_value(serde_json::json!({
                "settings": teacher["settings"],
                "val_auc": teacher["val_auc_per_epoch"],
                "validation": teacher["validation"],
            }))
        })
        .transpose()
        .map_err(|e| Error::Data(format!("{}: the teacher in model.json: {e}", dir.display())))?;
    let inputs = CardInputs {
        info,
        validation,
        history: &history,
        teacher: teacher.as_ref(),
        val_probabilities,
        val_labels,
        train_counts,
        params,
        weights_bytes,
        commit: crate::pipeline::commit(),
    };
    write_card(dir, &inputs)
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

/// Writes (or replaces) one section of `dir/MODEL_CARD.md` that a later step measured (int8, heat
/// maps, robustness…), between `<!-- bedside:ID -->` markers, so rerunning the step updates it in
/// place. A new section goes before "How the numbers were measured", or at the end. Empty
/// `markdown` removes the section.
pub fn set_section(dir: &Path, id: &str, markdown: &str) -> Result<(), Error> {
    let path = dir.join("MODEL_CARD.md");
    let card = std::fs::read_to_string(&path).map_err(|e| Error::io("could not read", &path, e))?;
    let (open, close) = (format!("<!-- bedside:{id} -->"), format!("<!-- /bedside:{id} -->"));
    let block = if markdown.trim().is_empty() {
        String::new()
    } else {
        format!("{open}\n{}\n{close}\n", markdown.trim_end())
    };
    let updated = match (card.find(&open), card.find(&close)) {
        (Some(start), Some(end)) if end > start => {
            let end = end + close.len() + card[end + close.len()..].starts_with('\n') as usize;
            format!("{}{block}{}", &card[..start], &card[end..])
        }
        _ if block.is_empty() => card,
        _ => match card.find("## How the numbers were measured") {
            Some(at) => format!("{}{block}\n{}", &card[..at], &card[at..]),
            None => format!("{}\n{block}", card.trim_end_matches('\n').to_string() + "\n"),
        },
    };
    std::fs::write(&path, updated).map_err(|e| Error::io("could not write", &path, e))
}

/// The positive class's ROC curve, and for three or more classes every class against the rest.
fn roc_curves(inputs: &CardInputs) -> Vec<plots::Curve> {
    let classes = &inputs.info.classes;
    let positive = inputs.info.task.positive_index();
    let shown: Vec<usize> = if classes.len() == 2 { vec![positive] } else { (0..classes.len()).collect() };
    shown
        .into_iter()
        .filter_map(|c| {
            let scores: Vec<f32> = inputs.val_probabilities.iter().map(|p| p[c]).collect();
            let truth: Vec<bool> = inputs.val_labels.iter().map(|&y| y == c).collect();
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
fn thousands(n: u64) -> String {
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

/// Recall of every class with a percentile-bootstrap interval, resampling the whole validation set
/// the way [`metrics::report`] does for its other numbers.
fn recall_intervals(labels: &[usize], predicted: &[usize], classes: usize) -> Vec<Estimate> {
    let recalls = |idx: &mut dyn Iterator<Item = usize>| {
        let mut hits = vec![(0usize, 0usize); classes];
        for i in idx {
            hits[labels[i]].1 += 1;
            hits[labels[i]].0 += (predicted[i] == labels[i]) as usize;
        }
        hits.into_iter().map(|(k, n)| if n > 0 { k as f64 / n as f64 } else { f64::NAN }).collect::<Vec<_>>()
    };
    let whole = recalls(&mut (0..labels.len()));
    let mut rng = Rng::new(2024);
    let draws: Vec<Vec<f64>> =
        (0..RESAMPLES).map(|_| recalls(&mut (0..labels.len()).map(|_| rng.below(labels.len())))).collect();
    (0..classes).map(|c| Estimate::from_draws(whole[c], draws.iter().map(|d| d[c]))).collect()
}

/// Images per class.
fn counts(labels: &[usize], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &y in labels {
        counts[y] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Augment;
    use crate::distill::TeacherSettings;
    use crate::pipeline;
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
        }
    }

    fn write(task: Task, teacher: Option<&TeacherReport>) -> (std::path::PathBuf, String, ModelInfo, Report) {
        let (probabilities, labels) = synthetic(task, 240, 3);
        let threshold =
            task.uses_threshold().then(|| pipeline::choose_threshold(task, &probabilities, &labels));
        let info = ModelInfo {
            format_version: FORMAT_VERSION,
            task,
            classes: task.classes().iter().map(|c| c.to_string()).collect(),
            input: pipeline::input_shape(task),
            network: StudentConfig::new(task.classes().len()),
            temperature: 1.2345,
            threshold,
            review: None,
            card: serde_json::json!({
                "training_command": format!("bedside train --task {}", task.name()),
                "settings": settings(task),
            }),
        };
        let report = pipeline::evaluate_probabilities(&info, &probabilities, &labels);
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
        let dir = std::env::temp_dir().join(format!("bedside-card-{}-{}", std::process::id(), task.name()));
        let train_counts: Vec<usize> = (0..task.classes().len()).map(|c| 100 + 10 * c).collect();
        let inputs = CardInputs {
            info: &info,
            validation: &report,
            history: &history,
            teacher,
            val_probabilities: &probabilities,
            val_labels: &labels,
            train_counts: &train_counts,
            params: 1_234_567,
            weights_bytes: 4_938_268,
            commit: Some("abc1234".into()),
        };
        write_card(&dir, &inputs).unwrap();
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
    fn chest_card_reports_the_teacher_and_breast_card_says_argmax() {
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
            },
            val_auc: vec![0.81, 0.9],
            validation: metrics::report(&probabilities, &labels, &predicted, 1, 200),
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
        assert_eq!(info.threshold, None);
        assert!(card.contains("argmax"));
        assert!(!card.contains("**Threshold"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn sections_are_inserted_once_and_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("bedside-card-section-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let card = "# Card\n\n## Results\n\nx\n\n## How the numbers were measured\n\ny\n";
        std::fs::write(dir.join("MODEL_CARD.md"), card).unwrap();
        set_section(&dir, "int8", "## int8\n\nfirst").unwrap();
        set_section(&dir, "int8", "## int8\n\nsecond").unwrap();
        let text = std::fs::read_to_string(dir.join("MODEL_CARD.md")).unwrap();
        assert_eq!(text.matches("## int8").count(), 1, "{text}");
        assert!(text.contains("second") && !text.contains("first"), "{text}");
        assert!(text.find("## int8").unwrap() < text.find("## How the numbers").unwrap());
        assert!(text.starts_with("# Card\n\n## Results\n\nx\n\n<!-- bedside:int8 -->"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recall_intervals_bracket_the_recall() {
        let labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
        let predicted = [0, 0, 0, 1, 1, 1, 0, 1, 1, 1];
        let r = recall_intervals(&labels, &predicted, 2);
        assert_eq!((r[0].value, r[1].value), (0.75, 5.0 / 6.0));
        for e in r {
            assert!(e.low <= e.value && e.value <= e.high && e.low < e.high, "{e:?}");
        }
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(estimate(&Estimate { value: 0.5, low: 0.25, high: f64::NAN }), "0.500");
    }
}
