//! The client engine: dial a server, pair with a code, open authenticated sessions.
//!
//! Owns the client's side of the protocol and its saved pairings. The apps supply the code
//! (typed by a person) and render results; they never touch the wire.

pub mod limits;
mod link;
pub mod outcome;
mod pair;
mod reconnect;
pub mod run;
mod session;
pub mod target;
mod writer;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use crate::dialer::{Conn, DialError, DialOptions, Dialer, ProbeResult};
pub use link::{Link, LinkEvent, LinkHandle, LinkOptions, backoff};
pub use pair::{Challenge, Pairing};
pub use reconnect::{HEAD_START, Reached};
pub use run::{RunEvent, RunHandle, RunInput};
pub use session::{NOTICE_QUEUE, Session, SessionEvent, SessionHandle, SessionOptions};

use crate::connection::ConnectionError;
use crate::identity::{Identity, PeerId};
use crate::message::{ErrorCode, PairFailure, RepairReason};
use crate::state::{ClientStore, PairedServer, SelectError, StateError};

/// Tunables of the client. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed for the TCP connect.
    pub connect_timeout: Duration,
    /// Time allowed for the TLS handshake and each protocol step.
    pub step_timeout: Duration,
    /// Largest frame accepted from the server.
    pub max_frame: usize,
    /// Local address to connect from (tests and load generators use several loopback ones).
    pub local_ip: Option<IpAddr>,
    /// Longest server-requested wait the engine sits out by itself before it retries; a
    /// longer one is returned to the caller. Capped at [`limits::MAX_AUTO_WAIT`].
    pub max_auto_wait: Duration,
    /// Time a task may take to be answered before [`Session::request`] gives up with
    /// [`ClientError::NoReply`] (the session stays open; a late reply is dropped).
    pub request_timeout: Duration,
    /// A session that has heard nothing from the server for this long sends a `ping`.
    pub keepalive: Duration,
    /// A session that has heard nothing at all from the server for this long (no reply, no
    /// pong) is lost: the server is gone, frozen or unreachable.
    pub dead_after: Duration,
    /// Offer the compact encoding (ALPN `csc/2`); off, the client offers only `csc/1` and
    /// writes every message as JSON, as clients before it did.
    pub compact: bool,
}

impl ClientOptions {
    /// The part of these options a session needs.
    pub fn session(&self) -> SessionOptions {
        SessionOptions {
            request_timeout: self.request_timeout,
            keepalive: self.keepalive.max(Duration::from_millis(50)),
            dead_after: self
                .dead_after
                .max(self.keepalive + Duration::from_millis(50)),
        }
    }

    /// The part of these options that opening a connection needs.
    pub fn dial(&self) -> DialOptions {
        DialOptions {
            connect_timeout: self.connect_timeout,
            step_timeout: self.step_timeout,
            max_frame: self.max_frame,
            local_ip: self.local_ip,
            compact: self.compact,
        }
    }

    /// [`ClientOptions::max_auto_wait`] as it applies: never above [`limits::MAX_AUTO_WAIT`].
    pub fn auto_wait(&self) -> Duration {
        self.max_auto_wait.min(limits::MAX_AUTO_WAIT)
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            step_timeout: Duration::from_secs(15),
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
            local_ip: None,
            max_auto_wait: limits::MAX_AUTO_WAIT,
            request_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(3),
            dead_after: Duration::from_secs(8),
            compact: true,
        }
    }
}

