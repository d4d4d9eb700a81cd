//! `cargo xtask`: Bedside's project automation, in Rust so it runs wherever cargo does.
//!
//! - `corpus` — fetch and unpack the DICOM test corpus (see `bedside-corpus`).
//! - `build [--out DIR] [--build-id ID] [--reuse-wasm]` — the production build of the page into one
//!   folder (default `target/site`): app, wasm, models, icons, manifest and service worker (see the
//!   `site` module).
//! - `serve [--port N] [--site DIR]` — build the site and serve that folder on 127.0.0.1 (with
//!   `--site`, serve an already built folder as it is).
//! - `test` — everything: native tests, wasm tests in headless Chromium, end-to-end browser tests.
//! - `fuzz [--target NAME] [--seconds N] [--runs N]` — run the cargo-fuzz targets of `fuzz/` (`dicom`,
//!   `jpeg2000`, `photo`) with the nightly toolchain for N seconds each (default 60), or until N
//!   executions with `--runs`, installing cargo-fuzz if missing;
//!   prints executions, exec/s and crashes, and fails if any input crashed (see the `fuzz` module).
//! - `bench [--iterations N]` — decode time of the corpus's full-size CR (uncompressed and JPEG 2000),
//!   native and in wasm in headless Chromium, against pydicom + pylibjpeg in the same run, as ratios
//!   (see the `bench` module); then what the lesion outline costs, `bench inference`, `bench memory`
//!   and `bench load`;
//!   every ours-against-a-peer ratio of the run is gathered in `bench/report.{json,md}`.
//! - `bench inference [--iterations N]` — every shipped model natively (burn, and Bedside's own
//!   engine) against onnxruntime (PyPI), and the page's CPU path against onnxruntime-web in headless
//!   Chromium, one thread each, on the same exported weights.
//! - `bench memory` — peak memory while the corpus's CR, a 9000 × 9000 photograph and a 400-frame
//!   file are opened and diagnosed in the page, and of `bedside predict` natively (see the
//!   `memory_bench` module).
//! - `bench load` — a first visit on a slow link: navigation to the first diagnosis of a chest film,
//!   and the bytes the page downloads (see the `load_bench` module).
//! - `bench relay [--seconds N] [--connections N] [--size BYTES] [--database URL]` — a load test of the
//!   relay server on loopback (POST and GET of 100 KB shares), and a check that restarting it mid-run
//!   loses no acknowledged share (see the `relay_bench` module).
//!
//! `serve` and `test` first install what a fresh Debian machine lacks (the wasm32 target,
//! wasm-bindgen-cli at the version in Cargo.lock, Chromium and ChromeDriver, the npm packages of
//! `package-lock.json`).

mod bench;
mod conformance;
mod fixtures;
mod fuzz;
mod load_bench;
mod memory_bench;
mod relay;
mod relay_bench;
mod serve;
mod setup;
mod site;
mod web;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::Command;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, serve, test and benchmark Bedside")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Download the DICOM test corpus from the Python package registry into target/corpus
    /// (BEDSIDE_CORPUS overrides); idempotent.
    Corpus,
    /// Build the app for the browser (release, wasm32 with SIMD) into one folder: page, wasm,
    /// models, icons, web app manifest and the service worker that makes it work offline.
    Build {
        /// Where to write it (replaced whole); target/site by default.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The build's id, which names its offline cache; a digest of its files by default.
        #[arg(long)]
        build_id: Option<String>,
        /// Use the wasm in pkg/ as the last build left it instead of building it.
        #[arg(long)]
        reuse_wasm: bool,
    },
    /// Build the app (as `build` does, into target/site) and serve that folder.
    Serve {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Serve this already built folder as it is, without building.
        #[arg(long)]
        site: Option<PathBuf>,
    },
    /// Run every test: native, wasm-bindgen-test in headless Chromium, and the end-to-end tests in tests/.
    Test,
    /// Fuzz the decoding paths (cargo-fuzz, nightly) and report executions and crashes.
    Fuzz {
        /// One target (dicom, jpeg2000 or photo); every target if left out.
        #[arg(long)]
        target: Option<String>,
        /// How long to run each target, in seconds (the most, with `--runs`).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Stop each target after this many executions (libFuzzer's `-runs`), or at `--seconds`.
        #[arg(long)]
        runs: Option<u64>,
    },
    /// Time decoding the full-size CR (uncompressed, JPEG 2000) natively and in wasm against pydicom,
    /// then the lesion outline's cost, inference against onnxruntime, peak memory and a first visit;
    /// `bench memory`, `bench load` and `bench inference` measure one of them alone, `bench
    /// relay` load-tests the relay server instead.
    Bench {
        /// Timed runs per file and peer (the median is reported).
        #[arg(long, default_value_t = 10)]
        iterations: usize,
        #[command(subcommand)]
        what: Option<BenchOf>,
    },
}

