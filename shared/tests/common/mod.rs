//! Test harness: a real server engine on 127.0.0.1 with an ephemeral port and a temporary
//! state folder, with its events collected so tests can read the pairing code the way the
//! operator would.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csc_shared::client::{Client, ClientOptions};
use csc_shared::identity::PeerId;
use csc_shared::server::{Server, ServerConfig, ServerEvent, Tasks};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};

/// Events seen so far, with a way to wait for more.
#[derive(Clone, Default)]
pub struct Events {
    seen: Arc<Mutex<Vec<ServerEvent>>>,
    notify: Arc<Notify>,
}

impl Events {
    fn spawn(mut rx: mpsc::Receiver<ServerEvent>) -> Self {
        let events = Events::default();
        let e = events.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                e.seen.lock().unwrap().push(ev);
                e.notify.notify_waiters();
            }
        });
        events
    }

    pub fn all(&self) -> Vec<ServerEvent> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until some event satisfies `pick`, returning what it picked.
    pub async fn wait_for<T>(&self, what: &str, pick: impl Fn(&ServerEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.notify.notified();
            if let Some(t) = self.seen.lock().unwrap().iter().rev().find_map(&pick) {
                return t;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {what}; events: {:#?}", self.all());
            }
        }
    }

    /// The code most recently shown to the operator for `client`.
    pub async fn code_for(&self, client: PeerId) -> String {
        self.wait_for("pair_request", |e| match e {
            ServerEvent::PairRequest {
                client_id, code, ..
            } if *client_id == client => Some(code.clone()),
            _ => None,
        })
        .await
    }

    /// Number of events matching `pred`.
    pub fn count(&self, pred: impl Fn(&ServerEvent) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|e| pred(e)).count()
    }
}

/// A running in-process server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    pub events: Events,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Defaults for tests: short backoff so failures do not slow the suite down.
pub fn test_config() -> ServerConfig {
    let mut c = ServerConfig {
        name: "test-server".into(),
        ..ServerConfig::default()
    };
    c.pairing.backoff_base = Duration::from_millis(5);
    c.pairing.backoff_max = Duration::from_millis(50);
    c
}

impl TestServer {
    pub async fn start(dir: &Path, config: ServerConfig) -> Self {
        Self::start_on(dir, config, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(dir: &Path, config: ServerConfig, addr: SocketAddr) -> Self {
        Self::start_full(dir, config, addr, Tasks::with_builtins()).await
    }

    pub async fn start_with_tasks(dir: &Path, config: ServerConfig, tasks: Tasks) -> Self {
        Self::start_full(dir, config, "127.0.0.1:0".parse().unwrap(), tasks).await
    }

    pub async fn start_full(
        dir: &Path,
        config: ServerConfig,
        addr: SocketAddr,
        tasks: Tasks,
    ) -> Self {
        // Large enough that no test loses an event to a full channel.
        let (tx, rx) = csc_shared::server::events::channel(1 << 20);
        let server = Server::open(dir, config, tasks, Some(tx)).expect("server opens");
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let s = server.clone();
        let task = tokio::spawn(async move {
            s.run(listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            server,
            events: Events::spawn(rx),
            dir: dir.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shut down and wait until the state folder is released.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        drop(self.server);
    }
}

pub fn client(dir: &Path, name: &str) -> Client {
    Client::open(dir, name, ClientOptions::default()).expect("client opens")
}

/// Pair `client` with the server, typing the code the operator sees.
pub async fn pair(client: &Client, server: &TestServer) -> csc_shared::state::PairedServer {
    let mut pairing = client
        .start_pairing(server.addr)
        .await
        .expect("pairing starts");
    let code = server.events.code_for(client.id()).await;
    pairing
        .submit(&csc_shared::pairing::Code::parse(&code).unwrap())
        .await
        .expect("pairing succeeds")
}

/// A code that is certainly not `code`.
pub fn wrong(code: &str) -> csc_shared::pairing::Code {
    let n: u32 = code.parse().unwrap();
    csc_shared::pairing::Code::parse(&format!("{:06}", (n + 1) % 1_000_000)).unwrap()
}
