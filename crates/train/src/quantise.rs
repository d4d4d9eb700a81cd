//! int8 quantisation of a trained student (`model-fp32.bin` → `model.bin`), calibrated on training
//! images, and the fp32-vs-int8 comparison on validation that goes into the model card.
//!
//! Calibration chooses, tensor by tensor in network order, how far to clip each weight's per-channel
//! range (1.0 = the channel's largest weight; smaller saturates outliers to resolve the rest finely).
//! The choice minimises the mean squared difference of the logits from fp32 on calibration images,
//! with every other tensor quantised too (those already visited as chosen, the rest unclipped).

use crate::data::Dataset;
use crate::metrics::Report;
use crate::trainer::predict_logits;
use crate::{Error, Progress};
use bedside_model::artifact::{ModelInfo, student_from_bytes};
use bedside_model::quant::{self, Weight};
use bedside_model::student::Student;
use burn::prelude::Device;
use serde::Serialize;
use std::collections::BTreeMap;

/// The clip fractions tried per tensor.
const CLIPS: [f32; 3] = [1.0, 0.9, 0.8];

fn load(info: &ModelInfo, weights: &[Weight]) -> Result<Student, Error> {
    let bytes = quant::write_fp32(weights).map_err(|e| Error::Model(e.to_string()))?;
    student_from_bytes(&info.network, bytes, &Device::flex()).map_err(|e| Error::Model(e.to_string()))
}

fn mse(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            sum += ((p - q) as f64).powi(2);
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// What calibration chose and how close it came.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Clip fraction per quantised tensor.
    pub clips: BTreeMap<String, f32>,
    pub images: usize,
    /// Logit MSE from fp32 on the calibration images with every clip at 1.0, and as chosen.
    pub logit_mse_unclipped: f64,
    pub logit_mse_calibrated: f64,
}

/// Chooses per-tensor clip fractions on `images`.
pub fn calibrate(
    info: &ModelInfo,
    weights: &[Weight],
    images: &Dataset,
    progress: &Progress,
) -> Result<Calibration, Error> {
    let logits = |w: &[Weight]| -> Result<Vec<Vec<f32>>, Error> {
        Ok(predict_logits(&load(info, w)?, &info.input, images, 64))
    };
    let reference = logits(weights)?;
    let quantised: Vec<usize> = (0..weights.len()).filter(|&i| weights[i].channel_axis().is_some()).collect();
    let unclipped: Vec<Weight> = weights.iter().map(|w| quant::round_trip(w, 1.0)).collect();
    let logit_mse_unclipped = mse(&logits(&unclipped)?, &reference);

    // Start from every tensor quantised unclipped, so each choice is measured on the whole int8
    // network and the error can only go down from the unclipped one.
    let bar = progress.bar(quantised.len() as u64, "calibrating int8");
    let mut current = unclipped;
    let mut clips = BTreeMap::new();
    let mut best_error = logit_mse_unclipped;
    for &i in &quantised {
        let mut best = (best_error, 1.0);
        for clip in CLIPS.into_iter().filter(|&c| c != 1.0) {
            current[i] = quant::round_trip(&weights[i], clip);
            let error = mse(&logits(&current)?, &reference);
            if error < best.0 {
                best = (error, clip);
            }
        }
        current[i] = quant::round_trip(&weights[i], best.1);
        clips.insert(weights[i].name.clone(), best.1);
        best_error = best.0;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Calibration { clips, images: images.len(), logit_mse_unclipped, logit_mse_calibrated: best_error })
}

/// fp32 against int8 on one labelled set.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Comparison {
    pub n: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub fp32_auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub int8_auc: f64,
    /// AUC of the positive class against the rest (pneumonia, mel, malignant); the same as the AUC
    /// for two classes.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub fp32_positive_auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub int8_positive_auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub fp32_accuracy: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub int8_accuracy: f64,
    /// Largest |p_int8 − p_fp32| over every image and class (calibrated probabilities).
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub max_probability_difference: f64,
    /// Share of images given the same label by both.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub label_agreement: f64,
    pub fp32_bytes: usize,
    pub int8_bytes: usize,
}

