//! One connection from accept to close: TLS handshake, then either pairing or token
//! authentication, then the task session.
//!
//! Owns the per-connection state machine. Shared limits live in the guard, persistence in
//! the registry; this module only decides what to send and what to report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::server::TlsStream;

use super::guard::{Cancel, NotNow, Outcome, Refusal};
use super::registry::Standing;
use super::{ConnSlot, Server, ServerEvent, SessionEntry, Shared, TaskContext};
use crate::connection::{Connection, ConnectionError};
use crate::frame::FrameError;
use crate::message::{
    B64, ErrorCode, Message, PairFailure, RepairReason, TaskErrorBody, clean_name,
};
use crate::pairing::{Binding, Code, server_respond};
use crate::state::ClientRecord;
use crate::tls::SessionInfo;

type Conn = Connection<TlsStream<TcpStream>>;

pub(super) async fn handle(
    server: Server,
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut slot: ConnSlot,
    evicted: oneshot::Receiver<()>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    // Until it authenticates, the connection may be evicted to make room for a newer one.
    let opened = tokio::select! {
        opened = open(&shared, tcp, peer, &mut shutdown) => opened,
        Ok(()) = evicted => {
            tracing::debug!(%peer, "unauthenticated connection evicted to make room");
            None
        }
    };
    let Some((mut conn, ctx, client_name, pairing_id)) = opened else {
        return;
    };
    if !slot.authenticate() {
        // Evicted between its last message and now.
        return conn.close().await;
    }
    ctx.session(&server, conn, client_name, pairing_id, shutdown)
        .await;
}

type Opened = (Conn, ConnCtx, String, String);

/// TLS handshake, then pairing or token authentication: the part of a connection that is
/// not yet trusted. Returns the session's connection, or `None` when it ended.
async fn open(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: &mut tokio::sync::broadcast::Receiver<()>,
) -> Option<Opened> {
    let accept = tokio::time::timeout(shared.config.handshake_timeout, shared.acceptor.accept(tcp));
    let tls = tokio::select! {
        r = accept => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        },
        _ = shutdown.recv() => return None,
    };
    if tls.get_ref().1.alpn_protocol() != Some(crate::tls::ALPN) {
        tracing::debug!(%peer, "client did not negotiate our ALPN");
        return None;
    }
    let Some(info) = crate::tls::server_session(&tls) else {
        tracing::debug!(%peer, "no usable client certificate");
        return None;
    };
    let mut conn = Connection::new(tls, shared.config.max_frame);
    let ctx = ConnCtx {
        shared: shared.clone(),
        peer,
        info,
    };
    let first = tokio::select! {
        r = conn.expect::<Message>(shared.config.step_timeout) => r,
        _ = shutdown.recv() => return None,
    };
    let first = match first {
        Ok(m) => m,
        Err(e) => {
            fail_read(&mut conn, e).await;
            return None;
        }
    };
    let who = match first {
        Message::PairRequest { client_name } => {
            let name = clean_name(&client_name);
            tokio::select! {
                r = ctx.pairing(&mut conn, name) => r,
                _ = shutdown.recv() => None,
            }
        }
        Message::Auth { token } => ctx.authenticate(&mut conn, &token).await,
        Message::Hello {} => {
            let _ = conn
                .send(&Message::ServerInfo {
                    server_name: shared.config.name.clone(),
                    protocol: crate::PROTOCOL_VERSION,
                })
                .await;
            None
        }
        other => {
            let _ = conn
                .send(&Message::error(
                    ErrorCode::UnexpectedMessage,
                    format!("expected pair_request, auth or hello, got {}", other.kind()),
                ))
                .await;
            None
        }
    };
    match who {
        Some((name, pairing_id)) => Some((conn, ctx, name, pairing_id)),
        None => {
            conn.close().await;
            None
        }
    }
}

