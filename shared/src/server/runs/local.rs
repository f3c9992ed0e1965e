//! The runs of one session: the client's run ids, what each run shares with the session
//! (credit, stdin, stop), and the messages that steer them (`run_ack`, `run_input`,
//! `run_input_end`, `run_cancel`).
//!
//! Owns the per-session bound and the end of every run when the session ends: each is asked
//! to stop, and the session waits until each has stopped its program. Messages about a run
//! that just ended are ignored, since the client may not have seen its `run_exit` yet.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Link;
use super::admit::count_input;
use super::credit::StdinRefused;
use crate::message::StopReason;

/// A run the session started.
struct Held {
    link: Link,
    handle: JoinHandle<()>,
}

/// Every run in progress on one session, by the client's id.
pub(crate) struct SessionRuns {
    runs: HashMap<u64, Held>,
    cap: usize,
}

impl SessionRuns {
    /// At most `cap` runs at once.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            runs: HashMap::new(),
            cap: cap.max(1),
        }
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.runs.contains_key(&id)
    }

    pub(crate) fn full(&self) -> bool {
        self.runs.len() >= self.cap
    }

    pub(crate) fn insert(&mut self, id: u64, link: Link, handle: JoinHandle<()>) {
        self.runs.insert(id, Held { link, handle });
    }

    /// Run `id` sent its `run_exit`: its id is free again.
    pub(crate) fn finished(&mut self, id: u64) {
        self.runs.remove(&id);
    }

    /// The client took `bytes` more output of run `id`.
    pub(crate) fn ack(&self, id: u64, bytes: u64) {
        if let Some(h) = self.runs.get(&id) {
            h.link.credit.ack(bytes);
        }
    }

    /// Stdin for run `id`. Past the credit, or past the run's cap, or to a run that does not
    /// read stdin, the run is stopped with `stdin_limit`.
    pub(crate) fn input(&self, id: u64, data: &[u8]) {
        let Some(h) = self.runs.get(&id) else {
            return;
        };
        count_input(&h.link.meter, data.len());
        match &h.link.stdin {
            Some(pipe) => match pipe.push(data) {
                Ok(()) => {}
                Err(StdinRefused::OverCredit | StdinRefused::OverLimit) => {
                    h.link.stop.request(StopReason::StdinLimit);
                }
            },
            None if data.is_empty() => {}
            None => {
                h.link.stop.request(StopReason::StdinLimit);
            }
        }
    }

    /// No more stdin for run `id`.
    pub(crate) fn input_end(&self, id: u64) {
        if let Some(pipe) = self.runs.get(&id).and_then(|h| h.link.stdin.as_ref()) {
            pipe.end();
        }
    }

    /// The client cancels run `id`.
    pub(crate) fn cancel(&self, id: u64) {
        if let Some(h) = self.runs.get(&id) {
            h.link.stop.request(StopReason::Cancelled);
        }
    }

    /// The session ends: stop every run for `reason` and wait (up to `limit`) until each has
    /// stopped its program. The caller must have dropped the run messages' receiver first, so
    /// that no run waits to queue one.
    pub(crate) async fn stop_all(self, reason: StopReason, limit: Duration) {
        let mut handles = Vec::new();
        for (_, h) in self.runs {
            h.link.stop.request(reason);
            if let Some(pipe) = &h.link.stdin {
                pipe.end();
            }
            handles.push(h.handle);
        }
        let all = futures_util::future::join_all(handles);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("runs still stopping after {limit:?}; they go on in the background");
        }
    }
}
