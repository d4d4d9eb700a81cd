//! The relay end to end: a real server on 127.0.0.1 with SQLite, a real HTTP client.

mod common;

use bedside_relay::Relay;
use bedside_relay::api::{DEFAULT_TTL, MAX_REPLIES, MAX_TTL};
use bedside_site_policy::SECURITY_HEADERS;
use common::{Client, START, ciphertext, config, folder, framed, raw_get};

#[test]
fn a_share_round_trips_with_its_replies_and_is_deleted_with_its_token() {
    let relay = Relay::start(config(folder("round-trip"))).unwrap();
    let client = Client::new(&relay);
    let sent = ciphertext(300_000, 7);
    let reply = client.post("/api/shares", &sent);
    assert_eq!(reply.status, 201);
    let json = reply.json();
    let id = json["id"].as_str().unwrap();
    let token = json["delete_token"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
    assert_eq!(token.len(), 64, "{token}");
    assert_eq!(json["expires_at"], START + DEFAULT_TTL);

    let got = client.get(&format!("/api/shares/{id}"));
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.header("cache-control"), Some("no-store"));
    assert!(got.body == sent, "the ciphertext comes back byte for byte");
    assert!(client.get(&format!("/api/shares/{id}")).body == sent, "and again: reading does not consume it");

    let replies = format!("/api/shares/{id}/replies");
    assert_eq!(client.get(&replies).body, b"", "no replies yet");
    let (first, second) = (ciphertext(1000, 1), ciphertext(3, 2));
    assert_eq!(client.post(&replies, &first).json()["replies"], 1);
    assert_eq!(client.post(&replies, &second).json()["replies"], 2);
    let listed = client.get(&replies);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body, framed(&[&first, &second]), "oldest first, each length-prefixed");

    let share = format!("/api/shares/{id}");
    let missing = client.delete(&share, None);
    assert_eq!((missing.status, missing.error().contains("Authorization: Bearer")), (400, true));
    let other = "0".repeat(64);
    let wrong = client.delete(&share, Some(&other));
    assert_eq!((wrong.status, wrong.error()), (403, "the delete token is not this share's".to_string()));
    assert_eq!(client.delete(&share, Some("not-a-token")).status, 403);
    assert_eq!(client.get(&share).status, 200, "a refused delete deletes nothing");
    assert_eq!(client.delete(&share, Some(token)).status, 204);
    assert_eq!(client.get(&share).status, 404);
    assert_eq!(client.get(&replies).status, 404, "its replies went with it");
    assert_eq!(client.delete(&share, Some(token)).status, 404);
}

#[test]
fn malformed_and_traversal_ids_are_refused() {
    let relay = Relay::start(config(folder("ids"))).unwrap();
    let client = Client::new(&relay);
    for id in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "ABCDEF0123456789ABCDEF0123456789",
        "abc",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef0123456789abcdeg",
        "%00",
    ] {
        for path in [format!("/api/shares/{id}"), format!("/api/shares/{id}/replies")] {
            let reply = client.get(&path);
            assert_eq!(
                (reply.status, reply.error()),
                (400, "a share id is 32 lowercase hex digits".into()),
                "{path}"
            );
        }
    }
    let unknown = client.get("/api/shares/0123456789abcdef0123456789abcdef");
    assert_eq!((unknown.status, unknown.error().starts_with("no share with this id")), (404, true));
    for target in ["/api/shares/../../etc/passwd", "/api/../../etc/passwd", "/api/nothing"] {
        let raw = raw_get(&relay, target);
        assert!(raw.starts_with("HTTP/1.1 404"), "{target}: {raw}");
        assert!(!raw.contains("root:"), "{target}: {raw}");
    }
    let put = client.agent_put("/api/shares/0123456789abcdef0123456789abcdef");
    assert_eq!((put.status, put.error()), (405, "method not allowed here".into()));
}

#[test]
fn oversized_uploads_and_bad_options_are_refused_with_a_message() {
    let mut config = config(folder("limits"));
    config.max_upload = 1000;
    config.max_reply = 100;
    let relay = Relay::start(config).unwrap();
    let client = Client::new(&relay);
    let too_big = client.post("/api/shares", &ciphertext(1001, 0));
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.error(), "the upload is larger than this relay's limit of 1000 bytes");
    let (id, _) = client.share("", &ciphertext(1000, 0));
    let replies = format!("/api/shares/{id}/replies");
    let reply_too_big = client.post(&replies, &ciphertext(101, 0));
    assert_eq!((reply_too_big.status, reply_too_big.error().contains("100 bytes")), (413, true));
    assert_eq!(client.post(&replies, &ciphertext(100, 0)).status, 201);

    let empty = client.post("/api/shares", b"");
    assert_eq!((empty.status, empty.error().starts_with("the share is empty")), (400, true));
    for query in ["?ttl=0", "?ttl=abc", "?ttl=-5", &format!("?ttl={}", MAX_TTL + 1)] {
        let refused = client.post(&format!("/api/shares{query}"), b"x");
        assert_eq!(refused.status, 400, "{query}");
        assert!(
            refused.error().starts_with("ttl must be a whole number of seconds from 1 to 2592000"),
            "{query}"
        );
    }
    let burn = client.post("/api/shares?burn=maybe", b"x");
    assert_eq!((burn.status, burn.error()), (400, "burn must be 1 or 0, not \"maybe\"".into()));
}

