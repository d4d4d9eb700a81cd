//! Files other DICOM readers open, built here: file meta values longer than PS3.5 allows but within
//! the file, and multi-frame encapsulated pixel data with several fragments per frame and no Basic
//! Offset Table (PS3.5 A.4), with and without an Extended Offset Table.

use bedside_imaging::{Limits, Study};
use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use image::ImageEncoder;

const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const WIDTH: u32 = 40;
const HEIGHT: u32 = 24;

/// Three grey frames, each brighter than the last.
fn frames() -> Vec<Vec<u8>> {
    (0..3u32)
        .map(|f| (0..WIDTH * HEIGHT).map(|i| ((i % WIDTH) * 3 + (i / WIDTH) * 2 + f * 40) as u8).collect())
        .collect()
}

/// A codestream of `frame` in `transfer_syntax`, padded to an even length as DICOM stores it.
fn encode(frame: &[u8], transfer_syntax: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if transfer_syntax == JPEG_BASELINE {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(frame, WIDTH, HEIGHT, image::ExtendedColorType::L8)
            .unwrap();
    } else {
        let pixels: Vec<u16> = frame.iter().map(|&v| u16::from(v)).collect();
        let mut options = jpegls::EncodeOptions::default();
        options.precision = Some(8);
        jpegls::encode_with_options(&pixels, WIDTH, HEIGHT, &options, &mut out).unwrap();
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// `stream` cut into `parts` fragments of even length.
fn split(stream: &[u8], parts: usize) -> Vec<Vec<u8>> {
    let size = (stream.len().div_ceil(parts) + 1) & !1;
    stream.chunks(size).map(<[u8]>::to_vec).collect()
}

fn dataset(frames: u32) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.11"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "OT"));
    obj.put(us(tags::SAMPLES_PER_PIXEL, 1));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    obj.put(us(tags::ROWS, HEIGHT as u16));
    obj.put(us(tags::COLUMNS, WIDTH as u16));
    obj.put(us(tags::BITS_ALLOCATED, 8));
    obj.put(us(tags::BITS_STORED, 8));
    obj.put(us(tags::HIGH_BIT, 7));
    obj.put(us(tags::PIXEL_REPRESENTATION, 0));
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, frames.to_string()));
    obj
}

fn write(obj: InMemDicomObject, meta: FileMetaTableBuilder) -> Vec<u8> {
    let mut out = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut out).unwrap();
    out
}

fn meta(transfer_syntax: &str) -> FileMetaTableBuilder {
    FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax)
        .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("2.25.11")
}

/// An encapsulated multi-frame file of `fragments` (an empty Basic Offset Table), with `extended`
/// as its Extended Offset Table where given.
fn encapsulated(
    transfer_syntax: &str,
    frames: u32,
    fragments: Vec<Vec<u8>>,
    extended: Option<Vec<u64>>,
) -> Vec<u8> {
    let mut obj = dataset(frames);
    if let Some(offsets) = extended {
        obj.put(DataElement::new(Tag(0x7FE0, 0x0001), VR::OV, PrimitiveValue::U64(offsets.into())));
    }
    let sequence = PixelFragmentSequence::new(Vec::<u32>::new(), fragments);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, Value::from(sequence)));
    write(obj, meta(transfer_syntax))
}

fn decoded(bytes: &[u8], frames: u32) -> Vec<Result<Vec<i32>, String>> {
    let study = Study::open(bytes, &Limits::default()).expect("the file opens");
    (0..frames).map(|i| study.frame(i).map(|f| f.stored.to_i32()).map_err(|e| e.to_string())).collect()
}

#[test]
fn frames_of_several_fragments_without_an_offset_table_decode_each_frame() {
    for transfer_syntax in [JPEG_BASELINE, JPEG_LS_LOSSLESS] {
        let streams: Vec<Vec<u8>> = frames().iter().map(|f| encode(f, transfer_syntax)).collect();
        // One fragment per frame: what already decoded, the reference here.
        let reference = decoded(&encapsulated(transfer_syntax, 3, streams.clone(), None), 3);
        let reference: Vec<Vec<i32>> = reference.into_iter().map(Result::unwrap).collect();
        assert_ne!(reference[0], reference[2], "{transfer_syntax}: the frames differ");
        if transfer_syntax == JPEG_LS_LOSSLESS {
            let first: Vec<i32> = frames()[0].iter().map(|&v| i32::from(v)).collect();
            assert_eq!(reference[0], first, "lossless");
        }
        // Three fragments per frame, no table: the codestreams' start markers split them.
        let fragments: Vec<Vec<u8>> = streams.iter().flat_map(|s| split(s, 3)).collect();
        assert_eq!(fragments.len(), 9);
        let split_file = encapsulated(transfer_syntax, 3, fragments.clone(), None);
        for (i, frame) in decoded(&split_file, 3).into_iter().enumerate() {
            assert_eq!(frame.as_ref(), Ok(&reference[i]), "{transfer_syntax} frame {i}");
        }
        // The same fragments with an Extended Offset Table (offsets count each 8-byte item header).
        let mut offsets = Vec::new();
        let mut at = 0u64;
        for stream in &streams {
            offsets.push(at);
            at += split(stream, 3).iter().map(|f| f.len() as u64 + 8).sum::<u64>();
        }
        let with_table = encapsulated(transfer_syntax, 3, fragments, Some(offsets));
        for (i, frame) in decoded(&with_table, 3).into_iter().enumerate() {
            assert_eq!(
                frame.as_ref(),
                Ok(&reference[i]),
                "{transfer_syntax} frame {i}, extended offset table"
            );
        }
    }
}

#[test]
fn fragments_the_markers_cannot_split_into_the_frames_give_a_clear_error() {
    // Two codestreams in four fragments, but the file says three frames.
    let fragments: Vec<Vec<u8>> =
        frames()[..2].iter().flat_map(|f| split(&encode(f, JPEG_BASELINE), 2)).collect();
    let file = encapsulated(JPEG_BASELINE, 3, fragments, None);
    for result in decoded(&file, 3) {
        let error = result.expect_err("no frame can be told apart");
        assert!(error.contains("4 fragments for 3 frames"), "{error}");
    }
}

#[test]
fn file_meta_values_longer_than_their_vr_allows_but_within_the_file_open() {
    let pixels = frames().remove(0);
    let mut obj = dataset(1);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pixels.clone())));
    // An 18-byte AE title and a 22-byte implementation version name, as some archives write.
    let file = write(
        obj,
        meta(EXPLICIT_LE)
            .source_application_entity_title("ARCHIVE_NODE_NAME1")
            .implementation_version_name("VERSION_NAME_22_BYTES_"),
    );
    let frame =
        Study::open(&file, &Limits::default()).expect("opens as other readers open it").frame(0).unwrap();
    assert_eq!(frame.stored.to_i32(), pixels.iter().map(|&v| i32::from(v)).collect::<Vec<_>>());

    // A length that runs past the end of the file is still refused.
    let at = file.windows(18).position(|w| w == b"ARCHIVE_NODE_NAME1").unwrap();
    let mut broken = file[..at + 10].to_vec();
    broken[at - 2..at].copy_from_slice(&0x4000u16.to_le_bytes());
    assert!(Study::open(&broken, &Limits::default()).is_err());
}
