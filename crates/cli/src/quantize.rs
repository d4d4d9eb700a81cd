//! `bedside quantize`: a model folder's `model-fp32.bin` → int8 `model.bin`, with the comparison.

use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_model::quant;
use bedside_model::task::Task;
use bedside_train::Progress;
use bedside_train::quantise::{Calibration, Comparison, calibrate, compare};

/// Quantise a model's weights to per-channel int8 (model.bin), calibrated on training images, then
/// compare int8 with fp32 on the val split. Writes model.bin, records the comparison in model.json
/// ("int8") and MODEL_CARD.md, and prints it as one line of JSON.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Training images the clipping is calibrated on (spread evenly over the train split).
    #[arg(long, default_value_t = 96)]
    calibration_images: usize,
}

pub fn run(args: &Args) -> Result<(), String> {
    let (json, fp32) = crate::model_dir::read(&args.target.model, crate::model_dir::Weights::Fp32)?;
    let mut info = ModelInfo::from_json(&json).map_err(|e| e.to_string())?;
    let progress = Progress::default();
    let load = |split: &str| args.target.split(&info, split);
    let weights = quant::read_fp32(fp32.clone()).map_err(|e| e.to_string())?;
    let images = load("train")?.every_nth(args.calibration_images);
    let calibration = calibrate(&info, &weights, &images, &progress).map_err(|e| e.to_string())?;
    let int8 = quant::to_int8(&weights, &calibration.clips).map_err(|e| e.to_string())?;
    let val = load("val")?;
    let comparison = compare(&info, &fp32, &int8, &val).map_err(|e| e.to_string())?;

    let network = student_from_bytes(&info.network, fp32.clone(), &burn::prelude::Device::flex())
        .map_err(|e| e.to_string())?;
    let size = Size {
        params: burn::module::Module::num_params(&network),
        macs: network.macs(info.input.height as usize, info.input.width as usize),
    };
    let out = args.target.model.join("model.bin");
    std::fs::write(&out, &int8).map_err(|e| format!("could not write {}: {e}", out.display()))?;
    let summary = serde_json::json!({
        "format": format!("{} v{}", quant::FORMAT, quant::VERSION),
        "calibration_images": calibration.images,
        "logit_mse_unclipped": calibration.logit_mse_unclipped,
        "logit_mse_calibrated": calibration.logit_mse_calibrated,
        "validation": comparison,
        "params": size.params,
        "macs": size.macs,
        "command": crate::model_dir::invocation(),
    });
    info.card["int8"] = summary.clone();
    if info.task == Task::Gate {
        // What ships is int8: the gate's refusal floor is chosen, and its routing and refusal
        // numbers measured, on it (int8 moves a confidence near the floor by up to a few tenths).
        let model = student_from_bytes(&info.network, int8.clone(), &burn::prelude::Device::flex())
            .map_err(|e| e.to_string())?;
        let (probabilities, _) = bedside_train::quantise::probabilities(&info, &model, &val);
        let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
        let floor =
            bedside_train::gate::choose_floor(&probabilities, &labels, bedside_train::pipeline::GATE_KEEP);
        info.threshold = Some(floor);
        let evaluation = bedside_train::gate::evaluate(&info, &probabilities, &val);
        info.card["gate"] = serde_json::to_value(&evaluation).expect("evaluation serialises");
        let section = evaluation.card_section().replace(
            "Measured by `bedside train --task gate` at the end of training.",
            "Floor chosen and measured on the shipped int8 `model.bin` by `bedside quantize --model <this folder>`.",
        );
        bedside_train::card::set_section(&args.target.model, "gate", &section).map_err(|e| e.to_string())?;
    }
    crate::model_dir::write_info(&args.target.model, &info)?;
    bedside_train::card::set_section(
        &args.target.model,
        "int8",
        &card_section(&calibration, &comparison, &size),
    )
    .map_err(|e| e.to_string())?;
    println!("{summary}");
    Ok(())
}

/// The network's size, the same in both files.
struct Size {
    params: usize,
    macs: u64,
}

fn card_section(calibration: &Calibration, c: &Comparison, size: &Size) -> String {
    let kb = |b: usize| format!("{:.0} KB", b as f64 / 1000.0);
    format!(
        "## int8 weights (`model.bin`, shipped)\n\n\
         Weights are stored as symmetric int8 with one scale per output channel; biases stay fp32, and \
         the browser and CLI restore fp32 weights when loading, so int8 changes the download, not the \
         arithmetic. Each tensor's clipping was calibrated on {images} training images (logit MSE from \
         fp32 {before:.2e} unclipped → {after:.2e} calibrated).\n\n\
         {params} parameters; {macs:.1} M multiply–accumulates per image at the input size (BatchNorm \
         folded).\n\n\
         | on validation ({n} images) | fp32 (`model-fp32.bin`) | int8 (`model.bin`) |\n\
         |---|---|---|\n\
         | file size | {s32} | {s8} |\n\
         | AUC | {a32:.4} | {a8:.4} |\n\
         | accuracy | {c32:.4} | {c8:.4} |\n\n\
         Largest difference in any calibrated probability: {diff:.4}; the same label for {agree:.1} % of \
         images. Measured with `bedside quantize --model <this folder>`.\n",
        params = size.params,
        macs = size.macs as f64 / 1e6,
        images = calibration.images,
        before = calibration.logit_mse_unclipped,
        after = calibration.logit_mse_calibrated,
        n = c.n,
        s32 = kb(c.fp32_bytes),
        s8 = kb(c.int8_bytes),
        a32 = c.fp32_auc,
        a8 = c.int8_auc,
        c32 = c.fp32_accuracy,
        c8 = c.int8_accuracy,
        diff = c.max_probability_difference,
        agree = 100.0 * c.label_agreement,
    )
}
