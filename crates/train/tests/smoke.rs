//! A tiny training run on the real breast ultrasound data: two batches, then calibration, the
//! artifact, and loading it back. Proves the pipeline end to end; says nothing about accuracy.

use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_model::student::StudentConfig;
use bedside_model::task::Task;
use bedside_train::Progress;
use bedside_train::augment::Augment;
use bedside_train::pipeline::{self, Job};
use bedside_train::trainer::{self, TrainSettings};
use burn::module::Module;
use burn::store::ModuleRecord;

#[test]
fn two_batches_of_breast_ultrasound_make_a_loadable_model() {
    let Some(data) = bedside_corpus::shared_data("two_batches_of_breast_ultrasound") else { return };
    let scratch = std::env::temp_dir().join(format!("bedside-smoke-{}", std::process::id()));
    let settings = TrainSettings {
        network: StudentConfig::new(3),
        epochs: 1,
        batch_size: 8,
        learning_rate: 1e-3,
        weight_decay: 0.01,
        seed: 1,
        augment: Augment::standard(true),
        intensity: Default::default(),
        class_weights: true,
        max_batches: Some(2),
        distillation: None,
        gate_data: None,
    };
    let job = Job {
        task: Task::Breast,
        data_dir: data.join(Task::Breast.data_folder()),
        run_dir: scratch.join("run"),
        out_dir: Some(scratch.join("model")),
        settings,
        resume: false,
        command: "smoke".into(),
        teacher: None,
        init_from: None,
    };
    let outcome = pipeline::run(&job, &Progress::hidden()).unwrap();
    assert_eq!(outcome.validation.n, 80, "the whole val split is measured");
    assert_eq!(outcome.history.len(), 1);
    assert!(outcome.history[0].train_loss.is_finite());
    assert!(outcome.info.temperature > 0.0);
    let threshold = outcome.info.threshold.expect("breast calls malignant at a threshold");
    assert!((0.0..=1.0).contains(&threshold), "{threshold}");

    // Deterministic with a seed: initialisation, augmentation and dropout masks are all drawn from
    // it, so the same job again gives the same weights and another seed does not.
    let again = |seed: u64, dir: &str| {
        let settings = TrainSettings { seed, ..job.settings.clone() };
        let rerun = Job { run_dir: scratch.join(dir), out_dir: None, settings, ..job.clone() };
        let outcome = pipeline::run(&rerun, &Progress::hidden()).unwrap();
        (outcome.history[0].train_loss, resumed_weights(&scratch.join(dir)))
    };
    let first = resumed_weights(&scratch.join("run"));
    let weights = |m: &bedside_model::student::Student| {
        (m.stem.conv.weight.val().into_data(), m.classifier.weight.val().into_data())
    };
    let (loss, same) = again(job.settings.seed, "again");
    assert_eq!(loss, outcome.history[0].train_loss);
    assert_eq!(weights(&same), weights(&first));
    let (_, other) = again(job.settings.seed + 1, "other-seed");
    assert_ne!(weights(&other).1, weights(&first).1);

    let text = std::fs::read_to_string(scratch.join("model/model.json")).unwrap();
    let info = ModelInfo::from_json(&text).unwrap();
    assert_eq!(info, outcome.info);
    assert_eq!(info.classes, ["benign", "malignant", "normal"]);
    let bytes = std::fs::read(scratch.join("model/model-fp32.bin")).unwrap();
    let model = student_from_bytes(&info.network, bytes, &burn::prelude::Device::flex());
    assert!(model.is_ok());
    let card = std::fs::read_to_string(scratch.join("model/MODEL_CARD.md")).unwrap();
    assert!(card.contains("Smoke run") && card.contains("| malignant |"), "{card}");
    for plot in ["roc", "calibration", "confusion", "training"] {
        assert!(scratch.join(format!("model/plots/{plot}.png")).is_file(), "{plot}.png");
    }

    // --resume after the last epoch trains nothing more and keeps the log.
    let resumed = pipeline::run(&Job { resume: true, ..job }, &Progress::hidden()).unwrap();
    assert_eq!(resumed.history.len(), 1);

    // Transfer learning starts from the run's student: its trained layers as they are, a new
    // classifier for the other task's classes; a network of another shape is refused.
    let (start, description) =
        trainer::pretrained_start(&scratch.join("run"), &StudentConfig::new(2), 0).unwrap();
    assert!(description.contains("1 epoch on 3 classes"), "{description}");
    assert_eq!(start.classifier.weight.dims(), [640, 2]);
    let trained = resumed_weights(&scratch.join("run"));
    assert_eq!(start.stem.conv.weight.val().into_data(), trained.stem.conv.weight.val().into_data());
    let error = trainer::pretrained_start(&scratch.join("run"), &StudentConfig::new(2).with_width(0.35), 0)
        .err()
        .unwrap();
    assert!(error.to_string().contains("only the number of classes may differ"), "{error}");
    std::fs::remove_dir_all(&scratch).ok();
}

/// The student as the run's last checkpoint holds it (3 classes, as trained above).
fn resumed_weights(run: &std::path::Path) -> bedside_model::student::Student {
    let device = burn::prelude::Device::flex();
    let record = ModuleRecord::load(run.join("checkpoint-model.bpk")).unwrap();
    StudentConfig::new(3).init(&device).load_record(record)
}
