//! The envelope: a plaintext sealed in chunks of AES-256-GCM, the STREAM construction of age and
//! Tink (`FORMAT.md`, "Envelope").
//!
//! Each envelope draws a salt and derives its own content key from the share's secret, so chunk
//! nonces can be a plain counter: `index (11 bytes, big-endian) || last flag (1 byte)`. The flag
//! makes cutting the stream at a chunk boundary fail, the index makes reordering fail, and every
//! chunk authenticates the whole header (with its plaintext length) and its index as associated
//! data, so no header byte can change unnoticed.

use crate::bundle::MAX_BUNDLE_LEN;
use crate::error::{Error, Format};
use crate::keys::{INFO_BUNDLE, INFO_REPLY, SALT_LEN, Secret};
use crate::reply::MAX_REPLY_LEN;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

/// The first bytes of every envelope.
pub const ENVELOPE_MAGIC: [u8; 8] = *b"BEDSIDEC";
/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u16 = 1;
/// Bytes of the envelope header: magic, version, kind, chunk size, plaintext length, salt.
pub const HEADER_LEN: usize = 8 + 2 + 1 + 4 + 8 + SALT_LEN;
/// Plaintext bytes per chunk that [`crate::seal_bundle`] and [`crate::seal_reply`] use.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// The smallest chunk size an envelope may declare.
pub const MIN_CHUNK_SIZE: u32 = 256;
/// The largest chunk size an envelope may declare.
pub const MAX_CHUNK_SIZE: u32 = 1 << 20;
/// Bytes of the GCM tag after each chunk.
pub const TAG_LEN: usize = 16;

/// What an envelope holds; it selects the content key's `info`, so one kind never opens as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A session bundle (header byte 10 = 1).
    Bundle = 1,
    /// A reviewer's reply (header byte 10 = 2).
    Reply = 2,
}

impl Kind {
    fn from_byte(byte: u8) -> Result<Kind, Error> {
        match byte {
            1 => Ok(Kind::Bundle),
            2 => Ok(Kind::Reply),
            other => Err(Error::UnknownKind(other)),
        }
    }

    fn info(self) -> &'static [u8] {
        match self {
            Kind::Bundle => INFO_BUNDLE,
            Kind::Reply => INFO_REPLY,
        }
    }

    fn format(self) -> Format {
        match self {
            Kind::Bundle => Format::Bundle,
            Kind::Reply => Format::Reply,
        }
    }

    /// The largest plaintext of this kind, which bounds what opening one allocates.
    fn limit(self) -> u64 {
        match self {
            Kind::Bundle => MAX_BUNDLE_LEN,
            Kind::Reply => MAX_REPLY_LEN,
        }
    }
}

