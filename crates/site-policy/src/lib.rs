//! How Bedside's built page is served, in one place for every server of it: the security headers
//! sent with each response, which files of the site folder a URL may name, their content types, and
//! which of them are sent gzip-compressed.
//!
//! Compression happens once, when the site is built: beside each file worth it, `cargo xtask build`
//! writes `NAME.gz` ([`GZIP_SUFFIX`], [`worth_compressing`]); a server sends that copy, with
//! `Content-Encoding: gzip`, to a client that accepts gzip ([`negotiate`]). The Wasm module is most
//! of the page's bytes and gzip takes it to a fifth.
//!
//! Every file is sent with an [`etag`] and `Cache-Control: no-cache`: a browser keeps what it fetched
//! and asks again with `If-None-Match`, and an unchanged file is answered `304 Not Modified` without
//! its bytes ([`not_modified`]). So the service worker's install, which fetches every file of a build,
//! does not download a second time what the page itself has just loaded.
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
/// nothing outside `root`, no hidden file or folder, no compressed copy ([`negotiate`] picks those),
/// only files that exist. The target is taken
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
    if names.any(|n| n.is_none()) || path.ends_with(GZIP_SUFFIX) {
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

/// The ending of a site file's gzip-compressed copy, beside it.
pub const GZIP_SUFFIX: &str = ".gz";

/// Whether a site file gets a compressed copy: every type but the PNG icons (compressed already).
pub fn worth_compressing(path: &Path) -> bool {
    content_type(path) != "image/png"
}

/// Sent with every file that has a compressed copy, so that a cache between the server and the
/// client keeps the two encodings apart.
pub const VARY: (&str, &str) = ("Vary", "Accept-Encoding");

/// What to send for a resolved site file: its compressed copy where there is one and the request's
/// `Accept-Encoding` takes gzip, else the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The file whose bytes are sent.
    pub body: PathBuf,
    /// Whether they are gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Whether the file has a compressed copy at all (then [`VARY`] goes with either encoding).
    pub varies: bool,
}

impl Negotiated {
    /// The headers that say what is sent, beside its type and the security headers: its [`etag`]
    /// (`tag`), `Content-Encoding: gzip` where the copy is sent, and [`VARY`] where the file has one.
    pub fn headers(&self, tag: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![("ETag", tag.to_string())];
        if self.gzip {
            headers.push(("Content-Encoding", "gzip".to_string()));
        }
        if self.varies {
            headers.push((VARY.0, VARY.1.to_string()));
        }
        headers
    }
}

/// See [`Negotiated`]; `file` is what [`resolve`] gave, `accept_encoding` the request's header.
pub fn negotiate(file: &Path, accept_encoding: Option<&str>) -> Negotiated {
    let mut copy = file.as_os_str().to_owned();
    copy.push(GZIP_SUFFIX);
    let copy = PathBuf::from(copy);
    let varies = copy.is_file();
    if varies && accepts_gzip(accept_encoding.unwrap_or("")) {
        return Negotiated { body: copy, gzip: true, varies };
    }
    Negotiated { body: file.to_path_buf(), gzip: false, varies }
}

/// Whether an `Accept-Encoding` value takes gzip: listed (or `*`, where gzip is not) with a weight
/// above zero (RFC 9110, 12.5.3).
fn accepts_gzip(header: &str) -> bool {
    let weight = |coding: &str| {
        header.split(',').find_map(|item| {
            let mut parts = item.split(';');
            let name = parts.next()?.trim();
            name.eq_ignore_ascii_case(coding).then(|| {
                parts
                    .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0)
            })
        })
    };
    weight("gzip").or_else(|| weight("*")).is_some_and(|q| q > 0.0)
}

