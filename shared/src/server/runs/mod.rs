//! Streaming runs: the handle a task writes its output and reads its stdin through
//! ([`RunIo`]), the stop signal every kind of end goes through, and (in `drive`) the one path
//! that runs a value task, a streaming task registered in Rust or a configured command.
//!
//! Owns flow control as a task sees it: a write waits for the client's credit, so a slow
//! reader holds the task back instead of filling the server's memory, and stdin is
//! acknowledged as the task takes it. It must not decide who may run what (the session and
//! the task's definition do) nor touch the connection: messages go to the session's bounded
//! outgoing queue, and the session writes them.

pub(crate) mod admit;
mod credit;
pub(crate) mod drive;
pub(crate) mod local;
pub(crate) mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

pub(crate) use credit::{Credit, StdinPipe};
pub use table::RunView;

use crate::message::{Message, OutputStream, Payload, StopReason};

/// Largest `run_output` or `run_input` chunk, bytes.
pub const MAX_CHUNK: usize = 64 * 1024;

/// The stdin credit a run gets (`run_started.stdin_window`), bytes.
pub const STDIN_WINDOW: u64 = 256 * 1024;

/// Why a [`RunIo`] call could not go on: the run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run was stopped ({0:?})")]
pub struct RunStopped(pub StopReason);

impl From<RunStopped> for super::TaskError {
    fn from(e: RunStopped) -> Self {
        super::TaskError::new("stopped", e.to_string())
    }
}

/// The one place a run's end is decided: the first reason given wins.
#[derive(Debug)]
pub(crate) struct Stop {
    tx: watch::Sender<Option<StopReason>>,
}

