//! `bedside heatmaps`: checks that a model's heat maps point at what it uses.

use crate::model_dir::{Weights, load, record};
use bedside_train::Progress;

/// Check a model's heat maps on the val split: deletion and insertion AUC against a random pixel
/// order, and the model-randomisation sanity check. Records the numbers in model.json
/// ("heat_maps") and MODEL_CARD.md, and prints them as one line of JSON.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Validation images to check (spread evenly over the split).
    #[arg(long, default_value_t = 200)]
    images: usize,
    /// Check the full-precision weights (model-fp32.bin) instead of the shipped int8 model.bin.
    #[arg(long)]
    fp32: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let weights = Weights::from_flag(args.fp32);
    let (mut info, model) = load(&args.target.model, weights)?;
    let val = args.target.split(&info, "val")?;
    let check = bedside_train::heat_check::check(&info, &model, &val, args.images, &Progress::default())
        .map_err(|e| e.to_string())?;
    record(&args.target.model, &mut info, "heat_maps", &check, weights, ("heat-maps", &check.card_section()))
}
