//! Every transition of the pairing machine, with a fake clock and no network: the client's
//! side of SPAKE2 is computed here, and the guard's verdicts are fed in by hand.

use super::*;
use crate::pairing::ClientPake;
use crate::server::guard::ClosedReason;

const TTL: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(30);
const ID: u64 = 7;

fn setup() -> Setup {
    Setup {
        server_name: "front-desk".into(),
        code_ttl: TTL,
        max_attempts: 3,
        step_timeout: STEP,
        peer: SocketAddr::from(([10, 0, 0, 7], 50_000)),
        client_id: PeerId([7; 32]),
        binding: Binding {
            exporter: [1; 32],
            client_id: PeerId([7; 32]),
            server_id: PeerId([9; 32]),
            client_cert_hash: [2; 32],
            server_cert_hash: [3; 32],
        },
    }
}

const CODE: &str = "123456";

fn code(digits: &str) -> Code {
    Code::parse(digits).unwrap()
}

/// Feed `input` at `t0 + at`.
fn feed(state: State, input: Input, t0: Instant, at: Duration) -> (State, Vec<String>) {
    let (state, out) = step(state, &setup(), input, t0 + at);
    (state, out.iter().map(show).collect())
}

fn name_of<T: serde::Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// One output in a few words, so a whole step reads as a list.
fn show(o: &Output) -> String {
    match o {
        Output::Send(Message::PairFailed {
            reason,
            attempts_left,
            retry_after_ms,
        }) => {
            let retry = retry_after_ms
                .map(|ms| format!(" retry={ms}"))
                .unwrap_or_default();
            format!(
                "send pair_failed {} left={attempts_left}{retry}",
                name_of(reason)
            )
        }
        Output::Send(Message::Error { code, message, .. }) => {
            format!("send error {}: {message}", name_of(code))
        }
        Output::Send(m) => format!("send {}", m.kind()),
        Output::Event(ServerEvent::PairFailed {
            request_id,
            reason,
            attempts_left,
            ..
        }) => format!(
            "event pair_failed {} left={attempts_left} request={request_id:?}",
            name_of(reason)
        ),
        Output::Event(e) => format!(
            "event {}",
            serde_json::to_value(e).unwrap()["event"].as_str().unwrap()
        ),
        Output::Gate(GateChange::Closed { .. }) => "gate closed".into(),
        Output::Gate(GateChange::Opened { .. }) => "gate opened".into(),
        Output::Ended(r) => format!("ended {}", name_of(r)),
        Output::Check(Check::Admit) => "check admit".into(),
        Output::Check(Check::BeginAttempt(id)) => format!("check begin {id}"),
        Output::Check(Check::Settle(id, outcome)) => format!("check settle {id} {outcome:?}"),
        Output::Pair {
            request_id, name, ..
        } => format!("pair {request_id} {name}"),
        Output::Close => "close".into(),
    }
}

fn settled(wait_s: u64) -> Input {
    Input::Settled(Settled {
        wait: Duration::from_secs(wait_s),
        change: None,
    })
}

fn issued() -> Input {
    Input::Admitted(Ok(Issued {
        request_id: ID,
        code: code(CODE),
    }))
}

/// A connection whose request was admitted at `t0`.
fn pending(t0: Instant) -> State {
    let s = State::start(&setup(), t0);
    let (s, _) = feed(s, request("kiosk"), t0, Duration::ZERO);
    let (s, _) = feed(s, issued(), t0, Duration::ZERO);
    assert!(matches!(s, State::Pending(_)), "{s:?}");
    s
}

fn request(name: &str) -> Input {
    Input::Message(Message::PairRequest {
        client_name: name.into(),
    })
}

/// The client's first half of an answer with `digits`.
fn attempt(digits: &str) -> (ClientPake, Input) {
    let (client, msg_a) = ClientPake::start(setup().binding, &code(digits));
    (
        client,
        Input::Message(Message::PairAttempt { pake: B64(msg_a) }),
    )
}

