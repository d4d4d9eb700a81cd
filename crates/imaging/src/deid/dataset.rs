//! The DICOM side: Table E.1-1 applied to a data set and every data set nested in it.

use super::{BurnedInRisk, Deidentified, Deidentifier, Format, Summary, Treatment, basic_profile_action};
use crate::Error;
use crate::dicom::error_chain;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

/// What De-identification Method (0012,0063) says.
const METHOD: &str = "DICOM PS3.15 E.1 Basic Profile (2026c), Bedside";

/// The code of the Basic Application Confidentiality Profile (DICOM PS3.16, CID 7050).
const PROFILE_CODE: (&str, &str, &str) = ("113100", "DCM", "Basic Application Confidentiality Profile");

/// The dummy text for D: valid for every string VR it is used with (CS included: upper case, ≤ 16).
const DUMMY_TEXT: &str = "ANONYMOUS";

pub(super) fn deidentify(share: &mut Deidentifier, body: &[u8]) -> Result<Deidentified, Error> {
    let object = crate::dicom::parse(body)?;
    let burned_in_risk = burned_in_risk(&object);
    let mut meta = object.meta().clone();
    let mut summary = Summary {
        attributes_removed: 0,
        attributes_emptied: 0,
        attributes_replaced: 0,
        uids_replaced: 0,
        private_tags_removed: 0,
        burned_in_risk,
        burned_in_warning: burned_in_risk.warn(),
    };
    let mut dataset = walk(object.into_inner(), share, &mut summary);
    mark(&mut dataset);

    // Media Storage SOP Instance UID (U) names the SOP instance, whose new UID it takes (a few
    // writers let the two disagree: the data set's wins). The AE titles name the machines the file
    // passed through; private information is private.
    let instance = dataset.get(tags::SOP_INSTANCE_UID).map(|e| e.value()).and_then(|v| match v {
        Value::Primitive(value) => strings(value).into_iter().next().filter(|uid| !uid.is_empty()),
        _ => None,
    });
    let media = trim(&meta.media_storage_sop_instance_uid).to_string();
    if let Some(new) = instance {
        meta.media_storage_sop_instance_uid = new;
        summary.uids_replaced += 1;
    } else if !media.is_empty() {
        meta.media_storage_sop_instance_uid = share.uid(&media);
        summary.uids_replaced += 1;
    }
    // The implementation named is the one that writes this file (PS3.10), not the original's.
    meta.implementation_class_uid = dicom_object::IMPLEMENTATION_CLASS_UID.to_string();
    meta.implementation_version_name = Some(dicom_object::IMPLEMENTATION_VERSION_NAME.to_string());
    meta.source_application_entity_title = None;
    meta.sending_application_entity_title = None;
    meta.receiving_application_entity_title = None;
    meta.private_information_creator_uid = None;
    meta.private_information = None;
    meta.update_information_group_length();

    let file = dataset.with_exact_meta(meta);
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| Error::DicomWrite(error_chain(&e)))?;
    Ok(Deidentified { bytes, format: Format::Dicom, summary })
}

/// Applies the table to every element of `dataset`, recursing into the sequences it keeps.
fn walk(dataset: InMemDicomObject, share: &mut Deidentifier, summary: &mut Summary) -> InMemDicomObject {
    let mut out = Vec::new();
    for element in dataset {
        let tag = element.tag();
        if tag.group() % 2 == 1 {
            summary.private_tags_removed += 1;
            continue;
        }
        // Group lengths (retired) would be wrong once anything in the group changes.
        if tag.element() == 0 {
            continue;
        }
        // A sequence left as UN bytes cannot have the table applied inside it: it goes whole.
        if element.vr() == VR::UN && actual_vr(tag, VR::UN) == VR::SQ {
            summary.attributes_removed += 1;
            continue;
        }
        match basic_profile_action(tag).map(|(action, _)| action.treatment()) {
            None | Some(Treatment::UidsInside) => out.push(keep(element, share, summary)),
            Some(Treatment::Remove) => summary.attributes_removed += 1,
            Some(Treatment::Empty) => {
                out.push(DataElement::empty(tag, actual_vr(tag, element.vr())));
                summary.attributes_emptied += 1;
            }
            Some(Treatment::Dummy) => {
                out.push(dummy(element, share, summary));
                summary.attributes_replaced += 1;
            }
            Some(Treatment::NewUid) => {
                let replaced = new_uids(element, share);
                summary.uids_replaced += u32::from(replaced.1);
                out.push(replaced.0);
            }
        }
    }
    InMemDicomObject::from_element_iter(out)
}

/// The element as it is, its sequence items (if any) de-identified. A sequence's length is left to
/// the writer: its items change size.
fn keep(element: InMemElement, share: &mut Deidentifier, summary: &mut Summary) -> InMemElement {
    let (tag, vr) = (element.tag(), element.vr());
    match element.into_value() {
        Value::Sequence(sequence) => {
            let items: Vec<InMemDicomObject> =
                sequence.into_items().into_iter().map(|item| walk(item, share, summary)).collect();
            DataElement::new(tag, vr, DataSetSequence::new(items, Length::UNDEFINED))
        }
        value => DataElement::new(tag, vr, value),
    }
}

