//! A task folder (`images/` + `labels.csv`: `file,label,split,group`) loaded into memory, framed to
//! the model's input shape, and split into grouped folds.

use crate::rng::Rng;
use crate::{Error, Progress};
use bedside_imaging::{Limits, Study};
use bedside_model::input::InputSpec;
use bedside_model::task::Task;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One labelled image at the model's input shape (interleaved 8-bit, before normalisation).
#[derive(Debug, Clone)]
pub struct Example {
    pub file: String,
    pub label: usize,
    /// Patient, lesion or near-duplicate cluster: never on both sides of a split.
    pub group: String,
    pub pixels: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub task: Task,
    pub examples: Vec<Example>,
}

/// The task folder to read: `$BEDSIDE_DATA/<task folder>` unless given.
pub fn default_dir(task: Task) -> PathBuf {
    let root =
        std::env::var_os("BEDSIDE_DATA").map_or_else(|| PathBuf::from("../shared/data"), PathBuf::from);
    root.join(task.data_folder())
}

struct Row {
    file: String,
    label: usize,
    split: String,
    group: String,
}

fn read_labels(task: Task, dir: &Path) -> Result<Vec<Row>, Error> {
    let path = dir.join("labels.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("could not read", &path, e))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if header.trim() != "file,label,split,group" {
        return Err(Error::Data(format!("{}: expected the header file,label,split,group", path.display())));
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.trim().split(',').collect();
        let [file, label, split, group] = fields[..] else {
            return Err(Error::Data(format!("{} line {}: expected 4 fields", path.display(), n + 2)));
        };
        let label = task.classes().iter().position(|c| *c == label).ok_or_else(|| {
            Error::Data(format!("{} line {}: unknown label {label:?}", path.display(), n + 2))
        })?;
        rows.push(Row { file: file.into(), label, split: split.into(), group: group.into() });
    }
    Ok(rows)
}

