//! From an opened file to what a clinician is shown: a diagnosis with calibrated probabilities, an
//! attention heat map and, where the task has a lesion decoder, the lesion's outline and size.
//!
//! The one path every front end takes: `bedside-imaging`'s decoded [`Frame`] becomes the model's
//! input through [`model_view`] (the function training reads its images through too), runs through
//! the student once for both the logits and the class activation maps, and is interpreted by the
//! task's decision rule. The CLI (`bedside predict`) and the browser's worker call exactly this; only
//! what computes the network differs: burn on a device (flex on the CPU natively, WebGPU in the
//! browser when there is an adapter), or Bedside's own CPU engine (`bedside-infer`,
//! [`Diagnoser::on_cpu`], which reads the weights without burn: the page's CPU path and
//! `bedside predict`).
//!
//! The trust gate is loaded the same way: [`Diagnoser::route`] says which model a frame goes to, or
//! refuses it. What a front end shows — the gate's verdict, the routing and the diagnosis, or the
//! refusal — is one [`Assessment`], built in two steps ([`Routing`], then [`Routed::assess`]) and
//! serialised the same for `bedside predict` and the page. Not here: drawing the heat map on screen.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bedside_diagnosis::Diagnoser;
//! use bedside_imaging::{Limits, Study};
//! let dir = std::path::Path::new("models/chest");
//! let json = std::fs::read_to_string(dir.join("model.json"))?;
//! let weights = std::fs::read(dir.join("model.bin"))?;
//! let diagnoser = Diagnoser::on_cpu(&json, weights, bedside_diagnosis::CPU_ARITHMETIC)?;
//! let study = Study::open(&std::fs::read("film.dcm")?, &Limits::default())?;
//! let diagnosis = diagnoser.diagnose_blocking(&study, 0)?;
//! println!("{} {:?}", diagnosis.label, diagnosis.probabilities);
//! # Ok(()) }
//! ```

mod assess;
mod overlay;
mod preprocess;

pub use assess::{Assessment, GateVerdict, Routed, Routing};
pub use overlay::{lesion_mask, outline, outline_rgba, overlay};
pub use preprocess::{ModelView, first_view, model_input, model_view};

pub use bedside_infer::Precision;

use bedside_imaging::{Frame, PixelSize, Study};
use bedside_model::artifact::{ArtifactError, ModelInfo, student_from_bytes};
use bedside_model::gate::{Route, route_picture};
use bedside_model::heat_map::HeatMap;
use bedside_model::infer::forward_all;
use bedside_model::lesion::{
    LesionDecoder, LesionError, LesionInfo, Mask, Measurement, decoder_from_bytes, sha256_hex,
};
use bedside_model::review::Review;
use bedside_model::student::Student;
use bedside_model::task::Task;
use burn::prelude::*;
use serde::Serialize;

/// What the CPU engine computes in wherever Bedside diagnoses on the CPU — the page's CPU path,
/// `bedside predict` and `bedside eval`: int8 weights with 12-bit activations, which give f32's label on
/// every validation image of every shipped model (`bedside arithmetic`) and run faster in the page.
pub const CPU_ARITHMETIC: Precision = Precision::W8A12;

/// How much faster than the CPU path WebGPU must be, timed on this device, for the page's Automatic
/// backend to use it: a tenth. The CPU path is the reference arithmetic and is ready at once; a
/// near tie is not worth the GPU's memory and its shaders' compilation on every visit.
pub const WEBGPU_MARGIN: f64 = 0.9;

/// The backend the page's Automatic setting uses for a model on this device, from the median time of
/// a diagnosis pass on each (`web/worker.js` times them after the first diagnosis): `"webgpu"` where
/// it takes less than [`WEBGPU_MARGIN`] of the CPU path's time, else `"cpu"` (also where a time is
/// missing or not a number).
pub fn faster_backend(cpu_ms: f64, webgpu_ms: f64) -> &'static str {
    if cpu_ms.is_finite() && webgpu_ms.is_finite() && webgpu_ms < WEBGPU_MARGIN * cpu_ms {
        "webgpu"
    } else {
        "cpu"
    }
}

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
    #[error(transparent)]
    Lesion(#[from] LesionError),
    #[error(transparent)]
    Engine(#[from] bedside_infer::Error),
}

/// Runs a future to completion on this thread: how native callers wait for the device.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_lite::future::block_on(future)
}

