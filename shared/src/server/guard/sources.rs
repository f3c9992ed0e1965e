//! What the server remembers about each address that asked to pair: codes issued to it
//! recently, its failures and its backoff; and codes issued per network prefix (/24 for IPv4,
//! /64 for IPv6).
//!
//! Owns two bounded tables. Whatever strangers send, neither grows past its cap: records go
//! after `memory` without activity, and when a table is still full the least significant
//! eighth goes (fewest codes and failures first, then the longest quiet), so an attacker who
//! floods with fresh addresses can only make honest addresses look *more* trustworthy.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A network prefix: the /24 of an IPv4 address, the /64 of an IPv6 one. Addresses in one
/// prefix are cheap for one machine to claim, so they are also counted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(u128);

impl Prefix {
    /// The prefix `ip` belongs to.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Prefix(u128::from(u32::from(v4) & 0xffff_ff00)),
            IpAddr::V6(v6) => Prefix((u128::from(v6) & !0xffff_ffff_ffff_ffffu128) | 1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Codes issued within `memory` of each other.
    codes: u32,
    /// Failed answers within `memory` of each other.
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            codes: 0,
            failures: 0,
            last: now,
            blocked_until: now,
        }
    }

    fn weight(&self) -> u64 {
        u64::from(self.codes) + u64::from(self.failures)
    }
}

/// A table of records with a cap.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, Record>,
    cap: usize,
}

