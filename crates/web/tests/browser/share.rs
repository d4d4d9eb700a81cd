//! Sharing as the worker does it: a file de-identified, sealed with a diagnosis and a note, opened
//! with the link's fragment; a reply sealed and opened; a wrong key refused.

use crate::decode::field;
use bedside_web::{Draft, open_reply, open_share, seal_reply};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

const NAME: &str = "DOE^JANE";
const PATIENT_ID: &str = "MRN-0042";

/// A 4×4 CR film with a patient's name and ID.
fn named_dicom() -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "CR"));
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, NAME));
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, PATIENT_ID));
    obj.put(us(tags::SAMPLES_PER_PIXEL, 1));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    obj.put(us(tags::ROWS, 4));
    obj.put(us(tags::COLUMNS, 4));
    obj.put(us(tags::BITS_ALLOCATED, 8));
    obj.put(us(tags::BITS_STORED, 8));
    obj.put(us(tags::HIGH_BIT, 7));
    obj.put(us(tags::PIXEL_REPRESENTATION, 0));
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from((0..16u8).collect::<Vec<_>>())));
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("1.2.3.4");
    let mut bytes = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut bytes).unwrap();
    bytes
}

/// A diagnosed assessment as the worker holds it (only the fields a bundle keeps matter), and its
/// model's summary.
const ASSESSMENT: &str = r#"{"outcome":"diagnosed","task":"chest","label":"uncertain","most_likely":"pneumonia",
  "probabilities":{"pneumonia":0.55,"normal":0.45},"threshold":0.5,"review":{"margin":0.3},
  "region":[0,0,4,4],"lesion":null,"heat_map_peak":[1,1],"routed_by":"modality","note":null,"gate":{}}"#;
const SUMMARY: &str = r#"{"task":"chest","title":"Chest X-ray (child)","classes":["normal","pneumonia"],
  "positive_class":"pneumonia","format_version":3,"sha256":"ab12"}"#;

