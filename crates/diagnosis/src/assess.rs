//! What a front end shows for one picture: the trust gate's verdict, which model answered and why,
//! and that model's diagnosis — or the gate's refusal. One schema for `bedside predict`'s JSON lines
//! and the page's worker, built in two steps because the browser fetches the answering model only
//! once it knows which one that is:
//!
//! 1. [`Routing::new`]: the gate's [`Route`] (from [`Diagnoser::route`](crate::Diagnoser::route)),
//!    the user's choice and the file's Modality → a refusal, or the model that answers;
//! 2. [`Routed::assess`]: that model's [`Diagnosis`] → the [`Assessment`].
//!
//! The routing rule itself is [`bedside_model::gate::choose`]; this module only records it.

use crate::Diagnosis;
use bedside_model::artifact::ModelInfo;
use bedside_model::gate::{REFUSAL, Route, RoutedBy, age_refusal, choose, note};
use bedside_model::task::Task;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The trust gate's verdict on one picture, as shown to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// The kind of picture the gate sees; `None` (null) when refused.
    pub task: Option<Task>,
    /// Whether the gate refused the picture (`other` most probable, or the confidence under the floor).
    pub refused: bool,
    /// The gate's calibrated probability of the most probable task (not `other`).
    pub confidence: f32,
    /// The least confidence the gate routes at (its model's threshold).
    pub floor: Option<f32>,
    /// The gate's calibrated probability of each class (`chest`, `skin`, `breast`, `other`).
    #[serde(serialize_with = "by_class", deserialize_with = "class_pairs")]
    pub probabilities: Vec<(String, f32)>,
}

impl GateVerdict {
    /// The verdict `route` of the gate described by `gate` (its `model.json`).
    pub fn new(gate: &ModelInfo, route: &Route) -> GateVerdict {
        GateVerdict {
            task: route.task,
            refused: route.refused(),
            confidence: route.confidence,
            floor: gate.threshold,
            probabilities: gate.classes.iter().cloned().zip(route.probabilities.iter().copied()).collect(),
        }
    }
}

/// The answer for one picture. Serialised with an `outcome` field, `"refused"` or `"diagnosed"`,
/// and the variant's fields beside it; probabilities everywhere are objects of class → calibrated
/// probability, in the model's class order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Assessment {
    /// The gate refused the picture, or the model it goes to does not answer for this patient
    /// ([`age_refusal`]): no model answers it, whatever was chosen.
    Refused {
        /// What to tell the user ([`REFUSAL`], or why the model does not answer for the patient).
        message: String,
        gate: GateVerdict,
    },
    /// A model answered.
    Diagnosed {
        /// The model that answered.
        task: Task,
        /// `label`, `most_likely`, `review`, `probabilities`, `threshold`, `region` and `lesion`
        /// (see [`Diagnosis`]).
        #[serde(flatten)]
        diagnosis: Box<Diagnosis>,
        /// The heat map's hottest point, `[x, y]` in frame pixels ([`Diagnosis::heat_map_peak`]).
        heat_map_peak: [u32; 2],
        /// Why that model answered: `choice`, `modality` or `gate`.
        routed_by: RoutedBy,
        /// What to tell the user when that model is not the kind of picture the gate sees.
        note: Option<String>,
        gate: GateVerdict,
    },
}

impl Assessment {
    /// The gate's verdict, which every assessment carries.
    pub fn gate(&self) -> &GateVerdict {
        match self {
            Assessment::Refused { gate, .. } | Assessment::Diagnosed { gate, .. } => gate,
        }
    }

    /// The diagnosis, unless the gate refused the picture.
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        match self {
            Assessment::Refused { .. } => None,
            Assessment::Diagnosed { diagnosis, .. } => Some(&**diagnosis),
        }
    }
}

