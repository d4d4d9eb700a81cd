//! The reviewer's reply: small versioned JSON, sealed with the share's secret under its own key
//! (`FORMAT.md`, "Reply").

use crate::envelope::{self, DEFAULT_CHUNK_SIZE, Kind};
use crate::error::{Error, Format};
use crate::keys::Secret;
use serde::{Deserialize, Serialize};

/// The reply version this build writes and reads.
pub const REPLY_VERSION: u16 = 1;
/// Largest reply plaintext, in bytes.
pub const MAX_REPLY_LEN: u64 = 256 * 1024;

/// The reviewer's second opinion on the diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Opinion {
    Agree,
    Disagree,
    Uncertain,
    /// The reviewer gives no opinion, only text.
    None,
}

/// What a reviewer sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub opinion: Opinion,
    /// When it was written, as the caller writes it (RFC 3339 is the convention).
    pub created: String,
}

#[derive(Serialize, Deserialize)]
struct ReplyJson {
    format_version: u16,
    text: String,
    opinion: Opinion,
    created: String,
}

/// Read first, so a newer reply is named as such rather than as malformed.
#[derive(Deserialize)]
struct VersionOnly {
    format_version: u16,
}

/// Seals a reply for the relay with the share's secret.
pub fn seal_reply(secret: &Secret, reply: &Reply) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(&ReplyJson {
        format_version: REPLY_VERSION,
        text: reply.text.clone(),
        opinion: reply.opinion,
        created: reply.created.clone(),
    })
    .expect("a reply serialises");
    envelope::seal(secret, Kind::Reply, &json, DEFAULT_CHUNK_SIZE)
}

/// Opens a reply fetched from the relay.
pub fn open_reply(secret: &Secret, bytes: &[u8]) -> Result<Reply, Error> {
    let json = envelope::open(secret, Kind::Reply, bytes)?;
    let parse_error = |source| Error::Json { format: Format::Reply, source };
    let VersionOnly { format_version } = serde_json::from_slice(&json).map_err(parse_error)?;
    if format_version != REPLY_VERSION {
        let (version, supported) = (format_version, REPLY_VERSION);
        return Err(Error::UnknownVersion { format: Format::Reply, version, supported });
    }
    let reply: ReplyJson = serde_json::from_slice(&json).map_err(parse_error)?;
    Ok(Reply { text: reply.text, opinion: reply.opinion, created: reply.created })
}
