//! The student: a MobileNetV2-style network small enough for a tablet's browser.
//!
//! Inverted residual blocks (1×1 expand → 3×3 depthwise → squeeze-excitation → 1×1 project, with a
//! residual connection where shapes allow), ReLU6, a 1×1 head convolution, global average pooling and
//! one linear layer. Because the classifier is linear on pooled features, the class activation map of
//! class k is simply `Σ_c w[k,c] · features[c]` ([`Student::forward_with_features`]) — no gradients.
//!
//! Every convolution is followed by BatchNorm while training; [`Student::fold_batchnorm`] folds each
//! BatchNorm into the convolution before it for inference (unfolded BN costs ~half the Wasm run time).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, relu6, sigmoid};

/// The shape of a student network.
#[derive(Config, Debug, PartialEq)]
pub struct StudentConfig {
    /// Output classes.
    pub num_classes: usize,
    /// 1 for grey images (chest, breast), 3 for colour (skin).
    #[config(default = 1)]
    pub in_channels: usize,
    /// MobileNetV2 width multiplier.
    #[config(default = 0.5)]
    pub width: f64,
    /// Channels of the head convolution, the map class activation maps are made from.
    #[config(default = 640)]
    pub head_channels: usize,
    /// Squeeze-excitation bottleneck as a fraction of the block's input channels (as EfficientNet).
    #[config(default = 0.25)]
    pub se_ratio: f64,
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Expanded (hidden) channels of each inverted residual block, where pruning narrowed them;
    /// absent: the block's input channels × its expansion, as MobileNetV2.
    pub hidden: Option<Vec<usize>>,
    /// The block layout; absent: [`Architecture::MobileNetV2`] (every model made before the choice
    /// existed).
    pub architecture: Option<Architecture>,
}

/// The layouts a student can have. Both are inverted-residual networks with a 1 × 1 head and a
/// linear classifier on pooled features, so everything after the forward pass (class activation
/// maps, the lesion decoder's taps, int8, the page) is the same code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Architecture {
    /// MobileNetV2's stages, 3 × 3 depthwise kernels, squeeze-excitation from the fourth stage,
    /// symmetric padding: the small student trained from scratch or from another task's student.
    #[default]
    #[serde(rename = "mobilenet_v2")]
    MobileNetV2,
    /// EfficientNet-Lite0's stages (3 × 3 and 5 × 5 depthwise kernels, no squeeze-excitation),
    /// TensorFlow `SAME` padding and batch-norm epsilon 1e-3, as its ImageNet weights were trained:
    /// the teacher's own network, shipped where no small student reaches the targets
    /// ([`Student::from_lite0`]).
    #[serde(rename = "efficientnet_lite0")]
    EfficientNetLite0,
}

/// One stage of identical blocks (the first may change stride and width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageShape {
    /// Expansion ratio of the inverted bottleneck.
    pub expand: usize,
    /// Output channels at width 1.
    pub channels: usize,
    pub repeats: usize,
    /// Stride of the stage's first block.
    pub stride: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
}

impl Architecture {
    /// The stages, in order.
    pub fn stages(self) -> Vec<StageShape> {
        match self {
            Architecture::MobileNetV2 => STAGES
                .iter()
                .map(|&(expand, channels, repeats, stride)| StageShape {
                    expand,
                    channels,
                    repeats,
                    stride,
                    kernel: 3,
                })
                .collect(),
            Architecture::EfficientNetLite0 => crate::teacher::STAGES
                .iter()
                .map(|s| StageShape {
                    expand: s.expand,
                    channels: s.channels,
                    repeats: s.repeats,
                    stride: s.stride,
                    kernel: s.kernel,
                })
                .collect(),
        }
    }

    /// Inverted residual blocks (the sum of the stages' repeats).
    pub fn blocks(self) -> usize {
        self.stages().iter().map(|s| s.repeats).sum()
    }

    /// The blocks whose outputs [`Student::forward_with_taps`] returns: the last block at stride 4,
    /// 8 and 16 (the stem has stride 2).
    pub fn taps(self) -> [usize; 3] {
        let (mut stride, mut block) = (2, 0);
        let mut taps = [0usize; 3];
        for s in self.stages() {
            stride *= s.stride;
            block += s.repeats;
            if let Some(slot) = [4, 8, 16].iter().position(|&r| r == stride) {
                taps[slot] = block - 1;
            }
        }
        taps
    }