/// Everything that can go wrong on the client side, in terms a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be opened: nothing answered, it was not our protocol, or a
    /// different key answered where the paired server was expected.
    #[error(transparent)]
    Dial(DialError),
    /// The code was wrong.
    #[error("wrong code, {attempts_left} attempts left")]
    WrongCode {
        /// Tries left for this code (at most [`limits::MAX_ATTEMPTS`]).
        attempts_left: u32,
        /// Wait before the next try (at most [`limits::MAX_RETRY_HINT`]).
        retry_after: Option<Duration>,
    },
    /// Too many wrong codes.
    #[error("too many wrong codes: the code is void, ask for a new one")]
    CodeExhausted,
    /// The code expired.
    #[error("code expired: ask again")]
    CodeExpired,
    /// The server would not start or continue pairing.
    #[error("pairing refused: {}", describe_refusal(*reason, *retry_after))]
    PairingRefused {
        /// Why.
        reason: PairFailure,
        /// When to try again, if that helps (at most [`limits::MAX_RETRY_HINT`]).
        retry_after: Option<Duration>,
    },
    /// The server's key confirmation failed although ours was accepted.
    #[error(
        "the server's key confirmation did not match: possible machine in the middle; not pairing"
    )]
    ServerConfirmationFailed,
    /// The saved pairing no longer works.
    #[error("re-pair required: {}", reason.describe())]
    RepairRequired {
        /// Why.
        reason: RepairReason,
    },
    /// The server reported an error.
    #[error("server error ({code:?}): {message}")]
    Server {
        /// Class.
        code: ErrorCode,
        /// Text.
        message: String,
    },
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A task failed on the server.
    #[error("task failed ({code}): {message}")]
    Task {
        /// Class, e.g. `unknown_task`.
        code: String,
        /// Text.
        message: String,
    },
    /// The session ended.
    #[error("connection closed: {0}")]
    Closed(String),
    /// A [`Link`] had no session for as long as the caller would wait.
    #[error("not connected to the server ({reason}); gave up after {:.1} s", waited.as_secs_f64())]
    NotConnected {
        /// How long the request waited.
        waited: Duration,
        /// Why there was no session (the last loss or failed attempt).
        reason: String,
    },
    /// A task got no reply in [`ClientOptions::request_timeout`].
    #[error("the server did not answer {task:?} within {} s", waited.as_secs_f64())]
    NoReply {
        /// The task.
        task: String,
        /// How long we waited.
        waited: Duration,
    },
    /// Reading or writing messages failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The state folder could not be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// The requested server is not (unambiguously) paired.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// TLS could not be configured.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// A refusal for people, with its wait when there is one: "pairing is closed on this server:
/// ask its operator to open it (reopens by itself in 14 min)".
pub fn describe_refusal(reason: PairFailure, retry_after: Option<Duration>) -> String {
    match retry_after.filter(|w| !w.is_zero()) {
        None => reason.describe().to_string(),
        Some(w) if reason == PairFailure::PairingClosed => format!(
            "{} (reopens by itself in {})",
            reason.describe(),
            limits::wait_in_words(w)
        ),
        Some(w) => format!(
            "{} (try again in {})",
            reason.describe(),
            limits::wait_in_words(w)
        ),
    }
}

impl From<DialError> for ClientError {
    fn from(e: DialError) -> Self {
        ClientError::Dial(e)
    }
}

impl ClientError {
    /// Nothing answered at `addr`.
    pub fn unreachable(addr: impl Into<String>, reason: impl Into<String>) -> Self {
        ClientError::Dial(DialError::Unreachable {
            addr: addr.into(),
            reason: reason.into(),
        })
    }

    /// Whether a different key answered where the paired server was expected.
    pub fn is_identity_mismatch(&self) -> bool {
        matches!(self, ClientError::Dial(DialError::IdentityMismatch { .. }))
    }
}

/// A client: its identity, its state folder and its options.
#[derive(Debug)]
pub struct Client {
    store: ClientStore,
    dialer: Dialer,
    options: ClientOptions,
    name: String,
}

impl Client {
    /// Open the state in `state_dir`, creating the identity on first use.
    pub fn open(
        state_dir: &std::path::Path,
        name: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let store = ClientStore::open(state_dir)?;
        let identity = store.identity(name)?;
        Ok(Self {
            store,
            dialer: Dialer::new(std::sync::Arc::new(identity), options.dial()),
            options,
            name: name.to_string(),
        })
    }

