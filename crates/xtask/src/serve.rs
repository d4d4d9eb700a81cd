//! A small static file server for the app: GET and HEAD of files under the repository root, on
//! 127.0.0.1 only. Enough for development and the browser tests; not a production server.

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
    /// Serves `root` on 127.0.0.1:`port` (0 picks a free port) from a background thread.
    pub fn start(root: PathBuf, port: u16) -> Result<Server> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| anyhow!("could not listen on 127.0.0.1:{port}: {e}"))?;
        let addr = server.server_addr().to_ip().ok_or_else(|| anyhow!("not an IP address"))?;
        let thread = std::thread::spawn(move || {
            for request in server.incoming_requests() {
                respond(&root, request);
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

fn respond(root: &Path, request: Request) {
    let header = |k: &str, v: &str| Header::from_bytes(k, v).expect("valid header");
    if !matches!(request.method(), Method::Get | Method::Head) {
        let _ = request.respond(Response::from_string("method not allowed").with_status_code(405));
        return;
    }
    let Some(path) = resolve(root, request.url()) else {
        let _ = request.respond(Response::from_string("not found").with_status_code(404));
        return;
    };
    match std::fs::File::open(&path) {
        Ok(file) => {
            let response = Response::from_file(file)
                .with_header(header("Content-Type", content_type(&path)))
                // Development server: always revalidate so a rebuilt pkg/ is picked up.
                .with_header(header("Cache-Control", "no-cache"));
            let _ = request.respond(response);
        }
        Err(_) => {
            let _ = request.respond(Response::from_string("not found").with_status_code(404));
        }
    }
}

/// The file a URL names, refusing anything that would step outside `root`.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next()?;
    let path = if path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let relative = Path::new(path.trim_start_matches('/'));
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
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
        "json" | "webmanifest" => "application/json",
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
    fn paths_stay_inside_the_root() {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let root = Path::new(&manifest);
        assert_eq!(resolve(root, "/Cargo.toml?x=1"), Some(root.join("Cargo.toml")));
        assert_eq!(resolve(root, "/../xtask/Cargo.toml"), None);
        assert_eq!(resolve(root, "/src/../Cargo.toml"), None);
        assert_eq!(resolve(root, "/no-such-file"), None);
    }
}
