//! The client's side of pairing: request a code, answer it with SPAKE2, confirm keys, save
//! the token and the pinned server id.
//!
//! Every number the server sends goes through [`super::limits`] before it is stored or waited
//! on. A server closes the connection after refusing a `pair_request`, so asking again (a
//! retry after a short backoff, or a new code) dials a new connection, pinned to the key that
//! answered the first one.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::limits;
use super::session::Session;
use super::{Client, ClientError};
use crate::connection::ConnectionError;
use crate::dialer::{Conn, Dialer};
use crate::frame::FrameError;
use crate::identity::{Identity, PeerId};
use crate::message::{B64, ErrorCode, Message, PairFailure};
use crate::pairing::{Binding, CODE_DIGITS, ClientPake, Code};
use crate::state::{ClientStore, PairedServer};
use crate::tls::{ServerTrust, SessionInfo};

/// What the server said when it made a code, within [`super::limits`].
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Server display name.
    pub server_name: String,
    /// Server id, taken from its TLS certificate (not from anything it said).
    pub server_id: PeerId,
    /// Where the server is.
    pub addr: SocketAddr,
    /// When the code expires (client clock): at most [`limits::MAX_CODE_LIFETIME`] after the
    /// challenge arrived.
    pub expires_at: Instant,
    /// Wrong answers still allowed: at most [`limits::MAX_ATTEMPTS`].
    pub attempts_left: u32,
    /// Digits in the code: always [`CODE_DIGITS`] (anything else is a protocol error).
    pub code_digits: u8,
}

/// A pairing in progress with one server.
pub struct Pairing {
    dialer: Dialer,
    options: super::ClientOptions,
    /// `None` once the server has closed it (it does after refusing a request) or it failed;
    /// the next request dials again.
    conn: Option<Conn>,
    binding: Binding,
    store: ClientStore,
    challenge: Challenge,
    not_before: Instant,
    paired: Option<PairedServer>,
}

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pairing")
            .field("challenge", &self.challenge)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

fn refused(reason: PairFailure, attempts_left: u32, retry_after: Option<Duration>) -> ClientError {
    match reason {
        PairFailure::WrongCode => ClientError::WrongCode {
            attempts_left,
            retry_after,
        },
        PairFailure::CodeExhausted => ClientError::CodeExhausted,
        PairFailure::CodeExpired => ClientError::CodeExpired,
        other => ClientError::PairingRefused {
            reason: other,
            retry_after,
        },
    }
}

/// Failures after which the server keeps the connection (and the pairing state) open.
fn keeps_connection(reason: PairFailure) -> bool {
    matches!(
        reason,
        PairFailure::WrongCode
            | PairFailure::CodeExhausted
            | PairFailure::CodeExpired
            | PairFailure::RateLimited
    )
}

/// Whether `e` means the connection is gone (as opposed to slow or confused).
fn is_gone(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::Closed | ConnectionError::Frame(FrameError::Io(_) | FrameError::Truncated)
    )
}

fn server_error(
    code: ErrorCode,
    message: String,
    reason: Option<crate::message::RepairReason>,
) -> ClientError {
    match (code, reason) {
        (ErrorCode::RepairRequired | ErrorCode::Revoked, Some(reason)) => {
            ClientError::RepairRequired { reason }
        }
        _ => ClientError::Server { code, message },
    }
}

fn binding(identity: &Identity, info: &SessionInfo) -> Binding {
    Binding {
        exporter: info.exporter,
        client_id: identity.id(),
        server_id: info.peer_id,
        client_cert_hash: identity.cert_hash(),
        server_cert_hash: info.peer_cert_hash,
    }
}

fn after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait).unwrap_or(now)
}

