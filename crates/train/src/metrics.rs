//! Classification metrics with bootstrap confidence intervals, and calibration.

use crate::rng::Rng;
use serde::Serialize;

/// Area under the ROC curve of `scores` for `positive` labels (Mann–Whitney, ties counted half).
/// `None` when one class is absent.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut n_pos) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0; // average rank of the tie block
        for &k in &order[i..=j] {
            if positive[k] {
                rank_sum += mid_rank;
                n_pos += 1;
            }
        }
        i = j + 1;
    }
    let n_neg = scores.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    Some((rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos * n_neg) as f64)
}

/// ROC curve points (false positive rate, true positive rate) from the highest threshold down.
pub fn roc_curve(scores: &[f32], positive: &[bool]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n_pos = positive.iter().filter(|&&p| p).count().max(1) as f64;
    let n_neg = (positive.len() as f64 - n_pos).max(1.0);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    for (idx, &k) in order.iter().enumerate() {
        if positive[k] {
            tp += 1.0
        } else {
            fp += 1.0
        }
        let last_of_tie = order.get(idx + 1).is_none_or(|&n| scores[n] != scores[k]);
        if last_of_tie {
            points.push((fp / n_neg, tp / n_pos));
        }
    }
    points
}

/// Softmax of each row of logits divided by `temperature` (the model's own calibration, row by row).
pub fn softmax(logits: &[Vec<f32>], temperature: f32) -> Vec<Vec<f32>> {
    logits.iter().map(|row| bedside_model::infer::calibrated(row, temperature)).collect()
}

/// Mean negative log-likelihood of the labels.
pub fn nll(probabilities: &[Vec<f32>], labels: &[usize]) -> f64 {
    let total: f64 = probabilities.iter().zip(labels).map(|(p, &y)| -(p[y].max(1e-12) as f64).ln()).sum();
    total / labels.len().max(1) as f64
}

/// The temperature that minimises validation NLL (golden-section search on log T in [1/10, 10]).
pub fn fit_temperature(logits: &[Vec<f32>], labels: &[usize]) -> f32 {
    let loss = |log_t: f64| nll(&softmax(logits, log_t.exp() as f32), labels);
    let (mut a, mut b) = ((0.1f64).ln(), (10.0f64).ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if loss(c) < loss(d) { b = d } else { a = c }
    }
    ((a + b) / 2.0).exp() as f32
}

/// Expected calibration error of the top-label confidence over `bins` equal-width bins.
pub fn ece(probabilities: &[Vec<f32>], labels: &[usize], bins: usize) -> f64 {
    let mut conf = vec![0.0; bins];
    let mut hits = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (p, &y) in probabilities.iter().zip(labels) {
        let (top, &c) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("classes");
        let bin = ((c * bins as f32) as usize).min(bins - 1);
        conf[bin] += c as f64;
        hits[bin] += (top == y) as u8 as f64;
        count[bin] += 1;
    }
    let n = labels.len().max(1) as f64;
    (0..bins).filter(|&b| count[b] > 0).map(|b| (conf[b] - hits[b]).abs() / n).sum()
}

/// The ECE a perfectly calibrated model with these very probabilities would show on this many
/// images: labels are drawn from the probabilities themselves (consistency resampling, Bröcker and
/// Smith 2007), `resamples` times. ECE over equal-width bins is biased upwards on small sets (about
/// 0.1 on 80 images), so a measured ECE is only evidence of miscalibration where it lies above this
/// range.
pub fn ece_if_calibrated(probabilities: &[Vec<f32>], bins: usize, resamples: usize) -> Estimate {
    let mut rng = Rng::new(2025);
    let mut labels = vec![0usize; probabilities.len()];
    let draws: Vec<f64> = (0..resamples)
        .map(|_| {
            for (label, p) in labels.iter_mut().zip(probabilities) {
                let u = rng.unit() * p.iter().sum::<f32>();
                let mut cumulative = 0.0;
                *label = p.len() - 1;
                for (c, &q) in p.iter().enumerate() {
                    cumulative += q;
                    if u < cumulative {
                        *label = c;
                        break;
                    }
                }
            }
            ece(probabilities, &labels, bins)
        })
        .collect();
    let mean = draws.iter().sum::<f64>() / draws.len().max(1) as f64;
    Estimate::from_draws(mean, draws)
}

