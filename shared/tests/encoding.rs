//! The two encodings on real TLS: a client that knows only `csc/1` (JSON) still works with
//! this server, and this client still works with a server that knows only `csc/1`; a `csc/2`
//! session carries its hot messages compact, in both directions.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use common::*;
use csc_shared::client::{ClientOptions, RunEvent};
use csc_shared::compact;
use csc_shared::connection::{Encoding, Wire};
use csc_shared::frame::FramedStream;
use csc_shared::identity::Identity;
use csc_shared::message::{Message, OutputStream};
use csc_shared::server::ServerEvent;
use csc_shared::server::tasks::{TaskAbout, Tasks};
use csc_shared::state::PairedServer;
use csc_shared::tls::{self, ServerTrust};
use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// 3,000 bytes of every value, the output of the `blob` task.
fn blob() -> Vec<u8> {
    (0..3000u32).map(|i| (i % 256) as u8).collect()
}

fn tasks() -> Tasks {
    let mut t = Tasks::with_builtins();
    t.register_streaming(
        "blob",
        TaskAbout::new("writes 3000 bytes"),
        |_ctx, _args, mut io: csc_shared::server::runs::RunIo| async move {
            io.stdout(blob())
                .await
                .map_err(|_| csc_shared::server::tasks::TaskError::new("stopped", "stopped"))?;
            Ok(0)
        },
    );
    t
}

/// A raw TLS connection with a paired client's key, offering `csc/2` or only `csc/1`.
async fn raw(cdir: &std::path::Path, server: &TestServer, compact: bool) -> Tls {
    let client = client(cdir, "c");
    let identity = client.store().identity(client.name()).unwrap();
    let config =
        tls::client_config_offering(&identity, ServerTrust::Pinned(server.server.id()), compact)
            .unwrap();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(tls::server_name(), tcp)
        .await
        .unwrap()
}

/// The next frame, raw.
async fn frame(f: &mut FramedStream<Tls>) -> BytesMut {
    tokio::time::timeout(Duration::from_secs(10), f.read())
        .await
        .expect("a frame in time")
        .unwrap()
        .expect("not closed")
}

async fn send(f: &mut FramedStream<Tls>, msg: &Message, encoding: Encoding) {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, encoding).unwrap();
    f.write(buf.freeze()).await.unwrap();
}

