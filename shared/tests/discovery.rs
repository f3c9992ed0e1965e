//! Discovery on loopback only: a sweep of explicit 127.x subnets (broadcast and mDNS off),
//! an unrelated service on the port, and reconnecting to a paired server that moved to
//! another loopback address. The namespace-lab tests live in client-tui/tests/discovery.rs.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use csc_shared::discovery::{DiscoveryEvent, DiscoveryOptions, Via, discover};

fn loopback_only(port: u16, subnet: &str) -> DiscoveryOptions {
    DiscoveryOptions {
        port,
        broadcast: false,
        mdns: false,
        scan: true,
        subnets: vec![subnet.parse().unwrap()],
        per_host_timeout: Duration::from_millis(300),
        ..DiscoveryOptions::default()
    }
}

/// A port free on every 127.0.0.x we use.
async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_loopback_sweep_finds_the_server_and_skips_other_services() {
    let port = free_port().await;
    let sdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(
        sdir.path(),
        test_config(),
        SocketAddr::from(([127, 0, 3, 9], port)),
    )
    .await;
    // An unrelated service on our port, on another address of the swept subnet.
    let other = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 3, 5], port)))
        .await
        .unwrap();
    let junk = tokio::spawn(async move {
        while let Ok((mut s, _)) = other.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.0\r\n").await;
        }
    });
    let cdir = tempfile::tempdir().unwrap();
    let client = client(cdir.path(), "c");
    let mut d = discover(client.dialer(), loopback_only(port, "127.0.3.0/28"));
    let mut found = Vec::new();
    let mut last_progress = None;
    let mut started = None;
    while let Some(ev) = d.next().await {
        match ev {
            DiscoveryEvent::Started {
                methods, subnets, ..
            } => started = Some((methods, subnets)),
            DiscoveryEvent::Found(f) => found.push(f),
            DiscoveryEvent::Progress(p) => last_progress = Some(p),
            _ => {}
        }
    }
    let (methods, subnets) = started.unwrap();
    assert_eq!(methods, vec![Via::Scan]);
    assert_eq!(subnets, vec![("127.0.3.0/28".to_string(), 14)]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].addr, server.addr);
    assert_eq!(found[0].server_id, server.server.id());
    assert_eq!(found[0].name, "test-server");
    assert!(found[0].verified);
    let p = last_progress.unwrap();
    assert_eq!((p.probed, p.total), (14, 14));
    junk.abort();
    server.stop().await;
}

#[tokio::test]
async fn a_moved_server_is_found_again_by_its_pinned_id() {
    let port = free_port().await;
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(
        sdir.path(),
        test_config(),
        SocketAddr::from(([127, 0, 4, 2], port)),
    )
    .await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    server.stop().await;

    // Another server appears where the old one was; ours moves to .6.
    let impostor_dir = tempfile::tempdir().unwrap();
    let impostor = TestServer::start_on(
        impostor_dir.path(),
        test_config(),
        SocketAddr::from(([127, 0, 4, 3], port)),
    )
    .await;
    let server = TestServer::start_on(
        sdir.path(),
        test_config(),
        SocketAddr::from(([127, 0, 4, 6], port)),
    )
    .await;

    let reached = client
        .connect_auto(&paired, None, Some(loopback_only(port, "127.0.4.0/29")))
        .await
        .unwrap();
    assert_eq!(reached.session.addr(), server.addr);
    assert_eq!(reached.via, Via::Scan);
    assert_eq!(
        reached.session.request("ping", vec![]).await.unwrap(),
        "pong"
    );
    let saved = client.select(None).unwrap();
    assert_eq!(
        saved.addrs[0], server.addr,
        "the new address is saved first"
    );

    // Without discovery, a dead saved address is simply unreachable.
    let mut gone = paired.clone();
    gone.addrs = vec![SocketAddr::from(([127, 0, 4, 4], port))];
    match client.connect_auto(&gone, None, None).await {
        Err(csc_shared::client::ClientError::Dial(
            csc_shared::client::DialError::Unreachable { .. },
        )) => {}
        other => panic!("expected unreachable, got {:?}", other.map(|r| r.via)),
    }
    // When every saved address fails, the error names each of them, not one.
    gone.addrs = (4..7)
        .map(|n| SocketAddr::from(([127, 0, 9, n], port)))
        .collect();
    match client.connect_auto(&gone, None, None).await {
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("none of its 3 addresses answered"), "{text}");
            for addr in &gone.addrs {
                assert!(text.contains(&addr.to_string()), "{addr} missing: {text}");
            }
        }
        Ok(r) => panic!("nothing listens there, yet reached via {:?}", r.via),
    }
    impostor.stop().await;
    server.stop().await;
}
