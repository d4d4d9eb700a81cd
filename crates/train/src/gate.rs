//! The trust gate's data: the three task data sets, each labelled with its task, and ordinary
//! photographs labelled `other`.
//!
//! The photographs are the sample images that ship in Python packages on the package registry
//! (scikit-image, scikit-learn, matplotlib), fetched once into `target/` by [`bedside_corpus::photos`]. They are split
//! by group of near-copies ([`photo_group`]) — one group in [`VAL_EVERY`] held out — and each is used whole, as the app frames it, and cut into
//! many random crops, half of them turned grey, so that the gate cannot tell a photograph from a film
//! by colour or framing alone.
//!
//! Medical images of other kinds are `other` too: the DICOM corpus ([`bedside_corpus::files`]) holds
//! CT, MR and nuclear-medicine slices, radiographs of other body parts, echocardiography and
//! obstetric ultrasound, segmentations and screen captures. They are decoded and drawn as the app
//! draws them ([`bedside_diagnosis::first_view`]), grouped by modality and size (a file's
//! re-encodings share both) and split like the photographs ([`scan_group`]).

use crate::data::{self, Dataset, Example};
use crate::rng::Rng;
use crate::{Error, Progress};
use bedside_imaging::{Limits, Study};
use bedside_model::artifact::ModelInfo;
use bedside_model::input::InputSpec;
use bedside_model::task::Task;
use image::imageops::{self, FilterType};
use std::path::{Path, PathBuf};

/// One photograph in this many is held out for validation.
pub const VAL_EVERY: usize = 4;

/// How many images of each kind the gate trains and validates on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GateData {
    /// At most this many training images per task (spread evenly over the train split).
    pub per_task_train: usize,
    /// At most this many validation images per task.
    pub per_task_val: usize,
    /// Random crops per training / validation photograph.
    pub train_views: usize,
    pub val_views: usize,
    /// Views (the whole frame, then random crops) per frame of a corpus file.
    #[serde(default)]
    pub train_scan_views: usize,
    #[serde(default)]
    pub val_scan_views: usize,
    /// The first view of each photograph is the whole picture as the app frames it (the rest are
    /// crops), so that validation also asks what a clinician would get for that photo. Gates
    /// recorded before this existed saw crops only.
    #[serde(default)]
    pub whole_photo: bool,
    pub seed: u64,
}

impl Default for GateData {
    fn default() -> Self {
        GateData {
            per_task_train: 1500,
            per_task_val: 500,
            train_views: 72,
            val_views: 40,
            train_scan_views: 12,
            val_scan_views: 8,
            whole_photo: true,
            seed: 0,
        }
    }
}

impl GateData {
    /// The set a gate was trained and validated on, as its training run recorded it in the card's
    /// settings. A gate trained before that was recorded used the defaults of its day: crops only.
    pub fn recorded(info: &ModelInfo) -> GateData {
        serde_json::from_value(info.card["settings"]["gate_data"].clone())
            .unwrap_or(GateData { whole_photo: false, ..GateData::default() })
    }
}

/// A photograph's group: its name up to the first `_` or `.`, so that near-copies
/// (`motorcycle_left`/`motorcycle_right`, `chessboard_GRAY`/`chessboard_RGB`) stay on one side.
pub fn photo_group(path: &Path) -> String {
    let name = path.file_name().map_or(String::new(), |n| n.to_string_lossy().to_lowercase());
    name.split(['_', '.']).next().unwrap_or_default().to_string()
}

/// Whether `path` is held out for validation: every [`VAL_EVERY`]-th group of `photos` in name order.
pub fn is_val_photo(photos: &[PathBuf], path: &Path) -> bool {
    let mut groups: Vec<String> = photos.iter().map(|p| photo_group(p)).collect();
    groups.sort();
    groups.dedup();
    let group = photo_group(path);
    groups.iter().position(|g| *g == group).is_some_and(|i| i % VAL_EVERY == VAL_EVERY - 1)
}

/// Corpus files kept out of `other`: the adult chest films (`RG1_*`), the chest model's own kind of
/// picture from another population. Whether such films should be refused is a decision about the
/// chest model, not something to teach the gate from one film; the card reports what the gate does.
pub const NOT_OTHER: [&str; 1] = ["RG1_"];

/// Corpus pictures smaller than this on a side (test patterns of 3 × 3 or 10 × 10 pixels) are left out.
const MIN_SCAN_SIDE: u32 = 32;

