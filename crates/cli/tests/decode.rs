//! `bedside decode` end to end: real corpus files in, one JSON line (or one error line) out.
//! Expected values are what pydicom 3.0.2 reports for the same files.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

fn bedside(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bedside")).args(args).output().expect("bedside runs")
}

fn decode(path: &Path, extra: &[&str]) -> Value {
    let mut args = vec![std::ffi::OsStr::new("decode"), path.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = bedside(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "decode {} failed: {stderr}", path.display());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn corpus(name: &str) -> std::path::PathBuf {
    bedside_corpus::find(name).unwrap()
}

#[test]
fn mr_small_reports_exactly_the_documented_keys() {
    let report = decode(&corpus("MR_small.dcm"), &[]);
    assert_eq!(
        report,
        json!({
            "rows": 64, "columns": 64, "frames": 1, "modality": "MR",
            "photometric_interpretation": "MONOCHROME2",
            "transfer_syntax": "1.2.840.10008.1.2.1", "bits_stored": 16,
            "pixel_spacing": [0.3125, 0.3125], "min": 127, "max": 2145
        })
    );
}

#[test]
fn an_ultrasound_region_gives_the_pixel_spacing() {
    // No Pixel Spacing here: the first ultrasound region's Physical Delta X/Y, in centimetres.
    let report = decode(&corpus("gdcm-US-ALOKA-16.dcm"), &[]);
    let spacing: Vec<f64> =
        report["pixel_spacing"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(spacing.len(), 2);
    assert!(spacing.iter().all(|mm| (mm - 0.382653).abs() < 1e-5), "{spacing:?}");
    // A file with neither has none, and the key is left out.
    assert!(decode(&corpus("US1_UNCR.dcm"), &[]).get("pixel_spacing").is_none());
}

#[test]
fn monochrome1_cr_keeps_its_stored_values() {
    let report = decode(&corpus("RG1_UNCR.dcm"), &[]);
    assert_eq!(report["photometric_interpretation"], "MONOCHROME1");
    assert_eq!(report["modality"], "CR");
    assert_eq!((report["rows"].as_u64(), report["columns"].as_u64()), (Some(1955), Some(1841)));
    assert_eq!(report["bits_stored"], 15);
    assert_eq!((report["min"].as_i64(), report["max"].as_i64()), (Some(874), Some(26479)));
}

#[test]
fn jpeg_baseline_rgb_decodes() {
    let report = decode(&corpus("SC_rgb_jpeg.dcm"), &[]);
    assert_eq!(report["transfer_syntax"], "1.2.840.10008.1.2.4.50");
    assert_eq!(report["photometric_interpretation"], "RGB");
    assert_eq!((report["rows"].as_u64(), report["columns"].as_u64()), (Some(256), Some(256)));
    assert!(report["max"].as_i64() > report["min"].as_i64());
}

#[test]
fn deflated_dataset_decodes() {
    let report = decode(&corpus("image_dfl.dcm"), &[]);
    assert_eq!(report["transfer_syntax"], "1.2.840.10008.1.2.1.99");
    assert_eq!(
        (report["rows"].as_u64(), report["min"].as_i64(), report["max"].as_i64()),
        (Some(512), Some(0), Some(255))
    );
}

#[test]
fn frame_picks_one_frame_of_a_multiframe_file() {
    let path = corpus("emri_small.dcm");
    let first = decode(&path, &[]);
    let fourth = decode(&path, &["--frame", "3"]);
    assert_eq!(first["frames"], 10);
    assert_eq!((first["min"].as_i64(), first["max"].as_i64()), (Some(0), Some(425)));
    assert_eq!((fourth["min"].as_i64(), fourth["max"].as_i64()), (Some(1), Some(435)));
}

#[test]
fn raw_md5_is_the_digest_of_pydicoms_pixel_array() {
    // Expected digests: hashlib.md5 of pydicom 3.0.2's `pixel_array` as little-endian bytes.
    let mr = decode(&corpus("MR_small.dcm"), &["--raw-md5"]);
    assert_eq!((mr["dtype"].as_str(), &mr["shape"]), (Some("int16"), &json!([64, 64])));
    assert_eq!(mr["md5_first"], "dc9943d2b303bf18ab512dfdd6df0559");
    assert_eq!(mr["md5_all"], mr["md5_first"], "one frame");
    assert_eq!(mr["min"], 127, "the usual keys stay");

    let cine = decode(&corpus("emri_small.dcm"), &["--raw-md5", "--frame", "3"]);
    assert_eq!((cine["dtype"].as_str(), &cine["shape"]), (Some("uint16"), &json!([10, 64, 64])));
    assert_eq!(cine["md5_first"], "ad7d4694526519671909ea30995613f8", "of the frame asked for");
    assert_eq!(cine["md5_all"], "35c5e95fce41d3229ada2d616dabeb2d");

    // Subsampled YCbCr comes out as RGB, in pydicom's arithmetic to the bit.
    let ybr = decode(&corpus("SC_ybr_full_422_uncompressed.dcm"), &["--raw-md5"]);
    assert_eq!(ybr["shape"], json!([100, 100, 3]));
    assert_eq!(ybr["md5_all"], "f6bc7c50c46154e83661bc5649e1f5ff");

    // JPEG-LS: the same signed values as the uncompressed original.
    let jls = decode(&corpus("MR_small_jpeg_ls_lossless.dcm"), &["--raw-md5"]);
    assert_eq!(jls["transfer_syntax"], "1.2.840.10008.1.2.4.80");
    assert_eq!((jls["dtype"].as_str(), &jls["md5_all"]), (Some("int16"), &mr["md5_all"]));

    // 32-bit samples in big-endian OW words.
    let dose = decode(&corpus("rtdose_expb.dcm"), &["--raw-md5"]);
    assert_eq!((dose["dtype"].as_str(), &dose["shape"]), (Some("uint32"), &json!([15, 10, 10])));
    assert_eq!(dose["md5_all"], "5d8836986c43b4a16603c48cec2e9c2d");
}

#[test]
fn palette_color_hashes_its_indices_and_draws_its_colours() {
    // The raw array is the indices (pydicom 3.0.2's digest); the PNG is the looked-up colours.
    let path = corpus("gdcm-US-ALOKA-16_big.dcm");
    let dir = std::env::temp_dir().join(format!("bedside-cli-palette-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("aloka.png");
    let report = decode(&path, &["--raw-md5", "--png", out.to_str().unwrap()]);
    assert_eq!(report["photometric_interpretation"], "PALETTE COLOR");
    assert_eq!((report["dtype"].as_str(), &report["shape"]), (Some("uint16"), &json!([480, 640])));
    assert_eq!(report["md5_all"], "76e2847e0a1c124a53182ad073111148");
    let png = image::open(&out).unwrap();
    assert_eq!(png.color(), image::ColorType::Rgb8, "drawn in colour");
    // Index 45088 at the top left: red, green, blue 10280, 11565, 16705 of 65535.
    assert_eq!(png.into_rgb8().get_pixel(0, 0).0, [40, 45, 65]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn raw_md5_keys_appear_only_when_asked() {
    let report = decode(&corpus("MR_small.dcm"), &[]);
    assert!(report.get("md5_first").is_none() && report.get("dtype").is_none(), "{report}");
}

fn assert_clean_failure(out: &Output, mentions: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit 1, stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("bedside: "), "{stderr}");
    assert!(stderr.contains(mentions), "{stderr} should mention {mentions}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn broken_files_fail_with_one_clear_line() {
    for name in ["MR_truncated.dcm", "rtplan_truncated.dcm", "meta_missing_tsyntax.dcm"] {
        let path = corpus(name);
        assert_clean_failure(&bedside(&["decode".as_ref(), path.as_os_str()]), name);
    }
    let missing_frame = corpus("MR_small.dcm");
    let out = bedside(&["decode".as_ref(), missing_frame.as_os_str(), "--frame".as_ref(), "1".as_ref()]);
    assert_clean_failure(&out, "frame 1 does not exist");
    let out = bedside(&["decode".as_ref(), "no/such/file.dcm".as_ref()]);
    assert_clean_failure(&out, "could not read no/such/file.dcm");
}

#[test]
fn png_output_is_the_drawn_frame() {
    let dir = std::env::temp_dir().join(format!("bedside-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("rg1.png");
    decode(&corpus("RG1_UNCR.dcm"), &["--png", out.to_str().unwrap()]);
    let png = image::open(&out).unwrap().into_luma8();
    assert_eq!(png.dimensions(), (1841, 1955));
    let mean = png.pixels().map(|p| p.0[0] as f64).sum::<f64>() / (1841.0 * 1955.0);
    // MONOCHROME1 inverted and windowed: neither black nor white overall.
    assert!((30.0..225.0).contains(&mean), "mean level {mean}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn photos_report_as_photo_without_transfer_syntax() {
    let Some(data) = bedside_corpus::shared_data("photos_report_as_photo") else { return };
    let skin = decode(&data.join("originals/skin_ISIC_0026352.jpg"), &[]);
    assert_eq!(skin["modality"], "photo");
    assert_eq!(skin["transfer_syntax"], Value::Null);
    assert_eq!(skin["photometric_interpretation"], "RGB");
    assert_eq!(skin["frames"], 1);
    let chest = decode(&data.join("originals/chest_IM-0490-0001.jpeg"), &[]);
    assert_eq!(chest["photometric_interpretation"], "MONOCHROME2");
    assert_eq!((chest["columns"].as_u64(), chest["rows"].as_u64()), (Some(2226), Some(2013)));
}
