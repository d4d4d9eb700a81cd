//! The plaintext bundle: its layout as FORMAT.md gives it, and hostile bytes refused with the
//! error that names the problem.

mod common;

use bedside_share::envelope::{self, Kind};
use bedside_share::{Bundle, Error, Format, HeatMap, MAX_MANIFEST_LEN, open_bundle};
use common::{DICOM_LEN, noise, sample_bundle, secret};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bundle bytes put together by hand: magic, `version`, the manifest's length and text, `parts`.
fn raw(version: u16, manifest: &Value, parts: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(manifest).unwrap();
    let mut out = b"BEDSIDEB".to_vec();
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(parts);
    out
}

/// The sample bundle's bytes and its manifest, read back as JSON.
fn bytes_and_manifest() -> (Vec<u8>, Value) {
    let bytes = sample_bundle().to_bytes().unwrap();
    let length = u32::from_be_bytes(bytes[10..14].try_into().unwrap()) as usize;
    let manifest = serde_json::from_slice(&bytes[14..14 + length]).unwrap();
    (bytes, manifest)
}

#[test]
fn round_trip_and_the_documented_layout() {
    let bundle = sample_bundle();
    let (bytes, manifest) = bytes_and_manifest();
    assert_eq!(Bundle::from_bytes(&bytes).unwrap(), bundle);

    assert_eq!(&bytes[..8], b"BEDSIDEB");
    assert_eq!(bytes[8..10], [0, 1]);
    let length = u32::from_be_bytes(bytes[10..14].try_into().unwrap()) as usize;
    let parts_len = DICOM_LEN + 1_000 + 2_000;
    assert_eq!(bytes.len(), 14 + length + parts_len);
    // The parts follow the manifest back to back: images in order, then PNG heat maps.
    assert_eq!(bytes[14 + length..14 + length + DICOM_LEN], bundle.images[0].bytes);
    let Some(HeatMap::Png(png)) = &bundle.diagnoses[0].heat_map else { unreachable!() };
    assert_eq!(bytes[bytes.len() - 2_000..], png[..]);

    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["created"], "2026-12-04T16:45:00Z");
    assert_eq!(
        manifest["parts"],
        json!([
            {"media_type": "application/dicom", "byte_length": DICOM_LEN, "sha256": sha256_hex(&bundle.images[0].bytes)},
            {"media_type": "image/png", "byte_length": 1000, "sha256": sha256_hex(&bundle.images[1].bytes)},
            {"media_type": "image/png", "byte_length": 2000, "sha256": sha256_hex(png)},
        ])
    );
    assert_eq!(
        manifest["images"],
        json!([{"part": 0, "name": "image-1.dcm"}, {"part": 1, "name": "image-2.png"}])
    );
    let first = &manifest["diagnoses"][0];
    assert_eq!(first["model"]["name"], "chest-mobilenetv2");
    assert_eq!(first["model"]["version"], "2026.11.3");
    assert_eq!(first["heat_map"], json!({"png": {"part": 2}}));
    assert_eq!(first["thresholds"], json!([{"class": "pneumonia", "threshold": 0.42}]));
    let second = &manifest["diagnoses"][1];
    assert_eq!((&second["label"], &second["most_likely"]), (&json!("uncertain"), &json!("nevus")));
    assert_eq!(second["probabilities"][0], json!({"class": "melanoma", "probability": 0.31}));
    assert_eq!(second["heat_map"]["grid"]["width"], 3);
    assert_eq!(manifest["note"], bundle.note);
}

