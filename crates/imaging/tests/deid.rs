//! De-identification over every file of the DICOM test corpus, checked against Table E.1-1 by
//! reading input and output independently with dicom-object: each attribute of the table the input
//! carries has been treated per its action, no private attribute is left at any depth, UIDs map
//! consistently within a share and differ between shares, the profile is recorded, and the pixels
//! decode to the same raw array (the MD5 `bedside decode --raw-md5` reports). Also photos: EXIF with
//! GPS in, none out, same pixels; and blacking out a rectangle.

use bedside_imaging::deid::{Action, Deidentifier, Format, Rect, basic_profile_action, black_out};
use bedside_imaging::{Limits, Study};
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use std::collections::{BTreeMap, HashMap};

/// Attributes the de-identification writes itself.
const WRITTEN: [Tag; 3] = [
    tags::PATIENT_IDENTITY_REMOVED,
    tags::DEIDENTIFICATION_METHOD,
    tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
];

/// Dummy values an input may already hold (a D attribute is then allowed to come out unchanged).
const DUMMIES: [&str; 8] =
    ["ANONYMOUS", "0", "19000101", "19000101000000", "000000", "000D", "urn:anonymous", ""];

fn read(bytes: &[u8]) -> Option<DefaultDicomObject> {
    OpenFileOptions::new().read_preamble(ReadPreamble::Auto).from_reader(bytes).ok()
}

/// The strings of a primitive value, padding trimmed; `None` for sequences and pixel fragments.
fn texts(value: &Value<InMemDicomObject>) -> Option<Vec<String>> {
    let trim = |s: &str| s.trim_matches(['\0', ' ']).to_string();
    match value {
        Value::Primitive(PrimitiveValue::Empty) => Some(Vec::new()),
        Value::Primitive(PrimitiveValue::U8(bytes)) => {
            Some(String::from_utf8_lossy(bytes).split('\\').map(trim).collect())
        }
        Value::Primitive(p) => Some(p.to_multi_str().iter().map(|s| trim(s)).collect()),
        _ => None,
    }
}

fn is_empty(element: &InMemElement) -> bool {
    match element.value() {
        Value::Sequence(sequence) => sequence.items().is_empty(),
        value => texts(value).is_some_and(|t| t.iter().all(String::is_empty)),
    }
}

#[derive(Default)]
struct Tally {
    /// Per action as the standard writes it: attributes of the table found in inputs and checked.
    by_action: BTreeMap<&'static str, usize>,
    /// Original UID → new UID, over every file of the share.
    uids: HashMap<String, String>,
    /// Original values of U attributes, which must not appear in any output.
    original_uids: Vec<String>,
}

impl Tally {
    fn uid(&mut self, original: &str, new: &str, at: &str) {
        assert!(new.starts_with("2.25.") && new.len() <= 64, "{at}: {new} is not a 2.25 UID");
        assert_ne!(original, new, "{at}: UID kept");
        let seen = self.uids.entry(original.to_string()).or_insert_with(|| new.to_string());
        assert_eq!(seen, new, "{at}: {original} mapped to two UIDs in one share");
        self.original_uids.push(original.to_string());
    }
}

