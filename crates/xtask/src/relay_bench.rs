//! `cargo xtask bench relay`: a bounded load test of the relay server on loopback, and a check that
//! restarting it in the middle of a run loses no share it acknowledged.
//!
//! The release `relay` runs on a fresh data folder (SQLite, or PostgreSQL with `--database`) with no
//! rate limit. Three runs, each of `--connections` keep-alive clients for `--seconds`:
//!
//! 1. POST: every client posts shares of `--size` bytes as fast as it is answered;
//! 2. GET: the clients read back the shares the POST run stored, and check every byte;
//! 3. restart: POST again while the relay is stopped with SIGTERM a third of the way through and
//!    killed with SIGKILL at two thirds, each time started again at once on the same port. Every
//!    share acknowledged (201 with its id) is then read back and compared byte for byte. A client
//!    whose request got no answer waits 10 ms before its next one.
//!
//! Each share's body is drawn from a seed written in its first 8 bytes, so a body read back is
//! checked without keeping the bodies. The load generator is std threads and ureq, in this process:
//! on a small machine it competes with the relay for the same cores, which the numbers include.
//! Results are printed and written to `bench/relay.{md,json}` in the target folder.

use crate::relay::{RelayProcess, Signal};
use crate::{cargo, run, step, target_dir};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a client waits after a request that got no answer (the relay down) before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// What `cargo xtask bench relay` was asked for.
pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    pub size: usize,
    pub database: Option<String>,
}

