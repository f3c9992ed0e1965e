//! The client's link in a namespace lab, with the real binaries: a console left open heals
//! by itself when its server moves to another address, is killed and restarted elsewhere, or
//! is frozen (SIGSTOP). Both front ends are driven: the headless console with stdin kept open
//! (its `--json` events read line by line), and the full-screen console in a pseudo-terminal.
//! Short deadlines are configured (`--keepalive`, `--dead-after`, `--wait`) and the bounds
//! waited for are generous; nothing is timed.
#![cfg(target_os = "linux")]

mod lab;

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ServerProcess as Server, server_bin};
use lab::Lab;
use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

/// Lab tests run one at a time: each sweeps its /24.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Short deadlines: ping after 300 ms of silence, lost after 1.5 s.
const QUICK: &[&str] = &[
    "--keepalive",
    "300ms",
    "--dead-after",
    "1500ms",
    "--no-mdns",
];

fn client(lab: &Lab, host: usize, dir: &Path) -> Command {
    let mut c = lab.cmd(host, CLIENT);
    c.arg("--state-dir")
        .arg(dir)
        .args(["--name", "lab-console"]);
    c
}

/// Pair the client in host `host` with `server` by discovery, typing the code it showed.
fn pair(lab: &Lab, host: usize, dir: &Path, server: &mut Server) {
    let mut pair = client(lab, host, dir)
        .args(["pair", "--no-mdns"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Some(request) = server.try_wait("pair_request") else {
        let _ = pair.kill();
        let out = pair.wait_with_output().unwrap();
        panic!(
            "no pair request; client said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let code = request["code"].as_str().unwrap().to_string();
    writeln!(pair.stdin.take().unwrap(), "{code}").unwrap();
    let out = pair.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait("paired");
}

/// The headless console, `--json`, with stdin kept open and every stdout line collected.
struct Console {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Console {
    fn start(lab: &Lab, host: usize, dir: &Path, extra: &[&str]) -> Self {
        let mut child = client(lab, host, dir)
            .args(["--no-tui", "--json"])
            .args(QUICK)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next line that `pick` accepts, within `limit`.
    fn wait<T>(&mut self, what: &str, limit: Duration, pick: impl Fn(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if let Some(t) = pick(&v) {
                        return t;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {limit:?}; the console printed {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn event(&mut self, name: &str, limit: Duration) -> Value {
        self.wait(name, limit, |v| (v["event"] == name).then(|| v.clone()))
    }

    fn answer(&mut self, task: &str, limit: Duration) -> Value {
        self.wait(&format!("the answer to {task}"), limit, |v| {
            (v["task"] == task).then(|| v.clone())
        })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_pid(server: &Server) -> i32 {
    server.pid() as i32
}

#[test]
fn the_headless_console_heals_when_its_server_moves() {
    let _lab_lock = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server =
        Server::spawn(lab.server_cmd(1, &server_bin(), s.path(), "moving", &["--no-mdns"]));
    pair(&lab, 2, c.path(), &mut server);
    let mut console = Console::start(&lab, 2, c.path(), &["--wait", "30s"]);
    console.type_line("ping");
    assert_eq!(
        console.answer("ping", Duration::from_secs(20))["result"],
        "pong"
    );

    // The server's address changes while the console sits idle, stdin open.
    lab.set_addr(1, "10.213.0.77/24");
    let lost = console.event("lost", Duration::from_secs(15));
    eprintln!("lost: {lost}");
    let back = console.event("connected", Duration::from_secs(30));
    assert_eq!(back["addr"], "10.213.0.77:47474", "{back}");
    assert_ne!(back["via"], "last");
    console.type_line("ping");
    let answer = console.answer("ping", Duration::from_secs(20));
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(server.seen("pair_request"), 0, "no new pairing");
}

#[test]
fn a_frozen_server_is_declared_lost_and_a_task_fails_within_its_deadline() {
    let _lab_lock = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server =
        Server::spawn(lab.server_cmd(1, &server_bin(), s.path(), "frozen", &["--no-mdns"]));
    pair(&lab, 2, c.path(), &mut server);
    let mut console = Console::start(&lab, 2, c.path(), &["--wait", "2s"]);
    console.type_line("ping");
    assert_eq!(
        console.answer("ping", Duration::from_secs(20))["result"],
        "pong"
    );

    // SIGSTOP: the connection stays open, the kernel still acknowledges, nothing answers.
    let pid = server_pid(&server);
    // SAFETY: a signal to the server process this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let frozen = Instant::now();
    let lost = console.event("lost", Duration::from_secs(15));
    assert!(
        lost["reason"].as_str().unwrap().contains("no answer"),
        "{lost}"
    );
    eprintln!("frozen server declared lost after {:?}", frozen.elapsed());
    // A task typed now waits its 2 s for the link, then fails with a clear error.
    let typed = Instant::now();
    console.type_line("ping");
    let answer = console.answer("ping", Duration::from_secs(15));
    let took = typed.elapsed();
    assert_eq!(answer["ok"], false, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("not connected"), "{message}");
    assert!(
        took >= Duration::from_millis(1900),
        "failed before its deadline: {took:?}"
    );
    eprintln!("a task during the freeze failed after {took:?}: {message}");

    // SIGCONT: it heals by itself.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    console.event("connected", Duration::from_secs(60));
    console.type_line("ping");
    assert_eq!(
        console.answer("ping", Duration::from_secs(20))["result"],
        "pong"
    );
}

#[test]
fn a_server_killed_and_restarted_at_another_address_is_found_again() {
    let _lab_lock = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server =
        Server::spawn(lab.server_cmd(1, &server_bin(), s.path(), "phoenix", &["--no-mdns"]));
    pair(&lab, 2, c.path(), &mut server);
    let mut console = Console::start(&lab, 2, c.path(), &["--wait", "30s"]);
    console.type_line("ping");
    assert_eq!(
        console.answer("ping", Duration::from_secs(20))["result"],
        "pong"
    );

    // SAFETY: a signal to the server process this test started.
    unsafe { libc::kill(server_pid(&server), libc::SIGKILL) };
    drop(server);
    console.event("lost", Duration::from_secs(15));
    lab.set_addr(1, "10.213.0.88/24");
    let _server =
        Server::spawn(lab.server_cmd(1, &server_bin(), s.path(), "phoenix", &["--no-mdns"]));
    let back = console.event("connected", Duration::from_secs(60));
    assert_eq!(back["addr"], "10.213.0.88:47474", "{back}");
    console.type_line("ping");
    assert_eq!(
        console.answer("ping", Duration::from_secs(20))["result"],
        "pong"
    );
}

#[test]
fn the_full_screen_console_heals_when_its_server_moves() {
    let _lab_lock = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server =
        Server::spawn(lab.server_cmd(1, &server_bin(), s.path(), "moving", &["--no-mdns"]));
    pair(&lab, 2, c.path(), &mut server);
    let mut cmd = client(&lab, 2, c.path());
    cmd.args(QUICK).args(["--wait", "30s"]);
    let mut pty = tui_kit::pty::Pty::spawn(cmd, 30, 110).with_timeout(Duration::from_secs(60));
    pty.wait_text("connected to moving");
    pty.send(b"ping\r");
    pty.wait_text("pong  (");

    lab.set_addr(1, "10.213.0.77/24");
    pty.wait_text("connection lost");
    pty.wait_text("reconnected to moving at 10.213.0.77:47474");
    pty.send(b"echo back again\r");
    pty.wait_text("back again  (");
    pty.quit(b"\x03");
}
