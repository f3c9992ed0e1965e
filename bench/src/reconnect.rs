//! Reconnecting: from a new TCP connection to an authenticated session (mutual TLS, token
//! check, `auth_ok`), through the client engine's own `connect_addr`.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::server::ServerProc;
use crate::stats::{Latency, Spread};
use crate::{BenchError, Member, Options, within};

/// Reconnect figures.
#[derive(Debug, Clone, Serialize)]
pub struct ReconnectFigures {
    /// One at a time: TCP connect → `auth_ok`.
    pub latency: Latency,
    /// Sessions opened (and closed) per second with [`ReconnectFigures::workers`] side by side.
    pub per_sec: Spread,
    /// Connect loops running at once for the rate.
    pub workers: usize,
}

/// Measure reconnects with already paired `members`.
pub async fn run(
    opts: &Options,
    srv: &ServerProc,
    members: &[Member],
) -> Result<ReconnectFigures, BenchError> {
    let addr = srv.addr();
    let before = srv.counts().connected;
    let workers = opts.reconnect_workers.min(members.len()).max(1);
    let mut opened = 0u64;
    let mut samples = Vec::new();
    let mut rates = Vec::new();
    for rep in 0..opts.reps {
        opts.progress(format!("reconnect: repetition {}/{}", rep + 1, opts.reps));
        for i in 0..opts.reconnects {
            let m = &members[i % members.len()];
            let server = m.paired()?;
            let started = Instant::now();
            let session = within("reconnect", Duration::from_secs(30), async {
                Ok(m.client.connect_addr(server, addr).await?)
            })
            .await?;
            samples.push(started.elapsed());
            session.close().await;
            opened += 1;
        }

        let started = Instant::now();
        let mut loops = Vec::new();
        for m in members.iter().take(workers) {
            let m = m.clone();
            let n = opts.reconnects_per_worker;
            loops.push(tokio::spawn(async move {
                let server = m.paired()?;
                for _ in 0..n {
                    m.client.connect_addr(server, addr).await?.close().await;
                }
                Ok::<_, BenchError>(())
            }));
        }
        for l in loops {
            within("reconnect loops", Duration::from_secs(120), async {
                l.await
                    .map_err(|e| BenchError::Setup(format!("reconnect loop: {e}")))?
            })
            .await?;
        }
        let total = workers * opts.reconnects_per_worker;
        rates.push(total as f64 / started.elapsed().as_secs_f64());
        opened += total as u64;
    }
    srv.wait_counts("every session reported", Duration::from_secs(10), |c| {
        c.connected - before >= opened
    })
    .await?;
    let c = srv.counts();
    if c.connected - before != opened || c.failures != 0 {
        return Err(BenchError::Mismatch(format!(
            "{opened} sessions opened, server reported {} and {} failures",
            c.connected - before,
            c.failures
        )));
    }
    Ok(ReconnectFigures {
        latency: Latency::of(&samples),
        per_sec: Spread::of(&rates),
        workers,
    })
}
