//! `bedside predict` through the trust gate: real files route themselves to their model, and
//! photographs the gate never saw (its held-out validation photographs) and medical images of other
//! kinds are refused.

use bedside_train::gate::is_val_photo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn predict(args: &[&str]) -> Value {
    let models = bedside_corpus::workspace_root().join("models");
    let out = Command::new(env!("CARGO_BIN_EXE_bedside"))
        .args(["predict", "--models", models.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a refusal is not a failure: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn originals_route_themselves_to_their_model() {
    let Some(data) = bedside_corpus::shared_data("originals_route_themselves") else { return };
    let text = std::fs::read_to_string(data.join("originals/labels.csv")).unwrap();
    for line in text.lines().skip(1) {
        let [file, folder, _] = line.split(',').collect::<Vec<_>>()[..] else { panic!("bad row {line}") };
        let task = folder.split('_').next().unwrap();
        let out = predict(&[path(&data.join("originals").join(file))]);
        println!("{file}: {out}");
        assert_eq!(out["outcome"], "diagnosed", "{file}: {out}");
        assert_eq!(out["task"], task, "{file}: {out}");
        assert_eq!(out["gate"]["task"], task);
        assert_eq!(out["gate"]["refused"], false);
        assert_eq!(out["routed_by"], "gate", "a photo has no Modality: {out}");
        assert!(out["note"].is_null(), "{out}");
        let confidence = out["gate"]["confidence"].as_f64().unwrap();
        assert!(confidence >= out["gate"]["floor"].as_f64().unwrap(), "{out}");
        let total: f64 =
            out["gate"]["probabilities"].as_object().unwrap().values().map(|p| p.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4);
    }
}

#[test]
fn a_chosen_model_is_used_and_the_disagreement_noted() {
    let Some(data) = bedside_corpus::shared_data("a_chosen_model_is_used") else { return };
    let models = bedside_corpus::workspace_root().join("models");
    let skin = data.join("originals/skin_ISIC_0031524.jpg");
    let out = predict(&["--model", path(&models.join("chest")), path(&skin)]);
    assert_eq!(out["task"], "chest");
    assert_eq!(out["gate"]["task"], "skin");
    assert_eq!(out["routed_by"], "choice");
    assert!(out["note"].as_str().unwrap().contains("looks more like a skin photo"), "{out}");
}

#[test]
fn held_out_photographs_are_refused() {
    let photos =
        bedside_corpus::photos(&bedside_corpus::photos_dir()).expect("photographs from the registry");
    let held_out: Vec<&PathBuf> = photos.iter().filter(|p| is_val_photo(&photos, p)).collect();
    assert!(held_out.len() >= 5, "{held_out:?}");
    let models = bedside_corpus::workspace_root().join("models");
    for photo in held_out {
        let out = predict(&[path(photo)]);
        println!("{}: {out}", photo.display());
        assert_eq!(out["outcome"], "refused", "{}: {out}", photo.display());
        assert!(out["message"].as_str().unwrap().contains("does not look like a chest X-ray"));
        assert_eq!(out["gate"]["refused"], true, "{out}");
        assert!(out["gate"]["task"].is_null(), "{out}");
        assert!(out.get("label").is_none() && out.get("task").is_none(), "no diagnosis: {out}");
        // Choosing a model does not get round the gate.
        let forced = predict(&["--model", path(&models.join("chest")), path(photo)]);
        assert_eq!(forced["outcome"], "refused", "{forced}");
    }
}

#[test]
fn medical_images_of_other_kinds_are_refused() {
    // An obstetric ultrasound (Modality US, which points to the breast model), an adult's chest film
    // (Bedside's chest model is for children: see the next test), a leg radiograph,
    // echocardiography, and a 45 × 10 test strip (below the gate's smallest picture).
    for name in [
        "OBXXXX1A.dcm",
        "RG1_UNCR.dcm",
        "RG3_UNCR.dcm",
        "JPGLosslessP14SV1_1s_1f_8b.dcm",
        "JPEGLSNearLossless_08.dcm",
    ] {
        let file = bedside_corpus::find(name).unwrap();
        let out = predict(&[path(&file)]);
        println!("{name}: {out}");
        assert_eq!(out["outcome"], "refused", "{name}: {out}");
        assert!(out.get("label").is_none(), "{name}: no diagnosis: {out}");
    }
}

#[test]
fn an_adults_chest_film_is_refused_by_the_age_its_file_gives() {
    // RG1: a CR of the chest whose patient was born in 1940 (Study Date 2004). Chosen or not, the
    // chest model does not answer for an adult, and says why.
    let file = bedside_corpus::find("RG1_UNCR.dcm").unwrap();
    let models = bedside_corpus::workspace_root().join("models");
    for out in [predict(&[path(&file)]), predict(&["--model", path(&models.join("chest")), path(&file)])] {
        assert_eq!(out["outcome"], "refused", "{out}");
        let message = out["message"].as_str().unwrap();
        assert!(message.contains("patient 64 years old") && message.contains("children"), "{out}");
    }
}
