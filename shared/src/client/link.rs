//! The supervised link to one paired server: everything between "I want to talk to server S"
//! and a working session, kept working.
//!
//! Owns the one reconnection loop of the client. A [`Link`] opens a session (the given and
//! saved addresses first, then discovery filtered on the pinned id, racing them, as
//! [`Client::connect_auto`] does), watches it (the session declares itself lost when the
//! server falls silent, see [`super::SessionOptions`]), and when it is lost opens another,
//! with backoff and jitter, until the server says the pairing is void (re-pair required:
//! terminal) or the link is closed. What happens is reported as [`LinkEvent`]s, the same for
//! every front end.
//!
//! Requests go through a [`LinkHandle`], straight to the current session, so they are
//! pipelined; while the link heals, a request waits up to the deadline its caller gives, then
//! fails with [`ClientError::NotConnected`]. A request is sent at most once: one whose session
//! is lost before the answer fails, and is never sent again on the next session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{Client, ClientError, Reached, Session, SessionEvent, SessionHandle};
use crate::discovery::{DiscoveryOptions, Via};
use crate::message::RepairReason;
use crate::state::PairedServer;

/// Events held for a front end that is behind; the link waits for it rather than drop one.
const EVENT_QUEUE: usize = 256;

/// How a link reconnects.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Discovery to race the saved addresses against (`None`: saved addresses only).
    pub discovery: Option<DiscoveryOptions>,
    /// An address to try first, and how it was found. One a person typed ([`Via::Manual`],
    /// `--server`) is tried first on every attempt and reported as `manual`. One discovery
    /// just found is tried first, and reported with its path, on the link's first connection
    /// only: later attempts find it among the saved addresses (`last`), since by then it is
    /// only where the server was.
    pub first: Option<(SocketAddr, Via)>,
    /// Wait before the second attempt after a loss (the first is at once); doubles after
    /// each failed attempt.
    pub backoff_first: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            discovery: Some(DiscoveryOptions::default()),
            first: None,
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// What a link reports. Every front end shows the same facts.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// An attempt to open a session started (1 for the first after a start or a loss).
    Connecting {
        /// The attempt's number.
        attempt: u32,
    },
    /// A session is open.
    Connected {
        /// The server as saved now (the token may be renewed, the address is saved first).
        server: PairedServer,
        /// Where it answered.
        addr: SocketAddr,
        /// How that address was found (`None` for a session handed over after pairing).
        via: Option<Via>,
        /// How long the attempt took.
        elapsed: Duration,
    },
    /// The session was lost: closed by the server, silent too long, or broken.
    Lost {
        /// Why, for people.
        reason: String,
    },
    /// An attempt failed; the next one starts after `wait`.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// How long until the next.
        wait: Duration,
        /// Why it failed.
        error: Arc<ClientError>,
    },
    /// The server no longer accepts this pairing (revoked, token expired, unknown): the
    /// link has stopped, and only pairing again helps.
    RepairRequired {
        /// Why.
        reason: RepairReason,
    },
    /// A notice from the server.
    Notice {
        /// Its text (cleaned of control characters).
        text: String,
        /// When it was sent, Unix milliseconds.
        at_ms: u64,
    },
}

/// Why a link ended for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Repair(RepairReason),
    Closed,
}

/// Where the link stands, as requests see it.
#[derive(Debug, Clone)]
enum Up {
    /// No session now; `why` is the last reason, for an error.
    Healing {
        why: String,
    },
    Ready(SessionHandle),
    Ended(Ended),
}

/// Run requests over a link, from any task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    state: watch::Receiver<Up>,
}

