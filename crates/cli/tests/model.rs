//! `bedside train`, `quantize`, `prune`, `eval` and `predict` end to end on the real breast ultrasound data, with a
//! smoke-sized training run (the JSON contracts, not accuracy).

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn bedside(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bedside")).args(args).output().expect("bedside runs");
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

fn json(stdout: &str) -> Value {
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    serde_json::from_str(stdout).unwrap()
}

#[test]
fn train_eval_predict_on_breast_ultrasound() {
    let Some(data) = bedside_corpus::shared_data("train_eval_predict_on_breast_ultrasound") else { return };
    let scratch = std::env::temp_dir().join(format!("bedside-cli-model-{}", std::process::id()));
    let (model, run) = (scratch.join("model"), scratch.join("run"));
    let task_dir = data.join("breast_busi");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (code, out, err) = bedside(&[
        "train",
        "--task",
        "breast",
        "--data",
        &s(&task_dir),
        "--out",
        &s(&model),
        "--run-dir",
        &s(&run),
        "--epochs",
        "1",
        "--max-batches",
        "2",
        "--batch-size",
        "8",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["validation"]["n"], 80);

    // Transfer learning: a run started from that run's student says so in its card; a folder
    // without a student is a clear error.
    let transfer = scratch.join("transfer");
    let from = s(&run);
    let train_from = |init_from: &str| {
        bedside(&[
            "train",
            "--task",
            "breast",
            "--data",
            &s(&task_dir),
            "--out",
            &s(&transfer),
            "--run-dir",
            &s(&transfer.join("run")),
            "--init-from",
            init_from,
            "--epochs",
            "1",
            "--max-batches",
            "1",
            "--batch-size",
            "8",
            "--class-weights",
            "none",
        ])
    };
    let (code, _, err) = train_from(&from);
    assert_eq!(code, 0, "{err}");
    let card = std::fs::read_to_string(transfer.join("MODEL_CARD.md")).unwrap();
    let line = format!("**Initialisation:** the student of the run in `{from}` (1 epoch on 3 classes");
    assert!(card.contains(&line), "{card}");
    assert!(card.contains("| loss | cross-entropy, unweighted |"), "{card}");
    let weighted = std::fs::read_to_string(model.join("MODEL_CARD.md")).unwrap();
    assert!(weighted.contains("| loss | cross-entropy, each class weighted by"), "{weighted}");
    let (code, _, err) = train_from(&s(&scratch.join("no-such-run")));
    assert_eq!(code, 1);
    assert!(err.contains("no-such-run") && err.contains("checkpoint.json"), "{err}");

    // Training writes fp32 only; int8 (the default everywhere) needs `quantize` first.
    let (code, _, err) = bedside(&["eval", "--model", &s(&model), "--data", &s(&task_dir)]);
    assert_eq!(code, 1);
    assert!(err.contains("model.bin") && err.contains("bedside quantize"), "{err}");
    let (code, out, err) =
        bedside(&["quantize", "--model", &s(&model), "--data", &s(&task_dir), "--calibration-images", "8"]);
    assert_eq!(code, 0, "{err}");
    let quantised = json(&out);
    let int8_bytes = quantised["validation"]["int8_bytes"].as_u64().unwrap();
    assert_eq!(int8_bytes, std::fs::metadata(model.join("model.bin")).unwrap().len());
    assert!(int8_bytes * 3 < quantised["validation"]["fp32_bytes"].as_u64().unwrap(), "{quantised}");
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("## int8 weights"), "the card gains the int8 section");
    assert!(card.contains("a perfectly calibrated model with these very probabilities would measure"));

    // The heat-map and robustness checks record their numbers beside the int8 ones.
    let (code, out, err) =
        bedside(&["heatmaps", "--model", &s(&model), "--data", &s(&task_dir), "--images", "4"]);
    assert_eq!(code, 0, "{err}");
    let heat = json(&out);
    assert_eq!(heat["images"], 4);
    for key in ["deletion_auc", "insertion_auc"] {
        for map in ["heat_map", "random", "centre"] {
            let e = &heat[key][map];
            let v = e["value"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key} {map} = {v}");
            assert!(e["low"].as_f64().unwrap() <= v && v <= e["high"].as_f64().unwrap(), "{key} {map}: {e}");
        }
    }
    // BUSI has lesion outlines: the pointing game runs on every validation image with a lesion
    // (not the normal ones, whose masks are empty), whatever --images says.
    let located = &heat["localisation"];
    let with_lesion = located["images"].as_u64().unwrap();
    assert!(with_lesion > 4 && with_lesion < 80, "{located}");
    let share = located["lesion_share"]["value"].as_f64().unwrap();
    assert!(share > 0.01 && share < 0.5, "{located}");
    for key in ["pointing_game", "mass_in_lesion"] {
        let centre = located[key]["centre"]["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&centre), "{key}: {located}");
    }
    let (code, out, err) =
        bedside(&["robustness", "--model", &s(&model), "--data", &s(&task_dir), "--images", "8"]);
    assert_eq!(code, 0, "{err}");
    let table = json(&out);
    assert_eq!(table["corruptions"].as_array().unwrap().len(), 30, "6 corruptions × 5 severities");
    assert_eq!(table["fgsm"].as_array().unwrap().len(), 3);
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("## Heat maps") && card.contains("## Robustness on validation (8 images)"));
    assert!(card.contains("where the model looked, not where disease is"));
    assert!(card.contains("| pointing game (higher is better) |"), "{card}");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(info["card"]["robustness"]["images"], 8);
    assert_eq!(info["card"]["int8"]["validation"], quantised["validation"], "earlier records are kept");

    let (code, out, err) = bedside(&["eval", "--model", &s(&model), "--data", &s(&task_dir), "--fp32"]);
    assert_eq!(code, 0, "{err}");
    // `bedside quantize` and eval both run the fp32 weights on the CPU engine in f32.
    let eval = json(&out);
    assert_eq!(eval["weights"], "model-fp32.bin");
    assert_eq!(eval["auc"], quantised["validation"]["fp32_auc"], "the same fp32 weights, the same AUC");

    // Temperature and threshold fitted on the int8 weights: the stored threshold keeps the target
    // sensitivity for the weights that ship, whatever the fp32 weights do.
    let int8_fit = scratch.join("int8-fit");
    std::fs::create_dir_all(&int8_fit).unwrap();
    for file in ["model.json", "model-fp32.bin", "model.bin"] {
        std::fs::copy(model.join(file), int8_fit.join(file)).unwrap();
    }
    let (code, out, err) =
        bedside(&["calibrate", "--model", &s(&int8_fit), "--data", &s(&task_dir), "--fit-on", "int8"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["calibration"]["fitted_on"], "model.bin");
    let (code, out, err) = bedside(&["eval", "--model", &s(&int8_fit), "--data", &s(&task_dir)]);
    assert_eq!(code, 0, "{err}");
    let target = bedside_train::pipeline::target_sensitivity(bedside_model::task::Task::Breast) as f64;
    let sensitivity = json(&out)["sensitivity"].as_f64().unwrap();
    assert!(sensitivity >= target - 1e-6, "int8 sensitivity {sensitivity} below {target}");
    let card = std::fs::read_to_string(int8_fit.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("on the probabilities of the int8 weights that ship"), "{card}");
    let (code, _, err) = bedside(&["calibrate", "--model", &s(&int8_fit), "--fit-on", "int4"]);
    assert_eq!(code, 2);
    assert!(err.contains("use fp32 or int8"), "{err}");

    // Pruning half the channels and shipping that point: smaller files, a rewritten card, and
    // eval measuring the new weights as prune did.
    let pruned_dir = scratch.join("pruned");
    std::fs::create_dir_all(&pruned_dir).unwrap();
    for file in ["model.json", "model-fp32.bin", "model.bin", "MODEL_CARD.md"] {
        std::fs::copy(model.join(file), pruned_dir.join(file)).unwrap();
    }
    let (code, out, err) = bedside(&[
        "prune",
        "--model",
        &s(&pruned_dir),
        "--data",
        &s(&task_dir),
        "--ratios",
        "0.5",
        "--epochs",
        "1",
        "--max-batches",
        "2",
        "--score-images",
        "16",
        "--calibration-images",
        "8",
        "--views",
        "1",
        "--ship",
        "0.5",
        "--run-dir",
        &s(&scratch.join("prune-run")),
    ]);
    assert_eq!(code, 0, "{err}");
    let curve = json(&out);
    let points = curve["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "the trained network and one ratio: {curve}");
    assert_eq!(curve["shipped_ratio"], 0.5);
    let (full, half) = (&points[0], &points[1]);
    assert_eq!(full["auc"], quantised["validation"]["fp32_auc"], "ratio 0 is the trained network");
    for key in ["params", "macs", "int8_bytes", "fp32_bytes"] {
        let (a, b) = (full[key].as_f64().unwrap(), half[key].as_f64().unwrap());
        assert!(b < 0.7 * a && b > 0.3 * a, "{key}: {b} pruned vs {a}");
    }
    let size = |f: &str| std::fs::metadata(pruned_dir.join(f)).unwrap().len();
    assert_eq!(size("model.bin"), half["int8_bytes"].as_u64().unwrap());
    assert_eq!(size("model-fp32.bin"), half["fp32_bytes"].as_u64().unwrap());
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(pruned_dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(info["network"]["head_channels"], 320);
    assert_eq!(info["network"]["hidden"].as_array().unwrap().len(), 17);
    assert!(info["card"]["int8"].is_null(), "measurements of the replaced weights are dropped");
    let card = std::fs::read_to_string(pruned_dir.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("## Pruning") && card.contains("**(shipped)**"), "{card}");
    assert!(!card.contains("## int8 weights"), "stale sections go with their weights");
    assert!(pruned_dir.join("plots/pruning.png").is_file());
    for (flag, key) in [(None, "int8_auc"), (Some("--fp32"), "auc")] {
        let mut args =
            vec!["eval", "--model", pruned_dir.to_str().unwrap(), "--data", task_dir.to_str().unwrap()];
        args.extend(flag);
        let (code, out, err) = bedside(&args);
        assert_eq!(code, 0, "{err}");
        let measured = json(&out)["auc"].as_f64().unwrap();
        assert!((measured - half[key].as_f64().unwrap()).abs() < 1e-9, "{key}: {measured} vs {half}");
        if flag.is_none() {
            // The malignant AUC that --ship auto guards is the one eval reports.
            let malignant = json(&out)["malignant_auc"].as_f64().unwrap();
            let recorded = half["int8_positive_auc"].as_f64().unwrap();
            assert!((malignant - recorded).abs() < 1e-9, "{malignant} vs {half}");
        }
    }
    assert!(card.contains("| int8 AUC of malignant |") && card.contains("named by hand"), "{card}");
    let (code, _, err) = bedside(&["prune", "--model", &s(&pruned_dir), "--data", &s(&task_dir)]);
    assert_eq!(code, 1);
    assert!(err.contains("already pruned"), "{err}");
    let (code, out, err) = bedside(&["eval", "--model", &s(&model), "--data", &s(&task_dir)]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["weights"], "model.bin");
    assert_eq!(report["auc"], quantised["validation"]["int8_auc"]);
    assert_eq!(report["n"], 80);
    for key in ["accuracy", "balanced_accuracy", "auc", "ece", "malignant_auc", "specificity"] {
        let v = report[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {report}"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let recall = report["per_class_recall"].as_object().unwrap();
    assert_eq!(recall.keys().collect::<Vec<_>>(), ["benign", "malignant", "normal"]);
    // What a calibrated model would measure on 80 images lies inside its own range, above zero (this
    // smoke model is far from certain) and is recorded in the card.
    let floor = report["ece_if_calibrated"].as_f64().unwrap();
    let range = &report["ci95"]["ece_if_calibrated"];
    let (low, high) = (range[0].as_f64().unwrap(), range[1].as_f64().unwrap());
    assert!(0.0 < low && low <= floor && floor <= high && high < 1.0, "{report}");

    // Size against accuracy: the model beside its pruned half, each measured as it ships.
    let skin = bedside_corpus::workspace_root().join("models/skin");
    let (code, _, err) =
        bedside(&["size-curve", "--model", &s(&model), "--data", &s(&task_dir), "--against", &s(&skin)]);
    assert_eq!(code, 1);
    assert!(err.contains("is a skin model") && err.contains("one task"), "{err}");
    let (code, out, err) = bedside(&[
        "size-curve",
        "--model",
        &s(&model),
        "--data",
        &s(&task_dir),
        "--against",
        &s(&pruned_dir),
    ]);
    assert_eq!(code, 0, "{err}");
    let sizes = json(&out);
    let points = sizes["points"].as_array().unwrap();
    assert_eq!(sizes["n"], 80);
    assert_eq!(points.len(), 2, "{sizes}");
    let (small, large) = (&points[0], &points[1]);
    assert_eq!(
        (small["shipped"].as_bool(), large["shipped"].as_bool()),
        (Some(false), Some(true)),
        "smallest first"
    );
    assert_eq!(small["params"], half["params"]);
    assert_eq!(small["int8_bytes"], half["int8_bytes"]);
    assert_eq!(large["passes"], 1, "this recipe does not average the mirror image");
    assert_eq!(large["auc"], report["auc"], "the same int8 weights as eval, the same AUC");
    assert_eq!(large["accuracy"], report["accuracy"]);
    assert!((small["auc"].as_f64().unwrap() - half["int8_auc"].as_f64().unwrap()).abs() < 1e-9, "{sizes}");
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("## Size against accuracy") && card.contains("plots/size_curve.png"), "{card}");
    assert!(model.join("plots/size_curve.png").is_file());

    let photo = data.join("originals/breast_malignant_179.png");
    let models = bedside_corpus::workspace_root().join("models");
    let (code, out, err) = bedside(&["predict", "--models", &s(&models), "--model", &s(&model), &s(&photo)]);
    assert_eq!(code, 0, "{err}");
    let prediction = json(&out);
    let probabilities = prediction["probabilities"].as_object().unwrap();
    let total: f64 = probabilities.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
    // The task's rule: malignant at the stored threshold, else the more probable of the others.
    let label = prediction["label"].as_str().unwrap();
    let threshold = prediction["threshold"].as_f64().expect("breast stores a malignant threshold");
    let task = bedside_model::task::Task::Breast;
    let p: Vec<f32> = task.classes().iter().map(|c| probabilities[*c].as_f64().unwrap() as f32).collect();
    let expected = task.classes()[task.decide(&p, threshold as f32)];
    assert!(label == expected || label == "uncertain", "{label} where the rule says {expected}");
    let peak = prediction["heat_map_peak"].as_array().unwrap();
    assert!(
        peak[0].as_u64().unwrap() < 432 && peak[1].as_u64().unwrap() < 476,
        "inside the 432 × 476 picture: {peak:?}"
    );
    assert_eq!(prediction["outcome"], "diagnosed");
    assert_eq!(prediction["routed_by"], "choice");
    assert!(prediction["lesion"].is_null(), "no lesion decoder yet: {prediction}");
    let (code, _, err) =
        bedside(&["predict", "--models", &s(&models), "--model", &s(&model), "--mask", "m.png", &s(&photo)]);
    assert_eq!(code, 1);
    assert!(err.contains("no lesion decoder"), "{err}");

    // A lesion decoder (smoke-sized) on this model's features: lesion.json + int8 lesion.bin, a card
    // section, and predict's outline, mask and measurements.
    let (code, out, err) = bedside(&[
        "lesion",
        "--model",
        &s(&model),
        "--data",
        &s(&task_dir),
        "--epochs",
        "1",
        "--max-batches",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let lesion = json(&out);
    assert_eq!(lesion["empty_images"], 80 - lesion["images"].as_u64().unwrap(), "{lesion}");
    let dice = &lesion["dice"];
    assert!(dice["low"].as_f64().unwrap() <= dice["value"].as_f64().unwrap(), "{lesion}");
    assert!(model.join("lesion.bin").is_file() && model.join("lesion.json").is_file());
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("## Lesion outline") && card.contains("| images with a lesion | Dice |"), "{card}");
    let (mask, outline) = (scratch.join("mask.png"), scratch.join("outline.png"));
    let (code, out, err) = bedside(&[
        "predict",
        "--models",
        &s(&models),
        "--model",
        &s(&model),
        "--mask",
        &s(&mask),
        "--outline",
        &s(&outline),
        &s(&photo),
    ]);
    assert_eq!(code, 0, "{err}");
    let measured = &json(&out)["lesion"];
    assert_eq!(measured["units"], "px", "a PNG has no pixel spacing");
    let mask = image::open(&mask).unwrap().into_luma8();
    assert_eq!(mask.dimensions(), (432, 476), "the mask has the picture's own size");
    let area = mask.pixels().filter(|p| p.0[0] > 0).count() as f64;
    assert_eq!(area, measured["area"].as_f64().unwrap(), "the mask holds the area predict reports");
    assert_eq!(measured["found"], area > 0.0);
    assert_eq!(image::open(&outline).unwrap().into_rgb8().dimensions(), (432, 476));
    // The decoder is tied to the weights it was trained on.
    let (code, _, err) = bedside(&[
        "predict",
        "--models",
        &s(&models),
        "--model",
        &s(&model),
        "--fp32",
        "--mask",
        "m.png",
        &s(&photo),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no lesion decoder with --fp32"), "{err}");
    let (code, _, err) = bedside(&["lesion", "--model", &s(&model), "--data", &s(&task_dir), "--eval"]);
    assert_eq!(code, 0, "{err}");

    let (code, _, err) =
        bedside(&["predict", "--models", &s(&models), "--model", &s(&scratch.join("nowhere")), &s(&photo)]);
    assert_eq!(code, 1);
    assert!(err.starts_with("bedside: could not read") && err.contains("model.json"), "{err}");
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn cross_validation_covers_the_train_split_in_grouped_folds_and_fits_the_review_rule() {
    let Some(data) = bedside_corpus::shared_data("cross_validation_covers_the_train_split") else { return };
    let scratch = std::env::temp_dir().join(format!("bedside-cli-cv-{}", std::process::id()));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (code, out, err) = bedside(&[
        "train",
        "--task",
        "breast",
        "--data",
        &s(&data.join("breast_busi")),
        "--cv",
        "3",
        "--out",
        &s(&scratch.join("out")),
        "--run-dir",
        &s(&scratch.join("run")),
        "--epochs",
        "1",
        "--max-batches",
        "1",
        "--batch-size",
        "8",
    ]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    let folds = report["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    let total: u64 = folds.iter().map(|f| f["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 543, "every train image is checked exactly once");
    assert!(folds.iter().all(|f| (150..=210).contains(&f["n"].as_u64().unwrap())), "{folds:?}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.join("out/cv.json")).unwrap()).unwrap();
    assert_eq!(written, report);

    // Every train image's logits from the fold that held it out, once each.
    let oof = scratch.join("run/cv/out-of-fold.csv");
    let text = std::fs::read_to_string(&oof).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("file,label,fold,logit_benign,logit_malignant,logit_normal"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 543);
    let files: std::collections::HashSet<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(files.len(), 543);
    for fold in 1..=3 {
        let n = rows.iter().filter(|r| r[2] == fold.to_string()).count() as u64;
        assert_eq!(n, folds[fold - 1]["n"].as_u64().unwrap(), "fold {fold}");
    }

    // The review rule fitted on them, on a copy of the shipped breast model.
    let model = scratch.join("breast");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["model.json", "model.bin", "MODEL_CARD.md"] {
        std::fs::copy(bedside_corpus::workspace_root().join("models/breast").join(file), model.join(file))
            .unwrap();
    }
    let task_dir = data.join("breast_busi");
    let review = |extra: &[&str]| {
        let mut args =
            vec!["review-band", "--model", model.to_str().unwrap(), "--data", task_dir.to_str().unwrap()];
        args.extend(extra);
        bedside(&args)
    };
    let (code, out, err) = review(&["--out-of-fold", oof.to_str().unwrap(), "--share", "0.12"]);
    assert_eq!(code, 0, "{err}");
    let fitted = json(&out);
    // At most the share asked for (this smoke-trained fold model gives many images the same
    // logits, and ties are left out together or not at all).
    let oof_share = fitted["out_of_fold"]["uncertain_share"].as_f64().unwrap();
    assert!(oof_share <= 0.12, "{fitted}");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    let margin = info["review"]["margin"].as_f64().unwrap() as f32;
    assert_eq!(fitted["validation"]["review"]["margin"].as_f64().unwrap() as f32, margin);
    assert_eq!(info["card"]["review"]["command"].as_str().unwrap().split(' ').nth(1), Some("review-band"));
    assert!(model.join("plots/risk_coverage.png").is_file());
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).unwrap();
    assert!(
        card.contains("## Uncertain: needs review") && card.contains("out-of-fold predictions"),
        "{card}"
    );

    // Fitted on validation with the shipped weights: exactly floor(0.1 × 80) images left for review.
    let (code, out, err) = review(&["--share", "0.1"]);
    assert_eq!(code, 0, "{err}");
    let fitted = json(&out);
    assert!((fitted["validation"]["uncertain_share"].as_f64().unwrap() - 0.1).abs() < 1e-9, "{fitted}");

    // eval applies the stored rule: its uncertain answers are the images review-band counted.
    let csv = scratch.join("val.csv");
    let (code, out, err) =
        bedside(&["eval", "--model", &s(&model), "--data", &s(&task_dir), "--predictions", &s(&csv)]);
    assert_eq!(code, 0, "{err}");
    let val = &json(&out)["review"];
    assert_eq!(val, &fitted["validation"]);
    let uncertain = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("uncertain"))
        .count();
    let share = val["uncertain_share"].as_f64().unwrap();
    assert!((uncertain as f64 - share * 80.0).abs() < 1e-9, "{uncertain} uncertain rows, share {share}");
    assert_eq!(val["answered"]["n"].as_u64().unwrap() as usize, 80 - uncertain);
    // Counting an uncertain answer as wrong can only lower accuracy.
    assert!(val["all"]["accuracy"].as_f64().unwrap() <= val["without_band"]["accuracy"].as_f64().unwrap());

    // Bad input: a CSV of another task, a share above 15 %; --remove restores class answers.
    let (code, _, err) = review(&["--out-of-fold", &s(&task_dir.join("labels.csv"))]);
    assert_eq!(code, 1);
    assert!(err.contains("the header is"), "{err}");
    let (code, _, err) = review(&["--share", "0.3"]);
    assert_eq!(code, 2);
    assert!(err.contains("outside 0–0.15"), "{err}");
    let (code, _, err) = review(&["--remove"]);
    assert_eq!(code, 0, "{err}");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert!(info.get("review").is_none() && info["card"].get("review").is_none(), "{info}");
    assert!(
        !std::fs::read_to_string(model.join("MODEL_CARD.md")).unwrap().contains("## Uncertain: needs review")
    );
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn counts_of_zero_are_refused_before_any_work() {
    // A batch of 0 images once divided by zero in the training loop.
    for flag in ["--batch-size", "--epochs", "--views", "--teacher-batch-size", "--max-batches"] {
        let (code, out, err) =
            bedside(&["train", "--task", "breast", flag, "0", "--run-dir", "/nonexistent/run"]);
        assert_eq!(code, 2, "{flag} 0: usage error expected, got {code}: {err}");
        assert!(err.contains(flag) && err.contains("must be at least 1"), "{flag}: {err}");
        assert!(!err.contains("panicked") && out.is_empty(), "{flag}: {err}");
    }
    let (code, _, err) =
        bedside(&["train", "--task", "breast", "--shift-augment", "1.5", "--run-dir", "/nonexistent/run"]);
    assert_eq!(code, 2);
    assert!(err.contains("--shift-augment") && err.contains("between 0 and 1"), "{err}");
    let (code, _, err) =
        bedside(&["train", "--task", "breast", "--lesion-weight=-1", "--run-dir", "/nonexistent/run"]);
    assert_eq!(code, 2);
    assert!(err.contains("--lesion-weight") && err.contains("0 or more"), "{err}");
}

#[test]
fn prune_ratios_are_read_space_or_comma_separated_and_checked() {
    // The second value is out of range: the error names it only if both spellings read it.
    for ratios in [&["0.25", "1.5"][..], &["0.25,1.5"][..]] {
        let mut args = vec!["prune", "--model", "/nonexistent/model", "--ratios"];
        args.extend_from_slice(ratios);
        let (code, _, err) = bedside(&args);
        assert_eq!(code, 1, "{ratios:?}: {err}");
        assert!(err.contains("--ratios: 1.5 is not a share between 0 and 1"), "{ratios:?}: {err}");
    }
}
