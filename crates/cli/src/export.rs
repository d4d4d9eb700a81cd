//! `bedside export --onnx`: a model folder's network as an ONNX model.

use std::path::PathBuf;

/// Write a model folder's network as ONNX (opset 13), for any ONNX runtime: input the normalised
/// picture `[batch, channels, height, width]` at the model's input size; outputs `logits` (before
/// calibration), `class_maps` and, for models with a lesion decoder, `lesion_logits`. Temperature,
/// threshold, class names and input framing are in the model's metadata. Prints one line of JSON.
#[derive(clap::Args)]
pub struct Args {
    /// Write ONNX (the one format `export` writes; required so that the command says what it does).
    #[arg(long, required = true)]
    onnx: bool,
    /// Model folder holding model.json and its weights (e.g. models/chest).
    #[arg(long)]
    model: PathBuf,
    /// Where to write [default: <model folder>/model.onnx].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Export model-fp32.bin instead of the int8 model.bin (dequantised) the page runs; the lesion
    /// decoder, trained on the int8 network's features, is then left out.
    #[arg(long)]
    fp32: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let dir = &args.model;
    let loaded = bedside_onnx::load_folder(dir, args.fp32, &burn::prelude::Device::flex())
        .map_err(|e| e.to_string())?;
    let onnx = bedside_onnx::export(&loaded).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = args.out.clone().unwrap_or_else(|| dir.join("model.onnx"));
    std::fs::write(&out, &onnx).map_err(|e| format!("could not write {}: {e}", out.display()))?;
    let input = &loaded.info.input;
    let mut outputs = vec!["logits", "class_maps"];
    if loaded.lesion.is_some() {
        outputs.push("lesion_logits");
    }
    let summary = serde_json::json!({
        "written": out,
        "bytes": onnx.len(),
        "weights": if args.fp32 { "model-fp32.bin" } else { "model.bin" },
        "opset": bedside_onnx::OPSET,
        "input": [1, input.channels, input.height, input.width],
        "outputs": outputs,
    });
    println!("{summary}");
    Ok(())
}
