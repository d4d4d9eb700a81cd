//! int8 weights: the `model.bin` a model ships as, about a quarter of `model-fp32.bin`.
//!
//! # Format (`bedside-int8`, version 1)
//! A burnpack (burn's tensor container, the same as `model-fp32.bin`) with two metadata entries,
//! `format = "bedside-int8"` and `version = "1"`, and for every weight of rank ≥ 2:
//! - the tensor under its own name, dtype `I8`, the same shape as in fp32;
//! - `<name>:scale`, `F32`, one scale per output channel;
//! - metadata `<name>:axis`, the output-channel axis (0 for a convolution `[out, in, kh, kw]`,
//!   1 for burn's linear layout `[in, out]`).
//!
//! The weight is `q · scale[channel]` (symmetric, no zero point). Biases stay `F32`: they are a
//! thousandth of the bytes and their error would shift every activation. The file holds weights only:
//! [`to_fp32`] restores fp32 weights, which burn runs (WebGPU and the analysis commands); the CPU
//! engine (`bedside-infer`) quantises them again by the same rule, recovering these integers, and
//! multiplies those.

use crate::artifact::ArtifactError;
use burn::tensor::Bytes;
use burn_pack::{DType, Reader, Tensor, Writer};
use std::collections::BTreeMap;

pub const FORMAT: &str = "bedside-int8";
pub const VERSION: &str = "1";

/// Largest magnitude a weight is stored with (symmetric, so -128 is never used).
const Q_MAX: f32 = 127.0;

fn pack_error(what: &str, e: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Weights(format!("{what}: {e}"))
}

/// A weight tensor read from an fp32 burnpack.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    pub param_id: Option<u64>,
    pub values: Vec<f32>,
}

impl Weight {
    /// The output-channel axis if this tensor is quantised (rank ≥ 2), else `None`.
    pub fn channel_axis(&self) -> Option<usize> {
        match self.shape.len() {
            4 => Some(0),
            2 => Some(1),
            _ => None,
        }
    }

    /// Index of the output channel of each element, for the given axis.
    fn channel_of(&self, axis: usize) -> impl Fn(usize) -> usize + '_ {
        let inner: usize = self.shape[axis + 1..].iter().product();
        let channels = self.shape[axis];
        move |i| (i / inner) % channels
    }
}

/// Reads every tensor of an fp32 burnpack (`model-fp32.bin`).
pub fn read_fp32(bytes: Vec<u8>) -> Result<Vec<Weight>, ArtifactError> {
    let reader =
        Reader::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| pack_error("not a weights file", e))?;
    let tensors = reader.into_tensors().map_err(|e| pack_error("not a weights file", e))?;
    tensors
        .into_iter()
        .map(|t| {
            let (name, dtype, shape, param_id, bytes) =
                t.into_parts().map_err(|e| pack_error("unreadable tensor", e))?;
            if dtype != DType::F32 {
                return Err(ArtifactError::Weights(format!("{name} is {dtype:?}, expected F32")));
            }
            Ok(Weight { name, shape: shape.to_vec(), param_id, values: f32s(&bytes) })
        })
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn f32_bytes(values: &[f32]) -> Bytes {
    Bytes::from_bytes_vec(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Per-channel scales for one weight: `clip · max|w| / 127` over each output channel. `clip` below 1
/// saturates the few largest weights to resolve the rest more finely (chosen by calibration).
pub fn scales(weight: &Weight, axis: usize, clip: f32) -> Vec<f32> {
    let mut max = vec![0f32; weight.shape[axis]];
    let channel = weight.channel_of(axis);
    for (i, v) in weight.values.iter().enumerate() {
        let c = channel(i);
        max[c] = max[c].max(v.abs());
    }
    // An all-zero channel (pruned) still gets a positive scale, so dequantising never divides by 0.
    max.into_iter().map(|m| (clip * m / Q_MAX).max(f32::MIN_POSITIVE)).collect()
}

/// The int8 values of `weight` under `scales`.
pub fn quantise_values(weight: &Weight, axis: usize, scales: &[f32]) -> Vec<i8> {
    let channel = weight.channel_of(axis);
    weight
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scales[channel(i)]).round().clamp(-Q_MAX, Q_MAX) as i8)
        .collect()
}