/// Calibration curve: (mean confidence, accuracy, count) per non-empty bin.
pub fn reliability(probabilities: &[Vec<f32>], labels: &[usize], bins: usize) -> Vec<(f64, f64, usize)> {
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for (p, &y) in probabilities.iter().zip(labels) {
        let (top, &c) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("classes");
        let bin = ((c * bins as f32) as usize).min(bins - 1);
        acc[bin].0 += c as f64;
        acc[bin].1 += (top == y) as u8 as f64;
        acc[bin].2 += 1;
    }
    acc.into_iter().filter(|b| b.2 > 0).map(|(c, h, n)| (c / n as f64, h / n as f64, n)).collect()
}

/// Reads a number that serde_json wrote as `null` because it was NaN (a rate over no images, an
/// AUC over one class), as NaN again: recorded reports must read back as they were measured.
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// Point estimate with a 95 % percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Estimate {
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub value: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub low: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub high: f64,
}

impl Estimate {
    /// `value` with the 2.5th and 97.5th percentiles of `draws` (non-finite draws left out).
    pub fn from_draws(value: f64, draws: impl IntoIterator<Item = f64>) -> Estimate {
        let mut v: Vec<f64> = draws.into_iter().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v.get(((v.len() as f64 - 1.0) * f).round() as usize).copied().unwrap_or(f64::NAN);
        Estimate { value, low: q(0.025), high: q(0.975) }
    }
}

/// The mean of per-image `values` with a 95 % interval from resampling whole `groups` (patient,
/// lesion or near-duplicate cluster) with replacement `resamples` times, so that near-copies of one
/// lesion do not narrow the interval. Seeded: the same inputs give the same interval.
pub fn grouped_mean<G: Ord>(values: &[f64], groups: &[G], resamples: usize) -> Estimate {
    assert_eq!(values.len(), groups.len(), "one group per value");
    let mut by_group: std::collections::BTreeMap<&G, (f64, f64)> = std::collections::BTreeMap::new();
    for (v, g) in values.iter().zip(groups) {
        let entry = by_group.entry(g).or_default();
        entry.0 += v;
        entry.1 += 1.0;
    }
    let sums: Vec<(f64, f64)> = by_group.into_values().collect();
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let mut rng = Rng::new(2024);
    let draws = (0..resamples).map(|_| {
        let (total, n) = (0..sums.len()).fold((0.0, 0.0), |(t, n), _| {
            let (s, c) = sums[rng.below(sums.len())];
            (t + s, n + c)
        });
        total / n
    });
    Estimate::from_draws(mean, draws.collect::<Vec<_>>())
}

/// The metrics of one set of predictions (probabilities are calibrated ones; `predicted` follows
/// the task's decision rule).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub n: usize,
    pub accuracy: Estimate,
    pub balanced_accuracy: Estimate,
    /// Binary AUC of the positive class for two classes, macro one-vs-rest otherwise.
    pub auc: Estimate,
    /// Of the positive class (pneumonia, mel, malignant) against the rest.
    pub positive_auc: Estimate,
    pub sensitivity: Estimate,
    pub specificity: Estimate,
    pub precision: Estimate,
    pub f1: Estimate,
    pub per_class_recall: Vec<f64>,
    /// Each class's recall with its interval (absent from reports written before they were kept).
    #[serde(default)]
    pub per_class_recall_ci: Vec<Estimate>,
    /// The groups (patients, lesions, photographs, near-duplicate clusters) the intervals resampled
    /// whole; 0 in reports written when the intervals resampled single images.
    #[serde(default)]
    pub groups: usize,
    pub confusion: Vec<Vec<usize>>,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub ece: f64,
    /// What a perfectly calibrated model would measure here ([`ece_if_calibrated`]); absent from
    /// reports written before it was added.
    #[serde(default)]
    pub ece_if_calibrated: Option<Estimate>,
}

