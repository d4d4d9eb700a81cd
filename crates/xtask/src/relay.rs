//! The relay (`crates/relay`'s `relay` binary) as its own process: for the end-to-end tests of
//! sharing, on a fresh data folder serving the same built site as `serve::Server` beside its API
//! ([`RelayProcess::for_tests`]), and for the relay bench (`relay_bench`).

use crate::{cargo, run, target_dir};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How a relay is stopped.
#[derive(Clone, Copy)]
pub enum Signal {
    Term,
    Kill,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
}

/// A relay started as its own process, quiet, on 127.0.0.1; stopped when dropped.
pub struct RelayProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Its standard error (`relay.log` beside the data folder).
    pub log: PathBuf,
}

impl RelayProcess {
    /// Starts `binary` with its store in `data` (or `database`) on `port` (0: a free one), serving
    /// `site` beside the API, or the API only.
    pub fn start(
        binary: &Path,
        data: &Path,
        database: Option<&str>,
        port: u16,
        site: Option<&Path>,
    ) -> Result<RelayProcess> {
        let log = data.parent().unwrap_or(data).join("relay.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let mut cmd = Command::new(binary);
        cmd.args(["--port", &port.to_string(), "--rate-per-minute", "0", "--quiet"])
            .arg("--data-dir")
            .arg(data)
            // Without a site: the API only (a folder with no page in it).
            .arg("--site")
            .arg(site.map_or_else(|| data.join("no-site"), Path::to_path_buf))
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(url) = database {
            cmd.args(["--database", url]);
        }
        let mut child = cmd.spawn().with_context(|| format!("could not start {}", binary.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        // "Bedside relay at http://ADDR (...)"
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(RelayProcess { child, addr, log }),
            None => {
                let _ = child.kill();
                bail!("the relay did not start (see {}): {line:?}", log.display())
            }
        }
    }

    /// The relay for the end-to-end tests: built from the workspace (debug), SQLite in a fresh
    /// `data` folder (a share left by an earlier run would only confuse a failing test's reader),
    /// serving `site`; no rate limit (the tests are one client asking often).
    pub fn for_tests(site: &Path, data: &Path) -> Result<RelayProcess> {
        run(cargo().args(["build", "--package", "bedside-relay", "--bin", "relay"]))?;
        let binary = target_dir().join("debug").join(format!("relay{}", std::env::consts::EXE_SUFFIX));
        if data.exists() {
            std::fs::remove_dir_all(data).with_context(|| format!("could not empty {}", data.display()))?;
        }
        std::fs::create_dir_all(data).with_context(|| format!("could not create {}", data.display()))?;
        RelayProcess::start(&binary, data, None, 0, Some(site))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&mut self, signal: Signal) -> Result<()> {
        match signal {
            Signal::Kill => self.child.kill()?,
            Signal::Term => run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]))?,
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for RelayProcess {
    /// No relay left running when a run stops early (a stopped one is already reaped).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
