//! The Wasm build as the browser runs it: compiled to wasm32 and run in headless Chromium
//! (`cargo xtask test`). One test binary, so the large optimised link happens once.

mod conformance;
mod decode;
mod diagnose;
mod share;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
