//! Share ids and delete tokens: random, written as lowercase hex, parsed strictly.

use sha2::{Digest, Sha256};
use std::fmt;

/// A share's id: 128 random bits, 32 lowercase hex digits in URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShareId([u8; 16]);

/// The secret that deletes a share: 256 random bits, shown to the sender once. The store keeps
/// only its SHA-256 ([`TokenHash`]), so a copy of the database deletes nothing.
pub struct DeleteToken([u8; 32]);

/// SHA-256 of a [`DeleteToken`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

/// The operating system could not supply random bytes.
#[derive(Debug, thiserror::Error)]
#[error("the operating system gave no random bytes: {0}")]
pub struct RandomError(getrandom::Error);

impl ShareId {
    /// A new random id.
    pub fn random() -> Result<ShareId, RandomError> {
        let mut bytes = [0; 16];
        getrandom::fill(&mut bytes).map_err(RandomError)?;
        Ok(ShareId(bytes))
    }

    /// The id written as 32 lowercase hex digits; anything else is `None`.
    pub fn parse(text: &str) -> Option<ShareId> {
        Some(ShareId(parse_hex(text)?))
    }
}

impl fmt::Display for ShareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl DeleteToken {
    /// A new random token.
    pub fn random() -> Result<DeleteToken, RandomError> {
        let mut bytes = [0; 32];
        getrandom::fill(&mut bytes).map_err(RandomError)?;
        Ok(DeleteToken(bytes))
    }

    /// The token written as 64 lowercase hex digits; anything else is `None`.
    pub fn parse(text: &str) -> Option<DeleteToken> {
        Some(DeleteToken(parse_hex(text)?))
    }

    /// What the store keeps of it.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }

    /// The token as given to the sender.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl TokenHash {
    /// Equality in a time that does not depend on where the hashes differ.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.iter().zip(other.0).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `2 * N` lowercase hex digits (one spelling per id, so one row per share).
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
        *byte = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_parsed_strictly_and_round_trip() {
        let id = ShareId::random().unwrap();
        assert_eq!(ShareId::parse(&id.to_string()), Some(id));
        assert_eq!(id.to_string().len(), 32);
        let good = "00112233445566778899aabbccddeeff";
        assert_eq!(ShareId::parse(good).unwrap().to_string(), good);
        for bad in [
            "",
            "00112233445566778899AABBCCDDEEFF",
            "00112233445566778899aabbccddeef",
            "00112233445566778899aabbccddeeff0",
            "0011223344556677889/aabbccddeeff",
            "../../etc/passwd",
            "00112233445566778899aabbccddeefg",
        ] {
            assert_eq!(ShareId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_token_matches_only_its_own_hash() {
        let token = DeleteToken::random().unwrap();
        let again = DeleteToken::parse(&token.to_hex()).unwrap();
        assert!(token.hash().matches(&again.hash()));
        let other = DeleteToken::random().unwrap();
        assert!(!token.hash().matches(&other.hash()));
        assert_eq!(token.to_hex().len(), 64);
    }
}
