//! Load generator and benchmark harness for client-server-communicator.
//!
//! Drives a real, headless `server-tui` process on 127.0.0.1 with the client engine of
//! `csc_shared`, and measures, over several repetitions, beside the transport's own limit:
//! - [`pairing`]: request → stored token, with the code read from the server's `--json` output;
//! - [`reconnect`]: new TCP connection → authenticated session;
//! - [`tasks`]: `echo` round trips and pipelined throughput, and the same over plain TLS
//!   ([`baseline`]);
//! - [`many`]: N simultaneous sessions: server memory, a notice to all, `ping` under load.
//!
//! [`server`] owns the child process; [`pin`] places the servers and the harness on separate
//! CPUs; [`cpu`] reads CPU time from /proc; [`stats`] does the
//! arithmetic; [`report`] renders the tables. [`attack`] is hostile load (guessers, hoarders,
//! refused connections), used by the attack tests behind SECURITY.md's figures.
//! Every reply is checked, so a wrong answer fails the run instead of skewing a figure.
//! Nothing here binds or connects outside 127.0.0.0/8.

pub mod agent;
pub mod attack;
pub mod baseline;
pub mod cpu;
pub mod many;
pub mod pairing;
pub mod pin;
pub mod reconnect;
pub mod report;
pub mod server;
pub mod stats;
pub mod streams;
pub mod tasks;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use csc_shared::client::{Client, ClientError, ClientOptions};
use csc_shared::state::PairedServer;

pub use report::Report;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server process misbehaved or could not be started.
    #[error("server: {0}")]
    Server(String),
    /// The client engine failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Our messages could not be read or written.
    #[error(transparent)]
    Connection(#[from] csc_shared::connection::ConnectionError),
    /// A reply or a count was not what was sent or expected.
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// Something took far longer than any figure here should.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The harness could not set itself up.
    #[error("setup: {0}")]
    Setup(String),
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One echo payload size and how many requests to measure it with, per repetition.
#[derive(Debug, Clone)]
pub struct EchoPlan {
    /// Payload bytes.
    pub size: usize,
    /// Requests one after another (round trip).
    pub rtt_requests: usize,
    /// Requests with [`Options::window`] in flight (throughput).
    pub pipelined_requests: usize,
}

/// What to run and how big. See [`Options::standard`], [`Options::quick`], [`Options::tiny`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The `server-tui` binary to measure.
    pub server_bin: PathBuf,
    /// The `bench-load` binary that serves the baseline as its own process (default: this
    /// executable if it is `bench-load`, else the `bench-load` next to it).
    pub baseline_bin: Option<PathBuf>,
    /// Where state folders go (a temporary folder is made inside it).
    pub work_dir: Option<PathBuf>,
    /// Repetitions of every measurement.
    pub reps: usize,
    /// Pairings one after another, per repetition (latency).
    pub pairings: usize,
    /// Pairings run side by side for the rate; at most 16 codes may be pending server-wide.
    pub pairing_workers: usize,
    /// Pairings per worker per repetition.
    pub pairings_per_worker: usize,
    /// Reconnects one after another, per repetition (latency).
    pub reconnects: usize,
    /// Reconnect loops side by side for the rate.
    pub reconnect_workers: usize,
    /// Reconnects per worker per repetition.
    pub reconnects_per_worker: usize,
    /// Echo sizes.
    pub echo: Vec<EchoPlan>,
    /// Requests in flight when pipelining (the server runs at most 32 per session).
    pub window: usize,
    /// `ping`s on one idle session, per repetition.
    pub pings: usize,
    /// Sizes of the many-clients runs.
    pub clients: Vec<usize>,
    /// Paired identities the many-clients sessions are spread over (each on its own
    /// loopback source address).
    pub identities: usize,
    /// Session openings in flight while filling the server.
    pub connect_concurrency: usize,
    /// Notices sent to all N, each timed.
    pub notices: usize,
    /// `ping`s under load, each from another session.
    pub pings_under_load: usize,
    /// Bytes through the `cat` task per repetition.
    pub stream_bytes: usize,
    /// Bytes out of the writer task per repetition.
    pub stream_out_bytes: usize,
    /// Runs of `/bin/true` per repetition.
    pub spawns: usize,
    /// `ping`s one at a time through the agent, and as many on the link, per repetition.
    pub agent_requests: usize,
    /// `client-tui send ping` runs with the agent, and as many without, per repetition.
    pub agent_sends: usize,
    /// Only this part (after the pairings it needs), for profiling one path at a time.
    pub only: Option<Phase>,
    /// Pin the server processes to one half of the CPUs and the harness to the other
    /// ([`pin`]): `None` does when at least 2 CPUs are allowed, `Some(true)` must.
    pub pin: Option<bool>,
    /// Progress lines on stderr.
    pub verbose: bool,
}

