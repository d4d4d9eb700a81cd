//! Bedside's native CPU inference beside onnxruntime's, for `cargo xtask bench`: the same network
//! (each folder's `model.bin`, dequantised, as the page runs it), exported with this crate and run in
//! onnxruntime (PyPI, CPU, one thread) on the same input, in the same run.
//!
//! `native_bench [--iterations N] MODEL_DIR...` times one pass at the model's input size, batch 1:
//! Bedside's is burn's flex backend (the CLI's; run it with `RAYON_NUM_THREADS=1` for one thread)
//! computing what the ONNX graph computes — logits, class activation maps and, where the folder has
//! a lesion decoder, lesion logits — read back to the host. Medians of N runs after two warm-ups
//! each. It prints one JSON line per folder: `task`, `input` ([c, h, w]), `macs` (the network's and
//! the decoder's multiply–accumulates), `iterations`, `ours_ms`, `onnxruntime_ms` and `ratio`
//! (ours over onnxruntime's: below 1, Bedside is faster), `largest_difference` between the two
//! runtimes' outputs on that input, and Bedside's own engine (`bedside-infer`) on the same pass:
//! `engine_ms` in the arithmetic the product runs (`bedside_diagnosis::CPU_ARITHMETIC`: int8 weights,
//! 12-bit activations) with the kernels it picks at run time (`engine_kernels`) and
//! `engine_portable_ms` with the baseline-target ones; `engine_fp32_ms` and `engine_fp32_portable_ms`
//! the same in f32, and `largest_logit_difference_from_fp32` between the two.

use bedside_diagnosis::CPU_ARITHMETIC;
use bedside_infer::{Engine, Options, Precision};
use bedside_onnx::Loaded;
use burn::prelude::*;
use std::path::Path;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("native_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut iterations = 50usize;
    let mut dirs = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                let n = args.next().ok_or("--iterations needs a number")?;
                iterations = n.parse().map_err(|_| format!("--iterations: {n:?} is not a number"))?;
            }
            "-h" | "--help" => {
                println!("usage: native_bench [--iterations N] MODEL_DIR...");
                return Ok(());
            }
            _ => dirs.push(arg),
        }
    }
    if dirs.is_empty() || iterations == 0 {
        return Err("usage: native_bench [--iterations N] MODEL_DIR... (N ≥ 1)".into());
    }
    let device = Device::flex();
    let work = bedside_corpus::target_dir().join("bench").join("onnx");
    for dir in &dirs {
        let dir = Path::new(dir);
        let loaded = bedside_onnx::load_folder(dir, false, &device).map_err(|e| e.to_string())?;
        let onnx = bedside_onnx::export(&loaded).map_err(|e| format!("{}: {e}", dir.display()))?;
        let Loaded { info, network, lesion, .. } = loaded;
        let task = info.task.name();
        let (c, h, w) = (info.input.channels as usize, info.input.height as usize, info.input.width as usize);
        // A smooth picture with a bright disc in the normalised range: the values do not change the
        // time, and a realistic range keeps the two runtimes' outputs comparable.
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| {
                let (y, x) = ((i / w) % h, i % w);
                let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
                -1.0 + 1.5 * u + if u * u + v * v < 0.04 { 1.5 } else { 0.0 }
            })
            .collect();

        let pass = || {
            let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, c, h, w]), &device);
            let (logits, features, taps) = network.forward_with_taps(input);
            let maps = network.class_activation_maps(features.clone());
            let outline = lesion.as_ref().map(|decoder| decoder.forward(features, &taps, [h, w]));
            let mut out = vec![values(logits), values(maps)];
            out.extend(outline.map(values));
            out
        };
        let ours_out = pass();
        pass();
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            std::hint::black_box(pass());
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let ours_ms = median(&mut times);

        // Bedside's own engine on the same weights, with its run-time-chosen kernels and with the
        // portable ones (what a build for the baseline target, or wasm32, runs).
        let mut engine_ms = Vec::new();
        let mut logits = Vec::new();
        for precision in [CPU_ARITHMETIC, Precision::Fp32] {
            for portable in [false, true] {
                let options = Options { precision, portable };
                let engine = Engine::with_options(&network, lesion.as_ref(), options);
                let engine = engine.map_err(|e| e.to_string())?;
                let run = || engine.run(&x, c, h, w).expect("the input fits");
                logits.push(run().logits);
                run();
                let mut times: Vec<f64> = (0..iterations)
                    .map(|_| {
                        let start = Instant::now();
                        std::hint::black_box(run());
                        start.elapsed().as_secs_f64() * 1000.0
                    })
                    .collect();
                engine_ms.push((engine.kernels(), median(&mut times)));
            }
        }
        let largest_logit_difference_from_fp32 =
            logits[0].iter().zip(&logits[2]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);

        let path = work.join(format!("{task}.onnx"));
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        std::fs::write(&path, &onnx).map_err(|e| format!("{}: {e}", path.display()))?;
        let peer =
            bedside_corpus::reference::onnxruntime(&path, &x, [1, c, h, w], &work.join(task), iterations)
                .map_err(|e| e.to_string())?;
        let (peer_ms, _) = peer.timing_ms.ok_or("onnxruntime gave no timing")?;
        let largest_difference = ours_out
            .iter()
            .zip(&peer.outputs)
            .flat_map(|(ours, (_, _, theirs))| ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()))
            .fold(0.0f32, f32::max);
        let macs = network.macs(h, w) + lesion.as_ref().map_or(0, |d| d.macs(h, w));
        let line = serde_json::json!({
            "task": task,
            "input": [c, h, w],
            "macs": macs,
            "iterations": iterations,
            "ours_ms": ours_ms,
            "onnxruntime_ms": peer_ms,
            "ratio": ours_ms / peer_ms,
            "engine_kernels": engine_ms[0].0,
            "engine_ms": engine_ms[0].1,
            "engine_portable_ms": engine_ms[1].1,
            "engine_fp32_ms": engine_ms[2].1,
            "engine_fp32_portable_ms": engine_ms[3].1,
            "largest_logit_difference_from_fp32": largest_logit_difference_from_fp32,
            "largest_difference": largest_difference,
        });
        println!("{line}");
    }
    Ok(())
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 values")
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 }
}
