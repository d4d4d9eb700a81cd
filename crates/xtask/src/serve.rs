//! A small static file server for the app: GET and HEAD of the files of one built site (`cargo
//! xtask build`, see the `site` module: the app and nothing else of the repository; no hidden file),
//! on 127.0.0.1 only, every response with the app's security headers. Enough for development and
//! the browser tests; not a production server.

use anyhow::{Result, anyhow};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Request, Response};

pub struct Server {
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl Server {
    /// Serves the site folder `root` on 127.0.0.1:`port` (0 picks a free port) from a background
    /// thread. The folder is read at each request, so a new build written into it is served at once.
    pub fn start(root: PathBuf, port: u16) -> Result<Server> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| anyhow!("could not listen on 127.0.0.1:{port}: {e}"))?;
        let addr = server.server_addr().to_ip().ok_or_else(|| anyhow!("not an IP address"))?;
        let root = std::sync::Arc::new(root);
        let thread = std::thread::spawn(move || {
            for request in server.incoming_requests() {
                // One thread a response: a client slow to read a large file (a service worker
                // precaching the 32 MB wasm) must not hold up every other request.
                let root = root.clone();
                std::thread::spawn(move || respond(&root, request));
            }
        });
        Ok(Server { addr, thread })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks while the server runs.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

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

fn respond(root: &Path, request: Request) {
    let header = |k: &str, v: &str| Header::from_bytes(k, v).expect("valid header");
    if !matches!(request.method(), Method::Get | Method::Head) {
        let _ = request.respond(secured(Response::from_string("method not allowed").with_status_code(405)));
        return;
    }
    let opened = resolve(root, request.url()).and_then(|path| Some((std::fs::File::open(&path).ok()?, path)));
    let Some((file, path)) = opened else {
        let _ = request.respond(secured(Response::from_string("not found").with_status_code(404)));
        return;
    };
    let response = Response::from_file(file)
        .with_header(header("Content-Type", content_type(&path)))
        // File names carry no hash: always revalidate, so a new build is never mixed with an old
        // one from the HTTP cache (the service worker keeps the offline copy, one build at a time).
        .with_header(header("Cache-Control", "no-cache"));
    let _ = request.respond(secured(response));
}

/// `response` with [`SECURITY_HEADERS`].
fn secured<R: std::io::Read>(mut response: Response<R>) -> Response<R> {
    for (name, value) in SECURITY_HEADERS {
        response.add_header(Header::from_bytes(name, value).expect("valid header"));
    }
    response
}

/// The site's file a URL names: nothing outside `root`, no hidden file or folder.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next()?;
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

fn content_type(path: &Path) -> &'static str {
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
    fn only_the_sites_files_are_served_with_the_security_headers() {
        let base = std::env::temp_dir().join(format!("bedside-serve-{}", std::process::id()));
        let root = base.join("site");
        for file in [
            "site/index.html",
            "site/web/app.js",
            "site/models/chest/model.json",
            "site/.git/HEAD",
            "site/web/.env",
            "crates/a.rs",
        ] {
            let path = base.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file).unwrap();
        }
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, "/web/app.js?v=1"), Some(root.join("web/app.js")));
        assert_eq!(resolve(&root, "/models/chest/model.json"), Some(root.join("models/chest/model.json")));
        for refused in [
            "/.git/HEAD",
            "/crates/a.rs",
            "/web/.env",
            "/web/../../crates/a.rs",
            "/../crates/a.rs",
            "/web/none.js",
        ] {
            assert_eq!(resolve(&root, refused), None, "{refused}");
        }

        let server = Server::start(root.clone(), 0).unwrap();
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            reply
        };
        for (path, status) in [("/index.html", "200"), ("/.git/HEAD", "404")] {
            let reply = get(path);
            assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {reply}");
            for (name, value) in SECURITY_HEADERS {
                assert!(reply.contains(&format!("{name}: {value}\r\n")), "{path}: no {name} in {reply}");
            }
        }
        assert!(!get("/.git/HEAD").contains(".git/HEAD"), "the file's content is not sent");
        std::fs::remove_dir_all(base).ok();
    }
}
