//! An authenticated session: pipelined requests matched by id, server notices, and the
//! session's own liveness.
//!
//! A driver task owns the read half of the connection. A request goes from the caller
//! straight to the socket ([`super::writer`]); its answer comes back from the driver through
//! a oneshot. Runs, task lists and unpairing go through the driver. So a session can be
//! shared by reference (or by [`SessionHandle`]) and used from several tasks at once.
//! Silence is not health: when nothing has come from the server for
//! [`SessionOptions::keepalive`] the driver sends a `ping`, and when nothing at all has come
//! for [`SessionOptions::dead_after`] the session ends as lost. Every write has the same
//! limit, so a server that stopped reading cannot hold a caller or the driver either.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::run::{NewRun, RunHandle, RunTable};
use super::writer::{Outlet, write_failed};
use super::{Client, ClientError};
use crate::dialer::Conn;
use crate::message::{ErrorCode, Message, RepairReason, TaskInfo};
use crate::state::PairedServer;
use crate::tls::ServerTrust;

/// What a session needs to know about time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// How long a request may wait for its answer.
    pub request_timeout: Duration,
    /// Send a `ping` after this long without a message from the server.
    pub keepalive: Duration,
    /// Lost after this long without any message from the server.
    pub dead_after: Duration,
}

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
    Unpair {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    Run(NewRun),
    ListTasks {
        reply: oneshot::Sender<Result<Vec<TaskInfo>, ClientError>>,
    },
}

/// An open, authenticated session with a paired server.
#[derive(Debug)]
pub struct Session {
    handle: SessionHandle,
    events: mpsc::Receiver<SessionEvent>,
    server: PairedServer,
    addr: SocketAddr,
    driver: tokio::task::JoinHandle<()>,
}

/// A cheap, cloneable way to run requests on a session from any task; requests from every
/// handle are pipelined on the one connection. Requests fail once the session has ended.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Outgoing>,
    outlet: Arc<Outlet>,
    request_timeout: Duration,
}

impl SessionHandle {
    /// Run `task` with `args` and wait for its result, at most
    /// [`SessionOptions::request_timeout`]. Sent at most once: a request whose session ends
    /// before the answer fails, and is never sent again.
    pub async fn request(&self, task: &str, args: Vec<String>) -> Result<Value, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.outlet.queue_request(task, args, reply)?;
        self.outlet.write_soon().await;
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

