//! The committed models in models/ still load and reproduce, on the validation split, the numbers
//! recorded in their model.json when they were trained (fp32) and quantised (int8).

use serde_json::Value;
use std::process::Command;

#[test]
fn shipped_models_reproduce_their_recorded_validation_metrics() {
    let Some(data) = bedside_corpus::shared_data("shipped_models_reproduce_their_metrics") else { return };
    let models = bedside_corpus::workspace_root().join("models");
    let mut checked = Vec::new();
    for task in ["chest", "skin", "breast", "gate"] {
        let dir = models.join(task);
        // A missing model is a failure: the page and the CLI load every one of them.
        let text = std::fs::read_to_string(dir.join("model.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join("model.json").display()));
        let info: Value = serde_json::from_str(&text).unwrap();
        let recorded = &info["card"]["validation"];
        let folder = match task {
            "chest" => data.join("chest_pneumonia"),
            "skin" => data.join("skin_ham10000"),
            "breast" => data.join("breast_busi"),
            _ => data.clone(), // the gate reads all three task folders and the registry photographs
        };
        let eval = |extra: &[&str]| -> Value {
            let out = Command::new(env!("CARGO_BIN_EXE_bedside"))
                .args(["eval", "--model", dir.to_str().unwrap(), "--data", folder.to_str().unwrap()])
                .args(extra)
                .output()
                .unwrap();
            assert!(out.status.success(), "{task}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        };
        // The shipped int8 weights (the default) give what `bedside quantize` recorded.
        let int8 = eval(&[]);
        assert_eq!(int8["weights"], "model.bin");
        let quantised = &info["card"]["int8"]["validation"];
        for (key, recorded) in [("auc", "int8_auc"), ("accuracy", "int8_accuracy")] {
            let (now, then) = (int8[key].as_f64().unwrap(), quantised[recorded].as_f64().unwrap());
            assert!((now - then).abs() < 2e-3, "{task} int8 {key}: {now} now, {then} when quantised");
        }
        let drop = quantised["fp32_auc"].as_f64().unwrap() - quantised["int8_auc"].as_f64().unwrap();
        assert!(drop <= 0.005, "{task}: int8 loses {drop:.4} AUC");

        // The fp32 weights give what training recorded.
        let measured = eval(&["--fp32"]);
        assert_eq!(measured["n"], recorded["n"], "{task}");
        // Recorded by the release build that trained the model, measured here by the test build:
        // floating-point differences may move an image lying on the threshold, no more.
        let n = recorded["n"].as_f64().unwrap();
        let auc = (measured["auc"].as_f64().unwrap(), recorded["auc"]["value"].as_f64().unwrap());
        assert!((auc.0 - auc.1).abs() < 2e-3, "{task} AUC: {} now, {} when trained", auc.0, auc.1);
        for key in ["accuracy", "balanced_accuracy", "sensitivity", "specificity"] {
            let (now, then) = (measured[key].as_f64().unwrap(), recorded[key]["value"].as_f64().unwrap());
            // Two flipped decisions at most, in the smallest class a rate can be computed over.
            let smallest = recorded["confusion"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row.as_array().unwrap().iter().map(|c| c.as_f64().unwrap()).sum::<f64>());
            let tolerance = 2.0 / smallest.fold(n, f64::min).max(1.0);
            assert!((now - then).abs() <= tolerance + 1e-9, "{task} {key}: {now} now, {then} when trained");
        }
        checked.push(task);
    }
    assert_eq!(checked, ["chest", "skin", "breast", "gate"]);
}

/// Every committed card is what its model.json draws (`bedside card --check`), and the check fails
/// on a card edited by hand or left behind by a changed record.
#[test]
fn committed_model_cards_are_what_their_records_draw() {
    let models = bedside_corpus::workspace_root().join("models");
    let card =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_bedside")).arg("card").args(args).output().unwrap();
    let mut args = vec!["--check".to_string()];
    for task in ["chest", "skin", "breast", "gate"] {
        args.extend(["--model".to_string(), models.join(task).display().to_string()]);
    }
    let out = card(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A copy of the breast folder, its card edited by hand: stale, and the message says what to run.
    let copy = std::env::temp_dir().join(format!("bedside-card-check-{}", std::process::id()));
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["model.json", "lesion.json", "MODEL_CARD.md"] {
        std::fs::copy(models.join("breast").join(file), copy.join(file)).unwrap();
    }
    let path = copy.display().to_string();
    let committed = std::fs::read_to_string(copy.join("MODEL_CARD.md")).unwrap();
    // A figure raised by hand: the validation accuracy row, whatever it says.
    let edited: String = committed
        .lines()
        .map(|line| if line.starts_with("| accuracy |") { "| accuracy | 0.999 |" } else { line })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(edited.trim_end(), committed.trim_end(), "the breast card has no accuracy row to edit");
    std::fs::write(copy.join("MODEL_CARD.md"), edited).unwrap();
    let out = card(&["--check", "--model", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("stale model card"), "{stderr}");
    assert!(stderr.contains(&format!("bedside card --model {path}")), "{stderr}");
    // Drawing it again from model.json restores it; a changed record moves the card with it.
    assert!(card(&["--model", &path]).status.success());
    assert_eq!(std::fs::read_to_string(copy.join("MODEL_CARD.md")).unwrap(), committed);
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(copy.join("model.json")).unwrap()).unwrap();
    info["card"]["int8"]["command"] = "bedside quantize --model elsewhere".into();
    std::fs::write(copy.join("model.json"), info.to_string()).unwrap();
    assert!(!card(&["--check", "--model", &path]).status.success());
    assert!(card(&["--model", &path]).status.success());
    let redrawn = std::fs::read_to_string(copy.join("MODEL_CARD.md")).unwrap();
    assert!(redrawn.contains("Measured with `bedside quantize --model elsewhere`"));
    std::fs::remove_dir_all(copy).ok();
}
