//! The model artifact: `model.json` (what the model is and how to use it) beside the weights.
//!
//! `model-fp32.bin` holds the student's weights with BatchNorm already folded into the convolutions,
//! as one burnpack record (burn's own tensor container: names, shapes, dtypes, little-endian data);
//! it loads the same way natively and in Wasm. `model.json` carries [`ModelInfo`]; its
//! `format_version` changes whenever either file's layout does. Both are input like any other:
//! [`ModelInfo::from_json`] checks the card against its task and network, and [`student_from_bytes`]
//! the weights against the network, so a file that does not fit is an [`ArtifactError`], never a
//! panic (in the browser's worker a panic would leave the Wasm instance broken).

use crate::heat_map::HeatMapKind;
use crate::input::InputSpec;
use crate::review::{MAX_MARGIN, Review};
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
    /// `None` decides at 0.5 (for the gate it is the confidence floor, see [`crate::gate`]).
    pub threshold: Option<f32>,
    /// When the answer is "uncertain: needs review" rather than a class (see [`Review`]); absent,
    /// the model always names a class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// What the heat map draws; absent, the predicted class's activation map.
    #[serde(default, skip_serializing_if = "HeatMapKind::is_class")]
    pub heat_map: HeatMapKind,
    /// Free-form card data (data, metrics with CIs, training command, …) for people and the page.
    #[serde(default)]
    pub card: serde_json::Value,
}

