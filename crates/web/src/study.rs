//! An opened file for the page: its summary, and its frames drawn through a window.

use bedside_imaging::{Frame, Limits, Study as Decoded, Window};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// An opened file plus its most recently decoded frame (kept so dragging the window re-draws only).
#[wasm_bindgen]
pub struct Study {
    pub(crate) study: Decoded,
    pub(crate) frame_index: u32,
    pub(crate) frame: Frame,
}

/// What the worker posts to the page when a file opens (see `web/bridge.md`).
#[derive(Serialize)]
struct Summary<'a> {
    info: Info<'a>,
    attributes: &'a [(String, String)],
    window: Option<Window>,
    range: Range,
}

/// The same keys as `bedside decode`, plus `grey`.
#[derive(Serialize)]
struct Info<'a> {
    #[serde(flatten)]
    info: &'a bedside_imaging::Info,
    min: i32,
    max: i32,
    grey: bool,
}

#[derive(Serialize)]
struct Range {
    low: f64,
    high: f64,
}

#[wasm_bindgen]
impl Study {
    /// Decodes the file's header and first frame; throws an `Error` whose message is one readable line.
    pub fn open(bytes: &[u8], _name: &str) -> Result<Study, JsError> {
        let study = Decoded::open(bytes, &Limits::default())?;
        let frame = study.frame(0)?;
        Ok(Study { study, frame_index: 0, frame })
    }

    /// `{info, attributes, window, range}` for the page, as a plain JS object.
    pub fn summary(&self) -> Result<JsValue, JsError> {
        let (min, max) = self.frame.min_max();
        let (low, high) = self.frame.modality_range();
        let summary = Summary {
            info: Info { info: self.study.info(), min, max, grey: self.frame.is_grey() },
            attributes: self.study.attributes(),
            window: self.study.default_window(&self.frame),
            range: Range { low, high },
        };
        let json = serde_json::to_string(&summary)?;
        Ok(js_sys::JSON::parse(&json).map_err(|_| JsError::new("summary is not valid JSON"))?)
    }

    /// The frame last decoded (the one a diagnosis is made of).
    #[wasm_bindgen(getter)]
    pub fn frame(&self) -> u32 {
        self.frame_index
    }

    #[wasm_bindgen(getter)]
    pub fn rows(&self) -> u32 {
        self.study.info().rows
    }

    #[wasm_bindgen(getter)]
    pub fn columns(&self) -> u32 {
        self.study.info().columns
    }

    /// RGBA8 pixels of `frame` drawn through the window (ignored for colour images).
    pub fn render(&mut self, frame: u32, center: f64, width: f64) -> Result<Vec<u8>, JsError> {
        if frame != self.frame_index {
            self.frame = self.study.frame(frame)?;
            self.frame_index = frame;
        }
        let window = (center.is_finite() && width.is_finite()).then_some(Window { center, width });
        Ok(self.frame.render_rgba(window))
    }
}