pub fn bench(options: &Options) -> Result<()> {
    if options.connections == 0 || options.seconds < 3 || options.size < 8 {
        bail!("--connections must be at least 1, --seconds at least 3 and --size at least 8");
    }
    step("building the relay (release)");
    run(cargo().args(["build", "--release", "--package", "bedside-relay"]))?;
    let binary = target_dir().join("release").join(format!("relay{}", std::env::consts::EXE_SUFFIX));
    let dir = target_dir().join("bench");
    let data = dir.join("relay-data");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(dir.join("relay.log"));
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let machine = machine();
    println!("machine: {machine}");

    let mut relay = RelayProcess::start(&binary, &data, options.database.as_deref(), 0, None)?;
    let addr = relay.addr;
    let seconds = Duration::from_secs(options.seconds);

    step(&format!(
        "POST {} KB shares, {} connections, {} s",
        options.size / 1000,
        options.connections,
        options.seconds
    ));
    let post = load(addr, options, seconds, Work::Post { run: 1 }, Instant::now());
    println!("{}", post.summary());

    step(&format!(
        "GET the {} shares just posted, {} connections, {} s",
        post.acked.len(),
        options.connections,
        options.seconds
    ));
    let stored = Arc::new(post.acked.clone());
    if stored.is_empty() {
        bail!("the POST run stored no share: nothing to read back (see {})", relay.log.display());
    }
    let get = load(addr, options, seconds, Work::Get { shares: stored }, Instant::now());
    println!("{}", get.summary());

    step("POST while the relay is stopped (SIGTERM) and killed (SIGKILL) and started again");
    let start = Instant::now();
    let load_options = Options { database: None, ..*options };
    let clients =
        std::thread::spawn(move || load(addr, &load_options, seconds, Work::Post { run: 2 }, start));
    let mut restarts = Vec::new();
    for (at, signal) in [(1, Signal::Term), (2, Signal::Kill)] {
        std::thread::sleep((start + seconds * at / 3).saturating_duration_since(Instant::now()));
        let stopped = start.elapsed();
        relay.stop(signal)?;
        relay = RelayProcess::start(&binary, &data, options.database.as_deref(), addr.port(), None)?;
        let ready = start.elapsed();
        println!(
            "{} at {:.2} s, listening again at {:.2} s",
            signal.name(),
            stopped.as_secs_f64(),
            ready.as_secs_f64()
        );
        restarts.push(Restart { signal, stopped, ready });
    }
    let restart = clients.join().map_err(|_| anyhow::anyhow!("the load threads panicked"))?;
    println!("{}", restart.summary());
    let (in_window, outside) = restart.errors_in(&restarts);

    step(&format!("reading back the {} shares acknowledged during the restart run", restart.acked.len()));
    let check = verify(addr, options.connections, Arc::new(restart.acked.clone()));
    println!(
        "{} acknowledged, {} read back intact, {} lost",
        restart.acked.len(),
        check.intact,
        check.lost.len()
    );
    for (id, why) in check.lost.iter().take(10) {
        println!("  lost {id}: {why}");
    }
    relay.stop(Signal::Term)?;

    let store = if options.database.is_some() { "PostgreSQL" } else { "SQLite (WAL, synchronous=FULL)" };
    let mut table = format!(
        "Relay on loopback, {store}, {} connections, {} KB shares, {} s per run; {machine}.\n\n\
         | run | requests | requests/s | MB/s | p50 | p90 | p99 | max | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        options.connections,
        options.size / 1000,
        options.seconds,
    );
    for (name, stats) in [("POST", &post), ("GET", &get), ("POST, relay restarted twice", &restart)] {
        let _ = writeln!(table, "{}", stats.row(name));
    }
    let windows: Vec<String> = restarts
        .iter()
        .map(|r| format!("{} {:.2}–{:.2} s", r.signal.name(), r.stopped.as_secs_f64(), r.ready.as_secs_f64()))
        .collect();
    let _ = writeln!(
        table,
        "\nRestart run: {} shares acknowledged, {} read back intact, **{} lost**; {} errors{}, {in_window} \
         of them while the relay was down ({}), {outside} outside those windows.",
        restart.acked.len(),
        check.intact,
        check.lost.len(),
        restart.errors(),
        restart.error_kinds(),
        windows.join(", "),
    );
    println!("\n{table}");
    std::fs::write(dir.join("relay.md"), &table)?;
    let raw = json!({
        "machine": machine, "store": store, "connections": options.connections, "size": options.size,
        "seconds": options.seconds, "post": post.json(), "get": get.json(), "restart": restart.json(),
        "restarts": restarts.iter().map(|r| json!({
            "signal": r.signal.name(), "stopped_s": r.stopped.as_secs_f64(), "ready_s": r.ready.as_secs_f64()
        })).collect::<Vec<_>>(),
        "restart_errors_in_windows": in_window, "restart_errors_outside": outside,
        "acknowledged": restart.acked.len(), "intact": check.intact, "lost": check.lost.len(),
    });
    std::fs::write(dir.join("relay.json"), serde_json::to_string_pretty(&raw)?)?;
    println!("written to {}", dir.join("relay.md").display());
    if !check.lost.is_empty() {
        bail!(
            "{} acknowledged shares were lost across the restarts (the store is kept in {})",
            check.lost.len(),
            data.display()
        );
    }
    // Gigabytes of test shares: kept only when something was lost.
    std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
    Ok(())
}

/// The CPU count and load average when the bench started (other jobs skew the numbers).
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPU cores, load average {} before the runs", load.join(" "))
}

struct Restart {
    signal: Signal,
    stopped: Duration,
    ready: Duration,
}

/// What the clients of one run do.
#[derive(Clone)]
enum Work {
    /// Post new shares; `run` keeps each run's seeds apart.
    Post { run: u64 },
    /// Read these shares, in turn, and check their bytes.
    Get { shares: Arc<Vec<(String, u64)>> },
}

/// One request: when it started and ended (from the run's start), and how it went.
struct Sample {
    start: Duration,
    end: Duration,
    outcome: Outcome,
}

enum Outcome {
    Ok,
    Status(u16),
    WrongBytes,
    Failed(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Status(status) => format!("HTTP {status}"),
            Outcome::WrongBytes => "the bytes read back differ from those posted".into(),
            Outcome::Failed(error) => error.clone(),
        }
    }
}

