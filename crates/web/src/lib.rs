//! Thin wasm-bindgen glue between the browser's worker (`web/worker.js`) and Bedside's library
//! crates. It holds no logic of its own:
//! - [`Study`] opens a file with `bedside-imaging`, decodes the wanted frame once and draws it
//!   through a window on request;
//! - [`Model`] loads a model artifact with `bedside-diagnosis` on WebGPU (burn-wgpu) or on the CPU
//!   path (burn-flex with Wasm SIMD) and diagnoses the frame a [`Study`] holds, heat map included.
//!
//! Built only by `cargo xtask` for `wasm32-unknown-unknown`.

mod model;
mod study;

pub use model::Model;
pub use study::Study;
