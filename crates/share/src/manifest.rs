//! The bundle's manifest as it is written: JSON that describes every binary part by its media type,
//! length and SHA-256, and refers to parts by index (`FORMAT.md`, "Manifest").
//!
//! [`validate`] holds the rules of version 1; writing checks them too, so Bedside never writes a
//! bundle it would refuse to read.

use crate::error::{Error, Format};
use serde::{Deserialize, Serialize};

/// Largest number of binary parts (images and PNG heat maps) in a bundle.
pub const MAX_PARTS: usize = 256;
/// Largest heat-map grid, in cells (a 256 × 256 grid).
pub const MAX_GRID_CELLS: u64 = 256 * 256;
/// Longest text of a name, media type, label, model field or `created` (the note has no own bound
/// but the manifest's).
const MAX_SHORT_TEXT: usize = 256;

/// The label of a diagnosis the model's review rule flags for review; `most_likely` then names the
/// class it would otherwise have given.
pub const UNCERTAIN: &str = "uncertain";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u16,
    pub created: String,
    pub parts: Vec<Part>,
    pub images: Vec<ImageEntry>,
    pub diagnoses: Vec<DiagnosisEntry>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub media_type: String,
    pub byte_length: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEntry {
    pub part: usize,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisEntry {
    pub image: usize,
    pub task: String,
    pub model: crate::Model,
    pub label: String,
    pub most_likely: String,
    pub probabilities: Vec<ClassProbability>,
    pub thresholds: Vec<ClassThreshold>,
    pub heat_map: Option<HeatMapEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassProbability {
    pub class: String,
    pub probability: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassThreshold {
    pub class: String,
    pub threshold: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeatMapEntry {
    /// A PNG image in the binary part `part`.
    Png { part: usize },
    /// Values 0–1, row by row, top row first.
    Grid { width: u32, height: u32, values: Vec<f32> },
}

fn invalid(field: impl Into<String>, problem: &'static str) -> Error {
    Error::invalid(Format::Bundle, field, problem)
}

fn short_text(field: &str, text: &str, may_be_empty: bool) -> Result<(), Error> {
    if text.len() > MAX_SHORT_TEXT {
        return Err(invalid(field, "is longer than 256 bytes"));
    }
    if !may_be_empty && text.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "holds a control character"));
    }
    Ok(())
}

fn unit_interval(field: impl Into<String>, value: f32) -> Result<(), Error> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(invalid(field, "is not a number from 0 to 1")) }
}

/// Checks every rule of version 1 but the parts' bytes; returns the parts' total length, which is
/// within `max_parts_len`.
pub fn validate(manifest: &Manifest, max_parts_len: u64) -> Result<u64, Error> {
    short_text("created", &manifest.created, true)?;
    if manifest.parts.len() > MAX_PARTS {
        return Err(invalid("parts", "number more than 256"));
    }
    let mut total = 0u64;
    for (i, part) in manifest.parts.iter().enumerate() {
        let field = format!("parts[{i}].media_type");
        short_text(&field, &part.media_type, false)?;
        if part.media_type.split('/').count() != 2 || part.media_type.contains(char::is_whitespace) {
            return Err(invalid(field, "is not a media type (type/subtype)"));
        }
        total = total.saturating_add(part.byte_length);
    }
    if total > max_parts_len {
        return Err(Error::TooLarge { format: Format::Bundle, size: total, limit: max_parts_len });
    }

    // Every part is referred to exactly once, by an image or a heat map.
    let mut referred = vec![false; manifest.parts.len()];
    let mut refer = |field: String, part: usize| match referred.get_mut(part) {
        None => Err(invalid(field, "names a part the bundle does not have")),
        Some(true) => Err(invalid(field, "names a part that something else names too")),
        Some(seen) => {
            *seen = true;
            Ok(())
        }
    };
    for (i, image) in manifest.images.iter().enumerate() {
        refer(format!("images[{i}].part"), image.part)?;
        let field = format!("images[{i}].name");
        short_text(&field, &image.name, false)?;
        if image.name.contains(['/', '\\']) || image.name.starts_with('.') {
            return Err(invalid(field, "is not a plain file name"));
        }
    }
    for (i, diagnosis) in manifest.diagnoses.iter().enumerate() {
        let field = |name: &str| format!("diagnoses[{i}].{name}");
        if diagnosis.image >= manifest.images.len() {
            return Err(invalid(field("image"), "names an image the bundle does not have"));
        }
        short_text(&field("task"), &diagnosis.task, false)?;
        short_text(&field("model.name"), &diagnosis.model.name, false)?;
        short_text(&field("model.version"), &diagnosis.model.version, false)?;
        short_text(&field("model.sha256"), &diagnosis.model.sha256, false)?;
        validate_classes(diagnosis, field)?;
        match &diagnosis.heat_map {
            None => {}
            Some(HeatMapEntry::Png { part }) => {
                refer(field("heat_map.png.part"), *part)?;
                if manifest.parts[*part].media_type != "image/png" {
                    return Err(invalid(field("heat_map.png.part"), "names a part that is not image/png"));
                }
            }
            Some(HeatMapEntry::Grid { width, height, values }) => {
                let cells = u64::from(*width) * u64::from(*height);
                if cells == 0 || cells > MAX_GRID_CELLS {
                    return Err(invalid(field("heat_map.grid"), "is not 1 to 65536 cells"));
                }
                if values.len() as u64 != cells {
                    return Err(invalid(field("heat_map.grid.values"), "are not width × height values"));
                }
                if !values.iter().all(|v| (0.0..=1.0).contains(v)) {
                    return Err(invalid(field("heat_map.grid.values"), "are not all numbers from 0 to 1"));
                }
            }
        }
    }
    if let Some(unused) = referred.iter().position(|seen| !seen) {
        return Err(invalid(format!("parts[{unused}]"), "is named by no image or heat map"));
    }
    Ok(total)
}

/// The answer and the numbers behind it name the model's classes consistently.
fn validate_classes(diagnosis: &DiagnosisEntry, field: impl Fn(&str) -> String) -> Result<(), Error> {
    if diagnosis.probabilities.is_empty() {
        return Err(invalid(field("probabilities"), "is empty"));
    }
    let classes: Vec<&str> = diagnosis.probabilities.iter().map(|p| p.class.as_str()).collect();
    for (j, p) in diagnosis.probabilities.iter().enumerate() {
        short_text(&field(&format!("probabilities[{j}].class")), &p.class, false)?;
        if classes[..j].contains(&p.class.as_str()) {
            return Err(invalid(field(&format!("probabilities[{j}].class")), "names a class twice"));
        }
        unit_interval(field(&format!("probabilities[{j}].probability")), p.probability)?;
    }
    for (j, t) in diagnosis.thresholds.iter().enumerate() {
        if !classes.contains(&t.class.as_str()) {
            return Err(invalid(field(&format!("thresholds[{j}].class")), "is not one of the classes"));
        }
        unit_interval(field(&format!("thresholds[{j}].threshold")), t.threshold)?;
    }
    if !classes.contains(&diagnosis.most_likely.as_str()) {
        return Err(invalid(field("most_likely"), "is not one of the classes"));
    }
    if diagnosis.label != UNCERTAIN && diagnosis.label != diagnosis.most_likely {
        return Err(invalid(field("label"), "is neither `most_likely` nor \"uncertain\""));
    }
    Ok(())
}
