//! Every shipped model, exported to ONNX and run in onnxruntime (from PyPI, pinned), computes what
//! Bedside's own fp32 path computes on the same weights: logits, class activation maps and lesion
//! logits within 1e-4.

use bedside_corpus::reference;
use bedside_onnx::Loaded;
use burn::prelude::*;
use std::path::{Path, PathBuf};

const TOLERANCE: f32 = 1e-4;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Two pictures' worth of normalised input: smooth shading and a bright disc under deterministic
/// noise, in the range a normalised picture has.
fn inputs(c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut out = Vec::with_capacity(2 * c * h * w);
    for n in 0..2 {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.4 - 0.1 * n as f32);
                    let disc = if u * u + v * v < 0.04 { 1.5 } else { 0.0 };
                    out.push(-1.0 + 1.2 * u + 0.3 * ch as f32 + disc + 0.6 * noise());
                }
            }
        }
    }
    out
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn onnxruntime_computes_what_bedside_computes() {
    let device = Device::flex();
    let work = bedside_corpus::target_dir().join("onnx-parity");
    for task in ["chest", "skin", "breast", "gate"] {
        let dir = models_dir().join(task);
        let loaded = bedside_onnx::load_folder(&dir, false, &device).unwrap();
        let bytes = bedside_onnx::export(&loaded).unwrap();
        let Loaded { info, network: model, lesion, .. } = loaded;
        let (c, h, w) = (info.input.channels as usize, info.input.height as usize, info.input.width as usize);
        let x = inputs(c, h, w);
        let path = work.join(format!("{task}.onnx"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let run = match reference::onnxruntime(&path, &x, [2, c, h, w], &work.join(task), 0) {
            Ok(run) => run,
            Err(reference::Error::Unavailable(why))
                if std::env::var("BEDSIDE_REQUIRE_DATA").as_deref() != Ok("1") =>
            {
                eprintln!("skipped onnxruntime_computes_what_bedside_computes: {why}");
                return;
            }
            Err(e) => panic!("{e}"),
        };

        let tensor = Tensor::<4>::from_data(TensorData::new(x, [2, c, h, w]), &device);
        let (logits, features, taps) = model.forward_with_taps(tensor);
        let classes = info.classes.len();
        let [_, _, mh, mw] = features.dims();
        let mut expected = vec![
            ("logits", vec![2, classes], to_vec(logits)),
            ("class_maps", vec![2, classes, mh, mw], to_vec(model.class_activation_maps(features.clone()))),
        ];
        if let Some(decoder) = &lesion {
            expected.push(("lesion_logits", vec![2, h, w], to_vec(decoder.forward(features, &taps, [h, w]))));
        }
        let names: Vec<&str> = run.outputs.iter().map(|(name, _, _)| name.as_str()).collect();
        assert_eq!(names, expected.iter().map(|(name, _, _)| *name).collect::<Vec<_>>(), "{task}: outputs");
        for ((name, dims, ours), (_, their_dims, theirs)) in expected.iter().zip(&run.outputs) {
            assert_eq!(dims, their_dims, "{task} {name}: shape");
            let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            let scale = ours.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            println!("{task} {name}: largest difference {worst:.2e} (largest value {scale:.2})");
            assert!(worst <= TOLERANCE, "{task} {name}: onnxruntime differs by {worst} (> {TOLERANCE})");
        }
        // The outputs are not degenerate: the two pictures get different logits.
        let logits = &expected[0].2;
        assert!(
            logits[..classes].iter().zip(&logits[classes..]).any(|(a, b)| (a - b).abs() > 1e-3),
            "{task}"
        );
    }
}
