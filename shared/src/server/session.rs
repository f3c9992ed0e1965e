//! An authenticated session: requests (pipelined, answered in batches), streaming runs,
//! notices, keep-alive, revocation and shutdown, until one of them ends it.
//!
//! Owns the session's registration (what `notify_all`, `revoke` and the client list see
//! while it lives), dispatching each message, and writing replies with one flush per batch.
//! Runs write their messages to one bounded queue that only this loop drains, so the
//! connection has one writer. It must not decide who may have a session (pairing or
//! authentication settled that) nor who may run what (`runs::admit` does).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::conn::{Conn, ConnCtx, fail_read};
use super::events::{DisconnectReason, RevokedBy};
use super::registry::Standing;
use super::runs::admit::{self, Ask};
use super::runs::local::SessionRuns;
use super::{Server, ServerEvent, SessionEntry, Shared, TaskContext};
use crate::connection::ConnectionError;
use crate::frame::FrameError;
use crate::identity::PeerId;
use crate::message::{ErrorCode, Message, RepairReason, StopReason, TaskErrorBody};

/// Notices queued per session; a client that stops reading loses notices, not server memory.
const NOTICE_QUEUE: usize = 64;

/// Messages of this session's runs waiting to be written (each at most a 64 KiB chunk, so at
/// most 1 MiB): a client that stops reading holds its runs back, not server memory.
const RUN_QUEUE: usize = 16;

/// Run messages written per flush at most, so other work is not starved.
const RUN_BATCH: usize = 64;

/// Messages read before the replies answered in place are flushed, at most, so a client that
/// never stops sending cannot starve the rest of the session.
const READ_BATCH: usize = 128;

/// Requests of one session shown to the operator one by one per [`TALLY_WINDOW`]; the rest
/// are counted and reported in one [`ServerEvent::Requests`].
const REQUEST_BURST: u32 = 5;

/// How often a busy session reports the requests it counted.
const TALLY_WINDOW: Duration = Duration::from_secs(1);

/// What the operator is told about one session's requests: each one while they are few, a
/// count per [`TALLY_WINDOW`] while they are many. Building an event (and its strings) per
/// request would cost more than answering an `echo`.
#[derive(Debug)]
struct Tally {
    window_start: Instant,
    shown: u32,
    count: u64,
    failed: u64,
    /// The last window counted requests: stay in counting mode while the session is busy.
    hot: bool,
    /// The timer that reports the count is set.
    armed: bool,
}

/// Whether one request is shown by itself or counted.
#[derive(Debug, PartialEq, Eq)]
enum Noted {
    Show,
    /// Counted; when set, the report timer must be set for this instant.
    Counted(Option<Instant>),
}

impl Tally {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            shown: 0,
            count: 0,
            failed: 0,
            hot: false,
            armed: false,
        }
    }

    fn note(&mut self, ok: bool, now: Instant) -> Noted {
        if !self.armed && now.duration_since(self.window_start) >= TALLY_WINDOW {
            self.window_start = now;
            self.shown = 0;
        }
        if !self.hot && self.shown < REQUEST_BURST {
            self.shown += 1;
            return Noted::Show;
        }
        self.count += 1;
        self.failed += u64::from(!ok);
        if self.armed {
            return Noted::Counted(None);
        }
        self.armed = true;
        Noted::Counted(Some(self.window_start + TALLY_WINDOW))
    }

    /// The window ended: what it counted (`None` when nothing), and when to report next.
    fn close_window(&mut self, now: Instant) -> (Option<(u64, u64, Duration)>, Option<Instant>) {
        let counted = (self.count > 0).then(|| {
            (
                self.count,
                self.failed,
                now.duration_since(self.window_start),
            )
        });
        self.hot = counted.is_some();
        self.count = 0;
        self.failed = 0;
        self.window_start = now;
        self.shown = 0;
        self.armed = self.hot;
        (counted, self.hot.then_some(now + TALLY_WINDOW))
    }
}

/// A session's entry in the server's table, removed (and the count of connected clients
/// lowered) on drop, however the session ends.
struct Registration<'a> {
    shared: &'a Shared,
    session_id: u64,
}

