//! Hostile peers and broken files: a relay in the middle, what an eavesdropper sees, malformed
//! and oversize frames, messages out of order, corrupt state. Each case gets an error and the
//! server keeps serving everyone else.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use csc_shared::client::ClientError;
use csc_shared::connection::Connection;
use csc_shared::identity::Identity;
use csc_shared::message::{ErrorCode, Message};
use csc_shared::pairing::Code;
use csc_shared::server::{Server, ServerEvent, Tasks};
use csc_shared::tls::{self, ServerTrust};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Capture = Arc<Mutex<Vec<u8>>>;

/// Copy one direction, recording every byte.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut r: R, mut w: W, capture: Capture) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        capture.lock().unwrap().extend_from_slice(&buf[..n]);
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// A TCP proxy that records the bytes on the wire (an eavesdropper's view).
async fn wire_tap(target: SocketAddr) -> (SocketAddr, Capture) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let capture: Capture = Arc::default();
    let cap = capture.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let outbound = TcpStream::connect(target).await.unwrap();
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            tokio::spawn(pump(ir, ow, cap.clone()));
            tokio::spawn(pump(or, iw, cap.clone()));
        }
    });
    (addr, capture)
}

/// A machine in the middle: terminates TLS towards the client with its own key, opens its
/// own TLS session to the server, and relays the plaintext, recording it.
async fn tls_relay(target: SocketAddr) -> (SocketAddr, Capture, Arc<Identity>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = Arc::new(Identity::generate("relay").unwrap());
    let capture: Capture = Arc::default();
    let (cap, id) = (capture.clone(), identity.clone());
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&id).unwrap());
        let connector =
            tokio_rustls::TlsConnector::from(tls::client_config(&id, ServerTrust::Any).unwrap());
        while let Ok((inbound, _)) = listener.accept().await {
            let client_side = acceptor.accept(inbound).await.unwrap();
            let tcp = TcpStream::connect(target).await.unwrap();
            let server_side = connector.connect(tls::server_name(), tcp).await.unwrap();
            let (cr, cw) = tokio::io::split(client_side);
            let (sr, sw) = tokio::io::split(server_side);
            tokio::spawn(pump(cr, sw, cap.clone()));
            tokio::spawn(pump(sr, cw, cap.clone()));
        }
    });
    (addr, capture, identity)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_relay_in_the_middle_cannot_pair_even_with_the_right_code() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let (relay_addr, plaintext, relay_id) = tls_relay(server.addr).await;
    let client = client(cdir.path(), "victim");

    let mut pairing = client.start_pairing(relay_addr).await.unwrap();
    // The client sees the relay's key, not the server's.
    assert_eq!(pairing.challenge().server_id, relay_id.id());
    // The operator reads the code for the relay's request; the person types it correctly.
    let code = server.events.code_for(relay_id.id()).await;
    match pairing.submit(&Code::parse(&code).unwrap()).await {
        Err(ClientError::WrongCode { .. }) => {}
        other => panic!("pairing through a relay must fail, got {other:?}"),
    }
    assert!(client.servers().unwrap().is_empty(), "nothing pinned");
    assert_eq!(
        server
            .events
            .count(|e| matches!(e, ServerEvent::Paired { .. })),
        0
    );
    assert!(server.server.clients().is_empty());
    // The relay saw every message in plaintext, but never the code.
    let seen = plaintext.lock().unwrap().clone();
    assert!(
        contains(&seen, b"pair_attempt"),
        "the relay does see plaintext messages"
    );
    assert!(
        !contains(&seen, code.as_bytes()),
        "the code crossed the relay"
    );
    server.stop().await;
}

#[tokio::test]
async fn code_token_and_payloads_never_appear_on_the_wire() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let (tap, wire) = wire_tap(server.addr).await;
    let client = client(cdir.path(), "c");
    let mut pairing = client.start_pairing(tap).await.unwrap();
    let code = server.events.code_for(client.id()).await;
    let paired = pairing.submit(&Code::parse(&code).unwrap()).await.unwrap();
    drop(pairing);
    let session = client.connect(&paired).await.unwrap();
    let marker = "secret-payload-7f3a9c";
    assert_eq!(
        session.request("echo", vec![marker.into()]).await.unwrap(),
        marker
    );
    drop(session);

    let bytes = wire.lock().unwrap().clone();
    assert!(
        bytes.len() > 1000,
        "the tap captured the exchange ({} bytes)",
        bytes.len()
    );
    // The capture does see cleartext where TLS has it (the ALPN in the ClientHello).
    assert!(contains(&bytes, b"csc/1"));
    assert!(!contains(&bytes, code.as_bytes()), "code on the wire");
    assert!(
        !contains(&bytes, paired.token.as_bytes()),
        "token on the wire"
    );
    let token_payload = paired.token.split('.').nth(1).unwrap();
    assert!(
        !contains(&bytes, &token_payload.as_bytes()[..24]),
        "token claims on the wire"
    );
    assert!(!contains(&bytes, marker.as_bytes()), "payload on the wire");
    server.stop().await;
}