/// Why a model artifact cannot be used. Its `Display` is one line naming the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// `model.json` is not JSON of the documented shape (a field missing, a wrong type, …).
    #[error("model.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// `model.json` parsed but does not describe a model this build can run.
    #[error(transparent)]
    Invalid(#[from] InfoError),
    /// The weights file is a burnpack, but its tensors are not the network `model.json` describes.
    #[error("the weights do not fit the network in model.json: {0}")]
    WeightsDoNotFit(#[source] burn::store::RecordError),
    /// The weights file cannot be read or written (not a burnpack, a broken int8 tensor, …).
    #[error("{0}")]
    Weights(String),
}

/// What is wrong with a `model.json` that parsed: each variant names the field to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InfoError {
    /// Written by another version of the format.
    #[error("model.json has format version {found}, this build reads version {FORMAT_VERSION}")]
    FormatVersion { found: u32 },
    /// The class names are not the task's, in its order: the page would name outputs wrongly.
    #[error("model.json lists the classes {found:?} but the {task} model's are {expected:?}, in that order")]
    Classes { task: &'static str, found: Vec<String>, expected: &'static [&'static str] },
    /// `classes` and `network.num_classes` disagree.
    #[error("model.json lists {classes} classes but the network has {outputs} outputs (network.num_classes)")]
    ClassCount { classes: usize, outputs: usize },
    /// Neither grey nor RGB.
    #[error("model.json input.channels is {0}; it must be 1 (grey) or 3 (RGB)")]
    ChannelCount(u32),
    /// `input.channels` and `network.in_channels` disagree.
    #[error("model.json input.channels is {input} but the network reads {network} (network.in_channels)")]
    Channels { input: u32, network: usize },
    /// `input.mean` or `input.std` does not hold one value per channel.
    #[error("model.json input.{field} has {found} values but input.channels is {channels}")]
    StatsLength { field: &'static str, found: usize, channels: u32 },
    /// A mean that is NaN or infinite.
    #[error("model.json input.mean[{index}] is {value}; it must be a finite number")]
    Mean { index: usize, value: f32 },
    /// Normalisation divides by it: zero, negative or not finite would make every input NaN or inverted.
    #[error("model.json input.std[{index}] is {value}; it must be positive and finite")]
    Std { index: usize, value: f32 },
    /// An input side of 0 or absurdly large.
    #[error("model.json input is {width}×{height} pixels; each side must be 1 to {MAX_SIDE}")]
    Size { width: u32, height: u32 },
    /// Logits are divided by it: zero, negative or not finite breaks the softmax.
    #[error("model.json temperature is {0}; it must be positive and finite")]
    Temperature(f32),
    /// A threshold on a probability outside [0, 1] would decide every case the same way.
    #[error("model.json threshold is {0}; it must be between 0 and 1")]
    Threshold(f32),
    /// Averaging with the mirror image where a mirror image is another picture (a chest film's
    /// heart would move to the right).
    #[error("model.json input.mirror_average is true, but a mirror image is not a valid {0} picture")]
    Mirror(&'static str),
    /// A review margin that is negative, not a number, or so wide nearly every answer is uncertain.
    #[error("model.json review.margin is {0}; it must be between 0 and {MAX_MARGIN} (log-odds)")]
    ReviewMargin(f32),
    /// A scalar of `network` outside what the student can be built with.
    #[error("model.json network.{field} is {value}; it must be {rule}")]
    Network { field: &'static str, value: f64, rule: &'static str },
    /// `network.hidden` (the pruned widths) does not fit the blocks ([`StudentConfig::check`]).
    #[error("model.json {0}")]
    Hidden(String),
}

/// The largest input side accepted: far above any task's, small enough that sizes never overflow.
const MAX_SIDE: u32 = 4096;

impl ModelInfo {
    /// Parses and validates `model.json` text, so that everything later code indexes or divides by
    /// is known to fit (a bad file is an error here, never a panic in the browser's worker).
    pub fn from_json(text: &str) -> Result<ModelInfo, ArtifactError> {
        // The version first: a file of another version may not parse as this one's fields.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let Version { format_version } = serde_json::from_str(text)?;
        if format_version != FORMAT_VERSION {
            return Err(InfoError::FormatVersion { found: format_version }.into());
        }
        let info: ModelInfo = serde_json::from_str(text)?;
        info.validate()?;
        Ok(info)
    }

    /// Checks that the fields agree with each other, with the task and with the network.
    pub fn validate(&self) -> Result<(), InfoError> {
        if self.format_version != FORMAT_VERSION {
            return Err(InfoError::FormatVersion { found: self.format_version });
        }
        let expected = self.task.classes();
        if !self.classes.iter().map(String::as_str).eq(expected.iter().copied()) {
            return Err(InfoError::Classes { task: self.task.name(), found: self.classes.clone(), expected });
        }
        if self.classes.len() != self.network.num_classes {
            return Err(InfoError::ClassCount {
                classes: self.classes.len(),
                outputs: self.network.num_classes,
            });
        }
        let input = &self.input;
        if !matches!(input.channels, 1 | 3) {
            return Err(InfoError::ChannelCount(input.channels));
        }
        if input.channels as usize != self.network.in_channels {
            return Err(InfoError::Channels { input: input.channels, network: self.network.in_channels });
        }
        for (field, values) in [("mean", &input.mean), ("std", &input.std)] {
            if values.len() != input.channels as usize {
                return Err(InfoError::StatsLength { field, found: values.len(), channels: input.channels });
            }
        }
        if let Some((index, &value)) = input.mean.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(InfoError::Mean { index, value });
        }
        if let Some((index, &value)) = input.std.iter().enumerate().find(|(_, v)| !positive(**v as f64)) {
            return Err(InfoError::Std { index, value });
        }
        if ![input.width, input.height].iter().all(|side| (1..=MAX_SIDE).contains(side)) {
            return Err(InfoError::Size { width: input.width, height: input.height });
        }
        if input.mirror_average && !self.task.mirror_is_valid() {
            return Err(InfoError::Mirror(self.task.name()));
        }
        if !positive(self.temperature as f64) {
            return Err(InfoError::Temperature(self.temperature));
        }
        if let Some(threshold) = self.threshold
            && !(0.0..=1.0).contains(&threshold)
        {
            return Err(InfoError::Threshold(threshold));
        }
        if let Some(Review { margin }) = self.review
            && !(0.0..=MAX_MARGIN).contains(&margin)
        {
            return Err(InfoError::ReviewMargin(margin));
        }
        check_network(&self.network)
    }
}

fn positive(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

/// The scalars [`StudentConfig::init`] would panic on or build an absurd network from, then the
/// pruned widths.
fn check_network(network: &StudentConfig) -> Result<(), InfoError> {
    let fields = [
        // Up to 2: MobileNetV2 is published up to 1.4; more would not fit a browser.
        ("width", network.width, positive(network.width) && network.width <= 2.0, "above 0 and at most 2"),
        (
            "head_channels",
            network.head_channels as f64,
            (1..=4096).contains(&network.head_channels),
            "1 to 4096",
        ),
        (
            "se_ratio",
            network.se_ratio,
            positive(network.se_ratio) && network.se_ratio <= 1.0,
            "above 0 and at most 1",
        ),
        // burn's Dropout panics outside [0, 1).
        ("dropout", network.dropout, (0.0..1.0).contains(&network.dropout), "at least 0 and below 1"),
    ];
    if let Some(&(field, value, _, rule)) = fields.iter().find(|(_, _, ok, _)| !ok) {
        return Err(InfoError::Network { field, value, rule });
    }
    network.check().map_err(InfoError::Hidden)
}

/// Serialises a trained student (BatchNorm is folded here) into `model-fp32.bin` bytes.
pub fn student_to_bytes(model: Student) -> Result<Vec<u8>, ArtifactError> {
    let bytes = model
        .fold_batchnorm()
        .into_record()
        .into_bytes()
        .map_err(|e| ArtifactError::Weights(format!("could not serialise the weights: {e}")))?;
    Ok(bytes.to_vec())
}

/// Builds the network `config` describes, folded, and loads weights into it: `model.bin` (int8,
/// see [`crate::quant`]) or `model-fp32.bin`, told apart by their content.
pub fn student_from_bytes(
    config: &StudentConfig,
    bytes: Vec<u8>,
    device: &Device,
) -> Result<Student, ArtifactError> {
    // Callers may pass a config that did not come through `from_json` (training, pruning).
    check_network(config)?;
    let bytes = if crate::quant::is_int8(&bytes) {
        crate::quant::write_fp32(&crate::quant::to_fp32(bytes)?)?
    } else {
        bytes
    };
    // A burnpack may hold any dtype and burn loads it as recorded; cast to the network's (f32) so
    // an f64 or f16 tensor computes instead of panicking in the first matmul.
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| ArtifactError::Weights(format!("the weights file is not a burnpack: {e}")))?
        .cast_to_module_dtype();
    config
        .init(device)
        .fold_batchnorm()
        .try_load_record(record)
        .map_err(ArtifactError::WeightsDoNotFit)
        .map(|m| m.valid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};

    fn model_dir(task: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(task)
    }

    /// The shipped `model.json` of `task` with one change made by `edit`.
    fn task_json(task: &str, edit: impl FnOnce(&mut Value)) -> String {
        let text = std::fs::read_to_string(model_dir(task).join("model.json")).unwrap();
        let mut value: Value = serde_json::from_str(&text).unwrap();
        edit(&mut value);
        value.to_string()
    }

    fn chest_json(edit: impl FnOnce(&mut Value)) -> String {
        task_json("chest", edit)
    }

    /// The validation error of the chest `model.json` changed by `edit`.
    fn invalid(edit: impl FnOnce(&mut Value)) -> InfoError {
        invalid_in("chest", edit)
    }

    /// The validation error of `task`'s `model.json` changed by `edit`.
    fn invalid_in(task: &str, edit: impl FnOnce(&mut Value)) -> InfoError {
        match ModelInfo::from_json(&task_json(task, edit)) {
            Err(ArtifactError::Invalid(e)) => e,
            Err(other) => panic!("expected a validation error, got {other}"),
            Ok(_) => panic!("the changed model.json was accepted"),
        }
    }

    fn weights(task: &str, file: &str) -> Vec<u8> {
        std::fs::read(model_dir(task).join(file)).unwrap()
    }

    fn chest_weights(file: &str) -> Vec<u8> {
        weights("chest", file)
    }

    #[test]
    fn the_shipped_model_json_files_pass() {
        for task in ["chest", "skin", "breast", "gate"] {
            let text = std::fs::read_to_string(model_dir(task).join("model.json")).unwrap();
            let info = ModelInfo::from_json(&text).unwrap_or_else(|e| panic!("{task}: {e}"));
            assert_eq!(info.task.name(), task);
        }
        assert!(ModelInfo::from_json(&chest_json(|_| ())).is_ok());
    }

    #[test]
    fn classes_must_be_the_tasks_in_order() {
        let renamed = invalid(|v| v["classes"][1] = json!("pneumonia_bacterial"));
        assert!(
            matches!(&renamed, InfoError::Classes { task: "chest", found, .. } if found[1] == "pneumonia_bacterial")
        );
        assert_eq!(
            renamed.to_string(),
            r#"model.json lists the classes ["normal", "pneumonia_bacterial"] but the chest model's are ["normal", "pneumonia"], in that order"#
        );
        let reordered = invalid(|v| v["classes"] = json!(["pneumonia", "normal"]));
        assert!(matches!(reordered, InfoError::Classes { .. }), "{reordered}");
        let dropped = invalid(|v| v["classes"] = json!(["normal"]));
        assert!(matches!(dropped, InfoError::Classes { .. }), "{dropped}");
        // The classes are the task's, but the network was built with another number of outputs.
        let outputs = invalid(|v| v["network"]["num_classes"] = json!(3));
        assert_eq!(outputs, InfoError::ClassCount { classes: 2, outputs: 3 });
        assert_eq!(
            outputs.to_string(),
            "model.json lists 2 classes but the network has 3 outputs (network.num_classes)"
        );
    }

    #[test]
    fn input_must_fit_the_network_and_normalise() {
        let mean = invalid(|v| v["input"]["mean"] = json!([0.5, 0.5]));
        assert_eq!(mean, InfoError::StatsLength { field: "mean", found: 2, channels: 1 });
        assert_eq!(mean.to_string(), "model.json input.mean has 2 values but input.channels is 1");
        let std = invalid(|v| v["input"]["std"] = json!([0.0]));
        assert_eq!(std, InfoError::Std { index: 0, value: 0.0 });
        assert_eq!(invalid(|v| v["input"]["std"] = json!([-0.2])), InfoError::Std { index: 0, value: -0.2 });
        let channels = invalid(|v| {
            v["input"]["channels"] = json!(3);
            v["input"]["mean"] = json!([0.5, 0.5, 0.5]);
            v["input"]["std"] = json!([0.2, 0.2, 0.2]);
        });
        assert_eq!(channels, InfoError::Channels { input: 3, network: 1 });
        assert_eq!(invalid(|v| v["input"]["channels"] = json!(2)), InfoError::ChannelCount(2));
        assert_eq!(invalid(|v| v["input"]["width"] = json!(0)), InfoError::Size { width: 0, height: 128 });
    }

    #[test]
    fn calibration_must_be_usable() {
        assert_eq!(invalid(|v| v["temperature"] = json!(0.0)), InfoError::Temperature(0.0));
        assert_eq!(invalid(|v| v["threshold"] = json!(1.5)), InfoError::Threshold(1.5));
        assert_eq!(invalid(|v| v["threshold"] = json!(-0.1)), InfoError::Threshold(-0.1));
        // No threshold is valid: the task then decides at 0.5.
        assert!(ModelInfo::from_json(&chest_json(|v| v["threshold"] = Value::Null)).is_ok());
        // A review margin is a distance in log-odds: 0 up to MAX_MARGIN.
        let margin = |m: f32| chest_json(|v| v["review"] = json!({ "margin": m }));
        assert_eq!(ModelInfo::from_json(&margin(0.4)).unwrap().review, Some(Review { margin: 0.4 }));
        assert_eq!(invalid(|v| v["review"] = json!({ "margin": -0.1 })), InfoError::ReviewMargin(-0.1));
        assert_eq!(invalid(|v| v["review"] = json!({ "margin": 11.0 })), InfoError::ReviewMargin(11.0));
        assert_eq!(invalid(|v| v["input"]["mirror_average"] = json!(true)), InfoError::Mirror("chest"));
        // No review rule is valid too: every answer names a class.
        let without = chest_json(|v| {
            v.as_object_mut().unwrap().remove("review");
        });
        assert_eq!(ModelInfo::from_json(&without).unwrap().review, None);
    }

    #[test]
    fn the_network_must_be_buildable() {
        // Pruned widths as pruning writes them, on the chest network (MobileNetV2 ×0.5): block 2's
        // are 96 unpruned, so 500 cannot be a pruned width.
        let mut widths = chest_widths();
        widths[2] = 500;
        let hidden = invalid(|v| v["network"]["hidden"] = json!(widths));
        assert!(matches!(&hidden, InfoError::Hidden(m) if m.starts_with("network.hidden")), "{hidden}");
        let dropout = invalid(|v| v["network"]["dropout"] = json!(1.0));
        assert!(matches!(dropout, InfoError::Network { field: "dropout", .. }), "{dropout}");
        let width = invalid(|v| v["network"]["width"] = json!(0.0));
        assert!(matches!(width, InfoError::Network { field: "width", .. }), "{width}");
    }

    #[test]
    fn other_versions_and_broken_json_are_errors() {
        assert_eq!(invalid(|v| v["format_version"] = json!(2)), InfoError::FormatVersion { found: 2 });
        assert!(matches!(ModelInfo::from_json("{\"format_version\": 1"), Err(ArtifactError::Json(_))));
        assert!(matches!(
            ModelInfo::from_json(&chest_json(|v| v["temperature"] = json!("warm"))),
            Err(ArtifactError::Json(_))
        ));
    }

    /// `student_from_bytes` of `task`'s real weights under a changed network.
    fn load(task: &str, file: &str, edit: impl FnOnce(&mut StudentConfig)) -> Result<Student, ArtifactError> {
        let mut network = ModelInfo::from_json(&task_json(task, |_| ())).unwrap().network;
        edit(&mut network);
        student_from_bytes(&network, weights(task, file), &Device::flex())
    }

    #[test]
    fn the_shipped_weights_load() {
        for task in ["chest", "skin", "breast", "gate"] {
            for file in ["model.bin", "model-fp32.bin"] {
                load(task, file, |_| ()).unwrap_or_else(|e| panic!("{task} {file}: {e}"));
            }
        }
    }

    /// The chest network's expanded widths per block, unpruned (MobileNetV2 ×0.5).
    fn chest_widths() -> Vec<usize> {
        ModelInfo::from_json(&chest_json(|_| ())).unwrap().network.hidden_channels()
    }

    #[test]
    fn weights_that_do_not_fit_are_an_error_not_a_panic() {
        // The chest model: MobileNetV2 ×0.5, grey, 2 classes, unpruned (block 2: 96 wide).
        fn mismatch(file: &str, edit: impl FnOnce(&mut StudentConfig)) -> String {
            match load("chest", file, edit) {
                Err(ArtifactError::WeightsDoNotFit(e)) => e.to_string(),
                Err(other) => panic!("expected a weights mismatch, got {other}"),
                Ok(_) => panic!("mismatched weights loaded"),
            }
        }
        let mut narrower = chest_widths();
        narrower[2] = 64;
        for file in ["model.bin", "model-fp32.bin"] {
            // A pruned width narrower than the weights' (96) yet a valid one: model.json alone
            // cannot tell, the weights can.
            let message = mismatch(file, |n| n.hidden = Some(narrower.clone()));
            assert!(message.contains("blocks.2."), "{message}");
            let message = mismatch(file, |n| n.num_classes = 3);
            assert!(message.contains("classifier"), "{message}");
            mismatch(file, |n| n.head_channels = 256);
            mismatch(file, |n| n.in_channels = 3);
            mismatch(file, |n| n.width = 0.75);
        }
        // The same change made in model.json passes its own checks; the weights refuse it.
        let json = chest_json(|v| v["network"]["hidden"] = json!(narrower));
        let info = ModelInfo::from_json(&json).unwrap();
        assert!(matches!(
            student_from_bytes(&info.network, weights("chest", "model.bin"), &Device::flex()),
            Err(ArtifactError::WeightsDoNotFit(_))
        ));
        // Pruned widths belong to their width multiplier: 0.5's do not fit 0.75's stem.
        let width = invalid(|v| {
            v["network"]["hidden"] = json!(chest_widths());
            v["network"]["width"] = json!(0.75);
        });
        assert!(matches!(width, InfoError::Hidden(_)), "{width}");
    }

    #[test]
    fn weights_of_another_dtype_are_cast_not_a_panic() {
        // The classifier stored as f64: loaded as recorded, it made flex's matmul panic.
        let weights = crate::quant::read_fp32(chest_weights("model-fp32.bin")).unwrap();
        let tensors = weights
            .iter()
            .map(|w| {
                let (dtype, bytes): (_, Vec<u8>) = if w.name == "classifier.weight" {
                    (burn_pack::DType::F64, w.values.iter().flat_map(|v| (*v as f64).to_le_bytes()).collect())
                } else {
                    (burn_pack::DType::F32, w.values.iter().flat_map(|v| v.to_le_bytes()).collect())
                };
                let bytes = burn::tensor::Bytes::from_bytes_vec(bytes);
                burn_pack::Tensor::new(w.name.clone(), dtype, w.shape.clone(), w.param_id, bytes)
            })
            .collect();
        let f64_file = burn_pack::Writer::new(tensors).into_bytes().unwrap().to_vec();
        let (cast, plain) = (load_chest_bytes(f64_file), load_chest_bytes(chest_weights("model-fp32.bin")));
        let x = || Tensor::<4>::ones([1, 1, 128, 128], &Device::flex());
        assert_eq!(cast.forward(x()).into_data(), plain.forward(x()).into_data());
    }

    fn load_chest_bytes(bytes: Vec<u8>) -> Student {
        let network = ModelInfo::from_json(&chest_json(|_| ())).unwrap().network;
        student_from_bytes(&network, bytes, &Device::flex()).unwrap()
    }
}