#[test]
fn an_expired_share_is_gone_then_swept() {
    let mut config = config(folder("expiry"));
    let clock = config.clock.clone();
    config.sweep_every = std::time::Duration::from_secs(3600);
    let relay = Relay::start(config).unwrap();
    let client = Client::new(&relay);
    let (id, _) = client.share("?ttl=60", b"ciphertext");
    let (kept, _) = client.share("?ttl=61", b"ciphertext");
    let share = format!("/api/shares/{id}");
    clock.advance(59);
    assert_eq!(client.get(&share).status, 200);
    clock.advance(1);
    let gone = client.get(&share);
    assert_eq!((gone.status, gone.error()), (410, "this share has expired".into()));
    assert_eq!(client.get(&format!("{share}/replies")).status, 410);
    assert_eq!(client.post(&format!("{share}/replies"), b"late").status, 410);
    assert_eq!(relay.sweep().unwrap(), 1, "only the expired share is removed");
    assert_eq!(client.get(&share).status, 404, "swept: no trace left");
    assert_eq!(client.get(&format!("/api/shares/{kept}")).status, 200);
}

#[test]
fn a_burn_after_reading_share_is_read_once_and_still_takes_replies() {
    let relay = Relay::start(config(folder("burn"))).unwrap();
    let client = Client::new(&relay);
    let sent = ciphertext(5000, 3);
    let (id, token) = client.share("?burn=1", &sent);
    let share = format!("/api/shares/{id}");
    assert!(client.get(&share).body == sent);
    let second = client.get(&share);
    assert_eq!(
        (second.status, second.error()),
        (410, "this share could be read once and has been read".into())
    );
    assert_eq!(client.post(&format!("{share}/replies"), b"answer").status, 201);
    assert_eq!(client.get(&format!("{share}/replies")).body, framed(&[b"answer"]));
    assert_eq!(client.delete(&share, Some(&token)).status, 204);
}

#[test]
fn a_share_takes_at_most_its_replies_and_an_unknown_one_none() {
    let relay = Relay::start(config(folder("replies"))).unwrap();
    let client = Client::new(&relay);
    let (id, _) = client.share("", b"ciphertext");
    let replies = format!("/api/shares/{id}/replies");
    for n in 1..=MAX_REPLIES {
        assert_eq!(client.post(&replies, &[n as u8]).json()["replies"], n);
    }
    let full = client.post(&replies, b"one more");
    assert_eq!(
        (full.status, full.error()),
        (409, format!("this share already has its {MAX_REPLIES} replies"))
    );
    let listed = client.get(&replies).body;
    assert_eq!(listed.len(), MAX_REPLIES as usize * 5, "each reply a 4-byte length and 1 byte");
    assert_eq!(&listed[listed.len() - 5..], &[0, 0, 0, 1, MAX_REPLIES as u8]);
    let unknown = client.post("/api/shares/0123456789abcdef0123456789abcdef/replies", b"x");
    assert_eq!(unknown.status, 404);
}

#[test]
fn too_many_api_requests_from_one_address_get_429() {
    let mut config = config(folder("rate"));
    config.rate_per_minute = 5;
    let relay = Relay::start(config).unwrap();
    let client = Client::new(&relay);
    let unknown = "/api/shares/0123456789abcdef0123456789abcdef";
    let statuses: Vec<u16> = (0..5).map(|_| client.get(unknown).status).collect();
    assert_eq!(statuses, [404; 5], "the burst is the rate");
    let limited = client.get(unknown);
    assert_eq!(limited.status, 429);
    assert!(limited.error().starts_with("too many requests from this address"), "{}", limited.error());
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "5 a minute: one every 12 s, not {retry}");
    assert_eq!(client.get("/index.html").status, 404, "the page's files are not limited (none here)");
}