impl<'a> Registration<'a> {
    /// Register a session of `client_id` under `pairing_id`; returns it with its notices and
    /// its revocation.
    fn open(
        shared: &'a Shared,
        client_id: PeerId,
        pairing_id: &str,
    ) -> (Self, mpsc::Receiver<Arc<str>>, oneshot::Receiver<RevokedBy>) {
        let session_id = shared.next_id();
        let (notices, notices_rx) = mpsc::channel(NOTICE_QUEUE);
        let (revoke, revoked) = oneshot::channel();
        shared.sessions().insert(
            session_id,
            SessionEntry {
                client_id,
                notices,
                revoke: Some(revoke),
            },
        );
        shared.connected.fetch_add(1, Ordering::Relaxed);
        // A revocation between the token check and the registration above found no session
        // to close: look again now that this one is visible.
        let still_paired = matches!(
            shared.registry.standing(&client_id),
            Standing::Paired(r) if r.pairing_id == pairing_id
        );
        if !still_paired {
            let late = shared
                .sessions()
                .get_mut(&session_id)
                .and_then(|s| s.revoke.take());
            if let Some(tx) = late {
                let _ = tx.send(RevokedBy::Operator);
            }
        }
        (Self { shared, session_id }, notices_rx, revoked)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.sessions().remove(&self.session_id);
        self.shared.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Run the session of `name` until it ends; the operator is told when it starts and why it
/// ended.
pub(super) async fn run(
    ctx: &ConnCtx,
    server: &Server,
    mut conn: Conn,
    name: String,
    pairing_id: String,
    mut shutdown: broadcast::Receiver<()>,
) {
    let shared = &*ctx.shared;
    let client_id = ctx.info.peer_id;
    let (registration, mut notices, mut revoked) =
        Registration::open(shared, client_id, &pairing_id);
    let session_id = registration.session_id;
    shared.registry.touch(&client_id, ctx.peer);
    shared.emit(ServerEvent::Connected {
        session_id,
        client_name: name.clone(),
        client_addr: ctx.peer,
        client_id,
    });
    let (run_tx, run_rx) = mpsc::channel(RUN_QUEUE);
    let mut live = Live {
        ctx,
        server,
        name: &name,
        session_id,
        runs: SessionRuns::new(shared.config.max_runs),
        run_tx,
        run_rx,
        tally: Tally::new(Instant::now()),
        report_at: None,
    };
    let reason = live
        .serve(&mut conn, &mut notices, &mut revoked, &mut shutdown)
        .await;
    live.report_tally(Instant::now());
    // Every run ends with the session; none may wait to queue a message meanwhile.
    let Live { runs, run_rx, .. } = live;
    drop(run_rx);
    let stop = match reason {
        DisconnectReason::ShuttingDown => StopReason::Shutdown,
        _ => StopReason::Disconnected,
    };
    let limit = shared.config.stop_grace + Duration::from_secs(6);
    tokio::join!(conn.close(), runs.stop_all(stop, limit));
    drop(registration);
    shared.emit(ServerEvent::Disconnected {
        session_id,
        client_name: name,
        client_addr: ctx.peer,
        client_id,
        reason,
    });
}

/// A finished request: its response, the task's name, when it started.
type Done = (Message, String, Instant);

/// The response to request `id`.
fn response(id: u64, result: super::tasks::TaskResult) -> Message {
    match result {
        Ok(value) => Message::Response {
            id,
            ok: true,
            result: value,
            error: None,
        },
        Err(e) => Message::Response {
            id,
            ok: false,
            result: serde_json::Value::Null,
            error: Some(TaskErrorBody {
                code: e.code,
                message: e.message,
            }),
        },
    }
}

/// When the writes of a batch starting now must be done.
fn started_deadline(shared: &Shared) -> tokio::time::Instant {
    tokio::time::Instant::now() + shared.config.write_timeout
}

/// What one message from the client asks for.
enum Dispatch {
    /// Nothing more (answered, or nothing to answer).
    Continue,
    /// A reply was queued and is not flushed yet.
    Answered,
    /// Run a task.
    Run {
        id: u64,
        task: String,
        args: Vec<String>,
    },
    /// The session ends.
    End(DisconnectReason),
}

/// What a running session keeps at hand.
struct Live<'a> {
    ctx: &'a ConnCtx,
    server: &'a Server,
    name: &'a str,
    session_id: u64,
    /// This session's runs in progress.
    runs: SessionRuns,
    /// Where runs queue their messages; cloned into each run.
    run_tx: mpsc::Sender<Message>,
    run_rx: mpsc::Receiver<Message>,
    /// What the operator is told about this session's requests.
    tally: Tally,
    /// Set when the tally's report is due; the serve loop's timer follows it.
    report_at: Option<Instant>,
}

impl Live<'_> {
    async fn serve(
        &mut self,
        conn: &mut Conn,
        notices: &mut mpsc::Receiver<Arc<str>>,
        revoked: &mut oneshot::Receiver<RevokedBy>,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> DisconnectReason {
        let config = &self.ctx.shared.config;
        let mut inflight = FuturesUnordered::new();
        let mut last_heard = Instant::now();
        let mut keepalive = tokio::time::interval(config.keepalive.min(config.idle_timeout));
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await;
        // Reports what the tally counted; set only while it counts.
        let report = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(report);
        let mut report_armed = false;
        loop {
            if let Some(at) = self.report_at.take() {
                report.as_mut().reset(at.into());
                report_armed = true;
            }
            tokio::select! {
                // In this order: every request already received is read before the replies
                // are written, so a pipelined batch is answered with one flush (one TLS
                // record, one syscall) instead of one per reply. Reading pauses at
                // `max_inflight`, so replies are never starved.
                biased;
                _ = shutdown.recv() => return DisconnectReason::ShuttingDown,
                _ = keepalive.tick() => {
                    if let Err(why) = self.keep_alive(conn, last_heard.elapsed()).await {
                        return why;
                    }
                }
                by = &mut *revoked => {
                    let by = by.unwrap_or(RevokedBy::Operator);
                    let _ = conn.send(&Message::Error {
                        code: ErrorCode::Revoked,
                        message: by.notice().to_string(),
                        reason: Some(RepairReason::Revoked),
                    }).await;
                    return DisconnectReason::Revoked;
                }
                Some(msg) = self.run_rx.recv() => {
                    if let Err(why) = self.forward(conn, msg).await {
                        return why;
                    }
                }
                Some(text) = notices.recv() => {
                    let m = Message::Notice { text: text.to_string(), at_ms: crate::unix_now_ms() };
                    if let Err(why) = send_within(conn, &m, config.write_timeout).await {
                        return why;
                    }
                }
                () = &mut report, if report_armed => {
                    report_armed = false;
                    self.report_tally(Instant::now());
                }
                read = conn.read::<Message>(), if inflight.len() < config.max_inflight => {
                    last_heard = Instant::now();
                    // Take every message already here before flushing what was answered in
                    // place, so a pipelined batch of built-ins leaves in one write.
                    let (mut read, mut answered, mut n) = (read, false, 0);
                    loop {
                        match self.dispatch(conn, read).await {
                            Dispatch::Continue => {}
                            Dispatch::Answered => answered = true,
                            Dispatch::Run { id, task, args } => inflight.push(self.run_task(id, task, args)),
                            Dispatch::End(why) => return why,
                        }
                        n += 1;
                        if n >= READ_BATCH || inflight.len() >= config.max_inflight {
                            break;
                        }
                        match conn.read::<Message>().now_or_never() {
                            Some(next) => read = next,
                            None => break,
                        }
                    }
                    if answered {
                        let deadline = tokio::time::Instant::now() + config.write_timeout;
                        if let Err(why) = written(tokio::time::timeout_at(deadline, conn.flush()).await) {
                            return why;
                        }
                    }
                }
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    if let Err(why) = self.answer(conn, done, &mut inflight).await {
                        return why;
                    }
                }
            }
        }
    }

