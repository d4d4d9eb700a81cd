//! How a model holds up when pictures are worse than in training, or attacked.
//!
//! - **Common corruptions** at five severities each (after Hendrycks & Dietterich's ImageNet-C, scaled
//!   to the models' ~128-pixel inputs): Gaussian noise, Gaussian blur, lower contrast, higher
//!   brightness, a lighter gamma (exposure and processing curves differ between machines) and JPEG
//!   re-compression. Applied to the picture as the model sees it (framed to its
//!   input size), with a fixed seed.
//! - **FGSM** (Goodfellow et al., 2015): one step of size ε per pixel (ε ∈ {1, 2, 4}/255) along the
//!   sign of the loss gradient with respect to the input, the true label known to the attacker — the
//!   worst case for a single small step, computed natively with autodiff.
//!
//! Each is measured with the task's decision rule and calibration, like the validation numbers.

use crate::data::Dataset;
use crate::metrics::softmax;
use crate::rng::Rng;
use crate::{Error, Progress};
use bedside_model::artifact::ModelInfo;
use bedside_model::input::InputSpec;
use bedside_model::student::Student;
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use image::codecs::jpeg::JpegEncoder;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corruption {
    GaussianNoise,
    Blur,
    Contrast,
    Brightness,
    Gamma,
    Jpeg,
}

impl Corruption {
    pub const ALL: [Corruption; 6] = [
        Corruption::GaussianNoise,
        Corruption::Blur,
        Corruption::Contrast,
        Corruption::Brightness,
        Corruption::Gamma,
        Corruption::Jpeg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "Gaussian noise (σ)",
            Corruption::Blur => "Gaussian blur (σ, pixels)",
            Corruption::Contrast => "contrast (factor)",
            Corruption::Brightness => "brightness (+ of full scale)",
            Corruption::Gamma => "gamma (γ, lighter mid-tones)",
            Corruption::Jpeg => "JPEG (quality)",
        }
    }

    /// The parameter of severities 1–5.
    pub fn levels(self) -> [f32; 5] {
        match self {
            Corruption::GaussianNoise => [0.04, 0.06, 0.08, 0.12, 0.18],
            Corruption::Blur => [0.5, 1.0, 1.5, 2.0, 3.0],
            Corruption::Contrast => [0.75, 0.5, 0.4, 0.3, 0.2],
            Corruption::Brightness => [0.1, 0.2, 0.3, 0.4, 0.5],
            Corruption::Gamma => [0.8, 0.67, 0.5, 0.4, 0.33],
            Corruption::Jpeg => [40.0, 25.0, 15.0, 10.0, 7.0],
        }
    }
}

/// `pixels` (interleaved, at `spec`'s size) with `corruption` at `level`.
pub fn corrupt(
    pixels: &[u8],
    spec: &InputSpec,
    corruption: Corruption,
    level: f32,
    rng: &mut Rng,
) -> Vec<u8> {
    let (w, h, c) = (spec.width, spec.height, spec.channels as usize);
    let to_u8 = |v: f32| (v.round().clamp(0.0, 255.0)) as u8;
    match corruption {
        Corruption::GaussianNoise => {
            pixels.iter().map(|&p| to_u8(p as f32 + rng.normal() * level * 255.0)).collect()
        }
        Corruption::Blur => with_image(pixels, w, h, c, |img| image::imageops::blur(img, level)),
        Corruption::Contrast => {
            let mean = pixels.iter().map(|&p| p as f32).sum::<f32>() / pixels.len().max(1) as f32;
            pixels.iter().map(|&p| to_u8((p as f32 - mean) * level + mean)).collect()
        }
        Corruption::Brightness => pixels.iter().map(|&p| to_u8(p as f32 + level * 255.0)).collect(),
        Corruption::Gamma => pixels.iter().map(|&p| to_u8(255.0 * (p as f32 / 255.0).powf(level))).collect(),
        Corruption::Jpeg => {
            let colour = if c == 3 { image::ExtendedColorType::Rgb8 } else { image::ExtendedColorType::L8 };
            let mut encoded = Vec::new();
            let ok =
                JpegEncoder::new_with_quality(&mut encoded, level as u8).encode(pixels, w, h, colour).is_ok();
            let decoded = ok.then(|| image::load_from_memory(&encoded).ok()).flatten();
            match decoded {
                Some(img) if c == 3 => img.into_rgb8().into_raw(),
                Some(img) => img.into_luma8().into_raw(),
                None => pixels.to_vec(),
            }
        }
    }
}

