//! One stream of [`Msg`]: the terminal's keys and resizes, a steady tick, and what the network
//! tasks report (discovery, pairing, sessions) over the app's channel.
//!
//! Owns: waiting. It must not interpret anything: every message goes to `App::update`.

use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use crate::app::{Clock, Level, Msg};

/// Time between ticks: elapsed times, countdowns and reconnection timers move at this pace.
pub const TICK: Duration = Duration::from_millis(250);

/// The merged sources.
pub struct Events {
    terminal: EventStream,
    tick: Interval,
    internal: mpsc::UnboundedReceiver<Msg>,
    terminal_failed: bool,
}

impl Events {
    /// Listen to the terminal, tick, and read `internal`.
    pub fn new(internal: mpsc::UnboundedReceiver<Msg>) -> Self {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Self {
            terminal: EventStream::new(),
            tick,
            internal,
            terminal_failed: false,
        }
    }

    /// The next message, or `None` once the terminal is gone (nothing could quit otherwise).
    pub async fn next(&mut self) -> Option<Msg> {
        if self.terminal_failed {
            return None;
        }
        loop {
            // Keys first, so Ctrl-C is heard even under a flood of discovery events.
            tokio::select! {
                biased;
                ev = self.terminal.next() => match ev {
                    Some(Ok(Event::Key(key))) => return Some(Msg::Key(key)),
                    Some(Ok(Event::Resize(w, h))) => return Some(Msg::Resize(w, h)),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        self.terminal_failed = true;
                        return Some(Msg::Log(Level::Error, format!("terminal input failed: {e}")));
                    }
                    None => return None,
                },
                _ = self.tick.tick() => return Some(Msg::Tick(Clock::now())),
                Some(msg) = self.internal.recv() => return Some(msg),
            }
        }
    }
}