/// Queue a response; one too large for a frame becomes an error response instead.
async fn write_response(conn: &mut Conn, msg: Message) -> Result<(), ConnectionError> {
    let id = match &msg {
        Message::Response { id, .. } => *id,
        _ => 0,
    };
    match conn.feed(&msg).await {
        Err(ConnectionError::Frame(FrameError::TooLarge { declared, max })) => {
            conn.feed(&Message::Response {
                id,
                ok: false,
                result: serde_json::Value::Null,
                error: Some(TaskErrorBody {
                    code: "too_large".into(),
                    message: format!(
                        "the result ({declared} bytes) exceeds the {max}-byte frame limit"
                    ),
                }),
            })
            .await
        }
        other => other,
    }
}

/// Answer a failed read with an error message where the peer can still hear one.
async fn fail_read(conn: &mut Conn, e: ConnectionError) {
    let reply = match &e {
        ConnectionError::Frame(FrameError::TooLarge { .. }) => {
            Some(Message::error(ErrorCode::FrameTooLarge, e.to_string()))
        }
        ConnectionError::Malformed(_) => Some(Message::error(ErrorCode::BadMessage, e.to_string())),
        ConnectionError::Timeout => Some(Message::error(ErrorCode::Timeout, e.to_string())),
        _ => None,
    };
    if let Some(m) = reply {
        let _ = conn.send(&m).await;
    }
    conn.close().await;
}

struct ConnCtx {
    shared: Arc<Shared>,
    peer: SocketAddr,
    info: SessionInfo,
}

/// The answer to a code must follow the server's SPAKE2 message at once (the client only
/// computes); an attempt that stalls holds a unit of the failure budget, so it gets less
/// time than a step that waits for a person.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A code waiting for its answer. Dropping it releases its pending slot and tells the
/// operator how the request ended (`end`), unless it paired.
struct Pending<'a> {
    shared: &'a Shared,
    request_id: u64,
    /// The name the client asked under (shown with the code, saved if it pairs).
    name: String,
    code: Code,
    expires_at: tokio::time::Instant,
    attempts_left: u32,
    /// Fires when the request is displaced or pairing closes.
    cancelled: oneshot::Receiver<Cancel>,
    /// How the request ended, reported on drop; `None` once it paired.
    end: Option<&'static str>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.shared.guard().release(self.request_id);
        if let Some(reason) = self.end {
            self.shared.emit(ServerEvent::PairClosed {
                request_id: self.request_id,
                reason: reason.to_string(),
            });
        }
    }
}

/// What reading the next pairing message gave.
enum Next {
    Message(Message),
    /// The pending code expired while waiting.
    Expired,
    /// The connection ends (closed, failed, cancelled); everything needed was sent.
    End,
}

/// What checking one answer gave.
enum Answer {
    /// The key confirmation matched.
    Right(Box<crate::pairing::Confirmation>),
    /// It did not (or the SPAKE2 message was malformed).
    Wrong,
    /// The peer went away or broke the protocol half-way; the connection ends.
    Abandoned,
}

impl ConnCtx {
    fn binding(&self) -> Binding {
        Binding {
            exporter: self.info.exporter,
            client_id: self.info.peer_id,
            server_id: self.shared.identity.id(),
            client_cert_hash: self.info.peer_cert_hash,
            server_cert_hash: self.shared.identity.cert_hash(),
        }
    }

    fn failed(&self, name: &str, request_id: Option<u64>, reason: PairFailure, attempts_left: u32) {
        self.shared.emit(ServerEvent::PairFailed {
            request_id,
            client_name: name.to_string(),
            client_addr: self.peer,
            client_id: self.info.peer_id,
            reason,
            attempts_left,
        });
    }

    /// Send a refusal; the caller then ends the connection, so asking again never earns a
    /// connection a fresh timeout.
    async fn refuse(
        &self,
        conn: &mut Conn,
        reason: PairFailure,
        attempts_left: u32,
        wait: Option<std::time::Duration>,
    ) {
        let _ = conn
            .send(&Message::PairFailed {
                reason,
                attempts_left,
                retry_after_ms: wait.map(|w| w.as_millis() as u64),
            })
            .await;
    }

