// What the browser conformance test embeds when `cargo xtask test` did not build it:
// `.cargo/config.toml` points BEDSIDE_BROWSER_CONFORMANCE here unless the environment sets it.
Err("no corpus subset embedded (`cargo xtask test` writes one and names it in BEDSIDE_BROWSER_CONFORMANCE)")
