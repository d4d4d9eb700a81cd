//! Loading a model folder (`model.json` + weights) for `eval`, `predict` and `quantize`.

use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_model::student::Student;
use burn::prelude::Device;
use std::path::{Path, PathBuf};

/// `--model` and `--data`: the model folder a command measures and the task data it measures on.
#[derive(clap::Args)]
pub struct Target {
    /// Model folder holding model.json and its weights (e.g. models/chest).
    #[arg(long)]
    pub model: PathBuf,
    /// Task folder (images/ + labels.csv) [default: $BEDSIDE_DATA/<the model's task folder>].
    #[arg(long)]
    pub data: Option<PathBuf>,
}

impl Target {
    /// `split` of the model's task data.
    pub fn split(&self, info: &ModelInfo, split: &str) -> Result<bedside_train::data::Dataset, String> {
        data_split(info, self.data.as_deref(), split)
    }

    /// The task folder: `--data`, else `$BEDSIDE_DATA/<the model's task folder>`.
    pub fn data_dir(&self, info: &ModelInfo) -> PathBuf {
        self.data.clone().unwrap_or_else(|| bedside_train::data::default_dir(info.task))
    }
}

/// Which weights file of a model folder to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// `model.bin`: per-channel int8, what ships.
    Int8,
    /// `model-fp32.bin`: the full-precision weights it was quantised from.
    Fp32,
}

impl Weights {
    pub fn from_flag(fp32: bool) -> Weights {
        if fp32 { Weights::Fp32 } else { Weights::Int8 }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Weights::Int8 => "model.bin",
            Weights::Fp32 => "model-fp32.bin",
        }
    }

    /// What the CPU engine computes these weights in: the shipped ones as the page does, the
    /// full-precision ones in f32 (the reference, within 1e-4 of burn's).
    pub fn arithmetic(self) -> bedside_diagnosis::Precision {
        match self {
            Weights::Int8 => bedside_diagnosis::CPU_ARITHMETIC,
            Weights::Fp32 => bedside_diagnosis::Precision::Fp32,
        }
    }
}

/// The folder's `model.json` text and the chosen weights file's bytes.
pub fn read(dir: &Path, weights: Weights) -> Result<(String, Vec<u8>), String> {
    let json_path = dir.join("model.json");
    let text = std::fs::read_to_string(&json_path)
        .map_err(|e| format!("could not read {}: {e}", json_path.display()))?;
    let path = dir.join(weights.file_name());
    let bytes = std::fs::read(&path).map_err(|e| {
        let hint = if weights == Weights::Int8 { " (run `bedside quantize`, or pass --fp32)" } else { "" };
        format!("could not read {}: {e}{hint}", path.display())
    })?;
    Ok((text, bytes))
}

pub fn load(dir: &Path, weights: Weights) -> Result<(ModelInfo, Student), String> {
    let (text, bytes) = read(dir, weights)?;
    let info =
        ModelInfo::from_json(&text).map_err(|e| format!("{}: {e}", dir.join("model.json").display()))?;
    let model = student_from_bytes(&info.network, bytes, &Device::flex())
        .map_err(|e| format!("{}: {e}", dir.join(weights.file_name()).display()))?;
    Ok((info, model))
}

/// Rewrites the folder's `model.json` (after a step recorded its measurements in `info.card`) and
/// redraws `MODEL_CARD.md` from it: the card is never edited on its own.
pub fn write_info(dir: &Path, info: &ModelInfo) -> Result<(), String> {
    let path = dir.join("model.json");
    let text = serde_json::to_string_pretty(info).expect("model info serialises") + "\n";
    std::fs::write(&path, text).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    bedside_train::card::write(dir).map_err(|e| e.to_string())
}

/// `split` of the model's task data (`data`, else the task's folder under `$BEDSIDE_DATA`).
fn data_split(
    info: &ModelInfo,
    data: Option<&Path>,
    split: &str,
) -> Result<bedside_train::data::Dataset, String> {
    let dir = data.map_or_else(|| bedside_train::data::default_dir(info.task), Path::to_path_buf);
    bedside_train::pipeline::load_split(info, &dir, split, &bedside_train::Progress::default())
        .map_err(|e| e.to_string())
}

/// The command line this process was run with, as `bedside …` and without `--resume`: what
/// reproduces a recorded step from scratch.
pub fn invocation() -> String {
    std::iter::once("bedside".to_string())
        .chain(std::env::args().skip(1).filter(|a| a != "--resume"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Records what a step measured on the model in `dir`: under `key` in `model.json`'s card (with the
/// weights file and the command; the card is redrawn from it), and as one line of JSON on stdout.
pub fn record(
    dir: &Path,
    info: &mut ModelInfo,
    key: &str,
    measured: impl serde::Serialize,
    weights: Weights,
) -> Result<(), String> {
    let mut summary = serde_json::to_value(measured).expect("measurements serialise");
    summary["weights"] = weights.file_name().into();
    summary["command"] = invocation().into();
    info.card[key] = summary.clone();
    write_info(dir, info)?;
    println!("{summary}");
    Ok(())
}