/// The parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Pairing.
    Pairing,
    /// Reconnecting.
    Reconnect,
    /// Echo and ping on one session, with the baseline.
    Tasks,
    /// Many simultaneous clients.
    Many,
    /// Streaming runs: `cat`, a writer, `/bin/true`, with the baseline.
    Streams,
    /// The agent: its round trip against the link's, and `send` with and without it.
    Agent,
}

impl Options {
    /// The documented default run (about a minute on two cores, building aside).
    pub fn standard(server_bin: PathBuf) -> Self {
        Self {
            server_bin,
            baseline_bin: None,
            work_dir: None,
            reps: 7,
            pairings: 20,
            pairing_workers: 8,
            pairings_per_worker: 4,
            reconnects: 200,
            reconnect_workers: 16,
            reconnects_per_worker: 40,
            echo: vec![
                EchoPlan {
                    size: 64,
                    rtt_requests: 2000,
                    pipelined_requests: 20_000,
                },
                EchoPlan {
                    size: 16 * 1024,
                    rtt_requests: 1000,
                    pipelined_requests: 4000,
                },
            ],
            window: 32,
            pings: 1000,
            clients: vec![1000, 10_000],
            identities: 100,
            connect_concurrency: 128,
            notices: 5,
            pings_under_load: 1000,
            stream_bytes: 64 << 20,
            stream_out_bytes: 100 << 20,
            spawns: 50,
            agent_requests: 1000,
            agent_sends: 5,
            only: None,
            pin: None,
            verbose: true,
        }
    }

    /// A shorter run with the same shape: fewer repetitions and requests.
    pub fn quick(server_bin: PathBuf) -> Self {
        Self {
            reps: 3,
            pairings: 10,
            pairings_per_worker: 2,
            reconnects: 100,
            reconnects_per_worker: 20,
            echo: vec![
                EchoPlan {
                    size: 64,
                    rtt_requests: 500,
                    pipelined_requests: 5000,
                },
                EchoPlan {
                    size: 16 * 1024,
                    rtt_requests: 200,
                    pipelined_requests: 1000,
                },
            ],
            pings: 300,
            clients: vec![1000, 10_000],
            notices: 3,
            pings_under_load: 300,
            stream_bytes: 16 << 20,
            stream_out_bytes: 32 << 20,
            spawns: 20,
            agent_requests: 300,
            agent_sends: 3,
            ..Self::standard(server_bin)
        }
    }

    /// The smallest run that still exercises every path (the crate's test).
    pub fn tiny(server_bin: PathBuf) -> Self {
        Self {
            reps: 2,
            pairings: 3,
            pairing_workers: 2,
            pairings_per_worker: 2,
            reconnects: 10,
            reconnect_workers: 2,
            reconnects_per_worker: 5,
            echo: vec![
                EchoPlan {
                    size: 64,
                    rtt_requests: 50,
                    pipelined_requests: 200,
                },
                EchoPlan {
                    size: 16 * 1024,
                    rtt_requests: 10,
                    pipelined_requests: 50,
                },
            ],
            window: 32,
            pings: 20,
            clients: vec![50],
            identities: 5,
            connect_concurrency: 16,
            notices: 2,
            pings_under_load: 20,
            stream_bytes: 1 << 20,
            stream_out_bytes: 2 << 20,
            spawns: 3,
            agent_requests: 20,
            agent_sends: 1,
            verbose: false,
            ..Self::standard(server_bin)
        }
    }

    /// The `bench-load` executable for the baseline servers.
    pub fn baseline_bin(&self) -> Result<PathBuf, BenchError> {
        if let Some(bin) = &self.baseline_bin {
            return Ok(bin.clone());
        }
        let exe = std::env::current_exe()?;
        if exe.file_stem().is_some_and(|n| n == "bench-load") {
            return Ok(exe);
        }
        sibling_bin("bench-load").ok_or_else(|| {
            BenchError::Setup(
                "no bench-load executable for the baseline servers; build it (cargo build -p bench) or set Options::baseline_bin".into(),
            )
        })
    }

    pub(crate) fn progress(&self, line: impl AsRef<str>) {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let at = START.get_or_init(std::time::Instant::now).elapsed();
        if self.verbose {
            eprintln!("bench: [{:6.1} s] {}", at.as_secs_f64(), line.as_ref());
        }
    }
}

