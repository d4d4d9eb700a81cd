//! ONNX export of Bedside's models: the network a model folder ships, written as one ONNX graph
//! (opset 13) that any ONNX runtime runs. It is Bedside's cross-platform deployment format and the
//! peer's input when inference is benchmarked against onnxruntime.
//!
//! The graph takes the normalised input `[batch, channels, height, width]` at the model's input
//! size (`model.json`'s `input`; framing and normalisation happen before, as in `bedside-model`'s
//! `input`) and gives, for one pass:
//! - `logits` `[batch, classes]`, before calibration;
//! - `class_maps` `[batch, classes, height/32, width/32]`, the class activation maps the heat map
//!   is drawn from;
//! - `lesion_logits` `[batch, height, width]` where the folder has a lesion decoder.
//!
//! What happens after the network stays with the caller and is written in the model's metadata:
//! the calibration temperature, the decision threshold, the class names, the lesion threshold, and
//! whether the page averages a pass with its mirror image's (`mirror_average`).
//!
//! Weights are written as the loaded network holds them (BatchNorm folded); the `bedside export`
//! command loads `model.bin` dequantised, which is what the page computes with.

pub mod proto;

use bedside_model::artifact::{ArtifactError, ModelInfo, student_from_bytes};
use bedside_model::lesion::{
    LesionDecoder, LesionError, LesionInfo, decoder_from_bytes, resample_matrix, sha256_hex,
};
use bedside_model::student::{ConvBn, Student, same_padding};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use prost::Message;
use proto::*;
use std::path::{Path, PathBuf};

/// The ONNX operator set the graph is written for.
pub const OPSET: i64 = 13;
/// The IR version written (onnxruntime reads 3–10).
const IR_VERSION: i64 = 8;

/// Why a network cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0} still has its BatchNorm: export a network loaded from a model folder (folded)")]
    NotFolded(String),
    #[error("{0} is dilated; Bedside's networks are not, and the export does not write dilation")]
    Dilated(String),
    #[error("the model's input is {0} × {1} pixels; the network needs at least 32 on each side")]
    InputTooSmall(u32, u32),
    #[error(transparent)]
    Model(#[from] ArtifactError),
    #[error(transparent)]
    Lesion(#[from] LesionError),
}

/// Why a model folder cannot be loaded ([`load_folder`]).
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("could not read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", dir.display())]
    Model { dir: PathBuf, source: ExportError },
}

/// A model folder loaded as the page loads it: `model.bin` (dequantised) with the lesion decoder
/// where the folder has `lesion.json`; with `fp32`, `model-fp32.bin` and no lesion decoder (it was
/// trained on the int8 network's features).
pub fn load_folder(dir: &Path, fp32: bool, device: &Device) -> Result<Loaded, FolderError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| FolderError::Read { path, source })
    };
    let text = |name: &str| read(name).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let weights = read(if fp32 { "model-fp32.bin" } else { "model.bin" })?;
    let (lesion_json, lesion_bin) = match !fp32 && dir.join("lesion.json").is_file() {
        true => (Some(text("lesion.json")?), Some(read("lesion.bin")?)),
        false => (None, None),
    };
    load(&text("model.json")?, weights, lesion_json.as_deref().zip(lesion_bin), device)
        .map_err(|source| FolderError::Model { dir: dir.to_path_buf(), source })
}

/// A model folder's contents, loaded: what [`export`] writes.
pub struct Loaded {
    pub info: ModelInfo,
    /// BatchNorm folded, weights in fp32 (dequantised where they were int8).
    pub network: Student,
    pub lesion: Option<LesionDecoder>,
    /// `lesion.json`'s threshold: a pixel is inside where the sigmoid of its logit reaches it.
    pub lesion_threshold: Option<f32>,
}

/// Loads `model.json` with its weights (`model.bin` or `model-fp32.bin`) and, where given,
/// `lesion.json` with `lesion.bin` (checked against those weights, as the page checks them).
pub fn load(
    model_json: &str,
    weights: Vec<u8>,
    lesion: Option<(&str, Vec<u8>)>,
    device: &Device,
) -> Result<Loaded, ExportError> {
    let info = ModelInfo::from_json(model_json)?;
    let sha = sha256_hex(&weights);
    let network = student_from_bytes(&info.network, weights, device)?;
    let (lesion, lesion_threshold) = match lesion {
        Some((json, bytes)) => {
            let lesion = LesionInfo::from_json(json, &info.network, &sha)?;
            (Some(decoder_from_bytes(&lesion.decoder, bytes, device)?), Some(lesion.threshold))
        }
        None => (None, None),
    };
    Ok(Loaded { info, network, lesion, lesion_threshold })
}