    /// Stages from this one on carry squeeze-excitation (`None`: no stage does).
    fn first_se_stage(self) -> Option<usize> {
        match self {
            Architecture::MobileNetV2 => Some(FIRST_SE_STAGE),
            Architecture::EfficientNetLite0 => None,
        }
    }

    /// Padding and batch-norm epsilon of every convolution.
    fn conv_style(self) -> ConvStyle {
        match self {
            Architecture::MobileNetV2 => ConvStyle::SYMMETRIC,
            Architecture::EfficientNetLite0 => ConvStyle { same_padding: true, bn_epsilon: 1e-3 },
        }
    }

    /// How the model card names it.
    pub fn description(self) -> &'static str {
        match self {
            Architecture::MobileNetV2 => "MobileNetV2-style",
            Architecture::EfficientNetLite0 => "EfficientNet-Lite0",
        }
    }
}

/// How a [`ConvBn`] pads and normalises.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvStyle {
    /// TensorFlow `SAME` (the odd pixel of a stride-2 convolution's padding after), else
    /// `kernel / 2` on every side.
    pub same_padding: bool,
    pub bn_epsilon: f64,
}

/// TensorFlow `SAME` padding of one side, as burn computes it: the output is `⌈size / stride⌉` and the
/// odd pixel of padding goes after; returns `(before, after)`. The ONNX export and Bedside's engine
/// pad with it too.
pub fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

impl ConvStyle {
    pub(crate) const SYMMETRIC: ConvStyle = ConvStyle { same_padding: false, bn_epsilon: 1e-5 };
}

/// MobileNetV2's stages: (expansion t, output channels c at width 1, repeats n, first stride s).
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Squeeze-excitation only in the later stages, where channels are many and maps small (cheap there).
const FIRST_SE_STAGE: usize = 3;

/// Rounds channels to a multiple of 8, as MobileNetV2 does, never dropping more than 10 %.
fn round_channels(channels: f64) -> usize {
    let rounded = ((channels + 4.0) as usize / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * channels { rounded + 8 } else { rounded }
}

/// One convolution of a network as it is built: the description burn's modules
/// ([`StudentConfig::init`], [`crate::lesion::LesionConfig::init`]) and Bedside's CPU engine
/// (`bedside-infer`, which reads the weights without burn) are both made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    /// Square kernel side.
    pub kernel: usize,
    pub stride: usize,
    /// `c_in` for a depthwise convolution, else 1.
    pub groups: usize,
    pub relu6: bool,
    /// TensorFlow `SAME` padding ([`same_padding`]); else `kernel / 2` on every side.
    pub same_padding: bool,
}

impl ConvShape {
    /// A convolution of `c_in → c_out` channels, `kernel` side, stride 1, one group, no ReLU6,
    /// padded `kernel / 2`.
    pub fn new([c_in, c_out]: [usize; 2], kernel: usize) -> ConvShape {
        ConvShape { c_in, c_out, kernel, stride: 1, groups: 1, relu6: false, same_padding: false }
    }

    /// The weight's shape, `[c_out, c_in / groups, kernel, kernel]` (burn's and ONNX's layout).
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.c_out, self.c_in / self.groups, self.kernel, self.kernel]
    }
}

/// One inverted residual block as it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockShape {
    pub expand: Option<ConvShape>,
    pub depthwise: ConvShape,
    /// Squeeze-excitation's `[channels, squeezed]`: `reduce` maps channels to squeezed, `expand` back.
    pub se: Option<[usize; 2]>,
    pub project: ConvShape,
    pub residual: bool,
}

/// A student network's layers as [`StudentConfig::layout`] gives them (the parameter names follow
/// the fields: `stem.conv.weight`, `blocks.3.se.reduce.bias`, `classifier.weight`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub stem: ConvShape,
    pub blocks: Vec<BlockShape>,
    pub head: ConvShape,
    /// `[head channels, classes]`.
    pub classifier: [usize; 2],
    /// The blocks whose outputs the lesion decoder reads ([`Architecture::taps`]).
    pub taps: [usize; 3],
}

/// A convolution, its BatchNorm (absent once folded) and an optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
    pub relu6: bool,
}