#[tokio::test]
async fn a_client_that_knows_only_csc1_gets_json_for_everything() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_tasks(sdir.path(), test_config(), tasks()).await;
    let paired = pair(&client(cdir.path(), "c"), &server).await;

    let tls = raw(cdir.path(), &server, false).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(tls::ALPN));
    let mut f = FramedStream::new(tls, 1 << 20);
    // Exactly what a csc/1 client writes: JSON text.
    let auth = json!({"type": "auth", "token": paired.token}).to_string();
    f.write(Bytes::from(auth)).await.unwrap();
    assert!(matches!(
        Message::decode(frame(&mut f).await).unwrap(),
        Message::AuthOk { .. }
    ));
    f.write(Bytes::from_static(
        br#"{"type":"request","id":1,"task":"echo","args":["hi there"]}"#,
    ))
    .await
    .unwrap();
    let reply = frame(&mut f).await;
    let v: Value = serde_json::from_slice(&reply).expect("the response is JSON");
    assert_eq!(
        v,
        json!({"type": "response", "id": 1, "ok": true, "result": "hi there"})
    );

    // A streaming run: output as base64 text in JSON.
    f.write(Bytes::from_static(
        br#"{"type":"run","id":2,"task":"blob","args":[],"window":262144}"#,
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    loop {
        let raw = frame(&mut f).await;
        assert_eq!(raw[0], b'{', "every frame to a csc/1 client is JSON");
        let v: Value = serde_json::from_slice(&raw).unwrap();
        match v["type"].as_str().unwrap() {
            "run_started" => {}
            "run_output" => got.extend(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v["data"].as_str().unwrap())
                    .unwrap(),
            ),
            "run_exit" => {
                assert_eq!(v["status"], json!({"kind": "exited", "code": 0}));
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(got, blob());

    // A notice, JSON too.
    assert_eq!(server.server.notify_all("hello old friend"), 1);
    let v: Value = serde_json::from_slice(&frame(&mut f).await).unwrap();
    assert_eq!(v["type"], "notice");
    assert_eq!(v["text"], "hello old friend");
    server.stop().await;
}

#[tokio::test]
async fn a_csc2_session_carries_the_hot_messages_compact_both_ways() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_tasks(sdir.path(), test_config(), tasks()).await;
    let paired = pair(&client(cdir.path(), "c"), &server).await;

    let tls = raw(cdir.path(), &server, true).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(tls::ALPN_COMPACT));
    let mut f = FramedStream::new(tls, 1 << 20);
    let auth = Message::Auth {
        token: paired.token.clone(),
    };
    send(&mut f, &auth, Encoding::Compact).await;
    assert!(matches!(
        Message::decode(frame(&mut f).await).unwrap(),
        Message::AuthOk { .. }
    ));
    // A compact request, and a JSON one on the same session: both are answered compact.
    let request = |id: u64| Message::Request {
        id,
        task: "echo".into(),
        args: vec![format!("number {id}")],
    };
    send(&mut f, &request(1), Encoding::Compact).await;
    send(&mut f, &request(2), Encoding::Json).await;
    for id in [1, 2] {
        let raw = frame(&mut f).await;
        assert_eq!(raw[0], compact::TAG_RESPONSE, "a compact response");
        assert_eq!(
            Message::decode(raw).unwrap(),
            Message::Response {
                id,
                ok: true,
                result: json!(format!("number {id}")),
                error: None,
            }
        );
    }
    // An unknown task's error is compact too.
    send(
        &mut f,
        &Message::Request {
            id: 3,
            task: "nope".into(),
            args: vec![],
        },
        Encoding::Compact,
    )
    .await;
    let raw = frame(&mut f).await;
    assert_eq!(raw[0], compact::TAG_RESPONSE);
    assert!(matches!(
        Message::decode(raw).unwrap(),
        Message::Response { id: 3, ok: false, error: Some(e), .. } if e.code == "unknown_task"
    ));

    send(
        &mut f,
        &Message::Run {
            id: 4,
            task: "blob".into(),
            args: vec![],
            window: 1 << 20,
        },
        Encoding::Compact,
    )
    .await;
    let mut got = Vec::new();
    loop {
        let raw = frame(&mut f).await;
        match Message::decode(raw.clone()).unwrap() {
            Message::RunStarted { .. } => assert_eq!(raw[0], b'{', "run_started stays JSON"),
            Message::RunOutput { stream, data, .. } => {
                assert_eq!(raw[0], compact::TAG_RUN_OUTPUT);
                assert_eq!(stream, OutputStream::Stdout);
                got.extend_from_slice(&data.0);
            }
            Message::RunExit { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, blob());
    assert_eq!(server.server.notify_all("compact notice"), 1);
    let raw = frame(&mut f).await;
    assert_eq!(raw[0], compact::TAG_NOTICE);
    assert!(matches!(
        Message::decode(raw).unwrap(),
        Message::Notice { text, .. } if text == "compact notice"
    ));
    server.stop().await;
}

#[tokio::test]
async fn the_engine_without_the_compact_offer_is_a_csc1_client() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_tasks(sdir.path(), test_config(), tasks()).await;
    let options = ClientOptions {
        compact: false,
        ..ClientOptions::default()
    };
    let client = csc_shared::client::Client::open(cdir.path(), "old", options).unwrap();
    let paired = pair(&client, &server).await;
    let session = client.connect(&paired).await.unwrap();
    assert_eq!(session.handle().encoding(), Encoding::Json);
    assert_eq!(
        session.request("echo", vec!["a".into()]).await.unwrap(),
        "a"
    );
    let mut run = session.handle().run("blob", vec![], 1 << 20).await.unwrap();
    let mut got = Vec::new();
    while let Some(ev) = run.next().await {
        if let RunEvent::Output { data, .. } = ev {
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(got, blob());
    session.close().await;

    // The default client negotiates the compact encoding with the same server.
    let client =
        csc_shared::client::Client::open(cdir.path(), "old", ClientOptions::default()).unwrap();
    let session = client.connect(&paired).await.unwrap();
    assert_eq!(session.handle().encoding(), Encoding::Compact);
    assert_eq!(
        session.request("echo", vec!["b".into()]).await.unwrap(),
        "b"
    );
    session.close().await;
    server.stop().await;
}

/// A server of the previous version: it offers only `csc/1`, reads every frame as JSON (a
/// compact frame would be a malformed message to it) and answers `echo`.
struct OldServer {
    addr: std::net::SocketAddr,
    id: csc_shared::identity::PeerId,
    frames: Arc<AtomicUsize>,
    compact_frames: Arc<AtomicUsize>,
}

impl OldServer {
    async fn start() -> Self {
        let identity = Identity::generate("old-server").unwrap();
        let mut config = (*tls::server_config(&identity).unwrap()).clone();
        config.alpn_protocols = vec![tls::ALPN.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frames = Arc::new(AtomicUsize::new(0));
        let compact_frames = Arc::new(AtomicUsize::new(0));
        let (seen, compact_seen) = (frames.clone(), compact_frames.clone());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            let mut f = FramedStream::new(tls, 1 << 20);
            while let Ok(Some(raw)) = f.read().await {
                seen.fetch_add(1, Ordering::SeqCst);
                if raw.first() != Some(&b'{') {
                    compact_seen.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let v: Value = serde_json::from_slice(&raw).unwrap();
                let reply = match v["type"].as_str() {
                    Some("auth") => {
                        json!({"type": "auth_ok", "server_name": "old", "token_expires_at": 4_000_000_000u64})
                    }
                    Some("request") => json!({
                        "type": "response",
                        "id": v["id"],
                        "ok": true,
                        "result": v["args"][0],
                    }),
                    Some("ping") => json!({"type": "pong"}),
                    _ => continue,
                };
                if f.write(Bytes::from(reply.to_string())).await.is_err() {
                    return;
                }
            }
        });
        Self {
            addr,
            id: identity.id(),
            frames,
            compact_frames,
        }
    }
}

#[tokio::test]
async fn the_engine_writes_json_to_a_server_that_knows_only_csc1() {
    let cdir = tempfile::tempdir().unwrap();
    let old = OldServer::start().await;
    let client = client(cdir.path(), "new");
    let paired = PairedServer {
        server_id: old.id,
        name: "old".into(),
        addrs: vec![old.addr],
        token: "a token the old server takes".into(),
        token_expires_at: 4_000_000_000,
        paired_at: 0,
        refused: None,
    };
    let session = client.connect_addr(&paired, old.addr).await.unwrap();
    assert_eq!(session.handle().encoding(), Encoding::Json);
    // Pipelined, so the writer batches frames: each must still be a JSON frame of its own.
    let handle = session.handle();
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let handle = handle.clone();
        async move { handle.request("echo", vec![format!("n{i}")]).await }
    }))
    .await;
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.unwrap(), json!(format!("n{i}")));
    }
    assert_eq!(old.compact_frames.load(Ordering::SeqCst), 0);
    assert!(old.frames.load(Ordering::SeqCst) >= 21);
    drop(handle);
    session.close().await;
}