#[test]
fn forwarded_for_keys_the_rate_limit_only_when_trusted_and_then_by_its_rightmost_address() {
    let unknown = "/api/shares/0123456789abcdef0123456789abcdef";
    let relay = |trust: bool| {
        let mut config = config(folder(&format!("forwarded-{trust}")));
        config.rate_per_minute = 2;
        config.trust_forwarded_for = trust;
        Relay::start(config).unwrap()
    };
    let statuses = |client: &Client, forwarded: &[&str]| -> Vec<u16> {
        forwarded.iter().map(|f| client.get_with(unknown, ("X-Forwarded-For", f)).status).collect()
    };

    let untrusting = relay(false);
    let client = Client::new(&untrusting);
    // A new spoofed address each time: all count against 127.0.0.1, whose burst is 2.
    assert_eq!(statuses(&client, &["10.0.0.1", "10.0.0.2", "10.0.0.3"]), [404, 404, 429]);
    assert_eq!(client.get(unknown).status, 429, "and the connection's own address is the one limited");

    let trusting = relay(true);
    let client = Client::new(&trusting);
    // The proxy appends the address it saw; what the client wrote to its left changes nothing.
    let seen_a = ["6.6.6.6, 10.0.0.1", "7.7.7.7, 10.0.0.1", "8.8.8.8, 10.0.0.1"];
    assert_eq!(statuses(&client, &seen_a), [404, 404, 429], "10.0.0.1's burst of 2 is spent");
    assert_eq!(statuses(&client, &["10.0.0.1, 10.0.0.2"]), [404], "10.0.0.2 has its own bucket");
    assert_eq!(client.get(unknown).status, 404, "without the header, the connection's address");
}

#[test]
fn a_restarted_relay_still_has_its_shares() {
    let data = folder("restart");
    let sent = ciphertext(10_000, 9);
    let id = {
        let relay = Relay::start(config(data.clone())).unwrap();
        Client::new(&relay).share("", &sent).0
    };
    assert!(data.join("relay.sqlite3").is_file());
    let relay = Relay::start(config(data)).unwrap();
    assert!(Client::new(&relay).get(&format!("/api/shares/{id}")).body == sent);
}

#[test]
fn the_page_is_served_with_the_security_headers_and_nothing_outside_it() {
    let dir = folder("site");
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("web")).unwrap();
    std::fs::write(site.join("index.html"), "<!doctype html>bedside").unwrap();
    std::fs::write(site.join("web/app.js"), "export {}").unwrap();
    std::fs::write(site.join(".hidden"), "secret").unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[package]").unwrap();
    let mut config = config(dir.join("data"));
    config.site = Some(site.clone());
    let relay = Relay::start(config).unwrap();
    let client = Client::new(&relay);

    let index = client.get("/");
    assert_eq!((index.status, index.body.as_slice()), (200, b"<!doctype html>bedside".as_slice()));
    assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let script = client.get("/web/app.js");
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    let head = client.head("/web/app.js");
    assert_eq!((head.status, head.body.len()), (200, 0));
    let api = client.get("/api/shares/0123456789abcdef0123456789abcdef");
    for reply in [&index, &script, &api] {
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(reply.header(name), Some(value), "{name}");
        }
    }
    for target in
        ["/../Cargo.toml", "/web/../../Cargo.toml", "/%2e%2e/Cargo.toml", "/..%2FCargo.toml", "/.hidden"]
    {
        let raw = raw_get(&relay, target);
        assert!(raw.starts_with("HTTP/1.1 404"), "{target}: {raw}");
        assert!(!raw.contains("[package]") && !raw.contains("secret"), "{target}: {raw}");
        assert!(raw.contains("Content-Security-Policy") || raw.contains("content-security-policy"), "{raw}");
    }
    let post = client.post("/index.html", b"x");
    assert_eq!(post.status, 405);

    // A file's gzip copy (written beside it by the site build) goes to a client that takes gzip,
    // with the file's type; the file itself to one that does not; the copy never by its own name.
    std::fs::write(site.join("web/app.js.gz"), b"\x1f\x8bcompressed").unwrap();
    let gzip = client.get_with("/web/app.js", ("Accept-Encoding", "gzip, deflate, br"));
    assert_eq!((gzip.status, gzip.body.as_slice()), (200, b"\x1f\x8bcompressed".as_slice()));
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(gzip.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(gzip.header("vary"), Some("Accept-Encoding"));
    let plain = client.get_with("/web/app.js", ("Accept-Encoding", "identity"));
    assert_eq!((plain.body.as_slice(), plain.header("content-encoding")), (b"export {}".as_slice(), None));
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(client.get("/index.html").header("vary"), None, "no copy, nothing varies");
    assert_eq!(client.get("/web/app.js.gz").status, 404);

    // Asked again with the tag it gave: 304 and no body; another encoding has another tag.
    let tag = gzip.header("etag").expect("an ETag").to_string();
    let again = client.get2("/web/app.js", [("Accept-Encoding", "gzip"), ("If-None-Match", &tag)]);
    assert_eq!((again.status, again.body.len(), again.header("etag")), (304, 0, Some(tag.as_str())));
    let plain = client.get2("/web/app.js", [("Accept-Encoding", "identity"), ("If-None-Match", &tag)]);
    assert_eq!((plain.status, plain.body.as_slice()), (200, b"export {}".as_slice()));
}
