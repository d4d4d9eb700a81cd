//! `bedside calibrate`: refits a model's temperature and operating threshold, optionally with
//! test-time mirror averaging, and rewrites its card.

use crate::model_dir::{Weights, invocation, load, write_info};
use bedside_train::Progress;
use bedside_train::pipeline;

/// Refit a model's calibration temperature and operating threshold on the val split, as training
/// does, for its input settings — with --mirror-average, after switching test-time averaging over
/// the picture and its mirror image on or off (skin and breast only). Rewrites model.json and
/// MODEL_CARD.md (its validation figures from the fp32 weights) and prints the new validation
/// report as one line of JSON.
/// The int8, heat-map, robustness and review sections measured the old settings and are dropped:
/// rerun `bedside quantize`, `heatmaps`, `robustness` and `review-band` after.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Average the logits and heat maps over the picture and its left–right mirror image.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    mirror_average: Option<bool>,
    /// Choose the operating threshold on these out-of-fold logits (`<run-dir>/cv/out-of-fold.csv`
    /// from `train --cv`, calibrated with their own temperature) instead of the val split: the
    /// recipe's behaviour on images its networks never saw, over the whole train split.
    #[arg(long, value_name = "CSV")]
    threshold_from: Option<std::path::PathBuf>,
    /// Fit temperature and threshold on the logits of these weights: fp32 (model-fp32.bin), or int8
    /// (model.bin, what ships: its probabilities are the ones the threshold must hold for; quantising
    /// again with the same calibration images writes the same model.bin).
    #[arg(long, value_name = "fp32|int8", default_value = "fp32", value_parser = weights)]
    fit_on: Weights,
}

fn weights(text: &str) -> Result<Weights, String> {
    match text {
        "fp32" => Ok(Weights::Fp32),
        "int8" => Ok(Weights::Int8),
        other => Err(format!("{other:?}: use fp32 or int8")),
    }
}

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?}: use on or off")),
    }
}

/// Card sections that measured the model as it was and do not survive a new calibration.
const STALE: [&str; 5] = ["int8", "heat_maps", "robustness", "review", "size_curve"];

pub fn run(args: &Args) -> Result<(), String> {
    let dir = &args.target.model;
    let (mut info, model) = load(dir, Weights::Fp32)?;
    if let Some(on) = args.mirror_average {
        info.input.mirror_average = on;
        info.validate().map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let progress = Progress::default();
    let val = args.target.split(&info, "val")?;
    let train = args.target.split(&info, "train")?;
    let fitted = match args.fit_on {
        Weights::Fp32 => pipeline::fit(info.task, &model, &info.input, &val),
        Weights::Int8 => {
            let (_, shipped) = load(dir, Weights::Int8)?;
            let mut fitted = pipeline::fit(info.task, &shipped, &info.input, &val);
            // The card's validation section stays the fp32 weights', at the new settings.
            let logits = bedside_train::trainer::predict_logits(&model, &info.input, &val, 64);
            fitted.probabilities = bedside_train::metrics::softmax(&logits, fitted.temperature);
            fitted
        }
    };
    info.temperature = fitted.temperature;
    info.threshold = fitted.threshold;
    if let Some(csv) = &args.threshold_from {
        if !info.task.uses_threshold() {
            return Err(format!(
                "--threshold-from: the {} model decides by the most probable class",
                info.task.name()
            ));
        }
        let (probabilities, labels) = crate::review_band::out_of_fold(csv, &info)?;
        info.threshold = Some(pipeline::choose_threshold(info.task, &probabilities, &labels));
    }
    info.review = None;
    let validation =
        pipeline::evaluate_probabilities(&info, &fitted.probabilities, &fitted.labels, &fitted.groups);
    if let Some(card) = info.card.as_object_mut() {
        for stale in STALE {
            card.remove(stale);
        }
    }
    let summary = serde_json::json!({
        "mirror_average": info.input.mirror_average,
        "temperature": info.temperature,
        "threshold": info.threshold,
        "fitted_on": args.fit_on.file_name(),
        "threshold_fitted_on": args.threshold_from.as_ref().map_or("the val split".to_string(), |p| format!("out-of-fold predictions ({})", p.display())),
        "command": invocation(),
    });
    info.card["calibration"] = summary.clone();

    // The pruning record stays: it describes how these weights were made.
    crate::card::record_fp32_validation(
        dir,
        &mut info,
        &model,
        &train,
        &validation,
        &fitted.probabilities,
        &fitted.labels,
    )?;
    write_info(dir, &info)?;
    // Drawn by review-band for the old calibration.
    std::fs::remove_file(dir.join("plots/risk_coverage.png")).ok();
    progress.println(format!(
        "recalibrated; now run `bedside quantize`, `bedside heatmaps`, `bedside robustness` and `bedside \
         review-band` on {}",
        dir.display()
    ));
    println!("{}", serde_json::json!({ "calibration": summary, "validation": validation }));
    Ok(())
}
