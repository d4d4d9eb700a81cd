//! Loading a model folder (`model.json` + weights) for `eval` and `predict`.

use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_model::student::Student;
use burn::prelude::Device;
use std::path::Path;

/// The folder's `model.json` text and `model-fp32.bin` bytes.
pub fn read(dir: &Path) -> Result<(String, Vec<u8>), String> {
    let json_path = dir.join("model.json");
    let text = std::fs::read_to_string(&json_path)
        .map_err(|e| format!("could not read {}: {e}", json_path.display()))?;
    let weights = dir.join("model-fp32.bin");
    let bytes = std::fs::read(&weights).map_err(|e| format!("could not read {}: {e}", weights.display()))?;
    Ok((text, bytes))
}

pub fn load(dir: &Path) -> Result<(ModelInfo, Student), String> {
    let (text, bytes) = read(dir)?;
    let info = ModelInfo::from_json(&text).map_err(|e| format!("{}: {e}", dir.join("model.json").display()))?;
    let model = student_from_bytes(&info.network, bytes, &Device::flex())
        .map_err(|e| format!("{}: {e}", dir.join("model-fp32.bin").display()))?;
    Ok((info, model))
}
