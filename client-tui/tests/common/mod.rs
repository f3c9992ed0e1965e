//! Helpers shared by the client's integration tests: the server binary and a server process
//! whose `--json` events a test can wait for. Each test binary uses only some of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The `server-tui` binary next to `client-tui`; built if this package is tested alone.
pub fn server_bin() -> PathBuf {
    let client = env!("CARGO_BIN_EXE_client-tui");
    let path =
        Path::new(client).with_file_name(format!("server-tui{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "server-tui", "--bin", "server-tui"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok && path.exists(), "cannot build {}", path.display());
    }
    path
}

/// A `server-tui --json` process started by a test: its events arrive on a channel, and it is
/// stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
pub struct ServerProcess {
    child: Child,
    events: mpsc::Receiver<Value>,
    /// Its `listening` event.
    pub listening: Value,
}

impl ServerProcess {
    /// Spawn `cmd`, a `server-tui --json` command line, and wait until it listens.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("server-tui starts");
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str::<Value>(&line).unwrap_or_else(|e| {
                    panic!("server printed a line that is not JSON ({e}): {line}")
                });
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut s = Self {
            child,
            events,
            listening: Value::Null,
        };
        s.listening = s.wait("listening");
        s
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listening["port"].as_u64().expect("listening.port") as u16
    }

    /// Its full server_id.
    pub fn id(&self) -> String {
        self.listening["server_id"]
            .as_str()
            .expect("listening.server_id")
            .to_string()
    }

    /// The next event of `kind`, skipping others; panics after 20 s without one.
    pub fn wait(&mut self, kind: &str) -> Value {
        self.try_wait(kind)
            .unwrap_or_else(|| panic!("no {kind} event from the server"))
    }

    /// The next event of `kind`, skipping others, or `None` after 20 s without one.
    pub fn try_wait(&mut self, kind: &str) -> Option<Value> {
        self.wait_within(kind, Duration::from_secs(20))
    }

    /// The next event of `kind`, skipping others, or `None` once `quiet` passes without
    /// any event.
    pub fn wait_within(&mut self, kind: &str, quiet: Duration) -> Option<Value> {
        loop {
            let v = self.events.recv_timeout(quiet).ok()?;
            if v["event"] == kind {
                return Some(v);
            }
        }
    }

    /// How many events of `kind` have arrived and not been read yet (reads them all).
    pub fn seen(&self, kind: &str) -> usize {
        self.events
            .try_iter()
            .filter(|v| v["event"] == kind)
            .count()
    }

    /// Stop it now (what dropping it does).
    pub fn stop(self) {}
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child, which has not been waited for yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
