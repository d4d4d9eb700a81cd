//! The production build of the page (`cargo xtask build`): everything the app loads, and nothing
//! else, in one folder that `serve` serves as it is. The page, `web/` (but the service worker's
//! source), `pkg/` (the wasm and its glue), the shipped models (`model.bin` + `model.json`, the
//! lesion decoder where a task has one, and `MODEL_CARD.md`, which the model card links to), the
//! icons (drawn here, see [`icons`]), the web app manifest, `version.json` (the build id) and
//! `sw.js`, the service worker (`web/sw.js`) with the precache list: every file's path and SHA-256 in
//! Subresource Integrity form. File names stay as they are; the list's hashes are what tie a
//! service worker to exactly one build's bytes (it fetches each file with its `integrity` and
//! keeps them in one cache named after the build). Beside each file worth it, its gzip copy
//! (`bedside_site_policy::negotiate` says when a server sends it); the copies are an encoding, not
//! files of the site: not in the precache list, not in the build id.

mod icons;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The cache a build's service worker keeps its files in is `CACHE_PREFIX` + the build id.
pub const CACHE_PREFIX: &str = "bedside-";

/// Files of a model folder the page fetches (`web/worker.js`) or links to (`web/diagnosis.js`);
/// the fp32 weights, plots and cross-validation records stay out.
const MODEL_FILES: [&str; 5] = ["model.json", "model.bin", "lesion.json", "lesion.bin", "MODEL_CARD.md"];

/// The page's theme, also the icons' background and the manifest's colours (`web/style.css` `--bg`).
pub const THEME: [u8; 3] = [0x0b, 0x0d, 0x10];

/// What was written.
pub struct Site {
    pub dir: PathBuf,
    pub build_id: String,
    pub files: usize,
    pub bytes: u64,
    /// What the files weigh sent as the servers send them to a browser: each gzip copy, or the file
    /// where it has none.
    pub sent_bytes: u64,
}

/// Writes the site for the repository at `root` into `out` (replaced whole, so no file of an
/// earlier build is left), from the `pkg/` the wasm build left. `build_id` defaults to a digest of
/// every file's path and content, so an unchanged app keeps its id and its cache.
pub fn assemble(root: &Path, out: &Path, build_id: Option<&str>) -> Result<Site> {
    let mut staging = out.as_os_str().to_owned();
    staging.push(".partial");
    let staging = PathBuf::from(staging);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("could not remove {}", staging.display()))?;
    }
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut copy = |from: PathBuf, to: String| -> Result<()> {
        let bytes = std::fs::read(&from).with_context(|| format!("could not read {}", from.display()))?;
        files.insert(to, bytes);
        Ok(())
    };
    copy(root.join("index.html"), "index.html".into())?;
    for name in listing(&root.join("web"))? {
        // The service worker's source becomes /sw.js (below); bridge.md documents, it is not loaded.
        if (name.ends_with(".js") || name.ends_with(".css")) && name != "sw.js" {
            copy(root.join("web").join(&name), format!("web/{name}"))?;
        }
    }
    // Both builds of the module: the CPU one the worker starts with, the WebGPU one it may fetch.
    for (dir, _) in crate::web::BUILDS {
        for name in ["bedside_web.js", "bedside_web_bg.wasm"] {
            let from = root.join(dir).join(name);
            if !from.is_file() {
                bail!("{} is missing: the wasm build (cargo xtask build) writes it", from.display());
            }
            copy(from, format!("{dir}/{name}"))?;
        }
    }
    let mut models = 0;
    for task in listing(&root.join("models"))? {
        let dir = root.join("models").join(&task);
        // A model folder is one with the weights the page loads.
        if !(dir.join("model.json").is_file() && dir.join("model.bin").is_file()) {
            continue;
        }
        for name in MODEL_FILES {
            if dir.join(name).is_file() {
                copy(dir.join(name), format!("models/{task}/{name}"))?;
            }
        }
        models += 1;
    }
    if models == 0 {
        bail!("no model under {}", root.join("models").display());
    }
    for icon in &icons::ICONS {
        files.insert(format!("icons/{}", icon.file), icons::png(icon)?);
    }
    files.insert("manifest.webmanifest".into(), manifest()?);

    let worker = std::fs::read_to_string(root.join("web/sw.js")).context("could not read web/sw.js")?;
    let build_id = match build_id {
        Some(id) if valid_id(id) => id.to_string(),
        Some(id) => bail!("build id {id:?}: use letters, digits, '.', '_' or '-' (at most 64)"),
        None => {
            // The worker's own code counts too: a new worker must never fill an older build's cache.
            let mut digested = files.clone();
            digested.insert("sw.js".into(), worker.clone().into_bytes());
            content_id(&digested)
        }
    };
    let cache = format!("{CACHE_PREFIX}{build_id}");
    files.insert(
        "version.json".into(),
        serde_json::to_vec_pretty(&json!({ "build": build_id, "cache": cache }))?,
    );
    let precache: BTreeMap<&str, String> =
        files.iter().map(|(path, bytes)| (path.as_str(), integrity(bytes))).collect();
    let build = json!({ "id": build_id, "cache": cache, "prefix": CACHE_PREFIX, "files": precache });
    let sw = format!(
        "// Written by `cargo xtask build`: this build's id, cache and files.\nconst BUILD = {build};\n\n{worker}"
    );
    files.insert("sw.js".into(), sw.into_bytes());
    let bytes: u64 = files.values().map(|b| b.len() as u64).sum();
    let count = files.len();

    let mut sent_bytes = 0;
    for (path, content) in &files {
        let to = staging.join(path);
        std::fs::create_dir_all(to.parent().expect("a file in a folder"))?;
        std::fs::write(&to, content).with_context(|| format!("could not write {}", to.display()))?;
        let copy = bedside_site_policy::worth_compressing(&to).then(|| gzip(content)).transpose()?;
        // Kept where it saves something worth a second request's negotiation.
        match copy.filter(|gz| gz.len() < content.len() / 10 * 9) {
            Some(gz) => {
                let mut name = to.into_os_string();
                name.push(bedside_site_policy::GZIP_SUFFIX);
                std::fs::write(&name, &gz).with_context(|| format!("could not write {name:?}"))?;
                sent_bytes += gz.len() as u64;
            }
            None => sent_bytes += content.len() as u64,
        }
    }
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("could not remove {}", out.display()))?;
    }
    std::fs::rename(&staging, out)
        .with_context(|| format!("could not move the build to {}", out.display()))?;
    Ok(Site { dir: out.to_path_buf(), build_id, files: count, bytes, sent_bytes })
}

