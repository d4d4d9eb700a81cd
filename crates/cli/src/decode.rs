//! `bedside decode`: what a file holds, as one line of JSON.

use bedside_imaging::{Limits, Study};
use serde::Serialize;
use std::path::PathBuf;

/// Decode a DICOM file or a photo and print one line of JSON: rows, columns, frames, modality,
/// photometric_interpretation, transfer_syntax, bits_stored, and the min and max stored value of the
/// chosen frame (for PALETTE COLOR, of the red, green and blue values looked up). With `--raw-md5`
/// (DICOM only) also dtype, shape, md5_first and md5_all of the raw pixel array as pydicom's default
/// `pixel_array` returns it. Exits 1 with one line on stderr if the file cannot be decoded.
#[derive(clap::Args)]
pub struct Args {
    /// DICOM file (.dcm, with or without preamble) or photo (JPEG, PNG, WebP).
    file: PathBuf,
    /// Also write the frame as an 8-bit PNG, drawn with the file's default window.
    #[arg(long, value_name = "OUT")]
    png: Option<PathBuf>,
    /// Which frame to report and draw, counted from 0.
    #[arg(long, value_name = "N", default_value_t = 0)]
    frame: u32,
    /// Also report `dtype`, `shape`, `md5_first` (of frame N) and `md5_all`: the raw array pydicom's
    /// default `Dataset.pixel_array` returns (stored values before any LUT, YBR_FULL/YBR_FULL_422 as
    /// RGB), hashed as little-endian bytes. Decodes every frame.
    #[arg(long)]
    raw_md5: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    info: &'a bedside_imaging::Info,
    min: i32,
    max: i32,
    #[serde(flatten)]
    raw: Option<bedside_imaging::RawDigest>,
}

pub fn run(args: &Args) -> Result<(), String> {
    let name = args.file.display();
    let bytes = std::fs::read(&args.file).map_err(|e| format!("could not read {name}: {e}"))?;
    let study = Study::open(&bytes, &Limits::default()).map_err(|e| format!("{name}: {e}"))?;
    let frame = study.frame(args.frame).map_err(|e| format!("{name}: {e}"))?;
    if let Some(out) = &args.png {
        write_png(&study, &frame, out)?;
    }
    let (min, max) = frame.min_max();
    let raw = args.raw_md5.then(|| study.raw_digest(args.frame)).transpose();
    let raw = raw.map_err(|e| format!("{name}: {e}"))?;
    let report = Report { info: study.info(), min, max, raw };
    println!("{}", serde_json::to_string(&report).expect("the report serialises"));
    Ok(())
}

fn write_png(study: &Study, frame: &bedside_imaging::Frame, out: &PathBuf) -> Result<(), String> {
    let rgba = frame.render_rgba(study.default_window(frame));
    let image = image::RgbaImage::from_raw(frame.columns, frame.rows, rgba)
        .ok_or("the rendered frame has the wrong size")?;
    let image = image::DynamicImage::ImageRgba8(image);
    let image = if frame.is_grey() { image.into_luma8().into() } else { image.into_rgb8().into() };
    let image: image::DynamicImage = image;
    image
        .save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| format!("could not write {}: {e}", out.display()))
}
