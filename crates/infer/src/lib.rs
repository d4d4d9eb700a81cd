//! Bedside's own CPU inference engine for the networks it ships: the forward pass of a student
//! (MobileNetV2-style or EfficientNet-Lite0), its class activation maps and its lesion decoder,
//! without a tensor framework.
//!
//! Maps are channels-last (`[height][width][channels]`), so that every kernel's inner loop runs over
//! contiguous channels and vectorises — a 1 × 1 convolution is a row-times-matrix product per pixel,
//! a depthwise one a sum of `k²` shifted rows. Bias and ReLU6 are fused into each convolution. The
//! same code builds natively and for wasm32; on x86-64 the kernels are also compiled for AVX2 + FMA
//! and chosen at run time.
//!
//! Three arithmetics ([`Precision`]): f32, the reference, and two integer ones for the pointwise and
//! dense convolutions (`quant`: int8 weights per output channel, 8- or 12-bit activations per pixel,
//! exact i32 sums), the rest in f32.
//!
//! Weights come straight from a model's files ([`Engine::from_bytes`]: `model.bin` or
//! `model-fp32.bin`, read without burn, laid out by [`StudentConfig::layout`]) — what the page's CPU
//! module does, so that it carries no tensor framework — or from a network loaded in burn
//! ([`Engine::new`]), BatchNorm folded either way. burn stays for training and for the WebGPU path;
//! `tests/parity.rs` holds this engine to burn's outputs on every shipped model.

mod kernels;
mod quant;

use bedside_model::artifact::ArtifactError;
use bedside_model::input::InputSpec;
use bedside_model::lesion::{LesionConfig, LesionDecoder, LesionLayout, resample_matrix};
use bedside_model::student::{ConvBn, ConvShape, Student, StudentConfig, same_padding};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use kernels::Kernels;
use quant::QuantWeight;
pub use quant::peak_pairs;
use std::collections::BTreeMap;

/// Why a network cannot run on this engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} still has its BatchNorm: load the network from a model folder (folded)")]
    NotFolded(String),
    #[error("{layer}: {what} is not supported by the engine")]
    Unsupported { layer: String, what: String },
    #[error("input of {got} values given; the network reads {channels} × {height} × {width}")]
    InputSize { got: usize, channels: usize, height: usize, width: usize },
    /// The weights file cannot be read (not a burnpack, a broken int8 tensor, …).
    #[error(transparent)]
    Weights(#[from] ArtifactError),
    /// A tensor the network needs is not in the weights file.
    #[error("the weights do not fit the network: {0} is missing")]
    MissingWeight(String),
    /// A tensor of the weights file has another shape than the network's layer.
    #[error("the weights do not fit the network: {name} is {found:?}, the network's is {expected:?}")]
    WeightShape { name: String, found: Vec<usize>, expected: Vec<usize> },
}

/// A weights file's tensors by name (BatchNorm folded, int8 restored to f32), taken one by one as
/// the layers are built.
struct Named(BTreeMap<String, bedside_model::quant::Weight>);

impl Named {
    fn from_bytes(bytes: Vec<u8>) -> Result<Named, Error> {
        let weights = bedside_model::quant::read_weights(bytes)?;
        Ok(Named(weights.into_iter().map(|w| (w.name.clone(), w)).collect()))
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
        self.take_optional(name, shape)?.ok_or_else(|| Error::MissingWeight(name.into()))
    }

    /// A bias: a folded network has one on every convolution, but none is zeros.
    fn take_optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>, Error> {
        let Some(weight) = self.0.remove(name) else { return Ok(None) };
        if weight.shape != shape {
            return Err(Error::WeightShape {
                name: name.into(),
                found: weight.shape,
                expected: shape.to_vec(),
            });
        }
        Ok(Some(weight.values))
    }

    fn conv(&mut self, prefix: &str, shape: &ConvShape, k: Kernels, p: Precision) -> Result<Conv, Error> {
        let weight = self.take(&format!("{prefix}.weight"), &shape.weight_shape())?;
        let bias = self.take_optional(&format!("{prefix}.bias"), &[shape.c_out])?;
        Conv::from_parts(prefix, shape, &weight, bias, k, p)
    }

