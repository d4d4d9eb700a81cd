//! The shipped models on real files from the shared data's `originals/`: probabilities, the
//! decision rule, the heat map and the overlay; int8 against fp32.

use bedside_diagnosis::{Diagnoser, overlay};
use bedside_imaging::{Limits, PixelSize, Study};
use bedside_model::task::Task;
use burn::prelude::Device;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    bedside_corpus::workspace_root()
}

/// The shipped model of `task`: int8 `model.bin`, or with `fp32` the weights it was quantised from.
fn load(task: &str, weights: &str) -> Diagnoser {
    let dir = workspace().join("models").join(task);
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let weights = std::fs::read(dir.join(weights)).unwrap();
    Diagnoser::new(&json, weights, Device::flex()).unwrap()
}

fn diagnoser(task: &str) -> Diagnoser {
    load(task, "model.bin")
}

fn open(data: &Path, name: &str) -> Study {
    let bytes = std::fs::read(data.join("originals").join(name)).unwrap();
    Study::open(&bytes, &Limits::default()).unwrap()
}

#[test]
fn a_chest_film_gets_a_calibrated_diagnosis_and_a_heat_map_over_the_whole_film() {
    let Some(data) = bedside_corpus::shared_data("chest diagnosis") else { return };
    let diagnoser = diagnoser("chest");
    let study = open(&data, "chest_person321_virus_648.jpeg");
    let d = diagnoser.diagnose_blocking(&study, 0).unwrap();
    let info = study.info();

    let total: f32 = d.probabilities.iter().map(|(_, p)| p).sum();
    assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
    let pneumonia = d.probabilities[1].1;
    let threshold = d.threshold.expect("chest stores a threshold");
    assert_eq!(d.most_likely, if pneumonia >= threshold { "pneumonia" } else { "normal" }, "{d:?}");
    // A validation film labelled pneumonia, near the threshold: called pneumonia or left for review,
    // never answered "normal" outright.
    assert_ne!(d.label, "normal", "{d:?}");
    let probabilities: Vec<f32> = d.probabilities.iter().map(|(_, p)| *p).collect();
    let unsure = d.review.is_some_and(|r| r.uncertain(Task::Chest, &probabilities, threshold));
    assert_eq!(d.label, if unsure { "uncertain" } else { d.most_likely.as_str() }, "{d:?}");
    // Chest films are squashed whole: the heat map covers every pixel of the film.
    assert_eq!(d.region, [0, 0, info.columns, info.rows]);
    assert_eq!((d.heat_map.width, d.heat_map.height), (128, 128));
    let max = d.heat_map.values.iter().copied().fold(0.0f32, f32::max);
    let min = d.heat_map.values.iter().copied().fold(1.0f32, f32::min);
    assert!(max > 0.9 && max <= 1.0 && min >= 0.0, "heat map spans {min}..{max}");

    // The overlay is the film, tinted where the map is hot and untouched where it is cold.
    let frame = study.frame(0).unwrap();
    let picture = overlay(&study, &frame, &d);
    assert_eq!(picture.dimensions(), (info.columns, info.rows));
    let coloured = picture.pixels().filter(|p| p[0] != p[1] || p[1] != p[2]).count();
    let share = coloured as f64 / (info.columns * info.rows) as f64;
    assert!(share > 0.05 && share < 1.0, "{share:.3} of the pixels are tinted");
}

#[test]
fn a_skin_photo_is_centre_cropped_to_four_by_three() {
    let Some(data) = bedside_corpus::shared_data("skin diagnosis") else { return };
    let diagnoser = diagnoser("skin");
    let study = open(&data, "skin_ISIC_0031524.jpg");
    let (w, h) = (study.info().columns, study.info().rows);
    let d = diagnoser.diagnose_blocking(&study, 0).unwrap();
    assert_eq!(d.probabilities.len(), 7);
    // The map is drawn at the model's input, 4:3 like the crop.
    let input = &diagnoser.info().input;
    assert_eq!((d.heat_map.width, d.heat_map.height), (input.width, input.height));
    assert_eq!(input.width * 3, input.height * 4);
    let [x, y, rw, rh] = d.region;
    assert_eq!(rw * 3, rh * 4, "a 4:3 region: {:?} of {w}×{h}", d.region);
    assert!(x + rw <= w && y + rh <= h && (rw == w || rh == h));
}

#[test]
fn the_same_pixels_give_the_same_answer_and_warm_up_changes_nothing() {
    let Some(data) = bedside_corpus::shared_data("repeatable diagnosis") else { return };
    let diagnoser = diagnoser("breast");
    let study = open(&data, "breast_malignant_179.png");
    let first = diagnoser.diagnose_blocking(&study, 0).unwrap();
    bedside_diagnosis::block_on(diagnoser.warm_up()).unwrap();
    let second = diagnoser.diagnose_blocking(&study, 0).unwrap();
    assert_eq!(first, second);
    // The task's rule: malignant at its threshold, else the more probable of the others.
    let threshold = first.threshold.expect("breast stores a malignant threshold");
    let p: Vec<f32> = first.probabilities.iter().map(|c| c.1).collect();
    assert_eq!(first.most_likely, Task::Breast.classes()[Task::Breast.decide(&p, threshold)], "{first:?}");
}

