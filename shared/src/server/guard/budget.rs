//! The server-wide failure budget: how many wrong answers to pairing codes the whole server
//! accepts, across every address and every code, before pairing closes.
//!
//! Owns the count of recent wrong answers, the answers in flight, and how long each closure
//! lasts. It knows nothing of addresses or connections; the clock is passed in.
//!
//! An attempt *reserves* one unit before it is checked and *settles* it afterwards, so the
//! number of wrong answers can never pass the budget, however many attempts run at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Limits of the failure budget. `Default` gives the documented defaults (see SECURITY.md for
/// why they keep the expected time to pair blind above 10 years).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetPolicy {
    /// Wrong answers allowed within `window`; the last one closes pairing.
    pub failures: u32,
    /// The sliding window the failures are counted in.
    pub window: Duration,
    /// How long pairing stays closed the first time the budget is spent; each further
    /// closure doubles it.
    pub cooloff: Duration,
    /// The longest closure.
    pub cooloff_max: Duration,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            failures: 20,
            window: Duration::from_secs(24 * 3600),
            cooloff: Duration::from_secs(15 * 60),
            cooloff_max: Duration::from_secs(24 * 3600),
        }
    }
}

/// How an attempt that reserved a unit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The code was right: the unit goes back.
    Right,
    /// The code was wrong (or the attempt was abandoned half-way): the unit is spent.
    Wrong,
    /// The attempt told the peer nothing (the code had expired): the unit goes back.
    Void,
}

/// The budget's state.
#[derive(Debug, Default)]
pub struct Budget {
    /// When each counted wrong answer happened, oldest first; never longer than the budget.
    failures: VecDeque<Instant>,
    /// Attempts that reserved a unit and have not settled.
    reserved: u32,
    /// Closures so far, less one for each `cooloff_max` that passed without one.
    level: u32,
    last_trip: Option<Instant>,
}

impl Budget {
    fn prune(&mut self, policy: &BudgetPolicy, now: Instant) {
        while let Some(&t) = self.failures.front() {
            if now.saturating_duration_since(t) >= policy.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
    }

    /// Wrong answers counted in the window now.
    pub fn failures(&mut self, policy: &BudgetPolicy, now: Instant) -> u32 {
        self.prune(policy, now);
        self.failures.len() as u32
    }

    /// Take one unit for an attempt about to be checked; `false` when none is left (every
    /// remaining unit is held by attempts in flight).
    pub fn reserve(&mut self, policy: &BudgetPolicy, now: Instant) -> bool {
        self.prune(policy, now);
        if (self.failures.len() as u64) + u64::from(self.reserved) >= u64::from(policy.failures) {
            return false;
        }
        self.reserved += 1;
        true
    }

    /// Settle a reserved unit. Returns `true` when this answer spent the budget, i.e. pairing
    /// must close now.
    pub fn settle(&mut self, policy: &BudgetPolicy, outcome: Outcome, now: Instant) -> bool {
        self.reserved = self.reserved.saturating_sub(1);
        if outcome != Outcome::Wrong {
            return false;
        }
        self.prune(policy, now);
        self.failures.push_back(now);
        // A budget of 0 would never admit an attempt, so this cannot grow past `failures`.
        self.failures.len() as u64 >= u64::from(policy.failures)
    }

    /// The budget was spent: start counting afresh, and return how long pairing stays closed.
    pub fn trip(&mut self, policy: &BudgetPolicy, now: Instant) -> Duration {
        if let Some(last) = self.last_trip
            && !policy.cooloff_max.is_zero()
        {
            // One level is forgiven for each full `cooloff_max` without a closure.
            let quiet =
                now.saturating_duration_since(last).as_secs() / policy.cooloff_max.as_secs().max(1);
            self.level = self
                .level
                .saturating_sub(u32::try_from(quiet).unwrap_or(u32::MAX));
        }
        let factor = 1u32.checked_shl(self.level).unwrap_or(u32::MAX);
        let closed_for = policy
            .cooloff
            .checked_mul(factor)
            .unwrap_or(policy.cooloff_max)
            .min(policy.cooloff_max);
        self.level = self.level.saturating_add(1);
        self.last_trip = Some(now);
        self.failures.clear();
        closed_for
    }

    /// Forget the counted failures (the operator reopened pairing). The closure level stays,
    /// so the next closure is still longer than the last.
    pub fn reset(&mut self) {
        self.failures.clear();
    }

    /// Closures counted towards the next cool-off.
    pub fn level(&self) -> u32 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BudgetPolicy {
        BudgetPolicy {
            failures: 3,
            window: Duration::from_secs(60),
            cooloff: Duration::from_secs(10),
            cooloff_max: Duration::from_secs(100),
        }
    }

    #[test]
    fn reservations_never_let_wrong_answers_pass_the_budget() {
        let p = policy();
        let mut b = Budget::default();
        let t = Instant::now();
        // Three attempts in flight at once take every unit; a fourth is refused.
        assert!(b.reserve(&p, t));
        assert!(b.reserve(&p, t));
        assert!(b.reserve(&p, t));
        assert!(!b.reserve(&p, t));
        assert!(!b.settle(&p, Outcome::Wrong, t));
        assert!(!b.settle(&p, Outcome::Void, t));
        // A void answer gave its unit back.
        assert!(b.reserve(&p, t));
        assert!(!b.settle(&p, Outcome::Wrong, t));
        assert!(
            b.settle(&p, Outcome::Wrong, t),
            "the third wrong answer spends it"
        );
        assert_eq!(b.failures(&p, t), 3);
    }

    #[test]
    fn a_right_answer_costs_nothing_and_old_failures_slide_out() {
        let p = policy();
        let mut b = Budget::default();
        let t = Instant::now();
        for _ in 0..2 {
            assert!(b.reserve(&p, t));
            assert!(!b.settle(&p, Outcome::Wrong, t));
        }
        assert!(b.reserve(&p, t));
        assert!(!b.settle(&p, Outcome::Right, t));
        assert_eq!(b.failures(&p, t), 2);
        let later = t + Duration::from_secs(61);
        assert_eq!(b.failures(&p, later), 0);
        assert!(b.reserve(&p, later));
    }

    #[test]
    fn cooloff_doubles_is_capped_and_is_forgiven_slowly() {
        let p = policy();
        let mut b = Budget::default();
        let t = Instant::now();
        let mut at = t;
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(b.trip(&p, at).as_secs());
            at += Duration::from_secs(1);
        }
        assert_eq!(seen, [10, 20, 40, 80, 100, 100]);
        // Two quiet `cooloff_max` periods forgive two levels: 6 -> 4, so 10 * 2^4 = 160 -> 100.
        at += Duration::from_secs(200);
        assert_eq!(b.trip(&p, at).as_secs(), 100);
        // A very long quiet spell forgives everything.
        at += Duration::from_secs(100_000);
        assert_eq!(b.trip(&p, at).as_secs(), 10);
    }

    #[test]
    fn huge_levels_do_not_overflow() {
        let p = BudgetPolicy {
            cooloff_max: Duration::MAX,
            ..policy()
        };
        let mut b = Budget::default();
        let t = Instant::now();
        for _ in 0..100 {
            assert!(b.trip(&p, t) <= Duration::MAX);
        }
        assert_eq!(b.level(), 100);
    }
}
