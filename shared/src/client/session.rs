//! An authenticated session: pipelined requests matched by id, and server notices.
//!
//! A driver task owns the connection; callers talk to it through channels, so a session can
//! be shared by reference and used from several tasks at once.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{Client, ClientError};
use crate::connection::ConnectionError;
use crate::dialer::Conn;
use crate::frame::FrameError;
use crate::message::{ErrorCode, Message, RepairReason};
use crate::state::PairedServer;
use crate::tls::ServerTrust;

/// Notices held for a reader that is behind; more are dropped.
pub const NOTICE_QUEUE: usize = 256;

/// Something the server pushed, or the end of the session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A notice from the server.
    Notice {
        /// Its text.
        text: String,
        /// When it was sent, Unix milliseconds (server clock; at most
        /// [`super::limits::MAX_CLOCK_AHEAD`] ahead of ours).
        at_ms: u64,
    },
    /// The session ended; no more events follow.
    Closed {
        /// Why, for people.
        reason: String,
        /// Set when the client must pair again.
        repair: Option<RepairReason>,
    },
}

enum Outgoing {
    Request {
        task: String,
        args: Vec<String>,
        reply: oneshot::Sender<Result<Value, ClientError>>,
    },
    Unpair {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
}

/// An open, authenticated session with a paired server.
#[derive(Debug)]
pub struct Session {
    tx: mpsc::Sender<Outgoing>,
    events: mpsc::Receiver<SessionEvent>,
    server: PairedServer,
    addr: SocketAddr,
    request_timeout: std::time::Duration,
    driver: tokio::task::JoinHandle<()>,
}

impl Session {
    pub(crate) async fn open(
        client: &Client,
        server: &PairedServer,
        addr: SocketAddr,
    ) -> Result<Self, ClientError> {
        let (mut conn, _) = client
            .dial(addr, ServerTrust::Pinned(server.server_id))
            .await?;
        conn.send(&Message::Auth {
            token: server.token.clone(),
        })
        .await?;
        let mut server = server.clone();
        match conn
            .expect::<Message>(client.options().step_timeout)
            .await?
        {
            Message::AuthOk {
                server_name,
                token,
                token_expires_at,
            } => {
                let renewed = token.is_some();
                let moved = server.addrs.first() != Some(&addr);
                if let Some(t) = token {
                    server.token = t;
                    server.token_expires_at =
                        super::limits::token_expiry(token_expires_at, crate::unix_now());
                }
                server.name = crate::message::clean_name(&server_name);
                server.remember_addr(addr);
                if renewed || moved {
                    let saved = server.clone();
                    let store = client.store.clone();
                    tokio::task::spawn_blocking(move || {
                        store.update(|f| {
                            if let Some(s) = f
                                .servers
                                .iter_mut()
                                .find(|s| s.server_id == saved.server_id)
                            {
                                *s = saved;
                            }
                        })
                    })
                    .await
                    .map_err(|e| ClientError::Protocol(format!("saving failed: {e}")))??;
                }
                Ok(Self::from_conn(
                    conn,
                    server,
                    addr,
                    client.options().request_timeout,
                ))
            }
            Message::Error {
                code,
                message,
                reason,
            } => match (code, reason) {
                (ErrorCode::RepairRequired | ErrorCode::Revoked, Some(reason)) => {
                    Err(ClientError::RepairRequired { reason })
                }
                _ => Err(ClientError::Server { code, message }),
            },
            other => Err(ClientError::Protocol(format!(
                "expected auth_ok, got {}",
                other.kind()
            ))),
        }
    }

    pub(crate) fn from_conn(
        conn: Conn,
        server: PairedServer,
        addr: SocketAddr,
        request_timeout: std::time::Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(256);
        // Bounded: a server that floods notices loses notices, not our memory.
        let (ev_tx, events) = mpsc::channel(NOTICE_QUEUE);
        let driver = tokio::spawn(drive(conn, rx, ev_tx));
        Self {
            tx,
            events,
            server,
            addr,
            request_timeout,
            driver,
        }
    }

    /// The server this session is with (token and addresses as now saved).
    pub fn server(&self) -> &PairedServer {
        &self.server
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Run `task` with `args` on the server and wait for its result, at most
    /// [`super::ClientOptions::request_timeout`]. Requests from several callers are pipelined
    /// on the one connection.
    pub async fn request(&self, task: &str, args: Vec<String>) -> Result<Value, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Outgoing::Request {
                task: task.to_string(),
                args,
                reply,
            })
            .await
            .map_err(|_| ClientError::Closed("session ended".into()))?;
        // A server that takes the request and never answers must not hold the caller. The
        // request stays pending in the driver, so a late reply is matched and dropped.
        match tokio::time::timeout(self.request_timeout, rx).await {
            Err(_) => Err(ClientError::NoReply {
                task: task.to_string(),
                waited: self.request_timeout,
            }),
            Ok(reply) => reply.map_err(|_| ClientError::Closed("session ended".into()))?,
        }
    }