/// A corpus file's group: modality and size, so re-encodings of one image stay on one side.
pub fn scan_group(study: &Study) -> String {
    let info = study.info();
    format!("scan/{}/{}x{}", info.modality.as_deref().unwrap_or("none"), info.columns, info.rows)
}

/// One corpus file's frames as RGB pictures, drawn as the app draws them (the first frame, and the
/// middle one of a multi-frame file); `None` for files that do not decode (the corpus holds broken
/// files on purpose), are too small, or are in [`NOT_OTHER`].
pub fn scan_pictures(path: &Path) -> Option<(String, Vec<image::RgbImage>)> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    if NOT_OTHER.iter().any(|prefix| name.starts_with(prefix)) {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let study = Study::open(&bytes, &Limits::default()).ok()?;
    let frames = study.info().frames.max(1);
    let mut pictures = Vec::new();
    for index in [0, frames / 2].into_iter().collect::<std::collections::BTreeSet<_>>() {
        let frame = study.frame(index).ok()?;
        if frame.columns < MIN_SCAN_SIDE || frame.rows < MIN_SCAN_SIDE {
            return None;
        }
        pictures.push(drawn_rgb(&study, &frame)?);
    }
    Some((scan_group(&study), pictures))
}

/// A photograph as the app opens and draws it (`Study::open`: EXIF orientation applied, shown as
/// stored), in RGB.
pub fn open_photo(path: &Path) -> Result<image::RgbImage, Error> {
    let failed = |e: &dyn std::fmt::Display| Error::Data(format!("could not decode {}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| Error::io("could not read", path, e))?;
    let study = Study::open(&bytes, &Limits::default()).map_err(|e| failed(&e))?;
    let frame = study.frame(0).map_err(|e| failed(&e))?;
    drawn_rgb(&study, &frame).ok_or_else(|| failed(&"neither grey nor RGB"))
}

/// `frame` as the app draws it (`first_view`), in RGB: grey repeated in the three channels.
fn drawn_rgb(study: &Study, frame: &bedside_imaging::Frame) -> Option<image::RgbImage> {
    let drawn = bedside_diagnosis::first_view(study, frame);
    let rgb: Vec<u8> = match frame.samples {
        1 => drawn.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => drawn,
    };
    image::RgbImage::from_raw(frame.columns, frame.rows, rgb)
}

/// `views` random crops of one photograph, framed to `spec`: 20–100 % of the area, aspect 3:4 to
/// 4:3, mirrored half the time, grey half the time.
pub fn photo_views(photo: &image::RgbImage, spec: &InputSpec, views: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let (w, h) = photo.dimensions();
    (0..views)
        .map(|_| {
            let area = rng.uniform(0.2, 1.0) * (w * h) as f32;
            let aspect = rng.uniform(0.75, 1.333);
            let cw = ((area * aspect).sqrt() as u32).clamp(8, w);
            let ch = ((area / aspect).sqrt() as u32).clamp(8, h);
            let x = rng.below((w - cw + 1) as usize) as u32;
            let y = rng.below((h - ch + 1) as usize) as u32;
            let mut crop = imageops::crop_imm(photo, x, y, cw, ch).to_image();
            if rng.unit() < 0.5 {
                crop = imageops::flip_horizontal(&crop);
            }
            if rng.unit() < 0.5 {
                let grey = image::DynamicImage::ImageRgb8(crop).into_luma8();
                crop = image::DynamicImage::ImageLuma8(grey).into_rgb8();
            }
            // Shrink first: fitting a large crop straight to 64 × 64 would alias.
            let small = imageops::resize(&crop, spec.width * 2, spec.height * 2, FilterType::Triangle);
            spec.fit(small.as_raw(), small.width(), small.height(), 3)
        })
        .collect()
}

/// Train and validation sets for the gate: `data_root` holds the three task folders.
pub fn load(
    data_root: &Path,
    spec: &InputSpec,
    photos: &[PathBuf],
    scans: &[PathBuf],
    settings: &GateData,
    progress: &Progress,
) -> Result<(Dataset, Dataset), Error> {
    let mut train = Vec::new();
    let mut val = Vec::new();
    let route = |task: Task| Task::Gate.classes().iter().position(|c| *c == task.name()).expect("gate class");
    for task in Task::ALL {
        let dir = data_root.join(task.data_folder());
        for (split, cap, out) in
            [("train", settings.per_task_train, &mut train), ("val", settings.per_task_val, &mut val)]
        {
            let set = data::load(task, &dir, split, spec, progress)?.every_nth(cap);
            out.extend(set.examples.into_iter().map(|e| Example {
                file: format!("{}/{}", task.data_folder(), e.file),
                label: route(task),
                group: format!("{}/{}", task.name(), e.group),
                pixels: e.pixels,
            }));
        }
    }
    let other = Task::Gate.positive_index();
    let rng = Rng::new(settings.seed);
    for (i, path) in photos.iter().enumerate() {
        let img = open_photo(path)?;
        let name = path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let (views, out) = if is_val_photo(photos, path) {
            (settings.val_views, &mut val)
        } else {
            (settings.train_views, &mut train)
        };
        let mut rng = rng.fork(i as u64);
        let whole = settings.whole_photo.then(|| spec.fit(img.as_raw(), img.width(), img.height(), 3));
        let crops = photo_views(&img, spec, views.saturating_sub(usize::from(whole.is_some())), &mut rng);
        for (v, pixels) in whole.into_iter().chain(crops).enumerate() {
            out.push(Example {
                file: format!("{name}#{v}"),
                label: other,
                group: format!("photo/{name}"),
                pixels,
            });
        }
    }
    // Other medical images: each frame whole, as the app frames it, and in random crops.
    let pictures: Vec<(String, String, Vec<image::RgbImage>)> = scans
        .iter()
        .filter_map(|path| {
            let (group, frames) = scan_pictures(path)?;
            Some((path.file_name()?.to_string_lossy().into_owned(), group, frames))
        })
        .collect();
    let mut groups: Vec<&str> = pictures.iter().map(|(_, g, _)| g.as_str()).collect();
    groups.sort();
    groups.dedup();
    progress.println(format!(
        "gate: {} of {} corpus files as other medical images, in {} groups",
        pictures.len(),
        scans.len(),
        groups.len()
    ));
    let rng = rng.fork(u64::MAX);
    for (i, (name, group, frames)) in pictures.iter().enumerate() {
        let held_out = groups.iter().position(|g| g == group).is_some_and(|i| i % VAL_EVERY == VAL_EVERY - 1);
        let (views, out) = if held_out {
            (settings.val_scan_views, &mut val)
        } else {
            (settings.train_scan_views, &mut train)
        };
        let mut rng = rng.fork(i as u64);
        for (f, picture) in frames.iter().enumerate() {
            let whole = spec.fit(picture.as_raw(), picture.width(), picture.height(), 3);
            let crops = photo_views(picture, spec, views.saturating_sub(1), &mut rng);
            for (v, pixels) in std::iter::once(whole).chain(crops).enumerate() {
                out.push(Example {
                    file: format!("{name}@{f}#{v}"),
                    label: other,
                    group: group.clone(),
                    pixels,
                });
            }
        }
    }
    Ok((Dataset { task: Task::Gate, examples: train }, Dataset { task: Task::Gate, examples: val }))
}

/// The refusal floor: the largest confidence floor that still lets through `keep` of the validation
/// images of the three tasks that the gate routes correctly.
pub fn choose_floor(probabilities: &[Vec<f32>], labels: &[usize], keep: f64) -> f32 {
    let other = Task::Gate.positive_index();
    let mut confidences: Vec<f32> = probabilities
        .iter()
        .zip(labels)
        .filter(|(_, y)| **y != other)
        .filter_map(|(p, &y)| {
            let best = (0..p.len()).filter(|&i| i != other).max_by(|&a, &b| p[a].total_cmp(&p[b]))?;
            (best == y && p[best] >= p[other]).then_some(p[best])
        })
        .collect();
    if confidences.is_empty() {
        return 0.5;
    }
    confidences.sort_by(f32::total_cmp);
    let drop = ((1.0 - keep) * confidences.len() as f64 + 1e-9).floor() as usize;
    confidences[drop.min(confidences.len() - 1)]
}

/// How well the gate routes and refuses, on validation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Images of the three tasks, and other pictures (views of held-out photographs and medical
    /// images of other kinds).
    pub task_images: usize,
    pub photo_views: usize,
    /// Share of task images routed to their own task (refusals count as wrong).
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub routing_accuracy: f64,
    /// Share of task images refused.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub task_refused: f64,
    /// Share of other pictures refused.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub photos_refused: f64,
    /// AUROC of `1 − p(other)` separating the task images from the other pictures.
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub ood_auroc: f64,
    pub floor: f32,
    /// Share of each task's images refused (chest, skin, breast).
    #[serde(default)]
    pub refused_by_task: Vec<(String, f64)>,
    /// Each held-out photograph or group of medical images: its views and the share refused —
    /// the evidence at its real size (a few dozen pictures, not hundreds of independent views).
    #[serde(default)]
    pub other_groups: Vec<GroupRefusal>,
}

/// Refusals within one group of `other` pictures.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GroupRefusal {
    pub group: String,
    pub views: usize,
    #[serde(deserialize_with = "crate::metrics::f64_or_nan")]
    pub refused: f64,
}

