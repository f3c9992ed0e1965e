//! Admission of a `run`: which task the name means, whether this client may run it, whether
//! its arguments fit, and whether there is room, in that order, before anything starts.
//!
//! Owns the refusals and their codes. A refused run never reaches a program; it is answered
//! with `run_exit` status `refused` and reported to the operator. Carrying an admitted run
//! out is `drive`'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::drive::{Job, Run, Slot, Start};
use super::table::{Entry, Full};
use super::{Link, Meter, RunIo, STDIN_WINDOW, Stop};
use crate::identity::PeerId;
use crate::message::{Message, RefusalCode};
use crate::server::registry::Standing;
use crate::server::tasks::access::Access;
use crate::server::tasks::{Registered, TaskContext};
use crate::server::{ServerEvent, Shared};

/// Largest output window a client may offer, bytes; more is taken as this much.
pub const MAX_WINDOW: u64 = 16 << 20;

/// A run that was not admitted: its code and the sentence the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: RefusalCode,
    pub(crate) message: String,
}

impl Refusal {
    /// The `run_exit` that tells the client, for its run `id`.
    pub(crate) fn exit(&self, id: u64) -> Message {
        Message::RunExit {
            id,
            status: crate::message::RunStatus::Refused {
                code: self.code,
                message: self.message.clone(),
            },
            duration_ms: 0,
            result: serde_json::Value::Null,
        }
    }

    fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What the session knows of a run it was asked for.
pub(crate) struct Ask {
    pub(crate) id: u64,
    pub(crate) task: String,
    pub(crate) args: Vec<String>,
    pub(crate) window: u64,
    pub(crate) session_id: u64,
    pub(crate) client_addr: SocketAddr,
    pub(crate) ctx: TaskContext,
}

/// The name the registry holds for `id` now (the operator may have renamed it), or the one
/// the session opened with.
fn current_name(shared: &Shared, id: &PeerId, fallback: &str) -> String {
    match shared.registry.standing(id) {
        Standing::Paired(r) => r.name,
        _ => fallback.to_string(),
    }
}

/// Admit `ask`, or say why not. On success the run's shared parts are returned for the
/// session's table, and the [`Start`] for `drive`.
pub(crate) fn admit(
    shared: &Arc<Shared>,
    ask: Ask,
    out: mpsc::Sender<Message>,
) -> Result<(Link, Start), Refusal> {
    let Ask {
        id,
        task,
        args,
        window,
        session_id,
        client_addr,
        mut ctx,
    } = ask;
    ctx.client_name = current_name(shared, &ctx.client_id, &ctx.client_name);
    let config = &shared.config;
    let configured = shared.configured();
    let (job, stdin, timeout, max_output, max_stdin, cap) = if let Some(t) =
        configured.tasks.get(&task)
    {
        let paired = || {
            shared
                .registry
                .list()
                .into_iter()
                .map(|r| (r.client_id, r.name))
                .collect::<Vec<_>>()
        };
        match t.access(&ctx.client_id, &ctx.client_name, paired) {
            Access::Allowed { ambiguous } => {
                if let Some((entry, n)) = ambiguous {
                    shared.warn_once(
                        &task,
                        &entry,
                        format!(
                            "task {task}: its clients entry {entry:?} matches {n} paired clients, and {} ({}) ran it; list client ids for anything sensitive",
                            ctx.client_name,
                            ctx.client_id.short()
                        ),
                    );
                }
            }
            Access::Forbidden { collision } => {
                if let Some(short) = collision {
                    shared.warn_once(
                        &task,
                        &short,
                        format!(
                            "task {task}: the short id {short} in its clients matches several paired clients, so it lets none of them in; list the full id"
                        ),
                    );
                }
                return Err(Refusal::new(
                    RefusalCode::Forbidden,
                    format!("this client may not run {task}"),
                ));
            }
        }
        let prepared = t
            .prepare(&args)
            .map_err(|m| Refusal::new(RefusalCode::BadArgs, m))?;
        (
            Job::Command(t.clone(), prepared),
            t.stdin,
            t.timeout.unwrap_or(config.task_timeout),
            t.max_output.unwrap_or(config.max_output),
            t.max_stdin.unwrap_or(config.max_stdin),
            Some(t.concurrency),
        )
    } else {
        match shared.tasks.get(&task) {
            Some((Registered::Value(t), _)) => (
                Job::Value(t.clone()),
                false,
                config.task_timeout,
                config.max_output,
                0,
                None,
            ),
            Some((Registered::Streaming(t), about)) => (
                Job::Streaming(t.clone()),
                about.stdin,
                config.task_timeout,
                config.max_output,
                config.max_stdin,
                None,
            ),
            None => {
                let mut names = shared.task_names_for(&ctx.client_id, &ctx.client_name);
                names.sort();
                return Err(Refusal::new(
                    RefusalCode::UnknownTask,
                    format!("unknown task {task:?}; available: {}", names.join(", ")),
                ));
            }
        }
    };
    let run_id = shared.next_id();
    let link = Link {
        credit: Arc::new(super::Credit::new(window.clamp(1, MAX_WINDOW))),
        stdin: stdin.then(|| Arc::new(super::StdinPipe::new(STDIN_WINDOW, max_stdin))),
        stop: Arc::new(Stop::new()),
        meter: Arc::new(Meter::default()),
    };
    let entry = Entry {
        session_id,
        client_id: ctx.client_id,
        client_name: ctx.client_name.clone(),
        task: task.clone(),
        args: args.clone(),
        started_at_ms: crate::unix_now_ms(),
        started: Instant::now(),
        meter: link.meter.clone(),
        stop: link.stop.clone(),
    };
    shared
        .runs()
        .admit(run_id, entry, cap, config.max_runs)
        .map_err(|full| {
            let code = match full {
                Full::Server(_) => RefusalCode::ServerBusy,
                Full::Task(_) => RefusalCode::Busy,
            };
            Refusal::new(code, full.message(&task))
        })?;
    let slot = Slot {
        shared: shared.clone(),
        run_id,
    };
    *shared
        .tasks_run
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(ctx.client_id)
        .or_default() += 1;
    let io = RunIo::new(id, out, link.clone(), max_output);
    let start = Start {
        run: Run {
            slot,
            id,
            session_id,
            client_addr,
            ctx,
            task,
            args,
            io,
            stdin,
        },
        job,
        timeout: timeout.max(Duration::from_millis(1)),
    };
    Ok((link, start))
}

/// Tell the operator about a refused run.
pub(crate) fn report(
    shared: &Shared,
    ask_task: &str,
    ctx: &TaskContext,
    session_id: u64,
    client_addr: SocketAddr,
    refusal: &Refusal,
) {
    shared.emit(ServerEvent::TaskRefused {
        session_id,
        client_name: ctx.client_name.clone(),
        client_id: ctx.client_id,
        client_addr,
        task: ask_task.to_string(),
        code: refusal.code,
        message: refusal.message.clone(),
    });
}

/// Bytes `n` of stdin arrived for a run: count them for the operator.
pub(crate) fn count_input(meter: &Meter, n: usize) {
    meter.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
}
