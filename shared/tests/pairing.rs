//! End-to-end pairing against a real server on 127.0.0.1: success, wrong codes, exhaustion,
//! expiry, and the limits that hold across connections.

mod common;

use std::time::Duration;

use common::*;
use csc_shared::client::ClientError;
use csc_shared::message::PairFailure;
use csc_shared::pairing::Code;
use csc_shared::server::{PairClosedReason, ServerEvent};

#[tokio::test]
async fn pairing_succeeds_pins_the_server_and_opens_a_session() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "kiosk-1");

    let mut pairing = client.start_pairing(server.addr).await.unwrap();
    assert_eq!(pairing.challenge().server_name, "test-server");
    assert_eq!(pairing.challenge().server_id, server.server.id());
    assert_eq!(pairing.challenge().attempts_left, 5);
    let (code, name, addr) = server
        .events
        .wait_for("pair_request", |e| match e {
            ServerEvent::PairRequest {
                code,
                client_name,
                client_addr,
                client_id,
                expires_in_s,
                ..
            } if *client_id == client.id() => {
                assert_eq!(*expires_in_s, 120);
                Some((code.clone(), client_name.clone(), *client_addr))
            }
            _ => None,
        })
        .await;
    assert_eq!(name, "kiosk-1");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let paired = pairing.submit(&Code::parse(&code).unwrap()).await.unwrap();
    assert_eq!(paired.server_id, server.server.id());

    // The pairing is saved on both sides.
    let saved = client.servers().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].server_id, server.server.id());
    assert_eq!(saved[0].addrs, vec![server.addr]);
    let registry = csc_shared::state::ServerStore::read_clients(sdir.path()).unwrap();
    assert_eq!(registry.clients.len(), 1);
    assert_eq!(registry.clients[0].client_id, client.id());
    assert_eq!(
        server
            .events
            .count(|e| matches!(e, ServerEvent::Paired { .. })),
        1
    );

    // The pairing connection continues as a session...
    let session = pairing.into_session().unwrap();
    assert_eq!(session.request("ping", vec![]).await.unwrap(), "pong");
    drop(session);
    // ...and a fresh connection authenticates with the token.
    let session = client.connect(&saved[0]).await.unwrap();
    assert_eq!(
        session
            .request("echo", vec!["hi".into(), "there".into()])
            .await
            .unwrap(),
        "hi there"
    );
    let info = session.request("info", vec![]).await.unwrap();
    assert_eq!(info["name"], "test-server");
    assert!(info["connected_clients"].as_u64().unwrap() >= 1);
    server.stop().await;
}

#[tokio::test]
async fn wrong_code_is_refused_then_right_code_pairs() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let mut pairing = client.start_pairing(server.addr).await.unwrap();
    let code = server.events.code_for(client.id()).await;
    match pairing.submit(&wrong(&code)).await {
        Err(ClientError::WrongCode {
            attempts_left: 4, ..
        }) => {}
        other => panic!("expected wrong code with 4 left, got {other:?}"),
    }
    server
        .events
        .wait_for("pair_failed", |e| match e {
            ServerEvent::PairFailed {
                reason: PairFailure::WrongCode,
                attempts_left: 4,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    assert!(
        client.servers().unwrap().is_empty(),
        "nothing saved after a wrong code"
    );
    pairing.submit(&Code::parse(&code).unwrap()).await.unwrap();
    assert_eq!(client.servers().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn five_wrong_codes_void_the_code() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let mut pairing = client.start_pairing(server.addr).await.unwrap();
    let code = server.events.code_for(client.id()).await;
    for left in (1..=4).rev() {
        match pairing.submit(&wrong(&code)).await {
            Err(ClientError::WrongCode { attempts_left, .. }) => assert_eq!(attempts_left, left),
            other => panic!("expected wrong code, got {other:?}"),
        }
    }
    assert!(matches!(
        pairing.submit(&wrong(&code)).await,
        Err(ClientError::CodeExhausted)
    ));
    // The right code no longer helps: the code is void.
    assert!(matches!(
        pairing.submit(&Code::parse(&code).unwrap()).await,
        Err(ClientError::CodeExhausted)
    ));
    assert!(client.servers().unwrap().is_empty());
    server
        .events
        .wait_for("pair_closed", |e| match e {
            ServerEvent::PairClosed { reason, .. } if *reason == PairClosedReason::Exhausted => {
                Some(())
            }
            _ => None,
        })
        .await;
    // A new request gets a new code, which works (after the backoff).
    pairing.request_new_code("c").await.unwrap();
    let fresh = server
        .events
        .wait_for("second pair_request", |e| match e {
            ServerEvent::PairRequest { code: c, .. } if *c != code => Some(c.clone()),
            _ => None,
        })
        .await;
    pairing.submit(&Code::parse(&fresh).unwrap()).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn expired_code_is_refused_and_reported() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.pairing.code_ttl = Duration::from_millis(300);
    let server = TestServer::start(sdir.path(), config).await;
    let client = client(cdir.path(), "c");
    let mut pairing = client.start_pairing(server.addr).await.unwrap();
    let code = server.events.code_for(client.id()).await;
    server
        .events
        .wait_for("expiry", |e| match e {
            ServerEvent::PairClosed { reason, .. } if *reason == PairClosedReason::Expired => {
                Some(())
            }
            _ => None,
        })
        .await;
    assert!(matches!(
        pairing.submit(&Code::parse(&code).unwrap()).await,
        Err(ClientError::CodeExpired)
    ));
    assert_eq!(
        server.events.count(|e| matches!(
            e,
            ServerEvent::PairFailed {
                reason: PairFailure::CodeExpired,
                ..
            }
        )),
        1
    );
    assert!(client.servers().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn one_pending_request_per_address_and_backoff_across_connections() {
    let sdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    // Longer than the client waits out by itself (30 s), so the refusal reaches the caller.
    config.pairing.backoff_base = Duration::from_secs(60);
    config.pairing.backoff_max = Duration::from_secs(60);
    let server = TestServer::start(sdir.path(), config).await;
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = client(a_dir.path(), "a");
    let b = client(b_dir.path(), "b");
    let mut pa = a.start_pairing(server.addr).await.unwrap();
    // Same address, second request: refused while the first is pending.
    match b.start_pairing(server.addr).await {
        Err(ClientError::PairingRefused {
            reason: PairFailure::AlreadyPending,
            ..
        }) => {}
        other => panic!("expected already pending, got {other:?}"),
    }
    // A wrong answer puts the whole address on a 60 s backoff...
    let code = server.events.code_for(a.id()).await;
    assert!(matches!(
        pa.submit(&wrong(&code)).await,
        Err(ClientError::WrongCode { .. })
    ));
    drop(pa);
    server
        .events
        .wait_for("cancel", |e| match e {
            ServerEvent::PairClosed { reason, .. } if *reason == PairClosedReason::Cancelled => {
                Some(())
            }
            _ => None,
        })
        .await;
    // ...which a new connection from another key at the same address cannot dodge.
    match b.start_pairing(server.addr).await {
        Err(ClientError::PairingRefused {
            reason: PairFailure::RateLimited,
            retry_after: Some(wait),
        }) => assert!(wait > Duration::from_secs(50), "{wait:?}"),
        other => panic!("expected rate limited, got {other:?}"),
    }
    server.stop().await;
}
