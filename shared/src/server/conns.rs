//! The table of open connections, and who is evicted when it is full.
//!
//! Owns the connection caps: a connection not yet authenticated (in its TLS handshake, before
//! its first message, or pairing) counts against its address and against the server-wide
//! cap on unauthenticated connections; every connection counts against the total. Over a cap,
//! the *oldest* unauthenticated connection (of that address, or of all) is told to close and
//! the new one is accepted: an honest client finishes its handshake in milliseconds and gets
//! through, while a slow-loris has to keep reopening and loses the race. Authenticated
//! sessions are never evicted; when only they fill the table, a new connection is refused.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use tokio::sync::oneshot;

/// Caps of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub total: usize,
    pub unauthenticated: usize,
    pub per_addr: usize,
}

#[derive(Debug)]
struct Slot {
    ip: IpAddr,
    evict: oneshot::Sender<()>,
}

/// What happened when a connection asked for a slot.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The connection's id in the table.
    pub id: u64,
    /// Fires when the connection is evicted.
    pub evicted: oneshot::Receiver<()>,
    /// Connections evicted to make room (0, 1 or 2).
    pub evictions: usize,
}

/// Open connections.
#[derive(Debug)]
pub(crate) struct ConnTable {
    caps: Caps,
    next: u64,
    /// Unauthenticated connections by id, so the smallest id is the oldest.
    unauth: BTreeMap<u64, Slot>,
    /// Unauthenticated connection ids per address, oldest first.
    per_addr: HashMap<IpAddr, VecDeque<u64>>,
    authenticated: usize,
}

impl ConnTable {
    pub fn new(caps: Caps) -> Self {
        Self {
            caps: Caps {
                total: caps.total.max(1),
                unauthenticated: caps.unauthenticated.max(1),
                per_addr: caps.per_addr.max(1),
            },
            next: 0,
            unauth: BTreeMap::new(),
            per_addr: HashMap::new(),
            authenticated: 0,
        }
    }

    /// Connections open now.
    pub fn total(&self) -> usize {
        self.unauth.len() + self.authenticated
    }

    /// Unauthenticated connections open now.
    pub fn unauthenticated(&self) -> usize {
        self.unauth.len()
    }

    fn evict(&mut self, id: u64) -> bool {
        let Some(slot) = self.unauth.remove(&id) else {
            return false;
        };
        self.forget_addr(slot.ip, id);
        let _ = slot.evict.send(());
        true
    }

    fn forget_addr(&mut self, ip: IpAddr, id: u64) {
        if let Some(ids) = self.per_addr.get_mut(&ip) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.per_addr.remove(&ip);
            }
        }
    }

    /// A new connection from `ip` asks for a slot; `None` when every slot is held by an
    /// authenticated session.
    pub fn admit(&mut self, ip: IpAddr) -> Option<Admitted> {
        let mut evictions = 0;
        // Over the address's share: its oldest unauthenticated connection goes.
        let oldest_here = self
            .per_addr
            .get(&ip)
            .filter(|ids| ids.len() >= self.caps.per_addr)
            .and_then(|ids| ids.front().copied());
        if let Some(id) = oldest_here
            && self.evict(id)
        {
            evictions += 1;
        }
        // Over the server's caps: the oldest unauthenticated connection of all goes.
        if self.unauth.len() >= self.caps.unauthenticated || self.total() >= self.caps.total {
            match self.unauth.keys().next().copied() {
                Some(id) => {
                    if self.evict(id) {
                        evictions += 1;
                    }
                }
                None => return None,
            }
        }
        if self.total() >= self.caps.total {
            return None;
        }
        self.next += 1;
        let id = self.next;
        let (tx, rx) = oneshot::channel();
        self.unauth.insert(id, Slot { ip, evict: tx });
        self.per_addr.entry(ip).or_default().push_back(id);
        Some(Admitted {
            id,
            evicted: rx,
            evictions,
        })
    }

    /// Connection `id` authenticated: it can no longer be evicted. `false` when it was
    /// evicted meanwhile.
    pub fn authenticate(&mut self, id: u64) -> bool {
        match self.unauth.remove(&id) {
            Some(slot) => {
                self.forget_addr(slot.ip, id);
                self.authenticated += 1;
                true
            }
            None => false,
        }
    }

    /// Connection `id` closed.
    pub fn release(&mut self, id: u64, authenticated: bool) {
        if authenticated {
            self.authenticated = self.authenticated.saturating_sub(1);
        } else if let Some(slot) = self.unauth.remove(&id) {
            self.forget_addr(slot.ip, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn over_the_address_cap_the_oldest_of_that_address_goes() {
        let mut t = ConnTable::new(Caps {
            total: 100,
            unauthenticated: 100,
            per_addr: 2,
        });
        let mut a1 = t.admit(ip(1)).unwrap();
        let mut a2 = t.admit(ip(1)).unwrap();
        let mut b1 = t.admit(ip(2)).unwrap();
        let a3 = t.admit(ip(1)).unwrap();
        assert_eq!(a3.evictions, 1);
        assert_eq!(a1.evicted.try_recv(), Ok(()));
        assert!(a2.evicted.try_recv().is_err());
        assert!(
            b1.evicted.try_recv().is_err(),
            "another address is untouched"
        );
        assert_eq!(t.unauthenticated(), 3);
        // A released slot is gone from the address's list too.
        t.release(a2.id, false);
        let _a4 = t.admit(ip(1)).unwrap();
        assert_eq!(t.unauthenticated(), 3);
    }

    #[test]
    fn over_the_global_caps_the_oldest_unauthenticated_goes_and_sessions_stay() {
        let mut t = ConnTable::new(Caps {
            total: 3,
            unauthenticated: 3,
            per_addr: 10,
        });
        let s = t.admit(ip(1)).unwrap();
        assert!(t.authenticate(s.id));
        let mut x = t.admit(ip(2)).unwrap();
        let mut y = t.admit(ip(3)).unwrap();
        let z = t.admit(ip(4)).unwrap();
        assert_eq!(z.evictions, 1);
        assert_eq!(x.evicted.try_recv(), Ok(()));
        assert!(y.evicted.try_recv().is_err());
        assert_eq!(t.total(), 3);
        // Only sessions left: nothing to evict, so the newcomer is refused.
        assert!(t.authenticate(y.id));
        assert!(t.authenticate(z.id));
        assert!(t.admit(ip(5)).is_none());
        // An evicted connection cannot authenticate afterwards.
        assert!(!t.authenticate(x.id));
        t.release(s.id, true);
        assert!(t.admit(ip(5)).is_some());
    }

    #[test]
    fn the_unauthenticated_cap_is_separate_from_the_total() {
        let mut t = ConnTable::new(Caps {
            total: 10,
            unauthenticated: 2,
            per_addr: 10,
        });
        let mut a = t.admit(ip(1)).unwrap();
        let _b = t.admit(ip(2)).unwrap();
        let _c = t.admit(ip(3)).unwrap();
        assert_eq!(a.evicted.try_recv(), Ok(()));
        assert_eq!(t.total(), 2);
    }
}
