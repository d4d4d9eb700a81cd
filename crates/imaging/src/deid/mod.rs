//! De-identification before a file leaves the device: DICOM PS3.15 Annex E, Basic Application Level
//! Confidentiality Profile, and photos stripped to their pixels.
//!
//! DICOM: every attribute of Table E.1-1 (data generated from the standard, see [`table`]) gets its
//! Basic Profile action at any depth of sequences; every private attribute (odd group) and every
//! group length is removed; every UID the table marks U is replaced by a new one under the `2.25.`
//! root, the same for the same input within one [`Deidentifier`] (one share), so the files of a share
//! stay one study and series. Patient Identity Removed (0012,0062) is set to YES and De-identification
//! Method (0012,0063) and its Code Sequence (0012,0064, code 113100 of DCM) are written. The pixel data
//! and every attribute needed to decode it are kept as they were.
//!
//! What this does not do: read text burned into the pixels (a file's [`BurnedInRisk`] says when that
//! is likely, and [`black_out`] hides a rectangle the clinician chooses), clean free text or
//! structured content (the profile's options), or keep dates, device or institution identity (it
//! applies none of the retention options).
//!
//! Photos (JPEG, PNG, WebP) are decoded and re-encoded as PNG: EXIF, XMP, IPTC, GPS and every other
//! chunk are gone, the pixels (upright per EXIF orientation) are the same.

mod black_out;
mod dataset;
mod photo;
pub mod table;

pub use black_out::{Rect, black_out};
pub use table::{Action, Treatment, basic_profile_action};

use crate::{Error, Limits};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;

/// One share's de-identification: its secret and the UIDs it has replaced so far. Reuse it for
/// every file of the share.
pub struct Deidentifier {
    secret: [u8; 32],
    uids: BTreeMap<String, String>,
    limits: Limits,
}

impl Deidentifier {
    /// A share keyed by `secret`: 32 random bytes the caller draws once per share (the CLI from the
    /// operating system, the page from WebCrypto). New UIDs are an HMAC-SHA256 of the original
    /// under it, so they reveal nothing of the original without the secret and two shares never
    /// agree.
    pub fn new(secret: [u8; 32]) -> Self {
        Deidentifier { secret, uids: BTreeMap::new(), limits: Limits::default() }
    }

    /// The same, with other bounds on the photos it decodes.
    pub fn with_limits(secret: [u8; 32], limits: Limits) -> Self {
        Deidentifier { limits, ..Deidentifier::new(secret) }
    }

    /// De-identifies one DICOM file (output: DICOM, in the same transfer syntax) or photo (output:
    /// PNG).
    pub fn deidentify(&mut self, bytes: &[u8]) -> Result<Deidentified, Error> {
        if let Some(body) = crate::dicom::dicom_body(bytes) {
            return dataset::deidentify(self, body);
        }
        if crate::photo::is_photo(bytes) {
            return photo::deidentify(bytes, &self.limits);
        }
        Err(Error::UnknownFormat)
    }

    /// Every UID replaced so far in this share: original → new.
    pub fn uid_map(&self) -> &BTreeMap<String, String> {
        &self.uids
    }

    /// The new UID for `original`: the same within this share, `2.25.` and a 128-bit number.
    pub fn uid(&mut self, original: &str) -> String {
        if let Some(new) = self.uids.get(original) {
            return new.clone();
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(b"bedside deid uid\0");
        mac.update(original.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut number = [0u8; 16];
        number.copy_from_slice(&digest[..16]);
        let new = format!("2.25.{}", u128::from_be_bytes(number));
        self.uids.insert(original.to_string(), new.clone());
        new
    }
}

/// What kind of file came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Dicom,
    Png,
}

/// A de-identified file and what was done to it.
#[derive(Debug, Clone)]
pub struct Deidentified {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub summary: Summary,
}

/// Whether text may be burned into the pixels, which no attribute rule removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BurnedInRisk {
    /// The file says Burned In Annotation (0028,0301) YES.
    Yes,
    /// The file does not say, and is of a kind that often carries text in its pixels: ultrasound,
    /// secondary capture, visible-light photographs and endoscopy, and every photo.
    Unknown,
    /// The file says NO, or does not say and is of a kind that rarely has any.
    No,
}

impl BurnedInRisk {
    /// Whether the clinician should look at the picture before sharing it.
    pub fn warn(self) -> bool {
        self != BurnedInRisk::No
    }
}

/// Counts of what was done (`bedside deid` prints it as one line of JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Table E.1-1 attributes removed (X), at any depth.
    pub attributes_removed: u32,
    /// Table E.1-1 attributes emptied (Z).
    pub attributes_emptied: u32,
    /// Table E.1-1 attributes given a dummy value (D).
    pub attributes_replaced: u32,
    /// UID values replaced (U), at any depth and in the file meta group.
    pub uids_replaced: u32,
    /// Private attributes (odd groups) removed, at any depth.
    pub private_tags_removed: u32,
    pub burned_in_risk: BurnedInRisk,
    /// `burned_in_risk` is `yes` or `unknown`.
    pub burned_in_warning: bool,
}
