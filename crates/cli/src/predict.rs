//! `bedside predict`: one file in, a diagnosis (or a refusal) out.

use crate::model_dir::{Weights, read};
use bedside_diagnosis::{Assessment, Diagnoser, Routing, block_on};
use bedside_imaging::{Limits, Study};
use bedside_model::task::Task;
use std::path::{Path, PathBuf};

/// Predict on DICOM files or photos and print one line of JSON per file, in order: the assessment
/// the page shows too. Its `outcome` is "refused" or "diagnosed". The trust gate first checks that
/// the picture is a chest X-ray, a skin photo or a breast ultrasound; a picture it refuses — or an
/// adult's film, where the file gives the patient's age, since the chest model is for children —
/// gets {"outcome": "refused", "message": …, "gate": …} and exit status 0. Otherwise: `task` (the model
/// that answered: --model if given, else the one the DICOM Modality names — CR/DX chest, US breast,
/// XC skin — else the one the gate picks), `label` (the class, or "uncertain" where the model's
/// review rule says the image needs review), `most_likely` (the class the decision rule picks, also
/// when uncertain), `probabilities` (class → calibrated probability, in the model's class order),
/// `threshold` (the operating threshold; null where the label is the most probable class), `review`
/// ({"margin": log-odds from another answer}, or null), `region` ([x, y, width, height], the part
/// of the picture the model saw), `heat_map_peak` (the heat map's hottest point, [x, y] in the
/// picture's pixels), `lesion` (null without a lesion decoder, else the outline's `found`, `area`,
/// `longest_diameter` and `units`: "mm" where the file gives a pixel spacing, else "px"),
/// `routed_by` (why that model: choice, modality or gate) and `note` (any disagreement with the gate,
/// else null). `gate` is the gate's verdict either way: `task` (the kind of picture it sees, null when
/// refused), `refused`, `confidence`, `floor` and `probabilities` (chest, skin, breast, other).
#[derive(clap::Args)]
pub struct Args {
    /// Use this model folder (e.g. models/chest) instead of the one the gate picks; the gate still
    /// refuses pictures that are none of the three kinds.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Folder holding the shipped models (gate/, chest/, skin/, breast/).
    #[arg(long, env = "BEDSIDE_MODELS", default_value = "models")]
    models: PathBuf,
    /// Also write the picture with the attention heat map of the predicted class over it (PNG;
    /// one file only).
    #[arg(long, value_name = "OUT.png")]
    heatmap: Option<PathBuf>,
    /// Also write the picture with the lesion outline drawn over it (PNG; one file only; models with
    /// a lesion decoder: breast, skin).
    #[arg(long, value_name = "OUT.png")]
    outline: Option<PathBuf>,
    /// Also write the lesion mask alone: a 1-bit PNG at the picture's own size, white inside (one
    /// file only; models with a lesion decoder).
    #[arg(long, value_name = "OUT.png")]
    mask: Option<PathBuf>,
    /// Frame of a multi-frame file, counted from 0.
    #[arg(long, default_value_t = 0)]
    frame: u32,
    /// Use the full-precision weights (model-fp32.bin) instead of the shipped int8 model.bin (no
    /// lesion outline then: the decoder reads the int8 model's features).
    #[arg(long)]
    fp32: bool,
    /// DICOM files or photos (JPEG, PNG, WebP); each is read, and its models loaded, once.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The model in `dir`, with its lesion decoder where the folder has one (int8 weights only: the
/// decoder was trained on their features), on the CPU engine as the page runs it
/// ([`Weights::arithmetic`]).
fn diagnoser(dir: &Path, weights: Weights) -> Result<Diagnoser, String> {
    let (json, bytes) = read(dir, weights)?;
    let failed = |e: bedside_diagnosis::Error| format!("{}: {e}", dir.display());
    let mut diagnoser = Diagnoser::on_cpu(&json, bytes, weights.arithmetic()).map_err(failed)?;
    let lesion_json = dir.join("lesion.json");
    if weights == Weights::Int8 && lesion_json.is_file() {
        let read_file =
            |path: &Path| std::fs::read(path).map_err(|e| format!("could not read {}: {e}", path.display()));
        let text = String::from_utf8(read_file(&lesion_json)?)
            .map_err(|e| format!("{}: {e}", lesion_json.display()))?;
        diagnoser = diagnoser.with_lesion(&text, read_file(&dir.join("lesion.bin"))?).map_err(failed)?;
    }
    Ok(diagnoser)
}

/// Writes a 0/1 mask as a 1-bit greyscale PNG (white inside).
fn write_mask(path: &Path, mask: &[u8], width: u32, height: u32) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("could not write {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| failed(&e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut packed = Vec::with_capacity(mask.len() / 8 + height as usize);
    for row in mask.chunks(width as usize) {
        for byte in row.chunks(8) {
            packed.push(byte.iter().enumerate().fold(0u8, |b, (i, &v)| b | (u8::from(v > 0) << (7 - i))));
        }
    }
    let mut writer = encoder.write_header().map_err(|e| failed(&e))?;
    writer.write_image_data(&packed).map_err(|e| failed(&e))?;
    writer.finish().map_err(|e| failed(&e))
}

pub fn run(args: &Args) -> Result<(), String> {
    if (args.heatmap.is_some() || args.outline.is_some() || args.mask.is_some()) && args.files.len() > 1 {
        return Err("--heatmap, --outline and --mask write one picture: give one file with them".into());
    }
    let weights = Weights::from_flag(args.fp32);
    let gate = diagnoser(&args.models.join("gate"), weights)
        .map_err(|e| format!("the trust gate could not be loaded ({e}); pass --models DIR"))?;
    // --model is the user's explicit choice of task; the other models load as files need them.
    let mut models: Vec<(Task, Diagnoser)> = Vec::new();
    let choice = match &args.model {
        Some(dir) => {
            let chosen = diagnoser(dir, weights)?;
            let task = chosen.info().task;
            if task == Task::Gate {
                return Err(format!(
                    "{} is the trust gate: --model takes a chest, skin or breast model",
                    dir.display()
                ));
            }
            models.push((task, chosen));
            Some(task)
        }
        None => None,
    };
    for file in &args.files {
        let assessment = predict(args, &gate, choice, &mut models, file)?;
        println!("{}", serde_json::to_string(&assessment).expect("an assessment serialises"));
    }
    Ok(())
}

/// One file's line; `models` keeps every model loaded so far, by task.
fn predict(
    args: &Args,
    gate: &Diagnoser,
    choice: Option<Task>,
    models: &mut Vec<(Task, Diagnoser)>,
    file: &Path,
) -> Result<Assessment, String> {
    let name = file.display();
    let bytes = std::fs::read(file).map_err(|e| format!("could not read {name}: {e}"))?;
    let study = Study::open(&bytes, &Limits::default()).map_err(|e| format!("{name}: {e}"))?;
    let frame = study.frame(args.frame).map_err(|e| format!("{name}: {e}"))?;

    let route = block_on(gate.route(&study, &frame)).map_err(|e| format!("{name}: {e}"))?;
    let modality = study.info().modality.as_deref();
    let routed = match Routing::new(gate.info(), &route, choice, modality, study.patient_age_years()) {
        Routing::Refused(refusal) => return Ok(refusal),
        Routing::Routed(routed) => routed,
    };
    let task = routed.task;
    if !models.iter().any(|(t, _)| *t == task) {
        models.push((task, diagnoser(&args.models.join(task.name()), Weights::from_flag(args.fp32))?));
    }
    let diagnoser = &models.iter().find(|(t, _)| *t == task).expect("loaded above").1;
    let diagnosis = block_on(diagnoser.diagnose_frame(&study, &frame)).map_err(|e| format!("{name}: {e}"))?;
    if let Some(out) = &args.heatmap {
        let overlay = bedside_diagnosis::overlay(&study, &frame, &diagnosis);
        overlay.save(out).map_err(|e| format!("could not write {}: {e}", out.display()))?;
    }
    if (args.outline.is_some() || args.mask.is_some()) && diagnosis.lesion.is_none() {
        let why = if args.fp32 { "with --fp32" } else { "(only breast and skin have one)" };
        return Err(format!("{name}: the {} model has no lesion decoder {why}", task.name()));
    }
    if let Some(out) = &args.outline {
        let picture = bedside_diagnosis::outline(&study, &frame, &diagnosis);
        picture.save(out).map_err(|e| format!("could not write {}: {e}", out.display()))?;
    }
    if let Some(out) = &args.mask {
        write_mask(out, &bedside_diagnosis::lesion_mask(&frame, &diagnosis), frame.columns, frame.rows)?;
    }
    Ok(routed.assess(diagnosis))
}
