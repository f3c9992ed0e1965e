//! The client's side of streaming runs against a scripted server on loopback (real TLS): the
//! events come in order, output credit goes back only as the caller reads, stdin waits for
//! the credit the server grants, a server that sends past its credit ends the session, and a
//! run whose session ends is reported lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use csc_shared::client::{Client, ClientError, ClientOptions, RunEvent};
use csc_shared::connection::Connection;
use csc_shared::identity::Identity;
use csc_shared::message::{Message, OutputStream, Payload, RunStatus};
use csc_shared::state::PairedServer;
use csc_shared::tls;
use tokio::net::TcpListener;

/// What the scripted server has sent, for the tests to check.
#[derive(Default)]
struct Sent {
    output: AtomicU64,
    acked: AtomicU64,
}

/// A server that authenticates anyone and answers runs:
/// - `flood`: output in 1 KiB chunks, as fast as the credit allows, 1 MiB in all;
/// - `echo`: stdin back as stdout, with a stdin window of 8 bytes;
/// - `overflow`: `window + 1` bytes at once, past its credit;
/// - `hang`: starts, then never ends.
async fn scripted(identity: Arc<Identity>, sent: Arc<Sent>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&identity).unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, sent) = (acceptor.clone(), sent.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut conn = Connection::new(tls, 1 << 20);
                if !matches!(conn.read::<Message>().await, Ok(Some(Message::Auth { .. }))) {
                    return;
                }
                let ok = Message::AuthOk {
                    server_name: "scripted".into(),
                    token: None,
                    token_expires_at: 0,
                };
                if conn.send(&ok).await.is_err() {
                    return;
                }
                serve(conn, &sent).await;
            });
        }
    });
    addr
}

async fn serve(
    mut conn: Connection<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    sent: &Sent,
) {
    // One run at a time is enough for these tests.
    let mut run: Option<(u64, String, u64)> = None; // id, task, credit left
    let mut flooded: u64 = 0;
    loop {
        // A flood sends while it has credit, reading only when it has none.
        if let Some((id, task, credit)) = run.as_mut()
            && task == "flood"
            && *credit >= 1024
            && flooded < 1 << 20
        {
            let m = Message::RunOutput {
                id: *id,
                stream: OutputStream::Stdout,
                data: Payload(vec![b'x'; 1024].into()),
            };
            if conn.send(&m).await.is_err() {
                return;
            }
            *credit -= 1024;
            flooded += 1024;
            sent.output.fetch_add(1024, Ordering::SeqCst);
            if flooded == 1 << 20 {
                let exit = Message::RunExit {
                    id: *id,
                    status: RunStatus::Exited { code: 0 },
                    duration_ms: 5,
                    result: serde_json::Value::Null,
                };
                let _ = conn.send(&exit).await;
                run = None;
            }
            continue;
        }
        let msg = match conn.read::<Message>().await {
            Ok(Some(m)) => m,
            _ => return,
        };
        match msg {
            Message::Run {
                id, task, window, ..
            } => {
                let stdin = task == "echo";
                let started = Message::RunStarted {
                    id,
                    stdin,
                    stdin_window: if stdin { 8 } else { 0 },
                };
                if conn.send(&started).await.is_err() {
                    return;
                }
                if task == "overflow" {
                    let m = Message::RunOutput {
                        id,
                        stream: OutputStream::Stderr,
                        data: Payload(vec![0; window as usize + 1].into()),
                    };
                    let _ = conn.send(&m).await;
                }
                run = Some((id, task, window));
            }
            Message::RunAck { bytes, .. } => {
                sent.acked.fetch_add(bytes, Ordering::SeqCst);
                if let Some((_, _, credit)) = run.as_mut() {
                    *credit += bytes;
                }
            }
            Message::RunInput { id, data } => {
                let n = data.0.len() as u64;
                let out = Message::RunOutput {
                    id,
                    stream: OutputStream::Stdout,
                    data,
                };
                if conn.send(&out).await.is_err()
                    || conn
                        .send(&Message::RunInputAck { id, bytes: n })
                        .await
                        .is_err()
                {
                    return;
                }
            }
            Message::RunInputEnd { id } => {
                let exit = Message::RunExit {
                    id,
                    status: RunStatus::Exited { code: 3 },
                    duration_ms: 7,
                    result: serde_json::Value::Null,
                };
                let _ = conn.send(&exit).await;
                run = None;
            }
            Message::RunCancel { id } => {
                let exit = Message::RunExit {
                    id,
                    status: RunStatus::Stopped {
                        reason: csc_shared::message::StopReason::Cancelled,
                    },
                    duration_ms: 1,
                    result: serde_json::Value::Null,
                };
                let _ = conn.send(&exit).await;
                run = None;
            }
            Message::Ping {} => {
                let _ = conn.send(&Message::Pong {}).await;
            }
            _ => {}
        }
    }
}

