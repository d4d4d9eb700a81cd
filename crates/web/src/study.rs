//! An opened file for the page: its summary, and its frames drawn through a window.

use bedside_imaging::{Frame, Limits, Study as Decoded, Window};
use serde::Serialize;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Decoded frames kept: the one on screen and the one being diagnosed, which may differ.
const FRAMES_KEPT: usize = 2;

/// An opened file plus its most recently used decoded frames, by index (kept so dragging the
/// window re-draws only, and so a diagnosis decodes the frame it was asked for once).
#[wasm_bindgen]
pub struct Study {
    pub(crate) study: Decoded,
    /// Most recently used first; never empty (frame 0 is decoded on opening).
    frames: Vec<(u32, Rc<Frame>)>,
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
        let study = Decoded::open(bytes, &Limits::page())?;
        let frame = study.frame(0)?;
        Ok(Study { study, frames: vec![(0, Rc::new(frame))] })
    }

    /// Frame `index`, decoded once while it stays among the [`FRAMES_KEPT`] most recently used.
    pub(crate) fn decoded(&mut self, index: u32) -> Result<Rc<Frame>, JsError> {
        let frame = match self.frames.iter().position(|(i, _)| *i == index) {
            Some(at) => self.frames.remove(at).1,
            None => Rc::new(self.study.frame(index)?),
        };
        self.frames.insert(0, (index, Rc::clone(&frame)));
        self.frames.truncate(FRAMES_KEPT);
        Ok(frame)
    }

    /// `{info, attributes, window, range}` for the page, as a plain JS object.
    pub fn summary(&self) -> Result<JsValue, JsError> {
        let frame = &self.frames[0].1;
        let (min, max) = frame.min_max();
        let (low, high) = frame.modality_range();
        let summary = Summary {
            info: Info { info: self.study.info(), min, max, grey: frame.is_grey() },
            attributes: self.study.attributes(),
            window: self.study.default_window(frame),
            range: Range { low, high },
        };
        let json = serde_json::to_string(&summary)?;
        js_sys::JSON::parse(&json).map_err(|_| JsError::new("summary is not valid JSON"))
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
        let frame = self.decoded(frame)?;
        let window = (center.is_finite() && width.is_finite()).then_some(Window { center, width });
        Ok(frame.render_rgba(window))
    }

    /// [`Study::render`] into `out` (a buffer the page gave back, `4 × columns × rows` bytes), so
    /// that scrolling through frames does not leave a new buffer behind per frame for the page's
    /// garbage collector: 400 frames of 256 × 256 left 47 MB of them.
    pub fn render_into(
        &mut self,
        frame: u32,
        center: f64,
        width: f64,
        out: &mut [u8],
    ) -> Result<(), JsError> {
        let rgba = self.render(frame, center, width)?;
        if out.len() != rgba.len() {
            return Err(JsError::new(&format!(
                "a buffer of {} bytes for {} bytes of pixels",
                out.len(),
                rgba.len()
            )));
        }
        out.copy_from_slice(&rgba);
        Ok(())
    }
}
