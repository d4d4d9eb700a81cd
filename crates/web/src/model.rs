//! A loaded model for the worker: diagnosis and heat map of the frame a [`Study`] holds.

use crate::study::Study;
use bedside_diagnosis::{Diagnoser, Diagnosis};
use bedside_model::artifact::ModelInfo;
use bedside_model::gate;
use bedside_model::task::Task;
use burn::prelude::Device;
use js_sys::{Object, Reflect, Uint8Array};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// A model on one backend. Diagnoses run one at a time per worker, on owned inputs, so a
/// diagnosis in flight never borrows the study it came from.
#[wasm_bindgen]
pub struct Model {
    diagnoser: Rc<Diagnoser>,
    backend: &'static str,
}

/// What the page shows about a model (its card summary) and needs to interpret it.
#[derive(Serialize)]
struct Summary<'a> {
    task: &'static str,
    title: &'static str,
    licence: &'static str,
    classes: &'a [String],
    /// Each class as the page names it: `mel (melanoma)` where the label is an abbreviation.
    class_titles: Vec<String>,
    positive_class: &'static str,
    threshold: Option<f32>,
    /// When the answer is "uncertain" (`bedside_model::review`), and for two classes the band of
    /// the positive class's probability that is.
    review: Option<bedside_model::review::Review>,
    review_band: Option<(f32, f32)>,
    temperature: f32,
    input: &'a bedside_model::input::InputSpec,
    format_version: u32,
    card: &'a serde_json::Value,
    /// The heat map's colour scale, dark (little attention) to light (most): the legend's stops.
    heat_palette: &'static [[u8; 3]],
    /// Whether diagnoses carry a lesion outline (the task's lesion decoder is loaded).
    lesion: bool,
}

#[wasm_bindgen]
impl Model {
    /// Loads `model.json` text and weights (`model.bin`, int8, or `model-fp32.bin`) on `backend` ("cpu" or "webgpu"); throws
    /// an `Error` with one readable line when the files do not fit together or the backend is
    /// unavailable (no WebGPU adapter: the worker then falls back to "cpu").
    /// With `lesion_json` and `lesion_weights` (`lesion.json`, `lesion.bin`) the task's lesion decoder
    /// is loaded too, and every diagnosis carries the lesion outline.
    pub async fn load(
        model_json: String,
        weights: Vec<u8>,
        backend: String,
        lesion_json: Option<String>,
        lesion_weights: Option<Vec<u8>>,
    ) -> Result<Model, JsError> {
        // Validated before a device is set up, so a broken model.json costs no WebGPU start-up and
        // comes back as its one-line message (`Diagnoser::new` checks it again, cheaply).
        ModelInfo::from_json(&model_json)?;
        let (device, backend) = match backend.as_str() {
            "cpu" => (Device::flex(), "cpu"),
            "webgpu" => (webgpu().await?, "webgpu"),
            other => return Err(JsError::new(&format!("unknown backend {other:?}: use cpu or webgpu"))),
        };
        let mut diagnoser = Diagnoser::new(&model_json, weights, device)?;
        if let (Some(json), Some(weights)) = (lesion_json, lesion_weights) {
            diagnoser = diagnoser.with_lesion(&json, weights)?;
        }
        Ok(Model { diagnoser: Rc::new(diagnoser), backend })
    }