/// A loaded model on one device, ready to diagnose frames.
#[derive(Debug, Clone)]
pub struct Diagnoser {
    info: ModelInfo,
    network: Network,
    /// SHA-256 of the weights file, which a lesion decoder must have been trained on.
    weights_sha256: String,
    /// The lesion decoder's `lesion.json`, where one is loaded.
    lesion: Option<LesionInfo>,
}

/// What computes the network.
#[derive(Debug, Clone)]
enum Network {
    /// burn, on a device.
    Burn { model: Student, decoder: Option<LesionDecoder>, device: Device },
    /// Bedside's own CPU engine (the lesion decoder inside it).
    Engine(bedside_infer::Engine),
}

/// The lesion outline of a frame, where the task has a lesion decoder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lesion {
    /// Whether any pixel was marked (an empty mask has area 0).
    pub found: bool,
    #[serde(flatten)]
    pub measurement: Measurement,
    /// The lesion over [`Diagnosis::region`] as drawn ([`Mask::drawn`]): at the region's size in
    /// frame pixels, or on a grid scaled down to [`OUTLINE_SIDE`] for a larger region (the mask's
    /// own width and height say which).
    #[serde(skip)]
    pub mask: Mask,
}

/// The longest side of the grid a lesion's outline is found on: a region up to this size gets it at
/// its own pixels; a larger one on a grid scaled down to this, so that a 12-megapixel photo costs
/// what a 640-pixel picture does in time and memory (the model sees 128 or so pixels a side: a finer
/// grid only interpolates its logits further).
pub const OUTLINE_SIDE: u32 = 640;

/// Lesion logits at the model's `input` size → the mask over the frame's `region` (resampled
/// bilinearly, then thresholded: the outline follows the picture's pixels, not the model's) on a
/// grid at most `side` pixels long, largest region kept, holes filled, and its measurements in the
/// file's pixels or millimetres, as `size` says a frame pixel measures.
fn lesion_at(
    logits: &[f32],
    input: (u32, u32),
    threshold: f32,
    region: [u32; 4],
    size: PixelSize,
    side: u32,
) -> Lesion {
    let (w, h) = (region[2].max(1), region[3].max(1));
    let shrink = f64::from(side) / f64::from(w.max(h));
    let (mw, mh) = if shrink < 1.0 {
        (((f64::from(w) * shrink).round() as u32).max(1), ((f64::from(h) * shrink).round() as u32).max(1))
    } else {
        (w, h)
    };
    let at_grid = HeatMap { width: input.0, height: input.1, values: logits.to_vec() }.resized(mw, mh);
    let mask = Mask::drawn(&at_grid.values, mw, mh, threshold);
    let scale = [f64::from(h) / f64::from(mh), f64::from(w) / f64::from(mw)];
    let measurement = match size {
        PixelSize::Millimetres(spacing) => mask.measure_scaled(scale, Some(spacing)),
        PixelSize::Pixels(file) => mask.measure_scaled([scale[0] * file, scale[1] * file], None),
    };
    Lesion { found: mask.area() > 0, measurement, mask }
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
    /// Calibrated probability of every class, in the model's class order (serialised as an object of
    /// class → probability, in that order).
    #[serde(serialize_with = "assess::by_class")]
    pub probabilities: Vec<(String, f32)>,
    /// The operating threshold on the positive class (`None` where the label is the argmax).
    pub threshold: Option<f32>,
    /// When the answer is "uncertain" (`None`: never; see [`bedside_model::review`]).
    pub review: Option<Review>,
    /// Where the model looked for `label`, 0–1, at the model's input size; it covers `region`.
    #[serde(skip)]
    pub heat_map: HeatMap,
    /// The part of the frame the model saw, `[x, y, width, height]` in frame pixels.
    pub region: [u32; 4],
    /// The lesion outline (`None` where the model has no lesion decoder, or for the gate).
    pub lesion: Option<Lesion>,
}

