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
    let small = Limits { max_frame_bytes: 1 << 20, ..Limits::default() };
    let message = Study::open(&bytes, &small).err().expect("an error").to_string();
    assert!(message.contains("1841×1955"), "{message}");
    assert!(message.contains("exceeds the limit"), "{message}");
}
