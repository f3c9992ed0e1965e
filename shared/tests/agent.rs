//! The agent against real servers over real TLS, and real local programs over its real Unix
//! socket: pipelined requests, streamed output and stdin, cancel, notices, garbage and huge
//! lines, programs that leave mid-request, revocation of one server among two, one agent per
//! state folder, and a socket left by a killed agent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use csc_shared::agent::{self, Agent};
use csc_shared::client::{Client, ClientOptions, LinkOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

const LONG: Duration = Duration::from_secs(20);

/// A local program: lines out, lines in.
struct Program {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
}

impl Program {
    async fn connect(dir: &std::path::Path) -> Self {
        let s = UnixStream::connect(agent::socket_path(dir)).await.unwrap();
        let (r, w) = s.into_split();
        Self {
            lines: BufReader::new(r).lines(),
            write: w,
        }
    }

    async fn send(&mut self, v: &Value) {
        self.raw(&format!("{v}\n")).await;
    }

    async fn raw(&mut self, text: &str) {
        self.write.write_all(text.as_bytes()).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(LONG, self.lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the agent keeps the connection");
        serde_json::from_str(&line).unwrap()
    }

    /// Lines until the last one of request `id`.
    async fn until_done(&mut self, id: u64) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let v = self.next().await;
            let done = v["id"] == id && v.get("ok").is_some();
            got.push(v);
            if done {
                return got;
            }
        }
    }
}

struct World {
    server: TestServer,
    /// The agent and its socket, also held by the task that serves.
    agent: Option<(Arc<Agent>, Arc<agent::Bound>)>,
    cdir: tempfile::TempDir,
    _sdir: tempfile::TempDir,
}

fn saved_only() -> LinkOptions {
    LinkOptions {
        discovery: None,
        backoff_first: Duration::from_millis(50),
        ..LinkOptions::default()
    }
}

impl World {
    async fn start() -> Self {
        let sdir = tempfile::tempdir().unwrap();
        let cdir = tempfile::tempdir().unwrap();
        let server = TestServer::start(sdir.path(), test_config()).await;
        let c = client(cdir.path(), "kiosk");
        pair(&c, &server).await;
        let mut w = Self {
            server,
            agent: None,
            cdir,
            _sdir: sdir,
        };
        w.run_agent().await;
        w
    }

    async fn run_agent(&mut self) {
        let c =
            Arc::new(Client::open(self.cdir.path(), "kiosk", ClientOptions::default()).unwrap());
        let servers = c.servers().unwrap();
        let agent = Agent::start(c, servers, saved_only());
        let bound = agent::bind(self.cdir.path()).await.unwrap();
        let a = Arc::new(agent);
        let b = Arc::new(bound);
        let (a2, b2) = (a.clone(), b.clone());
        tokio::spawn(async move {
            a2.serve(&b2, std::future::pending::<()>()).await.unwrap();
        });
        self.agent = Some((a, b));
    }

    async fn program(&self) -> Program {
        Program::connect(self.cdir.path()).await
    }
}

#[tokio::test]
async fn two_hundred_pipelined_requests_are_all_answered() {
    let w = World::start().await;
    let mut p = w.program().await;
    for i in 0..200u64 {
        p.send(&json!({"id": i, "task": "echo", "args": [format!("n{i}")]}))
            .await;
    }
    let mut answered = std::collections::HashMap::new();
    while answered.len() < 200 {
        let v = p.next().await;
        if v.get("ok").is_some() {
            let id = v["id"].as_u64().unwrap();
            assert_eq!(v["ok"], true, "{v}");
            assert_eq!(v["result"], format!("n{id}"), "{v}");
            assert!(answered.insert(id, ()).is_none(), "answered twice: {v}");
        } else {
            assert_eq!(v["event"], "started", "{v}");
        }
    }
    w.server.stop().await;
}

