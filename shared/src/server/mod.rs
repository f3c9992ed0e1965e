//! The server engine: accepts connections, runs pairing and sessions, and reports what
//! happens as [`ServerEvent`]s. The apps only render events and call [`Server`] methods.
//!
//! Modelled on mini-redis: [`Server::run`] takes a bound listener and a shutdown future, a
//! connection table caps connections (evicting the oldest unauthenticated one rather than
//! refusing a new one), and a broadcast channel tells handlers to stop. While it runs, the
//! engine also follows the machine's addresses ([`addrs`]) and reports their changes; the
//! discovery service re-advertises from the same readings.

pub mod addrs;
mod auth;
mod conn;
mod conns;
#[cfg(unix)]
pub mod control;
pub mod events;
pub mod guard;
mod pair;
mod registry;
pub mod runs;
mod session;
pub mod tasks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

pub use events::{DisconnectReason, EventSender, PairClosedReason, RevokedBy, ServerEvent};
pub use guard::{
    BudgetPolicy, ClosedReason, GateChange, OpenedBy, PairingMode, PairingPolicy, PairingStatus,
};
pub use runs::{RunIo, RunStopped, RunView};
pub use tasks::config::{ConfigError, ConfigFile};
pub use tasks::{
    CommandTask, StreamingTask, Task, TaskAbout, TaskContext, TaskError, TaskResult, Tasks,
};

use crate::identity::{Identity, PeerId};
use crate::state::{ClientRecord, ServerStore, StateError};
use crate::token::TokenAuthority;

/// Everything tunable about a server. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Display name shown to clients.
    pub name: String,
    /// Pairing limits.
    pub pairing: PairingPolicy,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
    /// Largest accepted frame.
    pub max_frame: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for each step of pairing and for the first message.
    pub step_timeout: Duration,
    /// Open connections allowed at once; over it, the oldest unauthenticated one is closed.
    pub max_connections: usize,
    /// Unauthenticated connections (handshake, pairing) allowed at once, from all addresses;
    /// over it, the oldest is closed.
    pub max_unauthenticated: usize,
    /// Requests one session may have running at once.
    pub max_inflight: usize,
    /// Connections from one address not yet authenticated (handshake, pairing) at once; over
    /// it, that address's oldest one is closed.
    pub max_unauthenticated_per_addr: usize,
    /// A quiet session gets a `ping` after this long.
    pub keepalive: Duration,
    /// A session with no message at all for this long is closed.
    pub idle_timeout: Duration,
    /// A write that cannot complete in this time (the client stopped reading) closes the session.
    pub write_timeout: Duration,
    /// How often batched registry changes are written.
    pub flush_interval: Duration,
    /// How often the machine's addresses are read, to notice a change.
    pub address_poll: Duration,
    /// Runs in progress at once, over all sessions and tasks.
    pub max_runs: usize,
    /// How long a run may take when its task sets no `timeout`.
    pub task_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a run's program is stopped.
    pub stop_grace: Duration,
    /// Output bytes one run may send when its task sets no `max_output`.
    pub max_output: u64,
    /// Stdin bytes one run may take when its task sets no `max_stdin`.
    pub max_stdin: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: crate::host_name(),
            pairing: PairingPolicy::default(),
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            step_timeout: Duration::from_secs(30),
            max_connections: 16_384,
            max_unauthenticated: 4096,
            max_inflight: 32,
            max_unauthenticated_per_addr: 32,
            keepalive: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            flush_interval: Duration::from_secs(5),
            address_poll: addrs::DEFAULT_POLL,
            max_runs: 64,
            task_timeout: Duration::from_secs(600),
            stop_grace: Duration::from_secs(2),
            max_output: 1 << 30,
            max_stdin: 1 << 30,
        }
    }
}

