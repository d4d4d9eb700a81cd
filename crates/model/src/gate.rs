//! The trust gate's decision: which model a picture goes to, or a refusal.
//!
//! The gate is a small student ([`Task::Gate`]) with four outputs — chest, skin, breast, other. A
//! picture is refused when `other` is the most probable class, or when the most probable task's
//! calibrated probability is below the gate's measured floor (`ModelInfo::threshold`, chosen on
//! validation so that nearly every real image of the three kinds passes).

use crate::artifact::ModelInfo;
use crate::task::Task;
use serde::Serialize;

/// What the user is told when a picture is refused.
pub const REFUSAL: &str = "This does not look like a chest X-ray, a skin photo or a breast ultrasound, so Bedside gives no diagnosis for it.";

/// The task a DICOM file's Modality (0008,0060) points to: the first hint, which the gate checks.
/// CR/DX are radiographs (chest), US ultrasound (breast), XC external-camera photography
/// (dermatoscopy). Photos carry no modality.
pub fn modality_hint(modality: &str) -> Option<Task> {
    match modality.trim() {
        "CR" | "DX" => Some(Task::Chest),
        "US" => Some(Task::Breast),
        "XC" => Some(Task::Skin),
        _ => None,
    }
}

/// The gate's verdict on one picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// The task the picture goes to; `None` when refused.
    pub task: Option<Task>,
    /// The gate's calibrated probability of the most probable task (not `other`).
    pub confidence: f32,
    /// The gate's calibrated probability of each class, in its class order.
    pub probabilities: Vec<f32>,
}

impl Route {
    pub fn refused(&self) -> bool {
        self.task.is_none()
    }
}

/// The route for the gate's calibrated `probabilities` (classes in [`Task::Gate`] order).
pub fn route(gate: &ModelInfo, probabilities: &[f32]) -> Route {
    let classes = Task::Gate.classes();
    let other = Task::Gate.positive_index();
    let (best, confidence) = (0..classes.len())
        .filter(|&i| i != other)
        .map(|i| (i, probabilities[i]))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    let floor = gate.threshold.unwrap_or(0.0);
    let accepted = confidence >= probabilities[other] && confidence >= floor;
    Route {
        task: accepted.then(|| Task::from_name(classes[best])).flatten(),
        confidence,
        probabilities: probabilities.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Framing, InputSpec};
    use crate::student::StudentConfig;

    fn gate(floor: f32) -> ModelInfo {
        ModelInfo {
            format_version: crate::artifact::FORMAT_VERSION,
            task: Task::Gate,
            classes: Task::Gate.classes().iter().map(|c| c.to_string()).collect(),
            input: InputSpec {
                width: 64,
                height: 64,
                channels: 3,
                framing: Framing::Squash,
                mean: vec![0.5; 3],
                std: vec![0.25; 3],
                intensity: Default::default(),
            },
            network: StudentConfig::new(4),
            temperature: 1.0,
            threshold: Some(floor),
            card: serde_json::Value::Null,
        }
    }

    #[test]
    fn routes_to_the_most_probable_task_above_the_floor() {
        let r = route(&gate(0.6), &[0.1, 0.8, 0.05, 0.05]);
        assert_eq!(r.task, Some(Task::Skin));
        assert_eq!(r.confidence, 0.8);
        assert_eq!(route(&gate(0.6), &[0.05, 0.05, 0.7, 0.2]).task, Some(Task::Breast));
    }

    #[test]
    fn modalities_hint_at_their_task() {
        assert_eq!(modality_hint("DX"), Some(Task::Chest));
        assert_eq!(modality_hint("US "), Some(Task::Breast));
        assert_eq!(modality_hint("CT"), None);
    }

    #[test]
    fn refuses_other_and_unsure_pictures() {
        assert!(route(&gate(0.2), &[0.2, 0.1, 0.1, 0.6]).refused(), "other is most probable");
        let unsure = route(&gate(0.6), &[0.45, 0.1, 0.1, 0.35]);
        assert!(unsure.refused(), "chest leads but below the floor");
        assert_eq!(unsure.confidence, 0.45);
    }
}
