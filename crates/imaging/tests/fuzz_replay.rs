//! Every fuzzer seed (`fuzz/corpus/<target>/`) and every input a fuzzer once crashed on
//! (`fuzz/artifacts/<target>/`, kept once fixed) through the fuzz targets' own entry,
//! `bedside_imaging::fuzzing::decode`, on the stable toolchain: no panic, and each input either
//! decodes to a non-empty picture of its declared size or is refused with a one-line message.

use bedside_imaging::fuzzing;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files directly under `fuzz/<kind>/<target>/` for every target, sorted.
fn inputs(kind: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for target in ["dicom", "photo"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs every input; returns how many decoded, and the failures (panics and bad outcomes) by file.
fn replay(files: &[PathBuf]) -> (usize, Vec<String>) {
    let (mut decoded, mut failures) = (0, Vec::new());
    for path in files {
        let name = path.strip_prefix(fuzz_dir()).unwrap_or(path).display().to_string();
        let bytes = std::fs::read(path).unwrap();
        match catch_unwind(AssertUnwindSafe(|| fuzzing::decode(&bytes))) {
            Ok(Ok(d)) if d.rows > 0 && d.columns > 0 && d.frames > 0 && matches!(d.samples, 1 | 3) => {
                decoded += 1
            }
            Ok(Ok(d)) => failures.push(format!("{name}: decoded to an empty or odd picture {d:?}")),
            Ok(Err(e)) if !e.to_string().trim().is_empty() && !e.to_string().contains('\n') => {}
            Ok(Err(e)) => failures.push(format!("{name}: refused without a one-line message: {e:?}")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failures.push(format!("{name}: panicked: {message}"));
            }
        }
    }
    (decoded, failures)
}

#[test]
fn seeds_decode() {
    let files = inputs("corpus");
    assert!(files.len() >= 10, "only {} seed files under fuzz/corpus", files.len());
    let (decoded, failures) = replay(&files);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The seeds are inputs that decode (the fuzz_seeds example checks that as it writes them).
    assert_eq!(decoded, files.len(), "every seed decodes");
}

#[test]
fn saved_crashes_no_longer_crash() {
    let files = inputs("artifacts");
    let (decoded, failures) = replay(&files);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{} former crashes: {decoded} decode, {} are refused", files.len(), files.len() - decoded);
}
