//! What decoding allocates at its peak, measured, against what [`Limits`] counts.
//!
//! Each case runs in a child process (this binary, `measure_one`), which resets the kernel's peak
//! resident size (`/proc/self/clear_refs`), decodes, and reads it back (`VmHWM`). glibc's mmap
//! threshold is pinned so that every large buffer is mapped on allocation and unmapped on free, as
//! a Wasm worker's fresh pages are: freed memory is not reused behind the measurement's back.

use bedside_imaging::{Limits, Study};
use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use image::ImageEncoder;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIDE: u32 = 2048;

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Decodes `PEAK_FILE` (photos opened, DICOM frame 0 drawn from the open study; with the page's
/// limits where `PEAK_PAGE` is set) and prints the bytes the decode added at its peak beside what the limits counted.
#[test]
#[ignore = "run by `decoding_peaks_stay_within_what_the_limits_count`, one case per process"]
fn measure_one() {
    let Some(file) = std::env::var_os("PEAK_FILE") else { return };
    let bytes = std::fs::read(file).unwrap();
    let page = std::env::var_os("PEAK_PAGE").is_some();
    let limits = if page { Limits::page() } else { Limits::default() };
    let dicom = bytes.get(128..132) == Some(b"DICM");
    // The bytes `f` added to the resident size at its peak (`VmHWM`, reset to the size now), and
    // what it returned.
    let peak_of = |f: &dyn Fn() -> u64| {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = status_kb("VmRSS:");
        let counted = f();
        ((status_kb("VmHWM:") - before) * 1024, counted)
    };
    let (measured, counted) = if dicom {
        let study = Study::open(&bytes, &limits).unwrap();
        // The high-water mark keeps the frame's bytes once it is dropped.
        peak_of(&|| study.frame(0).map(|_| study.decode_peak_bytes()).unwrap())
    } else {
        peak_of(&|| Study::open(&bytes, &limits).unwrap().decode_peak_bytes())
    };
    println!("PEAK {measured} {counted}");
}

fn run_case(path: &Path, page: bool) -> (u64, u64) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if page {
        command.env("PEAK_PAGE", "1");
    }
    let out = command
        .args(["--exact", "measure_one", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env("PEAK_FILE", path)
        .env("MALLOC_MMAP_THRESHOLD_", "65536")
        .env("MALLOC_TRIM_THRESHOLD_", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find_map(|l| l.split("PEAK ").nth(1)).expect("a PEAK line");
    let mut numbers = line.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

fn grey(width: u32, height: u32) -> Vec<u16> {
    // A gradient with a little hashed noise, so that codecs cannot shrink it to nothing.
    (0..width * height)
        .map(|i| ((i % width) * 7 + (i / width) * 3 + (i.wrapping_mul(2_654_435_761) >> 28)) as u16)
        .collect()
}

fn dataset(samples: u16, photometric: &str, bits: u16) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.12"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "OT"));
    obj.put(us(tags::SAMPLES_PER_PIXEL, samples));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric));
    obj.put(us(tags::ROWS, SIDE as u16));
    obj.put(us(tags::COLUMNS, SIDE as u16));
    obj.put(us(tags::BITS_ALLOCATED, bits));
    obj.put(us(tags::BITS_STORED, bits));
    obj.put(us(tags::HIGH_BIT, bits - 1));
    obj.put(us(tags::PIXEL_REPRESENTATION, 0));
    if samples == 3 {
        obj.put(us(tags::PLANAR_CONFIGURATION, 0));
    }
    obj
}

fn file(obj: InMemDicomObject, transfer_syntax: &str) -> Vec<u8> {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax)
        .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("2.25.12");
    let mut out = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut out).unwrap();
    out
}

fn encapsulated(mut obj: InMemDicomObject, transfer_syntax: &str, mut stream: Vec<u8>) -> Vec<u8> {
    if stream.len() % 2 == 1 {
        stream.push(0);
    }
    let sequence = PixelFragmentSequence::new(Vec::<u32>::new(), vec![stream]);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, Value::from(sequence)));
    file(obj, transfer_syntax)
}

/// `pixels` as a JPEG at quality 90.
fn encode_jpeg(pixels: &[u8], width: u32, height: u32, colour: image::ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(pixels, width, height, colour)
        .unwrap();
    out
}

/// PackBits literal runs only: what RLE Lossless (PS3.5 G) needs to be valid.
fn rle(segments: &[Vec<u8>]) -> Vec<u8> {
    let mut header = vec![0u32; 16];
    header[0] = segments.len() as u32;
    let mut body = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        header[i + 1] = 64 + body.len() as u32;
        for chunk in segment.chunks(128) {
            body.push(chunk.len() as u8 - 1);
            body.extend_from_slice(chunk);
        }
        if body.len() % 2 == 1 {
            body.push(0x80);
        }
    }
    header.iter().flat_map(|v| v.to_le_bytes()).chain(body).collect()
}

