//! Command-line interface of the client: flags, subcommands and their defaults. Without a
//! subcommand the client runs full screen on a terminal, or the headless console otherwise.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use csc_shared::state::CLIENT_STATE_ENV;

/// Finds its server, pairs with the code shown on the server's screen, and runs tasks on it.
#[derive(Debug, Parser)]
#[command(name = "client-tui", version, about, long_about = None)]
pub struct Cli {
    /// Server port used when an address has none.
    #[arg(long, global = true, default_value_t = csc_shared::DEFAULT_PORT)]
    pub port: u16,
    /// State folder (default: the platform data folder).
    #[arg(long, global = true, env = CLIENT_STATE_ENV)]
    pub state_dir: Option<PathBuf>,
    /// Name shown to the server when pairing (default: host name).
    #[arg(long, global = true)]
    pub name: Option<String>,
    /// Print plain lines instead of the full-screen interface.
    #[arg(long, global = true)]
    pub no_tui: bool,
    /// Print one JSON object per line on stdout (implies --no-tui).
    #[arg(long, global = true)]
    pub json: bool,
    /// No colours in the full-screen interface (as does a non-empty NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    #[command(flatten)]
    pub link: LinkArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Which server to talk to.
#[derive(Debug, Clone, Default, Args)]
pub struct Target {
    /// Server address, HOST or HOST:PORT (tried first; the server's id is still checked).
    #[arg(long, global = true, value_name = "HOST[:PORT]")]
    pub server: Option<String>,
    /// Paired server to use: id (full, or a prefix such as 3F2A-91C0).
    #[arg(long, global = true, value_name = "ID")]
    pub server_id: Option<String>,
    /// Paired server to use, by name.
    #[arg(long, global = true, value_name = "NAME")]
    pub server_name: Option<String>,
}

/// How to look for servers. Giving `--subnet` limits every probe to those subnets (and turns
/// off mDNS and the limited broadcast).
#[derive(Debug, Clone, Default, Args)]
pub struct DiscoveryArgs {
    /// Subnet to search (repeatable), e.g. 192.168.1.0/24; default: every local interface,
    /// each capped to a /22 around its address.
    #[arg(long = "subnet", global = true, value_name = "CIDR", value_parser = parse_subnet)]
    pub subnets: Vec<ipnet::Ipv4Net>,
    /// TCP connect timeout per host, in milliseconds.
    #[arg(long, global = true, default_value_t = 300, value_name = "N")]
    pub timeout_ms: u64,
    /// Connection attempts in flight at once during the sweep.
    #[arg(long, global = true, default_value_t = csc_shared::discovery::DiscoveryOptions::default().concurrency, value_name = "N")]
    pub concurrency: usize,
    /// New hosts started per 3 seconds at most (0: three quarters of the kernel's
    /// neighbour-table limit, so no host is lost to a full ARP table).
    #[arg(long, global = true, default_value_t = 0, value_name = "N")]
    pub per_window: usize,
    /// Hosts swept at most, over all subnets.
    #[arg(long, global = true, default_value_t = 4096, value_name = "N")]
    pub max_hosts: usize,
    /// Do not send UDP broadcast probes.
    #[arg(long, global = true)]
    pub no_broadcast: bool,
    /// Do not browse mDNS.
    #[arg(long, global = true)]
    pub no_mdns: bool,
    /// Do not sweep subnets with TCP connects.
    #[arg(long, global = true)]
    pub no_scan: bool,
}

/// How the client keeps its connection to a paired server alive (the console and `send`).
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// Send a keep-alive ping after this long without a message from the server.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "3s", value_name = "DURATION")]
    pub keepalive: Duration,
    /// Declare the server lost after this long without any message from it (no reply, no
    /// pong), and reconnect.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "8s", value_name = "DURATION")]
    pub dead_after: Duration,
    /// How long a task waits for a lost connection to come back before it fails.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s", value_name = "DURATION")]
    pub wait: Duration,
}

fn parse_subnet(text: &str) -> Result<ipnet::Ipv4Net, String> {
    csc_shared::discovery::net::parse_subnet(text)
}

/// Subcommands. Without one, the client runs full screen when stdout is a terminal (scan,
/// pair, task console); with `--no-tui`, `--json` or no terminal, it connects (pairing first
/// if needed) and runs tasks read line by line from stdin.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Search the network for servers and list them.
    Scan,
    /// Pair with a server (found by discovery unless --server is given); the code shown on
    /// the server is read from stdin.
    Pair,
    /// List the tasks the paired server lets this client run, with their arguments.
    Tasks,
    /// Run one task on a paired server: its output streams to stdout and stderr, stdin goes
    /// to it when the task reads stdin, Ctrl-C cancels it; the exit code tells how it ended.
    Send {
        /// Connect directly, even when an agent serves this state folder.
        #[arg(long)]
        no_agent: bool,
        /// Task name: ping, echo, time, info, or any task the server offers.
        task: String,
        /// Task arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Keep a link to every paired server (or the one --server-id or --server-name names)
    /// and serve programs on this machine through agent.sock in the state folder
    /// (docs/agent.md); `send` then goes through it. Runs in the foreground until Ctrl-C or
    /// SIGTERM; logs on stderr, `--json` status events on stdout.
    Agent,
    /// List paired servers.
    Servers,
    /// Forget a paired server; the server is asked to revoke the pairing too.
    Forget {
        /// Server id (full or prefix) or name.
        id: String,
    },
}
