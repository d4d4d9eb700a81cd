//! `bedside predict`: one file in, a diagnosis out.

use bedside_diagnosis::Diagnoser;
use bedside_imaging::{Limits, Study};
use std::path::PathBuf;

/// Predict on one DICOM file or photo and print one line of JSON: label, probabilities (class name →
/// calibrated probability) and the operating threshold (null where the label is the most probable
/// class).
#[derive(clap::Args)]
pub struct Args {
    /// Model folder holding model.json and the weights (e.g. models/chest).
    #[arg(long)]
    model: PathBuf,
    /// Also write the picture with the attention heat map of the predicted class over it (PNG).
    #[arg(long, value_name = "OUT.png")]
    heatmap: Option<PathBuf>,
    /// Frame of a multi-frame file, counted from 0.
    #[arg(long, default_value_t = 0)]
    frame: u32,
    /// Use the full-precision weights (model-fp32.bin) instead of the shipped int8 model.bin.
    #[arg(long)]
    fp32: bool,
    /// DICOM file or photo (JPEG, PNG, WebP).
    file: PathBuf,
}

pub fn run(args: &Args) -> Result<(), String> {
    let (json, weights) =
        crate::model_dir::read(&args.model, crate::model_dir::Weights::from_flag(args.fp32))?;
    let diagnoser = Diagnoser::new(&json, weights, burn::prelude::Device::flex())
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let name = args.file.display();
    let bytes = std::fs::read(&args.file).map_err(|e| format!("could not read {name}: {e}"))?;
    let study = Study::open(&bytes, &Limits::default()).map_err(|e| format!("{name}: {e}"))?;
    let frame = study.frame(args.frame).map_err(|e| format!("{name}: {e}"))?;
    let diagnosis = bedside_diagnosis::block_on(diagnoser.diagnose_frame(&study, &frame))
        .map_err(|e| format!("{name}: {e}"))?;
    if let Some(out) = &args.heatmap {
        let overlay = bedside_diagnosis::overlay(&study, &frame, &diagnosis);
        overlay.save(out).map_err(|e| format!("could not write {}: {e}", out.display()))?;
    }
    let probabilities: serde_json::Map<String, serde_json::Value> =
        diagnosis.probabilities.iter().map(|(class, p)| (class.clone(), (*p).into())).collect();
    let out = serde_json::json!({
        "label": diagnosis.label,
        "probabilities": probabilities,
        "threshold": diagnosis.threshold,
    });
    println!("{out}");
    Ok(())
}
