//! `bedside heatmaps`: checks that a model's heat maps point at what it uses.

use crate::model_dir::{Weights, load, record};
use bedside_train::Progress;

/// Check a model's heat maps on the val split: deletion and insertion AUC, and where the task has
/// lesion masks (masks/ beside images/) the pointing game and the share of the map inside the
/// lesion — each against a random map and a centre prior, with intervals over whole groups — and
/// the model-randomisation sanity check. Records the numbers in model.json ("heat_maps") and
/// MODEL_CARD.md, and prints them as one line of JSON.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Validation images for deletion / insertion and randomisation (spread evenly over the split);
    /// the pointing game uses every validation image with a lesion.
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
    let masks = bedside_train::data::load_masks(&args.target.data_dir(&info), &val, &info.input)
        .map_err(|e| e.to_string())?;
    let check = bedside_train::heat_check::check(
        &info,
        &model,
        &val,
        masks.as_deref(),
        args.images,
        &Progress::default(),
    )
    .map_err(|e| e.to_string())?;
    record(&args.target.model, &mut info, "heat_maps", &check, weights)
}
