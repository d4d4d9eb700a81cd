//! Decoding conformance as the browser runs it: a subset of the DICOM corpus — one or two small
//! files per transfer syntax, JPEG 2000 included — decoded by the Wasm build in headless Chromium
//! and compared with the reference decoder (pydicom) exactly as the native conformance test compares
//! every file (`reference_check`, the same source file).
//!
//! Chromium cannot read the corpus, so the files and the reference's record of them are embedded at
//! build time: `cargo xtask test` writes `fixtures.rs` (see crates/xtask/src/conformance.rs) and names
//! it in `BEDSIDE_BROWSER_CONFORMANCE`. Any other build (a plain `cargo test` for wasm32) gets
//! `conformance_absent.rs` from `.cargo/config.toml`'s default, and the test logs why it skips — or
//! fails, when the build ran with `BEDSIDE_REQUIRE_DATA=1` (as CI does).

#[path = "../../../imaging/tests/reference_check/mod.rs"]
mod reference_check;

use reference_check::{Entry, Outcome, compare, syntax_name};
use std::collections::BTreeMap;
use wasm_bindgen_test::*;

/// What `fixtures.rs` holds.
struct Fixtures {
    /// The reference run's entries for the subset, as a JSON array.
    reference: &'static str,
    /// Each corpus file the entries name and each `.npy` frame they name, with its bytes.
    files: &'static [(&'static str, &'static [u8])],
}

/// The embedded subset, or why there is none.
const FIXTURES: Result<Fixtures, &str> = include!(env!("BEDSIDE_BROWSER_CONFORMANCE"));

#[wasm_bindgen_test]
fn corpus_subset_matches_the_reference_decoder() {
    let fixtures = match FIXTURES {
        Ok(fixtures) => fixtures,
        Err(why) => {
            // A browser has no environment: the variable is read when the test is built.
            assert!(option_env!("BEDSIDE_REQUIRE_DATA") != Some("1"), "{why}, and BEDSIDE_REQUIRE_DATA=1");
            console_log!("skipped corpus_subset_matches_the_reference_decoder: {why}");
            return;
        }
    };
    let entries: Vec<Entry> =
        serde_json::from_str(fixtures.reference).expect("the subset's reference parses");
    let bytes = |name: &str| -> &'static [u8] {
        let found = fixtures.files.iter().find(|(file, _)| *file == name);
        found.unwrap_or_else(|| panic!("{name} is not embedded")).1
    };

    let mut by_syntax: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut failures = Vec::new();
    for entry in &entries {
        let outcome = compare(bytes(&entry.file), entry, |npy| bytes(npy).to_vec());
        let syntax = syntax_name(entry.transfer_syntax.as_deref());
        console_log!("{} [{syntax}]: {} {}", entry.file, outcome.label(), outcome.detail());
        *by_syntax.entry(syntax).or_default().entry(outcome.label()).or_default() += 1;
        // Both refusing is conformance too (12-bit JPEG); anything else the subset must decode.
        if !matches!(outcome, Outcome::Exact | Outcome::WithinTolerance { .. } | Outcome::ClearError(_)) {
            failures.push(format!("{}: {} {}", entry.file, outcome.label(), outcome.detail()));
        }
    }
    for (syntax, counts) in &by_syntax {
        let counts: Vec<String> = counts.iter().map(|(label, n)| format!("{n} {label}")).collect();
        console_log!("{syntax}: {}", counts.join(", "));
    }
    assert!(entries.len() >= 10, "the subset has {} files", entries.len());
    assert!(
        failures.is_empty(),
        "{} file(s) differ from the reference in the browser:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
