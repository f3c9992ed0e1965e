//! Reconnecting to a paired server wherever it is now: saved addresses first, then, after a
//! short head start, discovery filtered on the pinned id, racing the saved addresses. The
//! first candidate that proves the pinned id in TLS wins and the rest is cancelled.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::{Client, ClientError, Session};
use crate::discovery::{DiscoveryEvent, DiscoveryOptions, Via, discover};
use crate::state::PairedServer;

/// How long saved addresses run alone before discovery joins the race.
pub const HEAD_START: Duration = Duration::from_millis(40);

/// A session and how it was reached.
#[derive(Debug)]
pub struct Reached {
    /// The open session.
    pub session: Session,
    /// Which path found the address.
    pub via: Via,
    /// Time from the start of the attempt.
    pub elapsed: Duration,
}

impl Client {
    /// Connect to `server`, trying `manual` and its saved addresses first and discovering it
    /// (filtered on its pinned id) if they do not answer within [`HEAD_START`]. With
    /// `discovery` set to `None`, only the given and saved addresses are tried.
    pub async fn connect_auto(
        &self,
        server: &PairedServer,
        manual: Option<SocketAddr>,
        discovery: Option<DiscoveryOptions>,
    ) -> Result<Reached, ClientError> {
        let started = Instant::now();
        let mut tried: HashSet<SocketAddr> = HashSet::new();
        let attempt = |addr: SocketAddr, via: Via| async move {
            (self.connect_addr(server, addr).await, via)
        };
        let mut attempts = FuturesUnordered::new();
        let candidates = manual
            .map(|a| (a, Via::Manual))
            .into_iter()
            .chain(server.addrs.iter().map(|a| (*a, Via::Last)));
        for (addr, via) in candidates {
            if tried.insert(addr) {
                attempts.push(attempt(addr, via));
            }
        }
        let head_start = tokio::time::sleep(HEAD_START);
        tokio::pin!(head_start);
        let mut search = None;
        let mut search_done = discovery.is_none();
        let mut options = discovery;
        let mut last_error: Option<ClientError> = None;
        loop {
            if attempts.is_empty() && search_done {
                return Err(last_error.unwrap_or_else(|| {
                    ClientError::unreachable(
                        format!("server {}", server.server_id.short()),
                        "no saved address answered and discovery found nothing",
                    )
                }));
            }
            // Nothing left to race: start the search now rather than after the head start.
            if attempts.is_empty()
                && search.is_none()
                && let Some(o) = options.take()
            {
                search = Some(discover(self.dialer(), o));
            }
            tokio::select! {
                Some((result, via)) = attempts.next(), if !attempts.is_empty() => match result {
                    Ok(session) => return Ok(Reached { session, via, elapsed: started.elapsed() }),
                    // The right server answered definitively: searching further cannot help.
                    Err(e @ (ClientError::RepairRequired { .. } | ClientError::State(_))) => return Err(e),
                    Err(e) => {
                        tracing::debug!("candidate failed: {e}");
                        if !last_error.as_ref().is_some_and(ClientError::is_identity_mismatch) {
                            last_error = Some(e);
                        }
                    }
                },
                _ = &mut head_start, if search.is_none() && options.is_some() => {
                    if let Some(o) = options.take() {
                        search = Some(discover(self.dialer(), o));
                    }
                }
                ev = async { search.as_mut().expect("guarded").next().await }, if search.is_some() && !search_done => match ev {
                    Some(DiscoveryEvent::Found(f)) if f.server_id == server.server_id && tried.insert(f.addr) => {
                        attempts.push(attempt(f.addr, f.via));
                    }
                    Some(DiscoveryEvent::Done { .. }) | None => search_done = true,
                    Some(_) => {}
                },
            }
        }
    }
}