/// A loaded model (its network, its information and its lesion decoder where it has one), as ONNX
/// bytes.
pub fn export(loaded: &Loaded) -> Result<Vec<u8>, ExportError> {
    let (info, model, lesion) = (&loaded.info, &loaded.network, loaded.lesion.as_ref());
    let (c, h, w) = (info.input.channels as usize, info.input.height as usize, info.input.width as usize);
    if h < 32 || w < 32 {
        return Err(ExportError::InputTooSmall(info.input.width, info.input.height));
    }
    let mut g = Graph::default();
    let (mut x, mut size) = g.conv_bn("stem", "input", &model.stem, (h, w))?;
    let tap_blocks = model.tap_blocks();
    let mut taps = Vec::new();
    for (i, block) in model.blocks.iter().enumerate() {
        let name = format!("block{i}");
        let input = x.clone();
        if let Some(expand) = &block.expand {
            x = g.conv_bn(&format!("{name}.expand"), &x, expand, size)?.0;
        }
        (x, size) = g.conv_bn(&format!("{name}.depthwise"), &x, &block.depthwise, size)?;
        if let Some(se) = &block.se {
            let pooled = g.node("GlobalAveragePool", &[&x], vec![]);
            let reduced = g.linear_as_conv(&format!("{name}.se.reduce"), &pooled, &se.reduce);
            let reduced = g.node("Relu", &[&reduced], vec![]);
            let gate = g.linear_as_conv(&format!("{name}.se.expand"), &reduced, &se.expand);
            let gate = g.node("Sigmoid", &[&gate], vec![]);
            x = g.node("Mul", &[&x, &gate], vec![]);
        }
        x = g.conv_bn(&format!("{name}.project"), &x, &block.project, size)?.0;
        if block.residual {
            x = g.node("Add", &[&x, &input], vec![]);
        }
        if tap_blocks.contains(&i) {
            taps.push((x.clone(), size));
        }
    }
    let (features, head_size) = g.conv_bn("head", &x, &model.head, size)?;
    let pooled = g.node("GlobalAveragePool", &[&features], vec![]);
    let flat = g.node("Flatten", &[&pooled], vec![int("axis", 1)]);
    let weight = model.classifier.weight.val(); // [head_channels, classes]
    let [_, classes] = weight.dims();
    let b = g.tensor("classifier.weight", weight.dims().to_vec(), values(weight.clone()));
    let bias = model
        .classifier
        .bias
        .as_ref()
        .map(|bias| g.tensor("classifier.bias", vec![classes], values(bias.val())));
    let mut gemm_inputs = vec![flat.as_str(), b.as_str()];
    gemm_inputs.extend(bias.as_deref());
    g.named_node("Gemm", &gemm_inputs, vec![], "logits");
    // Class activation maps: the classifier's weights as a 1 × 1 convolution over the head's map.
    let [channels, _] = weight.dims();
    let cam = g.tensor("class_maps.weight", vec![classes, channels, 1, 1], values(weight.transpose()));
    g.named_node("Conv", &[&features, &cam], vec![ints("kernel_shape", &[1, 1])], "class_maps");

    let mut outputs = vec![
        value_info("logits", vec![Dim::Batch, Dim::Fixed(classes)]),
        value_info(
            "class_maps",
            vec![Dim::Batch, Dim::Fixed(classes), Dim::Fixed(head_size.0), Dim::Fixed(head_size.1)],
        ),
    ];
    if let Some(decoder) = lesion {
        g.lesion(decoder, &features, head_size, &taps, (h, w))?;
        outputs.push(value_info("lesion_logits", vec![Dim::Batch, Dim::Fixed(h), Dim::Fixed(w)]));
    }

    let mut metadata = vec![
        ("task", info.task.name().to_string()),
        ("classes", serde_json::to_string(&info.classes).expect("class names serialise")),
        ("temperature", info.temperature.to_string()),
        ("input", serde_json::to_string(&info.input).expect("the input spec serialises")),
        ("mirror_average", info.input.mirror_average.to_string()),
    ];
    if let Some(threshold) = info.threshold {
        metadata.push(("threshold", threshold.to_string()));
    }
    if let (Some(_), Some(threshold)) = (lesion, loaded.lesion_threshold) {
        metadata.push(("lesion_threshold", threshold.to_string()));
    }
    let graph = GraphProto {
        node: g.nodes,
        name: format!("bedside-{}", info.task.name()),
        initializer: g.initializers,
        doc_string: String::new(),
        input: vec![value_info("input", vec![Dim::Batch, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)])],
        output: outputs,
    };
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "bedside".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "org.bedside".into(),
        model_version: 1,
        doc_string: format!(
            "Bedside {} model: input is the normalised picture (see metadata `input`); outputs are logits \
             before calibration (divide by `temperature`, then softmax), class activation maps{}.",
            info.task.name(),
            if lesion.is_some() {
                " and lesion logits (sigmoid ≥ the lesion threshold: inside)"
            } else {
                ""
            }
        ),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key: key.into(), value })
            .collect(),
    };
    Ok(model.encode_to_vec())
}