    /// On each keep-alive tick: end a session that has been silent too long, and ping one
    /// that has been quiet for a while.
    async fn keep_alive(&self, conn: &mut Conn, quiet: Duration) -> Result<(), DisconnectReason> {
        let config = &self.ctx.shared.config;
        if quiet >= config.idle_timeout {
            let bye = Message::error(
                ErrorCode::Timeout,
                format!("no message for {} s", quiet.as_secs()),
            );
            let _ = tokio::time::timeout(config.write_timeout, conn.send(&bye)).await;
            return Err(DisconnectReason::Idle);
        }
        if quiet >= config.keepalive {
            send_within(conn, &Message::Ping {}, config.write_timeout).await?;
        }
        Ok(())
    }

    /// Write `first` and the other run messages queued, then flush once.
    async fn forward(&mut self, conn: &mut Conn, first: Message) -> Result<(), DisconnectReason> {
        let deadline = tokio::time::Instant::now() + self.ctx.shared.config.write_timeout;
        let mut next = Some(first);
        let mut n = 0;
        while let Some(msg) = next.take() {
            if let Message::RunExit { id, .. } = &msg {
                self.runs.finished(*id);
            }
            written(tokio::time::timeout_at(deadline, conn.feed(&msg)).await)?;
            n += 1;
            if n < RUN_BATCH {
                next = self.run_rx.try_recv().ok();
            }
        }
        written(tokio::time::timeout_at(deadline, conn.flush()).await)
    }

