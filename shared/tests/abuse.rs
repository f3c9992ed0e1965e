//! Abuse from the LAN: a rogue server answering discovery with a paired server's id, wrong
//! codes from many connections and addresses at once, and a flood of UDP probes.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use csc_shared::client::{ClientError, ClientOptions, DialError};
use csc_shared::discovery::wire::{encode_announce, encode_probe, parse_announce, parse_probe};
use csc_shared::discovery::{DiscoveryOptions, Via};
use csc_shared::message::PairFailure;
use csc_shared::server::ServerEvent;

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_rogue_server_claiming_a_paired_id_is_found_but_refused_in_tls() {
    let port = free_port().await;
    let (sdir, rdir, cdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let real = TestServer::start_on(
        sdir.path(),
        test_config(),
        SocketAddr::from(([127, 0, 5, 1], port)),
    )
    .await;
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &real).await;
    let real_id = real.server.id();
    real.stop().await;

    // The rogue: its own TLS server at 127.0.5.7, and a UDP responder there announcing the
    // paired server's id. 127.0.5.7 is the broadcast address of 127.0.5.4/30, so the client's
    // probe reaches it.
    let rogue = TestServer::start_on(
        rdir.path(),
        test_config(),
        SocketAddr::from(([127, 0, 5, 7], port)),
    )
    .await;
    let udp = tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 5, 7], port)))
        .await
        .unwrap();
    let liar = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut answered = 0;
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            if let Some(p) = parse_probe(&buf[..n]) {
                let a = encode_announce(real_id, "front-desk", port, &p.nonce, n).unwrap();
                udp.send_to(&a, from).await.unwrap();
                answered += 1;
            }
            if answered >= 2 {
                break;
            }
        }
        answered
    });
    let options = DiscoveryOptions {
        port,
        mdns: false,
        scan: false,
        subnets: vec!["127.0.5.4/30".parse().unwrap()],
        listen: Duration::from_millis(700),
        ..DiscoveryOptions::default()
    };
    let mut dead = paired.clone();
    dead.addrs = vec![SocketAddr::from(([127, 0, 5, 2], port))];
    match client.connect_auto(&dead, None, Some(options)).await {
        Err(ClientError::Dial(DialError::IdentityMismatch {
            expected,
            found,
            addr,
        })) => {
            assert_eq!(expected, real_id.short());
            assert_eq!(found, rogue.server.id().short());
            assert_eq!(addr, SocketAddr::from(([127, 0, 5, 7], port)).to_string());
        }
        other => panic!("the rogue must be refused, got {:?}", other.map(|r| r.via)),
    }
    assert!(liar.await.unwrap() >= 1, "the rogue was asked and answered");
    // The rogue never saw a token: the pinned TLS check failed before anything was sent.
    assert_eq!(
        rogue
            .events
            .count(|e| matches!(e, ServerEvent::AuthFailed { .. })),
        0
    );
    // The client's saved addresses were not changed to the rogue's.
    assert!(
        !client
            .select(None)
            .unwrap()
            .addrs
            .contains(&SocketAddr::from(([127, 0, 5, 7], port)))
    );
    rogue.stop().await;
}

