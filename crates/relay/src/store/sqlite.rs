//! The default store: one SQLite file, `relay.sqlite3`, in the data folder (WAL journal).

use super::{Deletion, Lookup, NewShare, Store, StoreError, refusal, token_hash};
use crate::secret::{ShareId, TokenHash};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// The schema, one step per version; a step is never edited once released, only appended to.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE shares (
        id TEXT PRIMARY KEY,
        token_hash BLOB NOT NULL,
        ciphertext BLOB,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        burn_after_reading INTEGER NOT NULL
    );
    CREATE INDEX shares_by_expiry ON shares (expires_at);
    CREATE TABLE replies (
        share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        body BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (share_id, seq)
    );",
)];

/// The file's name in the data folder.
pub const FILE_NAME: &str = "relay.sqlite3";

/// Shares in an embedded SQLite database.
pub struct SqliteStore {
    // One connection: SQLite writes one transaction at a time anyway, and the relay's are short.
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (or creates) `relay.sqlite3` in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let mut connection = Connection::open(data_dir.join(FILE_NAME))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // Every commit is synced before the 201 goes out, so an acknowledged share survives a power
        // loss, not only a crash of the relay (WAL's NORMAL would lose the last commits). Explicit:
        // the compiled-in default differs between SQLite builds.
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut connection)?;
        Ok(SqliteStore { connection: Mutex::new(connection) })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock left no transaction open (rusqlite rolls back on drop).
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 =
        tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::NewerSchema { found: current, known });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())",
            [version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl Store for SqliteStore {
    fn put_share(&self, share: &NewShare) -> Result<(), StoreError> {
        self.connection().execute(
            "INSERT INTO shares (id, token_hash, ciphertext, created_at, expires_at, burn_after_reading)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                share.id.to_string(),
                share.token.0.as_slice(),
                share.ciphertext,
                share.created_at,
                share.expires_at,
                share.burn_after_reading
            ],
        )?;
        Ok(())
    }

    fn read_share(&self, id: &ShareId, now: i64) -> Result<Lookup<Vec<u8>>, StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(i64, Option<Vec<u8>>, bool)> = tx
            .query_row(
                "SELECT expires_at, ciphertext, burn_after_reading FROM shares WHERE id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((expires_at, ciphertext, burn)) = row else { return Ok(Lookup::Missing) };
        if let Some(refused) = refusal(expires_at, ciphertext.is_none(), now) {
            return Ok(refused);
        }
        if burn {
            tx.execute("UPDATE shares SET ciphertext = NULL WHERE id = ?1", [id.to_string()])?;
        }
        tx.commit()?;
        Ok(ciphertext.map_or(Lookup::Burnt, Lookup::Found))
    }

    fn delete_share(&self, id: &ShareId, token: &TokenHash) -> Result<Deletion, StoreError> {
        let connection = self.connection();
        let stored: Option<Vec<u8>> = connection
            .query_row("SELECT token_hash FROM shares WHERE id = ?1", [id.to_string()], |r| r.get(0))
            .optional()?;
        let Some(stored) = stored else { return Ok(Deletion::Missing) };
        if !token_hash(stored)?.matches(token) {
            return Ok(Deletion::WrongToken);
        }
        connection.execute("DELETE FROM shares WHERE id = ?1", [id.to_string()])?;
        Ok(Deletion::Deleted)
    }

    fn add_reply(
        &self,
        id: &ShareId,
        body: &[u8],
        now: i64,
        max_replies: u32,
    ) -> Result<Lookup<u32>, StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Err(refused) = live_share(&tx, id, now)? {
            return Ok(refused);
        }
        let count: u32 =
            tx.query_row("SELECT COUNT(*) FROM replies WHERE share_id = ?1", [id.to_string()], |r| r.get(0))?;
        if count >= max_replies {
            return Ok(Lookup::Full);
        }
        tx.execute(
            "INSERT INTO replies (share_id, seq, body, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), count, body, now],
        )?;
        tx.commit()?;
        Ok(Lookup::Found(count + 1))
    }

    fn replies(&self, id: &ShareId, now: i64) -> Result<Lookup<Vec<Vec<u8>>>, StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        if let Err(refused) = live_share(&tx, id, now)? {
            return Ok(refused);
        }
        let mut query = tx.prepare("SELECT body FROM replies WHERE share_id = ?1 ORDER BY seq")?;
        let bodies = query.query_map([id.to_string()], |r| r.get(0))?.collect::<Result<Vec<Vec<u8>>, _>>()?;
        Ok(Lookup::Found(bodies))
    }

    fn sweep(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self.connection().execute("DELETE FROM shares WHERE expires_at <= ?1", [now])? as u64)
    }
}

/// Whether share `id` takes and shows replies at `now`: it exists and has not expired (a burnt
/// share still does, so the sender can read what the one reader answered). `Err` is the refusal.
fn live_share<T>(
    connection: &Connection,
    id: &ShareId,
    now: i64,
) -> Result<Result<(), Lookup<T>>, StoreError> {
    let expires_at: Option<i64> = connection
        .query_row("SELECT expires_at FROM shares WHERE id = ?1", [id.to_string()], |r| r.get(0))
        .optional()?;
    let Some(expires_at) = expires_at else { return Ok(Err(Lookup::Missing)) };
    Ok(refusal(expires_at, false, now).map_or(Ok(()), Err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let dir = std::env::temp_dir().join(format!("bedside-relay-migrations-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        drop(SqliteStore::open(&dir).unwrap());
        drop(SqliteStore::open(&dir).unwrap());
        let connection = Connection::open(dir.join(FILE_NAME)).unwrap();
        let versions: Vec<i64> = connection
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(versions, [1], "opened twice, migrated once");
        connection.execute("INSERT INTO schema_migrations VALUES (99, 0)", []).unwrap();
        drop(connection);
        let refused = SqliteStore::open(&dir).err().expect("a newer schema is refused");
        assert_eq!(
            refused.to_string(),
            "the database is at schema version 99, newer than this relay's 1: run a newer relay"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_store_is_a_wal_journal_synced_at_every_commit() {
        let dir = std::env::temp_dir().join(format!("bedside-relay-pragmas-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir).unwrap();
        let connection = store.connection();
        let journal: String = connection.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        let synchronous: i64 = connection.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        // 2 is FULL.
        assert_eq!((journal.as_str(), synchronous), ("wal", 2));
        drop(connection);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