    fn linear(&mut self, prefix: &str, [d_in, d_out]: [usize; 2], k: Kernels) -> Result<Linear, Error> {
        let weight = self.take(&format!("{prefix}.weight"), &[d_in, d_out])?;
        let bias = self.take_optional(&format!("{prefix}.bias"), &[d_out])?;
        Ok(Linear::from_parts(d_in, d_out, &weight, bias, k))
    }
}

/// A channels-last feature map of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `[height][width][channels]`.
    pub data: Vec<f32>,
}

impl Map {
    fn zeros(height: usize, width: usize, channels: usize) -> Map {
        Map { height, width, channels, data: vec![0.0; height * width * channels] }
    }

    /// From planar `[channels][height][width]` values (the models' input layout).
    pub fn from_planar(values: &[f32], channels: usize, height: usize, width: usize) -> Map {
        let plane = height * width;
        let mut data = vec![0.0; values.len()];
        for c in 0..channels {
            for (p, &v) in values[c * plane..(c + 1) * plane].iter().enumerate() {
                data[p * channels + c] = v;
            }
        }
        Map { height, width, channels, data }
    }

    fn pixels(&self) -> usize {
        self.height * self.width
    }
}

/// How a convolution's weights are laid out for its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// 1 × 1, stride 1, one group: weight `[c_in][c_out]`, packed by `kernels::pack_pointwise`.
    Pointwise,
    /// One filter per channel: weight `[ky][kx][c]`.
    Depthwise,
    /// Any other single-group convolution (the stem, the lesion decoder's 3 × 3): weight
    /// `[ky][kx][c_in][c_out]`, packed as a pointwise one with `k² · c_in` inputs.
    Dense,
}

/// What the engine multiplies in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 throughout: the reference, within 1e-4 of burn.
    #[default]
    Fp32,
    /// Pointwise and dense convolutions (nearly every multiply–add) with int8 weights and int8
    /// activations, summed exactly in i32 (`quant`); depthwise convolutions, pooling,
    /// squeeze-excitation and the classifier in f32.
    Int8,
    /// As [`Precision::Int8`] with 12-bit activations: as fast (activations are held as i16 either
    /// way) and sixteen times finer.
    W8A12,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
            Precision::W8A12 => "w8a12",
        }
    }

    /// Bits per activation in the integer arithmetics.
    fn activation_bits(self) -> Option<u32> {
        match self {
            Precision::Fp32 => None,
            Precision::Int8 => Some(8),
            Precision::W8A12 => Some(12),
        }
    }
}

/// How an [`Engine`] is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub precision: Precision,
    /// The portable kernels only (no AVX2 + FMA): what a build for the baseline target, or wasm32,
    /// runs; for comparing the two.
    pub portable: bool,
}

impl Options {
    /// The kernels these options ask for: the fastest this CPU runs, or the portable ones.
    fn kernels(self) -> Kernels {
        if self.portable { Kernels::Portable } else { Kernels::detect() }
    }
}

/// A convolution's weight in its kernel's layout.
#[derive(Debug, Clone)]
enum Weight {
    F32(Vec<f32>),
    Int8(QuantWeight),
}

/// A convolution with its bias and (optionally) ReLU6, weights in the kernel's layout.
#[derive(Debug, Clone)]
struct Conv {
    kind: Kind,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    same_padding: bool,
    /// The padding on every side where the layer does not pad `SAME`.
    pad: usize,
    weight: Weight,
    bias: Vec<f32>,
    relu6: bool,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 values")
}

impl Conv {
    fn from_layer(name: &str, layer: &ConvBn, k: Kernels, p: Precision) -> Result<Conv, Error> {
        if layer.bn.is_some() {
            return Err(Error::NotFolded(name.into()));
        }
        Conv::from_conv(name, &layer.conv, layer.relu6, k, p)
    }