    /// Wait for the next message of the pairing exchange, the expiry of the pending code, or
    /// its cancellation.
    async fn next_message(&self, conn: &mut Conn, pending: &mut Option<Pending<'_>>) -> Next {
        let deadline = match pending {
            Some(p) => p.expires_at,
            None => tokio::time::Instant::now() + self.shared.config.step_timeout,
        };
        let read = tokio::time::timeout_at(deadline, conn.read::<Message>());
        let result = match pending.as_mut() {
            Some(p) => tokio::select! {
                Ok(why) = &mut p.cancelled => Err(why),
                r = read => Ok(r),
            },
            None => Ok(read.await),
        };
        match result {
            Err(why) => {
                // Displaced, or pairing closed: say so, and end the connection.
                if let Some(p) = pending.as_mut() {
                    p.end = Some(match why.reason {
                        PairFailure::Displaced => "displaced",
                        _ => "pairing_closed",
                    });
                }
                *pending = None;
                self.refuse(conn, why.reason, 0, why.retry_after).await;
                Next::End
            }
            Ok(Err(_)) => match pending.take() {
                Some(mut p) => {
                    // Only the operator is told now; the client learns it when it answers,
                    // which keeps the exchange strictly request/response.
                    self.failed_expired(&p);
                    p.end = Some("expired");
                    Next::Expired
                }
                None => {
                    fail_read(conn, ConnectionError::Timeout).await;
                    Next::End
                }
            },
            Ok(Ok(Ok(Some(m)))) => Next::Message(m),
            Ok(Ok(Ok(None))) => Next::End,
            Ok(Ok(Err(e))) => {
                fail_read(conn, e).await;
                Next::End
            }
        }
    }

    fn failed_expired(&self, p: &Pending<'_>) {
        self.shared.emit(ServerEvent::PairFailed {
            request_id: Some(p.request_id),
            client_name: p.name.clone(),
            client_addr: self.peer,
            client_id: self.info.peer_id,
            reason: PairFailure::CodeExpired,
            attempts_left: 0,
        });
    }

    /// Reserve a unit of the failure budget for an answer to `p`'s code. While every unit
    /// left is held by answers being checked, wait a little: they take milliseconds.
    async fn begin_attempt(&self, p: &Pending<'_>) -> Result<(), Refusal> {
        let ip = self.peer.ip();
        let give_up = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        loop {
            let allowed = self
                .shared
                .guard()
                .begin_attempt(p.request_id, ip, Instant::now());
            match allowed {
                Ok(()) => return Ok(()),
                Err(NotNow::Refused(refusal)) => return Err(refusal),
                Err(NotNow::Busy) if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(NotNow::Busy) => {
                    return Err((
                        PairFailure::RateLimited,
                        Some(std::time::Duration::from_secs(1)),
                    ));
                }
            }
        }
    }

    /// Check one answer to `p`'s code: SPAKE2, then the client's key confirmation.
    async fn check_answer(&self, conn: &mut Conn, p: &Pending<'_>, pake: &[u8]) -> Answer {
        // A malformed SPAKE2 message counts as a wrong answer, so it buys nothing.
        let Some((confirmation, msg_b)) = server_respond(&self.binding(), &p.code, pake).ok()
        else {
            return Answer::Wrong;
        };
        let sent = conn.send(&Message::PairPake { pake: B64(msg_b) }).await;
        if sent.is_err() {
            return Answer::Abandoned;
        }
        let limit = CONFIRM_TIMEOUT.min(self.shared.config.step_timeout);
        match conn.expect::<Message>(limit).await {
            Ok(Message::PairConfirm { mac }) if confirmation.verify_client(&mac.0) => {
                Answer::Right(Box::new(confirmation))
            }
            Ok(Message::PairConfirm { .. }) => Answer::Wrong,
            Ok(other) => {
                let _ = conn
                    .send(&Message::error(
                        ErrorCode::UnexpectedMessage,
                        format!("expected pair_confirm, got {}", other.kind()),
                    ))
                    .await;
                Answer::Abandoned
            }
            Err(e) => {
                fail_read(conn, e).await;
                Answer::Abandoned
            }
        }
    }