/// Step 1 of an [`Assessment`]: the gate's refusal, or the model that is to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// The whole answer: the gate refused the picture.
    Refused(Assessment),
    /// Which model answers; [`Routed::assess`] completes the answer with its diagnosis.
    Routed(Routed),
}

/// A picture the gate let through, and the model that answers it. It (de)serialises so that the
/// page's worker can hand it from one build of the Wasm module to the other (the WebGPU build is
/// loaded only when a model runs there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routed {
    /// The model that answers.
    pub task: Task,
    pub routed_by: RoutedBy,
    pub note: Option<String>,
    pub gate: GateVerdict,
}

impl Routing {
    /// Applies the routing rule ([`choose`], then [`age_refusal`]) to the gate's `route` of a
    /// picture: `choice` is the model the user asked for (`None`: automatic), `modality` the file's
    /// DICOM Modality, `age_years` the patient's age where the file gives it. `gate` describes the
    /// gate model that made `route`.
    pub fn new(
        gate: &ModelInfo,
        route: &Route,
        choice: Option<Task>,
        modality: Option<&str>,
        age_years: Option<f64>,
    ) -> Routing {
        let verdict = GateVerdict::new(gate, route);
        match choose(choice, modality, route) {
            None => Routing::Refused(Assessment::Refused { message: REFUSAL.to_string(), gate: verdict }),
            Some((task, _)) if let Some(message) = age_refusal(task, age_years) => {
                Routing::Refused(Assessment::Refused { message, gate: verdict })
            }
            Some((task, routed_by)) => {
                Routing::Routed(Routed { task, routed_by, note: note(task, routed_by, route), gate: verdict })
            }
        }
    }

    /// The gate's verdict.
    pub fn gate(&self) -> &GateVerdict {
        match self {
            Routing::Refused(assessment) => assessment.gate(),
            Routing::Routed(routed) => &routed.gate,
        }
    }
}

impl Routed {
    /// Step 2: the answering model's `diagnosis` of the picture makes the assessment.
    pub fn assess(self, diagnosis: Diagnosis) -> Assessment {
        Assessment::Diagnosed {
            task: self.task,
            heat_map_peak: diagnosis.heat_map_peak(),
            diagnosis: Box::new(diagnosis),
            routed_by: self.routed_by,
            note: self.note,
            gate: self.gate,
        }
    }
}

