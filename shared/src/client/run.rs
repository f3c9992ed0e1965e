//! Streaming runs, the client's side: a [`RunHandle`] for the caller, and the table the
//! session's driver keeps for the runs in flight.
//!
//! Owns the flow-control bookkeeping of docs/protocol.md §6.15. Output: the server may have
//! at most `window` bytes unacknowledged; the handle acknowledges what its caller has taken,
//! in batches, so a caller that stops reading stops the server (and the program) instead of
//! growing this process. A server that sends past its credit breaks the protocol and ends the
//! session. Stdin: the handle waits for credit the server granted before it sends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use super::ClientError;
use crate::message::{Message, OutputStream, Payload, RunStatus};

/// Output credit a run grants by default (and the most this client holds per run).
pub const DEFAULT_WINDOW: u64 = 1024 * 1024;

/// Largest stdin chunk sent in one `run_input`.
pub const CHUNK: usize = 16 * 1024;

/// Runs one session may have in flight at once.
pub const MAX_RUNS: usize = 1024;

/// Stdin credit a server can grant; more is clamped.
const MAX_CREDIT: u64 = 64 * 1024 * 1024;

/// What happens in a run, in order: `Started`, any number of `Output`, then `Exit` (or
/// `Lost` when the session ended first). Nothing follows `Exit` or `Lost`.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The program started; `stdin` says whether it reads stdin.
    Started {
        /// Whether [`RunHandle::write_stdin`] is of use.
        stdin: bool,
    },
    /// A chunk of output, as the program wrote it.
    Output {
        /// Which stream.
        stream: OutputStream,
        /// The bytes (a slice of the frame they came in).
        data: Bytes,
    },
    /// The run ended.
    Exit {
        /// How.
        status: RunStatus,
        /// From start to end, as the server measured it.
        duration: Duration,
        /// The result of a value task (`Null` otherwise).
        result: Value,
    },
    /// The session ended before the run did; whether the program finished is unknown (the
    /// server stops runs whose session ends). The run is not started again.
    Lost {
        /// Why, for people.
        reason: String,
    },
}

/// What a handle asks of the driver.
#[derive(Debug)]
pub(crate) enum RunCmd {
    Consumed { id: u64, bytes: u64 },
    Input { id: u64, data: Bytes },
    InputEnd { id: u64 },
    Cancel { id: u64 },
}

/// One run in flight, from the caller's side. Dropping it before the run ends cancels it.
#[derive(Debug)]
pub struct RunHandle {
    id: u64,
    events: mpsc::UnboundedReceiver<RunEvent>,
    cmds: mpsc::UnboundedSender<RunCmd>,
    stdin: Arc<Semaphore>,
    window: u64,
    consumed: u64,
    ended: bool,
}

impl RunHandle {
    /// The run's id on its session.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event; `None` after `Exit` or `Lost` has been returned.
    pub async fn next(&mut self) -> Option<RunEvent> {
        if self.ended {
            return None;
        }
        let event = self.events.recv().await;
        match &event {
            Some(RunEvent::Output { data, .. }) => {
                self.consumed += data.len() as u64;
                // Credit goes back in batches of a quarter window, so a reader that keeps
                // up never makes the server wait, and one that stops stops it.
                if self.consumed >= (self.window / 4).max(1) {
                    let bytes = std::mem::take(&mut self.consumed);
                    let _ = self.cmds.send(RunCmd::Consumed { id: self.id, bytes });
                }
            }
            Some(RunEvent::Exit { .. } | RunEvent::Lost { .. }) | None => self.ended = true,
            Some(RunEvent::Started { .. }) => {}
        }
        event.or_else(|| {
            self.ended = true;
            Some(RunEvent::Lost {
                reason: "the session ended".into(),
            })
        })
    }

    /// A handle on the run's stdin, for another task to feed while this one reads.
    pub fn input(&self) -> RunInput {
        RunInput {
            id: self.id,
            cmds: self.cmds.clone(),
            stdin: self.stdin.clone(),
        }
    }

    /// Send `data` to the program's stdin, waiting for credit as the program takes it.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), ClientError> {
        self.input().write(data).await
    }

    /// No more stdin: the program sees the end of its input.
    pub fn close_stdin(&self) {
        self.input().close();
    }

    /// Ask the server to stop the run; its `Exit` (status `stopped`, `cancelled`) follows.
    pub fn cancel(&self) {
        let _ = self.cmds.send(RunCmd::Cancel { id: self.id });
    }
}

/// The stdin of a run, detached from its [`RunHandle`] so that one task can feed it while
/// another reads the output.
#[derive(Debug, Clone)]
pub struct RunInput {
    id: u64,
    cmds: mpsc::UnboundedSender<RunCmd>,
    stdin: Arc<Semaphore>,
}

impl RunInput {
    /// Send `data`, waiting for credit as the program takes it; fails once the run ended.
    pub async fn write(&self, data: &[u8]) -> Result<(), ClientError> {
        let ended = || ClientError::Closed("the run has ended".into());
        let mut at = 0;
        while at < data.len() {
            let want = (data.len() - at).min(CHUNK);
            // Wait for a byte of credit, then take what else is there, up to a chunk.
            self.stdin.acquire().await.map_err(|_| ended())?.forget();
            let more = self.stdin.available_permits().min(want - 1);
            if more > 0 {
                self.stdin
                    .try_acquire_many(u32::try_from(more).unwrap_or(u32::MAX))
                    .map_err(|_| ended())?
                    .forget();
            }
            let n = 1 + more;
            self.cmds
                .send(RunCmd::Input {
                    id: self.id,
                    data: Bytes::copy_from_slice(&data[at..at + n]),
                })
                .map_err(|_| ClientError::Closed("session ended".into()))?;
            at += n;
        }
        Ok(())
    }