    /// Run pairing; returns the client's name and pairing id once it is paired and saved.
    async fn pairing(&self, conn: &mut Conn, mut name: String) -> Option<(String, String)> {
        let policy = &self.shared.config.pairing;
        let ip = self.peer.ip();
        let mut pending: Option<Pending<'_>> = None;
        // Why the last code of this connection ended, to answer a late attempt.
        let mut stale: Option<PairFailure> = None;
        let mut next = Some(Message::PairRequest {
            client_name: name.clone(),
        });
        loop {
            let msg = match next.take() {
                Some(m) => m,
                None => match self.next_message(conn, &mut pending).await {
                    Next::Message(m) => m,
                    Next::Expired => {
                        stale = Some(PairFailure::CodeExpired);
                        continue;
                    }
                    Next::End => return None,
                },
            };
            match msg {
                Message::PairRequest { client_name } => {
                    let asked_as = clean_name(&client_name);
                    if let Some(p) = &pending {
                        let left = p.attempts_left;
                        self.refuse(conn, PairFailure::AlreadyPending, left, None)
                            .await;
                        return None;
                    }
                    let request_id = self.shared.next_id();
                    let admitted = self.shared.guard().admit(ip, request_id, Instant::now());
                    let admission = match admitted {
                        Ok(a) => a,
                        Err((reason, wait)) => {
                            self.failed(&asked_as, None, reason, 0);
                            self.refuse(conn, reason, 0, wait).await;
                            return None;
                        }
                    };
                    stale = None;
                    // The name the operator sees with this code is the one that gets saved.
                    name = asked_as;
                    let p = Pending {
                        shared: &self.shared,
                        request_id,
                        name: name.clone(),
                        code: Code::generate(),
                        expires_at: tokio::time::Instant::now() + policy.code_ttl,
                        attempts_left: policy.max_attempts,
                        cancelled: admission.cancelled,
                        end: Some("cancelled"),
                    };
                    self.shared.emit(ServerEvent::PairRequest {
                        request_id,
                        client_name: name.clone(),
                        client_addr: self.peer,
                        client_id: self.info.peer_id,
                        client_short: self.info.peer_id.short(),
                        code: p.code.digits().to_string(),
                        expires_in_s: policy.code_ttl.as_secs(),
                        attempts_left: p.attempts_left,
                    });
                    let sent = conn
                        .send(&Message::PairChallenge {
                            server_name: self.shared.config.name.clone(),
                            code_digits: crate::pairing::CODE_DIGITS as u8,
                            expires_in_s: policy.code_ttl.as_secs(),
                            attempts_left: p.attempts_left,
                        })
                        .await;
                    if sent.is_err() {
                        return None;
                    }
                    pending = Some(p);
                }
                Message::PairAttempt { pake } => {
                    let Some(p) = pending.as_mut() else {
                        if let Some(reason) = stale {
                            self.refuse(conn, reason, 0, None).await;
                            continue;
                        }
                        let _ = conn
                            .send(&Message::error(
                                ErrorCode::UnexpectedMessage,
                                "no pairing request is pending: send pair_request first",
                            ))
                            .await;
                        return None;
                    };
                    if let Err((reason, wait)) = self.begin_attempt(p).await {
                        self.failed(&name, Some(p.request_id), reason, p.attempts_left);
                        let left = p.attempts_left;
                        self.refuse(conn, reason, left, wait).await;
                        return None;
                    }
                    // From here the attempt holds a unit of the failure budget; every path
                    // below settles it.
                    let answer = self.check_answer(conn, p, &pake.0).await;
                    let settle = |outcome| {
                        self.shared.guard().finish_attempt(
                            p.request_id,
                            ip,
                            outcome,
                            Instant::now(),
                        )
                    };
                    if tokio::time::Instant::now() >= p.expires_at
                        && !matches!(answer, Answer::Abandoned)
                    {
                        // Answered too late: the code was already void, and the answer told
                        // the client nothing.
                        settle(Outcome::Void);
                        self.failed_expired(p);
                        p.end = Some("expired");
                        pending = None;
                        stale = Some(PairFailure::CodeExpired);
                        self.refuse(conn, PairFailure::CodeExpired, 0, None).await;
                        continue;
                    }
                    let confirmation = match answer {
                        Answer::Right(c) => c,
                        Answer::Abandoned => {
                            // Treated as a wrong answer: stalling must not be free.
                            let settled = settle(Outcome::Wrong);
                            if let Some(change) = settled.change {
                                self.shared.report_gate(change);
                            }
                            return None;
                        }
                        Answer::Wrong => {
                            p.attempts_left = p.attempts_left.saturating_sub(1);
                            let settled = settle(Outcome::Wrong);
                            let (reason, left) = if p.attempts_left == 0 {
                                (PairFailure::CodeExhausted, 0)
                            } else {
                                (PairFailure::WrongCode, p.attempts_left)
                            };
                            self.failed(&name, Some(p.request_id), reason, left);
                            if let Some(change) = settled.change {
                                self.shared.report_gate(change);
                            }
                            self.refuse(conn, reason, left, Some(settled.wait)).await;
                            if left == 0 {
                                p.end = Some("exhausted");
                                pending = None;
                                stale = Some(PairFailure::CodeExhausted);
                            }
                            continue;
                        }
                    };
                    settle(Outcome::Right);
                    let mut p = pending.take()?;
                    let paired = self
                        .finish_pairing(conn, name, p.request_id, &confirmation)
                        .await;
                    if paired.is_some() {
                        p.end = None;
                    }
                    return paired;
                }
                other => {
                    let _ = conn
                        .send(&Message::error(
                            ErrorCode::UnexpectedMessage,
                            format!("{} is not valid while pairing", other.kind()),
                        ))
                        .await;
                    return None;
                }
            }
        }
    }

