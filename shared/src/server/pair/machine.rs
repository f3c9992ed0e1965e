//! The pairing exchange of one connection as a pure state machine: given what arrived and
//! the time, what to send, what to tell the operator, and what to ask the guard.
//!
//! Owns the per-connection rules of pairing (docs/protocol.md, 6.2 to 6.6): one code at a
//! time, its expiry and its attempts, the answer to a stale code, and the order of replies.
//! It must not touch sockets, clocks or locks: the I/O loop in [`super`] feeds [`Input`]s with
//! the time, carries out the [`Output`]s in order, and answers each [`Check`] with the guard's
//! verdict as the next input. What spans connections (pending slots, per-address backoff, the
//! failure budget, the pairing gate) stays in the guard.
//!
//! ```text
//!                 pair_request              admitted               pair_attempt
//!        Idle ───────────────> Admitting ────────────> Pending ───────────────> Reserving
//!         ^ │                      │ refused:             ^ │                      │ unit reserved,
//!         │ │ pair_attempt:        v pair_failed,   wrong │ │ expired              v pair_pake sent
//!         │ │ pair_failed          close                  │ v                  Confirming
//!         │ │ code_expired /                              │ Idle                   │ pair_confirm,
//!         │ v code_exhausted                              │ (stale)                │ silence, close
//!        Idle (stale)                                     └─────── Settling <──────┘
//!         ^                                                           │ right
//!         └──────── the last wrong answer, or an answer after expiry ─┤
//!                                                                     v
//!                                                        Paired: saved, then `paired`
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::connection::ConnectionError;
use crate::identity::PeerId;
use crate::message::{B64, ErrorCode, Message, PairFailure, clean_name};
use crate::pairing::{Binding, Code, Confirmation, server_respond};
use crate::server::ServerEvent;
use crate::server::events::PairClosedReason;
use crate::server::guard::{Cancel, GateChange, NotNow, Outcome, Refusal, Settled};

/// The answer to a code must follow the server's SPAKE2 message at once (the client only
/// computes); an attempt that stalls holds a unit of the failure budget, so it gets less time
/// than a step that waits for a person.
pub(crate) const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// While every unit of the failure budget left is held by answers being checked, an answer
/// waits this long between asks: those checks take milliseconds.
pub(crate) const BUSY_RETRY: Duration = Duration::from_millis(20);

/// An answer that found no free unit for this long is refused as rate limited ...
pub(crate) const BUSY_GIVE_UP: Duration = CONFIRM_TIMEOUT;

/// ... and told to come back after this long.
pub(crate) const BUSY_WAIT: Duration = Duration::from_secs(1);

/// What stays fixed for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// The server's display name, sent in the challenge.
    pub server_name: String,
    /// How long a code is valid.
    pub code_ttl: Duration,
    /// Wrong answers allowed per code.
    pub max_attempts: u32,
    /// Time allowed for the next message when no code is pending.
    pub step_timeout: Duration,
    /// Where the client connects from.
    pub peer: SocketAddr,
    /// The client's key id.
    pub client_id: PeerId,
    /// What the code is bound to (the TLS session and both identities).
    pub binding: Binding,
}

impl Setup {
    fn confirm_timeout(&self) -> Duration {
        CONFIRM_TIMEOUT.min(self.step_timeout)
    }
}

/// The key confirmation of an answer being checked (kept out of `Debug`).
pub(crate) struct Confirmed(pub Box<Confirmation>);

impl std::fmt::Debug for Confirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Confirmed(..)")
    }
}

/// The code this connection holds.
#[derive(Debug)]
pub(crate) struct Held {
    request_id: u64,
    /// The name the client asked under: shown with the code, saved if it pairs.
    name: String,
    code: Code,
    expires_at: Instant,
    attempts_left: u32,
    /// A cancellation that arrived while an answer was being checked, applied after it.
    cancelled: Option<Cancel>,
}

/// What checking an answer decided, to act on once its budget unit is settled.
#[derive(Debug)]
pub(crate) enum Then {
    /// The confirmation matched: pair.
    Right(Confirmed),
    /// It did not (or the SPAKE2 message was malformed).
    Wrong,
    /// It came after the code expired: it told the client nothing.
    Expired,
    /// The client left or broke the exchange half-way: counted as wrong, and the end.
    Abandoned,
}

impl Then {
    fn outcome(&self) -> Outcome {
        match self {
            Then::Right(_) => Outcome::Right,
            Then::Wrong | Then::Abandoned => Outcome::Wrong,
            Then::Expired => Outcome::Void,
        }
    }
}

