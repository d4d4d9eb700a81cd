//! The one error type of a share: what went wrong, said in a line a clinician can act on.

use std::fmt;

/// Which of the crate's formats an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The ciphertext that travels through the relay (`FORMAT.md`, "Envelope").
    Envelope,
    /// The plaintext session bundle inside an envelope (`FORMAT.md`, "Bundle").
    Bundle,
    /// The plaintext of a reviewer's reply (`FORMAT.md`, "Reply").
    Reply,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Envelope => "encrypted share",
            Format::Bundle => "share bundle",
            Format::Reply => "reply",
        })
    }
}

/// What is wrong with the key part of a share link (`#k=…`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("it has no key (`k=…`)")]
    NoKey,
    #[error("it names the key more than once")]
    DuplicateKey,
    #[error("the key is not base64url without padding")]
    NotBase64,
    #[error("the key is {0} bytes long, not 32")]
    KeyLength(usize),
}

/// Everything that can go wrong sealing or opening a share or a reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Authentication failed: the wrong key, or ciphertext changed, reordered, cut or extended at a
    /// chunk boundary. The message says no more, on purpose; `chunk` is for logs and tests.
    #[error("cannot decrypt this share")]
    CannotDecrypt {
        /// The index of the chunk that failed.
        chunk: u64,
    },
    /// The bytes end before the layout they declare does.
    #[error("the {format} is truncated: it is {found} bytes long, its layout needs at least {needed}")]
    Truncated { format: Format, needed: u64, found: u64 },
    /// A version this build does not read (a newer Bedside wrote it, or the bytes are damaged).
    #[error("unknown {format} version {version}: this Bedside reads version {supported}")]
    UnknownVersion { format: Format, version: u16, supported: u16 },
    /// The bytes do not start with the format's magic.
    #[error("not a Bedside {0}")]
    NotAShare(Format),
    /// An envelope of the other kind: a reply opened as a bundle, or the reverse.
    #[error("this is an encrypted {found}, not an encrypted {expected}")]
    WrongKind { expected: Format, found: Format },
    /// An envelope kind byte that names neither a bundle nor a reply.
    #[error("unknown kind {0} of encrypted share")]
    UnknownKind(u8),
    /// A declared or actual size over the format's bound.
    #[error("the {format} is too large: {size} bytes where at most {limit} are allowed")]
    TooLarge { format: Format, size: u64, limit: u64 },
    /// An envelope chunk size outside the bounds `FORMAT.md` gives.
    #[error("unsupported chunk size {0} of encrypted share")]
    ChunkSize(u32),
    /// Bytes after the end of the layout.
    #[error("the {format} has {count} bytes after its end")]
    TrailingBytes { format: Format, count: u64 },
    /// A bundle's manifest or a reply that is not the JSON its version describes.
    #[error("the {format} is not valid JSON of its version: {source}")]
    Json {
        format: Format,
        #[source]
        source: serde_json::Error,
    },
    /// A value of the manifest or a reply that breaks a rule of the format.
    #[error("the {format} is invalid: {field} {problem}")]
    Invalid { format: Format, field: String, problem: &'static str },
    /// A binary part whose SHA-256 is not the one the manifest declares.
    #[error("part {part} of the share bundle does not match its SHA-256 digest")]
    Digest { part: usize },
    /// The key in a share link is malformed.
    #[error("the share link's key is malformed: {0}")]
    Fragment(#[from] FragmentError),
    /// The system gave no random numbers (the secret and each salt are drawn from it).
    #[error("no random numbers from the system: {0}")]
    Random(getrandom::Error),
}

impl Error {
    pub(crate) fn invalid(format: Format, field: impl Into<String>, problem: &'static str) -> Error {
        Error::Invalid { format, field: field.into(), problem }
    }
}
