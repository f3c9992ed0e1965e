//! Finding servers without typing an address: UDP broadcast probes, mDNS browsing and a TCP
//! sweep of the local subnets, run concurrently and merged into one stream of
//! [`DiscoveryEvent`]s. Results are hints: trust comes only from TLS and the pinned id.
//!
//! Scope is explicit: with `subnets` given, probes and sweeps stay inside them and mDNS and
//! the limited broadcast are off, so `--subnet 127.0.0.0/24` never leaves the machine.

mod broadcast;
pub mod mdns;
pub mod net;
mod scan;
pub mod wire;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use broadcast::{
    AnnounceInfo, MAX_TRACKED, OVERFLOW_REPLIES_PER_SECOND, REPLIES_PER_SECOND, RateLimiter,
    answer_probes,
};
pub use scan::{ARP_WINDOW, SweepPlan, arp_budget, raise_fd_limit};

use crate::dialer::Dialer;
use crate::identity::PeerId;

/// How a server was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A saved address of a paired server.
    Last,
    /// An address given on the command line.
    Manual,
    /// A UDP broadcast probe.
    Broadcast,
    /// mDNS/DNS-SD.
    Mdns,
    /// The TCP sweep.
    Scan,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Last => "last",
            Via::Manual => "manual",
            Via::Broadcast => "broadcast",
            Via::Mdns => "mdns",
            Via::Scan => "scan",
        })
    }
}

/// A server found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its id: proven in TLS when `verified`, otherwise as announced.
    pub server_id: PeerId,
    /// Its name.
    pub name: String,
    /// How it was found.
    pub via: Via,
    /// Whether its id was proven in a TLS handshake.
    pub verified: bool,
    /// Time since discovery started.
    pub elapsed: Duration,
}

/// Sweep progress for one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProgress {
    /// The subnet, e.g. `10.0.0.0/24`.
    pub subnet: String,
    /// Hosts tried so far.
    pub probed: usize,
    /// Hosts to try.
    pub total: usize,
    /// Time since discovery started.
    pub elapsed: Duration,
}

/// What discovery reports, in order: `Started`, then any mix of `Progress`, `Found` and
/// `Finished`, then `Done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryEvent {
    /// Which methods run and which subnets are swept (with host counts).
    Started {
        /// Methods running.
        methods: Vec<Via>,
        /// Subnets and their host counts.
        subnets: Vec<(String, usize)>,
        /// Hosts the sweep leaves out: the subnets hold more than
        /// [`DiscoveryOptions::max_hosts`].
        hosts_left_out: u64,
        /// The cap that left them out.
        max_hosts: usize,
        /// Set when no method runs: why there is nothing to search, and what to type
        /// instead (see [`DiscoveryOptions::nothing_to_search`]). `Done` follows at once.
        nothing_to_search: Option<String>,
    },
    /// Sweep progress.
    Progress(ScanProgress),
    /// A server: each address and id once, and once more when one first announced unproven
    /// is then proven in TLS (`verified`).
    Found(Found),
    /// A method has finished.
    Finished(Via),
    /// Everything has finished.
    Done {
        /// Servers found.
        found: usize,
        /// Time taken.
        elapsed: Duration,
    },
}

/// What to search and how. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    /// Server port.
    pub port: u16,
    /// Send UDP probes.
    pub broadcast: bool,
    /// Browse mDNS.
    pub mdns: bool,
    /// Sweep subnets.
    pub scan: bool,
    /// Explicit subnets; empty means every local interface, each capped to a /22.
    pub subnets: Vec<Ipv4Net>,
    /// At most this many hosts are swept in total.
    pub max_hosts: usize,
    /// TCP connect timeout per host.
    pub per_host_timeout: Duration,
    /// Connections attempted at once.
    pub concurrency: usize,
    /// New hosts started per 3 s at most (see [`arp_budget`]); 0 means the kernel-derived
    /// default.
    pub per_window: usize,
    /// How long broadcast and mDNS listen for answers.
    pub listen: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        Self {
            port: crate::DEFAULT_PORT,
            broadcast: true,
            mdns: true,
            scan: true,
            subnets: Vec::new(),
            max_hosts: 4096,
            per_host_timeout: Duration::from_millis(300),
            concurrency: 1024,
            per_window: 0,
            listen: Duration::from_millis(1500),
        }
    }
}

