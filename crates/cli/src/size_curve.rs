//! `bedside size-curve`: the model beside smaller candidates for its task, each measured as it ships.

use crate::model_dir::{Weights, load, record};
use bedside_model::artifact::ModelInfo;
use bedside_model::student::{Architecture, Student};
use bedside_train::sizes::{SizeCurve, SizePoint};
use std::path::{Path, PathBuf};

/// Measure a model and other model folders of the same task side by side on the val split, each as
/// it ships (int8 model.bin, its own input size, calibration, decision rule and mirror averaging):
/// parameters, multiply–accumulates per diagnosis, int8 size, accuracy and AUC. Records them in
/// model.json ("size_curve"), draws plots/size_curve.png, redraws MODEL_CARD.md and prints the
/// record as one line of JSON. For a card that must show why a larger network ships.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Another model folder of the same task (e.g. a smaller candidate's `--out`); repeat for more.
    #[arg(long = "against", value_name = "MODEL_DIR", required = true)]
    against: Vec<PathBuf>,
}

pub fn run(args: &Args) -> Result<(), String> {
    let dir = &args.target.model;
    let (mut info, model) = load(dir, Weights::Int8)?;
    // Every folder is read before any is measured: a wrong one fails at once.
    let mut others = Vec::new();
    for other in &args.against {
        let (other_info, other_model) = load(other, Weights::Int8)?;
        if other_info.task != info.task {
            return Err(format!(
                "{} is a {} model; {} is {}: compare models of one task",
                other.display(),
                other_info.task.name(),
                dir.display(),
                info.task.name()
            ));
        }
        others.push((other.as_path(), other_info, other_model));
    }
    let mut n = 0;
    let mut points = vec![measure(args, dir, &info, &model, true, &mut n)?];
    for (folder, other_info, other_model) in &others {
        points.push(measure(args, folder, other_info, other_model, false, &mut n)?);
    }
    points.sort_by_key(SizePoint::macs_per_diagnosis);
    let curve = SizeCurve { n, points };

    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| format!("could not create {}: {e}", plots.display()))?;
    bedside_train::card::plots::size_curve(
        &plots.join("size_curve.png"),
        &format!("{}: validation AUC against cost", info.task.title()),
        info.task.positive_class(),
        &curve.points,
    )
    .map_err(|e| e.to_string())?;
    record(dir, &mut info, "size_curve", curve, Weights::Int8)
}

/// One folder's point: its val split prepared for its own input, through the path that ships.
fn measure(
    args: &Args,
    folder: &Path,
    info: &ModelInfo,
    model: &Student,
    shipped: bool,
    n: &mut usize,
) -> Result<SizePoint, String> {
    let val = args.target.split(info, "val")?;
    let (probabilities, _) =
        bedside_train::quantise::probabilities(info, model, &val, Weights::Int8.arithmetic())
            .map_err(|e| e.to_string())?;
    let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
    let report =
        bedside_train::pipeline::evaluate_probabilities(info, &probabilities, &labels, &val.groups());
    if *n != 0 && *n != report.n {
        return Err(format!(
            "{} was measured on {} validation images, the others on {n}",
            folder.display(),
            report.n
        ));
    }
    *n = report.n;
    let weights = folder.join(Weights::Int8.file_name());
    let int8_bytes =
        std::fs::metadata(&weights).map_err(|e| format!("could not read {}: {e}", weights.display()))?.len();
    let (height, width) = (info.input.height as usize, info.input.width as usize);
    let config = &info.network;
    let network = match config.architecture() {
        Architecture::MobileNetV2 => format!("MobileNetV2 ×{}", config.width),
        Architecture::EfficientNetLite0 => "EfficientNet-Lite0".to_string(),
    };
    let point = SizePoint {
        network,
        folder: folder.display().to_string(),
        shipped,
        params: burn::module::Module::num_params(model),
        macs: model.macs(height, width),
        passes: if info.input.mirror_average { 2 } else { 1 },
        input: format!("{width} × {height}"),
        int8_bytes,
        accuracy: 0.0,
        balanced_accuracy: 0.0,
        auc: 0.0,
        positive_auc: 0.0,
        sensitivity: 0.0,
    };
    Ok(point.with_report(&report))
}
