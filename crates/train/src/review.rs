//! Fitting and measuring the "uncertain: needs review" rule ([`bedside_model::review`]).
//!
//! The review margin is the one that leaves a chosen share of the fitting images — those whose
//! decision lies nearest a boundary ([`bedside_model::task::Task::decision_margin`]) — for review (out-of-fold
//! predictions from grouped cross-validation where they exist, else validation).
//! Measured, it gives the two readings the card reports: the answered images on their own, and
//! all images with an uncertain answer counted as wrong; and the risk–coverage curve, the accuracy
//! of the answered images as ever more of the least certain are left for review.

use bedside_model::artifact::ModelInfo;
use bedside_model::review::{MAX_MARGIN, Review};
use serde::{Deserialize, Serialize};

/// How far each image's answer lies from changing under `info`'s decision rule.
fn margins(info: &ModelInfo, probabilities: &[Vec<f32>]) -> Vec<f32> {
    let threshold = info.threshold.unwrap_or(0.5);
    probabilities.iter().map(|p| info.task.decision_margin(p, threshold)).collect()
}

/// The review rule that leaves (at most) `share` of these calibrated `probabilities` for review:
/// the margin sits halfway between the last decision margin inside and the first outside.
pub fn fit(info: &ModelInfo, probabilities: &[Vec<f32>], share: f64) -> Review {
    let mut distances = margins(info, probabilities);
    distances.sort_by(f32::total_cmp);
    let k = ((share * distances.len() as f64).floor() as usize).min(distances.len());
    let margin = match k {
        0 => 0.0,
        k if k == distances.len() => distances[k - 1] + 1.0,
        k => (distances[k - 1] + distances[k]) / 2.0,
    };
    Review { margin: margin.min(MAX_MARGIN) }
}

/// Accuracy-type figures of a set of answers (`None` = uncertain, counted as wrong).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub n: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub accuracy: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub balanced_accuracy: f64,
    /// Of the positive class (pneumonia, mel, malignant).
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub sensitivity: f64,
    /// Of every other class together: not called positive, and not left for review.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub specificity: f64,
}

fn figures(answers: &[Option<usize>], labels: &[usize], classes: usize, positive: usize) -> Figures {
    let n = labels.len();
    let mut right = vec![0usize; classes];
    let mut count = vec![0usize; classes];
    let (mut negatives, mut negatives_right) = (0usize, 0usize);
    for (&answer, &label) in answers.iter().zip(labels) {
        count[label] += 1;
        if answer == Some(label) {
            right[label] += 1;
        }
        if label != positive {
            negatives += 1;
            negatives_right += usize::from(answer.is_some_and(|a| a != positive));
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { f64::NAN } else { a as f64 / b as f64 };
    let present: Vec<f64> =
        (0..classes).filter(|&c| count[c] > 0).map(|c| ratio(right[c], count[c])).collect();
    Figures {
        n,
        accuracy: ratio(right.iter().sum(), n),
        balanced_accuracy: present.iter().sum::<f64>() / present.len().max(1) as f64,
        sensitivity: ratio(right[positive], count[positive]),
        specificity: ratio(negatives_right, negatives),
    }
}

/// One point of the risk–coverage curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoveragePoint {
    /// Share of images answered.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub coverage: f64,
    /// Accuracy and balanced accuracy of the answered ones.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub accuracy: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub balanced_accuracy: f64,
}

/// The review rule measured on one labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub review: Review,
    /// Share of the images answered "uncertain".
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub uncertain_share: f64,
    /// The answered images only.
    pub answered: Figures,
    /// Every image, an uncertain answer counted as wrong.
    pub all: Figures,
    /// Every image answered (no band), for comparison.
    pub without_band: Figures,
    /// Coverage 100 % down to 50 % in steps of 5 %, the least certain left out first.
    pub risk_coverage: Vec<CoveragePoint>,
}

