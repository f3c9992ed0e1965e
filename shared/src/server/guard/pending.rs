//! The table of pending pairing requests: who holds a code now, and which one makes room
//! when the table is full.
//!
//! Owns the entries and the handle that tells an entry's connection it was cancelled. The
//! choice of a victim takes the standings from [`super::sources`]; this module only compares.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::sources::Standing;
use crate::message::PairFailure;

/// Why a pending request's connection is told to stop, and when it may ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancel {
    /// `displaced` or `pairing_closed`.
    pub reason: PairFailure,
    /// When asking again can help.
    pub retry_after: Option<Duration>,
}

#[derive(Debug)]
struct Entry {
    request_id: u64,
    ip: IpAddr,
    admitted: Instant,
    expires: Instant,
    /// An answer is being checked: the entry is not displaced meanwhile.
    busy: bool,
    cancel: Option<oneshot::Sender<Cancel>>,
}

/// Pending requests. Small (its cap is the policy's `max_pending_total`), so a vector.
#[derive(Debug, Default)]
pub struct PendingTable {
    entries: Vec<Entry>,
}

impl PendingTable {
    /// Requests pending now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Requests pending from `ip`.
    pub fn from_addr(&self, ip: IpAddr) -> usize {
        self.entries.iter().filter(|e| e.ip == ip).count()
    }

    /// Add a request; returns what its connection waits on to learn it was cancelled.
    pub fn insert(
        &mut self,
        request_id: u64,
        ip: IpAddr,
        now: Instant,
        ttl: Duration,
    ) -> oneshot::Receiver<Cancel> {
        let (tx, rx) = oneshot::channel();
        self.entries.push(Entry {
            request_id,
            ip,
            admitted: now,
            expires: now.checked_add(ttl).unwrap_or(now),
            busy: false,
            cancel: Some(tx),
        });
        rx
    }

    /// Remove a request (it ended); `false` when it was not there.
    pub fn remove(&mut self, request_id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.request_id != request_id);
        self.entries.len() != before
    }

    /// Mark a request as checking an answer, or done checking.
    pub fn set_busy(&mut self, request_id: u64, busy: bool) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.request_id == request_id) {
            e.busy = busy;
        }
    }

    /// The request to displace for a newcomer of `newcomer` standing: among those not
    /// checking an answer and pending for at least `min_age`, the one whose address stands
    /// highest (most codes issued recently), the oldest first among equals, and only if it
    /// stands strictly above the newcomer.
    pub fn victim(
        &self,
        newcomer: Standing,
        min_age: Duration,
        now: Instant,
        mut standing: impl FnMut(IpAddr) -> Standing,
    ) -> Option<u64> {
        self.entries
            .iter()
            .filter(|e| !e.busy && now.saturating_duration_since(e.admitted) >= min_age)
            .map(|e| {
                let older = std::cmp::Reverse((e.admitted, e.request_id));
                (standing(e.ip), older, e.request_id)
            })
            .max()
            .filter(|(s, _, _)| *s > newcomer)
            .map(|(_, _, id)| id)
    }

    /// Tell `request_id`'s connection to stop, and remove it.
    pub fn cancel(&mut self, request_id: u64, why: Cancel) {
        if let Some(i) = self.entries.iter().position(|e| e.request_id == request_id) {
            let mut e = self.entries.swap_remove(i);
            if let Some(tx) = e.cancel.take() {
                let _ = tx.send(why);
            }
        }
    }

    /// Tell every pending request's connection to stop, and empty the table.
    pub fn cancel_all(&mut self, why: Cancel) -> usize {
        let n = self.entries.len();
        for mut e in self.entries.drain(..) {
            if let Some(tx) = e.cancel.take() {
                let _ = tx.send(why);
            }
        }
        n
    }

    /// How long until the first pending code expires.
    pub fn first_expiry(&self, now: Instant) -> Option<Duration> {
        self.entries
            .iter()
            .map(|e| e.expires.saturating_duration_since(now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn the_victim_stands_highest_and_strictly_above_the_newcomer() {
        let t = Instant::now();
        let mut p = PendingTable::default();
        let _a = p.insert(1, ip(1), t, 120 * S);
        let _b = p.insert(2, ip(2), t + S, 120 * S);
        let _c = p.insert(3, ip(3), t + 2 * S, 120 * S);
        let standing = |a: IpAddr| match a {
            a if a == ip(2) => (5, 3),
            _ => (5, 1),
        };
        let now = t + 10 * S;
        assert_eq!(p.victim((5, 0), S, now, standing), Some(2));
        // Equal standing never displaces: the newcomer waits.
        assert_eq!(p.victim((5, 3), S, now, standing), None);
        // Among equals, the oldest goes first.
        assert_eq!(p.victim((5, 0), S, now, |_| (5, 1)), Some(1));
        // An entry checking an answer is never the victim.
        p.set_busy(1, true);
        assert_eq!(p.victim((5, 0), S, now, |_| (5, 1)), Some(2));
        // Nor is one younger than the minimum age.
        assert_eq!(p.victim((5, 0), 9 * S, now, |_| (5, 1)), Some(2));
        assert_eq!(p.victim((5, 0), 9 * S + S / 2, now, |_| (5, 1)), None);
    }

    #[test]
    fn cancelling_tells_the_connection_and_frees_the_slot() {
        let t = Instant::now();
        let mut p = PendingTable::default();
        let mut rx = p.insert(7, ip(1), t, 10 * S);
        let mut other = p.insert(8, ip(2), t, 20 * S);
        assert_eq!(p.from_addr(ip(1)), 1);
        assert_eq!(p.first_expiry(t + S), Some(9 * S));
        let why = Cancel {
            reason: PairFailure::Displaced,
            retry_after: None,
        };
        p.cancel(7, why);
        assert_eq!(rx.try_recv(), Ok(why));
        assert_eq!(p.len(), 1);
        assert!(!p.remove(7), "already gone");
        assert_eq!(p.cancel_all(why), 1);
        assert_eq!(other.try_recv(), Ok(why));
        assert!(p.is_empty());
    }
}