/// Where one connection's pairing stands.
#[derive(Debug)]
pub(crate) enum State {
    /// No code pending: waiting for `pair_request`, or for a late answer to the code that
    /// ended (`stale`), until `until`.
    Idle {
        /// Why this connection's last code ended.
        stale: Option<PairFailure>,
        /// When waiting for the next message ends.
        until: Instant,
    },
    /// Asked the guard to admit a request made under `name`.
    Admitting {
        /// The name, cleaned.
        name: String,
    },
    /// A code is pending: waiting for an answer, until it expires.
    Pending(Held),
    /// An answer arrived; asking the guard for a unit of the failure budget.
    Reserving {
        /// The code.
        held: Held,
        /// The client's SPAKE2 message.
        pake: Vec<u8>,
        /// When to ask again while every unit is busy.
        retry_at: Instant,
        /// When to stop asking.
        give_up: Instant,
    },
    /// `pair_pake` sent, a unit reserved: waiting for `pair_confirm` until `until`.
    Confirming {
        /// The code.
        held: Held,
        /// What the confirmation must match.
        confirmation: Confirmed,
        /// When the answer is given up as abandoned.
        until: Instant,
    },
    /// Asked the guard to settle the reserved unit.
    Settling {
        /// The code.
        held: Held,
        /// What to do once settled.
        then: Then,
    },
    /// Paired: the I/O loop saves the pairing and sends `paired`.
    Paired,
    /// The connection ends.
    Closed,
}

/// What a granted request is given.
#[derive(Debug)]
pub(crate) struct Issued {
    /// The request's id in events.
    pub request_id: u64,
    /// Its fresh code.
    pub code: Code,
}

/// What happens to a connection.
#[derive(Debug)]
pub(crate) enum Input {
    /// The client sent a message.
    Message(Message),
    /// The client closed the connection, or reading from it failed (the I/O loop answers a
    /// broken frame itself).
    PeerGone,
    /// [`State::deadline`] passed.
    Deadline,
    /// The guard cancelled the pending request: displaced, or pairing closed.
    Cancelled(Cancel),
    /// The guard's answer to [`Check::Admit`].
    Admitted(Result<Issued, Refusal>),
    /// The guard's answer to [`Check::BeginAttempt`].
    AttemptChecked(Result<(), NotNow>),
    /// The guard's answer to [`Check::Settle`].
    Settled(Settled),
}

/// A question for the guard; its answer is the next [`Input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// May a request from this address have a code? Answered with [`Input::Admitted`].
    Admit,
    /// May this request's answer be checked (reserving a unit of the failure budget)?
    /// Answered with [`Input::AttemptChecked`].
    BeginAttempt(u64),
    /// Settle the unit this request reserved. Answered with [`Input::Settled`].
    Settle(u64, Outcome),
}

/// What to do, in order.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send this message to the client.
    Send(Message),
    /// Tell the operator.
    Event(ServerEvent),
    /// Tell the operator that pairing opened or closed.
    Gate(GateChange),
    /// The pending request ended without pairing: release its slot and report why.
    Ended(PairClosedReason),
    /// Ask the guard; always the last output of a step.
    Check(Check),
    /// The code was right: save the pairing, then send `paired`.
    Pair {
        /// The request that succeeded.
        request_id: u64,
        /// The name to save.
        name: String,
        /// For the server's MAC.
        confirmation: Confirmed,
    },
    /// End the connection.
    Close,
}

impl State {
    /// The state of a connection whose first message is about to be fed in.
    pub(crate) fn start(setup: &Setup, now: Instant) -> Self {
        State::Idle {
            stale: None,
            until: now + setup.step_timeout,
        }
    }

    /// When [`Input::Deadline`] is due, if anything waits for time.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            State::Idle { until, .. } | State::Confirming { until, .. } => Some(*until),
            State::Pending(held) => Some(held.expires_at),
            State::Reserving { retry_at, .. } => Some(*retry_at),
            State::Admitting { .. } | State::Settling { .. } | State::Paired | State::Closed => {
                None
            }
        }
    }

    /// Whether the client's next message is wanted now. An answer waiting for a budget unit
    /// reads nothing more until it is checked.
    pub(crate) fn reads(&self) -> bool {
        matches!(
            self,
            State::Idle { .. } | State::Pending(_) | State::Confirming { .. }
        )
    }
}

