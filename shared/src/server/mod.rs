//! The server engine: accepts connections, runs pairing and sessions, and reports what
//! happens as [`ServerEvent`]s. The apps only render events and call [`Server`] methods.
//!
//! Modelled on mini-redis: [`Server::run`] takes a bound listener and a shutdown future, a
//! semaphore caps connections, and a broadcast channel tells handlers to stop.

mod conn;
#[cfg(unix)]
pub mod control;
pub mod guard;
mod registry;
pub mod tasks;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, mpsc};

pub use guard::PairingPolicy;
pub use tasks::{Task, TaskContext, TaskError, TaskResult, Tasks};

use crate::identity::{Identity, PeerId};
use crate::message::{PairFailure, RepairReason};
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
    /// Open connections allowed at once.
    pub max_connections: usize,
    /// Requests one session may have running at once.
    pub max_inflight: usize,
    /// Connections from one address not yet authenticated (handshake, pairing) at once.
    pub max_unauthenticated_per_addr: usize,
    /// A quiet session gets a `ping` after this long.
    pub keepalive: Duration,
    /// A session with no message at all for this long is closed.
    pub idle_timeout: Duration,
    /// A write that cannot complete in this time (the client stopped reading) closes the session.
    pub write_timeout: Duration,
    /// How often batched registry changes are written.
    pub flush_interval: Duration,
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
            max_inflight: 32,
            max_unauthenticated_per_addr: 32,
            keepalive: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            flush_interval: Duration::from_secs(5),
        }
    }
}

/// What the server reports to its operator. Serialised with an `event` tag for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The listener is up.
    Listening {
        /// Bound address.
        addr: SocketAddr,
        /// Bound port.
        port: u16,
        /// Full server id.
        server_id: PeerId,
        /// Short server id.
        server_short: String,
        /// Server name.
        name: String,
    },
    /// A client asks to pair: show `code` to the operator.
    PairRequest {
        /// Identifies this request in later events.
        request_id: u64,
        /// Name the client gave.
        client_name: String,
        /// Where it connects from.
        client_addr: SocketAddr,
        /// Its key id.
        client_id: PeerId,
        /// Short form of its id.
        client_short: String,
        /// The one-time code.
        code: String,
        /// Seconds until the code expires.
        expires_in_s: u64,
        /// Wrong answers allowed.
        attempts_left: u32,
    },
    /// A pairing attempt or request failed.
    PairFailed {
        /// The request, if one was pending.
        request_id: Option<u64>,
        /// Name the client gave.
        client_name: String,
        /// Where it connects from.
        client_addr: SocketAddr,
        /// Its key id.
        client_id: PeerId,
        /// Why.
        reason: PairFailure,
        /// Wrong answers still allowed for the code.
        attempts_left: u32,
    },
    /// A pending request ended without pairing (expired, exhausted or abandoned).
    PairClosed {
        /// The request.
        request_id: u64,
        /// `expired`, `exhausted` or `cancelled`.
        reason: String,
    },
    /// A client paired successfully and was saved.
    Paired {
        /// The request that succeeded.
        request_id: u64,
        /// Client name.
        client_name: String,
        /// Client address.
        client_addr: SocketAddr,
        /// Client id.
        client_id: PeerId,
    },
    /// An authenticated session started.
    Connected {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client address.
        client_addr: SocketAddr,
        /// Client id.
        client_id: PeerId,
    },
    /// An authenticated session ended.
    Disconnected {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client address.
        client_addr: SocketAddr,
        /// Client id.
        client_id: PeerId,
        /// Why it ended.
        reason: String,
    },
    /// A token was refused.
    AuthFailed {
        /// Where it came from.
        client_addr: SocketAddr,
        /// The key that presented it.
        client_id: PeerId,
        /// Why.
        reason: RepairReason,
    },
    /// A task ran.
    Request {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client id.
        client_id: PeerId,
        /// Task name.
        task: String,
        /// Whether it succeeded.
        ok: bool,
        /// Time it took, microseconds.
        elapsed_us: u64,
    },
    /// A client was removed from the registry.
    Revoked {
        /// Client id.
        client_id: PeerId,
        /// Client name.
        client_name: String,
        /// `operator` or `client`.
        by: String,
    },
    /// A notice was pushed to connected clients.
    NoticeSent {
        /// The text.
        text: String,
        /// How many sessions it was queued for.
        recipients: usize,
    },
    /// Something went wrong that the operator should know about.
    Warning {
        /// What.
        message: String,
    },
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

/// Revocation failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
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

/// What a revoked session is told, by who revoked it.
const REVOKED_BY_OPERATOR: &str = "this client was revoked by the server's operator";
const REVOKED_BY_CLIENT: &str = "this client was unpaired from another session";

struct SessionEntry {
    client_id: PeerId,
    /// Notices; bounded, so a client that stops reading loses notices, not server memory.
    notices: mpsc::Sender<Arc<str>>,
    /// Fires once to cut the session; never lost to a full queue.
    revoke: Option<tokio::sync::oneshot::Sender<&'static str>>,
}

struct Shared {
    config: ServerConfig,
    identity: Identity,
    acceptor: tokio_rustls::TlsAcceptor,
    authority: TokenAuthority,
    tasks: Tasks,
    registry: registry::Registry,
    guard: Mutex<guard::Guard>,
    sessions: Mutex<HashMap<u64, SessionEntry>>,
    tasks_run: Mutex<HashMap<PeerId, u64>>,
    unauthenticated: Mutex<HashMap<IpAddr, usize>>,
    connected: AtomicUsize,
    next_id: AtomicU64,
    events: Option<mpsc::UnboundedSender<ServerEvent>>,
    started: Instant,
    shutdown: broadcast::Sender<()>,
}