/// Checks `output` against `input`, item by item: the de-identification keeps the order of items.
fn check(input: &InMemDicomObject, output: &InMemDicomObject, at: &str, tally: &mut Tally) {
    for element in input.iter() {
        let tag = element.tag();
        let here = format!("{at}{tag}");
        let out = output.get(tag);
        if tag.group() % 2 == 1 {
            assert!(out.is_none(), "{here}: private attribute kept");
            continue;
        }
        if tag.element() == 0 || WRITTEN.contains(&tag) {
            continue;
        }
        let Some((action, name)) = basic_profile_action(tag) else {
            // Not in the table: kept, its items checked in turn (a sequence left as UN bytes,
            // which the table cannot be applied inside, is removed).
            let Some(out) = out else {
                assert!(
                    element.vr() == VR::UN && dictionary_vr(tag) == Some(VR::SQ),
                    "{here}: kept attribute removed"
                );
                continue;
            };
            match (element.value(), out.value()) {
                (Value::Sequence(a), Value::Sequence(b)) => check_items(a.items(), b.items(), &here, tally),
                (Value::PixelSequence(a), Value::PixelSequence(b)) => {
                    assert_eq!(a.fragments(), b.fragments(), "{here}: pixel fragments changed")
                }
                (a, b) => assert_eq!(texts(a), texts(b), "{here}: kept value changed"),
            }
            continue;
        };
        let here = format!("{here} {name} ({})", action.as_str());
        *tally.by_action.entry(action.as_str()).or_default() += 1;
        let original = texts(element.value());
        let dummy = |out: &InMemElement, tally: &mut Tally| {
            assert!(!is_empty(out), "{here}: dummy is empty: {:?} -> {:?}", element.value(), out.value());
            match (element.value(), out.value()) {
                (Value::Sequence(a), Value::Sequence(b)) => check_items(a.items(), b.items(), &here, tally),
                _ if element.vr() == VR::UI => uids(element, out, &here, tally),
                (_, b) => {
                    let new = texts(b).unwrap();
                    let was_dummy =
                        original.as_ref().is_some_and(|o| o.iter().all(|v| DUMMIES.contains(&v.as_str())));
                    assert!(was_dummy || Some(&new) != original.as_ref(), "{here}: original value kept");
                }
            }
        };
        match (action, out) {
            (Action::X, None) | (Action::XZ | Action::XD | Action::XZD | Action::XZUStar, None) => {}
            (Action::X, Some(_)) => panic!("{here}: not removed"),
            (Action::Z | Action::ZD | Action::XZ | Action::XZD | Action::XZUStar, Some(out))
                if is_empty(out) => {}
            (Action::Z, _) => panic!("{here}: not emptied"),
            (Action::XZ, Some(_)) => panic!("{here}: neither removed nor emptied"),
            (Action::D | Action::ZD | Action::XD | Action::XZD, Some(out)) => dummy(out, tally),
            (Action::U, Some(out)) => uids(element, out, &here, tally),
            (Action::XZUStar, Some(out)) => match (element.value(), out.value()) {
                (Value::Sequence(a), Value::Sequence(b)) => check_items(a.items(), b.items(), &here, tally),
                _ => panic!("{here}: not a sequence"),
            },
            (_, None) => panic!("{here}: removed, but the action keeps it"),
        }
    }
    // Nothing added but what the profile writes.
    for element in output.iter() {
        let tag = element.tag();
        assert!(WRITTEN.contains(&tag) || input.get(tag).is_some(), "{at}{tag}: added");
    }
}

fn dictionary_vr(tag: Tag) -> Option<VR> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    match dicom_dictionary_std::StandardDataDictionary.by_tag(tag).map(DataDictionaryEntry::vr) {
        Some(VirtualVr::Exact(vr)) => Some(vr),
        _ => None,
    }
}

fn check_items(input: &[InMemDicomObject], output: &[InMemDicomObject], at: &str, tally: &mut Tally) {
    assert_eq!(input.len(), output.len(), "{at}: items added or lost");
    for (i, (a, b)) in input.iter().zip(output).enumerate() {
        check(a, b, &format!("{at}[{i}]"), tally);
    }
}

fn uids(input: &InMemElement, output: &InMemElement, at: &str, tally: &mut Tally) {
    let (old, new) = (texts(input.value()).unwrap(), texts(output.value()).unwrap());
    if old.iter().all(String::is_empty) {
        return;
    }
    assert_eq!(old.len(), new.len(), "{at}: UID count changed");
    for (old, new) in old.iter().zip(&new) {
        tally.uid(old, new, at);
    }
}

/// No private attribute and no group length at any depth.
fn assert_no_private(dataset: &InMemDicomObject, at: &str) -> usize {
    let mut seen = 0;
    for element in dataset.iter() {
        seen += 1;
        let tag = element.tag();
        assert!(tag.group() % 2 == 0, "{at}{tag}: private attribute in the output");
        if let Value::Sequence(sequence) = element.value() {
            for item in sequence.items() {
                seen += assert_no_private(item, &format!("{at}{tag}/"));
            }
        }
    }
    seen
}

fn text(dataset: &InMemDicomObject, tag: Tag) -> Option<String> {
    dataset.get(tag).and_then(|e| e.to_str().ok()).map(|s| s.trim_matches(['\0', ' ']).to_string())
}

