//! `bedside deid` end to end: a corpus file whose Patient's Name is set goes in, a file without it
//! comes out with one JSON line; bad input exits 1 with one clear line.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn bedside(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bedside")).args(args).output().expect("bedside runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deid-cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_patient_s_name_is_gone_and_the_summary_says_what_was_done() {
    let input = bedside_corpus::find("MR_small.dcm").unwrap();
    let name = b"CompressedSamples^MR1";
    assert!(contains(&std::fs::read(&input).unwrap(), name), "the input names the patient");
    let output = scratch("MR_small.deid.dcm");
    let out = bedside(&["deid".as_ref(), input.as_os_str(), output.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let keys: Vec<&str> = report.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "format",
        "attributes_removed",
        "attributes_emptied",
        "attributes_replaced",
        "uids_replaced",
        "private_tags_removed",
        "burned_in_risk",
        "burned_in_warning",
    ] {
        assert!(keys.contains(&key), "{key} missing from {stdout}");
    }
    assert_eq!(report["format"], "dicom");
    assert!(report["attributes_emptied"].as_u64().unwrap() >= 1, "Patient's Name at least: {stdout}");
    assert!(report["uids_replaced"].as_u64().unwrap() >= 3, "{stdout}");
    assert_eq!(report["burned_in_risk"], "no");

    let written = std::fs::read(&output).unwrap();
    assert!(!contains(&written, name), "Patient's Name is still in the output");
    assert!(contains(&written, b"113100"), "the method code is recorded");
    // Still a DICOM file that decodes.
    let decoded = bedside(&["decode".as_ref(), output.as_os_str()]);
    assert!(decoded.status.success(), "{}", String::from_utf8_lossy(&decoded.stderr));
}

#[test]
fn bad_input_exits_1_with_one_clear_line() {
    let text = scratch("notes.txt");
    std::fs::write(&text, "not an image").unwrap();
    let output = scratch("never.dcm");
    let out = bedside(&["deid".as_ref(), text.as_os_str(), output.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("bedside: ") && stderr.contains("not a DICOM file"), "{stderr}");
    assert!(out.stdout.is_empty() && !output.exists(), "nothing written");

    let missing = scratch("missing.dcm");
    let out = bedside(&["deid".as_ref(), missing.as_os_str(), output.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not read"));
}

#[test]
fn black_out_rectangles_are_checked_and_applied() {
    let input = bedside_corpus::find("MR_small.dcm").unwrap();
    let output = scratch("MR_small.black.dcm");
    let bad = bedside(&[
        "deid".as_ref(),
        input.as_os_str(),
        output.as_os_str(),
        "--black-out".as_ref(),
        "1,2,0,4".as_ref(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("WIDTH,HEIGHT"));
    let out = bedside(&[
        "deid".as_ref(),
        input.as_os_str(),
        output.as_os_str(),
        "--black-out".as_ref(),
        "0,0,8,8".as_ref(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rectangles_blacked_out"], 1);
    // MR_small's darkest stored value is 127; an 8×8 black corner brings the minimum down.
    let decoded = bedside(&["decode".as_ref(), output.as_os_str()]);
    let decoded: Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert!(decoded["min"].as_i64().unwrap() < 127, "{decoded}");
}