    /// Start run `id`, or refuse it with a `run_exit`.
    async fn start_run(
        &mut self,
        conn: &mut Conn,
        id: u64,
        task: String,
        args: Vec<String>,
        window: u64,
    ) -> Result<(), DisconnectReason> {
        let shared = &self.ctx.shared;
        let ctx = self.task_context();
        let refusal = if self.runs.contains(id) {
            Some(admit::Refusal {
                code: crate::message::RefusalCode::DuplicateId,
                message: format!("run id {id} is already in use on this session"),
            })
        } else if self.runs.full() {
            Some(admit::Refusal {
                code: crate::message::RefusalCode::ServerBusy,
                message: format!(
                    "this session is running its maximum of {} tasks at once; try again later",
                    shared.config.max_runs
                ),
            })
        } else {
            let ask = Ask {
                id,
                task: task.clone(),
                args,
                window,
                session_id: self.session_id,
                client_addr: self.ctx.peer,
                ctx: ctx.clone(),
            };
            match admit::admit(shared, ask, self.run_tx.clone()) {
                Ok((link, start)) => {
                    let handle = tokio::spawn(super::runs::drive::run(start));
                    self.runs.insert(id, link, handle);
                    None
                }
                Err(r) => Some(r),
            }
        };
        let Some(refusal) = refusal else {
            return Ok(());
        };
        admit::report(
            shared,
            &task,
            &ctx,
            self.session_id,
            self.ctx.peer,
            &refusal,
        );
        send_within(conn, &refusal.exit(id), shared.config.write_timeout).await
    }