/// What `bedside quantize` recorded in `model.json` ("int8"): the card's int8 section is drawn
/// from it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Int8Summary {
    /// The weights file format and its version.
    pub format: String,
    /// Training images the clipping was calibrated on, and the logit MSE from fp32 with every clip
    /// at 1.0 and as chosen.
    pub calibration_images: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub logit_mse_unclipped: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub logit_mse_calibrated: f64,
    pub validation: Comparison,
    /// The network's parameters and multiply–accumulates per image at the input size.
    pub params: usize,
    pub macs: u64,
    pub command: String,
}

impl Int8Summary {
    /// The model card's int8 section.
    pub fn card_section(&self) -> String {
        let c = &self.validation;
        let kb = |b: usize| format!("{:.0} KB", b as f64 / 1000.0);
        format!(
            "## int8 weights (`model.bin`, shipped)\n\n\
             Weights are stored as symmetric int8 with one scale per output channel; biases stay fp32. On \
             the CPU (the page's CPU path, `bedside predict` and `bedside eval`) the convolutions multiply \
             these integers with activations quantised to 12 bits per pixel and sum in 32-bit integers; \
             WebGPU restores fp32 weights. The int8 column below is measured that way on the CPU, the fp32 \
             column in f32 on the full-precision weights. Each tensor's clipping was calibrated on {images} training images (logit MSE from \
             fp32 {before:.2e} unclipped → {after:.2e} calibrated).\n\n\
             {params} parameters; {macs:.1} M multiply–accumulates per image at the input size (BatchNorm \
             folded).\n\n\
             | on validation ({n} images) | fp32 (`model-fp32.bin`) | int8 (`model.bin`) |\n\
             |---|---|---|\n\
             | file size | {s32} | {s8} |\n\
             | AUC | {a32:.4} | {a8:.4} |\n\
             | accuracy | {c32:.4} | {c8:.4} |\n\n\
             Largest difference in any calibrated probability: {diff:.4}; the same label for {agree:.1} % of \
             images. Measured with `{command}`.\n",
            params = self.params,
            macs = self.macs as f64 / 1e6,
            images = self.calibration_images,
            before = self.logit_mse_unclipped,
            after = self.logit_mse_calibrated,
            n = c.n,
            s32 = kb(c.fp32_bytes),
            s8 = kb(c.int8_bytes),
            a32 = c.fp32_auc,
            a8 = c.int8_auc,
            c32 = c.fp32_accuracy,
            c8 = c.int8_accuracy,
            diff = c.max_probability_difference,
            agree = 100.0 * c.label_agreement,
            command = self.command,
        )
    }
}

