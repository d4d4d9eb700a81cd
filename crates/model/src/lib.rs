//! Bedside's networks, written once for every backend.
//!
//! - [`student`]: the small MobileNetV2-style classifier that ships to the browser (≤ 1 M parameters,
//!   inverted residual blocks with squeeze-excitation, global average pooling → linear, so a class
//!   activation map needs no gradients).
//! - [`artifact`]: `model.json` + `model-fp32.bin`, the versioned files a trained model ships as.
//! - [`prune`]: structured pruning — the same network with whole channels removed.
//! - [`quant`]: `model.bin`, the same weights as per-channel int8 (the shipped default).
//! - [`infer`]: logits → calibrated probabilities → the label the task's decision rule picks.
//! - [`review`]: when a model answers "uncertain: needs review" instead.
//! - [`heat_map`]: class activation maps → the attention heat map shown over the picture.
//! - [`lesion`]: the lesion decoder on the student's feature maps, and the outline's measurements.
//! - [`gate`]: the trust gate's routing and refusal rule.
//! - [`input`]: input shape, framing and normalisation, shared by training, CLI and browser.
//! - [`teacher`]: EfficientNet-Lite0, the ImageNet-pretrained teacher the students are distilled from.
//!
//! No I/O and no backend choice here: the caller picks the `Device` (flex + autodiff to train, webgpu or
//! flex in the browser). Training, data and metrics live in `bedside-train`.

pub mod artifact;
pub mod gate;
pub mod heat_map;
pub mod infer;
pub mod input;
pub mod lesion;
pub mod prune;
pub mod quant;
pub mod review;
pub mod student;
pub mod task;
pub mod teacher;
