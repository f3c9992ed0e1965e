//! Command-line interface of the server: flags, subcommands, their defaults and their help
//! (examples, and what `--json` prints under each subcommand). Every flag of the server
//! itself is also a setting of its configuration file (`settings` reads them).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use csc_shared::server::PairingMode;
use csc_shared::state::SERVER_STATE_ENV;

/// Shows pairing codes to the person at this machine, keeps the registry of paired clients,
/// and runs their tasks.
#[derive(Debug, Parser)]
#[command(name = "server-tui", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file (TOML): its tasks, and any of these flags as settings
    /// (`port = 7000`, `no-mdns = true`); flags given here win over it. Default:
    /// server.toml in the platform config folder, when it exists. Read by the server only,
    /// not by the subcommands; SIGHUP, `r` or `server-tui reload` read its tasks again.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = csc_shared::DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on. 0.0.0.0 serves the whole LAN; 127.0.0.1 only this machine.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Name shown to clients (default: the name it ran under last time, else the host name).
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
    /// Print one JSON object per event on stdout (implies --no-tui); the events:
    /// docs/protocol.md Appendix A. Under a subcommand: its answer as JSON.
    #[arg(short = 'j', long, global = true)]
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
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_pending_per_addr: u16,
    /// Pending pairing requests allowed in all. When full, a request from an address that
    /// was issued fewer codes recently takes the place of one from an address issued more.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub max_pending: u16,
    /// How pairing requests are accepted: `request` (every request gets a code while the
    /// failure budget lasts) or `window` (only while the operator has opened pairing, with
    /// the `o` key or `server-tui pairing open`).
    #[arg(long, default_value = "request", value_name = "MODE")]
    pub pairing: PairingMode,
    /// How long a pairing window stays open when opened without a length.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    pub open_for: Duration,
    /// Wrong codes the whole server accepts, from every address together, within the budget
    /// window; the last one closes pairing.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pairing_budget: u32,
    /// The sliding window the failure budget counts in.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    pub pairing_budget_window: Duration,
    /// How long pairing stays closed after the budget is spent the first time; it doubles
    /// each further time (the operator can reopen at once).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m")]
    pub pairing_cooloff: Duration,
    /// The longest closure after a spent budget.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    pub pairing_cooloff_max: Duration,
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

/// The end of `--help`: examples and the exit codes.
const AFTER_HELP: &str = "\
Examples:
  server-tui                                    full screen, serving the whole LAN on 47474
  server-tui --bind 127.0.0.1 --config assets/server.toml
  server-tui --no-tui --pairing window          plain lines; pairing only when opened
  server-tui -j | tee events.ndjson             the events as JSON (docs/protocol.md Appendix A)
  server-tui pairing open --for 5m              on the running server
  server-tui clients                            who is paired, and who is connected

Exit codes: 0 ok, 1 failure, 2 bad command line, 3 port unavailable, \
4 another server uses the state folder, 5 no client or run matches (forget, rename, stop-run), \
6 bad configuration file (at start, or refused by reload).";

/// What `--json` prints under each subcommand that has an answer to print.
const JSON_HELP: [(&[&str], &str); 9] = [
    (
        &["clients"],
        "Print the listing as JSON, one object per client per line",
    ),
    (
        &["runs"],
        "Print the listing as JSON, one object per run per line",
    ),
    (
        &["pairing", "status"],
        "Print the status as one JSON object",
    ),
    (&["pairing", "open"], "Print the outcome as one JSON object"),
    (
        &["pairing", "close"],
        "Print the outcome as one JSON object",
    ),
    (&["forget"], "Print the outcome as one JSON object"),
    (&["rename"], "Print the outcome as one JSON object"),
    (&["reload"], "Print the outcome as one JSON object"),
    (&["stop-run"], "Print the outcome as one JSON object"),
];

/// The command line the binary parses: [`Cli`], with `--json` described as what it prints
/// under each listing subcommand, and the global options hidden under `completions` and
/// `man`, which use none.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let json = cmd.get_arguments().find(|a| a.get_id() == "json").cloned();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    // A subcommand that has an argument of a global's id keeps its own (clap does not copy
    // the global in); its value still reaches `Cli`.
    if let Some(json) = json {
        for (path, help) in JSON_HELP {
            let arg = json.clone().help(help);
            cmd = match path {
                [sub] => cmd.mut_subcommand(*sub, |sc| sc.arg(arg)),
                [sub, action] => {
                    cmd.mut_subcommand(*sub, |sc| sc.mut_subcommand(*action, |a| a.arg(arg)))
                }
                _ => cmd,
            };
        }
    }
    for sub in ["completions", "man"] {
        cmd = cmd.mut_subcommand(sub, |sc| sc.args(globals.clone()));
    }
    cmd
}

/// Parse `args` (program name first) with [`command`].
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
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
    /// Open, close or show pairing on the running server.
    Pairing {
        #[command(subcommand)]
        action: PairingAction,
    },
    /// Make the running server read its configuration file's tasks again (as SIGHUP does);
    /// on a mistake the tasks in force stay and the mistake is printed.
    Reload,
    /// List the runs in progress on the running server.
    Runs,
    /// Stop a run in progress on the running server (its program gets SIGTERM, then SIGKILL).
    StopRun {
        /// The run's number, as `server-tui runs` lists it.
        run_id: u64,
    },
    /// Rename a paired client on the running server; tasks' `clients` lists see the new name.
    Rename {
        /// Client id (full, or a prefix such as 3F2A-91C0) or exact name.
        id: String,
        /// The new name: 1 to 64 characters, no control characters.
        name: String,
    },
    /// Print a shell completion script on stdout, e.g.
    /// `server-tui completions bash > ~/.local/share/bash-completion/completions/server-tui`.
    Completions {
        /// The shell.
        shell: tui_kit::docs::Shell,
    },
    /// Print the manual page (roff) on stdout, e.g.
    /// `server-tui man > ~/.local/share/man/man1/server-tui.1`.
    Man,
}

/// What `server-tui pairing` does.
#[derive(Debug, Clone, Subcommand)]
pub enum PairingAction {
    /// Accept pairing requests: for a while in window mode (`--for`, default the server's
    /// `--open-for`), until closed in request mode. Also ends a closure after too many
    /// wrong codes.
    Open {
        /// How long the window stays open (window mode).
        #[arg(long = "for", value_parser = humantime::parse_duration, value_name = "DURATION")]
        for_: Option<Duration>,
    },
    /// Refuse pairing requests until opened again; pending requests are cancelled.
    Close,
    /// Show whether pairing is open, why not, and the failure budget.
    Status,
    /// Draw a code before any request, as adb's "pair with code" does: type it on the client
    /// with `client-tui pair --code CODE`. The next request within the code's lifetime gets
    /// it (with the usual attempts); opens pairing when it is closed.
    Code,
}
