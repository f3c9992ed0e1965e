//! The engine's discovery service on a machine with nothing but loopback: no mDNS record is
//! registered at all (a record there would carry only 127.0.0.1), and the `listening` event
//! says the server has no address to offer. Runs only where that is true, e.g. inside
//! `/work/shared/lab/isolated`; anywhere else it would multicast on real interfaces, so it
//! prints why and passes without running. The lab tests in `server-tui/tests/lab_addresses.rs`
//! cover a LAN.

mod common;

use common::*;
use csc_shared::server::ServerEvent;

fn only_loopback() -> bool {
    let all = csc_shared::server::addrs::interface_addrs();
    if let Some(real) = all.iter().find(|a| !a.is_loopback()) {
        eprintln!("SKIPPED: this machine has {real}; run inside a loopback-only namespace");
        return false;
    }
    true
}

#[tokio::test]
async fn with_only_loopback_no_mdns_record_is_registered() {
    if !only_loopback() {
        return;
    }
    let sdir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_on(sdir.path(), test_config(), "0.0.0.0:0".parse().unwrap()).await;
    let addrs = server
        .events
        .wait_for("listening", |e| match e {
            ServerEvent::Listening { addrs, .. } => Some(addrs.clone()),
            _ => None,
        })
        .await;
    assert!(
        addrs.is_empty(),
        "loopback offered as an address: {addrs:?}"
    );
    let discovery = server
        .server
        .serve_discovery(server.addr, true)
        .await
        .unwrap();
    assert!(!discovery.advertising());
    assert!(discovery.advertised().is_empty());
    drop(discovery);
    // Bound to loopback itself: nothing either.
    let local = ([127, 0, 0, 1], 0).into();
    let discovery = server.server.serve_discovery(local, true).await.unwrap();
    assert!(!discovery.advertising());
    drop(discovery);
    server.stop().await;
}
