//! Hostile load: what a stranger with many addresses does to a server, as bounded loops that
//! count what they achieved. Used by `tests/attack.rs` to show the limits hold, and to
//! measure the figures in SECURITY.md.
//!
//! Owns the attackers only: guessers that answer fresh codes with guesses, connections that
//! keep asking while refused, and cheap failures from distinct addresses. Every address is on
//! 127.0.0.0/8 (see [`source`]), and every loop ends at a deadline or a count.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csc_shared::client::{Client, ClientError, ClientOptions};
use csc_shared::connection::Connection;
use csc_shared::identity::Identity;
use csc_shared::message::{B64, Message, PairFailure};
use csc_shared::pairing::Code;
use csc_shared::tls::{self, ServerTrust};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::BenchError;

/// A raw TLS connection that can send any message.
pub type Raw = Connection<tokio_rustls::client::TlsStream<TcpStream>>;

/// Attacker address number `n` within block `block` (1..=254): `127.block.x.y`, never a
/// network or broadcast address of its /24. Blocks keep attackers apart from each other and
/// from the honest client on 127.0.0.1.
pub fn source(block: u8, n: u32) -> IpAddr {
    let x = (n / 254) as u8;
    let y = (n % 254 + 1) as u8;
    IpAddr::V4(Ipv4Addr::new(127, block, x, y))
}

/// One TLS client configuration for many connections (one key, any server).
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, BenchError> {
    let id =
        Identity::generate("attacker").map_err(|e| BenchError::Setup(format!("identity: {e}")))?;
    Ok(tls::client_config(&id, ServerTrust::Any)?)
}

/// Open a raw connection from `local` to `addr`.
pub async fn dial(
    config: &Arc<rustls::ClientConfig>,
    local: IpAddr,
    addr: SocketAddr,
) -> Result<Raw, BenchError> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .map_err(|_| BenchError::Timeout(format!("connect from {local}")))??;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(tls::server_name(), tcp),
    )
    .await
    .map_err(|_| BenchError::Timeout(format!("TLS handshake from {local}")))??;
    Ok(Connection::new(tls, 1 << 20))
}

/// What a group of attackers achieved, counted as it happens.
#[derive(Debug, Default)]
pub struct Tally {
    /// TLS connections completed.
    pub connections: AtomicU64,
    /// Codes the server issued to the attackers.
    pub codes: AtomicU64,
    /// Answers the server told were wrong.
    pub wrong: AtomicU64,
    /// Pairings that succeeded (a blind pairing: must stay 0).
    pub paired: AtomicU64,
    /// Connections the server closed right after refusing them.
    pub closed_after_refusal: AtomicU64,
    /// Connections that stayed open after a refusal (must stay 0).
    pub open_after_refusal: AtomicU64,
    /// Connections closed before the server said anything (evicted to make room).
    pub closed_unanswered: AtomicU64,
    refusals: Mutex<HashMap<String, u64>>,
}

impl Tally {
    fn refused(&self, why: &str) {
        *self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(why.to_string())
            .or_default() += 1;
    }

