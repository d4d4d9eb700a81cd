//! Where shares live: one trait, [`Store`], with an embedded SQLite file by default
//! ([`SqliteStore`]) and PostgreSQL for several relays behind a load balancer ([`PostgresStore`]).
//!
//! Calls block (the server runs them on tokio's blocking threads). Both stores apply their
//! versioned migrations when opened, and refuse a database written by a newer relay.

mod postgres;
mod sqlite;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

use crate::secret::{ShareId, TokenHash};

/// A share as the sender posted it.
pub struct NewShare {
    pub id: ShareId,
    pub token: TokenHash,
    /// Bytes the relay cannot read: the key never leaves the sender's and the reader's pages.
    pub ciphertext: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Readable once: the first successful read removes the ciphertext (replies stay until expiry).
    pub burn_after_reading: bool,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// No such share, or the sweeper has removed it.
    Missing,
    /// Past its expiry, not yet swept.
    Expired,
    /// A burn-after-reading share that has been read.
    Burnt,
    /// The share holds the most replies allowed.
    Full,
}

/// What deleting found.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    WrongToken,
    Missing,
}

/// A failure of the database itself (never of the caller's input).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not create the data folder {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("SQLite failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the database is at schema version {found}, newer than this relay's {known}: run a newer relay")]
    NewerSchema { found: i64, known: i64 },
    #[error("a stored delete token hash is {0} bytes long, not 32")]
    CorruptToken(usize),
}

/// The relay's storage.
pub trait Store: Send + Sync + 'static {
    /// Stores a new share (its id is fresh and random).
    fn put_share(&self, share: &NewShare) -> Result<(), StoreError>;
    /// The ciphertext of a live share; a burn-after-reading share is burnt by the same call, so
    /// of two simultaneous reads only one gets it.
    fn read_share(&self, id: &ShareId, now: i64) -> Result<Lookup<Vec<u8>>, StoreError>;
    /// Removes a share and its replies if `token` is its delete token (expired or not).
    fn delete_share(&self, id: &ShareId, token: &TokenHash) -> Result<Deletion, StoreError>;
    /// Appends a reply to a live share (burnt or not) holding fewer than `max_replies`; returns
    /// how many replies it holds now.
    fn add_reply(
        &self,
        id: &ShareId,
        body: &[u8],
        now: i64,
        max_replies: u32,
    ) -> Result<Lookup<u32>, StoreError>;
    /// A live share's replies, oldest first.
    fn replies(&self, id: &ShareId, now: i64) -> Result<Lookup<Vec<Vec<u8>>>, StoreError>;
    /// Removes the shares expired at `now` with their replies; returns how many.
    fn sweep(&self, now: i64) -> Result<u64, StoreError>;
}

/// Why a share's row may not be read at `now`, if it may not.
fn refusal<T>(expires_at: i64, burnt: bool, now: i64) -> Option<Lookup<T>> {
    if now >= expires_at {
        Some(Lookup::Expired)
    } else if burnt {
        Some(Lookup::Burnt)
    } else {
        None
    }
}

fn token_hash(bytes: Vec<u8>) -> Result<TokenHash, StoreError> {
    let len = bytes.len();
    Ok(TokenHash(bytes.try_into().map_err(|_| StoreError::CorruptToken(len))?))
}