impl Pairing {
    pub(crate) async fn start(client: &Client, addr: SocketAddr) -> Result<Self, ClientError> {
        let (conn, info) = client.dial(addr, ServerTrust::Any).await?;
        let mut pairing = Self {
            dialer: client.dialer(),
            options: client.options().clone(),
            conn: Some(conn),
            binding: binding(client.identity(), &info),
            store: client.store.clone(),
            challenge: Challenge {
                server_name: String::new(),
                server_id: info.peer_id,
                addr,
                expires_at: Instant::now(),
                attempts_left: 0,
                code_digits: CODE_DIGITS as u8,
            },
            not_before: Instant::now(),
            paired: None,
        };
        // A short backoff (a recent failure from this address) or a full table of pending
        // requests (room comes within seconds) is waited out rather than reported; a long wait
        // is the caller's to show. The refusal closed the connection, so `request` dials a
        // new one.
        let mut retries = 0;
        loop {
            match pairing.request(&client.name).await {
                Err(ClientError::PairingRefused {
                    reason: PairFailure::RateLimited | PairFailure::TooManyPending,
                    retry_after: Some(wait),
                }) if retries < limits::MAX_START_RETRIES
                    && wait <= client.options().auto_wait() =>
                {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                other => return other.map(|()| pairing),
            }
        }
    }

    /// Open a new connection to the same server: same address, and only the key that
    /// answered first (a different one is an identity mismatch).
    async fn redial(&mut self) -> Result<(), ClientError> {
        self.conn = None;
        let (conn, info) = self
            .dialer
            .dial(
                self.challenge.addr,
                ServerTrust::Pinned(self.challenge.server_id),
            )
            .await?;
        self.binding = binding(&self.dialer.identity, &info);
        self.conn = Some(conn);
        Ok(())
    }

    async fn request(&mut self, client_name: &str) -> Result<(), ClientError> {
        let reused = self.conn.is_some();
        if !reused {
            self.redial().await?;
        }
        match self.request_once(client_name).await {
            // The server dropped this connection while it sat idle (it does some seconds after
            // a code ends): ask on a new one.
            Err(ClientError::Connection(e)) if reused && is_gone(&e) => {
                self.redial().await?;
                self.request_once(client_name).await
            }
            other => other,
        }
    }

    async fn request_once(&mut self, client_name: &str) -> Result<(), ClientError> {
        let step = self.dialer.options.step_timeout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(ClientError::Closed("no pairing connection".into()));
        };
        let answer = async {
            conn.send(&Message::PairRequest {
                client_name: client_name.to_string(),
            })
            .await?;
            // The server answers once the operator has the code; that can take a moment only
            // if the server is busy, so the normal step timeout applies.
            conn.expect::<Message>(step).await
        }
        .await;
        let msg = match answer {
            Ok(m) => m,
            Err(e) => {
                self.conn = None;
                return Err(e.into());
            }
        };
        match msg {
            Message::PairChallenge {
                server_name,
                code_digits,
                expires_in_s,
                attempts_left,
            } => {
                if usize::from(code_digits) != CODE_DIGITS {
                    self.conn = None;
                    return Err(ClientError::Protocol(format!(
                        "the server asks for a {code_digits}-digit code; codes have {CODE_DIGITS} digits"
                    )));
                }
                self.challenge.server_name = crate::message::clean_name(&server_name);
                self.challenge.code_digits = code_digits;
                self.challenge.expires_at = after(limits::code_lifetime(expires_in_s));
                self.challenge.attempts_left = limits::attempts(attempts_left);
                Ok(())
            }
            Message::PairFailed {
                reason,
                attempts_left,
                retry_after_ms,
            } => {
                // A refused request ends the connection on the server's side.
                self.conn = None;
                Err(self.failed(reason, attempts_left, retry_after_ms))
            }
            Message::Error {
                code,
                message,
                reason,
            } => {
                self.conn = None;
                Err(server_error(code, message, reason))
            }
            other => {
                self.conn = None;
                Err(ClientError::Protocol(format!(
                    "expected pair_challenge, got {}",
                    other.kind()
                )))
            }
        }
    }

    /// What the server said about the current code.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// Wait until the server's backoff has passed, if that is at most
    /// [`super::ClientOptions::auto_wait`]; a longer one is returned as a
    /// [`PairFailure::RateLimited`] refusal with the time left, and nothing is sent.
    async fn wait_out_backoff(&self) -> Result<(), ClientError> {
        let left = self.not_before.saturating_duration_since(Instant::now());
        if left > self.options.auto_wait() {
            return Err(ClientError::PairingRefused {
                reason: PairFailure::RateLimited,
                retry_after: Some(left),
            });
        }
        tokio::time::sleep(left).await;
        Ok(())
    }

    /// Ask for a fresh code after the last one expired or was used up, or the request was
    /// displaced or refused. Dials a new connection (to the same server key) when the server
    /// has closed the old one.
    pub async fn request_new_code(&mut self, client_name: &str) -> Result<(), ClientError> {
        self.wait_out_backoff().await?;
        self.request(client_name).await
    }

