//! Scale-out: two relays on one PostgreSQL database behave as one.

mod common;

use bedside_relay::Relay;
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
