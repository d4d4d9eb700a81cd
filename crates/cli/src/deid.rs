//! `bedside deid`: a file de-identified for sharing, and one line of JSON saying what was done.

use bedside_imaging::Limits;
use bedside_imaging::deid::{Deidentifier, Format, Rect, Summary, black_out};
use serde::Serialize;
use std::path::PathBuf;

/// De-identify a DICOM file or a photo before it is shared (one JSON line says what was done).
///
/// DICOM follows PS3.15 Annex E, the Basic
/// Application Level Confidentiality Profile (Table E.1-1, edition 2026c): each listed attribute is
/// removed, emptied or given a dummy value as the profile says, at any depth; private attributes are
/// removed; UIDs are replaced by new `2.25.` UIDs drawn for this run; Patient Identity Removed is set
/// to YES and the method (code 113100) recorded. The pixel data is kept as it is. A photo (JPEG, PNG,
/// WebP) is written as a PNG of its pixels only: EXIF (GPS included), XMP and IPTC are dropped.
///
/// Prints one line of JSON: format, attributes_removed, attributes_emptied, attributes_replaced,
/// uids_replaced, private_tags_removed, burned_in_risk (yes, unknown or no) and burned_in_warning.
/// Text burned into the pixels is not found by this: when burned_in_warning is true, look at the
/// image and hide what identifies the patient with --black-out. Exits 1 with one line on stderr if
/// the input cannot be read or de-identified.
#[derive(clap::Args)]
pub struct Args {
    /// DICOM file (with or without preamble) or photo (JPEG, PNG, WebP).
    input: PathBuf,
    /// Where to write the de-identified file: DICOM stays DICOM, a photo becomes a PNG.
    output: PathBuf,
    /// Also black out the rectangle X,Y,WIDTH,HEIGHT (pixels from the top-left) in every frame; may
    /// be repeated. Clamped to the image; one lying wholly outside it is refused. DICOM pixel data is then written uncompressed (Explicit VR Little Endian).
    #[arg(long, value_name = "X,Y,W,H", value_parser = parse_rect)]
    black_out: Vec<Rect>,
}

#[derive(Serialize)]
struct Report {
    format: Format,
    #[serde(flatten)]
    summary: Summary,
    rectangles_blacked_out: usize,
}

fn parse_rect(text: &str) -> Result<Rect, String> {
    let numbers: Vec<u32> = text
        .split(',')
        .map(|n| n.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{text:?} is not X,Y,WIDTH,HEIGHT in whole pixels"))?;
    match numbers[..] {
        [x, y, width, height] if width > 0 && height > 0 => Ok(Rect { x, y, width, height }),
        _ => Err(format!("{text:?} is not X,Y,WIDTH,HEIGHT with a width and height above 0")),
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    let name = args.input.display();
    let bytes = std::fs::read(&args.input).map_err(|e| format!("could not read {name}: {e}"))?;
    // A fresh secret per run: this run is one share, and its UIDs are unrelated to any other's.
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no random numbers from the system: {e}"))?;
    let result = Deidentifier::new(secret).deidentify(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let mut out = result.bytes;
    for rect in &args.black_out {
        out = black_out(&out, *rect, &Limits::default()).map_err(|e| format!("{name}: {e}"))?;
    }
    std::fs::write(&args.output, &out)
        .map_err(|e| format!("could not write {}: {e}", args.output.display()))?;
    let report = Report {
        format: result.format,
        summary: result.summary,
        rectangles_blacked_out: args.black_out.len(),
    };
    println!("{}", serde_json::to_string(&report).expect("the report serialises"));
    Ok(())
}