impl Diagnosis {
    /// The hottest point of the heat map, in frame pixels (x to the right, y down): the centre of
    /// the input pixel where the map peaks, mapped through the region the model saw.
    pub fn heat_map_peak(&self) -> [u32; 2] {
        let map = &self.heat_map;
        let peak =
            (0..map.values.len()).max_by(|&a, &b| map.values[a].total_cmp(&map.values[b]).then(b.cmp(&a)));
        let peak = peak.unwrap_or(0) as u32;
        let (px, py) = (peak % map.width.max(1), peak / map.width.max(1));
        let [x0, y0, rw, rh] = self.region;
        let scale = |p: u32, region: u32, side: u32| {
            ((f64::from(p) + 0.5) * f64::from(region) / f64::from(side.max(1))) as u32
        };
        [x0 + scale(px, rw, map.width), y0 + scale(py, rh, map.height)]
    }
}

impl Diagnoser {
    /// Loads `model.json` text and weights (`model.bin` or `model-fp32.bin`) onto `device`.
    pub fn new(model_json: &str, weights: Vec<u8>, device: Device) -> Result<Diagnoser, Error> {
        let info = ModelInfo::from_json(model_json)?;
        let weights_sha256 = sha256_hex(&weights);
        let model = student_from_bytes(&info.network, weights, &device)?;
        let network = Network::Burn { model, decoder: None, device };
        Ok(Diagnoser { info, network, weights_sha256, lesion: None })
    }

    /// Loads `model.json` text and weights (`model.bin` or `model-fp32.bin`) straight into Bedside's
    /// own CPU engine in `precision` — no burn device involved (the page's CPU module has none):
    /// the same engine, weights and outputs as [`Diagnoser::new`] followed by
    /// [`Diagnoser::on_engine_in`].
    pub fn on_cpu(model_json: &str, weights: Vec<u8>, precision: Precision) -> Result<Diagnoser, Error> {
        let info = ModelInfo::from_json(model_json)?;
        let weights_sha256 = sha256_hex(&weights);
        let options = bedside_infer::Options { precision, portable: false };
        let engine = bedside_infer::Engine::from_bytes(&info.network, weights, options)?;
        Ok(Diagnoser { info, network: Network::Engine(engine), weights_sha256, lesion: None })
    }

    /// The same model computed by Bedside's own CPU engine instead of burn, in `precision` (what the
    /// page's CPU path and `bedside predict` run is [`CPU_ARITHMETIC`], loaded by
    /// [`Diagnoser::on_cpu`]): in f32 its outputs are within 1e-4 of burn's (`bedside-infer`'s parity
    /// test); `bedside arithmetic` measures the integer ones.
    pub fn on_engine_in(mut self, precision: bedside_infer::Precision) -> Result<Diagnoser, Error> {
        if let Network::Burn { model, decoder, .. } = &self.network {
            let options = bedside_infer::Options { precision, portable: false };
            self.network =
                Network::Engine(bedside_infer::Engine::with_options(model, decoder.as_ref(), options)?);
        }
        Ok(self)
    }

