//! The relay of Bedside's telemedicine shares: the sender's page posts a share's ciphertext, the
//! reader's page fetches it by id (the key travels in the link's fragment, which browsers never
//! send, so the relay stores bytes it cannot read), replies go back the same way, and every share
//! expires. It also serves the built page (`cargo xtask build`) with the same security headers as
//! `cargo xtask serve`.
//!
//! It is not a place for keys, accounts or plaintext: it never decrypts, never logs a body, and
//! keeps a share's delete token only as a SHA-256.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /api/shares?ttl=<s>&burn=1` (body: ciphertext) | 201 `{"id", "delete_token", "expires_at"}` |
//! | `GET /api/shares/{id}` | 200 the ciphertext; 410 expired or burnt; 404 unknown |
//! | `DELETE /api/shares/{id}` (`Authorization: Bearer <token>`) | 204; 403 wrong token |
//! | `POST /api/shares/{id}/replies` (body: ciphertext) | 201 `{"replies": n}` |
//! | `GET /api/shares/{id}/replies` | 200 each reply as a big-endian `u32` length and its bytes |
//!
//! Every refusal is JSON `{"error": "..."}`. Storage is SQLite in the data folder by default, or
//! PostgreSQL (`Config::database`) for several relays behind a load balancer.
//!
//! ```no_run
//! use bedside_relay::{Config, Relay};
//!
//! let relay = Relay::start(Config::new("./relay-data".into())).unwrap();
//! println!("relay at http://{}", relay.addr());
//! relay.run_until_stopped();
//! ```

pub mod api;
mod clock;
pub mod limit;
pub mod secret;
mod site;
pub mod store;

pub use clock::Clock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware;
use axum::routing::{get, post};
use limit::RateLimiter;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use store::{PostgresStore, SqliteStore, Store, StoreError};
use tokio::sync::oneshot;

/// How a relay runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The SQLite file's folder (unused with PostgreSQL).
    pub data_dir: PathBuf,
    /// A PostgreSQL URL instead of the SQLite file.
    pub database: Option<String>,
    /// The built page's folder; `None` serves the API only.
    pub site: Option<PathBuf>,
    /// Largest share in bytes (413 above).
    pub max_upload: usize,
    /// Largest reply in bytes (413 above).
    pub max_reply: usize,
    /// API requests a client address may make per minute (also its burst); 0 for no limit.
    pub rate_per_minute: u32,
    /// Counts requests against the rightmost `X-Forwarded-For` address rather than the connection's:
    /// only behind a proxy that appends it, or any client could pick its own address.
    pub trust_forwarded_for: bool,
    /// How often expired shares are removed.
    pub sweep_every: Duration,
    /// Where expiry reads the time.
    pub clock: Clock,
    /// One line per request on standard error.
    pub log: bool,
}

impl Config {
    /// The defaults: 127.0.0.1:8443, SQLite in `data_dir`, no site, 50 MB shares, 1 MiB replies,
    /// 120 requests a minute per connection's address, a sweep a minute, the system clock, logging on.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir,
            database: None,
            site: None,
            max_upload: 50_000_000,
            max_reply: 1 << 20,
            rate_per_minute: 120,
            trust_forwarded_for: false,
            sweep_every: Duration::from_secs(60),
            clock: Clock::system(),
            log: true,
        }
    }
}

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("could not listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("could not open the store: {0}")]
    Store(#[from] StoreError),
}

/// The size limits the handlers report in their 413s.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_upload: usize,
    pub max_reply: usize,
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    clock: Clock,
    limits: Limits,
    site: Option<Arc<PathBuf>>,
    limiter: Arc<RateLimiter>,
    trust_forwarded_for: bool,
    security_headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    log: bool,
}

impl AppState {
    /// Runs a store call on a blocking thread (the stores block).
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, api::ApiError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || call(store.as_ref())).await {
            Ok(result) => result.map_err(api::ApiError::Storage),
            // A panicking store call is a bug; the client gets a 500, the relay keeps serving.
            Err(_) => Err(api::ApiError::Internal),
        }
    }
}

