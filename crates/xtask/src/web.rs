//! Builds the browser app: the `bedside-web` crate for wasm32 (SIMD on, see .cargo/config.toml),
//! then wasm-bindgen's ES-module glue into `pkg/`.

use crate::{cargo, root, run, step, target_dir};
use anyhow::Result;
use std::process::Command;

pub const PROFILE: &str = "wasm-release";

pub fn build() -> Result<()> {
    step("building the wasm app");
    run(cargo().args([
        "build",
        "--package",
        "bedside-web",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        PROFILE,
    ]))?;
    let wasm = target_dir().join("wasm32-unknown-unknown").join(PROFILE).join("bedside_web.wasm");
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(root().join("pkg"))
        .arg(wasm))
}