fn refusal(reason: PairFailure, attempts_left: u32, wait: Option<Duration>) -> Message {
    Message::PairFailed {
        reason,
        attempts_left,
        retry_after_ms: wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
    }
}

fn unexpected(text: String) -> Message {
    Message::error(ErrorCode::UnexpectedMessage, text)
}

fn timed_out() -> Message {
    Message::error(ErrorCode::Timeout, ConnectionError::Timeout.to_string())
}

/// Apply `input` at `now`. Returns the next state and what to do, in order.
pub(crate) fn step(
    state: State,
    setup: &Setup,
    input: Input,
    now: Instant,
) -> (State, Vec<Output>) {
    let mut out = Vec::new();
    let state = match state {
        // A code that ran out before this input is void first; the input then meets `Idle`.
        State::Pending(held) if now >= held.expires_at => {
            let idle = expire(setup, held, now, &mut out);
            match input {
                Input::Deadline => idle,
                input => on_input(idle, setup, input, now, &mut out),
            }
        }
        state => on_input(state, setup, input, now, &mut out),
    };
    (state, out)
}

fn on_input(
    state: State,
    setup: &Setup,
    input: Input,
    now: Instant,
    out: &mut Vec<Output>,
) -> State {
    match (state, input) {
        // ---- no code pending ----
        (State::Idle { .. }, Input::Message(Message::PairRequest { client_name })) => {
            out.push(Output::Check(Check::Admit));
            State::Admitting {
                name: clean_name(&client_name),
            }
        }
        (State::Idle { stale, .. }, Input::Message(Message::PairAttempt { .. })) => match stale {
            // An answer to the code that ended: say why it is void; nothing is counted.
            Some(reason) => {
                out.push(Output::Send(refusal(reason, 0, None)));
                State::Idle {
                    stale,
                    until: now + setup.step_timeout,
                }
            }
            None => close(
                out,
                Some(unexpected(
                    "no pairing request is pending: send pair_request first".into(),
                )),
            ),
        },
        (State::Idle { until, stale }, Input::Deadline) => {
            if now >= until {
                close(out, Some(timed_out()))
            } else {
                State::Idle { stale, until }
            }
        }

        // ---- asking for a code ----
        (State::Admitting { name }, Input::Admitted(Ok(issued))) => {
            let held = Held {
                request_id: issued.request_id,
                name,
                code: issued.code,
                expires_at: now + setup.code_ttl,
                attempts_left: setup.max_attempts,
                cancelled: None,
            };
            out.push(Output::Event(ServerEvent::PairRequest {
                request_id: held.request_id,
                client_name: held.name.clone(),
                client_addr: setup.peer,
                client_id: setup.client_id,
                client_short: setup.client_id.short(),
                code: held.code.digits().to_string(),
                expires_in_s: setup.code_ttl.as_secs(),
                attempts_left: held.attempts_left,
            }));
            out.push(Output::Send(Message::PairChallenge {
                server_name: setup.server_name.clone(),
                code_digits: crate::pairing::CODE_DIGITS as u8,
                expires_in_s: setup.code_ttl.as_secs(),
                attempts_left: held.attempts_left,
            }));
            State::Pending(held)
        }
        (State::Admitting { name }, Input::Admitted(Err((reason, wait)))) => {
            // Every refusal ends the connection, so asking again never earns it a fresh
            // timeout.
            out.push(failed(setup, &name, None, reason, 0));
            close(out, Some(refusal(reason, 0, wait)))
        }

        // ---- a code pending ----
        (State::Pending(held), Input::Message(Message::PairRequest { .. })) => {
            // The code goes with the connection; asking again on it is refused like any
            // second request from the address.
            let left = held.attempts_left;
            out.push(Output::Send(refusal(
                PairFailure::AlreadyPending,
                left,
                None,
            )));
            end(out, PairClosedReason::Cancelled)
        }
        (State::Pending(held), Input::Message(Message::PairAttempt { pake })) => {
            out.push(Output::Check(Check::BeginAttempt(held.request_id)));
            State::Reserving {
                held,
                pake: pake.0,
                retry_at: now,
                give_up: now + BUSY_GIVE_UP,
            }
        }
        (State::Pending(held), Input::Deadline) => State::Pending(held),
        (State::Pending(_) | State::Reserving { .. }, Input::Cancelled(why)) => cancel(out, why),

        // ---- an answer waiting for a budget unit ----
        (State::Reserving { held, pake, .. }, Input::AttemptChecked(Ok(()))) => {
            // From here the attempt holds a unit; every path below settles it.
            match server_respond(&setup.binding, &held.code, &pake) {
                // A malformed SPAKE2 message counts as a wrong answer, so it buys nothing.
                Err(_) => settle(out, held, Then::Wrong, now),
                Ok((confirmation, msg_b)) => {
                    out.push(Output::Send(Message::PairPake { pake: B64(msg_b) }));
                    State::Confirming {
                        held,
                        confirmation: Confirmed(Box::new(confirmation)),
                        until: now + setup.confirm_timeout(),
                    }
                }
            }
        }
        (State::Reserving { held, .. }, Input::AttemptChecked(Err(NotNow::Refused(r)))) => {
            refuse_attempt(setup, out, &held, r)
        }
        (
            State::Reserving {
                held,
                pake,
                give_up,
                ..
            },
            Input::AttemptChecked(Err(NotNow::Busy)),
        ) => {
            if now >= held.expires_at {
                expire_answered(setup, held, now, out)
            } else if now >= give_up {
                refuse_attempt(
                    setup,
                    out,
                    &held,
                    (PairFailure::RateLimited, Some(BUSY_WAIT)),
                )
            } else {
                State::Reserving {
                    held,
                    pake,
                    retry_at: now + BUSY_RETRY,
                    give_up,
                }
            }
        }
        (
            State::Reserving {
                held,
                pake,
                retry_at,
                give_up,
            },
            Input::Deadline,
        ) => {
            if now >= retry_at {
                out.push(Output::Check(Check::BeginAttempt(held.request_id)));
            }
            State::Reserving {
                held,
                pake,
                retry_at,
                give_up,
            }
        }

        // ---- an answer being checked ----
        (
            State::Confirming {
                held, confirmation, ..
            },
            Input::Message(Message::PairConfirm { mac }),
        ) => {
            let then = if confirmation.0.verify_client(&mac.0) {
                Then::Right(confirmation)
            } else {
                Then::Wrong
            };
            settle(out, held, then, now)
        }
        (State::Confirming { held, .. }, Input::Message(other)) => {
            out.push(Output::Send(unexpected(format!(
                "expected pair_confirm, got {}",
                other.kind()
            ))));
            // Stalling or breaking off must not be free: counted as a wrong answer.
            settle(out, held, Then::Abandoned, now)
        }
        (
            State::Confirming {
                held,
                confirmation,
                until,
            },
            Input::Deadline,
        ) => {
            if now >= until {
                out.push(Output::Send(timed_out()));
                settle(out, held, Then::Abandoned, now)
            } else {
                State::Confirming {
                    held,
                    confirmation,
                    until,
                }
            }
        }
        (State::Confirming { held, .. }, Input::PeerGone) => {
            settle(out, held, Then::Abandoned, now)
        }
        (
            State::Confirming {
                mut held,
                confirmation,
                until,
            },
            Input::Cancelled(why),
        ) => {
            // The answer being checked finishes first: the unit it holds must be settled.
            held.cancelled = Some(why);
            State::Confirming {
                held,
                confirmation,
                until,
            }
        }
        (State::Settling { mut held, then }, Input::Cancelled(why)) => {
            held.cancelled = Some(why);
            State::Settling { held, then }
        }
        (State::Settling { held, then }, Input::Settled(settled)) => {
            settled_answer(setup, out, held, then, settled, now)
        }

        // ---- anything else ----
        (State::Idle { .. }, Input::Message(other)) => close(
            out,
            Some(unexpected(format!(
                "{} is not valid while pairing",
                other.kind()
            ))),
        ),
        (State::Pending(_), Input::Message(other)) => {
            out.push(Output::Send(unexpected(format!(
                "{} is not valid while pairing",
                other.kind()
            ))));
            end(out, PairClosedReason::Cancelled)
        }
        (State::Pending(_) | State::Reserving { .. }, Input::PeerGone) => {
            end(out, PairClosedReason::Cancelled)
        }
        (State::Idle { .. } | State::Admitting { .. }, Input::PeerGone) => close(out, None),
        (State::Paired, _) => State::Paired,
        (State::Closed, _) => State::Closed,
        // Inputs that cannot happen in a state (a guard answer nobody asked for, a
        // cancellation with no code held) change nothing.
        (state, _) => state,
    }
}