    /// Start `task` with `args` as a streaming run granting `window` bytes of output credit
    /// (see [`super::run::DEFAULT_WINDOW`]). Started once: a run whose session ends
    /// reports [`super::RunEvent::Lost`] and is never started again.
    pub async fn run(
        &self,
        task: &str,
        args: Vec<String>,
        window: u64,
    ) -> Result<RunHandle, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Outgoing::Run(NewRun {
                task: task.to_string(),
                args,
                window,
                reply,
            }))
            .await
            .map_err(|_| ClientError::Closed("session ended".into()))?;
        rx.await
            .map_err(|_| ClientError::Closed("session ended".into()))?
    }

    /// The tasks this client may run on the server.
    pub async fn list_tasks(&self) -> Result<Vec<TaskInfo>, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Outgoing::ListTasks { reply })
            .await
            .map_err(|_| ClientError::Closed("session ended".into()))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Err(_) => Err(ClientError::NoReply {
                task: "list_tasks".into(),
                waited: self.request_timeout,
            }),
            Ok(reply) => reply.map_err(|_| ClientError::Closed("session ended".into()))?,
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The encoding this session writes (what the handshake negotiated).
    pub fn encoding(&self) -> crate::connection::Encoding {
        self.outlet.encoding()
    }
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
                // Accepted again (a refusal noted before no longer holds).
                let cleared = server.refused.take().is_some();
                if let Some(t) = token {
                    server.token = t;
                    server.token_expires_at =
                        super::limits::token_expiry(token_expires_at, crate::unix_now());
                }
                server.name = crate::message::clean_name(&server_name);
                server.remember_addr(addr);
                if renewed || moved || cleared {
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
                    client.options().session(),
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
        options: SessionOptions,
    ) -> Self {
        let (tx, rx) = mpsc::channel(256);
        // Bounded: a server that floods notices loses notices, not our memory.
        let (ev_tx, events) = mpsc::channel(NOTICE_QUEUE);
        let encoding = conn.encoding();
        let max_frame = conn.max_frame();
        let (reader, write_half, queued) = conn.split();
        let outlet = Arc::new(Outlet::new(
            write_half,
            queued,
            encoding,
            max_frame,
            options.dead_after,
        ));
        tokio::spawn(outlet.clone().run_flusher());
        let driver = tokio::spawn(drive(reader, outlet.clone(), rx, ev_tx, options));
        Self {
            handle: SessionHandle {
                tx,
                outlet,
                request_timeout: options.request_timeout,
            },
            events,
            server,
            addr,
            driver,
        }
    }

    /// A handle for running requests from other tasks.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
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
        self.handle.request(task, args).await
    }

    /// The next notice or the close of the session; `None` once closed and drained.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.recv().await
    }

    /// End the session cleanly: wait for replies in flight (at most
    /// [`super::ClientOptions::request_timeout`]), then close the TLS session.
    pub async fn close(self) {
        let Session {
            handle, mut driver, ..
        } = self;
        let request_timeout = handle.request_timeout;
        drop(handle);
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
        self.handle
            .tx
            .send(Outgoing::Unpair { reply })
            .await
            .map_err(|_| ClientError::Closed("session ended".into()))?;
        match tokio::time::timeout(self.handle.request_timeout, rx).await {
            Err(_) => Err(ClientError::NoReply {
                task: "unpair".into(),
                waited: self.handle.request_timeout,
            }),
            Ok(reply) => reply.map_err(|_| ClientError::Closed("session ended".into()))?,
        }
    }
}

pub(crate) fn closed_error(reason: &str, repair: Option<RepairReason>) -> ClientError {
    match repair {
        Some(reason) => ClientError::RepairRequired { reason },
        None => ClientError::Closed(reason.to_string()),
    }
}

/// The read half of a session's connection.
type Reader = crate::connection::Connection<
    tokio::io::ReadHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
>;

/// Queue `msg` for the flusher; `Err` (the session's end) when it cannot go. A write that
/// fails later ends the session through [`Outlet::fail`].
fn send(outlet: &Outlet, msg: &Message) -> Result<(), String> {
    if outlet.queue(msg).is_err() {
        return Err(write_failed(false));
    }
    match &outlet.state().ended {
        Some((reason, _)) => Err(reason.clone()),
        None => Ok(()),
    }
}