fn message(err: wasm_bindgen::JsError) -> String {
    String::from(js_sys::Error::from(JsValue::from(err)).message())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[wasm_bindgen_test]
fn a_sealed_share_opens_with_its_fragment_and_holds_no_identity() {
    let draft = Draft::new(&named_dicom()).unwrap();
    // CR without Burned In Annotation: the kind rarely has text in its pixels.
    assert_eq!((draft.burned_in_risk().as_str(), draft.burned_in_warning()), ("no", false));
    let heat = [255u8, 0, 0, 200].repeat(4); // 2×2, all red
    let sealed = draft
        .seal(
            ASSESSMENT,
            SUMMARY,
            &heat,
            2,
            2,
            4,
            4,
            "Cough for a week.".into(),
            "2026-12-04T17:00:00Z".into(),
            &[],
        )
        .unwrap();
    let fragment = format!("share=abc&{}", sealed.fragment());
    assert!(sealed.fragment().starts_with("k=") && sealed.fragment().len() == 45, "{}", sealed.fragment());
    // The ciphertext hides the note; the fragment is the only key.
    assert!(!contains(&sealed.ciphertext(), "Cough"));

    let shared = open_share(&fragment, &sealed.ciphertext()).unwrap();
    assert_eq!(field(&shared, &["note"]).as_string().unwrap(), "Cough for a week.");
    assert_eq!(field(&shared, &["created"]).as_string().unwrap(), "2026-12-04T17:00:00Z");
    let image = js_sys::Array::from(&field(&shared, &["images"])).get(0);
    assert_eq!(field(&image, &["media_type"]).as_string().unwrap(), "application/dicom");
    let bytes = js_sys::Uint8Array::from(field(&image, &["bytes"])).to_vec();
    assert!(
        !contains(&bytes, NAME) && !contains(&bytes, PATIENT_ID),
        "the shared file still names the patient"
    );
    let d = js_sys::Array::from(&field(&shared, &["diagnoses"])).get(0);
    assert_eq!(field(&d, &["label"]).as_string().unwrap(), "uncertain");
    assert_eq!(field(&d, &["most_likely"]).as_string().unwrap(), "pneumonia");
    assert_eq!(
        js_sys::JSON::stringify(&field(&d, &["probabilities"])).unwrap(),
        r#"[["normal",0.45],["pneumonia",0.55]]"#
    );
    assert_eq!(js_sys::JSON::stringify(&field(&d, &["thresholds"])).unwrap(), r#"[["pneumonia",0.5]]"#);
    assert_eq!(field(&d, &["model", "sha256"]).as_string().unwrap(), "ab12");
    // The 2×2 map over the whole 4×4 frame: a 4×4 layer, red where the map was.
    assert_eq!(field(&d, &["heat_map", "width"]).as_f64(), Some(4.0));
    let rgba = js_sys::Uint8Array::from(field(&d, &["heat_map", "rgba"])).to_vec();
    assert_eq!(&rgba[..4], &[255, 0, 0, 200]);
}

#[wasm_bindgen_test]
fn drawn_rectangles_are_black_in_the_shared_image_clamped_to_it() {
    let draft = Draft::new(&named_dicom()).unwrap();
    let heat = [0u8; 4];
    let seal = |black_out: &[f64]| {
        draft.seal(ASSESSMENT, SUMMARY, &heat, 1, 1, 4, 4, String::new(), "t".into(), black_out)
    };
    // Dragged from inside the 4×4 film up and out past its right edge: clamped to columns 2–3 of
    // rows 0–1, every pixel it touches.
    let sealed = seal(&[2.5, 1.2, 5.0, -2.2]).unwrap();
    assert_eq!(sealed.blacked_out(), vec![2, 0, 2, 2]);
    let shared = open_share(&format!("share=a&{}", sealed.fragment()), &sealed.ciphertext()).unwrap();
    let image = js_sys::Array::from(&field(&shared, &["images"])).get(0);
    let bytes = js_sys::Uint8Array::from(field(&image, &["bytes"])).to_vec();
    let study = bedside_imaging::Study::open(&bytes, &bedside_imaging::Limits::default()).unwrap();
    let pixels = study.raw_frame(0).unwrap();
    let mut expected: Vec<u8> = (0..16).collect();
    for i in [2, 3, 6, 7] {
        expected[i] = 0;
    }
    assert_eq!(pixels, expected);
    // The page's draft is untouched: sealed again without rectangles, the pixels are as they were.
    let plain = seal(&[]).unwrap();
    assert!(plain.blacked_out().is_empty());

    let empty = seal(&[1.0, 1.0, 0.0, 3.0]).err().map(message);
    assert_eq!(
        empty.as_deref(),
        Some("cannot black out the rectangle 1,1,0,3: it is empty (give it a width and a height)")
    );
    let short = seal(&[1.0, 1.0, 2.0]).err().map(message);
    assert_eq!(short.as_deref(), Some("each rectangle to black out needs four numbers: x, y, width, height"));
}

#[wasm_bindgen_test]
fn a_wrong_key_cannot_decrypt_and_a_reply_round_trips() {
    let draft = Draft::new(&named_dicom()).unwrap();
    let heat = [0u8; 4];
    let sealed = draft.seal(ASSESSMENT, SUMMARY, &heat, 1, 1, 4, 4, String::new(), "t".into(), &[]).unwrap();
    let other = Draft::new(&named_dicom())
        .unwrap()
        .seal(ASSESSMENT, SUMMARY, &heat, 1, 1, 4, 4, String::new(), "t".into(), &[])
        .unwrap();
    let err = open_share(&other.fragment(), &sealed.ciphertext()).unwrap_err();
    assert_eq!(message(err), "cannot decrypt this share");

    let reply = seal_reply(&sealed.fragment(), "Agree; antibiotics.".into(), "agree", "t2".into()).unwrap();
    let opened = open_reply(&sealed.fragment(), &reply).unwrap();
    assert_eq!(field(&opened, &["text"]).as_string().unwrap(), "Agree; antibiotics.");
    assert_eq!(field(&opened, &["opinion"]).as_string().unwrap(), "agree");
    assert_eq!(message(open_reply(&other.fragment(), &reply).unwrap_err()), "cannot decrypt this share");
    assert!(
        message(seal_reply(&sealed.fragment(), String::new(), "maybe", "t".into()).unwrap_err())
            .contains("unknown opinion")
    );
}
