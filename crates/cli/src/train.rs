//! `bedside train`: train a task's student on the shared data and write its artifact.

use bedside_model::input::Intensity;
use bedside_model::student::{Architecture, StudentConfig};
use bedside_model::task::Task;
use bedside_train::Progress;
use bedside_train::augment::Augment;
use bedside_train::distill::TeacherSettings;
use bedside_train::gate::GateData;
use bedside_train::pipeline::{self, Job};
use bedside_train::trainer::{DistillSettings, TrainSettings};
use std::path::PathBuf;

/// Train the student for one task on its train split, calibrate it and choose its operating threshold
/// on the val split, and write model.json + model-fp32.bin. Prints one line of JSON with the
/// validation metrics (95 % bootstrap intervals). Checkpoints after every epoch; --resume continues.
#[derive(clap::Args)]
pub struct Args {
    /// Which model: chest, skin, breast, or gate (the trust gate that routes pictures to them).
    #[arg(long, value_parser = parse_task)]
    task: Task,
    /// The task folder (images/ + labels.csv) [default: $BEDSIDE_DATA/<task folder>; the gate reads
    /// all three task folders from $BEDSIDE_DATA].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where to write the artifact [default: models/<task>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Checkpoints and logs [default: target/train/<task>].
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue from the last checkpoint in the run folder.
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value_t = 15, value_parser = positive)]
    epochs: usize,
    #[arg(long, default_value_t = 32, value_parser = positive)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    learning_rate: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop each epoch after N batches (a quick smoke run).
    #[arg(long, value_name = "N", value_parser = positive)]
    max_batches: Option<usize>,
    /// Weight each class in the loss by (N / (K · n_class))^½ (sqrt), or not at all (none). Weights
    /// raise the rare classes' recall at the cost of the common ones'; the stored thresholds do that
    /// job too.
    #[arg(long, value_enum, default_value_t = ClassWeights::Sqrt)]
    class_weights: ClassWeights,
    /// How grey levels are standardised before the network sees them (recorded in model.json, so
    /// every front end does the same): as-shown, or equalised (histogram equalisation, which makes
    /// the input independent of exposure, contrast and gamma).
    #[arg(long, value_enum, default_value_t = IntensityArg::AsShown)]
    intensity: IntensityArg,
    /// Add Gaussian pixel noise to the training views, with a standard deviation drawn per view
    /// between 0 and SIGMA (a fraction of full scale, e.g. 0.08); 0 adds none.
    #[arg(long, value_name = "SIGMA", default_value_t = 0.0)]
    noise: f32,
    /// Give this share of the training views (0–1) one acquisition shift first: noise, blur, lower
    /// contrast, brightness or gamma either way, or JPEG, at a level drawn between none and the
    /// shift panel's severity 3 (`bedside robustness`); 0 gives none.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = share)]
    shift_augment: f32,
    /// Distil from EfficientNet-Lite0 (ImageNet weights), first adapted to the task on cached features.
    #[arg(long)]
    distill: bool,
    /// Distillation temperature.
    #[arg(long, default_value_t = 4.0)]
    temperature: f32,
    /// Weight of the distillation term (the label term gets 1 - alpha).
    #[arg(long, default_value_t = 0.7)]
    alpha: f32,
    /// Fixed augmented views per training image whose teacher features are cached.
    #[arg(long, default_value_t = 3, value_parser = positive)]
    views: usize,
    /// The teacher's stages from this one (0-6) on train; the earlier ones are frozen and cached.
    #[arg(long, default_value_t = 5)]
    teacher_stage: usize,
    #[arg(long, default_value_t = 6, value_parser = positive)]
    teacher_epochs: usize,
    /// Train the teacher (or Lite0) on the task's lesion outlines too, with this weight on the
    /// outline loss beside the classification loss: a small decoder on its maps learns the masks,
    /// so the trained stages learn where the lesion is (breast and skin; --teacher-stage 2 to 5). 0: none.
    #[arg(long, value_name = "WEIGHT", default_value_t = 0.0, value_parser = weight)]
    lesion_weight: f64,
    /// Batch size for adapting the teacher [default: --batch-size]. On a few hundred images a
    /// smaller batch gives the teacher more steps.
    #[arg(long, value_name = "N", value_parser = positive)]
    teacher_batch_size: Option<usize>,
    /// Instead of training the shipped model, run K-fold grouped cross-validation on the train split
    /// (checkpoints in <run-dir>/cv/fold-N), write <out>/cv.json and the out-of-fold logits to
    /// <run-dir>/cv/out-of-fold.csv.
    #[arg(long, value_name = "K")]
    cv: Option<usize>,
    /// Start from the student of another run folder (e.g. a chest run's --run-dir) instead of
    /// random weights: transfer learning. Only the number of classes may differ.
    #[arg(long, value_name = "RUN_DIR")]
    init_from: Option<PathBuf>,
    /// Which network ships: the small student, or EfficientNet-Lite0 (4.0 M parameters, ImageNet
    /// weights) adapted as the teacher is (--views, --teacher-stage, --teacher-epochs,
    /// --teacher-batch-size) — for a task no student reaches the targets on.
    #[arg(long, value_enum, default_value_t = NetworkArg::Student)]
    network: NetworkArg,
    /// Gate only: at most this many training images of each task (chest, skin, breast), spread
    /// evenly over its train split; the photographs and other medical images are always all used.
    #[arg(long, value_name = "N", default_value_t = GateData::default().per_task_train, value_parser = positive)]
    gate_train_images: usize,
    /// Gate only: at most this many validation images of each task (the refusal floor is chosen
    /// on them).
    #[arg(long, value_name = "N", default_value_t = GateData::default().per_task_val, value_parser = positive)]
    gate_val_images: usize,
    /// Gate only: views of each training photograph (the whole picture, then random crops; the
    /// `other` class).
    #[arg(long, value_name = "N", default_value_t = GateData::default().train_views, value_parser = positive)]
    gate_photo_views: usize,
    /// Gate only: views of each training frame of the DICOM corpus's other medical images (the
    /// whole frame, then random crops; the `other` class).
    #[arg(long, value_name = "N", default_value_t = GateData::default().train_scan_views, value_parser = positive)]
    gate_scan_views: usize,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum NetworkArg {
    /// MobileNetV2-style, width 0.5 (about 0.67 M parameters).
    Student,
    /// EfficientNet-Lite0 from its ImageNet weights, its later stages and a new head trained.
    Lite0,
}