async fn drive(
    mut conn: Reader,
    outlet: Arc<Outlet>,
    mut rx: mpsc::Receiver<Outgoing>,
    events: mpsc::Sender<SessionEvent>,
    options: SessionOptions,
) {
    let mut unpair: Option<oneshot::Sender<Result<(), ClientError>>> = None;
    let mut outgoing_open = true;
    let mut runs = RunTable::default();
    let (run_tx, mut run_rx) = mpsc::unbounded_channel();
    let mut task_lists: std::collections::VecDeque<
        oneshot::Sender<Result<Vec<TaskInfo>, ClientError>>,
    > = std::collections::VecDeque::new();
    // Liveness: when the server was last heard from, and when we last pinged it.
    let mut last_heard = tokio::time::Instant::now();
    let mut last_ping: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval((options.keepalive / 4).max(Duration::from_millis(25)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle =
        |runs: &RunTable, outlet: &Outlet| runs.is_empty() && outlet.state().pending.is_empty();
    let (reason, repair): (String, Option<RepairReason>) = loop {
        tokio::select! {
            () = outlet.wake.notified() => {
                // A write failed.
                if let Some(ended) = outlet.state().ended.clone() {
                    break ended;
                }
            }
            _ = tick.tick() => {
                let quiet = last_heard.elapsed();
                if quiet >= options.dead_after {
                    break (format!("lost: no answer from the server for {:.1} s", quiet.as_secs_f64()), None);
                }
                let ping_due = quiet >= options.keepalive
                    && last_ping.is_none_or(|t| t.elapsed() >= options.keepalive);
                if ping_due {
                    last_ping = Some(tokio::time::Instant::now());
                    if let Err(why) = send(&outlet, &Message::Ping {}) {
                        break (why, None);
                    }
                }
            }
            out = rx.recv(), if outgoing_open => match out {
                None => {
                    // Every handle is gone: finish what is in flight, then close.
                    outgoing_open = false;
                    if idle(&runs, &outlet) {
                        break ("closed by client".into(), None);
                    }
                }
                Some(Outgoing::Run(new)) => {
                    let id = {
                        let mut st = outlet.state();
                        st.next_id += 1;
                        st.next_id
                    };
                    if let Some(m) = runs.start(id, new, run_tx.clone())
                        && let Err(why) = send(&outlet, &m)
                    {
                        break (why, None);
                    }
                }
                Some(Outgoing::ListTasks { reply }) => {
                    if let Err(why) = send(&outlet, &Message::ListTasks {}) {
                        let _ = reply.send(Err(ClientError::Closed(why.clone())));
                        break (why, None);
                    }
                    task_lists.push_back(reply);
                }
                Some(Outgoing::Unpair { reply }) => {
                    if let Err(why) = send(&outlet, &Message::Unpair {}) {
                        let _ = reply.send(Err(ClientError::Closed(why.clone())));
                        break (why, None);
                    }
                    unpair = Some(reply);
                }
            },
            Some(cmd) = run_rx.recv() => {
                if let Some(m) = runs.command(cmd)
                    && let Err(why) = send(&outlet, &m)
                {
                    break (why, None);
                }
                if !outgoing_open && idle(&runs, &outlet) {
                    break ("closed by client".into(), None);
                }
            }
            msg = conn.read::<Message>() => {
                last_heard = tokio::time::Instant::now();
                match msg {
                Ok(Some(m @ (Message::RunStarted { .. } | Message::RunOutput { .. } | Message::RunInputAck { .. } | Message::RunExit { .. }))) => {
                    if let Err(e) = runs.on_message(m) {
                        break (e, None);
                    }
                    if !outgoing_open && idle(&runs, &outlet) {
                        break ("closed by client".into(), None);
                    }
                }
                Ok(Some(Message::TaskList { tasks })) => {
                    let Some(reply) = task_lists.pop_front() else {
                        break ("protocol error: a task list nobody asked for".into(), None);
                    };
                    let _ = reply.send(Ok(tasks));
                }
                Ok(Some(Message::Response { id, ok, result, error })) => {
                    // Every id we send stays pending until answered, so any other id is a
                    // server out of step with us: end the session rather than wait on it.
                    let Some(reply) = outlet.state().pending.remove(&id) else {
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
                    if !outgoing_open && idle(&runs, &outlet) {
                        break ("closed by client".into(), None);
                    }
                }
                Ok(Some(Message::Ping {})) => {
                    if let Err(why) = send(&outlet, &Message::Pong {}) {
                        break (why, None);
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
            }},
        }
    };
    // From here on a new request fails at once, and every one waiting gets this reason.
    outlet.end(reason.clone(), repair);
    let pending = std::mem::take(&mut outlet.state().pending);
    runs.end_all(&reason);
    for reply in task_lists.drain(..) {
        let _ = reply.send(Err(closed_error(&reason, repair)));
    }
    for (_, reply) in pending {
        let _ = reply.send(Err(closed_error(&reason, repair)));
    }
    if let Some(reply) = unpair.take() {
        let _ = reply.send(Err(closed_error(&reason, repair)));
    }
    // A server that stopped reading must not hold the close either.
    outlet.close(Duration::from_secs(1)).await;
    let _ = events.send(SessionEvent::Closed { reason, repair }).await;
}
