//! `bedside quantize`: a model folder's `model-fp32.bin` → int8 `model.bin`, with the comparison.

use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_model::quant;
use bedside_model::task::Task;
use bedside_train::Progress;
use bedside_train::quantise::{Int8Summary, calibrate, compare};

/// Quantise a model's weights to per-channel int8 (model.bin), calibrated on training images, then
/// compare int8 with fp32 on the val split. Writes model.bin, records the comparison in model.json
/// ("int8"), redraws MODEL_CARD.md from it, and prints it as one line of JSON.
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
    let out = args.target.model.join("model.bin");
    std::fs::write(&out, &int8).map_err(|e| format!("could not write {}: {e}", out.display()))?;
    let summary = Int8Summary {
        format: format!("{} v{}", quant::FORMAT, quant::VERSION),
        calibration_images: calibration.images,
        logit_mse_unclipped: calibration.logit_mse_unclipped,
        logit_mse_calibrated: calibration.logit_mse_calibrated,
        validation: comparison,
        params: burn::module::Module::num_params(&network),
        macs: network.macs(info.input.height as usize, info.input.width as usize),
        command: crate::model_dir::invocation(),
    };
    info.card["int8"] = serde_json::to_value(&summary).expect("summary serialises");
    if info.task == Task::Gate {
        // What ships is int8: the gate's refusal floor is chosen, and its routing and refusal
        // numbers measured, on it (int8 moves a confidence near the floor by up to a few tenths).
        let model = student_from_bytes(&info.network, int8.clone(), &burn::prelude::Device::flex())
            .map_err(|e| e.to_string())?;
        let (probabilities, _) =
            bedside_train::quantise::probabilities(&info, &model, &val, bedside_diagnosis::CPU_ARITHMETIC)
                .map_err(|e| e.to_string())?;
        let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
        let floor =
            bedside_train::gate::choose_floor(&probabilities, &labels, bedside_train::pipeline::GATE_KEEP);
        info.threshold = Some(floor);
        let evaluation = bedside_train::gate::evaluate(&info, &probabilities, &val);
        info.card["gate"] = serde_json::to_value(&evaluation).expect("evaluation serialises");
        // The card says the floor was chosen on the int8 weights, by this command.
        info.card["gate"]["command"] = summary.command.clone().into();
    }
    crate::model_dir::write_info(&args.target.model, &info)?;
    println!("{}", info.card["int8"]);
    Ok(())
}
