//! Reconnecting to a paired server wherever it is now: saved addresses first, then, after a
//! short head start, discovery filtered on the pinned id, racing the saved addresses. The
//! first candidate that proves the pinned id in TLS wins and the rest is cancelled.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::{Client, ClientError, Session};
use crate::dialer::DialError;
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
    /// Connect to `server`, trying `first` (an address and the path that found it: typed,
    /// [`Via::Manual`], or just discovered) and its saved addresses ([`Via::Last`]) first,
    /// and discovering it (filtered on its pinned id) if they do not answer within
    /// [`HEAD_START`]. With `discovery` set to `None`, only the given and saved addresses are
    /// tried.
    pub async fn connect_auto(
        &self,
        server: &PairedServer,
        first: Option<(SocketAddr, Via)>,
        discovery: Option<DiscoveryOptions>,
    ) -> Result<Reached, ClientError> {
        let started = Instant::now();
        let mut tried: HashSet<SocketAddr> = HashSet::new();
        let attempt = |addr: SocketAddr, via: Via| async move {
            (self.connect_addr(server, addr).await, addr, via)
        };
        let mut attempts = FuturesUnordered::new();
        let candidates = first
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
        let searched = options.is_some();
        let mut last_error: Option<ClientError> = None;
        let mut failures = Failures::default();
        loop {
            if attempts.is_empty() && search_done {
                return Err(failures.into_error(server, last_error, searched));
            }
            // Nothing left to race: start the search now rather than after the head start.
            if attempts.is_empty()
                && search.is_none()
                && let Some(o) = options.take()
            {
                search = Some(discover(self.dialer(), o));
            }
            tokio::select! {
                Some((result, addr, via)) = attempts.next(), if !attempts.is_empty() => match result {
                    Ok(session) => return Ok(Reached { session, via, elapsed: started.elapsed() }),
                    // The right server answered definitively: searching further cannot help.
                    Err(e @ (ClientError::RepairRequired { .. } | ClientError::State(_))) => return Err(e),
                    Err(e) => {
                        tracing::debug!("candidate failed: {e}");
                        failures.push(addr, &e);
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

/// Addresses listed at most in the error when every one failed.
const FAILURES_LISTED: usize = 6;

/// Every address that failed, and why, so the error names them all rather than the last.
#[derive(Debug, Default)]
struct Failures {
    listed: Vec<String>,
    more: usize,
}

impl Failures {
    fn push(&mut self, addr: SocketAddr, error: &ClientError) {
        if self.listed.len() >= FAILURES_LISTED {
            self.more += 1;
            return;
        }
        let why = match error {
            ClientError::Dial(DialError::Unreachable { reason, .. }) => reason.clone(),
            other => other.to_string(),
        };
        self.listed.push(format!("{addr} ({why})"));
    }

    /// The error for an attempt where nothing answered: a different key answering wins (it
    /// is the one to act on); one failed address keeps its own error; more are all named.
    fn into_error(
        self,
        server: &PairedServer,
        last: Option<ClientError>,
        searched: bool,
    ) -> ClientError {
        let search = if searched {
            "; discovery did not find it elsewhere"
        } else {
            ""
        };
        let count = self.listed.len() + self.more;
        match last {
            Some(ClientError::Dial(DialError::Unreachable { addr, reason })) if count < 2 => {
                ClientError::unreachable(addr, format!("{reason}{search}"))
            }
            Some(e) if e.is_identity_mismatch() || count < 2 => e,
            Some(_) => {
                let more = if self.more > 0 {
                    format!(" and {} more", self.more)
                } else {
                    String::new()
                };
                ClientError::unreachable(
                    format!("server {}", server.server_id.short()),
                    format!(
                        "none of its {count} addresses answered: {}{more}{search}",
                        self.listed.join(", ")
                    ),
                )
            }
            None => ClientError::unreachable(
                format!("server {}", server.server_id.short()),
                if searched {
                    "it has no saved address and discovery did not find it"
                } else {
                    "it has no saved address, and discovery is off"
                },
            ),
        }
    }
}
