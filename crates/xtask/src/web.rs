//! Builds the browser app: two Wasm modules for wasm32 (SIMD on, see .cargo/config.toml), both over
//! the `bedside-web` library, each with wasm-bindgen's ES-module glue: `bedside-web-cpu` into `pkg/`
//! (the decoders, the CPU engine and sharing: what the page needs before its first diagnosis) and
//! `bedside-web-gpu` into `pkg/webgpu/` (the same exports with burn-wgpu and wgpu on top: most of the
//! bytes, fetched by the worker only when a model is to run on WebGPU). The modules leave without
//! their name section (a fifth of their bytes: function names for debuggers and profilers; panics
//! carry their own messages) unless `BEDSIDE_WASM_NAMES=1` asks to keep it, for profiling.

use crate::{cargo, root, run, step, target_dir};
use anyhow::Result;
use std::process::Command;

pub const PROFILE: &str = "wasm-release";

/// The two modules: the folder under the repository root each is written to, and its package.
pub const BUILDS: [(&str, &str); 2] = [("pkg", "bedside-web-cpu"), ("pkg/webgpu", "bedside-web-gpu")];

pub fn build() -> Result<()> {
    for (out, package) in BUILDS {
        step(&format!("building the wasm app: {package} into {out}/"));
        run(cargo().args([
            "build",
            "--package",
            package,
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            PROFILE,
        ]))?;
        let wasm = target_dir()
            .join("wasm32-unknown-unknown")
            .join(PROFILE)
            .join(format!("{}.wasm", package.replace('-', "_")));
        let mut bindgen = Command::new("wasm-bindgen");
        // Both keep the same names (`bedside_web.js`), each in its folder.
        bindgen.args(["--target", "web", "--no-typescript", "--remove-producers-section"]);
        bindgen.args(["--out-name", "bedside_web"]);
        if std::env::var_os("BEDSIDE_WASM_NAMES").is_none_or(|v| v != "1") {
            bindgen.arg("--remove-name-section");
        }
        run(bindgen.arg("--out-dir").arg(root().join(out)).arg(wasm))?;
    }
    Ok(())
}
