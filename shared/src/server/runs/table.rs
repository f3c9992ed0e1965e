//! Every run in progress on the server, for the caps that span sessions (the server's
//! `max_runs`, a task's `concurrency`) and for the operator (the list of runs, stopping one).
//!
//! Owns admission and the operator's view. A run holds its place through a [`Slot`], which
//! gives it back on drop however the run ends; stopping goes through the run's own stop signal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Meter, Stop};
use crate::identity::PeerId;
use crate::message::StopReason;

/// A run in progress, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    /// The server's number for the run (not the client's `id`).
    pub run_id: u64,
    /// The session it runs in.
    pub session_id: u64,
    /// Who started it.
    pub client_id: PeerId,
    /// Their name in the registry.
    pub client_name: String,
    /// The task.
    pub task: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// When it started, Unix milliseconds.
    pub started_at_ms: u64,
    /// How long it has been going, milliseconds.
    pub running_ms: u64,
    /// Output bytes sent so far.
    pub bytes_out: u64,
    /// Stdin bytes received so far.
    pub bytes_in: u64,
}

/// What is known of a run when it is admitted.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) session_id: u64,
    pub(crate) client_id: PeerId,
    pub(crate) client_name: String,
    pub(crate) task: String,
    pub(crate) args: Vec<String>,
    pub(crate) started_at_ms: u64,
    pub(crate) started: Instant,
    pub(crate) meter: Arc<Meter>,
    pub(crate) stop: Arc<Stop>,
}

/// Why a run was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Full {
    /// The server runs `max_runs` already.
    Server(usize),
    /// The task runs its `concurrency` already.
    Task(usize),
}

impl Full {
    pub(crate) fn message(&self, task: &str) -> String {
        match self {
            Full::Server(n) => {
                format!("the server is running its maximum of {n} tasks at once; try again later")
            }
            Full::Task(n) => {
                format!("{task} is already running {n} times, its maximum; try again later")
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct RunTable {
    runs: HashMap<u64, Entry>,
    per_task: HashMap<String, usize>,
}

impl RunTable {
    /// Admit run `run_id` unless the server holds `max_runs` or the task `task_cap` already.
    pub(crate) fn admit(
        &mut self,
        run_id: u64,
        entry: Entry,
        task_cap: Option<usize>,
        max_runs: usize,
    ) -> Result<(), Full> {
        if self.runs.len() >= max_runs {
            return Err(Full::Server(max_runs));
        }
        let running = self.per_task.get(&entry.task).copied().unwrap_or(0);
        if let Some(cap) = task_cap
            && running >= cap
        {
            return Err(Full::Task(cap));
        }
        *self.per_task.entry(entry.task.clone()).or_default() += 1;
        self.runs.insert(run_id, entry);
        Ok(())
    }

    pub(crate) fn release(&mut self, run_id: u64) {
        if let Some(e) = self.runs.remove(&run_id)
            && let Some(n) = self.per_task.get_mut(&e.task)
        {
            *n -= 1;
            if *n == 0 {
                self.per_task.remove(&e.task);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }

    /// Ask run `run_id` to stop; `false` when there is no such run.
    pub(crate) fn stop(&self, run_id: u64, reason: StopReason) -> bool {
        match self.runs.get(&run_id) {
            Some(e) => {
                e.stop.request(reason);
                true
            }
            None => false,
        }
    }

    /// Every run, oldest first.
    pub(crate) fn views(&self, now: Instant) -> Vec<RunView> {
        let mut v: Vec<RunView> = self
            .runs
            .iter()
            .map(|(id, e)| RunView {
                run_id: *id,
                session_id: e.session_id,
                client_id: e.client_id,
                client_name: e.client_name.clone(),
                task: e.task.clone(),
                args: e.args.clone(),
                started_at_ms: e.started_at_ms,
                running_ms: now.saturating_duration_since(e.started).as_millis() as u64,
                bytes_out: e.meter.out(),
                bytes_in: e.meter.input(),
            })
            .collect();
        v.sort_by_key(|r| r.run_id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(task: &str) -> Entry {
        Entry {
            session_id: 1,
            client_id: PeerId([1; 32]),
            client_name: "c".into(),
            task: task.into(),
            args: vec![],
            started_at_ms: 0,
            started: Instant::now(),
            meter: Arc::default(),
            stop: Arc::new(Stop::new()),
        }
    }

    #[test]
    fn caps_per_task_and_per_server_and_release() {
        let mut t = RunTable::default();
        assert_eq!(t.admit(1, entry("a"), Some(2), 3), Ok(()));
        assert_eq!(t.admit(2, entry("a"), Some(2), 3), Ok(()));
        assert_eq!(t.admit(3, entry("a"), Some(2), 3), Err(Full::Task(2)));
        assert_eq!(t.admit(4, entry("b"), None, 3), Ok(()));
        assert_eq!(t.admit(5, entry("c"), None, 3), Err(Full::Server(3)));
        t.release(1);
        assert_eq!(t.admit(6, entry("a"), Some(2), 3), Ok(()));
        t.release(99);
        assert_eq!(t.len(), 3);
        assert!(t.stop(2, StopReason::Operator));
        assert!(!t.stop(1, StopReason::Operator));
        assert_eq!(
            t.views(Instant::now())
                .iter()
                .map(|v| v.run_id)
                .collect::<Vec<_>>(),
            vec![2, 4, 6]
        );
    }
}
