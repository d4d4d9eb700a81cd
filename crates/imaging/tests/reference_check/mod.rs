//! One corpus file against the reference decoder's record of it: the comparison the native
//! conformance test (`tests/conformance.rs`) runs on every file and the browser conformance test
//! (`crates/web/tests/browser/conformance.rs`) runs on a subset in Wasm. Shared as a module file, not
//! a crate: both are tests, and each reads the reference's output its own way (files natively,
//! bytes embedded at build time in the browser).

// Each of the two test crates uses part of it.
#![allow(dead_code)]

use bedside_imaging::{Limits, Study};
use serde::Deserialize;

/// Largest difference from the reference allowed for a lossy frame: 2 at 8 bits, scaled with the
/// stored bit depth above that (decoders of lossy streams may round differently).
pub fn tolerance(bits_stored: u16) -> i64 {
    2 << bits_stored.saturating_sub(8).min(24)
}

/// One file as the reference script (`tests/reference/pydicom_reference.py`) reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub file: String,
    pub transfer_syntax: Option<String>,
    pub photometric: Option<String>,
    #[serde(default)]
    pub lossy: bool,
    pub shape: Option<Vec<u32>>,
    pub dtype: Option<String>,
    pub md5_first: Option<String>,
    pub md5_all: Option<String>,
    /// The reference's first frame as `.npy`, relative to the run's folder (lossy files only).
    pub npy: Option<String>,
    pub error: Option<String>,
}

pub enum Outcome {
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
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Exact => "exact",
            Outcome::WithinTolerance { .. } => "within tolerance",
            Outcome::ClearError(_) => "clear error",
            Outcome::DecodedWhereReferenceRefuses => "decoded (reference refuses)",
            Outcome::KnownGap { .. } => "known gap",
            Outcome::Mismatch(_) => "MISMATCH",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Outcome::Exact | Outcome::DecodedWhereReferenceRefuses => String::new(),
            Outcome::WithinTolerance { max_diff } => format!("max abs difference {max_diff}"),
            Outcome::ClearError(message) => message.clone(),
            Outcome::KnownGap { reason, error } => format!("{reason} ({error})"),
            Outcome::Mismatch(detail) => detail.clone(),
        }
    }
}

/// Decodes `bytes` (the file `entry` describes) as the CLI's `decode --raw-md5` does and compares
/// it with the reference: same dtype and shape, then the same MD5 of the first and of all frames,
/// else — for a lossy file — its first frame within [`tolerance`] of the reference's, whose `.npy`
/// bytes `npy` gives for the name in [`Entry::npy`].
pub fn compare(bytes: &[u8], entry: &Entry, npy: impl FnOnce(&str) -> Vec<u8>) -> Outcome {
    let decoded = Study::open(bytes, &Limits::default()).and_then(|study| {
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
    let (Some(first), Some(name)) = (first, &entry.npy) else {
        return Outcome::Mismatch("lossless, but the MD5 differs from the reference".into());
    };
    let reference = npy_values(&npy(name), name);
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

/// The elements of a little-endian integer `.npy` file (format versions 1–3, C order); `name`
/// names it in panics.
fn npy_values(bytes: &[u8], name: &str) -> Vec<i64> {
    assert!(bytes.starts_with(b"\x93NUMPY"), "{name} is not .npy");
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
        other => panic!("{name}: unexpected dtype {other}"),
    };
    values(&bytes[start + len..], dtype)
}

/// The transfer syntax's name for a UID (`None`: a file without file meta).
pub fn syntax_name(uid: Option<&str>) -> String {
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
