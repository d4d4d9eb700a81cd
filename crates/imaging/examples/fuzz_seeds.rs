//! Writes the fuzzers' seed inputs: tiny DICOM files (a few hundred bytes each) covering every pixel
//! path `bedside-imaging` decodes, and photos of a few pixels. The files are committed under
//! `fuzz/corpus/{dicom,photo}/`; rerun this after changing them:
//!
//! ```sh
//! cargo run -p bedside-imaging --example fuzz_seeds -- fuzz/corpus
//! ```
//!
//! Each file is opened and drawn by `bedside_imaging::fuzzing::decode` before it is written, so a
//! seed is always an input that decodes.

use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use image::{ColorType, ImageEncoder};
use std::path::Path;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into());
    let dir = Path::new(&dir);
    for (name, bytes) in dicom_seeds() {
        write(&dir.join("dicom"), name, &bytes);
    }
    for (name, bytes) in photo_seeds() {
        write(&dir.join("photo"), name, &bytes);
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    if let Err(e) = bedside_imaging::fuzzing::decode(bytes) {
        panic!("seed {name} does not decode: {e}");
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
}

/// The pixel module of an image: size, samples, bits and photometric interpretation.
struct Pixels {
    rows: u16,
    columns: u16,
    samples: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    photometric: &'static str,
}

fn dataset(p: &Pixels, modality: &str) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.7"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, modality));
    obj.put(us(tags::SAMPLES_PER_PIXEL, p.samples));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, p.photometric));
    obj.put(us(tags::ROWS, p.rows));
    obj.put(us(tags::COLUMNS, p.columns));
    obj.put(us(tags::BITS_ALLOCATED, p.bits_allocated));
    obj.put(us(tags::BITS_STORED, p.bits_stored));
    obj.put(us(tags::HIGH_BIT, p.bits_stored - 1));
    obj.put(us(tags::PIXEL_REPRESENTATION, p.signed.into()));
    obj
}

fn file(obj: InMemDicomObject, transfer_syntax: &str) -> Vec<u8> {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax)
        .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("2.25.7");
    let mut out = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut out).unwrap();
    out
}

fn native(mut obj: InMemDicomObject, vr: VR, data: PrimitiveValue, transfer_syntax: &str) -> Vec<u8> {
    obj.put(DataElement::new(tags::PIXEL_DATA, vr, data));
    file(obj, transfer_syntax)
}

/// Encapsulated pixel data: one fragment per frame, an empty offset table.
fn encapsulated(mut obj: InMemDicomObject, frames: Vec<Vec<u8>>, transfer_syntax: &str) -> Vec<u8> {
    let sequence = PixelFragmentSequence::new(Vec::<u32>::new(), frames);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, Value::from(sequence)));
    file(obj, transfer_syntax)
}

fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, value));
}

