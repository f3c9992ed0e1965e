//! The server under test: a real `server-tui` process, headless with `--json`, on 127.0.0.1.
//!
//! Owns the child process and the thread that reads its event lines. Pairing codes come from
//! its `pair_request` events, which is the operator's own output, so the server needs no
//! test-only hook. Notices go through its control socket, as `server-tui`'s operator tools do.
//! Must not interpret anything else the server prints: events are counted, not judged.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csc_shared::identity::PeerId;
use csc_shared::pairing::Code;
use csc_shared::server::control::{self, ControlReply, ControlRequest};
use tokio::sync::Notify;

use crate::BenchError;

/// What the event reader has seen so far.
#[derive(Debug, Default)]
struct EventLog {
    /// Codes of pair requests not yet taken, by client id (hex).
    codes: Mutex<HashMap<String, String>>,
    code_ready: Notify,
    connected: AtomicU64,
    disconnected: AtomicU64,
    paired: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    warnings: Mutex<Vec<String>>,
    /// Bytes and lines read from stdout.
    bytes: AtomicU64,
    lines: AtomicU64,
    /// Set to stop reading stdout for good (a reader that stopped).
    paused: std::sync::atomic::AtomicBool,
    /// Every event not counted above by its tag, and `pair_failed` also as
    /// `pair_failed:REASON`; `summary` events add their `failures` and `dropped` as
    /// `summary:failures` and `summary:dropped`.
    by_event: Mutex<HashMap<String, u64>>,
}

/// Counts of server events, for checking that every operation was seen by the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventCounts {
    /// `connected` events.
    pub connected: u64,
    /// `disconnected` events.
    pub disconnected: u64,
    /// `paired` events.
    pub paired: u64,
    /// Requests the server reported: one per `request` event, plus the `count` of every
    /// `requests` event (a session's requests summed over an interval, once the server stops
    /// reporting them one by one under load).
    pub requests: u64,
    /// `pair_failed` and `auth_failed` events.
    pub failures: u64,
}

/// How to start the server beyond the defaults of [`ServerProc::start`].
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// More command-line flags, e.g. `--pairing window`.
    pub args: Vec<String>,
}

/// A running `server-tui`. Killed when dropped if not stopped before.
#[derive(Debug)]
pub struct ServerProc {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    server_id: PeerId,
    state_dir: PathBuf,
    log: Arc<EventLog>,
}

impl ServerProc {
    /// Start `bin` on 127.0.0.1 with an ephemeral port and `state_dir`, stderr into
    /// `stderr_file`, and wait for its `listening` event.
    pub async fn start(
        bin: &Path,
        state_dir: &Path,
        stderr_file: &Path,
    ) -> Result<Self, BenchError> {
        Self::start_with(bin, state_dir, stderr_file, &Launch::default()).await
    }

