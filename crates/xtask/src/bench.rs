//! `cargo xtask bench`: decode time of the full-size 16-bit CR in the corpus, uncompressed
//! (`RG1_UNCR.dcm`) and JPEG 2000 lossless (`RG1_J2KR.dcm`), in Bedside's native build, in its wasm
//! build in headless Chromium, and in pydicom + pylibjpeg — all three in the same run on the same
//! machine, so the ratios between them mean something where absolute times would not.
//!
//! Each peer times the same thing: the file's bytes already in memory, parsed and the first frame
//! decoded (`Study::open` in Bedside, `dcmread(...).pixel_array` in pydicom), the median of N runs
//! after one warm-up. The peers are `crates/imaging/examples/decode_bench.rs` (release build),
//! `tests/bench/decode.mjs` (the app's `wasm-release` build, as `cargo xtask serve` ships it) and
//! `tests/bench/decode_pydicom.py` (the reference decoder's pinned virtual environment). The table
//! is printed and written with the raw numbers to `bench/decode.{md,json}` in the target folder.
//!
//! Then what the lesion outline costs a diagnosis on the CPU path: breast and skin each diagnosed with
//! and without their lesion decoder in one process (`crates/diagnosis/examples/lesion_bench.rs`,
//! release build), on a 640 × 480 picture and a 4000 × 3000 one, written to `bench/lesion.{md,json}`.
//!
//! Then inference against onnxruntime: every shipped model's network (its `model.bin`, as the page
//! runs it) exported to ONNX and timed natively, one thread each, by burn's flex backend (what
//! `bedside predict` runs), by Bedside's own engine (`bedside-infer`, the page's CPU path) and by
//! onnxruntime from PyPI (`crates/onnx/examples/native_bench.rs`), written to `bench/inference.{md,json}`.
//!
//! And in the browser: the page's CPU path against onnxruntime-web's wasm backend on the same exported
//! networks, in one headless Chromium (`tests/bench/inference.mjs`), written to
//! `bench/browser-inference.{md,json}`.
//!
//! Every ours-against-a-peer figure of the run is gathered in `bench/report.{json,md}`:
//! `comparisons`, a list of `{name, ours, peer, unit, ratio}` with `ratio` = ours / peer (lower is
//! better): `decode_native/<file>` and `decode_wasm/<file>` (against pydicom), `native_cpu/<task>`
//! (burn) and `native_engine/<task>` (the engine) against onnxruntime, `browser_cpu/<task>` (the
//! page's CPU path, the engine in wasm) and `energy_cpu/<task>` (the browser's CPU time per diagnosis,
//! the energy proxy) against onnxruntime-web, with a roofline of the page's CPU path against the
//! engine's int8 instruction alone (`roofline`, `simd_peak_macs_per_s`). Then `bench memory` and `bench load`
//! (`memory_bench`, `load_bench`) add their keys to the same report.

use crate::{cargo, root, serve, setup, step, target_dir, web};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const FILES: [&str; 2] = ["RG1_UNCR.dcm", "RG1_J2KR.dcm"];

