use thiserror::Error;

/// Why a file could not be decoded. Messages are one readable line, fit to show a clinician.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not a DICOM file (no DICM marker) nor a JPEG, PNG or WebP photo")]
    UnknownFormat,
    #[error("could not read the DICOM file: {0}")]
    DicomHeader(String),
    #[error("the DICOM file has no pixel data")]
    NoPixelData,
    #[error("invalid {attribute}: {detail}")]
    InvalidAttribute { attribute: &'static str, detail: String },
    #[error("{what} is not supported yet")]
    Unsupported { what: String },
    #[error("could not decode the pixel data of frame {frame}: {detail}")]
    PixelData { frame: u32, detail: String },
    #[error("the pixel data is truncated: frame {frame} needs {expected} bytes but only {actual} are there")]
    Truncated { frame: u32, expected: u64, actual: u64 },
    #[error("frame {index} does not exist (the file has {frames} frame(s), counted from 0)")]
    NoSuchFrame { index: u32, frames: u32 },
    #[error(
        "image too large: decoding {columns}×{rows} pixels needs {bytes} bytes at once, more than the limit of {limit} bytes"
    )]
    TooLarge { rows: u32, columns: u32, bytes: u64, limit: u64 },
    #[error("image too large: {columns}×{rows} pixels, more than the limit of {max_side} on a side")]
    SideTooLong { rows: u32, columns: u32, max_side: u32 },
    #[error(
        "the image claims {columns}×{rows} pixels but its {encoded} bytes of compressed data cannot hold that many (truncated or corrupt)"
    )]
    ImplausibleSize { rows: u32, columns: u32, encoded: u64 },
    #[error("could not decode the photo: {0}")]
    Photo(String),
    #[error("could not write the DICOM file: {0}")]
    DicomWrite(String),
    #[error("could not write the photo as PNG: {0}")]
    PhotoWrite(String),
    #[error("raw stored values exist for DICOM files only, not for photos")]
    NotDicom,
    #[error("cannot black out the rectangle {rect}: {why}")]
    BlackOut { rect: String, why: String },
}

/// A decoder's message as one line: libraries end theirs with newlines or span several lines, and a
/// message here is one line (found by fuzzing: `image`'s JPEG errors end with "\n").
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