/// What `weight` becomes after a round trip through int8 with `clip` (for calibration).
pub fn round_trip(weight: &Weight, clip: f32) -> Weight {
    let Some(axis) = weight.channel_axis() else { return weight.clone() };
    let scales = scales(weight, axis, clip);
    let q = quantise_values(weight, axis, &scales);
    let channel = weight.channel_of(axis);
    let values = q.iter().enumerate().map(|(i, &q)| q as f32 * scales[channel(i)]).collect();
    Weight { values, ..weight.clone() }
}

/// An fp32 burnpack of `weights` (what [`crate::artifact::student_from_bytes`] loads).
pub fn write_fp32(weights: &[Weight]) -> Result<Vec<u8>, ArtifactError> {
    let tensors = weights
        .iter()
        .map(|w| Tensor::new(w.name.clone(), DType::F32, w.shape.clone(), w.param_id, f32_bytes(&w.values)))
        .collect();
    Ok(Writer::new(tensors).into_bytes().map_err(|e| pack_error("could not write weights", e))?.to_vec())
}

/// `model.bin` bytes for fp32 `weights`; `clips` gives a tensor's clip fraction (default 1: no
/// clipping).
pub fn to_int8(weights: &[Weight], clips: &BTreeMap<String, f32>) -> Result<Vec<u8>, ArtifactError> {
    let mut tensors = Vec::new();
    let mut writer_meta =
        vec![("format".to_string(), FORMAT.to_string()), ("version".to_string(), VERSION.to_string())];
    for w in weights {
        let Some(axis) = w.channel_axis() else {
            tensors.push(Tensor::new(
                w.name.clone(),
                DType::F32,
                w.shape.clone(),
                w.param_id,
                f32_bytes(&w.values),
            ));
            continue;
        };
        let clip = clips.get(&w.name).copied().unwrap_or(1.0);
        let scales = scales(w, axis, clip);
        let q = quantise_values(w, axis, &scales);
        let q_bytes = Bytes::from_bytes_vec(q.iter().map(|&v| v as u8).collect());
        tensors.push(Tensor::new(w.name.clone(), DType::I8, w.shape.clone(), w.param_id, q_bytes));
        tensors.push(Tensor::new(
            format!("{}:scale", w.name),
            DType::F32,
            vec![scales.len()],
            None,
            f32_bytes(&scales),
        ));
        writer_meta.push((format!("{}:axis", w.name), axis.to_string()));
    }
    let mut writer = Writer::new(tensors);
    for (key, value) in &writer_meta {
        writer = writer.with_metadata(key, value);
    }
    Ok(writer.into_bytes().map_err(|e| pack_error("could not write model.bin", e))?.to_vec())
}

/// Every weight of `model.bin` (int8, restored to fp32) or `model-fp32.bin`, told apart by their
/// content: what Bedside's CPU engine reads, without burn.
pub fn read_weights(bytes: Vec<u8>) -> Result<Vec<Weight>, ArtifactError> {
    if is_int8(&bytes) { to_fp32(bytes) } else { read_fp32(bytes) }
}

/// Whether `bytes` are an int8 `model.bin` (rather than an fp32 burnpack).
pub fn is_int8(bytes: &[u8]) -> bool {
    Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .is_ok_and(|r| r.metadata().get("format").is_some_and(|f| f == FORMAT))
}