/// Requests the server has reported answering, one by one or counted.
fn answered(server: &TestServer) -> u64 {
    server
        .events
        .all()
        .iter()
        .map(|e| match e {
            ServerEvent::Request { .. } => 1,
            ServerEvent::Requests { count, .. } => *count,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn a_request_whose_caller_gives_up_mid_write_is_still_written_whole() {
    // Callers write their own frames. One whose future is dropped at any point after it
    // queued its frame must neither cut the frame nor leave it unwritten: nothing else is
    // sent after it here, so only the driver taking over can get it to the server.
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    // No keep-alive ping within the test: a ping would write out a stranded frame too, and
    // hide a missing take-over.
    let options = ClientOptions {
        keepalive: Duration::from_secs(60),
        dead_after: Duration::from_secs(120),
        ..ClientOptions::default()
    };
    let client = csc_shared::client::Client::open(cdir.path(), "c", options).unwrap();
    let session = client.connect(&pair(&client, &server).await).await.unwrap();
    let handle = session.handle();
    let big = "x".repeat(500_000);
    for round in 0..8u64 {
        // Dropped after 1 to 4 polls: in its yield, in its write, or after it.
        let mut fut = Box::pin(handle.request("echo", vec![big.clone()]));
        for _ in 0..=(round % 4) {
            if fut.as_mut().now_or_never().is_some() {
                break;
            }
        }
        drop(fut);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while answered(&server) < round + 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "request {round} never reached the server whole"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "round {round} reached the server at {:?}",
            std::time::Instant::now()
        );
    }
    // The session still answers, with whole frames.
    assert_eq!(
        handle.request("echo", vec!["after".into()]).await.unwrap(),
        "after"
    );
    drop(handle);
    session.close().await;
    server.stop().await;
}