impl LinkHandle {
    /// The session to use now, waiting up to `wait` while the link heals.
    async fn session(&self, wait: Duration) -> Result<SessionHandle, ClientError> {
        let mut state = self.state.clone();
        let deadline = Instant::now() + wait;
        loop {
            let now = state.borrow_and_update().clone();
            let why = match now {
                Up::Ready(session) if !session.is_closed() => return Ok(session),
                // The session ended a moment ago; the supervisor is about to say so.
                Up::Ready(_) => "the connection was lost".to_string(),
                Up::Ended(Ended::Repair(reason)) => {
                    return Err(ClientError::RepairRequired { reason });
                }
                Up::Ended(Ended::Closed) => {
                    return Err(ClientError::Closed("the link was closed".into()));
                }
                Up::Healing { why } => why,
            };
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(ClientError::Closed("the link was closed".into())),
                Err(_) => {
                    return Err(ClientError::NotConnected {
                        waited: wait,
                        reason: why,
                    });
                }
            }
        }
    }

    /// Run `task` with `args` on the server. While the link heals, wait up to `wait` for a
    /// session; then the request is sent once, and its answer (or the loss of its session)
    /// is the result.
    pub async fn request(
        &self,
        task: &str,
        args: Vec<String>,
        wait: Duration,
    ) -> Result<Value, ClientError> {
        self.session(wait).await?.request(task, args).await
    }

    /// Start `task` with `args` as a streaming run (output, stdin, cancellation: see
    /// [`super::RunHandle`]), waiting up to `wait` for a session while the link heals. A run
    /// whose session is lost ends with [`super::RunEvent::Lost`]; it is never started again.
    pub async fn run(
        &self,
        task: &str,
        args: Vec<String>,
        wait: Duration,
    ) -> Result<super::RunHandle, ClientError> {
        self.session(wait)
            .await?
            .run(task, args, super::run::DEFAULT_WINDOW)
            .await
    }

    /// The tasks this client may run, waiting up to `wait` for a session.
    pub async fn list_tasks(
        &self,
        wait: Duration,
    ) -> Result<Vec<crate::message::TaskInfo>, ClientError> {
        self.session(wait).await?.list_tasks().await
    }

    /// Whether a session is open right now.
    pub fn is_connected(&self) -> bool {
        matches!(&*self.state.borrow(), Up::Ready(s) if !s.is_closed())
    }
}

/// A supervised link to one paired server. Dropping it stops it; [`Link::close`] also ends
/// the session cleanly.
#[derive(Debug)]
pub struct Link {
    handle: LinkHandle,
    events: mpsc::Receiver<LinkEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Start a link to `server`; it connects at once.
    pub fn start(client: Arc<Client>, server: PairedServer, options: LinkOptions) -> Self {
        Self::spawn(client, server, options, None)
    }

    /// Carry on with `reached`, a session already open (from
    /// [`Client::connect_auto`]), healing it when it is lost.
    pub fn adopt(client: Arc<Client>, reached: Reached, options: LinkOptions) -> Self {
        let server = reached.session.server().clone();
        let first = First {
            session: reached.session,
            via: Some(reached.via),
            elapsed: reached.elapsed,
        };
        Self::spawn(client, server, options, Some(first))
    }

    /// Carry on with `session`, opened right after pairing, healing it when it is lost.
    pub fn adopt_session(client: Arc<Client>, session: Session, options: LinkOptions) -> Self {
        let server = session.server().clone();
        let first = First {
            session,
            via: None,
            elapsed: Duration::ZERO,
        };
        Self::spawn(client, server, options, Some(first))
    }

    fn spawn(
        client: Arc<Client>,
        server: PairedServer,
        options: LinkOptions,
        first: Option<First>,
    ) -> Self {
        let (state_tx, state) = watch::channel(Up::Healing {
            why: "not connected yet".into(),
        });
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (stop, stopped) = oneshot::channel();
        let supervisor = Supervisor {
            client,
            server,
            options,
            state: state_tx,
            events: events_tx,
        };
        let task = tokio::spawn(supervisor.run(first, stopped));
        Self {
            handle: LinkHandle { state },
            events,
            stop: Some(stop),
            task,
        }
    }

    /// A handle for requests, for this or other tasks.
    pub fn handle(&self) -> LinkHandle {
        self.handle.clone()
    }

    /// See [`LinkHandle::request`].
    pub async fn request(
        &self,
        task: &str,
        args: Vec<String>,
        wait: Duration,
    ) -> Result<Value, ClientError> {
        self.handle.request(task, args, wait).await
    }

    /// See [`LinkHandle::run`].
    pub async fn run(
        &self,
        task: &str,
        args: Vec<String>,
        wait: Duration,
    ) -> Result<super::RunHandle, ClientError> {
        self.handle.run(task, args, wait).await
    }

    /// The next event; `None` once the link has stopped and every event was read.
    pub async fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// Stop healing, close the session cleanly (replies in flight are waited for), and end.
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Nothing more will be read: let the supervisor's last reports through.
        self.events.close();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

struct First {
    session: Session,
    via: Option<Via>,
    elapsed: Duration,
}

struct Supervisor {
    client: Arc<Client>,
    server: PairedServer,
    options: LinkOptions,
    state: watch::Sender<Up>,
    events: mpsc::Sender<LinkEvent>,
}

/// The wait after failed attempt `attempt` (1-based): `first` doubling, at most `max`, with
/// ±20 % jitter so that clients that lost the same server do not come back in step.
pub fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    let base = first.checked_mul(factor).unwrap_or(max).min(max);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    base.mul_f64(jitter).min(max.mul_f64(1.2))
}

