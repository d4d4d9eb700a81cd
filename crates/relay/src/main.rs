//! `relay`: the relay server of Bedside's telemedicine shares (see the `bedside_relay` crate).

use bedside_relay::{Config, Relay};
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Relays encrypted telemedicine shares and serves the Bedside page.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Address to listen on (0.0.0.0 for every interface; put TLS in front, e.g. a reverse proxy).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Folder of the SQLite store (`relay.sqlite3`), created if missing.
    #[arg(long, default_value = "./relay-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user:password@host/database) instead of SQLite, for several relays
    /// behind a load balancer.
    #[arg(long, env = "BEDSIDE_RELAY_DATABASE")]
    database: Option<String>,
    /// The built page to serve (`cargo xtask build` writes it); without it, the API only.
    #[arg(long, default_value = "target/site")]
    site: PathBuf,
    /// Largest share accepted, in megabytes (10^6 bytes).
    #[arg(long, default_value_t = 50)]
    max_upload_mb: usize,
    /// Largest reply accepted, in kibibytes.
    #[arg(long, default_value_t = 1024)]
    max_reply_kib: usize,
    /// API requests per minute allowed from one client address (also its burst); 0 for no limit.
    #[arg(long, default_value_t = 120)]
    rate_per_minute: u32,
    /// Count API requests against the rightmost address of `X-Forwarded-For` (the one a load
    /// balancer or reverse proxy in front appends) instead of the connection's, which behind a proxy
    /// is the proxy's. Only where every request comes through such a proxy: otherwise a client
    /// evades the rate limit by sending the header itself.
    #[arg(long, env = "BEDSIDE_RELAY_TRUST_FORWARDED_FOR", value_parser = clap::builder::BoolishValueParser::new())]
    trust_forwarded_for: bool,
    /// Seconds between sweeps of expired shares.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    sweep_seconds: u64,
    /// No request log on standard error.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = Config::new(args.data_dir.clone());
    config.addr = SocketAddr::new(args.bind, args.port);
    config.database = args.database.clone();
    config.max_upload = args.max_upload_mb.saturating_mul(1_000_000);
    config.max_reply = args.max_reply_kib.saturating_mul(1024);
    config.rate_per_minute = args.rate_per_minute;
    config.trust_forwarded_for = args.trust_forwarded_for;
    config.sweep_every = Duration::from_secs(args.sweep_seconds);
    config.log = !args.quiet;
    if args.site.join("index.html").is_file() {
        config.site = Some(args.site.clone());
    } else {
        eprintln!(
            "relay: no built page in {} (cargo xtask build writes one): serving the API only",
            args.site.display()
        );
    }
    let relay = match Relay::start(config) {
        Ok(relay) => relay,
        Err(error) => {
            eprintln!("relay: {error}");
            return ExitCode::FAILURE;
        }
    };
    let store = match &args.database {
        Some(_) => "PostgreSQL".to_string(),
        None => format!("SQLite in {}", args.data_dir.display()),
    };
    // Scripts read the address from this line.
    println!("Bedside relay at http://{} ({store}; Ctrl-C stops it)", relay.addr());
    relay.run_until_stopped();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_trusted_only_when_asked() {
        let parse = |args: &[&str]| Args::try_parse_from(args).unwrap().trust_forwarded_for;
        // Unless the environment of the test run sets it, the default is off.
        if std::env::var_os("BEDSIDE_RELAY_TRUST_FORWARDED_FOR").is_none() {
            assert!(!parse(&["relay"]));
        }
        assert!(parse(&["relay", "--trust-forwarded-for"]));
    }
}
