//! Bytes in, pixels and metadata out.
//!
//! `bedside-imaging` turns the bytes of a file a clinician opens — a DICOM object or an ordinary photo
//! (JPEG, PNG, WebP) — into a [`Study`]: its header ([`Info`]) plus frames of stored sample values that
//! can be windowed and drawn ([`Frame::render_rgba`]). The same code runs natively (the `bedside` CLI)
//! and in WebAssembly (the browser's decode worker); nothing here touches the file system or prints.
//!
//! It also de-identifies a file before it is shared ([`deid`]: DICOM PS3.15 Annex E, Basic Profile, and
//! photos reduced to their pixels), which is the one place it writes DICOM.
//!
//! It is not a model-preprocessing crate (resizing and normalising for a network belong beside the
//! model) and not a general DICOM writer.
//!
//! DICOM goes through `dicom-object` and `dicom-pixeldata` with their default features off (no rayon,
//! which wasm32 lacks) and only pure-Rust codecs, each chosen because it builds for wasm32:
//! - JPEG baseline and lossless: `jpeg-decoder`, driven by our `jpeg` module rather than dicom-rs's
//!   adapter, which lets the decoder guess the colour space (RGB streams came out in false colour);
//!   here the photometric interpretation decides, as in pydicom.
//! - Lossy JPEG that `jpeg-decoder` refuses or rounds too differently: our `jpeg_dct` module, a
//!   sequential DCT decoder that follows libjpeg's integer IDCT and chroma upsampling. It takes
//!   12-bit streams (JPEG extended), which `jpeg-decoder` refuses and libjpeg's 12-bit build is C,
//!   and 8-bit colour streams, where `jpeg-decoder`'s YCbCr is within 3 of libjpeg's and the colour
//!   conversion makes that up to 5 in RGB. On the corpus its values are the reference's exactly.
//! - JPEG-LS, lossless and near-lossless, grey and colour: our `jpegls` module, a T.87 decoder of
//!   its own (one scan per component, line or sample interleave, LSE presets, restart markers); on
//!   the corpus, near-lossless included, its values are the reference's exactly. dicom-rs decodes
//!   JPEG-LS only through CharLS (C++). Of the pure-Rust candidates, `pure_jpegls` decodes
//!   single-component streams only (it is kept to encode test streams), and `dicom-toolkit-codec`
//!   0.5 pulls in a DICOM stack and JPEG 2000 codec of its own, decodes line-interleaved colour as
//!   one tall grey image of component lines (an approximation by its own account, not T.87's line
//!   interleave) and refuses sample interleave.
//! - RLE Lossless: our `rle` module (dicom-rs's stops at 16 bits allocated; RT dose grids use 32).
//!   dicom-pixeldata's `jpeg` and `rle` features are off: nothing reaches their adapters, and the
//!   JPEG one would link an encoder into the page's module.
//! - JPEG 2000, lossless and lossy: dicom-pixeldata's `openjp2` feature, `jpeg2k` over the pure-Rust
//!   port of OpenJPEG; its values match OpenJPEG's bit for bit on the test corpus. dicom-rs registers
//!   HTJ2K to it as well (openjp2 has OpenJPEG's HT block decoder); the corpus holds no HTJ2K file,
//!   so the conformance run re-encodes four corpus files as HTJ2K with OpenJPH, an independent
//!   encoder, and checks those too (lossless ones exact). `openjp2` is
//!   machine-translated C that still calls C's `malloc`, `calloc`, `realloc`, `free` and `strcpy`,
//!   which wasm32-unknown-unknown has no C library for (the module would import them from `env`
//!   and fail to instantiate); our `c_runtime` module defines them there on Rust's global
//!   allocator, so the browser decodes JPEG 2000 with the same code. openjp2 also hands null to
//!   Rust's `dealloc`, which traps in wasm32's allocator, so `c_runtime` sets a global allocator
//!   there that ignores null and forwards everything else to the standard one. We chose that
//!   over the alternatives: OpenJPEG itself (`openjpeg-sys`) needs a C toolchain and libc for wasm32,
//!   and a JPEG 2000 decoder written in Rust is not yet on par with OpenJPEG. Each frame's
//!   codestream size is checked against the header first (our `jpeg2000` module): dicom-rs's
//!   adapter would index past its buffer on a larger one.
//! - Deflated data sets: dicom-rs's `deflate`. Their lengths are walked as they inflate (a few
//!   bytes held at a time) before dicom-rs inflates them again to parse.
//!
//! PALETTE COLOR frames are looked up through their red, green and blue tables, whole or segmented
//! (our `palette` module), when drawn; their raw array stays the indices.
//!
//! `CONFORMANCE.md` beside this crate lists every test-corpus file against a reference decoder
//! (pydicom); [`Study::raw_digest`] gives the digest of the raw array it is compared on. Photos go
//! through `image`, with the EXIF orientation applied.
//!
//! Hostile input gets an [`Error`], never a panic: sizes are checked against [`Limits`] before any
//! pixel buffer is allocated, and declared lengths against the bytes that are there before dicom-rs
//! reads them. The cargo-fuzz targets in `fuzz/` run this whole path (`fuzzing::decode`).
//!
//! ```no_run
//! let bytes = std::fs::read("MR_small.dcm").unwrap();
//! let study = bedside_imaging::Study::open(&bytes, &bedside_imaging::Limits::default()).unwrap();
//! let frame = study.frame(0).unwrap();
//! let rgba = frame.render_rgba(study.default_window(&frame));
//! assert_eq!(rgba.len(), 4 * study.info().rows as usize * study.info().columns as usize);
//! ```

