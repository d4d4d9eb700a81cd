//! What the lesion outline costs a diagnosis, for `cargo xtask bench`: the CPU path (burn's flex
//! backend, the page's fallback) with and without the task's lesion decoder, in one process.
//!
//! `lesion_bench --iterations N [--size WxH] MODEL_DIR...` loads each folder's `model.json` +
//! `model.bin` twice, once with `lesion.json` + `lesion.bin`, prepares one picture at the model's
//! input (a synthetic picture, 640 × 480 unless `--size` says otherwise, opened through
//! `Study::open` as a dropped file is), and times
//! `Diagnoser::run` — the forward pass, the read-back, the heat map and, with the decoder, the
//! outline drawn at the picture's size — N times each, alternating, after one untimed warm-up of
//! each. It prints one JSON line per folder: `task`, `picture` ([width, height]), `iterations`,
//! `without_ms` and `with_ms` (medians), and `ratio` (with over without).

use bedside_diagnosis::{Diagnoser, block_on};
use bedside_imaging::{Limits, Study};
use burn::prelude::Device;
use std::path::Path;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("lesion_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut iterations = 20usize;
    let mut size = (640u32, 480u32);
    let mut dirs = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                let n = args.next().ok_or("--iterations needs a number")?;
                iterations = n.parse().map_err(|_| format!("--iterations: {n:?} is not a number"))?;
            }
            "--size" => {
                let text = args.next().ok_or("--size needs WxH")?;
                let parsed = text.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
                size =
                    parsed.filter(|&(w, h)| w > 0 && h > 0).ok_or(format!("--size: {text:?} is not WxH"))?;
            }
            "-h" | "--help" => {
                println!("usage: lesion_bench [--iterations N] [--size WxH] MODEL_DIR...");
                return Ok(());
            }
            _ => dirs.push(arg),
        }
    }
    if dirs.is_empty() || iterations == 0 {
        return Err("usage: lesion_bench [--iterations N] MODEL_DIR... (N ≥ 1)".into());
    }
    for dir in &dirs {
        let dir = Path::new(dir);
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let text = |name: &str| read(name).and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()));
        let (json, weights) = (text("model.json")?, read("model.bin")?);
        let failed = |e: bedside_diagnosis::Error| format!("{}: {e}", dir.display());
        let plain = Diagnoser::new(&json, weights.clone(), Device::flex()).map_err(failed)?;
        let (lesion_json, lesion_weights) = (text("lesion.json")?, read("lesion.bin")?);
        let outlined = Diagnoser::new(&json, weights, Device::flex())
            .and_then(|d| d.with_lesion(&lesion_json, lesion_weights))
            .map_err(failed)?;
        let study = picture(size, plain.info().input.channels == 3)?;
        let frame = study.frame(0).map_err(|e| e.to_string())?;
        let (input, region) = plain.prepare(&study, &frame);
        let time = |d: &Diagnoser| {
            let started = Instant::now();
            let diagnosis = block_on(d.run(input.clone(), region, bedside_imaging::PixelSize::Pixels(1.0)))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((started.elapsed().as_secs_f64() * 1e3, diagnosis.lesion.is_some()))
        };
        let (_, none) = time(&plain)?;
        let (_, some) = time(&outlined)?;
        if none || !some {
            return Err(format!("{}: the decoder did not run as asked", dir.display()));
        }
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..iterations {
            without.push(time(&plain)?.0);
            with.push(time(&outlined)?.0);
        }
        let (without, with) = (median(&mut without), median(&mut with));
        println!(
            "{}",
            serde_json::json!({
                "task": plain.info().task.name(),
                "picture": [size.0, size.1],
                "iterations": iterations,
                "without_ms": without,
                "with_ms": with,
                "ratio": with / without,
            })
        );
    }
    Ok(())
}

/// A `w × h` picture with a bright blob, as a PNG opened the way a dropped photo is.
fn picture((w, h): (u32, u32), colour: bool) -> Result<Study, String> {
    let value = |x: u32, y: u32| {
        let (cx, cy, r) = (w as f32 * 0.47, h as f32 * 0.46, w.min(h) as f32 * 0.19);
        let d = ((x as f32 - cx).hypot(y as f32 - cy) / r).min(3.0);
        (200.0 - 50.0 * d) as u8
    };
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    let result = if colour {
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let v = value(i % w, i / w);
                [v, v / 2 + 40, v / 3 + 30]
            })
            .collect();
        image::ImageEncoder::write_image(encoder, &rgb, w, h, image::ExtendedColorType::Rgb8)
    } else {
        let grey: Vec<u8> = (0..w * h).map(|i| value(i % w, i / w)).collect();
        image::ImageEncoder::write_image(encoder, &grey, w, h, image::ExtendedColorType::L8)
    };
    result.map_err(|e| e.to_string())?;
    Study::open(&png, &Limits::default()).map_err(|e| e.to_string())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
