//! `client-tui`: the client application. Thin: it parses the command line, drives the
//! engine from `csc_shared::client`, and shows results, either as headless lines or JSON
//! (`headless`) or in the full-screen interface (`tui`); both drive the same engine.
//!
//! Layout of the full-screen interface, ratatui style:
//! - `app`: state and the one `update` function (keys, ticks, network news in; actions out);
//! - `net`: the engine calls, in tokio tasks that report over a channel;
//! - `ui`: pure drawing of the state;
//! - `keymap`: key bindings as data, also the source of the footer and help;
//! - `tui`: the loop that owns the terminal and hands the app's actions to `net`.

mod agent;
mod app;
pub mod cli;
mod headless;
mod keymap;
mod net;
#[cfg(test)]
mod test_support;
mod tui;
mod ui;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cli::{Cli, Command};
use csc_shared::client::{Client, ClientError, ClientOptions, DialError};
use csc_shared::state::{ClientStore, SelectError, Side, default_state_dir};

/// Exit codes of `client-tui`, documented in the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// Bad command line or selection.
    pub const USAGE: u8 = 2;
    /// Wrong code: attempts used up, or input ended before a right one.
    pub const WRONG_CODE: u8 = 3;
    /// Code expired, or the server refused to start pairing (busy, rate limited).
    pub const PAIRING_REFUSED: u8 = 4;
    /// Re-pair required: the pairing was revoked, expired or is unknown to the server.
    pub const REPAIR_REQUIRED: u8 = 5;
    /// Server unreachable (nothing answered, or not our protocol).
    pub const UNREACHABLE: u8 = 6;
    /// A different key answered where the paired server was expected.
    pub const IDENTITY_MISMATCH: u8 = 7;
    /// The codes a run maps to (8 to 14, and 100 + the remote exit code): shared with the
    /// agent, which reports them too.
    pub use csc_shared::client::outcome::exit::{
        BAD_ARGS, BUSY, CANCELLED, FORBIDDEN, LIMIT, REMOTE_EXIT_BASE, TASK_FAILED, TIMED_OUT,
    };
    /// `agent`: another agent already serves this state folder.
    pub const AGENT_RUNNING: u8 = 15;
    /// `scan`: the search ended and found no server.
    pub const NONE_FOUND: u8 = 16;
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// Message for stderr.
    pub message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::WrongCode { .. } | ClientError::CodeExhausted => exit::WRONG_CODE,
            ClientError::CodeExpired | ClientError::PairingRefused { .. } => exit::PAIRING_REFUSED,
            ClientError::RepairRequired { .. } => exit::REPAIR_REQUIRED,
            ClientError::Dial(DialError::IdentityMismatch { .. }) => exit::IDENTITY_MISMATCH,
            ClientError::Dial(_) | ClientError::NotConnected { .. } => exit::UNREACHABLE,
            ClientError::Task { .. } => exit::TASK_FAILED,
            ClientError::Select(_) => exit::USAGE,
            _ => exit::FAILURE,
        };
        let mut message = e.to_string();
        if code == exit::REPAIR_REQUIRED {
            message.push_str("; run `client-tui pair` again");
        }
        Failure::new(code, message)
    }
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Time since the process started running `main` (for `elapsed_ms`).
pub fn process_elapsed() -> std::time::Duration {
    STARTED.get_or_init(std::time::Instant::now).elapsed()
}

/// Entry point used by `main`: logging, runtime, run, exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    process_elapsed();
    // Under the full-screen interface, log lines go to the screen instead of over the picture
    // (and to stderr again once the terminal is given back).
    tui_kit::log::init(wants_tui(&cli), false);
    tui_kit::terminal::block_on("client-tui", async {
        run(cli).await.map_err(|f| (f.code, f.message))
    })
}

/// Whether this run gets the full-screen interface: no subcommand, on a terminal, and not
/// asked for plain output.
fn wants_tui(cli: &Cli) -> bool {
    use std::io::IsTerminal;
    cli.command.is_none() && !cli.no_tui && !cli.json && std::io::stdout().is_terminal()
}

fn state_dir(cli: &Cli) -> Result<PathBuf, Failure> {
    cli.state_dir
        .clone()
        .or_else(|| default_state_dir(Side::Client))
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!(
                    "no home folder to keep state in: pass --state-dir or set {}",
                    csc_shared::state::CLIENT_STATE_ENV
                ),
            )
        })
}

/// Discovery options from the command line; `None` when every method is off.
pub fn discovery_options(cli: &Cli) -> Option<csc_shared::discovery::DiscoveryOptions> {
    let d = &cli.discovery;
    if d.no_broadcast && d.no_mdns && d.no_scan {
        return None;
    }
    Some(csc_shared::discovery::DiscoveryOptions {
        port: cli.port,
        broadcast: !d.no_broadcast,
        mdns: !d.no_mdns,
        scan: !d.no_scan,
        subnets: d.subnets.clone(),
        max_hosts: d.max_hosts,
        per_host_timeout: std::time::Duration::from_millis(d.timeout_ms.max(1)),
        concurrency: d.concurrency.max(1),
        per_window: d.per_window,
        ..csc_shared::discovery::DiscoveryOptions::default()
    })
}

