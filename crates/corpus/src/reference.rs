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

/// The script, relative to the workspace root.
pub const SCRIPT: &str = "tests/reference/pydicom_reference.py";

const VENV_MARKER: &str = ".bedside-requirements";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Python 3 or its `venv`/`pip` modules are missing: the caller may skip rather than fail.
    #[error("the reference decoder needs Python 3 with venv and pip: {0}")]
    Unavailable(String),
    #[error("could not install the reference decoder's packages ({}): {stderr}", REQUIREMENTS.join(" "))]
    Install { stderr: String },
    #[error("the reference script {SCRIPT} failed: {stderr}")]
    Script { stderr: String },
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

/// The virtual environment's interpreter, creating the environment and installing [`REQUIREMENTS`]
/// on first use.
pub fn venv() -> Result<PathBuf, Error> {
    let dir = target_dir().join("reference-venv");
    let python = dir.join(if cfg!(windows) { "Scripts/python.exe" } else { "bin/python" });
    let marker = dir.join(VENV_MARKER);
    let wanted = REQUIREMENTS.join("\n");
    let ready = || fs::read_to_string(&marker).is_ok_and(|m| m == wanted) && python.is_file();
    if ready() {
        return Ok(python);
    }
    let parent = target_dir();
    fs::create_dir_all(&parent).map_err(io("could not create", &parent))?;
    // Tests run in parallel: one process installs, the others wait and then see the marker.
    let _lock = locked_file(&parent.join(".reference-venv.lock"))?;
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
        .args(REQUIREMENTS)
        .output()
        .map_err(|e| Error::Unavailable(format!("the new environment's python does not run: {e}")))?;
    if !installed.status.success() {
        return Err(Error::Install { stderr: stderr(&installed) });
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