/// The entity tag of the bytes a server sends for a file: from their length and modification time
/// (a build writes every file anew), and their encoding (the two encodings of a file are two
/// representations, RFC 9110 8.8.3).
pub fn etag(sent: &Negotiated, metadata: &std::fs::Metadata) -> String {
    let modified = metadata.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let nanos = modified.map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{nanos:x}{}\"", metadata.len(), if sent.gzip { "-gz" } else { "" })
}

/// Whether a request's `If-None-Match` names `etag` (or is `*`): then the answer is `304 Not
/// Modified`, without a body. Weak comparison, as for GET (RFC 9110 13.1.2).
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    let strip = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    if_none_match
        .is_some_and(|header| header.trim() == "*" || header.split(',').any(|tag| strip(tag) == strip(etag)))
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
        // A compressed copy is an encoding of its file, not a file of the site.
        std::fs::write(root.join("web/app.js.gz"), "gz").unwrap();
        assert_eq!(resolve(&root, "/web/app.js.gz"), None);
        assert_eq!(content_type(Path::new("model.bin")), "application/octet-stream");
        std::fs::remove_dir_all(base).ok();
    }

    #[test]
    fn gzip_is_sent_where_there_is_a_copy_and_the_client_takes_it() {
        let base = std::env::temp_dir().join(format!("bedside-site-gzip-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let (wasm, icon) = (base.join("app.wasm"), base.join("icon.png"));
        for file in [&wasm, &icon] {
            std::fs::write(file, "x").unwrap();
        }
        std::fs::write(base.join("app.wasm.gz"), "gz").unwrap();
        for (header, gzip) in [
            (Some("gzip, deflate, br, zstd"), true),
            (Some("br;q=1.0, GZIP;q=0.5"), true),
            (Some("*"), true),
            (Some("gzip;q=0, *"), false),
            (Some("br"), false),
            (Some("identity"), false),
            (Some(""), false),
            (None, false),
        ] {
            let sent = negotiate(&wasm, header);
            assert_eq!(sent.gzip, gzip, "{header:?}");
            assert!(sent.varies);
            assert_eq!(sent.body, if gzip { base.join("app.wasm.gz") } else { wasm.clone() });
        }
        // No copy: the file itself, whatever the client takes.
        let sent = negotiate(&wasm, Some("gzip"));
        let named: Vec<&str> = sent.headers("\"t\"").iter().map(|(name, _)| *name).collect();
        assert_eq!(named, ["ETag", "Content-Encoding", "Vary"]);
        let sent = negotiate(&icon, Some("gzip"));
        assert_eq!(sent.headers("\"t\""), [("ETag", "\"t\"".to_string())]);
        assert_eq!((sent.body, sent.gzip, sent.varies), (icon.clone(), false, false));
        assert!(worth_compressing(&wasm) && !worth_compressing(&icon));
        std::fs::remove_dir_all(base).ok();
    }

    #[test]
    fn an_unchanged_file_is_not_sent_again() {
        let base = std::env::temp_dir().join(format!("bedside-site-etag-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let file = base.join("app.js");
        std::fs::write(&file, "one").unwrap();
        std::fs::write(base.join("app.js.gz"), "gz").unwrap();
        let tag = |accept| {
            let sent = negotiate(&file, accept);
            etag(&sent, &std::fs::metadata(&sent.body).unwrap())
        };
        let (plain, gzip) = (tag(None), tag(Some("gzip")));
        assert_ne!(plain, gzip, "two encodings, two tags");
        assert!(plain.starts_with('"') && plain.ends_with('"'), "{plain}");
        assert!(not_modified(Some(&plain), &plain));
        assert!(not_modified(Some(&format!("\"x\", W/{gzip}")), &gzip));
        assert!(not_modified(Some("*"), &plain));
        assert!(!not_modified(Some(&gzip), &plain) && !not_modified(None, &plain));
        // A new build of the file: another tag, so the old copy is not kept.
        std::fs::write(&file, "three").unwrap();
        assert!(!not_modified(Some(&plain), &tag(None)));
        std::fs::remove_dir_all(base).ok();
    }
}