#[tokio::test]
async fn lists_notices_and_bad_lines() {
    let w = World::start().await;
    let mut p = w.program().await;
    p.send(&json!({"subscribe": ["notice"]})).await;
    assert_eq!(p.next().await, json!({"subscribed": ["notice"]}));
    p.send(&json!({"id": 1, "list": "servers"})).await;
    let v = p.next().await;
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"][0]["name"], "test-server");
    assert_eq!(v["result"][0]["server_id"], w.server.server.id().to_hex());
    // Wait for the link, then the notice arrives.
    p.send(&json!({"id": 2, "task": "ping"})).await;
    assert_eq!(p.until_done(2).await.last().unwrap()["result"], "pong");
    assert_eq!(w.server.server.notify_all("closing at six"), 1);
    let v = p.next().await;
    assert_eq!(v["event"], "notice");
    assert_eq!(v["text"], "closing at six");

    // Garbage, a huge line, an unknown field: an error each, and the connection goes on.
    p.raw("not json\n").await;
    let v = p.next().await;
    assert_eq!(v["error"]["code"], "bad_request");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line"),
        "{v}"
    );
    p.raw(&format!("{}\n", "x".repeat(2 << 20))).await;
    let v = p.next().await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{v}"
    );
    p.send(&json!({"id": 3, "tsak": "ping"})).await;
    let v = p.next().await;
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(3), json!("bad_request"))
    );
    p.send(&json!({"id": 4, "task": "ping", "server": "nobody"}))
        .await;
    assert_eq!(p.next().await["error"]["code"], "unknown_server");
    p.send(&json!({"id": 5, "task": "ping"})).await;
    assert_eq!(p.until_done(5).await.last().unwrap()["result"], "pong");

    // A program that leaves mid-request does not disturb the next one.
    let mut q = w.program().await;
    q.raw("{\"id\": 1, \"task\": \"pi").await;
    drop(q);
    let mut r = w.program().await;
    r.send(&json!({"id": 1, "task": "ping"})).await;
    assert_eq!(r.until_done(1).await.last().unwrap()["result"], "pong");
    w.server.stop().await;
}

