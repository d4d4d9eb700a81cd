//! A throwaway PostgreSQL cluster (Debian's `postgresql` package; `cargo xtask test` installs it):
//! created under `<target>/pg-test/<pid>-<n>`, on a free port of 127.0.0.1 with its socket in its own
//! folder, stopped and removed on drop. PostgreSQL refuses to run as root, so as root the server
//! runs as the `postgres` user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// A database of its own: `postgres://bedside@127.0.0.1:<port>/relay`.
    pub url: String,
}

/// A running cluster, or `None` (with the reason printed) where PostgreSQL is not installed.
/// With `BEDSIDE_REQUIRE_DATA=1` (as in CI) a missing PostgreSQL fails the test instead.
pub fn start() -> Option<Postgres> {
    let Some(bin) = binaries() else {
        let reason = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
                      `cargo xtask test` installs Debian's postgresql";
        if std::env::var("BEDSIDE_REQUIRE_DATA").is_ok_and(|v| v == "1") {
            panic!("{reason}");
        }
        eprintln!("skipped: {reason}");
        return None;
    };
    let as_postgres = output(Command::new("id").arg("-u")).trim() == "0";
    let dir = folder(as_postgres);
    let mut cluster = Postgres { dir, bin, as_postgres, url: String::new() };
    let data = cluster.dir.join("data");
    cluster.run(
        "initdb",
        &["--no-sync", "--auth=trust", "--username=bedside", "--encoding=UTF8", "--no-locale", "-D"],
        &data,
    );
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -F", cluster.dir.display());
    let log = cluster.dir.join("server.log");
    let started = cluster
        .command("pg_ctl")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-o", &options, "start"])
        .status();
    if !started.is_ok_and(|s| s.success()) {
        panic!("PostgreSQL did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    let port_text = port.to_string();
    let created = Command::new(cluster.bin.join("createdb"))
        .args(["-h", "127.0.0.1", "-p", &port_text, "-U", "bedside", "relay"])
        .status();
    assert!(created.is_ok_and(|s| s.success()), "createdb failed");
    cluster.url = format!("postgres://bedside@127.0.0.1:{port}/relay");
    Some(cluster)
}

impl Postgres {
    /// The cluster's folder: its data directory (`data/`, WAL included) and its server log.
    pub fn folder(&self) -> &Path {
        &self.dir
    }

    /// Every cell of every table of the relay's database as the server returns it (bytea as its
    /// bytes, the rest as text), each named `table.column row n`; and the tables' names.
    pub fn every_cell(&self) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
        self.with_client(|runtime, sql| {
            let columns = runtime
                .block_on(sql.query(
                    "SELECT table_name::text, column_name::text, data_type::text
                     FROM information_schema.columns
                     WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
                    &[],
                ))
                .unwrap();
            // Table by table: its columns' names and the expressions that select their bytes.
            let mut tables: Vec<(String, Vec<(String, String)>)> = Vec::new();
            for column in &columns {
                let (table, name, kind): (String, String, String) =
                    (column.get(0), column.get(1), column.get(2));
                let bytes = match kind.as_str() {
                    "bytea" => format!("\"{name}\""),
                    _ => format!("convert_to(\"{name}\"::text, 'UTF8')"),
                };
                match tables.last_mut() {
                    Some((last, selected)) if *last == table => selected.push((name, bytes)),
                    _ => tables.push((table, vec![(name, bytes)])),
                }
            }
            let mut cells = Vec::new();
            for (table, selected) in &tables {
                let list: Vec<&str> = selected.iter().map(|(_, bytes)| bytes.as_str()).collect();
                let query = format!("SELECT {} FROM \"{table}\"", list.join(", "));
                for (r, row) in runtime.block_on(sql.query(&query, &[])).unwrap().iter().enumerate() {
                    for (c, (name, _)) in selected.iter().enumerate() {
                        let cell: Option<Vec<u8>> = row.get(c);
                        cells.push((format!("{table}.{name} row {r}"), cell.unwrap_or_default()));
                    }
                }
            }
            (tables.into_iter().map(|(table, _)| table).collect(), cells)
        })
    }

    /// Runs `statements` in the relay's database.
    pub fn sql(&self, statements: &str) {
        self.with_client(|runtime, sql| runtime.block_on(sql.batch_execute(statements)).unwrap());
    }

    fn with_client<T>(&self, call: impl FnOnce(&tokio::runtime::Runtime, &tokio_postgres::Client) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (client, connection) =
            runtime.block_on(tokio_postgres::connect(&self.url, tokio_postgres::NoTls)).unwrap();
        runtime.spawn(connection);
        call(&runtime, &client)
    }

    /// A PostgreSQL program, as the `postgres` user where we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The server's user may not be able to enter the test's working directory.
        command.current_dir(&self.dir);
        command
    }

    fn run(&self, program: &str, args: &[&str], path: &Path) {
        let out = self.command(program).args(args).arg(path).output().unwrap();
        assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest installed version's programs.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// An empty folder for the cluster, owned by the server's user: `<target>/pg-test/<pid>`, or one
/// in the system's temporary folder where that user cannot reach the target folder (a target
/// under root's home, which only root may enter).
fn folder(as_postgres: bool) -> PathBuf {
    // One cluster per test: the tests of one file run at once in one process.
    static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
    let name = format!("{}-{}", std::process::id(), CLUSTERS.fetch_add(1, Ordering::Relaxed));
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut dir = target.parent().unwrap_or(&target).join("pg-test").join(&name);
    let reachable = |dir: &Path| {
        !as_postgres
            || Command::new("runuser")
                .args(["-u", "postgres", "--", "test", "-x"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if !reachable(&dir) {
        let _ = std::fs::remove_dir_all(&dir);
        dir = std::env::temp_dir().join(format!("bedside-pg-test-{name}"));
        eprintln!("the postgres user cannot enter the target folder: the cluster is in {}", dir.display());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
    }
    if as_postgres {
        let owned = Command::new("chown").arg("postgres:postgres").arg(&dir).status();
        assert!(owned.is_ok_and(|s| s.success()), "could not give {} to the postgres user", dir.display());
    }
    dir
}

fn output(command: &mut Command) -> String {
    command.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}
