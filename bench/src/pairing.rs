//! Pairing, from the client's request to a token stored on disk.
//!
//! The code is the one the server shows its operator: read from its `pair_request` event, the
//! same line a person or a script would read. Each pairing uses a fresh identity on its own
//! source address, as a new kiosk would; identity creation is not measured.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::server::{Codes, ServerProc};
use crate::stats::{Latency, Spread};
use crate::{BenchError, Member, Options, make_members, within};

/// Pairing figures.
#[derive(Debug, Clone, Serialize)]
pub struct PairingFigures {
    /// One pairing at a time: request → stored token.
    pub latency: Latency,
    /// Pairings per second with [`PairingFigures::workers`] side by side.
    pub per_sec: Spread,
    /// Pairings running at once for the rate.
    pub workers: usize,
}

/// Pair one member; returns how long it took. The member keeps its pairing.
async fn pair_one(codes: &Codes, m: &mut Member, addr: SocketAddr) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let mut pairing = m.client.start_pairing(addr).await?;
    let code = codes
        .code_for(&m.client.id(), Duration::from_secs(30))
        .await?;
    let paired = pairing.submit(&code).await?;
    let took = started.elapsed();
    m.server = Some(paired);
    pairing.into_session()?.close().await;
    Ok(took)
}

/// Measure pairing; returns the figures and every member it paired.
pub async fn run(
    opts: &Options,
    srv: &ServerProc,
    dir: &Path,
) -> Result<(PairingFigures, Vec<Member>), BenchError> {
    let addr = srv.addr();
    let codes = srv.codes();
    let mut paired = Vec::new();
    let mut next = 0;
    let mut samples = Vec::new();
    let mut rates = Vec::new();
    for rep in 0..opts.reps {
        opts.progress(format!("pairing: repetition {}/{}", rep + 1, opts.reps));
        let mut members = make_members(dir, next, opts.pairings).await?;
        next += opts.pairings;
        for m in &mut members {
            samples.push(
                within(
                    "pairing",
                    Duration::from_secs(60),
                    pair_one(&codes, m, addr),
                )
                .await?,
            );
        }
        paired.extend(members);

        let total = opts.pairing_workers * opts.pairings_per_worker;
        let members = make_members(dir, next, total).await?;
        next += total;
        let started = Instant::now();
        let mut workers = Vec::new();
        for chunk in members.chunks(opts.pairings_per_worker) {
            let mut chunk = chunk.to_vec();
            let codes = codes.clone();
            workers.push(tokio::spawn(async move {
                for m in &mut chunk {
                    pair_one(&codes, m, addr).await?;
                }
                Ok::<_, BenchError>(chunk)
            }));
        }
        for w in workers {
            let done = within("pairing workers", Duration::from_secs(120), async {
                w.await
                    .map_err(|e| BenchError::Setup(format!("pairing worker: {e}")))?
            })
            .await?;
            paired.extend(done);
        }
        rates.push(total as f64 / started.elapsed().as_secs_f64());
    }
    let expected = paired.len() as u64;
    srv.wait_counts("every pairing reported", Duration::from_secs(10), |c| {
        c.paired >= expected
    })
    .await?;
    let c = srv.counts();
    if c.paired != expected || c.failures != 0 {
        return Err(BenchError::Mismatch(format!(
            "{expected} pairings made, server reported {} paired and {} failures",
            c.paired, c.failures
        )));
    }
    Ok((
        PairingFigures {
            latency: Latency::of(&samples),
            per_sec: Spread::of(&rates),
            workers: opts.pairing_workers,
        },
        paired,
    ))
}
