//! Builds the browser app: the `bedside-web` crate for wasm32 (SIMD on, see .cargo/config.toml),
//! then wasm-bindgen's ES-module glue into `pkg/`. The module leaves without its name section (a
//! fifth of its bytes: function names for debuggers and profilers; panics carry their own messages)
//! unless `BEDSIDE_WASM_NAMES=1` asks to keep it, for profiling.

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
    let mut bindgen = Command::new("wasm-bindgen");
    bindgen.args(["--target", "web", "--no-typescript", "--remove-producers-section"]);
    if std::env::var_os("BEDSIDE_WASM_NAMES").is_none_or(|v| v != "1") {
        bindgen.arg("--remove-name-section");
    }
    run(bindgen.arg("--out-dir").arg(root().join("pkg")).arg(wasm))
}