/// What discovery will touch, worked out from options and interfaces.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Where UDP probes go.
    pub broadcast_targets: Vec<SocketAddr>,
    /// Whether mDNS runs.
    pub mdns: bool,
    /// Subnets to sweep.
    pub sweep: Vec<SweepPlan>,
    /// Hosts of the subnets left out of the sweep by [`DiscoveryOptions::max_hosts`].
    pub hosts_left_out: u64,
}

impl Plan {
    /// Whether no method has anything to do.
    pub fn is_empty(&self) -> bool {
        self.broadcast_targets.is_empty() && !self.mdns && self.sweep.is_empty()
    }
}

impl DiscoveryOptions {
    /// Work out the targets. Explicit subnets are a hard scope.
    pub fn plan(&self) -> Plan {
        let explicit = !self.subnets.is_empty();
        let (nets, broadcasts): (Vec<Ipv4Net>, Vec<Ipv4Addr>) = if explicit {
            let nets = self.subnets.clone();
            let bcast = nets
                .iter()
                .filter(|n| n.prefix_len() <= 30)
                .map(|n| n.broadcast())
                .collect();
            (nets, bcast)
        } else {
            let locals = net::local_nets();
            let mut nets: Vec<Ipv4Net> = Vec::new();
            for l in &locals {
                let n = net::capped(l.net, net::DEFAULT_CAP_PREFIX);
                if !nets.contains(&n) {
                    nets.push(n);
                }
            }
            let mut bcast: Vec<Ipv4Addr> = locals.iter().map(|l| l.broadcast).collect();
            if !locals.is_empty() {
                bcast.push(Ipv4Addr::BROADCAST);
            }
            bcast.dedup();
            (nets, bcast)
        };
        let mut budget = self.max_hosts;
        let mut hosts_left_out = 0u64;
        let sweep = if self.scan {
            nets.iter()
                .map(|n| {
                    let (hosts, total) = net::hosts_at_most(*n, budget);
                    budget -= hosts.len();
                    hosts_left_out += total - hosts.len() as u64;
                    SweepPlan { subnet: *n, hosts }
                })
                .filter(|p| !p.hosts.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        Plan {
            broadcast_targets: if self.broadcast {
                broadcasts
                    .into_iter()
                    .map(|ip| SocketAddr::from((ip, self.port)))
                    .collect()
            } else {
                Vec::new()
            },
            mdns: self.mdns && !explicit && !net::local_nets().is_empty(),
            sweep,
            hosts_left_out,
        }
    }
}

impl DiscoveryOptions {
    /// Why `plan` (made from these options) searches nothing, and what to type instead;
    /// `None` when it searches something. The usual case is a machine, or a network
    /// namespace, with no address but loopback: discovery never searches loopback unless
    /// a `--subnet` names it.
    pub fn nothing_to_search(&self, plan: &Plan) -> Option<String> {
        if !plan.is_empty() {
            return None;
        }
        let port = if self.port == crate::DEFAULT_PORT {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        let here = format!(
            "for a server on this machine: --server 127.0.0.1{port} (or --subnet 127.0.0.1/32)"
        );
        Some(if !self.broadcast && !self.mdns && !self.scan {
            "nothing to search: every discovery method is off (--no-broadcast, --no-mdns, --no-scan); drop one, or give --server HOST[:PORT]".to_string()
        } else if !self.subnets.is_empty() {
            let nets: Vec<String> = self.subnets.iter().map(ToString::to_string).collect();
            format!(
                "nothing to search in {}: with --no-scan only a broadcast is sent, and a /31 or /32 has no broadcast address; drop --no-scan",
                nets.join(", ")
            )
        } else if net::local_nets().is_empty() {
            format!(
                "nothing to search: no network address but loopback, which is searched only when named; {here}"
            )
        } else {
            format!(
                "nothing to search with the methods left on (see --no-scan, --no-broadcast, --no-mdns); {here}"
            )
        })
    }
}

/// Which servers were reported, and whether as proven in TLS.
#[derive(Debug, Default)]
struct Seen(HashMap<(PeerId, SocketAddr), bool>);

impl Seen {
    /// Whether `f` is news: a server and address not reported yet, or one reported unproven
    /// (an announce) that a TLS handshake has now proven. So a `broadcast?` mark is cleared
    /// when the sweep verifies the same server.
    fn news(&mut self, f: &Found) -> bool {
        match self.0.get_mut(&(f.server_id, f.addr)) {
            None => {
                self.0.insert((f.server_id, f.addr), f.verified);
                true
            }
            Some(verified) if !*verified && f.verified => {
                *verified = true;
                true
            }
            Some(_) => false,
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A discovery in progress; dropping it stops every method.
#[derive(Debug)]
pub struct Discovery {
    rx: mpsc::Receiver<DiscoveryEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Discovery {
    /// The next event; `None` after `Done`.
    pub async fn next(&mut self) -> Option<DiscoveryEvent> {
        self.rx.recv().await
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start discovering with `dialer` (its identity is used for the TLS confirmation).
pub fn discover(dialer: Dialer, options: DiscoveryOptions) -> Discovery {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(run(dialer, options, tx));
    Discovery { rx, task }
}

async fn run(dialer: Dialer, options: DiscoveryOptions, out: mpsc::Sender<DiscoveryEvent>) {
    let started = Instant::now();
    let plan = options.plan();
    let nothing_to_search = options.nothing_to_search(&plan);
    let (tx, mut rx) = mpsc::channel(1024);
    let mut methods = JoinSet::new();
    let mut running = Vec::new();
    if !plan.broadcast_targets.is_empty() {
        running.push(Via::Broadcast);
        let (targets, tx) = (plan.broadcast_targets.clone(), tx.clone());
        methods.spawn(async move {
            broadcast::probe(targets, options.listen, started, tx).await;
            Via::Broadcast
        });
    }
    if plan.mdns {
        running.push(Via::Mdns);
        let tx = tx.clone();
        methods.spawn(async move {
            mdns::browse(options.listen, started, tx).await;
            Via::Mdns
        });
    }
    let hosts_left_out = plan.hosts_left_out;
    let subnets = plan
        .sweep
        .iter()
        .map(|p| (p.subnet.to_string(), p.hosts.len()))
        .collect();
    if !plan.sweep.is_empty() {
        running.push(Via::Scan);
        let limit = raise_fd_limit();
        let concurrency = options
            .concurrency
            .min(limit.saturating_sub(64).max(16) as usize);
        let tx = tx.clone();
        let (sweep, port, per_host) = (plan.sweep, options.port, options.per_host_timeout);
        let per_window = if options.per_window == 0 {
            scan::arp_budget()
        } else {
            options.per_window
        };
        methods.spawn(async move {
            scan::sweep(
                dialer,
                sweep,
                port,
                per_host,
                concurrency,
                per_window,
                started,
                tx,
            )
            .await;
            Via::Scan
        });
    }
    drop(tx);
    if out
        .send(DiscoveryEvent::Started {
            methods: running,
            subnets,
            hosts_left_out,
            max_hosts: options.max_hosts,
            nothing_to_search,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut seen = Seen::default();
    let mut methods_open = true;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(DiscoveryEvent::Found(f)) => {
                    if seen.news(&f) && out.send(DiscoveryEvent::Found(f)).await.is_err() {
                        return;
                    }
                }
                Some(other) => {
                    if out.send(other).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            done = methods.join_next(), if methods_open => match done {
                Some(Ok(via)) => {
                    if out.send(DiscoveryEvent::Finished(via)).await.is_err() {
                        return;
                    }
                }
                Some(Err(_)) => {}
                None => methods_open = false,
            },
        }
    }
    let _ = out
        .send(DiscoveryEvent::Done {
            found: seen.len(),
            elapsed: started.elapsed(),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_plan_says_why_and_what_to_type() {
        let searches = DiscoveryOptions {
            subnets: vec!["127.0.0.0/30".parse().unwrap()],
            ..DiscoveryOptions::default()
        };
        assert_eq!(searches.nothing_to_search(&searches.plan()), None);

        // A /32 has no broadcast address, so without the sweep nothing is left.
        let no_sweep = DiscoveryOptions {
            subnets: vec!["127.0.0.1/32".parse().unwrap()],
            scan: false,
            ..DiscoveryOptions::default()
        };
        let plan = no_sweep.plan();
        assert!(plan.is_empty());
        let why = no_sweep.nothing_to_search(&plan).unwrap();
        assert!(
            why.contains("127.0.0.1/32") && why.contains("drop --no-scan"),
            "{why}"
        );

        let all_off = DiscoveryOptions {
            broadcast: false,
            mdns: false,
            scan: false,
            port: 7000,
            ..DiscoveryOptions::default()
        };
        let why = all_off.nothing_to_search(&all_off.plan()).unwrap();
        assert!(why.contains("every discovery method is off"), "{why}");

        // With no interface but loopback (what a lab-less namespace has), the advice names
        // loopback, with the port when it is not the default.
        if net::local_nets().is_empty() {
            let here = DiscoveryOptions {
                port: 7000,
                ..DiscoveryOptions::default()
            };
            let why = here.nothing_to_search(&here.plan()).unwrap();
            assert!(why.contains("no network address but loopback"), "{why}");
            assert!(why.contains("--server 127.0.0.1:7000"), "{why}");
        }
    }

    #[test]
    fn explicit_subnets_are_a_hard_scope() {
        let opts = DiscoveryOptions {
            subnets: vec![
                "127.0.0.0/24".parse().unwrap(),
                "127.0.1.7/32".parse().unwrap(),
            ],
            ..DiscoveryOptions::default()
        };
        let plan = opts.plan();
        assert!(!plan.mdns, "no multicast with an explicit scope");
        assert_eq!(
            plan.broadcast_targets,
            vec!["127.0.0.255:47474".parse().unwrap()]
        );
        assert_eq!(plan.sweep.len(), 2);
        assert_eq!(plan.sweep[0].hosts.len(), 254);
        assert!(
            plan.sweep
                .iter()
                .flat_map(|p| &p.hosts)
                .all(|ip| ip.is_loopback())
        );
    }

    #[test]
    fn an_unproven_server_is_reported_again_once_proven_and_only_then() {
        let f = |verified: bool, via: Via| Found {
            addr: "127.0.0.1:47474".parse().unwrap(),
            server_id: PeerId([7; 32]),
            name: "s".into(),
            via,
            verified,
            elapsed: Duration::ZERO,
        };
        let mut seen = Seen::default();
        assert!(seen.news(&f(false, Via::Broadcast)));
        assert!(
            !seen.news(&f(false, Via::Mdns)),
            "still unproven: nothing new"
        );
        assert!(seen.news(&f(true, Via::Scan)), "proven now: reported again");
        assert!(!seen.news(&f(true, Via::Scan)));
        assert!(!seen.news(&f(false, Via::Broadcast)), "never downgraded");
        assert_eq!(seen.len(), 1, "one server for the count");
    }

    #[test]
    fn max_hosts_caps_the_sweep() {
        let opts = DiscoveryOptions {
            subnets: vec![
                "127.0.0.0/24".parse().unwrap(),
                "127.0.1.0/24".parse().unwrap(),
            ],
            max_hosts: 300,
            broadcast: false,
            ..DiscoveryOptions::default()
        };
        let plan = opts.plan();
        let total: usize = plan.sweep.iter().map(|p| p.hosts.len()).sum();
        assert_eq!(total, 300);
        // 2 × 254 hosts, 300 swept: the rest is said, not silently dropped.
        assert_eq!(plan.hosts_left_out, 2 * 254 - 300);
        assert!(plan.broadcast_targets.is_empty());
        // A /8 is capped without listing its 16 million hosts first.
        let opts = DiscoveryOptions {
            subnets: vec!["10.0.0.0/8".parse().unwrap()],
            broadcast: false,
            ..DiscoveryOptions::default()
        };
        let plan = opts.plan();
        assert_eq!(plan.sweep[0].hosts.len(), 4096);
        assert_eq!(plan.hosts_left_out, (1u64 << 24) - 2 - 4096);
        assert_eq!(
            super::net::hosts_at_most("127.0.0.5/32".parse().unwrap(), 10).1,
            1
        );
    }
}
