//! The third answer: "uncertain: needs review".
//!
//! Near a decision boundary a calibrated model is wrong almost as often as right, and on images
//! from another machine or period the boundary itself moves. So a model may carry a review margin:
//! where its probabilities lie within that many log-odds of changing the answer
//! ([`Task::decision_margin`]), the answer is "uncertain" rather than a class, with the class the
//! decision rule picks shown beside it. For a two-class model this is a band of the positive
//! class's probability around the operating threshold ([`Review::band`]). The margin is fitted by
//! `bedside review-band` (on out-of-fold predictions or validation), stored in `model.json`, and
//! applied in [`crate::infer`], the one place the CLI, the evaluation and the browser share.

use crate::task::Task;
use serde::{Deserialize, Serialize};

/// What the answer is called when the model is unsure.
pub const UNCERTAIN: &str = "uncertain";

/// The largest margin `model.json` may hold: beyond it nearly every answer would be "uncertain".
pub const MAX_MARGIN: f32 = 10.0;

/// Answer "uncertain" where the decision lies less than `margin` log-odds from changing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub margin: f32,
}

impl Review {
    /// Whether calibrated `probabilities` are too close to a decision boundary to answer.
    pub fn uncertain(&self, task: Task, probabilities: &[f32], threshold: f32) -> bool {
        task.decision_margin(probabilities, threshold) < self.margin
    }

    /// For a two-class task: the open interval `(lower, upper)` of the positive class's probability that
    /// is answered "uncertain", around `threshold`.
    pub fn band(&self, threshold: f32) -> (f32, f32) {
        let z = logit(threshold);
        (sigmoid(z - self.margin), sigmoid(z + self.margin))
    }
}

/// Log-odds of a probability, finite at 0 and 1.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_class_margin_is_a_band_around_the_threshold() {
        let review = Review { margin: 0.5 };
        let (lower, upper) = review.band(0.2);
        assert!(lower < 0.2 && 0.2 < upper, "{lower}–{upper}");
        assert!((logit(upper) - logit(0.2) - 0.5).abs() < 1e-5);
        let uncertain = |p: f32| review.uncertain(Task::Chest, &[1.0 - p, p], 0.2);
        assert!(uncertain(0.2) && uncertain(lower + 1e-4) && uncertain(upper - 1e-4));
        assert!(!uncertain(lower - 1e-3) && !uncertain(upper + 1e-3) && !uncertain(0.9));
        let (lower, upper) = Review { margin: 1.0 }.band(0.5);
        assert!((lower + upper - 1.0).abs() < 1e-6 && (upper - 0.7310586).abs() < 1e-6);
    }
}
