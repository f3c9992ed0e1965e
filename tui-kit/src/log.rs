//! Logging for the apps: `tracing` lines go to stderr, or, while the full-screen interface has
//! the terminal, into the app as [`TuiMsg::log`] messages instead of over the picture.
//!
//! Owns: the subscriber set-up and the writer that routes its lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::event::{Level, TuiMsg};

type Sink = Arc<dyn Fn(Level, String) -> bool + Send + Sync>;

/// Where log lines go while the screen is taken.
static LOG_SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Install the global subscriber: `RUST_LOG` targets, warnings and worse by default. With
/// `tui`, lines go through [`LogRouter`] without colour, and with a timestamp only when
/// `tui_time`; otherwise to stderr, coloured unless `NO_COLOR` is set.
pub fn init(tui: bool, tui_time: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::WARN));
    let routed = || {
        tracing_subscriber::fmt::layer()
            .with_writer(LogRouter)
            .with_ansi(false)
    };
    let layer = match (tui, tui_time) {
        (true, true) => routed().boxed(),
        (true, false) => routed().without_time().boxed(),
        (false, _) => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::env::var_os("NO_COLOR").is_none())
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}

/// A `tracing` writer: into the app while attached, else stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRouter;

impl LogRouter {
    /// Send log lines to `tx` as [`TuiMsg::log`] messages from now on.
    pub fn attach<M: TuiMsg + Send + 'static>(tx: mpsc::UnboundedSender<M>) {
        let sink: Sink = Arc::new(move |level, text| tx.send(M::log(level, text)).is_ok());
        *LOG_SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }

    /// Back to stderr.
    pub fn detach() {
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
            Some(send) if send(level, text.clone()) => {}
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