    fn from_conv(name: &str, conv: &Conv2d, relu6: bool, k: Kernels, p: Precision) -> Result<Conv, Error> {
        let unsupported = |what: String| Error::Unsupported { layer: name.into(), what };
        let [c_out, c_in_group, kh, kw] = conv.weight.dims();
        if kh != kw || conv.stride[0] != conv.stride[1] || conv.dilation != [1, 1] {
            return Err(unsupported(format!(
                "kernel {kh}×{kw}, stride {:?}, dilation {:?}",
                conv.stride, conv.dilation
            )));
        }
        let same_padding = match conv.padding {
            PaddingConfig2d::Same => true,
            PaddingConfig2d::Valid if kh / 2 == 0 => false,
            PaddingConfig2d::Explicit(top, left, bottom, right)
                if [top, left, bottom, right] == [kh / 2; 4] =>
            {
                false
            }
            _ => return Err(unsupported(format!("padding {:?} of a {kh}×{kw} kernel", conv.padding))),
        };
        let shape = ConvShape {
            c_in: c_in_group * conv.groups,
            c_out,
            kernel: kh,
            stride: conv.stride[0],
            groups: conv.groups,
            relu6,
            same_padding,
        };
        let bias = conv.bias.as_ref().map(|b| values(b.val()));
        Conv::from_parts(name, &shape, &values(conv.weight.val()), bias, k, p)
    }

    /// The convolution `shape` describes with its weight `w` (`[c_out][c_in / groups][k][k]`) and
    /// bias, laid out for its kernel.
    fn from_parts(
        name: &str,
        shape: &ConvShape,
        w: &[f32],
        bias: Option<Vec<f32>>,
        k: Kernels,
        p: Precision,
    ) -> Result<Conv, Error> {
        let unsupported = |what: String| Error::Unsupported { layer: name.into(), what };
        let ConvShape { c_in, c_out, kernel, stride, groups, relu6, same_padding } = *shape;
        let pad = if same_padding { 0 } else { kernel / 2 };
        let c_in_group = c_in / groups.max(1);
        let kk = kernel * kernel;
        let (kind, weight) = if groups == c_out && c_in_group == 1 && c_in == c_out {
            let mut t = vec![0.0; kk * c_out];
            for c in 0..c_out {
                for k in 0..kk {
                    t[k * c_out + c] = w[c * kk + k];
                }
            }
            (Kind::Depthwise, Weight::F32(t))
        } else if groups == 1 {
            let mut t = vec![0.0; kk * c_in * c_out];
            for o in 0..c_out {
                for i in 0..c_in {
                    for k in 0..kk {
                        t[(k * c_in + i) * c_out + o] = w[(o * c_in + i) * kk + k];
                    }
                }
            }
            let kind = if kernel == 1 && stride == 1 && pad == 0 { Kind::Pointwise } else { Kind::Dense };
            let inputs = kk * c_in;
            let weight = match p.activation_bits() {
                None => Weight::F32(kernels::pack_pointwise(&t, inputs, c_out, k.wide())),
                Some(bits) if !quant::sums_fit(inputs, bits) => {
                    return Err(unsupported(format!(
                        "{inputs} inputs: sums of {bits}-bit products overflow i32"
                    )));
                }
                Some(bits) => Weight::Int8(quant::quantise_weight(&t, inputs, c_out, k.wide(), bits)),
            };
            (kind, weight)
        } else {
            return Err(unsupported(format!("{groups} groups of {c_in_group} channels")));
        };
        let bias = bias.unwrap_or_else(|| vec![0.0; c_out]);
        Ok(Conv { kind, c_in, c_out, kernel, stride, same_padding, pad, weight, bias, relu6 })
    }

    /// Output side and the padding before it, for an input side.
    fn geometry(&self, size: usize) -> (usize, usize) {
        if self.same_padding {
            (size.div_ceil(self.stride), same_padding(self.kernel, self.stride, size).0)
        } else {
            ((size + 2 * self.pad).saturating_sub(self.kernel) / self.stride + 1, self.pad)
        }
    }

