//! UDP probes: the server's responder, and the client's broadcast sender.
//!
//! The fast path: a server on the same LAN answers in one round trip. Replies are rate
//! limited per source address and never larger than the probe.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::wire::{PROBE_LEN, encode_announce, encode_probe, parse_announce, parse_probe};
use super::{Found, Via};
use crate::identity::PeerId;

/// Replies allowed per source address per second, for every source the limiter tracks.
pub const REPLIES_PER_SECOND: u32 = 20;

/// Source addresses the rate limiter tracks in one second. A full table is about 3 MiB
/// (65 536 entries of an address and a count, in a hash table at most 7/8 full), and that is
/// the most the limiter ever holds, whatever arrives.
pub const MAX_TRACKED: usize = 65_536;

/// Replies per second shared by all the sources that arrive once the table is full. They are
/// answered from this budget rather than refused outright, so a crowd of senders slows new
/// sources down instead of blinding them.
pub const OVERFLOW_REPLIES_PER_SECOND: u32 = 1_000;

/// Length of one counting window.
const WINDOW: Duration = Duration::from_secs(1);

/// What the server says about itself in announces.
#[derive(Debug, Clone)]
pub struct AnnounceInfo {
    /// Server id.
    pub id: PeerId,
    /// Server name.
    pub name: String,
    /// TCP port.
    pub port: u16,
}

/// Reply budget per source address, in fixed one-second windows.
///
/// Within a window each source tracked gets [`REPLIES_PER_SECOND`]; the table takes up to
/// [`MAX_TRACKED`] sources, and later ones share [`OVERFLOW_REPLIES_PER_SECOND`]. When a window
/// ends the table is emptied at once (keeping its allocation, given back once it is mostly
/// unused), so every source starts afresh and memory stays bounded by [`MAX_TRACKED`] entries.
/// Replies are never larger than their probe, so what gets through cannot amplify.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Start of the current window; `None` before the first probe.
    window: Option<Instant>,
    /// Replies counted per source in the current window.
    counts: HashMap<IpAddr, u32>,
    /// Replies counted from the overflow budget in the current window.
    overflow: u32,
}

impl RateLimiter {
    /// Whether a reply to `ip` is allowed at `now`. Time is a parameter, so tests run
    /// seconds of traffic without sleeping; a clock that steps back stays in its window.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let start = *self.window.get_or_insert(now);
        if now.saturating_duration_since(start) >= WINDOW {
            self.next_window(now);
        }
        if let Some(count) = self.counts.get_mut(&ip) {
            *count = count.saturating_add(1);
            return *count <= REPLIES_PER_SECOND;
        }
        if self.counts.len() < MAX_TRACKED {
            self.counts.insert(ip, 1);
            return true;
        }
        self.overflow = self.overflow.saturating_add(1);
        self.overflow <= OVERFLOW_REPLIES_PER_SECOND
    }

    /// Sources tracked in the current window (at most [`MAX_TRACKED`]).
    pub fn tracked(&self) -> usize {
        self.counts.len()
    }

    fn next_window(&mut self, now: Instant) {
        let used = self.counts.len();
        self.counts.clear();
        // After a flood, give the memory back once a window uses less than a quarter of it.
        if self.counts.capacity() > 4 * used.max(1024) {
            self.counts.shrink_to(used.saturating_mul(2));
        }
        self.overflow = 0;
        self.window = Some(now);
    }
}

/// Answer probes on `socket` until the task is dropped.
pub async fn answer_probes(socket: UdpSocket, info: AnnounceInfo) {
    let mut buf = vec![0u8; 2048];
    let mut limiter = RateLimiter::default();
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier replies surface here on some systems; keep serving.
                tracing::debug!("udp receive: {e}");
                continue;
            }
        };
        let Some(probe) = parse_probe(&buf[..n]) else {
            continue;
        };
        if !limiter.allow(from.ip(), Instant::now()) {
            continue;
        }
        if let Some(reply) = encode_announce(info.id, &info.name, info.port, &probe.nonce, n) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// Send probes to `targets` and report announces until `listen` has passed.
