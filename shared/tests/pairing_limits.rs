//! The limits on pairing that hold for the whole server: the opt-in pairing window, and a
//! full pending table that hoarders cannot keep a legitimate client out of. (The failure
//! budget under 250 guessers is shown against the real binary in `bench/tests/attack.rs`.)

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use csc_shared::client::{Client, ClientError, ClientOptions};
use csc_shared::connection::Connection;
use csc_shared::identity::Identity;
use csc_shared::message::{Message, PairFailure};
use csc_shared::pairing::Code;
use csc_shared::server::{ClosedReason, PairClosedReason, PairingMode, ServerEvent};
use csc_shared::tls::{self, ServerTrust};
use tokio::net::TcpSocket;

fn client_at(dir: &std::path::Path, name: &str, ip: IpAddr) -> Client {
    let options = ClientOptions {
        local_ip: Some(ip),
        ..ClientOptions::default()
    };
    Client::open(dir, name, options).expect("client opens")
}

fn refused_with(r: Result<csc_shared::client::Pairing, ClientError>) -> Option<PairFailure> {
    match r {
        Err(ClientError::PairingRefused { reason, .. }) => Some(reason),
        _ => None,
    }
}

/// Ask for a code until one is given (a full table says when to ask again).
async fn start_pairing_patiently(
    client: &Client,
    addr: SocketAddr,
    limit: Duration,
) -> csc_shared::client::Pairing {
    let deadline = Instant::now() + limit;
    loop {
        match client.start_pairing(addr).await {
            Ok(p) => return p,
            Err(ClientError::PairingRefused {
                reason: PairFailure::TooManyPending,
                retry_after,
            }) if Instant::now() < deadline => {
                tokio::time::sleep(retry_after.unwrap_or(Duration::from_secs(1))).await;
            }
            Err(e) => panic!("pairing did not start: {e}"),
        }
    }
}