    /// The next notice or the close of the session; `None` once closed and drained.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.recv().await
    }

    /// End the session cleanly: wait for replies in flight (at most
    /// [`super::ClientOptions::request_timeout`]), then close the TLS session.
    pub async fn close(self) {
        let Session {
            tx,
            mut driver,
            request_timeout,
            ..
        } = self;
        drop(tx);
        // A server that never answers a request must not hold the close either.
        if tokio::time::timeout(request_timeout, &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }

    /// Ask the server to forget this client, and end the session.
    pub async fn unpair(self) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Outgoing::Unpair { reply })
            .await
            .map_err(|_| ClientError::Closed("session ended".into()))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Err(_) => Err(ClientError::NoReply {
                task: "unpair".into(),
                waited: self.request_timeout,
            }),
            Ok(reply) => reply.map_err(|_| ClientError::Closed("session ended".into()))?,
        }
    }
}

fn closed_error(reason: &str, repair: Option<RepairReason>) -> ClientError {
    match repair {
        Some(reason) => ClientError::RepairRequired { reason },
        None => ClientError::Closed(reason.to_string()),
    }
}

async fn drive(
    mut conn: Conn,
    mut rx: mpsc::Receiver<Outgoing>,
    events: mpsc::Sender<SessionEvent>,
) {
    let mut next_id: u64 = 0;
    let mut pending: HashMap<u64, oneshot::Sender<Result<Value, ClientError>>> = HashMap::new();
    let mut unpair: Option<oneshot::Sender<Result<(), ClientError>>> = None;
    let mut outgoing_open = true;
    let (reason, repair): (String, Option<RepairReason>) = loop {
        tokio::select! {
            out = rx.recv(), if outgoing_open => match out {
                None => {
                    // Every handle is gone: finish what is in flight, then close.
                    outgoing_open = false;
                    if pending.is_empty() {
                        break ("closed by client".into(), None);
                    }
                }
                Some(Outgoing::Request { task, args, reply }) => {
                    next_id += 1;
                    let sent = conn.feed(&Message::Request { id: next_id, task, args }).await;
                    if let Err(e) = sent {
                        // Refused locally (too large): only this request fails.
                        let fatal = !matches!(e, ConnectionError::Frame(FrameError::TooLarge { .. }));
                        let _ = reply.send(Err(e.into()));
                        if fatal {
                            break ("write failed".into(), None);
                        }
                        continue;
                    }
                    pending.insert(next_id, reply);
                    // Batch everything already queued into one flush.
                    if rx.is_empty() && conn.flush().await.is_err() {
                        break ("write failed".into(), None);
                    }
                }
                Some(Outgoing::Unpair { reply }) => {
                    if conn.send(&Message::Unpair {}).await.is_err() {
                        let _ = reply.send(Err(ClientError::Closed("write failed".into())));
                        break ("write failed".into(), None);
                    }
                    unpair = Some(reply);
                }
            },
            msg = conn.read::<Message>() => match msg {
                Ok(Some(Message::Response { id, ok, result, error })) => {
                    // Every id we send stays pending until answered, so any other id is a
                    // server out of step with us: end the session rather than wait on it.
                    let Some(reply) = pending.remove(&id) else {
                        break (format!("protocol error: response to request {id}, which was never sent or is already answered"), None);
                    };
                    let r = if ok {
                        Ok(result)
                    } else {
                        let e = error.unwrap_or(crate::message::TaskErrorBody {
                            code: "failed".into(),
                            message: "task failed".into(),
                        });
                        Err(ClientError::Task { code: e.code, message: e.message })
                    };
                    let _ = reply.send(r);
                    if !outgoing_open && pending.is_empty() {
                        break ("closed by client".into(), None);
                    }
                }
                Ok(Some(Message::Ping {})) => {
                    if conn.send(&Message::Pong {}).await.is_err() {
                        break ("write failed".into(), None);
                    }
                }
                Ok(Some(Message::Pong {})) => {}
                Ok(Some(Message::Notice { text, at_ms })) => {
                    let at_ms = super::limits::server_time_ms(at_ms, crate::unix_now_ms());
                    let text = crate::message::clean_text(&text);
                    // Dropped when the reader is behind; the end of the session never is.
                    let _ = events.try_send(SessionEvent::Notice { text, at_ms });
                }
                Ok(Some(Message::Unpaired {})) => {
                    if let Some(reply) = unpair.take() {
                        let _ = reply.send(Ok(()));
                    }
                    break ("unpaired".into(), None);
                }
                Ok(Some(Message::Error { code, message, reason })) => {
                    let repair = match code {
                        ErrorCode::Revoked | ErrorCode::RepairRequired => Some(reason.unwrap_or(RepairReason::Revoked)),
                        _ => None,
                    };
                    break (message, repair);
                }
                Ok(Some(other)) => break (format!("unexpected {} from server", other.kind()), None),
                Ok(None) => break ("closed by server".into(), None),
                Err(e) => break (e.to_string(), None),
            },
        }
    };
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(closed_error(&reason, repair)));
    }
    if let Some(reply) = unpair.take() {
        let _ = reply.send(Err(closed_error(&reason, repair)));
    }
    conn.close().await;
    let _ = events.send(SessionEvent::Closed { reason, repair }).await;
}