pub(super) async fn probe(
    targets: Vec<SocketAddr>,
    listen: Duration,
    started: Instant,
    tx: mpsc::Sender<super::DiscoveryEvent>,
) {
    let socket = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("broadcast probe unavailable: {e}");
            return;
        }
    };
    let _ = socket.set_broadcast(true);
    let nonce = format!("{:016x}", rand::random::<u64>());
    let datagram = encode_probe(&nonce);
    let deadline = tokio::time::Instant::now() + listen;
    // A second round covers a lost datagram without waiting for the scan.
    let mut resend = tokio::time::Instant::now();
    let mut rounds = 0;
    let mut buf = vec![0u8; PROBE_LEN * 2];
    loop {
        if rounds < 2 && tokio::time::Instant::now() >= resend {
            for t in &targets {
                if let Err(e) = socket.send_to(&datagram, t).await {
                    tracing::debug!(target = %t, "probe not sent: {e}");
                }
            }
            rounds += 1;
            resend += Duration::from_millis(300);
        }
        let wake = if rounds < 2 {
            resend.min(deadline)
        } else {
            deadline
        };
        match tokio::time::timeout_at(wake, socket.recv_from(&mut buf)).await {
            Err(_) if tokio::time::Instant::now() >= deadline => return,
            Err(_) => continue,
            Ok(Err(_)) => continue,
            Ok(Ok((n, from))) => {
                let Some(a) = parse_announce(&buf[..n]) else {
                    continue;
                };
                if a.nonce != nonce {
                    continue;
                }
                let found = Found {
                    addr: SocketAddr::new(from.ip(), a.port),
                    server_id: a.id,
                    name: a.name,
                    via: Via::Broadcast,
                    verified: false,
                    elapsed: started.elapsed(),
                };
                if tx.send(super::DiscoveryEvent::Found(found)).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_per_source_resets_each_second() {
        let mut r = RateLimiter::default();
        let t = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..REPLIES_PER_SECOND {
            assert!(r.allow(a, t));
        }
        assert!(!r.allow(a, t));
        assert!(r.allow(b, t));
        assert!(r.allow(a, t + Duration::from_secs(1)));
    }

    #[test]
    fn a_full_table_is_about_three_mebibytes() {
        // What the MAX_TRACKED doc promises: entries, plus one control byte per bucket, in a
        // table at most 7/8 full (the bucket count is a power of two).
        let entry = std::mem::size_of::<(IpAddr, u32)>() + 1;
        let buckets = (MAX_TRACKED * 8 / 7).next_power_of_two();
        let bytes = entry * buckets;
        assert!((2 << 20..4 << 20).contains(&bytes), "{bytes} bytes");
    }

    fn source(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn six_thousand_steady_sources_leave_every_new_source_answered() {
        // What blinded discovery before: 6 000 sources re-sending every second (more than
        // the 4 096 the old table held), while a new one asks four times a second.
        let mut r = RateLimiter::default();
        let t = Instant::now();
        let newcomer: IpAddr = [192, 168, 7, 7].into();
        let (mut answered, mut crowd_refused) = (0, 0);
        for second in 0..10u64 {
            for i in 0..6_000u32 {
                // Spread over the second, as real senders are.
                let at = t + Duration::from_micros(second * 1_000_000 + u64::from(i) * 160);
                if !r.allow(source(i), at) {
                    crowd_refused += 1;
                }
                if i % 1_500 == 0 && r.allow(newcomer, at) {
                    answered += 1;
                }
            }
        }
        assert_eq!(answered, 40, "the new source must be answered every time");
        assert_eq!(
            crowd_refused, 0,
            "one probe a second is within every budget"
        );
        assert!(r.tracked() <= MAX_TRACKED);
    }

    #[test]
    fn a_hundred_thousand_sources_in_one_second_stay_bounded_and_share_the_overflow() {
        let mut r = RateLimiter::default();
        let t = Instant::now();
        let n = 100_000u32;
        let allowed = (0..n)
            .filter(|&i| r.allow(source(i), t + Duration::from_micros(u64::from(i) * 9)))
            .count();
        assert_eq!(r.tracked(), MAX_TRACKED);
        assert_eq!(
            allowed,
            MAX_TRACKED + OVERFLOW_REPLIES_PER_SECOND as usize,
            "the table's sources, then the shared overflow budget, then nothing"
        );
        // Sources beyond the table stay refused for the rest of the window...
        assert!(!r.allow(source(n + 1), t + Duration::from_millis(950)));
        // ...and in the next one everyone starts afresh, with the table emptied.
        assert!(r.allow(source(n + 1), t + Duration::from_millis(1_000)));
        assert_eq!(r.tracked(), 1);
        // A second flood is bounded the same way.
        let later = t + Duration::from_secs(5);
        for i in 0..n {
            r.allow(source(n + 2 + i), later);
        }
        assert!(r.tracked() <= MAX_TRACKED);
        // Once a whole window has been quiet, the flood's memory is given back.
        r.allow(source(1), later + Duration::from_secs(1));
        r.allow(source(1), later + Duration::from_secs(2));
        assert!(r.counts.capacity() < 4096, "{}", r.counts.capacity());
    }

    #[test]
    fn one_flooding_source_still_gets_twenty_a_second() {
        let mut r = RateLimiter::default();
        let t = Instant::now();
        let flooder: IpAddr = [10, 9, 9, 9].into();
        let mut per_second = [0u32; 5];
        for ms in 0..5_000u64 {
            if r.allow(flooder, t + Duration::from_millis(ms)) {
                per_second[(ms / 1_000) as usize] += 1;
            }
        }
        assert_eq!(per_second, [REPLIES_PER_SECOND; 5]);
    }

    #[test]
    fn a_clock_that_steps_back_does_not_reset_the_budget() {
        let mut r = RateLimiter::default();
        let t = Instant::now() + Duration::from_secs(10);
        let a: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..REPLIES_PER_SECOND {
            assert!(r.allow(a, t));
        }
        assert!(!r.allow(a, t - Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn responder_answers_on_loopback_and_ignores_junk() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let info = AnnounceInfo {
            id: PeerId([3; 32]),
            name: "lo".into(),
            port: 4444,
        };
        let task = tokio::spawn(answer_probes(server, info));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"junk", addr).await.unwrap();
        client.send_to(&encode_probe("n1"), addr).await.unwrap();
        let mut buf = [0u8; 1024];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let a = parse_announce(&buf[..n]).unwrap();
        assert_eq!(a.nonce, "n1");
        assert_eq!(a.port, 4444);
        assert!(n <= PROBE_LEN);
        task.abort();
    }
}