    fn run(&self, k: &Kernels, x: &Map) -> Map {
        debug_assert_eq!(x.channels, self.c_in);
        let (oh, top) = self.geometry(x.height);
        let (ow, left) = self.geometry(x.width);
        let mut out = Map::zeros(oh, ow, self.c_out);
        let geometry = kernels::Geometry {
            in_h: x.height,
            in_w: x.width,
            out_h: oh,
            out_w: ow,
            kernel: self.kernel,
            stride: self.stride,
            top,
            left,
        };
        let (bias, out_data) = (&self.bias, &mut out.data);
        match (self.kind, &self.weight) {
            (Kind::Pointwise, Weight::F32(w)) => {
                k.pointwise(&x.data, self.c_in, w, bias, self.c_out, out_data)
            }
            (Kind::Pointwise, Weight::Int8(w)) => k.pointwise_int8(&x.data, w, bias, out_data),
            (Kind::Depthwise, Weight::F32(w)) => {
                k.depthwise(&x.data, &geometry, self.c_out, w, bias, out_data)
            }
            (Kind::Dense, Weight::F32(w)) => {
                k.dense(&x.data, &geometry, self.c_in, w, bias, self.c_out, out_data)
            }
            (Kind::Dense, Weight::Int8(w)) => k.dense_int8(&x.data, &geometry, self.c_in, w, bias, out_data),
            (Kind::Depthwise, Weight::Int8(_)) => unreachable!("depthwise weights stay f32"),
        }
        if self.relu6 {
            for v in &mut out.data {
                *v = v.clamp(0.0, 6.0);
            }
        }
        out
    }
}

/// A linear layer: weight `[d_in][d_out]` (burn's layout) packed as a pointwise convolution's,
/// bias `[d_out]`.
#[derive(Debug, Clone)]
struct Linear {
    d_in: usize,
    d_out: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    fn from_burn(linear: &burn::nn::Linear, k: Kernels) -> Linear {
        let [d_in, d_out] = linear.weight.dims();
        let bias = linear.bias.as_ref().map(|b| values(b.val()));
        Linear::from_parts(d_in, d_out, &values(linear.weight.val()), bias, k)
    }

    fn from_parts(d_in: usize, d_out: usize, weight: &[f32], bias: Option<Vec<f32>>, k: Kernels) -> Linear {
        let bias = bias.unwrap_or_else(|| vec![0.0; d_out]);
        Linear { d_in, d_out, weight: kernels::pack_pointwise(weight, d_in, d_out, k.wide()), bias }
    }

    fn run(&self, k: &Kernels, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.d_out];
        k.pointwise(x, self.d_in, &self.weight, &self.bias, self.d_out, &mut out);
        out
    }
}

#[derive(Debug, Clone)]
struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    se: Option<(Linear, Linear)>,
    project: Conv,
    residual: bool,
}

#[derive(Debug, Clone)]
struct Decoder {
    lateral: Vec<Conv>,
    smooth: Vec<Conv>,
    out: Conv,
}

/// A network ready to run: the student, and its lesion decoder where it has one.
#[derive(Debug, Clone)]
pub struct Engine {
    stem: Conv,
    blocks: Vec<Block>,
    taps: [usize; 3],
    head: Conv,
    classifier: Linear,
    decoder: Option<Decoder>,
    kernels: Kernels,
    precision: Precision,
}

/// One image's outputs, laid out as the ONNX export and burn give them.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub logits: Vec<f32>,
    /// `[classes][map_height][map_width]`.
    pub class_maps: Vec<f32>,
    pub map_height: usize,
    pub map_width: usize,
    /// `[height][width]` at the input size, where the engine has a lesion decoder.
    pub lesion_logits: Option<Vec<f32>>,
}

impl Engine {
    /// The engine for a loaded (folded) network and its lesion decoder, with the fastest kernels
    /// this CPU runs.
    pub fn new(model: &Student, lesion: Option<&LesionDecoder>) -> Result<Engine, Error> {
        Engine::with_options(model, lesion, Options::default())
    }

    /// [`Engine::new`] with the portable kernels only: see [`Options::portable`].
    pub fn new_portable(model: &Student, lesion: Option<&LesionDecoder>) -> Result<Engine, Error> {
        Engine::with_options(model, lesion, Options { portable: true, ..Options::default() })
    }