fn raw_md5(bytes: &[u8]) -> Option<String> {
    let study = Study::open(bytes, &Limits::default()).ok()?;
    study.raw_digest(0).ok().map(|d| d.md5_all)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_corpus_file_is_de_identified_per_table_e1_1() {
    let files = bedside_corpus::files().expect("the corpus is there");
    assert_eq!(files.len(), bedside_corpus::EXPECTED_FILES);
    let mut share = Deidentifier::new([7; 32]);
    let mut tally = Tally::default();
    let (mut checked, mut refused, mut unread, mut same_pixels, mut no_pixels) = (0, 0, 0, 0, 0);
    let mut study_uids: Vec<(String, String)> = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let result = match share.deidentify(&bytes) {
            Ok(result) => result,
            Err(e) => {
                // Files that do not parse are refused with one line, as the decoder refuses them.
                let message = e.to_string();
                assert!(!message.contains('\n') && !message.is_empty(), "{name}: {message:?}");
                assert!(Study::open(&bytes, &Limits::default()).is_err(), "{name}: decodes but {message}");
                refused += 1;
                continue;
            }
        };
        assert_eq!(result.format, Format::Dicom, "{name}");
        let out = read(&result.bytes).unwrap_or_else(|| panic!("{name}: the output does not parse"));
        match raw_md5(&bytes) {
            Some(md5) => {
                assert_eq!(raw_md5(&result.bytes).as_deref(), Some(md5.as_str()), "{name}: pixels changed");
                same_pixels += 1;
            }
            None => no_pixels += 1,
        }
        // The input through dicom-object alone, independent of the de-identification's own reader;
        // a few corpus files need that reader's leniency.
        let Some(input) = read(&bytes) else {
            unread += 1;
            assert_no_private(&out, &format!("{name} "));
            continue;
        };
        check(&input, &out, &format!("{name} "), &mut tally);
        assert!(assert_no_private(&out, &format!("{name} ")) > 0, "{name}: empty output");
        assert_eq!(text(&out, tags::PATIENT_IDENTITY_REMOVED).as_deref(), Some("YES"), "{name}");
        let codes = out.get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE).expect("code sequence");
        let codes = codes.items().expect("a sequence");
        assert!(
            codes.iter().any(|item| text(item, tags::CODE_VALUE).as_deref() == Some("113100")
                && text(item, tags::CODING_SCHEME_DESIGNATOR).as_deref() == Some("DCM")),
            "{name}: 113100 missing"
        );
        assert!(text(&out, tags::DEIDENTIFICATION_METHOD).is_some_and(|m| !m.is_empty()), "{name}");
        // The meta group names the new instance.
        let instance = text(&out, tags::SOP_INSTANCE_UID);
        let media = out.meta().media_storage_sop_instance_uid.trim_matches(['\0', ' ']).to_string();
        if let Some(instance) = instance.filter(|i| !i.is_empty()) {
            assert_eq!(media, instance, "{name}: meta and data set disagree");
        }
        if let (Some(a), Some(b)) =
            (text(&input, tags::STUDY_INSTANCE_UID), text(&out, tags::STUDY_INSTANCE_UID))
        {
            study_uids.push((a, b));
        }
        // No original instance UID survives anywhere in the bytes.
        for uid in tally.original_uids.drain(..) {
            assert!(
                uid.len() < 8 || !contains(&result.bytes, uid.as_bytes()),
                "{name}: {uid} still in the file"
            );
        }
        checked += 1;
    }
    let treated: usize = tally.by_action.values().sum();
    println!(
        "{} files: {refused} refused, the rest de-identified ({same_pixels} with the same raw MD5, {no_pixels} \
         without decodable pixels); {checked} checked attribute by attribute (and {unread} not readable as input by \
         dicom-object alone); {treated} Table E.1-1 attributes treated: {:?}; {} distinct UIDs replaced",
        files.len(),
        tally.by_action,
        tally.uids.len()
    );
    assert!(checked >= 150, "only {checked} files checked");
    assert!(same_pixels >= 100, "only {same_pixels} files compared pixel for pixel");
    for action in ["X", "Z", "D", "U"] {
        assert!(tally.by_action.get(action).copied().unwrap_or(0) > 0, "no {action} attribute met");
    }
    // Files of one study stay one study.
    let mut studies: HashMap<&str, &str> = HashMap::new();
    for (old, new) in &study_uids {
        assert_eq!(*studies.entry(old).or_insert(new), new, "study {old} split");
    }
    assert_eq!(share.uid_map().len(), tally.uids.len().max(share.uid_map().len()));
    for (old, new) in &tally.uids {
        assert_eq!(share.uid_map().get(old), Some(new), "the share's map disagrees for {old}");
    }
}