/// Runs an `image` operation on interleaved grey or RGB bytes.
fn with_image(
    pixels: &[u8],
    w: u32,
    h: u32,
    c: usize,
    op: impl Fn(&image::DynamicImage) -> image::ImageBuffer<image::Rgba<u8>, Vec<u8>>,
) -> Vec<u8> {
    let img = if c == 3 {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels.to_vec()).expect("size"))
    } else {
        image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels.to_vec()).expect("size"))
    };
    let out = image::DynamicImage::ImageRgba8(op(&img));
    if c == 3 { out.into_rgb8().into_raw() } else { out.into_luma8().into_raw() }
}

/// One row of the robustness table.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Row {
    pub condition: String,
    pub severity: Option<usize>,
    pub level: f32,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub auc: f64,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub accuracy: f64,
    /// Expected calibration error (15 bins): does the stored temperature still hold?
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub ece: f64,
    /// Share answered "uncertain: needs review" under the model's review rule (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncertain: Option<f64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Robustness {
    pub images: usize,
    pub clean: Row,
    pub corruptions: Vec<Row>,
    /// FGSM at ε = 1, 2, 4 (/255).
    pub fgsm: Vec<Row>,
}

fn measure(
    info: &ModelInfo,
    logits: &[Vec<f32>],
    labels: &[usize],
    condition: &str,
    severity: Option<usize>,
    level: f32,
) -> Row {
    let probabilities = softmax(logits, info.temperature);
    // Only the point values are kept: every image its own group.
    let images: Vec<usize> = (0..labels.len()).collect();
    let report = crate::pipeline::evaluate_probabilities(info, &probabilities, labels, &images);
    Row {
        condition: condition.to_string(),
        severity,
        level,
        auc: report.auc.value,
        accuracy: report.accuracy.value,
        ece: report.ece,
        uncertain: info.review.map(|_| {
            let unsure = probabilities.iter().filter(|p| info.decide(p.to_vec()).uncertain).count();
            unsure as f64 / probabilities.len().max(1) as f64
        }),
    }
}

fn logits_of(model: &Student, spec: &InputSpec, pixels: &[Vec<u8>]) -> Vec<Vec<f32>> {
    let device = Device::flex();
    pixels
        .chunks(64)
        .flat_map(|batch| {
            let inputs: Vec<f32> = batch.iter().flat_map(|p| spec.normalise(p)).collect();
            bedside_model::infer::logits(model, spec, inputs, &device)
        })
        .collect()
}

/// FGSM inputs (normalised) for a batch: one signed-gradient step of `epsilon` (0–1 pixel scale),
/// kept inside the valid pixel range.
fn fgsm(
    model: &Student,
    spec: &InputSpec,
    inputs: Vec<f32>,
    labels: &[usize],
    epsilon: f32,
    device: &Device,
) -> Vec<f32> {
    let (c, h, w) = (spec.channels as usize, spec.height as usize, spec.width as usize);
    let n = labels.len();
    let x = Tensor::<4>::from_data(TensorData::new(inputs.clone(), [n, c, h, w]), device).require_grad();
    let logits = model.forward(x.clone());
    let classes = logits.dims()[1];
    let mut one_hot = vec![0f32; n * classes];
    for (i, &y) in labels.iter().enumerate() {
        one_hot[i * classes + y] = 1.0;
    }
    let y = Tensor::<2>::from_data(TensorData::new(one_hot, [n, classes]), device);
    let loss = -(log_softmax(logits, 1) * y).sum();
    let grads = loss.backward();
    let sign: Vec<f32> = x.grad(&grads).expect("input gradient").into_data().try_into_vec().expect("f32");
    let plane = h * w;
    inputs
        .iter()
        .zip(&sign)
        .enumerate()
        .map(|(i, (&v, &g))| {
            let ch = (i / plane) % c;
            let (mean, std) = (spec.mean[ch], spec.std[ch]);
            let step = epsilon / std * g.signum() * (g != 0.0) as u8 as f32;
            (v + step).clamp((0.0 - mean) / std, (1.0 - mean) / std)
        })
        .collect()
}

