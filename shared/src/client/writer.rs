//! The write side of a client session: callers put their own requests on the socket.
//!
//! Owns the outbox, the requests waiting for their answers, and the one writer. Whoever
//! queues a frame while nobody is writing becomes the writer and writes everything queued,
//! its own frames and those queued meanwhile, so a request goes from the caller's task to the
//! socket with no hop through the driver, and a burst leaves in one write. The write half
//! sits behind an async lock that only its holder touches. A writer whose future is dropped
//! mid-write leaves what it did not write in place, and wakes the driver to finish it, so
//! no frame is ever cut or lost.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio_rustls::client::TlsStream;

use super::ClientError;
use crate::connection::{ConnectionError, Encoding, put_message};
use crate::message::{Message, RepairReason};

/// Where a request's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<Value, ClientError>>;

/// What callers and the driver share; behind one short lock, never held across an await.
#[derive(Default)]
pub(crate) struct State {
    /// Frames queued and not yet taken by a writer.
    outbox: BytesMut,
    /// The last id given to a request or a run.
    pub next_id: u64,
    /// Requests sent and not answered, by id.
    pub pending: HashMap<u64, Reply>,
    /// Why the session ended (or must end); set once.
    pub ended: Option<(String, Option<RepairReason>)>,
}

struct Writer {
    io: WriteHalf<TlsStream<TcpStream>>,
    /// Taken from the outbox and not all written yet.
    chunk: BytesMut,
}

/// One session's write side.
pub(crate) struct Outlet {
    state: Mutex<State>,
    writer: tokio::sync::Mutex<Writer>,
    /// The driver must act: a writer left something unwritten, or the session failed.
    pub wake: Notify,
    encoding: Encoding,
    max_frame: usize,
    write_limit: Duration,
}

impl std::fmt::Debug for Outlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlet")
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

/// Why a write did not complete, in words for the session's end.
pub(crate) fn write_failed(timed_out: bool) -> String {
    if timed_out {
        "the server stopped reading (a write did not complete)".into()
    } else {
        "write failed".into()
    }
}

impl Outlet {
    /// The write side over `io`; `queued` (frames not yet written) goes first.
    pub(crate) fn new(
        io: WriteHalf<TlsStream<TcpStream>>,
        queued: BytesMut,
        encoding: Encoding,
        max_frame: usize,
        write_limit: Duration,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                outbox: queued,
                ..State::default()
            }),
            writer: tokio::sync::Mutex::new(Writer {
                io,
                chunk: BytesMut::new(),
            }),
            wake: Notify::new(),
            encoding,
            max_frame,
            write_limit,
        }
    }

    /// The encoding frames are written in.
    pub(crate) fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The shared state.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue request `task` and register where its answer goes; its id, or why it cannot
    /// go (too large for a frame, or the session ended).
    pub(crate) fn queue_request(
        &self,
        task: &str,
        args: Vec<String>,
        reply: Reply,
    ) -> Result<u64, ClientError> {
        let mut st = self.state();
        if let Some((reason, repair)) = &st.ended {
            return Err(super::session::closed_error(reason, *repair));
        }
        let id = st.next_id + 1;
        let msg = Message::Request {
            id,
            task: task.to_string(),
            args,
        };
        put_message(&mut st.outbox, &msg, self.encoding, self.max_frame)?;
        st.next_id = id;
        st.pending.insert(id, reply);
        Ok(id)
    }

    /// Queue `msg` (the driver's own messages).
    pub(crate) fn queue(&self, msg: &Message) -> Result<(), ConnectionError> {
        let mut st = self.state();
        put_message(&mut st.outbox, msg, self.encoding, self.max_frame)
    }

    /// Record that the session must end for `reason`, and wake the driver to end it.
    pub(crate) fn fail(&self, reason: String) {
        let mut st = self.state();
        if st.ended.is_none() {
            st.ended = Some((reason, None));
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Write what is queued, unless a writer is at work already (it writes ours too). A
    /// write that fails or does not complete within the write limit fails the session.
    pub(crate) async fn write_out(&self) {
        loop {
            let Ok(guard) = self.writer.try_lock() else {
                return;
            };
            let mut hold = Holding {
                outlet: self,
                guard: Some(guard),
                finished: false,
            };
            let result = tokio::time::timeout(self.write_limit, hold.pump()).await;
            hold.finished = true;
            drop(hold);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return self.fail(write_failed(false)),
                Err(_) => return self.fail(write_failed(true)),
            }
            // A frame queued after the last look, while the lock was still held, found a
            // writer at work: look again now that the lock is free.
            if self.state().outbox.is_empty() {
                return;
            }
        }
    }

    /// A caller's write: let the other requests of this moment (a caller pipelining from one
    /// task queues them one after another) join the batch first, then write.
    pub(crate) async fn write_soon(&self) {
        // Dropped during the yield, the caller's frame would wait in the outbox for the next
        // write: the driver writes it instead.
        struct Unwritten<'a>(&'a Outlet, bool);
        impl Drop for Unwritten<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.wake.notify_one();
                }
            }
        }
        let mut unwritten = Unwritten(self, true);
        tokio::task::yield_now().await;
        unwritten.1 = false;
        self.write_out().await;
    }

    /// Send TLS close_notify, waiting at most `limit` for a writer at work.
    pub(crate) async fn close(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            let mut w = self.writer.lock().await;
            let _ = w.io.shutdown().await;
        })
        .await;
    }
}

/// The writer's lock while it writes. Dropped before it finished (its future was dropped),
/// it wakes the driver to write what is left; the lock is released first, so the driver
/// finds it free.
struct Holding<'a> {
    outlet: &'a Outlet,
    guard: Option<tokio::sync::MutexGuard<'a, Writer>>,
    finished: bool,
}

impl Holding<'_> {
    /// Write until the outbox is empty, then flush.
    async fn pump(&mut self) -> std::io::Result<()> {
        let Some(w) = self.guard.as_deref_mut() else {
            return Ok(());
        };
        loop {
            if w.chunk.is_empty() {
                w.chunk.clear();
                let mut st = self.outlet.state();
                if st.outbox.is_empty() {
                    break;
                }
                // Two buffers change places, so neither is allocated again.
                std::mem::swap(&mut w.chunk, &mut st.outbox);
            }
            // Only what the stream took is taken off the chunk: a write cancelled between
            // two polls leaves the rest for the next writer.
            let n = w.io.write(&w.chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            w.chunk.advance(n);
        }
        w.io.flush().await
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if !self.finished {
            self.outlet.wake.notify_one();
        }
    }
}