fn close(out: &mut Vec<Output>, last: Option<Message>) -> State {
    if let Some(m) = last {
        out.push(Output::Send(m));
    }
    out.push(Output::Close);
    State::Closed
}

/// The held request ends with the connection.
fn end(out: &mut Vec<Output>, reason: PairClosedReason) -> State {
    out.push(Output::Ended(reason));
    close(out, None)
}

/// Displaced, or pairing closed: say so, and end the connection.
fn cancel(out: &mut Vec<Output>, why: Cancel) -> State {
    out.push(Output::Ended(match why.reason {
        PairFailure::Displaced => PairClosedReason::Displaced,
        _ => PairClosedReason::PairingClosed,
    }));
    close(out, Some(refusal(why.reason, 0, why.retry_after)))
}

fn failed(
    setup: &Setup,
    name: &str,
    request_id: Option<u64>,
    reason: PairFailure,
    attempts_left: u32,
) -> Output {
    Output::Event(ServerEvent::PairFailed {
        request_id,
        client_name: name.to_string(),
        client_addr: setup.peer,
        client_id: setup.client_id,
        reason,
        attempts_left,
    })
}

/// The guard would not let an answer be checked (pairing closed, the address backing off,
/// or no budget unit came free): refuse it and end the connection. Nothing was counted.
fn refuse_attempt(
    setup: &Setup,
    out: &mut Vec<Output>,
    held: &Held,
    (reason, wait): Refusal,
) -> State {
    let left = held.attempts_left;
    out.push(failed(
        setup,
        &held.name,
        Some(held.request_id),
        reason,
        left,
    ));
    out.push(Output::Send(refusal(reason, left, wait)));
    end(out, PairClosedReason::Cancelled)
}

