//! The real `server-tui` process on 127.0.0.1 with an ephemeral port, driven by the client
//! engine in-process: JSON events, subcommands against a running and a stopped server, exit
//! codes, and clear errors for bad state.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use csc_shared::client::{Client, ClientError, ClientOptions, SessionEvent};
use csc_shared::message::RepairReason;
use csc_shared::pairing::Code;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_server-tui");

struct Proc {
    child: Child,
    lines: mpsc::Receiver<Value>,
    port: u16,
}

impl Proc {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--json",
                "--name",
                "cli-test",
            ])
            .args(extra)
            .arg("--state-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut p = Proc {
            child,
            lines,
            port: 0,
        };
        let listening = p.wait_event("listening");
        assert_eq!(listening["name"], "cli-test");
        assert_eq!(listening["server_id"].as_str().unwrap().len(), 64);
        p.port = listening["port"].as_u64().unwrap() as u16;
        p
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn wait_event(&mut self, kind: &str) -> Value {
        loop {
            let v = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no {kind} event"));
            assert!(v["ts_ms"].as_u64().is_some(), "every event has ts_ms: {v}");
            if v["event"] == kind {
                return v;
            }
        }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id());
        self.child.wait().unwrap()
    }
}

fn unsafe_kill(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

fn sub(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn json_events_clients_and_forget_on_a_running_server() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Proc::start(sdir.path(), &[]);
    let client = Client::open(cdir.path(), "kiosk", ClientOptions::default()).unwrap();

    let mut pairing = client.start_pairing(server.addr()).await.unwrap();
    let req = tokio::task::block_in_place(|| server.wait_event("pair_request"));
    assert_eq!(req["client_name"], "kiosk");
    assert_eq!(req["client_id"], client.id().to_hex());
    assert_eq!(req["expires_in_s"], 120);
    assert!(
        req["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let code = req["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 6);
    let paired = pairing.submit(&Code::parse(&code).unwrap()).await.unwrap();
    let ev = tokio::task::block_in_place(|| server.wait_event("paired"));
    assert_eq!(ev["client_id"], client.id().to_hex());
    drop(pairing);

    let mut session = client.connect(&paired).await.unwrap();
    assert_eq!(
        session.request("echo", vec!["x".into()]).await.unwrap(),
        "x"
    );
    tokio::task::block_in_place(|| server.wait_event("connected"));
    let ev = tokio::task::block_in_place(|| server.wait_event("request"));
    assert_eq!(ev["task"], "echo");
    assert_eq!(ev["ok"], true);

    // `clients` asks the running server, which knows about the open session.
    let out = sub(sdir.path(), &["clients", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "kiosk");
    assert_eq!(rows[0]["sessions"], 1);

    // `forget` goes through the running server: the session is cut at once.
    let out = sub(sdir.path(), &["forget", &client.id().short()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked kiosk"));
    let ev = tokio::time::timeout(Duration::from_secs(5), session.next_event())
        .await
        .unwrap();
    assert!(
        matches!(
            ev,
            Some(SessionEvent::Closed {
                repair: Some(RepairReason::Revoked),
                ..
            })
        ),
        "{ev:?}"
    );
    match client.connect(&paired).await {
        Err(ClientError::RepairRequired {
            reason: RepairReason::Revoked,
        }) => {}
        other => panic!("expected revoked, got {other:?}"),
    }
    let ev = tokio::task::block_in_place(|| server.wait_event("revoked"));
    assert_eq!(ev["by"], "operator");

    // No match is its own exit code.
    let out = sub(sdir.path(), &["forget", "ffff-ffff"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");

    let status = server.stop();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    // Stopped: `clients` reads the file.
    let out = sub(sdir.path(), &["clients"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no paired clients"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_on_a_stopped_server_edits_the_registry() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Proc::start(sdir.path(), &[]);
    let client = Client::open(cdir.path(), "pos-3", ClientOptions::default()).unwrap();
    let mut pairing = client.start_pairing(server.addr()).await.unwrap();
    let code = tokio::task::block_in_place(|| server.wait_event("pair_request"))["code"]
        .as_str()
        .unwrap()
        .to_string();
    let paired = pairing.submit(&Code::parse(&code).unwrap()).await.unwrap();
    drop(pairing);
    assert!(server.stop().success());

    let out = sub(sdir.path(), &["clients"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pos-3") && text.contains(&client.id().short()),
        "{text}"
    );
    let out = sub(sdir.path(), &["forget", "pos-3", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["client_id"], client.id().to_hex());

    // After a restart the client is still revoked.
    let server = Proc::start(sdir.path(), &[]);
    let mut moved = paired.clone();
    moved.remember_addr(server.addr());
    match client.connect(&moved).await {
        Err(ClientError::RepairRequired {
            reason: RepairReason::Revoked,
        }) => {}
        other => panic!("expected revoked after restart, got {other:?}"),
    }
    server.stop();
}

#[test]
fn a_second_server_on_the_same_state_folder_is_refused() {
    let sdir = tempfile::tempdir().unwrap();
    let first = Proc::start(sdir.path(), &[]);
    let out = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--json",
            "--state-dir",
        ])
        .arg(sdir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    first.stop();
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let sdir = tempfile::tempdir().unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1", "--port", &port, "--state-dir"])
        .arg(sdir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}

#[test]
fn corrupt_state_names_the_file_and_keeps_it() {
    let sdir = tempfile::tempdir().unwrap();
    std::fs::write(sdir.path().join("clients.json"), "{ broken").unwrap();
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1", "--port", "0", "--state-dir"])
        .arg(sdir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clients.json") && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(sdir.path().join("clients.json")).unwrap(),
        "{ broken"
    );
}

#[cfg(unix)]
#[test]
fn a_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sdir = tempfile::tempdir().unwrap();
    Proc::start(sdir.path(), &[]).stop();
    let key = sdir.path().join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1", "--port", "0", "--state-dir"])
        .arg(sdir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(BIN)
        .arg("--max-attempts")
        .arg("0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn headless_text_prints_the_code_line() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-tui",
            "--name",
            "plain",
            "--state-dir",
        ])
        .arg(sdir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("listening on 127.0.0.1:"), "{first}");
    let port: u16 = first
        .split_whitespace()
        .nth(2)
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::open(cdir.path(), "till-7", ClientOptions::default()).unwrap();
    let pairing = rt
        .block_on(client.start_pairing(([127, 0, 0, 1], port).into()))
        .unwrap();
    let code_line = lines
        .find(|l| l.as_ref().unwrap().starts_with("pairing code for"))
        .unwrap()
        .unwrap();
    assert!(
        code_line.starts_with("pairing code for till-7 (127.0.0.1:"),
        "{code_line}"
    );
    let code = code_line.rsplit(": ").next().unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    drop(pairing);
    unsafe_kill(child.id());
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn pairing_open_close_and_status_act_on_the_running_server() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    // Nothing runs yet: a clear error, not a hang.
    let out = sub(sdir.path(), &["pairing", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no server is running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut server = Proc::start(sdir.path(), &["--pairing", "window", "--open-for", "2s"]);
    let closed = tokio::task::block_in_place(|| server.wait_event("pairing_closed"));
    assert_eq!(closed["reason"], "not_opened");
    assert_eq!(closed["mode"], "window");
    let out = sub(sdir.path(), &["--json", "pairing", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["open"], false);
    assert_eq!(status["reason"], "not_opened");
    assert_eq!(status["budget"], 20);

    // Refused while closed, with the distinct reason.
    let client = Client::open(cdir.path(), "kiosk", ClientOptions::default()).unwrap();
    match client.start_pairing(server.addr()).await {
        Err(ClientError::PairingRefused { reason, .. }) => {
            assert_eq!(reason, csc_shared::message::PairFailure::PairingClosed)
        }
        other => panic!("expected pairing_closed, got {:?}", other.map(|_| ())),
    }

    // Opened without a length: the server's --open-for (2 s), then it closes by itself.
    let out = sub(sdir.path(), &["pairing", "open"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pairing open for"), "{text}");
    let opened = tokio::task::block_in_place(|| server.wait_event("pairing_opened"));
    assert_eq!(opened["by"], "operator");
    assert!(opened["closes_in_s"].as_u64().unwrap() <= 2);
    let expired = tokio::task::block_in_place(|| server.wait_event("pairing_closed"));
    assert_eq!(expired["reason"], "window_expired");

    // Opened for longer, a client pairs; the window closes behind it.
    let out = sub(sdir.path(), &["pairing", "open", "--for", "1m"]);
    assert!(out.status.success());
    let mut pairing = client.start_pairing(server.addr()).await.unwrap();
    let req = tokio::task::block_in_place(|| server.wait_event("pair_request"));
    let code = req["code"].as_str().unwrap().to_string();
    pairing.submit(&Code::parse(&code).unwrap()).await.unwrap();
    let closed = tokio::task::block_in_place(|| server.wait_event("pairing_closed"));
    assert_eq!(closed["reason"], "paired");

    // Closed by the operator; status says so in words.
    let out = sub(sdir.path(), &["pairing", "open"]);
    assert!(out.status.success());
    let out = sub(sdir.path(), &["pairing", "close"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("closed: the operator closed pairing"),
        "{text}"
    );
    assert!(server.stop().success());
}