impl Supervisor {
    async fn report(&self, event: LinkEvent) {
        let _ = self.events.send(event).await;
    }

    async fn run(mut self, first: Option<First>, mut stopped: oneshot::Receiver<()>) {
        // Whether the link has had a connection yet (an adopted session is one).
        let mut connected_once = first.is_some();
        let mut pending_first = first;
        let mut attempt = 0u32;
        loop {
            let opened = match pending_first.take() {
                Some(f) => Some((f.session, f.via, f.elapsed)),
                None => {
                    attempt += 1;
                    self.report(LinkEvent::Connecting { attempt }).await;
                    let first = match self.options.first {
                        Some((addr, Via::Manual)) => Some((addr, Via::Manual)),
                        found if !connected_once => found,
                        _ => None,
                    };
                    let connect = self.client.connect_auto(
                        &self.server,
                        first,
                        self.options.discovery.clone(),
                    );
                    let result = tokio::select! {
                        r = connect => r,
                        _ = &mut stopped => return self.end(Ended::Closed, None).await,
                    };
                    match result {
                        Ok(reached) => Some((reached.session, Some(reached.via), reached.elapsed)),
                        Err(ClientError::RepairRequired { reason }) => {
                            return self.end(Ended::Repair(reason), None).await;
                        }
                        Err(e) => {
                            let wait = backoff(
                                attempt,
                                self.options.backoff_first,
                                self.options.backoff_max,
                            );
                            let why = e.to_string();
                            self.state.send_replace(Up::Healing { why: why.clone() });
                            self.report(LinkEvent::Retrying {
                                attempt,
                                wait,
                                error: Arc::new(e),
                            })
                            .await;
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = &mut stopped => return self.end(Ended::Closed, None).await,
                            }
                            None
                        }
                    }
                }
            };
            let Some((mut session, via, elapsed)) = opened else {
                continue;
            };
            attempt = 0;
            connected_once = true;
            self.server = session.server().clone();
            self.state.send_replace(Up::Ready(session.handle()));
            self.report(LinkEvent::Connected {
                server: self.server.clone(),
                addr: session.addr(),
                via,
                elapsed,
            })
            .await;
            // Serve until the session ends or the link is closed.
            let (reason, repair) = loop {
                tokio::select! {
                    ev = session.next_event() => match ev {
                        Some(SessionEvent::Notice { text, at_ms }) => {
                            // Notices are dropped for a front end that does not read them;
                            // the link must go on watching its session.
                            let _ = self.events.try_send(LinkEvent::Notice { text, at_ms });
                        }
                        Some(SessionEvent::Closed { reason, repair }) => break (reason, repair),
                        None => break ("the session ended".to_string(), None),
                    },
                    _ = &mut stopped => return self.end(Ended::Closed, Some(session)).await,
                }
            };
            if let Some(reason) = repair {
                return self.end(Ended::Repair(reason), None).await;
            }
            self.state.send_replace(Up::Healing {
                why: reason.clone(),
            });
            self.report(LinkEvent::Lost { reason }).await;
            // The next attempt starts at once; backoff applies from its failure on.
        }
    }

    async fn end(self, why: Ended, session: Option<Session>) {
        self.state.send_replace(Up::Ended(why));
        if let Some(s) = session {
            s.close().await;
        }
        if let Ended::Repair(reason) = why {
            self.client.note_refusal(&self.server, reason).await;
            self.report(LinkEvent::RepairRequired { reason }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let first = Duration::from_secs(1);
        let max = Duration::from_secs(30);
        for _ in 0..200 {
            let one = backoff(1, first, max);
            assert!(one >= Duration::from_millis(800) && one <= Duration::from_millis(1200));
            let three = backoff(3, first, max);
            assert!(three >= Duration::from_millis(3200) && three <= Duration::from_millis(4800));
            assert!(backoff(40, first, max) <= Duration::from_secs(36));
            assert!(backoff(u32::MAX, first, max) <= Duration::from_secs(36));
        }
        // Jitter: not always the same.
        let waits: std::collections::HashSet<u128> = (0..50)
            .map(|_| backoff(2, first, max).as_millis())
            .collect();
        assert!(waits.len() > 1);
    }
}