impl ConvBn {
    /// The convolution `shape` describes, with a fresh BatchNorm (folded away before inference).
    pub(crate) fn from_shape(device: &Device, shape: &ConvShape, bn_epsilon: f64) -> Self {
        let ConvShape { c_in, c_out, kernel, stride, groups, relu6, same_padding } = *shape;
        let padding = if same_padding {
            PaddingConfig2d::Same
        } else {
            let pad = kernel / 2;
            PaddingConfig2d::Explicit(pad, pad, pad, pad)
        };
        let conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(padding)
            .with_groups(groups)
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(c_out).with_epsilon(bn_epsilon).init(device);
        ConvBn { conv, bn: Some(bn), relu6 }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.conv.forward(x);
        if let Some(bn) = &self.bn {
            x = bn.forward(x);
        }
        if self.relu6 { relu6(x) } else { x }
    }

    /// Folds the BatchNorm's running statistics into the convolution's weight and bias.
    pub(crate) fn fold(self) -> Self {
        let ConvBn { mut conv, bn, relu6 } = self;
        let Some(bn) = bn else { return ConvBn { conv, bn: None, relu6 } };
        let var = bn.running_var.value();
        let mean = bn.running_mean.value();
        let scale = bn.gamma.val() / (var + bn.epsilon).sqrt();
        let [c_out] = scale.dims();
        let weight = conv.weight.val() * scale.clone().reshape([c_out, 1, 1, 1]);
        let bias = match &conv.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([c_out], &weight.device()),
        };
        let bias = (bias - mean) * scale + bn.beta.val();
        conv.weight = conv.weight.map(|_| weight);
        conv.bias = Some(burn::module::Param::from_tensor(bias));
        ConvBn { conv, bn: None, relu6 }
    }
}

/// Squeeze-excitation: channel weights from globally pooled features.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub reduce: Linear,
    pub expand: Linear,
}

impl SqueezeExcite {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, _, _] = x.dims();
        let pooled = x.clone().mean_dim(3).mean_dim(2).reshape([n, c]);
        let gate = sigmoid(self.expand.forward(relu(self.reduce.forward(pooled))));
        x * gate.reshape([n, c, 1, 1])
    }
}

/// One inverted residual block.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub se: Option<SqueezeExcite>,
    pub project: ConvBn,
    pub residual: bool,
}

impl InvertedResidual {
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_with_hidden(input).0
    }

    /// The block's output and its hidden map (after depthwise and squeeze-excitation, what the
    /// projection reads): pruning ranks hidden channels by their activity there.
    pub fn forward_with_hidden(&self, input: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut x = match &self.expand {
            Some(expand) => expand.forward(input.clone()),
            None => input.clone(),
        };
        x = self.depthwise.forward(x);
        if let Some(se) = &self.se {
            x = se.forward(x);
        }
        let out = self.project.forward(x.clone());
        (if self.residual { out + input } else { out }, x)
    }

    fn fold(self) -> Self {
        InvertedResidual {
            expand: self.expand.map(ConvBn::fold),
            depthwise: self.depthwise.fold(),
            se: self.se,
            project: self.project.fold(),
            residual: self.residual,
        }
    }
}

/// The student network.
#[derive(Module, Debug)]
pub struct Student {
    pub stem: ConvBn,
    pub blocks: Vec<InvertedResidual>,
    pub head: ConvBn,
    pub dropout: Dropout,
    pub classifier: Linear,
}

impl StudentConfig {
    /// The block layout ([`Architecture::MobileNetV2`] where `model.json` names none).
    pub fn architecture(&self) -> Architecture {
        self.architecture.unwrap_or_default()
    }

    /// The expanded channels of every block: `hidden` where pruning set them, else MobileNetV2's.
    pub fn hidden_channels(&self) -> Vec<usize> {
        if let Some(hidden) = &self.hidden {
            return hidden.clone();
        }
        let w = |c: usize| round_channels(c as f64 * self.width);
        let mut c_in = w(32);
        let mut out = Vec::new();
        for s in self.architecture().stages() {
            for _ in 0..s.repeats {
                out.push(c_in * s.expand);
                c_in = w(s.channels);
            }
        }
        out
    }

    /// Output channels of the blocks [`Architecture::taps`] names (pruning narrows hidden channels
    /// only, so their widths are fixed by the width multiplier).
    pub fn tap_channels(&self) -> Vec<usize> {
        let w = |c: usize| round_channels(c as f64 * self.width);
        let arch = self.architecture();
        let outputs: Vec<usize> =
            arch.stages().iter().flat_map(|s| std::iter::repeat_n(w(s.channels), s.repeats)).collect();
        arch.taps().iter().map(|&i| outputs[i]).collect()
    }

