//! A rogue server: it completes a real TLS handshake with our ALPN, then answers the client
//! engine with hostile numbers (`u64::MAX`, `u32::MAX`, zero, out of range) and with raw JSON
//! no typed server could send (negative, fractional, quoted and oversized numbers). It can also
//! play an honest SPAKE2 exchange with a code the test knows, so a pairing with hostile numbers
//! can succeed.
//!
//! Property: the engine's calls (`Client::start_pairing`, `Pairing::submit`,
//! `Pairing::request_new_code`, `Client::connect`, `Session::request`) return `Ok` or an error
//! that says something, never panic, finish within their configured timeouts, and every wait,
//! count or time they expose is within `csc_shared::client::limits`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use csc_shared::client::limits::{
    MAX_ATTEMPTS, MAX_CLOCK_AHEAD, MAX_CODE_LIFETIME, MAX_RETRY_HINT, MAX_START_RETRIES,
    MAX_TOKEN_LIFETIME,
};
use csc_shared::client::{Client, ClientError, ClientOptions, Pairing, SessionEvent};
use csc_shared::connection::Connection;
use csc_shared::identity::Identity;
use csc_shared::message::{B64, ErrorCode, Message, PairFailure, RepairReason};
use csc_shared::pairing::{Binding, CODE_DIGITS, Code, server_respond};
use csc_shared::state::PairedServer;
use csc_shared::tls;
use proptest::prelude::*;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The code the rogue's honest SPAKE2 answer uses.
const CODE: &str = "123456";

/// What the rogue sends in answer to one client message, in order.
#[derive(Debug, Clone)]
enum Reply {
    /// A typed message.
    Msg(Message),
    /// One frame of raw text.
    Raw(String),
    /// The honest `pair_pake` for the attempt just received (keyed with [`CODE`]).
    Pake,
    /// An honest `paired` (right MAC) carrying this expiry.
    Paired { token_expires_at: u64 },
    /// A `response` to the request just received, with its own id.
    Respond(serde_json::Value),
    /// Close the connection.
    Close,
    /// Nothing: the client's timeout must end the wait.
    Silence,
}

/// The rogue's answers per kind of client message (the same each time that kind comes).
#[derive(Debug, Clone, Default)]
struct Script {
    pair_request: Vec<Reply>,
    /// Answers to `pair_request` on the second and later connections, if different.
    later_pair_request: Option<Vec<Reply>>,
    pair_attempt: Vec<Reply>,
    pair_confirm: Vec<Reply>,
    auth: Vec<Reply>,
    request: Vec<Reply>,
}

/// What the rogue has seen.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicUsize,
    attempts: AtomicUsize,
}

/// A rogue server on 127.0.0.1; stopped (with all its connections) when dropped.
struct Rogue {
    addr: SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Rogue {
    async fn start(identity: Arc<Identity>, script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&identity).unwrap());
        let script = Arc::new(script);
        let seen = Arc::new(Seen::default());
        let counts = seen.clone();
        let task = tokio::spawn(async move {
            // Dropped with this task, which aborts every connection.
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, script, identity, seen) = (
                    acceptor.clone(),
                    script.clone(),
                    identity.clone(),
                    counts.clone(),
                );
                conns.spawn(async move {
                    serve(acceptor, tcp, &script, &identity, &seen).await;
                });
            }
        });
        Self { addr, seen, task }
    }

    fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    fn attempts(&self) -> usize {
        self.seen.attempts.load(Ordering::SeqCst)
    }
}