fn cases(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let pixels = grey(SIDE, SIDE);
    let bytes8: Vec<u8> = pixels.iter().map(|&v| v as u8).collect();
    let rgb8: Vec<u8> = bytes8.iter().flat_map(|&v| [v, v / 2, 255 - v]).collect();
    let mut made: Vec<(&'static str, Vec<u8>)> = Vec::new();

    let mut native = dataset(1, "MONOCHROME2", 16);
    let words: Vec<u16> = pixels.iter().map(|v| v & 0xfff).collect();
    native.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.clone().into())));
    made.push(("native 16-bit grey", file(native, "1.2.840.10008.1.2.1")));

    let jpeg = encode_jpeg(&bytes8, SIDE, SIDE, image::ExtendedColorType::L8);
    made.push((
        "JPEG baseline grey",
        encapsulated(dataset(1, "MONOCHROME2", 8), "1.2.840.10008.1.2.4.50", jpeg),
    ));
    let jpeg = encode_jpeg(&rgb8, SIDE, SIDE, image::ExtendedColorType::Rgb8);
    made.push((
        "JPEG baseline colour",
        encapsulated(dataset(3, "YBR_FULL_422", 8), "1.2.840.10008.1.2.4.50", jpeg.clone()),
    ));
    made.push(("JPEG photo", jpeg));
    // Twice the page's side: decoded at half size there (`Limits::page`).
    let wide: Vec<u8> =
        (0..2 * SIDE * SIDE / 2).flat_map(|i| rgb8[(i as usize * 3) % rgb8.len()..][..3].to_vec()).collect();
    let jpeg = encode_jpeg(&wide, 2 * SIDE, SIDE / 2, image::ExtendedColorType::Rgb8);
    made.push(("JPEG photo, halved for the page", jpeg));

    let mut ls = Vec::new();
    let mut options = jpegls::EncodeOptions::default();
    options.precision = Some(12);
    jpegls::encode_with_options(&words, SIDE, SIDE, &options, &mut ls).unwrap();
    made.push((
        "JPEG-LS 12-bit grey",
        encapsulated(dataset(1, "MONOCHROME2", 16), "1.2.840.10008.1.2.4.80", ls),
    ));

    let high: Vec<u8> = words.iter().map(|v| (v >> 8) as u8).collect();
    let low: Vec<u8> = words.iter().map(|&v| v as u8).collect();
    made.push((
        "RLE 16-bit grey",
        encapsulated(dataset(1, "MONOCHROME2", 16), "1.2.840.10008.1.2.5", rle(&[high, low])),
    ));

    let rgba: Vec<u8> = rgb8.chunks(3).flat_map(|p| [p[0], p[1], p[2], 200]).collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgba, SIDE, SIDE, image::ExtendedColorType::Rgba8)
        .unwrap();
    made.push(("PNG photo with alpha", png));

    let mut out: Vec<(&'static str, PathBuf)> = made
        .into_iter()
        .map(|(name, bytes)| {
            let path = dir.join(name.replace(' ', "-"));
            std::fs::write(&path, bytes).unwrap();
            (name, path)
        })
        .collect();
    for name in ["RG1_J2KR.dcm", "US1_J2KR.dcm", "RG1_UNCR.dcm"] {
        out.push((name, bedside_corpus::find(name).unwrap()));
    }
    out
}

#[test]
fn decoding_peaks_stay_within_what_the_limits_count() {
    if !Path::new("/proc/self/clear_refs").exists() {
        println!("skipped: the peak resident size is read from Linux's /proc");
        return;
    }
    let dir = std::env::temp_dir().join(format!("bedside-peak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for (name, path) in cases(&dir) {
        let (measured, counted) = run_case(&path, name.ends_with("for the page"));
        let mb = |bytes: u64| bytes as f64 / 1e6;
        report.push(format!("{name}: measured {:.1} MB, counted {:.1} MB", mb(measured), mb(counted)));
        // Counted may not fall short of what was held (2 MB of slack for the decoders' small
        // tables and the page size), nor overstate it more than twice: a limit that counts far more
        // than a file needs refuses files a tablet could open.
        if measured > counted + counted / 20 + (2 << 20) || counted > 2 * measured + (1 << 20) {
            wrong.push(name);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    println!("{}", report.join("\n"));
    assert!(wrong.is_empty(), "counted and measured peaks disagree for {wrong:?}:\n{}", report.join("\n"));
}
