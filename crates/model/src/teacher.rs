//! EfficientNet-Lite0, the teacher: an ImageNet-pretrained classifier the students are distilled from.
//!
//! The EfficientNet-B0 layout with the Lite changes (no squeeze-excitation, ReLU6, stem and head fixed
//! at 32 and 1280 channels): a stride-2 3×3 stem, 16 mobile inverted bottleneck blocks in 7 stages,
//! a 1×1 head convolution, global average pooling and a linear classifier. 4,652,008 trainable
//! parameters with the 1000-class ImageNet head, plus 42,016 batch-norm running statistics (which
//! `num_params` also counts).
//!
//! Every convolution pads like TensorFlow's `SAME`, as the original checkpoints were trained with it:
//! output size `ceil(input / stride)`, the odd pixel of padding going to the bottom/right. For stride
//! 2 on an even input that is asymmetric (3×3: 0 before, 1 after; 5×5: 1 before, 2 after); symmetric
//! padding would shift every downsampled map by half a pixel from what the weights learnt.
//!
//! Stages can be run separately, so that training can cache the output of an early stage once per
//! image and run only the last stages and the head on it:
//!
//! ```no_run
//! # use burn::prelude::*;
//! # use bedside_model::teacher::TeacherConfig;
//! # fn demo(device: &Device) {
//! let teacher = TeacherConfig::new().init(device);
//! let x = Tensor::<4>::zeros([1, 3, 224, 224], device);
//! let cached = teacher.forward_stem_to(x.clone(), 5); // [1, 112, 14, 14], computed once
//! let logits = teacher.forward_from(5, cached); // same as teacher.forward(x)
//! # }
//! ```
//!
//! ImageNet weights are loaded by `bedside-train` (`teacher::load_imagenet_teacher`).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

/// One stage of identical blocks (the first of which may change stride and width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Blocks in the stage.
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Stride of the stage's first block; the others use 1.
    pub stride: usize,
    /// Expansion ratio of the inverted bottleneck.
    pub expand: usize,
    /// Output channels.
    pub channels: usize,
}

const fn stage(repeats: usize, kernel: usize, stride: usize, expand: usize, channels: usize) -> Stage {
    Stage { repeats, kernel, stride, expand, channels }
}

/// The seven stages of EfficientNet-Lite0 (B0's; Lite0 scales neither width nor depth).
/// Spatial sizes for a 224×224 input: 112, 56, 28, 14, 14, 7, 7.
pub const STAGES: [Stage; 7] = [
    stage(1, 3, 1, 1, 16),
    stage(2, 3, 2, 6, 24),
    stage(2, 5, 2, 6, 40),
    stage(3, 3, 2, 6, 80),
    stage(3, 5, 1, 6, 112),
    stage(4, 5, 2, 6, 192),
    stage(1, 3, 1, 6, 320),
];

/// Channels out of the stem convolution (its stride is 2).
pub const STEM_CHANNELS: usize = 32;
/// Channels of the feature map before pooling.
pub const FEATURES: usize = 1280;
/// The input resolution the ImageNet weights were trained at.
pub const INPUT_SIZE: usize = 224;

/// Channels of the map entering `stage` (`0..=7`; 7 is the map the head convolution takes).
pub fn channels_before(stage: usize) -> usize {
    assert!(stage <= STAGES.len(), "EfficientNet-Lite0 has {} stages, not {stage}", STAGES.len());
    if stage == 0 { STEM_CHANNELS } else { STAGES[stage - 1].channels }
}

/// Index of the first block of `stage` in the flat block list (`0..=7`; 7 gives the block count).
fn first_block(stage: usize) -> usize {
    assert!(stage <= STAGES.len(), "EfficientNet-Lite0 has {} stages, not {stage}", STAGES.len());
    STAGES[..stage].iter().map(|s| s.repeats).sum()
}

#[derive(Config, Debug)]
pub struct TeacherConfig {
    /// Classes of the linear head (1000 for ImageNet).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Dropout before the classifier, as in the original training.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// The checkpoints were trained with TensorFlow's batch-norm epsilon, not PyTorch's 1e-5.
    #[config(default = 1e-3)]
    pub bn_epsilon: f64,
    /// Running-statistics momentum in PyTorch's convention (TensorFlow's 0.99 decay).
    #[config(default = 0.01)]
    pub bn_momentum: f64,
}

impl TeacherConfig {
    /// Builds the network with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Teacher {
        let mut blocks = Vec::with_capacity(first_block(STAGES.len()));
        let mut input = STEM_CHANNELS;
        for s in STAGES {
            for i in 0..s.repeats {
                let stride = if i == 0 { s.stride } else { 1 };
                blocks.push(self.block(input, s.channels, s.kernel, stride, s.expand, device));
                input = s.channels;
            }
        }
        Teacher {
            stem_conv: conv(3, STEM_CHANNELS, 3, 2, 1, device),
            stem_bn: self.bn(STEM_CHANNELS, device),
            blocks,
            head_conv: conv(input, FEATURES, 1, 1, 1, device),
            head_bn: self.bn(FEATURES, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(FEATURES, self.num_classes).init(device),
        }
    }

    fn bn(&self, channels: usize, device: &Device) -> BatchNorm {
        BatchNormConfig::new(channels)
            .with_epsilon(self.bn_epsilon)
            .with_momentum(self.bn_momentum)
            .init(device)
    }