    /// [`ServerProc::start`] with more flags, or with stdout left unread.
    pub async fn start_with(
        bin: &Path,
        state_dir: &Path,
        stderr_file: &Path,
        launch: &Launch,
    ) -> Result<Self, BenchError> {
        let stderr = std::fs::File::create(stderr_file)?;
        let mut child = child_command(bin)
            .args([
                "--json",
                "--no-tui",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--no-mdns",
                "--name",
                "bench-server",
                "--state-dir",
            ])
            .arg(state_dir)
            .args(&launch.args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| BenchError::Server(format!("cannot start {}: {e}", bin.display())))?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Server("no stdout".into()))?;
        let log = Arc::new(EventLog::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let log = log.clone();
            std::thread::Builder::new()
                .name("server-events".into())
                .spawn(move || read_events(stdout, log, tx))?;
        }
        let mut proc = Self {
            child: Some(child),
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            server_id: PeerId([0; 32]),
            state_dir: state_dir.to_path_buf(),
            log,
        };
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok((port, id))) => {
                proc.addr.set_port(port);
                proc.server_id = id;
                Ok(proc)
            }
            _ => {
                let status = proc
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                let err = std::fs::read_to_string(stderr_file).unwrap_or_default();
                Err(BenchError::Server(format!(
                    "server did not report `listening` (exit status {status:?}); stderr: {}",
                    err.trim()
                )))
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its id, as its `listening` event reported.
    pub fn server_id(&self) -> PeerId {
        self.server_id
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where pairing codes can be awaited from other tasks.
    pub fn codes(&self) -> Codes {
        Codes(self.log.clone())
    }

    /// Event counts so far.
    pub fn counts(&self) -> EventCounts {
        let l = &self.log;
        EventCounts {
            connected: l.connected.load(Ordering::Relaxed),
            disconnected: l.disconnected.load(Ordering::Relaxed),
            paired: l.paired.load(Ordering::Relaxed),
            requests: l.requests.load(Ordering::Relaxed),
            failures: l.failures.load(Ordering::Relaxed),
        }
    }

    /// Bytes of stdout read so far.
    pub fn stdout_bytes(&self) -> u64 {
        self.log.bytes.load(Ordering::Relaxed)
    }

    /// Lines of stdout read so far.
    pub fn stdout_lines(&self) -> u64 {
        self.log.lines.load(Ordering::Relaxed)
    }

    /// Stop reading the server's stdout, as a reader that hangs would: the pipe fills and
    /// the server's writes block from then on.
    pub fn stop_reading(&self) {
        self.log.paused.store(true, Ordering::Relaxed);
    }

    /// Read the server's stdout again after [`ServerProc::stop_reading`].
    pub fn resume_reading(&self) {
        self.log.paused.store(false, Ordering::Relaxed);
    }

    /// How many times `key` was seen (an event name, or `pair_failed:REASON`, or
    /// `summary:failures` / `summary:dropped` summed over summaries).
    pub fn seen(&self, key: &str) -> u64 {
        lock(&self.log.by_event).get(key).copied().unwrap_or(0)
    }

    /// Every count by key (see [`ServerProc::seen`]).
    pub fn seen_all(&self) -> HashMap<String, u64> {
        lock(&self.log.by_event).clone()
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Warnings the server reported.
    pub fn warnings(&self) -> Vec<String> {
        lock(&self.log.warnings).clone()
    }

    /// Wait until `check` holds for the event counts (events trail the wire slightly).
    pub async fn wait_counts(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&EventCounts) -> bool,
    ) -> Result<EventCounts, BenchError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let c = self.counts();
            if check(&c) {
                return Ok(c);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BenchError::Mismatch(format!("{what}: server events {c:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory of the process (VmRSS), KiB.
    pub fn rss_kib(&self) -> Result<u64, BenchError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| BenchError::Server("no VmRSS in /proc/PID/status".into()))
    }

    /// Push a notice to every session through the control socket; returns the recipients.
    pub async fn notify(&self, text: &str) -> Result<usize, BenchError> {
        let req = ControlRequest::Notify { text: text.into() };
        match control::request(&self.state_dir, &req).await? {
            ControlReply::Notified { recipients } => Ok(recipients),
            other => Err(BenchError::Server(format!(
                "unexpected control reply {other:?}"
            ))),
        }
    }

    /// Open sessions as the server's registry counts them (control socket `clients`).
    pub async fn sessions(&self) -> Result<u64, BenchError> {
        match control::request(&self.state_dir, &ControlRequest::Clients).await? {
            ControlReply::Clients { clients } => {
                Ok(clients.iter().filter_map(|c| c["sessions"].as_u64()).sum())
            }
            other => Err(BenchError::Server(format!(
                "unexpected control reply {other:?}"
            ))),
        }
    }

    /// Stop with SIGTERM (the server closes sessions and saves), killing it after 10 s.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(BenchError::Server(format!("server exited with {status}")))
                };
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Server("server did not stop on SIGTERM".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A command for a server process of the harness (`server-tui`, a baseline server): on the
/// servers' CPUs when the run is pinned ([`crate::pin`]), and never outliving the harness.
pub(crate) fn child_command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    crate::pin::server_side(&mut command);
    // SAFETY: prctl(2) is async-signal-safe. A harness killed by a signal (no Drop) must not
    // leave its servers running: the kernel sends them SIGTERM when the spawning thread goes.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The pairing codes the server shows its operator, as they arrive. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Codes(Arc<EventLog>);

impl Codes {
    /// The code the server showed for `client`, waiting up to `limit` for it.
    pub async fn code_for(&self, client: &PeerId, limit: Duration) -> Result<Code, BenchError> {
        let key = client.to_hex();
        let wait = async {
            loop {
                let notified = self.0.code_ready.notified();
                tokio::pin!(notified);
                // Registered before looking, so a code that lands in between still wakes us.
                notified.as_mut().enable();
                if let Some(code) = lock(&self.0.codes).remove(&key) {
                    return code;
                }
                notified.await;
            }
        };
        let digits = tokio::time::timeout(limit, wait).await.map_err(|_| {
            BenchError::Timeout(format!(
                "no pair_request event for client {}",
                client.short()
            ))
        })?;
        Code::parse(&digits).map_err(|e| BenchError::Server(format!("bad code {digits:?}: {e}")))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read event lines until the server closes stdout. Hot events (one per request or session)
/// are counted by their tag without parsing, to keep the reader's CPU out of the figures.
fn read_events(
    stdout: std::process::ChildStdout,
    log: Arc<EventLog>,
    listening: tokio::sync::oneshot::Sender<(u16, PeerId)>,
) {
    let mut listening = Some(listening);
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        // Hold the pipe open without reading while paused, until the `ServerProc` is gone.
        while log.paused.load(Ordering::Relaxed) {
            if Arc::strong_count(&log) <= 1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.bytes.fetch_add(n as u64, Ordering::Relaxed);
                log.lines.fetch_add(1, Ordering::Relaxed);
            }
        }
        let counter = match event_tag(&line) {
            Some(b"request") => Some((&log.requests, 1)),
            Some(b"requests") => Some((&log.requests, number_field(&line, b"count").unwrap_or(0))),
            Some(b"connected") => Some((&log.connected, 1)),
            Some(b"disconnected") => Some((&log.disconnected, 1)),
            _ => None,
        };
        if let Some((c, n)) = counter {
            c.fetch_add(n, Ordering::Relaxed);
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        {
            let mut by = lock(&log.by_event);
            if let Some(e) = v["event"].as_str() {
                *by.entry(e.to_string()).or_default() += 1;
            }
            match v["event"].as_str() {
                Some("pair_failed") => {
                    let reason = v["reason"].as_str().unwrap_or("?");
                    *by.entry(format!("pair_failed:{reason}")).or_default() += 1;
                }
                Some("pairing_closed") => {
                    let reason = v["reason"].as_str().unwrap_or("?");
                    *by.entry(format!("pairing_closed:{reason}")).or_default() += 1;
                }
                Some("summary") => {
                    for k in ["failures", "dropped", "evicted"] {
                        *by.entry(format!("summary:{k}")).or_default() +=
                            v[k].as_u64().unwrap_or(0);
                    }
                }
                _ => {}
            }
        }
        match v["event"].as_str() {
            Some("listening") => {
                let port = v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                let id = v["server_id"]
                    .as_str()
                    .and_then(|s| s.parse::<PeerId>().ok());
                if let (Some(port), Some(id), Some(tx)) = (port, id, listening.take()) {
                    let _ = tx.send((port, id));
                }
            }
            Some("pair_request") => {
                if let (Some(id), Some(code)) = (v["client_id"].as_str(), v["code"].as_str()) {
                    lock(&log.codes).insert(id.to_string(), code.to_string());
                    log.code_ready.notify_waiters();
                }
            }
            Some("paired") => {
                log.paired.fetch_add(1, Ordering::Relaxed);
            }
            Some("pair_failed" | "auth_failed") => {
                log.failures.fetch_add(1, Ordering::Relaxed);
            }
            Some("warning") => {
                lock(&log.warnings).push(v["message"].as_str().unwrap_or_default().to_string());
            }
            _ => {}
        }
    }
}

/// The value of the `"event"` key of a JSON line, found without parsing the line.
fn event_tag(line: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = br#""event":""#;
    let start = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[start..].iter().position(|&b| b == b'"')?;
    Some(&line[start..start + len])
}

/// The unsigned integer value of the key `key` of a flat JSON line, found without parsing the
/// line. A quote inside a string is escaped, so `"key":` can only be a key.
fn number_field(line: &[u8], key: &[u8]) -> Option<u64> {
    let at = line
        .windows(key.len() + 3)
        .position(|w| w[0] == b'"' && &w[1..=key.len()] == key && w[key.len() + 1..] == *b"\":")?;
    let rest = &line[at + key.len() + 3..];
    let rest = &rest[rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{event_tag, number_field};

    #[test]
    fn event_tags() {
        let line = br#"{"client_id":"ab","event":"request","ok":true}"#;
        assert_eq!(event_tag(line), Some(&b"request"[..]));
        assert_eq!(
            event_tag(br#"{"event":"connected"}"#),
            Some(&b"connected"[..])
        );
        assert_eq!(event_tag(b"{}"), None);
    }

    #[test]
    fn request_summary_counts() {
        let line = br#"{"client_id":"ab01","client_name":"n \"count\":7","count":1234,"event":"requests","failed":3,"interval_ms":1000,"session_id":9}"#;
        assert_eq!(event_tag(line), Some(&b"requests"[..]));
        assert_eq!(number_field(line, b"count"), Some(1234));
        assert_eq!(number_field(line, b"failed"), Some(3));
        assert_eq!(number_field(line, b"session_id"), Some(9));
        // A key that only ends like the one asked for, or is not there, or is not a number.
        assert_eq!(number_field(br#"{"failed_count":5}"#, b"count"), None);
        assert_eq!(number_field(br#"{"event":"requests"}"#, b"count"), None);
        assert_eq!(number_field(br#"{"count":"x"}"#, b"count"), None);
        assert_eq!(number_field(br#"{"count": 12}"#, b"count"), Some(12));
    }
}