async fn serve(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    script: &Script,
    identity: &Identity,
    seen: &Seen,
) -> Option<()> {
    let nth = seen.connections.fetch_add(1, Ordering::SeqCst);
    let tls = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp))
        .await
        .ok()?
        .ok()?;
    let info = tls::server_session(&tls)?;
    let binding = Binding {
        exporter: info.exporter,
        client_id: info.peer_id,
        server_id: identity.id(),
        client_cert_hash: info.peer_cert_hash,
        server_cert_hash: identity.cert_hash(),
    };
    let code = Code::parse(CODE).ok()?;
    let mut conn = Connection::new(tls, 1 << 20);
    let mut confirmation = None;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), conn.read::<Message>())
            .await
            .ok()?
            .ok()??;
        let replies = match &msg {
            Message::PairRequest { .. } => match &script.later_pair_request {
                Some(later) if nth > 0 => later,
                _ => &script.pair_request,
            },
            Message::PairAttempt { .. } => {
                seen.attempts.fetch_add(1, Ordering::SeqCst);
                &script.pair_attempt
            }
            Message::PairConfirm { .. } => &script.pair_confirm,
            Message::Auth { .. } => &script.auth,
            Message::Request { .. } => &script.request,
            _ => continue,
        };
        for reply in replies {
            match reply {
                Reply::Msg(m) => conn.send(m).await.ok()?,
                Reply::Raw(text) => conn.send_raw(Bytes::from(text.clone())).await.ok()?,
                Reply::Pake => {
                    let Message::PairAttempt { pake } = &msg else {
                        continue;
                    };
                    match server_respond(&binding, &code, &pake.0) {
                        Ok((c, msg_b)) => {
                            confirmation = Some(c);
                            conn.send(&Message::PairPake { pake: B64(msg_b) })
                                .await
                                .ok()?;
                        }
                        Err(_) => conn.send(&Message::Pong {}).await.ok()?,
                    }
                }
                Reply::Paired { token_expires_at } => {
                    let mac = confirmation
                        .as_ref()
                        .map(|c| c.server_mac())
                        .unwrap_or_default();
                    conn.send(&Message::Paired {
                        mac: B64(mac),
                        token: "rogue-token".into(),
                        token_expires_at: *token_expires_at,
                        server_name: "rogue".into(),
                    })
                    .await
                    .ok()?;
                }
                Reply::Respond(result) => {
                    let Message::Request { id, .. } = &msg else {
                        continue;
                    };
                    conn.send(&Message::Response {
                        id: *id,
                        ok: true,
                        result: result.clone(),
                        error: None,
                    })
                    .await
                    .ok()?;
                }
                Reply::Close => {
                    conn.close().await;
                    return Some(());
                }
                Reply::Silence => {}
            }
        }
    }
}

// ---- strategies ----

fn num64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(u64::from(u32::MAX)),
        Just(i64::MAX as u64),
        Just(86_400_001),
        0..120u64,
        any::<u64>(),
    ]
}

fn num32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(5),
        Just(MAX_ATTEMPTS + 1),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

fn digits() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => Just(CODE_DIGITS as u8),
        1 => Just(0u8),
        1 => Just(5u8),
        1 => Just(7u8),
        1 => Just(u8::MAX),
    ]
}

fn reason() -> impl Strategy<Value = PairFailure> {
    prop_oneof![
        Just(PairFailure::WrongCode),
        Just(PairFailure::CodeExhausted),
        Just(PairFailure::CodeExpired),
        Just(PairFailure::RateLimited),
        Just(PairFailure::AlreadyPending),
        Just(PairFailure::TooManyPending),
        Just(PairFailure::PairingClosed),
        Just(PairFailure::Displaced),
        Just(PairFailure::Other),
    ]
}

/// A millisecond wait: often small enough for the engine to sit out (so its retry path
/// runs), otherwise anything.
fn retry_ms() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        1 => Just(None),
        2 => (0..40u64).prop_map(Some),
        3 => num64().prop_map(Some),
    ]
}

fn challenge() -> impl Strategy<Value = Message> {
    (digits(), num64(), num32()).prop_map(|(code_digits, expires_in_s, attempts_left)| {
        Message::PairChallenge {
            server_name: "rogue".into(),
            code_digits,
            expires_in_s,
            attempts_left,
        }
    })
}

fn pair_failed() -> impl Strategy<Value = Message> {
    (reason(), num32(), retry_ms()).prop_map(|(reason, attempts_left, retry_after_ms)| {
        Message::PairFailed {
            reason,
            attempts_left,
            retry_after_ms,
        }
    })
}

/// Numbers as JSON text that no `u64` or `u32` field accepts, or that overflow one.
fn bad_number() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "-1",
        "-0",
        "-9223372036854775808",
        "1.5",
        "0.0",
        "1e30",
        "18446744073709551616",
        "4294967296",
        "\"120\"",
        "null",
        "true",
        "[]",
        "{}",
    ])
}

/// Raw messages with a bad number in one numeric field.
fn raw_with_bad_number(templates: &'static [&'static str]) -> impl Strategy<Value = Reply> {
    (prop::sample::select(templates), bad_number())
        .prop_map(|(template, n)| Reply::Raw(template.replace('N', n)))
}