    /// Rejects shapes [`init`](Self::init) cannot build (a `model.json` is input like any other).
    pub fn check(&self) -> Result<(), String> {
        let Some(hidden) = &self.hidden else { return Ok(()) };
        let blocks = self.architecture().blocks();
        if hidden.len() != blocks {
            return Err(format!(
                "network.hidden has {} entries; this network has {blocks} blocks",
                hidden.len()
            ));
        }
        // The first block has no expansion: its hidden channels are the stem's and cannot change.
        let unpruned = StudentConfig { hidden: None, ..self.clone() }.hidden_channels();
        if hidden[0] != unpruned[0] || hidden.iter().zip(&unpruned).any(|(&h, &full)| h == 0 || h > full) {
            return Err(format!("network.hidden {hidden:?} does not fit the blocks' widths {unpruned:?}"));
        }
        Ok(())
    }

    /// The layers of the network this config describes, in the order they run.
    pub fn layout(&self) -> Layout {
        let w = |c: usize| round_channels(c as f64 * self.width);
        let arch = self.architecture();
        let same_padding = arch.conv_style().same_padding;
        let conv = |channels, kernel, stride, groups, relu6| ConvShape {
            stride,
            groups,
            relu6,
            same_padding,
            ..ConvShape::new(channels, kernel)
        };
        let stem_channels = w(32);
        let stem = conv([self.in_channels, stem_channels], 3, 2, 1, true);
        let mut blocks = Vec::new();
        let mut c_in = stem_channels;
        for (stage, shape) in arch.stages().into_iter().enumerate() {
            let c_out = w(shape.channels);
            for i in 0..shape.repeats {
                let stride = if i == 0 { shape.stride } else { 1 };
                let hidden = match &self.hidden {
                    Some(hidden) => hidden[blocks.len()],
                    None => c_in * shape.expand,
                };
                let squeezed = ((c_in as f64 * self.se_ratio) as usize).max(8);
                blocks.push(BlockShape {
                    expand: (shape.expand != 1).then(|| conv([c_in, hidden], 1, 1, 1, true)),
                    depthwise: conv([hidden, hidden], shape.kernel, stride, hidden, true),
                    se: arch
                        .first_se_stage()
                        .is_some_and(|first| stage >= first)
                        .then_some([hidden, squeezed]),
                    project: conv([hidden, c_out], 1, 1, 1, false),
                    residual: stride == 1 && c_in == c_out,
                });
                c_in = c_out;
            }
        }
        Layout {
            stem,
            blocks,
            head: conv([c_in, self.head_channels], 1, 1, 1, true),
            classifier: [self.head_channels, self.num_classes],
            taps: arch.taps(),
        }
    }

    pub fn init(&self, device: &Device) -> Student {
        let layout = self.layout();
        let epsilon = self.architecture().conv_style().bn_epsilon;
        let conv_bn = |shape: &ConvShape| ConvBn::from_shape(device, shape, epsilon);
        // Modules are made in the order they run, as they always were: a seed gives the same weights.
        let stem = conv_bn(&layout.stem);
        let blocks = layout
            .blocks
            .iter()
            .map(|b| InvertedResidual {
                expand: b.expand.as_ref().map(conv_bn),
                depthwise: conv_bn(&b.depthwise),
                se: b.se.map(|[channels, squeezed]| SqueezeExcite {
                    reduce: LinearConfig::new(channels, squeezed).init(device),
                    expand: LinearConfig::new(squeezed, channels).init(device),
                }),
                project: conv_bn(&b.project),
                residual: b.residual,
            })
            .collect();
        let head = conv_bn(&layout.head);
        let [features, classes] = layout.classifier;
        Student {
            stem,
            blocks,
            head,
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(features, classes).init(device),
        }
    }
}

