//! EfficientNet-Lite0 shipped as a task's model (`bedside train --network lite0`): on a few real
//! breast ultrasound images, the written artifact is the adapted teacher itself — moved into the
//! student's layout, its stem summed to one grey plane, its input the teacher's.

use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_model::student::{Architecture, StudentConfig};
use bedside_model::task::Task;
use bedside_train::Progress;
use bedside_train::augment::Augment;
use bedside_train::distill::TeacherSettings;
use bedside_train::pipeline::{self, Job};
use bedside_train::trainer::TrainSettings;

#[test]
fn lite0_ships_the_adapted_teacher_itself() {
    let Some(data) = bedside_corpus::shared_data("lite0_ships_the_adapted_teacher_itself") else { return };
    let scratch = std::env::temp_dir().join(format!("bedside-lite0-{}", std::process::id()));
    // A small task folder: 12 training and 9 validation images of the real data, every class.
    let source = data.join(Task::Breast.data_folder());
    let task_dir = scratch.join("breast");
    std::fs::create_dir_all(task_dir.join("images")).unwrap();
    std::fs::create_dir_all(task_dir.join("masks")).unwrap();
    let rows = std::fs::read_to_string(source.join("labels.csv")).unwrap();
    let mut kept = vec![rows.lines().next().unwrap().to_string()];
    for (split, per_class) in [("train", 4), ("val", 3)] {
        for class in ["benign", "malignant", "normal"] {
            let picked = rows.lines().filter(|r| r.contains(&format!(",{class},{split},"))).take(per_class);
            for row in picked {
                let file = row.split(',').next().unwrap();
                std::os::unix::fs::symlink(source.join(file), task_dir.join(file)).unwrap();
                let mask = std::path::Path::new(file).with_extension("png");
                let mask = format!("masks/{}", mask.file_name().unwrap().to_str().unwrap());
                std::os::unix::fs::symlink(source.join(&mask), task_dir.join(&mask)).unwrap();
                kept.push(row.to_string());
            }
        }
    }
    assert_eq!(kept.len(), 1 + 12 + 9);
    std::fs::write(task_dir.join("labels.csv"), kept.join("\n") + "\n").unwrap();

    let settings = TrainSettings {
        network: StudentConfig::lite0(3, 1),
        epochs: 1,
        batch_size: 4,
        learning_rate: 1e-3,
        weight_decay: 0.01,
        seed: 3,
        augment: Augment::standard(true),
        intensity: Default::default(),
        class_weights: true,
        max_batches: None,
        distillation: None,
        gate_data: None,
    };
    let teacher = TeacherSettings {
        views: 1,
        stage: 5,
        epochs: 2,
        batch_size: 4,
        learning_rate: 1e-3,
        seed: 3,
        class_weights: true,
        // Trained on the lesion outlines too (the joint decoder is dropped; the artifact is the same).
        lesion_weight: 1.0,
    };
    let job = Job {
        task: Task::Breast,
        data_dir: task_dir.clone(),
        run_dir: scratch.join("run"),
        out_dir: Some(scratch.join("model")),
        settings,
        resume: false,
        command: "lite0 smoke".into(),
        teacher: Some(teacher.clone()),
        init_from: None,
    };
    // The outline loss caches the maps entering stages 2 and 3 when those are frozen; training
    // from stage 1 on would have to compute them from the stem's cached map.
    let early = Job {
        run_dir: scratch.join("run-stage1"),
        out_dir: None,
        teacher: Some(TeacherSettings { stage: 1, ..teacher.clone() }),
        ..job.clone()
    };
    let refused = pipeline::run(&early, &Progress::hidden()).map(|_| ()).unwrap_err().to_string();
    assert!(refused.contains("first trained stage between 2 and 5 (not 1)"), "{refused}");
    let outcome = pipeline::run(&job, &Progress::hidden()).unwrap();
    let report = outcome.teacher.expect("the adaptation's report");
    assert_eq!(outcome.history.len(), 2, "the adaptation's epochs are the model's");
    // Every validation image with a lesion was measured after each epoch.
    assert_eq!(report.lesion_val_dice.len(), 2);
    assert!(report.lesion_val_dice.iter().all(|d| (0.0..=1.0).contains(d)), "{:?}", report.lesion_val_dice);
    assert_eq!(outcome.validation.n, 9);

    let info =
        ModelInfo::from_json(&std::fs::read_to_string(scratch.join("model/model.json")).unwrap()).unwrap();
    assert_eq!(info.network.architecture(), Architecture::EfficientNetLite0);
    assert_eq!((info.input.channels, info.input.width, info.input.height), (1, 224, 224));
    let bytes = std::fs::read(scratch.join("model/model-fp32.bin")).unwrap();
    let model = student_from_bytes(&info.network, bytes, &burn::prelude::Device::flex()).unwrap();
    // The shipped model on its own grey input, decided as the teacher's report is (uncalibrated,
    // threshold 0.5), answers exactly as the adapted teacher did on three-channel input.
    let val = pipeline::load_split(&info, &task_dir, "val", &Progress::hidden()).unwrap();
    let logits = bedside_train::trainer::predict_logits(&model, &info.input, &val, 4);
    let mut confusion = vec![vec![0usize; 3]; 3];
    for (p, example) in bedside_train::metrics::softmax(&logits, 1.0).iter().zip(&val.examples) {
        confusion[example.label][Task::Breast.decide(p, 0.5)] += 1;
    }
    assert_eq!(confusion, report.validation.confusion);
    assert_eq!(model.tap_blocks(), [2, 4, 10]);
    let card = std::fs::read_to_string(scratch.join("model/MODEL_CARD.md")).unwrap();
    assert!(card.contains("**Network (shipped):** EfficientNet-Lite0"), "{card}");
    assert!(!card.contains("Teacher (for distillation"), "the teacher is the model here");
    assert!(card.contains("Trained on the lesion outlines too") && card.contains("weight 1)"), "{card}");
    std::fs::remove_dir_all(&scratch).ok();
}
