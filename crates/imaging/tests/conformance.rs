//! Conformance with a reference decoder: every corpus file decoded here, through the library API the
//! CLI's `decode --raw-md5` uses, against pydicom 3.0.2 with the pylibjpeg codecs (see
//! `bedside_corpus::reference`). Where the reference decodes a file, Bedside must give the same dtype
//! and shape, the same MD5 for lossless transfer syntaxes and values within tolerance for lossy ones —
//! or the file must be listed in [`KNOWN_GAPS`]. The outcome is written to `crates/imaging/CONFORMANCE.md`.
//! The comparison of one file is `reference_check`'s, shared with the browser's conformance test
//! (`crates/web/tests/browser/conformance.rs`), which runs it in Wasm on a subset of the corpus.

mod reference_check;

use bedside_corpus::reference;
use bedside_imaging::{Limits, Study};
use reference_check::{Entry, Outcome, compare, syntax_name};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Files the reference decodes and Bedside does not yet, by file name, with what is missing. A file
/// that starts to match fails the test until it is taken off this list.
const KNOWN_GAPS: &[(&str, &str)] = &[
    // None at present. The last were the 4:2:2 baseline JPEG files, whose RGB differed by up to 5
    // while `jpeg-decoder` decoded them; `jpeg_dct` follows libjpeg's IDCT and chroma upsampling.
];

#[derive(Deserialize)]
struct ReferenceRun {
    files: Vec<Entry>,
}

