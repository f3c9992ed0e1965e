//! The real `client-tui pair` against a rogue server on 127.0.0.1: it completes TLS with our
//! ALPN, then sends numbers no honest server sends (a code lifetime of `u64::MAX` seconds,
//! `u32::MAX` attempts, a wait of `u64::MAX` ms, a 9-digit code). The client must end with a
//! documented exit code (never 101, a panic) and a message that says what happened, without
//! sitting out the absurd wait.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csc_shared::connection::Connection;
use csc_shared::identity::Identity;
use csc_shared::message::{Message, PairFailure};
use csc_shared::tls;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

/// Long enough for any honest run on a loaded machine; only a hang gets near it.
const HANG: Duration = Duration::from_secs(60);

/// A rogue server that answers `pair_request` with `request` (closing after a refusal, as
/// servers do) and every `pair_attempt` with `attempt`. Stops with its runtime.
struct Rogue {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn rogue(request: Message, attempt: Message) -> Rogue {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let identity = Identity::generate("rogue").unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&identity).unwrap());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (request, attempt) = (Arc::new(request), Arc::new(attempt));
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, request, attempt) = (acceptor.clone(), request.clone(), attempt.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut conn = Connection::new(tls, 1 << 20);
                while let Ok(Some(msg)) = conn.read::<Message>().await {
                    let reply = match msg {
                        Message::PairRequest { .. } => &request,
                        Message::PairAttempt { .. } => &attempt,
                        _ => continue,
                    };
                    if conn.send(reply.as_ref()).await.is_err() {
                        return;
                    }
                    if matches!(reply.as_ref(), Message::PairFailed { .. })
                        && matches!(msg, Message::PairRequest { .. })
                    {
                        conn.close().await;
                        return;
                    }
                }
            });
        }
    });
    Rogue { addr, _rt: rt }
}

/// Run `client-tui pair --server ROGUE` with `typed` on stdin; fails the test on a hang.
fn pair(rogue: &Rogue, typed: &str) -> (Output, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(CLIENT)
        .arg("--state-dir")
        .arg(dir.path())
        .args([
            "--name",
            "kiosk",
            "--subnet",
            "127.0.0.1/32",
            "pair",
            "--server",
        ])
        .arg(rogue.addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG) {
        Ok(out) => (out.unwrap(), started.elapsed()),
        Err(_) => {
            // SAFETY: a signal to our own child, not reaped yet (its waiter is still waiting).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("client-tui pair was still running after {HANG:?}");
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn challenge(code_digits: u8) -> Message {
    Message::PairChallenge {
        server_name: "rogue".into(),
        code_digits,
        expires_in_s: u64::MAX,
        attempts_left: u32::MAX,
    }
}

fn failed(reason: PairFailure, retry_after_ms: Option<u64>) -> Message {
    Message::PairFailed {
        reason,
        attempts_left: u32::MAX,
        retry_after_ms,
    }
}

#[test]
fn a_code_lifetime_of_u64_max_is_shown_as_a_day_and_does_not_panic() {
    let r = rogue(challenge(6), failed(PairFailure::CodeExpired, None));
    let (out, took) = pair(&r, "123 456\n");
    let err = stderr(&out);
    eprintln!(
        "u64::MAX lifetime: exit {:?} in {took:?}",
        out.status.code()
    );
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("valid for 24 h, 1000 attempts"), "{err}");
    assert!(err.contains("code expired"), "{err}");
}

#[test]
fn a_wait_of_u64_max_ms_after_a_wrong_code_is_reported_not_slept() {
    let r = rogue(challenge(6), failed(PairFailure::WrongCode, Some(u64::MAX)));
    let (out, took) = pair(&r, "111111\n222222\n");
    let err = stderr(&out);
    eprintln!("u64::MAX wait: exit {:?} in {took:?}", out.status.code());
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("wrong code, 1000 attempts left; next try in 24 h"),
        "{err}"
    );
    assert!(
        err.contains("pairing refused: too many failures from this address: wait and retry (try again in 24 h)"),
        "{err}"
    );
}

#[test]
fn a_closed_pairing_with_a_huge_reopening_time_exits_4_and_says_so() {
    let r = rogue(
        failed(PairFailure::PairingClosed, Some(u64::MAX)),
        failed(PairFailure::WrongCode, None),
    );
    let (out, took) = pair(&r, "123456\n");
    let err = stderr(&out);
    eprintln!("pairing closed: exit {:?} in {took:?}", out.status.code());
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("pairing is closed on this server: ask its operator to open it (reopens by itself in 24 h)"),
        "{err}"
    );
}

#[test]
fn a_code_of_another_length_is_a_protocol_error() {
    let r = rogue(challenge(9), failed(PairFailure::WrongCode, None));
    let (out, _) = pair(&r, "123456\n");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("protocol error"), "{err}");
    assert!(err.contains("9-digit code"), "{err}");
}