/// A tensor's values, row-major.
fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 values")
}

/// A graph being written: nodes in order, weights as initializers, fresh value names.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    values: usize,
}

impl Graph {
    /// A node with one output under a fresh name, which it returns.
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.values += 1;
        let output = format!("{}_{}", op.to_lowercase(), self.values);
        self.named_node(op, inputs, attribute, &output);
        output
    }

    fn named_node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>, output: &str) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            attribute,
        });
    }

    fn tensor(&mut self, name: &str, dims: Vec<usize>, values: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.into()
    }

    fn tensor_i64(&mut self, name: &str, values: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: INT64,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.into()
    }

    /// A convolution (with its folded bias), then ReLU6 where the block has one; returns the
    /// output's name and side.
    fn conv_bn(
        &mut self,
        name: &str,
        x: &str,
        layer: &ConvBn,
        size: (usize, usize),
    ) -> Result<(String, (usize, usize)), ExportError> {
        if layer.bn.is_some() {
            return Err(ExportError::NotFolded(name.into()));
        }
        let (y, size) = self.conv(name, x, &layer.conv, size)?;
        if !layer.relu6 {
            return Ok((y, size));
        }
        // Clip's bounds are inputs from opset 11 on; one pair serves every ReLU6.
        if !self.initializers.iter().any(|t| t.name == "relu6.min") {
            self.tensor("relu6.min", vec![], vec![0.0]);
            self.tensor("relu6.max", vec![], vec![6.0]);
        }
        Ok((self.node("Clip", &[&y, "relu6.min", "relu6.max"], vec![]), size))
    }

    fn conv(
        &mut self,
        name: &str,
        x: &str,
        conv: &Conv2d,
        (h, w): (usize, usize),
    ) -> Result<(String, (usize, usize)), ExportError> {
        if conv.dilation != [1, 1] {
            return Err(ExportError::Dilated(name.into()));
        }
        let weight = conv.weight.val();
        let dims = weight.dims();
        let [kh, kw] = conv.kernel_size;
        let [sh, sw] = conv.stride;
        let (top, left, bottom, right) = match conv.padding {
            PaddingConfig2d::Valid => (0, 0, 0, 0),
            PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
            PaddingConfig2d::Same => {
                let (top, bottom) = same_padding(kh, sh, h);
                let (left, right) = same_padding(kw, sw, w);
                (top, left, bottom, right)
            }
        };
        let out = ((h + top + bottom - kh) / sh + 1, (w + left + right - kw) / sw + 1);
        let weight = self.tensor(&format!("{name}.weight"), dims.to_vec(), values(weight));
        let bias =
            conv.bias.as_ref().map(|b| self.tensor(&format!("{name}.bias"), vec![dims[0]], values(b.val())));
        let mut inputs = vec![x, weight.as_str()];
        inputs.extend(bias.as_deref());
        let attributes = vec![
            ints("kernel_shape", &[kh, kw]),
            ints("strides", &[sh, sw]),
            ints("pads", &[top, left, bottom, right]),
            int("group", conv.groups as i64),
        ];
        Ok((self.node("Conv", &inputs, attributes), out))
    }

    /// A linear layer on a `[n, c, 1, 1]` map, as a 1 × 1 convolution (squeeze-excitation).
    fn linear_as_conv(&mut self, name: &str, x: &str, linear: &burn::nn::Linear) -> String {
        let weight = linear.weight.val(); // [in, out]
        let [c_in, c_out] = weight.dims();
        let weight =
            self.tensor(&format!("{name}.weight"), vec![c_out, c_in, 1, 1], values(weight.transpose()));
        let bias =
            linear.bias.as_ref().map(|b| self.tensor(&format!("{name}.bias"), vec![c_out], values(b.val())));
        let mut inputs = vec![x, weight.as_str()];
        inputs.extend(bias.as_deref());
        self.node("Conv", &inputs, vec![ints("kernel_shape", &[1, 1])])
    }

    /// The lesion decoder, as `bedside_model::lesion::LesionDecoder::forward` computes it: lateral
    /// projections, nearest 2× upsampling cut to each tap's side, smoothing, the output convolution,
    /// and bilinear resampling to the input size as two matrix products.
    fn lesion(
        &mut self,
        decoder: &LesionDecoder,
        head: &str,
        head_size: (usize, usize),
        taps: &[(String, (usize, usize))],
        (height, width): (usize, usize),
    ) -> Result<(), ExportError> {
        let (mut x, mut size) = self.conv_bn("lesion.lateral0", head, &decoder.lateral[0], head_size)?;
        let scales = self.tensor("lesion.upsample.scales", vec![4], vec![1.0, 1.0, 2.0, 2.0]);
        let axes = self.tensor_i64("lesion.slice.axes", &[2, 3]);
        let zeros = self.tensor_i64("lesion.slice.starts", &[0, 0]);
        for (i, (tap, tap_size)) in taps.iter().rev().enumerate() {
            let up = self.node(
                "Resize",
                &[&x, "", &scales],
                vec![
                    string("mode", "nearest"),
                    string("coordinate_transformation_mode", "asymmetric"),
                    string("nearest_mode", "floor"),
                ],
            );
            let ends =
                self.tensor_i64(&format!("lesion.slice{i}.ends"), &[tap_size.0 as i64, tap_size.1 as i64]);
            let up = self.node("Slice", &[&up, &zeros, &ends, &axes], vec![]);
            let lateral =
                self.conv_bn(&format!("lesion.lateral{}", i + 1), tap, &decoder.lateral[i + 1], *tap_size)?.0;
            let merged = self.node("Add", &[&up, &lateral], vec![]);
            (x, size) = self.conv_bn(&format!("lesion.smooth{i}"), &merged, &decoder.smooth[i], *tap_size)?;
        }
        let (coarse, (h, w)) = self.conv("lesion.out", &x, &decoder.out, size)?;
        let rows = self.tensor("lesion.rows", vec![height, h], resample_matrix(height, h));
        let cols = resample_matrix(width, w); // [width, w]
        let cols_t: Vec<f32> =
            (0..w).flat_map(|j| (0..width).map(move |i| (i, j))).map(|(i, j)| cols[i * w + j]).collect();
        let cols = self.tensor("lesion.cols", vec![w, width], cols_t);
        let tall = self.node("MatMul", &[&rows, &coarse], vec![]);
        let full = self.node("MatMul", &[&tall, &cols], vec![]);
        let shape = self.tensor_i64("lesion.shape", &[-1, height as i64, width as i64]);
        self.named_node("Reshape", &[&full, &shape], vec![], "lesion_logits");
        Ok(())
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: Some(value), r#type: ATTR_INT, ..Default::default() }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    let ints = values.iter().map(|&v| v as i64).collect();
    AttributeProto { name: name.into(), ints, r#type: ATTR_INTS, ..Default::default() }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: Some(value.as_bytes().to_vec()),
        r#type: ATTR_STRING,
        ..Default::default()
    }
}

enum Dim {
    Batch,
    Fixed(usize),
}

fn value_info(name: &str, dims: Vec<Dim>) -> ValueInfoProto {
    let dim = dims
        .into_iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Batch => DimensionValue::DimParam("batch".into()),
                Dim::Fixed(n) => DimensionValue::DimValue(n as i64),
            }),
        })
        .collect();
    let tensor_type = TensorType { elem_type: FLOAT, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { tensor_type: Some(tensor_type) }),
        doc_string: String::new(),
    }
}