/// Measures `route` with `floor` on calibrated validation probabilities of `val`'s images.
pub fn evaluate(info: &ModelInfo, probabilities: &[Vec<f32>], val: &Dataset) -> Evaluation {
    let other = Task::Gate.positive_index();
    let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
    let (mut tasks, mut photos, mut routed, mut task_refused, mut photos_refused) = (0, 0, 0, 0, 0);
    let classes = Task::Gate.classes().len();
    let (mut per_task, mut per_task_refused) = (vec![0usize; classes], vec![0usize; classes]);
    let mut groups: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for ((p, &y), example) in probabilities.iter().zip(&labels).zip(&val.examples) {
        let route = bedside_model::gate::route(info, p);
        if y == other {
            photos += 1;
            photos_refused += route.refused() as usize;
            let group = groups.entry(example.group.as_str()).or_default();
            group.0 += 1;
            group.1 += route.refused() as usize;
        } else {
            tasks += 1;
            task_refused += route.refused() as usize;
            per_task[y] += 1;
            per_task_refused[y] += route.refused() as usize;
            routed += (route.task.map(Task::name) == Some(Task::Gate.classes()[y])) as usize;
        }
    }
    let scores: Vec<f32> = probabilities.iter().map(|p| 1.0 - p[other]).collect();
    let in_distribution: Vec<bool> = labels.iter().map(|&y| y != other).collect();
    let share = |k: usize, n: usize| k as f64 / n.max(1) as f64;
    Evaluation {
        task_images: tasks,
        photo_views: photos,
        routing_accuracy: share(routed, tasks),
        task_refused: share(task_refused, tasks),
        photos_refused: share(photos_refused, photos),
        ood_auroc: crate::metrics::roc_auc(&scores, &in_distribution).unwrap_or(f64::NAN),
        floor: info.threshold.unwrap_or(0.0),
        refused_by_task: (0..classes)
            .filter(|&c| c != other)
            .map(|c| (Task::Gate.classes()[c].to_string(), share(per_task_refused[c], per_task[c])))
            .collect(),
        other_groups: groups
            .into_iter()
            .map(|(group, (views, refused))| GroupRefusal {
                group: group.to_string(),
                views,
                refused: share(refused, views),
            })
            .collect(),
    }
}

