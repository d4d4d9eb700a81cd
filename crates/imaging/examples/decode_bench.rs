//! Decode-time benchmark of the native build, for `cargo xtask bench`.
//!
//! `decode_bench --iterations N FILE...` times what the page does when a file is dropped — open it
//! from bytes in memory (`Study::open`) and decode its first frame — N times per file after one
//! untimed warm-up run, and prints one JSON line per file: `file`, `bytes`, `iterations`,
//! `median_ms`, `min_ms`, `rows`, `columns`. The same measurement runs in the browser
//! (`tests/bench/decode.mjs`) and in pydicom (`tests/bench/decode_pydicom.py`).

use bedside_imaging::{Limits, Study};
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("decode_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut iterations = 10usize;
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                let n = args.next().ok_or("--iterations needs a number")?;
                iterations = n.parse().map_err(|_| format!("--iterations: {n:?} is not a number"))?;
            }
            "-h" | "--help" => {
                println!("usage: decode_bench [--iterations N] FILE...");
                return Ok(());
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() || iterations == 0 {
        return Err("usage: decode_bench [--iterations N] FILE... (N ≥ 1)".into());
    }
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| format!("could not read {file}: {e}"))?;
        let decode = || -> Result<(u32, u32), String> {
            let study = Study::open(&bytes, &Limits::default()).map_err(|e| format!("{file}: {e}"))?;
            let frame = study.frame(0).map_err(|e| format!("{file}: {e}"))?;
            std::hint::black_box(&frame);
            Ok((study.info().rows, study.info().columns))
        };
        let (rows, columns) = decode()?;
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            decode()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let name =
            std::path::Path::new(file).file_name().map_or(file.as_str(), |n| n.to_str().unwrap_or(file));
        println!(
            "{{\"file\":{name:?},\"bytes\":{},\"iterations\":{iterations},\"median_ms\":{:.3},\"min_ms\":{:.3},\"rows\":{rows},\"columns\":{columns}}}",
            bytes.len(),
            median(&times),
            times[0],
        );
    }
    Ok(())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}