    /// Answer with `code`. On success the pairing is saved (server id pinned) and returned.
    /// A wrong code leaves this pairing usable for another try.
    pub async fn submit(&mut self, code: &Code) -> Result<PairedServer, ClientError> {
        if let Some(p) = &self.paired {
            return Ok(p.clone());
        }
        // Honour the server's backoff instead of burning an attempt on a refusal.
        self.wait_out_backoff().await?;
        let result = self.exchange(code).await;
        if let Err(ClientError::Connection(_)) = &result {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, code: &Code) -> Result<PairedServer, ClientError> {
        let step = self.dialer.options.step_timeout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(ClientError::Closed(
                "the server closed the pairing connection: ask for a new code".into(),
            ));
        };
        let (pake, msg_a) = ClientPake::start(self.binding.clone(), code);
        conn.send(&Message::PairAttempt { pake: B64(msg_a) })
            .await?;
        let msg_b = match conn.expect::<Message>(step).await? {
            Message::PairPake { pake } => pake.0,
            Message::PairFailed {
                reason,
                attempts_left,
                retry_after_ms,
            } => return Err(self.failed(reason, attempts_left, retry_after_ms)),
            Message::Error {
                code,
                message,
                reason,
            } => return Err(server_error(code, message, reason)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected pair_pake, got {}",
                    other.kind()
                )));
            }
        };
        // A malformed server message is answered with a MAC that cannot verify, so the server
        // counts the attempt as failed rather than waiting.
        let confirmation = pake.finish(&msg_b).ok();
        let mac = confirmation
            .as_ref()
            .map(|c| c.client_mac())
            .unwrap_or_default();
        conn.send(&Message::PairConfirm { mac: B64(mac) }).await?;
        match conn.expect::<Message>(step).await? {
            Message::Paired {
                mac,
                token,
                token_expires_at,
                server_name,
            } => {
                let Some(confirmation) = confirmation else {
                    return Err(ClientError::ServerConfirmationFailed);
                };
                if !confirmation.verify_server(&mac.0) {
                    return Err(ClientError::ServerConfirmationFailed);
                }
                let now = crate::unix_now();
                let mut server = PairedServer {
                    server_id: self.challenge.server_id,
                    name: crate::message::clean_name(&server_name),
                    addrs: Vec::new(),
                    token,
                    token_expires_at: limits::token_expiry(token_expires_at, now),
                    paired_at: now,
                    refused: None,
                };
                server.remember_addr(self.challenge.addr);
                let saved = server.clone();
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || store.update(|f| f.upsert(saved)))
                    .await
                    .map_err(|e| ClientError::Protocol(format!("saving failed: {e}")))??;
                self.paired = Some(server.clone());
                Ok(server)
            }
            Message::PairFailed {
                reason,
                attempts_left,
                retry_after_ms,
            } => Err(self.failed(reason, attempts_left, retry_after_ms)),
            Message::Error {
                code,
                message,
                reason,
            } => Err(server_error(code, message, reason)),
            other => Err(ClientError::Protocol(format!(
                "expected paired, got {}",
                other.kind()
            ))),
        }
    }

    /// Record a `pair_failed` (clamped) and turn it into the caller's error.
    fn failed(
        &mut self,
        reason: PairFailure,
        attempts_left: u32,
        retry_after_ms: Option<u64>,
    ) -> ClientError {
        let attempts_left = limits::attempts(attempts_left);
        let retry_after = retry_after_ms.map(limits::retry_hint);
        self.challenge.attempts_left = attempts_left;
        if let Some(wait) = retry_after {
            self.not_before = after(wait);
        }
        if !keeps_connection(reason) {
            self.conn = None;
        }
        refused(reason, attempts_left, retry_after)
    }

    /// After a successful [`Pairing::submit`], continue on this connection as a session.
    pub fn into_session(self) -> Result<Session, ClientError> {
        let server = self
            .paired
            .ok_or_else(|| ClientError::Protocol("not paired yet".into()))?;
        let conn = self
            .conn
            .ok_or_else(|| ClientError::Closed("the pairing connection is closed".into()))?;
        let addr = self.challenge.addr;
        Ok(Session::from_conn(
            conn,
            server,
            addr,
            self.options.session(),
        ))
    }
}
