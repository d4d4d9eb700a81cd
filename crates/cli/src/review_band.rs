//! `bedside review-band`: fits and measures when a model answers "uncertain: needs review".

use crate::model_dir::{Weights, load, record};
use bedside_model::artifact::ModelInfo;
use bedside_train::metrics;
use bedside_train::review::{self, Measured};
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
        crate::model_dir::write_info(dir, &info)?;
        std::fs::remove_file(dir.join("plots/risk_coverage.png")).ok();
        return bedside_train::card::set_section(dir, "review", "").map_err(|e| e.to_string());
    }
    let (fitting, fitted_on) = match &args.out_of_fold {
        Some(csv) => {
            let (probabilities, labels) = out_of_fold(csv, &info)?;
            (Some((probabilities, labels)), format!("out-of-fold predictions ({})", csv.display()))
        }
        None => (None, "the val split".to_string()),
    };
    let val = args.target.split(&info, "val")?;
    let (val_probabilities, _) = bedside_train::quantise::probabilities(&info, &model, &val);
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
    let summary = serde_json::json!({
        "share": args.share,
        "fitted_on": fitted_on,
        "validation": validation,
        "out_of_fold": out_of_fold,
    });
    let section = card_section(&info, args.share, &fitted_on, &validation, out_of_fold.as_ref());
    record(dir, &mut info, "review", summary, Weights::Int8, ("review", &section))
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

fn card_section(
    info: &ModelInfo,
    share: f64,
    fitted_on: &str,
    val: &Measured,
    oof: Option<&Measured>,
) -> String {
    let margin = val.review.margin;
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    let n3 = |x: f64| if x.is_finite() { format!("{x:.3}") } else { "n/a".into() };
    let positive = info.task.positive_class();
    let row = |name: &str, f: &review::Figures| {
        format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            f.n,
            n3(f.accuracy),
            n3(f.balanced_accuracy),
            n3(f.sensitivity),
            n3(f.specificity)
        )
    };
    let rule = match (info.classes.len(), info.threshold) {
        (2, Some(threshold)) => {
            let (lo, hi) = val.review.band(threshold);
            format!(
                "the calibrated probability of {positive} lies between {} and {}",
                n3(lo as f64),
                n3(hi as f64)
            )
        }
        _ => format!(
            "the calibrated probabilities lie within {margin:.2} log-odds of another answer (the {positive} \
             threshold, or the runner-up class)"
        ),
    };
    let mut out = format!(
        "## Uncertain: needs review\n\n\
         Where {rule}, the model answers \"uncertain: needs review\" and names the most likely class \
         beside it, in the app and in `bedside predict` (`\"label\": \"uncertain\"`, `\"most_likely\"`). \
         The margin ({margin:.3} log-odds) leaves for review the {share} of {fitted_on} nearest a \
         decision boundary. On the val split ({n} images, shipped int8 weights) it holds {held}.\n\n\
         | on validation | images | accuracy | balanced accuracy | sensitivity ({positive}) | specificity |\n\
         |---|---:|---:|---:|---:|---:|\n",
        share = pct(share),
        n = val.all.n,
        held = pct(val.uncertain_share),
    );
    out += &row("every image answered (no review)", &val.without_band);
    out += &row("answered images only", &val.answered);
    out += &row("every image, uncertain counted as wrong", &val.all);
    if let Some(oof) = oof {
        out += &format!(
            "\nOn the out-of-fold predictions it was fitted on ({} images) it holds {}; the answered \
             ones reach accuracy {} (balanced {}) against {} with every image answered.\n",
            oof.all.n,
            pct(oof.uncertain_share),
            n3(oof.answered.accuracy),
            n3(oof.answered.balanced_accuracy),
            n3(oof.without_band.accuracy),
        );
    }
    out += "\n![Risk–coverage: accuracy of the answered images against the share answered](plots/risk_coverage.png)\n\n\
            | answered | accuracy | balanced accuracy |\n|---:|---:|---:|\n";
    for p in val.risk_coverage.iter().step_by(2) {
        out += &format!("| {} | {} | {} |\n", pct(p.coverage), n3(p.accuracy), n3(p.balanced_accuracy));
    }
    out + "\nMeasured with `bedside review-band`, the command recorded in `model.json` (\"review\").\n"
}
