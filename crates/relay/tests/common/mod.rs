//! What the relay's end-to-end tests share: a relay on a free port, an HTTP client, a throwaway
//! PostgreSQL cluster, a sealed session and the search of stored bytes for its plaintext.

#![allow(dead_code)] // each test file uses part of it

pub mod at_rest;
pub mod postgres;

use bedside_relay::{Clock, Config, Relay};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the manual clocks of the tests start (any time will do).
pub const START: i64 = 1_800_000_000;

/// An empty folder of its own for test `name`, under the target folder.
pub fn folder(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A quiet relay on a free port of 127.0.0.1 with SQLite in `data_dir`, a manual clock at
/// [`START`], and no rate limit.
pub fn config(data_dir: PathBuf) -> Config {
    let mut config = Config::new(data_dir);
    config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.clock = Clock::manual(START);
    config.rate_per_minute = 0;
    config.log = false;
    config
}

/// A client of one relay that returns every status as a response (never as an error).
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// A response read whole.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: ureq::http::HeaderMap,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The message of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.json()))
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub fn new(relay: &Relay) -> Client {
        Client::at(format!("http://{}", relay.addr()))
    }

    /// A client of the relay at `base` (`http://host:port`), e.g. one running as its own process.
    pub fn at(base: String) -> Client {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Client { base, agent }
    }

    fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("the relay answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.body_mut().with_config().limit(u64::MAX).read_to_vec().expect("a body");
        Reply { status, body, headers }
    }

    pub fn get(&self, path: &str) -> Reply {
        Self::read(self.agent.get(format!("{}{path}", self.base)).call())
    }

    /// A GET with one more header.
    pub fn get_with(&self, path: &str, (name, value): (&str, &str)) -> Reply {
        Self::read(self.agent.get(format!("{}{path}", self.base)).header(name, value).call())
    }

    /// A GET with two more headers.
    pub fn get2(&self, path: &str, [(n1, v1), (n2, v2)]: [(&str, &str); 2]) -> Reply {
        Self::read(self.agent.get(format!("{}{path}", self.base)).header(n1, v1).header(n2, v2).call())
    }

    pub fn head(&self, path: &str) -> Reply {
        Self::read(self.agent.head(format!("{}{path}", self.base)).call())
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        Self::read(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Content-Type", "application/octet-stream")
                .send(body),
        )
    }

    pub fn agent_put(&self, path: &str) -> Reply {
        Self::read(self.agent.put(format!("{}{path}", self.base)).send(&b"x"[..]))
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.agent.delete(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::read(request.call())
    }

    /// Posts a share; returns its id and delete token.
    pub fn share(&self, query: &str, ciphertext: &[u8]) -> (String, String) {
        let reply = self.post(&format!("/api/shares{query}"), ciphertext);
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
        let json = reply.json();
        (json["id"].as_str().unwrap().to_string(), json["delete_token"].as_str().unwrap().to_string())
    }
}

/// A GET sent byte for byte as written (no client normalises `..` away); the raw response.
pub fn raw_get(relay: &Relay, target: &str) -> String {
    let mut stream = std::net::TcpStream::connect(relay.addr()).unwrap();
    write!(stream, "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Replies as `GET …/replies` frames them: each a big-endian u32 length and its bytes.
pub fn framed(replies: &[&[u8]]) -> Vec<u8> {
    replies.iter().flat_map(|r| (r.len() as u32).to_be_bytes().into_iter().chain(r.iter().copied())).collect()
}

/// Bytes standing for a ciphertext: every byte value, `len` long.
pub fn ciphertext(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}