#[test]
fn truncation_anywhere_is_reported_as_truncated() {
    let (bytes, _) = bytes_and_manifest();
    let mut cuts: Vec<usize> = (0..600).collect();
    cuts.extend((600..bytes.len()).step_by(997));
    cuts.push(bytes.len() - 1);
    for cut in cuts {
        match Bundle::from_bytes(&bytes[..cut]) {
            Err(Error::Truncated { format: Format::Bundle, found, needed }) => {
                assert_eq!(found, cut as u64);
                assert!(needed > found, "cut at {cut}: needs {needed}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn unknown_bundle_version_is_named_also_inside_an_envelope() {
    let (mut bytes, _) = bytes_and_manifest();
    bytes[8..10].copy_from_slice(&7u16.to_be_bytes());
    let error = Bundle::from_bytes(&bytes).unwrap_err();
    assert!(matches!(error, Error::UnknownVersion { format: Format::Bundle, version: 7, supported: 1 }));
    assert_eq!(error.to_string(), "unknown share bundle version 7: this Bedside reads version 1");

    let sealed = envelope::seal(&secret(3), Kind::Bundle, &bytes, 4096).unwrap();
    assert!(matches!(
        open_bundle(&secret(3), &sealed),
        Err(Error::UnknownVersion { format: Format::Bundle, version: 7, .. })
    ));
}

#[test]
fn a_part_that_is_not_its_digest_is_refused() {
    let (bytes, _) = bytes_and_manifest();
    for (part, at) in [(0, bytes.len() - 3_000 - 5), (1, bytes.len() - 2_500), (2, bytes.len() - 1)] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        match Bundle::from_bytes(&bad) {
            Err(e @ Error::Digest { part: p }) => {
                assert_eq!(p, part);
                assert_eq!(
                    e.to_string(),
                    format!("part {part} of the share bundle does not match its SHA-256 digest")
                );
            }
            other => panic!("part {part}: {other:?}"),
        }
    }
}

#[test]
fn trailing_bytes_and_wrong_magic_are_refused() {
    let (mut bytes, _) = bytes_and_manifest();
    bytes.push(0);
    assert!(matches!(
        Bundle::from_bytes(&bytes),
        Err(Error::TrailingBytes { format: Format::Bundle, count: 1 })
    ));
    assert!(matches!(Bundle::from_bytes(b"BEDSIDEC\0\x01"), Err(Error::NotAShare(Format::Bundle))));
    assert!(matches!(Bundle::from_bytes(b"%PDF-1.7"), Err(Error::NotAShare(Format::Bundle))));
}

#[test]
fn declared_sizes_over_the_bounds_are_refused_before_allocating() {
    let mut bytes = b"BEDSIDEB\x00\x01".to_vec();
    bytes.extend_from_slice(&(MAX_MANIFEST_LEN + 1).to_be_bytes());
    assert!(matches!(
        Bundle::from_bytes(&bytes),
        Err(Error::TooLarge { format: Format::Bundle, size: 1_048_577, limit: 1_048_576 })
    ));

    let (_, mut manifest) = bytes_and_manifest();
    manifest["parts"][0]["byte_length"] = json!(1u64 << 40);
    assert!(matches!(
        Bundle::from_bytes(&raw(1, &manifest, &[])),
        Err(Error::TooLarge { format: Format::Bundle, size, limit: 67_108_864 }) if size == (1 << 40) + 3_000
    ));
    manifest["parts"][0]["byte_length"] = json!(u64::MAX);
    assert!(matches!(Bundle::from_bytes(&raw(1, &manifest, &[])), Err(Error::TooLarge { .. })));
}

#[test]
fn a_manifest_that_is_not_json_of_version_1_is_refused() {
    let mut bytes = b"BEDSIDEB\x00\x01\x00\x00\x00\x05{\"a\":".to_vec();
    assert!(matches!(Bundle::from_bytes(&bytes), Err(Error::Json { format: Format::Bundle, .. })));
    bytes.truncate(14);
    bytes[13] = 0;
    assert!(matches!(Bundle::from_bytes(&bytes), Err(Error::Json { format: Format::Bundle, .. })));

    let (_, mut manifest) = bytes_and_manifest();
    manifest["format_version"] = json!(2);
    match Bundle::from_bytes(&raw(1, &manifest, &[])) {
        Err(Error::Invalid { format: Format::Bundle, field, .. }) => assert_eq!(field, "format_version"),
        other => panic!("{other:?}"),
    }
}

/// The field an invalid bundle is refused for when it is written (reading checks the same rules).
fn invalid_field(bundle: &Bundle) -> String {
    match bundle.to_bytes() {
        Err(Error::Invalid { format: Format::Bundle, field, .. }) => field,
        other => panic!("{other:?}"),
    }
}

#[test]
fn values_that_break_the_rules_name_their_field() {
    let check = |change: &dyn Fn(&mut Bundle), field: &str| {
        let mut bundle = sample_bundle();
        change(&mut bundle);
        assert_eq!(invalid_field(&bundle), field);
    };
    check(&|b| b.diagnoses[0].label = "pneumothorax".into(), "diagnoses[0].label");
    check(&|b| b.diagnoses[0].label = "normal".into(), "diagnoses[0].label");
    check(&|b| b.diagnoses[1].most_likely = "uncertain".into(), "diagnoses[1].most_likely");
    check(&|b| b.diagnoses[0].probabilities[1].1 = 1.5, "diagnoses[0].probabilities[1].probability");
    check(&|b| b.diagnoses[0].probabilities[0].1 = f32::NAN, "diagnoses[0].probabilities[0].probability");
    check(&|b| b.diagnoses[0].probabilities[1].0 = "normal".into(), "diagnoses[0].probabilities[1].class");
    check(&|b| b.diagnoses[0].probabilities.clear(), "diagnoses[0].probabilities");
    check(&|b| b.diagnoses[0].thresholds[0].0 = "effusion".into(), "diagnoses[0].thresholds[0].class");
    check(&|b| b.diagnoses[1].image = 2, "diagnoses[1].image");
    check(&|b| b.diagnoses[1].model.sha256.clear(), "diagnoses[1].model.sha256");
    check(&|b| b.images[0].name = "../image-1.dcm".into(), "images[0].name");
    check(&|b| b.images[1].name = "a\nb.png".into(), "images[1].name");
    check(&|b| b.images[0].media_type = "dicom".into(), "parts[0].media_type");
    check(&|b| b.created = "x".repeat(300), "created");
    check(
        &|b| b.diagnoses[1].heat_map = Some(HeatMap::Grid { width: 3, height: 3, values: vec![0.5; 6] }),
        "diagnoses[1].heat_map.grid.values",
    );
    check(
        &|b| b.diagnoses[1].heat_map = Some(HeatMap::Grid { width: 1024, height: 1024, values: vec![] }),
        "diagnoses[1].heat_map.grid",
    );
}

#[test]
fn parts_must_each_be_named_once() {
    let (bytes, mut manifest) = bytes_and_manifest();
    let length = u32::from_be_bytes(bytes[10..14].try_into().unwrap()) as usize;
    let parts = &bytes[14 + length..];
    let refused_for = |manifest: &Value| match Bundle::from_bytes(&raw(1, manifest, parts)) {
        Err(Error::Invalid { format: Format::Bundle, field, problem }) => (field, problem),
        other => panic!("{other:?}"),
    };
    manifest["images"][1]["part"] = json!(0);
    assert_eq!(
        refused_for(&manifest),
        ("images[1].part".into(), "names a part that something else names too")
    );
    manifest["images"][1]["part"] = json!(9);
    assert_eq!(refused_for(&manifest).0, "images[1].part");
    manifest["images"][1]["part"] = json!(1);
    manifest["diagnoses"][0]["heat_map"] = Value::Null;
    assert_eq!(refused_for(&manifest), ("parts[2]".into(), "is named by no image or heat map"));
    // The heat map pointed at the DICOM image, and the image at the PNG.
    manifest["diagnoses"][0]["heat_map"] = json!({"png": {"part": 0}});
    manifest["images"][0]["part"] = json!(2);
    assert_eq!(refused_for(&manifest).0, "diagnoses[0].heat_map.png.part");
}

#[test]
fn parts_over_the_bound_are_refused_on_writing() {
    let mut bundle = sample_bundle();
    bundle.images[0].bytes = vec![0; 64 << 20];
    assert!(matches!(
        bundle.to_bytes(),
        Err(Error::TooLarge { format: Format::Bundle, limit: 67_108_864, size }) if size == (64 << 20) + 3_000
    ));
}

#[test]
fn a_bundle_without_images_or_diagnoses_round_trips() {
    let bundle = Bundle { created: String::new(), images: vec![], diagnoses: vec![], note: String::new() };
    let bytes = bundle.to_bytes().unwrap();
    assert_eq!(Bundle::from_bytes(&bytes).unwrap(), bundle);
    let noisy = Bundle { note: String::from_utf8_lossy(&noise(500, 4)).into_owned(), ..bundle };
    assert_eq!(Bundle::from_bytes(&noisy.to_bytes().unwrap()).unwrap(), noisy);
}
