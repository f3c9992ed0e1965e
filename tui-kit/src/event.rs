//! One stream of an app's messages: the terminal's keys and resizes, a steady tick, an
//! optional engine channel and the app's own channel.
//!
//! Owns: waiting. It must not interpret anything: every message goes to the app's `update`.

use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyEvent};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

/// Time between ticks: elapsed times and countdowns move on at this pace.
pub const TICK: Duration = Duration::from_millis(250);

/// The time, both as an instant (for countdowns) and as Unix seconds (for expiries and ages).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic now.
    pub instant: Instant,
    /// Wall-clock now, Unix seconds.
    pub unix: u64,
}

impl Clock {
    /// The current time.
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// How a status or log line is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine.
    Info,
    /// Something went right.
    Good,
    /// Worth a look.
    Warn,
    /// Something failed.
    Error,
}

/// The messages every app's `update` takes, whatever else it takes.
pub trait TuiMsg: Sized {
    /// A key (the app ignores all but presses).
    fn key(key: KeyEvent) -> Self;
    /// The terminal has a new size.
    fn resize(width: u16, height: u16) -> Self;
    /// Time passed.
    fn tick(clock: Clock) -> Self;
    /// A line for the status line or event log.
    fn log(level: Level, text: String) -> Self;
}

/// Implement [`TuiMsg`] for an app's message enum that has the variants `Key(KeyEvent)`,
/// `Resize(u16, u16)`, `Tick(Clock)` and `Log(Level, String)`.
#[macro_export]
macro_rules! impl_tui_msg {
    ($msg:ty) => {
        impl $crate::TuiMsg for $msg {
            fn key(key: $crate::__crossterm::event::KeyEvent) -> Self {
                Self::Key(key)
            }

            fn resize(width: u16, height: u16) -> Self {
                Self::Resize(width, height)
            }

            fn tick(clock: $crate::Clock) -> Self {
                Self::Tick(clock)
            }

            fn log(level: $crate::Level, text: String) -> Self {
                Self::Log(level, text)
            }
        }
    };
}

/// The merged sources: the terminal, ticks, an optional engine channel of `E` (wrapped into
/// `M`) and the app's own channel of `M`.
pub struct Events<M, E = std::convert::Infallible> {
    terminal: EventStream,
    tick: Interval,
    engine: Option<mpsc::Receiver<E>>,
    wrap: fn(E) -> M,
    internal: mpsc::UnboundedReceiver<M>,
    terminal_failed: bool,
}

impl<M: TuiMsg> Events<M> {
    /// Listen to the terminal, tick, and read `internal`.
    pub fn new(internal: mpsc::UnboundedReceiver<M>) -> Self {
        Self::build(None, |never| match never {}, internal)
    }
}

impl<M: TuiMsg, E> Events<M, E> {
    /// Listen to the terminal, tick, and read `engine` (each event made a message by `wrap`)
    /// and `internal`. The engine's channel is bounded: an engine must never buffer without
    /// limit for a screen that is slow to draw.
    pub fn with_engine(
        engine: mpsc::Receiver<E>,
        wrap: fn(E) -> M,
        internal: mpsc::UnboundedReceiver<M>,
    ) -> Self {
        Self::build(Some(engine), wrap, internal)
    }

    fn build(
        engine: Option<mpsc::Receiver<E>>,
        wrap: fn(E) -> M,
        internal: mpsc::UnboundedReceiver<M>,
    ) -> Self {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Self {
            terminal: EventStream::new(),
            tick,
            engine,
            wrap,
            internal,
            terminal_failed: false,
        }
    }

    /// The next message, or `None` once the terminal is gone (nothing could quit otherwise).
    pub async fn next(&mut self) -> Option<M> {
        if self.terminal_failed {
            return None;
        }
        loop {
            // Keys first, so Ctrl-C is heard even under a flood of other events.
            tokio::select! {
                biased;
                ev = self.terminal.next() => match ev {
                    Some(Ok(Event::Key(key))) => return Some(M::key(key)),
                    Some(Ok(Event::Resize(w, h))) => return Some(M::resize(w, h)),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        self.terminal_failed = true;
                        return Some(M::log(Level::Error, format!("terminal input failed: {e}")));
                    }
                    None => return None,
                },
                _ = self.tick.tick() => return Some(M::tick(Clock::now())),
                ev = recv(&mut self.engine) => match ev {
                    Some(ev) => return Some((self.wrap)(ev)),
                    None => self.engine = None,
                },
                Some(msg) = self.internal.recv() => return Some(msg),
            }
        }
    }
}

/// Receive from `rx`, or wait forever once it is closed (or when there is none).
async fn recv<E>(rx: &mut Option<mpsc::Receiver<E>>) -> Option<E> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