    /// Act on one read from the client.
    async fn dispatch(
        &mut self,
        conn: &mut Conn,
        read: Result<Option<Message>, ConnectionError>,
    ) -> Dispatch {
        let shared = &self.ctx.shared;
        let client_id = self.ctx.info.peer_id;
        let message = match read {
            Ok(Some(m)) => m,
            Ok(None) => return Dispatch::End(DisconnectReason::ClosedByClient),
            Err(e) => {
                let why = read_failure(&e);
                fail_read(conn, e).await;
                return Dispatch::End(why);
            }
        };
        match message {
            Message::Pong {} => Dispatch::Continue,
            Message::Ping {} => {
                match send_within(conn, &Message::Pong {}, shared.config.write_timeout).await {
                    Ok(()) => Dispatch::Continue,
                    Err(why) => Dispatch::End(why),
                }
            }
            Message::Request { id, task, args } => {
                let started = Instant::now();
                match shared
                    .tasks
                    .answer_now(&task, args, &|| self.task_context())
                {
                    Ok(result) => {
                        let done = (response(id, result), task, started);
                        match self.reply(conn, done, started_deadline(shared)).await {
                            Ok(()) => Dispatch::Answered,
                            Err(why) => Dispatch::End(why),
                        }
                    }
                    Err(args) => Dispatch::Run { id, task, args },
                }
            }
            Message::Run {
                id,
                task,
                args,
                window,
            } => match self.start_run(conn, id, task, args, window).await {
                Ok(()) => Dispatch::Continue,
                Err(why) => Dispatch::End(why),
            },
            Message::RunAck { id, bytes } => {
                self.runs.ack(id, bytes);
                Dispatch::Continue
            }
            Message::RunInput { id, data } => {
                self.runs.input(id, &data.0);
                Dispatch::Continue
            }
            Message::RunInputEnd { id } => {
                self.runs.input_end(id);
                Dispatch::Continue
            }
            Message::RunCancel { id } => {
                self.runs.cancel(id);
                Dispatch::Continue
            }
            Message::ListTasks {} => {
                let name = self.current_name();
                let tasks = shared.task_infos_for(&client_id, &name);
                match send_within(
                    conn,
                    &Message::TaskList { tasks },
                    shared.config.write_timeout,
                )
                .await
                {
                    Ok(()) => Dispatch::Continue,
                    Err(why) => Dispatch::End(why),
                }
            }
            Message::Unpair {} => {
                if let Err(e) = self.server.revoke_id(&client_id, RevokedBy::Client).await {
                    self.ctx.warn(format!("saving an unpairing failed: {e}"));
                    let _ = conn
                        .send(&Message::error(
                            ErrorCode::Internal,
                            "the server could not save the change",
                        ))
                        .await;
                    return Dispatch::End(DisconnectReason::UnpairFailed);
                }
                let _ = conn.send(&Message::Unpaired {}).await;
                Dispatch::End(DisconnectReason::Unpaired)
            }
            other => {
                let _ = conn
                    .send(&Message::error(
                        ErrorCode::UnexpectedMessage,
                        format!("{} is not valid in a session", other.kind()),
                    ))
                    .await;
                Dispatch::End(DisconnectReason::UnexpectedMessage)
            }
        }
    }

    /// The client's name as the registry holds it now (the operator may have renamed it).
    fn current_name(&self) -> String {
        match self.ctx.shared.registry.standing(&self.ctx.info.peer_id) {
            Standing::Paired(r) => r.name,
            _ => self.name.to_string(),
        }
    }

    fn task_context(&self) -> TaskContext {
        let shared = &self.ctx.shared;
        TaskContext {
            client_id: self.ctx.info.peer_id,
            client_name: self.name.to_string(),
            server_name: shared.config.name.clone(),
            server_id: shared.identity.id(),
            uptime: shared.started.elapsed(),
            connected_clients: shared.connected.load(Ordering::Relaxed),
            paired_clients: shared.registry.len(),
        }
    }

