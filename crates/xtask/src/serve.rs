//! A small static file server for the app: GET and HEAD of the files of one built site (`cargo
//! xtask build`, see the `site` module: the app and nothing else of the repository; no hidden file),
//! on 127.0.0.1 only, every response with the app's security headers, a file's gzip copy to a
//! client that takes it (`bedside_site_policy::negotiate`) and `304 Not Modified` to one that has
//! it already (`etag`), as the relay sends them. Enough for development and the browser tests; not a
//! production server.
//!
//! HTTP/1.1 on `std::net`, a thread for each connection. (tiny_http, used before, could leave a new
//! connection unread while its pool's threads sat on idle keep-alive ones: now and then, under CPU
//! load, a page's load stalled on one script for good.)

use anyhow::{Context, Result};
use bedside_site_policy::{SECURITY_HEADERS, content_type, etag, negotiate, not_modified, resolve};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Server {
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl Server {
    /// Serves the site folder `root` on 127.0.0.1:`port` (0 picks a free port) from a background
    /// thread. The folder is read at each request, so a new build written into it is served at once.
    pub fn start(root: PathBuf, port: u16) -> Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("could not listen on 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let root = Arc::new(root);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                // A client that goes away mid-response ends its own connection, nothing else.
                std::thread::spawn(move || drop(serve_connection(&root, stream)));
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

/// The longest request or header line read.
const LINE_LIMIT: u64 = 16 * 1024;
/// A connection idle this long is closed (browsers keep idle ones open for reuse).
const IDLE: Duration = Duration::from_secs(30);

/// Answers the requests of one connection until the client closes it or asks to.
fn serve_connection(root: &Path, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        if (&mut reader).take(LINE_LIMIT).read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let target = words.next().unwrap_or_default().to_string();
        // HTTP/1.1 keeps the connection unless asked to close; HTTP/1.0 closes unless asked to keep it.
        let mut keep = words.next() == Some("HTTP/1.1");
        let mut body = 0u64;
        let (mut accept_encoding, mut if_none_match) = (None, None);
        loop {
            line.clear();
            if (&mut reader).take(LINE_LIMIT).read_line(&mut line)? == 0 {
                return Ok(());
            }
            let Some((name, value)) = line.trim_end().split_once(':') else { break };
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                keep = value.eq_ignore_ascii_case("keep-alive")
                    || (keep && !value.eq_ignore_ascii_case("close"));
            } else if name.eq_ignore_ascii_case("content-length") {
                body = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("accept-encoding") {
                accept_encoding = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(value.to_string());
            }
        }
        // The app sends no body; one is read past (its request refused) to reach the next request.
        io::copy(&mut (&mut reader).take(body), &mut io::sink())?;
        let asked =
            Asked { accept_encoding: accept_encoding.as_deref(), if_none_match: if_none_match.as_deref() };
        respond(root, &method, &target, asked, &mut writer)?;
        if !keep {
            return Ok(());
        }
    }
}

/// The request headers a response depends on.
struct Asked<'a> {
    accept_encoding: Option<&'a str>,
    if_none_match: Option<&'a str>,
}

fn respond(root: &Path, method: &str, target: &str, asked: Asked, out: &mut impl Write) -> io::Result<()> {
    let head_only = method == "HEAD";
    if !(head_only || method == "GET") {
        return send(
            out,
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            b"method not allowed\n",
            true,
        );
    }
    let opened = resolve(root, target).and_then(|path| {
        let sent = negotiate(&path, asked.accept_encoding);
        Some((std::fs::File::open(&sent.body).ok()?, path, sent))
    });
    let Some((mut file, path, sent)) = opened else {
        return send(out, "404 Not Found", "text/plain; charset=utf-8", b"not found\n", !head_only);
    };
    let metadata = file.metadata()?;
    let tag = etag(&sent, &metadata);
    let extra = sent.headers(&tag);
    let unchanged = not_modified(asked.if_none_match, &tag);
    let status = if unchanged { "304 Not Modified" } else { "200 OK" };
    out.write_all(&head(status, content_type(&path), metadata.len(), &extra))?;
    if !(head_only || unchanged) {
        io::copy(&mut file, out)?;
    }
    out.flush()
}

/// A short response: `body` is sent unless `with_body` is false (HEAD).
fn send(out: &mut impl Write, status: &str, kind: &str, body: &[u8], with_body: bool) -> io::Result<()> {
    out.write_all(&head(status, kind, body.len() as u64, &[]))?;
    if with_body {
        out.write_all(body)?;
    }
    out.flush()
}

/// The status line and headers, [`SECURITY_HEADERS`] among them, then `extra`.
fn head(status: &str, kind: &str, length: u64, extra: &[(&str, String)]) -> Vec<u8> {
    // File names carry no hash: always revalidate, so a new build is never mixed with an old one
    // from the HTTP cache (the service worker keeps the offline copy, one build at a time).
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {length}\r\nCache-Control: no-cache\r\n"
    );
    let extra = extra.iter().map(|(name, value)| (*name, value.as_str()));
    for (name, value) in SECURITY_HEADERS.into_iter().chain(extra) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
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
        // Which files resolve is bedside-site-policy's test; here, that the server applies it.
        let server = Server::start(root.clone(), 0).unwrap();
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            reply
        };
        for (path, status) in
            [("/index.html", "200"), ("/.git/HEAD", "404"), ("/web/../../crates/a.rs", "404")]
        {
            let reply = get(path);
            assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {reply}");
            for (name, value) in SECURITY_HEADERS {
                assert!(reply.contains(&format!("{name}: {value}\r\n")), "{path}: no {name} in {reply}");
            }
        }
        assert!(!get("/.git/HEAD").contains(".git/HEAD"), "the file's content is not sent");

        // Keep-alive: two requests on one connection, both answered; HEAD without the body; no
        // method but GET and HEAD.
        let exchange = |requests: &str| {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
            stream.write_all(requests.as_bytes()).unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            reply
        };
        let both = exchange(
            "GET /web/app.js HTTP/1.1\r\nHost: x\r\n\r\nHEAD /index.html HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(both.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{both}");
        assert!(both.contains("\r\n\r\nsite/web/app.js"), "the GET's body: {both}");
        assert!(both.contains("Content-Length: 15\r\n"), "HEAD gives the file's length: {both}");
        assert!(!both.contains("site/index.html"), "HEAD sends no body: {both}");
        let post = exchange("POST /index.html HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");

        // The gzip copy to a client that takes it, with its encoding and length; the file itself to
        // one that does not; the copy never by its own name.
        std::fs::write(root.join("web/app.js.gz"), "compressed").unwrap();
        let request = |accept: &str| {
            exchange(&format!("GET /web/app.js HTTP/1.1\r\n{accept}Connection: close\r\n\r\n"))
        };
        let gzip = request("Accept-Encoding: gzip, br\r\n");
        assert!(
            gzip.contains("Content-Encoding: gzip\r\n") && gzip.contains("Vary: Accept-Encoding\r\n"),
            "{gzip}"
        );
        assert!(gzip.contains("Content-Length: 10\r\n") && gzip.ends_with("\r\n\r\ncompressed"), "{gzip}");
        assert!(gzip.contains("Content-Type: text/javascript"), "the file's type, not the copy's: {gzip}");
        let plain = request("");
        assert!(
            !plain.contains("Content-Encoding") && plain.contains("Vary: Accept-Encoding\r\n"),
            "{plain}"
        );
        assert!(plain.ends_with("\r\n\r\nsite/web/app.js"), "{plain}");
        assert!(get("/web/app.js.gz").starts_with("HTTP/1.1 404"));

        // Asked again with the tag it gave: 304 and no body; with another tag, the file.
        let tag = |reply: &str| {
            let line = reply.lines().find(|l| l.starts_with("ETag: ")).expect("an ETag");
            line.trim_start_matches("ETag: ").to_string()
        };
        let again = request(&format!("Accept-Encoding: gzip\r\nIf-None-Match: {}\r\n", tag(&gzip)));
        assert!(again.starts_with("HTTP/1.1 304") && again.ends_with("\r\n\r\n"), "{again}");
        assert!(again.contains("Content-Encoding: gzip\r\n") && again.contains("Content-Security-Policy"));
        let other = request(&format!("If-None-Match: {}\r\n", tag(&gzip)));
        assert!(other.starts_with("HTTP/1.1 200") && other.ends_with("site/web/app.js"), "{other}");
        std::fs::remove_dir_all(base).ok();
    }
}
