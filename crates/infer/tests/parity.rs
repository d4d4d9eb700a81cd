//! The engine computes what burn computes, on every shipped model: logits, class activation maps
//! and lesion logits (mirror averaged where the model is), with both kernel sets.

use bedside_infer::{Engine, Options, Precision};
use bedside_model::lesion::LesionConfig;
use bedside_onnx::Loaded;
use burn::prelude::*;
use std::path::Path;

const TOLERANCE: f32 = 1e-4;

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// A smooth picture with a bright disc under deterministic noise, in the normalised range.
fn picture(c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..c * h * w)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let (ch, y, x) = (i / (h * w), (i / w) % h, i % w);
            let (u, v) = (x as f32 / w as f32 - 0.45, y as f32 / h as f32 - 0.55);
            -1.0 + 1.2 * u + 0.3 * ch as f32 + if u * u + v * v < 0.05 { 1.5 } else { 0.0 } + 0.6 * noise
        })
        .collect()
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_engine_computes_what_burn_computes() {
    let device = Device::flex();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for task in ["chest", "skin", "breast", "gate"] {
        let dir = models.join(task);
        let Loaded { info, network, lesion, .. } = bedside_onnx::load_folder(&dir, false, &device).unwrap();
        let (c, h, w) = (info.input.channels as usize, info.input.height as usize, info.input.width as usize);
        let x = picture(c, h, w);

        // burn's pass as the page ran it (mirror averaged where the model says so).
        let (logits, maps, outline) =
            bedside_model::infer::forward_all(&network, lesion.as_ref(), &info.input, x.clone(), &device);
        let (logits, maps, outline) = (to_vec(logits), to_vec(maps), outline.map(to_vec));

        let engines =
            [Engine::new(&network, lesion.as_ref()), Engine::new_portable(&network, lesion.as_ref())];
        for engine in engines.map(Result::unwrap) {
            let out = engine.run_input(&info.input, &x).unwrap();
            let kernels = engine.kernels();
            let mut worst = vec![
                ("logits", largest_difference(&out.logits, &logits)),
                ("class_maps", largest_difference(&out.class_maps, &maps)),
            ];
            if let Some(outline) = &outline {
                worst.push((
                    "lesion_logits",
                    largest_difference(out.lesion_logits.as_ref().unwrap(), outline),
                ));
            } else {
                assert!(out.lesion_logits.is_none());
            }
            println!(
                "{task} ({kernels}, mirror average {}): largest differences {worst:?}",
                info.input.mirror_average
            );
            for (name, d) in worst {
                assert!(d <= TOLERANCE, "{task} {name} ({kernels}): differs from burn by {d}");
            }
        }
    }
}

/// A model folder's file.
fn read(task: &str, name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(task).join(name)).unwrap()
}

/// The lesion decoder's shape from the folder's `lesion.json`.
fn lesion_config(task: &str, network: &bedside_model::student::StudentConfig) -> LesionConfig {
    let text = String::from_utf8(read(task, "lesion.json")).unwrap();
    let sha = bedside_model::lesion::sha256_hex(&read(task, "model.bin"));
    bedside_model::lesion::LesionInfo::from_json(&text, network, &sha).unwrap().decoder
}

/// The page's CPU module has no burn backend: it reads the weights itself ([`Engine::from_bytes`]).
/// That engine is the one built from the network burn loaded, bit for bit, on every shipped model
/// (lesion decoders included) in both the reference and the shipped arithmetic, from int8 and fp32
/// files.
#[test]
fn weights_read_without_burn_make_the_same_engine() {
    let device = Device::flex();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for (task, fp32) in ["chest", "skin", "breast", "gate"].into_iter().flat_map(|t| [(t, false), (t, true)])
    {
        let Loaded { info, network, lesion, .. } =
            bedside_onnx::load_folder(&models.join(task), fp32, &device).unwrap();
        let x = picture(info.input.channels as usize, info.input.height as usize, info.input.width as usize);
        for precision in [Precision::Fp32, Precision::W8A12] {
            let options = Options { precision, portable: false };
            let burn = Engine::with_options(&network, lesion.as_ref(), options).unwrap();
            let file = if fp32 { "model-fp32.bin" } else { "model.bin" };
            let mut engine = Engine::from_bytes(&info.network, read(task, file), options).unwrap();
            if lesion.is_some() {
                let config = lesion_config(task, &info.network);
                engine = engine.with_lesion_bytes(&config, read(task, "lesion.bin")).unwrap();
            }
            assert_eq!(engine.has_lesion(), lesion.is_some());
            let (ours, theirs) =
                (engine.run_input(&info.input, &x).unwrap(), burn.run_input(&info.input, &x));
            assert!(ours == theirs.unwrap(), "{task} {file} {}: outputs differ", precision.name());
        }
    }
}

