//! The UDP responder under a crowd, with real sockets on loopback: 6 000 sources on distinct
//! 127.1.x.y addresses each probe once a second (more sources than the old rate limiter could
//! track), and a new source that arrives once the crowd is known probes 40 times. The new
//! source must still be answered, and so must the crowd. Everything stays on 127.0.0.0/8.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use csc_shared::discovery::wire::{encode_probe, parse_announce};
use csc_shared::discovery::{AnnounceInfo, answer_probes, raise_fd_limit};
use csc_shared::identity::PeerId;
use tokio::net::UdpSocket;
use tokio::time::Instant;

const CROWD: usize = 6_000;
/// The crowd probes this long; the newcomer arrives after its first second, once the crowd
/// is known to the responder, and probes for the rest.
const SECONDS: u64 = 6;
const NEWCOMER_FROM: Duration = Duration::from_millis(1_100);
const NEWCOMER_FOR: Duration = Duration::from_secs(5);
/// Each second's probes go out in this many slices over the first [`BURST`] of the second:
/// senders that started together stay in step (and that is what filled the old table with
/// young entries every second).
const SLICES: u64 = 50;
const BURST: Duration = Duration::from_millis(250);
const NEWCOMER_PROBES: usize = 40;

/// The i-th crowd address: 127.1.0.1 … 127.1.23.250.
fn crowd_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (1 + i % 250) as u8)
}

/// A larger receive buffer, so what is measured is the rate limiter and not the kernel
/// dropping a burst (best effort: the kernel caps it at `rmem_max`).
/// (`SO_RCVBUFFORCE` goes past it where the test may, as root in CI).
fn widen_receive_buffer(socket: &UdpSocket) {
    let size: libc::c_int = 16 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket and a pointer to a c_int of the size passed.
        let done = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done == 0 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_thousand_steady_probers_do_not_blind_a_new_one() {
    let limit = raise_fd_limit();
    assert!(
        limit >= CROWD as u64 + 256,
        "this test needs {} open files, the limit is {limit}",
        CROWD + 256
    );
    let responder = UdpSocket::bind("127.0.0.7:0").await.unwrap();
    widen_receive_buffer(&responder);
    let target = responder.local_addr().unwrap();
    let info = AnnounceInfo {
        id: PeerId([5; 32]),
        name: "crowded".into(),
        port: 47474,
    };
    let serving = tokio::spawn(answer_probes(responder, info));

    let mut crowd = Vec::with_capacity(CROWD);
    for i in 0..CROWD {
        crowd.push(
            UdpSocket::bind(SocketAddr::from((crowd_ip(i), 0)))
                .await
                .unwrap_or_else(|e| panic!("bind {}: {e}", crowd_ip(i))),
        );
    }
    let newcomer = UdpSocket::bind("127.2.0.1:0").await.unwrap();

    let started = Instant::now();
    let crowd_task = tokio::spawn(async move {
        let probe = encode_probe("crowd");
        let per_slice = CROWD.div_ceil(SLICES as usize);
        let mut sent = 0usize;
        for second in 0..SECONDS {
            for slice in 0..SLICES {
                let at =
                    started + Duration::from_secs(second) + BURST * slice as u32 / SLICES as u32;
                tokio::time::sleep_until(at).await;
                let from = slice as usize * per_slice;
                for socket in &crowd[from.min(CROWD)..(from + per_slice).min(CROWD)] {
                    if socket.send_to(&probe, target).await.is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        (crowd, sent)
    });

    // The newcomer: 40 probes over five seconds, each with its own nonce.
    let spacing = NEWCOMER_FOR / NEWCOMER_PROBES as u32;
    let mut answered: HashSet<String> = HashSet::new();
    let mut buf = vec![0u8; 2048];
    let mut next = 0usize;
    let deadline = started + Duration::from_secs(SECONDS) + Duration::from_millis(500);
    loop {
        let due = started + NEWCOMER_FROM + spacing * next as u32;
        if next < NEWCOMER_PROBES && Instant::now() >= due {
            newcomer
                .send_to(&encode_probe(&format!("new-{next}")), target)
                .await
                .unwrap();
            next += 1;
            continue;
        }
        let wake = if next < NEWCOMER_PROBES {
            due
        } else {
            deadline
        };
        match tokio::time::timeout_at(wake, newcomer.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                if let Some(a) = parse_announce(&buf[..n]) {
                    answered.insert(a.nonce);
                }
            }
            Ok(Err(e)) => panic!("newcomer receive: {e}"),
            Err(_) if Instant::now() >= deadline => break,
            Err(_) => {}
        }
    }
    let (crowd, sent) = crowd_task.await.unwrap();
    let elapsed = started.elapsed();

    // The crowd was served too: sample every 100th member's queued replies.
    let mut sample_replies = Vec::new();
    for socket in crowd.iter().step_by(100) {
        let mut got = 0;
        while socket.try_recv_from(&mut buf).is_ok() {
            got += 1;
        }
        sample_replies.push(got);
    }
    serving.abort();
    let sample_total: usize = sample_replies.iter().sum();
    eprintln!(
        "udp crowd: {CROWD} sources × {SECONDS} s ({sent} probes sent); newcomer answered {}/{NEWCOMER_PROBES}; \
         sampled crowd members got {sample_total}/{} replies; {:.1} s",
        answered.len(),
        sample_replies.len() * SECONDS as usize,
        elapsed.as_secs_f64()
    );
    assert_eq!(sent, CROWD * SECONDS as usize, "every crowd probe went out");
    assert!(
        answered.len() >= NEWCOMER_PROBES - 2,
        "the new source was answered {} times out of {NEWCOMER_PROBES}",
        answered.len()
    );
    assert!(
        sample_total * 10 >= sample_replies.len() * SECONDS as usize * 9,
        "the crowd itself was refused: {sample_replies:?}"
    );
}