#[tokio::test]
async fn wrong_codes_from_many_connections_and_addresses_never_exceed_the_limits() {
    let sdir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.pairing.max_pending_total = 64;
    let server = TestServer::start(sdir.path(), config).await;
    let addr = server.addr;
    // 10 addresses x 3 identities each, all guessing at once, each asking for fresh codes.
    let mut tasks = Vec::new();
    for a in 0..10u8 {
        for k in 0..3 {
            tasks.push(tokio::spawn(async move {
                let dir = tempfile::tempdir().unwrap();
                let options = ClientOptions {
                    local_ip: Some(std::net::IpAddr::from([127, 0, 6, 10 + a])),
                    ..ClientOptions::default()
                };
                let c = csc_shared::client::Client::open(
                    dir.path(),
                    &format!("guesser-{a}-{k}"),
                    options,
                )
                .unwrap();
                let mut guesses = 0u32;
                for round in 0..3 {
                    let Ok(mut p) = c.start_pairing(addr).await else {
                        continue;
                    };
                    for g in 0..8u32 {
                        let code = csc_shared::pairing::Code::parse(&format!(
                            "{:06}",
                            (a as u32 * 1000 + k * 100 + round * 10 + g) % 1_000_000
                        ))
                        .unwrap();
                        match p.submit(&code).await {
                            Ok(_) => return (guesses, true),
                            Err(ClientError::WrongCode { .. }) => guesses += 1,
                            Err(_) => break,
                        }
                    }
                }
                (guesses, false)
            }));
        }
    }
    let mut paired = false;
    for t in tasks {
        let (_, p) = t.await.unwrap();
        paired |= p;
    }
    let events = server.events.all();
    // Per code (request), wrong answers never exceed 5.
    let mut wrong: HashMap<u64, u32> = HashMap::new();
    let mut requests = 0;
    for e in &events {
        match e {
            ServerEvent::PairRequest { .. } => requests += 1,
            ServerEvent::PairFailed {
                request_id: Some(id),
                reason: PairFailure::WrongCode | PairFailure::CodeExhausted,
                ..
            } => *wrong.entry(*id).or_default() += 1,
            _ => {}
        }
    }
    assert!(requests > 0);
    assert!(wrong.values().all(|&n| n <= 5), "{wrong:?}");
    // Only one pending request per address at a time: never more than 10 codes alive at once.
    let mut alive = 0i32;
    let mut peak = 0i32;
    for e in &events {
        match e {
            ServerEvent::PairRequest { .. } => alive += 1,
            ServerEvent::PairClosed { .. } | ServerEvent::Paired { .. } => alive -= 1,
            _ => {}
        }
        peak = peak.max(alive);
    }
    assert!(peak <= 10, "{peak} codes pending at once from 10 addresses");
    // Every wrong answer was reported to the operator, and a lucky guess would have been too.
    assert_eq!(
        paired,
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::Paired { .. })),
        "pairings reported"
    );
    let total_wrong: u32 = wrong.values().sum();
    assert!(
        total_wrong as usize <= 5 * requests,
        "{total_wrong} wrong answers for {requests} codes"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_probes_is_rate_limited_and_service_goes_on() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let _discovery = server
        .server
        .serve_discovery(server.addr, false)
        .await
        .unwrap();
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;

    let flooder = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let probe = encode_probe("flood");
    let started = Instant::now();
    let target = server.addr;
    let mut replies = 0usize;
    let mut buf = [0u8; 2048];
    for i in 0..100_000u32 {
        let _ = flooder.send_to(&probe, target).await;
        if i % 1000 == 0 {
            while let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::ZERO, flooder.recv_from(&mut buf)).await
            {
                assert!(n <= probe.len(), "an announce larger than the probe");
                assert!(parse_announce(&buf[..n]).is_some());
                replies += 1;
            }
        }
    }
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(200), flooder.recv_from(&mut buf)).await
    {
        replies += 1;
    }
    let secs = started.elapsed().as_secs_f64().ceil() as usize + 1;
    assert!(replies >= 1, "the first probes are answered");
    assert!(
        replies <= 20 * secs,
        "{replies} replies in {secs} s to one source"
    );
    // Paired clients are still served.
    let reached = client.connect_auto(&paired, None, None).await.unwrap();
    assert_eq!(reached.via, Via::Last);
    assert_eq!(
        reached.session.request("ping", vec![]).await.unwrap(),
        "pong"
    );
    // A well-behaved prober from another address is still answered.
    let other = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    other
        .send_to(&encode_probe("polite"), target)
        .await
        .unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), other.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parse_announce(&buf[..n]).unwrap().nonce, "polite");
    server.stop().await;
}
