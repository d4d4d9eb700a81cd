//! The reference decode of the corpus: `tests/reference/pydicom_reference.py` run with pydicom and the
//! pylibjpeg codecs at pinned versions, for the imaging crate's conformance test.
//!
//! [`ensure`] creates a virtual environment once (`reference-venv/` in Cargo's target directory, with
//! a marker naming what was installed), installs [`REQUIREMENTS`] from the Python package registry,
//! and runs the script over the corpus into `reference/<key>/` — `reference.json` plus a `.npy` first
//! frame per lossy file, and `derived/`: a few corpus files re-encoded as HTJ2K, which the corpus
//! lacks, with their own entries keyed `derived/<name>` (see [`path_of`]). The key hashes the script,
//! the requirements and every corpus file, so a change to any of them makes a new run and an
//! unchanged corpus is decoded once. Nothing it writes is committed.
//!
//! The other reference Bedside is held to, for inference: [`onnxruntime`] runs an exported model in
//! onnxruntime from PyPI ([`ONNXRUNTIME`], in its own `onnxruntime-venv/`), for the ONNX export's
//! parity test and the inference bench.

use crate::{io, target_dir, workspace_root};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What the reference decoder runs on, each pinned to one version.
pub const REQUIREMENTS: [&str; 7] = [
    "pydicom==3.0.2",
    "pylibjpeg==2.1.0",
    "pylibjpeg-libjpeg==2.5.0",
    "pylibjpeg-openjpeg==2.6.0",
    "pylibjpeg-rle==2.2.0",
    "numpy==2.4.6",
    // Encodes the derived HTJ2K files (OpenJPH): the corpus has none.
    "imagecodecs==2026.3.6",
];

/// onnxruntime, the peer inference runtime: the ONNX export is checked against it, and the bench
/// times Bedside's engine beside it (its dependencies pinned too, so the environment is reproducible).
pub const ONNXRUNTIME: [&str; 5] =
    ["onnxruntime==1.31.1", "numpy==2.4.6", "flatbuffers==25.12.19", "packaging==26.4", "protobuf==7.36.2"];

/// Runs an ONNX model in onnxruntime on raw f32 inputs, relative to the workspace root.
pub const ONNX_SCRIPT: &str = "tests/reference/onnxruntime_run.py";

/// The script, relative to the workspace root.
pub const SCRIPT: &str = "tests/reference/pydicom_reference.py";

const VENV_MARKER: &str = ".bedside-requirements";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Python 3 or its `venv`/`pip` modules are missing: the caller may skip rather than fail.
    #[error("the reference decoder needs Python 3 with venv and pip: {0}")]
    Unavailable(String),
    #[error("could not install the Python packages {packages}: {stderr}")]
    Install { packages: String, stderr: String },
    #[error("the reference script {SCRIPT} failed: {stderr}")]
    Script { stderr: String },
    #[error("onnxruntime ({ONNX_SCRIPT}) failed: {stderr}")]
    Onnxruntime { stderr: String },
    #[error(transparent)]
    Corpus(#[from] crate::Error),
}

/// The folder holding `reference.json` (and the `.npy` frames) for the current corpus and script,
/// running the reference decoder if it has not run on them yet.
pub fn ensure() -> Result<PathBuf, Error> {
    let corpus = crate::ensure()?;
    run(&corpus, &target_dir().join("reference"))
}

/// The reference run over the interop corpus ([`crate::ensure_interop`]); its entries' files lie
/// in [`crate::interop_dir`].
pub fn ensure_interop() -> Result<PathBuf, Error> {
    crate::ensure_interop()?;
    run(&crate::interop_dir(), &target_dir().join("reference-interop"))
}

/// The script run over `corpus` into `runs/<key>/`, once per key.
fn run(corpus: &Path, runs: &Path) -> Result<PathBuf, Error> {
    let script = workspace_root().join(SCRIPT);
    let out = runs.join(cache_key(corpus, &script)?);
    if out.join("reference.json").is_file() {
        return Ok(out);
    }
    let python = venv()?;
    fs::create_dir_all(&out).map_err(io("could not create", &out))?;
    let lock = locked_file(&out.join(".lock"))?;
    if out.join("reference.json").is_file() {
        return Ok(out);
    }
    let output = Command::new(&python)
        .arg(&script)
        .arg(corpus)
        .arg(&out)
        .output()
        .map_err(|e| Error::Script { stderr: e.to_string() })?;
    if !output.status.success() {
        return Err(Error::Script { stderr: stderr(&output) });
    }
    drop(lock);
    Ok(out)
}

/// Where the file of a `reference.json` entry lies: `derived/…` in the reference run's folder `run`,
/// anything else in the corpus.
pub fn path_of(run: &Path, file: &str) -> PathBuf {
    if file.starts_with("derived/") { run.join(file) } else { crate::dir().join(file) }
}

