//! Slow, idle and greedy peers: keep-alive pings and the idle timeout, a client that stops
//! reading, a cap on half-open connections per address, and 500 connections that dribble one
//! byte per second while paired clients keep being served.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use csc_shared::connection::Connection;
use csc_shared::identity::Identity;
use csc_shared::message::{ErrorCode, Message};
use csc_shared::server::{DisconnectReason, ServerEvent};
use csc_shared::tls::{self, ServerTrust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw, authenticated connection with the paired client's own key and token.
async fn raw_session(
    cdir: &std::path::Path,
    token: &str,
    addr: SocketAddr,
) -> Connection<tokio_rustls::client::TlsStream<TcpStream>> {
    let id = Identity::load_or_create(cdir, "c").unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(tls::client_config(&id, ServerTrust::Any).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(tls::server_name(), tcp).await.unwrap();
    let mut conn = Connection::new(tls, 1 << 20);
    conn.send(&Message::Auth {
        token: token.into(),
    })
    .await
    .unwrap();
    let ok: Message = conn.expect(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(ok, Message::AuthOk { .. }), "{ok:?}");
    conn
}

#[tokio::test]
async fn quiet_sessions_get_pings_and_silent_ones_are_closed() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.keepalive = Duration::from_millis(200);
    config.idle_timeout = Duration::from_millis(700);
    let server = TestServer::start(sdir.path(), config).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;

    // The engine answers pings by itself: a session quiet for 3 idle timeouts is still open.
    let session = client.connect(&paired).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(session.request("ping", vec![]).await.unwrap(), "pong");

    // A peer that never answers gets pings, then a timeout error, then the close.
    let mut raw = raw_session(cdir.path(), &paired.token, server.addr).await;
    let started = Instant::now();
    let mut pings = 0;
    loop {
        match raw.read::<Message>().await {
            Ok(Some(Message::Ping {})) => pings += 1,
            Ok(Some(Message::Error { code, .. })) => {
                assert_eq!(code, ErrorCode::Timeout);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never closed");
    }
    assert!(pings >= 1, "no keep-alive ping before the timeout");
    assert!(matches!(raw.read::<Message>().await, Ok(None) | Err(_)));
    server
        .events
        .wait_for("idle disconnect", |e| match e {
            ServerEvent::Disconnected { reason, .. } if *reason == DisconnectReason::Idle => {
                Some(())
            }
            _ => None,
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.write_timeout = Duration::from_millis(500);
    let server = TestServer::start(sdir.path(), config).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    let mut raw = raw_session(cdir.path(), &paired.token, server.addr).await;
    // Ask for 64 KiB answers, forever, and never read one.
    let big = "x".repeat(64 * 1024);
    let mut sent = 0u64;
    let writer = async {
        loop {
            sent += 1;
            let req = Message::Request {
                id: sent,
                task: "echo".into(),
                args: vec![big.clone()],
            };
            if raw.send(&req).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), writer).await;
    let reason = server
        .events
        .wait_for("disconnect", |e| match e {
            ServerEvent::Disconnected { reason, .. }
                if *reason == DisconnectReason::StoppedReading =>
            {
                Some(*reason)
            }
            _ => None,
        })
        .await;
    assert_eq!(reason, DisconnectReason::StoppedReading);
    // Others are still served.
    let s = client.connect(&paired).await.unwrap();
    assert_eq!(s.request("ping", vec![]).await.unwrap(), "pong");
    server.stop().await;
}

#[tokio::test]
async fn over_the_per_address_cap_the_oldest_half_open_connection_is_evicted() {
    let sdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let cap = csc_shared::server::ServerConfig::default().max_unauthenticated_per_addr;
    let mut held = Vec::new();
    for _ in 0..cap {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.9.1:0".parse().unwrap()).unwrap();
        held.push(s.connect(server.addr).await.unwrap());
        // Accepted in this order, so the first is the oldest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.server.unauthenticated_connections(), cap);
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.9.1:0".parse().unwrap()).unwrap();
    let mut extra = s.connect(server.addr).await.unwrap();
    let mut buf = [0u8; 1];
    // The oldest goes...
    let r = tokio::time::timeout(Duration::from_secs(5), held[0].read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest connection over the cap was not closed: {r:?}"
    );
    // ...and the newest stays, with the count still at the cap.
    let r = tokio::time::timeout(Duration::from_millis(500), extra.read(&mut buf)).await;
    assert!(r.is_err(), "the new connection was closed: {r:?}");
    assert_eq!(server.server.unauthenticated_connections(), cap);
    // The second oldest was not touched.
    let r = tokio::time::timeout(Duration::from_millis(100), held[1].read(&mut buf)).await;
    assert!(r.is_err(), "a younger connection was closed: {r:?}");
    // Another address is unaffected.
    let cdir = tempfile::tempdir().unwrap();
    let c = client(cdir.path(), "c");
    let p = pair(&c, &server).await;
    assert_eq!(
        c.connect(&p)
            .await
            .unwrap()
            .request("ping", vec![])
            .await
            .unwrap(),
        "pong"
    );
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn five_hundred_dribbling_connections_do_not_stop_paired_clients() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    let addr = server.addr;
    // 500 connections from 20 addresses (25 each, under the per-address cap), each sending
    // one byte of a TLS record per second.
    let mut dribblers = Vec::new();
    for i in 0..500u32 {
        let src: SocketAddr = SocketAddr::from(([127, 0, 10, (i / 25 + 1) as u8], 0));
        dribblers.push(tokio::spawn(async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(src).unwrap();
            let mut c = s.connect(addr).await.unwrap();
            for b in [0x16u8, 0x03, 0x01, 0x02, 0x00] {
                if c.write_all(&[b]).await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            true
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Meanwhile paired clients connect and get replies.
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        let s = client.connect(&paired).await.unwrap();
        for _ in 0..5 {
            assert_eq!(s.request("ping", vec![]).await.unwrap(), "pong");
        }
        worst = worst.max(t.elapsed());
    }
    let mut still_dribbling = 0;
    for d in dribblers {
        if d.await.unwrap() {
            still_dribbling += 1;
        }
    }
    assert_eq!(
        still_dribbling, 500,
        "the slow connections were all held during the test"
    );
    eprintln!("500 dribbling connections held; worst connect + 5 pings: {worst:?}");
    server.stop().await;
}

/// `n` idle TCP connections to `addr` from `ip` (they never start TLS).
async fn idle_connections(addr: SocketAddr, ip: std::net::IpAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(ip, 0)).unwrap();
        held.push(s.connect(addr).await.unwrap());
    }
    held
}

#[tokio::test]
async fn three_hundred_idle_connections_from_its_own_address_do_not_lock_a_paired_client_out() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    // The client connects from 127.0.0.1; so do 300 idle connections that never say a word.
    let held = idle_connections(server.addr, [127, 0, 0, 1].into(), 300).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cap = csc_shared::server::ServerConfig::default().max_unauthenticated_per_addr;
    assert_eq!(server.server.unauthenticated_connections(), cap);
    for _ in 0..5 {
        let s = client
            .connect(&paired)
            .await
            .expect("the paired client gets in");
        assert_eq!(s.request("ping", vec![]).await.unwrap(), "pong");
    }
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn with_every_slot_filled_from_many_addresses_sessions_stay_and_a_client_gets_in() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.max_connections = 400;
    config.max_unauthenticated = 400;
    let server = TestServer::start(sdir.path(), config).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    // A session opened before the flood.
    let before = client.connect(&paired).await.unwrap();
    // 400 idle connections from 20 addresses, 20 each (under the per-address cap): the
    // table is full, and keeps filling as long as they come.
    let mut held = Vec::new();
    for a in 1..=20u8 {
        held.extend(idle_connections(server.addr, [127, 0, 11, a].into(), 20).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.server.open_connections(), 400);
    assert!(server.server.unauthenticated_connections() >= 398);
    // The session was never evicted for them, and a new connection still gets through.
    assert_eq!(before.request("ping", vec![]).await.unwrap(), "pong");
    let s = client
        .connect(&paired)
        .await
        .expect("a new connection gets in");
    assert_eq!(s.request("ping", vec![]).await.unwrap(), "pong");
    assert_eq!(before.request("ping", vec![]).await.unwrap(), "pong");
    // The oldest idle connections made room.
    let mut buf = [0u8; 1];
    let first = tokio::time::timeout(Duration::from_secs(5), held[0].read(&mut buf)).await;
    assert!(matches!(first, Ok(Ok(0)) | Ok(Err(_))), "{first:?}");
    drop(held);
    server.stop().await;
}
