//! The decoder as the browser runs it. Inputs are built here, so the test needs no files.

use bedside_web::Study;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use wasm_bindgen_test::*;

/// A 4×2 MONOCHROME1 CT-like image, 16-bit signed, with a rescale to Hounsfield units.
fn dicom_bytes() -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let u16v = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "CT"));
    obj.put(u16v(tags::SAMPLES_PER_PIXEL, 1));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME1"));
    obj.put(u16v(tags::ROWS, 2));
    obj.put(u16v(tags::COLUMNS, 4));
    obj.put(u16v(tags::BITS_ALLOCATED, 16));
    obj.put(u16v(tags::BITS_STORED, 12));
    obj.put(u16v(tags::HIGH_BIT, 11));
    obj.put(u16v(tags::PIXEL_REPRESENTATION, 1));
    obj.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, "-1024"));
    obj.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, "1"));
    // 12-bit signed: 0x0FFF is -1 once sign-extended.
    let stored: Vec<u16> = vec![0, 100, 1024, 2047, 0x0FFF, 0x0800, 512, 1500];
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(stored.into())));
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("1.2.3.4");
    let file = obj.with_meta(meta).unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

pub(crate) fn field(value: &wasm_bindgen::JsValue, path: &[&str]) -> wasm_bindgen::JsValue {
    path.iter().fold(value.clone(), |v, key| js_sys::Reflect::get(&v, &(*key).into()).unwrap())
}

#[wasm_bindgen_test]
fn dicom_opens_and_reports_stored_values() {
    let study = Study::open(&dicom_bytes(), "ct.dcm").unwrap();
    let summary = study.summary().unwrap();
    assert_eq!((study.columns(), study.rows()), (4, 2));
    assert_eq!(field(&summary, &["info", "modality"]).as_string().unwrap(), "CT");
    assert_eq!(field(&summary, &["info", "min"]).as_f64(), Some(-2048.0));
    assert_eq!(field(&summary, &["info", "max"]).as_f64(), Some(2047.0));
    assert_eq!(field(&summary, &["range", "low"]).as_f64(), Some(-3072.0));
    assert_eq!(field(&summary, &["info", "grey"]).as_bool(), Some(true));
}

#[wasm_bindgen_test]
fn window_and_monochrome1_shape_the_pixels() {
    let mut study = Study::open(&dicom_bytes(), "ct.dcm").unwrap();
    // A soft-tissue window: stored 1024 is 0 HU, the middle; MONOCHROME1 draws low values white.
    let rgba = study.render(0, 0.5, 400.0).unwrap();
    assert_eq!(rgba.len(), 4 * 8);
    let level = |i: usize| rgba[4 * i];
    assert_eq!(level(0), 255, "-1024 HU, far below the window, drawn white");
    assert_eq!(level(3), 0, "+1023 HU, far above the window, drawn black");
    assert!((120..136).contains(&level(2)), "0 HU mid-grey, got {}", level(2));
    let wide = study.render(0, 0.5, 4000.0).unwrap();
    assert_ne!(rgba, wide, "another window draws other pixels");
}

#[wasm_bindgen_test]
fn png_photo_opens_in_colour() {
    let mut png = Vec::new();
    let img = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 100, y as u8 * 200, 7]));
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let mut study = Study::open(&png, "photo.png").unwrap();
    let summary = study.summary().unwrap();
    assert_eq!(field(&summary, &["info", "modality"]).as_string().unwrap(), "photo");
    assert_eq!(field(&summary, &["info", "grey"]).as_bool(), Some(false));
    let rgba = study.render(0, f64::NAN, f64::NAN).unwrap();
    assert_eq!(&rgba[4 * 5..4 * 6], &[200, 200, 7, 255]);
}

#[wasm_bindgen_test]
fn truncated_dicom_is_a_readable_error() {
    let bytes = dicom_bytes();
    let err = Study::open(&bytes[..bytes.len() - 6], "cut.dcm").err().expect("an error");
    let message = js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message();
    let message = String::from(message);
    assert!(message.contains("Pixel") || message.contains("7FE0"), "{message}");
}

#[wasm_bindgen_test]
fn a_large_jpeg_opens_at_the_size_the_page_needs_and_renders_into_a_given_buffer() {
    let img = image::RgbImage::from_fn(4200, 300, |x, y| image::Rgb([(x / 17) as u8, (y / 2) as u8, 90]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
    let mut study = Study::open(&jpeg, "wide.jpg").unwrap();
    // At least 4096 long: decoded at 1/2, still at least 2048 long, the file's size kept beside it.
    assert_eq!((study.columns(), study.rows()), (2100, 150));
    let summary = study.summary().unwrap();
    let original = js_sys::Array::from(&field(&summary, &["info", "original_size"]));
    assert_eq!((original.get(0).as_f64(), original.get(1).as_f64()), (Some(4200.0), Some(300.0)));
    // A buffer handed back by the page is drawn into, with what `render` gives.
    let fresh = study.render(0, f64::NAN, f64::NAN).unwrap();
    let mut reused = vec![0u8; fresh.len()];
    study.render_into(0, f64::NAN, f64::NAN, &mut reused).unwrap();
    assert_eq!(reused, fresh);
    let mut wrong = vec![0u8; 16];
    assert!(study.render_into(0, f64::NAN, f64::NAN, &mut wrong).is_err(), "a buffer of another size");
}