pub fn bench(iterations: usize) -> Result<()> {
    if iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    setup::wasm_toolchain()?;
    setup::browser()?;
    setup::npm_packages()?;
    bedside_corpus::ensure()?;
    let files: Vec<PathBuf> = FILES.iter().map(|f| bedside_corpus::find(f)).collect::<Result<_, _>>()?;
    let n = iterations.to_string();

    step("pydicom + pylibjpeg");
    let python = bedside_corpus::reference::venv()?;
    let pydicom = measure(
        Command::new(python)
            .arg(root().join("tests/bench/decode_pydicom.py"))
            .args(["--iterations", &n])
            .args(&files),
    )?;

    step("Bedside, native (release)");
    let native = measure(
        release_example("bedside-imaging", "decode_bench").args(["--", "--iterations", &n]).args(&files),
    )?;

    step("Bedside, wasm in headless Chromium");
    web::build()?;
    let server = serve::Server::start(crate::build_site(None, None)?, 0)?;
    let wasm = measure(
        Command::new("node")
            .arg(root().join("tests/bench/decode.mjs"))
            .args(["--iterations", &n])
            .args(&files)
            .env("BEDSIDE_URL", format!("http://{}", server.addr())),
    )?;

    let mut table = String::from(
        "| file | size | pydicom + pylibjpeg | Bedside native | Bedside wasm (Chromium) | \
         native speed vs pydicom | wasm speed vs pydicom |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    let ms = |v: &Value| v["median_ms"].as_f64().unwrap_or(f64::NAN);
    for ((p, nat), w) in pydicom.iter().zip(&native).zip(&wasm) {
        let shapes = [p, nat, w].map(|v| (v["rows"].as_u64(), v["columns"].as_u64()));
        if shapes[0] != shapes[1] || shapes[0] != shapes[2] {
            bail!("the peers decoded {} to different shapes: {shapes:?}", p["file"]);
        }
        let _ = writeln!(
            table,
            "| {} | {} × {}, {:.1} MB | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}× | {:.2}× |",
            p["file"].as_str().unwrap_or("?"),
            p["columns"],
            p["rows"],
            p["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            ms(p),
            ms(nat),
            ms(w),
            ms(p) / ms(nat),
            ms(p) / ms(w),
        );
    }
    let _ = writeln!(
        table,
        "\nMedian of {iterations} runs after one warm-up; each run parses the file from memory and decodes \
         its first frame. Speed vs pydicom is pydicom's time over Bedside's: above 1, Bedside is faster."
    );
    println!("\n{table}");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("decode.md"), &table)?;
    let raw =
        serde_json::json!({ "iterations": iterations, "pydicom": pydicom, "native": native, "wasm": wasm });
    std::fs::write(dir.join("decode.json"), serde_json::to_string_pretty(&raw)?)?;
    println!("written to {}", dir.join("decode.md").display());
    let mut comparisons = Vec::new();
    for ((p, nat), w) in pydicom.iter().zip(&native).zip(&wasm) {
        let file = p["file"].as_str().unwrap_or("?");
        comparisons.push(Comparison::new(format!("decode_native/{file}"), ms(nat), ms(p), "ms"));
        comparisons.push(Comparison::new(format!("decode_wasm/{file}"), ms(w), ms(p), "ms"));
    }
    lesion_cost(iterations)?;
    comparisons.extend(inference(iterations.max(50))?);
    comparisons.extend(browser_inference(iterations.max(50), &format!("http://{}", server.addr()))?);
    write_report(&comparisons)?;
    crate::memory_bench::bench()?;
    crate::load_bench::bench()
}

/// One ours-against-a-peer figure of `bench/report.json`.
struct Comparison {
    name: String,
    ours: f64,
    peer: f64,
    unit: &'static str,
    /// ours / peer: below 1, Bedside is faster.
    ratio: f64,
}

impl Comparison {
    fn new(name: String, ours: f64, peer: f64, unit: &'static str) -> Comparison {
        Comparison { name, ours, peer, unit, ratio: ours / peer }
    }

    fn json(&self) -> Value {
        let Comparison { name, ours, peer, unit, ratio } = self;
        serde_json::json!({ "name": name, "ours": ours, "peer": peer, "unit": unit, "ratio": ratio })
    }
}

/// Writes the run's comparisons as `bench/comparisons.md` and as `comparisons` in `report.json`
/// (beside what other parts of the bench wrote there; `report.md` gathers every part's table).
fn write_report(comparisons: &[Comparison]) -> Result<()> {
    let mut table = String::from("| comparison | ours | peer | ours / peer |\n|---|---:|---:|---:|\n");
    for c in comparisons {
        let _ = writeln!(
            table,
            "| {} | {:.2} {} | {:.2} {} | {:.2}× |",
            c.name, c.ours, c.unit, c.peer, c.unit, c.ratio
        );
    }
    let _ = writeln!(
        table,
        "\nOne `cargo xtask bench` run, every pair measured side by side on this machine; below 1×, Bedside \
         is faster. Peers: pydicom + pylibjpeg (decode), onnxruntime from PyPI, one thread (native_cpu, \
         native_engine), onnxruntime-web's wasm backend, one thread (browser_cpu; energy_cpu: the \
         browser's CPU time per diagnosis, an energy proxy)."
    );
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("comparisons.md"), &table)?;
    let comparisons: Vec<Value> = comparisons.iter().map(Comparison::json).collect();
    crate::memory_bench::merge_report(&dir, serde_json::json!({ "comparisons": comparisons }))?;
    println!("\n{table}\nwritten to {}", dir.join("report.json").display());
    Ok(())
}

