//! `bedside card`: draws a model folder's card from what its steps recorded, checks a committed
//! card, or measures the card's validation figures again.

use crate::model_dir::{Weights, load, write_info};
use std::path::Path;

/// Draw MODEL_CARD.md from the folder's model.json (and lesion.json): the one renderer every step
/// that records a measurement calls. With --check, only compare the committed card with what the
/// renderer draws and fail when they differ (a stale card). With --remeasure, first measure the
/// card's validation figures again on the fp32 weights with the stored temperature and threshold
/// (intervals resampling whole patients, lesions or photographs), redraw the validation plots, and
/// record them in model.json.
#[derive(clap::Args)]
pub struct Args {
    /// Model folders (e.g. models/chest); each is drawn or checked in turn.
    #[arg(long = "model", required = true)]
    models: Vec<std::path::PathBuf>,
    /// Task folder (images/ + labels.csv) for --remeasure [default: $BEDSIDE_DATA/<the model's task folder>].
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Fail if a committed MODEL_CARD.md differs from what model.json draws; write nothing.
    #[arg(long, conflicts_with = "remeasure")]
    check: bool,
    /// Measure the validation figures again before drawing.
    #[arg(long)]
    remeasure: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let mut stale = Vec::new();
    for dir in &args.models {
        if args.check {
            if !is_current(dir)? {
                stale.push(dir.display().to_string());
            }
            continue;
        }
        if args.remeasure {
            remeasure(dir, args.data.as_deref())?;
        } else {
            bedside_train::card::write(dir).map_err(|e| e.to_string())?;
        }
        eprintln!("wrote {}", dir.join("MODEL_CARD.md").display());
    }
    if stale.is_empty() {
        return Ok(());
    }
    Err(format!(
        "stale model card in {}: MODEL_CARD.md differs from what model.json draws; run `bedside card{}`",
        stale.join(", "),
        stale.iter().map(|d| format!(" --model {d}")).collect::<String>()
    ))
}

/// Whether the committed card is what the renderer draws.
fn is_current(dir: &Path) -> Result<bool, String> {
    let drawn = bedside_train::card::render(dir).map_err(|e| e.to_string())?;
    let path = dir.join("MODEL_CARD.md");
    let committed =
        std::fs::read_to_string(&path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
    Ok(committed == drawn)
}

/// The validation figures measured again, as `bedside calibrate` measures them but without fitting.
fn remeasure(dir: &Path, data: Option<&Path>) -> Result<(), String> {
    let (mut info, model) = load(dir, Weights::Fp32)?;
    let target = crate::model_dir::Target { model: dir.to_path_buf(), data: data.map(Path::to_path_buf) };
    let val = target.split(&info, "val")?;
    let train = target.split(&info, "train")?;
    let (probabilities, validation) =
        bedside_train::quantise::probabilities(&info, &model, &val, Weights::Fp32.arithmetic())
            .map_err(|e| e.to_string())?;
    let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
    record_fp32_validation(dir, &mut info, &model, &train, &validation, &probabilities, &labels)?;
    write_info(dir, &info)?;
    println!("{}", serde_json::json!({ "model": dir.display().to_string(), "validation": validation }));
    Ok(())
}

/// Records in `info` what the card's body says of the fp32 weights `model` in `dir` (their
/// validation report, the training images per class, their size) and redraws the validation plots
/// from the calibrated `probabilities` the report was measured on; `model.json` is the caller's to
/// write.
pub fn record_fp32_validation(
    dir: &Path,
    info: &mut bedside_model::artifact::ModelInfo,
    model: &bedside_model::student::Student,
    train: &bedside_train::data::Dataset,
    validation: &bedside_train::metrics::Report,
    probabilities: &[Vec<f32>],
    labels: &[usize],
) -> Result<(), String> {
    let bytes = std::fs::metadata(dir.join(Weights::Fp32.file_name())).map(|m| m.len()).unwrap_or(0);
    let params = burn::module::Module::num_params(model);
    bedside_train::card::record_validation(info, validation, &train.class_counts(), params, bytes);
    bedside_train::card::draw_plots(dir, info, validation, probabilities, labels).map_err(|e| e.to_string())
}