struct World {
    client: Client,
    server: PairedServer,
    sent: Arc<Sent>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let identity = Arc::new(Identity::generate("scripted").unwrap());
    let sent = Arc::new(Sent::default());
    let addr = scripted(identity.clone(), sent.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path(), "runner", ClientOptions::default()).unwrap();
    let server = PairedServer {
        server_id: identity.id(),
        name: "scripted".into(),
        addrs: vec![addr],
        token: "t".into(),
        token_expires_at: 0,
        paired_at: 0,
        refused: None,
    };
    World {
        client,
        server,
        sent,
        _dir: dir,
    }
}

#[tokio::test]
async fn output_credit_goes_back_only_as_the_caller_reads() {
    let w = world().await;
    let session = w.client.connect(&w.server).await.unwrap();
    let window = 64 * 1024;
    let mut run = session.handle().run("flood", vec![], window).await.unwrap();
    assert_eq!(run.next().await, Some(RunEvent::Started { stdin: false }));
    // The caller does not read: the server can send the window, and no more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.sent.output.load(Ordering::SeqCst), window);
    assert_eq!(w.sent.acked.load(Ordering::SeqCst), 0);
    // Reading lets it go on, a quarter window at a time; all of it arrives, in order.
    let mut got = 0u64;
    loop {
        match run.next().await {
            Some(RunEvent::Output { data, .. }) => {
                got += data.len() as u64;
                let sent = w.sent.output.load(Ordering::SeqCst);
                assert!(
                    sent <= got + window,
                    "the server sent {sent} with {got} read and a window of {window}"
                );
            }
            Some(RunEvent::Exit { status, .. }) => {
                assert!(status.success());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, 1 << 20);
    assert_eq!(run.next().await, None, "nothing after the exit");
    session.close().await;
}

#[tokio::test]
async fn stdin_waits_for_the_credit_the_server_grants() {
    let w = world().await;
    let session = w.client.connect(&w.server).await.unwrap();
    let mut run = session.handle().run("echo", vec![], 1 << 16).await.unwrap();
    assert_eq!(run.next().await, Some(RunEvent::Started { stdin: true }));
    // 100 bytes through a stdin window of 8: sent as the server acknowledges.
    let data: Vec<u8> = (0..100u8).collect();
    let writer = {
        let data = data.clone();
        async move {
            run.write_stdin(&data).await.unwrap();
            run.close_stdin();
            run
        }
    };
    let mut run = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("stdin went through");
    let mut echoed = Vec::new();
    loop {
        match run.next().await {
            Some(RunEvent::Output { data, .. }) => {
                assert!(data.len() <= 8, "a chunk larger than the stdin credit");
                echoed.extend(data);
            }
            Some(RunEvent::Exit {
                status, duration, ..
            }) => {
                assert_eq!(status, RunStatus::Exited { code: 3 });
                assert_eq!(duration, Duration::from_millis(7));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, data);
    session.close().await;
}

#[tokio::test]
async fn a_server_that_sends_past_its_credit_ends_the_session() {
    let w = world().await;
    let mut session = w.client.connect(&w.server).await.unwrap();
    let mut run = session
        .handle()
        .run("overflow", vec![], 1024)
        .await
        .unwrap();
    assert_eq!(run.next().await, Some(RunEvent::Started { stdin: false }));
    match run.next().await {
        Some(RunEvent::Lost { reason }) => assert!(reason.contains("credit"), "{reason}"),
        other => panic!("expected the run to be lost, got {other:?}"),
    }
    match session.next_event().await {
        Some(csc_shared::client::SessionEvent::Closed { reason, .. }) => {
            assert!(reason.contains("protocol error"), "{reason}")
        }
        other => panic!("expected the session to end, got {other:?}"),
    }
    assert!(matches!(
        session.request("ping", vec![]).await,
        Err(ClientError::Closed(_))
    ));
}

#[tokio::test]
async fn cancelling_and_dropping_a_run_stop_it() {
    let w = world().await;
    let session = w.client.connect(&w.server).await.unwrap();
    let mut run = session.handle().run("hang", vec![], 1024).await.unwrap();
    assert_eq!(run.next().await, Some(RunEvent::Started { stdin: false }));
    run.cancel();
    match run.next().await {
        Some(RunEvent::Exit { status, .. }) => assert_eq!(
            status,
            RunStatus::Stopped {
                reason: csc_shared::message::StopReason::Cancelled
            }
        ),
        other => panic!("{other:?}"),
    }
    // Dropped without reading: cancelled all the same, and the session can close (it waits
    // for runs in flight, so it would hang if the run were left running).
    let run = session.handle().run("hang", vec![], 1024).await.unwrap();
    drop(run);
    tokio::time::timeout(Duration::from_secs(10), session.close())
        .await
        .expect("the dropped run was cancelled");
}