/// What a built site's files weigh as sent to a browser that takes gzip
/// (`bedside_site_policy::negotiate`): each file's compressed copy where it has one.
pub fn sent_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            total += sent_bytes(&path)?;
        } else if !path.to_string_lossy().ends_with(bedside_site_policy::GZIP_SUFFIX) {
            let sent = bedside_site_policy::negotiate(&path, Some("gzip"));
            total += std::fs::metadata(&sent.body)?.len();
        }
    }
    Ok(total)
}

/// `bytes` gzip-compressed, at the best level: done once per build, read on every first visit.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// The web app manifest: what a tablet needs to install the page as an app.
fn manifest() -> Result<Vec<u8>> {
    let theme = format!("#{:02x}{:02x}{:02x}", THEME[0], THEME[1], THEME[2]);
    let icons: Vec<_> = icons::ICONS
        .iter()
        .filter(|i| i.purpose.is_some())
        .map(|i| {
            json!({
                "src": format!("icons/{}", i.file),
                "sizes": format!("{0}x{0}", i.size),
                "type": "image/png",
                "purpose": i.purpose,
            })
        })
        .collect();
    Ok(serde_json::to_vec_pretty(&json!({
        "id": "./",
        "name": "Bedside — point-of-care image viewer",
        "short_name": "Bedside",
        "description": "View DICOM files and photos, with decision support from on-device models. No image leaves the device.",
        "start_url": "./index.html",
        "scope": "./",
        "display": "standalone",
        "background_color": theme,
        "theme_color": theme,
        "icons": icons,
    }))?)
}

