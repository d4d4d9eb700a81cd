//! `cargo xtask bench memory` (also the last part of `cargo xtask bench`): peak memory while a
//! clinician's file is opened and diagnosed.
//!
//! - In the page (`tests/bench/memory.mjs`, headless Chromium, CPU path): the Wasm memory plus the
//!   page's and the worker's JavaScript heaps (ArrayBuffers included) for (1) the corpus's full-size
//!   16-bit CR `RG1_UNCR.dcm` (without its patient's birth date, so that the children's chest model
//!   answers it rather than refusing an adult's film), (2) a 9000 × 9000 JPEG photograph the script
//!   makes, (3) a 400-frame file this module writes, scrolled through frame by frame.
//! - Natively: the peak resident set of `bedside predict` (release build) on the same CR, from the
//!   kernel's accounting of that one process (`wait4`).
//!
//! Written to `bench/memory.{md,json}` in the target folder, and as top-level keys of
//! `bench/report.json` (`peak_memory_cr_bytes`, `peak_memory_photo_bytes` or `photo_refused`,
//! `peak_memory_frames_bytes`, `peak_memory_native_cr_bytes`), whose table `bench/report.md` gathers
//! every part of the bench that has run.

use crate::{cargo, root, serve, setup, step, target_dir, web};
use anyhow::{Context, Result, bail};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The multi-frame file: 400 frames of 256 × 256 16-bit samples, as an MR or CT series stored in
/// one file is (52 MB of pixel data).
const FRAMES: u32 = 400;
const FRAME_SIDE: u32 = 256;

/// What the page benches need: the browser and the wasm toolchain, the corpus, the bench folder in
/// the target folder, and in it the corpus's CR without its age (`without_age`); returns the two.
pub(crate) fn prepare_page_bench() -> Result<(PathBuf, PathBuf)> {
    setup::wasm_toolchain()?;
    setup::browser()?;
    setup::npm_packages()?;
    bedside_corpus::ensure()?;
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cr = dir.join("RG1_UNCR-no-age.dcm");
    std::fs::write(&cr, without_age(&bedside_corpus::find("RG1_UNCR.dcm")?)?)
        .with_context(|| format!("writing {}", cr.display()))?;
    Ok((dir, cr))
}

pub fn bench() -> Result<()> {
    let (dir, cr) = prepare_page_bench()?;
    let frames = dir.join("frames-400.dcm");
    std::fs::write(&frames, multi_frame()?).with_context(|| format!("writing {}", frames.display()))?;
    let photo = dir.join("photo-9000.jpg");

    step("Peak memory, native (release)");
    let native = native_peak(&cr)?;
    println!("bedside predict on {}: peak resident set {:.1} MB", cr.display(), native as f64 / 1e6);

    step("Peak memory, wasm in headless Chromium");
    web::build()?;
    let server = serve::Server::start(crate::build_site(None, None)?, 0)?;
    let out = Command::new("node")
        .arg(root().join("tests/bench/memory.mjs"))
        .arg("--cr")
        .arg(&cr)
        .arg("--frames")
        .arg(&frames)
        .arg("--photo")
        .arg(&photo)
        .env("BEDSIDE_URL", format!("http://{}", server.addr()))
        .stderr(Stdio::inherit())
        .output()
        .context("could not run tests/bench/memory.mjs")?;
    if !out.status.success() {
        bail!("tests/bench/memory.mjs failed ({})", out.status);
    }
    let mut page = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with('{')) {
        println!("{line}");
        let v: Value = serde_json::from_str(line).context("memory.mjs printed a line that is not JSON")?;
        page.insert(v["scenario"].as_str().unwrap_or("?").to_string(), v);
    }
    for scenario in ["cr", "photo", "frames"] {
        if !page.contains_key(scenario) {
            bail!("memory.mjs reported no {scenario} scenario");
        }
    }

    let photo_refused = page["photo"]["outcome"].as_str().is_some_and(|o| o.starts_with("refused"));
    let mut keys = serde_json::json!({
        "peak_memory_cr_bytes": page["cr"]["peak_bytes"],
        "peak_memory_frames_bytes": page["frames"]["peak_bytes"],
        "peak_memory_native_cr_bytes": native,
    });
    if photo_refused {
        keys["photo_refused"] = Value::Bool(true);
    } else {
        keys["peak_memory_photo_bytes"] = page["photo"]["peak_bytes"].clone();
    }

    let mb = |v: &Value| v.as_f64().map_or("—".to_string(), |b| format!("{:.1} MB", b / 1e6));
    let mut table = String::from(
        "| what | where | Wasm memory | JS heap (peak) | peak | target | outcome |\n|---|---|---:|---:|---:|---:|---|\n",
    );
    let rows = [
        ("cr", "16-bit CR `RG1_UNCR.dcm` (no birth date), opened and diagnosed", "150 MB"),
        ("photo", "9000 × 9000 JPEG photograph, opened and diagnosed", "300 MB"),
        ("frames", "400 frames of 256 × 256 × 16 bits, every frame drawn", "200 MB"),
    ];
    for (key, what, target) in rows {
        let v = &page[key];
        let _ = writeln!(
            table,
            "| {what} | page (headless Chromium) | {} | {} | {} | ≤ {target} | {} |",
            mb(&v["wasm_bytes"]),
            mb(&v["js_peak_bytes"]),
            mb(&v["peak_bytes"]),
            v["outcome"].as_str().unwrap_or("?")
        );
    }
    let _ = writeln!(
        table,
        "| the same CR, `bedside predict` | native (release) | — | — | {} | | resident set |",
        mb(&Value::from(native))
    );
    let _ = writeln!(
        table,
        "\nPage: the Wasm memory at the end (it only grows, so this is its peak) plus the peak of the page's \
         and the worker's JavaScript heaps with their ArrayBuffers, sampled every 20 ms over DevTools' \
         protocol; a fresh browser context per file, CPU backend. Native: the peak resident set of the \
         `bedside predict` process (kernel accounting, `wait4`)."
    );
    println!("\n{table}");
    std::fs::write(dir.join("memory.md"), &table)?;
    let raw = serde_json::json!({ "page": page, "native_cr_bytes": native });
    std::fs::write(dir.join("memory.json"), serde_json::to_string_pretty(&raw)?)?;
    merge_report(&dir, keys)?;
    println!("written to {}", dir.join("memory.md").display());
    Ok(())
}