#[test]
fn uids_are_the_same_within_a_share_and_differ_between_shares() {
    let bytes = std::fs::read(bedside_corpus::find("MR_small.dcm").unwrap()).unwrap();
    let uid_of = |out: &[u8]| text(&read(out).unwrap(), tags::SOP_INSTANCE_UID).unwrap();
    let original = text(&read(&bytes).unwrap(), tags::SOP_INSTANCE_UID).unwrap();
    let mut one = Deidentifier::new([1; 32]);
    let first = uid_of(&one.deidentify(&bytes).unwrap().bytes);
    let again = uid_of(&one.deidentify(&bytes).unwrap().bytes);
    let other = uid_of(&Deidentifier::new([2; 32]).deidentify(&bytes).unwrap().bytes);
    assert_eq!(first, again, "one share: one UID");
    assert_ne!(first, other, "two shares: two UIDs");
    assert_ne!(first, original);
    assert!(first.starts_with("2.25.") && other.starts_with("2.25."));
}

#[test]
fn the_summary_counts_what_was_done() {
    let bytes = std::fs::read(bedside_corpus::find("MR_small.dcm").unwrap()).unwrap();
    let input = read(&bytes).unwrap();
    let result = Deidentifier::new([3; 32]).deidentify(&bytes).unwrap();
    let removed =
        input.iter().filter(|e| basic_profile_action(e.tag()).is_some_and(|(a, _)| a == Action::X)).count();
    let private = input.iter().filter(|e| e.tag().group() % 2 == 1).count();
    assert_eq!(result.summary.attributes_removed as usize, removed);
    assert_eq!(result.summary.private_tags_removed as usize, private);
    assert!(result.summary.uids_replaced >= 3, "SOP Instance, Study and Series UIDs at least");
    // MR with no Burned In Annotation: nothing to warn about.
    assert!(!result.summary.burned_in_warning);
    let out = read(&result.bytes).unwrap();
    assert!(text(&input, tags::PATIENT_NAME).is_some_and(|n| !n.is_empty()));
    assert_eq!(text(&out, tags::PATIENT_NAME).as_deref(), Some(""), "Patient's Name is Z");
}

#[test]
fn ultrasound_and_secondary_capture_warn_of_burned_in_text() {
    for name in ["US1_UNCR.dcm", "SC_rgb.dcm"] {
        let bytes = std::fs::read(bedside_corpus::find(name).unwrap()).unwrap();
        let summary = Deidentifier::new([4; 32]).deidentify(&bytes).unwrap().summary;
        assert!(summary.burned_in_warning, "{name}: {summary:?}");
    }
}

/// A baseline JPEG with an EXIF APP1 segment holding a GPS IFD (latitude 48° 51′ N) after its SOI.
fn jpeg_with_gps() -> (Vec<u8>, Vec<u8>) {
    let mut rgb = Vec::new();
    for y in 0..24u32 {
        for x in 0..32u32 {
            rgb.extend_from_slice(&[(x * 8) as u8, (y * 10) as u8, 128]);
        }
    }
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90)
        .encode(&rgb, 32, 24, image::ExtendedColorType::Rgb8)
        .unwrap();
    // TIFF, little-endian: IFD0 with one entry (GPSInfo → the GPS IFD), the GPS IFD with
    // GPSLatitudeRef "N" and GPSLatitude 48/1, 51/1, 0/1.
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    let entry = |tag: u16, kind: u16, count: u32, value: u32| {
        [tag.to_le_bytes().as_slice(), &kind.to_le_bytes(), &count.to_le_bytes(), &value.to_le_bytes()]
            .concat()
    };
    tiff.extend(1u16.to_le_bytes());
    tiff.extend(entry(0x8825, 4, 1, 26)); // GPS IFD at offset 26
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(entry(0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0")));
    tiff.extend(entry(0x0002, 5, 3, 56)); // three rationals at offset 56
    tiff.extend(0u32.to_le_bytes());
    for (n, d) in [(48u32, 1u32), (51, 1), (0, 1)] {
        tiff.extend(n.to_le_bytes());
        tiff.extend(d.to_le_bytes());
    }
    let payload = [b"Exif\0\0".as_slice(), &tiff].concat();
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend([0xFF, 0xE1]);
    jpeg.extend(((payload.len() + 2) as u16).to_be_bytes());
    jpeg.extend(&payload);
    jpeg.extend(&plain[2..]);
    (jpeg, tiff)
}

/// PNG chunk types, in order.
fn png_chunks(png: &[u8]) -> Vec<String> {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let (mut at, mut out) = (8, Vec::new());
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
        at += 12 + length;
    }
    out
}