const REQUEST_TEMPLATES: &[&str] = &[
    r#"{"type":"pair_challenge","server_name":"r","code_digits":N,"expires_in_s":120,"attempts_left":5}"#,
    r#"{"type":"pair_challenge","server_name":"r","code_digits":6,"expires_in_s":N,"attempts_left":5}"#,
    r#"{"type":"pair_challenge","server_name":"r","code_digits":6,"expires_in_s":120,"attempts_left":N}"#,
    r#"{"type":"pair_failed","reason":"rate_limited","attempts_left":0,"retry_after_ms":N}"#,
    r#"{"type":"pair_failed","reason":"pairing_closed","attempts_left":N}"#,
];

const ATTEMPT_TEMPLATES: &[&str] = &[
    r#"{"type":"pair_failed","reason":"wrong_code","attempts_left":N,"retry_after_ms":1000}"#,
    r#"{"type":"pair_failed","reason":"wrong_code","attempts_left":4,"retry_after_ms":N}"#,
    r#"{"type":"paired","mac":"","token":"t","token_expires_at":N,"server_name":"r"}"#,
];

const SESSION_TEMPLATES: &[&str] = &[
    r#"{"type":"auth_ok","server_name":"r","token":"t2","token_expires_at":N}"#,
    r#"{"type":"notice","text":"x","at_ms":N}"#,
    r#"{"type":"response","id":N,"ok":true,"result":1}"#,
];

fn other_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Pong {}),
        Just(Message::Ping {}),
        Just(Message::Unknown),
        Just(Message::Unpaired {}),
        (num64()).prop_map(|id| Message::Response {
            id,
            ok: true,
            result: serde_json::Value::Null,
            error: None,
        }),
        Just(Message::Error {
            code: ErrorCode::RepairRequired,
            message: "go away".into(),
            reason: Some(RepairReason::Other),
        }),
        Just(Message::error(ErrorCode::Internal, "oops")),
    ]
}

/// Answers to `pair_request`.
fn request_reply() -> impl Strategy<Value = Vec<Reply>> {
    prop_oneof![
        4 => challenge().prop_map(|m| vec![Reply::Msg(m)]),
        4 => pair_failed().prop_map(|m| vec![Reply::Msg(m), Reply::Close]),
        2 => raw_with_bad_number(REQUEST_TEMPLATES).prop_map(|r| vec![r]),
        1 => other_message().prop_map(|m| vec![Reply::Msg(m)]),
        1 => Just(vec![Reply::Close]),
        1 => Just(vec![Reply::Silence]),
    ]
}

/// Answers to `pair_attempt` and then `pair_confirm`.
fn attempt_replies() -> impl Strategy<Value = (Vec<Reply>, Vec<Reply>)> {
    let confirm = prop_oneof![
        4 => num64().prop_map(|t| vec![Reply::Paired { token_expires_at: t }]),
        3 => pair_failed().prop_map(|m| vec![Reply::Msg(m)]),
        2 => raw_with_bad_number(ATTEMPT_TEMPLATES).prop_map(|r| vec![r]),
        1 => other_message().prop_map(|m| vec![Reply::Msg(m)]),
        1 => Just(vec![Reply::Close]),
        1 => Just(vec![Reply::Silence]),
    ];
    let attempt = prop_oneof![
        5 => Just(vec![Reply::Pake]),
        3 => pair_failed().prop_map(|m| vec![Reply::Msg(m)]),
        2 => raw_with_bad_number(ATTEMPT_TEMPLATES).prop_map(|r| vec![r]),
        1 => prop::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| vec![Reply::Msg(Message::PairPake { pake: B64(b) })]),
        1 => other_message().prop_map(|m| vec![Reply::Msg(m)]),
        1 => Just(vec![Reply::Close]),
        1 => Just(vec![Reply::Silence]),
    ];
    (attempt, confirm)
}

