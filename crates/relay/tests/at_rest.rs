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
