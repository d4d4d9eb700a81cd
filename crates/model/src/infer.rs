//! From a model's logits to what a clinician is shown: calibrated probabilities and the label the
//! task's decision rule picks. The same code for the CLI, the evaluation and the browser.

use crate::artifact::ModelInfo;
use crate::heat_map::HeatMap;
use crate::input::InputSpec;
use crate::lesion::LesionDecoder;
use crate::review::UNCERTAIN;
use crate::student::Student;
use burn::prelude::*;
use serde::Serialize;

/// One image's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Index into `ModelInfo::classes`.
    pub label: usize,
    /// Calibrated probabilities, in class order.
    pub probabilities: Vec<f32>,
    /// The probabilities lie within the model's review margin of another answer: the answer is
    /// "uncertain: needs review", with `label` the most likely class beside it.
    pub uncertain: bool,
}

/// Softmax of `logits / temperature`.
pub fn calibrated(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&z| ((z - max) / temperature).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

impl ModelInfo {
    /// Probabilities and label for one row of logits.
    pub fn interpret(&self, logits: &[f32]) -> Prediction {
        self.decide(calibrated(logits, self.temperature))
    }

    /// The decision on calibrated probabilities: the task's rule at the stored threshold, and
    /// whether the review margin makes the answer "uncertain".
    pub fn decide(&self, probabilities: Vec<f32>) -> Prediction {
        let threshold = self.threshold.unwrap_or(0.5);
        let label = self.task.decide(&probabilities, threshold);
        let uncertain =
            self.review.is_some_and(|review| review.uncertain(self.task, &probabilities, threshold));
        Prediction { label, probabilities, uncertain }
    }

    /// What a clinician is told: the class's name, or "uncertain".
    pub fn answer(&self, prediction: &Prediction) -> &str {
        if prediction.uncertain { UNCERTAIN } else { &self.classes[prediction.label] }
    }
}

/// Runs the model on normalised planar inputs (`[n, channels, height, width]` flattened) and reads
/// the logits back synchronously (native use; the browser reads asynchronously).
pub fn logits(model: &Student, input: &InputSpec, inputs: Vec<f32>, device: &Device) -> Vec<Vec<f32>> {
    let x = batch(input, inputs, device);
    let output = if input.mirror_average {
        (model.forward(x.clone()) + model.forward(x.flip([3]))).div_scalar(2.0)
    } else {
        model.forward(x)
    };
    let [_, classes] = output.dims();
    let data = output.into_data();
    let values = data.as_slice::<f32>().expect("f32 logits");
    values.chunks(classes).map(<[f32]>::to_vec).collect()
}

/// Runs the model on normalised planar inputs and returns, still on the device, the logits
/// `[n, classes]` and the class activation maps `[n, classes, h, w]`; the caller reads them back
/// (synchronously natively, asynchronously in the browser). With [`InputSpec::mirror_average`] both
/// are averaged with the mirror image's (its maps mirrored back), as [`logits`] does.
pub fn forward_with_maps(
    model: &Student,
    input: &InputSpec,
    inputs: Vec<f32>,
    device: &Device,
) -> (Tensor<2>, Tensor<4>) {
    let (logits, maps, _) = forward_all(model, None, input, inputs, device);
    (logits, maps)
}

/// [`forward_with_maps`], and with a lesion decoder its logits `[n, height, width]` at the input
/// size from the same pass (mirror-averaged alike).
pub fn forward_all(
    model: &Student,
    lesion: Option<&LesionDecoder>,
    input: &InputSpec,
    inputs: Vec<f32>,
    device: &Device,
) -> (Tensor<2>, Tensor<4>, Option<Tensor<3>>) {
    let x = batch(input, inputs, device);
    let size = [input.height as usize, input.width as usize];
    let pass = |x: Tensor<4>| {
        let (logits, features, taps) = model.forward_with_taps(x);
        let outline = lesion.map(|decoder| decoder.forward(features.clone(), &taps, size));
        (logits, model.class_activation_maps(features), outline)
    };
    if !input.mirror_average {
        return pass(x);
    }
    let (logits, maps, outline) = pass(x.clone());
    let (mirrored_logits, mirrored_maps, mirrored_outline) = pass(x.flip([3]));
    let outline = outline.zip(mirrored_outline).map(|(a, b)| (a + b.flip([2])).div_scalar(2.0));
    ((logits + mirrored_logits).div_scalar(2.0), (maps + mirrored_maps.flip([3])).div_scalar(2.0), outline)
}

/// Flattened normalised inputs → the `[n, channels, height, width]` tensor the model takes.
fn batch(input: &InputSpec, inputs: Vec<f32>, device: &Device) -> Tensor<4> {
    let (c, h, w) = (input.channels as usize, input.height as usize, input.width as usize);
    let n = inputs.len() / (c * h * w).max(1);
    Tensor::from_data(TensorData::new(inputs, [n, c, h, w]), device)
}

impl ModelInfo {
    /// One image's prediction plus the heat map of the class it was given, at the model's input
    /// size. `maps` holds every class's activation map (`classes × map_height × map_width`).
    pub fn interpret_with_map(
        &self,
        logits: &[f32],
        maps: &[f32],
        map_width: u32,
        map_height: u32,
    ) -> (Prediction, HeatMap) {
        let prediction = self.interpret(logits);
        let own = self.heat_map.evidence(maps, &prediction.probabilities, prediction.label);
        let heat_map = HeatMap::from_activation(&own, map_width, map_height)
            .resized(self.input.width, self.input.height);
        (prediction, heat_map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_softens() {
        let sharp = calibrated(&[2.0, 0.0], 1.0);
        let soft = calibrated(&[2.0, 0.0], 4.0);
        assert!((sharp.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(sharp[0] > soft[0] && soft[0] > 0.5);
        assert!((sharp[0] - 1.0 / (1.0 + (-2f32).exp())).abs() < 1e-6);
    }
}