impl Student {
    /// Logits `[batch, classes]` for images `[batch, channels, height, width]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with_features(x).0
    }

    /// Logits and the head's feature map `[batch, head_channels, h, w]` (1/32 of the input size),
    /// from which class activation maps are made.
    pub fn forward_with_features(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<4>) {
        let (logits, features, _) = self.forward_with_taps(x);
        (logits, features)
    }

    /// Logits, the head's feature map and the outputs of the blocks [`Student::tap_blocks`] names (at 1/4, 1/8 and
    /// 1/16 of the input size): what the lesion decoder ([`crate::lesion`]) reads.
    pub fn forward_with_taps(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<4>, Vec<Tensor<4>>) {
        let mut x = self.stem.forward(x);
        let tap_blocks = self.tap_blocks();
        let mut taps = Vec::with_capacity(tap_blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if tap_blocks.contains(&i) {
                taps.push(x.clone());
            }
        }
        let features = self.head.forward(x);
        let [n, c, _, _] = features.dims();
        let pooled = features.clone().mean_dim(3).mean_dim(2).reshape([n, c]);
        (self.classifier.forward(self.dropout.forward(pooled)), features, taps)
    }

    /// The last block at stride 4, 8 and 16, read from the convolutions' strides (so it holds for
    /// either [`Architecture`]; equal to [`Architecture::taps`] of the config that built it).
    pub fn tap_blocks(&self) -> [usize; 3] {
        let mut stride = self.stem.conv.stride[0];
        let mut taps = [0usize; 3];
        for (i, block) in self.blocks.iter().enumerate() {
            stride *= block.depthwise.conv.stride[0];
            if let Some(slot) = [4, 8, 16].iter().position(|&r| r == stride) {
                taps[slot] = i;
            }
        }
        taps
    }

    /// Multiply–accumulates for one `height × width` image (convolutions, squeeze-excitation and the
    /// classifier; BatchNorm assumed folded, activations and pooling not counted).
    pub fn macs(&self, height: usize, width: usize) -> u64 {
        // Symmetric padding is kernel/2 and `SAME` padding is defined so, so each convolution's
        // output side is ⌈side / stride⌉.
        fn conv(c: &Conv2d, (h, w): (usize, usize)) -> (u64, (usize, usize)) {
            let [c_out, c_in_per_group, kh, kw] = c.weight.dims();
            let out = (h.div_ceil(c.stride[0]), w.div_ceil(c.stride[1]));
            ((out.0 * out.1 * c_out * c_in_per_group * kh * kw) as u64, out)
        }
        let linear = |l: &Linear| l.weight.dims().iter().product::<usize>() as u64;
        let (mut total, mut size) = conv(&self.stem.conv, (height, width));
        for block in &self.blocks {
            if let Some(expand) = &block.expand {
                total += conv(&expand.conv, size).0;
            }
            let (macs, out) = conv(&block.depthwise.conv, size);
            total += macs;
            size = out;
            if let Some(se) = &block.se {
                total += linear(&se.reduce) + linear(&se.expand);
            }
            total += conv(&block.project.conv, size).0;
        }
        total + conv(&self.head.conv, size).0 + linear(&self.classifier)
    }

    /// EfficientNet-Lite0 (the teacher, with whatever head it has) as a student of
    /// [`Architecture::EfficientNetLite0`]: the same tensors in the student's layout, so that it
    /// folds, quantises, draws heat maps and feeds the lesion decoder like any student. With
    /// `in_channels` 1 the stem's three input planes are summed, which gives exactly the teacher's
    /// output on a grey picture repeated in three channels.
    pub fn from_lite0(teacher: crate::teacher::Teacher, in_channels: usize) -> Student {
        let crate::teacher::Teacher {
            mut stem_conv,
            stem_bn,
            blocks,
            head_conv,
            head_bn,
            dropout,
            classifier,
        } = teacher;
        if in_channels == 1 {
            let summed = stem_conv.weight.val().sum_dim(1);
            stem_conv.weight = burn::module::Param::from_tensor(summed);
        }
        let conv_bn = |conv, bn, relu6| ConvBn { conv, bn: Some(bn), relu6 };
        let blocks = blocks
            .into_iter()
            .map(|b| InvertedResidual {
                expand: b.expand_conv.zip(b.expand_bn).map(|(conv, bn)| conv_bn(conv, bn, true)),
                depthwise: conv_bn(b.depthwise_conv, b.depthwise_bn, true),
                se: None,
                project: conv_bn(b.project_conv, b.project_bn, false),
                residual: b.residual,
            })
            .collect();
        Student {
            stem: conv_bn(stem_conv, stem_bn, true),
            blocks,
            head: conv_bn(head_conv, head_bn, true),
            dropout,
            classifier,
        }
    }

    /// The same network with every BatchNorm folded into its convolution: identical outputs in
    /// inference, fewer operations.
    pub fn fold_batchnorm(self) -> Self {
        Student {
            stem: self.stem.fold(),
            blocks: self.blocks.into_iter().map(InvertedResidual::fold).collect(),
            head: self.head.fold(),
            dropout: self.dropout,
            classifier: self.classifier,
        }
    }
}