    /// Adds the task's lesion decoder (`lesion.json` text and `lesion.bin`), which must have been
    /// trained on this model's weights: every diagnosis then carries a [`Lesion`].
    pub fn with_lesion(mut self, lesion_json: &str, weights: Vec<u8>) -> Result<Diagnoser, Error> {
        let info = LesionInfo::from_json(lesion_json, &self.info.network, &self.weights_sha256)?;
        self.network = match self.network {
            Network::Burn { model, device, .. } => {
                let decoder = decoder_from_bytes(&info.decoder, weights, &device)?;
                Network::Burn { model, decoder: Some(decoder), device }
            }
            Network::Engine(engine) => Network::Engine(engine.with_lesion_bytes(&info.decoder, weights)?),
        };
        self.lesion = Some(info);
        Ok(self)
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Whether diagnoses carry a lesion outline ([`Diagnoser::with_lesion`]).
    pub fn has_lesion(&self) -> bool {
        self.lesion.is_some()
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
        self.run(input, region, study.info().pixel_size()).await
    }

    /// [`Diagnoser::diagnose`], blocking until the result is read back.
    pub fn diagnose_blocking(&self, study: &Study, index: u32) -> Result<Diagnosis, Error> {
        block_on(self.diagnose(study, index))
    }

    /// Runs one prepared input (see [`Diagnoser::prepare`]); `size` ([`bedside_imaging::Info::pixel_size`])
    /// is what a frame pixel measures: lesion measurements come in millimetres where the file gives
    /// a pixel spacing, else in the file's own pixels.
    pub async fn run(&self, input: Vec<f32>, region: [u32; 4], size: PixelSize) -> Result<Diagnosis, Error> {
        let (logits, maps, map_height, map_width, outline) = match &self.network {
            Network::Burn { model, decoder, device } => {
                let (logits, maps, outline) =
                    forward_all(model, decoder.as_ref(), &self.info.input, input, device);
                let [_, _, map_height, map_width] = maps.dims();
                let logits = read(device, logits.into_data_async().await)?;
                let maps = read(device, maps.into_data_async().await)?;
                let outline = match outline {
                    Some(outline) => Some(read(device, outline.into_data_async().await)?),
                    None => None,
                };
                (logits, maps, map_height, map_width, outline)
            }
            Network::Engine(engine) => {
                let out = engine.run_input(&self.info.input, &input)?;
                (out.logits, out.class_maps, out.map_height, out.map_width, out.lesion_logits)
            }
        };
        let lesion = match (outline, &self.lesion) {
            (Some(outline), Some(info)) => {
                Some(self.lesion_in_region(&outline, info.threshold, region, size))
            }
            _ => None,
        };
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
            lesion,
        })
    }

    fn lesion_in_region(&self, logits: &[f32], threshold: f32, region: [u32; 4], size: PixelSize) -> Lesion {
        let input = (self.info.input.width, self.info.input.height);
        lesion_at(logits, input, threshold, region, size, OUTLINE_SIDE)
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
        let diagnosis = self.run(input, region, PixelSize::Pixels(1.0)).await?;
        let probabilities: Vec<f32> = diagnosis.probabilities.iter().map(|(_, p)| *p).collect();
        // The gate sees the whole frame (squashed), so the region is the frame's size.
        Ok(route_picture(&self.info, &probabilities, region[2], region[3]))
    }

    /// One pass on a blank input, so a device's one-off costs (shader compilation, buffer pools)
    /// are paid at load time rather than on the first real image.
    pub async fn warm_up(&self) -> Result<(), Error> {
        let spec = &self.info.input;
        let blank = vec![0.0; (spec.channels * spec.width * spec.height) as usize];
        self.run(blank, [0, 0, spec.width, spec.height], PixelSize::Pixels(1.0)).await.map(|_| ())
    }
}

