//! `cargo xtask bench load` (also part of `cargo xtask bench`): a tablet's first visit on a slow
//! link — navigation to the first diagnosis of a chest film, with an empty cache, every request
//! through a proxy that adds 40 ms and shares 10 Mbit/s (`tests/bench/load.mjs`, headless Chromium,
//! CPU path) — and what the page downloads.
//!
//! The film is the corpus's 16-bit CR `RG1_UNCR.dcm` without its patient's birth date (as in `bench
//! memory`: the children's chest model answers it rather than refusing an adult's film). Written to
//! `bench/load.{md,json}` in the target folder and as top-level keys of `bench/report.json`:
//! `cold_start_ms` (median of the runs), `app_code_gzip_bytes` (the wasm, JavaScript and CSS sent
//! before the first diagnosis, as sent: gzip, headers included) and `download_gzip_bytes` (every file
//! of the site, all models included, as sent to a browser that takes gzip).

use crate::{root, serve, site, step, web};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::process::Command;

/// Fresh visits timed; the median is reported.
const RUNS: u32 = 3;

pub fn bench() -> Result<()> {
    let (dir, film) = crate::memory_bench::prepare_page_bench()?;

    step("First visit on a slow link, in headless Chromium");
    web::build()?;
    let site_dir = crate::build_site(None, None)?;
    let download = site::sent_bytes(&site_dir)?;
    let server = serve::Server::start(site_dir, 0)?;
    let lines = crate::bench::json_lines(
        Command::new("node")
            .arg(root().join("tests/bench/load.mjs"))
            .arg("--film")
            .arg(&film)
            .args(["--runs", &RUNS.to_string()])
            .env("BEDSIDE_URL", format!("http://{}", server.addr())),
        "tests/bench/load.mjs",
    )?;
    let v = lines.into_iter().last().context("load.mjs printed no result")?;
    println!("{v}");
    let number = |key: &str| v[key].as_f64().with_context(|| format!("load.mjs gave no {key}"));
    let (cold, code, before) =
        (number("cold_start_ms")?, number("app_code_bytes")?, number("bytes_before_diagnosis")?);

    let mb = |bytes: f64| format!("{:.2} MB", bytes / 1e6);
    let mut table = String::from("| measure | value |\n|---|---:|\n");
    let _ = writeln!(
        table,
        "| navigation → first diagnosis of a chest film (`cold_start_ms`) | {:.0} ms |",
        cold
    );
    let _ =
        writeln!(table, "| wasm + JavaScript + CSS sent before it (`app_code_gzip_bytes`) | {} |", mb(code));
    let _ = writeln!(table, "| everything sent before it | {} |", mb(before));
    let _ = writeln!(
        table,
        "| the whole site as sent, all four models included (`download_gzip_bytes`) | {} |",
        mb(download as f64)
    );
    let _ = writeln!(
        table,
        "\nA fresh browser context per visit (empty cache), median of {RUNS}; every request of the page, its \
         worker and its service worker through a proxy adding 40 ms per request and sharing 10 Mbit/s; \
         the film `RG1_UNCR.dcm` without its birth date, opened as soon as the page is ready; bytes as \
         sent (gzip where the server sends it, headers included)."
    );
    println!("\n{table}");
    std::fs::write(dir.join("load.md"), &table)?;
    std::fs::write(dir.join("load.json"), serde_json::to_string_pretty(&v)?)?;
    let keys = serde_json::json!({
        "cold_start_ms": cold,
        "app_code_gzip_bytes": code,
        "download_gzip_bytes": download,
    });
    crate::memory_bench::merge_report(&dir, keys)?;
    println!("written to {}", dir.join("load.md").display());
    Ok(())
}