/// `--intensity`: how grey levels are standardised before the network sees them.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum IntensityArg {
    /// As the picture is drawn (the file's default window).
    AsShown,
    /// Histogram-equalised: exposure, contrast and gamma no longer change the input.
    Equalised,
}

impl From<IntensityArg> for Intensity {
    fn from(arg: IntensityArg) -> Intensity {
        match arg {
            IntensityArg::AsShown => Intensity::AsShown,
            IntensityArg::Equalised => Intensity::Equalised,
        }
    }
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum ClassWeights {
    Sqrt,
    None,
}

/// A count that must be at least 1 (a batch of 0 images would divide by zero deep in training).
fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

fn share(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err("a share of the views: between 0 and 1".into()),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

fn weight(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("a loss weight: 0 or more".into()),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

pub fn parse_task(name: &str) -> Result<Task, String> {
    Task::from_name(name).ok_or_else(|| format!("unknown task {name:?}: use chest, skin, breast or gate"))
}

pub fn run(args: &Args) -> Result<(), String> {
    let task = args.task;
    let (_, _, channels) = task.input_shape();
    let mut network = StudentConfig::new(task.classes().len()).with_in_channels(channels as usize);
    if task == Task::Gate {
        // Telling kinds of picture apart needs far less than a diagnosis: a narrower network.
        network = network.with_width(0.35).with_head_channels(256);
        if args.distill || args.cv.is_some() || args.init_from.is_some() {
            return Err("the gate trains without --distill, --cv and --init-from".into());
        }
    }
    let lite0 = args.network == NetworkArg::Lite0;
    if lite0 {
        if task == Task::Gate || args.distill || args.init_from.is_some() {
            return Err("--network lite0 trains a diagnosis model from ImageNet weights: no gate, \
                        --distill or --init-from"
                .into());
        }
        network = StudentConfig::lite0(task.classes().len(), channels as usize);
    }
    let weighted = args.class_weights == ClassWeights::Sqrt;
    let settings = TrainSettings {
        network,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        seed: args.seed,
        augment: Augment {
            noise: args.noise,
            shift_share: args.shift_augment,
            ..Augment::standard(task.mirror_is_valid())
        },
        intensity: args.intensity.into(),
        class_weights: weighted,
        max_batches: args.max_batches,
        distillation: args
            .distill
            .then_some(DistillSettings { temperature: args.temperature, alpha: args.alpha }),
        gate_data: (task == Task::Gate).then(|| GateData {
            per_task_train: args.gate_train_images,
            per_task_val: args.gate_val_images,
            train_views: args.gate_photo_views,
            train_scan_views: args.gate_scan_views,
            ..Default::default()
        }),
    };
    let teacher = (args.distill || lite0).then_some(TeacherSettings {
        views: args.views,
        stage: args.teacher_stage,
        epochs: args.teacher_epochs,
        batch_size: args.teacher_batch_size.unwrap_or(args.batch_size),
        learning_rate: 1e-3,
        seed: args.seed,
        class_weights: weighted,
        lesion_weight: args.lesion_weight,
    });
    let job = Job {
        task,
        data_dir: args.data.clone().unwrap_or_else(|| bedside_train::data::default_dir(task)),
        run_dir: args.run_dir.clone().unwrap_or_else(|| PathBuf::from("target/train").join(task.name())),
        out_dir: Some(args.out.clone().unwrap_or_else(|| PathBuf::from("models").join(task.name()))),
        settings,
        resume: args.resume,
        command: crate::model_dir::invocation(),
        teacher,
        init_from: args.init_from.clone(),
    };
    if let Some(k) = args.cv {
        return cross_validate(&job, k);
    }
    let outcome = pipeline::run(&job, &Progress::default()).map_err(|e| e.to_string())?;
    let summary = serde_json::json!({
        "task": task.name(),
        "temperature": outcome.info.temperature,
        "threshold": outcome.info.threshold,
        "validation": outcome.validation,
        "teacher_validation": outcome.teacher.map(|t| t.validation),
    });
    println!("{summary}");
    Ok(())
}

fn cross_validate(job: &Job, k: usize) -> Result<(), String> {
    if k < 2 {
        return Err(format!("--cv needs at least 2 folds, got {k}"));
    }
    let progress = Progress::default();
    let report = if job.settings.network.architecture() == Architecture::EfficientNetLite0 {
        let settings = job.teacher.as_ref().expect("--network lite0 sets the teacher's settings");
        bedside_train::cv::cross_validate_lite0(
            job.task,
            &job.data_dir,
            &job.settings.augment,
            settings,
            k,
            &job.run_dir,
            &progress,
        )
    } else {
        if job.teacher.is_some() {
            return Err(
                "--cv runs without --distill (a teacher adapted on every fold is not implemented)".into()
            );
        }
        let (spec, train, _) = pipeline::load_data(job.task, &job.settings, &job.data_dir, &progress)
            .map_err(|e| e.to_string())?;
        let start = job.start().map_err(|e| e.to_string())?;
        bedside_train::cv::cross_validate(
            &job.settings,
            start.as_ref().map(|(model, _)| model),
            &spec,
            &train,
            k,
            &job.run_dir.join("cv"),
            job.resume,
            &progress,
        )
    }
    .map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&report).expect("report serialises");
    let oof = job.run_dir.join("cv").join("out-of-fold.csv");
    let csv = bedside_train::cv::out_of_fold_csv(&report.out_of_fold, job.task.classes());
    std::fs::write(&oof, csv).map_err(|e| format!("could not write {}: {e}", oof.display()))?;
    eprintln!("out-of-fold logits: {}", oof.display());
    if let Some(out) = &job.out_dir {
        std::fs::create_dir_all(out).map_err(|e| format!("could not create {}: {e}", out.display()))?;
        let path = out.join("cv.json");
        std::fs::write(&path, &json).map_err(|e| format!("could not write {}: {e}", path.display()))?;
        if out.join("model.json").is_file() {
            // A model folder: its card records the cross-validation of its recipe.
            let (text, _) = crate::model_dir::read(out, crate::model_dir::Weights::Fp32)?;
            let mut info = bedside_model::artifact::ModelInfo::from_json(&text)
                .map_err(|e| format!("{}: {e}", out.join("model.json").display()))?;
            info.card["cross_validation"] = serde_json::to_value(&report).expect("report serialises");
            info.card["cross_validation"]["command"] = job.command.clone().into();
            crate::model_dir::write_info(out, &info)?;
        }
    }
    println!("{json}");
    Ok(())
}
