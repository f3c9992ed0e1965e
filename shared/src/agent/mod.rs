//! The client agent: supervised links to the paired servers, served to any program on this
//! machine through a Unix socket and a line-based JSON protocol (`docs/agent.md`).
//!
//! Layout: [`socket`] binds `agent.sock` (one agent per state folder, same user only),
//! `links` keeps one [`crate::client::Link`] per server and fans out notices and link
//! changes, `conn` serves one local program, [`proto`] is the protocol as data, and
//! [`local`] is the other end, for programs in Rust (`client-tui send` uses it).

mod conn;
mod links;
pub mod local;
pub mod proto;
pub mod socket;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;

pub use conn::{MAX_INFLIGHT, MAX_LINE, OUT_QUEUE, WRITE_TIMEOUT};
pub use links::{Event, LinkState, RUNS_PER_SERVER};
pub use socket::{BindError, Bound, bind, socket_path};

use crate::client::{Client, LinkOptions};
use crate::state::PairedServer;

/// Local programs served at once; more are turned away until one leaves.
pub const MAX_CONNECTIONS: usize = 128;

/// A running agent's links. Dropping it stops them; [`Agent::close`] also ends their
/// sessions cleanly.
#[derive(Debug)]
pub struct Agent {
    links: Arc<links::Links>,
    stop: broadcast::Sender<()>,
}

impl Agent {
    /// Start a link to each of `servers` (reconnecting and rediscovering as `options` say).
    pub fn start(client: Arc<Client>, servers: Vec<PairedServer>, options: LinkOptions) -> Self {
        let (stop, _) = broadcast::channel(1);
        Self {
            links: Arc::new(links::Links::start(&client, servers, &options)),
            stop,
        }
    }

    /// Notices and link changes, for a front end that reports them (as `--json` does).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.links.events.subscribe()
    }

    /// The servers and their links, as `list servers` answers.
    pub fn servers(&self) -> Vec<serde_json::Value> {
        self.links.list()
    }

    /// Serve local programs on `bound` until `shutdown` completes. A program of another user
    /// is turned away (and logged); past [`MAX_CONNECTIONS`] newcomers are turned away too.
    pub async fn serve(&self, bound: &Bound, shutdown: impl Future) -> std::io::Result<()> {
        let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => break,
                a = bound.listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accepting on the agent socket failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if let Err(uid) = socket::same_user(&stream) {
                tracing::warn!(
                    "refused a connection to the agent socket from {}",
                    uid.map(|u| format!("uid {u}"))
                        .unwrap_or_else(|| "an unknown user".into())
                );
                continue;
            }
            let Ok(permit) = open.clone().try_acquire_owned() else {
                tracing::warn!("{MAX_CONNECTIONS} local programs are connected; turned one away");
                continue;
            };
            let links = self.links.clone();
            let stop = self.stop.subscribe();
            tokio::spawn(async move {
                conn::serve(stream, links, stop).await;
                drop(permit);
            });
        }
        let _ = self.stop.send(());
        Ok(())
    }

    /// Stop serving and close every link.
    pub async fn close(self) {
        let _ = self.stop.send(());
        // The connections let go of the links as they see the stop.
        let mut links = self.links;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match Arc::try_unwrap(links) {
                Ok(mut l) => return l.close().await,
                Err(still) if tokio::time::Instant::now() < deadline => {
                    links = still;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                // Dropped with the last connection instead, which stops each link.
                Err(_) => return,
            }
        }
    }
}