#[derive(Subcommand)]
enum BenchOf {
    /// Peak memory while opening and diagnosing the corpus's 16-bit CR, a 9000 × 9000 photograph and
    /// a 400-frame file in the page (headless Chromium), and of `bedside predict` on the CR.
    Memory,
    /// A first visit on a slow link (40 ms, 10 Mbit/s, empty cache): navigation to the first
    /// diagnosis of a chest film in headless Chromium, and the bytes the page downloads.
    Load,
    /// Every shipped model's network natively (burn, and Bedside's own engine) against onnxruntime
    /// (PyPI), and the page's CPU path against onnxruntime-web in headless Chromium, one thread each,
    /// on the same exported weights (bench/inference.md, browser-inference.md and report.json).
    Inference {
        /// Timed runs per model and runtime (the median is reported).
        #[arg(long, default_value_t = 50)]
        iterations: usize,
    },
    /// Load-test the release relay on loopback (POST, GET, and POST across a SIGTERM and a SIGKILL
    /// restart) and check that every acknowledged share is still there, byte for byte.
    Relay {
        /// Length of each run, in seconds.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Concurrent keep-alive clients.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Size of each share, in bytes.
        #[arg(long, default_value_t = 100_000)]
        size: usize,
        /// PostgreSQL URL to run the relay against instead of SQLite (its shares table is written to).
        #[arg(long)]
        database: Option<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Corpus => {
            let dir = bedside_corpus::ensure()?;
            println!("corpus ready: {}", dir.display());
        }
        Task::Build { out, build_id, reuse_wasm } => {
            if !reuse_wasm {
                setup::wasm_toolchain()?;
                web::build()?;
            }
            build_site(out.as_deref(), build_id.as_deref())?;
        }
        Task::Serve { port, site } => {
            let dir = match site {
                Some(dir) if dir.join("index.html").is_file() => dir,
                Some(dir) => {
                    bail!("{} is not a built site (cargo xtask build --out DIR writes one)", dir.display())
                }
                None => {
                    setup::wasm_toolchain()?;
                    web::build()?;
                    build_site(None, None)?
                }
            };
            let server = serve::Server::start(dir, port)?;
            // Tests read the address from this line.
            println!("Bedside is at http://{} (Ctrl-C stops it)", server.addr());
            server.join();
        }
        Task::Test => test()?,
        Task::Fuzz { target, seconds, runs } => fuzz::fuzz(target.as_deref(), seconds, runs)?,
        Task::Bench { what: Some(BenchOf::Relay { seconds, connections, size, database }), .. } => {
            relay_bench::bench(&relay_bench::Options { seconds, connections, size, database })?
        }
        Task::Bench { what: Some(BenchOf::Memory), .. } => memory_bench::bench()?,
        Task::Bench { what: Some(BenchOf::Load), .. } => load_bench::bench()?,
        Task::Bench { what: Some(BenchOf::Inference { iterations }), .. } => {
            bench::inference_alone(iterations)?
        }
        Task::Bench { iterations, what: None } => bench::bench(iterations)?,
    }
    Ok(())
}

