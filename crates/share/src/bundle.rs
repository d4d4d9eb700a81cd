//! The session bundle, version 1: what a clinician shares, as plaintext bytes (`FORMAT.md`,
//! "Bundle"): magic, version, manifest length, JSON manifest, then the binary parts back to back.

use crate::error::{Error, Format};
use crate::keys::sha256_hex;
use crate::manifest::{
    self, ClassProbability, ClassThreshold, DiagnosisEntry, HeatMapEntry, ImageEntry, Manifest, Part,
};
use serde::{Deserialize, Serialize};

/// The first bytes of every bundle.
pub const BUNDLE_MAGIC: [u8; 8] = *b"BEDSIDEB";
/// The bundle version this build writes and reads.
pub const BUNDLE_VERSION: u16 = 1;
/// Longest manifest, in bytes.
pub const MAX_MANIFEST_LEN: u32 = 1 << 20;
/// Largest total of the binary parts, in bytes.
pub const MAX_PARTS_LEN: u64 = 64 << 20;
/// Bytes before the manifest: magic, version, manifest length.
const PREAMBLE_LEN: usize = 8 + 2 + 4;
/// Largest bundle, which bounds what opening an envelope allocates.
pub(crate) const MAX_BUNDLE_LEN: u64 = PREAMBLE_LEN as u64 + MAX_MANIFEST_LEN as u64 + MAX_PARTS_LEN;

/// What a clinician shares for review: de-identified images, the diagnoses of them and a note.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// When the bundle was made, as the caller writes it (RFC 3339 is the convention); the library
    /// reads no clock.
    pub created: String,
    pub images: Vec<Image>,
    pub diagnoses: Vec<Diagnosis>,
    /// The clinician's note to the reviewer.
    pub note: String,
}

/// One de-identified image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `application/dicom`, `image/png`, …
    pub media_type: String,
    /// A file name that identifies no one (`image-1.dcm`): the caller chooses it, the format only
    /// checks that it is a plain name.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// One model's answer for one image of the bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// Index into [`Bundle::images`].
    pub image: usize,
    /// The task the model answers (`chest`, `skin`, `breast`).
    pub task: String,
    pub model: Model,
    /// One of the classes, or [`crate::UNCERTAIN`] where the model's review rule flags the image.
    pub label: String,
    /// The class the decision rule picks, also when `label` is "uncertain".
    pub most_likely: String,
    /// Calibrated probability of every class, in the model's class order.
    pub probabilities: Vec<(String, f32)>,
    /// Operating thresholds by class (empty where the label is the most probable class).
    pub thresholds: Vec<(String, f32)>,
    pub heat_map: Option<HeatMap>,
}

/// The model that answered, as its model card names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub version: String,
    /// SHA-256 of the weights, in hex.
    pub sha256: String,
}

/// Where the model looked.
#[derive(Debug, Clone, PartialEq)]
pub enum HeatMap {
    /// A PNG image, as drawn over the image.
    Png(Vec<u8>),
    /// Values 0–1 on a small grid, row by row from the top.
    Grid { width: u32, height: u32, values: Vec<f32> },
}

