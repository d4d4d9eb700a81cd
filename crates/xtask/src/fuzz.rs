//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `fuzz/` (libFuzzer, nightly toolchain) for a
//! fixed time each and reports executions and crashes.
//!
//! Seeds come from `fuzz/corpus/<target>/` (committed, read only) and, for `dicom`, the small files
//! of the DICOM test corpus but its JPEG 2000 ones, which seed `jpeg2000` instead with the HTJ2K
//! files the reference run derives (`bedside_corpus::reference`); what libFuzzer adds goes to a
//! working corpus in the target folder
//! (`fuzz/corpus/<target>` in Cargo's target directory), kept between runs and never committed.
//! A crashing input is written to `fuzz/artifacts/<target>/`, where the stable replay test
//! (`crates/imaging/tests/fuzz_replay.rs`) picks it up once it is fixed.

use crate::{output, root, run, step, target_dir};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The fuzz targets of `fuzz/fuzz_targets/`.
pub const TARGETS: [&str; 3] = ["dicom", "jpeg2000", "photo"];

/// cargo-fuzz, pinned (installed with `cargo +nightly install --locked` when missing).
const CARGO_FUZZ: &str = "0.13.2";

/// Corpus files up to this size seed the `dicom` target; larger ones slow every mutation down.
const MAX_SEED_BYTES: u64 = 16 << 10;

/// The build's flags beside cargo-fuzz's own (debug assertions, ASan, coverage): std's optional
/// precondition checks off. openjp2 0.6.1 hands `dealloc` a null code-block buffer whenever it
/// frees a tile (`opj_tcd_code_block_dec_deallocate`, after valid streams too), which nightly's
/// checks abort on, so every JPEG 2000 input stopped the run on a fault outside Bedside. Natively
/// the system allocator ignores a null free and in Wasm `c_runtime`'s allocator does; debug
/// assertions, overflow checks and ASan stay on.
const RUSTFLAGS: &str = "-Zub-checks=no";

/// JPEG 2000 and HTJ2K transfer syntaxes (1.2.840.10008.1.2.4.90–93, .201–203): their files seed
/// `jpeg2000`, not `dicom`, so each target's executions say what they exercised.
fn is_jpeg_2000(file: &Path) -> bool {
    let head = std::fs::read(file).unwrap_or_default();
    head.windows(21).take(1024).any(|w| w == b"1.2.840.10008.1.2.4.9")
        || head.windows(22).take(1024).any(|w| w == b"1.2.840.10008.1.2.4.20")
}

/// What one run of a target came to, from libFuzzer's final statistics.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    executions: u64,
    exec_per_sec: u64,
    seconds: u64,
    /// Inputs libFuzzer saved (`Test unit written to …`): crashes, timeouts, out-of-memory and slow
    /// inputs all count.
    crashes: Vec<String>,
}

