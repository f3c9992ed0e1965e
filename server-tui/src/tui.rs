//! The full-screen mode's driver: runs the engine in a task, and, with the terminal and the
//! loop from `tui_kit::terminal`, feeds events to `App::update` and carries out its actions.
//!
//! Owns: what the server's actions mean. It must not decide anything the app could decide:
//! keys and events go to `App::update` untouched.

use std::future::Future;

use csc_shared::server::{Server, ServerEvent};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tui_kit::Events;
use tui_kit::log::LogRouter;
use tui_kit::terminal::{TerminalGuard, drive};

use crate::app::{Action, App, Clock, Level, Msg, Options};
use crate::headless::TasksOrigin;
use crate::{Failure, exit, ui};

/// What the interface starts with, besides the engine.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Whether to use colour.
    pub color: bool,
    /// How long `o` opens a pairing window for.
    pub open_for: std::time::Duration,
    /// Where the configured tasks came from.
    pub origin: TasksOrigin,
}

/// Run the server under the full-screen interface until the operator quits or `shutdown`
/// (SIGTERM) completes.
pub async fn run(
    server: Server,
    listener: TcpListener,
    engine_events: mpsc::Receiver<ServerEvent>,
    setup: Setup,
    shutdown: impl Future,
) -> Result<(), Failure> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut engine = tokio::spawn(server.clone().run(listener, async move {
        let _ = stop_rx.await;
    }));
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    LogRouter::attach(internal_tx.clone());

    let mut terminal = match TerminalGuard::init() {
        Ok(t) => t,
        Err(e) => {
            LogRouter::detach();
            let _ = stop_tx.send(());
            let _ = engine.await;
            return Err(Failure::new(
                exit::FAILURE,
                format!("cannot use the terminal: {e} (try --no-tui)"),
            ));
        }
    };
    let size = terminal.size();
    let mut app = App::new(
        Options {
            name: server.name().to_string(),
            server_short: server.id().short(),
            color: setup.color,
            pairing: server.pairing_status(),
            open_for: setup.open_for,
            origin: setup.origin,
        },
        Clock::now(),
        size,
    );
    let mut events = Events::with_engine(engine_events, Msg::Engine, internal_rx);
    let handle = |app: &mut App, msg| match app.update(msg) {
        Some(action) => perform(action, &server, app, &internal_tx),
        None => true,
    };

    let ended = tokio::select! {
        ended = drive(&mut terminal, &mut app, &mut events, ui::draw, handle) => {
            ended.map_err(|e| Failure::new(exit::FAILURE, format!("drawing failed: {e}")))
        }
        _ = shutdown => Ok(()),
        res = &mut engine => {
            // The engine stopped by itself: nothing left to serve.
            LogRouter::detach();
            drop(terminal);
            return engine_outcome(res);
        }
    };
    LogRouter::detach();
    drop(terminal);
    let _ = stop_tx.send(());
    let stopped = engine_outcome(engine.await);
    ended.and(stopped)
}

fn engine_outcome(res: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), Failure> {
    match res {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(exit::FAILURE, e.to_string())),
        Err(e) => Err(Failure::new(
            exit::FAILURE,
            format!("the server stopped: {e}"),
        )),
    }
}

/// Carry out `action`; `false` means quit. Slow work runs in tasks that answer with a [`Msg`].
fn perform(
    action: Action,
    server: &Server,
    app: &mut App,
    internal: &mpsc::UnboundedSender<Msg>,
) -> bool {
    match action {
        Action::Quit => return false,
        Action::Refresh => {
            // Snapshots under short locks; the updates that follow cannot ask for more.
            let _ = app.update(Msg::Clients(server.clients()));
            let _ = app.update(Msg::Runs(server.runs()));
        }
        Action::Reload => {
            // The engine reports `tasks_reloaded`, or a warning while the old tasks stay.
            let _ = server.reload_tasks();
        }
        Action::StopRun { run_id } => {
            // Its end is reported by the engine as `task_finished`.
            if !server.stop_run(run_id) {
                let _ = app.update(Msg::Log(
                    Level::Info,
                    format!("run {run_id} had already ended"),
                ));
            }
        }
        Action::OpenPairing => {
            // The engine reports `pairing_opened`, which the app shows.
            server.open_pairing(None);
        }
        Action::ClosePairing => {
            server.close_pairing();
        }
        Action::CodeAhead => {
            // The engine reports `code_ahead` (and `pairing_opened` when it had to open).
            server.code_ahead();
        }
        Action::Notify(text) => {
            // Queues without waiting; the engine reports `notice_sent`.
            server.notify_all(&text);
        }
        Action::Revoke { client_id } => {
            let server = server.clone();
            let internal = internal.clone();
            tokio::spawn(async move {
                // Success is reported by the engine as `revoked`.
                if let Err(e) = server.revoke(&client_id).await {
                    let _ = internal.send(Msg::Log(Level::Error, format!("revoke failed: {e}")));
                }
            });
        }
    }
    true
}
