//! `server-tui`: the server application. Thin: it parses the command line (and the settings
//! of its configuration file, `settings`), opens the engine from `csc_shared::server`, and
//! renders its events, either as headless lines or JSON (`headless`) or in the full-screen
//! interface (`tui`), which consume the same events.
//!
//! Exit codes are in [`exit`]; a mistake in the configuration file is [`exit::CONFIG`].
//!
//! Layout of the full-screen interface, ratatui style:
//! - `app`: state and the one `update` function (keys, engine events, ticks in; actions out);
//! - `ui`: pure drawing of the state;
//! - `keymap`: key bindings as data, also the source of the footer and help;
//! - `tui`: the loop that owns the terminal and carries out the app's actions.

mod app;
pub mod cli;
mod commands;
mod headless;
mod hint;
mod keymap;
mod service;
mod settings;
#[cfg(test)]
mod test_support;
mod tui;
mod ui;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use cli::{Cli, Command};
use csc_shared::server::tasks::config::ConfigFile;
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
    /// `forget`, `rename`: no paired client matches (or several do); `stop-run`: no such
    /// run is in progress.
    pub const NO_MATCH: u8 = 5;
    /// The configuration file is unusable (at start), or `reload` was refused because of it.
    pub const CONFIG: u8 = 6;
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

/// The binary's entry point: the command line of this process, with the settings of the
/// configuration file under it.
pub fn main() -> ExitCode {
    main_from(std::env::args_os().collect())
}

