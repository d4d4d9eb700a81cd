//! The page's Wasm module: every export of `bedside-web`, without its `webgpu` feature (the decoders,
//! the CPU engine and sharing). `cargo xtask build` writes it into `pkg/`; the worker starts with it
//! and imports `bedside-web-gpu`'s module (`pkg/webgpu/`) only when a model is to run on WebGPU.
//!
//! Built only by `cargo xtask` for `wasm32-unknown-unknown`.

// The exports are bedside-web's own (`#[wasm_bindgen]` items of a linked crate are exported by the
// module that links it): this only makes sure it is linked.
pub use bedside_web::*;
