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

use super::registry::Standing;
use super::{Server, ServerEvent, SessionEntry, Shared, TaskContext};
use crate::connection::{Connection, ConnectionError};
use crate::frame::FrameError;
use crate::message::{B64, ErrorCode, Message, PairFailure, RepairReason, TaskErrorBody};
use crate::pairing::{Binding, Code, server_respond};
use crate::state::ClientRecord;
use crate::tls::SessionInfo;

type Conn = Connection<TlsStream<TcpStream>>;

/// Longest client name kept; longer names are cut.
const MAX_NAME: usize = 64;

pub(super) async fn handle(server: Server, shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    // One address cannot hold more than its share of half-open connections.
    let Some(unauthenticated) = shared.admit_unauthenticated(peer.ip()) else {
        tracing::debug!(%peer, "too many unauthenticated connections from this address");
        return;
    };
    let mut shutdown = shared.shutdown.subscribe();
    let accept = tokio::time::timeout(shared.config.handshake_timeout, shared.acceptor.accept(tcp));
    let tls = tokio::select! {
        r = accept => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = shutdown.recv() => return,
    };
    if tls.get_ref().1.alpn_protocol() != Some(crate::tls::ALPN) {
        tracing::debug!(%peer, "client did not negotiate our ALPN");
        return;
    }
    let Some(info) = crate::tls::server_session(&tls) else {
        tracing::debug!(%peer, "no usable client certificate");
        return;
    };
    let mut conn = Connection::new(tls, shared.config.max_frame);
    let mut ctx = ConnCtx {
        shared: &shared,
        peer,
        info,
    };
    let first = tokio::select! {
        r = conn.expect::<Message>(shared.config.step_timeout) => r,
        _ = shutdown.recv() => return,
    };
    let first = match first {
        Ok(m) => m,
        Err(e) => return fail_read(&mut conn, e).await,
    };
    let (client_name, pairing_id) = match first {
        Message::PairRequest { client_name } => {
            let name = clean_name(&client_name);
            tokio::select! {
                r = ctx.pairing(&mut conn, name) => match r {
                    Some(who) => who,
                    None => return conn.close().await,
                },
                _ = shutdown.recv() => return conn.close().await,
            }
        }
        Message::Auth { token } => match ctx.authenticate(&mut conn, &token).await {
            Some(who) => who,
            None => return conn.close().await,
        },
        Message::Hello {} => {
            let _ = conn
                .send(&Message::ServerInfo {
                    server_name: shared.config.name.clone(),
                    protocol: crate::PROTOCOL_VERSION,
                })
                .await;
            return conn.close().await;
        }
        other => {
            let _ = conn
                .send(&Message::error(
                    ErrorCode::UnexpectedMessage,
                    format!("expected pair_request, auth or hello, got {}", other.kind()),
                ))
                .await;
            return conn.close().await;
        }
    };
    // Authenticated: no longer counted against the address's half-open allowance.
    drop(unauthenticated);
    ctx.session(&server, conn, client_name, pairing_id, shutdown)
        .await;
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

fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() {
        "unnamed".into()
    } else {
        cleaned
    }
}

struct ConnCtx<'a> {
    shared: &'a Arc<Shared>,
    peer: SocketAddr,
    info: SessionInfo,
}

/// A code waiting for its answer; releases its pending slot when dropped.
struct Pending<'a> {
    shared: &'a Shared,
    ip: std::net::IpAddr,
    request_id: u64,
    code: Code,
    expires_at: tokio::time::Instant,
    attempts_left: u32,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.shared.guard().release(self.ip);
    }
}

