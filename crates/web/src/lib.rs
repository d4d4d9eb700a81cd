//! Thin wasm-bindgen glue between the browser's worker (`web/worker.js`) and Bedside's library
//! crates. It holds no logic of its own:
//! - [`Study`] opens a file with `bedside-imaging`, decodes the wanted frame once and draws it
//!   through a window on request;
//! - [`Model`] loads a model artifact with `bedside-diagnosis` on WebGPU (burn-wgpu) or on the CPU
//!   path (Bedside's own engine, `bedside-infer`, with Wasm SIMD); the gate's [`Model::route`] gives a [`Routing`], and the
//!   answering model's [`Model::assess`] the frame's assessment (`bedside_diagnosis::Assessment`, the
//!   JSON `bedside predict` prints), heat map included (whatever frame is on screen meanwhile);
//! - [`Draft`] de-identifies the open file for a share (`bedside-imaging`'s `deid`) and seals it with
//!   the diagnosis and the clinician's note (`bedside-share`); [`open_share`] opens a received share,
//!   [`seal_reply`] and [`open_reply`] carry the reviewer's answer.
//!
//! A panic is a bug, not an input error (inputs are validated and come back as `Error`s), but should
//! one happen the hook installed at start-up turns it into a JS `Error` carrying the panic message
//! instead of an opaque `unreachable` trap, and [`last_panic`] keeps it for the worker.
//!
//! Built only by `cargo xtask` for `wasm32-unknown-unknown`, into two modules: `bedside-web-cpu`,
//! this crate without its `webgpu` feature, into `pkg/` (the CPU path: what the page loads first)
//! and `bedside-web-gpu`, this crate with it, into `pkg/webgpu/` (the worker loads it only when a
//! model is to run on WebGPU). A [`Study`] or [`Routing`] belongs to the module that made it: the worker opens the file
//! again in the other module and carries a routing across as JSON ([`Routing::to_json`]).

mod model;
mod share;
mod study;

pub use model::{Model, Routing};
pub use share::{Draft, Sealed, open_reply, open_share, seal_reply};
pub use study::Study;

use std::sync::OnceLock;
use wasm_bindgen::prelude::*;

/// The first panic's message: the first is the cause, later ones are its consequences.
static FIRST_PANIC: OnceLock<String> = OnceLock::new();

/// Runs when the module is instantiated, before any other call into it (not under
/// wasm-bindgen-test, which runs no start function).
#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(on_panic));
    run_constructors();
}

/// Runs the module's static constructors (`inventory` registrations, which burn-wgpu's shader
/// compiler reads) once. Called here, it also tells the linker that the module does so itself:
/// otherwise it treats the module as a program run once and wraps every export in a call to all of
/// them, which cost about 1.5 ms on every diagnosis pass (most of the gate's time in the page).
/// Tests run no start function, so [`Model::load`] calls it too.
pub(crate) fn run_constructors() {
    #[cfg(target_family = "wasm")]
    {
        unsafe extern "C" {
            fn __wasm_call_ctors();
        }
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: the linker's own function, run exactly once per instance, before anything that
        // reads what the constructors register.
        ONCE.call_once(|| unsafe { __wasm_call_ctors() });
    }
}

fn on_panic(info: &std::panic::PanicHookInfo<'_>) {
    // The full message and a stack trace for whoever opens the console.
    console_error_panic_hook::hook(info);
    let what = info.payload_as_str().unwrap_or("no message");
    let message = match info.location() {
        Some(at) => format!("internal error in Bedside at {}:{}: {what}", at.file(), at.line()),
        None => format!("internal error in Bedside: {what}"),
    };
    let _ = FIRST_PANIC.set(message.clone());
    // Thrown rather than returned to the panic runtime, whose abort is a bare `unreachable` trap:
    // the caller's `catch` gets a readable `Error`. The module's state is not to be trusted after
    // this either way: the worker reports `lastPanic` and the page starts a fresh one.
    wasm_bindgen::throw_str(&message);
}

/// The message of the first panic in this module, if one happened: after it the module's state
/// cannot be trusted, so the worker reports it and starts afresh.
#[wasm_bindgen(js_name = lastPanic)]
pub fn last_panic() -> Option<String> {
    FIRST_PANIC.get().cloned()
}

/// The backend the page's Automatic setting uses for a model, from the median time of a diagnosis
/// pass on the CPU path and on WebGPU on this device: the rule is `bedside_diagnosis::faster_backend`.
#[wasm_bindgen(js_name = fasterBackend)]
pub fn faster_backend(cpu_ms: f64, webgpu_ms: f64) -> String {
    bedside_diagnosis::faster_backend(cpu_ms, webgpu_ms).to_string()
}

/// For the benchmark's roofline (`tests/bench/inference.mjs`): the CPU engine's pair instruction alone,
/// `steps` rounds on registers (`bedside_infer::peak_pairs`); returns the multiply–accumulates done,
/// which the caller divides by the time the call took.
#[wasm_bindgen(js_name = simdPeak)]
pub fn simd_peak(steps: u32) -> f64 {
    bedside_infer::peak_pairs(steps as usize) as f64
}

/// Test hook: panics on purpose, so tests/e2e can check that the page restarts a worker whose module
/// panicked (it calls this inside the worker). Nothing in the app calls it.
#[wasm_bindgen(js_name = panicForTest)]
pub fn panic_for_test() {
    panic!("a panic on purpose, for the restart test");
}
