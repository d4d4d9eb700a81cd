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
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    /// Of the positive class (pneumonia, mel, malignant).
    pub sensitivity: f64,
    /// Of every other class together: not called positive, and not left for review.
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
    pub coverage: f64,
    /// Accuracy and balanced accuracy of the answered ones.
    pub accuracy: f64,
    pub balanced_accuracy: f64,
}

/// The review rule measured on one labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub review: Review,
    /// Share of the images answered "uncertain".
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
