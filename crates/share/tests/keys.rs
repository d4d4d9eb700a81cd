//! The share's secret in the link, and the keys derived from it.

use bedside_share::{
    Error, FragmentError, INFO_BUNDLE, INFO_CAPABILITY, INFO_REPLY, Secret, capability_digest,
};

/// The secret 00 01 02 … 1f, whose link fragment Python's
/// `base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=")` also gives.
fn counting_secret() -> Secret {
    Secret::from_bytes(std::array::from_fn(|i| i as u8))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Known answers computed apart from this crate, with Python's standard library:
///
/// ```python
/// import hmac, hashlib
/// def hkdf(salt, ikm, info, n=32):  # RFC 5869; no salt = 32 zero bytes
///     prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
///     okm, t, i = b"", b"", 1
///     while len(okm) < n:
///         t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest(); okm += t; i += 1
///     return okm[:n]
/// secret, salt = bytes(range(32)), bytes(range(0xa0, 0xb0))
/// hkdf(salt, secret, b"bedside-share v1 bundle").hex()
/// hkdf(salt, secret, b"bedside-share v1 reply").hex()
/// cap = hkdf(None, secret, b"bedside-share v1 capability")
/// cap.hex(); hashlib.sha256(cap).hexdigest()
/// ```
/// (the same function gives RFC 5869's test case 1, which checks it).
#[test]
fn key_derivation_matches_an_independent_hkdf() {
    let secret = counting_secret();
    let salt: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
    assert_eq!(INFO_BUNDLE, b"bedside-share v1 bundle");
    assert_eq!(INFO_REPLY, b"bedside-share v1 reply");
    assert_eq!(INFO_CAPABILITY, b"bedside-share v1 capability");
    assert_eq!(
        hex(&secret.content_key(&salt, INFO_BUNDLE)),
        "03df746177d6da72769540c8ff556cb8d52ea0eeeeb484869f2792f71f4e098a"
    );
    assert_eq!(
        hex(&secret.content_key(&salt, INFO_REPLY)),
        "799f140e273d9d21bb6c3239c2d09b4c3e3dc751edecf887b0e35e6f13e8bf39"
    );
    let capability = secret.capability();
    // 3fa559404589106cc2e3e88437d6e300d501a745bbee5f4733615c0d38781305 in base64url:
    assert_eq!(capability.to_base64url(), "P6VZQEWJEGzC4-iEN9bjANUBp0W77l9HM2FcDTh4EwU");
    let digest = "0c15f5fdb78f98a6520cb9cc762da2a6bd1c14ac4f609c0eebb99792ef386580";
    assert_eq!(capability.digest(), digest);
    assert_eq!(capability_digest(&capability.to_base64url()).as_deref(), Some(digest));
}

#[test]
fn the_relay_side_digest_refuses_what_is_not_a_token() {
    assert_eq!(capability_digest(""), None);
    assert_eq!(capability_digest("P6VZQEWJEGzC4-iEN9bjANUBp0W77l9HM2FcDTh4Ew"), None);
    assert_eq!(capability_digest("P6VZQEWJEGzC4+iEN9bjANUBp0W77l9HM2FcDTh4EwU"), None);
    assert_eq!(capability_digest("P6VZQEWJEGzC4-iEN9bjANUBp0W77l9HM2FcDTh4EwU="), None);
}

#[test]
fn fragment_round_trip() {
    let secret = counting_secret();
    let fragment = secret.to_fragment();
    assert_eq!(fragment, "#k=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    assert_eq!(Secret::from_fragment(&fragment).unwrap(), secret);
    assert_eq!(Secret::from_fragment(&fragment[1..]).unwrap(), secret, "without the #");
    // Other pairs, which a later version may add, are passed over.
    let with_more = "#v=2&k=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8&x";
    assert_eq!(Secret::from_fragment(with_more).unwrap(), secret);

    let fresh = Secret::generate().unwrap();
    assert_eq!(Secret::from_fragment(&fresh.to_fragment()).unwrap(), fresh);
    assert_ne!(fresh, Secret::generate().unwrap());
}

#[test]
fn malformed_fragments_say_what_is_wrong() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let cases: Vec<(String, FragmentError)> = vec![
        (String::new(), FragmentError::NoKey),
        ("#".into(), FragmentError::NoKey),
        (format!("#key={key}"), FragmentError::NoKey),
        (format!("#K={key}"), FragmentError::NoKey),
        (format!("#k={key}&k={key}"), FragmentError::DuplicateKey),
        ("#k=".into(), FragmentError::KeyLength(0)),
        (format!("#k={key}="), FragmentError::NotBase64),
        (format!("#k={}", key.replace('Q', "+")), FragmentError::NotBase64),
        (format!("#k={}", key.replace('Q', "/")), FragmentError::NotBase64),
        (format!("#k= {key}"), FragmentError::NotBase64),
        (format!("#k={}", &key[..42]), FragmentError::NotBase64),
        // 43 characters, but the last one's unused bits are not zero: a second spelling of a key.
        (format!("#k={}9", &key[..42]), FragmentError::NotBase64),
        (format!("#k={key}A"), FragmentError::KeyLength(33)),
        ("#k=AAAA".into(), FragmentError::KeyLength(3)),
    ];
    for (fragment, expected) in cases {
        match Secret::from_fragment(&fragment) {
            Err(Error::Fragment(found)) => assert_eq!(found, expected, "{fragment:?}"),
            other => panic!("{fragment:?}: {other:?}"),
        }
    }
    let message = Secret::from_fragment("#k=AAAA").unwrap_err().to_string();
    assert_eq!(message, "the share link's key is malformed: the key is 3 bytes long, not 32");
}

#[test]
fn secrets_and_tokens_never_print() {
    let secret = counting_secret();
    assert_eq!(format!("{secret:?}"), "Secret(..)");
    assert_eq!(format!("{:?}", secret.capability()), "Capability(..)");
}