#[tokio::test]
async fn one_agent_per_state_folder_and_a_stale_socket_is_replaced() {
    let w = World::start().await;
    match agent::bind(w.cdir.path()).await {
        Err(agent::BindError::Running { pid, .. }) => {
            assert_eq!(pid, Some(std::process::id() as i32));
        }
        other => panic!("a second agent must be refused, got {other:?}"),
    }
    w.server.stop().await;

    // A socket left behind (no agent holds the lock) is replaced.
    let dir = tempfile::tempdir().unwrap();
    let stale = std::os::unix::net::UnixListener::bind(agent::socket_path(dir.path())).unwrap();
    drop(stale);
    assert!(agent::socket_path(dir.path()).exists());
    let bound = agent::bind(dir.path()).await.unwrap();
    let mode = std::fs::metadata(bound.path()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    drop(bound);
    assert!(
        !agent::socket_path(dir.path()).exists(),
        "removed when dropped"
    );
    // Something else under the socket's name is not removed.
    std::fs::write(agent::socket_path(dir.path()), "mine").unwrap();
    assert!(matches!(
        agent::bind(dir.path()).await,
        Err(agent::BindError::NotASocket(_))
    ));
}

#[tokio::test]
async fn streamed_output_stdin_and_cancel_through_the_agent() {
    let mut tasks = csc_shared::server::Tasks::with_builtins();
    tasks.register_streaming(
        "upper",
        csc_shared::server::TaskAbout {
            stdin: true,
            ..Default::default()
        },
        |_ctx, _args, mut io: csc_shared::server::RunIo| async move {
            while let Some(c) = io.read_stdin().await {
                io.stdout(c.to_ascii_uppercase()).await?;
            }
            Ok(0)
        },
    );
    tasks.register_streaming(
        "forever",
        csc_shared::server::TaskAbout::default(),
        |_ctx, _args, mut io: csc_shared::server::RunIo| async move {
            loop {
                io.stdout("tick\n").await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    );
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_tasks(sdir.path(), test_config(), tasks).await;
    pair(&client(cdir.path(), "kiosk"), &server).await;
    let mut w = World {
        server,
        agent: None,
        cdir,
        _sdir: sdir,
    };
    w.run_agent().await;
    let mut p = w.program().await;
    p.send(&json!({"id": 1, "task": "upper", "stdin": "hello"}))
        .await;
    let lines = p.until_done(1).await;
    let out: String = lines
        .iter()
        .filter(|v| v["event"] == "output")
        .map(|v| v["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(out, "HELLO");
    assert_eq!(lines.last().unwrap()["exit_code"], 0);

    p.send(&json!({"id": 2, "task": "upper", "stdin": "stream"}))
        .await;
    assert_eq!(p.next().await["event"], "started");
    p.send(&json!({"input": 2, "data": "YWJj"})).await;
    p.send(&json!({"input": 2, "end": true})).await;
    let lines = p.until_done(2).await;
    assert!(lines.iter().any(|v| v["text"] == "ABC"), "{lines:?}");

    p.send(&json!({"id": 3, "task": "forever"})).await;
    loop {
        if p.next().await["event"] == "output" {
            break;
        }
    }
    p.send(&json!({"cancel": 3})).await;
    let last = p.until_done(3).await.pop().unwrap();
    assert_eq!(last["ok"], false);
    assert_eq!(last["error"]["code"], "cancelled", "{last}");
    assert_eq!(last["exit_code"], 12);

    p.send(&json!({"id": 4, "task": "forever", "deadline_ms": 300}))
        .await;
    let last = p.until_done(4).await.pop().unwrap();
    assert_eq!(last["error"]["code"], "timeout", "{last}");
    w.server.stop().await;
}

#[tokio::test]
async fn a_revoked_pairing_fails_its_requests_and_the_other_server_goes_on() {
    let s1 = tempfile::tempdir().unwrap();
    let s2 = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut c1 = test_config();
    c1.name = "one".into();
    let mut c2 = test_config();
    c2.name = "two".into();
    let one = TestServer::start(s1.path(), c1).await;
    let two = TestServer::start(s2.path(), c2).await;
    let c = client(cdir.path(), "kiosk");
    pair(&c, &one).await;
    pair(&c, &two).await;
    let c = Arc::new(c);
    let agent = Arc::new(Agent::start(c.clone(), c.servers().unwrap(), saved_only()));
    let bound = Arc::new(agent::bind(cdir.path()).await.unwrap());
    let (a, b) = (agent.clone(), bound.clone());
    tokio::spawn(async move { a.serve(&b, std::future::pending::<()>()).await });
    let mut p = Program::connect(cdir.path()).await;
    // Two servers: a request must name one.
    p.send(&json!({"id": 1, "task": "ping"})).await;
    assert_eq!(p.next().await["error"]["code"], "unknown_server");
    p.send(&json!({"id": 2, "task": "ping", "server": "one"}))
        .await;
    assert_eq!(p.until_done(2).await.last().unwrap()["result"], "pong");
    one.server.revoke("kiosk").await.unwrap();
    let mut code = Value::Null;
    for i in 3..50u64 {
        p.send(&json!({"id": i, "task": "ping", "server": "one", "deadline_ms": 2000}))
            .await;
        let last = p.until_done(i).await.pop().unwrap();
        if last["error"]["code"] == "repair_required" {
            code = last["error"]["code"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, "repair_required");
    p.send(&json!({"id": 100, "task": "ping", "server": "two"}))
        .await;
    assert_eq!(p.until_done(100).await.last().unwrap()["result"], "pong");
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn a_program_that_stops_reading_is_dropped_and_its_run_stopped() {
    let mut tasks = csc_shared::server::Tasks::with_builtins();
    tasks.register_streaming(
        "flood",
        csc_shared::server::TaskAbout::default(),
        |_ctx, _args, mut io: csc_shared::server::RunIo| async move {
            let chunk = vec![b'z'; 16 * 1024];
            loop {
                io.stdout(&chunk).await?;
            }
        },
    );
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_tasks(sdir.path(), test_config(), tasks).await;
    pair(&client(cdir.path(), "kiosk"), &server).await;
    let mut w = World {
        server,
        agent: None,
        cdir,
        _sdir: sdir,
    };
    w.run_agent().await;
    let mut p = w.program().await;
    p.send(&json!({"id": 1, "task": "flood"})).await;
    assert_eq!(p.next().await["event"], "started");
    // The program reads nothing more. The run is held back meanwhile (its output waits in
    // bounded queues), and after the write timeout the agent lets the program go.
    let runs = || w.server.server.runs();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out1 = runs()[0].bytes_out;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runs()[0].bytes_out, out1, "the run is held back");
    let deadline = tokio::time::Instant::now() + agent::WRITE_TIMEOUT + Duration::from_secs(10);
    while !runs().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run goes on for a program that left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its connection is closed: what is left to read ends.
    let mut n = 0;
    while let Ok(Ok(Some(_))) = tokio::time::timeout(LONG, p.lines.next_line()).await {
        n += 1;
    }
    assert!(
        n <= agent::OUT_QUEUE + 4,
        "{n} lines were queued for a program that read none"
    );
    // Another program is served as before.
    let mut q = w.program().await;
    q.send(&json!({"id": 1, "task": "ping"})).await;
    assert_eq!(q.until_done(1).await.last().unwrap()["result"], "pong");
    w.server.stop().await;
}
