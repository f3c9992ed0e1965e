//! Limits on pairing that hold across connections and addresses: whether pairing is open at
//! all ([`gate`]), the server-wide failure budget ([`budget`]), the pending requests and who
//! makes room when they are full ([`pending`]), and what is remembered per address and per
//! prefix ([`sources`]).
//!
//! Pure bookkeeping with the clock passed in: no sockets, no sleeps. The connection handler
//! asks it before acting, and reports the [`GateChange`]s it returns. Attempts per code live
//! with the code, in the connection that requested it.

pub mod budget;
pub mod gate;
pub mod pending;
pub mod sources;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use budget::{BudgetPolicy, Outcome};
pub use gate::{ClosedReason, GateChange, OpenedBy, PairingMode};
pub use pending::Cancel;

use crate::message::PairFailure;
use crate::pairing::Code;

/// Limits on pairing. Every field is configurable; the defaults are the documented ones.
#[derive(Debug, Clone)]
pub struct PairingPolicy {
    /// How requests are accepted: always, or only in a window the operator opens.
    pub mode: PairingMode,
    /// How long a window stays open when the operator does not say.
    pub open_for: Duration,
    /// How long a code is valid.
    pub code_ttl: Duration,
    /// Wrong answers allowed per code; the code is void after the last.
    pub max_attempts: u32,
    /// Pending requests allowed from one address.
    pub max_pending_per_addr: usize,
    /// Pending requests allowed in total; when full, a newcomer may displace one (see
    /// [`pending::PendingTable::victim`]).
    pub max_pending_total: usize,
    /// A request pending for less than this is never displaced, which also caps how fast
    /// codes can be churned through a full table.
    pub min_pending_age: Duration,
    /// Delay after the first failure from an address; doubles with each further failure.
    pub backoff_base: Duration,
    /// Upper bound of that delay.
    pub backoff_max: Duration,
    /// Codes issued and failures are forgotten after this long without a new one.
    pub failure_memory: Duration,
    /// Wrong answers the whole server accepts before pairing closes.
    pub budget: BudgetPolicy,
    /// Addresses (and prefixes) remembered at most.
    pub max_sources: usize,
}

impl Default for PairingPolicy {
    fn default() -> Self {
        Self {
            mode: PairingMode::Request,
            open_for: Duration::from_secs(120),
            code_ttl: Duration::from_secs(120),
            max_attempts: 5,
            max_pending_per_addr: 1,
            max_pending_total: 64,
            min_pending_age: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            failure_memory: Duration::from_secs(900),
            budget: BudgetPolicy::default(),
            max_sources: 16_384,
        }
    }
}

/// A refusal: the reason and how long to wait, if waiting helps.
pub type Refusal = (PairFailure, Option<Duration>);

/// Why an answer cannot be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNow {
    /// Refused: tell the client.
    Refused(Refusal),
    /// Every unit of the failure budget left is held by answers being checked right now;
    /// one may come back in a moment.
    Busy,
}

/// A request let in.
#[derive(Debug)]
pub struct Admission {
    /// Fires when the request is displaced or pairing closes.
    pub cancelled: oneshot::Receiver<Cancel>,
    /// The request that made room for this one.
    pub displaced: Option<u64>,
    /// The code the operator drew ahead of any request ([`Guard::draw_ahead`]), when one
    /// was waiting: this request takes it, once.
    pub ahead: Option<Code>,
}

/// What settling an answer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// How long the address must now wait (zero after a right answer).
    pub wait: Duration,
    /// Pairing closed because this answer spent the budget.
    pub change: Option<GateChange>,
}

