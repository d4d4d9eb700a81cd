//! One path from pixels to answer: the tensors and answers `bedside eval` measures are the ones the
//! product (`bedside predict`, and through the same library the page) gives for the same files.

use bedside_diagnosis::Diagnoser;
use bedside_imaging::{Limits, Study};
use bedside_model::artifact::ModelInfo;
use bedside_model::task::Task;
use bedside_train::{Progress, data};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn models() -> PathBuf {
    bedside_corpus::workspace_root().join("models")
}

fn diagnoser(name: &str) -> Diagnoser {
    let dir = models().join(name);
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    Diagnoser::new(&json, std::fs::read(dir.join("model.bin")).unwrap(), burn::prelude::Device::flex())
        .unwrap()
}

#[test]
fn training_and_the_product_give_identical_tensors_on_every_validation_image() {
    let Some(root) = bedside_corpus::shared_data("identical tensors") else { return };
    let progress = Progress::hidden();
    for name in ["chest", "skin", "breast", "gate"] {
        let diagnoser = diagnoser(name);
        let spec = &diagnoser.info().input;
        // The gate sees every task's images; each task model its own.
        let tasks = if name == "gate" { Task::ALL.to_vec() } else { vec![diagnoser.info().task] };
        for task in tasks {
            let dir = root.join(task.data_folder());
            let loaded = data::load(task, &dir, "val", spec, &progress).unwrap();
            assert!(loaded.len() >= 80, "{name} on {}: {} images", task.name(), loaded.len());
            for example in &loaded.examples {
                let bytes = std::fs::read(dir.join(&example.file)).unwrap();
                let study = Study::open(&bytes, &Limits::default()).unwrap();
                let (product, _) = diagnoser.prepare(&study, &study.frame(0).unwrap());
                let training = spec.normalise(&example.pixels);
                assert!(
                    product == training,
                    "{name}: {} differs between training and the product",
                    example.file
                );
            }
        }
    }
}

/// `bedside eval --predictions` on `split`: file → (label, probabilities in class order).
fn eval_predictions(model: &Path, data: &Path, split: &str) -> BTreeMap<String, (String, Vec<f64>)> {
    let out_csv = std::env::temp_dir().join(format!("bedside-one-path-{}-{split}.csv", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_bedside"))
        .args([
            "eval",
            "--split",
            split,
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .arg("--predictions")
        .arg(&out_csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&out_csv).unwrap();
    std::fs::remove_file(&out_csv).ok();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..2], ["file", "label"]);
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{line}");
            let probabilities = fields[2..].iter().map(|p| p.parse().unwrap()).collect();
            (fields[0].to_string(), (fields[1].to_string(), probabilities))
        })
        .collect()
}

#[test]
fn eval_predictions_are_what_predict_prints_for_each_file() {
    let Some(root) = bedside_corpus::shared_data("eval against predict") else { return };
    // At least 100 images per task: every n-th validation image, and for breast (80 in val) some
    // training images too.
    for (name, picks) in
        [("chest", vec![("val", 5)]), ("skin", vec![("val", 9)]), ("breast", vec![("val", 1), ("train", 20)])]
    {
        let model = models().join(name);
        let info = ModelInfo::from_json(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
        let dir = root.join(info.task.data_folder());
        let mut expected = Vec::new();
        for (split, every) in picks {
            let rows = eval_predictions(&model, &dir, split);
            expected.extend(rows.into_iter().step_by(every));
        }
        let out = Command::new(env!("CARGO_BIN_EXE_bedside"))
            .args(["predict", "--models", models().to_str().unwrap(), "--model", model.to_str().unwrap()])
            .args(expected.iter().map(|(file, _)| dir.join(file)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let printed: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(printed.len(), expected.len(), "{name}: one line per file");
        let mut compared = 0;
        for ((file, (label, probabilities)), line) in expected.iter().zip(&printed) {
            if line["outcome"] == "refused" {
                continue; // the gate's refusal is the product's answer; eval measures the model alone
            }
            assert_eq!(line["label"], label.as_str(), "{name} {file}: {line}");
            for (class, p) in info.classes.iter().zip(probabilities) {
                let shown = line["probabilities"][class].as_f64().unwrap();
                assert!((shown - p).abs() <= 1e-5, "{name} {file} {class}: predict {shown}, eval {p}");
            }
            compared += 1;
        }
        assert!(compared >= 100, "{name}: only {compared} images answered by predict");
    }
}
