//! Many clients: N authenticated sessions open at once on a freshly started server.
//!
//! The sessions are spread over a set of paired identities, each connecting from its own
//! loopback source address (127.0.x.y); a session is per connection, so N connections
//! authenticated with tokens are N sessions to the server, whichever key they prove. Measures
//! the server's resident memory per session, the time for a notice (sent through the control
//! socket, as the operator's tools do) to reach all N, and `ping` latency with N connected.

use std::path::Path;
use std::time::{Duration, Instant};

use csc_shared::client::{Session, SessionEvent};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::server::ServerProc;
use crate::stats::{Latency, Spread};
use crate::{BenchError, Member, Options, within};

/// Figures for one N.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ManyFigures {
    /// Sessions held open at once.
    pub n: usize,
    /// Why this N was not run, if it was not.
    pub skipped: Option<String>,
    /// Client identities (and source addresses) the sessions were spread over.
    pub identities: usize,
    /// Time to open all N sessions, `connect_concurrency` at a time, seconds.
    pub connect_all_s: f64,
    /// Server VmRSS before the first session, KiB.
    pub rss_before_kib: u64,
    /// Server VmRSS with all N open and idle, KiB.
    pub rss_after_kib: u64,
    /// (after − before) / N, bytes.
    pub bytes_per_session: f64,
    /// Recipients the server reported for each notice.
    pub recipients: Vec<usize>,
    /// From the control request to the last of N clients holding the notice, ms.
    pub notice_all_ms: Spread,
    /// Median delivery time of each notice, ms.
    pub notice_median_ms: Spread,
    /// `ping` round trips with all N connected, each from another session.
    pub ping: Latency,
}

/// Open `n` sessions on a new server over `state` (whose paired clients are `members`).
/// Returns the figures and any warnings the server printed.
pub async fn run(
    opts: &Options,
    state: &Path,
    stderr: &Path,
    members: &mut [Member],
    n: usize,
    fd_limit: u64,
) -> Result<(ManyFigures, Vec<String>), BenchError> {
    let identities = opts.identities.min(members.len()).max(1);
    let mut figures = ManyFigures {
        n,
        identities,
        ..ManyFigures::default()
    };
    // Each side holds N sockets, plus state files, pipes and the runtime's own descriptors.
    let needed = n as u64 + 256;
    if fd_limit < needed {
        figures.skipped = Some(format!(
            "needs {needed} open files per process; the hard limit allows {fd_limit}"
        ));
        opts.progress(format!(
            "{n} clients: skipped ({})",
            figures.skipped.as_deref().unwrap_or("")
        ));
        return Ok((figures, Vec::new()));
    }
    let srv = ServerProc::start(&opts.server_bin, state, stderr).await?;
    let addr = srv.addr();
    // The new server listens on a new port; remembering it in memory keeps the client engine
    // from re-saving its state file at every session it opens.
    let ids: Vec<Member> = members
        .iter_mut()
        .take(identities)
        .map(|m| {
            if let Some(s) = m.server.as_mut() {
                s.addrs = vec![addr];
            }
            m.clone()
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    figures.rss_before_kib = srv.rss_kib()?;

    opts.progress(format!("{n} clients: connecting"));
    let started = Instant::now();
    let mut sessions: Vec<Session> = within("opening sessions", Duration::from_secs(600), async {
        futures_util::stream::iter(0..n)
            .map(|i| {
                let m = ids[i % ids.len()].clone();
                tokio::spawn(async move {
                    let server = m.paired()?;
                    Ok::<_, BenchError>(m.client.connect_addr(server, addr).await?)
                })
            })
            .buffer_unordered(opts.connect_concurrency)
            .map(|joined| joined.map_err(|e| BenchError::Setup(format!("connect task: {e}")))?)
            .try_collect()
            .await
    })
    .await?;
    figures.connect_all_s = started.elapsed().as_secs_f64();
    srv.wait_counts("every session reported", Duration::from_secs(30), |c| {
        c.connected >= n as u64
    })
    .await?;
    let open = srv.sessions().await?;
    if open != n as u64 || srv.counts().disconnected != 0 {
        return Err(BenchError::Mismatch(format!(
            "{n} sessions opened, the server holds {open} ({:?})",
            srv.counts()
        )));
    }
    // Let handshake leftovers be freed before reading the resident size.
    tokio::time::sleep(Duration::from_secs(1)).await;
    figures.rss_after_kib = srv.rss_kib()?;
    figures.bytes_per_session =
        (figures.rss_after_kib as f64 - figures.rss_before_kib as f64) * 1024.0 / n as f64;

    let (mut all, mut median) = (Vec::new(), Vec::new());
    for rep in 0..opts.notices {
        opts.progress(format!("{n} clients: notice {}/{}", rep + 1, opts.notices));
        let text = format!("bench notice {rep} to {n} clients");
        let mut waiters = Vec::with_capacity(n);
        for mut s in sessions.drain(..) {
            waiters.push(tokio::spawn(async move {
                let got = tokio::time::timeout(Duration::from_secs(60), s.next_event()).await;
                (s, got, Instant::now())
            }));
        }
        // Let every waiter park on its session first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = Instant::now();
        figures.recipients.push(srv.notify(&text).await?);
        let mut delays = Vec::with_capacity(n);
        for w in waiters {
            let (s, got, at) = w
                .await
                .map_err(|e| BenchError::Setup(format!("notice waiter: {e}")))?;
            match got {
                Ok(Some(SessionEvent::Notice { text: t, .. })) if t == text => {
                    delays.push(at.saturating_duration_since(sent));
                }
                Ok(other) => {
                    return Err(BenchError::Mismatch(format!(
                        "expected the notice, got {other:?}"
                    )));
                }
                Err(_) => return Err(BenchError::Timeout("a client never got the notice".into())),
            }
            sessions.push(s);
        }
        let l = Latency::of(&delays);
        all.push(l.max_us / 1000.0);
        median.push(l.p50_us / 1000.0);
    }
    if figures.recipients.iter().any(|&r| r != n) {
        return Err(BenchError::Mismatch(format!(
            "notices reached {:?} sessions, expected {n} each",
            figures.recipients
        )));
    }
    figures.notice_all_ms = Spread::of(&all);
    figures.notice_median_ms = Spread::of(&median);

    opts.progress(format!("{n} clients: ping under load"));
    let mut pings = Vec::with_capacity(opts.pings_under_load);
    for j in 0..opts.pings_under_load {
        let s = &sessions[(j * 7919) % n];
        let started = Instant::now();
        let reply = within("ping under load", Duration::from_secs(30), async {
            Ok(s.request("ping", Vec::new()).await?)
        })
        .await?;
        if reply.as_str() != Some("pong") {
            return Err(BenchError::Mismatch(format!("ping answered {reply}")));
        }
        pings.push(started.elapsed());
    }
    figures.ping = Latency::of(&pings);

    opts.progress(format!("{n} clients: closing"));
    futures_util::stream::iter(sessions)
        .map(Session::close)
        .buffer_unordered(512)
        .collect::<Vec<()>>()
        .await;
    let warnings = srv.warnings();
    srv.stop().await?;
    Ok((figures, warnings))
}
