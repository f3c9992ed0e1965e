//! `server-tui`: the server application. Thin: it parses the command line, opens the engine
//! from `csc_shared::server`, and renders its events, either as headless lines or JSON
//! (`headless`) or in the full-screen interface (`tui`), which consume the same events.
//!
//! Layout of the full-screen interface, ratatui style:
//! - `app`: state and the one `update` function (keys, engine events, ticks in; actions out);
//! - `ui`: pure drawing of the state;
//! - `keymap`: key bindings as data, also the source of the footer and help;
//! - `tui`: the loop that owns the terminal and carries out the app's actions.

mod app;
pub mod cli;
mod headless;
mod keymap;
#[cfg(test)]
mod test_support;
mod tui;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use cli::{Cli, Command};
use csc_shared::server::{Server, ServerConfig, ServerError, Tasks};
use csc_shared::state::{ServerStore, Side, StateError, default_state_dir};

/// Exit codes of `server-tui`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure (state folder, I/O).
    pub const FAILURE: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = 2;
    /// The port could not be bound.
    pub const BIND: u8 = 3;
    /// Another server is already running with this state folder.
    pub const LOCKED: u8 = 4;
    /// `forget`: no paired client matches (or several do).
    pub const NO_MATCH: u8 = 5;
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

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Locked { .. } => Failure::new(
                exit::LOCKED,
                format!("{e}: another server-tui is already running with this state folder"),
            ),
            other => Failure::new(exit::FAILURE, other.to_string()),
        }
    }
}

/// Parse-free entry point used by `main`: sets up logging and a runtime, runs, maps errors.
pub fn main_with(cli: Cli) -> ExitCode {
    // Under the full-screen interface, log lines go to the screen instead of over the picture
    // (and to stderr again once the terminal is given back).
    tui_kit::log::init(wants_tui(&cli), true);
    tui_kit::terminal::block_on("server-tui", async {
        run(cli).await.map_err(|f| (f.code, f.message))
    })
}

/// Whether this run gets the full-screen interface: the server itself (no subcommand), on a
/// terminal, and not asked for plain output.
fn wants_tui(cli: &Cli) -> bool {
    use std::io::IsTerminal;
    cli.command.is_none() && !cli.no_tui && !cli.json && std::io::stdout().is_terminal()
}

fn state_dir(cli: &Cli) -> Result<PathBuf, Failure> {
    cli.state_dir
        .clone()
        .or_else(|| default_state_dir(Side::Server))
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!(
                    "no home folder to keep state in: pass --state-dir or set {}",
                    csc_shared::state::SERVER_STATE_ENV
                ),
            )
        })
}

fn config(cli: &Cli) -> ServerConfig {
    let mut c = ServerConfig {
        name: cli.name.clone().unwrap_or_else(csc_shared::host_name),
        token_ttl: cli.token_ttl,
        ..ServerConfig::default()
    };
    c.pairing.mode = cli.pairing;
    c.pairing.open_for = cli.open_for.max(std::time::Duration::from_secs(1));
    c.pairing.code_ttl = cli.code_ttl;
    c.pairing.max_attempts = cli.max_attempts;
    c.pairing.max_pending_per_addr = usize::from(cli.max_pending_per_addr.max(1));
    c.pairing.max_pending_total = usize::from(cli.max_pending.max(1));
    c.pairing.backoff_base = cli.backoff;
    c.pairing.backoff_max = cli.backoff_max.max(cli.backoff);
    c.pairing.budget = csc_shared::server::BudgetPolicy {
        failures: cli.pairing_budget.max(1),
        window: cli.pairing_budget_window,
        cooloff: cli.pairing_cooloff,
        cooloff_max: cli.pairing_cooloff_max.max(cli.pairing_cooloff),
    };
    c
}

/// Run the server, or a subcommand, until done (Ctrl-C or SIGTERM for the server).
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let dir = state_dir(&cli)?;
    match &cli.command {
        Some(Command::Clients) => headless::list_clients(&dir, cli.json).await,
        Some(Command::Forget { id }) => headless::forget(&dir, id, cli.json).await,
        Some(Command::Pairing { action }) => headless::pairing(&dir, action, cli.json).await,
        None => serve(&cli, &dir).await,
    }
}

async fn serve(cli: &Cli, dir: &std::path::Path) -> Result<(), Failure> {
    // Every session holds a socket, and the usual soft limit of 1,024 open files would stop
    // the server near a thousand clients: lift it as far as the hard limit allows.
    let fd_limit = csc_shared::discovery::raise_fd_limit();
    tracing::debug!("open-files limit {fd_limit}");
    let (tx, rx) =
        csc_shared::server::events::channel(csc_shared::server::events::DEFAULT_CAPACITY);
    let server =
        Server::open(dir, config(cli), Tasks::with_builtins(), Some(tx)).map_err(|e| match e {
            ServerError::State(s) => Failure::from(s),
            other => Failure::new(exit::FAILURE, other.to_string()),
        })?;
    let addr = std::net::SocketAddr::new(cli.bind, cli.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::new(exit::BIND, format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::new(exit::BIND, format!("cannot listen on {addr}: {e}")))?;
    // Answer discovery probes on the same address and port; advertise over mDNS unless
    // told not to. Kept alive until the server stops.
    let _discovery = match server.serve_discovery(bound, !cli.no_mdns).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("discovery probes will not be answered: UDP {bound}: {e}");
            None
        }
    };
    let control = {
        let path = csc_shared::server::control::socket_path(dir);
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = csc_shared::server::control::serve(server, path.clone()).await {
                tracing::warn!("control socket {} unavailable: {e}", path.display());
            }
        })
    };
    if wants_tui(cli) {
        let result = tui::run(
            server,
            listener,
            rx,
            tui_kit::terminal::wants_color(cli.no_color),
            cli.open_for,
            shutdown_signal(),
        )
        .await;
        control.abort();
        let _ = std::fs::remove_file(csc_shared::server::control::socket_path(dir));
        return result;
    }
    // Its own thread: a reader that stops reading stdout blocks this thread only, and the
    // engine's bounded channel drops (and counts) what does not fit meanwhile.
    let json = cli.json;
    let printer = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || headless::print_events(rx, json))
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot start the printer: {e}")))?;
    let result = server.run(listener, shutdown_signal()).await;
    control.abort();
    let _ = std::fs::remove_file(csc_shared::server::control::socket_path(dir));
    // The engine (and its event sender) is gone once run returns; the printer drains and
    // ends. One stuck on a stdout nobody reads is left behind rather than waited for.
    drop(control);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !printer.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    result.map_err(|e| Failure::new(exit::FAILURE, e.to_string()))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whether a server is running with `dir` as its state folder.
pub fn is_running(dir: &std::path::Path) -> bool {
    ServerStore::is_running(dir)
}
