//! End-to-end sessions against a real server: reconnects, restarts, revocation, token
//! expiry and binding, tasks, pipelining, and many clients at once.

mod common;

use std::time::Duration;

use common::*;
use csc_shared::client::{ClientError, ClientOptions, DialError, SessionEvent};
use csc_shared::message::RepairReason;
use csc_shared::server::{RevokedBy, ServerEvent};

#[tokio::test]
async fn reconnect_after_server_restart_keeps_the_pairing() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let addr = server.addr;
    let id = server.server.id();
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    server.stop().await;

    // While it is down the error says so, and is not mistaken for a pairing problem.
    match client.connect(&paired).await {
        Err(ClientError::Dial(DialError::Unreachable { .. })) => {}
        other => panic!("expected unreachable, got {other:?}"),
    }

    let server = TestServer::start_on(sdir.path(), test_config(), addr).await;
    assert_eq!(server.server.id(), id, "identity survives a restart");
    let session = client.connect(&client.select(None).unwrap()).await.unwrap();
    assert_eq!(session.request("ping", vec![]).await.unwrap(), "pong");
    server
        .events
        .wait_for("connected", |e| match e {
            ServerEvent::Connected { client_id, .. } if *client_id == client.id() => Some(()),
            _ => None,
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn revoked_client_is_disconnected_and_must_repair() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    let mut session = client.connect(&paired).await.unwrap();
    assert_eq!(session.request("ping", vec![]).await.unwrap(), "pong");

    let removed = server.server.revoke(&client.id().short()).await.unwrap();
    assert_eq!(removed.client_id, client.id());
    // Disconnected at once, told why.
    let ev = tokio::time::timeout(Duration::from_secs(5), session.next_event())
        .await
        .unwrap();
    assert_eq!(
        ev,
        Some(SessionEvent::Closed {
            reason: "this client was revoked by the server's operator".into(),
            repair: Some(RepairReason::Revoked),
        })
    );
    // The token no longer works.
    match client.connect(&paired).await {
        Err(ClientError::RepairRequired {
            reason: RepairReason::Revoked,
        }) => {}
        other => panic!("expected re-pair required (revoked), got {other:?}"),
    }
    // Saved before it was reported.
    let reg = csc_shared::state::ServerStore::read_clients(sdir.path()).unwrap();
    assert!(reg.clients.is_empty());
    assert_eq!(reg.revoked.len(), 1);
    // Pairing again works and the old token stays void.
    let again = pair(&client, &server).await;
    client.connect(&again).await.unwrap();
    match client.connect(&paired).await {
        Err(ClientError::RepairRequired { .. }) => {}
        other => panic!("old token must stay void, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn expired_token_requires_repairing() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.token_ttl = Duration::from_secs(1);
    let server = TestServer::start(sdir.path(), config).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    match client.connect(&paired).await {
        Err(ClientError::RepairRequired {
            reason: RepairReason::Expired,
        }) => {}
        other => panic!("expected re-pair required (expired), got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn token_is_renewed_when_a_third_of_its_life_is_left() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.token_ttl = Duration::from_secs(6);
    let server = TestServer::start(sdir.path(), config).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    // Issued within the first second of its 6 s, so after 4.5 s between 0.5 and 1.5 s are
    // left: less than a third, not yet expired.
    let session = client.connect(&paired).await.unwrap();
    assert_eq!(
        session.server().token,
        paired.token,
        "no renewal while plenty is left"
    );
    drop(session);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let session = client.connect(&paired).await.unwrap();
    assert_ne!(session.server().token, paired.token);
    assert!(session.server().token_expires_at > paired.token_expires_at);
    let saved = client.select(None).unwrap();
    assert_eq!(
        saved.token,
        session.server().token,
        "renewed token is saved"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_copied_token_is_useless_with_another_key() {
    let sdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = client(a_dir.path(), "a");
    let b = client(b_dir.path(), "b");
    let stolen = pair(&a, &server).await;
    match b.connect(&stolen).await {
        Err(ClientError::RepairRequired {
            reason: RepairReason::KeyMismatch,
        }) => {}
        other => panic!("expected key mismatch, got {other:?}"),
    }
    server
        .events
        .wait_for("auth_failed", |e| match e {
            ServerEvent::AuthFailed {
                client_id,
                reason: RepairReason::KeyMismatch,
                ..
            } if *client_id == b.id() => Some(()),
            _ => None,
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn another_server_at_the_paired_address_is_refused() {
    let s1 = tempfile::tempdir().unwrap();
    let s2 = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(s1.path(), test_config()).await;
    let addr = server.addr;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    server.stop().await;
    let impostor = TestServer::start_on(s2.path(), test_config(), addr).await;
    match client.connect(&paired).await {
        Err(ClientError::Dial(DialError::IdentityMismatch {
            expected, found, ..
        })) => {
            assert_eq!(expected, paired.server_id.short());
            assert_eq!(found, impostor.server.id().short());
        }
        other => panic!("expected identity mismatch, got {other:?}"),
    }
    assert_eq!(
        impostor
            .events
            .count(|e| matches!(e, ServerEvent::AuthFailed { .. })),
        0,
        "no token was sent"
    );
    impostor.stop().await;
}

#[tokio::test]
async fn unknown_task_gets_an_error_and_the_session_stays_open() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let session = client.connect(&pair(&client, &server).await).await.unwrap();
    match session.request("launch", vec![]).await {
        Err(ClientError::Task { code, message }) => {
            assert_eq!(code, "unknown_task");
            assert!(message.contains("ping"), "{message}");
        }
        other => panic!("expected unknown_task, got {other:?}"),
    }
    assert_eq!(session.request("ping", vec![]).await.unwrap(), "pong");
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_matched_by_id() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let session = client.connect(&pair(&client, &server).await).await.unwrap();
    let replies = futures_util::future::join_all((0..200).map(|i| {
        let s = &session;
        async move { (i, s.request("echo", vec![format!("m{i}")]).await.unwrap()) }
    }))
    .await;
    for (i, r) in replies {
        assert_eq!(r, format!("m{i}"));
    }
    server.stop().await;
}

#[tokio::test]
async fn notices_reach_every_connected_client() {
    let sdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let mut sessions = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..3 {
        let d = tempfile::tempdir().unwrap();
        let c = client(d.path(), &format!("c{i}"));
        let s = c.connect(&pair(&c, &server).await).await.unwrap();
        // A round trip guarantees the session is registered before the notice goes out.
        s.request("ping", vec![]).await.unwrap();
        sessions.push(s);
        dirs.push(d);
    }
    // The pairing connections were dropped; wait until only the 3 sessions remain.
    for _ in 0..100 {
        if server.server.connected() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.server.notify_all("lunch is served"), 3);
    for s in &mut sessions {
        match tokio::time::timeout(Duration::from_secs(5), s.next_event())
            .await
            .unwrap()
        {
            Some(SessionEvent::Notice { text, .. }) => assert_eq!(text, "lunch is served"),
            other => panic!("expected a notice, got {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn forget_on_the_client_revokes_on_the_server() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    let (removed, remote) = client.forget(&paired.server_id.short()).await.unwrap();
    assert_eq!(removed.server_id, paired.server_id);
    remote.unwrap();
    assert!(client.servers().unwrap().is_empty());
    assert!(server.server.clients().is_empty());
    server
        .events
        .wait_for("revoked", |e| match e {
            ServerEvent::Revoked { by, .. } if *by == RevokedBy::Client => Some(()),
            _ => None,
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn hundred_clients_pair_and_run_tasks_concurrently() {
    let sdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    // 100 machines asking at once: above the default cap, which protects the operator's screen.
    config.pairing.max_pending_total = 128;
    let server = TestServer::start(sdir.path(), config).await;
    let addr = server.addr;
    let events = server.events.clone();
    let mut handles = Vec::new();
    for i in 0..100u32 {
        let events = events.clone();
        handles.push(tokio::spawn(async move {
            let dir = tempfile::tempdir().unwrap();
            // Distinct loopback sources, as 100 machines would have: one pending request
            // per address is the rule.
            let options = ClientOptions {
                local_ip: Some(std::net::IpAddr::from([127, 0, 1, (i + 1) as u8])),
                ..ClientOptions::default()
            };
            let client =
                csc_shared::client::Client::open(dir.path(), &format!("c{i}"), options).unwrap();
            let mut pairing = client.start_pairing(addr).await.unwrap();
            let code = events.code_for(client.id()).await;
            pairing
                .submit(&csc_shared::pairing::Code::parse(&code).unwrap())
                .await
                .unwrap();
            let session = client.connect(&client.select(None).unwrap()).await.unwrap();
            for j in 0..10 {
                let r = session
                    .request("echo", vec![format!("{i}-{j}")])
                    .await
                    .unwrap();
                assert_eq!(r, format!("{i}-{j}"));
            }
            client.id()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        ids.insert(h.await.unwrap());
    }
    assert_eq!(ids.len(), 100);
    let registry = csc_shared::state::ServerStore::read_clients(sdir.path()).unwrap();
    assert_eq!(registry.clients.len(), 100, "every pairing was saved");
    assert_eq!(server.server.clients().len(), 100);
    server.stop().await;
}

#[tokio::test]
async fn embedded_tasks_run_concurrently_and_oversize_results_are_errors() {
    use csc_shared::server::{TaskError, Tasks};
    let mut tasks = Tasks::with_builtins();
    tasks.register("sleep", |_ctx, args: Vec<String>| async move {
        let ms: u64 = args
            .first()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| TaskError::new("bad_args", "usage: sleep MS"))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(serde_json::json!(ms))
    });
    tasks.register("big", |_ctx, _args| async {
        Ok(serde_json::json!("x".repeat(2 << 20)))
    });
    tasks.register(
        "whoami",
        |ctx: csc_shared::server::TaskContext, _args| async move {
            Ok(serde_json::json!(ctx.client_name))
        },
    );
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_tasks(sdir.path(), test_config(), tasks).await;
    let client = client(cdir.path(), "embedder");
    let session = client.connect(&pair(&client, &server).await).await.unwrap();
    assert_eq!(session.request("whoami", vec![]).await.unwrap(), "embedder");

    // A slow task does not hold back a fast one sent after it.
    let slow = session.request("sleep", vec!["3000".into()]);
    let fast = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = session.request("ping", vec![]).await;
        (r, std::time::Instant::now())
    };
    let ((slow_r, slow_done), (fast_r, fast_done)) =
        tokio::join!(async { (slow.await, std::time::Instant::now()) }, fast);
    assert_eq!(fast_r.unwrap(), "pong");
    assert_eq!(slow_r.unwrap(), 3000);
    assert!(fast_done < slow_done, "the ping waited for the sleep");

    match session.request("big", vec![]).await {
        Err(ClientError::Task { code, message }) => {
            assert_eq!(code, "too_large");
            assert!(message.contains("frame limit"), "{message}");
        }
        other => panic!("expected too_large, got {other:?}"),
    }
    match session.request("sleep", vec!["x".into()]).await {
        Err(ClientError::Task { code, .. }) => assert_eq!(code, "bad_args"),
        other => panic!("expected bad_args, got {other:?}"),
    }
    assert_eq!(session.request("ping", vec![]).await.unwrap(), "pong");
    server.stop().await;
}