impl Evaluation {
    /// The model card's section on routing and refusal; `measured` says by which command, on which
    /// weights.
    pub fn card_section(&self, measured: &str) -> String {
        format!(
            "## Routing and refusal on validation\n\n\
             A picture goes to the most probable task when that task's calibrated probability is at least \
             {floor:.3} (the floor: chosen so that {keep:.1} % of correctly routed validation images pass) and \
             above `other`'s; otherwise Bedside refuses it.\n\n\
             | measured on | value |\n|---|---|\n\
             | routing accuracy ({tasks} chest, skin and breast images) | {acc:.4} |\n\
             | task images refused | {tr:.4} |\n\
             | other pictures refused ({photos} views of held-out photographs and medical images of other kinds) | {pr:.4} |\n\
             | OOD AUROC (1 − p(other), task images vs other pictures) | {auroc:.4} |\n\n\
             Task images refused, per task: {by_task}.\n\n\
             The other pictures held out, each photograph and each group of medical images (modality and \
             size) on its own — {n_groups} in all, the real size of this evidence:\n\n\
             | held out | views | refused |\n|---|---:|---:|\n{groups}\n\
             {measured}\n",
            floor = self.floor,
            keep = 100.0 * crate::pipeline::GATE_KEEP,
            tasks = self.task_images,
            acc = self.routing_accuracy,
            tr = self.task_refused,
            photos = self.photo_views,
            pr = self.photos_refused,
            auroc = self.ood_auroc,
            by_task = self
                .refused_by_task
                .iter()
                .map(|(task, refused)| format!("{task} {:.1} %", 100.0 * refused))
                .collect::<Vec<_>>()
                .join(", "),
            n_groups = self.other_groups.len(),
            groups = self
                .other_groups
                .iter()
                .map(|g| format!(
                    "| {} | {} | {:.3} |\n",
                    g.group.trim_start_matches("photo/"),
                    g.views,
                    g.refused
                ))
                .collect::<String>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedside_model::input::Framing;

    #[test]
    fn later_steps_measure_on_the_images_the_gate_was_trained_on() {
        let mut info = ModelInfo::from_json(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/gate/model.json"))
                .unwrap(),
        )
        .unwrap();
        let trained = GateData { per_task_train: 3000, per_task_val: 1002, ..GateData::default() };
        info.card["settings"]["gate_data"] = serde_json::to_value(&trained).unwrap();
        assert_eq!(GateData::recorded(&info), trained);
        // A gate trained before the set was recorded used the defaults of its day: crops only.
        info.card["settings"].as_object_mut().unwrap().remove("gate_data");
        assert_eq!(GateData::recorded(&info), GateData { whole_photo: false, ..GateData::default() });
    }

    #[test]
    fn corpus_files_become_other_pictures_drawn_as_the_app_draws_them() {
        let pictures = |name: &str| scan_pictures(&bedside_corpus::find(name).unwrap());
        let (group, frames) = pictures("MR_small.dcm").expect("an MR slice is another kind of picture");
        assert_eq!(group, "scan/MR/64x64");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].dimensions(), (64, 64));
        // Its re-encodings fall in the same group, so they are never split between train and val.
        assert_eq!(pictures("MR_small_RLE.dcm").unwrap().0, group);
        // A multi-frame file gives its first and middle frames.
        assert_eq!(pictures("emri_small.dcm").unwrap().1.len(), 2);
        // The obstetric ultrasound the breast model once diagnosed is `other`, in colour as drawn.
        let (group, frames) = pictures("OBXXXX1A.dcm").unwrap();
        assert_eq!(group, "scan/US/800x600");
        assert_eq!(frames[0].dimensions(), (800, 600));
        // Left out: the adult chest film, a 3 × 3 test pattern, a palette file without pixel data.
        assert!(pictures("RG1_UNCR.dcm").is_none());
        assert!(pictures("SC_rgb_small_odd.dcm").is_none());
        assert!(pictures("pet.dcm").is_none());
    }

