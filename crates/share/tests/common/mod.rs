//! A session bundle as the page would make it, shared by the tests.

#![allow(dead_code)]

use bedside_share::envelope::{DEFAULT_CHUNK_SIZE, HEADER_LEN, TAG_LEN};
use bedside_share::{Bundle, Diagnosis, HeatMap, Image, Model, Secret};

/// Bytes that do not repeat, so no two chunks of their ciphertext could agree by accident.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Length of the DICOM image: over four chunks of the default size.
pub const DICOM_LEN: usize = 300_000;

/// Two images (a DICOM file of several chunks and a small PNG) and a diagnosis of each: one
/// answered with a PNG heat map, one "uncertain" with a grid heat map.
pub fn sample_bundle() -> Bundle {
    let model =
        |name: &str| Model { name: name.into(), version: "2026.11.3".into(), sha256: "5f".repeat(32) };
    Bundle {
        created: "2026-12-04T16:45:00Z".into(),
        images: vec![
            Image {
                media_type: "application/dicom".into(),
                name: "image-1.dcm".into(),
                bytes: noise(DICOM_LEN, 1),
            },
            Image { media_type: "image/png".into(), name: "image-2.png".into(), bytes: noise(1_000, 2) },
        ],
        diagnoses: vec![
            Diagnosis {
                image: 0,
                task: "chest".into(),
                model: model("chest-mobilenetv2"),
                label: "pneumonia".into(),
                most_likely: "pneumonia".into(),
                probabilities: vec![("normal".into(), 0.125), ("pneumonia".into(), 0.875)],
                thresholds: vec![("pneumonia".into(), 0.42)],
                heat_map: Some(HeatMap::Png(noise(2_000, 3))),
            },
            Diagnosis {
                image: 1,
                task: "skin".into(),
                model: model("skin-efficientnet-lite0"),
                label: "uncertain".into(),
                most_likely: "nevus".into(),
                probabilities: vec![
                    ("melanoma".into(), 0.31),
                    ("nevus".into(), 0.52),
                    ("other".into(), 0.17),
                ],
                thresholds: vec![],
                heat_map: Some(HeatMap::Grid {
                    width: 3,
                    height: 2,
                    values: vec![0.0, 0.1, 0.2, 0.5, 0.9, 1.0],
                }),
            },
        ],
        note: "Cough for 3 weeks; fever. Röntgen from today — second opinion please.".into(),
    }
}

pub fn secret(fill: u8) -> Secret {
    Secret::from_bytes([fill; 32])
}

/// The byte range of chunk `index` of an envelope with the default chunk size.
pub fn chunk_range(sealed: &[u8], index: usize) -> std::ops::Range<usize> {
    let full = DEFAULT_CHUNK_SIZE as usize + TAG_LEN;
    let start = HEADER_LEN + index * full;
    start..(start + full).min(sealed.len())
}

/// Number of chunks of an envelope with the default chunk size.
pub fn chunk_count(sealed: &[u8]) -> usize {
    (sealed.len() - HEADER_LEN).div_ceil(DEFAULT_CHUNK_SIZE as usize + TAG_LEN)
}