fn test() -> Result<()> {
    setup::wasm_toolchain()?;
    setup::browser()?;
    setup::npm_packages()?;
    setup::postgres()?;
    step("DICOM corpus");
    let corpus = bedside_corpus::ensure()?;

    step("native tests");
    run(cargo().arg("test"))?;

    step("wasm tests in headless Chromium");
    // The browser's conformance test embeds a corpus subset and the reference's record of it.
    let conformance = conformance::write(&target_dir().join("browser-conformance"))?;
    // The app's own profile: the test build then reuses the app build's burn, wgpu and codecs
    // instead of compiling them a second time, and tests the code as shipped (optimised).
    run(cargo()
        .args(["test", "--package", "bedside-web", "--target", "wasm32-unknown-unknown", "--tests"])
        .args(["--profile", web::PROFILE])
        // wasm-bindgen-test-runner reads webdriver.json (Chromium's flags) from the working directory.
        .current_dir(root().join("crates/web"))
        .env("CHROMEDRIVER", setup::CHROMEDRIVER)
        .env("BEDSIDE_BROWSER_CONFORMANCE", conformance))?;

    step("end-to-end tests in headless Chromium");
    web::build()?;
    // The page's diagnoses are compared with the CLI's on the same files.
    run(cargo().args(["build", "--package", "bedside-cli"]))?;
    let cli = target_dir().join("debug").join(format!("bedside{}", std::env::consts::EXE_SUFFIX));
    let data = shared_data();
    let fixtures = fixtures::write(&data, &target_dir().join("e2e-fixtures"))?;
    let site = build_site(None, None)?;
    let server = serve::Server::start(site.clone(), 0)?;
    // Sharing (tests/e2e/share.test.mjs) needs the relay's API beside the same site.
    step("starting the relay");
    let relay = relay::RelayProcess::for_tests(&site, &target_dir().join("e2e-relay").join("data"))?;
    run(Command::new("node")
        .args(["--test", "--test-concurrency=1", "tests/e2e/"])
        .current_dir(root())
        .env("BEDSIDE_URL", format!("http://{}", server.addr()))
        .env("BEDSIDE_RELAY_URL", relay.url())
        .env("BEDSIDE_CORPUS", corpus.canonicalize()?)
        .env("BEDSIDE_DATA", &data)
        .env("BEDSIDE_CLI", cli)
        .env("BEDSIDE_FIXTURES", fixtures)
        // The offline and update tests write and serve builds of their own with this binary (a
        // copy: another checkout sharing the target folder may rebuild the original meanwhile).
        .env("BEDSIDE_XTASK", xtask_copy()?))?;
    println!("\nall test suites passed");
    Ok(())
}

/// A copy of the running xtask binary in this checkout's `target/`.
fn xtask_copy() -> Result<PathBuf> {
    let dir = root().join("target");
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let copy = dir.join(format!("xtask-e2e{}", std::env::consts::EXE_SUFFIX));
    std::fs::copy(std::env::current_exe()?, &copy)
        .with_context(|| format!("could not write {}", copy.display()))?;
    Ok(copy)
}

/// Writes the site (`site::assemble`) from the current `pkg/` into `out` (default `target/site` of
/// this checkout, so checkouts sharing a target folder do not share a site) and returns the folder.
fn build_site(out: Option<&std::path::Path>, build_id: Option<&str>) -> Result<PathBuf> {
    step("writing the site");
    let out = out.map_or_else(|| root().join("target/site"), std::path::Path::to_path_buf);
    let site = site::assemble(&root(), &out, build_id)?;
    let (mb, sent) = (site.bytes as f64 / 1e6, site.sent_bytes as f64 / 1e6);
    println!(
        "build {} written to {}: {} files, {mb:.1} MB ({sent:.1} MB sent gzip-compressed)",
        site.build_id,
        site.dir.display(),
        site.files
    );
    Ok(site.dir)
}

/// The workspace root (read at run time: a build cache shared by checkouts at different paths may
/// hold an xtask built in another one).
fn root() -> PathBuf {
    bedside_corpus::workspace_root()
}

/// Cargo's target folder (`CARGO_TARGET_DIR` when set, as in CI).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), Into::into)
}

/// The shared data folder as the tests see it (`BEDSIDE_DATA`, default `../shared/data`), absolute.
fn shared_data() -> PathBuf {
    let dir = std::env::var_os("BEDSIDE_DATA").map_or_else(|| root().join("../shared/data"), PathBuf::from);
    dir.canonicalize().unwrap_or(dir)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn step(name: &str) {
    println!("\n==> {name}");
}

/// Runs a command with inherited output; fails with the command line if it fails.
fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its stdout, or `None` if it cannot start or fails.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
