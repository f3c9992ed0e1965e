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

/// Replies allowed per source address per second.
pub const REPLIES_PER_SECOND: u32 = 20;
/// Source addresses tracked by the rate limiter before it starts over.
const MAX_TRACKED: usize = 4096;

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

/// Per-source reply budget.
#[derive(Debug, Default)]
pub struct RateLimiter {
    seen: HashMap<IpAddr, (Instant, u32)>,
}

impl RateLimiter {
    /// Whether a reply to `ip` is allowed now.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.seen.len() >= MAX_TRACKED && !self.seen.contains_key(&ip) {
            self.seen
                .retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
            if self.seen.len() >= MAX_TRACKED {
                return false;
            }
        }
        let entry = self.seen.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= REPLIES_PER_SECOND
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
