//! `bedside predict`: one file in, a diagnosis out.

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
    /// DICOM file or photo (JPEG, PNG, WebP).
    file: PathBuf,
}

pub fn run(args: &Args) -> Result<(), String> {
    let (info, model) = crate::model_dir::load(&args.model)?;
    let name = args.file.display();
    let bytes = std::fs::read(&args.file).map_err(|e| format!("could not read {name}: {e}"))?;
    let study = Study::open(&bytes, &Limits::default()).map_err(|e| format!("{name}: {e}"))?;
    let frame = study.frame(0).map_err(|e| format!("{name}: {e}"))?;
    // The picture as the screen shows it (default window), framed and normalised as in training.
    let display = frame.render_display(study.default_window(&frame));
    let fitted = info.input.fit(&display, frame.columns, frame.rows, frame.samples as u32);
    let logits = bedside_model::infer::logits(
        &model,
        &info.input,
        info.input.normalise(&fitted),
        &burn::prelude::Device::flex(),
    );
    let prediction = info.interpret(&logits[0]);
    let probabilities: serde_json::Map<String, serde_json::Value> =
        info.classes.iter().cloned().zip(prediction.probabilities.iter().map(|&p| p.into())).collect();
    let out = serde_json::json!({
        "label": info.classes[prediction.label],
        "probabilities": probabilities,
        "threshold": info.threshold,
    });
    println!("{out}");
    Ok(())
}