// openjp2's C allocator and string calls, which wasm32-unknown-unknown has no C library for.
#[cfg(any(all(target_arch = "wasm32", target_os = "unknown"), test))]
mod c_runtime;
pub mod deid;
mod dicom;
mod error;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod jpeg;
mod jpeg2000;
mod jpeg_dct;
mod jpegls;
mod lengths;
mod palette;
mod peak;
mod photo;
mod raw;
mod rle;

pub use error::Error;
pub use frame::{Frame, Samples, Window};
pub use raw::{Dtype, RawDigest, RawLayout};

use serde::Serialize;

/// Bounds that keep hostile files from exhausting memory; checked before allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes decoding one frame may hold at its peak: the codec's own buffers (openjp2's 32-bit
    /// planes, a decoder's output before it is stored) and the stored samples together, as
    /// [`Study::decode_peak_bytes`] counts them (the `peak` module, path by path).
    pub max_decode_bytes: u64,
    /// Largest width or height accepted, in pixels.
    pub max_side: u32,
    /// Where set, a JPEG photo whose longest side is at least twice this is decoded at 1/2, 1/4 or
    /// 1/8 of its size — the smallest that keeps the longest side at least this — by scaling its
    /// DCT, so the full-size pixels never exist ([`Info::original_size`] keeps the file's size).
    /// `None`: every photo at its own size.
    pub photo_side: Option<u32>,
}

impl Default for Limits {
    /// Room for a 4k × 4k 16-bit CR in JPEG 2000 (201 MB at the peak) and an 8k × 8k RGB JPEG photo
    /// (403 MB), natively. Photos at their own size.
    fn default() -> Self {
        Limits { max_decode_bytes: 512 << 20, max_side: 16_384, photo_side: None }
    }
}

impl Limits {
    /// The longest side a photo needs on a tablet: about its screen's longest side in physical
    /// pixels (2048–2732), and over nine times what any model sees.
    pub const TABLET_PHOTO_SIDE: u32 = 2048;

    /// The page's limits: photos decoded no larger than [`Self::TABLET_PHOTO_SIDE`] needs, and half
    /// the native peak, what a tablet's tab can spare beside the page and the models. A 9000 × 9000
    /// JPEG is 243 MB of RGB at its own size and 15 MB at 1/4; a 4k × 4k 16-bit CR in JPEG 2000
    /// still opens.
    pub fn page() -> Limits {
        Limits { max_decode_bytes: 256 << 20, photo_side: Some(Self::TABLET_PHOTO_SIDE), ..Limits::default() }
    }

    /// Most pixels one byte of a compressed stream may stand for. PNG's deflate tops out near 1032
    /// bytes per byte and JPEG's Huffman codes need a bit or two per 8×8 block, so a real picture
    /// stays well under this; a 590-byte JPEG claiming 2051×12034 (found by fuzzing) does not, and
    /// would have been decoded from padding for seconds.
    pub const MAX_PIXELS_PER_BYTE: u64 = 4096;

    /// Refuses a compressed stream of `encoded` bytes that claims more pixels than it can hold.
    pub(crate) fn check_ratio(&self, rows: u32, columns: u32, encoded: usize) -> Result<(), Error> {
        let pixels = u64::from(rows) * u64::from(columns);
        if pixels > Self::MAX_PIXELS_PER_BYTE.saturating_mul(encoded as u64) {
            return Err(Error::ImplausibleSize { rows, columns, encoded: encoded as u64 });
        }
        Ok(())
    }

    /// Refuses a frame of `rows` × `columns` whose decoding would hold `peak` bytes at once (see
    /// the `peak` module), or whose sides exceed the limit.
    fn check(&self, rows: u32, columns: u32, peak: u64) -> Result<(), Error> {
        self.check_sides(rows, columns)?;
        if peak > self.max_decode_bytes {
            return Err(Error::TooLarge { rows, columns, bytes: peak, limit: self.max_decode_bytes });
        }
        Ok(())
    }