/// Loads the rows of `split` (e.g. "train", "val"), decoding and framing images on every core.
pub fn load(
    task: Task,
    dir: &Path,
    split: &str,
    spec: &InputSpec,
    progress: &Progress,
) -> Result<Dataset, Error> {
    let rows: Vec<Row> = read_labels(task, dir)?.into_iter().filter(|r| r.split == split).collect();
    if rows.is_empty() {
        return Err(Error::Data(format!("{}: no images in split {split:?}", dir.display())));
    }
    let bar = progress.bar(rows.len() as u64, &format!("loading {} {split}", task.name()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.len().div_ceil(threads);
    let results: Vec<Result<Vec<Example>, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|rows| {
                let bar = bar.clone();
                scope.spawn(move || {
                    rows.iter()
                        .map(|row| {
                            let pixels = load_image(&dir.join(&row.file), spec)?;
                            bar.inc(1);
                            Ok(Example {
                                file: row.file.clone(),
                                label: row.label,
                                group: row.group.clone(),
                                pixels,
                            })
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("loader thread")).collect()
    });
    bar.finish_and_clear();
    let mut examples = Vec::with_capacity(rows.len());
    for part in results {
        examples.extend(part?);
    }
    Ok(Dataset { task, examples })
}

/// Decodes one image file and frames it to the input shape, as the product does: through
/// [`Study::open`] and [`bedside_diagnosis::model_view`], so a model is trained and measured on the
/// tensors a clinician's copy of the file becomes.
pub fn load_image(path: &Path, spec: &InputSpec) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("could not read", path, e))?;
    let failed = |e: bedside_imaging::Error| Error::Data(format!("could not decode {}: {e}", path.display()));
    let study = Study::open(&bytes, &Limits::default()).map_err(failed)?;
    let frame = study.frame(0).map_err(failed)?;
    Ok(bedside_diagnosis::model_view(&study, &frame, spec).pixels)
}

/// The lesion masks of `data`'s examples framed to `spec`'s input (see [`InputSpec::fit_mask`]), in
/// the examples' order: `masks/<image id>.png` beside `images/`. `None` when the task folder has no
/// `masks/` (chest); a missing or unreadable mask of a listed image is an error.
pub fn load_masks(dir: &Path, data: &Dataset, spec: &InputSpec) -> Result<Option<Vec<Vec<u8>>>, Error> {
    let masks = dir.join("masks");
    if !masks.is_dir() {
        return Ok(None);
    }
    data.examples
        .iter()
        .map(|e| {
            let stem = Path::new(&e.file).file_stem().unwrap_or_default();
            let path = masks.join(stem).with_extension("png");
            let mask = image::open(&path)
                .map_err(|e| Error::Data(format!("could not read the mask {}: {e}", path.display())))?
                .into_luma8();
            let (w, h) = mask.dimensions();
            Ok(spec.fit_mask(mask.as_raw(), w, h))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// [`load_masks`] where the masks are required: their absence is an error that says which tasks
/// have them.
pub fn require_masks(dir: &Path, data: &Dataset, spec: &InputSpec) -> Result<Vec<Vec<u8>>, Error> {
    load_masks(dir, data, spec)?.ok_or_else(|| {
        Error::Data(format!(
            "{} has no masks/ folder: only tasks with lesion outlines (breast, skin) have them",
            dir.display()
        ))
    })
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Each example's group (patient, lesion or near-duplicate cluster), in order.
    pub fn groups(&self) -> Vec<String> {
        self.examples.iter().map(|e| e.group.clone()).collect()
    }

    /// Examples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.task.classes().len()];
        for e in &self.examples {
            counts[e.label] += 1;
        }
        counts
    }

    /// Per-channel mean and standard deviation of the pixels as `spec` standardises them
    /// ([`InputSpec::levels`]), on a 0–1 scale.
    pub fn pixel_stats(&self, spec: &InputSpec) -> (Vec<f32>, Vec<f32>) {
        let channels = spec.channels as usize;
        let (mut sum, mut sq, mut n) = (vec![0f64; channels], vec![0f64; channels], 0f64);
        for e in &self.examples {
            for px in spec.levels(&e.pixels).chunks_exact(channels) {
                for (c, &v) in px.iter().enumerate() {
                    let v = f64::from(v) / 255.0;
                    sum[c] += v;
                    sq[c] += v * v;
                }
                n += 1.0;
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n.max(1.0)).collect();
        let std = sq.iter().zip(&mean).map(|(s, m)| ((s / n.max(1.0) - m * m).max(1e-8)).sqrt() as f32);
        (mean.iter().map(|&m| m as f32).collect(), std.collect())
    }

    /// At most `count` examples spread evenly over the set (every n-th): a fixed subset for
    /// calibration and checks.
    pub fn every_nth(&self, count: usize) -> Dataset {
        let step = (self.len() / count.max(1)).max(1);
        let indices: Vec<usize> = (0..self.len()).step_by(step).take(count).collect();
        self.subset(&indices)
    }

    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset { task: self.task, examples: indices.iter().map(|&i| self.examples[i].clone()).collect() }
    }

    /// `k` folds of example indices, whole groups in one fold each, classes spread evenly: groups are
    /// shuffled with `seed`, then each goes to the fold holding the fewest examples of its class.
    pub fn grouped_folds(&self, k: usize, seed: u64) -> Vec<Vec<usize>> {
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in self.examples.iter().enumerate() {
            groups.entry(&e.group).or_default().push(i);
        }
        let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
        Rng::new(seed).shuffle(&mut groups);
        let classes = self.task.classes().len();
        let mut per_class = vec![vec![0usize; classes]; k];
        let mut folds = vec![Vec::new(); k];
        for members in groups {
            let label = self.examples[members[0]].label;
            let fold = (0..k).min_by_key(|&f| (per_class[f][label], folds[f].len())).unwrap_or(0);
            for &i in &members {
                per_class[fold][self.examples[i].label] += 1;
            }
            folds[fold].extend(members);
        }
        folds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(label: usize, group: &str) -> Example {
        Example { file: String::new(), label, group: group.into(), pixels: vec![label as u8 * 100] }
    }

    #[test]
    fn folds_keep_groups_whole_and_classes_spread() {
        let mut examples = Vec::new();
        for g in 0..60 {
            let label = usize::from(g % 3 == 0);
            for _ in 0..(1 + g % 3) {
                examples.push(example(label, &format!("p{g}")));
            }
        }
        let data = Dataset { task: Task::Chest, examples };
        let folds = data.grouped_folds(3, 0);
        let mut seen: Vec<usize> = folds.concat();
        seen.sort();
        assert_eq!(seen, (0..data.len()).collect::<Vec<_>>(), "every example in exactly one fold");
        for (a, fa) in folds.iter().enumerate() {
            for fb in &folds[a + 1..] {
                for &i in fa {
                    assert!(fb.iter().all(|&j| data.examples[j].group != data.examples[i].group));
                }
            }
            let positives = fa.iter().filter(|&&i| data.examples[i].label == 1).count();
            assert!((5..=9).contains(&positives), "fold {a} has {positives} of 20 positives");
        }
    }

    #[test]
    fn pixel_stats_are_per_channel() {
        let data = Dataset {
            task: Task::Skin,
            examples: vec![Example {
                file: String::new(),
                label: 0,
                group: "g".into(),
                pixels: vec![0, 255, 0, 255],
            }],
        };
        let spec = InputSpec {
            width: 1,
            height: 2,
            channels: 2,
            framing: bedside_model::input::Framing::Squash,
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
            intensity: Default::default(),
            mirror_average: false,
        };
        let (mean, std) = data.pixel_stats(&spec);
        assert_eq!(mean, vec![0.0, 1.0]);
        assert!(std.iter().all(|&s| s < 1e-3));
    }
}
