//! Shares in PostgreSQL, for several relays behind a load balancer: all state is in the database
//! (a burn-after-reading share is burnt under a row lock, so two relays cannot both hand it out).

use super::{Deletion, Lookup, NewShare, Store, StoreError, refusal, token_hash};
use crate::secret::{ShareId, TokenHash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Transaction};

/// The schema, one step per version; a step is never edited once released, only appended to.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE shares (
        id TEXT PRIMARY KEY,
        token_hash BYTEA NOT NULL,
        ciphertext BYTEA,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        burn_after_reading BOOLEAN NOT NULL
    );
    CREATE INDEX shares_by_expiry ON shares (expires_at);
    CREATE TABLE replies (
        share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        body BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (share_id, seq)
    );",
)];

/// Relays starting together migrate one at a time under this advisory lock ("bedsrely").
const MIGRATION_LOCK: i64 = 0x6265_6473_7265_6c79;

/// Connections held by one relay: enough for its blocking threads' short queries to overlap.
const CONNECTIONS: usize = 4;

/// Shares in a PostgreSQL database.
pub struct PostgresStore {
    config: Config,
    /// The relay's runtime: the connections' I/O runs there, the store's calls wait on it from
    /// blocking threads.
    runtime: Handle,
    clients: Vec<Mutex<Client>>,
    next: AtomicUsize,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or key=value pairs) and
    /// brings the schema up to date. Call it off the runtime's worker threads.
    pub fn open(url: &str, runtime: Handle) -> Result<PostgresStore, StoreError> {
        let config: Config = url.parse()?;
        let clients = (0..CONNECTIONS)
            .map(|_| connect(&config, &runtime).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let store = PostgresStore { config, runtime, clients, next: AtomicUsize::new(0) };
        store.migrate()?;
        Ok(store)
    }

    /// A connection, reconnected if the server closed it (a restart, an idle timeout).
    fn client(&self) -> Result<MutexGuard<'_, Client>, StoreError> {
        let slot = &self.clients[self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len()];
        let mut client = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if client.is_closed() {
            *client = connect(&self.config, &self.runtime)?;
        }
        Ok(client)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client()?;
        self.runtime.block_on(async {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await?;
            let current: i64 =
                tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0);
            let known = MIGRATIONS.last().map_or(0, |m| m.0);
            if current > known {
                return Err(StoreError::NewerSchema { found: current, known });
            }
            for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at)
                     VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
                    &[version],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

fn connect(config: &Config, runtime: &Handle) -> Result<Client, StoreError> {
    let (client, connection) = runtime.block_on(config.connect(NoTls))?;
    runtime.spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("relay: a PostgreSQL connection closed: {error}");
        }
    });
    Ok(client)
}

impl Store for PostgresStore {
    fn put_share(&self, share: &NewShare) -> Result<(), StoreError> {
        let client = self.client()?;
        let (id, token) = (share.id.to_string(), share.token.0.as_slice());
        let params: [&(dyn ToSql + Sync); 6] =
            [&id, &token, &share.ciphertext, &share.created_at, &share.expires_at, &share.burn_after_reading];
        self.runtime.block_on(client.execute(
            "INSERT INTO shares (id, token_hash, ciphertext, created_at, expires_at, burn_after_reading)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &params,
        ))?;
        Ok(())
    }

    fn read_share(&self, id: &ShareId, now: i64) -> Result<Lookup<Vec<u8>>, StoreError> {
        let mut client = self.client()?;
        let id = id.to_string();
        self.runtime.block_on(async {
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    "SELECT expires_at, ciphertext, burn_after_reading FROM shares WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?;
            let Some(row) = row else { return Ok(Lookup::Missing) };
            let ciphertext: Option<Vec<u8>> = row.get(1);
            if let Some(refused) = refusal(row.get(0), ciphertext.is_none(), now) {
                return Ok(refused);
            }
            if row.get::<_, bool>(2) {
                tx.execute("UPDATE shares SET ciphertext = NULL WHERE id = $1", &[&id]).await?;
            }
            tx.commit().await?;
            Ok(ciphertext.map_or(Lookup::Burnt, Lookup::Found))
        })
    }

    fn delete_share(&self, id: &ShareId, token: &TokenHash) -> Result<Deletion, StoreError> {
        let client = self.client()?;
        let id = id.to_string();
        self.runtime.block_on(async {
            let row = client.query_opt("SELECT token_hash FROM shares WHERE id = $1", &[&id]).await?;
            let Some(row) = row else { return Ok(Deletion::Missing) };
            if !token_hash(row.get(0))?.matches(token) {
                return Ok(Deletion::WrongToken);
            }
            client.execute("DELETE FROM shares WHERE id = $1", &[&id]).await?;
            Ok(Deletion::Deleted)
        })
    }

    fn add_reply(
        &self,
        id: &ShareId,
        body: &[u8],
        now: i64,
        max_replies: u32,
    ) -> Result<Lookup<u32>, StoreError> {
        let mut client = self.client()?;
        let id = id.to_string();
        self.runtime.block_on(async {
            let tx = client.transaction().await?;
            // The share's row lock orders concurrent replies, so their numbers do not collide.
            if let Err(refused) = live_share(&tx, &id, now, RowLock::ForUpdate).await? {
                return Ok(refused);
            }
            let count: i64 =
                tx.query_one("SELECT COUNT(*) FROM replies WHERE share_id = $1", &[&id]).await?.get(0);
            let count = count as u32;
            if count >= max_replies {
                return Ok(Lookup::Full);
            }
            tx.execute(
                "INSERT INTO replies (share_id, seq, body, created_at) VALUES ($1, $2, $3, $4)",
                &[&id, &(count as i32), &body, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(Lookup::Found(count + 1))
        })
    }

    fn replies(&self, id: &ShareId, now: i64) -> Result<Lookup<Vec<Vec<u8>>>, StoreError> {
        let mut client = self.client()?;
        let id = id.to_string();
        self.runtime.block_on(async {
            let tx = client.transaction().await?;
            if let Err(refused) = live_share(&tx, &id, now, RowLock::None).await? {
                return Ok(refused);
            }
            let rows = tx.query("SELECT body FROM replies WHERE share_id = $1 ORDER BY seq", &[&id]).await?;
            tx.commit().await?;
            Ok(Lookup::Found(rows.iter().map(|r| r.get(0)).collect()))
        })
    }

    fn sweep(&self, now: i64) -> Result<u64, StoreError> {
        let client = self.client()?;
        Ok(self.runtime.block_on(client.execute("DELETE FROM shares WHERE expires_at <= $1", &[&now]))?)
    }
}

/// Whether [`live_share`] locks the share's row until the transaction ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowLock {
    /// `FOR UPDATE`: writers of the share's replies go one at a time.
    ForUpdate,
    None,
}

/// Whether share `id` takes and shows replies at `now`: it exists and has not expired (a burnt
/// share still does, so the sender can read what the one reader answered). `Err` is the refusal.
async fn live_share<T>(
    tx: &Transaction<'_>,
    id: &str,
    now: i64,
    lock: RowLock,
) -> Result<Result<(), Lookup<T>>, StoreError> {
    let query = match lock {
        RowLock::ForUpdate => "SELECT expires_at FROM shares WHERE id = $1 FOR UPDATE",
        RowLock::None => "SELECT expires_at FROM shares WHERE id = $1",
    };
    let Some(row) = tx.query_opt(query, &[&id]).await? else { return Ok(Err(Lookup::Missing)) };
    Ok(refusal(row.get(0), false, now).map_or(Ok(()), Err))
}