    /// Refuses a side beyond [`Self::max_side`], whatever the decoding would hold.
    fn check_sides(&self, rows: u32, columns: u32) -> Result<(), Error> {
        if rows > self.max_side || columns > self.max_side {
            return Err(Error::SideTooLong { rows, columns, max_side: self.max_side });
        }
        Ok(())
    }
}

/// What a file is, as `bedside decode` reports it (one JSON object, stable keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Info {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    /// DICOM Modality (e.g. `"CR"`, `"MR"`); `"photo"` for photos; `null` if a DICOM file has none.
    pub modality: Option<String>,
    pub photometric_interpretation: String,
    /// Transfer syntax UID; `null` for photos.
    pub transfer_syntax: Option<String>,
    pub bits_stored: u16,
    /// Millimetres between rows and between columns, where the file says: Pixel Spacing, or an
    /// ultrasound region's physical deltas. Absent for photos and files without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_spacing: Option<[f64; 2]>,
    /// `[columns, rows]` of the file's own picture where it was decoded smaller (a large JPEG photo
    /// under [`Limits::photo_side`]); absent where the frames are the file's own size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_size: Option<[u32; 2]>,
}

/// How large one pixel of the decoded frames is, for measuring what is drawn on them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PixelSize {
    /// Millimetres between rows and between columns (the file's pixel spacing).
    Millimetres([f64; 2]),
    /// The file's own pixels per decoded pixel: 1, or 2, 4 or 8 for a photo decoded smaller.
    Pixels(f64),
}

impl Info {
    /// What a decoded pixel measures: millimetres where the file gives a spacing, else the file's
    /// own pixels.
    pub fn pixel_size(&self) -> PixelSize {
        match (self.pixel_spacing, self.original_size) {
            (Some(spacing), _) => PixelSize::Millimetres(spacing),
            (None, Some([columns, _])) => {
                PixelSize::Pixels(f64::from(columns) / f64::from(self.columns.max(1)))
            }
            (None, None) => PixelSize::Pixels(1.0),
        }
    }
}

/// Rescale slope and intercept: stored value → modality value (e.g. Hounsfield units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

impl Rescale {
    pub const IDENTITY: Rescale = Rescale { slope: 1.0, intercept: 0.0 };

    pub fn apply(&self, stored: f64) -> f64 {
        stored * self.slope + self.intercept
    }
}

/// An opened file: its header and a way to decode any one of its frames.
pub struct Study {
    info: Info,
    attributes: Vec<(String, String)>,
    rescale: Rescale,
    window: Option<Window>,
    source: Source,
    limits: Limits,
    /// See [`Study::decode_peak_bytes`].
    decode_peak: u64,
}

enum Source {
    Dicom(Box<dicom::DicomSource>),
    Photo(Frame),
}

impl Study {
    /// Opens a DICOM file (with or without its 128-byte preamble) or a JPEG/PNG/WebP photo.
    pub fn open(bytes: &[u8], limits: &Limits) -> Result<Study, Error> {
        if let Some(dataset) = dicom::dicom_body(bytes) {
            return dicom::open(dataset, limits);
        }
        if photo::is_photo(bytes) {
            return photo::open(bytes, limits);
        }
        Err(Error::UnknownFormat)
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// What decoding one frame allocates at its peak, in bytes, as [`Limits`] counts it (for a
    /// photo, what opening it did).
    pub fn decode_peak_bytes(&self) -> u64 {
        self.decode_peak
    }

    /// Labelled header values for a metadata panel, in display order.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    pub fn rescale(&self) -> Rescale {
        self.rescale
    }

    /// The patient's age in years at the examination, where the file says (DICOM Patient's Age, or
    /// Birth Date against the study's date); `None` for photos and for files that do not.
    pub fn patient_age_years(&self) -> Option<f64> {
        match &self.source {
            Source::Dicom(source) => dicom::patient_age_years(&source.object),
            Source::Photo(_) => None,
        }
    }

    /// Decodes one frame (from 0) without decoding the others where the encoding allows it;
    /// PALETTE COLOR comes looked up, as RGB.
    pub fn frame(&self, index: u32) -> Result<Frame, Error> {
        if index >= self.info.frames {
            return Err(Error::NoSuchFrame { index, frames: self.info.frames });
        }
        match &self.source {
            Source::Dicom(source) => source.frame(index, &self.info, &self.limits),
            Source::Photo(frame) => Ok(frame.clone()),
        }
    }

    /// The window to show first: the file's own (first Window Center/Width; for an 8-bit grey photo,
    /// its values as stored), else the frame's full range of modality values. `None` for colour
    /// images, which are drawn as they are.
    pub fn default_window(&self, frame: &Frame) -> Option<Window> {
        if !frame.is_grey() {
            return None;
        }
        self.window.or_else(|| Some(frame.full_window()))
    }
}
