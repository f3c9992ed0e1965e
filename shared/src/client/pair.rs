//! The client's side of pairing: request a code, answer it with SPAKE2, confirm keys, save
//! the token and the pinned server id.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::dial::Conn;
use super::session::Session;
use super::{Client, ClientError};
use crate::identity::PeerId;
use crate::message::{B64, ErrorCode, Message, PairFailure};
use crate::pairing::{Binding, ClientPake, Code};
use crate::state::{ClientStore, PairedServer};
use crate::tls::ServerTrust;

/// What the server said when it made a code.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Server display name.
    pub server_name: String,
    /// Server id, taken from its TLS certificate (not from anything it said).
    pub server_id: PeerId,
    /// Where the server is.
    pub addr: SocketAddr,
    /// When the code expires (client clock).
    pub expires_at: Instant,
    /// Wrong answers still allowed.
    pub attempts_left: u32,
    /// Digits in the code.
    pub code_digits: u8,
}

/// A pairing in progress over one connection.
pub struct Pairing {
    conn: Conn,
    binding: Binding,
    store: ClientStore,
    step_timeout: Duration,
    challenge: Challenge,
    not_before: Instant,
    paired: Option<PairedServer>,
}

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pairing")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

fn refused(reason: PairFailure, attempts_left: u32, retry_after_ms: Option<u64>) -> ClientError {
    let retry_after = retry_after_ms.map(Duration::from_millis);
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

impl Pairing {
    pub(crate) async fn start(client: &Client, addr: SocketAddr) -> Result<Self, ClientError> {
        let (conn, info) = client.dial(addr, ServerTrust::Any).await?;
        let binding = Binding {
            exporter: info.exporter,
            client_id: client.identity().id(),
            server_id: info.peer_id,
            client_cert_hash: client.identity().cert_hash(),
            server_cert_hash: info.peer_cert_hash,
        };
        let mut pairing = Self {
            conn,
            binding,
            store: client.store.clone(),
            step_timeout: client.options().step_timeout,
            challenge: Challenge {
                server_name: String::new(),
                server_id: info.peer_id,
                addr,
                expires_at: Instant::now(),
                attempts_left: 0,
                code_digits: crate::pairing::CODE_DIGITS as u8,
            },
            not_before: Instant::now(),
            paired: None,
        };
        // A short backoff (a recent failure from this address) is waited out rather than
        // reported; a long one is the caller's to show.
        for _ in 0..3 {
            match pairing.request(client.name.clone()).await {
                Err(ClientError::PairingRefused {
                    reason: PairFailure::RateLimited,
                    retry_after: Some(wait),
                }) if wait <= Duration::from_secs(30) => tokio::time::sleep(wait).await,
                other => return other.map(|()| pairing),
            }
        }
        pairing.request(client.name.clone()).await.map(|()| pairing)
    }

    async fn request(&mut self, client_name: String) -> Result<(), ClientError> {
        self.conn
            .send(&Message::PairRequest { client_name })
            .await?;
        // The server answers once the operator has the code; that can take a moment only
        // if the server is busy, so the normal step timeout applies.
        match self.conn.expect::<Message>(self.step_timeout).await? {
            Message::PairChallenge {
                server_name,
                code_digits,
                expires_in_s,
                attempts_left,
            } => {
                self.challenge.server_name = server_name;
                self.challenge.code_digits = code_digits;
                self.challenge.expires_at = Instant::now() + Duration::from_secs(expires_in_s);
                self.challenge.attempts_left = attempts_left;
                Ok(())
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
                "expected pair_challenge, got {}",
                other.kind()
            ))),
        }
    }

    /// What the server said about the current code.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// Ask for a fresh code after the last one expired or was used up.
    pub async fn request_new_code(&mut self, client_name: &str) -> Result<(), ClientError> {
        tokio::time::sleep_until(self.not_before).await;
        self.request(client_name.to_string()).await
    }

    /// Answer with `code`. On success the pairing is saved (server id pinned) and returned.
    /// A wrong code leaves this pairing usable for another try.
    pub async fn submit(&mut self, code: &Code) -> Result<PairedServer, ClientError> {
        if let Some(p) = &self.paired {
            return Ok(p.clone());
        }
        // Honour the server's backoff instead of burning an attempt on a refusal.
        tokio::time::sleep_until(self.not_before).await;
        let (pake, msg_a) = ClientPake::start(self.binding.clone(), code);
        self.conn
            .send(&Message::PairAttempt { pake: B64(msg_a) })
            .await?;
        let msg_b = match self.conn.expect::<Message>(self.step_timeout).await? {
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
        self.conn
            .send(&Message::PairConfirm { mac: B64(mac) })
            .await?;
        match self.conn.expect::<Message>(self.step_timeout).await? {
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
                let mut server = PairedServer {
                    server_id: self.challenge.server_id,
                    name: server_name,
                    addrs: Vec::new(),
                    token,
                    token_expires_at,
                    paired_at: crate::unix_now(),
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

    fn failed(
        &mut self,
        reason: PairFailure,
        attempts_left: u32,
        retry_after_ms: Option<u64>,
    ) -> ClientError {
        self.challenge.attempts_left = attempts_left;
        if let Some(ms) = retry_after_ms {
            self.not_before = Instant::now() + Duration::from_millis(ms);
        }
        refused(reason, attempts_left, retry_after_ms)
    }

    /// After a successful [`Pairing::submit`], continue on this connection as a session.
    pub fn into_session(self) -> Result<Session, ClientError> {
        let server = self
            .paired
            .ok_or_else(|| ClientError::Protocol("not paired yet".into()))?;
        let addr = self.challenge.addr;
        Ok(Session::from_conn(self.conn, server, addr))
    }
}
