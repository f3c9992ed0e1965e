//! The TCP connect sweep of the default port over local subnets, with bounded concurrency,
//! a per-host timeout, and live progress. An open port counts only once the host proves, in
//! a TLS handshake with our ALPN, to be one of our servers.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use ipnet::Ipv4Net;
use tokio::sync::mpsc;

use super::{DiscoveryEvent, Found, ScanProgress, Via};
use crate::dialer::Dialer;

/// One subnet to sweep.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// Its hosts, in sweep order.
    pub hosts: Vec<Ipv4Addr>,
}

/// How long an unanswered ARP entry stays incomplete in Linux (3 solicitations, 1 s apart);
/// entries that young cannot be reclaimed when the neighbour table is full.
pub const ARP_WINDOW: Duration = Duration::from_secs(3);

/// New on-link hosts the sweep may start per [`ARP_WINDOW`]: three quarters of the kernel's
/// neighbour-table hard limit (`gc_thresh3`, 1024 by default). Going faster overflows the
/// table and the kernel silently drops the connection attempts of later hosts, which is how
/// fast sweeps of large subnets miss servers.
pub fn arp_budget() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
        .unwrap_or(1024)
        .saturating_mul(3)
        / 4
}

/// Hosts started together at most, once per [`BURST_SLOT`].
const BURST: usize = 64;
/// See [`BURST`].
const BURST_SLOT: Duration = Duration::from_millis(10);

/// Raise the soft open-files limit towards the hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// Sweep `plans`, reporting progress and servers found on `tx`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn sweep(
    dialer: Dialer,
    plans: Vec<SweepPlan>,
    port: u16,
    per_host: Duration,
    concurrency: usize,
    per_window: usize,
    started: Instant,
    tx: mpsc::Sender<DiscoveryEvent>,
) {
    let probed: Arc<Vec<AtomicUsize>> =
        Arc::new(plans.iter().map(|_| AtomicUsize::new(0)).collect());
    let totals: Vec<(String, usize)> = plans
        .iter()
        .map(|p| (p.subnet.to_string(), p.hosts.len()))
        .collect();
    let report = {
        let probed = probed.clone();
        let totals = totals.clone();
        let tx = tx.clone();
        move || {
            for (i, (subnet, total)) in totals.iter().enumerate() {
                let event = DiscoveryEvent::Progress(ScanProgress {
                    subnet: subnet.clone(),
                    probed: probed[i].load(Ordering::Relaxed),
                    total: *total,
                    elapsed: started.elapsed(),
                });
                if tx.try_send(event).is_err() {
                    return false;
                }
            }
            true
        }
    };
    let ticker = {
        let report = report.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if !report() {
                    return;
                }
            }
        })
    };
    let mut targets = plans
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.hosts.iter().map(move |ip| (i, *ip)))
        .collect::<Vec<_>>()
        .into_iter();
    let mut pending = FuturesUnordered::new();
    // Start times of recent targets, to pace new neighbour entries (see `arp_budget`).
    let mut recent: std::collections::VecDeque<tokio::time::Instant> = Default::default();
    let per_window = per_window.max(1);
    // Starts are also spread out in small bursts: hundreds of ARP broadcasts at once get
    // dropped by the receivers' queues, and a host whose request was lost looks dead.
    let mut slot_end = tokio::time::Instant::now();
    let mut slot_count = 0;
    let mut exhausted = false;
    loop {
        let now = tokio::time::Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= ARP_WINDOW)
        {
            recent.pop_front();
        }
        if now >= slot_end {
            slot_end = now + BURST_SLOT;
            slot_count = 0;
        }
        let mut blocked_until = None;
        while !exhausted && pending.len() < concurrency.max(1) {
            if let Some(oldest) = recent.front().filter(|_| recent.len() >= per_window) {
                blocked_until = Some(*oldest + ARP_WINDOW);
                break;
            }
            if slot_count >= BURST {
                blocked_until = Some(slot_end);
                break;
            }
            let Some((i, ip)) = targets.next() else {
                exhausted = true;
                break;
            };
            let addr = SocketAddr::from((ip, port));
            pending.push(check(
                dialer.clone(),
                addr,
                per_host,
                probed.clone(),
                i,
                started,
            ));
            recent.push_back(now);
            slot_count += 1;
        }
        if pending.is_empty() {
            match blocked_until {
                Some(t) => {
                    tokio::time::sleep_until(t).await;
                    continue;
                }
                None => break,
            }
        }
        let wake = blocked_until.unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
            r = pending.next() => {
                if let Some(Some(found)) = r
                    && tx.send(DiscoveryEvent::Found(found)).await.is_err()
                {
                    break;
                }
            }
            _ = tokio::time::sleep_until(wake), if blocked_until.is_some() => {}
        }
    }
    ticker.abort();
    report();
}

/// Try one host: connect within `per_host`, then confirm it is our server.
async fn check(
    dialer: Dialer,
    addr: SocketAddr,
    per_host: Duration,
    probed: Arc<Vec<AtomicUsize>>,
    subnet: usize,
    started: Instant,
) -> Option<Found> {
    let tcp = dialer.connect_tcp(addr, per_host).await;
    probed[subnet].fetch_add(1, Ordering::Relaxed);
    let tcp = tcp.ok()?;
    // Confirmation gets its own, longer budget: the host did answer.
    match tokio::time::timeout(Duration::from_secs(3), dialer.probe(tcp, addr)).await {
        Ok(Ok(p)) => Some(Found {
            addr,
            server_id: p.server_id,
            name: p.name,
            via: Via::Scan,
            verified: true,
            elapsed: started.elapsed(),
        }),
        Ok(Err(e)) => {
            tracing::debug!(%addr, "open port, but not our server: {e}");
            None
        }
        Err(_) => None,
    }
}