/// The whole table on `data` (the validation split).
pub fn evaluate(
    info: &ModelInfo,
    model: &Student,
    data: &Dataset,
    progress: &Progress,
) -> Result<Robustness, Error> {
    let spec = &info.input;
    let labels: Vec<usize> = data.examples.iter().map(|e| e.label).collect();
    let clean_pixels: Vec<Vec<u8>> = data.examples.iter().map(|e| e.pixels.clone()).collect();
    let clean = measure(info, &logits_of(model, spec, &clean_pixels), &labels, "clean", None, 0.0);

    let bar = progress.bar((Corruption::ALL.len() * 5 + 3) as u64, "robustness");
    let mut corruptions = Vec::new();
    for corruption in Corruption::ALL {
        for (s, level) in corruption.levels().into_iter().enumerate() {
            let mut rng = Rng::new(7).fork(s as u64);
            let pixels: Vec<Vec<u8>> =
                clean_pixels.iter().map(|p| corrupt(p, spec, corruption, level, &mut rng)).collect();
            let logits = logits_of(model, spec, &pixels);
            corruptions.push(measure(info, &logits, &labels, corruption.name(), Some(s + 1), level));
            bar.inc(1);
        }
    }

    // The same network on an autodiff device, still in validation mode (no dropout, no parameter
    // gradients): the graph is recorded only for the input's gradient.
    let device = Device::flex().autodiff();
    let attacked_model = model.clone().fork(&device);
    let mut fgsm_rows = Vec::new();
    for epsilon in [1.0f32, 2.0, 4.0] {
        let mut logits = Vec::new();
        for (batch, batch_labels) in clean_pixels.chunks(32).zip(labels.chunks(32)) {
            let inputs: Vec<f32> = batch.iter().flat_map(|p| spec.normalise(p)).collect();
            let adversarial = fgsm(&attacked_model, spec, inputs, batch_labels, epsilon / 255.0, &device);
            logits.extend(bedside_model::infer::logits(model, spec, adversarial, &Device::flex()));
        }
        fgsm_rows.push(measure(info, &logits, &labels, "FGSM (ε /255)", None, epsilon));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Robustness { images: data.len(), clean, corruptions, fgsm: fgsm_rows })
}

impl Robustness {
    /// The model card's section; `command` measured it.
    pub fn card_section(&self, command: &str) -> String {
        let mut out = format!(
            "## Robustness on validation ({n} images)\n\n\
             Clean: AUC {auc:.3}, accuracy {acc:.3}. Each corruption is applied to the picture at the model's \
             input size; severities 1–5 are the parameters in brackets.\n\n\
             | corruption | 1 | 2 | 3 | 4 | 5 |\n|---|---|---|---|---|---|\n",
            n = self.images,
            auc = self.clean.auc,
            acc = self.clean.accuracy,
        );
        for corruption in Corruption::ALL {
            let rows: Vec<&Row> =
                self.corruptions.iter().filter(|r| r.condition == corruption.name()).collect();
            let cells: Vec<String> =
                rows.iter().map(|r| format!("{:.3} / {:.3} ({})", r.auc, r.accuracy, r.level)).collect();
            out += &format!("| {} | {} |\n", corruption.name(), cells.join(" | "));
        }
        let review = self.clean.uncertain.is_some();
        out += &format!(
            "\nCells are AUC / accuracy (parameter).\n\n\
             Calibration under the same corruptions: ECE (clean {:.3}){}.\n\n\
             | corruption | 1 | 2 | 3 | 4 | 5 |\n|---|---|---|---|---|---|\n",
            self.clean.ece,
            match self.clean.uncertain {
                Some(u) =>
                    format!(" / share answered \"uncertain: needs review\" (clean {:.1} %)", 100.0 * u),
                None => String::new(),
            }
        );
        for corruption in Corruption::ALL {
            let cells: Vec<String> = self
                .corruptions
                .iter()
                .filter(|r| r.condition == corruption.name())
                .map(|r| match r.uncertain {
                    Some(u) if review => format!("{:.3} / {:.1} %", r.ece, 100.0 * u),
                    _ => format!("{:.3}", r.ece),
                })
                .collect();
            out += &format!("| {} | {} |\n", corruption.name(), cells.join(" | "));
        }
        out += "\n\
                Adversarial examples (FGSM, one step along the sign of the input gradient of the loss, \
                the true label known to the attacker):\n\n| ε (per pixel, of 255) | AUC | accuracy |\n|---|---|---|\n";
        for r in &self.fgsm {
            out += &format!("| {} | {:.3} | {:.3} |\n", r.level, r.auc, r.accuracy);
        }
        if let Some(first) = self.fgsm.first() {
            out += &format!(
                "\nAt ε = {} of 255, a change too small to see, AUC goes from {:.3} to {:.3}: the model has no \
                 defence against deliberately crafted pictures. ",
                first.level, self.clean.auc, first.auc
            );
        }
        out += &format!("Measured with `{command}`.\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedside_model::input::Framing;

    #[test]
    fn corruptions_change_pixels_more_at_higher_severity() {
        let spec = InputSpec {
            width: 16,
            height: 16,
            channels: 1,
            framing: Framing::Squash,
            mean: vec![0.5],
            std: vec![0.25],
            intensity: Default::default(),
            mirror_average: false,
        };
        let pixels: Vec<u8> = (0..256).map(|i| ((i * 37) % 200 + 20) as u8).collect();
        for corruption in Corruption::ALL {
            let change = |level| {
                let out = corrupt(&pixels, &spec, corruption, level, &mut Rng::new(1));
                assert_eq!(out.len(), pixels.len());
                out.iter().zip(&pixels).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
            };
            let [mild, .., severe] = corruption.levels();
            assert!(change(severe) > change(mild) && change(mild) > 0.0, "{corruption:?}");
        }
    }
}
