//! `client-tui agent` with the real binaries on 127.0.0.1: `send` goes through it (the server
//! sees no new session) and works without it; one agent per state folder; another user is
//! turned away; the agent outlives a server restart; and the Python and Node examples run a
//! task and hear a notice through it.
#![cfg(target_os = "linux")]

mod common;

use common::{ServerProcess as Server, server_bin};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

fn client(dir: &Path) -> Command {
    let mut c = Command::new(CLIENT);
    c.arg("--state-dir")
        .arg(dir)
        .args(["--name", "kiosk", "--subnet", "127.0.0.1/32"])
        .args(["--no-broadcast", "--no-mdns"]);
    c
}

fn start_server(sdir: &Path, port: u16) -> Server {
    let mut cmd = Command::new(server_bin());
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--json", "--no-mdns", "--name", "desk", "--state-dir"])
        .arg(sdir);
    Server::spawn(cmd)
}

/// A running `client-tui agent --json`, its stdout lines on a channel.
struct AgentProcess {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl AgentProcess {
    fn start(dir: &Path) -> Self {
        let mut child = client(dir)
            .args(["--json", "agent"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&l).unwrap_or(Value::String(l)));
            }
        });
        let mut a = Self { child, lines };
        a.wait(|v| v["event"] == "agent_listening");
        a
    }

    fn wait(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if want(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("the agent did not say what was awaited"),
            }
        }
    }

    fn connected(&mut self) -> Value {
        self.wait(|v| v["event"] == "link" && v["state"] == "connected")
    }

    fn stop(self) -> String {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let out = self.child.wait_with_output().unwrap();
        assert!(out.status.success(), "the agent stops cleanly on SIGTERM");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn paired(server: &mut Server, cdir: &Path) {
    let mut child = client(cdir)
        .args(["pair", "--server", &format!("127.0.0.1:{}", server.port())])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = server.wait("pair_request")["code"]
        .as_str()
        .unwrap()
        .to_string();
    writeln!(child.stdin.take().unwrap(), "{code}").unwrap();
    assert!(child.wait().unwrap().success());
    server.wait("paired");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn send_goes_through_the_agent_and_works_without_it() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = start_server(sdir.path(), 0);
    paired(&mut server, cdir.path());
    let mut agent = AgentProcess::start(cdir.path());
    agent.connected();
    // The sessions so far (the pairing's, the agent's) are not the point: forget them.
    std::thread::sleep(Duration::from_millis(300));
    server.seen("connected");

    // Through the agent: the server sees runs, and no new session.
    for _ in 0..3 {
        let out = client(cdir.path())
            .args(["send", "echo", "hi", "there"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi there\n");
    }
    let out = client(cdir.path())
        .args(["--json", "send", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", text(&out.stderr));
    let last: Value = serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["ok"], false);
    assert_eq!(last["status"]["code"], "unknown_task");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.seen("connected"),
        0,
        "send opened a session of its own"
    );

    // A second agent on the same folder is refused.
    let out = client(cdir.path()).arg("agent").output().unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already serving"),
        "{}",
        text(&out.stderr)
    );

    // --no-agent connects directly.
    let out = client(cdir.path())
        .args(["send", "--no-agent", "ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pong\n");
    server.wait("connected");

    // Without an agent, send connects directly.
    let log = agent.stop();
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !cdir.path().join("agent.sock").exists(),
        "the socket is removed"
    );
    let out = client(cdir.path()).args(["send", "ping"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    server.wait("connected");
}

#[test]
fn another_user_is_turned_away() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = start_server(sdir.path(), 0);
    paired(&mut server, cdir.path());
    let agent = AgentProcess::start(cdir.path());
    // Open the way to the socket on purpose (the folder is 0700 and the socket 0600), so that
    // only the agent's own check stands between another user and the link.
    use std::os::unix::fs::PermissionsExt;
    let sock = cdir.path().join("agent.sock");
    std::fs::set_permissions(cdir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(10)
try:
    s.sendall(b'{"id":1,"task":"ping"}\n')
    print(repr(s.recv(4096)))
except (BrokenPipeError, ConnectionResetError):
    print("closed")
"#;
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["/usr/bin/python3", "-c", script])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = text(&out.stdout);
    assert!(
        matches!(got.trim(), "b''" | "closed"),
        "another user got an answer: {got}"
    );
    std::fs::set_permissions(cdir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = agent.stop();
    assert!(
        log.contains("refused a connection to the agent socket from uid 65534"),
        "{log}"
    );
}

#[test]
fn the_agent_outlives_a_server_restart() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = start_server(sdir.path(), 0);
    let port = server.port();
    paired(&mut server, cdir.path());
    let mut agent = AgentProcess::start(cdir.path());
    agent.connected();
    server.stop();
    agent.wait(|v| v["event"] == "link" && v["state"] != "connected");
    let _server = start_server(sdir.path(), port);
    agent.connected();
    let out = client(cdir.path()).args(["send", "ping"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pong\n");
    agent.stop();
}

/// Whether `program` runs here; the reason when it does not.
fn available(program: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("{program} --version failed: {}", text(&o.stderr))),
        Err(e) => Err(format!("{program} is not installed ({e})")),
    }
}

#[test]
fn the_python_and_node_examples_run_a_task_and_hear_a_notice() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = start_server(sdir.path(), 0);
    paired(&mut server, cdir.path());
    let mut agent = AgentProcess::start(cdir.path());
    agent.connected();
    for (interpreter, script) in [("python3", "agent-client.py"), ("node", "agent-client.mjs")] {
        if let Err(why) = available(interpreter) {
            eprintln!("SKIPPED {script}: {why}");
            continue;
        }
        let mut child = Command::new(interpreter)
            .arg(examples.join(script))
            .arg("--state-dir")
            .arg(cdir.path())
            .args(["--listen", "5", "echo", "from", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The task's answer first, then a notice pushed while the program listens.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert_eq!(first, format!("from {script}\n"));
        // The operator's notice, through the server's control socket as its tools send it.
        let mut control =
            std::os::unix::net::UnixStream::connect(sdir.path().join("control.sock")).unwrap();
        control
            .write_all(b"{\"cmd\":\"notify\",\"text\":\"hello from the desk\"}\n")
            .unwrap();
        let mut reply = String::new();
        BufReader::new(control).read_line(&mut reply).unwrap();
        assert!(reply.contains("\"recipients\":1"), "{reply}");
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("notice: hello from the desk"),
            "{script}: {}",
            text(&out.stderr)
        );
    }
    agent.stop();
}