/// Answers to `auth`, then to each `request`.
fn session_replies() -> impl Strategy<Value = (Vec<Reply>, Vec<Reply>)> {
    let auth_ok = (any::<bool>(), num64()).prop_map(|(renew, token_expires_at)| {
        Reply::Msg(Message::AuthOk {
            server_name: "rogue".into(),
            token: renew.then(|| "renewed".to_string()),
            token_expires_at,
        })
    });
    let auth = prop_oneof![
        5 => auth_ok.prop_map(|r| vec![r]),
        2 => raw_with_bad_number(SESSION_TEMPLATES).prop_map(|r| vec![r]),
        1 => other_message().prop_map(|m| vec![Reply::Msg(m)]),
        1 => Just(vec![Reply::Close]),
        1 => Just(vec![Reply::Silence]),
    ];
    let notice = num64().prop_map(|at_ms| {
        Reply::Msg(Message::Notice {
            text: "hi".into(),
            at_ms,
        })
    });
    let one = prop_oneof![
        4 => Just(Reply::Respond(serde_json::json!("pong"))),
        3 => notice,
        2 => raw_with_bad_number(SESSION_TEMPLATES),
        2 => other_message().prop_map(Reply::Msg),
        1 => Just(Reply::Close),
        1 => Just(Reply::Silence),
    ];
    (auth, prop::collection::vec(one, 1..4))
}

// ---- the client side ----

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_millis(500),
        step_timeout: Duration::from_millis(300),
        max_auto_wait: Duration::from_millis(40),
        request_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    }
}

/// The longest a call may take: `steps` dials or protocol steps at their timeouts, plus the
/// waits the engine may sit out by itself, plus room for a loaded machine.
fn budget(steps: u32) -> Duration {
    let o = options();
    let per_step = o.connect_timeout + o.step_timeout;
    per_step * steps + o.auto_wait() * (MAX_START_RETRIES + 1) + Duration::from_secs(3)
}

/// Run `call`, failing the case if it outlasts `budget`.
async fn within<T>(
    what: &str,
    budget: Duration,
    call: impl std::future::Future<Output = T>,
) -> Result<T, TestCaseError> {
    tokio::time::timeout(budget, call)
        .await
        .map_err(|_| TestCaseError::fail(format!("{what} took longer than {budget:?}")))
}

/// The error says something a person can read, and its numbers are within bounds.
fn check_error(e: &ClientError) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(text.len() > 10, "unclear error: {text:?} ({e:?})");
    match e {
        ClientError::WrongCode {
            attempts_left,
            retry_after,
        } => {
            prop_assert!(*attempts_left <= MAX_ATTEMPTS, "{e:?}");
            prop_assert!(retry_after.is_none_or(|w| w <= MAX_RETRY_HINT), "{e:?}");
        }
        ClientError::PairingRefused { retry_after, .. } => {
            prop_assert!(retry_after.is_none_or(|w| w <= MAX_RETRY_HINT), "{e:?}");
        }
        _ => {}
    }
    Ok(())
}

fn check_challenge(p: &Pairing) -> Result<(), TestCaseError> {
    let ch = p.challenge();
    prop_assert!(
        ch.expires_at <= Instant::now() + MAX_CODE_LIFETIME,
        "{ch:?}"
    );
    prop_assert!(ch.attempts_left <= MAX_ATTEMPTS, "{ch:?}");
    prop_assert_eq!(usize::from(ch.code_digits), CODE_DIGITS);
    Ok(())
}

fn check_saved(client: &Client) -> Result<(), TestCaseError> {
    let limit = csc_shared::unix_now() + MAX_TOKEN_LIFETIME.as_secs();
    for s in client
        .servers()
        .map_err(|e| TestCaseError::fail(e.to_string()))?
    {
        prop_assert!(s.token_expires_at <= limit, "saved {}", s.token_expires_at);
    }
    Ok(())
}

