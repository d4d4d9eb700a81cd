//! Grouped k-fold cross-validation on the training split: how much the training recipe's
//! results vary with the data it sees, measured without touching the validation split.
//!
//! Each fold trains a student on the other folds and is measured on its own (temperature and
//! threshold are fitted on that fold too, so accuracy, sensitivity and specificity are slightly
//! optimistic; the AUC does not depend on either). Groups (patients, lesions) never straddle folds.

use crate::data::Dataset;
use crate::metrics;
use crate::pipeline::choose_threshold;
use crate::trainer::{self, TrainSettings};
use crate::{Error, Progress};
use bedside_model::input::InputSpec;
use bedside_model::student::Student;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldResult {
    pub fold: usize,
    pub n: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub positive_auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub accuracy: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub balanced_accuracy: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub sensitivity: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub specificity: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub ece: f64,
}

/// Mean and sample standard deviation over folds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Spread {
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub mean: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub sd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CvReport {
    pub folds: Vec<FoldResult>,
    pub auc: Spread,
    pub positive_auc: Spread,
    pub accuracy: Spread,
    pub balanced_accuracy: Spread,
    pub sensitivity: Spread,
    pub specificity: Spread,
    /// Every training image's logits from the fold model that did not see it: what a decision
    /// rule (temperature, threshold, review margin) is fitted on without flattering itself.
    #[serde(skip)]
    pub out_of_fold: Vec<OutOfFold>,
}

/// One image's raw logits from the fold that held it out.
#[derive(Debug, Clone)]
pub struct OutOfFold {
    pub file: String,
    pub label: usize,
    pub fold: usize,
    pub logits: Vec<f32>,
}

/// The out-of-fold logits as CSV: `file,label,fold,logit_<class>…` (class names in output order).
pub fn out_of_fold_csv(rows: &[OutOfFold], classes: &[&str]) -> String {
    let mut csv = String::from("file,label,fold");
    for class in classes {
        csv.push_str(&format!(",logit_{class}"));
    }
    csv.push('\n');
    for row in rows {
        csv.push_str(&format!("{},{},{}", row.file, classes[row.label], row.fold));
        for z in &row.logits {
            csv.push_str(&format!(",{z}"));
        }
        csv.push('\n');
    }
    csv
}

impl CvReport {
    /// The model card's cross-validation section: per fold and as mean ± sample SD.
    pub fn card_section(&self, command: &str) -> String {
        let mut out = format!(
            "## Grouped cross-validation on the train split\n\n\
             {k} folds, whole patients or lesions in one fold each; every fold trains a network on the \
             others from the same recipe and is measured on its own, with temperature and threshold fitted \
             on that fold (so accuracy, sensitivity and specificity are slightly optimistic; the AUC is not). \
             Its out-of-fold predictions are what the review margin and the operating threshold can be \
             chosen on.\n\n\
             | fold | images | AUC | accuracy | balanced accuracy | sensitivity | specificity | ECE |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
            k = self.folds.len()
        );
        for f in &self.folds {
            out += &format!(
                "| {} | {} | {:.4} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                f.fold, f.n, f.auc, f.accuracy, f.balanced_accuracy, f.sensitivity, f.specificity, f.ece
            );
        }
        let s = |x: &Spread| format!("{:.3} ± {:.3}", x.mean, x.sd);
        out += &format!(
            "| mean ± SD | | {:.4} ± {:.4} | {} | {} | {} | {} | |\n\nMeasured with `{command}`.\n",
            self.auc.mean,
            self.auc.sd,
            s(&self.accuracy),
            s(&self.balanced_accuracy),
            s(&self.sensitivity),
            s(&self.specificity)
        );
        out
    }
}

fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Spread { mean, sd: var.sqrt() }
}

/// Runs `k` grouped folds over `train`; fold `i` checkpoints in `run_dir/fold-i` (so `resume`
/// continues an interrupted fold and skips finished ones). Every fold starts from `start` when given
/// (another task's student, see [`trainer::pretrained_start`]), else from random weights.
#[allow(clippy::too_many_arguments)]
pub fn cross_validate(
    settings: &TrainSettings,
    start: Option<&Student>,
    spec: &InputSpec,
    train: &Dataset,
    k: usize,
    run_dir: &Path,
    resume: bool,
    progress: &Progress,
) -> Result<CvReport, Error> {
    let folds = train.grouped_folds(k, settings.seed);
    let mut results = Vec::new();
    let mut out_of_fold = Vec::new();
    for (i, held_out) in folds.iter().enumerate() {
        let rest: Vec<usize> =
            folds.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, f)| f.clone()).collect();
        let (fit, check) = (train.subset(&rest), train.subset(held_out));
        progress.println(format!("fold {}/{k}: {} to train, {} to check", i + 1, fit.len(), check.len()));
        let dir = run_dir.join(format!("fold-{}", i + 1));
        let trained =
            trainer::train_student(settings, start, spec, &fit, Some(&check), None, &dir, resume, progress)?;
        let logits = trainer::predict_logits(&trained.model, spec, &check, settings.batch_size);
        results.push(measure_fold(&check, i + 1, k, logits, &mut out_of_fold, progress));
    }
    Ok(report(results, out_of_fold))
}