/// `[(class, p)]` as a JSON object `{class: p}`, keeping the class order.
pub(crate) fn by_class<S: Serializer>(probabilities: &[(String, f32)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(probabilities.iter().map(|(class, p)| (class, p)))
}

/// [`by_class`] read back: the object's entries in the order they come.
fn class_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f32)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, f32)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of class → probability")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    d.deserialize_map(Pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedside_model::heat_map::HeatMap;

    fn gate_info() -> ModelInfo {
        let json = include_str!("../../../models/gate/model.json");
        ModelInfo::from_json(json).unwrap()
    }

    fn diagnosis() -> Diagnosis {
        Diagnosis {
            label: "pneumonia".into(),
            most_likely: "pneumonia".into(),
            review: None,
            probabilities: vec![("normal".into(), 0.25), ("pneumonia".into(), 0.75)],
            threshold: Some(0.5),
            heat_map: HeatMap { width: 2, height: 1, values: vec![0.1, 0.9] },
            region: [10, 0, 100, 50],
            lesion: None,
        }
    }

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).unwrap()
    }

    #[test]
    fn a_refusal_carries_the_message_and_the_gate_verdict() {
        let route = Route { task: None, confidence: 0.5, probabilities: vec![0.5, 0.0, 0.0, 0.5] };
        let Routing::Refused(refusal) = Routing::new(&gate_info(), &route, Some(Task::Chest), None, None)
        else {
            panic!("a choice does not get round the gate")
        };
        let floor = gate_info().threshold.unwrap();
        assert_eq!(
            json(&refusal),
            format!(
                r#"{{"outcome":"refused","message":"{REFUSAL}","gate":{{"task":null,"refused":true,"confidence":0.5,"floor":{floor},"probabilities":{{"chest":0.5,"skin":0.0,"breast":0.0,"other":0.5}}}}}}"#
            )
        );
    }

    /// A DX file (Modality: chest) the gate sees as a skin photo, routed to chest by its Modality.
    fn routed_by_modality_against_the_gate() -> Routed {
        let route =
            Route { task: Some(Task::Skin), confidence: 0.9, probabilities: vec![0.05, 0.9, 0.0, 0.05] };
        let Routing::Routed(routed) = Routing::new(&gate_info(), &route, None, Some("DX"), Some(4.0)) else {
            panic!("routed")
        };
        routed
    }

    #[test]
    fn a_diagnosis_records_the_routing_and_the_disagreement() {
        let routed = routed_by_modality_against_the_gate();
        assert_eq!((routed.task, routed.routed_by), (Task::Chest, RoutedBy::Modality));
        let assessment = routed.assess(diagnosis());
        let value: serde_json::Value = serde_json::from_str(&json(&assessment)).unwrap();
        assert_eq!(value["outcome"], "diagnosed");
        assert_eq!(value["task"], "chest");
        assert_eq!(value["label"], "pneumonia");
        assert_eq!(value["probabilities"]["pneumonia"], 0.75);
        assert_eq!(value["routed_by"], "modality");
        assert_eq!(value["gate"]["task"], "skin");
        assert_eq!(value["gate"]["probabilities"]["skin"], 0.9);
        // The peak is the second of the map's two columns, mapped onto the 100-pixel-wide region.
        assert_eq!(value["heat_map_peak"], serde_json::json!([85, 25]));
        let note = value["note"].as_str().unwrap();
        assert!(note.contains("follows the file's Modality") && note.contains("skin photo"), "{note}");
        assert!(value["lesion"].is_null() && value["review"].is_null(), "{value}");
        // Class order is kept (a JSON object's keys are not sorted).
        assert!(json(&assessment).contains(r#""probabilities":{"normal":0.25,"pneumonia":0.75}"#));
    }

    #[test]
    fn a_routing_survives_the_trip_between_module_builds() {
        // The gate's classes are not in alphabetical order: a sorted map would lose it.
        let routed = routed_by_modality_against_the_gate();
        let text = serde_json::to_string(&routed).unwrap();
        let back: Routed = serde_json::from_str(&text).unwrap();
        assert_eq!(back, routed);
        let classes: Vec<&str> = back.gate.probabilities.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(classes, ["chest", "skin", "breast", "other"]);
        assert!(
            serde_json::from_str::<Routed>(r#"{"task":"chest"}"#).is_err(),
            "a partial routing is refused"
        );
    }

    #[test]
    fn the_chest_model_does_not_answer_for_an_adult() {
        let route =
            Route { task: Some(Task::Chest), confidence: 0.99, probabilities: vec![0.99, 0.0, 0.0, 0.01] };
        let Routing::Refused(refusal) = Routing::new(&gate_info(), &route, None, Some("CR"), Some(55.6))
        else {
            panic!("an adult's film is refused")
        };
        let value: serde_json::Value = serde_json::from_str(&json(&refusal)).unwrap();
        assert_eq!(value["outcome"], "refused");
        let message = value["message"].as_str().unwrap();
        assert!(message.contains("55 years old") && message.contains("children"), "{message}");
        assert_eq!(value["gate"]["task"], "chest", "the gate's own verdict is kept: {value}");
        // A child's film, a file without an age, and an adult's skin photo are answered.
        for (task, age) in [(Task::Chest, Some(4.0)), (Task::Chest, None), (Task::Skin, Some(55.0))] {
            let route = Route { task: Some(task), ..route.clone() };
            assert!(
                matches!(Routing::new(&gate_info(), &route, None, None, age), Routing::Routed(_)),
                "{task:?} {age:?}"
            );
        }
    }
}
