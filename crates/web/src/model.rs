//! A loaded model for the worker: diagnosis and heat map of the frame a [`Study`] holds.

use crate::study::Study;
use bedside_diagnosis::Diagnoser;
use bedside_model::artifact::ModelInfo;
use bedside_model::task::Task;
#[cfg(feature = "webgpu")]
use burn::prelude::Device;
use js_sys::{Object, Reflect, Uint8Array};
use serde::Serialize;
#[cfg(feature = "webgpu")]
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
    /// Loads `model.json` text and weights (`model.bin`, int8, or `model-fp32.bin`) on `backend` ("cpu",
    /// "cpu-fp32": the CPU engine in f32, for comparison, or "webgpu"); throws
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
        crate::run_constructors();
        // Validated before a device is set up, so a broken model.json costs no WebGPU start-up and
        // comes back as its one-line message (`Diagnoser::new` checks it again, cheaply).
        ModelInfo::from_json(&model_json)?;
        // The CPU path runs on Bedside's own engine, weights read without burn, in the arithmetic
        // `bedside predict` uses (`bedside_diagnosis::CPU_ARITHMETIC`); burn runs WebGPU only.
        let (mut diagnoser, backend) = match backend.as_str() {
            "cpu" => (Diagnoser::on_cpu(&model_json, weights, bedside_diagnosis::CPU_ARITHMETIC)?, "cpu"),
            // The engine in f32: the reference the benchmark compares "cpu" with.
            "cpu-fp32" => {
                (Diagnoser::on_cpu(&model_json, weights, bedside_diagnosis::Precision::Fp32)?, "cpu-fp32")
            }
            #[cfg(feature = "webgpu")]
            "webgpu" => (Diagnoser::new(&model_json, weights, webgpu().await?)?, "webgpu"),
            #[cfg(not(feature = "webgpu"))]
            "webgpu" => {
                return Err(JsError::new("this build of the module has no WebGPU backend: load pkg/webgpu/"));
            }
            other => {
                return Err(JsError::new(&format!("unknown backend {other:?}: use cpu, cpu-fp32 or webgpu")));
            }
        };
        if let (Some(json), Some(weights)) = (lesion_json, lesion_weights) {
            diagnoser = diagnoser.with_lesion(&json, weights)?;
        }
        Ok(Model { diagnoser: Rc::new(diagnoser), backend })
    }

    /// The backend the model runs on: "cpu", "cpu-fp32" or "webgpu".
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

    /// For the trust gate, step 1 of an assessment: resolves to the [`Routing`] of frame `frame` of
    /// `study` — the gate's refusal, or the model that answers under the routing rule
    /// (`bedside_model::gate::choose`: the user's `choice`, a task name or `auto`, beats the file's
    /// Modality, which beats what the gate sees; the chest model does not answer for an adult whose
    /// age the file gives, `bedside_model::gate::age_refusal`).
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
        let age = study.study.patient_age_years();
        let diagnoser = Rc::clone(&self.diagnoser);
        let frame = study.decoded(frame)?;
        let (input, region) = diagnoser.prepare(&study.study, &frame);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let route = diagnoser.route_input(input, region).await.map_err(to_js)?;
            let routing =
                bedside_diagnosis::Routing::new(diagnoser.info(), &route, choice, modality.as_deref(), age);
            Ok(Routing(routing).into())
        }))
    }

    /// Step 2: this model (the one `routing.task` names) diagnoses frame `frame` of `study`, whichever
    /// frame is on screen. Resolves to `{assessment, heat_map: {width, height, rgba}, outline}`:
    /// `assessment` is what `bedside predict` prints for the file (see `web/bridge.md`), `rgba` the
    /// heat map's RGBA8 pixels at the model's input size and `outline` the lesion outline as
    /// `{width, height, rgba}`, an RGBA8 layer to draw over the assessment's `region`: the region's
    /// size, or scaled down to `bedside_diagnosis::OUTLINE_SIDE` pixels for a larger one (null
    /// without a lesion decoder). Throws when the
    /// frame cannot be decoded, or when `routing` is a refusal or names another model.
    pub fn assess(
        &self,
        study: &mut Study,
        frame: u32,
        routing: &Routing,
    ) -> Result<js_sys::Promise, JsError> {
        let routed = match &routing.0 {
            bedside_diagnosis::Routing::Routed(routed) if routed.task == self.diagnoser.info().task => {
                routed.clone()
            }
            bedside_diagnosis::Routing::Routed(routed) => {
                let (wanted, this) = (routed.task.name(), self.diagnoser.info().task.name());
                return Err(JsError::new(&format!(
                    "the {wanted} model answers this picture, not the {this} model"
                )));
            }
            bedside_diagnosis::Routing::Refused(_) => {
                return Err(JsError::new("the trust gate refused this picture"));
            }
        };
        let diagnoser = Rc::clone(&self.diagnoser);
        let frame = study.decoded(frame)?;
        let (input, region) = diagnoser.prepare(&study.study, &frame);
        let size = study.study.info().pixel_size();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let diagnosis = diagnoser.run(input, region, size).await.map_err(to_js)?;
            let outline = bedside_diagnosis::outline_rgba(&frame, &diagnosis)
                .zip(diagnosis.lesion.as_ref())
                .map(|(rgba, lesion)| (lesion.mask.width, lesion.mask.height, rgba));
            let heat_map = &diagnosis.heat_map;
            let (width, height, rgba) = (heat_map.width, heat_map.height, heat_map.to_rgba());
            let assessment = routed.assess(diagnosis);
            to_object(&assessment, width, height, &rgba, outline).map_err(to_js)
        }))
    }
}

