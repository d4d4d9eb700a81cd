//! Every file of the DICOM test corpus, through the same path the browser takes: open, decode every
//! frame, draw. Broken and unsupported files must come back as errors, never as panics.

use bedside_imaging::{Limits, Study};

#[test]
fn every_corpus_file_decodes_or_fails_cleanly() {
    let files = bedside_corpus::files().unwrap();
    assert_eq!(files.len(), bedside_corpus::EXPECTED_FILES);
    let (mut decoded, mut failed) = (0, Vec::new());
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let result = Study::open(&bytes, &Limits::default()).and_then(|study| {
            for index in 0..study.info().frames {
                let frame = study.frame(index)?;
                let rgba = frame.render_rgba(study.default_window(&frame));
                assert_eq!(rgba.len(), 4 * frame.columns as usize * frame.rows as usize, "{name}");
                let samples = frame.columns as usize * frame.rows as usize * frame.samples as usize;
                assert_eq!(frame.stored.len(), samples, "{name} frame {index}");
            }
            Ok(())
        });
        match result {
            Ok(()) => decoded += 1,
            Err(e) => {
                let message = e.to_string();
                assert!(!message.is_empty() && !message.contains('\n'), "{name}: one line, got {message:?}");
                failed.push(format!("{name}: {message}"));
            }
        }
    }
    println!("{decoded} decoded, {} clear errors:\n{}", failed.len(), failed.join("\n"));
    // The files the foundation promises, and a floor that catches regressions across the rest.
    for name in ["MR_small.dcm", "RG1_UNCR.dcm", "SC_rgb_jpeg.dcm", "emri_small.dcm", "image_dfl.dcm"] {
        assert!(!failed.iter().any(|f| f.starts_with(&format!("{name}:"))), "{name} must decode");
    }
    assert!(decoded >= 99, "only {decoded} of {} corpus files decoded", files.len());
}

#[test]
fn truncated_pixel_data_is_reported_as_such() {
    let bytes = std::fs::read(bedside_corpus::find("MR_truncated.dcm").unwrap()).unwrap();
    let message = Study::open(&bytes, &Limits::default()).err().expect("an error").to_string();
    assert!(message.contains("(7FE0,0010)"), "names the pixel data element: {message}");
}

#[test]
fn limits_refuse_large_frames_before_decoding() {
    let bytes = std::fs::read(bedside_corpus::find("RG1_UNCR.dcm").unwrap()).unwrap();
    // 7.2 MB of stored samples, read in place.
    let small = Limits { max_decode_bytes: 7_000_000, ..Limits::default() };
    let message = Study::open(&bytes, &small).err().expect("an error").to_string();
    assert!(message.contains("1841×1955"), "{message}");
    assert!(message.contains("needs 7198310 bytes at once, more than the limit"), "{message}");
    assert!(Study::open(&bytes, &Limits { max_decode_bytes: 7_200_000, ..small }).is_ok());
}

fn first_frame(name: &str) -> bedside_imaging::Frame {
    let bytes = std::fs::read(bedside_corpus::find(name).unwrap()).unwrap();
    Study::open(&bytes, &Limits::default()).and_then(|study| study.frame(0)).unwrap()
}

/// MD5 of a frame's values as little-endian u16, lower-case hex.
fn md5_u16(frame: &bedside_imaging::Frame) -> String {
    use md5::{Digest, Md5};
    let bytes: Vec<u8> = frame.stored.map(|v| (v as u16).to_le_bytes()).concat();
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn palette_color_frames_are_drawn_through_their_tables() {
    // Expected values from pydicom 3.0.2's apply_color_lut on the same files.
    let ob = first_frame("OBXXXX1A.dcm");
    assert_eq!((ob.samples, ob.bits_stored), (3, 16), "looked up into 16-bit RGB");
    assert_eq!(md5_u16(&ob), "e7cf1005eced06066ec90f66267b2d29");
    let rgba = ob.render_rgba(None);
    assert_eq!(rgba[..4], [37, 62, 94, 255], "index 244 at the top left is dark blue");
    let coloured = rgba.chunks_exact(4).filter(|p| p[0] != p[1] || p[1] != p[2]).count();
    // An ultrasound with a colour region: 46235 of its 480000 pixels have unequal R, G, B.
    assert!(coloured > 40_000, "only {coloured} pixels are coloured");
    // pydicom reads the big-endian copy's 16-bit table bytes as little-endian (its colours come out
    // 256 times too dark); the tables are words, and the picture is the same.
    for copy in ["OBXXXX1A_expb.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_2frame.dcm"] {
        assert_eq!(first_frame(copy).stored.to_i32(), ob.stored.to_i32(), "{copy}");
    }

    // Segmented tables of 65536 16-bit entries (discrete and linear segments).
    let aloka = first_frame("gdcm-US-ALOKA-16.dcm");
    assert_eq!(md5_u16(&aloka), "ee4eb12beecc144bd4143e56d1a7f379");
    assert_eq!(aloka.render_rgba(None)[..4], [40, 45, 65, 255], "index 45088 at the top left");
    assert_eq!(first_frame("gdcm-US-ALOKA-16_big.dcm").stored.to_i32(), aloka.stored.to_i32());
}

#[test]
fn palette_color_keeps_its_indices_as_the_raw_array() {
    let bytes = std::fs::read(bedside_corpus::find("OBXXXX1A.dcm").unwrap()).unwrap();
    let study = Study::open(&bytes, &Limits::default()).unwrap();
    let raw = study.raw_frame(0).unwrap();
    assert_eq!(raw.len(), 600 * 800, "one uint8 index per pixel");
    assert_eq!(raw[0], 244);
    assert_eq!(study.default_window(&study.frame(0).unwrap()), None, "colour is not windowed");
}

#[test]
fn a_broken_palette_fails_drawing_with_a_clear_error_and_keeps_the_raw_array() {
    let mut bytes = std::fs::read(bedside_corpus::find("OBXXXX1A.dcm").unwrap()).unwrap();
    // Red Palette Color LUT Descriptor (0028,1101) US [256, 0, 16] → [255, 0, 16]: 512 bytes of
    // table data no longer fit it.
    let descriptor = [0x28, 0x00, 0x01, 0x11, b'U', b'S', 6, 0, 0, 1, 0, 0, 16, 0];
    let at = bytes.windows(descriptor.len()).position(|w| w == descriptor).expect("the descriptor");
    bytes[at + 8] = 255;
    bytes[at + 9] = 0;
    let study = Study::open(&bytes, &Limits::default()).unwrap();
    let message = study.frame(0).expect_err("an error").to_string();
    assert!(message.contains("Palette Color Lookup Table") && message.contains("255 entries"), "{message}");
    assert_eq!(study.raw_digest(0).unwrap().md5_first, "b1001814a1fc0b95092635d8b07b3a65");
}