/// What the operator is shown about pairing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingStatus {
    /// The mode.
    pub mode: PairingMode,
    /// Whether requests are accepted now.
    pub open: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<ClosedReason>,
    /// Seconds until an open window closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes_in_s: Option<u64>,
    /// Seconds until a closure ends by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopens_in_s: Option<u64>,
    /// Wrong answers counted against the budget now.
    pub failures: u32,
    /// The budget.
    pub budget: u32,
    /// The window the budget counts in, seconds.
    pub budget_window_s: u64,
    /// Closures counted towards the next cool-off.
    pub closures: u32,
    /// Pending requests now.
    pub pending: usize,
    /// Addresses remembered now (codes issued, failures); at most `max_sources`.
    pub remembered_addresses: usize,
    /// Network prefixes remembered now; at most `max_sources`.
    pub remembered_prefixes: usize,
}

/// Whole seconds, rounded up, so "0 s left" means none.
pub(crate) fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Shared pairing bookkeeping.
#[derive(Debug)]
pub struct Guard {
    policy: PairingPolicy,
    gate: gate::Gate,
    budget: budget::Budget,
    sources: sources::Sources,
    pending: pending::PendingTable,
    /// A code drawn ahead of any request, and when it expires unused.
    ahead: Option<(Code, Instant)>,
}

