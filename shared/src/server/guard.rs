//! Brute-force limits on pairing that hold across connections: pending requests per
//! address and in total, and per-address backoff after failures.
//!
//! Pure bookkeeping with the clock passed in; the connection handler asks it before acting.
//! Attempts per code live with the code, in the connection that requested it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::message::PairFailure;

/// Limits on pairing. Every field is configurable; the defaults are the documented ones.
#[derive(Debug, Clone)]
pub struct PairingPolicy {
    /// How long a code is valid.
    pub code_ttl: Duration,
    /// Wrong answers allowed per code; the code is void after the last.
    pub max_attempts: u32,
    /// Pending requests allowed from one address.
    pub max_pending_per_addr: usize,
    /// Pending requests allowed in total (the operator is not flooded with codes).
    pub max_pending_total: usize,
    /// Delay after the first failure from an address; doubles with each further failure.
    pub backoff_base: Duration,
    /// Upper bound of that delay.
    pub backoff_max: Duration,
    /// Failures are forgotten after this long without a new one.
    pub failure_memory: Duration,
}

impl Default for PairingPolicy {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(120),
            max_attempts: 5,
            max_pending_per_addr: 1,
            max_pending_total: 16,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            failure_memory: Duration::from_secs(900),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

/// Shared pairing bookkeeping.
#[derive(Debug, Default)]
pub struct Guard {
    pending: HashMap<IpAddr, usize>,
    pending_total: usize,
    failures: HashMap<IpAddr, Failures>,
}

/// A refusal: the reason and how long to wait, if waiting helps.
pub type Refusal = (PairFailure, Option<Duration>);

impl Guard {
    fn blocked(&mut self, policy: &PairingPolicy, ip: IpAddr, now: Instant) -> Option<Duration> {
        let f = self.failures.get(&ip).copied()?;
        if now.duration_since(f.last) > policy.failure_memory {
            self.failures.remove(&ip);
            return None;
        }
        (f.blocked_until > now).then(|| f.blocked_until - now)
    }

    /// Admit a new pairing request from `ip`, reserving a pending slot on success.
    pub fn admit(
        &mut self,
        policy: &PairingPolicy,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Refusal> {
        if let Some(wait) = self.blocked(policy, ip, now) {
            return Err((PairFailure::RateLimited, Some(wait)));
        }
        if self.pending.get(&ip).copied().unwrap_or(0) >= policy.max_pending_per_addr {
            return Err((PairFailure::AlreadyPending, None));
        }
        if self.pending_total >= policy.max_pending_total {
            return Err((PairFailure::TooManyPending, Some(Duration::from_secs(5))));
        }
        *self.pending.entry(ip).or_default() += 1;
        self.pending_total += 1;
        Ok(())
    }

    /// Release a pending slot taken by [`Guard::admit`].
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.pending.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&ip);
            }
            self.pending_total = self.pending_total.saturating_sub(1);
        }
    }

    /// Whether `ip` may try a code now; otherwise how long it must wait.
    pub fn check_attempt(
        &mut self,
        policy: &PairingPolicy,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        match self.blocked(policy, ip, now) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Record a failure from `ip`; returns how long it must now wait.
    pub fn record_failure(&mut self, policy: &PairingPolicy, ip: IpAddr, now: Instant) -> Duration {
        let _ = self.blocked(policy, ip, now); // forget stale history first
        let f = self.failures.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
        let factor = 1u32.checked_shl(f.count - 1).unwrap_or(u32::MAX);
        let wait = policy
            .backoff_base
            .checked_mul(factor)
            .unwrap_or(policy.backoff_max)
            .min(policy.backoff_max);
        f.blocked_until = now + wait;
        wait
    }

    /// A success clears the address's failure history.
    pub fn record_success(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }

    /// Pending requests in total.
    pub fn pending_total(&self) -> usize {
        self.pending_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn one_pending_per_address() {
        let p = PairingPolicy::default();
        let mut g = Guard::default();
        let t = Instant::now();
        g.admit(&p, A, t).unwrap();
        assert_eq!(g.admit(&p, A, t), Err((PairFailure::AlreadyPending, None)));
        g.admit(&p, B, t).unwrap();
        g.release(A);
        g.admit(&p, A, t).unwrap();
        assert_eq!(g.pending_total(), 2);
    }

    #[test]
    fn global_pending_cap() {
        let p = PairingPolicy {
            max_pending_total: 2,
            ..PairingPolicy::default()
        };
        let mut g = Guard::default();
        let t = Instant::now();
        g.admit(&p, A, t).unwrap();
        g.admit(&p, B, t).unwrap();
        let c = IpAddr::from([10, 0, 0, 3]);
        assert_eq!(
            g.admit(&p, c, t).unwrap_err().0,
            PairFailure::TooManyPending
        );
    }

    #[test]
    fn backoff_doubles_caps_and_expires() {
        let p = PairingPolicy {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
            failure_memory: Duration::from_secs(60),
            ..PairingPolicy::default()
        };
        let mut g = Guard::default();
        let t = Instant::now();
        assert_eq!(g.record_failure(&p, A, t), Duration::from_secs(1));
        assert_eq!(g.record_failure(&p, A, t), Duration::from_secs(2));
        assert_eq!(g.record_failure(&p, A, t), Duration::from_secs(4));
        assert_eq!(g.record_failure(&p, A, t), Duration::from_secs(5));
        assert_eq!(g.check_attempt(&p, A, t), Err(Duration::from_secs(5)));
        assert_eq!(g.check_attempt(&p, B, t), Ok(()));
        assert!(matches!(
            g.admit(&p, A, t),
            Err((PairFailure::RateLimited, Some(_)))
        ));
        assert_eq!(g.check_attempt(&p, A, t + Duration::from_secs(6)), Ok(()));
        // Long quiet: history forgotten, next failure starts over.
        let later = t + Duration::from_secs(120);
        assert_eq!(g.record_failure(&p, A, later), Duration::from_secs(1));
        g.record_success(A);
        assert_eq!(g.check_attempt(&p, A, later), Ok(()));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let p = PairingPolicy::default();
        let mut g = Guard::default();
        let t = Instant::now();
        for _ in 0..100 {
            assert!(g.record_failure(&p, A, t) <= p.backoff_max);
        }
    }
}
