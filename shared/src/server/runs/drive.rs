//! One run from admission to `run_exit`, whatever runs it: a value task, a streaming task
//! registered in Rust, or a configured command.
//!
//! Owns the order every run follows: `run_started` (after the program started, for a
//! command), the work, one `run_exit`, the operator's `task_started` and `task_finished`,
//! and giving back the run's place in the server's table. Timeouts and stops come through
//! the run's stop signal; a Rust task is stopped by dropping its future, a program by
//! `process`, which waits until nothing of it is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{RunIo, STDIN_WINDOW};
use crate::message::{Message, RefusalCode, RunStatus, StopReason};
use crate::server::tasks::command::{CommandTask, Prepared};
use crate::server::tasks::{StreamingTask, Task, TaskContext, process};
use crate::server::{ServerEvent, Shared};

/// What does the work.
pub(crate) enum Job {
    Value(Arc<dyn Task>),
    Streaming(Arc<dyn StreamingTask>),
    Command(Arc<CommandTask>, Prepared),
}

/// A run's place in the server's run table, given back on drop.
pub(crate) struct Slot {
    pub(crate) shared: Arc<Shared>,
    pub(crate) run_id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.runs().release(self.run_id);
    }
}

/// Everything a run starts with: who it is for, what does the work, and for how long.
pub(crate) struct Start {
    pub(crate) run: Run,
    pub(crate) job: Job,
    pub(crate) timeout: Duration,
}

enum Outcome {
    Refused(super::admit::Refusal),
    Ended(RunStatus, Value),
}

/// The part of a run that outlives its job: who it is for, and how to report.
pub(crate) struct Run {
    pub(crate) slot: Slot,
    /// The client's id for the run.
    pub(crate) id: u64,
    pub(crate) session_id: u64,
    pub(crate) client_addr: SocketAddr,
    pub(crate) ctx: TaskContext,
    pub(crate) task: String,
    pub(crate) args: Vec<String>,
    pub(crate) io: RunIo,
    pub(crate) stdin: bool,
}

impl Run {
    async fn started(&self) {
        let stdin_window = if self.stdin { STDIN_WINDOW } else { 0 };
        self.io
            .send(Message::RunStarted {
                id: self.id,
                stdin: self.stdin,
                stdin_window,
            })
            .await;
        self.slot.shared.emit(ServerEvent::TaskStarted {
            run_id: self.slot.run_id,
            session_id: self.session_id,
            client_name: self.ctx.client_name.clone(),
            client_id: self.ctx.client_id,
            task: self.task.clone(),
            args: self.args.clone(),
        });
    }
}

/// Carry out `start` to its end.
pub(crate) async fn run(start: Start) {
    let Start {
        mut run,
        job,
        timeout,
    } = start;
    let began = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let stop = run.io.stop().clone();
    let grace = run.slot.shared.config.stop_grace;
    let outcome = match job {
        Job::Command(task, prepared) => match process::spawn(&task, &prepared, &run.ctx) {
            Err(e) => {
                run.slot.shared.emit(ServerEvent::Warning {
                    message: format!(
                        "task {}: {} could not be started: {e}",
                        run.task,
                        task.program.display()
                    ),
                });
                Outcome::Refused(super::admit::Refusal {
                    code: RefusalCode::SpawnFailed,
                    message:
                        "the task's program could not be started (the server's operator was told why)"
                            .into(),
                })
            }
            Ok(running) => {
                run.started().await;
                let status = running.drive(&mut run.io, deadline, grace).await;
                Outcome::Ended(status, Value::Null)
            }
        },
        Job::Value(task) => {
            run.started().await;
            let work = task.run(run.ctx.clone(), run.args.clone());
            match bounded(&stop, deadline, work).await {
                Err(outcome) => outcome,
                Ok(Ok(v)) => Outcome::Ended(RunStatus::Done {}, v),
                Ok(Err(e)) => failed(e),
            }
        }
        Job::Streaming(task) => {
            run.started().await;
            let io = RunIo::new(
                run.id,
                run.io.out.clone(),
                run.io.link.clone(),
                run.io.max_output,
            );
            let work = task.run(run.ctx.clone(), run.args.clone(), io);
            match (bounded(&stop, deadline, work).await, stop.reason()) {
                (Err(outcome), _) => outcome,
                // A write refused because the run was stopped ends it as stopped.
                (Ok(_), Some(r)) => Outcome::Ended(RunStatus::Stopped { reason: r }, Value::Null),
                (Ok(Ok(code)), None) => Outcome::Ended(RunStatus::Exited { code }, Value::Null),
                (Ok(Err(e)), None) => failed(e),
            }
        }
    };
    let duration_ms = began.elapsed().as_millis() as u64;
    let shared = run.slot.shared.clone();
    match outcome {
        Outcome::Refused(refusal) => {
            run.io.send(refusal.exit(run.id)).await;
            super::admit::report(
                &shared,
                &run.task,
                &run.ctx,
                run.session_id,
                run.client_addr,
                &refusal,
            );
        }
        Outcome::Ended(status, result) => {
            run.io
                .send(Message::RunExit {
                    id: run.id,
                    status: status.clone(),
                    duration_ms,
                    result,
                })
                .await;
            shared.emit(ServerEvent::TaskFinished {
                run_id: run.slot.run_id,
                session_id: run.session_id,
                client_name: run.ctx.client_name.clone(),
                client_id: run.ctx.client_id,
                task: run.task.clone(),
                status,
                duration_ms,
                bytes_out: run.io.link.meter.out(),
                bytes_in: run.io.link.meter.input(),
            });
        }
    }
}

/// Run `work` (a task registered in Rust) until it ends, or until the run is stopped or its
/// `deadline` passes: then its future is dropped, and the outcome says why.
async fn bounded<T>(
    stop: &super::Stop,
    deadline: tokio::time::Instant,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Outcome> {
    tokio::select! {
        biased;
        r = stop.wait() => Err(Outcome::Ended(RunStatus::Stopped { reason: r }, Value::Null)),
        _ = tokio::time::sleep_until(deadline) => {
            stop.request(StopReason::Timeout);
            let reason = stop.reason().unwrap_or(StopReason::Timeout);
            Err(Outcome::Ended(RunStatus::Stopped { reason }, Value::Null))
        }
        result = work => Ok(result),
    }
}

fn failed(e: crate::server::tasks::TaskError) -> Outcome {
    Outcome::Ended(
        RunStatus::Failed {
            code: e.code,
            message: e.message,
        },
        Value::Null,
    )
}
