//! Whether the server accepts pairing right now: the pairing mode, the operator's window, and
//! closures after the failure budget was spent.
//!
//! Owns the open/closed state and its deadlines, nothing else: the budget says when to close,
//! the operator says when to open, and the caller passes the clock in and reports the
//! [`GateChange`]s it gets back.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How a server accepts pairing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairingMode {
    /// Every request gets a code, as long as the failure budget lasts (the default).
    #[default]
    Request,
    /// Requests are accepted only while the operator has opened a pairing window; it closes
    /// after its time, after one successful pairing, or when the budget is spent.
    Window,
}

impl std::str::FromStr for PairingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "request" => Ok(PairingMode::Request),
            "window" => Ok(PairingMode::Window),
            other => Err(format!(
                "unknown pairing mode {other:?}: expected `request` or `window`"
            )),
        }
    }
}

impl std::fmt::Display for PairingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PairingMode::Request => "request",
            PairingMode::Window => "window",
        })
    }
}

/// Why pairing is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedReason {
    /// Too many wrong answers: the failure budget is spent.
    Budget,
    /// Window mode, and no window has been opened yet.
    NotOpened,
    /// The pairing window's time ran out.
    WindowExpired,
    /// The pairing window closed after its one successful pairing.
    Paired,
    /// The operator closed it.
    Operator,
}

impl ClosedReason {
    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            ClosedReason::Budget => "too many wrong codes: the failure budget is spent",
            ClosedReason::NotOpened => "no pairing window is open",
            ClosedReason::WindowExpired => "the pairing window's time ran out",
            ClosedReason::Paired => "the pairing window closed after a successful pairing",
            ClosedReason::Operator => "the operator closed pairing",
        }
    }
}

/// Who opened pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenedBy {
    /// The operator (TUI key, `server-tui pairing open`, the control socket).
    Operator,
    /// The cool-off after a spent budget ended.
    Cooloff,
}

/// A change the caller reports to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateChange {
    /// Pairing is accepted again.
    Opened {
        /// Who opened it.
        by: OpenedBy,
        /// When a window closes by itself.
        closes_in: Option<Duration>,
    },
    /// Pairing is refused from now on.
    Closed {
        /// Why.
        reason: ClosedReason,
        /// When it reopens by itself.
        reopens_in: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Window {
        until: Instant,
    },
    Closed {
        reason: ClosedReason,
        until: Option<Instant>,
    },
}

/// The open/closed state.
#[derive(Debug)]
pub struct Gate {
    mode: PairingMode,
    state: State,
}

impl Gate {
    /// A gate in `mode`: open for [`PairingMode::Request`], closed until opened for
    /// [`PairingMode::Window`].
    pub fn new(mode: PairingMode) -> Self {
        let state = match mode {
            PairingMode::Request => State::Open,
            PairingMode::Window => State::Closed {
                reason: ClosedReason::NotOpened,
                until: None,
            },
        };
        Self { mode, state }
    }

    /// The mode.
    pub fn mode(&self) -> PairingMode {
        self.mode
    }

    /// Apply deadlines that have passed; returns the change, if any.
    pub fn tick(&mut self, now: Instant) -> Option<GateChange> {
        match self.state {
            State::Window { until } if now >= until => {
                self.state = State::Closed {
                    reason: ClosedReason::WindowExpired,
                    until: None,
                };
                Some(GateChange::Closed {
                    reason: ClosedReason::WindowExpired,
                    reopens_in: None,
                })
            }
            State::Closed {
                until: Some(until), ..
            } if now >= until => {
                // Only a request-mode server opens by itself; a window needs its operator.
                match self.mode {
                    PairingMode::Request => {
                        self.state = State::Open;
                        Some(GateChange::Opened {
                            by: OpenedBy::Cooloff,
                            closes_in: None,
                        })
                    }
                    PairingMode::Window => {
                        self.state = State::Closed {
                            reason: ClosedReason::Budget,
                            until: None,
                        };
                        None
                    }
                }
            }
            _ => None,
        }
    }

    /// Whether requests and attempts are accepted at `now`; otherwise how long until pairing
    /// reopens by itself, if it does.
    pub fn check(&mut self, now: Instant) -> Result<(), Option<Duration>> {
        self.tick(now);
        match self.state {
            State::Open | State::Window { .. } => Ok(()),
            State::Closed { until, .. } => Err(until.map(|u| u.saturating_duration_since(now))),
        }
    }

    /// The operator opens pairing: a window of `window` in window mode, for good in request
    /// mode. Overrides a cool-off.
    pub fn open(&mut self, window: Duration, now: Instant) -> GateChange {
        match self.mode {
            PairingMode::Request => {
                self.state = State::Open;
                GateChange::Opened {
                    by: OpenedBy::Operator,
                    closes_in: None,
                }
            }
            PairingMode::Window => {
                let until = now
                    .checked_add(window)
                    .unwrap_or(now + Duration::from_secs(86_400));
                self.state = State::Window { until };
                GateChange::Opened {
                    by: OpenedBy::Operator,
                    closes_in: Some(until.saturating_duration_since(now)),
                }
            }
        }
    }

