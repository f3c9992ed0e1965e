//! The supervised client link against real servers on loopback: a server that closes is seen
//! at once, one that falls silent (frozen, or its packets dropped) is declared lost within
//! the configured deadline, the link heals by itself, also at a new address found by
//! discovery, requests wait for healing up to their deadline and are never sent twice, and
//! revocation is terminal. Short deadlines here; generous bounds, since machines are noisy.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use csc_shared::client::{Client, ClientError, ClientOptions, Link, LinkEvent, LinkOptions};
use csc_shared::discovery::{DiscoveryOptions, Via};
use csc_shared::message::RepairReason;
use csc_shared::server::Tasks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Short deadlines: a ping after 200 ms of silence, lost after 800 ms.
fn quick_options() -> ClientOptions {
    ClientOptions {
        keepalive: Duration::from_millis(200),
        dead_after: Duration::from_millis(800),
        step_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

fn quick_client(dir: &std::path::Path) -> Arc<Client> {
    Arc::new(Client::open(dir, "linked", quick_options()).expect("client opens"))
}

fn no_discovery() -> LinkOptions {
    LinkOptions {
        discovery: None,
        backoff_first: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        ..LinkOptions::default()
    }
}

/// The next event that `pick` accepts, skipping others, within `limit`.
async fn wait_for<T>(
    link: &mut Link,
    what: &str,
    limit: Duration,
    pick: impl Fn(&LinkEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, link.next_event()).await {
            Ok(Some(ev)) => {
                if let Some(t) = pick(&ev) {
                    return t;
                }
            }
            Ok(None) => panic!("the link ended while waiting for {what}"),
            Err(_) => panic!("no {what} within {limit:?}"),
        }
    }
}

fn connected(ev: &LinkEvent) -> Option<(SocketAddr, Option<Via>)> {
    match ev {
        LinkEvent::Connected { addr, via, .. } => Some((*addr, *via)),
        _ => None,
    }
}

fn lost(ev: &LinkEvent) -> Option<String> {
    match ev {
        LinkEvent::Lost { reason } => Some(reason.clone()),
        _ => None,
    }
}

/// A TCP relay that can freeze: while frozen it neither reads nor writes, as a stopped
/// process or a cable pulled out would look to the client (its connection stays open).
struct Relay {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(listen: SocketAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let f = f.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::spawn(pump(ri, wo, f.clone()));
                    tokio::spawn(pump(ro, wi, f));
                });
            }
        });
        Self { addr, frozen, task }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // Bytes read just before freezing are held, not delivered.
                while frozen.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_server_that_closes_is_seen_at_once_and_the_link_heals_when_it_is_back() {
    let (sdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let addr: SocketAddr = "127.0.12.1:0".parse().unwrap();
    let server = TestServer::start_on(sdir.path(), test_config(), addr).await;
    let addr = server.addr;
    let client = quick_client(cdir.path());
    let paired = pair(&client, &server).await;
    let mut link = Link::start(client.clone(), paired, no_discovery());
    assert_eq!(
        wait_for(&mut link, "connected", Duration::from_secs(10), connected)
            .await
            .0,
        addr
    );
    assert_eq!(
        link.request("ping", vec![], Duration::ZERO).await.unwrap(),
        "pong"
    );

    let stopped = Instant::now();
    server.stop().await;
    let reason = wait_for(&mut link, "lost", Duration::from_secs(10), lost).await;
    // Closed, not timed out: well before the silence deadline would have fired.
    assert!(
        !reason.contains("no answer"),
        "a closed connection was taken for silence: {reason}"
    );
    eprintln!(
        "closed server seen as lost after {:?}: {reason}",
        stopped.elapsed()
    );

    let server = TestServer::start_on(sdir.path(), test_config(), addr).await;
    assert_eq!(
        wait_for(&mut link, "reconnected", Duration::from_secs(20), connected)
            .await
            .0,
        addr
    );
    assert_eq!(
        link.request("ping", vec![], Duration::from_secs(5))
            .await
            .unwrap(),
        "pong"
    );
    link.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_silent_server_is_declared_lost_and_requests_fail_within_their_deadline() {
    let (sdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = quick_client(cdir.path());
    let mut paired = pair(&client, &server).await;
    let relay = Relay::start("127.0.12.2:0".parse().unwrap(), server.addr).await;
    paired.addrs = vec![relay.addr];
    let mut link = Link::start(client.clone(), paired, no_discovery());
    wait_for(&mut link, "connected", Duration::from_secs(10), connected).await;
    // Idle for longer than the silence deadline: pings keep it alive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        link.handle().is_connected(),
        "an idle but answering server was dropped"
    );
    assert_eq!(
        link.request("ping", vec![], Duration::ZERO).await.unwrap(),
        "pong"
    );

    // Frozen: nothing comes back, although the connection stays open.
    relay.freeze(true);
    let frozen = Instant::now();
    let reason = wait_for(&mut link, "lost", Duration::from_secs(10), lost).await;
    let after = frozen.elapsed();
    eprintln!("silent server declared lost after {after:?}: {reason}");
    assert!(reason.contains("no answer"), "{reason}");
    assert!(
        after >= Duration::from_millis(700),
        "lost before the deadline: {after:?}"
    );

    // A request while it heals waits for its deadline, then says why.
    let asked = Instant::now();
    match link
        .request("ping", vec![], Duration::from_millis(600))
        .await
    {
        Err(ClientError::NotConnected { waited, reason }) => {
            assert_eq!(waited, Duration::from_millis(600));
            assert!(!reason.is_empty());
            assert!(asked.elapsed() >= Duration::from_millis(550));
        }
        other => panic!("expected not connected, got {other:?}"),
    }

    // Thawed: the link heals by itself.
    relay.freeze(false);
    wait_for(&mut link, "reconnected", Duration::from_secs(20), connected).await;
    assert_eq!(
        link.request("ping", vec![], Duration::from_secs(5))
            .await
            .unwrap(),
        "pong"
    );
    link.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_request_in_flight_when_the_server_dies_is_answered_or_fails_exactly_once() {
    let (sdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Tasks::with_builtins();
    {
        let runs = runs.clone();
        tasks.register("slow", move |_ctx, _args| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(serde_json::json!("done"))
            }
        });
    }
    let addr: SocketAddr = "127.0.12.3:0".parse().unwrap();
    let server = TestServer::start_full(sdir.path(), test_config(), addr, tasks.clone()).await;
    let addr = server.addr;
    let client = quick_client(cdir.path());
    let paired = pair(&client, &server).await;
    let mut link = Link::start(client.clone(), paired, no_discovery());
    wait_for(&mut link, "connected", Duration::from_secs(10), connected).await;

    let handle = link.handle();
    let in_flight = tokio::spawn(async move {
        handle
            .request("slow", vec![], Duration::from_secs(30))
            .await
    });
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
    let server = TestServer::start_full(sdir.path(), test_config(), addr, tasks).await;
    wait_for(&mut link, "reconnected", Duration::from_secs(20), connected).await;
    let result = in_flight.await.unwrap();
    assert!(
        matches!(result, Err(ClientError::Closed(_))),
        "the request whose session died must fail, got {result:?}"
    );
    // It is not sent again on the new session.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the task ran twice");
    link.close().await;
    server.stop().await;
}

#[tokio::test]
async fn requests_over_a_link_are_pipelined() {
    let (sdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Tasks::with_builtins();
    {
        let (running, peak) = (running.clone(), peak.clone());
        tasks.register("hold", move |_ctx, _args| {
            let (running, peak) = (running.clone(), peak.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(serde_json::json!("held"))
            }
        });
    }
    let server = TestServer::start_with_tasks(sdir.path(), test_config(), tasks).await;
    let client = quick_client(cdir.path());
    let paired = pair(&client, &server).await;
    let mut link = Link::start(client.clone(), paired, no_discovery());
    wait_for(&mut link, "connected", Duration::from_secs(10), connected).await;
    let handle = link.handle();
    let all = (0..8).map(|_| handle.request("hold", vec![], Duration::ZERO));
    for r in futures_util::future::join_all(all).await {
        assert_eq!(r.unwrap(), "held");
    }
    assert!(
        peak.load(Ordering::SeqCst) >= 4,
        "requests ran one at a time (peak {})",
        peak.load(Ordering::SeqCst)
    );
    link.close().await;
    server.stop().await;
}

#[tokio::test]
async fn revocation_while_connected_is_terminal() {
    let (sdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = TestServer::start(sdir.path(), test_config()).await;
    let client = quick_client(cdir.path());
    let paired = pair(&client, &server).await;
    let mut link = Link::start(client.clone(), paired, no_discovery());
    wait_for(&mut link, "connected", Duration::from_secs(10), connected).await;
    server.server.revoke(&client.id().to_hex()).await.unwrap();
    let reason = wait_for(
        &mut link,
        "re-pair required",
        Duration::from_secs(10),
        |e| match e {
            LinkEvent::RepairRequired { reason } => Some(*reason),
            _ => None,
        },
    )
    .await;
    assert_eq!(reason, RepairReason::Revoked);
    // No retry loop: the link ends, and requests say why at once.
    let rest = tokio::time::timeout(Duration::from_secs(3), async {
        let mut seen = Vec::new();
        while let Some(ev) = link.next_event().await {
            seen.push(ev);
        }
        seen
    })
    .await
    .expect("the link ended");
    assert!(
        !rest
            .iter()
            .any(|e| matches!(e, LinkEvent::Connecting { .. })),
        "it tried again: {rest:?}"
    );
    match link.request("ping", vec![], Duration::from_secs(5)).await {
        Err(ClientError::RepairRequired { reason }) => assert_eq!(reason, RepairReason::Revoked),
        other => panic!("expected re-pair required, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_moved_is_found_again_by_discovery_and_its_address_saved() {
    let (sdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = {
        let l = std::net::TcpListener::bind("127.0.13.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let old: SocketAddr = SocketAddr::from(([127, 0, 13, 1], port));
    let new: SocketAddr = SocketAddr::from(([127, 0, 13, 5], port));
    let server = TestServer::start_on(sdir.path(), test_config(), old).await;
    let client = quick_client(cdir.path());
    let paired = pair(&client, &server).await;
    let options = LinkOptions {
        discovery: Some(DiscoveryOptions {
            port,
            mdns: false,
            broadcast: false,
            subnets: vec!["127.0.13.0/29".parse().unwrap()],
            listen: Duration::from_millis(500),
            ..DiscoveryOptions::default()
        }),
        ..no_discovery()
    };
    let mut link = Link::start(client.clone(), paired, options);
    wait_for(&mut link, "connected", Duration::from_secs(10), connected).await;
    // The server goes, and comes back at another address.
    server.stop().await;
    wait_for(&mut link, "lost", Duration::from_secs(10), lost).await;
    let server = TestServer::start_on(sdir.path(), test_config(), new).await;
    let (addr, via) = wait_for(&mut link, "found again", Duration::from_secs(30), connected).await;
    assert_eq!(addr, new);
    assert_eq!(via, Some(Via::Scan));
    assert_eq!(
        link.request("ping", vec![], Duration::from_secs(5))
            .await
            .unwrap(),
        "pong"
    );
    // The address that answered is saved first.
    assert_eq!(client.select(None).unwrap().addrs.first(), Some(&new));
    link.close().await;
    server.stop().await;
}

#[tokio::test]
async fn an_address_discovery_found_is_reported_as_saved_after_a_restart_and_a_typed_one_stays_manual()
 {
    let (sdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let addr: SocketAddr = "127.0.12.9:0".parse().unwrap();
    let server = TestServer::start_on(sdir.path(), test_config(), addr).await;
    let addr = server.addr;
    let client = quick_client(cdir.path());
    let paired = pair(&client, &server).await;

    // Connected to where the sweep found it: the first connection says so; after the server
    // restarts, the address is only where it was (`last`), not one anybody typed.
    let found = LinkOptions {
        first: Some((addr, Via::Scan)),
        ..no_discovery()
    };
    let mut link = Link::start(client.clone(), paired.clone(), found);
    let first = wait_for(&mut link, "connected", Duration::from_secs(10), connected).await;
    assert_eq!(first, (addr, Some(Via::Scan)));
    server.stop().await;
    wait_for(&mut link, "lost", Duration::from_secs(10), lost).await;
    let server = TestServer::start_on(sdir.path(), test_config(), addr).await;
    let again = wait_for(&mut link, "reconnected", Duration::from_secs(20), connected).await;
    assert_eq!(again, (addr, Some(Via::Last)));
    link.close().await;

    // Typed with --server: manual every time.
    let typed = LinkOptions {
        first: Some((addr, Via::Manual)),
        ..no_discovery()
    };
    let mut link = Link::start(client.clone(), paired, typed);
    let first = wait_for(&mut link, "connected", Duration::from_secs(10), connected).await;
    assert_eq!(first, (addr, Some(Via::Manual)));
    server.stop().await;
    wait_for(&mut link, "lost", Duration::from_secs(10), lost).await;
    let server = TestServer::start_on(sdir.path(), test_config(), addr).await;
    let again = wait_for(&mut link, "reconnected", Duration::from_secs(20), connected).await;
    assert_eq!(again, (addr, Some(Via::Manual)));
    link.close().await;
    server.stop().await;
}