impl Stop {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::Sender::new(None),
        }
    }

    /// Ask the run to stop for `reason`; `false` when it was already asked.
    pub(crate) fn request(&self, reason: StopReason) -> bool {
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        })
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        *self.tx.borrow()
    }

    /// Resolves once a stop was asked for.
    pub(crate) async fn wait(&self) -> StopReason {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`; this cannot happen while we borrow it.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Bytes a run moved, read by the operator's run list while it goes.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pub(crate) bytes_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
}

impl Meter {
    pub(crate) fn out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    pub(crate) fn input(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
}

/// The parts of a run the session and the run share.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) credit: Arc<Credit>,
    pub(crate) stdin: Option<Arc<StdinPipe>>,
    pub(crate) stop: Arc<Stop>,
    pub(crate) meter: Arc<Meter>,
}

/// A run's output and stdin, as a task sees them. Writes wait for the client's credit and
/// are cut into chunks of at most [`MAX_CHUNK`] bytes; a write past the run's output cap
/// stops the run (`output_limit`).
#[derive(Debug)]
pub struct RunIo {
    id: u64,
    out: mpsc::Sender<Message>,
    link: Link,
    max_output: u64,
}

impl RunIo {
    pub(crate) fn new(id: u64, out: mpsc::Sender<Message>, link: Link, max_output: u64) -> Self {
        Self {
            id,
            out,
            link,
            max_output,
        }
    }

    /// Whether the task was declared to read stdin; without it [`RunIo::read_stdin`] ends at
    /// once.
    pub fn reads_stdin(&self) -> bool {
        self.link.stdin.is_some()
    }

    /// Output bytes sent so far.
    pub fn bytes_out(&self) -> u64 {
        self.link.meter.out()
    }

    /// Write `data` to the client's `stream`, waiting for credit as needed.
    pub async fn write(&mut self, stream: OutputStream, mut data: &[u8]) -> Result<(), RunStopped> {
        while !data.is_empty() {
            let n = self.writable().await?.min(data.len());
            self.send_chunk(stream, data[..n].to_vec()).await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// [`RunIo::write`] to stdout.
    pub async fn stdout(&mut self, data: impl AsRef<[u8]>) -> Result<(), RunStopped> {
        self.write(OutputStream::Stdout, data.as_ref()).await
    }

    /// [`RunIo::write`] to stderr.
    pub async fn stderr(&mut self, data: impl AsRef<[u8]>) -> Result<(), RunStopped> {
        self.write(OutputStream::Stderr, data.as_ref()).await
    }

    /// The next chunk the client sent to stdin; `None` at its end (or at once when the task
    /// does not read stdin). Taking a chunk gives the client credit for more.
    pub async fn read_stdin(&mut self) -> Option<Bytes> {
        let chunk = self.stdin_next(MAX_CHUNK).await?;
        // The run is going away when the ack cannot be queued; the chunk is still the task's.
        let _ = self.stdin_consumed(chunk.len()).await;
        Some(chunk)
    }

    /// Whether the run was asked to stop, and why.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.link.stop.reason()
    }

    pub(crate) fn stop(&self) -> &Arc<Stop> {
        &self.link.stop
    }

    /// Bytes that may be written now, after waiting for credit: at least 1, at most a chunk,
    /// and one past the output cap, so that a program writing past it is noticed.
    pub(crate) async fn writable(&self) -> Result<usize, RunStopped> {
        if let Some(r) = self.link.stop.reason() {
            return Err(RunStopped(r));
        }
        let credit = tokio::select! {
            biased;
            r = self.link.stop.wait() => return Err(RunStopped(r)),
            c = self.link.credit.wait() => c,
        };
        Ok(self.limit(credit))
    }

    /// Bytes that may be written now without waiting (0 without credit).
    pub(crate) fn writable_now(&self) -> usize {
        self.limit(self.link.credit.left())
    }

    /// Wait until credit is there.
    pub(crate) async fn credit(&self) {
        self.link.credit.wait().await;
    }

    fn limit(&self, credit: u64) -> usize {
        let room = self.max_output.saturating_sub(self.link.meter.out());
        credit.min(room.saturating_add(1)).min(MAX_CHUNK as u64) as usize
    }

    /// Send one chunk of at most [`RunIo::writable`] bytes. Past the output cap, what fits is
    /// sent and the run is stopped with `output_limit`.
    pub(crate) async fn send_chunk(
        &mut self,
        stream: OutputStream,
        mut data: Vec<u8>,
    ) -> Result<(), RunStopped> {
        let room = self.max_output.saturating_sub(self.link.meter.out());
        let over = data.len() as u64 > room;
        if over {
            data.truncate(room as usize);
        }
        if !data.is_empty() {
            let n = data.len() as u64;
            self.link.credit.spend(n);
            self.link.meter.bytes_out.fetch_add(n, Ordering::Relaxed);
            let msg = Message::RunOutput {
                id: self.id,
                stream,
                data: Payload(data.into()),
            };
            if self.out.send(msg).await.is_err() {
                self.link.stop.request(StopReason::Disconnected);
            }
        }
        if over {
            self.link.stop.request(StopReason::OutputLimit);
        }
        match self.link.stop.reason() {
            Some(r) => Err(RunStopped(r)),
            None => Ok(()),
        }
    }

    pub(crate) async fn stdin_next(&self, max: usize) -> Option<Bytes> {
        match &self.link.stdin {
            Some(pipe) => pipe.next(max).await,
            None => None,
        }
    }

    /// The program took `n` bytes of stdin: acknowledge them when a batch is due.
    pub(crate) async fn stdin_consumed(&self, n: usize) -> Result<(), RunStopped> {
        let Some(pipe) = &self.link.stdin else {
            return Ok(());
        };
        if let Some(bytes) = pipe.consumed(n) {
            let ack = Message::RunInputAck { id: self.id, bytes };
            if self.out.send(ack).await.is_err() {
                self.link.stop.request(StopReason::Disconnected);
                return Err(RunStopped(StopReason::Disconnected));
            }
        }
        Ok(())
    }

    /// Queue a message about this run for the session to write.
    pub(crate) async fn send(&self, msg: Message) -> bool {
        self.out.send(msg).await.is_ok()
    }
}