/// [`main`] for the command line `args` (program name first): a usage error exits here with
/// [`exit::USAGE`], a configuration file mistake with [`exit::CONFIG`].
pub fn main_from(args: Vec<OsString>) -> ExitCode {
    let cli = cli::try_parse_from(&args).unwrap_or_else(|e| e.exit());
    let reserved = server_tasks();
    let reserved = reserved.names();
    match settings::resolve(cli, &args, &reserved, csc_shared::server::effective_uid()) {
        Ok((cli, file)) => main_with(cli, file),
        Err(f) => {
            eprintln!("server-tui: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Entry point after parsing: sets up logging and a runtime, runs, maps errors. `config` is
/// the configuration file `cli` was completed from, if any.
pub fn main_with(cli: Cli, config: Option<ConfigFile>) -> ExitCode {
    // Under the full-screen interface, log lines go to the screen instead of over the picture
    // (and to stderr again once the terminal is given back).
    tui_kit::log::init(wants_tui(&cli), true);
    tui_kit::terminal::block_on("server-tui", async {
        run(cli, config).await.map_err(|f| (f.code, f.message))
    })
}

/// The tasks registered in Rust: the built-ins. A configured task may not take their names.
fn server_tasks() -> Tasks {
    Tasks::with_builtins()
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

fn config(cli: &Cli, dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig {
        // The name given now, else the one it ran under last time, else the host's.
        name: cli
            .name
            .clone()
            .or_else(|| csc_shared::state::ServerStore::saved_name(dir))
            .unwrap_or_else(csc_shared::host_name),
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

/// Run the server, or a subcommand, until done (Ctrl-C or SIGTERM for the server). The server
/// takes its tasks from `file` (see `settings::resolve`); subcommands ignore it.
pub async fn run(cli: Cli, file: Option<ConfigFile>) -> Result<(), Failure> {
    // These touch no state: they must not create the state folder.
    if let Some(c @ (Command::Completions { .. } | Command::Man)) = &cli.command {
        return generate(c);
    }
    let dir = state_dir(&cli)?;
    match &cli.command {
        Some(Command::Clients) => commands::list_clients(&dir, cli.json).await,
        Some(Command::Forget { id }) => commands::forget(&dir, id, cli.json).await,
        Some(Command::Pairing { action }) => commands::pairing(&dir, action, cli.json).await,
        Some(Command::Reload) => commands::reload(&dir, cli.json).await,
        Some(Command::Runs) => commands::list_runs(&dir, cli.json).await,
        Some(Command::StopRun { run_id }) => commands::stop_run(&dir, *run_id, cli.json).await,
        Some(Command::Rename { id, name }) => commands::rename(&dir, id, name, cli.json).await,
        // Printed before the state folder was looked for.
        Some(Command::Completions { .. } | Command::Man) => Ok(()),
        None => serve(&cli, &dir, file).await,
    }
}

/// Write what `completions SHELL` or `man` prints: generated from [`cli::command`].
fn generate(command: &Command) -> Result<(), Failure> {
    let doc = match command {
        Command::Completions { shell } => tui_kit::docs::Doc::Completions(*shell),
        _ => tui_kit::docs::Doc::Man,
    };
    tui_kit::docs::print(doc, cli::command(), "server-tui")
        .map_err(|e| Failure::new(exit::FAILURE, e))
}

async fn serve(cli: &Cli, dir: &std::path::Path, file: Option<ConfigFile>) -> Result<(), Failure> {
    // Every session holds a socket, and the usual soft limit of 1,024 open files would stop
    // the server near a thousand clients: lift it as far as the hard limit allows.
    let fd_limit = csc_shared::discovery::raise_fd_limit();
    tracing::debug!("open-files limit {fd_limit}");
    // What a task's program leaves running when it exits is re-parented here and reaped,
    // not left to an init that may not.
    if let Err(e) = csc_shared::server::tasks::adopt_orphans() {
        tracing::warn!("programs that tasks leave behind will not be reaped by the server: {e}");
    }
    let (tx, rx) =
        csc_shared::server::events::channel(csc_shared::server::events::DEFAULT_CAPACITY);
    let server =
        Server::open(dir, config(cli, dir), server_tasks(), Some(tx)).map_err(|e| match e {
            ServerError::State(s) => Failure::from(s),
            other => Failure::new(exit::FAILURE, other.to_string()),
        })?;
    let origin = headless::TasksOrigin::of(file.as_ref());
    if let Some(file) = file {
        server.set_config(file);
    }
    // Registered before the listener reports, so a SIGHUP right after `listening` reloads
    // instead of ending the process (SIGHUP's default).
    let hangup = reload_on_hangup(&server);
    let addr = std::net::SocketAddr::new(cli.bind, cli.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::new(exit::BIND, format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::new(exit::BIND, format!("cannot listen on {addr}: {e}")))?;
    // Answer discovery probes on the same address and port; advertise over mDNS unless
    // told not to. Kept alive until the server stops.
    let discovery = match server.serve_discovery(bound, !cli.no_mdns).await {
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
    // Signal handlers first: a SIGTERM right after READY must stop the server cleanly.
    let shutdown = service::stopping_on(tui_kit::terminal::shutdown_signal());
    service::ready(bound);
    if wants_tui(cli) {
        let result = tui::run(
            server,
            listener,
            rx,
            tui::Setup {
                color: tui_kit::terminal::wants_color(cli.no_color),
                open_for: cli.open_for,
                origin,
            },
            shutdown,
        )
        .await;
        control.abort();
        if let Some(h) = hangup {
            h.abort();
        }
        let _ = std::fs::remove_file(csc_shared::server::control::socket_path(dir));
        return result;
    }
    // Its own thread: a reader that stops reading stdout blocks this thread only, and the
    // engine's bounded channel drops (and counts) what does not fit meanwhile.
    let json = cli.json;
    let printer = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || headless::print_events(rx, json, origin))
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot start the printer: {e}")))?;
    let result = server.run(listener, shutdown).await;
    control.abort();
    if let Some(h) = hangup {
        h.abort();
    }
    let _ = std::fs::remove_file(csc_shared::server::control::socket_path(dir));
    // The engine's event sender goes with the last handle on it (the discovery responder
    // holds one); then the printer drains and ends. One stuck on a stdout nobody reads is
    // left behind rather than waited for.
    drop(discovery);
    drop(control);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !printer.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    result.map_err(|e| Failure::new(exit::FAILURE, e.to_string()))
}

/// Reload the configuration file's tasks on every SIGHUP. The engine reports the outcome
/// (`tasks_reloaded`, or a warning while the tasks in force stay), in both interfaces.
#[cfg(unix)]
fn reload_on_hangup(server: &Server) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("SIGHUP will not reload the tasks: {e}");
            return None;
        }
    };
    let server = server.clone();
    Some(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let _ = server.reload_tasks();
        }
    }))
}

#[cfg(not(unix))]
fn reload_on_hangup(_server: &Server) -> Option<tokio::task::JoinHandle<()>> {
    None
}

/// Whether a server is running with `dir` as its state folder.
pub fn is_running(dir: &std::path::Path) -> bool {
    ServerStore::is_running(dir)
}
