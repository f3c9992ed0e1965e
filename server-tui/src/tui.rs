//! The full-screen mode's driver: takes over the terminal (and gives it back on every exit
//! path and on panic), runs the engine in a task, feeds [`Events`] to `App::update`, draws,
//! and carries out the actions the app asks for.
//!
//! Owns: the terminal and the loop. It must not decide anything the app could decide: keys
//! and events go to `App::update` untouched.

use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Mutex;

use csc_shared::server::{Server, ServerEvent};
use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::app::{Action, App, Clock, Level, Msg, Options};
use crate::event::Events;
use crate::{Failure, exit, ui};

/// Messages handled before a redraw at most; the screen shows the latest state of a batch.
const BATCH: usize = 512;

/// Gives the terminal back when dropped, whatever the exit path.
struct TerminalGuard(ratatui::DefaultTerminal);

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Run the server under the full-screen interface until the operator quits or `shutdown`
/// (SIGTERM) completes.
pub async fn run(
    server: Server,
    listener: TcpListener,
    engine_events: mpsc::UnboundedReceiver<ServerEvent>,
    color: bool,
    shutdown: impl Future,
) -> Result<(), Failure> {
    let local_addrs = listener
        .local_addr()
        .map(|a| local_addrs(a.ip()))
        .unwrap_or_default();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut engine = tokio::spawn(server.clone().run(listener, async move {
        let _ = stop_rx.await;
    }));
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    LogRouter::attach(internal_tx.clone());

    // ratatui::init installs its panic hook on top of whatever hook is there, so a panic
    // restores the terminal before the message is printed.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => TerminalGuard(t),
        Err(e) => {
            LogRouter::detach();
            ratatui::restore();
            let _ = stop_tx.send(());
            let _ = engine.await;
            return Err(Failure::new(
                exit::FAILURE,
                format!("cannot use the terminal: {e} (try --no-tui)"),
            ));
        }
    };
    let size = terminal
        .0
        .size()
        .map(|s| (s.width, s.height))
        .unwrap_or((80, 24));
    let mut app = App::new(
        Options {
            name: server.name().to_string(),
            server_short: server.id().short(),
            color,
            local_addrs,
        },
        Clock::now(),
        size,
    );
    let mut events = Events::new(engine_events, internal_rx);

    let ended = tokio::select! {
        ended = drive(&mut terminal, &mut app, &mut events, &server, &internal_tx) => ended,
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

/// Draw, wait, update, act, until the app asks to quit or the terminal goes away.
async fn drive(
    terminal: &mut TerminalGuard,
    app: &mut App,
    events: &mut Events,
    server: &Server,
    internal: &mpsc::UnboundedSender<Msg>,
) -> Result<(), Failure> {
    loop {
        terminal
            .0
            .draw(|f| ui::draw(app, f))
            .map_err(|e| Failure::new(exit::FAILURE, format!("drawing failed: {e}")))?;
        let Some(mut msg) = events.next().await else {
            return Ok(());
        };
        // Handle what is already waiting before drawing again: one frame per batch.
        for _ in 0..BATCH {
            if let Some(action) = app.update(msg)
                && !perform(action, server, app, internal)
            {
                return Ok(());
            }
            msg = match events.next().now_or_never() {
                Some(Some(next)) => next,
                Some(None) => return Ok(()),
                None => break,
            };
        }
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
        Action::RefreshClients => {
            // A snapshot under short locks; the update that follows cannot ask for more.
            let _ = app.update(Msg::Clients(server.clients()));
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

/// Addresses to show for a server bound to `ip`: this machine's non-loopback addresses of the
/// same family when `ip` is unspecified.
fn local_addrs(ip: IpAddr) -> Vec<IpAddr> {
    if !ip.is_unspecified() {
        return vec![ip];
    }
    let mut found: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|a| !a.is_loopback() && (a.is_ipv4() == ip.is_ipv4() || ip.is_ipv6()))
        .filter(|a| match a {
            // Link-local IPv6 needs a scope id to be usable; leave it out of the header.
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => true,
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Where log lines go while the screen is taken: into the event log, not over the picture.
static LOG_SINK: Mutex<Option<mpsc::UnboundedSender<Msg>>> = Mutex::new(None);

/// A `tracing` writer: to the event log while the full-screen interface runs, else stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRouter;

impl LogRouter {
    fn attach(tx: mpsc::UnboundedSender<Msg>) {
        *LOG_SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn detach() {
        *LOG_SINK.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// One formatted log record, sent when dropped.
pub struct LogRecord(Vec<u8>);

impl Write for LogRecord {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogRecord {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0).trim_end().to_string();
        let sink = LOG_SINK.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let level = if text.contains("ERROR") {
            Level::Error
        } else {
            Level::Warn
        };
        match sink {
            Some(tx) if tx.send(Msg::Log(level, text.clone())).is_ok() => {}
            _ => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogRouter {
    type Writer = LogRecord;

    fn make_writer(&'a self) -> Self::Writer {
        LogRecord(Vec::new())
    }
}