fn dicom_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let grey8 = |rows, columns| Pixels {
        rows,
        columns,
        samples: 1,
        bits_allocated: 8,
        bits_stored: 8,
        signed: false,
        photometric: "MONOCHROME2",
    };
    let rgb8 = |photometric| Pixels { samples: 3, photometric, ..grey8(2, 2) };
    let mut seeds = Vec::new();

    // 8-bit grey with the file's own window and a rescale.
    let mut obj = dataset(&grey8(3, 4), "CR");
    put_str(&mut obj, tags::WINDOW_CENTER, VR::DS, "100");
    put_str(&mut obj, tags::WINDOW_WIDTH, VR::DS, "200");
    put_str(&mut obj, tags::RESCALE_SLOPE, VR::DS, "2");
    put_str(&mut obj, tags::RESCALE_INTERCEPT, VR::DS, "-10");
    let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
    seeds.push(("grey8.dcm", native(obj, VR::OB, pixels.into(), uids::EXPLICIT_VR_LITTLE_ENDIAN)));

    // Signed 12-in-16-bit MONOCHROME1, two frames, implicit VR.
    let p = Pixels {
        bits_allocated: 16,
        bits_stored: 12,
        signed: true,
        photometric: "MONOCHROME1",
        ..grey8(2, 2)
    };
    let mut obj = dataset(&p, "DX");
    put_str(&mut obj, tags::NUMBER_OF_FRAMES, VR::IS, "2");
    let words: Vec<u16> = [-2048i16, -1, 0, 2047, 5, 6, 7, 8].iter().map(|&v| v as u16).collect();
    seeds.push((
        "signed12_two_frames.dcm",
        native(obj, VR::OW, PrimitiveValue::U16(words.into()), uids::IMPLICIT_VR_LITTLE_ENDIAN),
    ));

    // 16-bit big endian.
    let p = Pixels { bits_allocated: 16, bits_stored: 16, ..grey8(2, 2) };
    let words: Vec<u16> = vec![0, 1000, 40000, 65535];
    let big_endian = "1.2.840.10008.1.2.2"; // explicit VR big endian: retired, still read
    let bytes = native(dataset(&p, "MR"), VR::OW, PrimitiveValue::U16(words.into()), big_endian);
    seeds.push(("grey16_big_endian.dcm", bytes));

    // 32-bit unsigned (an RT dose grid's layout).
    let p = Pixels { bits_allocated: 32, bits_stored: 32, ..grey8(1, 3) };
    let longs: Vec<u32> = vec![0, 1 << 20, u32::MAX];
    seeds.push((
        "grey32.dcm",
        native(dataset(&p, "RTDOSE"), VR::OB, longs_le(&longs).into(), uids::EXPLICIT_VR_LITTLE_ENDIAN),
    ));

    // 1 bit per pixel, packed.
    let p = Pixels { bits_allocated: 1, bits_stored: 1, ..grey8(2, 8) };
    seeds.push((
        "bits1.dcm",
        native(dataset(&p, "OT"), VR::OB, vec![0b1010_0101u8, 0xF0].into(), uids::EXPLICIT_VR_LITTLE_ENDIAN),
    ));

    // RGB, colour planes one after another.
    let mut obj = dataset(&rgb8("RGB"), "XC");
    obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, PrimitiveValue::from(1u16)));
    let planes: Vec<u8> = vec![255, 0, 0, 9, 0, 255, 0, 9, 0, 0, 255, 9];
    seeds.push(("rgb_planar.dcm", native(obj, VR::OB, planes.into(), uids::EXPLICIT_VR_LITTLE_ENDIAN)));

    // YBR_FULL_422: two luma and one shared chroma pair per two pixels.
    let ybr: Vec<u8> = vec![76, 80, 85, 255, 150, 140, 44, 21];
    let bytes =
        native(dataset(&rgb8("YBR_FULL_422"), "XC"), VR::OB, ybr.into(), uids::EXPLICIT_VR_LITTLE_ENDIAN);
    seeds.push(("ybr_full_422.dcm", bytes));

    // PALETTE COLOR: four 16-bit entries per table.
    let mut obj = dataset(&Pixels { photometric: "PALETTE COLOR", ..grey8(2, 2) }, "US");
    for (descriptor, data, values) in [
        (
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            [0u16, 65535, 0, 30000],
        ),
        (
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            [0, 0, 65535, 30000],
        ),
        (
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            [0, 0, 0, 65535],
        ),
    ] {
        obj.put(DataElement::new(descriptor, VR::US, PrimitiveValue::from([4u16, 0, 16])));
        obj.put(DataElement::new(data, VR::OW, PrimitiveValue::from(values)));
    }
    seeds.push((
        "palette.dcm",
        native(obj, VR::OB, vec![0u8, 1, 2, 3].into(), uids::EXPLICIT_VR_LITTLE_ENDIAN),
    ));

    // RLE Lossless, 16 bits: a high-byte and a low-byte segment.
    let p = Pixels { bits_allocated: 16, bits_stored: 16, ..grey8(2, 2) };
    let rle = rle_frame(&[&[0xFD, 0x01], &[3, 0, 50, 100, 200]]);
    seeds.push(("rle16.dcm", encapsulated(dataset(&p, "CT"), vec![rle], uids::RLE_LOSSLESS)));

    // RLE Lossless, 8-bit RGB: one segment per colour, two frames.
    let mut obj = dataset(&rgb8("RGB"), "XC");
    put_str(&mut obj, tags::NUMBER_OF_FRAMES, VR::IS, "2");
    let frames = vec![
        rle_frame(&[&[0xFD, 255], &[0xFD, 0], &[3, 1, 2, 3, 4]]),
        rle_frame(&[&[0xFD, 9], &[0xFD, 8], &[0xFD, 7]]),
    ];
    seeds.push(("rle_rgb_two_frames.dcm", encapsulated(obj, frames, uids::RLE_LOSSLESS)));

    // JPEG baseline, 8×8 colour (JFIF, YCbCr).
    let rgb: Vec<u8> = (0..64u8).flat_map(|i| [i * 4, 255 - i * 4, 128]).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 50)
        .write_image(&rgb, 8, 8, ColorType::Rgb8.into())
        .unwrap();
    let obj = dataset(&Pixels { rows: 8, columns: 8, ..rgb8("YBR_FULL_422") }, "XC");
    seeds.push(("jpeg_baseline.dcm", encapsulated(obj, vec![jpeg], uids::JPEG_BASELINE8_BIT)));

    // JPEG-LS lossless, 16 bits.
    let mut jls = Vec::new();
    jpegls::encode(&[0, 300, 65535, 7, 1, 2, 3, 4, 1000], 3, 3, &mut jls).unwrap();
    let p = Pixels { bits_allocated: 16, bits_stored: 16, ..grey8(3, 3) };
    seeds.push(("jpegls16.dcm", encapsulated(dataset(&p, "MR"), vec![jls], uids::JPEGLS_LOSSLESS)));
    seeds
}

