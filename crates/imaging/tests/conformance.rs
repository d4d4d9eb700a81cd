//! Conformance with a reference decoder: every corpus file decoded here, through the library API the
//! CLI's `decode --raw-md5` uses, against pydicom 3.0.2 with the pylibjpeg codecs (see
//! `bedside_corpus::reference`). Where the reference decodes a file, Bedside must give the same dtype
//! and shape, the same MD5 for lossless transfer syntaxes and values within tolerance for lossy ones —
//! or the file must be listed in [`KNOWN_GAPS`]. The outcome is written to `crates/imaging/CONFORMANCE.md`.

use bedside_corpus::reference;
use bedside_imaging::{Limits, Study};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Files the reference decodes and Bedside does not yet, by file name, with what is missing. A file
/// that starts to match fails the test until it is taken off this list.
const KNOWN_GAPS: &[(&str, &str)] = &[
    // JPEG-LS colour: pure_jpegls decodes single-component streams only, and these are three
    // components interleaved by line and by sample.
    ("SC_rgb_jls_lossy_line.dcm", "colour JPEG-LS not supported yet"),
    ("SC_rgb_jls_lossy_sample.dcm", "colour JPEG-LS not supported yet"),
    // jpeg-decoder refuses 12-bit lossy (DCT) JPEG.
    ("JPGExtended.dcm", "12-bit JPEG extended not supported yet"),
    // 4:2:2 baseline JPEG converted to RGB: jpeg-decoder's YCbCr is within 1 of libjpeg's (IDCT and
    // chroma upsampling round differently; within 3 on 4 samples of the cine loop), and the colour
    // conversion multiplies a chroma difference by up to 1.772, so a few RGB samples differ by 3–5.
    ("examples_ybr_color.dcm", "YCbCr within 1 of libjpeg's, RGB within 3"),
    ("color3d_jpeg_baseline.dcm", "YCbCr within 3 of libjpeg's, RGB within 5"),
];

/// Largest difference from the reference allowed for a lossy frame: 2 at 8 bits, scaled with the
/// stored bit depth above that (decoders of lossy streams may round differently).
fn tolerance(bits_stored: u16) -> i64 {
    2 << bits_stored.saturating_sub(8).min(24)
}

#[derive(Deserialize)]
struct ReferenceRun {
    files: Vec<Entry>,
}

/// One file as the reference script reports it.
#[derive(Deserialize)]
struct Entry {
    file: String,
    transfer_syntax: Option<String>,
    photometric: Option<String>,
    #[serde(default)]
    lossy: bool,
    shape: Option<Vec<u32>>,
    dtype: Option<String>,
    md5_first: Option<String>,
    md5_all: Option<String>,
    npy: Option<String>,
    error: Option<String>,
}

enum Outcome {
    Exact,
    WithinTolerance {
        max_diff: i64,
    },
    /// Both decoders refuse the file; Bedside's one-line reason.
    ClearError(String),
    /// The reference refuses the file and Bedside decodes it.
    DecodedWhereReferenceRefuses,
    KnownGap {
        reason: &'static str,
        error: String,
    },
    /// What differs; fails the test.
    Mismatch(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Exact => "exact",
            Outcome::WithinTolerance { .. } => "within tolerance",
            Outcome::ClearError(_) => "clear error",
            Outcome::DecodedWhereReferenceRefuses => "decoded (reference refuses)",
            Outcome::KnownGap { .. } => "known gap",
            Outcome::Mismatch(_) => "MISMATCH",
        }
    }

    fn detail(&self) -> String {
        match self {
            Outcome::Exact | Outcome::DecodedWhereReferenceRefuses => String::new(),
            Outcome::WithinTolerance { max_diff } => format!("max abs difference {max_diff}"),
            Outcome::ClearError(message) => message.clone(),
            Outcome::KnownGap { reason, error } => format!("{reason} ({error})"),
            Outcome::Mismatch(detail) => detail.clone(),
        }
    }
}

