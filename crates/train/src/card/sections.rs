//! The card's sections after the validation results, each drawn from what one step recorded in
//! `model.json` (or `lesion.json`), in a fixed order.

use crate::Error;
use crate::cv::CvReport;
use crate::gate::Evaluation;
use crate::heat_check::HeatMapCheck;
use crate::prune::PruningSummary;
use crate::quantise::Int8Summary;
use crate::review::ReviewSummary;
use crate::robustness::Robustness;
use crate::sizes::SizeCurve;
use bedside_model::artifact::ModelInfo;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every recorded section's Markdown, each followed by an empty line.
pub(super) fn render(info: &ModelInfo, lesion: Option<&Value>) -> Result<String, Error> {
    let card = &info.card;
    let mut out = String::new();
    let mut add = |markdown: String| {
        out.push_str(markdown.trim_end());
        out.push_str("\n\n");
    };
    if let Some((gate, value)) = parse::<Evaluation>(card, "gate")? {
        let measured = match value["command"].as_str() {
            Some(command) => {
                format!("Floor chosen and measured on the shipped int8 `model.bin` by `{command}`.")
            }
            None => format!("Measured by `{}` at the end of training.", command_of(card, "training_command")),
        };
        add(gate.card_section(&measured));
    }
    if let Some((int8, _)) = parse::<Int8Summary>(card, "int8")? {
        add(int8.card_section());
    }
    if let Some((pruning, _)) = parse::<PruningSummary>(card, "pruning")? {
        add(pruning.card_section(info.task.positive_class()));
    }
    if let Some((curve, value)) = parse::<SizeCurve>(card, "size_curve")? {
        add(curve.card_section(info.task.positive_class(), command_of(value, "command")));
    }
    if let Some((cv, value)) = parse::<CvReport>(card, "cross_validation")? {
        add(cv.card_section(command_of(value, "command")));
    }
    if let Some((review, value)) = parse::<ReviewSummary>(card, "review")? {
        add(crate::review::card_section(info, &review, command_of(value, "command")));
    }
    if let Some((robustness, value)) = parse::<Robustness>(card, "robustness")? {
        add(robustness.card_section(command_of(value, "command")));
    }
    if let Some((check, value)) = parse::<HeatMapCheck>(card, "heat_maps")? {
        add(check.card_section(command_of(value, "command")));
    }
    if let Some(lesion) = lesion {
        add(crate::lesion::card_section(lesion)?);
    }
    Ok(out)
}

/// `card[key]` as `T` with its raw JSON, or `None` where the step has not been run.
fn parse<'a, T: DeserializeOwned>(card: &'a Value, key: &str) -> Result<Option<(T, &'a Value)>, Error> {
    let value = &card[key];
    if value.is_null() {
        return Ok(None);
    }
    let parsed = serde_json::from_value(value.clone()).map_err(|e| {
        Error::Data(format!("model.json: card.{key} does not read as its step records it: {e}"))
    })?;
    Ok(Some((parsed, value)))
}

/// The command a step recorded ("not recorded" for records older than that).
fn command_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("not recorded")
}
