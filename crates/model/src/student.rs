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

/// A convolution, its BatchNorm (absent once folded) and an optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
    pub relu6: bool,
}

impl ConvBn {
    pub(crate) fn new(
        device: &Device,
        [c_in, c_out]: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
    ) -> Self {
        let pad = kernel / 2;
        let conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_groups(groups)
            .with_bias(false)
            .init(device);
        ConvBn { conv, bn: Some(BatchNormConfig::new(c_out).init(device)), relu6 }
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

/// Inverted residual blocks in every student (the sum of the stages' repeats).
pub const BLOCKS: usize = 17;

/// The blocks whose outputs [`Student::forward_with_taps`] returns: the last block at stride 4, 8
/// and 16 (pruning narrows hidden channels only, so their widths are fixed by the width multiplier).
pub const TAPS: [usize; 3] = [2, 5, 12];

impl StudentConfig {
    /// The expanded channels of every block: `hidden` where pruning set them, else MobileNetV2's.
    pub fn hidden_channels(&self) -> Vec<usize> {
        if let Some(hidden) = &self.hidden {
            return hidden.clone();
        }
        let w = |c: usize| round_channels(c as f64 * self.width);
        let mut c_in = w(32);
        let mut out = Vec::with_capacity(BLOCKS);
        for &(t, c, n, _) in &STAGES {
            for _ in 0..n {
                out.push(c_in * t);
                c_in = w(c);
            }
        }
        out
    }

    /// Output channels of the blocks [`TAPS`] names.
    pub fn tap_channels(&self) -> Vec<usize> {
        let w = |c: usize| round_channels(c as f64 * self.width);
        let outputs: Vec<usize> =
            STAGES.iter().flat_map(|&(_, c, n, _)| std::iter::repeat_n(w(c), n)).collect();
        TAPS.iter().map(|&i| outputs[i]).collect()
    }

    /// Rejects shapes [`init`](Self::init) cannot build (a `model.json` is input like any other).
    pub fn check(&self) -> Result<(), String> {
        let Some(hidden) = &self.hidden else { return Ok(()) };
        if hidden.len() != BLOCKS {
            return Err(format!(
                "network.hidden has {} entries; a student has {BLOCKS} blocks",
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

    pub fn init(&self, device: &Device) -> Student {
        let w = |c: usize| round_channels(c as f64 * self.width);
        let stem_channels = w(32);
        let stem = ConvBn::new(device, [self.in_channels, stem_channels], 3, 2, 1, true);
        let mut blocks = Vec::new();
        let mut c_in = stem_channels;
        for (stage, &(t, c, n, s)) in STAGES.iter().enumerate() {
            let c_out = w(c);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = match &self.hidden {
                    Some(hidden) => hidden[blocks.len()],
                    None => c_in * t,
                };
                let expand = (t != 1).then(|| ConvBn::new(device, [c_in, hidden], 1, 1, 1, true));
                let depthwise = ConvBn::new(device, [hidden, hidden], 3, stride, hidden, true);
                let se = (stage >= FIRST_SE_STAGE).then(|| {
                    let squeezed = ((c_in as f64 * self.se_ratio) as usize).max(8);
                    SqueezeExcite {
                        reduce: LinearConfig::new(hidden, squeezed).init(device),
                        expand: LinearConfig::new(squeezed, hidden).init(device),
                    }
                });
                let project = ConvBn::new(device, [hidden, c_out], 1, 1, 1, false);
                let residual = stride == 1 && c_in == c_out;
                blocks.push(InvertedResidual { expand, depthwise, se, project, residual });
                c_in = c_out;
            }
        }
        let head = ConvBn::new(device, [c_in, self.head_channels], 1, 1, 1, true);
        Student {
            stem,
            blocks,
            head,
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(self.head_channels, self.num_classes).init(device),
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

    /// Logits, the head's feature map and the outputs of the blocks [`TAPS`] names (at 1/4, 1/8 and
    /// 1/16 of the input size): what the lesion decoder ([`crate::lesion`]) reads.
    pub fn forward_with_taps(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<4>, Vec<Tensor<4>>) {
        let mut x = self.stem.forward(x);
        let mut taps = Vec::with_capacity(TAPS.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if TAPS.contains(&i) {
                taps.push(x.clone());
            }
        }
        let features = self.head.forward(x);
        let [n, c, _, _] = features.dims();
        let pooled = features.clone().mean_dim(3).mean_dim(2).reshape([n, c]);
        (self.classifier.forward(self.dropout.forward(pooled)), features, taps)
    }

    /// Multiply–accumulates for one `height × width` image (convolutions, squeeze-excitation and the
    /// classifier; BatchNorm assumed folded, activations and pooling not counted).
    pub fn macs(&self, height: usize, width: usize) -> u64 {
        // Padding is kernel/2 everywhere, so each convolution's output side is ⌈side / stride⌉.
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
