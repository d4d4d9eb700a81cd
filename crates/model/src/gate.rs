//! The trust gate's decision: which model a picture goes to, or a refusal.
//!
//! The gate is a small student ([`Task::Gate`]) with four outputs — chest, skin, breast, other. A
//! picture is refused when `other` is the most probable class, or when the most probable task's
//! calibrated probability is below the gate's measured floor (`ModelInfo::threshold`, chosen on
//! validation so that nearly every real image of the three kinds passes).

use crate::artifact::ModelInfo;
use crate::task::Task;
use serde::{Deserialize, Serialize};

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

/// Why a picture went to the model that answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutedBy {
    /// The user (or `--model`) chose the model.
    Choice,
    /// The DICOM file's Modality names it ([`modality_hint`]).
    Modality,
    /// The gate recognised the picture as that kind.
    Gate,
}

/// Which model answers a picture: the routing rule, stated once for the page and the CLI. The
/// gate's refusal beats everything (`None`); then an explicit choice beats the file's Modality,
/// and the Modality beats what the gate sees. The answering model may still refuse the patient
/// ([`age_refusal`]).
pub fn choose(choice: Option<Task>, modality: Option<&str>, route: &Route) -> Option<(Task, RoutedBy)> {
    route.task?;
    Some(match (choice, modality.and_then(modality_hint)) {
        (Some(task), _) => (task, RoutedBy::Choice),
        (None, Some(task)) => (task, RoutedBy::Modality),
        (None, None) => (route.task?, RoutedBy::Gate),
    })
}

/// From this age, in years, a patient is an adult. The chest model was made for children's films
/// (its training films are of children aged one to five): it does not answer for an adult's film
/// whose file gives the patient's age. The gate cannot tell a child's film from an adult's by
/// looking (nothing it learns from shows both), so the file's own word is the rule.
pub const ADULT_YEARS: f64 = 18.0;

/// Why `task`'s model gives no answer for a patient `age_years` old (`None`: the file does not
/// say), or `None` when it answers.
pub fn age_refusal(task: Task, age_years: Option<f64>) -> Option<String> {
    let age = age_years.filter(|&age| task == Task::Chest && age >= ADULT_YEARS)?;
    Some(format!(
        "This film is of a patient {} years old. Bedside's chest model was made for children's films \
         (it learnt from children aged one to five), so it gives no diagnosis for an adult's film.",
        age.floor()
    ))
}

/// What to tell the user when the model that answers is not the kind of picture the gate sees:
/// disagreements are shown, not hidden.
pub fn note(task: Task, routed_by: RoutedBy, route: &Route) -> Option<String> {
    let seen = route.task.filter(|&seen| seen != task)?;
    let why = match routed_by {
        RoutedBy::Choice => "was chosen",
        RoutedBy::Modality => "follows the file's Modality",
        RoutedBy::Gate => return None,
    };
    Some(format!("the {} model {why}; the picture looks more like {} to the gate", task.name(), seen.kind()))
}

/// Pictures narrower or shorter than this many pixels are refused whatever the network says: a
/// strip a few pixels high is no film, skin photo or ultrasound, and stretched to the gate's input
/// it can look like one (the DICOM corpus's 45 × 10 test strips were routed to breast).
pub const MIN_SIDE: u32 = 32;

/// [`route`] for a picture of `width × height` pixels: refused below [`MIN_SIDE`].
pub fn route_picture(gate: &ModelInfo, probabilities: &[f32], width: u32, height: u32) -> Route {
    let mut verdict = route(gate, probabilities);
    if width < MIN_SIDE || height < MIN_SIDE {
        verdict.task = None;
    }
    verdict
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
                mirror_average: false,
            },
            network: StudentConfig::new(4),
            temperature: 1.0,
            threshold: Some(floor),
            review: None,
            heat_map: Default::default(),
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
    fn refuses_pictures_too_small_to_be_any_kind() {
        let gate = gate(0.5);
        let sure_chest = [0.97, 0.01, 0.01, 0.01];
        assert_eq!(route_picture(&gate, &sure_chest, 32, 32).task, Some(Task::Chest));
        assert_eq!(route_picture(&gate, &sure_chest, 45, 10).task, None);
        assert_eq!(route_picture(&gate, &sure_chest, 31, 400).task, None);
    }

    #[test]
    fn refuses_other_and_unsure_pictures() {
        assert!(route(&gate(0.2), &[0.2, 0.1, 0.1, 0.6]).refused(), "other is most probable");
        let unsure = route(&gate(0.6), &[0.45, 0.1, 0.1, 0.35]);
        assert!(unsure.refused(), "chest leads but below the floor");
        assert_eq!(unsure.confidence, 0.45);
    }

    #[test]
    fn a_choice_beats_the_modality_which_beats_the_gate_and_a_refusal_beats_all() {
        let sees =
            |task: Option<Task>| Route { task, confidence: 0.9, probabilities: vec![0.9, 0.0, 0.0, 0.1] };
        let chest = sees(Some(Task::Chest));
        assert_eq!(choose(Some(Task::Skin), Some("CR"), &chest), Some((Task::Skin, RoutedBy::Choice)));
        assert_eq!(choose(None, Some("US"), &chest), Some((Task::Breast, RoutedBy::Modality)));
        assert_eq!(choose(None, Some("MR"), &chest), Some((Task::Chest, RoutedBy::Gate)));
        assert_eq!(choose(None, None, &chest), Some((Task::Chest, RoutedBy::Gate)));
        assert_eq!(choose(Some(Task::Skin), Some("XC"), &sees(None)), None);

        let note_for = |task, by| note(task, by, &chest);
        assert_eq!(note_for(Task::Chest, RoutedBy::Choice), None, "no disagreement");
        let chosen = note_for(Task::Skin, RoutedBy::Choice).unwrap();
        assert_eq!(
            chosen,
            "the skin model was chosen; the picture looks more like a chest X-ray to the gate"
        );
        assert!(note_for(Task::Breast, RoutedBy::Modality).unwrap().contains("follows the file's Modality"));
    }
}