/// A UID attribute with every value replaced through the share's map; `true` if it had one.
fn new_uids(element: InMemElement, share: &mut Deidentifier) -> (InMemElement, bool) {
    let (tag, vr) = (element.tag(), actual_vr(element.tag(), element.vr()));
    let Value::Primitive(value) = element.value() else {
        return (element, false);
    };
    let originals = strings(value);
    if originals.iter().all(String::is_empty) {
        return (element, false);
    }
    let new: Vec<String> = originals.iter().map(|uid| share.uid(uid)).collect();
    (DataElement::new(tag, vr, PrimitiveValue::Strs(new.into())), true)
}

/// A non-empty value of the element's VR that says nothing of the original.
fn dummy(element: InMemElement, share: &mut Deidentifier, summary: &mut Summary) -> InMemElement {
    let (tag, vr) = (element.tag(), actual_vr(element.tag(), element.vr()));
    let value = match vr {
        // A sequence's dummy is its own items, de-identified: the structure an IOD needs stays.
        VR::SQ => return keep(element, share, summary),
        VR::UI => return new_uids(element, share).0,
        VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UT => {
            PrimitiveValue::from(DUMMY_TEXT)
        }
        VR::UR => PrimitiveValue::from("urn:anonymous"),
        VR::AS => PrimitiveValue::from("000D"),
        VR::DA => PrimitiveValue::from("19000101"),
        VR::DT => PrimitiveValue::from("19000101000000"),
        VR::TM => PrimitiveValue::from("000000"),
        VR::DS | VR::IS => PrimitiveValue::from("0"),
        VR::US => PrimitiveValue::from(0u16),
        VR::SS => PrimitiveValue::from(0i16),
        VR::UL => PrimitiveValue::from(0u32),
        VR::SL => PrimitiveValue::from(0i32),
        VR::UV | VR::OV => PrimitiveValue::from(0u64),
        VR::SV => PrimitiveValue::from(0i64),
        VR::FL | VR::OF => PrimitiveValue::from(0f32),
        VR::FD | VR::OD => PrimitiveValue::from(0f64),
        VR::AT => PrimitiveValue::Tags([Tag(0, 0)].as_slice().into()),
        VR::OW => PrimitiveValue::from(0u16),
        VR::OL => PrimitiveValue::from(0u32),
        VR::OB | VR::UN => PrimitiveValue::U8([0u8, 0].as_slice().into()),
    };
    DataElement::new(tag, vr, value)
}

/// The VR of a UN element from the standard dictionary, where it has one (implicit-VR writers and
/// converters leave standard attributes as UN), so that a replacement is written as what it is.
fn actual_vr(tag: Tag, vr: VR) -> VR {
    if vr != VR::UN {
        return vr;
    }
    match StandardDataDictionary.by_tag(tag).map(DataDictionaryEntry::vr) {
        Some(VirtualVr::Exact(vr)) => vr,
        _ => VR::UN,
    }
}

/// Patient Identity Removed YES, De-identification Method and its code, added to any earlier one.
fn mark(dataset: &mut InMemDicomObject) {
    dataset.put(DataElement::new(tags::PATIENT_IDENTITY_REMOVED, VR::CS, PrimitiveValue::from("YES")));
    dataset.put(DataElement::new(tags::DEIDENTIFICATION_METHOD, VR::LO, PrimitiveValue::from(METHOD)));
    let (value, scheme, meaning) = PROFILE_CODE;
    let code = InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
        DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from(scheme)),
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
    ]);
    let mut items: Vec<InMemDicomObject> = match dataset.take(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE) {
        Some(element) => element.into_value().into_items().map(|items| items.into_vec()).unwrap_or_default(),
        None => Vec::new(),
    };
    let has_code = |item: &InMemDicomObject| {
        item.get(tags::CODE_VALUE).and_then(|e| e.to_str().ok()).is_some_and(|v| trim(&v) == value)
    };
    if !items.iter().any(has_code) {
        items.push(code);
    }
    dataset.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
}

/// Burned In Annotation as the file says it, else what its kind suggests.
fn burned_in_risk(object: &InMemDicomObject) -> BurnedInRisk {
    let text = |tag| object.get(tag).and_then(|e| e.to_str().ok()).map(|v| trim(&v).to_ascii_uppercase());
    match text(tags::BURNED_IN_ANNOTATION).as_deref() {
        Some("YES") => return BurnedInRisk::Yes,
        Some("NO") => return BurnedInRisk::No,
        _ => {}
    }
    // Ultrasound, endoscopy, external camera, ophthalmic and microscopy photographs, "other".
    let modality_says = text(tags::MODALITY).is_some_and(|m| {
        matches!(m.as_str(), "US" | "IVUS" | "ES" | "XC" | "OP" | "GM" | "SM" | "OT" | "DOC")
    });
    // Secondary Capture (…1.7, …1.7.1–4), VL images (…1.77.x) and ultrasound (…1.6.x).
    let class = text(tags::SOP_CLASS_UID).unwrap_or_default();
    let in_family =
        |root: &str| class == root || class.strip_prefix(root).is_some_and(|r| r.starts_with('.'));
    let class_says = ["1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.77", "1.2.840.10008.5.1.4.1.1.6"]
        .into_iter()
        .any(in_family);
    if modality_says || class_says { BurnedInRisk::Unknown } else { BurnedInRisk::No }
}