/// Resolve `HOST`, `HOST:PORT`, `IP`, `IP:PORT` or `[IPv6]:PORT`.
pub async fn resolve(spec: &str, default_port: u16) -> Result<SocketAddr, Failure> {
    Ok(csc_shared::client::target::resolve(spec, default_port).await?)
}

/// The engine's options from the command line.
fn client_options(cli: &Cli) -> ClientOptions {
    ClientOptions {
        keepalive: cli.link.keepalive,
        dead_after: cli.link.dead_after,
        ..ClientOptions::default()
    }
}

/// How the link heals, from the command line: `manual` (the address `--server` gave) first,
/// then the saved addresses and discovery.
pub(crate) fn link_options(
    cli: &Cli,
    manual: Option<SocketAddr>,
) -> csc_shared::client::LinkOptions {
    csc_shared::client::LinkOptions {
        discovery: discovery_options(cli),
        first: manual.map(|addr| (addr, csc_shared::discovery::Via::Manual)),
        ..csc_shared::client::LinkOptions::default()
    }
}

/// Fails with "not paired" when nothing is paired in `dir`, without creating anything: no
/// folder when there is none, no key when there is one. For the commands that need a paired
/// server and would otherwise make the state folder just to say so.
fn require_paired(dir: &Path) -> Result<(), Failure> {
    let none = !dir.try_exists().unwrap_or(true)
        || ClientStore::open(dir)
            .and_then(|store| store.load())
            .map_err(ClientError::from)?
            .servers
            .is_empty();
    if none {
        return Err(ClientError::from(SelectError::NonePaired).into());
    }
    Ok(())
}

/// Write what `completions SHELL` or `man` prints: generated from [`cli::command`].
fn generate(command: &Command) -> Result<(), Failure> {
    let doc = match command {
        Command::Completions { shell } => tui_kit::docs::Doc::Completions(*shell),
        _ => tui_kit::docs::Doc::Man,
    };
    tui_kit::docs::print(doc, cli::command(), "client-tui")
        .map_err(|e| Failure::new(exit::FAILURE, e))
}

/// Run a subcommand, or the default session flow.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    // These touch no state: they must not create the state folder.
    if let Some(c @ (Command::Completions { .. } | Command::Man)) = &cli.command {
        return generate(c);
    }
    let dir = state_dir(&cli)?;
    let out = headless::Output { json: cli.json };
    let mut send_words = None;
    match &cli.command {
        // Read-only: a state folder that does not exist holds no pairing.
        Some(Command::Servers) if !dir.try_exists().unwrap_or(true) => {
            if !out.json {
                println!("no paired servers");
            }
            return Ok(());
        }
        Some(Command::Send { words, .. }) => {
            let mut send = cli::command();
            send.build();
            let send = send
                .find_subcommand("send")
                .ok_or_else(|| Failure::new(exit::FAILURE, "no send subcommand"))?;
            let w = cli::SendWords::split(words, send).map_err(|e| Failure::new(exit::USAGE, e))?;
            for warning in &w.look_like_ours {
                eprintln!("client-tui: {warning}");
            }
            require_paired(&dir)?;
            send_words = Some(w);
        }
        Some(Command::Tasks | Command::Forget { .. }) => require_paired(&dir)?,
        _ => {}
    }
    let name = cli.name.clone().unwrap_or_else(csc_shared::host_name);
    let client = Client::open(&dir, &name, client_options(&cli))?;
    match &cli.command {
        Some(Command::Servers) => headless::servers(&client, out),
        Some(Command::Forget { id }) => headless::forget(&client, id, out).await,
        Some(Command::Scan) => headless::scan(&client, &cli, out).await,
        Some(Command::Pair { code }) => {
            let mut input = headless::Input::stdin();
            let addr = match &cli.target.server {
                Some(s) => resolve(s, cli.port).await?,
                None => headless::choose_server(&client, &cli, &mut input).await?,
            };
            let session = headless::pair(&client, addr, &mut input, code.clone(), out).await?;
            session.close().await;
            Ok(())
        }
        Some(Command::Send { no_agent, .. }) => {
            let cli::SendWords { task, args, .. } =
                send_words.ok_or_else(|| Failure::new(exit::FAILURE, "send: task not split"))?;
            // Through a running agent, unless told not to or given an address to dial.
            if !no_agent
                && cli.target.server.is_none()
                && let Some(done) = agent::send(&dir, &cli, &task, &args, out).await
            {
                return done;
            }
            headless::send(std::sync::Arc::new(client), &cli, &task, args, out).await
        }
        Some(Command::Agent) => agent::serve(client, &cli, &dir, out).await,
        Some(Command::Tasks) => headless::tasks(std::sync::Arc::new(client), &cli, out).await,
        None if wants_tui(&cli) => {
            tui::run(client, &cli, tui_kit::terminal::wants_color(cli.no_color)).await
        }
        None => headless::interactive(std::sync::Arc::new(client), &cli, out).await,
        // Printed before the state folder was opened.
        Some(Command::Completions { .. } | Command::Man) => Ok(()),
    }
}