    async fn finish_pairing(
        &self,
        conn: &mut Conn,
        name: String,
        request_id: u64,
        confirmation: &crate::pairing::Confirmation,
    ) -> Option<(String, String)> {
        let now = crate::unix_now();
        let pairing_id = crate::token::new_pairing_id();
        let record = ClientRecord {
            client_id: self.info.peer_id,
            name: name.clone(),
            paired_at: now,
            pairing_id: pairing_id.clone(),
            last_seen: now,
            last_addr: Some(self.peer),
        };
        let issued = match self.shared.authority.issue(
            self.info.peer_id,
            &self.info.peer_cert_hash,
            &pairing_id,
            self.shared.config.token_ttl,
        ) {
            Ok(i) => i,
            Err(e) => {
                self.warn(format!("issuing a token failed: {e}"));
                let _ = conn
                    .send(&Message::error(
                        ErrorCode::Internal,
                        "could not issue a token",
                    ))
                    .await;
                return None;
            }
        };
        // Saved before anyone is told: a reported pairing survives a crash.
        if let Err(e) = self.shared.registry.pair(record).await {
            self.warn(format!("saving the new pairing failed: {e}"));
            let _ = conn
                .send(&Message::error(
                    ErrorCode::Internal,
                    "the server could not save the pairing",
                ))
                .await;
            return None;
        }
        let change = self.shared.guard().paired(Instant::now());
        self.shared.emit(ServerEvent::Paired {
            request_id,
            client_name: name.clone(),
            client_addr: self.peer,
            client_id: self.info.peer_id,
        });
        if let Some(change) = change {
            self.shared.report_gate(change);
        }
        let sent = conn
            .send(&Message::Paired {
                mac: B64(confirmation.server_mac()),
                token: issued.token,
                token_expires_at: issued.claims.exp,
                server_name: self.shared.config.name.clone(),
            })
            .await;
        sent.ok().map(|_| (name, pairing_id))
    }

    fn warn(&self, message: String) {
        tracing::error!("{message}");
        self.shared.emit(ServerEvent::Warning { message });
    }

