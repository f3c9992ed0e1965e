//! The full-screen mode's driver: takes over the terminal (and gives it back on every exit
//! path and on panic), feeds [`Events`] to `App::update`, draws, and hands the app's actions
//! to [`Net`].
//!
//! Owns: the terminal and the loop. It must not decide anything the app could decide: keys
//! and network news go to `App::update` untouched.

use std::io::Write;
use std::sync::{Arc, Mutex};

use csc_shared::client::Client;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::app::{Action, App, Clock, Level, Msg, Options};
use crate::cli::Cli;
use crate::event::Events;
use crate::net::Net;
use crate::{Failure, discovery_options, exit, ui};

/// Messages handled before a redraw at most; the screen shows the latest state of a batch.
const BATCH: usize = 512;

/// Gives the terminal back when dropped, whatever the exit path.
struct TerminalGuard(ratatui::DefaultTerminal);

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Run the full-screen client until the person quits.
pub async fn run(client: Client, cli: &Cli, color: bool) -> Result<(), Failure> {
    let paired = client.servers()?;
    let client = Arc::new(client);
    let (tx, rx) = mpsc::unbounded_channel();
    LogRouter::attach(tx.clone());

    // ratatui::init installs its panic hook on top of whatever hook is there, so a panic
    // restores the terminal before the message is printed.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => TerminalGuard(t),
        Err(e) => {
            LogRouter::detach();
            ratatui::restore();
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
    let options = discovery_options(cli);
    let mut app = App::new(
        Options {
            name: client.name().to_string(),
            short: client.id().short(),
            color,
            discovery: options.is_some(),
            manual: cli.target.server.clone(),
            target: cli
                .target
                .server_id
                .clone()
                .or_else(|| cli.target.server_name.clone()),
        },
        Clock::now(),
        size,
        paired,
    );
    let mut net = Net::new(client, options, cli.port, tx);
    let mut events = Events::new(rx);
    for action in app.start() {
        net.perform(action);
    }
    let result = drive(&mut terminal, &mut app, &mut events, &mut net).await;
    LogRouter::detach();
    drop(terminal);
    net.shutdown().await;
    result
}

/// Draw, wait, update, act, until the app asks to quit or the terminal goes away.
async fn drive(
    terminal: &mut TerminalGuard,
    app: &mut App,
    events: &mut Events,
    net: &mut Net,
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
            for action in app.update(msg) {
                if action == Action::Quit {
                    return Ok(());
                }
                net.perform(action);
            }
            msg = match events.next().now_or_never() {
                Some(Some(next)) => next,
                Some(None) => return Ok(()),
                None => break,
            };
        }
    }
}

/// Where log lines go while the screen is taken: into the status line, not over the picture.
static LOG_SINK: Mutex<Option<mpsc::UnboundedSender<Msg>>> = Mutex::new(None);

/// A `tracing` writer: to the status line while the full-screen interface runs, else stderr.
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