/// A value's strings, without the padding DICOM adds (bytes of an unknown VR read as text).
pub(crate) fn strings(value: &PrimitiveValue) -> Vec<String> {
    match value {
        PrimitiveValue::U8(bytes) => {
            String::from_utf8_lossy(bytes).split('\\').map(|s| trim(s).to_string()).collect()
        }
        value => value.to_multi_str().iter().map(|s| trim(s).to_string()).collect(),
    }
}

fn trim(text: &str) -> &str {
    text.trim_matches(['\0', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_object::meta::FileMetaTableBuilder;

    fn element(tag: Tag, vr: VR, value: &str) -> InMemElement {
        DataElement::new(tag, vr, PrimitiveValue::from(value))
    }

    fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
        DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
    }

    fn file(elements: Vec<InMemElement>) -> Vec<u8> {
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.4")
            .media_storage_sop_instance_uid("1.2.3.4.5")
            .transfer_syntax("1.2.840.10008.1.2.1");
        let object = InMemDicomObject::from_element_iter(elements).with_meta(meta).unwrap();
        let mut bytes = Vec::new();
        object.write_all(&mut bytes).unwrap();
        bytes
    }

    fn read(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
        dicom_object::OpenFileOptions::new().from_reader(bytes).unwrap()
    }

    #[test]
    fn patterns_private_tags_in_sequences_and_earlier_methods() {
        let earlier = InMemDicomObject::from_element_iter([
            element(tags::CODE_VALUE, VR::SH, "113101"),
            element(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM"),
        ]);
        let nested = InMemDicomObject::from_element_iter([
            element(Tag(0x0009, 0x0010), VR::LO, "ACME"),
            element(Tag(0x0009, 0x1001), VR::LO, "secret"),
            element(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5"),
            element(tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
        ]);
        let bytes = file(vec![
            element(tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
            element(tags::PATIENT_ID, VR::LO, "123456"),
            element(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5"),
            element(tags::MODALITY, VR::CS, "US"),
            element(Tag(0x6002, 0x4000), VR::LT, "overlay note"),
            element(Tag(0x5000, 0x0022), VR::LO, "curve description"),
            element(Tag(0x6000, 0x0010), VR::US, "8"),
            sequence(tags::REFERENCED_IMAGE_SEQUENCE, vec![nested]),
            sequence(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE, vec![earlier]),
        ]);
        let mut share = Deidentifier::new([9; 32]);
        let result = share.deidentify(&bytes).unwrap();
        let out = read(&result.bytes);
        let text = |object: &InMemDicomObject, tag| object.get(tag).map(|e| e.to_str().unwrap().into_owned());
        assert_eq!(text(&out, tags::PATIENT_NAME).as_deref(), Some(""), "Z");
        // Patient ID is Z/D: a dummy value.
        assert_eq!(text(&out, tags::PATIENT_ID).as_deref(), Some(DUMMY_TEXT));
        assert!(out.get(Tag(0x6002, 0x4000)).is_none() && out.get(Tag(0x5000, 0x0022)).is_none());
        assert!(out.get(Tag(0x6000, 0x0010)).is_some(), "Overlay Rows is not in the table");
        let new_uid = share.uid("1.2.3.4.5");
        assert_eq!(text(&out, tags::SOP_INSTANCE_UID).as_deref(), Some(new_uid.as_str()));
        assert_eq!(out.meta().media_storage_sop_instance_uid.trim_end_matches('\0'), new_uid);
        // X/Z/U*: the sequence kept, its item de-identified by the same rules and map.
        let items = out.get(tags::REFERENCED_IMAGE_SEQUENCE).unwrap().items().unwrap();
        let item = &items[0];
        assert_eq!(text(item, tags::REFERENCED_SOP_INSTANCE_UID).as_deref(), Some(new_uid.as_str()));
        assert!(item.iter().all(|e| e.tag().group() % 2 == 0), "no private attribute inside");
        assert_eq!(text(item, tags::PATIENT_NAME).as_deref(), Some(""));
        // The earlier method stays, ours is added.
        let codes: Vec<String> = out
            .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .iter()
            .filter_map(|item| text(item, tags::CODE_VALUE))
            .collect();
        assert_eq!(codes, ["113101", "113100"]);
        assert_eq!(text(&out, tags::PATIENT_IDENTITY_REMOVED).as_deref(), Some("YES"));
        assert_eq!(result.summary.private_tags_removed, 2);
        assert_eq!(result.summary.attributes_removed, 2, "overlay comments and curve data");
        assert_eq!(result.summary.burned_in_risk, BurnedInRisk::Unknown, "ultrasound, not said");
        assert!(!result.bytes.windows(8).any(|w| w == b"Doe^Jane"));
    }
}
