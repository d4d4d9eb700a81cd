//! `bedside`: Bedside's decoding (and, as they land, evaluation and prediction) on the command line.
//! A thin layer over the library crates: parse flags, call the library, print JSON or one error line.

mod arithmetic;
mod calibrate;
mod card;
mod decode;
mod deid;
mod eval;
mod export;
mod heatmaps;
mod lesion;
mod model_dir;
mod predict;
mod prune;
mod quantize;
mod review_band;
mod robustness;
mod size_curve;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "bedside", version, about = "Point-of-care medical image decoding and diagnosis")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Decode(decode::Args),
    Deid(deid::Args),
    Train(train::Args),
    Eval(eval::Args),
    Predict(predict::Args),
    Heatmaps(heatmaps::Args),
    Lesion(lesion::Args),
    Robustness(robustness::Args),
    Prune(prune::Args),
    #[command(visible_alias = "quantise")]
    Quantize(quantize::Args),
    Calibrate(calibrate::Args),
    ReviewBand(review_band::Args),
    SizeCurve(size_curve::Args),
    Card(card::Args),
    Export(export::Args),
    Arithmetic(arithmetic::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
        Command::Deid(args) => deid::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Heatmaps(args) => heatmaps::run(&args),
        Command::Lesion(args) => lesion::run(&args),
        Command::Robustness(args) => robustness::run(&args),
        Command::Prune(args) => prune::run(&args),
        Command::Quantize(args) => quantize::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::ReviewBand(args) => review_band::run(&args),
        Command::SizeCurve(args) => size_curve::run(&args),
        Command::Card(args) => card::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Arithmetic(args) => arithmetic::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bedside: {message}");
            ExitCode::FAILURE
        }
    }
}
