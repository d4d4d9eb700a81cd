//! The reviewer's reply, sealed with the share's secret and opened in the clinician's tab.

mod common;

use bedside_share::envelope::{self, HEADER_LEN, Kind, TAG_LEN};
use bedside_share::{
    Error, Format, Opinion, Reply, Secret, open_bundle, open_reply, seal_bundle, seal_reply,
};
use common::{sample_bundle, secret};

fn reply(opinion: Opinion) -> Reply {
    Reply {
        text: "Consolidation in the right lower lobe; I agree — treat and repeat in 6 weeks.".into(),
        opinion,
        created: "2026-12-05T08:30:00Z".into(),
    }
}

#[test]
fn round_trip_of_every_opinion() {
    for opinion in [Opinion::Agree, Opinion::Disagree, Opinion::Uncertain, Opinion::None] {
        let sealed = seal_reply(&secret(5), &reply(opinion)).unwrap();
        assert_eq!(sealed[10], Kind::Reply as u8);
        assert_eq!(open_reply(&secret(5), &sealed).unwrap(), reply(opinion));
    }
}

#[test]
fn the_plaintext_is_the_documented_json() {
    let sealed = seal_reply(&secret(5), &reply(Opinion::Disagree)).unwrap();
    let json = envelope::open(&secret(5), Kind::Reply, &sealed).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "format_version": 1,
            "text": reply(Opinion::Disagree).text,
            "opinion": "disagree",
            "created": "2026-12-05T08:30:00Z",
        })
    );
    assert_eq!(sealed.len(), HEADER_LEN + json.len() + TAG_LEN, "one chunk");
}

#[test]
fn wrong_key_and_tampering_cannot_decrypt() {
    let sealed = seal_reply(&secret(5), &reply(Opinion::Agree)).unwrap();
    let error = open_reply(&secret(6), &sealed).unwrap_err();
    assert!(matches!(error, Error::CannotDecrypt { chunk: 0 }));
    assert_eq!(error.to_string(), "cannot decrypt this share");
    for at in (HEADER_LEN..sealed.len()).step_by(7) {
        let mut bad = sealed.clone();
        bad[at] ^= 4;
        assert!(matches!(open_reply(&secret(5), &bad), Err(Error::CannotDecrypt { chunk: 0 })), "{at}");
    }
    for cut in 0..sealed.len() {
        assert!(matches!(open_reply(&secret(5), &sealed[..cut]), Err(Error::Truncated { .. })), "{cut}");
    }
}

#[test]
fn a_reply_is_not_a_bundle_and_a_bundle_not_a_reply() {
    let sealed_reply = seal_reply(&secret(5), &reply(Opinion::Agree)).unwrap();
    let error = open_bundle(&secret(5), &sealed_reply).unwrap_err();
    assert!(matches!(error, Error::WrongKind { expected: Format::Bundle, found: Format::Reply }));
    assert_eq!(error.to_string(), "this is an encrypted reply, not an encrypted share bundle");
    let sealed_bundle = seal_bundle(&secret(5), &sample_bundle()).unwrap();
    assert!(matches!(
        open_reply(&secret(5), &sealed_bundle),
        Err(Error::WrongKind { expected: Format::Reply, found: Format::Bundle })
    ));
    // The kind byte changed by hand: the key of the other kind does not open it.
    let mut relabelled = sealed_reply.clone();
    relabelled[10] = Kind::Bundle as u8;
    assert!(matches!(open_bundle(&secret(5), &relabelled), Err(Error::CannotDecrypt { chunk: 0 })));
}

#[test]
fn unknown_reply_version_and_malformed_json_are_named() {
    let seal = |json: &str| envelope::seal(&secret(5), Kind::Reply, json.as_bytes(), 4096).unwrap();
    let newer = seal(r#"{"format_version":2,"text":"hi","opinion":"agree","created":"","mood":"calm"}"#);
    let error = open_reply(&secret(5), &newer).unwrap_err();
    assert!(matches!(error, Error::UnknownVersion { format: Format::Reply, version: 2, supported: 1 }));
    assert_eq!(error.to_string(), "unknown reply version 2: this Bedside reads version 1");

    for json in [
        r#"{"format_version":1,"text":"hi","opinion":"maybe","created":""}"#,
        r#"{"format_version":1,"opinion":"agree","created":""}"#,
        r#"{"text":"hi"}"#,
        "not json",
    ] {
        assert!(
            matches!(open_reply(&secret(5), &seal(json)), Err(Error::Json { format: Format::Reply, .. })),
            "{json}"
        );
    }
}

#[test]
fn a_reply_over_the_bound_is_refused() {
    let long = Reply { text: "x".repeat(300 * 1024), ..reply(Opinion::None) };
    assert!(matches!(
        seal_reply(&secret(5), &long),
        Err(Error::TooLarge { format: Format::Reply, limit: 262_144, .. })
    ));
}

/// An envelope written by this version, kept to catch a change of the format that was not meant:
/// a later Bedside must still open it. Sealed with the secret 0x2a × 32.
#[test]
fn a_reply_sealed_by_version_1_still_opens() {
    let sealed = hex_bytes(GOLDEN_REPLY);
    let opened = open_reply(&Secret::from_bytes([0x2a; 32]), &sealed).unwrap();
    assert_eq!(
        opened,
        Reply {
            text: "Agree. Follow up in 3 months.".into(),
            opinion: Opinion::Agree,
            created: "2026-12-05T09:00:00Z".into()
        }
    );
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

const GOLDEN_REPLY: &str = concat!(
    "424544534944454300010200010000000000000000006e54303dd259376eb1c13b15132bdc78081057dddb65ec21886e",
    "a15af0fe5b87096a3b83194082df557b90e5e36094df127332be8ef37b85bf3451a28f95ccf5151788030a62e60fe769",
    "77f5f4e25aaff1477dbf45a31049827b1f98c6cc3585db9a73a61209431fa6111d6c1b96bf91a036e5fbb59be91a3f47",
    "398e4c6a7cb7f8414b61ffafbc77afc0b858c29f9f",
);
