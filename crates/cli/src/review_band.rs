//! `bedside review-band`: fits and measures when a model answers "uncertain: needs review".

use crate::model_dir::{Weights, load, record};
use bedside_model::artifact::ModelInfo;
use bedside_train::metrics;
use bedside_train::review;
use std::path::{Path, PathBuf};

/// Fit when the model answers "uncertain: needs review" instead of a class: where its calibrated
/// probabilities lie within a margin (in log-odds) of another answer — for two classes, a band of
/// the positive class's probability around the operating threshold. The margin leaves --share of
/// the fitting images for review: out-of-fold logits from `bedside train --cv` when given
/// (calibrated with their own fitted temperature), else the val split. Then measured on the val
/// split with the shipped int8 weights. Writes the margin into model.json ("review"), the figures
/// and the risk–coverage curve into the card (plots/risk_coverage.png), and prints them as one
/// line of JSON.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Share of the fitting images left for review (at most 0.15: more would leave too much for
    /// people to check).
    #[arg(long, default_value_t = 0.10, value_parser = share)]
    share: f64,
    /// Fit on these out-of-fold logits (`<run-dir>/cv/out-of-fold.csv` from `train --cv`) instead of
    /// the val split.
    #[arg(long, value_name = "CSV")]
    out_of_fold: Option<PathBuf>,
    /// Remove the review rule: the model always names a class again.
    #[arg(long, conflicts_with_all = ["share", "out_of_fold"])]
    remove: bool,
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=0.15).contains(&s) => Ok(s),
        Ok(s) => Err(format!("{s} is outside 0–0.15")),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    let dir = &args.target.model;
    let (mut info, model) = load(dir, Weights::Int8)?;
    if info.task == bedside_model::task::Task::Gate {
        return Err(format!("{} is the trust gate: it refuses, it has no review rule", dir.display()));
    }
    if args.remove {
        info.review = None;
        info.card.as_object_mut().map(|card| card.remove("review"));
        std::fs::remove_file(dir.join("plots/risk_coverage.png")).ok();
        return crate::model_dir::write_info(dir, &info);
    }
    let (fitting, fitted_on) = match &args.out_of_fold {
        Some(csv) => {
            let (probabilities, labels) = out_of_fold(csv, &info)?;
            (Some((probabilities, labels)), format!("out-of-fold predictions ({})", csv.display()))
        }
        None => (None, "the val split".to_string()),
    };
    let val = args.target.split(&info, "val")?;
    let (val_probabilities, _) =
        bedside_train::quantise::probabilities(&info, &model, &val, Weights::Int8.arithmetic())
            .map_err(|e| e.to_string())?;
    let val_labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
    let fit_on = fitting.as_ref().map_or(&val_probabilities, |(p, _)| p);
    info.review = Some(review::fit(&info, fit_on, args.share));
    let validation = review::measure(&info, &val_probabilities, &val_labels);
    let out_of_fold = fitting.as_ref().map(|(p, l)| review::measure(&info, p, l));

    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| format!("could not create {}: {e}", plots.display()))?;
    let mut curves = vec![("validation", &validation)];
    curves.extend(out_of_fold.as_ref().map(|m| ("out of fold", m)));
    bedside_train::card::plots::risk_coverage(
        &plots.join("risk_coverage.png"),
        &format!("{}: accuracy of the answered images", info.task.title()),
        &curves
            .iter()
            .map(|(name, m)| (*name, m.risk_coverage.as_slice(), 1.0 - m.uncertain_share))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| e.to_string())?;
    let summary = review::ReviewSummary { share: args.share, fitted_on, validation, out_of_fold };
    record(dir, &mut info, "review", summary, Weights::Int8)
}

/// Calibrated probabilities and labels from `train --cv`'s out-of-fold CSV, with a temperature
/// fitted on them (the fold models are not the shipped one, so its temperature does not apply).
pub fn out_of_fold(csv: &Path, info: &ModelInfo) -> Result<(Vec<Vec<f32>>, Vec<usize>), String> {
    let text = std::fs::read_to_string(csv).map_err(|e| format!("could not read {}: {e}", csv.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let expected: Vec<String> = ["file", "label", "fold"]
        .into_iter()
        .map(String::from)
        .chain(info.classes.iter().map(|c| format!("logit_{c}")))
        .collect();
    if header != expected {
        return Err(format!("{}: the header is {header:?}, expected {expected:?}", csv.display()));
    }
    let (mut logits, mut labels) = (Vec::new(), Vec::new());
    for (row, line) in lines.enumerate() {
        let bad = |what: &str| format!("{} line {}: {what}", csv.display(), row + 2);
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != expected.len() {
            return Err(bad(&format!("{} fields, expected {}", fields.len(), expected.len())));
        }
        let label = info.classes.iter().position(|c| c == fields[1]).ok_or_else(|| bad("unknown label"))?;
        let values: Result<Vec<f32>, _> = fields[3..].iter().map(|v| v.parse::<f32>()).collect();
        logits.push(values.map_err(|_| bad("a logit is not a number"))?);
        labels.push(label);
    }
    if logits.is_empty() {
        return Err(format!("{}: no rows", csv.display()));
    }
    let temperature = metrics::fit_temperature(&logits, &labels);
    Ok((metrics::softmax(&logits, temperature), labels))
}