/// Answer with `digits` at `t0 + at` and get the unit: the server's SPAKE2 message has been
/// sent; returns the state and the MAC the client would confirm with.
fn confirming(state: State, digits: &str, t0: Instant, at: Duration) -> (State, Vec<u8>) {
    let (client, input) = attempt(digits);
    let (s, out) = feed(state, input, t0, at);
    assert_eq!(out, [format!("check begin {ID}")]);
    let (s, out) = {
        let (s, out) = step(s, &setup(), Input::AttemptChecked(Ok(())), t0 + at);
        (s, out)
    };
    let msg_b = match out.as_slice() {
        [Output::Send(Message::PairPake { pake })] => pake.0.clone(),
        other => panic!(
            "expected pair_pake, got {:?}",
            other.iter().map(show).collect::<Vec<_>>()
        ),
    };
    let mac = client
        .finish(&msg_b)
        .map(|c| c.client_mac())
        .unwrap_or_default();
    assert!(matches!(s, State::Confirming { .. }), "{s:?}");
    (s, mac)
}

fn confirm(mac: Vec<u8>) -> Input {
    Input::Message(Message::PairConfirm { mac: B64(mac) })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_request_asks_the_guard_under_the_cleaned_name() {
    let t0 = Instant::now();
    let s = State::start(&setup(), t0);
    assert_eq!(s.deadline(), Some(t0 + STEP));
    assert!(s.reads());
    let (s, out) = feed(s, request("kiosk\u{7}-1"), t0, Duration::ZERO);
    assert_eq!(out, ["check admit"]);
    match &s {
        State::Admitting { name } => assert_eq!(name, "kiosk-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.deadline(), None);
    assert!(!s.reads());
}

#[test]
fn an_admitted_request_shows_the_code_and_sends_the_challenge() {
    let t0 = Instant::now();
    let (s, _) = feed(State::start(&setup(), t0), request("kiosk"), t0, secs(1));
    let (s, out) = step(s, &setup(), issued(), t0 + secs(1));
    match out.as_slice() {
        [
            Output::Event(ServerEvent::PairRequest {
                request_id,
                client_name,
                code,
                expires_in_s,
                attempts_left,
                client_short,
                ..
            }),
            Output::Send(Message::PairChallenge {
                server_name,
                code_digits,
                expires_in_s: challenge_ttl,
                attempts_left: challenge_attempts,
            }),
        ] => {
            assert_eq!(
                (*request_id, client_name.as_str(), code.as_str()),
                (ID, "kiosk", CODE)
            );
            assert_eq!((*expires_in_s, *attempts_left), (120, 3));
            assert_eq!(client_short, &PeerId([7; 32]).short());
            assert_eq!(server_name, "front-desk");
            assert_eq!(
                (*code_digits, *challenge_ttl, *challenge_attempts),
                (6, 120, 3)
            );
        }
        other => panic!("{:?}", other.iter().map(show).collect::<Vec<_>>()),
    }
    assert_eq!(
        s.deadline(),
        Some(t0 + secs(1) + TTL),
        "waits until the code expires"
    );
    assert!(s.reads());
}

#[test]
fn every_refused_request_ends_the_connection() {
    let t0 = Instant::now();
    for (reason, wait, retry) in [
        (PairFailure::RateLimited, Some(secs(4)), " retry=4000"),
        (PairFailure::TooManyPending, Some(secs(5)), " retry=5000"),
        (PairFailure::PairingClosed, None, ""),
        (PairFailure::AlreadyPending, None, ""),
    ] {
        let (s, _) = feed(State::start(&setup(), t0), request("kiosk"), t0, secs(0));
        let (s, out) = feed(s, Input::Admitted(Err((reason, wait))), t0, secs(0));
        let r = name_of(reason);
        assert_eq!(
            out,
            [
                format!("event pair_failed {r} left=0 request=None"),
                format!("send pair_failed {r} left=0{retry}"),
                "close".into(),
            ]
        );
        assert!(matches!(s, State::Closed));
    }
}

#[test]
fn a_second_request_while_a_code_is_pending_is_refused_and_ends_it() {
    let t0 = Instant::now();
    let (s, out) = feed(pending(t0), request("again"), t0, secs(3));
    assert_eq!(
        out,
        [
            "send pair_failed already_pending left=3",
            "ended cancelled",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn the_right_code_pairs_after_its_unit_is_settled() {
    let t0 = Instant::now();
    let (s, mac) = confirming(pending(t0), CODE, t0, secs(10));
    assert_eq!(s.deadline(), Some(t0 + secs(10) + CONFIRM_TIMEOUT));
    assert!(s.reads());
    let (s, out) = feed(s, confirm(mac), t0, secs(11));
    assert_eq!(out, [format!("check settle {ID} Right")]);
    assert_eq!(s.deadline(), None);
    let (s, out) = feed(s, settled(0), t0, secs(11));
    assert_eq!(out, [format!("pair {ID} kiosk")]);
    assert!(matches!(s, State::Paired));
    // Nothing moves a paired connection.
    let (s, out) = feed(s, Input::Deadline, t0, secs(500));
    assert!(out.is_empty() && matches!(s, State::Paired));
}

#[test]
fn a_wrong_code_counts_waits_the_backoff_and_keeps_the_code() {
    let t0 = Instant::now();
    let (s, mac) = confirming(pending(t0), "654321", t0, secs(10));
    let (s, out) = feed(s, confirm(mac), t0, secs(10));
    assert_eq!(out, [format!("check settle {ID} Wrong")]);
    let (s, out) = feed(s, settled(2), t0, secs(10));
    assert_eq!(
        out,
        [
            format!("event pair_failed wrong_code left=2 request=Some({ID})"),
            "send pair_failed wrong_code left=2 retry=2000".into(),
        ]
    );
    assert!(matches!(&s, State::Pending(h) if h.attempts_left == 2));
    // The code is still good.
    let (s, mac) = confirming(s, CODE, t0, secs(20));
    let (s, _) = feed(s, confirm(mac), t0, secs(20));
    let (_, out) = feed(s, settled(0), t0, secs(20));
    assert_eq!(out, [format!("pair {ID} kiosk")]);
}

#[test]
fn the_last_wrong_answer_exhausts_the_code_and_a_stale_answer_is_told_so() {
    let t0 = Instant::now();
    let mut s = pending(t0);
    for left in [2, 1] {
        let (next, mac) = confirming(s, "000000", t0, secs(1));
        let (next, _) = feed(next, confirm(mac), t0, secs(1));
        let (next, out) = feed(next, settled(1), t0, secs(1));
        assert_eq!(
            out[1],
            format!("send pair_failed wrong_code left={left} retry=1000")
        );
        s = next;
    }
    let (s, mac) = confirming(s, "000000", t0, secs(2));
    let (s, _) = feed(s, confirm(mac), t0, secs(2));
    let (s, out) = feed(s, settled(4), t0, secs(2));
    assert_eq!(
        out,
        [
            format!("event pair_failed code_exhausted left=0 request=Some({ID})"),
            "send pair_failed code_exhausted left=0 retry=4000".into(),
            "ended exhausted".into(),
        ]
    );
    assert!(matches!(
        s,
        State::Idle {
            stale: Some(PairFailure::CodeExhausted),
            ..
        }
    ));
    assert_eq!(s.deadline(), Some(t0 + secs(2) + STEP));
    // Even the right code is void now; the answer is not checked and nothing is counted.
    let (_, late) = attempt(CODE);
    let (s, out) = feed(s, late, t0, secs(3));
    assert_eq!(out, ["send pair_failed code_exhausted left=0"]);
    assert_eq!(
        s.deadline(),
        Some(t0 + secs(3) + STEP),
        "a fresh step timeout"
    );
    // A new code may be asked for on the same connection.
    let (_, out) = feed(s, request("kiosk"), t0, secs(4));
    assert_eq!(out, ["check admit"]);
}

#[test]
fn a_wrong_answer_that_spends_the_budget_reports_pairing_closed() {
    let t0 = Instant::now();
    let (s, mac) = confirming(pending(t0), "000000", t0, secs(1));
    let (s, _) = feed(s, confirm(mac), t0, secs(1));
    let closed = Input::Settled(Settled {
        wait: secs(1),
        change: Some(GateChange::Closed {
            reason: ClosedReason::Budget,
            reopens_in: Some(secs(900)),
        }),
    });
    let (_, out) = feed(s, closed, t0, secs(1));
    assert_eq!(
        out,
        [
            format!("event pair_failed wrong_code left=2 request=Some({ID})"),
            "gate closed".into(),
            "send pair_failed wrong_code left=2 retry=1000".into(),
        ]
    );
}

#[test]
fn a_malformed_pake_counts_as_a_wrong_answer_without_a_reply_pake() {
    let t0 = Instant::now();
    let junk = Input::Message(Message::PairAttempt {
        pake: B64(b"not a spake2 message".to_vec()),
    });
    let (s, out) = feed(pending(t0), junk, t0, secs(1));
    assert_eq!(out, [format!("check begin {ID}")]);
    let (s, out) = feed(s, Input::AttemptChecked(Ok(())), t0, secs(1));
    assert_eq!(out, [format!("check settle {ID} Wrong")]);
    let (s, out) = feed(s, settled(1), t0, secs(1));
    assert_eq!(out[1], "send pair_failed wrong_code left=2 retry=1000");
    assert!(matches!(s, State::Pending(_)));
}

#[test]
fn an_answer_waits_for_a_free_unit_without_reading_then_gives_up() {
    let t0 = Instant::now();
    let (_, input) = attempt(CODE);
    let (s, _) = feed(pending(t0), input, t0, secs(1));
    assert!(!s.reads(), "nothing is read while the answer waits");
    let busy = || Input::AttemptChecked(Err(NotNow::Busy));
    let (s, out) = feed(s, busy(), t0, secs(1));
    assert!(out.is_empty());
    assert_eq!(s.deadline(), Some(t0 + secs(1) + BUSY_RETRY));
    // Woken early: nothing; on time: ask again.
    let (s, out) = feed(s, Input::Deadline, t0, secs(1));
    assert!(out.is_empty());
    let (s, out) = feed(s, Input::Deadline, t0, secs(1) + BUSY_RETRY);
    assert_eq!(out, [format!("check begin {ID}")]);
    let (s, out) = feed(s, busy(), t0, secs(3));
    assert!(out.is_empty(), "still within the wait");
    let (s, out) = feed(s, busy(), t0, secs(1) + BUSY_GIVE_UP);
    assert_eq!(
        out,
        [
            format!("event pair_failed rate_limited left=3 request=Some({ID})"),
            "send pair_failed rate_limited left=3 retry=1000".into(),
            "ended cancelled".into(),
            "close".into(),
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn a_unit_that_comes_free_after_the_code_expired_is_not_taken() {
    let t0 = Instant::now();
    let (_, input) = attempt(CODE);
    let (s, _) = feed(pending(t0), input, t0, TTL - secs(1));
    let (s, out) = feed(s, Input::AttemptChecked(Err(NotNow::Busy)), t0, TTL);
    assert_eq!(
        out,
        [
            format!("event pair_failed code_expired left=0 request=Some({ID})"),
            "ended expired".into(),
            "send pair_failed code_expired left=0".into(),
        ]
    );
    assert!(matches!(
        s,
        State::Idle {
            stale: Some(PairFailure::CodeExpired),
            ..
        }
    ));
}

#[test]
fn an_answer_the_guard_refuses_ends_the_connection_and_counts_nothing() {
    let t0 = Instant::now();
    for (reason, wait, retry) in [
        (PairFailure::RateLimited, Some(secs(8)), " retry=8000"),
        (PairFailure::PairingClosed, None, ""),
    ] {
        let (_, input) = attempt(CODE);
        let (s, _) = feed(pending(t0), input, t0, secs(1));
        let refused = Input::AttemptChecked(Err(NotNow::Refused((reason, wait))));
        let (s, out) = feed(s, refused, t0, secs(1));
        let r = name_of(reason);
        assert_eq!(
            out,
            [
                format!("event pair_failed {r} left=3 request=Some({ID})"),
                format!("send pair_failed {r} left=3{retry}"),
                "ended cancelled".into(),
                "close".into(),
            ]
        );
        assert!(matches!(s, State::Closed));
    }
}

#[test]
fn expiry_while_waiting_tells_only_the_operator() {
    let t0 = Instant::now();
    let (s, out) = feed(pending(t0), Input::Deadline, t0, TTL - secs(1));
    assert!(out.is_empty(), "woken early: {out:?}");
    let (s, out) = feed(s, Input::Deadline, t0, TTL);
    assert_eq!(
        out,
        [
            format!("event pair_failed code_expired left=0 request=Some({ID})"),
            "ended expired".into(),
        ]
    );
    assert_eq!(s.deadline(), Some(t0 + TTL + STEP));
    // The answer that comes later learns it, and nothing is checked or counted.
    let (_, late) = attempt(CODE);
    let (s, out) = feed(s, late, t0, TTL + secs(5));
    assert_eq!(out, ["send pair_failed code_expired left=0"]);
    assert!(matches!(s, State::Idle { .. }));
    // With no message after that, the connection times out.
    let (s, out) = feed(s, Input::Deadline, t0, TTL + secs(5) + STEP);
    assert_eq!(
        out,
        [
            "send error timeout: timed out waiting for the peer",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn an_answer_that_beats_the_expiry_timer_still_finds_the_code_void() {
    let t0 = Instant::now();
    let (_, late) = attempt(CODE);
    let (s, out) = feed(pending(t0), late, t0, TTL + secs(1));
    assert_eq!(
        out,
        [
            format!("event pair_failed code_expired left=0 request=Some({ID})"),
            "ended expired".into(),
            "send pair_failed code_expired left=0".into(),
        ]
    );
    assert!(matches!(s, State::Idle { .. }));
}

#[test]
fn a_confirmation_checked_after_the_expiry_is_void_even_when_right() {
    let t0 = Instant::now();
    let (s, mac) = confirming(pending(t0), CODE, t0, TTL - secs(1));
    let (s, out) = feed(s, confirm(mac), t0, TTL);
    assert_eq!(out, [format!("check settle {ID} Void")]);
    let (s, out) = feed(s, settled(0), t0, TTL);
    assert_eq!(
        out,
        [
            format!("event pair_failed code_expired left=0 request=Some({ID})"),
            "ended expired".into(),
            "send pair_failed code_expired left=0".into(),
        ]
    );
    assert!(matches!(
        s,
        State::Idle {
            stale: Some(PairFailure::CodeExpired),
            ..
        }
    ));
}

#[test]
fn a_stalled_confirmation_is_abandoned_and_counted_wrong() {
    let t0 = Instant::now();
    let (s, _) = confirming(pending(t0), CODE, t0, secs(1));
    let (s, out) = feed(s, Input::Deadline, t0, secs(1) + CONFIRM_TIMEOUT - secs(1));
    assert!(out.is_empty(), "woken early: {out:?}");
    let (s, out) = feed(s, Input::Deadline, t0, secs(1) + CONFIRM_TIMEOUT);
    assert_eq!(
        out,
        [
            "send error timeout: timed out waiting for the peer".to_string(),
            format!("check settle {ID} Wrong"),
        ]
    );
    let spent = Input::Settled(Settled {
        wait: secs(1),
        change: Some(GateChange::Closed {
            reason: ClosedReason::Budget,
            reopens_in: None,
        }),
    });
    let (s, out) = feed(s, spent, t0, secs(6));
    assert_eq!(out, ["gate closed", "ended cancelled", "close"]);
    assert!(matches!(s, State::Closed));
}

#[test]
fn leaving_or_breaking_off_mid_check_counts_as_wrong() {
    let t0 = Instant::now();
    let (s, _) = confirming(pending(t0), CODE, t0, secs(1));
    let (s, out) = feed(s, Input::PeerGone, t0, secs(2));
    assert_eq!(out, [format!("check settle {ID} Wrong")]);
    let (_, out) = feed(s, settled(1), t0, secs(2));
    assert_eq!(out, ["ended cancelled", "close"]);

    let (s, _) = confirming(pending(t0), CODE, t0, secs(1));
    let (s, out) = feed(s, request("again"), t0, secs(2));
    assert_eq!(
        out,
        [
            "send error unexpected_message: expected pair_confirm, got pair_request".to_string(),
            format!("check settle {ID} Wrong"),
        ]
    );
    let (s, out) = feed(s, settled(1), t0, secs(2));
    assert_eq!(out, ["ended cancelled", "close"]);
    assert!(matches!(s, State::Closed));
}

#[test]
fn displacement_or_a_closing_gate_ends_a_pending_request() {
    let t0 = Instant::now();
    let displaced = Input::Cancelled(Cancel {
        reason: PairFailure::Displaced,
        retry_after: None,
    });
    let (s, out) = feed(pending(t0), displaced, t0, secs(9));
    assert_eq!(
        out,
        [
            "ended displaced",
            "send pair_failed displaced left=0",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));

    let closed = Input::Cancelled(Cancel {
        reason: PairFailure::PairingClosed,
        retry_after: Some(secs(900)),
    });
    let (s, out) = feed(pending(t0), closed, t0, secs(9));
    assert_eq!(
        out,
        [
            "ended pairing_closed",
            "send pair_failed pairing_closed left=0 retry=900000",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn a_cancellation_while_waiting_for_a_unit_ends_at_once() {
    let t0 = Instant::now();
    let (_, input) = attempt(CODE);
    let (s, _) = feed(pending(t0), input, t0, secs(1));
    let (s, _) = feed(s, Input::AttemptChecked(Err(NotNow::Busy)), t0, secs(1));
    let displaced = Input::Cancelled(Cancel {
        reason: PairFailure::Displaced,
        retry_after: None,
    });
    let (s, out) = feed(s, displaced, t0, secs(2));
    assert_eq!(
        out,
        [
            "ended displaced",
            "send pair_failed displaced left=0",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn a_cancellation_while_an_answer_is_checked_waits_for_its_verdict() {
    let t0 = Instant::now();
    let closed = || {
        Input::Cancelled(Cancel {
            reason: PairFailure::PairingClosed,
            retry_after: None,
        })
    };
    // Wrong: the verdict first, then the cancellation.
    let (s, mac) = confirming(pending(t0), "000000", t0, secs(1));
    let (s, out) = feed(s, closed(), t0, secs(1));
    assert!(out.is_empty());
    assert!(matches!(s, State::Confirming { .. }));
    let (s, _) = feed(s, confirm(mac), t0, secs(1));
    let (s, out) = feed(s, settled(1), t0, secs(1));
    assert_eq!(
        out,
        [
            format!("event pair_failed wrong_code left=2 request=Some({ID})"),
            "send pair_failed wrong_code left=2 retry=1000".into(),
            "ended pairing_closed".into(),
            "send pair_failed pairing_closed left=0".into(),
            "close".into(),
        ]
    );
    assert!(matches!(s, State::Closed));
    // Right: within the budget unit it reserved, it pairs.
    let (s, mac) = confirming(pending(t0), CODE, t0, secs(1));
    let (s, _) = feed(s, confirm(mac), t0, secs(1));
    let (s, out) = feed(s, closed(), t0, secs(1));
    assert!(out.is_empty() && matches!(s, State::Settling { .. }));
    let (s, out) = feed(s, settled(0), t0, secs(1));
    assert_eq!(out, [format!("pair {ID} kiosk")]);
    assert!(matches!(s, State::Paired));
}

#[test]
fn an_answer_with_no_request_is_a_protocol_error() {
    let t0 = Instant::now();
    let (_, input) = attempt(CODE);
    let (s, out) = feed(State::start(&setup(), t0), input, t0, secs(1));
    assert_eq!(
        out,
        [
            "send error unexpected_message: no pairing request is pending: send pair_request first",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn silence_with_no_code_pending_times_out() {
    let t0 = Instant::now();
    let s = State::start(&setup(), t0);
    let (s, out) = feed(s, Input::Deadline, t0, STEP - secs(1));
    assert!(out.is_empty());
    let (s, out) = feed(s, Input::Deadline, t0, STEP);
    assert_eq!(
        out,
        [
            "send error timeout: timed out waiting for the peer",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn other_messages_while_pairing_end_the_connection() {
    let t0 = Instant::now();
    let auth = Input::Message(Message::Auth { token: "t".into() });
    let (s, out) = feed(State::start(&setup(), t0), auth, t0, secs(1));
    assert_eq!(
        out,
        [
            "send error unexpected_message: auth is not valid while pairing",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));

    let early = confirm(vec![0; 32]);
    let (s, out) = feed(pending(t0), early, t0, secs(1));
    assert_eq!(
        out,
        [
            "send error unexpected_message: pair_confirm is not valid while pairing",
            "ended cancelled",
            "close"
        ]
    );
    assert!(matches!(s, State::Closed));
}

#[test]
fn the_client_leaving_ends_its_request() {
    let t0 = Instant::now();
    let (s, out) = feed(pending(t0), Input::PeerGone, t0, secs(1));
    assert_eq!(out, ["ended cancelled", "close"]);
    assert!(matches!(s, State::Closed));
    let (s, out) = feed(State::start(&setup(), t0), Input::PeerGone, t0, secs(1));
    assert_eq!(out, ["close"]);
    assert!(matches!(s, State::Closed));
}

#[test]
fn inputs_that_cannot_happen_in_a_state_change_nothing() {
    let t0 = Instant::now();
    let stray = [
        Input::AttemptChecked(Ok(())),
        settled(1),
        issued(),
        Input::Cancelled(Cancel {
            reason: PairFailure::Displaced,
            retry_after: None,
        }),
    ];
    for input in stray {
        let (s, out) = feed(State::start(&setup(), t0), input, t0, secs(1));
        assert!(out.is_empty(), "{out:?}");
        assert!(matches!(s, State::Idle { stale: None, .. }));
    }
    let (s, out) = feed(pending(t0), settled(1), t0, secs(1));
    assert!(out.is_empty());
    assert!(matches!(s, State::Pending(_)));
    let (s, out) = feed(State::Closed, request("x"), t0, secs(1));
    assert!(out.is_empty() && matches!(s, State::Closed));
}
