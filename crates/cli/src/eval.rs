//! `bedside eval`: a model's metrics on one split of a task folder.

use bedside_model::artifact::ModelInfo;
use bedside_train::data::Dataset;
use bedside_train::metrics::Estimate;
use std::fmt::Write;
use std::path::Path;

/// Evaluate a model folder on a labelled task folder and print one line of JSON: n, accuracy,
/// balanced_accuracy, auc (macro one-vs-rest beyond two classes), sensitivity and specificity of the
/// positive class (pneumonia, mel, malignant), per_class_recall, ece, ece_if_calibrated (the mean
/// ECE a perfectly calibrated model with the same probabilities would show on this many images; its
/// 95 % range under "ci95"), malignant_auc (breast), and 95 % bootstrap intervals under "ci95". These
/// count every image as answered by its most likely class; where the model has a review rule,
/// "review" adds the share answered "uncertain", the figures of the answered images and of all
/// images with an uncertain answer counted as wrong, and the risk–coverage curve.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Which rows of labels.csv to use.
    #[arg(long, default_value = "val")]
    split: String,
    /// Use the full-precision weights (model-fp32.bin) instead of the shipped int8 model.bin.
    #[arg(long)]
    fp32: bool,
    /// Also write every image's answer as CSV: file (as in labels.csv), label (the answer: a class,
    /// or "uncertain" where the model's review rule says so) and
    /// one column per class with its calibrated probability — what `bedside predict --model`
    /// prints for that file.
    #[arg(long, value_name = "OUT.csv")]
    predictions: Option<std::path::PathBuf>,
}

pub fn run(args: &Args) -> Result<(), String> {
    let (info, model) =
        crate::model_dir::load(&args.target.model, crate::model_dir::Weights::from_flag(args.fp32))?;
    let task = info.task;
    let data = args.target.split(&info, &args.split)?;
    // As `bedside predict` and the page compute them: on the CPU engine.
    let arithmetic = crate::model_dir::Weights::from_flag(args.fp32).arithmetic();
    let (probabilities, report) = bedside_train::quantise::probabilities(&info, &model, &data, arithmetic)
        .map_err(|e| e.to_string())?;
    if let Some(out) = &args.predictions {
        write_predictions(out, &info, &data, &probabilities)?;
    }
    let recall: serde_json::Map<String, serde_json::Value> =
        info.classes.iter().cloned().zip(report.per_class_recall.iter().map(|&r| r.into())).collect();
    let ci = |e: &Estimate| serde_json::json!([e.low, e.high]);
    let mut out = serde_json::json!({
        "weights": crate::model_dir::Weights::from_flag(args.fp32).file_name(),
        "n": report.n,
        "accuracy": report.accuracy.value,
        "balanced_accuracy": report.balanced_accuracy.value,
        "auc": report.auc.value,
        "sensitivity": report.sensitivity.value,
        "specificity": report.specificity.value,
        "per_class_recall": recall,
        "ece": report.ece,
        "ece_if_calibrated": report.ece_if_calibrated.map(|e| e.value),
        "ci95": {
            "accuracy": ci(&report.accuracy),
            "balanced_accuracy": ci(&report.balanced_accuracy),
            "auc": ci(&report.auc),
            "sensitivity": ci(&report.sensitivity),
            "specificity": ci(&report.specificity),
            "ece_if_calibrated": report.ece_if_calibrated.as_ref().map(ci),
        },
    });
    if task == bedside_model::task::Task::Breast {
        out["malignant_auc"] = report.positive_auc.value.into();
        out["ci95"]["malignant_auc"] = ci(&report.positive_auc);
    }
    if info.review.is_some() {
        // The figures above answer every image with its most likely class; these apply the
        // model's review rule.
        let labels: Vec<usize> = data.examples.iter().map(|e| e.label).collect();
        let measured = bedside_train::review::measure(&info, &probabilities, &labels);
        out["review"] = serde_json::to_value(measured).expect("figures serialise");
    }
    println!("{out}");
    Ok(())
}

/// One row per image: `file,label,<class>…`, probabilities with 8 significant digits.
fn write_predictions(
    out: &Path,
    info: &ModelInfo,
    data: &Dataset,
    probabilities: &[Vec<f32>],
) -> Result<(), String> {
    let mut csv = format!("file,label,{}\n", info.classes.join(","));
    for (example, p) in data.examples.iter().zip(probabilities) {
        let label = info.answer(&info.decide(p.clone()));
        write!(csv, "{},{label}", example.file).expect("writing to a String");
        for v in p {
            write!(csv, ",{v:.7e}").expect("writing to a String");
        }
        csv.push('\n');
    }
    std::fs::write(out, csv).map_err(|e| format!("could not write {}: {e}", out.display()))
}
