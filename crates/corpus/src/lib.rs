//! The DICOM test corpus: the `.dcm` files that ship inside two wheels on the Python package registry
//! (`pydicom` 3.0.2 and `pydicom-data` 1.0.0).
//!
//! [`ensure`] downloads both wheels with `pip download --no-deps`, checks their SHA-256 against the
//! pinned hashes, and unpacks their 172 `.dcm` files into a cache folder — `target/corpus` by default,
//! `BEDSIDE_CORPUS` to override. It is idempotent and safe to call from tests running in parallel. The
//! corpus is never committed to the project. [`fetch_wheel`] does the same for any other pinned wheel;
//! [`photos`] fetches ordinary photographs the same way (the trust gate's `other` pictures).
//!
//! [`reference::ensure`] runs the pinned reference decoder (pydicom) over the corpus, once per corpus
//! and script, for the conformance test.
//!
//! [`shared_data`] finds the training/validation images at `BEDSIDE_DATA` (default `../shared/data`),
//! for tests that skip when they are absent — except under `BEDSIDE_REQUIRE_DATA=1`, where absence fails.
//!
//! ```no_run
//! let mr = bedside_corpus::find("MR_small.dcm").unwrap();
//! assert!(mr.is_file());
//! ```

pub mod reference;

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned wheels: requirement and SHA-256 of the file pip downloads.
pub const WHEELS: [(&str, &str); 2] = [
    ("pydicom==3.0.2", "abf971a5440f84dbaf42c4b6758e30e62480902584f8b270b9a5d146e278a07b"),
    ("pydicom-data==1.0.0", "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637"),
];

/// How many `.dcm` files the two wheels hold together.
pub const EXPECTED_FILES: usize = 172;

const COMPLETE_MARKER: &str = ".complete";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("could not run `python3 -m pip download` (is Python 3 with pip installed?): {0}")]
    PipMissing(std::io::Error),
    #[error("`pip download {requirement}` failed: {stderr}")]
    PipFailed { requirement: String, stderr: String },
    #[error("{file} has SHA-256 {actual}, expected {expected}: refusing to use it")]
    HashMismatch { file: PathBuf, actual: String, expected: String },
    #[error("pip downloaded no wheel for {0}")]
    NoWheel(String),
    #[error("could not unpack {path}: {detail}")]
    Unzip { path: PathBuf, detail: String },
    #[error("the corpus holds {found} .dcm files, expected {EXPECTED_FILES}")]
    WrongCount { found: usize },
    #[error("{name} is not in the corpus at {dir}")]
    NotFound { name: String, dir: PathBuf },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_path_buf(), source }
}

/// Wheels whose sample photographs stand for "a picture that is none of the three kinds":
/// requirement, SHA-256 (CPython 3.11, manylinux x86-64) and the folder inside the wheel.
pub const PHOTO_WHEELS: [(&str, &str, &str); 3] = [
    (
        "scikit-image==0.25.2",
        "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641",
        "skimage/data",
    ),
    (
        "scikit-learn==1.6.1",
        "25fc636bdaf1cc2f4a124a116312d837148b5e10872147bdaf4887926b8c03d8",
        "sklearn/datasets/images",
    ),
    (
        "matplotlib==3.10.1",
        "0f69dc9713e4ad2fb21a1c30e37bd445d496524257dfda40ff4a8efb3604ab5c",
        "matplotlib/mpl-data/sample_data",
    ),
];

/// The photographs (PNG and JPEG) of [`PHOTO_WHEELS`], fetched into `dest` on first use; sorted by
/// file name.
pub fn photos(dest: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut all = Vec::new();
    for (requirement, sha256, folder) in PHOTO_WHEELS {
        let wanted = |p: &Path| {
            p.starts_with(folder) && p.extension().is_some_and(|e| e == "png" || e == "jpg" || e == "jpeg")
        };
        all.extend(fetch_wheel(requirement, sha256, dest, wanted)?);
    }
    all.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    Ok(all)
}

/// Where the photographs are cached: `photos/` in Cargo's target directory (their own folder: a
/// wheel's marker records what the first caller's filter took, see [`fetch_wheel`]).
pub fn photos_dir() -> PathBuf {
    target_dir().join("photos")
}