/// Weights that are not the network's are a readable error, never a panic in the page's worker.
#[test]
fn weights_that_do_not_fit_are_an_error() {
    let chest = bedside_model::artifact::ModelInfo::from_json(
        &String::from_utf8(read("chest", "model.json")).unwrap(),
    )
    .unwrap()
    .network;
    let options = Options::default();
    let error = |bytes| Engine::from_bytes(&chest, bytes, options).unwrap_err().to_string();
    // The gate's weights: a narrower network, named by the first tensor whose shape differs.
    let other = error(read("gate", "model.bin"));
    assert!(
        other.contains("do not fit the network: blocks.1.project.conv.weight is [8, 48, 1, 1]"),
        "{other}"
    );
    // A lesion decoder's weights where a network's belong: tensors missing.
    let missing = error(read("skin", "lesion.bin"));
    assert!(missing.contains("is missing"), "{missing}");
    let garbage = error(vec![7; 100]);
    assert!(garbage.contains("not a weights file"), "{garbage}");
    // A decoder for another network's maps.
    let engine = Engine::from_bytes(&chest, read("chest", "model.bin"), options).unwrap();
    let skin = bedside_model::artifact::ModelInfo::from_json(
        &String::from_utf8(read("skin", "model.json")).unwrap(),
    )
    .unwrap()
    .network;
    let decoder = engine.with_lesion_bytes(&lesion_config("skin", &skin), read("skin", "lesion.bin"));
    assert!(decoder.unwrap_err().to_string().contains("lesion decoder reading"));
}

#[test]
fn a_wrong_input_size_is_an_error() {
    let device = Device::flex();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/gate");
    let read = |name: &str| std::fs::read(models.join(name)).unwrap();
    let loaded =
        bedside_onnx::load(&String::from_utf8(read("model.json")).unwrap(), read("model.bin"), None, &device)
            .unwrap();
    let engine = Engine::new(&loaded.network, None).unwrap();
    let error = engine.run(&[0.0; 10], 3, 64, 64).unwrap_err().to_string();
    assert!(error.contains("10 values") && error.contains("3 × 64 × 64"), "{error}");
}

#[test]
fn a_lesion_decoder_for_another_network_is_refused() {
    let device = Device::flex();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let gate = bedside_onnx::load_folder(&models.join("gate"), false, &device).unwrap();
    let skin = bedside_onnx::load_folder(&models.join("skin"), false, &device).unwrap();
    let error = Engine::new(&gate.network, skin.lesion.as_ref()).unwrap_err().to_string();
    assert!(error.contains("lesion decoder reading"), "{error}");
    let error = Engine::new(&gate.network, None).unwrap().with_lesion(skin.lesion.as_ref().unwrap());
    assert!(error.is_err());
    // An empty picture is refused too, not run.
    let engine = Engine::new(&gate.network, None).unwrap();
    assert!(engine.run(&[], 3, 0, 64).is_err());
}

/// The integer arithmetics (`Precision::Int8`, `Precision::W8A12`) stay close to the engine's own f32
/// on every shipped model and give the same answer; `bedside arithmetic` measures them over a whole
/// validation split.
#[test]
fn int8_arithmetic_stays_near_the_f32_engine() {
    let device = Device::flex();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for task in ["chest", "skin", "breast", "gate"] {
        let Loaded { info, network, lesion, .. } =
            bedside_onnx::load_folder(&models.join(task), false, &device).unwrap();
        let (c, h, w) = (info.input.channels as usize, info.input.height as usize, info.input.width as usize);
        let x = picture(c, h, w);
        let fp32 = Engine::new(&network, lesion.as_ref()).unwrap().run_input(&info.input, &x).unwrap();
        // Bounds for (logits, class maps as a share of their largest value, outline pixels flipped).
        let runs = [(Precision::Int8, 0.1, 0.05, 0.01), (Precision::W8A12, 0.01, 0.005, 0.001)];
        for ((precision, logit_bound, map_bound, flip_bound), portable) in
            runs.into_iter().flat_map(|run| [(run, false), (run, true)])
        {
            let options = Options { precision, portable };
            let engine = Engine::with_options(&network, lesion.as_ref(), options).unwrap();
            assert_eq!(engine.precision(), precision);
            let int8 = engine.run_input(&info.input, &x).unwrap();
            let name = format!("{task} {} ({})", precision.name(), engine.kernels());
            let top = |l: &[f32]| (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
            let logits = largest_difference(&int8.logits, &fp32.logits);
            let maps = largest_difference(&int8.class_maps, &fp32.class_maps);
            let spread = fp32.class_maps.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            println!("{name}: logits differ by {logits}, class maps by {maps} of {spread}");
            assert_eq!(top(&int8.logits), top(&fp32.logits), "{name} changes the answer");
            assert!(logits < logit_bound, "{name}: logits differ from f32 by {logits}");
            assert!(maps < map_bound * spread, "{name}: class maps differ by {maps} (values up to {spread})");
            if let (Some(a), Some(b)) = (&int8.lesion_logits, &fp32.lesion_logits) {
                // The outline is where the logit crosses 0: the same pixels on nearly all the picture.
                let flipped = a.iter().zip(b).filter(|(a, b)| (**a > 0.0) != (**b > 0.0)).count();
                println!("{name}: {flipped} of {} outline pixels flip", a.len());
                assert!(
                    flipped as f64 <= flip_bound * a.len() as f64,
                    "{name}: {flipped} outline pixels flip"
                );
            }
        }
    }
}