struct World {
    rt: tokio::runtime::Runtime,
    rogue_id: Arc<Identity>,
    client: Client,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path(), "victim", options()).unwrap();
    World {
        rt,
        rogue_id: Arc::new(Identity::generate("rogue").unwrap()),
        client,
        _dir: dir,
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn hostile_answers_to_pair_request_are_clamped_or_refused() {
    let w = world();
    proptest!(config(), |(replies in request_reply())| {
        w.rt.block_on(async {
            let rogue = Rogue::start(w.rogue_id.clone(), Script {
                pair_request: replies.clone(),
                ..Script::default()
            }).await;
            let started = Instant::now();
            // Up to MAX_START_RETRIES + 1 dials, each a handshake and a request.
            let result = within("start_pairing", budget(2 * (MAX_START_RETRIES + 1)), w.client.start_pairing(rogue.addr)).await?;
            match &result {
                Ok(p) => check_challenge(p)?,
                Err(e) => check_error(e)?,
            }
            // A wait the engine sat out by itself is never longer than its bound.
            let waited = started.elapsed();
            prop_assert!(waited < budget(2 * (MAX_START_RETRIES + 1)), "{waited:?}");
            if let Some(Reply::Msg(Message::PairChallenge { code_digits, .. })) = replies.first() {
                prop_assert_eq!(result.is_ok(), usize::from(*code_digits) == CODE_DIGITS, "{:?}", result);
            }
            if let Some(Reply::Msg(Message::PairFailed { reason: PairFailure::PairingClosed, .. })) = replies.first() {
                prop_assert!(matches!(result, Err(ClientError::PairingRefused { reason: PairFailure::PairingClosed, .. })), "{:?}", result);
            }
            Ok(())
        })?;
    });
}

#[test]
fn hostile_answers_to_pair_attempt_and_confirm_are_clamped_or_refused() {
    let w = world();
    proptest!(config(), |(
        first in challenge(),
        (attempt, confirm) in attempt_replies(),
    )| {
        w.rt.block_on(async {
            // A well-formed challenge (hostile numbers allowed), so the attempt goes out.
            let first = match first {
                Message::PairChallenge { expires_in_s, attempts_left, .. } => Message::PairChallenge {
                    server_name: "rogue".into(),
                    code_digits: CODE_DIGITS as u8,
                    expires_in_s,
                    attempts_left,
                },
                other => other,
            };
            let rogue = Rogue::start(w.rogue_id.clone(), Script {
                pair_request: vec![Reply::Msg(first)],
                pair_attempt: attempt,
                pair_confirm: confirm,
                ..Script::default()
            }).await;
            let mut pairing = within("start_pairing", budget(2), w.client.start_pairing(rogue.addr))
                .await?
                .map_err(|e| TestCaseError::fail(format!("a good challenge was refused: {e}")))?;
            check_challenge(&pairing)?;
            let code = Code::parse(CODE).unwrap();
            // Twice: the second try honours (or refuses to sit out) whatever wait the first
            // reported. Then a new code, which may need a new connection.
            for _ in 0..2 {
                match within("submit", budget(3), pairing.submit(&code)).await? {
                    Ok(server) => {
                        let limit = csc_shared::unix_now() + MAX_TOKEN_LIFETIME.as_secs();
                        prop_assert!(server.token_expires_at <= limit, "{}", server.token_expires_at);
                    }
                    Err(e) => check_error(&e)?,
                }
                check_challenge(&pairing)?;
            }
            match within("request_new_code", budget(4), pairing.request_new_code("victim")).await? {
                Ok(()) => check_challenge(&pairing)?,
                Err(e) => check_error(&e)?,
            }
            check_saved(&w.client)?;
            Ok(())
        })?;
    });
}

#[test]
fn hostile_answers_in_a_session_are_clamped_or_end_it() {
    let w = world();
    let paired = PairedServer {
        server_id: w.rogue_id.id(),
        name: "rogue".into(),
        addrs: Vec::new(),
        token: "token".into(),
        token_expires_at: 0,
        paired_at: 0,
        refused: None,
    };
    proptest!(config(), |((auth, request) in session_replies())| {
        w.rt.block_on(async {
            let rogue = Rogue::start(w.rogue_id.clone(), Script {
                auth,
                request,
                ..Script::default()
            }).await;
            let mut server = paired.clone();
            server.addrs = vec![rogue.addr];
            let saved = server.clone();
            w.client.store().update(|f| f.upsert(saved)).unwrap();
            let session = match within("connect", budget(2), w.client.connect(&server)).await? {
                Ok(s) => s,
                Err(e) => return check_error(&e),
            };
            let limit = csc_shared::unix_now() + MAX_TOKEN_LIFETIME.as_secs();
            prop_assert!(session.server().token_expires_at <= limit);
            check_saved(&w.client)?;
            let mut session = session;
            for _ in 0..2 {
                match within("request", budget(1), session.request("ping", vec![])).await? {
                    Ok(_) => {}
                    Err(e) => check_error(&e)?,
                }
            }
            // Whatever the rogue pushed arrives clamped; then the session ends cleanly.
            drop(rogue);
            let ahead = csc_shared::unix_now_ms() + MAX_CLOCK_AHEAD.as_millis() as u64;
            loop {
                match within("next_event", budget(1), session.next_event()).await? {
                    Some(SessionEvent::Notice { at_ms, .. }) => prop_assert!(at_ms <= ahead, "{at_ms}"),
                    Some(SessionEvent::Closed { reason, .. }) => {
                        prop_assert!(!reason.is_empty());
                        break;
                    }
                    None => break,
                }
            }
            Ok(())
        })?;
    });
}

// ---- the cases the properties only reach by chance, pinned down ----

fn good_challenge() -> Reply {
    Reply::Msg(Message::PairChallenge {
        server_name: "rogue".into(),
        code_digits: CODE_DIGITS as u8,
        expires_in_s: 120,
        attempts_left: 5,
    })
}

fn pair_failed_msg(reason: PairFailure, retry_after_ms: Option<u64>) -> Reply {
    Reply::Msg(Message::PairFailed {
        reason,
        attempts_left: 0,
        retry_after_ms,
    })
}

#[test]
fn a_short_rate_limit_is_retried_on_a_new_connection() {
    let w = world();
    w.rt.block_on(async {
        // As the server now does: refuse, then close the connection.
        let rogue = Rogue::start(
            w.rogue_id.clone(),
            Script {
                pair_request: vec![
                    pair_failed_msg(PairFailure::RateLimited, Some(20)),
                    Reply::Close,
                ],
                later_pair_request: Some(vec![good_challenge()]),
                ..Script::default()
            },
        )
        .await;
        let pairing = w.client.start_pairing(rogue.addr).await.unwrap();
        assert_eq!(pairing.challenge().attempts_left, 5);
        assert_eq!(rogue.connections(), 2, "the retry needs a new connection");
    });
}

#[test]
fn pairing_closed_is_not_retried_and_says_when_it_reopens() {
    let w = world();
    w.rt.block_on(async {
        let rogue = Rogue::start(
            w.rogue_id.clone(),
            Script {
                pair_request: vec![
                    pair_failed_msg(PairFailure::PairingClosed, Some(14 * 60 * 1000 - 500)),
                    Reply::Close,
                ],
                later_pair_request: Some(vec![good_challenge()]),
                ..Script::default()
            },
        )
        .await;
        let err = w.client.start_pairing(rogue.addr).await.unwrap_err();
        match &err {
            ClientError::PairingRefused {
                reason: PairFailure::PairingClosed,
                retry_after: Some(w),
            } => assert!(*w > Duration::from_secs(13 * 60), "{w:?}"),
            other => panic!("expected pairing closed, got {other:?}"),
        }
        assert!(
            err.to_string()
                .ends_with("pairing is closed on this server: ask its operator to open it (reopens by itself in 14 min)"),
            "{err}"
        );
        assert_eq!(rogue.connections(), 1, "a closed pairing is not retried");
    });
}

#[test]
fn a_new_code_after_a_displaced_request_dials_again() {
    let w = world();
    w.rt.block_on(async {
        let rogue = Rogue::start(
            w.rogue_id.clone(),
            Script {
                pair_request: vec![good_challenge()],
                pair_attempt: vec![pair_failed_msg(PairFailure::Displaced, None), Reply::Close],
                ..Script::default()
            },
        )
        .await;
        let mut pairing = w.client.start_pairing(rogue.addr).await.unwrap();
        let code = Code::parse(CODE).unwrap();
        match pairing.submit(&code).await {
            Err(ClientError::PairingRefused {
                reason: PairFailure::Displaced,
                ..
            }) => {}
            other => panic!("expected displaced, got {other:?}"),
        }
        pairing.request_new_code("victim").await.unwrap();
        assert_eq!(rogue.connections(), 2);
        assert_eq!(pairing.challenge().attempts_left, 5);
    });
}

#[test]
fn a_huge_wait_is_reported_not_slept_and_nothing_is_sent_meanwhile() {
    let w = world();
    w.rt.block_on(async {
        let rogue = Rogue::start(
            w.rogue_id.clone(),
            Script {
                pair_request: vec![good_challenge()],
                pair_attempt: vec![Reply::Msg(Message::PairFailed {
                    reason: PairFailure::WrongCode,
                    attempts_left: u32::MAX,
                    retry_after_ms: Some(u64::MAX),
                })],
                ..Script::default()
            },
        )
        .await;
        let mut pairing = w.client.start_pairing(rogue.addr).await.unwrap();
        let code = Code::parse(CODE).unwrap();
        match pairing.submit(&code).await {
            Err(ClientError::WrongCode {
                attempts_left,
                retry_after,
            }) => {
                assert_eq!(attempts_left, MAX_ATTEMPTS);
                assert_eq!(retry_after, Some(MAX_RETRY_HINT));
            }
            other => panic!("expected a wrong code, got {other:?}"),
        }
        // The next try would have to wait a day: refused on the spot, not sent.
        let err = within("submit", budget(1), pairing.submit(&code))
            .await
            .unwrap()
            .unwrap_err();
        match &err {
            ClientError::PairingRefused {
                reason: PairFailure::RateLimited,
                retry_after: Some(w),
            } => assert!(*w <= MAX_RETRY_HINT && *w > MAX_RETRY_HINT / 2, "{w:?}"),
            other => panic!("expected a refusal with the wait, got {other:?}"),
        }
        assert!(err.to_string().contains("(try again in 24 h)"), "{err}");
        assert_eq!(rogue.attempts(), 1, "nothing was sent during the wait");
    });
}

#[test]
fn a_silent_server_cannot_hold_a_request_or_the_close() {
    let w = world();
    w.rt.block_on(async {
        let rogue = Rogue::start(
            w.rogue_id.clone(),
            Script {
                auth: vec![Reply::Msg(Message::AuthOk {
                    server_name: "rogue".into(),
                    token: None,
                    token_expires_at: 0,
                })],
                request: vec![Reply::Silence],
                ..Script::default()
            },
        )
        .await;
        let server = PairedServer {
            server_id: w.rogue_id.id(),
            name: "rogue".into(),
            addrs: vec![rogue.addr],
            token: "token".into(),
            token_expires_at: 0,
            paired_at: 0,
            refused: None,
        };
        let session = w.client.connect(&server).await.unwrap();
        match within("request", budget(1), session.request("ping", vec![]))
            .await
            .unwrap()
        {
            Err(ClientError::NoReply { task, waited }) => {
                assert_eq!(task, "ping");
                assert_eq!(waited, options().request_timeout);
            }
            other => panic!("expected no reply, got {other:?}"),
        }
        // The unanswered request is still in flight; closing does not wait for it forever.
        within("close", budget(1), session.close()).await.unwrap();
    });
}

#[test]
fn a_flood_of_notices_with_terminal_escapes_is_bounded_and_cleaned() {
    let w = world();
    w.rt.block_on(async {
        // In answer to the request: 5 000 notices, each with escape sequences, then the
        // response. The client reads no events meanwhile.
        let mut replies: Vec<Reply> = (0..5000)
            .map(|i| {
                Reply::Msg(Message::Notice {
                    text: format!("\u{1b}[2J\u{1b}]0;owned\u{7}notice {i}\r\n"),
                    at_ms: u64::MAX,
                })
            })
            .collect();
        replies.push(Reply::Respond(serde_json::json!("pong")));
        let rogue = Rogue::start(
            w.rogue_id.clone(),
            Script {
                auth: vec![Reply::Msg(Message::AuthOk {
                    server_name: "\u{1b}[31mrogue\u{7}".repeat(100),
                    token: None,
                    token_expires_at: 0,
                })],
                request: replies,
                ..Script::default()
            },
        )
        .await;
        let server = PairedServer {
            server_id: w.rogue_id.id(),
            name: "rogue".into(),
            addrs: vec![rogue.addr],
            token: "token".into(),
            token_expires_at: 0,
            paired_at: 0,
            refused: None,
        };
        let mut session = w.client.connect(&server).await.unwrap();
        // The name it claims is cut and stripped of control characters.
        let name = &session.server().name;
        assert!(
            name.chars().count() <= csc_shared::message::MAX_NAME,
            "{name:?}"
        );
        assert!(!name.chars().any(char::is_control), "{name:?}");
        let pong = within("request", budget(1), session.request("ping", vec![]))
            .await
            .unwrap();
        assert_eq!(pong.unwrap(), "pong", "the session still works");
        // At most the queue's worth of notices was kept, and none can drive a terminal.
        let mut kept = 0;
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(200), session.next_event()).await
        {
            if let csc_shared::client::SessionEvent::Notice { text, at_ms } = ev {
                kept += 1;
                assert!(
                    !text.chars().any(|c| c.is_control() && c != '\n'),
                    "{text:?}"
                );
                assert!(at_ms < u64::MAX);
            }
        }
        assert!(
            (1..=csc_shared::client::NOTICE_QUEUE).contains(&kept),
            "{kept} notices kept"
        );
    });
}
