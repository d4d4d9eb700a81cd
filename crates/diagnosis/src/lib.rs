//! From an opened file to what a clinician is shown: a diagnosis with calibrated probabilities and
//! an attention heat map.
//!
//! The one path every front end takes: `bedside-imaging`'s decoded [`Frame`] becomes the model's
//! input through [`model_view`] (the function training reads its images through too), runs through
//! the student once for both the logits and the class activation maps, and is interpreted by the
//! task's decision rule. The CLI (`bedside predict`) and the browser's worker call exactly this; only the
//! device differs (flex on the CPU, WebGPU in the browser when there is an adapter).
//!
//! The trust gate is loaded the same way: [`Diagnoser::route`] says which model a frame goes to, or
//! refuses it. Not here: drawing the heat map on screen.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bedside_diagnosis::Diagnoser;
//! use bedside_imaging::{Limits, Study};
//! let dir = std::path::Path::new("models/chest");
//! let json = std::fs::read_to_string(dir.join("model.json"))?;
//! let weights = std::fs::read(dir.join("model.bin"))?;
//! let diagnoser = Diagnoser::new(&json, weights, burn::prelude::Device::flex())?;
//! let study = Study::open(&std::fs::read("film.dcm")?, &Limits::default())?;
//! let diagnosis = diagnoser.diagnose_blocking(&study, 0)?;
//! println!("{} {:?}", diagnosis.label, diagnosis.probabilities);
//! # Ok(()) }
//! ```

mod overlay;
mod preprocess;

pub use overlay::overlay;
pub use preprocess::{ModelView, first_view, model_input, model_view};

use bedside_imaging::{Frame, Study};
use bedside_model::artifact::{ArtifactError, ModelInfo, student_from_bytes};
use bedside_model::gate::{Route, route_picture};
use bedside_model::heat_map::HeatMap;
use bedside_model::infer::forward_with_maps;
use bedside_model::review::Review;
use bedside_model::student::Student;
use bedside_model::task::Task;
use burn::prelude::*;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Decode(#[from] bedside_imaging::Error),
    #[error("could not read the model's output back from the {device} device: {message}")]
    ReadBack { device: String, message: String },
    #[error("the {0} model is not the trust gate")]
    NotAGate(&'static str),
}

/// Runs a future to completion on this thread: how native callers wait for the device.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_lite::future::block_on(future)
}

/// A loaded model on one device, ready to diagnose frames.
#[derive(Debug, Clone)]
pub struct Diagnoser {
    info: ModelInfo,
    model: Student,
    device: Device,
}

/// One frame's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// The answer: the class the task's decision rule picks, named as in the model card, or
    /// `"uncertain"` where the model's review rule says the image needs review.
    pub label: String,
    /// The class the decision rule picks, even when the answer is "uncertain" (and whose heat map
    /// is shown).
    pub most_likely: String,
    /// When the answer is "uncertain" (`None`: never; see [`bedside_model::review`]).
    pub review: Option<Review>,
    /// Calibrated probability of every class, in the model's class order.
    pub probabilities: Vec<(String, f32)>,
    /// The operating threshold on the positive class (`None` where the label is the argmax).
    pub threshold: Option<f32>,
    /// Where the model looked for `label`, 0–1, at the model's input size; it covers `region`.
    #[serde(skip)]
    pub heat_map: HeatMap,
    /// The part of the frame the model saw, `[x, y, width, height]` in frame pixels.
    pub region: [u32; 4],
}

impl Diagnoser {
    /// Loads `model.json` text and weights (`model.bin` or `model-fp32.bin`) onto `device`.
    pub fn new(model_json: &str, weights: Vec<u8>, device: Device) -> Result<Diagnoser, Error> {
        let info = ModelInfo::from_json(model_json)?;
        let model = student_from_bytes(&info.network, weights, &device)?;
        Ok(Diagnoser { info, model, device })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's normalised input for one frame and the region of the frame it covers.
    pub fn prepare(&self, study: &Study, frame: &Frame) -> (Vec<f32>, [u32; 4]) {
        model_input(study, frame, &self.info.input)
    }

    /// Diagnoses frame `index` of `study`. Awaits the device (the browser's WebGPU cannot be read
    /// synchronously); natively, [`Diagnoser::diagnose_blocking`] is the same call.
    pub async fn diagnose(&self, study: &Study, index: u32) -> Result<Diagnosis, Error> {
        self.diagnose_frame(study, &study.frame(index)?).await
    }

    /// [`Diagnoser::diagnose`] of a frame already decoded (so a caller that also draws it decodes
    /// it once).
    pub async fn diagnose_frame(&self, study: &Study, frame: &Frame) -> Result<Diagnosis, Error> {
        let (input, region) = self.prepare(study, frame);
        self.run(input, region).await
    }

    /// [`Diagnoser::diagnose`], blocking until the result is read back.
    pub fn diagnose_blocking(&self, study: &Study, index: u32) -> Result<Diagnosis, Error> {
        block_on(self.diagnose(study, index))
    }

    /// Runs one prepared input (see [`Diagnoser::prepare`]).
    pub async fn run(&self, input: Vec<f32>, region: [u32; 4]) -> Result<Diagnosis, Error> {
        let (logits, maps) = forward_with_maps(&self.model, &self.info.input, input, &self.device);
        let [_, _, map_height, map_width] = maps.dims();
        let logits = self.read(logits.into_data_async().await)?;
        let maps = self.read(maps.into_data_async().await)?;
        let (prediction, heat_map) =
            self.info.interpret_with_map(&logits, &maps, map_width as u32, map_height as u32);
        let most_likely = self.info.classes[prediction.label].clone();
        Ok(Diagnosis {
            label: self.info.answer(&prediction).to_string(),
            most_likely,
            review: self.info.review,
            probabilities: self.info.classes.iter().cloned().zip(prediction.probabilities).collect(),
            threshold: self.info.threshold,
            heat_map,
            region,
        })
    }

    /// For the trust gate: which model `frame` goes to, or a refusal (see [`bedside_model::gate`]).
    pub async fn route(&self, study: &Study, frame: &Frame) -> Result<Route, Error> {
        let (input, region) = self.prepare(study, frame);
        self.route_input(input, region).await
    }

    /// [`Diagnoser::route`] of a prepared input (see [`Diagnoser::prepare`]).
    pub async fn route_input(&self, input: Vec<f32>, region: [u32; 4]) -> Result<Route, Error> {
        if self.info.task != Task::Gate {
            return Err(Error::NotAGate(self.info.task.name()));
        }
        let diagnosis = self.run(input, region).await?;
        let probabilities: Vec<f32> = diagnosis.probabilities.iter().map(|(_, p)| *p).collect();
        // The gate sees the whole frame (squashed), so the region is the frame's size.
        Ok(route_picture(&self.info, &probabilities, region[2], region[3]))
    }

    /// One pass on a blank input, so a device's one-off costs (shader compilation, buffer pools)
    /// are paid at load time rather than on the first real image.
    pub async fn warm_up(&self) -> Result<(), Error> {
        let spec = &self.info.input;
        let blank = vec![0.0; (spec.channels * spec.width * spec.height) as usize];
        self.run(blank, [0, 0, spec.width, spec.height]).await.map(|_| ())
    }

    fn read<E: std::fmt::Debug>(&self, data: Result<TensorData, E>) -> Result<Vec<f32>, Error> {
        let failed = |message: String| Error::ReadBack { device: format!("{:?}", self.device), message };
        let data = data.map_err(|e| failed(format!("{e:?}")))?;
        data.try_into_vec::<f32>().map_err(|e| failed(format!("{e:?}")))
    }
}