#[test]
fn a_photo_loses_its_exif_gps_and_keeps_its_pixels() {
    let (jpeg, tiff) = jpeg_with_gps();
    // The EXIF is really there: the decoder sees it.
    let decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&jpeg)).unwrap();
    let mut decoder = decoder;
    let exif = image::ImageDecoder::exif_metadata(&mut decoder).unwrap().expect("EXIF in the input");
    assert_eq!(exif, tiff);

    let result = Deidentifier::new([5; 32]).deidentify(&jpeg).unwrap();
    assert_eq!(result.format, Format::Png);
    assert!(result.summary.burned_in_warning, "a photo may show a label");
    let chunks = png_chunks(&result.bytes);
    assert!(chunks.iter().all(|c| ["IHDR", "IDAT", "IEND"].contains(&c.as_str())), "{chunks:?}");
    assert!(!contains(&result.bytes, b"Exif") && !contains(&result.bytes, &tiff[..8]));
    let pixels = |bytes: &[u8]| {
        let study = Study::open(bytes, &Limits::default()).unwrap();
        study.frame(0).unwrap().stored.to_i32()
    };
    assert_eq!(pixels(&result.bytes), pixels(&jpeg), "same decoded pixels");
}

#[test]
fn not_an_image_is_refused() {
    let err = Deidentifier::new([0; 32]).deidentify(b"hello, this is text").expect_err("refused");
    assert!(err.to_string().contains("not a DICOM file"), "{err}");
}

#[test]
fn a_blacked_out_rectangle_is_black_and_the_rest_unchanged() {
    for name in ["MR_small.dcm", "SC_rgb_jpeg.dcm", "US1_J2KR.dcm"] {
        let bytes = std::fs::read(bedside_corpus::find(name).unwrap()).unwrap();
        let before = Study::open(&bytes, &Limits::default()).unwrap();
        let rect = Rect { x: 2, y: 3, width: 10, height: 5 };
        let out = black_out(&bytes, rect, &Limits::default()).unwrap();
        let after = Study::open(&out, &Limits::default()).unwrap();
        assert_eq!(after.info().transfer_syntax.as_deref(), Some("1.2.840.10008.1.2.1"), "{name}");
        let columns = before.info().columns as usize;
        let samples = before.frame(0).unwrap().samples as usize;
        let dtype = before.raw_layout().unwrap().dtype;
        let (a, b) = (before.raw_frame(0).unwrap(), after.raw_frame(0).unwrap());
        assert_eq!(a.len(), b.len(), "{name}");
        let value = |bytes: &[u8]| match dtype.name() {
            "uint8" => i64::from(bytes[0]),
            "uint16" => i64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
            "int16" => i64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
            other => panic!("{name}: {other} not expected here"),
        };
        let values: Vec<i64> = b.chunks(dtype.size()).map(value).collect();
        let darkest = *values.iter().min().unwrap();
        let (mut changed_outside, mut inside) = (0, 0);
        for (i, (x, y)) in a.chunks(samples * dtype.size()).zip(b.chunks(samples * dtype.size())).enumerate()
        {
            let (px, py) = ((i % columns) as u32, (i / columns) as u32);
            if (2..12).contains(&px) && (3..8).contains(&py) {
                inside += 1;
                for sample in y.chunks(dtype.size()) {
                    assert_eq!(value(sample), darkest, "{name}: ({px},{py}) is not black");
                }
            } else if x != y {
                changed_outside += 1;
            }
        }
        assert_eq!(inside, 50, "{name}");
        assert!(darkest <= 0, "{name}: black is {darkest}");
        assert_eq!(changed_outside, 0, "{name}: pixels outside the rectangle changed");
    }
}
