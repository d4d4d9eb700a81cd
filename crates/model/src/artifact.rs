//! The model artifact: `model.json` (what the model is and how to use it) beside the weights.
//!
//! `model-fp32.bin` holds the student's weights with BatchNorm already folded into the convolutions,
//! as one burnpack record (burn's own tensor container: names, shapes, dtypes, little-endian data);
//! it loads the same way natively and in Wasm. `model.json` carries [`ModelInfo`]; its
//! `format_version` changes whenever either file's layout does.

use crate::input::InputSpec;
use crate::student::{Student, StudentConfig};
use crate::task::Task;
use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

/// The layout version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Everything needed to run a model and interpret its output; the machine-readable model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub format_version: u32,
    pub task: Task,
    /// Class names in output order, exactly as in the data set's labels.csv.
    pub classes: Vec<String>,
    pub input: InputSpec,
    pub network: StudentConfig,
    /// Logits are divided by this before the softmax (temperature scaling, fitted on validation).
    pub temperature: f32,
    /// Operating threshold on the positive class's calibrated probability (see [`Task::decide`]);
    /// `None` for tasks decided by argmax (breast).
    pub threshold: Option<f32>,
    /// Free-form card data (data, metrics with CIs, training command, …) for people and the page.
    #[serde(default)]
    pub card: serde_json::Value,
}

#[derive(Debug)]
pub struct ArtifactError(pub String);

impl std::fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArtifactError {}

impl ModelInfo {
    pub fn from_json(text: &str) -> Result<ModelInfo, ArtifactError> {
        let info: ModelInfo =
            serde_json::from_str(text).map_err(|e| ArtifactError(format!("model.json is not valid: {e}")))?;
        if info.format_version != FORMAT_VERSION {
            return Err(ArtifactError(format!(
                "model.json has format version {}, this build reads version {FORMAT_VERSION}",
                info.format_version
            )));
        }
        Ok(info)
    }
}

/// Serialises a trained student (BatchNorm is folded here) into `model-fp32.bin` bytes.
pub fn student_to_bytes(model: Student) -> Result<Vec<u8>, ArtifactError> {
    let bytes = model
        .fold_batchnorm()
        .into_record()
        .into_bytes()
        .map_err(|e| ArtifactError(format!("could not serialise the weights: {e}")))?;
    Ok(bytes.to_vec())
}

/// Builds the network `config` describes, folded, and loads weights into it: `model.bin` (int8,
/// see [`crate::quant`]) or `model-fp32.bin`, told apart by their content.
pub fn student_from_bytes(
    config: &StudentConfig,
    bytes: Vec<u8>,
    device: &Device,
) -> Result<Student, ArtifactError> {
    config.check().map_err(ArtifactError)?;
    let bytes = if crate::quant::is_int8(&bytes) {
        crate::quant::write_fp32(&crate::quant::to_fp32(bytes)?)?
    } else {
        bytes
    };
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| ArtifactError(format!("the weights file is not a burnpack: {e}")))?;
    config
        .init(device)
        .fold_batchnorm()
        .try_load_record(record)
        .map_err(|e| ArtifactError(format!("the weights do not fit the network in model.json: {e}")))
        .map(|m| m.valid())
}