#[test]
fn int8_weights_give_the_fp32_answer_on_every_original() {
    let Some(data) = bedside_corpus::shared_data("int8 parity") else { return };
    let text = std::fs::read_to_string(data.join("originals/labels.csv")).unwrap();
    let mut largest = 0f32;
    for line in text.lines().skip(1) {
        let [file, folder, _label] = line.split(',').collect::<Vec<_>>()[..] else {
            panic!("bad row {line}")
        };
        // The task column names the data folder: chest_pneumonia, skin_ham10000, breast_busi.
        let task = folder.split('_').next().unwrap();
        let study = open(&data, file);
        let int8 = load(task, "model.bin").diagnose_blocking(&study, 0).unwrap();
        let fp32 = load(task, "model-fp32.bin").diagnose_blocking(&study, 0).unwrap();
        let diff = int8
            .probabilities
            .iter()
            .zip(&fp32.probabilities)
            .map(|(a, b)| (a.1 - b.1).abs())
            .fold(0.0, f32::max);
        println!("{file}: {} / {}, largest probability difference {diff:.4}", int8.label, fp32.label);
        // The same answer; the most likely class may differ only where both say "uncertain" (a
        // near-tie that int8 rounding can tip: the review rule exists for such pictures).
        assert_eq!(int8.label, fp32.label, "{file}");
        if int8.label != "uncertain" {
            assert_eq!(int8.most_likely, fp32.most_likely, "{file}");
        }
        // Within the largest difference `bedside quantize` measured over the task's validation split.
        let json = std::fs::read_to_string(workspace().join("models").join(task).join("model.json")).unwrap();
        let recorded: serde_json::Value = serde_json::from_str(&json).unwrap();
        let bound = recorded["card"]["int8"]["validation"]["max_probability_difference"].as_f64().unwrap();
        assert!((diff as f64) <= bound, "{file}: probability difference {diff} beyond validation's {bound}");
        largest = largest.max(diff);
        // The heat maps come from the same features: their peaks sit in the same place.
        let peak = |d: &bedside_diagnosis::Diagnosis| {
            d.heat_map.values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap()
        };
        // (Each map is of its own most likely class: compared where that is the same class.)
        if int8.most_likely == fp32.most_likely {
            let (a, b) = (peak(&int8), peak(&fp32));
            let w = int8.heat_map.width as usize;
            let dist = ((a % w) as f32 - (b % w) as f32).hypot((a / w) as f32 - (b / w) as f32);
            // The maps are made on the features' grid, one cell per 32 input pixels: on a map with
            // no clear peak (a normal breast) int8 may tip the peak into the neighbouring cell.
            assert!(dist <= 32.0, "{file}: heat-map peaks {dist:.1} pixels apart");
        }
    }
    // The originals are ordinary pictures, not the validation split's worst case: well within 0.1.
    assert!(largest < 0.1, "largest probability difference {largest}");
}

/// The shipped breast model with its lesion decoder: an outline over the mass, measured in the
/// picture's pixels, or in millimetres when the file gives a pixel spacing.
#[test]
fn a_breast_ultrasound_gets_a_lesion_outline_measured_in_pixels_or_millimetres() {
    let Some(data) = bedside_corpus::shared_data("breast lesion outline") else { return };
    let dir = workspace().join("models/breast");
    let lesion_json = std::fs::read_to_string(dir.join("lesion.json")).unwrap();
    let with_lesion =
        diagnoser("breast").with_lesion(&lesion_json, std::fs::read(dir.join("lesion.bin")).unwrap());
    let with_lesion = with_lesion.unwrap();
    assert!(with_lesion.has_lesion() && !diagnoser("breast").has_lesion());
    // Another model's weights: refused, with the way out.
    let fp32 = load("breast", "model-fp32.bin")
        .with_lesion(&lesion_json, std::fs::read(dir.join("lesion.bin")).unwrap());
    let err = fp32.expect_err("a decoder is tied to the weights it was trained on").to_string();
    assert!(err.contains("bedside lesion"), "{err}");

    let study = open(&data, "breast_malignant_179.png");
    let frame = study.frame(0).unwrap();
    let (input, region) = with_lesion.prepare(&study, &frame);
    let px =
        bedside_diagnosis::block_on(with_lesion.run(input.clone(), region, PixelSize::Pixels(1.0))).unwrap();
    let mm = bedside_diagnosis::block_on(with_lesion.run(input, region, PixelSize::Millimetres([0.2, 0.1])))
        .unwrap();
    let (lesion, lesion_mm) = (px.lesion.as_ref().unwrap(), mm.lesion.as_ref().unwrap());
    assert!(lesion.found, "a malignant mass is outlined");
    // BUSI images are centre-cropped squares: the mask covers that square at the picture's size.
    assert_eq!(region, [0, 22, 432, 432]);
    assert_eq!((lesion.mask.width, lesion.mask.height), (432, 432));
    assert_eq!(lesion.measurement.area, lesion.mask.area() as f64);
    assert_eq!((lesion.measurement.units, lesion_mm.measurement.units), ("px", "mm"));
    assert!((lesion_mm.measurement.area - 0.02 * lesion.measurement.area).abs() < 1e-6);
    let d = lesion_mm.measurement.longest_diameter;
    assert!(
        d > 0.1 * lesion.measurement.longest_diameter && d < 0.2 * lesion.measurement.longest_diameter + 1e-9
    );
    // The full-size mask places the region's mask at its offset; nothing outside the region.
    let full = bedside_diagnosis::lesion_mask(&frame, &px);
    assert_eq!(full.len(), 432 * 476);
    assert_eq!(full.iter().filter(|&&v| v > 0).count(), lesion.mask.area());
    assert!(full[..22 * 432].iter().all(|&v| v == 0) && full[(22 + 432) * 432..].iter().all(|&v| v == 0));
    // The page's layer: region-sized RGBA, opaque only on the outline.
    let rgba = bedside_diagnosis::outline_rgba(&frame, &px).unwrap();
    assert_eq!(rgba.len(), 432 * 432 * 4);
    let drawn = rgba.chunks(4).filter(|p| p[3] == 255).count();
    assert_eq!(drawn, lesion.mask.boundary().len(), "one pixel thick on a picture under 600 pixels");
}