/// A run's requests, and the shares acknowledged in it (id, seed).
struct Stats {
    samples: Vec<Sample>,
    acked: Vec<(String, u64)>,
    elapsed: Duration,
    size: usize,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn load(addr: SocketAddr, options: &Options, length: Duration, work: Work, start: Instant) -> Stats {
    let deadline = start + length;
    let size = options.size;
    let threads: Vec<_> = (0..options.connections)
        .map(|client| {
            let work = work.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut samples = Vec::new();
                let mut acked = Vec::new();
                let mut body = vec![0; size];
                for n in 0u64.. {
                    let began = Instant::now();
                    if began >= deadline {
                        break;
                    }
                    let outcome = match &work {
                        Work::Post { run } => {
                            let seed = (run << 56) | ((client as u64) << 40) | n;
                            fill(&mut body, seed);
                            match post(&agent, addr, &body) {
                                Ok(id) => {
                                    acked.push((id, seed));
                                    Outcome::Ok
                                }
                                Err(outcome) => outcome,
                            }
                        }
                        Work::Get { shares } => {
                            let (id, seed) = &shares[(client + n as usize * 7919) % shares.len()];
                            read(&agent, addr, id, *seed)
                        }
                    };
                    let failed = matches!(outcome, Outcome::Failed(_));
                    samples.push(Sample { start: began - start, end: start.elapsed(), outcome });
                    if failed {
                        // As a client would, rather than spin on a refused connection while the
                        // relay restarts.
                        std::thread::sleep(RETRY_PAUSE);
                    }
                }
                (samples, acked)
            })
        })
        .collect();
    let mut stats = Stats { samples: Vec::new(), acked: Vec::new(), elapsed: Duration::ZERO, size };
    for thread in threads {
        let (samples, acked) = thread.join().unwrap_or_default();
        stats.samples.extend(samples);
        stats.acked.extend(acked);
    }
    stats.elapsed = start.elapsed();
    stats
}

/// Posts one share; its id when the relay acknowledged it (201).
fn post(agent: &ureq::Agent, addr: SocketAddr, body: &[u8]) -> Result<String, Outcome> {
    let mut response = agent
        .post(format!("http://{addr}/api/shares"))
        .header("Content-Type", "application/octet-stream")
        .send(body)
        .map_err(|e| Outcome::Failed(e.to_string()))?;
    let status = response.status().as_u16();
    let reply = response.body_mut().read_to_vec().map_err(|e| Outcome::Failed(e.to_string()))?;
    if status != 201 {
        return Err(Outcome::Status(status));
    }
    let reply: Value = serde_json::from_slice(&reply).map_err(|e| Outcome::Failed(e.to_string()))?;
    reply["id"].as_str().map(str::to_string).ok_or_else(|| Outcome::Failed("no id in the 201".into()))
}

/// The body of share `seed`: the seed (8 bytes, little-endian), then an xorshift stream drawn from it.
fn fill(body: &mut [u8], seed: u64) {
    body[..8].copy_from_slice(&seed.to_le_bytes());
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in body[8..].chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

/// The outcome of reading back every acknowledged share.
struct Check {
    intact: usize,
    lost: Vec<(String, String)>,
}

fn verify(addr: SocketAddr, connections: usize, shares: Arc<Vec<(String, u64)>>) -> Check {
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (shares, next) = (shares.clone(), next.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut lost = Vec::new();
                let mut intact = 0;
                while let Some((id, seed)) = shares.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match read(&agent, addr, id, *seed) {
                        Outcome::Ok => intact += 1,
                        other => lost.push((id.clone(), other.describe())),
                    }
                }
                Check { intact, lost }
            })
        })
        .collect();
    let mut check = Check { intact: 0, lost: Vec::new() };
    for thread in threads {
        match thread.join() {
            Ok(part) => {
                check.intact += part.intact;
                check.lost.extend(part.lost);
            }
            Err(_) => check.lost.push(("?".into(), "a checking thread panicked".into())),
        }
    }
    check
}