/// The code ran out while waiting for an answer. Only the operator is told now; the client
/// learns it when it answers, which keeps the exchange strictly request/response.
fn expire(setup: &Setup, held: Held, now: Instant, out: &mut Vec<Output>) -> State {
    out.push(failed(
        setup,
        &held.name,
        Some(held.request_id),
        PairFailure::CodeExpired,
        0,
    ));
    out.push(Output::Ended(PairClosedReason::Expired));
    State::Idle {
        stale: Some(PairFailure::CodeExpired),
        until: now + setup.step_timeout,
    }
}

/// An answer arrived for a code that had run out: the code is void and the client is told.
fn expire_answered(setup: &Setup, held: Held, now: Instant, out: &mut Vec<Output>) -> State {
    let idle = expire(setup, held, now, out);
    out.push(Output::Send(refusal(PairFailure::CodeExpired, 0, None)));
    idle
}

/// Settle the unit an answer holds; an answer that came after the code expired is void,
/// whatever it was (unless it was abandoned: stalling is never free).
fn settle(out: &mut Vec<Output>, held: Held, then: Then, now: Instant) -> State {
    let then = match then {
        Then::Right(_) | Then::Wrong if now >= held.expires_at => Then::Expired,
        then => then,
    };
    out.push(Output::Check(Check::Settle(
        held.request_id,
        then.outcome(),
    )));
    State::Settling { held, then }
}

fn settled_answer(
    setup: &Setup,
    out: &mut Vec<Output>,
    mut held: Held,
    then: Then,
    settled: Settled,
    now: Instant,
) -> State {
    match then {
        Then::Right(confirmation) => {
            out.push(Output::Pair {
                request_id: held.request_id,
                name: held.name,
                confirmation,
            });
            State::Paired
        }
        Then::Expired => expire_answered(setup, held, now, out),
        Then::Abandoned => {
            out.extend(settled.change.map(Output::Gate));
            end(out, PairClosedReason::Cancelled)
        }
        Then::Wrong => {
            held.attempts_left = held.attempts_left.saturating_sub(1);
            let left = held.attempts_left;
            let reason = if left == 0 {
                PairFailure::CodeExhausted
            } else {
                PairFailure::WrongCode
            };
            out.push(failed(
                setup,
                &held.name,
                Some(held.request_id),
                reason,
                left,
            ));
            out.extend(settled.change.map(Output::Gate));
            out.push(Output::Send(refusal(reason, left, Some(settled.wait))));
            if left == 0 {
                out.push(Output::Ended(PairClosedReason::Exhausted));
                return State::Idle {
                    stale: Some(PairFailure::CodeExhausted),
                    until: now + setup.step_timeout,
                };
            }
            match held.cancelled.take() {
                Some(why) => cancel(out, why),
                None => State::Pending(held),
            }
        }
    }
}

#[cfg(test)]
mod tests;