/// A paired client as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// The stored record.
    #[serde(flatten)]
    pub record: ClientRecord,
    /// Open sessions right now.
    pub sessions: usize,
    /// Tasks run in this server's lifetime.
    pub tasks_run: u64,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// State folder trouble.
    #[error(transparent)]
    State(#[from] StateError),
    /// TLS configuration failed.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Revoking or renaming a client failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// Not a name a client can have.
    #[error("{0:?} is not a usable name: give 1 to 64 characters, without control characters")]
    BadName(String),
    /// Nothing matched.
    #[error("no paired client matches {0:?}")]
    NoMatch(String),
    /// Several matched.
    #[error("{0:?} matches {1} clients; give more of the id")]
    Ambiguous(String, usize),
    /// Saving failed; the client was not revoked on disk.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Reloading the tasks failed; the tasks in force stay as they were.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The server was not given a configuration file.
    #[error("the server was started without a configuration file, so there is nothing to reload")]
    NoFile,
    /// The file is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The tasks configured from a file, swapped whole on reload.
#[derive(Debug, Default)]
pub(crate) struct Configured {
    pub(crate) path: Option<PathBuf>,
    pub(crate) tasks: BTreeMap<String, Arc<CommandTask>>,
}

struct SessionEntry {
    client_id: PeerId,
    /// Notices; bounded, so a client that stops reading loses notices, not server memory.
    notices: mpsc::Sender<Arc<str>>,
    /// Fires once to cut the session; never lost to a full queue.
    revoke: Option<tokio::sync::oneshot::Sender<RevokedBy>>,
}

pub(crate) struct Shared {
    config: ServerConfig,
    identity: Identity,
    acceptor: tokio_rustls::TlsAcceptor,
    authority: TokenAuthority,
    tasks: Tasks,
    registry: registry::Registry,
    guard: Mutex<guard::Guard>,
    sessions: Mutex<HashMap<u64, SessionEntry>>,
    tasks_run: Mutex<HashMap<PeerId, u64>>,
    conns: Mutex<conns::ConnTable>,
    connected: AtomicUsize,
    next_id: AtomicU64,
    events: Option<EventSender>,
    started: Instant,
    shutdown: broadcast::Sender<()>,
    /// The machine's interface addresses as last read (loopback included).
    interfaces: watch::Sender<Vec<IpAddr>>,
    /// The operator's tasks from the configuration file.
    configured: RwLock<Arc<Configured>>,
    /// Every run in progress.
    runs: Mutex<runs::table::RunTable>,
    /// (task, clients entry) pairs the operator was already warned about since the last load.
    warned: Mutex<HashSet<(String, String)>>,
}

impl Shared {
    fn emit(&self, event: ServerEvent) {
        if let Some(tx) = &self.events {
            tx.emit(event);
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, guard::Guard> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, conns::ConnTable> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, runs::table::RunTable> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn configured(&self) -> Arc<Configured> {
        self.configured
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Warn the operator once per task and `clients` entry (until the tasks are loaded again).
    fn warn_once(&self, task: &str, entry: &str, message: String) {
        let new = self
            .warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((task.to_string(), entry.to_string()));
        if new {
            self.emit(ServerEvent::Warning { message });
        }
    }

    /// The tasks client `id`, registered as `name`, may run, as it sees them.
    fn task_infos_for(&self, id: &PeerId, name: &str) -> Vec<crate::message::TaskInfo> {
        let mut infos = self.tasks.infos();
        let paired = || {
            self.registry
                .list()
                .into_iter()
                .map(|r| (r.client_id, r.name))
                .collect::<Vec<_>>()
        };
        for t in self.configured().tasks.values() {
            if matches!(
                t.access(id, name, paired),
                tasks::access::Access::Allowed { .. }
            ) {
                infos.push(t.info());
            }
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// Names of the tasks client `id` may run.
    fn task_names_for(&self, id: &PeerId, name: &str) -> Vec<String> {
        self.task_infos_for(id, name)
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    /// Put the tasks of `file` in force, and warn about `clients` names that match more than
    /// one paired client.
    fn install(&self, file: ConfigFile) -> Vec<String> {
        let paired: Vec<(PeerId, String)> = self
            .registry
            .list()
            .into_iter()
            .map(|r| (r.client_id, r.name))
            .collect();
        let mut names = Vec::new();
        let mut map = BTreeMap::new();
        for t in file.tasks {
            for (entry, n) in t.ambiguous(&paired) {
                self.emit(ServerEvent::Warning {
                    message: format!(
                        "task {}: its clients entry {entry:?} matches {n} paired clients; list client ids for anything sensitive",
                        t.name()
                    ),
                });
            }
            names.push(t.name().to_string());
            map.insert(t.name().to_string(), Arc::new(t));
        }
        *self.configured.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Configured {
            path: Some(file.path),
            tasks: map,
        });
        self.warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        names
    }

    /// Tell the operator about a change of the pairing gate.
    fn report_gate(&self, change: GateChange) {
        let mode = self.config.pairing.mode;
        self.emit(match change {
            GateChange::Opened { by, closes_in } => ServerEvent::PairingOpened {
                mode,
                by,
                closes_in_s: closes_in.map(guard::secs_up),
            },
            GateChange::Closed { reason, reopens_in } => ServerEvent::PairingClosed {
                mode,
                reason,
                reopens_in_s: reopens_in.map(guard::secs_up),
                budget: self.config.pairing.budget.failures,
                budget_window_s: self.config.pairing.budget.window.as_secs(),
            },
        });
    }
}

/// One connection's slot in the connection table; released on drop.
struct ConnSlot {
    shared: Arc<Shared>,
    id: u64,
    authenticated: bool,
}

impl ConnSlot {
    /// The connection authenticated: it can no longer be evicted. `false` when it was
    /// evicted meanwhile (it must close).
    fn authenticate(&mut self) -> bool {
        self.authenticated = self.shared.conns().authenticate(self.id);
        self.authenticated
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.shared.conns().release(self.id, self.authenticated);
    }
}

/// A server engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.id())
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Open the state in `state_dir` (locking it) and prepare a server.
    ///
    /// `events`, when given (see [`events::channel`]), receives the [`ServerEvent`]s; it is
    /// bounded, and the network never waits for a slow reader: what does not fit is counted
    /// and summed up in a [`ServerEvent::Summary`].
    pub fn open(
        state_dir: &Path,
        config: ServerConfig,
        tasks: Tasks,
        events: Option<EventSender>,
    ) -> Result<Self, ServerError> {
        let store = Arc::new(ServerStore::open(state_dir)?);
        store.save_name(&config.name)?;
        let identity = store.identity(&config.name)?;
        let token_key = store.token_key()?;
        let registry = registry::Registry::load(store)?;
        let tls = crate::tls::server_config(&identity)?;
        let authority = TokenAuthority::new(&token_key, identity.id());
        let (shutdown, _) = broadcast::channel(1);
        let guard = guard::Guard::new(config.pairing.clone());
        let conns = conns::ConnTable::new(conns::Caps {
            total: config.max_connections,
            unauthenticated: config.max_unauthenticated,
            per_addr: config.max_unauthenticated_per_addr,
        });
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                acceptor: tokio_rustls::TlsAcceptor::from(tls),
                identity,
                authority,
                tasks,
                registry,
                guard: Mutex::new(guard),
                sessions: Mutex::new(HashMap::new()),
                tasks_run: Mutex::new(HashMap::new()),
                conns: Mutex::new(conns),
                connected: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                events,
                started: Instant::now(),
                shutdown,
                interfaces: watch::Sender::new(addrs::interface_addrs()),
                configured: RwLock::new(Arc::default()),
                runs: Mutex::new(runs::table::RunTable::default()),
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The server's id.
    pub fn id(&self) -> PeerId {
        self.shared.identity.id()
    }

    /// The server's display name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Authenticated sessions open now.
    pub fn connected(&self) -> usize {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Paired clients with their live status.
    pub fn clients(&self) -> Vec<ClientView> {
        let mut open: HashMap<PeerId, usize> = HashMap::new();
        for s in self.shared.sessions().values() {
            *open.entry(s.client_id).or_default() += 1;
        }
        let runs = self
            .shared
            .tasks_run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.shared
            .registry
            .list()
            .into_iter()
            .map(|record| ClientView {
                sessions: open.get(&record.client_id).copied().unwrap_or(0),
                tasks_run: runs.get(&record.client_id).copied().unwrap_or(0),
                record,
            })
            .collect()
    }

    /// Revoke the client `query` names (id prefix or exact name): it is removed and saved,
    /// its sessions are closed at once, and its token stops working.
    pub async fn revoke(&self, query: &str) -> Result<ClientRecord, RevokeError> {
        let hits = self.shared.registry.find(query);
        let record = match hits.as_slice() {
            [] => return Err(RevokeError::NoMatch(query.to_string())),
            [one] => one.clone(),
            many => return Err(RevokeError::Ambiguous(query.to_string(), many.len())),
        };
        self.revoke_id(&record.client_id, RevokedBy::Operator)
            .await?;
        Ok(record)
    }

    /// The operator renames the client `query` names (id prefix or exact name) to `name`:
    /// saved at once, and from then on the name its tasks' `clients` lists see. The name
    /// follows the rules a client's own name does (1 to 64 characters, no control
    /// characters).
    pub async fn rename(&self, query: &str, name: &str) -> Result<ClientRecord, RevokeError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(RevokeError::BadName(name.to_string()));
        }
        let hits = self.shared.registry.find(query);
        let record = match hits.as_slice() {
            [] => return Err(RevokeError::NoMatch(query.to_string())),
            [one] => one.clone(),
            many => return Err(RevokeError::Ambiguous(query.to_string(), many.len())),
        };
        let renamed = self
            .shared
            .registry
            .rename(&record.client_id, name)
            .await?
            .ok_or_else(|| RevokeError::NoMatch(query.to_string()))?;
        self.shared.emit(ServerEvent::Renamed {
            client_id: record.client_id,
            old_name: record.name,
            new_name: renamed.name.clone(),
        });
        self.shared
            .warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(renamed)
    }

    async fn revoke_id(
        &self,
        id: &PeerId,
        by: RevokedBy,
    ) -> Result<Option<ClientRecord>, StateError> {
        let removed = self.shared.registry.revoke(id).await?;
        if let Some(r) = &removed {
            for s in self.shared.sessions().values_mut() {
                if s.client_id == *id
                    && let Some(tx) = s.revoke.take()
                {
                    let _ = tx.send(by);
                }
            }
            self.shared.emit(ServerEvent::Revoked {
                client_id: *id,
                client_name: r.name.clone(),
                by,
            });
        }
        Ok(removed)
    }

    /// Where pairing stands: mode, open or closed and why, deadlines, the failure budget.
    pub fn pairing_status(&self) -> PairingStatus {
        self.shared.guard().status(Instant::now())
    }

    /// The operator opens pairing: in window mode for `window` (default: the policy's
    /// `open_for`), in request mode until closed. Ends a closure after a spent budget.
    pub fn open_pairing(&self, window: Option<Duration>) -> PairingStatus {
        let now = Instant::now();
        let (change, status) = {
            let mut g = self.shared.guard();
            let change = g.open(window, now);
            (change, g.status(now))
        };
        self.shared.report_gate(change);
        status
    }

    /// The operator draws a pairing code before any request, for a person who types it on
    /// the client with `pair --code` (see [`guard::Guard::draw_ahead`]). Opens pairing first
    /// when it is closed, as [`Server::open_pairing`] does: drawing a code says the operator
    /// wants a client paired now. Reported as [`ServerEvent::CodeAhead`].
    pub fn code_ahead(&self) -> (crate::pairing::Code, PairingStatus) {
        let now = Instant::now();
        let (change, code, ttl, status) = {
            let mut g = self.shared.guard();
            let change = if g.status(now).open {
                None
            } else {
                Some(g.open(None, now))
            };
            let (code, ttl) = g.draw_ahead(now);
            (change, code, ttl, g.status(now))
        };
        if let Some(change) = change {
            self.shared.report_gate(change);
        }
        self.shared.emit(ServerEvent::CodeAhead {
            code: code.digits().to_string(),
            expires_in_s: guard::secs_up(ttl),
        });
        (code, status)
    }

    /// How long a pairing code lives.
    pub fn code_ttl(&self) -> Duration {
        self.shared.config.pairing.code_ttl
    }

    /// The operator closes pairing until it is opened again; pending requests are cancelled.
    pub fn close_pairing(&self) -> PairingStatus {
        let now = Instant::now();
        let (change, status) = {
            let mut g = self.shared.guard();
            let change = g.close(now);
            (change, g.status(now))
        };
        if let Some(c) = change {
            self.shared.report_gate(c);
        }
        status
    }

    /// Put the tasks of a configuration file in force (from [`tasks::config::load`]); later
    /// [`Server::reload_tasks`] reads the same file again.
    pub fn set_config(&self, file: ConfigFile) {
        self.shared.install(file);
    }

    /// Names of the tasks registered in Rust (built-ins included), which a configured task
    /// may not take.
    pub fn registered_task_names(&self) -> Vec<String> {
        self.shared
            .tasks
            .names()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Every task the server offers, configured and registered, as clients see them.
    pub fn task_infos(&self) -> Vec<crate::message::TaskInfo> {
        let mut infos = self.shared.tasks.infos();
        infos.extend(self.shared.configured().tasks.values().map(|t| t.info()));
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// Read the configuration file again and put its tasks in force, without touching
    /// sessions or runs in progress (they finish as they started). On any error the tasks
    /// stay as they were, and the operator is told why. Settings in the file take effect at
    /// the next start. Returns the names of the configured tasks now in force.
    pub fn reload_tasks(&self) -> Result<Vec<String>, ReloadError> {
        let result = self.try_reload();
        match &result {
            Ok(names) => self.shared.emit(ServerEvent::TasksReloaded {
                path: self
                    .shared
                    .configured()
                    .path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                tasks: names.clone(),
            }),
            Err(e) => self.shared.emit(ServerEvent::Warning {
                message: format!(
                    "reloading the tasks failed, the {} configured tasks in force stay: {e}",
                    self.shared.configured().tasks.len()
                ),
            }),
        }
        result
    }

    fn try_reload(&self) -> Result<Vec<String>, ReloadError> {
        let path = self
            .shared
            .configured()
            .path
            .clone()
            .ok_or(ReloadError::NoFile)?;
        let reserved = self.shared.tasks.names();
        let file = tasks::config::load(&path, &reserved, effective_uid())?;
        Ok(self.shared.install(file))
    }

    /// Runs in progress, oldest first.
    pub fn runs(&self) -> Vec<RunView> {
        self.shared.runs().views(Instant::now())
    }

    /// The operator stops run `run_id` (as listed by [`Server::runs`]); `false` when there is
    /// no such run. Its program is stopped as on a timeout, and the client gets `operator`.
    pub fn stop_run(&self, run_id: u64) -> bool {
        self.shared
            .runs()
            .stop(run_id, crate::message::StopReason::Operator)
    }

    /// Connections open now (authenticated or not).
    pub fn open_connections(&self) -> usize {
        self.shared.conns().total()
    }

    /// Connections open now that have not authenticated (handshake, pairing).
    pub fn unauthenticated_connections(&self) -> usize {
        self.shared.conns().unauthenticated()
    }

    /// Push `text` to every connected client; returns how many sessions it was queued for.
    pub fn notify_all(&self, text: &str) -> usize {
        let text: Arc<str> = Arc::from(text);
        let mut n = 0;
        for s in self.shared.sessions().values() {
            if s.notices.try_send(text.clone()).is_ok() {
                n += 1;
            }
        }
        self.shared.emit(ServerEvent::NoticeSent {
            text: text.to_string(),
            recipients: n,
        });
        n
    }

    /// Accept connections on `listener` until `shutdown` completes, then close every
    /// connection and save the registry.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let tracker = addrs::Tracker::new(addr.ip(), &self.shared.interfaces.borrow());
        self.shared.emit(ServerEvent::Listening {
            addr,
            port: addr.port(),
            server_id: self.id(),
            server_short: self.id().short(),
            name: self.name().to_string(),
            addrs: tracker.current().to_vec(),
        });
        {
            // A window-mode server starts closed: say so, so the operator knows to open it.
            let status = self.pairing_status();
            if let Some(reason) = status.reason {
                self.shared.report_gate(GateChange::Closed {
                    reason,
                    reopens_in: status.reopens_in_s.map(Duration::from_secs),
                });
            }
        }
        let flusher = {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(shared.config.flush_interval);
                loop {
                    tick.tick().await;
                    if let Err(e) = shared.registry.flush().await {
                        shared.emit(ServerEvent::Warning {
                            message: format!("saving the registry failed: {e}"),
                        });
                    }
                }
            })
        };
        let housekeeping = tokio::spawn(housekeeping(self.shared.clone()));
        let addresses = tokio::spawn(follow_addresses(self.shared.clone(), tracker));
        tokio::select! {
            res = self.accept_loop(&listener) => { res?; }
            _ = shutdown => {}
        }
        flusher.abort();
        housekeeping.abort();
        addresses.abort();
        drop(listener);
        let _ = self.shared.shutdown.send(());
        // Give handlers a moment to say goodbye; each holds its slot until it ends, and a
        // session ends only once its runs have stopped their programs.
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(3) + self.shared.config.stop_grace;
        while (self.shared.conns().total() > 0 || self.shared.runs().len() > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(events) = &self.shared.events {
            events.flush(Instant::now());
        }
        if let Err(e) = self.shared.registry.flush().await {
            tracing::error!("saving the registry on shutdown failed: {e}");
        }
        Ok(())
    }

    async fn accept_loop(&self, listener: &TcpListener) -> std::io::Result<()> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => {
                    backoff = Duration::from_millis(5);
                    x
                }
                Err(e) => {
                    // Out of file descriptors and similar: wait rather than spin or die.
                    tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let peer = normalise(peer);
            // Room is made by evicting the oldest unauthenticated connection; only when
            // sessions fill every slot is the newcomer turned away.
            let admitted = self.shared.conns().admit(peer.ip());
            let Some(admitted) = admitted else {
                tracing::debug!(%peer, "every connection slot is held by a session");
                continue;
            };
            if let Some(events) = &self.shared.events {
                events.evicted(admitted.evictions);
            }
            let _ = tcp.set_nodelay(true);
            let slot = ConnSlot {
                shared: self.shared.clone(),
                id: admitted.id,
                authenticated: false,
            };
            let shared = self.shared.clone();
            let server = self.clone();
            tokio::spawn(conn::handle(
                server,
                shared,
                tcp,
                peer,
                slot,
                admitted.evicted,
            ));
        }
    }
}

/// Deadlines that pass without anyone connecting: a pairing window's end, a cool-off's end,
/// and the periodic summary of what was held back from the operator.
async fn housekeeping(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_summary = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let change = shared.guard().tick(now);
        if let Some(change) = change {
            shared.report_gate(change);
        }
        if now.duration_since(last_summary) >= events::SUMMARY_INTERVAL {
            last_summary = now;
            if let Some(events) = &shared.events {
                events.flush(now);
            }
        }
    }
}

/// Read the machine's addresses every `address_poll`; publish each new reading (for the
/// discovery service) and report a change of where clients can reach the listener.
async fn follow_addresses(shared: Arc<Shared>, mut tracker: addrs::Tracker) {
    let mut tick =
        tokio::time::interval(shared.config.address_poll.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = addrs::interface_addrs();
        shared.interfaces.send_if_modified(|seen| {
            let changed = *seen != now;
            if changed {
                seen.clone_from(&now);
            }
            changed
        });
        if let Some(reachable) = tracker.observe(&now) {
            shared.emit(ServerEvent::AddressesChanged {
                addrs: reachable.to_vec(),
            });
        }
    }
}

/// Discovery answering for a running server: UDP probe replies and the mDNS advertisement,
/// which follows the machine's addresses while [`Server::run`] reads them. Stops when dropped.
#[derive(Debug)]
pub struct DiscoveryService {
    udp: tokio::task::JoinHandle<()>,
    mdns: Option<tokio::task::JoinHandle<()>>,
    advertised: watch::Receiver<Vec<IpAddr>>,
}

impl DiscoveryService {
    /// Whether an mDNS record is registered now.
    pub fn advertising(&self) -> bool {
        !self.advertised.borrow().is_empty()
    }

    /// The addresses the mDNS record carries now; empty when none is registered (mDNS is
    /// off, the bind is loopback, or the machine has no address but loopback).
    pub fn advertised(&self) -> Vec<IpAddr> {
        self.advertised.borrow().clone()
    }
}

impl Drop for DiscoveryService {
    fn drop(&mut self) {
        self.udp.abort();
        if let Some(mdns) = &self.mdns {
            mdns.abort();
        }
    }
}

/// Keep the mDNS record of a listener bound to `bound` in step with the machine's addresses:
/// re-registered whenever the advertisable ones change, withdrawn while there are none.
struct Advertising {
    shared: Arc<Shared>,
    bound: SocketAddr,
    record: crate::discovery::mdns::Advertiser,
    interfaces: watch::Receiver<Vec<IpAddr>>,
    published: watch::Sender<Vec<IpAddr>>,
}

impl Advertising {
    /// Register what the latest reading allows, and publish what the record carries.
    async fn refresh(&mut self) {
        let want = addrs::advertisable(self.bound.ip(), &self.interfaces.borrow_and_update());
        if let Err(e) = self.record.set_addrs(&want).await {
            self.shared.emit(ServerEvent::Warning {
                message: format!("mDNS advertising unavailable: {e}"),
            });
        }
        self.published.send_replace(self.record.addrs().to_vec());
    }

    async fn follow(mut self) {
        while self.interfaces.changed().await.is_ok() {
            self.refresh().await;
        }
        // The engine is gone; keep the record until the service is dropped.
        std::future::pending::<()>().await;
    }
}

impl Server {
    /// Answer UDP probes on the address and port the TCP listener is bound to (`bound`), and
    /// advertise over mDNS when `mdns` is set: the machine's non-loopback addresses (or the
    /// bound one), re-registered as they change, and nothing while there are none.
    ///
    /// A UDP announce names no address: the client takes the datagram's source, so a reply
    /// to a probe from the LAN always carries the address that probe reached.
    pub async fn serve_discovery(
        &self,
        bound: SocketAddr,
        mdns: bool,
    ) -> std::io::Result<DiscoveryService> {
        let socket = tokio::net::UdpSocket::bind(bound).await?;
        let info = crate::discovery::AnnounceInfo {
            id: self.id(),
            name: self.name().to_string(),
            port: bound.port(),
        };
        let udp = tokio::spawn(crate::discovery::answer_probes(socket, info));
        let (published, advertised) = watch::channel(Vec::new());
        let mdns = if mdns {
            let mut advertising = Advertising {
                shared: self.shared.clone(),
                bound,
                record: crate::discovery::mdns::Advertiser::new(
                    bound.ip(),
                    bound.port(),
                    self.id(),
                    self.name(),
                ),
                interfaces: self.shared.interfaces.subscribe(),
                published,
            };
            // The first registration is done before this returns; changes follow.
            advertising.refresh().await;
            Some(tokio::spawn(advertising.follow()))
        } else {
            None
        };
        Ok(DiscoveryService {
            udp,
            mdns,
            advertised,
        })
    }
}

/// Revoke a client of a server that is not running, editing its state folder directly
/// (under the folder lock, so it fails with [`StateError::Locked`] while a server runs).
pub fn revoke_offline(state_dir: &Path, query: &str) -> Result<ClientRecord, RevokeError> {
    let store = ServerStore::open(state_dir)?;
    let mut file = store.load_clients()?;
    let hits: Vec<usize> = file
        .clients
        .iter()
        .enumerate()
        .filter(|(_, c)| c.client_id.matches(query) || c.name == query)
        .map(|(i, _)| i)
        .collect();
    let index = match hits.as_slice() {
        [] => return Err(RevokeError::NoMatch(query.to_string())),
        [one] => *one,
        many => return Err(RevokeError::Ambiguous(query.to_string(), many.len())),
    };
    let record = file.clients.remove(index);
    file.add_tombstone(crate::state::RevokedRecord {
        client_id: record.client_id,
        name: record.name.clone(),
        revoked_at: crate::unix_now(),
    });
    store.save_clients(&file)?;
    Ok(record)
}

/// The effective uid of this process (0 off Unix, where `user` is refused anyway).
pub fn effective_uid() -> u32 {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// IPv4-mapped IPv6 peers are treated as the IPv4 address they are.
fn normalise(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}