    /// Check a token; returns the client's registered name and pairing id when accepted.
    async fn authenticate(&self, conn: &mut Conn, token: &str) -> Option<(String, String)> {
        let id = self.info.peer_id;
        let verdict = self
            .shared
            .authority
            .verify(token, id, &self.info.peer_cert_hash)
            .and_then(|claims| match self.shared.registry.standing(&id) {
                Standing::Paired(record) if claims.pid == record.pairing_id => Ok((claims, record)),
                // A token from an earlier pairing (revoked in between) is void.
                Standing::Paired(_) | Standing::Revoked => Err(RepairReason::Revoked),
                Standing::Unknown => Err(RepairReason::Unknown),
            });
        let (claims, record) = match verdict {
            Ok(v) => v,
            Err(reason) => {
                self.shared.emit(ServerEvent::AuthFailed {
                    client_addr: self.peer,
                    client_id: id,
                    reason,
                });
                let _ = conn
                    .send(&Message::Error {
                        code: ErrorCode::RepairRequired,
                        message: format!("re-pair required: {}", reason.describe()),
                        reason: Some(reason),
                    })
                    .await;
                return None;
            }
        };
        let ttl_ms = self.shared.config.token_ttl.as_millis() as u64;
        let left_ms = claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(crate::unix_now_ms());
        let (token, token_expires_at) = if left_ms.saturating_mul(3) < ttl_ms {
            match self.shared.authority.issue(
                id,
                &self.info.peer_cert_hash,
                &claims.pid,
                self.shared.config.token_ttl,
            ) {
                Ok(i) => (Some(i.token), i.claims.exp),
                Err(e) => {
                    self.warn(format!("renewing a token failed: {e}"));
                    (None, claims.exp)
                }
            }
        } else {
            (None, claims.exp)
        };
        conn.send(&Message::AuthOk {
            server_name: self.shared.config.name.clone(),
            token,
            token_expires_at,
        })
        .await
        .ok()?;
        Some((record.name, record.pairing_id))
    }

    fn task_context(&self, name: &str) -> TaskContext {
        TaskContext {
            client_id: self.info.peer_id,
            client_name: name.to_string(),
            server_name: self.shared.config.name.clone(),
            server_id: self.shared.identity.id(),
            uptime: self.shared.started.elapsed(),
            connected_clients: self.shared.connected.load(Ordering::Relaxed),
            paired_clients: self.shared.registry.len(),
        }
    }