    /// The engine for a loaded (folded) network and its lesion decoder, built as `options` say.
    pub fn with_options(
        model: &Student,
        lesion: Option<&LesionDecoder>,
        options: Options,
    ) -> Result<Engine, Error> {
        let k = options.kernels();
        let p = options.precision;
        let blocks = model
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let name = |part: &str| format!("block {i} {part}");
                let linear = |l| Linear::from_burn(l, k);
                let conv = |part: &str, layer| Conv::from_layer(&name(part), layer, k, p);
                Ok(Block {
                    expand: b.expand.as_ref().map(|e| conv("expand", e)).transpose()?,
                    depthwise: conv("depthwise", &b.depthwise)?,
                    se: b.se.as_ref().map(|se| (linear(&se.reduce), linear(&se.expand))),
                    project: conv("project", &b.project)?,
                    residual: b.residual,
                })
            })
            .collect::<Result<_, Error>>()?;
        let decoder = lesion.map(|d| Decoder::new(d, k, p)).transpose()?;
        let engine = Engine {
            stem: Conv::from_layer("stem", &model.stem, k, p)?,
            blocks,
            taps: model.tap_blocks(),
            head: Conv::from_layer("head", &model.head, k, p)?,
            classifier: Linear::from_burn(&model.classifier, k),
            decoder: None,
            kernels: k,
            precision: p,
        };
        match decoder {
            Some(decoder) => engine.with_decoder(decoder),
            None => Ok(engine),
        }
    }

    /// The engine for the network `config` describes with the weights of `model.bin` (int8) or
    /// `model-fp32.bin`, read without burn: a tensor missing or of another shape is an error.
    pub fn from_bytes(config: &StudentConfig, weights: Vec<u8>, options: Options) -> Result<Engine, Error> {
        let k = options.kernels();
        let p = options.precision;
        let layout = config.layout();
        let mut named = Named::from_bytes(weights)?;
        let blocks = layout
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut conv =
                    |part: &str, shape| named.conv(&format!("blocks.{i}.{part}.conv"), shape, k, p);
                let expand = b.expand.as_ref().map(|e| conv("expand", e)).transpose()?;
                let depthwise = conv("depthwise", &b.depthwise)?;
                let se = match b.se {
                    Some([channels, squeezed]) => Some((
                        named.linear(&format!("blocks.{i}.se.reduce"), [channels, squeezed], k)?,
                        named.linear(&format!("blocks.{i}.se.expand"), [squeezed, channels], k)?,
                    )),
                    None => None,
                };
                let project = named.conv(&format!("blocks.{i}.project.conv"), &b.project, k, p)?;
                Ok(Block { expand, depthwise, se, project, residual: b.residual })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Engine {
            stem: named.conv("stem.conv", &layout.stem, k, p)?,
            blocks,
            taps: layout.taps,
            head: named.conv("head.conv", &layout.head, k, p)?,
            classifier: named.linear("classifier", layout.classifier, k)?,
            decoder: None,
            kernels: k,
            precision: p,
        })
    }

    /// The same engine with the lesion decoder `config` describes, weights from `lesion.bin` (or
    /// fp32 bytes), read without burn.
    pub fn with_lesion_bytes(self, config: &LesionConfig, weights: Vec<u8>) -> Result<Engine, Error> {
        let mut named = Named::from_bytes(weights)?;
        let decoder = Decoder::from_named(&config.layout(), &mut named, self.kernels, self.precision)?;
        self.with_decoder(decoder)
    }

    /// Adds a decoder after checking that it reads this network's maps: the head's, then the taps'
    /// from the deepest.
    fn with_decoder(mut self, decoder: Decoder) -> Result<Engine, Error> {
        let reads: Vec<usize> = decoder.lateral.iter().map(|c| c.c_in).collect();
        let maps: Vec<usize> = std::iter::once(self.head.c_out)
            .chain(self.taps.iter().rev().map(|&i| self.blocks[i].project.c_out))
            .collect();
        if reads != maps || decoder.smooth.len() != self.taps.len() {
            let what = format!("a lesion decoder reading {reads:?} channels (the network gives {maps:?})");
            return Err(Error::Unsupported { layer: "lesion decoder".into(), what });
        }
        self.decoder = Some(decoder);
        Ok(self)
    }

    /// The same engine with a lesion decoder (which must read this network's feature maps).
    pub fn with_lesion(self, lesion: &LesionDecoder) -> Result<Engine, Error> {
        let decoder = Decoder::new(lesion, self.kernels, self.precision)?;
        self.with_decoder(decoder)
    }

    /// Whether [`Output::lesion_logits`] will be given.
    pub fn has_lesion(&self) -> bool {
        self.decoder.is_some()
    }

    /// One image as a model takes it: `input` says its size, and whether the pass is averaged with
    /// the mirror image's (maps and lesion logits mirrored back), as `bedside_model::infer` does.
    pub fn run_input(&self, spec: &InputSpec, planar: &[f32]) -> Result<Output, Error> {
        let (c, h, w) = (spec.channels as usize, spec.height as usize, spec.width as usize);
        let mut out = self.run(planar, c, h, w)?;
        if !spec.mirror_average {
            return Ok(out);
        }
        let mirrored: Vec<f32> = planar.chunks_exact(w).flat_map(|row| row.iter().rev().copied()).collect();
        let other = self.run(&mirrored, c, h, w)?;
        let average = |a: &mut [f32], b: &[f32], width: usize| {
            for (a, b) in a.chunks_exact_mut(width).zip(b.chunks_exact(width)) {
                a.iter_mut().zip(b.iter().rev()).for_each(|(a, b)| *a = (*a + b) / 2.0);
            }
        };
        out.logits.iter_mut().zip(&other.logits).for_each(|(a, b)| *a = (*a + b) / 2.0);
        average(&mut out.class_maps, &other.class_maps, out.map_width);
        if let (Some(a), Some(b)) = (&mut out.lesion_logits, &other.lesion_logits) {
            average(a, b, w);
        }
        Ok(out)
    }

    /// Which kernels run: `"avx2+fma"` or `"portable"`.
    pub fn kernels(&self) -> &'static str {
        self.kernels.name()
    }

    /// What the convolutions multiply in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// One image, planar `[channels][height][width]` (the normalised input the models take).
    pub fn run(&self, planar: &[f32], channels: usize, height: usize, width: usize) -> Result<Output, Error> {
        if planar.len() != channels * height * width || channels != self.stem.c_in || planar.is_empty() {
            let channels = self.stem.c_in;
            return Err(Error::InputSize { got: planar.len(), channels, height, width });
        }
        let k = &self.kernels;
        let mut x = self.stem.run(k, &Map::from_planar(planar, channels, height, width));
        let mut taps = Vec::with_capacity(3);
        for (i, block) in self.blocks.iter().enumerate() {
            let mut y = match &block.expand {
                Some(expand) => block.depthwise.run(k, &expand.run(k, &x)),
                None => block.depthwise.run(k, &x),
            };
            if let Some((reduce, expand)) = &block.se {
                let pooled = mean_pool(&y);
                let mut s = reduce.run(k, &pooled);
                s.iter_mut().for_each(|v| *v = v.max(0.0));
                let gate: Vec<f32> =
                    expand.run(k, &s).into_iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
                for pixel in y.data.chunks_exact_mut(y.channels) {
                    pixel.iter_mut().zip(&gate).for_each(|(v, g)| *v *= g);
                }
            }
            let mut out = block.project.run(k, &y);
            if block.residual {
                out.data.iter_mut().zip(&x.data).for_each(|(o, i)| *o += i);
            }
            x = out;
            if self.taps.contains(&i) {
                taps.push(x.clone());
            }
        }
        let features = self.head.run(k, &x);
        let logits = self.classifier.run(k, &mean_pool(&features));
        // Class activation maps: the classifier's weights (no bias) at every position.
        let classes = self.classifier.d_out;
        let mut per_pixel = vec![0.0; features.pixels() * classes];
        k.pointwise(
            &features.data,
            features.channels,
            &self.classifier.weight,
            &vec![0.0; classes],
            classes,
            &mut per_pixel,
        );
        let mut class_maps = vec![0.0; per_pixel.len()];
        for (p, row) in per_pixel.chunks_exact(classes).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                class_maps[c * features.pixels() + p] = v;
            }
        }
        let lesion_logits = self.decoder.as_ref().map(|d| d.run(k, &features, &taps, height, width));
        Ok(Output {
            logits,
            class_maps,
            map_height: features.height,
            map_width: features.width,
            lesion_logits,
        })
    }
}