/// A raw TLS connection that can send anything.
async fn raw(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let id = Identity::generate("raw").unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(tls::client_config(&id, ServerTrust::Any).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector.connect(tls::server_name(), tcp).await.unwrap()
}

async fn expect_error_then_close(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    want: ErrorCode,
) {
    let mut conn = Connection::new(stream, 1 << 20);
    let reply: Message = conn
        .expect(std::time::Duration::from_secs(5))
        .await
        .expect("an error message before the close");
    match reply {
        Message::Error { code, .. } => assert_eq!(code, want),
        other => panic!("expected error {want:?}, got {other:?}"),
    }
    assert!(
        matches!(conn.read::<Message>().await, Ok(None) | Err(_)),
        "connection closed after the error"
    );
}

#[tokio::test]
async fn malformed_oversize_and_out_of_order_input_get_errors_and_service_continues() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "good");
    let good = client.connect(&pair(&client, &server).await).await.unwrap();

    // Not JSON.
    let mut s = raw(server.addr).await;
    s.write_all(&9u32.to_be_bytes()).await.unwrap();
    s.write_all(b"{not json").await.unwrap();
    expect_error_then_close(s, ErrorCode::BadMessage).await;

    // JSON of the wrong shape.
    let mut s = raw(server.addr).await;
    let body = br#"{"type":"auth","token":7}"#;
    s.write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(body).await.unwrap();
    expect_error_then_close(s, ErrorCode::BadMessage).await;

    // A declared length of 4 GiB: refused before anything is allocated.
    let mut s = raw(server.addr).await;
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    expect_error_then_close(s, ErrorCode::FrameTooLarge).await;

    // Just over the 1 MiB limit.
    let mut s = raw(server.addr).await;
    s.write_all(&((1u32 << 20) + 1).to_be_bytes())
        .await
        .unwrap();
    expect_error_then_close(s, ErrorCode::FrameTooLarge).await;

    // A request before authenticating.
    let mut conn = Connection::new(raw(server.addr).await, 1 << 20);
    conn.send(&Message::Request {
        id: 1,
        task: "ping".into(),
        args: vec![],
    })
    .await
    .unwrap();
    expect_error_then_close(conn_into_stream(conn), ErrorCode::UnexpectedMessage).await;

    // A confirmation without a pending pairing.
    let mut conn = Connection::new(raw(server.addr).await, 1 << 20);
    conn.send(&Message::PairRequest {
        client_name: "x".into(),
    })
    .await
    .unwrap();
    let _challenge: Message = conn
        .expect(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    conn.send(&Message::PairConfirm {
        mac: csc_shared::message::B64(vec![0; 32]),
    })
    .await
    .unwrap();
    let reply: Message = conn
        .expect(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        matches!(
            reply,
            Message::Error {
                code: ErrorCode::UnexpectedMessage,
                ..
            }
        ),
        "{reply:?}"
    );

    // An unknown message type.
    let mut conn = Connection::new(raw(server.addr).await, 1 << 20);
    conn.send_raw(bytes::Bytes::from_static(br#"{"type":"format_disk"}"#))
        .await
        .unwrap();
    let reply: Message = conn
        .expect(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        matches!(
            reply,
            Message::Error {
                code: ErrorCode::UnexpectedMessage,
                ..
            }
        ),
        "{reply:?}"
    );

    // The paired client never noticed.
    assert_eq!(good.request("ping", vec![]).await.unwrap(), "pong");
    let again = client.connect(&client.select(None).unwrap()).await.unwrap();
    assert_eq!(
        again
            .request("echo", vec!["still here".into()])
            .await
            .unwrap(),
        "still here"
    );
    server.stop().await;
}

fn conn_into_stream(
    conn: Connection<tokio_rustls::client::TlsStream<TcpStream>>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    conn.into_inner()
}

#[tokio::test]
async fn an_oversize_request_is_refused_without_ending_the_session() {
    let sdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let a_dir = tempfile::tempdir().unwrap();
    let a = client(a_dir.path(), "a");
    let session = a.connect(&pair(&a, &server).await).await.unwrap();
    let oversize = "x".repeat((1 << 20) + 10);
    match session.request("echo", vec![oversize]).await {
        Err(ClientError::Connection(csc_shared::connection::ConnectionError::Frame(
            csc_shared::frame::FrameError::TooLarge { max, .. },
        ))) => assert_eq!(max, 1 << 20),
        other => panic!("an oversize request must be refused, got {other:?}"),
    }
    assert_eq!(session.request("ping", vec![]).await.unwrap(), "pong");
    let b_dir = tempfile::tempdir().unwrap();
    let b = client(b_dir.path(), "b");
    let s = b.connect(&pair(&b, &server).await).await.unwrap();
    assert_eq!(s.request("ping", vec![]).await.unwrap(), "pong");
    server.stop().await;
}

#[tokio::test]
async fn corrupt_server_state_is_reported_by_name_and_left_alone() {
    let sdir = tempfile::tempdir().unwrap();
    {
        let server = TestServer::start(sdir.path(), test_config()).await;
        server.stop().await;
    }
    let path = sdir.path().join("clients.json");
    std::fs::write(&path, b"{\"version\":1,\"clients\":[{\"oops\"").unwrap();
    let err = Server::open(sdir.path(), test_config(), Tasks::with_builtins(), None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("clients.json") && text.contains("corrupt"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"{\"version\":1,\"clients\":[{\"oops\""
    );
}

#[tokio::test]
async fn corrupt_client_state_is_reported_by_name_and_left_alone() {
    let cdir = tempfile::tempdir().unwrap();
    let c = client(cdir.path(), "c");
    let path = cdir.path().join("servers.json");
    std::fs::write(&path, b"[1,2").unwrap();
    let err = c.servers().unwrap_err();
    assert!(err.to_string().contains("servers.json"), "{err}");
    assert!(matches!(c.select(None), Err(ClientError::State(_))));
    assert_eq!(std::fs::read(&path).unwrap(), b"[1,2");
}