    /// No more stdin: the program sees the end of its input.
    pub fn close(&self) {
        let _ = self.cmds.send(RunCmd::InputEnd { id: self.id });
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.cmds.send(RunCmd::Cancel { id: self.id });
        }
        // Nobody waits for stdin credit any more.
        self.stdin.close();
    }
}

/// What the driver keeps per run.
#[derive(Debug)]
struct RunState {
    events: mpsc::UnboundedSender<RunEvent>,
    window: u64,
    /// Output received and not yet acknowledged to the server.
    outstanding: u64,
    stdin: Arc<Semaphore>,
    /// Stdin sent and not yet acknowledged by the server.
    stdin_unacked: u64,
}

/// The runs of one session, kept by its driver.
#[derive(Debug, Default)]
pub(crate) struct RunTable {
    runs: HashMap<u64, RunState>,
}

/// A run the caller asked for, before the driver gave it an id.
pub(crate) struct NewRun {
    pub task: String,
    pub args: Vec<String>,
    pub window: u64,
    pub reply: tokio::sync::oneshot::Sender<Result<RunHandle, ClientError>>,
}

impl RunTable {
    /// Register run `id`, returning the message that starts it and the caller's handle.
    pub(crate) fn start(
        &mut self,
        id: u64,
        new: NewRun,
        cmds: mpsc::UnboundedSender<RunCmd>,
    ) -> Option<Message> {
        if self.runs.len() >= MAX_RUNS {
            let _ = new.reply.send(Err(ClientError::Protocol(format!(
                "{MAX_RUNS} runs are already in flight on this session"
            ))));
            return None;
        }
        let window = new.window.clamp(1, DEFAULT_WINDOW * 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let stdin = Arc::new(Semaphore::new(0));
        self.runs.insert(
            id,
            RunState {
                events: tx,
                window,
                outstanding: 0,
                stdin: stdin.clone(),
                stdin_unacked: 0,
            },
        );
        let handle = RunHandle {
            id,
            events: rx,
            cmds,
            stdin,
            window,
            consumed: 0,
            ended: false,
        };
        if new.reply.send(Ok(handle)).is_err() {
            // The caller gave up before it began: nothing to start.
            self.runs.remove(&id);
            return None;
        }
        Some(Message::Run {
            id,
            task: new.task,
            args: new.args,
            window,
        })
    }

    /// A handle's request, as the message to send, if any.
    pub(crate) fn command(&mut self, cmd: RunCmd) -> Option<Message> {
        match cmd {
            RunCmd::Consumed { id, bytes } => {
                let run = self.runs.get_mut(&id)?;
                let bytes = bytes.min(run.outstanding);
                run.outstanding -= bytes;
                (bytes > 0).then_some(Message::RunAck { id, bytes })
            }
            RunCmd::Input { id, data } => {
                let run = self.runs.get_mut(&id)?;
                run.stdin_unacked += data.len() as u64;
                Some(Message::RunInput {
                    id,
                    data: Payload(data),
                })
            }
            RunCmd::InputEnd { id } => self
                .runs
                .contains_key(&id)
                .then_some(Message::RunInputEnd { id }),
            RunCmd::Cancel { id } => self
                .runs
                .contains_key(&id)
                .then_some(Message::RunCancel { id }),
        }
    }

    /// A run message from the server. `Err` when the server broke the protocol (the
    /// session must end).
    pub(crate) fn on_message(&mut self, msg: Message) -> Result<(), String> {
        match msg {
            Message::RunStarted {
                id,
                stdin,
                stdin_window,
            } => {
                let run = self.get(id, "run_started")?;
                if stdin {
                    run.stdin.add_permits(credit(stdin_window));
                }
                let _ = run.events.send(RunEvent::Started { stdin });
            }
            Message::RunOutput { id, stream, data } => {
                let run = self.get(id, "run_output")?;
                let len = data.0.len() as u64;
                if run.outstanding + len > run.window {
                    return Err(format!(
                        "protocol error: run {id} got {} bytes of output with {} of credit left",
                        len,
                        run.window - run.outstanding
                    ));
                }
                run.outstanding += len;
                let _ = run.events.send(RunEvent::Output {
                    stream,
                    data: data.0,
                });
            }
            Message::RunInputAck { id, bytes } => {
                let run = self.get(id, "run_input_ack")?;
                // Never more credit back than was sent, whatever the server says.
                let bytes = bytes.min(run.stdin_unacked);
                run.stdin_unacked -= bytes;
                run.stdin.add_permits(credit(bytes));
            }
            Message::RunExit {
                id,
                status,
                duration_ms,
                result,
            } => {
                let Some(run) = self.runs.remove(&id) else {
                    return Err(format!("protocol error: run_exit for unknown run {id}"));
                };
                run.stdin.close();
                let _ = run.events.send(RunEvent::Exit {
                    status,
                    duration: Duration::from_millis(duration_ms.min(u64::MAX / 2)),
                    result,
                });
            }
            other => return Err(format!("not a run message: {}", other.kind())),
        }
        Ok(())
    }

    /// Whether no run is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    fn get(&mut self, id: u64, what: &str) -> Result<&mut RunState, String> {
        self.runs
            .get_mut(&id)
            .ok_or_else(|| format!("protocol error: {what} for unknown run {id}"))
    }

    /// The session ended: every run in flight is lost.
    pub(crate) fn end_all(&mut self, reason: &str) {
        for (_, run) in self.runs.drain() {
            run.stdin.close();
            let _ = run.events.send(RunEvent::Lost {
                reason: reason.to_string(),
            });
        }
    }
}

fn credit(bytes: u64) -> usize {
    usize::try_from(bytes.min(MAX_CREDIT)).unwrap_or(0)
}