/// The trust gate's routing of one picture (step 1 of an assessment): which model answers it, or the
/// gate's refusal. The worker fetches the model `task` names and passes this to its
/// [`Model::assess`].
#[wasm_bindgen]
pub struct Routing(bedside_diagnosis::Routing);

#[wasm_bindgen]
impl Routing {
    /// The model that answers (`chest`, `skin` or `breast`); undefined when the gate refused the
    /// picture.
    #[wasm_bindgen(getter)]
    pub fn task(&self) -> Option<String> {
        match &self.0 {
            bedside_diagnosis::Routing::Routed(routed) => Some(routed.task.name().to_string()),
            bedside_diagnosis::Routing::Refused(_) => None,
        }
    }

    /// The refusal, the whole assessment (`outcome` "refused", `message`, `gate`) as `bedside predict`
    /// prints it; undefined when a model is to answer.
    pub fn refusal(&self) -> Result<JsValue, JsError> {
        match &self.0 {
            bedside_diagnosis::Routing::Refused(refusal) => json_value(refusal),
            bedside_diagnosis::Routing::Routed(_) => Ok(JsValue::UNDEFINED),
        }
    }

    /// A routing to a model as JSON text, for a model loaded in the other build of this module
    /// (the gate on the CPU build, the answering model on the WebGPU build, or the reverse), which
    /// reads it back with [`Routing::from_json`]; undefined for a refusal, which needs no model.
    #[wasm_bindgen(js_name = toJson)]
    pub fn to_json(&self) -> Result<Option<String>, JsError> {
        match &self.0 {
            bedside_diagnosis::Routing::Routed(routed) => Ok(Some(serde_json::to_string(routed)?)),
            bedside_diagnosis::Routing::Refused(_) => Ok(None),
        }
    }

    /// The routing [`Routing::to_json`] wrote (in either build).
    #[wasm_bindgen(js_name = fromJson)]
    pub fn from_json(text: &str) -> Result<Routing, JsError> {
        let routed = serde_json::from_str(text).map_err(|e| JsError::new(&format!("not a routing: {e}")))?;
        Ok(Routing(bedside_diagnosis::Routing::Routed(routed)))
    }
}

#[cfg(feature = "webgpu")]
thread_local! {
    /// The worker's WebGPU device, made once: burn's runtime cannot be initialised twice.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The WebGPU device, initialised on first use. The worker loads one model at a time, so two
/// initialisations never race.
#[cfg(feature = "webgpu")]
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

/// `{assessment, heat_map: {width, height, rgba}, outline: {width, height, rgba}}`, the pixels as
/// `Uint8Array`s (the worker transfers their buffers to the page).
fn to_object(
    assessment: &bedside_diagnosis::Assessment,
    width: u32,
    height: u32,
    rgba: &[u8],
    outline: Option<(u32, u32, Vec<u8>)>,
) -> Result<JsValue, JsError> {
    let out = Object::new();
    let heat_map = Object::new();
    let set = |obj: &Object, key: &str, value: JsValue| Reflect::set(obj, &key.into(), &value).map(|_| ());
    let failed = |_| JsError::new("could not build the assessment object");
    set(&heat_map, "width", width.into()).map_err(failed)?;
    set(&heat_map, "height", height.into()).map_err(failed)?;
    set(&heat_map, "rgba", Uint8Array::from(rgba).into()).map_err(failed)?;
    set(&out, "assessment", json_value(assessment)?).map_err(failed)?;
    set(&out, "heat_map", heat_map.into()).map_err(failed)?;
    let outline = match outline {
        None => JsValue::NULL,
        Some((width, height, rgba)) => {
            let layer = Object::new();
            set(&layer, "width", width.into()).map_err(failed)?;
            set(&layer, "height", height.into()).map_err(failed)?;
            set(&layer, "rgba", Uint8Array::from(rgba.as_slice()).into()).map_err(failed)?;
            layer.into()
        }
    };
    set(&out, "outline", outline).map_err(failed)?;
    Ok(out.into())
}

fn json_value<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    let json = serde_json::to_string(value)?;
    js_sys::JSON::parse(&json).map_err(|_| JsError::new("not valid JSON"))
}

fn to_js<E: Into<JsError>>(e: E) -> JsValue {
    JsValue::from(e.into())
}