/// Bedside's own CPU engine (the page's CPU path) gives burn's diagnosis on every original: the
/// same answer, probabilities within 1e-4, the same heat-map peak and the same lesion outline; and
/// loaded from the files without burn ([`Diagnoser::on_cpu`]) exactly the same diagnosis.
#[test]
fn the_engine_gives_burns_diagnosis_on_every_original() {
    let Some(data) = bedside_corpus::shared_data("engine parity") else { return };
    let text = std::fs::read_to_string(data.join("originals/labels.csv")).unwrap();
    let mut outlined = 0;
    for line in text.lines().skip(1) {
        let file = line.split(',').next().unwrap();
        let task = line.split(',').nth(1).unwrap().split('_').next().unwrap();
        let dir = workspace().join("models").join(task);
        let mut burn = diagnoser(task);
        // And the engine as the page's CPU module and `bedside predict` load it: weights read without burn.
        let model_json = std::fs::read_to_string(dir.join("model.json")).unwrap();
        let fp32 = bedside_diagnosis::Precision::Fp32;
        let mut direct =
            Diagnoser::on_cpu(&model_json, std::fs::read(dir.join("model.bin")).unwrap(), fp32).unwrap();
        if dir.join("lesion.json").is_file() {
            let json = std::fs::read_to_string(dir.join("lesion.json")).unwrap();
            burn = burn.with_lesion(&json, std::fs::read(dir.join("lesion.bin")).unwrap()).unwrap();
            direct = direct.with_lesion(&json, std::fs::read(dir.join("lesion.bin")).unwrap()).unwrap();
        }
        let engine = burn.clone().on_engine_in(fp32).unwrap();
        assert_eq!(engine.has_lesion(), burn.has_lesion());
        let study = open(&data, file);
        let (a, b) =
            (burn.diagnose_blocking(&study, 0).unwrap(), engine.diagnose_blocking(&study, 0).unwrap());
        assert!(
            direct.diagnose_blocking(&study, 0).unwrap() == b,
            "{file}: the engine loaded two ways differs"
        );
        assert_eq!((&a.label, &a.most_likely, a.region), (&b.label, &b.most_likely, b.region), "{file}");
        let diff =
            a.probabilities.iter().zip(&b.probabilities).map(|(x, y)| (x.1 - y.1).abs()).fold(0.0, f32::max);
        assert!(diff <= 1e-4, "{file}: probabilities differ by {diff}");
        assert_eq!(a.heat_map_peak(), b.heat_map_peak(), "{file}");
        let map_diff =
            a.heat_map.values.iter().zip(&b.heat_map.values).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(map_diff <= 1e-3, "{file}: heat maps differ by {map_diff}");
        match (&a.lesion, &b.lesion) {
            (Some(x), Some(y)) => {
                // Thresholded logits within 1e-4 of each other: a boundary pixel may flip, no more.
                let differ = x.mask.values.iter().zip(&y.mask.values).filter(|(p, q)| p != q).count();
                assert!(differ <= x.mask.boundary().len() / 10 + 1, "{file}: {differ} outline pixels differ");
                outlined += 1;
            }
            (None, None) => {}
            _ => panic!("{file}: one has a lesion outline, the other not"),
        }
        println!("{file}: {} on both, largest probability difference {diff:.1e}", a.label);
    }
    assert_eq!(outlined, 6, "the three breast and three skin originals are outlined");
}