impl Bundle {
    /// The bundle's bytes. Fails where a value breaks a rule of the format (the same rules
    /// [`Bundle::from_bytes`] checks) or a size is over its bound.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        // Parts in order: the images, then the PNG heat maps.
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut part_list = Vec::new();
        fn add<'a>(
            parts: &mut Vec<&'a [u8]>,
            list: &mut Vec<Part>,
            media_type: &str,
            bytes: &'a [u8],
        ) -> usize {
            parts.push(bytes);
            let (byte_length, sha256) = (bytes.len() as u64, sha256_hex(bytes));
            list.push(Part { media_type: media_type.to_owned(), byte_length, sha256 });
            parts.len() - 1
        }
        let mut images = Vec::new();
        for image in &self.images {
            images.push(ImageEntry {
                part: add(&mut parts, &mut part_list, &image.media_type, &image.bytes),
                name: image.name.clone(),
            });
        }
        let mut diagnoses = Vec::new();
        for d in &self.diagnoses {
            let heat_map = match &d.heat_map {
                None => None,
                Some(HeatMap::Png(png)) => {
                    Some(HeatMapEntry::Png { part: add(&mut parts, &mut part_list, "image/png", png) })
                }
                Some(HeatMap::Grid { width, height, values }) => {
                    Some(HeatMapEntry::Grid { width: *width, height: *height, values: values.clone() })
                }
            };
            diagnoses.push(DiagnosisEntry {
                image: d.image,
                task: d.task.clone(),
                model: d.model.clone(),
                label: d.label.clone(),
                most_likely: d.most_likely.clone(),
                probabilities: d
                    .probabilities
                    .iter()
                    .map(|(class, probability)| ClassProbability {
                        class: class.clone(),
                        probability: *probability,
                    })
                    .collect(),
                thresholds: d
                    .thresholds
                    .iter()
                    .map(|(class, threshold)| ClassThreshold { class: class.clone(), threshold: *threshold })
                    .collect(),
                heat_map,
            });
        }
        let manifest = Manifest {
            format_version: BUNDLE_VERSION,
            created: self.created.clone(),
            parts: part_list,
            images,
            diagnoses,
            note: self.note.clone(),
        };
        let total = manifest::validate(&manifest, MAX_PARTS_LEN)?;
        let json = serde_json::to_vec(&manifest).expect("the manifest serialises");
        if json.len() as u64 > u64::from(MAX_MANIFEST_LEN) {
            let (size, limit) = (json.len() as u64, u64::from(MAX_MANIFEST_LEN));
            return Err(Error::TooLarge { format: Format::Bundle, size, limit });
        }

        let mut out = Vec::with_capacity(PREAMBLE_LEN + json.len() + total as usize);
        out.extend_from_slice(&BUNDLE_MAGIC);
        out.extend_from_slice(&BUNDLE_VERSION.to_be_bytes());
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        for part in parts {
            out.extend_from_slice(part);
        }
        Ok(out)
    }

    /// Reads a bundle: every length against the bytes that are there, every rule of the manifest,
    /// every part against its SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, Error> {
        let truncated =
            |needed: u64| Error::Truncated { format: Format::Bundle, needed, found: bytes.len() as u64 };
        let magic = &bytes[..bytes.len().min(BUNDLE_MAGIC.len())];
        if magic != &BUNDLE_MAGIC[..magic.len()] {
            return Err(Error::NotAShare(Format::Bundle));
        }
        let Some(version) = bytes.get(8..10) else { return Err(truncated(10)) };
        let version = u16::from_be_bytes([version[0], version[1]]);
        if version != BUNDLE_VERSION {
            return Err(Error::UnknownVersion { format: Format::Bundle, version, supported: BUNDLE_VERSION });
        }
        let Some(length) = bytes.get(10..PREAMBLE_LEN) else { return Err(truncated(PREAMBLE_LEN as u64)) };
        let length = u32::from_be_bytes(length.try_into().expect("4 bytes"));
        if length > MAX_MANIFEST_LEN {
            let (size, limit) = (u64::from(length), u64::from(MAX_MANIFEST_LEN));
            return Err(Error::TooLarge { format: Format::Bundle, size, limit });
        }
        let manifest_end = PREAMBLE_LEN + length as usize;
        let Some(json) = bytes.get(PREAMBLE_LEN..manifest_end) else {
            return Err(truncated(manifest_end as u64));
        };
        let manifest: Manifest =
            serde_json::from_slice(json).map_err(|source| Error::Json { format: Format::Bundle, source })?;
        if manifest.format_version != BUNDLE_VERSION {
            return Err(Error::invalid(Format::Bundle, "format_version", "is not the version of the layout"));
        }
        let total = manifest::validate(&manifest, MAX_PARTS_LEN)?;
        let end = manifest_end as u64 + total;
        let found = bytes.len() as u64;
        if found < end {
            return Err(truncated(end));
        }
        if found > end {
            return Err(Error::TrailingBytes { format: Format::Bundle, count: found - end });
        }

        let mut parts = Vec::with_capacity(manifest.parts.len());
        let mut at = manifest_end;
        for (index, part) in manifest.parts.iter().enumerate() {
            let bytes = &bytes[at..at + part.byte_length as usize];
            at += bytes.len();
            if sha256_hex(bytes) != part.sha256 {
                return Err(Error::Digest { part: index });
            }
            parts.push(bytes);
        }
        Ok(from_manifest(manifest, &parts))
    }
}

/// The bundle a validated manifest and its checked parts describe.
fn from_manifest(manifest: Manifest, parts: &[&[u8]]) -> Bundle {
    let images = manifest
        .images
        .into_iter()
        .map(|image| Image {
            media_type: manifest.parts[image.part].media_type.clone(),
            name: image.name,
            bytes: parts[image.part].to_vec(),
        })
        .collect();
    let diagnoses = manifest
        .diagnoses
        .into_iter()
        .map(|d| Diagnosis {
            image: d.image,
            task: d.task,
            model: d.model,
            label: d.label,
            most_likely: d.most_likely,
            probabilities: d.probabilities.into_iter().map(|p| (p.class, p.probability)).collect(),
            thresholds: d.thresholds.into_iter().map(|t| (t.class, t.threshold)).collect(),
            heat_map: d.heat_map.map(|map| match map {
                HeatMapEntry::Png { part } => HeatMap::Png(parts[part].to_vec()),
                HeatMapEntry::Grid { width, height, values } => HeatMap::Grid { width, height, values },
            }),
        })
        .collect();
    Bundle { created: manifest.created, images, diagnoses, note: manifest.note }
}