/// Reads one share and checks it is the body drawn from `seed`.
fn read(agent: &ureq::Agent, addr: SocketAddr, id: &str, seed: u64) -> Outcome {
    let mut response = match agent.get(format!("http://{addr}/api/shares/{id}")).call() {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = response.status().as_u16();
    let body = match response.body_mut().read_to_vec() {
        Ok(body) => body,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if status != 200 {
        return Outcome::Status(status);
    }
    if body.len() < 8 {
        return Outcome::WrongBytes;
    }
    let mut expected = vec![0; body.len()];
    fill(&mut expected, seed);
    if body == expected { Outcome::Ok } else { Outcome::WrongBytes }
}

impl Stats {
    fn ok(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| matches!(s.outcome, Outcome::Ok))
    }

    fn errors(&self) -> usize {
        self.samples.len() - self.ok().count()
    }

    /// Successful requests per second over the run.
    fn rate(&self) -> f64 {
        self.ok().count() as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency percentile `p` (0–100) of the successful requests, in milliseconds.
    fn percentile(&self, p: f64) -> f64 {
        let mut ms: Vec<f64> = self.ok().map(|s| (s.end - s.start).as_secs_f64() * 1e3).collect();
        if ms.is_empty() {
            return f64::NAN;
        }
        ms.sort_by(f64::total_cmp);
        ms[((ms.len() - 1) as f64 * p / 100.0).round() as usize]
    }

    /// Errors of requests that overlapped a restart window (signal sent to relay listening again),
    /// and the others.
    fn errors_in(&self, restarts: &[Restart]) -> (usize, usize) {
        let failed = self.samples.iter().filter(|s| !matches!(s.outcome, Outcome::Ok));
        let (inside, outside): (Vec<&Sample>, Vec<&Sample>) =
            failed.partition(|s| restarts.iter().any(|r| s.end >= r.stopped && s.start <= r.ready));
        for sample in outside.iter().take(5) {
            println!(
                "  error outside the restart windows at {:.2} s: {}",
                sample.start.as_secs_f64(),
                sample.outcome.describe()
            );
        }
        (inside.len(), outside.len())
    }

    fn summary(&self) -> String {
        format!(
            "{} requests ok in {:.1} s: {:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms; {} errors{}",
            self.ok().count(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.percentile(50.0),
            self.percentile(99.0),
            self.errors(),
            self.error_kinds()
        )
    }

    /// The errors counted by kind, most frequent first: " (12 × HTTP 500, ...)", or nothing.
    fn error_kinds(&self) -> String {
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        for sample in self.samples.iter().filter(|s| !matches!(s.outcome, Outcome::Ok)) {
            *kinds.entry(sample.outcome.describe()).or_default() += 1;
        }
        let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
        let kinds: Vec<String> = kinds.iter().map(|(kind, n)| format!("{n} × {kind}")).collect();
        if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) }
    }

    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | **{:.0}** | {:.1} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            self.ok().count(),
            self.rate(),
            self.rate() * self.size as f64 / 1e6,
            self.percentile(50.0),
            self.percentile(90.0),
            self.percentile(99.0),
            self.percentile(100.0),
            self.errors(),
        )
    }

    fn json(&self) -> Value {
        json!({
            "ok": self.ok().count(), "errors": self.errors(), "seconds": self.elapsed.as_secs_f64(),
            "requests_per_s": self.rate(), "p50_ms": self.percentile(50.0), "p90_ms": self.percentile(90.0),
            "p99_ms": self.percentile(99.0), "max_ms": self.percentile(100.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_body_starts_with_its_seed_and_differs_between_seeds() {
        let (mut a, mut b, mut again) = (vec![0; 100], vec![0; 100], vec![0; 100]);
        fill(&mut a, 7);
        fill(&mut b, 8);
        fill(&mut again, 7);
        assert_eq!(a[..8], 7u64.to_le_bytes());
        assert_eq!(a, again, "drawn again from the same seed");
        assert_ne!(a[8..], b[8..]);
        // The stream is not constant within a body.
        assert_ne!(a[8..16], a[16..24]);
    }
}