    fn block(
        &self,
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        expand: usize,
        device: &Device,
    ) -> MbConv {
        let hidden = input * expand;
        // With no expansion (the first stage) the depthwise convolution reads the input directly.
        let (expand_conv, expand_bn) = if expand == 1 {
            (None, None)
        } else {
            (Some(conv(input, hidden, 1, 1, 1, device)), Some(self.bn(hidden, device)))
        };
        MbConv {
            expand_conv,
            expand_bn,
            depthwise_conv: conv(hidden, hidden, kernel, stride, hidden, device),
            depthwise_bn: self.bn(hidden, device),
            project_conv: conv(hidden, output, 1, 1, 1, device),
            project_bn: self.bn(output, device),
            residual: stride == 1 && input == output,
        }
    }
}

/// A bias-free convolution with TensorFlow `SAME` padding (batch norm follows every one).
fn conv(input: usize, output: usize, kernel: usize, stride: usize, groups: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device)
}

fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// Mobile inverted bottleneck: 1×1 expand → depthwise k×k → 1×1 linear projection, with an identity
/// shortcut when shape allows. No squeeze-excitation in the Lite variants.
#[derive(Module, Debug)]
pub struct MbConv {
    pub expand_conv: Option<Conv2d>,
    pub expand_bn: Option<BatchNorm>,
    pub depthwise_conv: Conv2d,
    pub depthwise_bn: BatchNorm,
    pub project_conv: Conv2d,
    pub project_bn: BatchNorm,
    pub residual: bool,
}

impl MbConv {
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.expand_bn) {
            x = relu6(bn.forward(conv.forward(x)));
        }
        x = relu6(self.depthwise_bn.forward(self.depthwise_conv.forward(x)));
        x = self.project_bn.forward(self.project_conv.forward(x));
        if self.residual { x + input } else { x }
    }
}

/// EfficientNet-Lite0. Field names follow the checkpoint's layout so weight loading is a rename.
#[derive(Module, Debug)]
pub struct Teacher {
    pub stem_conv: Conv2d,
    pub stem_bn: BatchNorm,
    /// All 16 blocks in order; [`STAGES`] says which belong to which stage.
    pub blocks: Vec<MbConv>,
    pub head_conv: Conv2d,
    pub head_bn: BatchNorm,
    pub dropout: Dropout,
    pub classifier: Linear,
}

impl Teacher {
    /// Class logits `[batch, num_classes]` for images `[batch, 3, H, W]` (224×224, normalised as
    /// the weights expect).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.classify(self.features(x))
    }

    /// The `[batch, 1280, H/32, W/32]` map after the head convolution, batch norm and ReLU6, before
    /// pooling: what a class activation map weighs with the classifier's rows.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features_from(0, self.stem(x))
    }

    /// Runs the stem and stages `0..stage`; `stage` 0 gives the stem's output, 7 the last block's.
    /// Map sizes for a 224×224 input: see [`STAGES`]; channels: [`channels_before`]`(stage)`.
    pub fn forward_stem_to(&self, x: Tensor<4>, stage: usize) -> Tensor<4> {
        self.run_blocks(self.stem(x), 0, stage)
    }

    /// Runs stages `from..to` on the map entering stage `from`.
    pub fn forward_stages(&self, x: Tensor<4>, from: usize, to: usize) -> Tensor<4> {
        self.run_blocks(x, from, to)
    }

    /// Logits from the map [`forward_stem_to`](Self::forward_stem_to)`(x, stage)` returned: runs
    /// stages `stage..7`, the head and the classifier.
    pub fn forward_from(&self, stage: usize, x: Tensor<4>) -> Tensor<2> {
        self.classify(self.features_from(stage, x))
    }

    /// Like [`forward_from`](Self::forward_from) but stops at the pre-pooling feature map.
    pub fn features_from(&self, stage: usize, x: Tensor<4>) -> Tensor<4> {
        let x = self.run_blocks(x, stage, STAGES.len());
        relu6(self.head_bn.forward(self.head_conv.forward(x)))
    }

    /// Global average pooling, dropout (training only) and the linear classifier.
    pub fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        let [batch, channels, h, w] = features.dims();
        let pooled = features.reshape([batch, channels, h * w]).mean_dim(2).reshape([batch, channels]);
        self.classifier.forward(self.dropout.forward(pooled))
    }

    /// Replaces the classifier with a freshly initialised one for `num_classes` classes.
    pub fn with_head(mut self, num_classes: usize, device: &Device) -> Self {
        self.classifier = LinearConfig::new(FEATURES, num_classes).init(device);
        self
    }

    /// Freezes the stem and stages `0..stage` (no gradients, batch norm keeps its running
    /// statistics), for fine-tuning only the last stages and the head.
    pub fn freeze_before(mut self, stage: usize) -> Self {
        self.stem_conv = self.stem_conv.freeze();
        self.stem_bn = self.stem_bn.freeze();
        let end = first_block(stage);
        self.blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, block)| if i < end { block.freeze() } else { block })
            .collect();
        self
    }

    /// Number of classes of the current head.
    pub fn num_classes(&self) -> usize {
        self.classifier.weight.val().dims()[1]
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        relu6(self.stem_bn.forward(self.stem_conv.forward(x)))
    }

    fn run_blocks(&self, x: Tensor<4>, from: usize, to: usize) -> Tensor<4> {
        assert!(from <= to, "stage {from} comes after stage {to}");
        self.blocks[first_block(from)..first_block(to)].iter().fold(x, |x, block| block.forward(x))
    }
}
