//! What one fuzz input does: the whole path the app takes from bytes to pixels, with the checks a
//! fuzzer can trip. The cargo-fuzz targets in `fuzz/` and the stable replay test
//! (`tests/fuzz_replay.rs`) call [`decode`], so a crash the fuzzer saved replays exactly.
//!
//! Not part of the API: it exists for the fuzz targets and may change with them.

use crate::{Error, Limits, Study};

/// What an input that decoded came to (the first frame, as drawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    /// 1 for grey, 3 for colour (as drawn: PALETTE COLOR comes looked up).
    pub samples: u8,
}

/// Opens `bytes` as the CLI does ([`Study::open`] with [`Limits::default`]), decodes and draws the
/// first frame through its default window, decodes the last frame, and for DICOM digests the raw
/// array of every frame (`bedside decode --raw-md5`); a photo is opened again as the page does
/// ([`Limits::page`]). A refusal is the typed error;
/// an inconsistent result (a drawn frame of the wrong size, an empty message) panics, so the fuzzer
/// reports it as a crash.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Error> {
    let result = decode_and_draw(bytes);
    if let Err(error) = &result {
        let message = error.to_string();
        assert!(!message.trim().is_empty(), "an error without a message: {error:?}");
        assert!(!message.contains('\n'), "a message of more than one line: {message:?}");
    }
    result
}

fn decode_and_draw(bytes: &[u8]) -> Result<Decoded, Error> {
    let study = Study::open(bytes, &Limits::default())?;
    let info = study.info().clone();
    assert!(info.rows > 0 && info.columns > 0 && info.frames > 0, "an empty study opened: {info:?}");
    let frame = study.frame(0)?;
    assert_eq!((frame.rows, frame.columns), (info.rows, info.columns), "frame 0 is not the study's size");
    let pixels = frame.rows as usize * frame.columns as usize;
    assert!(matches!(frame.samples, 1 | 3), "{} samples per pixel", frame.samples);
    assert_eq!(frame.stored.len(), pixels * frame.samples as usize, "stored values of frame 0");
    let rgba = frame.render_rgba(study.default_window(&frame));
    assert_eq!(rgba.len(), 4 * pixels, "RGBA bytes of frame 0");
    if info.frames > 1 {
        let last = study.frame(info.frames - 1)?;
        assert_eq!(last.stored.len(), pixels * last.samples as usize, "stored values of the last frame");
    }
    match study.raw_digest(0) {
        Ok(digest) => {
            // [frames,] rows, columns[, 3]
            let mut expected = vec![info.rows, info.columns];
            if info.frames > 1 {
                expected.insert(0, info.frames);
            }
            let shape = &digest.layout.shape;
            let colour = shape.len() == expected.len() + 1 && shape.last() == Some(&3);
            assert!(
                shape.starts_with(&expected) && (colour || shape.len() == expected.len()),
                "raw shape {shape:?}"
            );
        }
        Err(Error::NotDicom) => page_photo(bytes, &info)?,
        Err(error) => return Err(error),
    }
    Ok(Decoded { rows: info.rows, columns: info.columns, frames: info.frames, samples: frame.samples })
}

/// A photo opened again with the page's limits, where a JPEG at least twice
/// [`Limits::TABLET_PHOTO_SIDE`] long is decoded at a reduced scale by another decoder: it must
/// come out no larger, keeping the file's size as its original, and draw.
fn page_photo(bytes: &[u8], full: &crate::Info) -> Result<(), Error> {
    let study = Study::open(bytes, &Limits::page())?;
    let info = study.info();
    assert!(info.rows <= full.rows && info.columns <= full.columns, "reduced {info:?} from {full:?}");
    if let Some(original) = info.original_size {
        assert_eq!(original, [full.columns, full.rows], "original size of a reduced photo");
    }
    let frame = study.frame(0)?;
    let rgba = frame.render_rgba(study.default_window(&frame));
    assert_eq!(
        rgba.len(),
        4 * frame.rows as usize * frame.columns as usize,
        "RGBA bytes of the page's photo"
    );
    Ok(())
}