fn mean_pool(x: &Map) -> Vec<f32> {
    let mut sum = vec![0.0f32; x.channels];
    for pixel in x.data.chunks_exact(x.channels) {
        sum.iter_mut().zip(pixel).for_each(|(s, v)| *s += v);
    }
    let n = x.pixels() as f32;
    sum.into_iter().map(|s| s / n).collect()
}

impl Decoder {
    fn from_named(
        layout: &LesionLayout,
        named: &mut Named,
        k: Kernels,
        p: Precision,
    ) -> Result<Decoder, Error> {
        let mut convs = |shapes: &[ConvShape], name: &str| -> Result<Vec<Conv>, Error> {
            shapes.iter().enumerate().map(|(i, c)| named.conv(&format!("{name}.{i}.conv"), c, k, p)).collect()
        };
        Ok(Decoder {
            lateral: convs(&layout.lateral, "lateral")?,
            smooth: convs(&layout.smooth, "smooth")?,
            out: named.conv("out", &layout.out, k, p)?,
        })
    }

    fn new(d: &LesionDecoder, k: Kernels, p: Precision) -> Result<Decoder, Error> {
        let convs = |layers: &[ConvBn], name: &str| -> Result<Vec<Conv>, Error> {
            layers
                .iter()
                .enumerate()
                .map(|(i, c)| Conv::from_layer(&format!("lesion {name} {i}"), c, k, p))
                .collect()
        };
        Ok(Decoder {
            lateral: convs(&d.lateral, "lateral")?,
            smooth: convs(&d.smooth, "smooth")?,
            out: Conv::from_conv("lesion out", &d.out, false, k, p)?,
        })
    }