impl StudentConfig {
    /// EfficientNet-Lite0's shape (width 1, head 1280) for `num_classes` classes and
    /// `in_channels` input planes: what [`Student::from_lite0`] builds.
    pub fn lite0(num_classes: usize, in_channels: usize) -> StudentConfig {
        StudentConfig::new(num_classes)
            .with_in_channels(in_channels)
            .with_width(1.0)
            .with_head_channels(crate::teacher::FEATURES)
            .with_architecture(Some(Architecture::EfficientNetLite0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teacher::TeacherConfig;

    #[test]
    fn same_padding_puts_the_odd_pixel_after() {
        assert_eq!(same_padding(3, 2, 224), (0, 1));
        assert_eq!(same_padding(3, 2, 225), (1, 1));
        assert_eq!(same_padding(5, 2, 28), (1, 2));
        assert_eq!(same_padding(3, 1, 10), (1, 1));
    }

    #[test]
    fn taps_are_the_last_blocks_at_strides_4_8_and_16() {
        assert_eq!(Architecture::MobileNetV2.taps(), [2, 5, 12]);
        assert_eq!(Architecture::EfficientNetLite0.taps(), [2, 4, 10]);
        assert_eq!((Architecture::MobileNetV2.blocks(), Architecture::EfficientNetLite0.blocks()), (17, 16));
        let device = Device::flex();
        for config in [StudentConfig::new(2), StudentConfig::lite0(3, 1)] {
            let student = config.init(&device);
            assert_eq!(student.tap_blocks(), config.architecture().taps());
            let (_, head, taps) = student.forward_with_taps(Tensor::zeros([1, 1, 64, 64], &device));
            let sides: Vec<usize> = taps.iter().chain([&head]).map(|t| t.dims()[2]).collect();
            assert_eq!(sides, [16, 8, 4, 2]);
            let channels: Vec<usize> = taps.iter().map(|t| t.dims()[1]).collect();
            assert_eq!(channels, config.tap_channels());
        }
    }

    /// The teacher moved into the student's layout computes what the teacher computes, on colour
    /// input and (stem summed) on grey input; and its config builds the same shape.
    #[test]
    fn lite0_as_a_student_is_the_teacher() {
        let device = Device::flex();
        device.seed(4);
        let teacher = TeacherConfig::new().with_num_classes(3).init(&device).valid();
        let x = Tensor::<4>::random([2, 1, 64, 48], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let expected = teacher.forward(x.clone().repeat_dim(1, 3)).into_data();
        let grey = Student::from_lite0(teacher.clone(), 1);
        let colour = Student::from_lite0(teacher, 3);
        let close = |got: TensorData| {
            let (a, b) = (got.try_to_vec::<f32>().unwrap(), expected.clone().try_to_vec::<f32>().unwrap());
            assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-4), "{a:?} vs {b:?}");
        };
        close(grey.forward(x.clone()).into_data());
        close(colour.forward(x.clone().repeat_dim(1, 3)).into_data());
        close(grey.clone().fold_batchnorm().forward(x).into_data());
        let config = StudentConfig::lite0(3, 1);
        assert_eq!(config.init(&device).num_params(), grey.num_params());
        // The shipped record loads into the config's network.
        let record = grey.fold_batchnorm().into_record();
        config.init(&device).fold_batchnorm().load_record(record);
    }

    /// `model.json` files written before the architecture existed still read as MobileNetV2.
    #[test]
    fn a_config_without_architecture_is_mobilenet_v2() {
        let json = r#"{"num_classes":2,"in_channels":1,"width":0.5,"head_channels":640,"se_ratio":0.25,"dropout":0.2,"hidden":null}"#;
        let config: StudentConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.architecture(), Architecture::MobileNetV2);
        let lite0: StudentConfig =
            serde_json::from_str(&serde_json::to_string(&StudentConfig::lite0(3, 1)).unwrap()).unwrap();
        assert_eq!(lite0.architecture(), Architecture::EfficientNetLite0);
        assert!(serde_json::to_string(&lite0).unwrap().contains("\"efficientnet_lite0\""));
    }
}
