//! `bedside prune`: the pruning curve of a model folder, and the pruned model if one is worth shipping.

use crate::model_dir::{Weights, load, write_info};
use bedside_model::task::Task;
use bedside_train::Progress;
use bedside_train::prune::{self, PruneSettings};
use std::path::PathBuf;

/// Prune a trained model's channels at several ratios (ranked by their activity on training images),
/// fine-tune and recalibrate each, quantise it, and measure parameters, MACs, size and validation
/// AUC. Records the curve in model.json ("pruning"), MODEL_CARD.md and plots/pruning.png, and prints
/// it as one line of JSON. With --ship auto (the default), the most pruned point whose int8 validation
/// AUC, AUC of the positive class (pneumonia, mel, malignant) and accuracy stay within 0.005, 0.005 and
/// 0.01 of the trained network's replaces model-fp32.bin and model.bin; its card is rewritten, and
/// `bedside quantize`, `heatmaps` and `robustness` must then be rerun on it.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Shares of channels to remove, one point of the curve each (`--ratios 0.25 0.5` or
    /// `--ratios 0.25,0.5`).
    #[arg(long, num_args = 1.., value_delimiter = ',', default_values_t = [0.25, 0.5, 0.7])]
    ratios: Vec<f64>,
    /// Fine-tuning epochs at each ratio.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    #[arg(long, default_value_t = 5e-4)]
    learning_rate: f64,
    /// Training images the channels are ranked on.
    #[arg(long, default_value_t = 256)]
    score_images: usize,
    /// Training images int8 clipping is calibrated on.
    #[arg(long, default_value_t = 96)]
    calibration_images: usize,
    /// Augmented views per training image the trained network's outputs are distilled from.
    #[arg(long, default_value_t = 4)]
    views: usize,
    /// Weight of distillation from the trained network during fine-tuning (labels: 1 − this).
    #[arg(long, default_value_t = 0.7)]
    distill_alpha: f32,
    /// Which point replaces the folder's weights: `auto` (the rule above), `none` (record the curve
    /// only), or one of --ratios.
    #[arg(long, default_value = "auto")]
    ship: Ship,
    /// Stop each fine-tuning epoch after this many batches (smoke runs).
    #[arg(long)]
    max_batches: Option<usize>,
    /// Fine-tuning checkpoints [default: target/prune/<task>].
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue fine-tuning from the checkpoints in the run folder.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    if let Some(r) = args.ratios.iter().find(|r| !(**r > 0.0 && **r < 1.0)) {
        return Err(format!("--ratios: {r} is not a share between 0 and 1"));
    }
    let (mut info, model) = load(&args.target.model, Weights::Fp32)?;
    if info.task == Task::Gate {
        return Err("the gate is not pruned: it is already 4.3 M MACs".into());
    }
    if info.network.hidden.is_some() {
        return Err(format!("{} is already pruned; prune the trained model", args.target.model.display()));
    }
    if let Ship::Ratio(r) = args.ship
        && !args.ratios.contains(&r)
    {
        return Err(format!("--ship {r} is not one of --ratios"));
    }
    if args.ship != Ship::None && info.card["history"].is_null() {
        // Shipping rewrites the card, whose training section is drawn from this log.
        return Err(format!(
            "{}/model.json has no training history (card.history) to rewrite the card from; use --ship none",
            args.target.model.display()
        ));
    }
    let progress = Progress::default();
    let train = args.target.split(&info, "train")?;
    let val = args.target.split(&info, "val")?;
    let settings = PruneSettings {
        ratios: args.ratios.clone(),
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        score_images: args.score_images,
        calibration_images: args.calibration_images,
        views: args.views,
        distill_alpha: args.distill_alpha,
        distill_temperature: 4.0,
        max_batches: args.max_batches,
    };
    let run_dir =
        args.run_dir.clone().unwrap_or_else(|| PathBuf::from("target/prune").join(info.task.name()));
    let candidates = prune::curve(&info, &model, &train, &val, &settings, &run_dir, args.resume, &progress)
        .map_err(|e| e.to_string())?;
    let points: Vec<prune::Point> = candidates.iter().map(|c| c.point.clone()).collect();
    let (shipped, choice) = match args.ship {
        Ship::Auto => (prune::choose(&points), prune::Choice::Auto),
        Ship::None => (0, prune::Choice::Kept),
        Ship::Ratio(r) => (
            points.iter().position(|p| p.ratio == r).expect("checked against --ratios"),
            prune::Choice::Named,
        ),
    };
    let summary = prune::PruningSummary {
        shipped_ratio: points[shipped].ratio,
        points,
        choice,
        settings,
        command: crate::model_dir::invocation(),
    };

    let dir = &args.target.model;
    if shipped > 0 {
        let chosen = candidates.into_iter().nth(shipped).expect("chosen index is a candidate");
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| format!("could not write {}: {e}", path.display()))
        };
        write("model-fp32.bin", &chosen.fp32)?;
        write("model.bin", &chosen.int8)?;
        let validation = bedside_train::pipeline::evaluate_probabilities(
            &chosen.info,
            &chosen.fitted.probabilities,
            &chosen.fitted.labels,
            &chosen.fitted.groups,
        );
        info = chosen.info;
        // Measured on the weights just replaced.
        if let Some(card) = info.card.as_object_mut() {
            for stale in ["int8", "heat_maps", "robustness"] {
                card.remove(stale);
            }
        }
        let point = &summary.points[shipped];
        bedside_train::card::record_validation(
            &mut info,
            &validation,
            &train.class_counts(),
            point.params,
            point.fp32_bytes as u64,
        );
        info.card["training_commit"] = bedside_train::pipeline::commit().into();
        bedside_train::card::draw_plots(
            dir,
            &info,
            &validation,
            &chosen.fitted.probabilities,
            &chosen.fitted.labels,
        )
        .map_err(|e| e.to_string())?;
        progress.println(format!(
            "shipped the {:.0} % pruned network; now run `bedside quantize`, `bedside heatmaps` and \
             `bedside robustness` on {}",
            100.0 * point.ratio,
            dir.display()
        ));
    }
    info.card["pruning"] = serde_json::to_value(&summary).expect("summary serialises");
    bedside_train::card::pruning_plot(dir, &summary.points, shipped).map_err(|e| e.to_string())?;
    write_info(dir, &info)?;
    println!("{}", info.card["pruning"]);
    Ok(())
}

/// `--ship`: auto, none or a ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ship {
    Auto,
    None,
    Ratio(f64),
}

impl std::str::FromStr for Ship {
    type Err = String;

    fn from_str(s: &str) -> Result<Ship, String> {
        match s {
            "auto" => Ok(Ship::Auto),
            "none" => Ok(Ship::None),
            ratio => {
                ratio.parse().map(Ship::Ratio).map_err(|_| format!("{ratio:?}: use auto, none or a ratio"))
            }
        }
    }
}