impl<K: Eq + Hash + Copy> Table<K> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            cap: cap.max(8),
        }
    }

    /// The live record of `key`, forgetting it when it is older than `memory`.
    fn get(&mut self, key: &K, memory: Duration, now: Instant) -> Option<&mut Record> {
        let stale = self.map.get(key).is_some_and(|r| {
            now.saturating_duration_since(r.last) > memory && r.blocked_until <= now
        });
        if stale {
            self.map.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn entry(&mut self, key: K, memory: Duration, now: Instant) -> &mut Record {
        if self.get(&key, memory, now).is_none() {
            if self.map.len() >= self.cap {
                self.make_room(memory, now);
            }
            self.map.insert(key, Record::new(now));
        }
        self.map
            .get_mut(&key)
            .expect("inserted above, and nothing removed it since")
    }

    fn make_room(&mut self, memory: Duration, now: Instant) {
        self.map.retain(|_, r| {
            now.saturating_duration_since(r.last) <= memory || r.blocked_until > now
        });
        if self.map.len() < self.cap {
            return;
        }
        // Still full of live records: drop the least significant eighth in one go, so a flood
        // costs one sort per cap/8 insertions rather than a scan per insertion.
        let mut order: Vec<(u64, Instant, K)> = self
            .map
            .iter()
            .map(|(k, r)| (r.weight(), r.last, *k))
            .collect();
        let cut = (self.cap / 8).max(1).min(order.len());
        order.select_nth_unstable_by(cut - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, k) in order.into_iter().take(cut) {
            self.map.remove(&k);
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// How much an address has been issued recently, as compared when the pending table is full:
/// its prefix's codes first, then its own.
pub type Standing = (u32, u32);

/// Per-address and per-prefix records.
#[derive(Debug)]
pub struct Sources {
    addrs: Table<IpAddr>,
    prefixes: Table<Prefix>,
    memory: Duration,
}

impl Sources {
    /// Tables of at most `cap` addresses and `cap` prefixes, forgetting after `memory`.
    pub fn new(cap: usize, memory: Duration) -> Self {
        Self {
            addrs: Table::new(cap),
            prefixes: Table::new(cap),
            memory,
        }
    }

    /// Codes issued recently to `ip`'s prefix and to `ip` itself.
    pub fn standing(&mut self, ip: IpAddr, now: Instant) -> Standing {
        let memory = self.memory;
        let prefix = self
            .prefixes
            .get(&Prefix::of(ip), memory, now)
            .map_or(0, |r| r.codes);
        let own = self.addrs.get(&ip, memory, now).map_or(0, |r| r.codes);
        (prefix, own)
    }

    /// A code was issued to `ip`.
    pub fn issued(&mut self, ip: IpAddr, now: Instant) {
        let memory = self.memory;
        let r = self.addrs.entry(ip, memory, now);
        r.codes = r.codes.saturating_add(1);
        r.last = now;
        let p = self.prefixes.entry(Prefix::of(ip), memory, now);
        p.codes = p.codes.saturating_add(1);
        p.last = now;
    }

    /// How long `ip` must still wait after its failures, if at all.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let memory = self.memory;
        let r = self.addrs.get(&ip, memory, now)?;
        (r.blocked_until > now).then(|| r.blocked_until - now)
    }

    /// Record a failed answer from `ip`: it must wait `base`, doubled for each earlier failure
    /// within `memory`, at most `max`. Returns the wait.
    pub fn failed(&mut self, ip: IpAddr, base: Duration, max: Duration, now: Instant) -> Duration {
        let memory = self.memory;
        let r = self.addrs.entry(ip, memory, now);
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let factor = 1u32.checked_shl(r.failures - 1).unwrap_or(u32::MAX);
        let wait = base.checked_mul(factor).unwrap_or(max).min(max);
        r.blocked_until = now.checked_add(wait).unwrap_or(now);
        wait
    }

    /// A success from `ip` clears its failures and backoff.
    pub fn succeeded(&mut self, ip: IpAddr, now: Instant) {
        let memory = self.memory;
        if let Some(r) = self.addrs.get(&ip, memory, now) {
            r.failures = 0;
            r.blocked_until = now;
        }
    }

    /// Records held (addresses, prefixes).
    pub fn len(&self) -> (usize, usize) {
        (self.addrs.len(), self.prefixes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn prefixes_group_what_one_machine_can_claim() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let b: IpAddr = "10.1.2.250".parse().unwrap();
        let c: IpAddr = "10.1.3.3".parse().unwrap();
        assert_eq!(Prefix::of(a), Prefix::of(b));
        assert_ne!(Prefix::of(a), Prefix::of(c));
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Prefix::of(x), Prefix::of(y));
        assert_ne!(Prefix::of(x), Prefix::of(z));
        // An IPv4 prefix never equals an IPv6 one.
        assert_ne!(
            Prefix::of("0.0.0.1".parse().unwrap()),
            Prefix::of("::1".parse().unwrap())
        );
    }

    #[test]
    fn standing_counts_codes_per_address_and_prefix_and_fades() {
        let mut s = Sources::new(1024, 60 * S);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        s.issued(a, t);
        s.issued(a, t);
        s.issued(b, t);
        assert_eq!(s.standing(a, t), (3, 2));
        assert_eq!(s.standing(b, t), (3, 1));
        assert_eq!(s.standing("10.0.1.1".parse().unwrap(), t), (0, 0));
        assert_eq!(s.standing(a, t + 61 * S), (0, 0));
    }

    #[test]
    fn backoff_doubles_caps_and_clears_on_success() {
        let mut s = Sources::new(1024, 600 * S);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let waits: Vec<u64> = (0..5).map(|_| s.failed(a, S, 5 * S, t).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(s.blocked(a, t), Some(5 * S));
        assert_eq!(s.blocked(a, t + 6 * S), None);
        s.failed(a, S, 5 * S, t + 6 * S);
        s.succeeded(a, t + 6 * S);
        assert_eq!(s.blocked(a, t + 6 * S), None);
        for _ in 0..200 {
            assert!(s.failed(a, S, 5 * S, t) <= 5 * S);
        }
    }

    #[test]
    fn a_flood_of_fresh_addresses_stays_within_the_cap_and_keeps_the_busiest() {
        let cap = 4096;
        let mut s = Sources::new(cap, 3600 * S);
        let t = Instant::now();
        let busy: IpAddr = "192.168.7.7".parse().unwrap();
        for _ in 0..50 {
            s.issued(busy, t);
        }
        for i in 0..100_000u32 {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            s.issued(ip, t);
            s.failed(ip, S, 5 * S, t);
            let (addrs, prefixes) = s.len();
            assert!(addrs <= cap && prefixes <= cap, "{addrs} {prefixes}");
        }
        // The address with the most codes is the last to be forgotten.
        assert_eq!(s.standing(busy, t).1, 50);
    }
}