/// Where the corpus lives: `$BEDSIDE_CORPUS`, else `corpus/` in Cargo's target directory.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BEDSIDE_CORPUS") {
        return PathBuf::from(dir);
    }
    target_dir().join("corpus")
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Makes sure the corpus is unpacked and complete; returns its folder.
pub fn ensure() -> Result<PathBuf, Error> {
    let dir = dir();
    fs::create_dir_all(&dir).map_err(io("could not create", &dir))?;
    let marker = dir.join(COMPLETE_MARKER);
    if marker.is_file() {
        return Ok(dir);
    }
    // Tests call this in parallel: one process downloads, the others wait and then see the marker.
    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path).map_err(io("could not create", &lock_path))?;
    lock.lock().map_err(io("could not lock", &lock_path))?;
    if marker.is_file() {
        return Ok(dir);
    }
    let wheels = dir.join("wheels");
    fs::create_dir_all(&wheels).map_err(io("could not create", &wheels))?;
    let mut found = 0;
    for (requirement, sha256) in WHEELS {
        let wheel = download(requirement, sha256, &wheels, &[])?;
        found += unpack(&wheel, &dir, |p| p.extension().is_some_and(|e| e == "dcm"))?.len();
    }
    if found != EXPECTED_FILES {
        return Err(Error::WrongCount { found });
    }
    fs::write(&marker, found.to_string()).map_err(io("could not write", &marker))?;
    Ok(dir)
}

/// The corpus file with this file name (e.g. `MR_small.dcm`), fetching the corpus if needed.
pub fn find(name: &str) -> Result<PathBuf, Error> {
    let dir = ensure()?;
    let mut hits = Vec::new();
    walk(&dir, &mut |p| {
        if p.file_name().is_some_and(|n| n == name) {
            hits.push(p.to_path_buf());
        }
    });
    hits.sort();
    hits.into_iter().next().ok_or(Error::NotFound { name: name.into(), dir })
}

/// Downloads one pinned wheel into `dest/wheels/`, checks its SHA-256, and unpacks the members whose
/// path inside the wheel `wanted` accepts under `dest/<wheel file stem>/`; returns their paths, sorted.
///
/// pip resolves for CPython 3.11 on manylinux x86-64 whatever the host, so that a pinned hash names
/// the same file everywhere (pure-Python wheels match any platform). Idempotent and safe to call from
/// tests running in parallel: a marker per requirement records what was unpacked — so each `dest`
/// must always be used with the same `wanted`.
pub fn fetch_wheel(
    requirement: &str,
    sha256: &str,
    dest: &Path,
    wanted: impl Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, Error> {
    fs::create_dir_all(dest).map_err(io("could not create", dest))?;
    let marker = dest.join(format!(".{requirement}.{}", sha256.get(..16).unwrap_or(sha256)));
    let unpacked = |marker: &Path| -> Option<Vec<PathBuf>> {
        let list = fs::read_to_string(marker).ok()?;
        let paths: Vec<PathBuf> = list.lines().map(|l| dest.join(l)).collect();
        paths.iter().all(|p| p.is_file()).then_some(paths)
    };
    if let Some(paths) = unpacked(&marker) {
        return Ok(paths);
    }
    let lock_path = dest.join(".lock");
    let lock = File::create(&lock_path).map_err(io("could not create", &lock_path))?;
    lock.lock().map_err(io("could not lock", &lock_path))?;
    if let Some(paths) = unpacked(&marker) {
        return Ok(paths);
    }
    let wheels = dest.join("wheels");
    fs::create_dir_all(&wheels).map_err(io("could not create", &wheels))?;
    let wheel = download(requirement, sha256, &wheels, &PINNED_TAGS)?;
    let mut paths = unpack(&wheel, dest, wanted)?;
    paths.sort();
    let list: Vec<String> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(dest).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    fs::write(&marker, list.join("\n")).map_err(io("could not write", &marker))?;
    Ok(paths)
}

/// The interpreter and platform [`fetch_wheel`] asks pip to resolve for.
const PINNED_TAGS: [&str; 8] = [
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    "--platform",
    "manylinux2014_x86_64",
];

/// The shared data folder (`$BEDSIDE_DATA`, default `../shared/data` beside the workspace), or `None`
/// after printing why `test` is skipped. Panics — failing the test — when it is absent and
/// `BEDSIDE_REQUIRE_DATA=1`.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("BEDSIDE_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/data"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let reason = format!("{test}: the shared data folder {} is absent", dir.display());
    if std::env::var("BEDSIDE_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!("{reason} and BEDSIDE_REQUIRE_DATA=1");
    }
    eprintln!("skipped {reason} (set BEDSIDE_DATA)");
    None
}

/// The workspace root: two levels above `CARGO_MANIFEST_DIR` (every crate is `crates/<name>`), read
/// at run time where cargo sets it (tests, `cargo run`). The path compiled in is only the fallback:
/// a build cache shared by checkouts at different paths reuses binaries built in another checkout.
pub fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.ancestors().nth(2).map_or(manifest.clone(), Path::to_path_buf)
}

/// Every `.dcm` file in the corpus, sorted.
pub fn files() -> Result<Vec<PathBuf>, Error> {
    Ok(dcm_files(&ensure()?))
}

