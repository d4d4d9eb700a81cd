//! The three diagnostic tasks, and the gate that routes a picture to one of them: each one's classes,
//! input shape and decision rule in one place.

use crate::input::Framing;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Pediatric chest X-ray: normal / pneumonia.
    Chest,
    /// Dermatoscopic photo: seven HAM10000 diagnoses.
    Skin,
    /// Breast ultrasound: benign / malignant / normal.
    Breast,
    /// The trust gate: which of the three a picture is, or `other` (refused). See [`crate::gate`].
    Gate,
}

impl Task {
    /// The diagnostic tasks (not the gate).
    pub const ALL: [Task; 3] = [Task::Chest, Task::Skin, Task::Breast];

    pub fn name(self) -> &'static str {
        match self {
            Task::Chest => "chest",
            Task::Skin => "skin",
            Task::Breast => "breast",
            Task::Gate => "gate",
        }
    }

    /// A task by its name, the gate included.
    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().chain([Task::Gate]).find(|t| t.name() == name)
    }

    /// What the model tells apart, for people (model cards, the page).
    pub fn title(self) -> &'static str {
        match self {
            Task::Chest => "Pediatric chest X-ray: normal or pneumonia",
            Task::Skin => "Dermatoscopy: seven HAM10000 diagnoses",
            Task::Breast => "Breast ultrasound: benign, malignant or normal",
            Task::Gate => "Which kind of picture: chest X-ray, dermatoscopy, breast ultrasound or other",
        }
    }

    /// The licence of the images the model was trained on (HAM10000 forbids commercial use).
    /// The kind of picture the task's model reads, for sentences ("a chest X-ray").
    pub fn kind(self) -> &'static str {
        match self {
            Task::Chest => "a chest X-ray",
            Task::Skin => "a skin photo",
            Task::Breast => "a breast ultrasound",
            Task::Gate => "a picture of one of these kinds",
        }
    }

    /// A class's readable name where its label is an abbreviation (HAM10000's), else the label.
    pub fn class_title(self, class: &str) -> &str {
        match (self, class) {
            (Task::Skin, "akiec") => "actinic keratosis / intraepithelial carcinoma",
            (Task::Skin, "bcc") => "basal cell carcinoma",
            (Task::Skin, "bkl") => "benign keratosis",
            (Task::Skin, "df") => "dermatofibroma",
            (Task::Skin, "mel") => "melanoma",
            (Task::Skin, "nv") => "melanocytic naevus",
            (Task::Skin, "vasc") => "vascular lesion",
            _ => class,
        }
    }

    pub fn data_licence(self) -> &'static str {
        match self {
            Task::Chest => "CC BY 4.0",
            Task::Skin => "CC BY-NC 4.0 (non-commercial use only)",
            Task::Breast => "CC BY 4.0 (the article)",
            Task::Gate => "CC BY-NC 4.0 (it saw HAM10000 images: non-commercial use only)",
        }
    }

    /// The task's folder under the shared data directory; the gate reads all three, from the
    /// data directory itself.
    pub fn data_folder(self) -> &'static str {
        match self {
            Task::Chest => "chest_pneumonia",
            Task::Skin => "skin_ham10000",
            Task::Breast => "breast_busi",
            Task::Gate => ".",
        }
    }

    /// Class names exactly as in the task's labels.csv, in the model's output order.
    pub fn classes(self) -> &'static [&'static str] {
        match self {
            Task::Chest => &["normal", "pneumonia"],
            Task::Skin => &["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
            Task::Breast => &["benign", "malignant", "normal"],
            // The routes, named as the tasks are, then the refusal.
            Task::Gate => &["chest", "skin", "breast", "other"],
        }
    }

    /// The class whose sensitivity the clinician cares most about.
    pub fn positive_class(self) -> &'static str {
        match self {
            Task::Chest => "pneumonia",
            Task::Skin => "mel",
            Task::Breast => "malignant",
            // What the gate must catch: a picture none of the models is for.
            Task::Gate => "other",
        }
    }

    pub fn positive_index(self) -> usize {
        self.classes().iter().position(|c| *c == self.positive_class()).expect("positive class listed")
    }

    /// Input width, height and channels of the shipped student.
    pub fn input_shape(self) -> (u32, u32, u32) {
        match self {
            Task::Chest | Task::Breast => (128, 128, 1),
            Task::Skin => (128, 96, 3),
            // Small: telling a film from a photo needs little detail, and it runs before every diagnosis.
            Task::Gate => (64, 64, 3),
        }
    }

    /// How a picture is framed, matching how the training images were made (see the data READMEs).
    pub fn framing(self) -> Framing {
        match self {
            // Chest films were published squashed to a square; breast images are centre squares
            // already, and centre-cropping a full ultrasound frame to a square is the same framing.
            Task::Chest | Task::Gate => Framing::Squash,
            Task::Skin | Task::Breast => Framing::CenterCrop,
        }
    }

    /// Whether a left–right mirror image is still a valid example (not for chest films: the heart
    /// is on the left).
    pub fn mirror_is_valid(self) -> bool {
        !matches!(self, Task::Chest)
    }

    /// Whether the decision uses a stored threshold on the positive class (every diagnostic task)
    /// rather than the plain argmax (the gate, whose threshold is a confidence floor applied by
    /// [`crate::gate::route`]).
    pub fn uses_threshold(self) -> bool {
        !matches!(self, Task::Gate)
    }

    /// The decision rule, the same everywhere: the task calls its positive class (pneumonia,
    /// melanoma, malignant) when that class's probability reaches `threshold`, otherwise the most
    /// probable other class; the gate routes by argmax.
    pub fn decide(self, probabilities: &[f32], threshold: f32) -> usize {
        let argmax_excluding = |skip: Option<usize>| {
            (0..probabilities.len())
                .filter(|&i| Some(i) != skip)
                .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
                .unwrap_or(0)
        };
        if !self.uses_threshold() {
            return argmax_excluding(None);
        }
        let positive = self.positive_index();
        if probabilities[positive] >= threshold { positive } else { argmax_excluding(Some(positive)) }
    }

    /// How far [`Task::decide`]'s answer lies from changing, in log-odds: for the positive class's
    /// threshold, the distance of its log-odds from the threshold's; for a choice by the most
    /// probable class, the log-ratio of the two most probable. An answer decided both ways (skin:
    /// not melanoma, then naevus rather than keratosis) is as close as its nearer boundary. The
    /// review rule ([`crate::review`]) calls an answer uncertain where this is small.
    pub fn decision_margin(self, probabilities: &[f32], threshold: f32) -> f32 {
        use crate::review::logit;
        let ln = |p: f32| p.max(1e-7).ln();
        let top_two = |skip: Option<usize>| {
            let mut rest: Vec<f32> =
                (0..probabilities.len()).filter(|&i| Some(i) != skip).map(|i| probabilities[i]).collect();
            rest.sort_by(|a, b| b.total_cmp(a));
            match rest[..] {
                [first, second, ..] => ln(first) - ln(second),
                _ => f32::INFINITY,
            }
        };
        if !self.uses_threshold() {
            return top_two(None);
        }
        let positive = self.positive_index();
        let from_threshold = (logit(probabilities[positive]) - logit(threshold)).abs();
        if probabilities[positive] >= threshold {
            from_threshold
        } else {
            from_threshold.min(top_two(Some(positive)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_rule() {
        assert_eq!(Task::Chest.decide(&[0.6, 0.4], 0.3), 1, "pneumonia above a low threshold");
        assert_eq!(Task::Chest.decide(&[0.3, 0.7], 0.8), 0, "normal below the threshold");
        let skin = [0.05, 0.05, 0.3, 0.0, 0.25, 0.35, 0.0];
        assert_eq!(Task::Skin.decide(&skin, 0.2), 4, "mel reaches its threshold");
        assert_eq!(Task::Skin.decide(&skin, 0.5), 5, "else argmax of the others: nv");
        assert_eq!(Task::Breast.decide(&[0.5, 0.3, 0.2], 0.25), 1, "malignant reaches its threshold");
        assert_eq!(Task::Breast.decide(&[0.2, 0.5, 0.3], 0.6), 2, "else argmax of the others: normal");
        assert_eq!(Task::Gate.decide(&[0.1, 0.5, 0.1, 0.3], 0.99), 1, "the gate routes by argmax");
        // The gate's classes name the tasks they route to.
        for task in Task::ALL {
            assert!(Task::Gate.classes().contains(&task.name()));
        }
    }

    #[test]
    fn decision_margin_is_the_distance_to_the_nearest_boundary() {
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        // Two classes: the log-odds distance from the threshold, either side.
        assert!(close(Task::Chest.decision_margin(&[0.5, 0.5], 0.5), 0.0));
        assert!(close(Task::Chest.decision_margin(&[0.2, 0.8], 0.5), 4f32.ln()));
        assert!(close(Task::Chest.decision_margin(&[0.8, 0.2], 0.5), 4f32.ln()));
        // Argmax (the gate): the log-ratio of the two most probable.
        assert!(close(Task::Gate.decision_margin(&[0.2, 0.5, 0.2, 0.1], 0.5), (0.5f32 / 0.2).ln()));
        // Skin below the melanoma threshold: the nearer of the threshold and the runner-up.
        let skin = [0.05, 0.05, 0.3, 0.0, 0.05, 0.55, 0.0];
        let from_threshold = ((0.05f32 / 0.95).ln() - (0.2f32 / 0.8).ln()).abs();
        assert!(close(Task::Skin.decision_margin(&skin, 0.2), from_threshold.min((0.55f32 / 0.3).ln())));
        assert!(close(
            Task::Skin.decision_margin(&skin, 0.06),
            ((0.05f32 / 0.95).ln() - (0.06f32 / 0.94).ln()).abs()
        ));
        // At or above the threshold only the threshold counts.
        let mel = [0.0, 0.0, 0.0, 0.0, 0.3, 0.35, 0.35];
        assert!(close(Task::Skin.decision_margin(&mel, 0.3), 0.0));
    }

    #[test]
    fn names_round_trip() {
        for task in Task::ALL.into_iter().chain([Task::Gate]) {
            assert_eq!(Task::from_name(task.name()), Some(task));
            assert!(task.classes().contains(&task.positive_class()));
        }
    }
}