impl ConnCtx<'_> {
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

    fn closed(&self, request_id: u64, reason: &str) {
        self.shared.emit(ServerEvent::PairClosed {
            request_id,
            reason: reason.to_string(),
        });
    }

    /// Run pairing; returns the client's name once it is paired and saved.
    /// Returns the client's name and pairing id once it is paired and saved.
    async fn pairing(&mut self, conn: &mut Conn, mut name: String) -> Option<(String, String)> {
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
                None => {
                    let deadline = match &pending {
                        Some(p) => p.expires_at,
                        None => tokio::time::Instant::now() + self.shared.config.step_timeout,
                    };
                    match tokio::time::timeout_at(deadline, conn.read::<Message>()).await {
                        Err(_) => match pending.take() {
                            Some(p) => {
                                // Only the operator is told now; the client learns it when it
                                // answers, which keeps the exchange strictly request/response.
                                self.failed(&name, Some(p.request_id), PairFailure::CodeExpired, 0);
                                self.closed(p.request_id, "expired");
                                stale = Some(PairFailure::CodeExpired);
                                continue;
                            }
                            None => {
                                fail_read(conn, ConnectionError::Timeout).await;
                                return None;
                            }
                        },
                        Ok(Ok(Some(m))) => m,
                        Ok(Ok(None)) => {
                            if let Some(p) = pending {
                                self.closed(p.request_id, "cancelled");
                            }
                            return None;
                        }
                        Ok(Err(e)) => {
                            if let Some(p) = pending {
                                self.closed(p.request_id, "cancelled");
                            }
                            fail_read(conn, e).await;
                            return None;
                        }
                    }
                }
            };
            match msg {
                Message::PairRequest { client_name } => {
                    let asked_as = clean_name(&client_name);
                    if let Some(p) = &pending {
                        let _ = conn
                            .send(&Message::PairFailed {
                                reason: PairFailure::AlreadyPending,
                                attempts_left: p.attempts_left,
                                retry_after_ms: None,
                            })
                            .await;
                        continue;
                    }
                    let admitted = self.shared.guard().admit(policy, ip, Instant::now());
                    if let Err((reason, wait)) = admitted {
                        self.failed(&asked_as, None, reason, 0);
                        let _ = conn
                            .send(&Message::PairFailed {
                                reason,
                                attempts_left: 0,
                                retry_after_ms: wait.map(|w| w.as_millis() as u64),
                            })
                            .await;
                        continue;
                    }
                    stale = None;
                    // The name the operator sees with this code is the one that gets saved.
                    name = asked_as;
                    let p = Pending {
                        shared: self.shared,
                        ip,
                        request_id: self.shared.next_id(),
                        code: Code::generate(),
                        expires_at: tokio::time::Instant::now() + policy.code_ttl,
                        attempts_left: policy.max_attempts,
                    };
                    self.shared.emit(ServerEvent::PairRequest {
                        request_id: p.request_id,
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
                        self.closed(p.request_id, "cancelled");
                        return None;
                    }
                    pending = Some(p);
                }
                Message::PairAttempt { pake } => {
                    let Some(p) = pending.as_mut() else {
                        if let Some(reason) = stale {
                            let _ = conn
                                .send(&Message::PairFailed {
                                    reason,
                                    attempts_left: 0,
                                    retry_after_ms: None,
                                })
                                .await;
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
                    let allowed = self
                        .shared
                        .guard()
                        .check_attempt(policy, ip, Instant::now());
                    if let Err(wait) = allowed {
                        self.failed(
                            &name,
                            Some(p.request_id),
                            PairFailure::RateLimited,
                            p.attempts_left,
                        );
                        let _ = conn
                            .send(&Message::PairFailed {
                                reason: PairFailure::RateLimited,
                                attempts_left: p.attempts_left,
                                retry_after_ms: Some(wait.as_millis() as u64),
                            })
                            .await;
                        continue;
                    }
                    // A malformed SPAKE2 message counts as a wrong answer, so it buys nothing.
                    let exchange = server_respond(&self.binding(), &p.code, &pake.0).ok();
                    let confirmed = match &exchange {
                        Some((confirmation, msg_b)) => {
                            if conn
                                .send(&Message::PairPake {
                                    pake: B64(msg_b.clone()),
                                })
                                .await
                                .is_err()
                            {
                                self.closed(p.request_id, "cancelled");
                                return None;
                            }
                            match conn
                                .expect::<Message>(self.shared.config.step_timeout)
                                .await
                            {
                                Ok(Message::PairConfirm { mac }) => {
                                    confirmation.verify_client(&mac.0)
                                }
                                Ok(other) => {
                                    let _ = conn
                                        .send(&Message::error(
                                            ErrorCode::UnexpectedMessage,
                                            format!("expected pair_confirm, got {}", other.kind()),
                                        ))
                                        .await;
                                    self.closed(p.request_id, "cancelled");
                                    return None;
                                }
                                Err(e) => {
                                    self.closed(p.request_id, "cancelled");
                                    fail_read(conn, e).await;
                                    return None;
                                }
                            }
                        }
                        None => false,
                    };
                    if tokio::time::Instant::now() >= p.expires_at {
                        // Answered too late: the code was already void.
                        let id = p.request_id;
                        pending = None;
                        stale = Some(PairFailure::CodeExpired);
                        let _ = conn
                            .send(&Message::PairFailed {
                                reason: PairFailure::CodeExpired,
                                attempts_left: 0,
                                retry_after_ms: None,
                            })
                            .await;
                        self.failed(&name, Some(id), PairFailure::CodeExpired, 0);
                        self.closed(id, "expired");
                        continue;
                    }
                    if confirmed {
                        let (confirmation, _) = exchange?;
                        let request_id = p.request_id;
                        return self
                            .finish_pairing(conn, name, request_id, &confirmation)
                            .await;
                    }
                    p.attempts_left -= 1;
                    let wait = self
                        .shared
                        .guard()
                        .record_failure(policy, ip, Instant::now());
                    let (reason, left) = if p.attempts_left == 0 {
                        (PairFailure::CodeExhausted, 0)
                    } else {
                        (PairFailure::WrongCode, p.attempts_left)
                    };
                    self.failed(&name, Some(p.request_id), reason, left);
                    let _ = conn
                        .send(&Message::PairFailed {
                            reason,
                            attempts_left: left,
                            retry_after_ms: Some(wait.as_millis() as u64),
                        })
                        .await;
                    if left == 0 {
                        self.closed(p.request_id, "exhausted");
                        pending = None;
                        stale = Some(PairFailure::CodeExhausted);
                    }
                }
                other => {
                    let _ = conn
                        .send(&Message::error(
                            ErrorCode::UnexpectedMessage,
                            format!("{} is not valid while pairing", other.kind()),
                        ))
                        .await;
                    if let Some(p) = pending {
                        self.closed(p.request_id, "cancelled");
                    }
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
            self.closed(request_id, "cancelled");
            return None;
        }
        self.shared.guard().record_success(self.peer.ip());
        self.shared.emit(ServerEvent::Paired {
            request_id,
            client_name: name.clone(),
            client_addr: self.peer,
            client_id: self.info.peer_id,
        });
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
        let shared = self.shared;
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
