//! Installs what a fresh Debian machine lacks, and nothing that is already there.

use crate::{cargo, output, root, run, step};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The wasm32 target and wasm-bindgen-cli at exactly the version of the library in Cargo.lock.
pub fn wasm_toolchain() -> Result<()> {
    let targets = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !targets.lines().any(|t| t.trim() == WASM_TARGET) {
        step("installing the wasm32 target");
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    let version = locked_version("wasm-bindgen")?;
    let installed = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if installed.split_whitespace().nth(1) != Some(version.as_str()) {
        step(&format!("installing wasm-bindgen-cli {version} (a few minutes, once)"));
        // No --locked: a yanked dependency in the CLI's own lock file would make it fail.
        run(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))?;
    }
    Ok(())
}

/// Debian's Chromium and ChromeDriver (the browser tests run them headless).
pub fn browser() -> Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    step("installing chromium and chromium-driver from Debian");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd).context("apt-get failed: run as root, or install chromium and chromium-driver yourself")
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "chromium", "chromium-driver"])
}

/// Debian's PostgreSQL server (the relay's scale-out test starts a throwaway cluster with its
/// `initdb` and `pg_ctl`, found under /usr/lib/postgresql/<version>/bin).
pub fn postgres() -> Result<()> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| versions.flatten().any(|v| v.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    step("installing postgresql from Debian");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd).context("apt-get failed: run as root, or install postgresql yourself")
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "postgresql"])
}

/// The npm packages of package-lock.json (Playwright's driver for the end-to-end tests).
pub fn npm_packages() -> Result<()> {
    let root = root();
    let installed = root.join("node_modules/.package-lock.json");
    let lock = root.join("package-lock.json");
    let stale = match (installed.metadata(), lock.metadata()) {
        (Ok(i), Ok(l)) => l.modified()? > i.modified()?,
        _ => true,
    };
    if stale {
        step("installing npm packages from package-lock.json");
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&root))?;
    }
    Ok(())
}

/// onnxruntime-web, the browser inference bench's peer, from `tests/bench/onnxruntime-web`'s lock
/// file (installed there on first use, only by the bench); returns its `dist` folder.
pub fn onnxruntime_web() -> Result<PathBuf> {
    let dir = root().join("tests/bench/onnxruntime-web");
    let dist = dir.join("node_modules/onnxruntime-web/dist");
    if !dist.join("ort.wasm.min.mjs").is_file() {
        step("installing onnxruntime-web from tests/bench/onnxruntime-web/package-lock.json");
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
    }
    Ok(dist)
}

/// The version of `package` recorded in Cargo.lock.
fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("could not read Cargo.lock")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let Some(start) = lock.find(&needle).map(|i| i + needle.len()) else {
        bail!("{package} is not in Cargo.lock");
    };
    Ok(lock[start..].split('"').next().unwrap_or_default().to_string())
}