/// `cargo xtask bench inference`: [`inference`] and [`browser_inference`] alone, their comparisons
/// written as the report.
pub fn inference_alone(iterations: usize) -> Result<()> {
    if iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    setup::wasm_toolchain()?;
    setup::browser()?;
    setup::npm_packages()?;
    let mut comparisons = inference(iterations)?;
    web::build()?;
    let server = serve::Server::start(crate::build_site(None, None)?, 0)?;
    comparisons.extend(browser_inference(iterations, &format!("http://{}", server.addr()))?);
    write_report(&comparisons)
}

/// The page's CPU path against onnxruntime-web's wasm backend in one headless Chromium, one thread
/// each, on the networks [`inference`] exported (`tests/bench/inference.mjs`).
fn browser_inference(iterations: usize, url: &str) -> Result<Vec<Comparison>> {
    step("Inference in headless Chromium, against onnxruntime-web");
    let ort = setup::onnxruntime_web()?;
    let models = root().join("models");
    let onnx = target_dir().join("bench").join("onnx");
    let jobs = ["chest", "skin", "breast", "gate"].map(|task| {
        format!("{task}={}={}", models.join(task).display(), onnx.join(format!("{task}.onnx")).display())
    });
    let rows = json_lines(
        Command::new("node")
            .arg(root().join("tests/bench/inference.mjs"))
            .args(["--iterations", &iterations.to_string(), "--ort"])
            .arg(&ort)
            .args(jobs)
            .env("BEDSIDE_URL", url),
        "tests/bench/inference.mjs",
    )?;
    let mut table = String::from(
        "| model | passes | Bedside, page CPU path (int8 weights) | onnxruntime-web (wasm) | \
         Bedside / onnxruntime-web | Bedside in f32 | int8 / f32 |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut energy = String::from(
        "| model | Bedside: CPU time per diagnosis | onnxruntime-web: CPU time per diagnosis | Bedside / \
         onnxruntime-web |\n|---|---:|---:|---:|\n",
    );
    // The networks' multiply–accumulates per pass, from the native part of the same run.
    let dir = target_dir().join("bench");
    let native: Vec<Value> = std::fs::read_to_string(dir.join("inference.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let macs_of = |task: &str| {
        native.iter().find(|r| r["task"] == task).and_then(|r| r["macs"].as_f64()).unwrap_or(f64::NAN)
    };
    let peak = rows.first().and_then(|r| r["simd_peak_macs_per_s"].as_f64()).unwrap_or(f64::NAN);
    let mut roofline = format!(
        "| model | multiply–accumulates per diagnosis | reached | share of the peak |\n|---|---:|---:|---:|\n\
         | (the pair instruction alone, `simdPeak`) | | {:.1} G/s | 1.00 |\n",
        peak / 1e9
    );
    let mut roofline_json = Vec::new();
    let mut comparisons = Vec::new();
    for row in &rows {
        let ms = |key: &str| row[key].as_f64().unwrap_or(f64::NAN);
        let task = row["task"].as_str().unwrap_or("?");
        let (ours, peer, fp32) = (ms("ours_ms"), ms("onnxruntime_web_ms"), ms("fp32_ms"));
        let passes = row["passes"].as_u64().unwrap_or(0);
        let _ = writeln!(
            table,
            "| {task} | {passes} | {ours:.2} ms | {peer:.2} ms | {:.2}× | {fp32:.2} ms | {:.2}× |",
            ours / peer,
            ours / fp32
        );
        let (ours_cpu, peer_cpu) = (ms("ours_cpu_ms"), ms("onnxruntime_web_cpu_ms"));
        let _ = writeln!(
            energy,
            "| {task} | {ours_cpu:.2} ms | {peer_cpu:.2} ms | {:.2}× |",
            ours_cpu / peer_cpu
        );
        let macs = macs_of(task) * passes as f64;
        let reached = macs / (ours / 1e3);
        let _ = writeln!(
            roofline,
            "| {task} | {:.1} M | {:.2} G/s | {:.2} |",
            macs / 1e6,
            reached / 1e9,
            reached / peak
        );
        roofline_json.push(serde_json::json!({
            "task": task, "macs": macs, "macs_per_s": reached, "peak_macs_per_s": peak, "share": reached / peak,
        }));
        comparisons.push(Comparison::new(format!("browser_cpu/{task}"), ours, peer, "ms"));
        comparisons.push(Comparison::new(format!("int8_vs_fp32/{task}"), ours, fp32, "ms"));
        comparisons.push(Comparison::new(format!("energy_cpu/{task}"), ours_cpu, peer_cpu, "ms CPU"));
    }
    let _ = writeln!(
        table,
        "\nOne headless Chromium, one thread each, batch 1, a blank input at the model's input size; medians \
         of {iterations} runs after two warm-ups. Bedside: `Model.warmUp()` on the CPU path (the network, \
         read-back, heat map and lesion outline; int8 weights, 12-bit activations), and the same on the \
         engine in f32 (`cpu-fp32`); onnxruntime-web 1.31.1: `session.run` of the same weights exported \
         by `bedside export --onnx`, every output fetched. Passes: the network's runs per diagnosis on \
         both sides — two where the model averages a pass with its mirror image's (`mirror_average`)."
    );
    let _ = writeln!(
        energy,
        "\nEnergy proxy: the CPU time of all the browser's processes (DevTools' `SystemInfo.getProcessInfo`, \
         read before and after each side's runs, warm-ups included) over the number of runs — not a \
         measurement of energy."
    );
    let _ = writeln!(
        roofline,
        "\nRoofline: the network's multiply–accumulates (both passes where the model mirror-averages, the \
         lesion decoder included; from the native part of this run) over the page's CPU-path time, against \
         the rate of the engine's int8 pair instruction alone (`i32x4.dot_i16x8_s`, eight independent \
         chains on registers, best of five calls of `simdPeak`). The depthwise convolutions run in f32 \
         and the time includes the read-back, heat map and outline, so no model reaches the peak."
    );
    let table = format!("{table}\n{energy}\n{roofline}");
    crate::memory_bench::merge_report(
        &dir,
        serde_json::json!({ "roofline": roofline_json, "simd_peak_macs_per_s": peak }),
    )?;
    println!("\n{table}");
    std::fs::write(dir.join("browser-inference.md"), &table)?;
    std::fs::write(dir.join("browser-inference.json"), serde_json::to_string_pretty(&rows)?)?;
    Ok(comparisons)
}

/// `cargo run --release` of one of `package`'s examples: every native benchmark program is one.
fn release_example(package: &str, example: &str) -> Command {
    let mut command = cargo();
    command.args(["run", "--quiet", "--release", "--package", package, "--example", example]);
    command
}

/// Every shipped model natively, Bedside's CPU path against onnxruntime, one thread each.
fn inference(iterations: usize) -> Result<Vec<Comparison>> {
    step("Inference, native (release), against onnxruntime");
    let models = root().join("models");
    let rows = json_lines(
        release_example("bedside-onnx", "native_bench")
            .args(["--", "--iterations", &iterations.to_string()])
            .args(["chest", "skin", "breast", "gate"].map(|task| models.join(task)))
            // burn's flex backend spreads over rayon's threads; onnxruntime is held to one too.
            .env("RAYON_NUM_THREADS", "1"),
        "native_bench",
    )?;
    let mut table = String::from(
        "| model | input | multiply–accumulates | Bedside, burn (flex) | Bedside's engine (int8 weights) | \
         engine in f32 | onnxruntime | burn / onnxruntime | engine / onnxruntime | engine f32 / onnxruntime | \
         largest difference |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut comparisons = Vec::new();
    for row in &rows {
        let ms = |key: &str| row[key].as_f64().unwrap_or(f64::NAN);
        let task = row["task"].as_str().unwrap_or("?");
        let input = &row["input"];
        let (burn, engine, peer) = (ms("ours_ms"), ms("engine_ms"), ms("onnxruntime_ms"));
        let fp32 = ms("engine_fp32_ms");
        let _ = writeln!(
            table,
            "| {task} | {} × {} × {} | {:.1} M | {burn:.2} ms | {engine:.2} ms ({}) | {fp32:.2} ms | {peer:.2} ms | \
             {:.2}× | {:.2}× | {:.2}× | {:.1e} |",
            input[0],
            input[1],
            input[2],
            row["macs"].as_f64().unwrap_or(f64::NAN) / 1e6,
            row["engine_kernels"].as_str().unwrap_or("?"),
            burn / peer,
            engine / peer,
            fp32 / peer,
            ms("largest_difference"),
        );
        comparisons.push(Comparison::new(format!("native_cpu/{task}"), burn, peer, "ms"));
        comparisons.push(Comparison::new(format!("native_engine/{task}"), engine, peer, "ms"));
        comparisons.push(Comparison::new(format!("native_engine_fp32/{task}"), fp32, peer, "ms"));
    }
    let _ = writeln!(
        table,
        "\nOne pass at the model's input size, batch 1, one thread each: logits, class activation maps and \
         (skin, breast) lesion logits, read back. Medians of {} runs after two warm-ups; the same \
         dequantised `model.bin` weights, exported by `bedside export --onnx`.",
        rows.first().and_then(|r| r["iterations"].as_u64()).unwrap_or(0)
    );
    println!("\n{table}");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("inference.md"), &table)?;
    std::fs::write(dir.join("inference.json"), serde_json::to_string_pretty(&rows)?)?;
    Ok(comparisons)
}

/// The lesion decoder's share of a diagnosis's time (CPU path, native release build).
fn lesion_cost(iterations: usize) -> Result<()> {
    step("Lesion outline cost, native (release)");
    let models = root().join("models");
    let mut rows: Vec<Value> = Vec::new();
    // A picture the size of the data sets' and a phone photo's.
    for size in ["640x480", "4000x3000"] {
        rows.extend(json_lines(
            release_example("bedside-diagnosis", "lesion_bench")
                .args(["--", "--iterations", &iterations.max(10).to_string(), "--size", size])
                .arg(models.join("breast"))
                .arg(models.join("skin")),
            "lesion_bench",
        )?);
    }
    let mut table = String::from(
        "| model | picture | diagnosis without the lesion decoder | with it | time with / without |\n\
         |---|---|---:|---:|---:|\n",
    );
    for row in &rows {
        let ms = |key: &str| row[key].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            table,
            "| {} | {} × {} | {:.1} ms | {:.1} ms | {:.2}× |",
            row["task"].as_str().unwrap_or("?"),
            row["picture"][0],
            row["picture"][1],
            ms("without_ms"),
            ms("with_ms"),
            ms("ratio")
        );
    }
    let _ = writeln!(
        table,
        "\nMedians over {} alternating runs per picture, burn's CPU backend (the page's fallback), after \
         one warm-up each; with the decoder, the outline is found on the picture's own pixels up to 640 \
         on a side, on a 640-pixel grid beyond.",
        rows.first().and_then(|r| r["iterations"].as_u64()).unwrap_or(0)
    );
    println!("\n{table}");
    let dir = target_dir().join("bench");
    std::fs::write(dir.join("lesion.md"), &table)?;
    std::fs::write(dir.join("lesion.json"), serde_json::to_string_pretty(&rows)?)?;
    Ok(())
}

/// Runs a benchmark program (its stderr passed through) and parses its output, one JSON value per
/// line; `what` names it in errors.
pub(crate) fn json_lines(cmd: &mut Command, what: &str) -> Result<Vec<Value>> {
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("could not run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("{what} printed a line that is not JSON"))
        })
        .collect()
}

/// Runs one peer and parses its JSON lines (one per file, in the order of [`FILES`]).
fn measure(cmd: &mut Command) -> Result<Vec<Value>> {
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{cmd:?} printed a line that is not JSON"))?;
    if lines.len() != FILES.len() {
        bail!("{cmd:?} reported {} files, expected {}", lines.len(), FILES.len());
    }
    for line in &lines {
        println!("{line}");
    }
    Ok(lines)
}