struct Point {
    accuracy: f64,
    balanced_accuracy: f64,
    auc: f64,
    positive_auc: f64,
    sensitivity: f64,
    specificity: f64,
    precision: f64,
    f1: f64,
    /// Each class's recall (NaN where the class has no image).
    recalls: Vec<f64>,
}

fn point(p: &[Vec<f32>], labels: &[usize], predicted: &[usize], positive: usize, idx: &[usize]) -> Point {
    let classes = p.first().map_or(0, Vec::len);
    let mut confusion = vec![vec![0usize; classes]; classes];
    for &i in idx {
        confusion[labels[i]][predicted[i]] += 1;
    }
    let n = idx.len().max(1) as f64;
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let recalls: Vec<f64> = (0..classes)
        .map(|c| {
            let total: usize = confusion[c].iter().sum();
            if total > 0 { confusion[c][c] as f64 / total as f64 } else { f64::NAN }
        })
        .collect();
    let present: Vec<f64> = recalls.iter().copied().filter(|r| r.is_finite()).collect();
    let auc_of = |class: usize| {
        let scores: Vec<f32> = idx.iter().map(|&i| p[i][class]).collect();
        let truth: Vec<bool> = idx.iter().map(|&i| labels[i] == class).collect();
        roc_auc(&scores, &truth)
    };
    let aucs: Vec<f64> = (0..classes).filter_map(auc_of).collect();
    let positive_auc = auc_of(positive).unwrap_or(f64::NAN);
    let tp = confusion[positive][positive] as f64;
    let fn_: f64 = confusion[positive].iter().sum::<usize>() as f64 - tp;
    let fp: f64 = (0..classes).filter(|&c| c != positive).map(|c| confusion[c][positive] as f64).sum();
    let tn = n - tp - fn_ - fp;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let (sensitivity, precision) = (ratio(tp, tp + fn_), ratio(tp, tp + fp));
    Point {
        accuracy: correct as f64 / n,
        balanced_accuracy: present.iter().sum::<f64>() / present.len().max(1) as f64,
        auc: if classes == 2 { positive_auc } else { aucs.iter().sum::<f64>() / aucs.len().max(1) as f64 },
        positive_auc,
        sensitivity,
        specificity: ratio(tn, tn + fp),
        precision,
        f1: ratio(2.0 * precision * sensitivity, precision + sensitivity),
        recalls,
    }
}