/// A tensor read back from `device` as f32 values.
fn read<E: std::fmt::Debug>(device: &Device, data: Result<TensorData, E>) -> Result<Vec<f32>, Error> {
    let failed = |message: String| Error::ReadBack { device: format!("{device:?}"), message };
    let data = data.map_err(|e| failed(format!("{e:?}")))?;
    data.try_into_vec::<f32>().map_err(|e| failed(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_takes_webgpu_only_where_it_is_clearly_faster() {
        assert_eq!(faster_backend(40.0, 10.0), "webgpu");
        assert_eq!(faster_backend(40.0, 35.9), "webgpu");
        assert_eq!(faster_backend(40.0, 36.0), "cpu", "within a tenth: the CPU path stays");
        assert_eq!(faster_backend(3.0, 1800.0), "cpu");
        assert_eq!(faster_backend(40.0, f64::NAN), "cpu");
        assert_eq!(faster_backend(f64::INFINITY, 5.0), "cpu");
    }

    const ONE: PixelSize = PixelSize::Pixels(1.0);

    /// Lesion logits at a 128-pixel input: a disc, positive inside.
    fn disc() -> Vec<f32> {
        (0..128 * 128)
            .map(|i| {
                let (x, y) = ((i % 128) as f32, (i / 128) as f32);
                6.0 - 0.3 * (x - 60.0).hypot((y - 70.0) * 1.2)
            })
            .collect()
    }

    #[test]
    fn a_large_picture_gets_its_outline_on_a_smaller_grid_measured_in_its_own_pixels() {
        let region = [100, 0, 3000, 2250];
        let coarse = lesion_at(&disc(), (128, 128), 0.5, region, ONE, OUTLINE_SIDE);
        let full = lesion_at(&disc(), (128, 128), 0.5, region, ONE, u32::MAX);
        assert_eq!((coarse.mask.width, coarse.mask.height), (640, 480));
        assert_eq!((full.mask.width, full.mask.height), (3000, 2250));
        let (a, b) = (coarse.measurement.clone(), full.measurement.clone());
        assert_eq!((a.units, b.units), ("px", "px"));
        assert!((a.area / b.area - 1.0).abs() < 0.01, "area {} on the grid, {} at full size", a.area, b.area);
        let diameter = a.longest_diameter / b.longest_diameter - 1.0;
        assert!(diameter.abs() < 0.01, "diameter {} vs {}", a.longest_diameter, b.longest_diameter);
        // Millimetres scale the same way.
        let mm = PixelSize::Millimetres([0.1, 0.1]);
        let mm = lesion_at(&disc(), (128, 128), 0.5, region, mm, OUTLINE_SIDE).measurement;
        assert!((mm.area - 0.01 * a.area).abs() < 1e-6 && mm.units == "mm");
        // A photo decoded at 1/4 of its size measures in the file's pixels: 16 × the area, 4 × the length.
        let file =
            lesion_at(&disc(), (128, 128), 0.5, region, PixelSize::Pixels(4.0), OUTLINE_SIDE).measurement;
        assert_eq!(file.units, "px");
        assert!(
            (file.area / a.area - 16.0).abs() < 1e-9
                && (file.longest_diameter / a.longest_diameter - 4.0).abs() < 1e-9
        );
        // At the frame's own size (`predict --mask`) the grid's mask covers the region, scaled up.
        let frame = Frame {
            columns: 3200,
            rows: 2250,
            samples: 1,
            bits_stored: 8,
            invert: false,
            rescale: bedside_imaging::Rescale::IDENTITY,
            stored: Vec::<u8>::new().into(),
        };
        let heat_map = HeatMap { width: 1, height: 1, values: vec![0.0] };
        let diagnosis = Diagnosis {
            label: String::new(),
            most_likely: String::new(),
            review: None,
            probabilities: Vec::new(),
            threshold: None,
            heat_map,
            region,
            lesion: Some(coarse.clone()),
        };
        let full_size = crate::lesion_mask(&frame, &diagnosis);
        let inside = full_size.iter().filter(|&&v| v > 0).count() as f64;
        assert!((inside / b.area - 1.0).abs() < 0.01, "{inside} pixels set, {} measured", b.area);
        assert!(full_size[..3200 * 2250].chunks(3200).all(|row| row[..100].iter().all(|&v| v == 0)));
        // A region within the grid's size keeps its own pixels.
        let small = lesion_at(&disc(), (128, 128), 0.5, [0, 0, 600, 450], ONE, OUTLINE_SIDE);
        assert_eq!((small.mask.width, small.mask.height), (600, 450));
        assert_eq!(small.measurement.area, small.mask.area() as f64);
    }
}