#[test]
fn corpus_matches_the_reference_decoder() {
    let Some(dir) = reference_or_skip() else { return };
    let json = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json is readable");
    let run: ReferenceRun = serde_json::from_str(&json).expect("reference.json parses");
    let by_file: BTreeMap<&str, &Entry> = run.files.iter().map(|e| (e.file.as_str(), e)).collect();
    let corpus = bedside_corpus::dir();
    let files = bedside_corpus::files().expect("the corpus is there");
    assert_eq!(run.files.len(), files.len(), "the reference covers every corpus file");

    let mut rows = Vec::new();
    for path in &files {
        let key = path.strip_prefix(&corpus).unwrap_or(path).to_string_lossy().replace('\\', "/");
        let entry = *by_file.get(key.as_str()).unwrap_or_else(|| panic!("{key} has no reference entry"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut outcome = compare(path, entry, &dir);
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

fn compare(path: &Path, entry: &Entry, dir: &Path) -> Outcome {
    let bytes = std::fs::read(path).expect("corpus file is readable");
    let decoded = Study::open(&bytes, &Limits::default()).and_then(|study| {
        let digest = study.raw_digest(0)?;
        let first = if entry.lossy { Some(study.raw_frame(0)?) } else { None };
        Ok((digest, first, study.info().bits_stored))
    });
    let (digest, first, bits_stored) = match (decoded, &entry.error) {
        (Err(e), Some(_)) => return Outcome::ClearError(e.to_string()),
        (Err(e), None) => return Outcome::Mismatch(format!("Bedside: {e}")),
        (Ok(_), Some(_)) => return Outcome::DecodedWhereReferenceRefuses,
        (Ok(ok), None) => ok,
    };
    let (shape, dtype) = (entry.shape.as_deref(), entry.dtype.as_deref());
    if shape != Some(digest.layout.shape.as_slice()) || dtype != Some(digest.layout.dtype.name()) {
        return Outcome::Mismatch(format!(
            "{} {:?} here, {} {:?} in the reference",
            digest.layout.dtype.name(),
            digest.layout.shape,
            dtype.unwrap_or("?"),
            shape.unwrap_or_default()
        ));
    }
    if entry.md5_first.as_deref() == Some(&digest.md5_first)
        && entry.md5_all.as_deref() == Some(&digest.md5_all)
    {
        return Outcome::Exact;
    }
    let (Some(first), Some(npy)) = (first, &entry.npy) else {
        return Outcome::Mismatch("lossless, but the MD5 differs from the reference".into());
    };
    let reference = read_npy(&dir.join(npy));
    let ours = values(&first, digest.layout.dtype.name());
    assert_eq!(ours.len(), reference.len(), "{}: first frame sizes", entry.file);
    let diffs: Vec<i64> = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).collect();
    let max_diff = diffs.iter().copied().max().unwrap_or(0);
    let limit = tolerance(bits_stored);
    if max_diff <= limit {
        return Outcome::WithinTolerance { max_diff };
    }
    let over = diffs.iter().filter(|&&d| d > limit).count();
    let share = 100.0 * over as f64 / diffs.len().max(1) as f64;
    Outcome::Mismatch(format!(
        "lossy, max abs difference {max_diff} > {limit} ({share:.2} % of samples over)"
    ))
}

/// Little-endian elements of numpy type `dtype` as integers.
fn values(bytes: &[u8], dtype: &str) -> Vec<i64> {
    match dtype {
        "uint8" => bytes.iter().map(|&b| b as i64).collect(),
        "int8" => bytes.iter().map(|&b| b as i8 as i64).collect(),
        "uint16" => bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as i64).collect(),
        "int16" => bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as i64).collect(),
        "uint32" => bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
        "int32" => bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
        other => panic!("no integer dtype {other}"),
    }
}

/// The elements of a little-endian integer `.npy` file (format versions 1–3, C order).
fn read_npy(path: &Path) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x93NUMPY"), "{} is not .npy", path.display());
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + len]).expect("npy header is text");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let descr = header.split("'descr': '").nth(1).and_then(|s| s.split('\'').next()).expect("descr");
    let dtype = match descr.trim_start_matches(['<', '|']) {
        "u1" => "uint8",
        "i1" => "int8",
        "u2" => "uint16",
        "i2" => "int16",
        "u4" => "uint32",
        "i4" => "int32",
        other => panic!("{}: unexpected dtype {other}", path.display()),
    };
    values(&bytes[start + len..], dtype)
}

fn syntax_name(uid: Option<&str>) -> String {
    let name = match uid.unwrap_or("") {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (8-bit)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (12-bit)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless SV1",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 Lossless",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" => "HTJ2K Lossless",
        "1.2.840.10008.1.2.4.202" => "HTJ2K Lossless RPCL",
        "1.2.840.10008.1.2.4.203" => "HTJ2K",
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        "" => "none (no file meta)",
        other => other,
    };
    name.to_string()
}

/// Writes `crates/imaging/CONFORMANCE.md`; under `CI=true` it must already be current.
fn write_table(rows: &[(String, &Entry, Outcome)], summary: &str, decoded_by_reference: usize) {
    let mut md = String::from(
        "# DICOM decoding conformance\n\n\
         Generated by `cargo test -p bedside-imaging --test conformance`; do not edit. Each file of the test\n\
         corpus is decoded by Bedside and by the reference (pydicom 3.0.2 with pylibjpeg, versions pinned in\n\
         `bedside_corpus::reference`) and the raw pixel arrays compared: *exact* is the same dtype, shape\n\
         and MD5 of every frame; *within tolerance* is the same dtype and shape with the first frame within\n\
         2 levels at 8 bits (scaled with the bit depth) for lossy transfer syntaxes; *clear error* is a file\n\
         both refuse, with Bedside's message; a *known gap* is a file the reference decodes and Bedside\n\
         does not yet.\n\n",
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
}