    /// Close pairing for `reason`, reopening by itself after `cooloff` when given. Returns
    /// the change, or `None` when it was already closed for the same reason.
    pub fn close(
        &mut self,
        reason: ClosedReason,
        cooloff: Option<Duration>,
        now: Instant,
    ) -> Option<GateChange> {
        let until = cooloff.map(|c| {
            now.checked_add(c)
                .unwrap_or(now + Duration::from_secs(86_400))
        });
        if let State::Closed {
            reason: r,
            until: u,
        } = self.state
            && r == reason
            && u == until
        {
            return None;
        }
        self.state = State::Closed { reason, until };
        Some(GateChange::Closed {
            reason,
            reopens_in: until.map(|u| u.saturating_duration_since(now)),
        })
    }

    /// A pairing succeeded: a window closes behind it.
    pub fn paired(&mut self, now: Instant) -> Option<GateChange> {
        match self.state {
            State::Window { .. } => self.close(ClosedReason::Paired, None, now),
            _ => None,
        }
    }

    /// What the operator is shown: open or not, why, and the deadlines.
    pub fn view(&self, now: Instant) -> GateView {
        match self.state {
            State::Open => GateView {
                open: true,
                reason: None,
                closes_in: None,
                reopens_in: None,
            },
            State::Window { until } => GateView {
                open: true,
                reason: None,
                closes_in: Some(until.saturating_duration_since(now)),
                reopens_in: None,
            },
            State::Closed { reason, until } => GateView {
                open: false,
                reason: Some(reason),
                closes_in: None,
                reopens_in: until.map(|u| u.saturating_duration_since(now)),
            },
        }
    }
}

/// A snapshot of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateView {
    /// Whether requests are accepted.
    pub open: bool,
    /// Why not.
    pub reason: Option<ClosedReason>,
    /// When an open window closes.
    pub closes_in: Option<Duration>,
    /// When a closure ends by itself.
    pub reopens_in: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn request_mode_closes_for_a_cooloff_and_reopens_by_itself() {
        let t = Instant::now();
        let mut g = Gate::new(PairingMode::Request);
        assert_eq!(g.check(t), Ok(()));
        let change = g.close(ClosedReason::Budget, Some(10 * S), t);
        assert_eq!(
            change,
            Some(GateChange::Closed {
                reason: ClosedReason::Budget,
                reopens_in: Some(10 * S)
            })
        );
        assert_eq!(g.check(t + 4 * S), Err(Some(6 * S)));
        assert_eq!(
            g.tick(t + 10 * S),
            Some(GateChange::Opened {
                by: OpenedBy::Cooloff,
                closes_in: None
            })
        );
        assert_eq!(g.check(t + 10 * S), Ok(()));
    }

    #[test]
    fn window_mode_is_closed_until_opened_and_closes_on_time_or_after_a_pairing() {
        let t = Instant::now();
        let mut g = Gate::new(PairingMode::Window);
        assert_eq!(g.check(t), Err(None));
        assert_eq!(g.view(t).reason, Some(ClosedReason::NotOpened));
        g.open(5 * S, t);
        assert_eq!(g.check(t + S), Ok(()));
        assert_eq!(g.view(t + S).closes_in, Some(4 * S));
        assert_eq!(
            g.tick(t + 5 * S),
            Some(GateChange::Closed {
                reason: ClosedReason::WindowExpired,
                reopens_in: None
            })
        );
        assert_eq!(g.check(t + 5 * S), Err(None));
        // Opened again, then one pairing closes it.
        g.open(60 * S, t + 6 * S);
        assert!(g.paired(t + 7 * S).is_some());
        assert_eq!(g.check(t + 7 * S), Err(None));
        assert_eq!(g.view(t + 7 * S).reason, Some(ClosedReason::Paired));
        // A pairing while closed changes nothing.
        assert_eq!(g.paired(t + 8 * S), None);
    }

    #[test]
    fn a_window_cooloff_ends_closed_and_the_operator_overrides_it() {
        let t = Instant::now();
        let mut g = Gate::new(PairingMode::Window);
        g.open(60 * S, t);
        g.close(ClosedReason::Budget, Some(10 * S), t + S);
        // The cool-off ends, but a window server waits for its operator.
        assert_eq!(g.tick(t + 20 * S), None);
        assert_eq!(g.check(t + 20 * S), Err(None));
        // The operator can open at any time, even during a cool-off.
        g.close(ClosedReason::Budget, Some(100 * S), t + 21 * S);
        g.open(60 * S, t + 22 * S);
        assert_eq!(g.check(t + 22 * S), Ok(()));
    }

    #[test]
    fn operator_close_holds_until_opened_and_repeats_are_quiet() {
        let t = Instant::now();
        let mut g = Gate::new(PairingMode::Request);
        assert!(g.close(ClosedReason::Operator, None, t).is_some());
        assert_eq!(g.close(ClosedReason::Operator, None, t), None);
        assert_eq!(g.check(t + 1000 * S), Err(None));
        g.open(S, t + 1000 * S);
        // Request mode ignores the window length: open until closed.
        assert_eq!(g.check(t + 5000 * S), Ok(()));
    }

    #[test]
    fn mode_parses() {
        assert_eq!("window".parse::<PairingMode>(), Ok(PairingMode::Window));
        assert!("sometimes".parse::<PairingMode>().is_err());
    }
}
