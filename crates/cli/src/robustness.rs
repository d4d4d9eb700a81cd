//! `bedside robustness`: a model under corrupted and adversarial pictures.

use crate::model_dir::{Weights, read};
use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_train::Progress;
use std::path::PathBuf;

/// Measure a model on the val split under common corruptions (Gaussian noise, blur, contrast,
/// brightness, JPEG; 5 severities each) and FGSM adversarial examples (ε = 1, 2, 4 of 255). Records
/// the table in model.json ("robustness") and MODEL_CARD.md, and prints it as one line of JSON.
#[derive(clap::Args)]
pub struct Args {
    /// Model folder (e.g. models/chest).
    #[arg(long)]
    model: PathBuf,
    /// Task folder (images/ + labels.csv) [default: $BEDSIDE_DATA/<the model's task folder>].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Measure the full-precision weights (model-fp32.bin) instead of the shipped int8 model.bin.
    #[arg(long)]
    fp32: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let weights = Weights::from_flag(args.fp32);
    let (json, bytes) = read(&args.model, weights)?;
    let mut info = ModelInfo::from_json(&json).map_err(|e| e.to_string())?;
    let model = student_from_bytes(&info.network, bytes, &burn::prelude::Device::flex())
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let dir = args.data.clone().unwrap_or_else(|| bedside_train::data::default_dir(info.task));
    let progress = Progress::default();
    let val = bedside_train::pipeline::load_split(info.task, &dir, "val", &info.input, &progress)
        .map_err(|e| e.to_string())?;
    let table =
        bedside_train::robustness::evaluate(&info, &model, &val, &progress).map_err(|e| e.to_string())?;
    let mut summary = serde_json::to_value(&table).expect("table serialises");
    summary["weights"] = weights.file_name().into();
    summary["command"] = format!("bedside robustness --model {}", args.model.display()).into();
    info.card["robustness"] = summary.clone();
    crate::model_dir::write_info(&args.model, &info)?;
    bedside_train::card::set_section(&args.model, "robustness", &table.card_section())
        .map_err(|e| e.to_string())?;
    println!("{summary}");
    Ok(())
}