/// The `server-tui` built next to the running executable (`target/<profile>/`), if any.
pub fn sibling_server_bin() -> Option<PathBuf> {
    sibling_bin("server-tui")
}

/// The executable `name` built next to the running one (`target/<profile>/`), if any.
pub fn sibling_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    // Test executables live one level down, in `deps/`.
    if dir.ends_with("deps") {
        dir = dir.parent()?;
    }
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    bin.is_file().then_some(bin)
}

/// Loopback source address number `i` (127.0.x.y, never 127.0.0.1): every client identity
/// gets its own, so per-address pairing limits and ephemeral ports are never shared.
pub fn source_ip(i: usize) -> IpAddr {
    let i = i % (254 * 254);
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        1 + (i / 254) as u8,
        1 + (i % 254) as u8,
    ))
}

/// A client identity (own state folder, own source address), paired or about to be.
#[derive(Debug, Clone)]
pub struct Member {
    /// The client engine.
    pub client: Arc<Client>,
    /// Its pairing, once made.
    pub server: Option<PairedServer>,
}

impl Member {
    /// The pairing; only called on members that paired.
    pub(crate) fn paired(&self) -> Result<&PairedServer, BenchError> {
        self.server
            .as_ref()
            .ok_or_else(|| BenchError::Setup("client is not paired".into()))
    }
}

/// Create client identities `first..first + count` under `dir` (not measured).
pub(crate) async fn make_members(
    dir: &Path,
    first: usize,
    count: usize,
) -> Result<Vec<Member>, BenchError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        (first..first + count)
            .map(|i| {
                let options = ClientOptions {
                    local_ip: Some(source_ip(i)),
                    ..ClientOptions::default()
                };
                let client =
                    Client::open(&dir.join(format!("{i:05}")), &format!("bench-{i}"), options)?;
                Ok(Member {
                    client: Arc::new(client),
                    server: None,
                })
            })
            .collect()
    })
    .await
    .map_err(|e| BenchError::Setup(format!("creating identities: {e}")))?
}

/// Raise this process's open-files limit as far as the hard limit allows; returns it.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// Run everything `opts` asks for against a fresh server state.
pub async fn run(opts: &Options) -> Result<Report, BenchError> {
    let fd_limit = raise_fd_limit();
    let placement = pin::Placement::choose(opts.pin)?;
    // Every server started below inherits the placement; undone when the run ends.
    let _pinned = placement.apply()?;
    opts.progress(format!("placement: {}", placement.describe()));
    let load_before = report::load_average();
    let tmp = match &opts.work_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("csc-bench-")
            .tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("csc-bench-").tempdir()?,
    };
    let work = tmp.path();
    let state = work.join("server");
    let clients_dir = work.join("clients");
    std::fs::create_dir_all(&clients_dir)?;
    opts.progress(format!(
        "server {}, work folder {}, open-files limit {fd_limit}",
        opts.server_bin.display(),
        work.display()
    ));

    let srv =
        server::ServerProc::start(&opts.server_bin, &state, &work.join("server-1.stderr")).await?;
    opts.progress(format!("server pid {}", srv.pid()));
    let wants = |p: Phase| opts.only.is_none_or(|o| o == p);
    let (pairing, mut members) = pairing::run(opts, &srv, &clients_dir).await?;
    let reconnect = match wants(Phase::Reconnect) {
        true => Some(reconnect::run(opts, &srv, &members).await?),
        false => None,
    };
    let tasks = match wants(Phase::Tasks) {
        true => Some(tasks::run(opts, &srv, &members).await?),
        false => None,
    };
    let mut warnings = srv.warnings();
    srv.stop().await?;
    let streams = match wants(Phase::Streams) {
        true => Some(streams::run(opts, work).await?),
        false => None,
    };
    let agent = match wants(Phase::Agent) {
        true => Some(agent::run(opts, work).await?),
        false => None,
    };

    let mut many = Vec::new();
    let sizes = if wants(Phase::Many) {
        &opts.clients[..]
    } else {
        &[]
    };
    for (i, &n) in sizes.iter().enumerate() {
        let stderr = work.join(format!("server-{}.stderr", i + 2));
        let (figures, w) = many::run(opts, &state, &stderr, &mut members, n, fd_limit).await?;
        warnings.extend(w);
        many.push(figures);
    }
    Ok(Report {
        machine: report::Machine::detect(load_before, fd_limit, placement),
        pairing,
        reconnect,
        tasks,
        streams,
        agent,
        many,
        server_warnings: warnings,
    })
}

/// Bound a step that must never hang the run.
pub(crate) async fn within<T>(
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| BenchError::Timeout(format!("{what} (after {limit:?})")))?
}
