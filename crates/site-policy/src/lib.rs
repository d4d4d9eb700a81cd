//! How Bedside's built page is served, in one place for every server of it: the security headers
//! sent with each response, which files of the site folder a URL may name, and their content types.
//!
//! Used by `cargo xtask serve` (development, browser tests) and by the relay server (production).
//! It is not a server and does no I/O but a file-existence check; it has no dependencies, so the
//! small development server does not link the relay's HTTP stack to share these rules.
//!
//! ```
//! use bedside_site_policy::{content_type, resolve, SECURITY_HEADERS};
//! use std::path::Path;
//!
//! let site = Path::new("/srv/bedside/site");
//! assert_eq!(resolve(site, "/../Cargo.toml"), None);
//! assert_eq!(resolve(site, "/.git/HEAD"), None);
//! assert_eq!(content_type(Path::new("app.wasm")), "application/wasm");
//! assert!(SECURITY_HEADERS.iter().any(|(name, _)| *name == "Content-Security-Policy"));
//! ```

use std::path::{Component, Path, PathBuf};

/// Sent with every response: the page may load and connect to its own origin only (WebAssembly
/// compiled from its own files), never be framed, leak no referrer, and use no camera, microphone,
/// location or other device. `style-src` is left to `default-src 'self'`: the page has no inline
/// styles (scripts set styles through the CSSOM, which the policy allows).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; \
         img-src 'self' blob: data:; worker-src 'self'; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    (
        "Permissions-Policy",
        "camera=(), microphone=(), geolocation=(), usb=(), serial=(), bluetooth=(), hid=(), \
         payment=(), display-capture=(), midi=()",
    ),
];

/// The site's file a request target names (query and fragment ignored, `/` → `index.html`):
/// nothing outside `root`, no hidden file or folder, only files that exist. The target is taken
/// as sent (not percent-decoded): the site's own file names need no escaping, and an escaped
/// name such as `%2e%2e` is then a file name that does not exist rather than a way out.
pub fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let path = if path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let relative = Path::new(path.trim_start_matches('/'));
    let mut names = relative.components().map(|c| match c {
        Component::Normal(name) => name.to_str().filter(|n| !n.starts_with('.')),
        _ => None,
    });
    if names.any(|n| n.is_none()) {
        return None;
    }
    let full = root.join(relative);
    full.is_file().then_some(full)
}

/// The `Content-Type` of a site file, from its extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "md" => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sites_visible_files_resolve() {
        let base = std::env::temp_dir().join(format!("bedside-site-policy-{}", std::process::id()));
        let root = base.join("site");
        for file in ["site/index.html", "site/web/app.js", "site/.git/HEAD", "site/web/.env", "crates/a.rs"] {
            let path = base.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file).unwrap();
        }
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, "/web/app.js?v=1#x"), Some(root.join("web/app.js")));
        for refused in [
            "/.git/HEAD",
            "/crates/a.rs",
            "/web/.env",
            "/web/../../crates/a.rs",
            "/../crates/a.rs",
            "/..%2Fcrates%2Fa.rs",
            "/web/none.js",
            "/web",
        ] {
            assert_eq!(resolve(&root, refused), None, "{refused}");
        }
        assert_eq!(content_type(&root.join("index.html")), "text/html; charset=utf-8");
        assert_eq!(content_type(Path::new("model.bin")), "application/octet-stream");
        std::fs::remove_dir_all(base).ok();
    }
}