/// Adds `keys` to `report.json` (keeping what other parts of the bench wrote) and redraws
/// `report.md` from every part's table present.
pub(crate) fn merge_report(dir: &Path, keys: Value) -> Result<()> {
    let path = dir.join("report.json");
    let mut report: serde_json::Map<String, Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    for key in ["peak_memory_photo_bytes", "photo_refused"] {
        report.remove(key);
    }
    if let Value::Object(keys) = keys {
        report.extend(keys);
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    let mut md = String::from("# Bedside benchmark report\n");
    for (part, title) in [
        ("comparisons", "Ours against a peer"),
        ("decode", "Decoding"),
        ("lesion", "Lesion outline cost"),
        ("inference", "Inference, native"),
        ("browser-inference", "Inference in the browser"),
        ("memory", "Peak memory"),
        ("load", "First visit"),
    ] {
        if let Ok(table) = std::fs::read_to_string(dir.join(format!("{part}.md"))) {
            let _ = write!(md, "\n## {title}\n\n{table}");
        }
    }
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}

/// The corpus's CR without the patient's age and birth date, as a de-identified copy arrives: the
/// film is an adult's, which the chest model refuses where the file says so (`gate::age_refusal`),
/// and the bench measures a diagnosis.
fn without_age(file: &Path) -> Result<Vec<u8>> {
    let mut obj = dicom_object::open_file(file).with_context(|| format!("reading {}", file.display()))?;
    for tag in [tags::PATIENT_BIRTH_DATE, tags::PATIENT_AGE] {
        obj.remove_element(tag);
    }
    let mut out = Vec::new();
    obj.write_all(&mut out)?;
    Ok(out)
}

/// Peak resident set, in bytes, of `bedside predict` (release) on `file`.
fn native_peak(file: &Path) -> Result<u64> {
    let status = cargo().args(["build", "--quiet", "--release", "--package", "bedside-cli"]).status()?;
    if !status.success() {
        bail!("building bedside-cli failed ({status})");
    }
    let child = Command::new(target_dir().join("release/bedside"))
        .arg("predict")
        .arg("--models")
        .arg(root().join("models"))
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .context("could not start bedside predict")?;
    // `wait4` reports the resources of this one child (std's `wait` would not).
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain syscall on a child this process started and has not waited for; both pointers
    // are to live locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("waiting for bedside predict failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("bedside predict failed (wait status {status})");
    }
    // Linux reports ru_maxrss in kilobytes.
    Ok(usage.ru_maxrss as u64 * 1024)
}

/// A multi-frame MONOCHROME2 file of [`FRAMES`] frames (explicit VR little endian, 16 bits stored
/// in 12): each frame a shaded disc that moves, so consecutive frames differ as a series' do.
fn multi_frame() -> Result<Vec<u8>> {
    let side = FRAME_SIDE as usize;
    let mut pixels: Vec<u16> = Vec::with_capacity(FRAMES as usize * side * side);
    for f in 0..FRAMES as usize {
        let (cx, cy) = (side / 2 + f % 64, side / 2);
        for y in 0..side {
            for x in 0..side {
                let d2 = (x as i64 - cx as i64).pow(2) + (y as i64 - cy as i64).pow(2);
                let v: u16 = if d2 < 80 * 80 { 3000 - (d2 / 4) as u16 } else { (x + y + f) as u16 % 700 };
                pixels.push(v);
            }
        }
    }
    let mut obj = InMemDicomObject::new_empty();
    let sop_class = uids::MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE;
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, sop_class));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.400"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "MR"));
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, FRAMES.to_string()));
    crate::fixtures::put_grey_image(&mut obj, FRAME_SIDE as u16, FRAME_SIDE as u16, 16, 12);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())));
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid("2.25.400");
    let mut out = Vec::new();
    obj.with_meta(meta)?.write_all(&mut out)?;
    Ok(out)
}