    /// Run request `id`; the future yields its response.
    fn run_task(
        &self,
        id: u64,
        task: String,
        args: Vec<String>,
    ) -> impl Future<Output = Done> + Send + 'static {
        let fut = if self.ctx.shared.configured().tasks.contains_key(&task) {
            let err = super::tasks::use_run(&task);
            Box::pin(async move { Err(err) })
        } else {
            self.ctx.shared.tasks.call(&task, self.task_context(), args)
        };
        async move {
            let started = Instant::now();
            (response(id, fut.await), task, started)
        }
    }

    /// Write `first` and every other response that is ready, then flush once. A client that
    /// stops reading fills its buffers; it is disconnected rather than allowed to pin memory.
    async fn answer<F: Future<Output = Done>>(
        &mut self,
        conn: &mut Conn,
        first: Done,
        inflight: &mut FuturesUnordered<F>,
    ) -> Result<(), DisconnectReason> {
        let deadline = started_deadline(&self.ctx.shared);
        self.reply(conn, first, deadline).await?;
        while let Some(Some(more)) = inflight.next().now_or_never() {
            self.reply(conn, more, deadline).await?;
        }
        written(tokio::time::timeout_at(deadline, conn.flush()).await)
    }

    /// Queue the response of a finished request (not flushed), and tell the operator.
    async fn reply(
        &mut self,
        conn: &mut Conn,
        (msg, task, started): Done,
        deadline: tokio::time::Instant,
    ) -> Result<(), DisconnectReason> {
        let ok = matches!(msg, Message::Response { ok: true, .. });
        let now = Instant::now();
        match self.tally.note(ok, now) {
            Noted::Show => {
                let shared = &self.ctx.shared;
                self.count_tasks(1);
                shared.emit(ServerEvent::Request {
                    session_id: self.session_id,
                    client_name: self.name.to_string(),
                    client_id: self.ctx.info.peer_id,
                    task,
                    ok,
                    elapsed_us: u64::try_from(now.duration_since(started).as_micros())
                        .unwrap_or(u64::MAX),
                });
            }
            Noted::Counted(arm) => {
                if arm.is_some() {
                    self.report_at = arm;
                }
            }
        }
        written(tokio::time::timeout_at(deadline, write_response(conn, msg)).await)
    }

    /// Add `n` to the tasks this client ran (the clients table shows it).
    fn count_tasks(&self, n: u64) {
        *self
            .ctx
            .shared
            .tasks_run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(self.ctx.info.peer_id)
            .or_default() += n;
    }

    /// Report what the tally counted, and set its next report while the session is busy.
    fn report_tally(&mut self, now: Instant) {
        let (counted, next) = self.tally.close_window(now);
        self.report_at = next;
        let Some((count, failed, interval)) = counted else {
            return;
        };
        self.count_tasks(count);
        self.ctx.shared.emit(ServerEvent::Requests {
            session_id: self.session_id,
            client_name: self.name.to_string(),
            client_id: self.ctx.info.peer_id,
            count,
            failed,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// A write's outcome as a reason to end: not done in time means the client stopped reading.
fn written(
    result: Result<Result<(), ConnectionError>, tokio::time::error::Elapsed>,
) -> Result<(), DisconnectReason> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(DisconnectReason::WriteFailed),
        Err(_) => Err(DisconnectReason::StoppedReading),
    }
}

/// Send one message within `limit`.
async fn send_within(
    conn: &mut Conn,
    msg: &Message,
    limit: Duration,
) -> Result<(), DisconnectReason> {
    written(tokio::time::timeout(limit, conn.send(msg)).await)
}

/// Why a failed read ends the session.
fn read_failure(e: &ConnectionError) -> DisconnectReason {
    match e {
        ConnectionError::Frame(FrameError::TooLarge { .. }) => DisconnectReason::FrameTooLarge,
        ConnectionError::Malformed(_) => DisconnectReason::BadMessage,
        ConnectionError::Closed | ConnectionError::Frame(FrameError::Truncated) => {
            DisconnectReason::ClosedByClient
        }
        ConnectionError::Frame(FrameError::Io(_)) | ConnectionError::Timeout => {
            DisconnectReason::ReadFailed
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_session_is_reported_once_a_window_and_a_quiet_one_request_by_request() {
        let t0 = Instant::now();
        let mut tally = Tally::new(t0);
        for _ in 0..REQUEST_BURST {
            assert_eq!(tally.note(true, t0), Noted::Show);
        }
        // Past the burst: counted, and the report is due at the window's end.
        assert_eq!(
            tally.note(false, t0),
            Noted::Counted(Some(t0 + TALLY_WINDOW))
        );
        assert_eq!(tally.note(true, t0), Noted::Counted(None));
        let t1 = t0 + TALLY_WINDOW;
        let (counted, next) = tally.close_window(t1);
        assert_eq!(counted, Some((2, 1, TALLY_WINDOW)));
        assert_eq!(next, Some(t1 + TALLY_WINDOW));
        // Still busy: counted from the first request of the next window.
        assert_eq!(tally.note(true, t1), Noted::Counted(None));
        let t2 = t1 + TALLY_WINDOW;
        assert_eq!(tally.close_window(t2).0, Some((1, 0, TALLY_WINDOW)));
        // A window with nothing in it ends counting: the next request is shown again.
        let t3 = t2 + TALLY_WINDOW;
        assert_eq!(tally.close_window(t3), (None, None));
        assert_eq!(tally.note(true, t3 + TALLY_WINDOW), Noted::Show);
    }
}
