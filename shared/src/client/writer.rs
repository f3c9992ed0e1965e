//! The write side of a client session: callers put their own requests on the socket.
//!
//! Owns the outbox, the requests waiting for their answers, and the one writer. Whoever
//! queues a frame while nobody is writing becomes the writer and writes everything queued,
//! its own frames and those queued meanwhile, so a request goes from the caller's task to the
//! socket with no hop through the driver, and a burst leaves in one write. The write half
//! sits behind an async lock that only its holder touches. The driver's own messages (pongs,
//! run acknowledgements and stdin) are written by a flusher task, so the driver never stops
//! reading to write: two peers that both wait for the other to read would stall. A writer
//! whose future is dropped mid-write leaves what it did not write in place, and wakes the
//! flusher to finish it, so no frame is ever cut or lost.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt, WriteHalf};
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

struct Writer<W> {
    io: W,
    /// Taken from the outbox and not all written yet.
    chunk: BytesMut,
}

/// The write half of a session's connection.
pub(crate) type Io = WriteHalf<TlsStream<TcpStream>>;

/// One session's write side.
pub(crate) struct Outlet<W = Io> {
    state: Mutex<State>,
    writer: tokio::sync::Mutex<Writer<W>>,
    /// The session failed (see [`State::ended`]): the driver must end it.
    pub wake: Notify,
    /// Something is queued that no caller is writing: the flusher must write it.
    flush: Notify,
    encoding: Encoding,
    max_frame: usize,
    write_limit: Duration,
}

impl<W> std::fmt::Debug for Outlet<W> {
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

impl<W: AsyncWrite + Unpin> Outlet<W> {
    /// The write side over `io`; `queued` (frames not yet written) goes first.
    pub(crate) fn new(
        io: W,
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
            flush: Notify::new(),
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

    /// Queue `msg` (the driver's own messages) for the flusher to write.
    pub(crate) fn queue(&self, msg: &Message) -> Result<(), ConnectionError> {
        let mut st = self.state();
        put_message(&mut st.outbox, msg, self.encoding, self.max_frame)?;
        drop(st);
        self.flush.notify_one();
        Ok(())
    }

    /// The flusher: writes what the driver queued and what cancelled writers left, until
    /// the session ends.
    pub(crate) async fn run_flusher(self: std::sync::Arc<Self>) {
        loop {
            self.flush.notified().await;
            if self.state().ended.is_some() {
                return;
            }
            self.write_out().await;
        }
    }

    /// Record that the session must end for `reason`, and wake the driver to end it.
    pub(crate) fn fail(&self, reason: String) {
        let mut st = self.state();
        if st.ended.is_none() {
            st.ended = Some((reason, None));
        }
        drop(st);
        self.wake.notify_one();
        self.flush.notify_one();
    }

    /// The session ended: the flusher stops.
    pub(crate) fn end(&self, reason: String, repair: Option<RepairReason>) {
        let mut st = self.state();
        if st.ended.is_none() {
            st.ended = Some((reason, repair));
        }
        drop(st);
        self.flush.notify_one();
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
        // write: the flusher writes it instead.
        struct Unwritten<'a, W>(&'a Outlet<W>, bool);
        impl<W> Drop for Unwritten<'_, W> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.flush.notify_one();
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
/// it wakes the flusher to write what is left; the lock is released first, so the flusher
/// finds it free.
struct Holding<'a, W> {
    outlet: &'a Outlet<W>,
    guard: Option<tokio::sync::MutexGuard<'a, Writer<W>>>,
    finished: bool,
}

impl<W: AsyncWrite + Unpin> Holding<'_, W> {
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

impl<W> Drop for Holding<'_, W> {
    fn drop(&mut self) {
        self.guard.take();
        if !self.finished {
            self.outlet.flush.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use tokio::io::AsyncReadExt;

    /// Frames read back from what the outlet wrote: each one whole, in order.
    async fn read_frames(mut rd: tokio::io::DuplexStream, n: usize) -> Vec<Message> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut len = [0u8; 4];
            rd.read_exact(&mut len).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            rd.read_exact(&mut body).await.unwrap();
            out.push(crate::connection::Wire::decode(BytesMut::from(&body[..])).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_writer_dropped_mid_write_leaves_the_rest_to_the_flusher() {
        // A pipe that takes 1 KiB at a time, so a 200 KiB frame needs many polls to go.
        let (wr, rd) = tokio::io::duplex(1024);
        let outlet = std::sync::Arc::new(Outlet::new(
            wr,
            BytesMut::new(),
            Encoding::Compact,
            1 << 20,
            Duration::from_secs(10),
        ));
        let big = "y".repeat(200 * 1024);
        let (reply, _rx) = oneshot::channel();
        outlet
            .queue_request("echo", vec![big.clone()], reply)
            .unwrap();
        let mut write = Box::pin(outlet.write_out());
        for _ in 0..3 {
            assert!(write.as_mut().now_or_never().is_none(), "the pipe is full");
        }
        drop(write);
        // A second request queued behind the cut one.
        let (reply, _rx2) = oneshot::channel();
        outlet
            .queue_request("echo", vec!["after".into()], reply)
            .unwrap();
        tokio::spawn(outlet.clone().run_flusher());
        let frames = tokio::time::timeout(Duration::from_secs(10), read_frames(rd, 2))
            .await
            .expect("the flusher wrote the rest");
        assert!(matches!(&frames[0], Message::Request { id: 1, args, .. } if args[0] == big));
        assert!(matches!(&frames[1], Message::Request { id: 2, args, .. } if args[0] == "after"));
    }

    #[tokio::test]
    async fn a_caller_dropped_before_its_write_leaves_it_to_the_flusher() {
        let (wr, rd) = tokio::io::duplex(1 << 16);
        let outlet = std::sync::Arc::new(Outlet::new(
            wr,
            BytesMut::new(),
            Encoding::Json,
            1 << 20,
            Duration::from_secs(10),
        ));
        tokio::spawn(outlet.clone().run_flusher());
        let (reply, _rx) = oneshot::channel();
        outlet.queue_request("ping", vec![], reply).unwrap();
        let mut write = Box::pin(outlet.write_soon());
        assert!(write.as_mut().now_or_never().is_none(), "it yields first");
        drop(write);
        let frames = tokio::time::timeout(Duration::from_secs(10), read_frames(rd, 1))
            .await
            .expect("the flusher wrote it");
        assert!(matches!(&frames[0], Message::Request { id: 1, task, .. } if task == "ping"));
    }

    #[tokio::test]
    async fn a_frame_too_large_fails_only_its_request() {
        let (wr, _rd) = tokio::io::duplex(1 << 16);
        let outlet = Outlet::new(
            wr,
            BytesMut::new(),
            Encoding::Compact,
            100,
            Duration::from_secs(1),
        );
        let (reply, _rx) = oneshot::channel();
        assert!(
            outlet
                .queue_request("echo", vec!["z".repeat(200)], reply)
                .is_err()
        );
        assert!(outlet.state().pending.is_empty());
        let (reply, _rx) = oneshot::channel();
        assert_eq!(outlet.queue_request("ping", vec![], reply).unwrap(), 1);
    }
}