/// Sorted names in `dir` (not hidden ones).
fn listing(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// `sha256-<base64>`: the form `fetch`'s `integrity` option checks.
fn integrity(bytes: &[u8]) -> String {
    format!("sha256-{}", base64(&Sha256::digest(bytes)))
}

/// The first 16 hex digits of a digest over every path and its content.
fn content_id(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut all = Sha256::new();
    for (path, bytes) in files {
        all.update(path.as_bytes());
        all.update([0]);
        all.update(Sha256::digest(bytes));
    }
    all.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Standard base64 with padding (the one place xtask needs it).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_is_sha256_in_base64() {
        // SHA-256 of "abc" in base64, as `openssl dgst -sha256 -binary | base64` prints it.
        assert_eq!(integrity(b"abc"), "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn the_site_holds_the_app_and_its_precache_list_names_every_file() {
        let tmp = std::env::temp_dir().join(format!("bedside-site-{}", std::process::id()));
        let root = tmp.join("repo");
        for (file, content) in [
            ("index.html", "<!doctype html>"),
            ("web/app.js", "app"),
            ("web/sw.js", "self.addEventListener('install', () => {});"),
            ("web/bridge.md", "doc"),
            ("pkg/bedside_web.js", "glue"),
            ("pkg/bedside_web_bg.wasm", "wasm"),
            ("pkg/webgpu/bedside_web.js", "glue with WebGPU"),
            ("pkg/webgpu/bedside_web_bg.wasm", "wasm with WebGPU"),
            ("models/chest/model.json", "{}"),
            ("models/chest/model.bin", "w"),
            ("models/chest/model-fp32.bin", "fp32"),
            ("models/chest/MODEL_CARD.md", "card"),
            ("models/chest/plots/pruning.png", "png"),
            ("models/README.md", "readme"),
            ("Cargo.toml", "[workspace]"),
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
        let out = tmp.join("site");
        let first = assemble(&root, &out, None).unwrap();
        let again = assemble(&root, &out, None).unwrap();
        assert_eq!(first.build_id, again.build_id, "the same files make the same build id");
        std::fs::write(root.join("web/sw.js"), "self.addEventListener('install', () => 0);").unwrap();
        let new_worker = assemble(&root, &out, None).unwrap();
        assert_ne!(new_worker.build_id, first.build_id, "a changed service worker is a new build");
        let named = assemble(&root, &out, Some("next")).unwrap();
        assert_eq!(named.build_id, "next");
        for absent in [
            "models/chest/model-fp32.bin",
            "models/chest/plots",
            "models/README.md",
            "Cargo.toml",
            "web/bridge.md",
            "web/sw.js",
        ] {
            assert!(!out.join(absent).exists(), "{absent} is not part of the site");
        }
        let sw = std::fs::read_to_string(out.join("sw.js")).unwrap();
        let build: serde_json::Value = serde_json::from_str(
            sw.lines().nth(1).unwrap().trim_start_matches("const BUILD = ").trim_end_matches(';'),
        )
        .unwrap();
        assert_eq!(build["cache"], "bedside-next");
        let listed: Vec<&str> = build["files"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut on_disk = Vec::new();
        walk(&out, &out, &mut on_disk);
        let copies: Vec<String> = on_disk.iter().filter(|f| f.ends_with(".gz")).cloned().collect();
        on_disk.retain(|f| f != "sw.js" && !f.ends_with(".gz"));
        assert_eq!(listed, on_disk, "every file but the worker itself is precached, and nothing else");
        for build in ["pkg/bedside_web_bg.wasm", "pkg/webgpu/bedside_web_bg.wasm"] {
            assert!(listed.contains(&build), "both builds of the module are part of the site: {build}");
        }
        // The gzip copies: beside files of the site, each its file compressed; none for the icons.
        assert!(
            copies.contains(&"sw.js.gz".to_string())
                && copies.contains(&"manifest.webmanifest.gz".to_string())
        );
        for copy in &copies {
            use std::io::Read;
            let file = std::fs::read(out.join(copy.trim_end_matches(".gz"))).unwrap();
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(&std::fs::read(out.join(copy)).unwrap()[..])
                .read_to_end(&mut unpacked)
                .unwrap();
            assert_eq!(unpacked, file, "{copy}");
            assert!(!copy.ends_with(".png.gz"), "{copy}");
        }
        let sent = sent_bytes(&out).unwrap();
        let whole: u64 = on_disk
            .iter()
            .chain(["sw.js".to_string()].iter())
            .map(|f| out.join(f).metadata().unwrap().len())
            .sum();
        assert!(sent < whole, "sent as gzip, the site weighs less ({sent} of {whole} bytes)");
        assert_eq!(build["files"]["models/chest/model.bin"], integrity(b"w"));
        let version: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("version.json")).unwrap()).unwrap();
        assert_eq!(version["build"], "next");
        assert!(assemble(&root, &out, Some("../x")).is_err());
        std::fs::remove_dir_all(tmp).ok();
    }

    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
        out.sort();
    }
}
