//! `bedside export --onnx`: what it writes and says, and its errors.

use std::path::Path;
use std::process::Command;

fn bedside(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bedside")).args(args).output().expect("bedside runs")
}

fn models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

#[test]
fn export_writes_the_network_as_onnx_and_says_what_it_wrote() {
    let out_dir = std::env::temp_dir().join(format!("bedside-export-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    for (task, fp32, outputs) in [
        ("skin", false, vec!["logits", "class_maps", "lesion_logits"]),
        ("skin", true, vec!["logits", "class_maps"]),
        ("gate", false, vec!["logits", "class_maps"]),
    ] {
        let file = out_dir.join(format!("{task}-{fp32}.onnx"));
        let model = models().join(task);
        let mut args =
            vec!["export", "--onnx", "--model", model.to_str().unwrap(), "--out", file.to_str().unwrap()];
        if fp32 {
            args.push("--fp32");
        }
        let run = bedside(&args);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(summary["outputs"], serde_json::json!(outputs), "{task} fp32 {fp32}");
        assert_eq!(summary["weights"], if fp32 { "model-fp32.bin" } else { "model.bin" });
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(summary["bytes"].as_u64(), Some(bytes.len() as u64));
        // A ModelProto starts with its IR version (field 1, varint) and names its producer.
        assert_eq!(bytes[0], 0x08, "{task}");
        assert!(bytes.windows(7).any(|w| w == b"bedside"), "{task}: producer name");
        // The metadata carries what comes after the network, the lesion threshold with the decoder.
        let has = |key: &[u8]| bytes.windows(key.len()).any(|w| w == key);
        assert!(has(b"temperature") && has(b"mirror_average"), "{task}: metadata");
        assert_eq!(has(b"lesion_threshold"), outputs.contains(&"lesion_logits"), "{task} fp32 {fp32}");
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn export_needs_the_format_and_a_model_folder() {
    let run = bedside(&["export", "--model", models().join("gate").to_str().unwrap()]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--onnx"), "the missing flag is named");
    let run = bedside(&["export", "--onnx", "--model", "no/such/folder"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("no/such/folder/model.bin"), "{stderr}");
}