/// Grouped k-fold cross-validation of EfficientNet-Lite0 adapted as `bedside train --network lite0`
/// does it: the frozen stages' maps of the whole train split are computed once (the shipped run's
/// cache in `run_dir` is reused), and on every fold the later stages and a new head are trained on
/// the other folds' maps and measured on the fold's own unaugmented pictures. Without test-time
/// mirror averaging. Fold `i`'s adapted network is kept in `run_dir/cv/fold-i`.
pub fn cross_validate_lite0(
    task: bedside_model::task::Task,
    data_dir: &Path,
    augment: &crate::augment::Augment,
    settings: &crate::distill::TeacherSettings,
    k: usize,
    run_dir: &Path,
    progress: &Progress,
) -> Result<CvReport, Error> {
    use crate::distill::{adapt_teacher, cache_features, teacher_input, teacher_logits};
    crate::distill::check_lesion_stage(settings)?;
    let spec = teacher_input(task);
    let train = crate::data::load(task, data_dir, "train", &spec, progress)?;
    let imagenet = crate::teacher::load_imagenet_teacher(&burn::prelude::Device::flex())
        .map_err(|e| Error::Model(e.to_string()))?;
    let frozen = burn::module::Module::valid(&imagenet);
    let views = cache_features(&frozen, &train, &spec, Some(augment), settings, run_dir, "train", progress)?;
    let plain = cache_features(&frozen, &train, &spec, None, settings, run_dir, "train", progress)?;
    let lesion = if settings.lesion_weight > 0.0 {
        let views = crate::distill::lesion_views;
        Some(views(&frozen, &train, data_dir, &spec, Some(augment), settings, "train", progress)?)
    } else {
        None
    };
    let folds = train.grouped_folds(k, settings.seed);
    let (mut results, mut out_of_fold) = (Vec::new(), Vec::new());
    for (i, held_out) in folds.iter().enumerate() {
        let rest: Vec<usize> =
            folds.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, f)| f.clone()).collect();
        let (fit, check) = (train.subset(&rest), train.subset(held_out));
        progress.println(format!("fold {}/{k}: {} to train, {} to check", i + 1, fit.len(), check.len()));
        let labels = |d: &Dataset| d.examples.iter().map(|e| e.label).collect::<Vec<usize>>();
        let (check_cache, check_labels) = (plain.subset(held_out), labels(&check));
        let fold_lesion = lesion.as_ref().map(|l| l.subset(&rest));
        let (teacher, _) = adapt_teacher(
            frozen.clone(),
            task,
            (&views.subset(&rest), &labels(&fit)),
            (&check_cache, &check_labels, &check.groups()),
            fold_lesion.as_ref().map(|l| (l, None)),
            settings,
            &run_dir.join("cv").join(format!("fold-{}", i + 1)),
            progress,
        )?;
        let logits = teacher_logits(&teacher, settings.stage, &check_cache);
        results.push(measure_fold(&check, i + 1, k, logits, &mut out_of_fold, progress));
    }
    Ok(report(results, out_of_fold))
}

/// One fold's figures from its held-out images' logits (temperature and threshold fitted on them);
/// the logits join the out-of-fold rows.
fn measure_fold(
    check: &Dataset,
    fold: usize,
    k: usize,
    logits: Vec<Vec<f32>>,
    out_of_fold: &mut Vec<OutOfFold>,
    progress: &Progress,
) -> FoldResult {
    let task = check.task;
    let labels: Vec<usize> = check.examples.iter().map(|e| e.label).collect();
    for (example, row) in check.examples.iter().zip(&logits) {
        out_of_fold.push(OutOfFold {
            file: example.file.clone(),
            label: example.label,
            fold,
            logits: row.clone(),
        });
    }
    let temperature = metrics::fit_temperature(&logits, &labels);
    let probabilities = metrics::softmax(&logits, temperature);
    let threshold = choose_threshold(task, &probabilities, &labels);
    let predicted: Vec<usize> = probabilities.iter().map(|p| task.decide(p, threshold)).collect();
    let r = metrics::report(&probabilities, &labels, &predicted, task.positive_index(), &labels, 0);
    let result = FoldResult {
        fold,
        n: r.n,
        auc: r.auc.value,
        positive_auc: r.positive_auc.value,
        accuracy: r.accuracy.value,
        balanced_accuracy: r.balanced_accuracy.value,
        sensitivity: r.sensitivity.value,
        specificity: r.specificity.value,
        ece: r.ece,
    };
    progress.println(format!("fold {fold}/{k}: AUC {:.4}, accuracy {:.4}", result.auc, result.accuracy));
    result
}

fn report(results: Vec<FoldResult>, out_of_fold: Vec<OutOfFold>) -> CvReport {
    CvReport {
        auc: spread(results.iter().map(|r| r.auc)),
        positive_auc: spread(results.iter().map(|r| r.positive_auc)),
        accuracy: spread(results.iter().map(|r| r.accuracy)),
        balanced_accuracy: spread(results.iter().map(|r| r.balanced_accuracy)),
        sensitivity: spread(results.iter().map(|r| r.sensitivity)),
        specificity: spread(results.iter().map(|r| r.specificity)),
        folds: results,
        out_of_fold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_mean_and_sample_sd() {
        let s = spread([1.0, 2.0, 3.0, f64::NAN].into_iter());
        assert_eq!(s.mean, 2.0);
        assert!((s.sd - 1.0).abs() < 1e-12);
    }
}