/// The reference decoder's virtual environment: its interpreter, creating the environment and
/// installing [`REQUIREMENTS`] on first use.
pub fn venv() -> Result<PathBuf, Error> {
    venv_for("reference-venv", &REQUIREMENTS)
}

/// The interpreter of the virtual environment `name` under the target dir, created with
/// `requirements` (pinned PyPI packages, wheels only) on first use and again whenever they change.
pub fn venv_for(name: &str, requirements: &[&str]) -> Result<PathBuf, Error> {
    let dir = target_dir().join(name);
    let python = dir.join(if cfg!(windows) { "Scripts/python.exe" } else { "bin/python" });
    let marker = dir.join(VENV_MARKER);
    let wanted = requirements.join("\n");
    let ready = || fs::read_to_string(&marker).is_ok_and(|m| m == wanted) && python.is_file();
    if ready() {
        return Ok(python);
    }
    let parent = target_dir();
    fs::create_dir_all(&parent).map_err(io("could not create", &parent))?;
    // Tests run in parallel: one process installs, the others wait and then see the marker.
    let _lock = locked_file(&parent.join(format!(".{name}.lock")))?;
    if ready() {
        return Ok(python);
    }
    let created = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .output()
        .map_err(|e| Error::Unavailable(format!("python3 does not run: {e}")))?;
    if !created.status.success() {
        return Err(Error::Unavailable(format!("`python3 -m venv` failed: {}", stderr(&created))));
    }
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:"])
        .args(requirements)
        .output()
        .map_err(|e| Error::Unavailable(format!("the new environment's python does not run: {e}")))?;
    if !installed.status.success() {
        return Err(Error::Install { packages: requirements.join(" "), stderr: stderr(&installed) });
    }
    fs::write(&marker, wanted).map_err(io("could not write", &marker))?;
    Ok(python)
}

/// First 16 hex digits of SHA-256 over the script, the requirements and every corpus file (its path
/// in the corpus and its bytes).
fn cache_key(corpus: &Path, script: &Path) -> Result<String, Error> {
    let mut hash = Sha256::new();
    hash.update(fs::read(script).map_err(io("could not read", script))?);
    hash.update(REQUIREMENTS.join("\n"));
    for file in crate::dcm_files(corpus) {
        let relative = file.strip_prefix(corpus).unwrap_or(&file);
        hash.update(relative.to_string_lossy().as_bytes());
        hash.update(fs::read(&file).map_err(io("could not read", &file))?);
    }
    Ok(hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect())
}

fn locked_file(path: &Path) -> Result<File, Error> {
    let file = File::create(path).map_err(io("could not create", path))?;
    file.lock().map_err(io("could not lock", path))?;
    Ok(file)
}

/// The last lines of a failed command's stderr, on one line.
fn stderr(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// One onnxruntime run: every output (name, shape, values) and, when timed, the median and fastest
/// run in milliseconds.
#[derive(Debug, Clone)]
pub struct OnnxRun {
    pub outputs: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub timing_ms: Option<(f64, f64)>,
}

/// Runs `model` in onnxruntime ([`ONNXRUNTIME`], CPU, one thread) on `input` of `shape`
/// (`[n, c, h, w]`), working in `work` (created); with `timed_runs` > 0 it also times that many
/// runs after two warm-up runs.
pub fn onnxruntime(
    model: &Path,
    input: &[f32],
    shape: [usize; 4],
    work: &Path,
    timed_runs: usize,
) -> Result<OnnxRun, Error> {
    let python = venv_for("onnxruntime-venv", &ONNXRUNTIME)?;
    fs::create_dir_all(work).map_err(io("could not create", work))?;
    let raw = work.join("input.f32");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(&raw, bytes).map_err(io("could not write", &raw))?;
    let out = work.join("out");
    let mut command = Command::new(&python);
    command.arg(workspace_root().join(ONNX_SCRIPT)).arg(model).arg(&raw);
    command.args(shape.map(|d| d.to_string())).arg(&out);
    if timed_runs > 0 {
        command.args(["--time", &timed_runs.to_string()]);
    }
    let ran = command.output().map_err(|e| Error::Unavailable(format!("python does not run: {e}")))?;
    if !ran.status.success() {
        return Err(Error::Onnxruntime { stderr: stderr(&ran) });
    }
    let listing = out.join("outputs.txt");
    let text = fs::read_to_string(&listing).map_err(io("could not read", &listing))?;
    let mut outputs = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let dims: Vec<usize> = words.filter_map(|w| w.parse().ok()).collect();
        let path = out.join(format!("{name}.f32"));
        let bytes = fs::read(&path).map_err(io("could not read", &path))?;
        let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        outputs.push((name.to_string(), dims, values));
    }
    let timing_ms = if timed_runs > 0 {
        let path = out.join("timing.txt");
        let text = fs::read_to_string(&path).map_err(io("could not read", &path))?;
        let numbers: Vec<f64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        numbers.get(..2).map(|n| (n[0], n[1]))
    } else {
        None
    };
    Ok(OnnxRun { outputs, timing_ms })
}