    /// As `bedside_model::lesion::LesionDecoder::forward`: lateral projections, nearest 2×
    /// upsampling cut to each tap's side, smoothing, the output convolution, then bilinear
    /// resampling to the input size.
    fn run(&self, k: &Kernels, head: &Map, taps: &[Map], height: usize, width: usize) -> Vec<f32> {
        let mut x = self.lateral[0].run(k, head);
        for (i, tap) in taps.iter().rev().enumerate() {
            let mut merged = self.lateral[i + 1].run(k, tap);
            let c = merged.channels;
            for y in 0..tap.height {
                for xx in 0..tap.width {
                    let src = &x.data[((y / 2) * x.width + xx / 2) * c..][..c];
                    let dst = &mut merged.data[(y * tap.width + xx) * c..][..c];
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
            }
            x = self.smooth[i].run(k, &merged);
        }
        let coarse = self.out.run(k, &x); // one channel: [h][w]
        let (h, w) = (coarse.height, coarse.width);
        let rows = resample_matrix(height, h);
        let cols = resample_matrix(width, w);
        // rows [height][h] × coarse [h][w], then × colsᵀ.
        let mut tall = vec![0.0f32; height * w];
        for (i, r) in rows.chunks_exact(h).enumerate() {
            for (j, &f) in r.iter().enumerate().filter(|(_, f)| **f != 0.0) {
                let src = &coarse.data[j * w..][..w];
                tall[i * w..][..w].iter_mut().zip(src).for_each(|(t, s)| *t += f * s);
            }
        }
        let mut out = vec![0.0f32; height * width];
        for i in 0..height {
            let t = &tall[i * w..][..w];
            for (j, c) in cols.chunks_exact(w).enumerate() {
                out[i * width + j] = t.iter().zip(c).map(|(a, b)| a * b).sum();
            }
        }
        out
    }
}
