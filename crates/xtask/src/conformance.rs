//! Fixtures for the browser's conformance test (`crates/web/tests/browser/conformance.rs`): a few
//! small corpus files per transfer syntax (HTJ2K ones derived by the reference run) and the reference
//! decoder's record of each.
//!
//! The test runs in headless Chromium, where nothing can be read from disk, so everything reaches it
//! at build time: [`write`] puts `reference.json` (the reference run's entries for the subset) and
//! `fixtures.rs` (one expression that `include_str!`s that file and `include_bytes!`s each DICOM
//! file and each reference `.npy` frame where they lie) into a folder of the target directory, and
//! `cargo xtask test` names `fixtures.rs` in `BEDSIDE_BROWSER_CONFORMANCE` for the wasm test build.
//! The expected values are the reference's (pydicom, see `bedside_corpus::reference`), never ours.

use anyhow::{Context, Result, bail};
use bedside_corpus::reference;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The subset, by file name: the smallest files that cover every transfer syntax of the corpus,
/// one or two each (`write` fails when a syntax is missing), grey and colour, single and
/// multi-frame.
const SUBSET: &[&str] = &[
    "MR_small.dcm",                    // Explicit VR Little Endian
    "rtdose_1frame.dcm",               // Implicit VR Little Endian, 32-bit
    "MR_small_bigendian.dcm",          // Explicit VR Big Endian
    "SC_rgb_small_odd_big_endian.dcm", // Explicit VR Big Endian, RGB, odd length
    "image_dfl.dcm",                   // Deflated Explicit VR Little Endian
    "SC_rgb_small_odd_jpeg.dcm",       // JPEG Baseline, YBR_FULL, exact
    "SC_rgb_jpeg_dcmtk.dcm",           // JPEG Baseline, YBR_FULL, within tolerance
    "JPGExtended.dcm",                 // JPEG Extended (12-bit), within tolerance
    "SC_rgb_jpeg_gdcm.dcm",            // JPEG Lossless SV1, RGB
    "MR_small_jpeg_ls_lossless.dcm",   // JPEG-LS Lossless
    "JPEGLSNearLossless_08.dcm",       // JPEG-LS Near-Lossless, 8-bit
    "JPEGLSNearLossless_16.dcm",       // JPEG-LS Near-Lossless, 16-bit
    "SC_rgb_jls_lossy_line.dcm",       // JPEG-LS Near-Lossless, RGB, line interleaved
    "SC_rgb_jls_lossy_sample.dcm",     // JPEG-LS Near-Lossless, RGB, sample interleaved
    "MR_small_jp2klossless.dcm",       // JPEG 2000 Lossless
    "GDCMJ2K_TextGBR.dcm",             // JPEG 2000 Lossless, YBR_RCT
    "693_J2KI.dcm",                    // JPEG 2000 (lossy)
    "US1_J2KI.dcm",                    // JPEG 2000 (lossy), YBR_ICT
    "CT_small_htj2k.dcm",              // HTJ2K Lossless (derived by the reference run), signed
    "MR_small_htj2k_lossy.dcm",        // HTJ2K (lossy, derived by the reference run)
    "MR_small_RLE.dcm",                // RLE Lossless
    "SC_rgb_rle_16bit_2frame.dcm",     // RLE Lossless, RGB, two frames
];

/// Writes the fixtures into `dest` (made if missing) and returns the path of `fixtures.rs`.
pub fn write(dest: &Path) -> Result<PathBuf> {
    bedside_corpus::ensure()?;
    let run = reference::ensure()?.canonicalize()?;
    let json = std::fs::read_to_string(run.join("reference.json")).context("reading reference.json")?;
    let reference: Value = serde_json::from_str(&json).context("parsing reference.json")?;
    let entries = reference["files"].as_array().context("reference.json has no `files`")?;

    let mut chosen = Vec::new();
    for name in SUBSET {
        let entry = entries
            .iter()
            .find(|e| e["file"].as_str().is_some_and(|f| Path::new(f).file_name() == Some(name.as_ref())))
            .with_context(|| format!("{name} is not in the reference run"))?;
        chosen.push(entry.clone());
    }
    let syntaxes = |entries: &[Value]| -> BTreeSet<String> {
        // Files without file meta have none (an empty or absent UID).
        let uids = entries.iter().filter_map(|e| e["transfer_syntax"].as_str());
        uids.filter(|uid| !uid.is_empty()).map(str::to_string).collect()
    };
    let missing: Vec<String> = syntaxes(entries).difference(&syntaxes(&chosen)).cloned().collect();
    if !missing.is_empty() {
        bail!(
            "the browser conformance subset has no file of transfer syntax {}: add one to SUBSET",
            missing.join(", ")
        );
    }

    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let dest = dest.canonicalize()?;
    let subset = dest.join("reference.json");
    std::fs::write(&subset, serde_json::to_string_pretty(&chosen)?)?;
    let mut rs = String::from(
        "// Written by `cargo xtask test` (crates/xtask/src/conformance.rs) for\n\
         // crates/web/tests/browser/conformance.rs; regenerated on every run.\n",
    );
    let _ =
        writeln!(rs, "Ok(Fixtures {{\n    reference: include_str!({:?}),\n    files: &[", path_str(&subset)?);
    for entry in &chosen {
        let file = entry["file"].as_str().context("entry without a file")?;
        let _ = writeln!(
            rs,
            "        ({file:?}, include_bytes!({:?})),",
            path_str(&reference::path_of(&run, file).canonicalize()?)?
        );
        if let Some(npy) = entry["npy"].as_str() {
            let _ = writeln!(rs, "        ({npy:?}, include_bytes!({:?})),", path_str(&run.join(npy))?);
        }
    }
    rs.push_str("    ],\n})\n");
    let fixtures = dest.join("fixtures.rs");
    std::fs::write(&fixtures, rs)?;
    println!(
        "browser conformance: {} corpus files, {} transfer syntaxes",
        chosen.len(),
        syntaxes(&chosen).len()
    );
    Ok(fixtures)
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))
}