/// The relay's routes over `store`: the API, the page's files, and the layers every request
/// passes (logging and security headers outermost, then the rate limit).
pub fn router(config: &Config, store: Arc<dyn Store>) -> Router {
    let state = AppState {
        store,
        clock: config.clock.clone(),
        limits: Limits { max_upload: config.max_upload, max_reply: config.max_reply },
        site: config.site.clone().map(Arc::new),
        limiter: Arc::new(RateLimiter::new(config.rate_per_minute)),
        trust_forwarded_for: config.trust_forwarded_for,
        security_headers: Arc::new(site::security_headers()),
        log: config.log,
    };
    Router::new()
        .route("/api/shares", post(api::create_share).layer(DefaultBodyLimit::max(config.max_upload)))
        // HEAD would otherwise run GET's handler, and burn a burn-after-reading share unread.
        .route(
            "/api/shares/{id}",
            get(api::read_share).head(site::method_not_allowed).delete(api::delete_share),
        )
        .route(
            "/api/shares/{id}/replies",
            get(api::replies).post(api::add_reply).layer(DefaultBodyLimit::max(config.max_reply)),
        )
        .fallback(site::fallback)
        .method_not_allowed_fallback(site::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), site::rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), site::headers_and_log))
        .with_state(state)
}

/// Opens the store `config` names: PostgreSQL if it has a URL, else SQLite in the data folder.
/// Call it outside async code (PostgreSQL's connections are driven on `runtime`).
pub fn open_store(config: &Config, runtime: tokio::runtime::Handle) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.database {
        Some(url) => Arc::new(PostgresStore::open(url, runtime)?),
        None => Arc::new(SqliteStore::open(&config.data_dir)?),
    })
}

/// A running relay: serves from its own threads until dropped.
pub struct Relay {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    clock: Clock,
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Opens the store, binds `config.addr` (port 0 picks a free one) and starts serving and
    /// sweeping. Call it outside async code.
    pub fn start(config: Config) -> Result<Relay, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("relay")
            .build()
            .map_err(StartError::Runtime)?;
        let store = open_store(&config, runtime.handle().clone())?;
        let listen = |source| StartError::Listen { addr: config.addr, source };
        let listener = std::net::TcpListener::bind(config.addr).map_err(listen)?;
        listener.set_nonblocking(true).map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(listen)?
        };
        let app = router(&config, store.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = runtime.handle().clone();
        // The first sweep runs here, before the relay answers anyone; the sweeper's next is one period
        // on. (A first tick left to the sweeper task lands whenever the runtime gets to it, on a busy
        // machine after requests have already been answered.)
        log_sweep(&config, store.sweep(config.clock.now()));
        let sweeper = sweeper(store.clone(), config.clone());
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let sweeping = tokio::spawn(sweeper);
                let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(error) = serving.await {
                    eprintln!("relay: serving stopped: {error}");
                }
                sweeping.abort();
            });
            // Blocking store calls still running get a moment to finish.
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        Ok(Relay {
            addr,
            store,
            clock: config.clock,
            runtime: handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Removes the expired shares now (the sweeper does so every `sweep_every`); returns how many.
    pub fn sweep(&self) -> Result<u64, StoreError> {
        self.store.sweep(self.clock.now())
    }

    /// Serves until Ctrl-C (SIGINT) or SIGTERM, then stops: requests under way are finished.
    pub fn run_until_stopped(self) {
        let stopped = self.runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let mut terminate = signal(SignalKind::terminate())?;
                tokio::select! {
                    interrupted = tokio::signal::ctrl_c() => interrupted,
                    _ = terminate.recv() => Ok(()),
                }
            }
            #[cfg(not(unix))]
            tokio::signal::ctrl_c().await
        });
        if let Err(error) = stopped {
            eprintln!("relay: cannot wait for a stop signal ({error}); serving until killed");
            loop {
                std::thread::park();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Removes expired shares every `sweep_every`, the first one period after start (which sweeps once).
async fn sweeper(store: Arc<dyn Store>, config: Config) {
    let period = config.sweep_every;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        let store = store.clone();
        let now = config.clock.now();
        if let Ok(swept) = tokio::task::spawn_blocking(move || store.sweep(now)).await {
            log_sweep(&config, swept);
        }
    }
}

fn log_sweep(config: &Config, swept: Result<u64, StoreError>) {
    match swept {
        Ok(0) => {}
        Ok(swept) if config.log => eprintln!("relay: removed {swept} expired shares"),
        Ok(_) => {}
        Err(error) => eprintln!("relay: sweeping failed: {error}"),
    }
}
