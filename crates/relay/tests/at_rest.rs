//! Nothing readable at rest: a real sealed session goes through a relay with SQLite, and the
//! database's files hold its ciphertext but none of its plaintext, its key or its delete token.

mod common;

use bedside_relay::Relay;
use common::at_rest::{self, Session};
use common::{Client, config, folder, framed};

#[test]
fn the_sqlite_files_hold_the_ciphertext_and_nothing_readable() {
    let data = folder("at-rest");
    let session = Session::new();
    let relay = Relay::start(config(data.clone())).unwrap();
    let client = Client::new(&relay);
    let (id, token) = client.share("", &session.sealed);
    let replies = format!("/api/shares/{id}/replies");
    assert_eq!(client.post(&replies, &session.sealed_reply).status, 201);
    assert!(client.get(&format!("/api/shares/{id}")).body == session.sealed, "the relay serves it back");
    assert!(client.get(&replies).body == framed(&[&session.sealed_reply]));

    let search = |moment: &str| {
        let files = at_rest::files_under(&data);
        at_rest::assert_only_ciphertext(moment, &files, &session, (&id, &token), 9);
        files.into_iter().map(|(name, _)| name.rsplit('/').next().unwrap().to_string()).collect::<Vec<_>>()
    };
    // While the relay runs, the commits are in the WAL (SQLite checkpoints on its own only past
    // 1000 pages), beside the database and its shared-memory index.
    let names = search("while the relay runs");
    for name in ["relay.sqlite3", "relay.sqlite3-wal", "relay.sqlite3-shm"] {
        assert!(names.iter().any(|n| n == name), "{name} is not among {names:?}");
    }
    // Stopped, the relay's connection closes and SQLite folds the WAL into the database.
    drop(relay);
    let names = search("after the relay stopped");
    assert!(names.iter().any(|n| n == "relay.sqlite3"), "{names:?}");
    std::fs::remove_dir_all(data).ok();
}

/// The request log of the `relay` binary (standard error) names each request (method, path,
/// status, lengths) and holds nothing of what was sent: no body, no query, no token.
#[test]
fn the_relay_log_names_each_request_and_holds_no_body_query_or_token() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let data = folder("log");
    let mut relay = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["--port", "0", "--rate-per-minute", "0", "--site", "no-site-here", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the relay binary starts");
    let mut banner = String::new();
    BufReader::new(relay.stdout.take().unwrap()).read_line(&mut banner).unwrap();
    let base = banner.split_whitespace().find(|w| w.starts_with("http://")).expect(&banner).to_string();
    let client = Client::at(base);

    let session = Session::new();
    let (id, token) = client.share("?ttl=3600&burn=1", &session.sealed);
    let replies = format!("/api/shares/{id}/replies");
    assert_eq!(client.post(&replies, &session.sealed_reply).status, 201);
    assert!(client.get(&format!("/api/shares/{id}")).body == session.sealed);
    assert_eq!(client.get(&replies).status, 200);
    assert_eq!(client.delete(&format!("/api/shares/{id}"), Some(&token)).status, 204);

    relay.kill().unwrap();
    relay.wait().unwrap();
    let mut log = Vec::new();
    relay.stderr.take().unwrap().read_to_end(&mut log).unwrap();
    let text = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" /api/")).collect();
    // Each line up to its response length (the JSON answers' lengths vary with the id).
    let heads: Vec<&str> =
        lines.iter().map(|l| l.rsplit_once(" out=").map_or(*l, |(head, _)| head)).collect();
    let sent = session.sealed.len();
    let reply = session.sealed_reply.len();
    let share = format!("/api/shares/{id}");
    assert_eq!(
        heads,
        [
            format!("POST /api/shares 201 in={sent}"),
            format!("POST {replies} 201 in={reply}"),
            format!("GET {share} 200 in=0"),
            format!("GET {replies} 200 in=0"),
            format!("DELETE {share} 204 in=0"),
        ],
        "{text}"
    );
    assert_eq!(lines[2], format!("GET {share} 200 in=0 out={sent}"), "the body's length, not the body");
    assert!(!text.contains("ttl=") && !text.contains("burn="), "no query in the log: {text}");
    let places = [("the relay's log".to_string(), log.clone())];
    assert_eq!(at_rest::leaked(&places, &session.secrets(&token)), Vec::<String>::new());
    assert_eq!(at_rest::windows_found(&[&log], &session.ciphertext_windows()), 0, "no ciphertext in the log");
    std::fs::remove_dir_all(data).ok();
}
