//! The one path from a decoded frame to a model's input, shared by training, `bedside eval`,
//! `bedside predict`, the measurement commands and the page.
//!
//! A frame is drawn through the file's own default window (a DICOM file's Window Center/Width or
//! its full range; an 8-bit photo as stored — never the user's current window, so the answer does
//! not depend on how the image is being viewed), then framed and resized to the model's input
//! shape ([`InputSpec::fit`]). Training decodes its images through [`Study::open`] and this function, so
//! the tensors the model cards were measured on are the tensors a clinician's file becomes.

use bedside_imaging::{Frame, Study};
use bedside_model::input::InputSpec;

/// One frame as a model sees it, before normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelView {
    /// `width × height × channels` bytes of the input shape, interleaved.
    pub pixels: Vec<u8>,
    /// The part of the frame the model saw, `[x, y, width, height]` in frame pixels.
    pub region: [u32; 4],
}

/// The frame as the screen first shows it (the file's own default window), full size, interleaved
/// with the frame's samples per pixel: what the model sees, whatever window the user has dragged to
/// since.
pub fn first_view(study: &Study, frame: &Frame) -> Vec<u8> {
    frame.render_display(study.default_window(frame))
}

/// `frame` of `study` framed to `spec`'s input shape (8-bit, before [`InputSpec::normalise`]).
pub fn model_view(study: &Study, frame: &Frame, spec: &InputSpec) -> ModelView {
    let pixels = spec.fit(&first_view(study, frame), frame.columns, frame.rows, u32::from(frame.samples));
    ModelView { pixels, region: spec.region(frame.columns, frame.rows) }
}

/// [`model_view`] normalised: the planar floats `[channels, height, width]` the network takes.
pub fn model_input(study: &Study, frame: &Frame, spec: &InputSpec) -> (Vec<f32>, [u32; 4]) {
    let view = model_view(study, frame, spec);
    (spec.normalise(&view.pixels), view.region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedside_imaging::Limits;
    use bedside_model::input::Framing;

    fn png(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::write_buffer_with_format(
            &mut std::io::Cursor::new(&mut out),
            pixels,
            width,
            height,
            image::ColorType::L8,
            image::ImageFormat::Png,
        )
        .unwrap();
        out
    }

    #[test]
    fn a_grey_photo_reaches_the_model_as_stored_not_stretched() {
        // Values 100..=115: a min–max stretch would spread them over 0..=255.
        let pixels: Vec<u8> = (100..116).collect();
        let study = Study::open(&png(4, 4, &pixels), &Limits::default()).unwrap();
        let frame = study.frame(0).unwrap();
        let spec = InputSpec {
            width: 4,
            height: 4,
            channels: 1,
            framing: Framing::Squash,
            mean: vec![0.0],
            std: vec![1.0],
            intensity: Default::default(),
            mirror_average: false,
        };
        let view = model_view(&study, &frame, &spec);
        assert_eq!(view.pixels, pixels);
        assert_eq!(view.region, [0, 0, 4, 4]);
        let (input, _) = model_input(&study, &frame, &spec);
        assert_eq!(input[0], 100.0 / 255.0);
    }
}
