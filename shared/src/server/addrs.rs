//! The addresses a server can be reached at, and noticing when the machine's change.
//!
//! Owns two rules and one piece of bookkeeping: which of the machine's addresses a listener
//! is reachable at ([`reachable`]), which of them may be advertised to the LAN
//! ([`advertisable`]: never a loopback one), and turning periodic readings of the interfaces
//! into change notices ([`Tracker`]). Reading the interfaces ([`interface_addrs`]) is the only
//! I/O here, so tests feed readings directly.
//!
//! The engine polls: `if_addrs` also offers a change notifier, but it listens for link
//! events only (`RTMGRP_LINK`), and an address added or removed with the link up (DHCP,
//! `ip addr`) does not wake it. One `getifaddrs` every couple of seconds costs nothing.

use std::net::IpAddr;

/// How often the engine reads the machine's addresses by default.
pub const DEFAULT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// This machine's interface addresses now, loopback included, sorted and without
/// duplicates; empty when they cannot be read.
pub fn interface_addrs() -> Vec<IpAddr> {
    let mut all: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// IPv6 link-local addresses need a scope id to be dialled; they are left out.
fn link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Where clients can reach a listener bound to `bind`, given the machine's `interfaces`:
/// the bound address itself, or, for an unspecified one, every non-loopback address of the
/// machine in its family (both families for `::`, which also accepts IPv4), without IPv6
/// link-local ones. Sorted, without duplicates.
pub fn reachable(bind: IpAddr, interfaces: &[IpAddr]) -> Vec<IpAddr> {
    if !bind.is_unspecified() {
        return vec![bind];
    }
    let mut found: Vec<IpAddr> = interfaces
        .iter()
        .copied()
        .filter(|a| !a.is_loopback() && !a.is_unspecified() && !link_local_v6(a))
        .filter(|a| a.is_ipv4() == bind.is_ipv4() || bind.is_ipv6())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The addresses to advertise to the LAN for a listener bound to `bind`: the reachable ones
/// the machine holds right now, never a loopback one. Empty for a loopback bind, and when the
/// machine has nothing but loopback: then nothing is advertised at all.
pub fn advertisable(bind: IpAddr, interfaces: &[IpAddr]) -> Vec<IpAddr> {
    reachable(bind, interfaces)
        .into_iter()
        .filter(|a| !a.is_loopback() && interfaces.contains(a))
        .collect()
}

/// The reachable addresses of one listener as last seen; each new reading of the interfaces
/// says whether they changed.
#[derive(Debug, Clone)]
pub struct Tracker {
    bind: IpAddr,
    current: Vec<IpAddr>,
}

impl Tracker {
    /// Start from the reading `interfaces` for a listener bound to `bind`.
    pub fn new(bind: IpAddr, interfaces: &[IpAddr]) -> Self {
        Self {
            bind,
            current: reachable(bind, interfaces),
        }
    }

    /// The reachable addresses as last seen.
    pub fn current(&self) -> &[IpAddr] {
        &self.current
    }

    /// Take a new reading; returns the new reachable addresses when they changed.
    pub fn observe(&mut self, interfaces: &[IpAddr]) -> Option<&[IpAddr]> {
        let now = reachable(self.bind, interfaces);
        if now == self.current {
            return None;
        }
        self.current = now;
        Some(&self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn machine() -> Vec<IpAddr> {
        [
            "127.0.0.1",
            "10.0.0.5",
            "192.168.1.9",
            "::1",
            "fe80::1",
            "2001:db8::5",
        ]
        .into_iter()
        .map(ip)
        .collect()
    }

    #[test]
    fn an_unspecified_bind_is_reachable_at_every_address_but_loopback_and_link_local() {
        assert_eq!(
            reachable(ip("0.0.0.0"), &machine()),
            [ip("10.0.0.5"), ip("192.168.1.9")]
        );
        assert_eq!(
            reachable(ip("::"), &machine()),
            [ip("10.0.0.5"), ip("192.168.1.9"), ip("2001:db8::5")]
        );
        assert_eq!(reachable(ip("10.0.0.5"), &machine()), [ip("10.0.0.5")]);
        assert_eq!(reachable(ip("127.0.0.1"), &machine()), [ip("127.0.0.1")]);
    }

    #[test]
    fn nothing_loopback_is_ever_advertised() {
        let only_loopback = [ip("127.0.0.1"), ip("::1")];
        assert!(advertisable(ip("0.0.0.0"), &only_loopback).is_empty());
        assert!(advertisable(ip("::"), &only_loopback).is_empty());
        assert!(advertisable(ip("127.0.0.1"), &machine()).is_empty());
        assert!(advertisable(ip("127.0.0.5"), &machine()).is_empty());
        assert!(advertisable(ip("::1"), &machine()).is_empty());
        assert_eq!(
            advertisable(ip("0.0.0.0"), &machine()),
            [ip("10.0.0.5"), ip("192.168.1.9")]
        );
        // A specific address is advertised while the machine holds it, and only then.
        assert_eq!(advertisable(ip("10.0.0.5"), &machine()), [ip("10.0.0.5")]);
        assert!(advertisable(ip("10.0.0.6"), &machine()).is_empty());
    }

    #[test]
    fn the_tracker_reports_changes_once() {
        let mut t = Tracker::new(ip("0.0.0.0"), &[ip("127.0.0.1"), ip("10.0.0.5")]);
        assert_eq!(t.current(), [ip("10.0.0.5")]);
        assert_eq!(t.observe(&[ip("10.0.0.5"), ip("127.0.0.1")]), None);
        // A change that does not touch the reachable set is no change.
        assert_eq!(
            t.observe(&[ip("10.0.0.5"), ip("127.0.0.1"), ip("fe80::2")]),
            None
        );
        assert_eq!(
            t.observe(&[ip("127.0.0.1"), ip("10.0.0.77")]),
            Some(&[ip("10.0.0.77")][..])
        );
        assert_eq!(t.observe(&[ip("127.0.0.1"), ip("10.0.0.77")]), None);
        assert_eq!(t.observe(&[ip("127.0.0.1")]), Some(&[][..]));
        assert_eq!(t.current(), &[] as &[IpAddr]);
    }
}