    /// Refusals by reason (`pairing_closed`, `rate_limited`, …, or an error text).
    pub fn refusals(&self) -> HashMap<String, u64> {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refusals with `reason`.
    pub fn refusals_of(&self, reason: &str) -> u64 {
        self.refusals().get(reason).copied().unwrap_or(0)
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn reason_name(reason: PairFailure) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{reason:?}"))
}

/// A guesser at `local`: until `until`, ask for codes with the real client engine and answer
/// each with a random guess, as fast as the server lets it. Each address keeps its own state
/// folder under `dir`, as a real attacker machine would.
pub async fn guesser(
    dir: std::path::PathBuf,
    local: IpAddr,
    addr: SocketAddr,
    until: Instant,
    tally: Arc<Tally>,
) -> Result<(), BenchError> {
    let options = ClientOptions {
        local_ip: Some(local),
        connect_timeout: Duration::from_secs(5),
        step_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    let client = Client::open(&dir, &format!("guesser-{local}"), options)?;
    while Instant::now() < until {
        let started = tokio::time::timeout_at(until, client.start_pairing(addr)).await;
        let mut pairing = match started {
            Err(_) => break,
            Ok(Ok(p)) => {
                tally.connections.fetch_add(1, Ordering::Relaxed);
                tally.codes.fetch_add(1, Ordering::Relaxed);
                p
            }
            Ok(Err(e)) => {
                note_refusal(&tally, &e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            let guess = Code::parse(&format!("{:06}", rand::random::<u32>() % 1_000_000))
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            match tokio::time::timeout_at(until, pairing.submit(&guess)).await {
                Err(_) => return Ok(()),
                Ok(Ok(_)) => {
                    tally.paired.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Err(ClientError::WrongCode { .. })) => {
                    tally.wrong.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(ClientError::CodeExhausted)) => {
                    tally.wrong.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Err(e)) => {
                    note_refusal(&tally, &e);
                    break;
                }
            }
        }
    }
    Ok(())
}

fn note_refusal(tally: &Tally, e: &ClientError) {
    match e {
        ClientError::PairingRefused { reason, .. } => tally.refused(&reason_name(*reason)),
        ClientError::CodeExpired => tally.refused("code_expired"),
        ClientError::Connection(_) | ClientError::Closed(_) => tally.refused("closed"),
        ClientError::Dial(_) => tally.refused("unreachable"),
        _ => tally.refused("other"),
    }
}

/// One connection from `local` that asks to pair, and asks again after any refusal: records
/// whether the server answered and then closed the connection (as it must), or kept it.
pub async fn ask_after_refusal(
    config: &Arc<rustls::ClientConfig>,
    local: IpAddr,
    addr: SocketAddr,
    tally: &Tally,
) -> Result<(), BenchError> {
    let mut conn = dial(config, local, addr).await?;
    tally.connections.fetch_add(1, Ordering::Relaxed);
    for _ in 0..3 {
        let asked = conn
            .send(&Message::PairRequest {
                client_name: "again".into(),
            })
            .await;
        if asked.is_err() {
            tally.closed_unanswered.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match conn.expect::<Message>(Duration::from_secs(30)).await {
            Ok(Message::PairFailed { reason, .. }) => {
                tally.refused(&reason_name(reason));
                // The server must close now: the next read sees the end, not a new timeout.
                match conn.expect::<Message>(Duration::from_secs(30)).await {
                    Ok(_) => {
                        tally.open_after_refusal.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(csc_shared::connection::ConnectionError::Timeout) => {
                        tally.open_after_refusal.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(_) => {
                        tally.closed_after_refusal.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                }
            }
            Ok(Message::PairChallenge { .. }) => {
                tally.codes.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Ok(_) => {
                tally.refused("unexpected");
                return Ok(());
            }
            Err(_) => {
                tally.closed_unanswered.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One cheap failure from `local`: ask for a code, then answer with a malformed SPAKE2
/// message, which the server counts as a wrong answer. Returns whether it was counted so.
pub async fn one_failure(
    config: &Arc<rustls::ClientConfig>,
    local: IpAddr,
    addr: SocketAddr,
    tally: &Tally,
) -> Result<bool, BenchError> {
    let mut conn = dial(config, local, addr).await?;
    tally.connections.fetch_add(1, Ordering::Relaxed);
    conn.send(&Message::PairRequest {
        client_name: "failure".into(),
    })
    .await?;
    match conn.expect::<Message>(Duration::from_secs(30)).await? {
        Message::PairChallenge { .. } => {
            tally.codes.fetch_add(1, Ordering::Relaxed);
        }
        Message::PairFailed { reason, .. } => {
            tally.refused(&reason_name(reason));
            return Ok(false);
        }
        other => {
            return Err(BenchError::Mismatch(format!(
                "expected pair_challenge, got {}",
                other.kind()
            )));
        }
    }
    conn.send(&Message::PairAttempt {
        pake: B64(vec![0xFF; 33]),
    })
    .await?;
    let counted = match conn.expect::<Message>(Duration::from_secs(30)).await? {
        Message::PairFailed {
            reason: PairFailure::WrongCode | PairFailure::CodeExhausted,
            ..
        } => {
            tally.wrong.fetch_add(1, Ordering::Relaxed);
            true
        }
        Message::PairFailed { reason, .. } => {
            tally.refused(&reason_name(reason));
            false
        }
        other => {
            return Err(BenchError::Mismatch(format!(
                "expected pair_failed, got {}",
                other.kind()
            )));
        }
    };
    conn.close().await;
    Ok(counted)
}

/// A hoarder at `local`: until `until`, hold a pending request open as long as the server
/// allows, and ask again from the same address whenever it is refused, displaced or expires.
pub async fn hoarder(
    config: Arc<rustls::ClientConfig>,
    local: IpAddr,
    addr: SocketAddr,
    until: Instant,
    tally: Arc<Tally>,
) {
    while Instant::now() < until {
        let Ok(Ok(mut conn)) = tokio::time::timeout_at(until, dial(&config, local, addr)).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        if conn
            .send(&Message::PairRequest {
                client_name: "kiosk-1".into(),
            })
            .await
            .is_err()
        {
            continue;
        }
        // Hold: read whatever comes until the server ends it or time is up.
        loop {
            match tokio::time::timeout_at(until, conn.read::<Message>()).await {
                Err(_) => return,
                Ok(Ok(Some(Message::PairChallenge { .. }))) => {
                    tally.codes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(Some(Message::PairFailed { reason, .. }))) => {
                    tally.refused(&reason_name(reason));
                }
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Ok(Err(_)) => break,
            }
        }
        // Ask again at once: the most a hoarder can do.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
