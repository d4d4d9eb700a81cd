//! Scale-out: two relays on one PostgreSQL database behave as one; and what the database holds
//! of a share is ciphertext only.

mod common;

use bedside_relay::Relay;
use common::at_rest::{self, Session};
use common::{Client, ciphertext, config, folder, framed};

#[test]
fn two_relays_on_one_postgres_serve_the_same_shares() {
    let Some(postgres) = common::postgres::start() else { return };
    let relay = |name: &str| {
        let mut config = config(folder(name));
        config.database = Some(postgres.url.clone());
        Relay::start(config).unwrap()
    };
    // Both migrate at start: the second finds the schema in place.
    let (a, b) = (relay("pg-a"), relay("pg-b"));
    let (a, b) = (Client::new(&a), Client::new(&b));

    let sent = ciphertext(200_000, 5);
    let (id, token) = a.share("", &sent);
    let share = format!("/api/shares/{id}");
    assert!(b.get(&share).body == sent, "posted to A, read through B");
    assert_eq!(b.post(&format!("{share}/replies"), b"reply via B").json()["replies"], 1);
    assert_eq!(a.post(&format!("{share}/replies"), b"reply via A").json()["replies"], 2);
    assert_eq!(a.get(&format!("{share}/replies")).body, framed(&[b"reply via B", b"reply via A"]));
    assert_eq!(b.delete(&share, Some(&"0".repeat(64))).status, 403);
    assert_eq!(b.delete(&share, Some(&token)).status, 204);
    assert_eq!(a.get(&share).status, 404, "deleted through B, gone from A");

    let (burnt, _) = a.share("?burn=1", b"once");
    let burnt = format!("/api/shares/{burnt}");
    assert_eq!(b.get(&burnt).body, b"once");
    assert_eq!(a.get(&burnt).status, 410, "read once through B: A does not hand it out again");
}

#[test]
fn the_postgres_rows_and_files_hold_the_ciphertext_and_nothing_readable() {
    let Some(postgres) = common::postgres::start() else { return };
    let session = Session::new();
    let mut config = config(folder("pg-at-rest"));
    config.database = Some(postgres.url.clone());
    let relay = Relay::start(config).unwrap();
    let client = Client::new(&relay);
    let (id, token) = client.share("", &session.sealed);
    let replies = format!("/api/shares/{id}/replies");
    assert_eq!(client.post(&replies, &session.sealed_reply).status, 201);
    assert!(client.get(&format!("/api/shares/{id}")).body == session.sealed, "the relay serves it back");
    let share = (id.as_str(), token.as_str());

    let (tables, cells) = postgres.every_cell();
    assert_eq!(tables, ["replies", "schema_migrations", "shares"]);
    // Rows as SQL returns them are whole: every window of the ciphertext is there.
    at_rest::assert_only_ciphertext("in the tables' rows", &cells, &session, share, 10);

    // On disk: before a checkpoint the rows are in the WAL (pg_wal), after one in the tables' files
    // too (the ciphertext in the TOAST table's 2 KB chunks). The server log is searched as well.
    let files = at_rest::files_under(postgres.folder());
    at_rest::assert_only_ciphertext("in the cluster's files", &files, &session, share, 9);
    let wal: Vec<_> = files.into_iter().filter(|(name, _)| name.contains("/pg_wal/")).collect();
    at_rest::assert_only_ciphertext("in the WAL before a checkpoint", &wal, &session, share, 9);
    postgres.sql("CHECKPOINT");
    let files = at_rest::files_under(postgres.folder());
    at_rest::assert_only_ciphertext("in the cluster's files after a checkpoint", &files, &session, share, 9);
    let tables: Vec<_> = files.into_iter().filter(|(name, _)| name.contains("/base/")).collect();
    at_rest::assert_only_ciphertext("in the tables' files after a checkpoint", &tables, &session, share, 9);
}