fn longs_le(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An RLE Lossless frame: the 64-byte header of segment offsets, then the PackBits segments.
fn rle_frame(segments: &[&[u8]]) -> Vec<u8> {
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut body = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let offset = 64 + body.len() as u32;
        header[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
        body.extend_from_slice(segment);
        if body.len() % 2 == 1 {
            body.push(0x80); // even-length segments, as encoders pad them (0x80 is a no-op)
        }
    }
    [header, body].concat()
}

fn photo_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let grey: Vec<u8> = vec![0, 60, 120, 180, 240, 255];
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(&grey, 3, 2, ColorType::L8.into()).unwrap();
    seeds.push(("grey.png", png));
    let rgba16: Vec<u8> = (0..2 * 2 * 8).map(|i| (i * 17) as u8).collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgba16, 2, 2, ColorType::Rgba16.into())
        .unwrap();
    seeds.push(("rgba16.png", png));
    let rgb: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 5) as u8).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 50)
        .write_image(&rgb, 4, 4, ColorType::Rgb8.into())
        .unwrap();
    seeds.push(("colour.jpg", jpeg));
    // A JPEG whose EXIF says "rotate 90° clockwise" (orientation 6), 3×2 so the turn shows.
    let mut jpeg = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 50);
    encoder.set_exif_metadata(exif_orientation(6)).unwrap();
    encoder.write_image(&grey, 3, 2, ColorType::L8.into()).unwrap();
    seeds.push(("rotated.jpg", jpeg));
    // 4096 × 8 grey, turned by its EXIF: long enough for the page to decode it at half size.
    let wide: Vec<u8> = (0..4096 * 8).map(|i| (i % 4096 / 16) as u8).collect();
    let mut jpeg = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 10);
    encoder.set_exif_metadata(exif_orientation(6)).unwrap();
    encoder.write_image(&wide, 4096, 8, ColorType::L8.into()).unwrap();
    seeds.push(("wide_rotated.jpg", jpeg));
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(&rgb[..2 * 2 * 3], 2, 2, ColorType::Rgb8.into())
        .unwrap();
    seeds.push(("colour.webp", webp));
    seeds
}

/// A little-endian TIFF header with one IFD entry: Orientation (0x0112), SHORT, the value given.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut exif = b"II*\0".to_vec();
    exif.extend_from_slice(&8u32.to_le_bytes());
    exif.extend_from_slice(&1u16.to_le_bytes());
    exif.extend_from_slice(&0x0112u16.to_le_bytes());
    exif.extend_from_slice(&3u16.to_le_bytes());
    exif.extend_from_slice(&1u32.to_le_bytes());
    exif.extend_from_slice(&u32::from(orientation).to_le_bytes());
    exif.extend_from_slice(&0u32.to_le_bytes());
    exif
}
