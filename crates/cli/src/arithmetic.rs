//! `bedside arithmetic`: the engine's integer arithmetics against its f32 arithmetic on a split.

use bedside_diagnosis::Precision;

/// Run every image of a split through Bedside's CPU engine on the same weights (model.bin,
/// dequantised) in f32 and in its two integer arithmetics — int8 (int8 weights and activations) and
/// w8a12 (int8 weights, 12-bit activations), both summed exactly in i32 — and print one line of JSON:
/// the split, and for each arithmetic n, label_agreement (share of images given f32's label),
/// max_probability_difference (the largest change of a calibrated probability, on worst_file), and
/// AUC and accuracy against f32's.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Which rows of labels.csv to use.
    #[arg(long, default_value = "val")]
    split: String,
}

pub fn run(args: &Args) -> Result<(), String> {
    let (info, model) = crate::model_dir::load(&args.target.model, crate::model_dir::Weights::Int8)?;
    let data = args.target.split(&info, &args.split)?;
    let progress = bedside_train::Progress::default();
    let precisions = [Precision::Int8, Precision::W8A12];
    let compared = bedside_train::quantise::compare_arithmetic(&info, &model, &data, &precisions, &progress)
        .map_err(|e| e.to_string())?;
    let mut out = serde_json::json!({ "split": args.split });
    for comparison in compared {
        out[comparison.precision] = serde_json::to_value(&comparison).expect("figures serialise");
    }
    println!("{out}");
    Ok(())
}