    /// The backend the model runs on: "cpu" or "webgpu".
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.to_string()
    }

    /// The model's card summary as a plain JS object (see `web/bridge.md`).
    pub fn summary(&self) -> Result<JsValue, JsError> {
        let info = self.diagnoser.info();
        let summary = Summary {
            task: info.task.name(),
            title: info.task.title(),
            licence: info.task.data_licence(),
            classes: &info.classes,
            class_titles: info
                .classes
                .iter()
                .map(|c| match info.task.class_title(c) {
                    title if title == c => c.clone(),
                    title => format!("{c} ({title})"),
                })
                .collect(),
            positive_class: info.task.positive_class(),
            threshold: info.threshold,
            review: info.review,
            review_band: info
                .review
                .zip(info.threshold)
                .filter(|_| info.classes.len() == 2)
                .map(|(review, threshold)| review.band(threshold)),
            temperature: info.temperature,
            input: &info.input,
            format_version: info.format_version,
            card: &info.card,
            heat_palette: &bedside_model::heat_map::PALETTE,
            lesion: self.diagnoser.has_lesion(),
        };
        json_value(&summary)
    }

    /// One pass on a blank input so the first real diagnosis does not pay one-off costs.
    #[wasm_bindgen(js_name = warmUp)]
    pub fn warm_up(&self) -> js_sys::Promise {
        let diagnoser = Rc::clone(&self.diagnoser);
        wasm_bindgen_futures::future_to_promise(async move {
            diagnoser.warm_up().await.map_err(to_js)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Diagnoses frame `frame` (from 0) of `study`, whichever frame is on screen; resolves to
    /// `{label, most_likely, probabilities, threshold, review, region, heat_map: {width, height, rgba},
    /// heat_map_peak, lesion}` (`label` is "uncertain" where the review rule says so; `lesion` is null
    /// without a lesion decoder, else `{found, area, longest_diameter, units, outline}` with
    /// `outline` the region-sized RGBA layer to draw). Throws when the frame cannot be decoded.
    pub fn diagnose(&self, study: &mut Study, frame: u32) -> Result<js_sys::Promise, JsError> {
        let diagnoser = Rc::clone(&self.diagnoser);
        let frame = study.decoded(frame)?;
        let (input, region) = diagnoser.prepare(&study.study, &frame);
        let spacing = study.study.info().pixel_spacing;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let diagnosis = diagnoser.run(input, region, spacing).await.map_err(to_js)?;
            to_object(&diagnosis, bedside_diagnosis::outline_rgba(&frame, &diagnosis)).map_err(to_js)
        }))
    }

    /// For the trust gate: resolves to `{task, refused, message, confidence, floor, probabilities,
    /// use, routed_by, note}` for frame `frame` of `study`. `task` is the kind of picture the gate
    /// sees (null when refused) and `message` what to tell the user when it is refused; `use` is the
    /// model that answers under the routing rule (`bedside_model::gate::choose`: the user's `choice`,
    /// a task name or `auto`, beats the file's Modality, which beats the gate), `routed_by` why
    /// (`choice`, `modality` or `gate`) and `note` any disagreement to show.
    pub fn route(&self, study: &mut Study, frame: u32, choice: String) -> Result<js_sys::Promise, JsError> {
        let choice = match choice.as_str() {
            "auto" => None,
            name => Some(
                Task::from_name(name)
                    .filter(|t| *t != Task::Gate)
                    .ok_or_else(|| JsError::new(&format!("unknown model {name:?}")))?,
            ),
        };
        let modality = study.study.info().modality.clone();
        let diagnoser = Rc::clone(&self.diagnoser);
        let frame = study.decoded(frame)?;
        let (input, region) = diagnoser.prepare(&study.study, &frame);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let route = diagnoser.route_input(input, region).await.map_err(to_js)?;
            let classes = &diagnoser.info().classes;
            let chosen = gate::choose(choice, modality.as_deref(), &route);
            let verdict = serde_json::json!({
                "task": route.task.map(|t| t.name()),
                "refused": route.refused(),
                "message": route.refused().then_some(gate::REFUSAL),
                "confidence": route.confidence,
                "floor": diagnoser.info().threshold,
                "probabilities": classes.iter().zip(&route.probabilities).collect::<Vec<_>>(),
                "use": chosen.map(|(task, _)| task.name()),
                "routed_by": chosen.map(|(_, by)| by),
                "note": chosen.and_then(|(task, by)| gate::note(task, by, &route)),
            });
            json_value(&verdict).map_err(to_js)
        }))
    }
}

thread_local! {
    /// The worker's WebGPU device, made once: burn's runtime cannot be initialised twice.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The WebGPU device, initialised on first use. The worker loads one model at a time, so two
/// initialisations never race.
async fn webgpu() -> Result<Device, JsError> {
    if let Some(device) = WEBGPU.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| JsError::new(&format!("WebGPU is not available here ({e})")))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

fn to_object(diagnosis: &Diagnosis, outline: Option<Vec<u8>>) -> Result<JsValue, JsError> {
    let out = json_value(diagnosis)?;
    let map = &diagnosis.heat_map;
    let heat_map = Object::new();
    let set = |obj: &Object, key: &str, value: JsValue| Reflect::set(obj, &key.into(), &value).map(|_| ());
    let failed = |_| JsError::new("could not build the diagnosis object");
    set(&heat_map, "width", map.width.into()).map_err(failed)?;
    set(&heat_map, "height", map.height.into()).map_err(failed)?;
    set(&heat_map, "rgba", Uint8Array::from(map.to_rgba().as_slice()).into()).map_err(failed)?;
    set(out.unchecked_ref(), "heat_map", heat_map.into()).map_err(failed)?;
    set(out.unchecked_ref(), "heat_map_peak", json_value(&diagnosis.heat_map_peak())?).map_err(failed)?;
    if let (Some(outline), Ok(lesion)) = (outline, Reflect::get(&out, &"lesion".into())) {
        set(lesion.unchecked_ref(), "outline", Uint8Array::from(outline.as_slice()).into())
            .map_err(failed)?;
    }
    Ok(out)
}

fn json_value<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    let json = serde_json::to_string(value)?;
    js_sys::JSON::parse(&json).map_err(|_| JsError::new("not valid JSON"))
}

fn to_js<E: Into<JsError>>(e: E) -> JsValue {
    JsValue::from(e.into())
}
