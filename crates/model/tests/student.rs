//! The student network on the CPU backend: size, output shapes, BatchNorm folding, the artifact.

use bedside_model::artifact::{student_from_bytes, student_to_bytes};
use bedside_model::student::StudentConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;

fn input(device: &Device, n: usize, c: usize, h: usize, w: usize) -> Tensor<4> {
    let values: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(values, [n, c, h, w]), device)
}

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    let (a, b) = (a.into_data(), b.into_data());
    let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn stays_under_a_million_parameters() {
    let device = Device::flex();
    for (classes, channels) in [(2, 1), (7, 3), (3, 1)] {
        let params = StudentConfig::new(classes).with_in_channels(channels).init(&device).num_params();
        assert!((300_000..1_000_000).contains(&params), "{classes} classes: {params} parameters");
    }
}

#[test]
fn multiply_accumulates_match_mobilenet_v2() {
    // At width 1, 1280 head channels, 1000 classes and 224 × 224, MobileNetV2 is quoted at 300 M
    // multiply-adds (Sandler et al., 2018); squeeze-excitation adds well under 1 %.
    let device = Device::flex();
    let big =
        StudentConfig::new(1000).with_in_channels(3).with_width(1.0).with_head_channels(1280).init(&device);
    let macs = big.macs(224, 224);
    assert!((295_000_000..310_000_000).contains(&macs), "{macs} MACs");
    // Convolutions dominate: doubling the side roughly quadruples the count.
    let small = StudentConfig::new(2).init(&device);
    let ratio = small.macs(256, 256) as f64 / small.macs(128, 128) as f64;
    assert!((3.9..=4.0).contains(&ratio), "{ratio}");
}

#[test]
fn logits_and_features_have_the_documented_shapes() {
    let device = Device::flex();
    let model = StudentConfig::new(7).with_in_channels(3).init(&device).valid();
    let (logits, features) = model.forward_with_features(input(&device, 2, 3, 96, 128));
    assert_eq!(logits.dims(), [2, 7]);
    assert_eq!(features.dims(), [2, 640, 3, 4], "1/32 of 96×128");
}

#[test]
fn folded_batchnorm_gives_the_same_outputs() {
    let device = Device::flex().autodiff();
    let mut model = StudentConfig::new(2).init(&device);
    // A few training steps so the running statistics and affine parameters are not the identity.
    let mut optim = AdamWConfig::new().init();
    for step in 0..3 {
        let x = input(&device, 4, 1, 64, 64) * (1.0 + step as f32);
        let loss = model.forward(x).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let plain = Device::flex();
    let model = model.valid();
    let x = input(&plain, 3, 1, 64, 64);
    let reference = model.forward(x.clone());
    let folded = model.clone().fold_batchnorm();
    assert!(folded.head.bn.is_none() && folded.head.conv.bias.is_some());
    let diff = max_abs_diff(reference.clone(), folded.forward(x.clone()));
    assert!(diff < 1e-4, "folding changed the logits by {diff}");

    // The artifact round trip: bytes → the same network, already folded.
    let config = StudentConfig::new(2);
    let bytes = student_to_bytes(model).unwrap();
    let loaded = student_from_bytes(&config, bytes.clone(), &plain).unwrap();
    assert!(max_abs_diff(reference, loaded.forward(x)) < 1e-4);
    let wrong = student_from_bytes(&StudentConfig::new(3), bytes, &plain);
    assert!(wrong.is_err(), "weights for 2 classes do not load into a 3-class network");
}

#[test]
fn class_activation_maps_average_to_the_logits() {
    // GAP → linear makes each logit the mean of its class's activation map plus the bias; a map
    // computed with the wrong weights, layout or class order would not average back.
    let device = Device::flex();
    let model = StudentConfig::new(3).init(&device).valid().fold_batchnorm();
    let (logits, features) = model.forward_with_features(input(&device, 2, 1, 64, 96));
    let maps = model.class_activation_maps(features);
    assert_eq!(maps.dims(), [2, 3, 2, 3]);
    let bias = model.classifier.bias.as_ref().unwrap().val().reshape([1, 3]);
    let averaged = maps.mean_dim(3).mean_dim(2).reshape([2, 3]) + bias;
    let diff = max_abs_diff(averaged, logits);
    assert!(diff < 1e-4, "maps average to the logits within {diff}");
}

#[test]
fn mirror_averaging_averages_the_picture_and_its_mirror_image() {
    use bedside_model::infer::{forward_with_maps, logits};
    use bedside_model::input::{Framing, InputSpec};
    // The shipped breast network: trained weights, so the mirror image gives other logits.
    let device = Device::flex();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/breast");
    let text = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let info = bedside_model::artifact::ModelInfo::from_json(&text).unwrap();
    let model =
        student_from_bytes(&info.network, std::fs::read(dir.join("model-fp32.bin")).unwrap(), &device)
            .unwrap();
    let mut spec = InputSpec {
        width: 64,
        height: 64,
        channels: 1,
        framing: Framing::CenterCrop,
        mean: vec![0.0],
        std: vec![1.0],
        intensity: Default::default(),
        mirror_average: false,
    };
    let x = input(&device, 2, 1, 64, 64);
    let flat = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let plain = logits(&model, &spec, flat(x.clone()), &device);
    let mirrored = logits(&model, &spec, flat(x.clone().flip([3])), &device);
    spec.mirror_average = true;
    let averaged = logits(&model, &spec, flat(x.clone()), &device);
    for ((a, p), m) in averaged.iter().flatten().zip(plain.iter().flatten()).zip(mirrored.iter().flatten()) {
        assert!((a - (p + m) / 2.0).abs() < 1e-5, "{a} vs ({p} + {m}) / 2");
    }
    assert!(plain != mirrored, "the test picture is not symmetric");
    // The maps path gives the same logits, and a map that is its own mirror image's mirror.
    let (with_maps, maps) = forward_with_maps(&model, &spec, flat(x.clone()), &device);
    let with_maps = with_maps.into_data().try_to_vec::<f32>().unwrap();
    for (a, b) in with_maps.iter().zip(averaged.iter().flatten()) {
        assert!((a - b).abs() < 1e-5);
    }
    let (_, mirror_maps) = forward_with_maps(&model, &spec, flat(x.flip([3])), &device);
    let (a, b) = (flat(maps), flat(mirror_maps.flip([3])));
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-4), "averaged maps are mirror-consistent");
}
