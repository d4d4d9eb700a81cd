//! `bedside robustness`: a model under corrupted and adversarial pictures.

use crate::model_dir::{Weights, load, record};
use bedside_train::Progress;

/// Measure a model on the val split under common corruptions (Gaussian noise, blur, contrast,
/// brightness, gamma, JPEG; 5 severities each) and FGSM adversarial examples (ε = 1, 2, 4 of 255).
/// Records the table in model.json ("robustness") and MODEL_CARD.md, and prints it as one line of
/// JSON.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Validation images to measure on, spread evenly over the split [default: all of them].
    #[arg(long)]
    images: Option<usize>,
    /// Measure the full-precision weights (model-fp32.bin) instead of the shipped int8 model.bin.
    #[arg(long)]
    fp32: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let weights = Weights::from_flag(args.fp32);
    let (mut info, model) = load(&args.target.model, weights)?;
    let mut val = args.target.split(&info, "val")?;
    if let Some(n) = args.images {
        val = val.every_nth(n);
    }
    let table = bedside_train::robustness::evaluate(&info, &model, &val, &Progress::default())
        .map_err(|e| e.to_string())?;
    record(&args.target.model, &mut info, "robustness", &table, weights)
}