    #[test]
    fn photo_views_are_framed_and_vary() {
        let spec = InputSpec {
            width: 16,
            height: 16,
            channels: 3,
            framing: Framing::Squash,
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
            intensity: Default::default(),
            mirror_average: false,
        };
        // A red-to-blue ramp: crops differ, and grey crops have equal channels.
        let photo =
            image::RgbImage::from_fn(120, 80, |x, _| image::Rgb([(x * 2) as u8, 60, 255 - (x * 2) as u8]));
        let views = photo_views(&photo, &spec, 40, &mut Rng::new(1));
        assert!(views.iter().all(|v| v.len() == 16 * 16 * 3));
        let grey = views.iter().filter(|v| v.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2])).count();
        assert!((8..=32).contains(&grey), "about half grey: {grey} of 40");
        let distinct: std::collections::HashSet<&Vec<u8>> = views.iter().collect();
        assert_eq!(distinct.len(), 40);
    }

    #[test]
    fn the_floor_keeps_the_share_asked_for() {
        // Ten correctly routed chest images with confidences 0.5..0.95, one photo, one misrouted image.
        let mut probabilities: Vec<Vec<f32>> = (0..10)
            .map(|i| {
                let c = 0.5 + 0.05 * i as f32;
                vec![c, 0.0, 0.0, 1.0 - c]
            })
            .collect();
        probabilities.push(vec![0.1, 0.0, 0.0, 0.9]);
        probabilities.push(vec![0.0, 0.9, 0.0, 0.1]);
        let labels = [vec![0; 10], vec![3, 0]].concat();
        assert_eq!(choose_floor(&probabilities, &labels, 1.0), 0.5);
        assert!((choose_floor(&probabilities, &labels, 0.8) - 0.6).abs() < 1e-6);
        let photos: Vec<PathBuf> = ["a.png", "b_left.png", "b_right.png", "c.jpg", "d.png", "e.png"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(photo_group(&photos[1]), photo_group(&photos[2]));
        let held: Vec<bool> = photos.iter().map(|p| is_val_photo(&photos, p)).collect();
        assert_eq!(
            held,
            [false, false, false, false, true, false],
            "groups a, b, c, d, e: the fourth is held out"
        );
    }
}
