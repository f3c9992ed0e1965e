//! The servers an agent serves: one supervised [`Link`] each, its state as local programs
//! see it, and the notices and link changes they can subscribe to.
//!
//! Owns choosing a server for a request (`server` by id, short id or name; the only one
//! when it is left out) and draining every link's events, so that no link waits for a local
//! program. It must not speak the local protocol's requests: `conn` does.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot, watch};

use super::proto::Kind;
use crate::client::{Client, Link, LinkEvent, LinkHandle, LinkOptions};
use crate::state::PairedServer;

/// Events kept for subscribers that are behind; past it they are told how many they missed.
const EVENT_QUEUE: usize = 256;

/// Runs the agent has in progress on one server at once; more wait in the agent, in order,
/// rather than be refused by the server's cap (64 by default, over all its clients).
pub const RUNS_PER_SERVER: usize = 32;

/// A link's state, as `list servers` and `link` events show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkState {
    /// `connecting`, `connected`, `lost` or `repair_required`.
    pub state: &'static str,
    /// Where the server answered, while connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Why it is not connected, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An event for subscribers: its kind, and its line.
#[derive(Debug, Clone)]
pub struct Event {
    /// Which subscription it belongs to.
    pub kind: Kind,
    /// The line, ready to send.
    pub line: Arc<Value>,
}

/// One served server.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) server: PairedServer,
    pub(crate) handle: LinkHandle,
    pub(crate) state: watch::Receiver<LinkState>,
    /// Places for runs in progress on this server.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// Tasks this server said must be started as runs (they stream); the others are sent as
    /// requests, one message each way.
    streaming: std::sync::Mutex<std::collections::HashSet<String>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Task names remembered per server as streaming, at most.
const MAX_REMEMBERED: usize = 1024;

impl Served {
    /// Whether `task` is known to stream (it must be started as a run).
    pub(crate) fn streams(&self, task: &str) -> bool {
        self.streaming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(task)
    }

    /// The server said `task` streams.
    pub(crate) fn remember_streaming(&self, task: &str) {
        let mut set = self.streaming.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() < MAX_REMEMBERED {
            set.insert(task.to_string());
        }
    }
}

/// Every served server.
#[derive(Debug)]
pub(crate) struct Links {
    pub(crate) served: Vec<Served>,
    pub(crate) events: broadcast::Sender<Event>,
}

fn state_of(event: &LinkEvent) -> Option<LinkState> {
    let s = |state, addr, reason| LinkState {
        state,
        addr,
        reason,
    };
    Some(match event {
        LinkEvent::Connecting { .. } => s("connecting", None, None),
        LinkEvent::Connected { addr, .. } => s("connected", Some(*addr), None),
        LinkEvent::Lost { reason } => s("lost", None, Some(reason.clone())),
        LinkEvent::Retrying { error, .. } => s("connecting", None, Some(error.to_string())),
        LinkEvent::RepairRequired { reason } => {
            s("repair_required", None, Some(format!("{reason:?}")))
        }
        LinkEvent::Notice { .. } => return None,
    })
}

impl Links {
    /// Start a link to each of `servers`.
    pub(crate) fn start(
        client: &Arc<Client>,
        servers: Vec<PairedServer>,
        options: &LinkOptions,
    ) -> Self {
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let served = servers
            .into_iter()
            .map(|server| {
                let mut link = Link::start(client.clone(), server.clone(), options.clone());
                let handle = link.handle();
                let (state_tx, state) = watch::channel(LinkState {
                    state: "connecting",
                    addr: None,
                    reason: None,
                });
                let (stop, mut stopped) = oneshot::channel::<()>();
                let events = events.clone();
                let id = server.server_id.to_hex();
                let task = tokio::spawn(async move {
                    loop {
                        let event = tokio::select! {
                            _ = &mut stopped => break,
                            e = link.next_event() => e,
                        };
                        let Some(event) = event else { break };
                        if let LinkEvent::Notice { text, at_ms } = &event {
                            let _ = events.send(Event {
                                kind: Kind::Notice,
                                line: Arc::new(json!({"event": "notice", "server_id": id, "text": text, "at_ms": at_ms})),
                            });
                            continue;
                        }
                        if let Some(s) = state_of(&event) {
                            let mut line = serde_json::to_value(&s).unwrap_or_default();
                            line["event"] = "link".into();
                            line["server_id"] = id.clone().into();
                            let _ = events.send(Event {
                                kind: Kind::Link,
                                line: Arc::new(line),
                            });
                            state_tx.send_replace(s);
                        }
                    }
                    link.close().await;
                });
                Served {
                    server,
                    handle,
                    state,
                    slots: Arc::new(tokio::sync::Semaphore::new(RUNS_PER_SERVER)),
                    streaming: std::sync::Mutex::default(),
                    stop: Some(stop),
                    task: Some(task),
                }
            })
            .collect();
        Self { served, events }
    }

    /// The server `query` names (full id or a prefix, short id, or exact name), or the only
    /// one when `query` is `None`.
    pub(crate) fn select(&self, query: Option<&str>) -> Result<&Served, String> {
        let Some(q) = query else {
            return match self.served.as_slice() {
                [one] => Ok(one),
                [] => Err("the agent serves no server: pair one first".into()),
                many => Err(format!(
                    "the agent serves {} servers: name one with `server` (id or name)",
                    many.len()
                )),
            };
        };
        let hits: Vec<&Served> = self
            .served
            .iter()
            .filter(|s| s.server.server_id.matches(q) || s.server.name == q)
            .collect();
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no served server matches {q:?}")),
            many => Err(format!(
                "{q:?} matches {} servers; give more of the id",
                many.len()
            )),
        }
    }

    /// Every server and its link, as `list servers` answers.
    pub(crate) fn list(&self) -> Vec<Value> {
        self.served
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(&*s.state.borrow()).unwrap_or_default();
                v["server_id"] = s.server.server_id.to_hex().into();
                v["short"] = s.server.server_id.short().into();
                v["name"] = s.server.name.clone().into();
                v
            })
            .collect()
    }

    /// Stop every link, closing its session.
    pub(crate) async fn close(&mut self) {
        for s in &mut self.served {
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(());
            }
        }
        for s in &mut self.served {
            if let Some(t) = s.task.take() {
                let _ = t.await;
            }
        }
    }
}