#[tokio::test]
async fn a_pairing_window_refuses_while_closed_admits_one_pairing_and_expires_on_time() {
    let sdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.pairing.mode = PairingMode::Window;
    config.pairing.open_for = Duration::from_secs(2);
    let server = TestServer::start(sdir.path(), config).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = client_at(dirs[0].path(), "a", [127, 0, 41, 1].into());
    let b = client_at(dirs[1].path(), "b", [127, 0, 41, 2].into());
    let c = client_at(dirs[2].path(), "c", [127, 0, 41, 3].into());

    // Closed until the operator opens it, and the operator was told so at start.
    assert_eq!(
        refused_with(a.start_pairing(server.addr).await),
        Some(PairFailure::PairingClosed)
    );
    server
        .events
        .wait_for("pairing_closed at start", |e| match e {
            ServerEvent::PairingClosed {
                reason: ClosedReason::NotOpened,
                ..
            } => Some(()),
            _ => None,
        })
        .await;

    // Open: one pairing succeeds, and the window closes behind it.
    let status = server.server.open_pairing(Some(Duration::from_secs(60)));
    assert!(status.open);
    let mut pa = a.start_pairing(server.addr).await.unwrap();
    let mut pb = b.start_pairing(server.addr).await.unwrap();
    let code = server.events.code_for(a.id()).await;
    pa.submit(&Code::parse(&code).unwrap()).await.unwrap();
    server
        .events
        .wait_for("window closed after pairing", |e| match e {
            ServerEvent::PairingClosed {
                reason: ClosedReason::Paired,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    // The other request that was waiting in the window is void now, even with its code.
    let code_b = server.events.code_for(b.id()).await;
    let late = pb.submit(&Code::parse(&code_b).unwrap()).await;
    assert!(late.is_err(), "a request from the closed window paired");
    assert_eq!(
        refused_with(c.start_pairing(server.addr).await),
        Some(PairFailure::PairingClosed)
    );

    // Opened with the default length (2 s here), it expires by itself.
    let opened_at = Instant::now();
    let status = server.server.open_pairing(None);
    assert!(status.open);
    assert!(status.closes_in_s.is_some_and(|s| s <= 2), "{status:?}");
    let _waiting = c.start_pairing(server.addr).await.unwrap();
    server
        .events
        .wait_for("window expired", |e| match e {
            ServerEvent::PairingClosed {
                reason: ClosedReason::WindowExpired,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    let open_for = opened_at.elapsed();
    assert!(
        open_for >= Duration::from_millis(1900),
        "closed after {open_for:?}, before its time"
    );
    assert!(!server.server.pairing_status().open);
    assert_eq!(
        refused_with(b.start_pairing(server.addr).await),
        Some(PairFailure::PairingClosed)
    );
    // The request pending when the window ended was cancelled and reported.
    server
        .events
        .wait_for("the pending request closed", |e| match e {
            ServerEvent::PairClosed { reason, .. }
                if *reason == PairClosedReason::PairingClosed =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    server.stop().await;
}

/// A hoarder at `ip`: holds a pending request as long as the server allows, and asks again
/// at once whenever its connection ends. Counts the codes it was given.
async fn hoard(addr: SocketAddr, ip: IpAddr, until: Instant, codes: Arc<AtomicU64>) {
    let id = Identity::generate("hoarder").unwrap();
    let config = tls::client_config(&id, ServerTrust::Any).unwrap();
    while Instant::now() < until {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
        let Ok(tcp) = socket.connect(addr).await else {
            continue;
        };
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let Ok(tls) = connector.connect(tls::server_name(), tcp).await else {
            continue;
        };
        let mut conn = Connection::new(tls, 1 << 20);
        let asked = conn
            .send(&Message::PairRequest {
                client_name: "kiosk-1".into(),
            })
            .await;
        if asked.is_err() {
            continue;
        }
        let left = until.saturating_duration_since(Instant::now());
        loop {
            match tokio::time::timeout(left, conn.read::<Message>()).await {
                Ok(Ok(Some(Message::PairChallenge { .. }))) => {
                    codes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Hoarders hold the whole pending table from `addrs`; then a client at `honest_ip` asks.
async fn honest_client_pairs_despite(hoarders: u8, table: usize, honest_ip: IpAddr) {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.pairing.max_pending_total = table;
    let server = TestServer::start(sdir.path(), config).await;
    let until = Instant::now() + Duration::from_secs(40);
    let codes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 1..=hoarders {
        tasks.push(tokio::spawn(hoard(
            server.addr,
            IpAddr::from([127, 0, 40, i]),
            until,
            codes.clone(),
        )));
    }
    // The hoarders fill the table.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.server.pairing_status().pending < table {
        assert!(
            Instant::now() < deadline,
            "the hoarders never filled the table"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let their requests age past the protection of new ones.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(server.server.pairing_status().pending, table);

    // A client from the same /24 asks, gets a code, and pairs.
    let honest = client_at(cdir.path(), "honest", honest_ip);
    let mut pairing = start_pairing_patiently(&honest, server.addr, Duration::from_secs(20)).await;
    let code = server.events.code_for(honest.id()).await;
    let paired = pairing.submit(&Code::parse(&code).unwrap()).await;
    let displaced = server
        .events
        .count(|e| matches!(e, ServerEvent::PairClosed { reason, .. } if *reason == PairClosedReason::Displaced));
    eprintln!(
        "{hoarders} hoarders holding a table of {table}: {} codes issued to them, {displaced} displaced; the honest client paired: {}",
        codes.load(Ordering::Relaxed),
        paired.is_ok()
    );
    paired.expect("the honest client pairs");
    assert!(displaced >= 1, "the honest request displaced a hoarder");
    // The table is still full of hoarders: they were held off, not turned away.
    assert!(server.server.pairing_status().pending >= table - 1);
    for t in tasks {
        t.abort();
    }
    server.stop().await;
}

#[tokio::test]
async fn a_legitimate_client_pairs_while_hoarders_hold_requests_from_250_addresses() {
    honest_client_pairs_despite(250, 64, [127, 0, 40, 251].into()).await;
}

#[tokio::test]
async fn sixteen_hoarders_holding_a_table_of_sixteen_do_not_keep_a_client_out() {
    honest_client_pairs_despite(16, 16, [127, 0, 40, 252].into()).await;
}

/// An answer being checked holds a unit of the failure budget. A connection evicted in the
/// middle of the check (here by a newer one from its address, over a cap of one) must not
/// keep the unit reserved for ever: it is settled as a wrong answer, like any abandoned one.
/// Left reserved, a handful of such connections would hold the whole budget and refuse every
/// later answer as `rate_limited`.
#[tokio::test]
async fn a_connection_evicted_while_its_answer_is_checked_settles_its_budget_unit() {
    let sdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.max_unauthenticated_per_addr = 1;
    config.pairing.budget.failures = 3;
    let server = TestServer::start(sdir.path(), config).await;
    let id = Identity::generate("staller").unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(tls::client_config(&id, ServerTrust::Any).unwrap());
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = connector.connect(tls::server_name(), tcp).await.unwrap();
    let mut conn = Connection::new(tls, 1 << 20);
    conn.send(&Message::PairRequest {
        client_name: "staller".into(),
    })
    .await
    .unwrap();
    let challenge: Message = conn.expect(Duration::from_secs(5)).await.unwrap();
    assert!(
        matches!(challenge, Message::PairChallenge { .. }),
        "{challenge:?}"
    );
    // Any well-formed SPAKE2 message gets the server's reply; then it waits for the MAC.
    let binding = csc_shared::pairing::Binding {
        exporter: [0; 32],
        client_id: id.id(),
        server_id: server.server.id(),
        client_cert_hash: [0; 32],
        server_cert_hash: [0; 32],
    };
    let (_, msg_a) =
        csc_shared::pairing::ClientPake::start(binding, &Code::parse("000000").unwrap());
    conn.send(&Message::PairAttempt {
        pake: csc_shared::message::B64(msg_a),
    })
    .await
    .unwrap();
    let pake: Message = conn.expect(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(pake, Message::PairPake { .. }), "{pake:?}");
    assert_eq!(server.server.pairing_status().failures, 0);

    // A newer connection from the same address evicts this one mid-check.
    let _newer = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let after = tokio::time::timeout(Duration::from_secs(5), conn.read::<Message>()).await;
    assert!(
        matches!(after, Ok(Ok(None) | Err(_))),
        "the staller was not evicted: {after:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.server.pairing_status().failures == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.server.pairing_status().failures,
        1,
        "the evicted answer's unit was never settled"
    );
    server
        .events
        .wait_for("pair_closed", |e| match e {
            ServerEvent::PairClosed { reason, .. } if *reason == PairClosedReason::Cancelled => {
                Some(())
            }
            _ => None,
        })
        .await;
    server.stop().await;
}
