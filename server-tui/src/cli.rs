//! Command-line interface of the server: flags, subcommands and their defaults.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use csc_shared::state::SERVER_STATE_ENV;

/// Shows pairing codes to the person at this machine, keeps the registry of paired clients,
/// and runs their tasks.
#[derive(Debug, Parser)]
#[command(name = "server-tui", version, about, long_about = None)]
pub struct Cli {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = csc_shared::DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on. 0.0.0.0 serves the whole LAN; 127.0.0.1 only this machine.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Name shown to clients (default: host name).
    #[arg(long)]
    pub name: Option<String>,
    /// State folder (default: the platform data folder).
    #[arg(long, global = true, env = SERVER_STATE_ENV)]
    pub state_dir: Option<PathBuf>,
    /// Print plain lines instead of the full-screen interface.
    #[arg(long)]
    pub no_tui: bool,
    /// Do not advertise over mDNS (UDP probe answers stay on). A loopback bind never
    /// advertises.
    #[arg(long)]
    pub no_mdns: bool,
    /// Print one JSON object per event on stdout (implies --no-tui).
    #[arg(long, global = true)]
    pub json: bool,
    /// No colours in the full-screen interface (as does a non-empty NO_COLOR).
    #[arg(long)]
    pub no_color: bool,
    /// Lifetime of a pairing code.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub code_ttl: Duration,
    /// Wrong answers allowed per code.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Pending pairing requests allowed per client address.
    #[arg(long, default_value_t = 1)]
    pub max_pending_per_addr: usize,
    /// Pause after an address's first failed pairing; doubles with each further failure.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub backoff: Duration,
    /// Longest pause after repeated failures.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub backoff_max: Duration,
    /// Lifetime of session tokens.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30days")]
    pub token_ttl: Duration,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands. Without one, the server runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List paired clients (live status when the server is running).
    Clients,
    /// Revoke a paired client: its token stops working and it is disconnected.
    Forget {
        /// Client id (full, or a prefix such as 3F2A-91C0) or exact name.
        id: String,
    },
}
