//! The page's second Wasm module: every export of `bedside-web`, built with its `webgpu` feature
//! (burn-wgpu, wgpu and the shader compiler: most of the bytes). `cargo xtask build` writes it into
//! `pkg/webgpu/`; the worker imports it only when a model is to run on WebGPU, and starts with
//! `bedside-web-cpu`'s module in `pkg/` (see `bedside-web`'s crate doc).
//!
//! Built only by `cargo xtask` for `wasm32-unknown-unknown`.

// The exports are bedside-web's own (`#[wasm_bindgen]` items of a linked crate are exported by the
// module that links it): this only makes sure it is linked.
pub use bedside_web::*;