#[test]
fn corpus_matches_the_reference_decoder() {
    let Some(dir) = reference_or_skip() else { return };
    let json = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json is readable");
    let run: ReferenceRun = serde_json::from_str(&json).expect("reference.json parses");
    let by_file: BTreeMap<&str, &Entry> = run.files.iter().map(|e| (e.file.as_str(), e)).collect();
    let corpus = bedside_corpus::dir();
    let mut keys: Vec<String> = bedside_corpus::files()
        .expect("the corpus is there")
        .iter()
        .map(|path| path.strip_prefix(&corpus).unwrap_or(path).to_string_lossy().replace('\\', "/"))
        .collect();
    // The corpus has no HTJ2K file: the reference run re-encodes a few as HTJ2K (`derived/…`).
    let derived = run.files.iter().filter(|e| e.file.starts_with("derived/")).map(|e| e.file.clone());
    keys.extend(derived);
    assert_eq!(run.files.len(), keys.len(), "the reference covers every corpus file");
    let htj2k = run
        .files
        .iter()
        .filter(|e| e.transfer_syntax.as_deref().is_some_and(|ts| ts.starts_with("1.2.840.10008.1.2.4.20")));
    assert!(htj2k.count() >= 2, "the reference run derives HTJ2K files (lossless and lossy)");

    let mut rows = Vec::new();
    for key in &keys {
        let path = reference::path_of(&dir, key);
        let entry = *by_file.get(key.as_str()).unwrap_or_else(|| panic!("{key} has no reference entry"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("corpus file is readable");
        let npy = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let mut outcome = compare(&bytes, entry, npy);
        let gap = KNOWN_GAPS.iter().find(|(gap, _)| *gap == name).map(|(_, reason)| *reason);
        outcome = match (gap, outcome) {
            (Some(reason), Outcome::Mismatch(error)) => Outcome::KnownGap { reason, error },
            (Some(_), Outcome::Exact | Outcome::WithinTolerance { .. }) => Outcome::Mismatch(
                "listed as a known gap but now matches the reference: take it off KNOWN_GAPS".into(),
            ),
            (_, outcome) => outcome,
        };
        rows.push((name, entry, outcome));
    }
    for (gap, _) in KNOWN_GAPS {
        assert!(rows.iter().any(|(name, ..)| name == gap), "KNOWN_GAPS names {gap}, not in the corpus");
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut gaps: BTreeMap<String, usize> = BTreeMap::new();
    for (_, entry, outcome) in &rows {
        *counts.entry(outcome.label()).or_default() += 1;
        if let Outcome::KnownGap { reason, .. } = outcome {
            let syntax = syntax_name(entry.transfer_syntax.as_deref());
            *gaps.entry(format!("{reason} [{syntax}]")).or_default() += 1;
        }
    }
    let summary = counts.iter().map(|(label, n)| format!("{n} {label}")).collect::<Vec<_>>().join(", ");
    let decoded_by_reference = rows.iter().filter(|(_, e, _)| e.error.is_none()).count();
    println!("{} corpus files ({decoded_by_reference} decoded by the reference): {summary}", rows.len());
    for (gap, n) in &gaps {
        println!("  known gap: {n} × {gap}");
    }
    write_table(&rows, &summary, decoded_by_reference);

    let failures: Vec<String> = rows
        .iter()
        .filter(|(.., outcome)| matches!(outcome, Outcome::Mismatch(_)))
        .map(|(name, _, outcome)| format!("{name}: {}", outcome.detail()))
        .collect();
    assert!(
        failures.is_empty(),
        "{} file(s) differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Files from other toolkits' test suites (the interop corpus: nibabel's and pynetdicom's, see
/// `bedside_corpus::INTEROP_WHEELS`): every file the reference decodes is decoded here to the same
/// values, and every other file gets a clear error or decodes.
#[test]
fn interop_corpus_matches_the_reference_decoder() {
    let run = match reference::ensure_interop() {
        Ok(run) => run,
        Err(reference::Error::Unavailable(why))
            if std::env::var("BEDSIDE_REQUIRE_DATA").as_deref() != Ok("1") =>
        {
            eprintln!("skipped interop_corpus_matches_the_reference_decoder: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let json = std::fs::read_to_string(run.join("reference.json")).expect("reference.json is readable");
    let run_files: ReferenceRun = serde_json::from_str(&json).expect("reference.json parses");
    let corpus = bedside_corpus::interop_dir();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for entry in &run_files.files {
        let bytes = std::fs::read(corpus.join(&entry.file)).expect("interop file is readable");
        let npy = |name: &str| std::fs::read(run.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = compare(&bytes, entry, npy);
        println!("{}: {}", entry.file, outcome.label());
        *counts.entry(outcome.label()).or_default() += 1;
        if let Outcome::Mismatch(_) = outcome {
            failures.push(format!("{}: {}", entry.file, outcome.detail()));
        }
    }
    let decoded_by_reference = run_files.files.iter().filter(|e| e.error.is_none()).count();
    println!(
        "{} interop files ({decoded_by_reference} decoded by the reference): {counts:?}",
        run_files.files.len()
    );
    assert!(decoded_by_reference >= 8, "the interop corpus has files the reference decodes: {counts:?}");
    assert!(
        failures.is_empty(),
        "{} interop file(s) differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The reference run's folder, or `None` after saying why the test is skipped.
fn reference_or_skip() -> Option<PathBuf> {
    match reference::ensure() {
        Ok(dir) => Some(dir),
        Err(reference::Error::Unavailable(why)) => {
            if std::env::var("BEDSIDE_REQUIRE_DATA").is_ok_and(|v| v == "1") {
                panic!("{why}, and BEDSIDE_REQUIRE_DATA=1");
            }
            eprintln!("skipped corpus_matches_the_reference_decoder: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Writes `crates/imaging/CONFORMANCE.md`; under `CI=true` it must already be current.
fn write_table(rows: &[(String, &Entry, Outcome)], summary: &str, decoded_by_reference: usize) {
    let mut md = String::from(
        "# DICOM decoding conformance\n\n\
         Generated by `cargo test -p bedside-imaging --test conformance`; do not edit. Each file of the test\n\
         corpus is decoded by Bedside and by the reference (pydicom 3.0.2 with pylibjpeg, versions pinned in\n\
         `bedside_corpus::reference`) and the raw pixel arrays compared. The corpus has no HTJ2K file: the\n\
         reference run re-encodes four of its files as HTJ2K with OpenJPH (`*_htj2k*.dcm`, pinned imagecodecs).\n\
         *Exact* is the same dtype, shape and MD5 of every frame; *within tolerance* is the same dtype and\n\
         shape with the first frame within 2 levels at 8 bits (scaled with the bit depth) for lossy transfer\n\
         syntaxes; *clear error* is a file both refuse, with Bedside's message; a *known gap* is a file the\n\
         reference decodes and Bedside does not yet.\n\n",
    );
    let _ =
        writeln!(md, "{} files, {decoded_by_reference} decoded by the reference: {summary}.\n", rows.len());
    md.push_str("| File | Transfer syntax | Photometric | Result | Detail |\n|---|---|---|---|---|\n");
    for (name, entry, outcome) in rows {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(name),
            cell(&syntax_name(entry.transfer_syntax.as_deref())),
            cell(entry.photometric.as_deref().unwrap_or("")),
            outcome.label(),
            cell(&outcome.detail()),
        );
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("CONFORMANCE.md");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == md,
            "{} is out of date: run `cargo test -p bedside-imaging --test conformance` and commit it",
            path.display()
        );
    } else {
        std::fs::write(&path, md).unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
    }
}

/// The two files the reference refuses and Bedside decodes: each must give the pixels of its intact
/// sibling, not merely something.
#[test]
fn files_the_reference_refuses_decode_to_their_siblings_pixels() {
    let digest = |name: &str| {
        let bytes = std::fs::read(bedside_corpus::find(name).unwrap()).unwrap();
        Study::open(&bytes, &Limits::default()).and_then(|s| s.raw_digest(0)).unwrap()
    };
    // Ends before the pixel data's sequence delimiter (pydicom drops the element).
    let short = digest("emri_small_jpeg_2k_lossless_too_short.dcm");
    assert_eq!(short, digest("emri_small.dcm"));
    // An IS value of "1A" that pydicom will not parse, in an attribute the pixels do not need.
    let bad_vr = digest("badVR.dcm");
    assert_eq!(bad_vr, digest("rtdose_1frame.dcm"));
    // A 12-bit JPEG whose scan header says spectral selection 0..0, which a sequential scan ignores
    // (libjpeg warns); pydicom's plugins refuse it. Its pixels are JPGExtended.dcm's.
    assert_eq!(digest("JPEG-lossy.dcm"), digest("JPGExtended.dcm"));
}
