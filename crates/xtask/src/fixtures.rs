//! Files the end-to-end tests open that no data set ships: a chest film from the shared data's
//! `originals/` wrapped, pixel for pixel, in a DICOM file (Modality CR, with a patient's name and
//! ID), as a hospital's archive would send it; and an ordinary photograph the trust gate never saw (one of its held-out
//! validation photographs, from a package-registry wheel). Written under the target folder; never
//! committed.

use anyhow::{Context, Result};
use bedside_imaging::{Limits, Study};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::{Path, PathBuf};

/// The chest film the tests wrap (a validation-split film from `originals/`).
pub const CHEST_FILM: &str = "chest_person321_virus_648.jpeg";

/// The wrapped film's Patient's Name and Patient ID (tests/e2e/share.test.mjs looks for them).
pub const FIXTURE_PATIENT_NAME: &str = "DOE^JANE";
pub const FIXTURE_PATIENT_ID: &str = "MRN-0042";

/// The photograph the refusal test opens: held out from the gate's training (its group is a
/// validation group, see `bedside_train::gate::is_val_photo`).
pub const HELD_OUT_PHOTO: &str = "horse.png";

/// Writes the fixtures into `dir` (made if needed) and returns it; without the shared data there
/// is nothing to wrap, and the tests that need it skip or fail on their own terms.
pub fn write(data: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let photos = bedside_corpus::photos(&bedside_corpus::photos_dir())?;
    let photo = photos
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == HELD_OUT_PHOTO))
        .with_context(|| format!("{HELD_OUT_PHOTO} is not among the registry photographs"))?;
    let out = dir.join(format!("photo-{HELD_OUT_PHOTO}"));
    std::fs::copy(photo, &out).with_context(|| format!("could not write {}", out.display()))?;
    let film = data.join("originals").join(CHEST_FILM);
    if film.is_file() {
        let out = dir.join(CHEST_FILM.replace(".jpeg", ".dcm"));
        std::fs::write(&out, wrap_in_dicom(&film)?)
            .with_context(|| format!("could not write {}", out.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// The photo's decoded grey pixels (EXIF orientation applied, as the app shows them) as an 8-bit
/// MONOCHROME2 CR image, explicit VR little endian.
fn wrap_in_dicom(photo: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(photo).with_context(|| format!("could not read {}", photo.display()))?;
    let study = Study::open(&bytes, &Limits::default()).with_context(|| format!("{}", photo.display()))?;
    let frame = study.frame(0)?;
    anyhow::ensure!(frame.is_grey(), "{} is not a grey picture", photo.display());
    let pixels: Vec<u8> = frame.stored.map(|v| v as u8);

    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "CR"));
    obj.put(DataElement::new(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"));
    // A patient's identity, as an archive's file has one: the share test checks that none of it
    // reaches the reviewer.
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, FIXTURE_PATIENT_NAME));
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, FIXTURE_PATIENT_ID));
    put_grey_image(&mut obj, frame.rows as u16, frame.columns as u16, 8, 8);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pixels)));
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("2.25.1");
    let mut out = Vec::new();
    obj.with_meta(meta)?.write_all(&mut out)?;
    Ok(out)
}

/// The Image Pixel attributes of an unsigned MONOCHROME2 picture of `rows × columns`, one sample a
/// pixel, `bits_stored` of `bits_allocated` bits (pixel data not included).
pub(crate) fn put_grey_image(
    obj: &mut InMemDicomObject,
    rows: u16,
    columns: u16,
    bits_allocated: u16,
    bits_stored: u16,
) {
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(us(tags::SAMPLES_PER_PIXEL, 1));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    obj.put(us(tags::ROWS, rows));
    obj.put(us(tags::COLUMNS, columns));
    obj.put(us(tags::BITS_ALLOCATED, bits_allocated));
    obj.put(us(tags::BITS_STORED, bits_stored));
    obj.put(us(tags::HIGH_BIT, bits_stored - 1));
    obj.put(us(tags::PIXEL_REPRESENTATION, 0));
}