/// Reads an int8 `model.bin` back into fp32 weights.
pub fn to_fp32(bytes: Vec<u8>) -> Result<Vec<Weight>, ArtifactError> {
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| pack_error("model.bin is not a weights file", e))?;
    let meta = reader.metadata().clone();
    match (meta.get("format"), meta.get("version")) {
        (Some(f), Some(v)) if f == FORMAT && v == VERSION => {}
        (Some(f), Some(v)) if f == FORMAT => {
            return Err(ArtifactError::Weights(format!(
                "model.bin is {FORMAT} version {v}, this build reads version {VERSION}"
            )));
        }
        _ => return Err(ArtifactError::Weights(format!("model.bin is not a {FORMAT} file"))),
    }
    let mut raw: BTreeMap<String, (DType, Vec<usize>, Option<u64>, Bytes)> = BTreeMap::new();
    for t in reader.into_tensors().map_err(|e| pack_error("model.bin", e))? {
        let (name, dtype, shape, param_id, bytes) = t.into_parts().map_err(|e| pack_error("model.bin", e))?;
        raw.insert(name, (dtype, shape.to_vec(), param_id, bytes));
    }
    let mut weights = Vec::new();
    for (name, (dtype, shape, param_id, bytes)) in &raw {
        if name.ends_with(":scale") {
            continue;
        }
        let values = match dtype {
            DType::F32 => f32s(bytes),
            DType::I8 => {
                let broken = |what: &str| ArtifactError::Weights(format!("model.bin: {name} has {what}"));
                let axis: usize = meta
                    .get(&format!("{name}:axis"))
                    .and_then(|a| a.parse().ok())
                    .filter(|&a| a < shape.len())
                    .ok_or_else(|| broken("no valid axis"))?;
                let (_, _, _, scale_bytes) =
                    raw.get(&format!("{name}:scale")).ok_or_else(|| broken("no scales"))?;
                let scales = f32s(scale_bytes);
                if scales.len() != shape[axis] || bytes.len() != shape.iter().product::<usize>() {
                    return Err(broken("sizes that do not match its shape"));
                }
                let weight = Weight {
                    name: name.clone(),
                    shape: shape.clone(),
                    param_id: *param_id,
                    values: Vec::new(),
                };
                let channel = weight.channel_of(axis);
                bytes.iter().enumerate().map(|(i, &q)| q as i8 as f32 * scales[channel(i)]).collect()
            }
            other => return Err(ArtifactError::Weights(format!("model.bin: {name} is {other:?}"))),
        };
        weights.push(Weight { name: name.clone(), shape: shape.clone(), param_id: *param_id, values });
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> Weight {
        // Two output channels of very different magnitude: per-channel scales keep the small one exact.
        let values = vec![0.5, -1.0, 0.25, 1.0, 0.001, -0.002, 0.0005, 0.0];
        Weight { name: "conv.weight".into(), shape: vec![2, 1, 2, 2], param_id: Some(7), values }
    }

    #[test]
    fn per_channel_scales_follow_each_channel() {
        let w = conv();
        let s = scales(&w, 0, 1.0);
        assert_eq!(s, vec![1.0 / 127.0, 0.002 / 127.0]);
        let back = round_trip(&w, 1.0);
        for (a, b) in w.values.iter().zip(&back.values) {
            let step = if a.abs() > 0.01 { 1.0 / 127.0 } else { 0.002 / 127.0 };
            assert!((a - b).abs() <= step / 2.0 + 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn linear_weights_are_scaled_per_output_column() {
        // burn's Linear stores [in, out]: the scale runs along axis 1.
        let w = Weight {
            name: "fc.weight".into(),
            shape: vec![2, 3],
            param_id: None,
            values: vec![1.0, 0.1, 0.01, -2.0, 0.2, 0.0],
        };
        assert_eq!(w.channel_axis(), Some(1));
        assert_eq!(scales(&w, 1, 1.0), vec![2.0 / 127.0, 0.2 / 127.0, 0.01 / 127.0]);
    }

    #[test]
    fn model_bin_round_trips_and_rejects_tampering() {
        let bias =
            Weight { name: "conv.bias".into(), shape: vec![2], param_id: Some(8), values: vec![0.3, -0.7] };
        let weights = vec![bias.clone(), conv()];
        let bytes = to_int8(&weights, &BTreeMap::new()).unwrap();
        assert!(is_int8(&bytes));
        assert!(!is_int8(&write_fp32(&weights).unwrap()));
        let back = to_fp32(bytes.clone()).unwrap();
        let by_name = |n: &str| back.iter().find(|w| w.name == n).unwrap().clone();
        assert_eq!(by_name("conv.bias").values, bias.values, "biases stay exact");
        assert_eq!(by_name("conv.weight").values, round_trip(&conv(), 1.0).values);
        assert_eq!(by_name("conv.weight").param_id, Some(7));
        assert_eq!(back.len(), 2, "scales are not weights");

        let err = to_fp32(write_fp32(&weights).unwrap()).unwrap_err();
        assert!(err.to_string().contains("not a bedside-int8 file"), "{err}");
        let err = to_fp32(bytes[..bytes.len() / 2].to_vec()).unwrap_err();
        assert!(err.to_string().contains("model.bin"), "{err}");
    }
}
