//! Every fuzzer seed (`fuzz/corpus/<target>/`) and every input a fuzzer once crashed on
//! (`fuzz/artifacts/<target>/`, kept once fixed) through the fuzz targets' own entry,
//! `bedside_imaging::fuzzing::decode`, on the stable toolchain: no panic, and each input either
//! decodes to a non-empty picture of its declared size or is refused with a one-line message — and
//! no allocation larger than libFuzzer's limit (natively a huge allocation may well succeed, so an
//! out-of-memory input would otherwise pass here unnoticed).

use bedside_imaging::fuzzing;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// libFuzzer's default `-malloc_limit_mb` (its `-rss_limit_mb`, 2048): one allocation above it is
/// an out-of-memory crash there.
const MALLOC_LIMIT: usize = 2048 << 20;

thread_local! {
    // Const-initialised and without a destructor: touching it never allocates.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest single request of each thread.
struct Largest;

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files directly under `fuzz/<kind>/<target>/` for every target, sorted.
fn inputs(kind: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for target in ["dicom", "jpeg2000", "photo"] {
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
        LARGEST.with(|largest| largest.set(0));
        let outcome = catch_unwind(AssertUnwindSafe(|| fuzzing::decode(&bytes)));
        let largest = LARGEST.with(Cell::get);
        if largest > MALLOC_LIMIT {
            failures.push(format!(
                "{name}: allocated {largest} bytes at once (libFuzzer's limit is {MALLOC_LIMIT})"
            ));
        }
        match outcome {
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