    /// This client's id.
    pub fn id(&self) -> PeerId {
        self.dialer.identity.id()
    }

    /// A dialer with this client's identity, for discovery tasks.
    pub fn dialer(&self) -> Dialer {
        self.dialer.clone()
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.dialer.identity
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.options
    }

    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
        trust: crate::tls::ServerTrust,
    ) -> Result<(Conn, crate::tls::SessionInfo), ClientError> {
        Ok(self.dialer.dial(addr, trust).await?)
    }

    /// This client's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state folder.
    pub fn store(&self) -> &ClientStore {
        &self.store
    }

    /// The saved pairings.
    pub fn servers(&self) -> Result<Vec<PairedServer>, ClientError> {
        Ok(self.store.load()?.servers)
    }

    /// The paired server `query` names (id prefix or name), or the only one.
    pub fn select(&self, query: Option<&str>) -> Result<PairedServer, ClientError> {
        Ok(self.store.load()?.select(query)?.clone())
    }

    /// Ask the server at `addr` to pair; the server shows a code to its operator.
    pub async fn start_pairing(&self, addr: SocketAddr) -> Result<Pairing, ClientError> {
        Pairing::start(self, addr).await
    }

    /// Open a session with a paired server, trying its known addresses in order.
    pub async fn connect(&self, server: &PairedServer) -> Result<Session, ClientError> {
        if server.addrs.is_empty() {
            return Err(ClientError::unreachable(
                "(no known address)",
                "the server's address is unknown",
            ));
        }
        let mut last = None;
        for addr in &server.addrs {
            match self.connect_addr(server, *addr).await {
                Ok(s) => return Ok(s),
                // A definite answer from the right server ends the search.
                Err(e @ (ClientError::RepairRequired { .. } | ClientError::State(_))) => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::debug!(%addr, "connect failed: {e}");
                    // Prefer reporting a mismatch over plain unreachability: it needs action.
                    if !last.as_ref().is_some_and(ClientError::is_identity_mismatch) {
                        last = Some(e);
                    }
                }
            }
        }
        Err(last.unwrap_or(ClientError::unreachable("(none)", "no address")))
    }

    /// Open a session with `server` at `addr` (its id is still pinned). A refusal that
    /// needs a new pairing is recorded with the pairing ([`PairedServer::refused`]).
    pub async fn connect_addr(
        &self,
        server: &PairedServer,
        addr: SocketAddr,
    ) -> Result<Session, ClientError> {
        let result = Session::open(self, server, addr).await;
        if let Err(ClientError::RepairRequired { reason }) = &result {
            self.note_refusal(server, *reason).await;
        }
        result
    }

    /// Record that `server` refused this client's token for `reason`, so `servers` lists
    /// it as needing a new pairing. A failure to write is logged: the refusal itself has
    /// been reported to the caller already.
    pub(crate) async fn note_refusal(&self, server: &PairedServer, reason: RepairReason) {
        let refusal = crate::state::Refusal {
            reason,
            at: crate::unix_now(),
        };
        let (store, id, token) = (self.store.clone(), server.server_id, server.token.clone());
        let written = tokio::task::spawn_blocking(move || {
            store.update(|f| f.mark_refused(&id, &token, refusal))
        })
        .await;
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cannot record the server's refusal: {e}"),
            Err(e) => tracing::warn!("cannot record the server's refusal: {e}"),
        }
    }

    /// Forget `query`'s pairing: ask the server to revoke it (best effort), then delete it
    /// locally. Returns the removed entry and whether the server confirmed.
    pub async fn forget(
        &self,
        query: &str,
    ) -> Result<(PairedServer, Result<(), ClientError>), ClientError> {
        let server = self.select(Some(query))?;
        let remote = match self.connect(&server).await {
            Ok(session) => session.unpair().await,
            Err(e) => Err(e),
        };
        self.store
            .update(|f| f.servers.retain(|s| s.server_id != server.server_id))?;
        Ok((server, remote))
    }
}
