//! `bedside lesion`: trains a model folder's lesion decoder on the task's outlines and ships it
//! beside the classifier (`lesion.json` + int8 `lesion.bin`), with its validation Dice and IoU in
//! the model card.

use crate::model_dir::{Weights, invocation, load, read};
use bedside_model::artifact::ModelInfo;
use bedside_model::lesion::{
    FORMAT_VERSION, LesionConfig, LesionDecoder, LesionInfo, decoder_from_bytes, decoder_to_bytes, sha256_hex,
};
use bedside_model::quant;
use bedside_model::student::Student;
use bedside_train::Progress;
use bedside_train::augment::Augment;
use bedside_train::data::Dataset;
use bedside_train::lesion::{LesionReport, LesionSettings, evaluate, train};
use burn::prelude::Device;
use std::path::Path;

/// Train the lesion decoder of a model folder (breast, skin) on the lesion outlines of the train
/// split (masks/ beside images/), reading the shipped classifier's feature maps (model.bin, frozen);
/// write lesion.json and lesion.bin (int8) into the folder, measure Dice and IoU on validation and
/// add the "Lesion outline" section to MODEL_CARD.md. Prints the validation report as JSON. With
/// --eval, only measure the folder's shipped lesion.bin again (after a change to how outlines are
/// drawn) and rewrite the numbers.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::model_dir::Target,
    /// Passes over the train split.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// AdamW's peak learning rate (cosine decay to 0).
    #[arg(long, default_value_t = 2e-3)]
    learning_rate: f64,
    /// Seeds the decoder's initial weights, the batch order and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Channels of every level of the decoder's pyramid (its cost grows with their square).
    #[arg(long, default_value_t = 32)]
    channels: usize,
    /// A pixel is lesion where its probability is at least this.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Stop each epoch after this many batches (smoke runs).
    #[arg(long)]
    max_batches: Option<usize>,
    /// Run the classifier once on N fixed augmented views of every training image and train on
    /// those features, instead of on fresh augmentations every epoch: much faster where the
    /// classifier costs far more than the decoder (EfficientNet-Lite0).
    #[arg(long, value_name = "N")]
    cached_views: Option<usize>,
    /// Measure the shipped lesion.bin on validation again instead of training.
    #[arg(long)]
    eval: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let dir = &args.target.model;
    let (info, student) = load(dir, Weights::Int8)?;
    let (_, classifier_bytes) = read(dir, Weights::Int8)?;
    let data_dir = args.target.data_dir(&info);
    let split = |name: &str| -> Result<_, String> {
        let data = args.target.split(&info, name)?;
        let masks =
            bedside_train::data::require_masks(&data_dir, &data, &info.input).map_err(|e| e.to_string())?;
        Ok((data, masks))
    };
    let (val, val_masks) = split("val")?;
    if args.eval {
        return remeasure(dir, &info, &student, &classifier_bytes, &val, &val_masks);
    }
    let (train_data, train_masks) = split("train")?;
    let settings = LesionSettings {
        decoder: LesionConfig::for_student(&info.network).with_channels(args.channels),
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        weight_decay: 1e-4,
        seed: args.seed,
        augment: Augment::standard(info.task.mirror_is_valid()),
        max_batches: args.max_batches,
        cached_views: args.cached_views.filter(|&n| n > 0),
    };
    let started = std::time::Instant::now();
    let progress = Progress::default();
    let (decoder, history) = train(
        &settings,
        &info,
        &student,
        &train_data,
        &train_masks,
        Some((&val, &val_masks)),
        args.threshold,
        &progress,
    )
    .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();

    // Ship int8 (per-channel, no clipping: the decoder is small) and measure what ships.
    let fp32 = decoder_to_bytes(decoder).map_err(|e| e.to_string())?;
    let weights = quant::read_fp32(fp32).map_err(|e| e.to_string())?;
    let int8 = quant::to_int8(&weights, &Default::default()).map_err(|e| e.to_string())?;
    let shipped =
        decoder_from_bytes(&settings.decoder, int8.clone(), &Device::flex()).map_err(|e| e.to_string())?;
    let report = evaluate(&info, &student, &shipped, &val, &val_masks, args.threshold);

    let command = invocation();
    let mut lesion = LesionInfo {
        format_version: FORMAT_VERSION,
        task: info.task,
        decoder: settings.decoder.clone(),
        classifier_sha256: sha256_hex(&classifier_bytes),
        threshold: args.threshold,
        card: serde_json::json!({
            "command": command,
            "measured_by": command,
            "settings": settings,
            "history": history,
            "seconds": seconds,
            "validation": report,
            "int8_bytes": int8.len(),
        }),
    };
    let bin = dir.join("lesion.bin");
    std::fs::write(&bin, &int8).map_err(|e| format!("could not write {}: {e}", bin.display()))?;
    write_lesion(dir, &mut lesion, &report, macs(&info, &student, &shipped))
}

/// The decoder's and the classifier's multiply–accumulates for one picture at the input size.
fn macs(info: &ModelInfo, student: &Student, decoder: &LesionDecoder) -> [u64; 2] {
    let (h, w) = (info.input.height as usize, info.input.width as usize);
    [decoder.macs(h, w), student.macs(h, w)]
}

/// Writes `lesion.json` (with the decoder's and the classifier's multiply–accumulates), redraws the
/// card from it, and prints the report.
fn write_lesion(
    dir: &Path,
    lesion: &mut LesionInfo,
    report: &LesionReport,
    macs: [u64; 2],
) -> Result<(), String> {
    lesion.card["macs"] = serde_json::json!(macs);
    let json_path = dir.join("lesion.json");
    let text = serde_json::to_string_pretty(lesion).expect("lesion info serialises") + "\n";
    std::fs::write(&json_path, text).map_err(|e| format!("could not write {}: {e}", json_path.display()))?;
    bedside_train::card::write(dir).map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(report).expect("report serialises"));
    Ok(())
}

/// `--eval`: the shipped decoder measured again, its numbers rewritten.
fn remeasure(
    dir: &Path,
    info: &ModelInfo,
    student: &Student,
    classifier_bytes: &[u8],
    val: &Dataset,
    val_masks: &[Vec<u8>],
) -> Result<(), String> {
    let json_path = dir.join("lesion.json");
    let read_failed = |path: &Path, e: std::io::Error| format!("could not read {}: {e}", path.display());
    let text = std::fs::read_to_string(&json_path).map_err(|e| read_failed(&json_path, e))?;
    let mut lesion = LesionInfo::from_json(&text, &info.network, &sha256_hex(classifier_bytes))
        .map_err(|e| format!("{}: {e}", json_path.display()))?;
    let bin = dir.join("lesion.bin");
    let bytes = std::fs::read(&bin).map_err(|e| read_failed(&bin, e))?;
    let decoder = decoder_from_bytes(&lesion.decoder, bytes, &Device::flex()).map_err(|e| e.to_string())?;
    let report = evaluate(info, student, &decoder, val, val_masks, lesion.threshold);
    lesion.card["validation"] = serde_json::to_value(&report).expect("report serialises");
    lesion.card["measured_by"] = invocation().into();
    write_lesion(dir, &mut lesion, &report, macs(info, student, &decoder))
}