/// Runs `target` (every target if `None`) for `seconds` each, or until `runs` executions if that
/// comes first; fails if any crashed.
pub fn fuzz(target: Option<&str>, seconds: u64, runs: Option<u64>) -> Result<()> {
    let targets: Vec<&str> = match target {
        Some(name) if TARGETS.contains(&name) => vec![name],
        Some(name) => bail!("no fuzz target {name:?} (there are: {})", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    install_cargo_fuzz()?;
    let mut crashed = Vec::new();
    let mut summary = Vec::new();
    for target in targets {
        match runs {
            Some(runs) => step(&format!("fuzzing {target} for {runs} executions or {seconds} s")),
            None => step(&format!("fuzzing {target} for {seconds} s")),
        }
        let work = working_corpus(target)?;
        let stats = run_target(target, &work, seconds, runs)?;
        let line = format!(
            "{target}: {} executions in {} s ({} exec/s), {} crash(es)",
            stats.executions,
            stats.seconds,
            stats.exec_per_sec,
            stats.crashes.len()
        );
        println!("{line}");
        summary.push(line);
        crashed.extend(stats.crashes);
    }
    println!("\n{}", summary.join("\n"));
    if !crashed.is_empty() {
        bail!(
            "the fuzzers saved {} crashing input(s): {}\nfix them, keep the files, and `cargo test -p \
             bedside-imaging --test fuzz_replay` replays them",
            crashed.len(),
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly …` through rustup, outside the stable toolchain `cargo xtask` runs under.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(root());
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

fn install_cargo_fuzz() -> Result<()> {
    let version = output(nightly_cargo().args(["fuzz", "--version"])).unwrap_or_default();
    if version.split_whitespace().last() == Some(CARGO_FUZZ) {
        return Ok(());
    }
    step(&format!("installing cargo-fuzz {CARGO_FUZZ} (a few minutes, once)"));
    run(nightly_cargo().args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ])).context(
        "could not install cargo-fuzz: it needs the nightly toolchain (`rustup toolchain install nightly`)",
    )
}

/// The folder libFuzzer writes new inputs to, seeded with the DICOM corpus's small files (`dicom`:
/// all but JPEG 2000; `jpeg2000`: those, and the reference run's HTJ2K files).
fn working_corpus(target: &str) -> Result<PathBuf> {
    let work = target_dir().join("fuzz").join("corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("could not create {}", work.display()))?;
    if target == "photo" {
        return Ok(work);
    }
    let mut files = match bedside_corpus::files() {
        Ok(files) => files,
        Err(e) => {
            println!("(no DICOM corpus to seed from, `cargo xtask corpus` fetches it: {e})");
            Vec::new()
        }
    };
    if target == "jpeg2000" {
        let run = bedside_corpus::reference::ensure().context("the reference run derives the HTJ2K seeds")?;
        files.extend(bedside_corpus::dcm_files(&run.join("derived")));
    }
    for file in files {
        let small = file.metadata().is_ok_and(|m| m.len() <= MAX_SEED_BYTES);
        let name = file.file_name().unwrap_or_default();
        if small && is_jpeg_2000(&file) == (target == "jpeg2000") && !work.join(name).exists() {
            std::fs::copy(&file, work.join(name))
                .with_context(|| format!("could not copy {}", file.display()))?;
        }
    }
    Ok(work)
}

fn run_target(target: &str, work: &Path, seconds: u64, runs: Option<u64>) -> Result<Stats> {
    let fuzz = root().join("fuzz");
    let mut cmd = nightly_cargo();
    let committed = fuzz.join("corpus").join(target);
    // `-O`: the fuzz workspace's release profile decides debug assertions and overflow checks.
    cmd.args(["fuzz", "run", "-O", target])
        .env("RUSTFLAGS", RUSTFLAGS)
        // Thread-local destructors of jpeg-decoder's worker threads, caught mid-exit (see the file).
        .env("LSAN_OPTIONS", format!("suppressions={}", fuzz.join("lsan.supp").display()))
        .arg("--target-dir")
        .arg(target_dir().join("fuzz"))
        .arg(work);
    // `jpeg2000` has no committed seeds: its streams come from the corpus and the reference run.
    if committed.is_dir() {
        cmd.arg(committed);
    }
    cmd.arg("--").arg(format!("-max_total_time={seconds}"));
    if let Some(runs) = runs {
        cmd.arg(format!("-runs={runs}"));
    }
    cmd.arg(format!("-dict={}", fuzz.join(format!("{target}.dict")).display()))
        // An input that takes this long is a finding, like a crash (libFuzzer's default is 20 min).
        .arg("-timeout=10")
        // The app's limits allow a 256 MiB frame; a few hundred bytes should never need more than this.
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("could not start {cmd:?}"))?;
    // libFuzzer reports on stderr: echo it and keep the lines the statistics are read from.
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().context("no stderr")?).lines() {
        let line = line?;
        eprintln!("{line}");
        lines.push(line);
    }
    let status = child.wait()?;
    let stats = parse_stats(&lines);
    if !status.success() && stats.crashes.is_empty() {
        bail!("{cmd:?} failed ({status}) without saving a crash: see its output above");
    }
    Ok(stats)
}

/// Reads libFuzzer's `-print_final_stats=1` lines (`stat::number_of_executed_units: N`, …), falling
/// back on the last status line (`#N DONE … exec/s: E …`), and every `Test unit written to PATH`.
fn parse_stats(lines: &[String]) -> Stats {
    let mut stats = Stats::default();
    let mut status_line = None;
    for line in lines {
        let number = |prefix: &str| line.strip_prefix(prefix).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = number("stat::number_of_executed_units:") {
            stats.executions = n;
        } else if let Some(n) = number("stat::average_exec_per_sec:") {
            stats.exec_per_sec = n;
        } else if let Some(path) = line.split("Test unit written to ").nth(1) {
            stats.crashes.push(path.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("Done ") {
            // "Done 123 runs in 60 second(s)"
            stats.seconds = rest.split_whitespace().nth(3).and_then(|s| s.parse().ok()).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix('#') {
            let executions = rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
            let rate = line.split("exec/s: ").nth(1).and_then(|r| r.split_whitespace().next());
            if let (Some(n), Some(r)) = (executions, rate.and_then(|r| r.parse::<u64>().ok())) {
                status_line = Some((n, r));
            }
        }
    }
    if let (0, Some((n, r))) = (stats.executions, status_line) {
        (stats.executions, stats.exec_per_sec) = (n, r);
    }
    if stats.seconds == 0 && stats.exec_per_sec > 0 {
        stats.seconds = stats.executions / stats.exec_per_sec;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_and_crashes_are_read() {
        let lines: Vec<String> = [
            "#2\tINITED cov: 10 ft: 10 corp: 1/1b exec/s: 0 rss: 30Mb",
            "#81234\tDONE   cov: 5012 ft: 20001 corp: 900/40Kb lim: 4096 exec/s: 1353 rss: 412Mb",
            "Done 81234 runs in 60 second(s)",
            "stat::number_of_executed_units: 81234",
            "stat::average_exec_per_sec:     1353",
            "stat::new_units_added:          321",
        ]
        .map(String::from)
        .to_vec();
        let stats = parse_stats(&lines);
        assert_eq!((stats.executions, stats.exec_per_sec, stats.seconds), (81234, 1353, 60));
        assert!(stats.crashes.is_empty());
        let without_final_stats = parse_stats(&lines[..2]);
        assert_eq!((without_final_stats.executions, without_final_stats.exec_per_sec), (81234, 1353));
    }

    #[test]
    fn a_crash_is_counted_with_its_file() {
        let lines: Vec<String> = [
            "#1024\tNEW    cov: 400 ft: 900 corp: 40/2Kb lim: 4096 exec/s: 512 rss: 60Mb L: 12/300 MS: 1 ChangeByte-",
            "==123== ERROR: libFuzzer: deadly signal",
            "artifact_prefix='fuzz/artifacts/dicom/'; Test unit written to fuzz/artifacts/dicom/crash-abc",
            "stat::number_of_executed_units: 1100",
            "stat::average_exec_per_sec:     550",
        ]
        .map(String::from)
        .to_vec();
        let stats = parse_stats(&lines);
        assert_eq!(stats.crashes, ["fuzz/artifacts/dicom/crash-abc"]);
        assert_eq!((stats.executions, stats.exec_per_sec, stats.seconds), (1100, 550, 2));
    }
}