impl Guard {
    /// Bookkeeping under `policy`.
    pub fn new(policy: PairingPolicy) -> Self {
        Self {
            gate: gate::Gate::new(policy.mode),
            budget: budget::Budget::default(),
            sources: sources::Sources::new(policy.max_sources, policy.failure_memory),
            pending: pending::PendingTable::default(),
            ahead: None,
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &PairingPolicy {
        &self.policy
    }

    fn closed_refusal(&mut self, now: Instant) -> Option<Refusal> {
        self.gate
            .check(now)
            .err()
            .map(|reopens| (PairFailure::PairingClosed, reopens))
    }

    /// Admit request `request_id` from `ip`, reserving a pending slot; when the table is full,
    /// a request from an address that stands strictly higher is displaced to make room.
    pub fn admit(
        &mut self,
        ip: IpAddr,
        request_id: u64,
        now: Instant,
    ) -> Result<Admission, Refusal> {
        if let Some(refusal) = self.closed_refusal(now) {
            return Err(refusal);
        }
        if let Some(wait) = self.sources.blocked(ip, now) {
            return Err((PairFailure::RateLimited, Some(wait)));
        }
        if self.pending.from_addr(ip) >= self.policy.max_pending_per_addr.max(1) {
            return Err((PairFailure::AlreadyPending, None));
        }
        let mut displaced = None;
        if self.pending.len() >= self.policy.max_pending_total.max(1) {
            let newcomer = self.sources.standing(ip, now);
            let sources = &mut self.sources;
            let min_age = self.policy.min_pending_age;
            match self
                .pending
                .victim(newcomer, min_age, now, |a| sources.standing(a, now))
            {
                Some(victim) => {
                    self.pending.cancel(
                        victim,
                        Cancel {
                            reason: PairFailure::Displaced,
                            retry_after: None,
                        },
                    );
                    displaced = Some(victim);
                }
                None => {
                    // Room comes when a code expires, or when one becomes old enough to go.
                    let wait = self
                        .pending
                        .first_expiry(now)
                        .unwrap_or_default()
                        .min(min_age)
                        .max(Duration::from_secs(1));
                    return Err((PairFailure::TooManyPending, Some(wait)));
                }
            }
        }
        self.sources.issued(ip, now);
        let cancelled = self
            .pending
            .insert(request_id, ip, now, self.policy.code_ttl);
        let ahead = self
            .ahead
            .take()
            .filter(|(_, expires)| now < *expires)
            .map(|(code, _)| code);
        Ok(Admission {
            cancelled,
            displaced,
            ahead,
        })
    }

    /// The operator draws a code before any request, as adb's "pair with code" shows one:
    /// the person types it on the client (`client-tui pair --code`) before the request
    /// exists. The next request admitted within the code's lifetime gets it instead of a
    /// fresh one, with the same attempts and budget as any code; it replaces one drawn
    /// before, and closing pairing drops it. Returns the code and its lifetime.
    pub fn draw_ahead(&mut self, now: Instant) -> (Code, Duration) {
        let code = Code::generate();
        self.ahead = Some((code.clone(), now + self.policy.code_ttl));
        (code, self.policy.code_ttl)
    }

    /// How long the code drawn ahead still waits for a request, if one does.
    pub fn ahead_left(&self, now: Instant) -> Option<Duration> {
        self.ahead
            .as_ref()
            .and_then(|(_, expires)| expires.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Release the slot of a request that ended (no-op when it was cancelled).
    pub fn release(&mut self, request_id: u64) {
        self.pending.remove(request_id);
    }

    /// Before checking an answer to `request_id` from `ip`: pairing must be open, the address
    /// not backing off, and a unit of the failure budget free (it is reserved).
    pub fn begin_attempt(
        &mut self,
        request_id: u64,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), NotNow> {
        if let Some(refusal) = self.closed_refusal(now) {
            return Err(NotNow::Refused(refusal));
        }
        if let Some(wait) = self.sources.blocked(ip, now) {
            return Err(NotNow::Refused((PairFailure::RateLimited, Some(wait))));
        }
        if !self.budget.reserve(&self.policy.budget, now) {
            return Err(NotNow::Busy);
        }
        self.pending.set_busy(request_id, true);
        Ok(())
    }

    /// After checking an answer that [`Guard::begin_attempt`] let through.
    pub fn finish_attempt(
        &mut self,
        request_id: u64,
        ip: IpAddr,
        outcome: Outcome,
        now: Instant,
    ) -> Settled {
        self.pending.set_busy(request_id, false);
        let spent = self.budget.settle(&self.policy.budget, outcome, now);
        let wait = match outcome {
            Outcome::Wrong => {
                self.sources
                    .failed(ip, self.policy.backoff_base, self.policy.backoff_max, now)
            }
            Outcome::Right => {
                self.sources.succeeded(ip, now);
                Duration::ZERO
            }
            Outcome::Void => Duration::ZERO,
        };
        let change = if spent {
            let cooloff = self.budget.trip(&self.policy.budget, now);
            self.close_with(ClosedReason::Budget, Some(cooloff), now)
        } else {
            None
        };
        Settled { wait, change }
    }

    fn close_with(
        &mut self,
        reason: ClosedReason,
        cooloff: Option<Duration>,
        now: Instant,
    ) -> Option<GateChange> {
        let change = self.gate.close(reason, cooloff, now);
        self.ahead = None;
        self.pending.cancel_all(Cancel {
            reason: PairFailure::PairingClosed,
            retry_after: cooloff,
        });
        change
    }

    /// A pairing succeeded and was saved: a window closes behind it.
    pub fn paired(&mut self, now: Instant) -> Option<GateChange> {
        let change = self.gate.paired(now);
        if change.is_some() {
            self.ahead = None;
            self.pending.cancel_all(Cancel {
                reason: PairFailure::PairingClosed,
                retry_after: None,
            });
        }
        change
    }

    /// Apply deadlines that passed (a window's end, a cool-off's end).
    pub fn tick(&mut self, now: Instant) -> Option<GateChange> {
        let change = self.gate.tick(now);
        if let Some(GateChange::Closed { .. }) = change {
            self.ahead = None;
            self.pending.cancel_all(Cancel {
                reason: PairFailure::PairingClosed,
                retry_after: None,
            });
        }
        if let Some(GateChange::Opened { .. }) = change {
            self.budget.reset();
        }
        change
    }

    /// The operator opens pairing (a window of `window`, or the policy's `open_for`, in window
    /// mode). The budget starts afresh; the closures counted stay.
    pub fn open(&mut self, window: Option<Duration>, now: Instant) -> GateChange {
        self.budget.reset();
        self.gate.open(window.unwrap_or(self.policy.open_for), now)
    }

    /// The operator closes pairing until it is opened again.
    pub fn close(&mut self, now: Instant) -> Option<GateChange> {
        self.close_with(ClosedReason::Operator, None, now)
    }

    /// The operator's view of pairing.
    pub fn status(&mut self, now: Instant) -> PairingStatus {
        self.gate.tick(now);
        let view = self.gate.view(now);
        PairingStatus {
            mode: self.gate.mode(),
            open: view.open,
            reason: view.reason,
            closes_in_s: view.closes_in.map(secs_up),
            reopens_in_s: view.reopens_in.map(secs_up),
            failures: self.budget.failures(&self.policy.budget, now),
            budget: self.policy.budget.failures,
            budget_window_s: self.policy.budget.window.as_secs(),
            closures: self.budget.level(),
            pending: self.pending.len(),
            remembered_addresses: self.sources.len().0,
            remembered_prefixes: self.sources.len().1,
        }
    }

    /// Pending requests in total.
    pub fn pending_total(&self) -> usize {
        self.pending.len()
    }

    /// Addresses and prefixes remembered now.
    pub fn sources_len(&self) -> (usize, usize) {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ip(a: u8, b: u8) -> IpAddr {
        IpAddr::from([10, 0, a, b])
    }

    fn guard(policy: PairingPolicy) -> Guard {
        Guard::new(policy)
    }

    #[test]
    fn a_code_drawn_ahead_goes_to_the_next_request_once_while_it_lives() {
        let mut g = guard(PairingPolicy::default());
        let t = Instant::now();
        let (code, ttl) = g.draw_ahead(t);
        assert_eq!(ttl, g.policy().code_ttl);
        assert_eq!(g.ahead_left(t), Some(ttl));
        let first = g.admit(ip(0, 1), 1, t + S).unwrap();
        assert_eq!(first.ahead, Some(code));
        assert_eq!(g.ahead_left(t + S), None);
        // Used once: the next request gets none (the caller draws a fresh one).
        assert_eq!(g.admit(ip(0, 2), 2, t + S).unwrap().ahead, None);

        // Expired unused: nobody gets it.
        let (_, ttl) = g.draw_ahead(t);
        assert_eq!(g.admit(ip(0, 3), 3, t + ttl).unwrap().ahead, None);

        // A second draw replaces the first; closing pairing drops it.
        let (_, _) = g.draw_ahead(t);
        let (second, _) = g.draw_ahead(t);
        assert_eq!(g.admit(ip(0, 4), 4, t).unwrap().ahead, Some(second));
        g.draw_ahead(t);
        g.close(t);
        assert_eq!(g.ahead_left(t), None);
    }

    #[test]
    fn one_pending_per_address_and_release() {
        let mut g = guard(PairingPolicy::default());
        let t = Instant::now();
        let _a = g.admit(ip(0, 1), 1, t).unwrap();
        assert_eq!(
            g.admit(ip(0, 1), 2, t).unwrap_err(),
            (PairFailure::AlreadyPending, None)
        );
        let _b = g.admit(ip(0, 2), 3, t).unwrap();
        g.release(1);
        let _c = g.admit(ip(0, 1), 4, t).unwrap();
        assert_eq!(g.pending_total(), 2);
    }

    #[test]
    fn a_full_table_of_equals_refuses_with_the_first_expiry() {
        let mut g = guard(PairingPolicy {
            max_pending_total: 2,
            ..PairingPolicy::default()
        });
        let t = Instant::now();
        // Two addresses that were each issued a code before, holding one now.
        for (n, b) in [(1, 1u8), (2, 2)] {
            g.sources.issued(ip(0, b), t);
            let _ = g.admit(ip(0, b), n, t).unwrap();
        }
        // A third with the same history waits for the first code to expire.
        g.sources.issued(ip(0, 3), t);
        g.sources.issued(ip(0, 3), t);
        let refused = g.admit(ip(0, 3), 3, t + 20 * S).unwrap_err();
        assert_eq!(refused, (PairFailure::TooManyPending, Some(5 * S)));
    }

    #[test]
    fn a_newcomer_displaces_a_hoarder_that_was_issued_more_codes() {
        let mut g = guard(PairingPolicy {
            max_pending_total: 3,
            ..PairingPolicy::default()
        });
        let t = Instant::now();
        // A hoarder holds the table from three addresses, each asking again and again.
        let mut held = Vec::new();
        for b in 1..=3u8 {
            for _ in 0..4 {
                g.sources.issued(ip(9, b), t);
            }
            held.push(g.admit(ip(9, b), u64::from(b), t).unwrap());
        }
        // A client from the same /24 that never asked before gets in.
        // Not before the hoarder's requests are a few seconds old, though.
        assert_eq!(
            g.admit(ip(9, 200), 10, t + S).unwrap_err().0,
            PairFailure::TooManyPending
        );
        let honest = g.admit(ip(9, 200), 10, t + 6 * S).unwrap();
        assert_eq!(honest.displaced, Some(1), "the oldest of the busiest goes");
        assert_eq!(
            held[0].cancelled.try_recv(),
            Ok(Cancel {
                reason: PairFailure::Displaced,
                retry_after: None
            })
        );
        // The hoarder asks again from its addresses: it cannot push the newcomer out.
        for b in 1..=3u8 {
            let r = g.admit(ip(9, b), 20 + u64::from(b), t + 20 * S);
            if let Ok(a) = &r {
                assert_ne!(a.displaced, Some(10));
            }
        }
        let mut honest = honest;
        assert!(honest.cancelled.try_recv().is_err(), "still pending");
    }

    #[test]
    fn another_prefix_outranks_a_busy_one() {
        let mut g = guard(PairingPolicy {
            max_pending_total: 2,
            ..PairingPolicy::default()
        });
        let t = Instant::now();
        // Fresh addresses, one code each, but all from one /24.
        for b in 1..=50u8 {
            g.sources.issued(ip(7, b), t);
        }
        let _x = g.admit(ip(7, 100), 1, t).unwrap();
        let _y = g.admit(ip(7, 101), 2, t).unwrap();
        // A fresh address of the same /24 shares the prefix's count, and stands lower by its
        // own: (52, 0) < (52, 1).
        let same = g.admit(ip(7, 102), 3, t + 5 * S).unwrap();
        assert!(same.displaced.is_some());
        // A client from a quiet prefix displaces too.
        let other = g.admit(ip(8, 1), 4, t + 5 * S).unwrap();
        assert!(other.displaced.is_some());
    }

    #[test]
    fn the_budget_closes_pairing_cancels_pending_and_reopens_after_the_cooloff() {
        let mut g = guard(PairingPolicy {
            budget: BudgetPolicy {
                failures: 3,
                window: 600 * S,
                cooloff: 60 * S,
                cooloff_max: 3600 * S,
            },
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
            ..PairingPolicy::default()
        });
        let t = Instant::now();
        let mut waiting = g.admit(ip(1, 1), 100, t).unwrap();
        let mut change = None;
        for n in 0..3u8 {
            let at = t + S * u32::from(n);
            let _ = g.admit(ip(2, n), u64::from(n), at).unwrap();
            g.begin_attempt(u64::from(n), ip(2, n), at).unwrap();
            change = g
                .finish_attempt(u64::from(n), ip(2, n), Outcome::Wrong, at)
                .change;
        }
        assert_eq!(
            change,
            Some(GateChange::Closed {
                reason: ClosedReason::Budget,
                reopens_in: Some(60 * S)
            })
        );
        assert_eq!(
            waiting.cancelled.try_recv().map(|c| c.reason),
            Ok(PairFailure::PairingClosed)
        );
        assert_eq!(g.pending_total(), 0);
        let at = t + 10 * S;
        assert_eq!(
            g.admit(ip(3, 3), 50, at).unwrap_err(),
            (PairFailure::PairingClosed, Some(52 * S))
        );
        let status = g.status(at);
        assert!(!status.open);
        assert_eq!(status.reason, Some(ClosedReason::Budget));
        assert_eq!(status.closures, 1);
        // After the cool-off, requests are taken again and the budget starts afresh.
        assert!(matches!(
            g.tick(t + 62 * S),
            Some(GateChange::Opened {
                by: OpenedBy::Cooloff,
                ..
            })
        ));
        assert!(g.admit(ip(3, 3), 51, t + 62 * S).is_ok());
        assert_eq!(g.status(t + 62 * S).failures, 0);
    }

    #[test]
    fn answers_in_flight_cannot_overspend_the_budget() {
        let mut g = guard(PairingPolicy {
            budget: BudgetPolicy {
                failures: 2,
                ..BudgetPolicy::default()
            },
            ..PairingPolicy::default()
        });
        let t = Instant::now();
        for n in 0..3u8 {
            let _ = g.admit(ip(4, n), u64::from(n), t).unwrap();
        }
        g.begin_attempt(0, ip(4, 0), t).unwrap();
        g.begin_attempt(1, ip(4, 1), t).unwrap();
        assert_eq!(g.begin_attempt(2, ip(4, 2), t).unwrap_err(), NotNow::Busy);
        // A right answer gives its unit back.
        assert_eq!(
            g.finish_attempt(0, ip(4, 0), Outcome::Right, t).change,
            None
        );
        g.begin_attempt(2, ip(4, 2), t).unwrap();
    }

    #[test]
    fn window_mode_refuses_until_opened_and_closes_after_one_pairing() {
        let mut g = guard(PairingPolicy {
            mode: PairingMode::Window,
            ..PairingPolicy::default()
        });
        let t = Instant::now();
        assert_eq!(
            g.admit(ip(5, 1), 1, t).unwrap_err(),
            (PairFailure::PairingClosed, None)
        );
        g.open(Some(30 * S), t);
        let _a = g.admit(ip(5, 1), 2, t).unwrap();
        let mut b = g.admit(ip(5, 2), 3, t).unwrap();
        g.begin_attempt(2, ip(5, 1), t).unwrap();
        g.finish_attempt(2, ip(5, 1), Outcome::Right, t);
        assert!(g.paired(t).is_some());
        // The other request waiting in the window is told it closed.
        assert_eq!(
            b.cancelled.try_recv().map(|c| c.reason),
            Ok(PairFailure::PairingClosed)
        );
        assert_eq!(
            g.admit(ip(5, 3), 4, t).unwrap_err().0,
            PairFailure::PairingClosed
        );
        // Opened again, it expires by itself.
        g.open(None, t + S);
        assert_eq!(g.status(t + S).closes_in_s, Some(120));
        assert!(matches!(
            g.tick(t + 122 * S),
            Some(GateChange::Closed {
                reason: ClosedReason::WindowExpired,
                ..
            })
        ));
    }

    #[test]
    fn the_operator_closes_and_reopens() {
        let mut g = guard(PairingPolicy::default());
        let t = Instant::now();
        let mut a = g.admit(ip(6, 1), 1, t).unwrap();
        assert!(g.close(t).is_some());
        assert_eq!(
            a.cancelled.try_recv().map(|c| c.reason),
            Ok(PairFailure::PairingClosed)
        );
        assert_eq!(
            g.admit(ip(6, 1), 2, t).unwrap_err(),
            (PairFailure::PairingClosed, None)
        );
        g.open(None, t);
        assert!(g.admit(ip(6, 1), 3, t).is_ok());
    }

    #[test]
    fn backoff_per_address_refuses_requests_and_attempts() {
        let mut g = guard(PairingPolicy::default());
        let t = Instant::now();
        let _a = g.admit(ip(0, 1), 1, t).unwrap();
        g.begin_attempt(1, ip(0, 1), t).unwrap();
        let s = g.finish_attempt(1, ip(0, 1), Outcome::Wrong, t);
        assert_eq!(s.wait, S);
        assert_eq!(
            g.begin_attempt(1, ip(0, 1), t).unwrap_err(),
            NotNow::Refused((PairFailure::RateLimited, Some(S)))
        );
        g.release(1);
        assert_eq!(
            g.admit(ip(0, 1), 2, t).unwrap_err().0,
            PairFailure::RateLimited
        );
        assert!(g.admit(ip(0, 1), 2, t + 2 * S).is_ok());
    }
}