/// Full report with `resamples` bootstrap resamples (seeded, so reports are reproducible). The
/// resamples draw whole `groups` (one per image: patient, lesion, photograph or near-duplicate
/// cluster) with replacement, so that near-copies of one case do not narrow the intervals: the
/// evidence is counted at its real size.
pub fn report<G: Ord>(
    probabilities: &[Vec<f32>],
    labels: &[usize],
    predicted: &[usize],
    positive: usize,
    groups: &[G],
    resamples: usize,
) -> Report {
    assert_eq!(groups.len(), labels.len(), "one group per image");
    let all: Vec<usize> = (0..labels.len()).collect();
    let whole = point(probabilities, labels, predicted, positive, &all);
    let mut members: std::collections::BTreeMap<&G, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let members: Vec<Vec<usize>> = members.into_values().collect();
    let mut rng = Rng::new(2024);
    let draws: Vec<Point> = (0..resamples)
        .map(|_| {
            let idx: Vec<usize> =
                (0..members.len()).flat_map(|_| members[rng.below(members.len())].iter().copied()).collect();
            point(probabilities, labels, predicted, positive, &idx)
        })
        .collect();
    let estimate =
        |value: f64, get: &dyn Fn(&Point) -> f64| Estimate::from_draws(value, draws.iter().map(get));
    let classes = probabilities.first().map_or(0, Vec::len);
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&y, &p) in labels.iter().zip(predicted) {
        confusion[y][p] += 1;
    }
    let per_class_recall = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| row[c] as f64 / row.iter().sum::<usize>().max(1) as f64)
        .collect();
    let per_class_recall_ci = (0..classes)
        .map(|c| Estimate::from_draws(whole.recalls[c], draws.iter().map(|d| d.recalls[c])))
        .collect();
    Report {
        n: labels.len(),
        accuracy: estimate(whole.accuracy, &|p| p.accuracy),
        balanced_accuracy: estimate(whole.balanced_accuracy, &|p| p.balanced_accuracy),
        auc: estimate(whole.auc, &|p| p.auc),
        positive_auc: estimate(whole.positive_auc, &|p| p.positive_auc),
        sensitivity: estimate(whole.sensitivity, &|p| p.sensitivity),
        specificity: estimate(whole.specificity, &|p| p.specificity),
        precision: estimate(whole.precision, &|p| p.precision),
        f1: estimate(whole.f1, &|p| p.f1),
        per_class_recall,
        per_class_recall_ci,
        groups: members.len(),
        confusion,
        ece: ece(probabilities, labels, 15),
        ece_if_calibrated: Some(ece_if_calibrated(probabilities, 15, resamples)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_intervals_are_wider_than_the_images_suggest() {
        // 20 groups of 10 identical copies: the interval is that of 20 values, not of 200.
        let values: Vec<f64> = (0..200).map(|i| f64::from((i / 10) % 2)).collect();
        let groups: Vec<usize> = (0..200).map(|i| i / 10).collect();
        let grouped = grouped_mean(&values, &groups, 500);
        let single = grouped_mean(&values, &(0..200).collect::<Vec<_>>(), 500);
        assert_eq!(grouped.value, 0.5);
        assert!(grouped.low < 0.35 && grouped.high > 0.65, "{grouped:?}");
        assert!(single.high - single.low < 0.7 * (grouped.high - grouped.low), "{single:?} vs {grouped:?}");
    }

    #[test]
    fn auc_matches_hand_counts() {
        // Pairs (pos, neg): 0.9>0.1, 0.9>0.4, 0.35<0.4, 0.35>0.1 → 3 of 4.
        assert_eq!(roc_auc(&[0.9, 0.35, 0.1, 0.4], &[true, true, false, false]), Some(0.75));
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5), "a tie counts half");
        assert_eq!(roc_auc(&[0.5, 0.7], &[true, true]), None);
        let curve = roc_curve(&[0.9, 0.35, 0.1, 0.4], &[true, true, false, false]);
        assert_eq!(curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.last(), Some(&(1.0, 1.0)));
    }

    #[test]
    fn temperature_scaling_fixes_overconfidence() {
        // Logits that say 99.9 % but are right 75 % of the time.
        let logits: Vec<Vec<f32>> = (0..400).map(|_| vec![7.0, 0.0]).collect();
        let labels: Vec<usize> = (0..400).map(|i| usize::from(i % 4 == 0)).collect();
        let before = ece(&softmax(&logits, 1.0), &labels, 15);
        let t = fit_temperature(&logits, &labels);
        let after = ece(&softmax(&logits, t), &labels, 15);
        assert!(before > 0.2 && after < 0.01, "ECE {before} → {after} at T={t}");
        // softmax(7/T) = 0.75 exactly when T = 7 / ln 3.
        assert!((t - 7.0 / 3f32.ln()).abs() < 0.01, "T = {t}");
    }

    #[test]
    fn ece_if_calibrated_is_the_small_sample_floor() {
        // Confidences spread over 0.5–1: on 80 images even a calibrated model shows ECE near 0.1;
        // on 4,000 it shrinks towards 0 (the bias falls with 1/√n).
        let probs = |n: usize| -> Vec<Vec<f32>> {
            (0..n)
                .map(|i| {
                    let c = 0.5 + 0.5 * (i as f32 + 0.5) / n as f32;
                    vec![c, 1.0 - c]
                })
                .collect()
        };
        let small = ece_if_calibrated(&probs(80), 15, 400);
        let large = ece_if_calibrated(&probs(4000), 15, 100);
        assert!(small.value > 0.06 && small.value < 0.14, "80 images: {small:?}");
        assert!(small.low < small.value && small.value < small.high);
        assert!(large.value < 0.02, "4000 images: {large:?}");
        // A model that is certain and always right: every draw agrees with it, so the floor is 0.
        let certain = ece_if_calibrated(&[vec![1.0, 0.0], vec![0.0, 1.0]], 15, 50);
        assert_eq!((certain.value, certain.high), (0.0, 0.0));
    }

    #[test]
    fn report_counts_the_positive_class() {
        let p = vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.4, 0.6], vec![0.7, 0.3]];
        let labels = [0, 1, 0, 1];
        let predicted = [0, 1, 1, 0];
        let r = report(&p, &labels, &predicted, 1, &[0, 1, 2, 3], 200);
        assert_eq!(r.confusion, vec![vec![1, 1], vec![1, 1]]);
        assert_eq!(r.groups, 4);
        assert_eq!((r.sensitivity.value, r.specificity.value, r.accuracy.value), (0.5, 0.5, 0.5));
        assert_eq!(r.auc.value, 0.75); // 0.8 and 0.3 against 0.1 and 0.6: 3 of 4 pairs
        assert!(r.accuracy.low <= 0.5 && r.accuracy.high >= 0.5);
        assert_eq!(r.per_class_recall, vec![0.5, 0.5]);
        for e in &r.per_class_recall_ci {
            assert!(e.low <= 0.5 && e.high >= 0.5, "{e:?}");
        }
    }

    #[test]
    fn a_report_with_nan_reads_back_as_written() {
        // No positive image: sensitivity and the AUCs are NaN, which JSON writes as null.
        let p = vec![vec![0.9, 0.1], vec![0.6, 0.4]];
        let r = report(&p, &[0, 0], &[0, 1], 1, &[0, 1], 20);
        assert!(r.sensitivity.value.is_nan() && r.auc.value.is_nan());
        let text = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert!(back.sensitivity.value.is_nan() && back.auc.low.is_nan());
        assert_eq!((back.specificity, back.confusion), (r.specificity, r.confusion));
    }

    #[test]
    fn report_intervals_resample_whole_groups() {
        // 10 patients with 10 films each, each patient's films all right or all wrong: the
        // interval is that of 10 cases, far wider than 100 independent films would give.
        let labels: Vec<usize> = (0..100).map(|i| (i / 10) % 2).collect();
        let predicted: Vec<usize> =
            (0..100).map(|i| if i / 10 < 7 { labels[i] } else { 1 - labels[i] }).collect();
        let p: Vec<Vec<f32>> =
            predicted.iter().map(|&y| if y == 1 { vec![0.3, 0.7] } else { vec![0.7, 0.3] }).collect();
        let patients: Vec<usize> = (0..100).map(|i| i / 10).collect();
        let films: Vec<usize> = (0..100).collect();
        let grouped = report(&p, &labels, &predicted, 1, &patients, 500);
        let single = report(&p, &labels, &predicted, 1, &films, 500);
        assert_eq!((grouped.accuracy.value, grouped.groups, single.groups), (0.7, 10, 100));
        let width = |e: Estimate| e.high - e.low;
        assert!(width(single.accuracy) < 0.6 * width(grouped.accuracy), "{single:?} vs {grouped:?}");
        assert!(width(single.per_class_recall_ci[0]) < width(grouped.per_class_recall_ci[0]));
    }
}