    /// The authenticated session: requests, notices, revocation, shutdown.
    async fn session(
        &self,
        server: &Server,
        mut conn: Conn,
        name: String,
        pairing_id: String,
        mut shutdown: tokio::sync::broadcast::Receiver<()>,
    ) {
        let shared = &self.shared;
        let id = self.info.peer_id;
        let session_id = shared.next_id();
        let (notices, mut rx) = mpsc::channel::<Arc<str>>(64);
        let (revoke, mut revoked) = oneshot::channel::<&'static str>();
        shared.sessions().insert(
            session_id,
            SessionEntry {
                client_id: id,
                notices,
                revoke: Some(revoke),
            },
        );
        shared.connected.fetch_add(1, Ordering::Relaxed);
        // A revocation between the token check and the registration above would have found
        // no session to close: look again now that this one is visible.
        let still_paired = matches!(shared.registry.standing(&id), Standing::Paired(r) if r.pairing_id == pairing_id);
        let late_revoke = if still_paired {
            None
        } else {
            shared
                .sessions()
                .get_mut(&session_id)
                .and_then(|s| s.revoke.take())
        };
        if let Some(tx) = late_revoke {
            let _ = tx.send(super::REVOKED_BY_OPERATOR);
        }
        shared.registry.touch(&id, self.peer);
        shared.emit(ServerEvent::Connected {
            session_id,
            client_name: name.clone(),
            client_addr: self.peer,
            client_id: id,
        });
        let mut inflight = FuturesUnordered::new();
        let max_inflight = shared.config.max_inflight;
        let write_timeout = shared.config.write_timeout;
        let mut last_heard = Instant::now();
        let mut keepalive =
            tokio::time::interval(shared.config.keepalive.min(shared.config.idle_timeout));
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await;
        let reason: String = loop {
            tokio::select! {
                // In this order: every request already received is read before the replies
                // are written, so a pipelined batch is answered with one flush (one TLS
                // record, one syscall) instead of one per reply. Reading pauses at
                // `max_inflight`, so replies are never starved.
                biased;
                _ = shutdown.recv() => break "server shutting down".into(),
                _ = keepalive.tick() => {
                    let quiet = last_heard.elapsed();
                    if quiet >= shared.config.idle_timeout {
                        let _ = tokio::time::timeout(write_timeout, conn.send(&Message::error(
                            ErrorCode::Timeout,
                            format!("no message for {} s", quiet.as_secs()),
                        ))).await;
                        break "idle".into();
                    }
                    if quiet >= shared.config.keepalive
                        && !matches!(tokio::time::timeout(write_timeout, conn.send(&Message::Ping {})).await, Ok(Ok(())))
                    {
                        break "client stopped reading".into();
                    }
                }
                why = &mut revoked => {
                    let why = why.unwrap_or(super::REVOKED_BY_OPERATOR);
                    let _ = conn.send(&Message::Error {
                        code: ErrorCode::Revoked,
                        message: why.to_string(),
                        reason: Some(RepairReason::Revoked),
                    }).await;
                    break "revoked".into();
                }
                Some(text) = rx.recv() => {
                    let m = Message::Notice { text: text.to_string(), at_ms: crate::unix_now_ms() };
                    match tokio::time::timeout(write_timeout, conn.send(&m)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break "write failed".into(),
                        Err(_) => break "client stopped reading".into(),
                    }
                }
                read = conn.read::<Message>(), if inflight.len() < max_inflight => {
                    last_heard = Instant::now();
                    match read {
                    Ok(None) => break "closed by client".into(),
                    Ok(Some(Message::Pong {})) => {}
                    Ok(Some(Message::Ping {})) => {
                        if !matches!(tokio::time::timeout(write_timeout, conn.send(&Message::Pong {})).await, Ok(Ok(()))) {
                            break "client stopped reading".into();
                        }
                    }
                    Err(e) => {
                        let why = e.to_string();
                        fail_read(&mut conn, e).await;
                        break why;
                    }
                    Ok(Some(Message::Request { id: req_id, task, args })) => {
                        *shared.tasks_run.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default() += 1;
                        let fut = shared.tasks.call(&task, self.task_context(&name), args);
                        inflight.push(async move {
                            let started = Instant::now();
                            let result = fut.await;
                            let ok = result.is_ok();
                            let msg = match result {
                                Ok(value) => Message::Response { id: req_id, ok: true, result: value, error: None },
                                Err(e) => Message::Response {
                                    id: req_id,
                                    ok: false,
                                    result: serde_json::Value::Null,
                                    error: Some(TaskErrorBody { code: e.code, message: e.message }),
                                },
                            };
                            (msg, task, ok, started)
                        });
                    }
                    Ok(Some(Message::Unpair {})) => {
                        if let Err(e) = server.revoke_id(&id, "client").await {
                            self.warn(format!("saving an unpairing failed: {e}"));
                            let _ = conn.send(&Message::error(ErrorCode::Internal, "the server could not save the change")).await;
                            break "unpair failed".into();
                        }
                        let _ = conn.send(&Message::Unpaired {}).await;
                        break "unpaired by client".into();
                    }
                    Ok(Some(other)) => {
                        let _ = conn.send(&Message::error(
                            ErrorCode::UnexpectedMessage,
                            format!("{} is not valid in a session", other.kind()),
                        )).await;
                        break format!("unexpected {}", other.kind());
                    }
                }},
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    // Write every response that is ready, then flush once.
                    let mut batch = vec![done];
                    while let Some(Some(more)) = inflight.next().now_or_never() {
                        batch.push(more);
                    }
                    let mut failed = false;
                    let deadline = tokio::time::Instant::now() + write_timeout;
                    for (msg, task, ok, started) in batch {
                        let started: Instant = started;
                        shared.emit(ServerEvent::Request {
                            session_id,
                            client_name: name.clone(),
                            client_id: id,
                            task,
                            ok,
                            elapsed_us: started.elapsed().as_micros() as u64,
                        });
                        if !matches!(tokio::time::timeout_at(deadline, write_response(&mut conn, msg)).await, Ok(Ok(()))) {
                            failed = true;
                            break;
                        }
                    }
                    // A client that stops reading fills its buffers; it is disconnected
                    // rather than allowed to pin memory here.
                    if failed || !matches!(tokio::time::timeout_at(deadline, conn.flush()).await, Ok(Ok(()))) {
                        break "write failed or client stopped reading".into();
                    }
                }
            }
        };
        conn.close().await;
        shared.sessions().remove(&session_id);
        shared.connected.fetch_sub(1, Ordering::Relaxed);
        shared.emit(ServerEvent::Disconnected {
            session_id,
            client_name: name,
            client_addr: self.peer,
            client_id: id,
            reason,
        });
    }
}