/// Seals `plaintext` under a fresh salt, in chunks of `chunk_size` bytes.
pub fn seal(secret: &Secret, kind: Kind, plaintext: &[u8], chunk_size: u32) -> Result<Vec<u8>, Error> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(Error::ChunkSize(chunk_size));
    }
    let size = plaintext.len() as u64;
    if size > kind.limit() {
        return Err(Error::TooLarge { format: kind.format(), size, limit: kind.limit() });
    }
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(Error::Random)?;

    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN * chunk_count(size, chunk_size));
    out.extend_from_slice(&ENVELOPE_MAGIC);
    out.extend_from_slice(&ENVELOPE_VERSION.to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&chunk_size.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&salt);
    let header: [u8; HEADER_LEN] = out[..].try_into().expect("the header was just written");

    let cipher = Aes256Gcm::new(&secret.content_key(&salt, kind.info()).into());
    let count = chunk_count(size, chunk_size);
    // An empty plaintext is one empty chunk, so even it is authenticated.
    let mut chunks = plaintext.chunks(chunk_size as usize);
    for index in 0..count {
        let chunk = chunks.next().unwrap_or_default();
        let start = out.len();
        out.extend_from_slice(chunk);
        let (nonce, aad) = nonce_and_aad(&header, index as u64, index + 1 == count);
        let tag = cipher
            .encrypt_in_place_detached(&nonce, &aad, &mut out[start..])
            .expect("a chunk is far below GCM's 64 GiB bound");
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

/// Opens an envelope of the `expected` kind: checks the header, every length and every chunk's tag.
pub fn open(secret: &Secret, expected: Kind, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let truncated = |needed: usize| Error::Truncated {
        format: Format::Envelope,
        needed: needed as u64,
        found: bytes.len() as u64,
    };
    let magic = &bytes[..bytes.len().min(ENVELOPE_MAGIC.len())];
    if magic != &ENVELOPE_MAGIC[..magic.len()] {
        return Err(Error::NotAShare(Format::Envelope));
    }
    let Some(version) = bytes.get(8..10) else { return Err(truncated(10)) };
    let version = u16::from_be_bytes([version[0], version[1]]);
    if version != ENVELOPE_VERSION {
        return Err(Error::UnknownVersion { format: Format::Envelope, version, supported: ENVELOPE_VERSION });
    }
    let Some(header) = bytes.get(..HEADER_LEN) else { return Err(truncated(HEADER_LEN)) };
    let header: [u8; HEADER_LEN] = header.try_into().expect("HEADER_LEN bytes");
    let kind = Kind::from_byte(header[10])?;
    if kind != expected {
        return Err(Error::WrongKind { expected: expected.format(), found: kind.format() });
    }
    let chunk_size = u32::from_be_bytes(header[11..15].try_into().expect("4 bytes"));
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(Error::ChunkSize(chunk_size));
    }
    let size = u64::from_be_bytes(header[15..23].try_into().expect("8 bytes"));
    if size > kind.limit() {
        return Err(Error::TooLarge { format: kind.format(), size, limit: kind.limit() });
    }
    let salt: [u8; SALT_LEN] = header[23..].try_into().expect("SALT_LEN bytes");

    // Sizes are bounded above, so these fit in usize even on wasm32.
    let count = chunk_count(size, chunk_size);
    let needed = HEADER_LEN + size as usize + count * TAG_LEN;
    if bytes.len() < needed {
        return Err(truncated(needed));
    }
    if bytes.len() > needed {
        return Err(Error::TrailingBytes { format: Format::Envelope, count: (bytes.len() - needed) as u64 });
    }

    let cipher = Aes256Gcm::new(&secret.content_key(&salt, kind.info()).into());
    let mut out = Vec::with_capacity(size as usize);
    let mut body = &bytes[HEADER_LEN..];
    for index in 0..count {
        let len = (chunk_size as usize).min(size as usize - out.len());
        let (chunk, rest) = body.split_at(len + TAG_LEN);
        body = rest;
        let start = out.len();
        out.extend_from_slice(&chunk[..len]);
        let (nonce, aad) = nonce_and_aad(&header, index as u64, index + 1 == count);
        cipher
            .decrypt_in_place_detached(&nonce, &aad, &mut out[start..], Tag::from_slice(&chunk[len..]))
            .map_err(|_| Error::CannotDecrypt { chunk: index as u64 })?;
    }
    Ok(out)
}

/// Chunks of a plaintext of `size` bytes: at least one, the last possibly short.
fn chunk_count(size: u64, chunk_size: u32) -> usize {
    size.div_ceil(u64::from(chunk_size)).max(1) as usize
}

/// A chunk's nonce (index, big-endian in 11 bytes, then 1 on the last chunk, else 0) and its
/// associated data (the header, then the index as 8 bytes big-endian).
fn nonce_and_aad(
    header: &[u8; HEADER_LEN],
    index: u64,
    last: bool,
) -> (Nonce<aes_gcm::aead::consts::U12>, Vec<u8>) {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    let mut aad = Vec::with_capacity(HEADER_LEN + 8);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&index.to_be_bytes());
    (nonce.into(), aad)
}