/// Every `.dcm` file under `dir`, sorted.
pub fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut |p| {
        if p.extension().is_some_and(|e| e == "dcm") {
            out.push(p.to_path_buf());
        }
    });
    out.sort();
    out
}

/// The wheels whose DICOM test files make the interop corpus: files from other toolkits' test
/// suites (nibabel's MR slices, pynetdicom's CT, MR big-endian, JPEG 2000, RT image and deflated
/// files), kept apart from the main corpus, which the trust gate trains on.
pub const INTEROP_WHEELS: [(&str, &str); 2] = [
    ("nibabel==5.4.2", "553482c5f1e1034fc312edf6fb7f32236c0056439845d1c29293b7e8c98d4854"),
    ("pynetdicom==3.0.4", "bc3f8869db4c90634336dfb02d7b6c249771e8b167e841254997a315d8e16f72"),
];

/// Where the interop corpus lives: `interop-corpus/` in Cargo's target directory.
pub fn interop_dir() -> PathBuf {
    target_dir().join("interop-corpus")
}

/// Makes sure the interop corpus is unpacked (gzipped `.dcm.gz` files inflated beside themselves);
/// returns its `.dcm` files, sorted.
pub fn ensure_interop() -> Result<Vec<PathBuf>, Error> {
    let dir = interop_dir();
    let wanted = |p: &Path| {
        let name = p.to_string_lossy();
        name.ends_with(".dcm") || name.ends_with(".dcm.gz")
    };
    for (requirement, sha256) in INTEROP_WHEELS {
        for path in fetch_wheel(requirement, sha256, &dir, wanted)? {
            let Some(inflated) = path.to_str().and_then(|p| p.strip_suffix(".gz")) else { continue };
            if Path::new(inflated).is_file() {
                continue;
            }
            let gz = File::open(&path).map_err(io("could not open", &path))?;
            let tmp = PathBuf::from(format!("{inflated}.tmp"));
            let mut out = File::create(&tmp).map_err(io("could not create", &tmp))?;
            std::io::copy(&mut flate2::read::GzDecoder::new(gz), &mut out)
                .map_err(io("could not inflate", &path))?;
            fs::rename(&tmp, inflated).map_err(io("could not write", Path::new(inflated)))?;
        }
    }
    Ok(dcm_files(&dir))
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, visit);
        } else {
            visit(&path);
        }
    }
}

fn sha256_hex(path: &Path) -> Result<String, Error> {
    let bytes = fs::read(path).map_err(io("could not read", path))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Downloads one wheel (unless a file with the right hash is already there) and checks its hash.
/// `pip_args` go to `pip download` before the requirement.
fn download(requirement: &str, sha256: &str, wheels: &Path, pip_args: &[&str]) -> Result<PathBuf, Error> {
    let stem = requirement.split("==").next().unwrap_or(requirement).replace('-', "_");
    let existing = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".whl") && name.replace('-', "_").starts_with(&format!("{stem}_"))
            })
            .collect();
        v.sort();
        v
    };
    for wheel in existing(wheels) {
        if sha256_hex(&wheel)? == sha256 {
            return Ok(wheel);
        }
    }
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "-d"])
        .arg(wheels)
        .args(pip_args)
        .arg(requirement)
        .output()
        .map_err(Error::PipMissing)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Error::PipFailed { requirement: requirement.into(), stderr });
    }
    let wheel = existing(wheels).pop().ok_or_else(|| Error::NoWheel(requirement.into()))?;
    let actual = sha256_hex(&wheel)?;
    if actual != sha256 {
        let _ = fs::remove_file(&wheel);
        return Err(Error::HashMismatch { file: wheel, actual, expected: sha256.into() });
    }
    Ok(wheel)
}

/// Unpacks the members of a wheel that `wanted` accepts under `dest/<wheel stem>/`; returns their paths.
fn unpack(wheel: &Path, dest: &Path, wanted: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, Error> {
    let unzip = |detail: String| Error::Unzip { path: wheel.to_path_buf(), detail };
    let file = File::open(wheel).map_err(io("could not open", wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| unzip(e.to_string()))?;
    let stem = wheel.file_stem().and_then(|s| s.to_str()).unwrap_or("wheel");
    let mut unpacked = Vec::new();
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(|e| unzip(e.to_string()))?;
        let Some(relative) = member.enclosed_name() else { continue };
        if member.is_dir() || !wanted(&relative) {
            continue;
        }
        let out = dest.join(stem).join(relative);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io("could not create", parent))?;
        }
        let mut target = File::create(&out).map_err(io("could not create", &out))?;
        std::io::copy(&mut member, &mut target).map_err(io("could not write", &out))?;
        unpacked.push(out);
    }
    Ok(unpacked)
}