/// Measures `info`'s review rule (which must be set) on calibrated `probabilities` with `labels`.
pub fn measure(info: &ModelInfo, probabilities: &[Vec<f32>], labels: &[usize]) -> Measured {
    let review = info.review.expect("measure a model with a review rule");
    let classes = info.classes.len();
    let positive = info.task.positive_index();
    let predictions: Vec<_> = probabilities.iter().map(|p| info.decide(p.clone())).collect();
    let answers: Vec<Option<usize>> = predictions.iter().map(|p| (!p.uncertain).then_some(p.label)).collect();
    let most_likely: Vec<Option<usize>> = predictions.iter().map(|p| Some(p.label)).collect();
    let answered: Vec<usize> = (0..labels.len()).filter(|&i| answers[i].is_some()).collect();
    let pick = |rows: &[usize]| -> (Vec<Option<usize>>, Vec<usize>) {
        (rows.iter().map(|&i| most_likely[i]).collect(), rows.iter().map(|&i| labels[i]).collect())
    };
    let (answered_answers, answered_labels) = pick(&answered);

    // Most certain first: the order in which a tighter or wider band would leave images out.
    let mut order: Vec<usize> = (0..labels.len()).collect();
    let d = margins(info, probabilities);
    order.sort_by(|&a, &b| d[b].total_cmp(&d[a]));
    let risk_coverage = (0..=10)
        .map(|step| {
            let coverage = 1.0 - 0.05 * step as f64;
            let kept = ((coverage * labels.len() as f64).round() as usize).max(1);
            let (a, l) = pick(&order[..kept]);
            let f = figures(&a, &l, classes, positive);
            CoveragePoint { coverage, accuracy: f.accuracy, balanced_accuracy: f.balanced_accuracy }
        })
        .collect();
    Measured {
        review,
        uncertain_share: 1.0 - answered.len() as f64 / labels.len().max(1) as f64,
        answered: figures(&answered_answers, &answered_labels, classes, positive),
        all: figures(&answers, labels, classes, positive),
        without_band: figures(&most_likely, labels, classes, positive),
        risk_coverage,
    }
}

/// What `bedside review-band` recorded in `model.json` ("review"): the card's section is drawn from
/// it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewSummary {
    /// Share of the fitting images left for review, and what the margin was fitted on.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub share: f64,
    pub fitted_on: String,
    /// Measured on the val split with the shipped int8 weights.
    pub validation: Measured,
    /// Measured on the out-of-fold predictions it was fitted on, where it was.
    pub out_of_fold: Option<Measured>,
}

/// The model card's section on the review rule; `command` fitted and measured it.
pub fn card_section(info: &ModelInfo, summary: &ReviewSummary, command: &str) -> String {
    let (share, fitted_on, val, oof) =
        (summary.share, summary.fitted_on.as_str(), &summary.validation, summary.out_of_fold.as_ref());
    let margin = val.review.margin;
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    let n3 = |x: f64| if x.is_finite() { format!("{x:.3}") } else { "n/a".into() };
    let positive = info.task.positive_class();
    let row = |name: &str, f: &Figures| {
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
    out + &format!("\nMeasured with `{command}`.\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chest(threshold: f32) -> ModelInfo {
        let text = include_str!("../../../models/chest/model.json");
        let mut info = ModelInfo::from_json(text).unwrap();
        info.threshold = Some(threshold);
        info
    }

    #[test]
    fn the_rule_holds_the_share_nearest_the_threshold() {
        let mut info = chest(0.5);
        let probabilities: Vec<Vec<f32>> =
            (1..100).map(|i| i as f32 / 100.0).map(|p| vec![1.0 - p, p]).collect();
        info.review = Some(fit(&info, &probabilities, 0.1));
        let unsure: Vec<f32> =
            probabilities.iter().filter(|p| info.decide(p.to_vec()).uncertain).map(|p| p[1]).collect();
        // floor(0.1 × 99) = 9 images, the nine nearest 0.5.
        assert_eq!(unsure, [0.46, 0.47, 0.48, 0.49, 0.5, 0.51, 0.52, 0.53, 0.54]);
        assert_eq!(fit(&info, &probabilities, 0.0), Review { margin: 0.0 }, "no share, no review");
        let measured = measure(
            &info,
            &probabilities,
            &probabilities.iter().map(|p| usize::from(p[1] >= 0.5)).collect::<Vec<_>>(),
        );
        assert!((measured.uncertain_share - 9.0 / 99.0).abs() < 1e-12);
        assert_eq!(measured.answered.n, 90);
        assert_eq!(measured.risk_coverage.len(), 11);
    }

    #[test]
    fn uncertain_counts_as_wrong_for_all_and_is_left_out_of_answered() {
        // Three classes, positive = 2; answers: right, uncertain, wrong, right.
        let answers = [Some(0), None, Some(2), Some(2)];
        let labels = [0, 1, 1, 2];
        let all = figures(&answers, &labels, 3, 2);
        assert_eq!(all.accuracy, 0.5);
        assert_eq!(all.sensitivity, 1.0);
        // Negatives: label 0 answered 0 (right), label 1 uncertain (wrong), label 1 called 2 (wrong).
        assert!((all.specificity - 1.0 / 3.0).abs() < 1e-12);
        assert!((all.balanced_accuracy - (1.0 + 0.0 + 1.0) / 3.0).abs() < 1e-12);
    }
}
