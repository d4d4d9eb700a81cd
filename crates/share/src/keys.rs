//! The share's secret, the keys derived from it, and the link fragment that carries it.
//!
//! Every key is HKDF-SHA256 of the secret with its own `info` label (`FORMAT.md`, "Keys"), so one
//! key tells nothing of another: the relay holds the capability token and learns nothing of the
//! content keys.

use crate::error::{Error, FragmentError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use std::fmt;

/// Bytes of a share's secret.
pub const SECRET_LEN: usize = 32;
/// Bytes of the random salt each envelope draws for its content key.
pub const SALT_LEN: usize = 16;

/// `info` of the content key of an envelope that holds a bundle.
pub const INFO_BUNDLE: &[u8] = b"bedside-share v1 bundle";
/// `info` of the content key of an envelope that holds a reply.
pub const INFO_REPLY: &[u8] = b"bedside-share v1 reply";
/// `info` of the capability token the relay checks.
pub const INFO_CAPABILITY: &[u8] = b"bedside-share v1 capability";

/// The 256-bit secret of one share: it opens the bundle and its replies and proves the capability.
/// It travels only in the link's fragment (`#k=…`), which browsers never send to a server.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

// Never printed, even in a debug log.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh secret from the system's random numbers (in a browser: crypto.getRandomValues).
    pub fn generate() -> Result<Secret, Error> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(Error::Random)?;
        Ok(Secret(bytes))
    }

    /// The secret with these bytes (tests, and a secret kept by the caller).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Secret {
        Secret(bytes)
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// The link fragment that carries the secret: `#k=` and 43 base64url characters.
    pub fn to_fragment(&self) -> String {
        format!("#k={}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Reads the secret from a link's fragment, with or without its `#`: `&`-separated `name=value`
    /// pairs of which exactly one is `k`, whose value is 32 bytes in base64url without padding.
    /// Other pairs are ignored, so a later version may add some.
    pub fn from_fragment(fragment: &str) -> Result<Secret, Error> {
        let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
        let mut keys = fragment.split('&').filter_map(|pair| pair.strip_prefix("k="));
        let key = keys.next().ok_or(FragmentError::NoKey)?;
        if keys.next().is_some() {
            return Err(FragmentError::DuplicateKey.into());
        }
        // The engine refuses padding, `+` and `/`, whitespace and non-zero trailing bits, so one
        // secret has exactly one spelling.
        let bytes = URL_SAFE_NO_PAD.decode(key).map_err(|_| FragmentError::NotBase64)?;
        let bytes: [u8; SECRET_LEN] =
            bytes.as_slice().try_into().map_err(|_| FragmentError::KeyLength(bytes.len()))?;
        Ok(Secret(bytes))
    }

    /// The content key of one envelope: HKDF-SHA256 of the secret with the envelope's `salt` and the
    /// `info` of its kind ([`INFO_BUNDLE`] or [`INFO_REPLY`]). Public so that another
    /// implementation can be checked against it.
    pub fn content_key(&self, salt: &[u8; SALT_LEN], info: &[u8]) -> [u8; 32] {
        expand(Some(salt), &self.0, info)
    }

    /// The capability token: what the clinician's tab gives the relay with the upload, and what a
    /// link holder shows to post or read replies. HKDF-SHA256 of the secret, no salt,
    /// [`INFO_CAPABILITY`].
    pub fn capability(&self) -> Capability {
        Capability(expand(None, &self.0, INFO_CAPABILITY))
    }
}

fn expand(salt: Option<&[u8]>, secret: &[u8], info: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(salt, secret)
        .expand(info, &mut key)
        .expect("32 bytes is within HKDF-SHA256's 8160-byte output");
    key
}

/// A share's capability token (see [`Secret::capability`]). The relay stores only its
/// [`digest`](Capability::digest), so a copy of the relay's storage cannot act on a share.
#[derive(Clone, PartialEq, Eq)]
pub struct Capability([u8; 32]);

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Capability(..)")
    }
}

impl Capability {
    /// The token as it is sent to the relay: base64url without padding (43 characters).
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// What the relay stores and compares: the SHA-256 of the token's 32 bytes, in lowercase hex.
    pub fn digest(&self) -> String {
        sha256_hex(&self.0)
    }
}

/// The relay's side: the digest ([`Capability::digest`]) of a token received as base64url, or
/// `None` when the text is not a token.
pub fn capability_digest(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    (bytes.len() == 32).then(|| sha256_hex(&bytes))
}

/// SHA-256 in lowercase hex, as the manifest and the relay write digests.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