/// Calibrated probabilities and the report on `data`, as the product computes them: on the CPU engine
/// in `precision` (the page's, for the shipped int8 weights, is `bedside_diagnosis::CPU_ARITHMETIC`;
/// f32 for full-precision weights), mirror averaged where the model is, one image at a time.
pub fn probabilities(
    info: &ModelInfo,
    model: &Student,
    data: &Dataset,
    precision: bedside_infer::Precision,
) -> Result<(Vec<Vec<f32>>, Report), Error> {
    use bedside_infer::{Engine, Options};
    let options = Options { precision, portable: false };
    let engine = Engine::with_options(model, None, options).map_err(|e| Error::Model(e.to_string()))?;
    // One image at a time per core (the engine runs one thread per pass), in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = data.examples.len().div_ceil(threads).max(1);
    let logits = std::thread::scope(|scope| {
        let workers: Vec<_> = data
            .examples
            .chunks(chunk)
            .map(|examples| {
                let engine = &engine;
                scope.spawn(move || {
                    examples
                        .iter()
                        .map(|e| {
                            engine.run_input(&info.input, &info.input.normalise(&e.pixels)).map(|o| o.logits)
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("an engine pass panicked")).collect::<Result<Vec<_>, _>>()
    })
    .map_err(|e| Error::Model(e.to_string()))?
    .concat();
    let probabilities = crate::metrics::softmax(&logits, info.temperature);
    let labels: Vec<usize> = data.examples.iter().map(|e| e.label).collect();
    let report = crate::pipeline::evaluate_probabilities(info, &probabilities, &labels, &data.groups());
    Ok((probabilities, report))
}

/// Compares the fp32 and int8 weight files on `data`, each computed as the product computes it.
pub fn compare(info: &ModelInfo, fp32: &[u8], int8: &[u8], data: &Dataset) -> Result<Comparison, Error> {
    let model = |bytes: &[u8]| {
        student_from_bytes(&info.network, bytes.to_vec(), &Device::flex())
            .map_err(|e| Error::Model(e.to_string()))
    };
    // Each as the product computes it (`bedside eval` and `bedside predict` too): the CPU engine, in
    // f32 for the full-precision weights and in the page's arithmetic for the int8 ones.
    let (p32, r32) = probabilities(info, &model(fp32)?, data, bedside_infer::Precision::Fp32)?;
    let (p8, r8) = probabilities(info, &model(int8)?, data, bedside_diagnosis::CPU_ARITHMETIC)?;
    let (max_diff, _, same) = agreement(info, &p32, &p8, data);
    Ok(Comparison {
        n: data.len(),
        fp32_auc: r32.auc.value,
        int8_auc: r8.auc.value,
        fp32_positive_auc: r32.positive_auc.value,
        int8_positive_auc: r8.positive_auc.value,
        fp32_accuracy: r32.accuracy.value,
        int8_accuracy: r8.accuracy.value,
        max_probability_difference: max_diff,
        label_agreement: same as f64 / data.len().max(1) as f64,
        fp32_bytes: fp32.len(),
        int8_bytes: int8.len(),
    })
}

/// Bedside's engine in an integer arithmetic against its f32 arithmetic, on the same weights and
/// images.
#[derive(Debug, Clone, Serialize)]
pub struct ArithmeticComparison {
    /// `int8` or `w8a12` ([`bedside_infer::Precision`]).
    pub precision: &'static str,
    pub n: usize,
    /// The kernels both ran with (`avx2+fma` or `portable`).
    pub kernels: &'static str,
    /// Share of images given the same label (each class by the model's decision rule).
    pub label_agreement: f64,
    /// Largest |p_integer − p_fp32| over every image and class (calibrated probabilities), and the
    /// image it was seen on.
    pub max_probability_difference: f64,
    pub worst_file: String,
    pub fp32_auc: f64,
    pub auc: f64,
    pub fp32_accuracy: f64,
    pub accuracy: f64,
}

/// Runs every image of `data` through the engine in f32 and in each of `precisions` (`model`'s
/// weights, mirror averaged where the model is; [`probabilities`]) and compares the answers.
pub fn compare_arithmetic(
    info: &ModelInfo,
    model: &Student,
    data: &Dataset,
    precisions: &[bedside_infer::Precision],
    progress: &Progress,
) -> Result<Vec<ArithmeticComparison>, Error> {
    use bedside_infer::{Engine, Options, Precision};
    let arithmetics: Vec<Precision> =
        std::iter::once(Precision::Fp32).chain(precisions.iter().copied()).collect();
    let bar = progress.bar(arithmetics.len() as u64, "arithmetics measured");
    let mut measured = Vec::new();
    for &precision in &arithmetics {
        measured.push(probabilities(info, model, data, precision)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let kernels = Engine::with_options(model, None, Options::default())
        .map_err(|e| Error::Model(e.to_string()))?
        .kernels();
    let (p32, r32) = &measured[0];
    let compared = arithmetics[1..].iter().zip(&measured[1..]).map(|(precision, (p, report))| {
        let (worst, worst_file, same) = agreement(info, p32, p, data);
        ArithmeticComparison {
            precision: precision.name(),
            n: data.len(),
            kernels,
            label_agreement: same as f64 / data.len().max(1) as f64,
            max_probability_difference: worst,
            worst_file,
            fp32_auc: r32.auc.value,
            auc: report.auc.value,
            fp32_accuracy: r32.accuracy.value,
            accuracy: report.accuracy.value,
        }
    });
    Ok(compared.collect())
}

/// How far two sets of probabilities for `data` lie apart: the largest difference of any class's
/// probability, the file it was seen on, and how many images get the same label by the model's rule.
fn agreement(info: &ModelInfo, a: &[Vec<f32>], b: &[Vec<f32>], data: &Dataset) -> (f64, String, usize) {
    let threshold = info.threshold.unwrap_or(0.5);
    let (mut worst, mut worst_file, mut same) = (0f64, String::new(), 0usize);
    for ((a, b), example) in a.iter().zip(b).zip(&data.examples) {
        let d = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
        if d > worst {
            (worst, worst_file) = (d, example.file.clone());
        }
        same += (info.task.decide(a, threshold) == info.task.decide(b, threshold)) as usize;
    }
    (worst, worst_file, same)
}
