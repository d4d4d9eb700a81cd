//! Builds the browser app: two Wasm modules for wasm32 (SIMD on, see .cargo/config.toml), both over
//! the `bedside-web` library, each with wasm-bindgen's ES-module glue: `bedside-web-cpu` into `pkg/`
//! (the decoders, the CPU engine and sharing: what the page needs before its first diagnosis) and
//! `bedside-web-gpu` into `pkg/webgpu/` (the same exports with burn-wgpu and wgpu on top: most of the
//! bytes, fetched by the worker only when a model is to run on WebGPU). The modules leave without
//! their name section (a fifth of their bytes: function names for debuggers and profilers; panics
//! carry their own messages) unless `BEDSIDE_WASM_NAMES=1` asks to keep it, for profiling.

use crate::{cargo, root, run, step, target_dir};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
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
        // openjp2's C API comes out exported (its functions are `#[no_mangle]`), and an export keeps
        // code alive: its encoder among it. wasm-bindgen removes what nothing reaches once they go.
        let wasm = without_exports(&wasm, "opj_")?;
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

/// A copy of the module at `wasm` (beside it, `.trimmed.wasm`) without the exports whose names start
/// with `prefix`: the export section rewritten, every other byte as it was.
fn without_exports(wasm: &Path, prefix: &str) -> Result<PathBuf> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let trimmed =
        drop_exports(&bytes, prefix).with_context(|| format!("{} is not a module", wasm.display()))?;
    let out = wasm.with_extension("trimmed.wasm");
    std::fs::write(&out, trimmed).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// An unsigned LEB128 number at `bytes[*at..]`, `at` moved past it.
fn leb(bytes: &[u8], at: &mut usize) -> Result<u32> {
    let mut value = 0u64;
    for shift in (0..35).step_by(7) {
        let Some(&byte) = bytes.get(*at) else { bail!("truncated number at byte {at}") };
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return u32::try_from(value).context("number too large");
        }
    }
    bail!("number too long at byte {at}")
}

fn push_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn drop_exports(bytes: &[u8], prefix: &str) -> Result<Vec<u8>> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!("no Wasm header");
    }
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let size = leb(bytes, &mut at)? as usize;
        let Some(body) = bytes.get(at..at + size) else { bail!("section {id} runs past the end") };
        at += size;
        if id != 7 {
            out.push(id);
            push_leb(&mut out, size as u32);
            out.extend_from_slice(body);
            continue;
        }
        // The export section: a count, then (name, kind byte, index) entries.
        let (mut i, mut kept, mut entries) = (0, 0u32, Vec::new());
        for _ in 0..leb(body, &mut i)? {
            let start = i;
            let len = leb(body, &mut i)? as usize;
            let Some(name) = body.get(i..i + len) else { bail!("an export name runs past its section") };
            i += len + 1;
            leb(body, &mut i)?;
            if !name.starts_with(prefix.as_bytes()) {
                entries.extend_from_slice(&body[start..i]);
                kept += 1;
            }
        }
        let mut section = Vec::new();
        push_leb(&mut section, kept);
        section.extend_from_slice(&entries);
        out.push(7);
        push_leb(&mut out, section.len() as u32);
        out.extend_from_slice(&section);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module of three exported functions (names `f`, `opj_a`, `g`), by hand.
    fn module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend([1, 4, 1, 0x60, 0, 0]); // types: () -> ()
        m.extend([3, 4, 3, 0, 0, 0]); // three functions of type 0
        let exports: &[u8] = &[3, 1, b'f', 0, 0, 5, b'o', b'p', b'j', b'_', b'a', 0, 1, 1, b'g', 0, 2];
        m.extend([7, exports.len() as u8]);
        m.extend(exports);
        m.extend([10, 10, 3, 2, 0, 0x0b, 2, 0, 0x0b, 2, 0, 0x0b]); // three empty bodies
        m
    }

    #[test]
    fn exports_with_the_prefix_go_and_everything_else_stays() {
        let m = module();
        let trimmed = drop_exports(&m, "opj_").unwrap();
        let exports: &[u8] = &[2, 1, b'f', 0, 0, 1, b'g', 0, 2];
        let at = m.windows(2).position(|w| w == [7, 17]).unwrap();
        let mut expected = m[..at].to_vec();
        expected.extend([7, exports.len() as u8]);
        expected.extend(exports);
        expected.extend(&m[at + 19..]);
        assert_eq!(trimmed, expected);
        assert_eq!(drop_exports(&m, "zzz").unwrap(), m, "nothing to drop: the same bytes");
        assert!(drop_exports(&m[..m.len() - 3], "opj_").is_err(), "a truncated module is an error");
        assert!(drop_exports(b"not wasm", "opj_").is_err());
    }
}