impl Shared {
    fn emit(&self, event: ServerEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Count an unauthenticated connection from `ip`; `None` when that address is at its cap.
    fn admit_unauthenticated(self: &Arc<Self>, ip: IpAddr) -> Option<Unauthenticated> {
        let mut map = self
            .unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= self.config.max_unauthenticated_per_addr {
            return None;
        }
        *n += 1;
        Some(Unauthenticated {
            shared: self.clone(),
            ip,
        })
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, guard::Guard> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One unauthenticated connection counted against its address; released on drop.
struct Unauthenticated {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
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
    /// `events`, when given, receives every [`ServerEvent`]; the channel is unbounded so the
    /// network never waits for a slow UI.
    pub fn open(
        state_dir: &Path,
        config: ServerConfig,
        tasks: Tasks,
        events: Option<mpsc::UnboundedSender<ServerEvent>>,
    ) -> Result<Self, ServerError> {
        let store = Arc::new(ServerStore::open(state_dir)?);
        let identity = store.identity(&config.name)?;
        let token_key = store.token_key()?;
        let registry = registry::Registry::load(store)?;
        let tls = crate::tls::server_config(&identity)?;
        let authority = TokenAuthority::new(&token_key, identity.id());
        let (shutdown, _) = broadcast::channel(1);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                acceptor: tokio_rustls::TlsAcceptor::from(tls),
                identity,
                authority,
                tasks,
                registry,
                guard: Mutex::new(guard::Guard::default()),
                sessions: Mutex::new(HashMap::new()),
                tasks_run: Mutex::new(HashMap::new()),
                unauthenticated: Mutex::new(HashMap::new()),
                connected: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                events,
                started: Instant::now(),
                shutdown,
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
        self.revoke_id(&record.client_id, "operator").await?;
        Ok(record)
    }

    async fn revoke_id(&self, id: &PeerId, by: &str) -> Result<Option<ClientRecord>, StateError> {
        let removed = self.shared.registry.revoke(id).await?;
        if let Some(r) = &removed {
            let why = if by == "client" {
                REVOKED_BY_CLIENT
            } else {
                REVOKED_BY_OPERATOR
            };
            for s in self.shared.sessions().values_mut() {
                if s.client_id == *id
                    && let Some(tx) = s.revoke.take()
                {
                    let _ = tx.send(why);
                }
            }
            self.shared.emit(ServerEvent::Revoked {
                client_id: *id,
                client_name: r.name.clone(),
                by: by.to_string(),
            });
        }
        Ok(removed)
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
        self.shared.emit(ServerEvent::Listening {
            addr,
            port: addr.port(),
            server_id: self.id(),
            server_short: self.id().short(),
            name: self.name().to_string(),
        });
        let limit = Arc::new(Semaphore::new(self.shared.config.max_connections));
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
        tokio::select! {
            res = self.accept_loop(&listener, limit.clone()) => { res?; }
            _ = shutdown => {}
        }
        flusher.abort();
        drop(listener);
        let _ = self.shared.shutdown.send(());
        // Give handlers a moment to say goodbye; each holds a permit until it ends.
        let all = self.shared.config.max_connections as u32;
        let _ = tokio::time::timeout(Duration::from_secs(3), limit.acquire_many(all)).await;
        if let Err(e) = self.shared.registry.flush().await {
            tracing::error!("saving the registry on shutdown failed: {e}");
        }
        Ok(())
    }

    async fn accept_loop(
        &self,
        listener: &TcpListener,
        limit: Arc<Semaphore>,
    ) -> std::io::Result<()> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let permit = limit
                .clone()
                .acquire_owned()
                .await
                .map_err(std::io::Error::other)?;
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
            let _ = tcp.set_nodelay(true);
            let shared = self.shared.clone();
            let server = self.clone();
            tokio::spawn(async move {
                conn::handle(server, shared, tcp, normalise(peer)).await;
                drop(permit);
            });
        }
    }
}

/// Discovery answering for a running server: UDP probe replies and the mDNS advertisement.
/// Stops when dropped.
#[derive(Debug)]
pub struct DiscoveryService {
    udp: tokio::task::JoinHandle<()>,
    mdns: Option<crate::discovery::mdns::Advertiser>,
}

impl DiscoveryService {
    /// Whether mDNS advertising is active.
    pub fn advertising(&self) -> bool {
        self.mdns.is_some()
    }
}

impl Drop for DiscoveryService {
    fn drop(&mut self) {
        self.udp.abort();
    }
}

impl Server {
    /// Answer UDP probes on the address and port the TCP listener is bound to (`bound`), and
    /// advertise over mDNS when `mdns` is set and the address is not loopback.
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
        let mdns = if mdns {
            match crate::discovery::mdns::Advertiser::start(
                bound.ip(),
                bound.port(),
                self.id(),
                self.name(),
            ) {
                Ok(a) => a,
                Err(e) => {
                    self.shared.emit(ServerEvent::Warning {
                        message: format!("mDNS advertising unavailable: {e}"),
                    });
                    None
                }
            }
        } else {
            None
        };
        Ok(DiscoveryService { udp, mdns })
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
