//! `bedside arithmetic` runs a split through the engine in f32 and in its integer arithmetics and
//! reports how far the answers move.

use serde_json::Value;
use std::process::Command;

#[test]
fn int8_arithmetic_is_measured_against_f32_on_a_validation_split() {
    let Some(data) = bedside_corpus::shared_data("int8_arithmetic_is_measured") else { return };
    let model = bedside_corpus::workspace_root().join("models/breast");
    let out = Command::new(env!("CARGO_BIN_EXE_bedside"))
        .args(["arithmetic", "--model", model.to_str().unwrap()])
        .args(["--data", data.join("breast_busi").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{report}");
    assert_eq!(report["split"], "val");
    let mut moved = Vec::new();
    for precision in ["int8", "w8a12"] {
        let r = &report[precision];
        let number = |key: &str| r[key].as_f64().unwrap_or_else(|| panic!("{precision} {key} in {report}"));
        assert_eq!(r["n"].as_u64(), Some(80), "{precision}");
        // Integer arithmetic moves the probabilities a little (so it did run), and not the ranking.
        moved.push(number("max_probability_difference"));
        assert!(moved[moved.len() - 1] > 0.0 && moved[moved.len() - 1] < 0.1, "{precision}: {r}");
        assert!(r["worst_file"].as_str().unwrap().starts_with("images/"));
        assert!(number("label_agreement") >= 0.95, "{precision}: {r}");
        assert!((number("auc") - number("fp32_auc")).abs() <= 0.005, "{precision}: {r}");
    }
    // Twelve-bit activations stay closer to f32 than int8 ones.
    assert!(moved[1] < moved[0], "w8a12 moved {} where int8 moved {}", moved[1], moved[0]);
}

#[test]
fn a_missing_model_folder_is_one_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_bedside"))
        .args(["arithmetic", "--model", "no/such/model"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("bedside: ") && stderr.contains("no/such/model"), "{stderr}");
}
