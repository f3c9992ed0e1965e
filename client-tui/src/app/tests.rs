//! `App::update` alone: discovery events, link events and keys in, state and actions out.

use std::time::Duration;

use crossterm::event::KeyCode;
use csc_shared::discovery::{DiscoveryEvent, Via};
use csc_shared::message::{OutputStream, RepairReason, RunStatus};
use serde_json::json;

use super::*;
use crate::test_support::*;

/// Press Enter on the only host, `name`, unpaired: the pairing starts. Returns its link.
fn start_pairing(app: &mut App, name: &str, n: u8) -> u64 {
    app.update(scan_msg(
        app,
        DiscoveryEvent::Found(found(name, n, Via::Scan)),
    ));
    let actions = app.update(key(KeyCode::Enter));
    match actions.as_slice() {
        [Action::Pair { link, addr: a }] => {
            assert_eq!(*a, addr(n));
            *link
        }
        other => panic!("expected a pairing to start, got {other:?}"),
    }
}

/// A connected console with `name` (paired as peer `n`); returns the link.
fn connected(app: &mut App, name: &str, n: u8) -> u64 {
    let actions = app.update(scan_msg(
        app,
        DiscoveryEvent::Found(found(name, n, Via::Scan)),
    ));
    let Some(Action::Connect { link, .. }) = actions.first().cloned() else {
        panic!("expected a connection, got {actions:?}");
    };
    app.update(link_msg_connected(link, name, n));
    link
}

fn link_msg_connected(l: u64, name: &str, n: u8) -> Msg {
    link(
        l,
        LinkEvent::Connected {
            server: paired(name, n),
            addr: addr(n),
            via: Some(Via::Last),
            elapsed: Duration::from_micros(2500),
        },
    )
}

fn console_texts(app: &App) -> Vec<String> {
    app.conn
        .as_ref()
        .expect("a connection")
        .console
        .iter()
        .map(|e| e.text.clone())
        .collect()
}

#[test]
fn found_events_fill_the_host_list_once_each() {
    let (mut app, _) = app(80, 24, true);
    let mut unverified = found("front-desk", 1, Via::Broadcast);
    unverified.verified = false;
    app.update(scan_msg(&app, DiscoveryEvent::Found(unverified)));
    app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("till", 2, Via::Scan)),
    ));
    assert_eq!(app.hosts.len(), 2);
    assert!(!app.hosts[0].verified);
    // The same server at the same address again: merged, and the proof is kept.
    app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    assert_eq!(app.hosts.len(), 2);
    assert!(app.hosts[0].verified);
    // A search that was replaced is not listened to.
    let old = app.scan.id;
    let actions = app.update(ch('r'));
    assert!(matches!(actions.as_slice(), [Action::Scan { scan }] if *scan == old + 1));
    assert!(app.hosts.is_empty(), "a rescan starts from an empty list");
    app.update(Msg::Scan {
        scan: old,
        event: DiscoveryEvent::Found(found("ghost", 9, Via::Scan)),
    });
    assert!(app.hosts.is_empty());
    // Arrows move the selection and stop at the ends.
    for (name, n) in [("a", 3), ("b", 4), ("c", 5)] {
        app.update(scan_msg(
            &app,
            DiscoveryEvent::Found(found(name, n, Via::Scan)),
        ));
    }
    app.update(key(KeyCode::Down));
    app.update(ch('j'));
    app.update(ch('j'));
    assert_eq!(app.selected, 2);
    app.update(ch('k'));
    assert_eq!(app.selected, 1);
}

#[test]
fn progress_adds_up_over_subnets_and_methods_finish() {
    let (mut app, start) = app(80, 24, true);
    assert!(!app.scan.begun);
    app.update(scan_msg(
        &app,
        started(&[("10.0.0.0/24", 254), ("10.0.1.0/24", 254)]),
    ));
    assert_eq!(app.scan.total(), 508);
    assert_eq!(app.scan.probed(), 0);
    app.update(scan_msg(&app, progress("10.0.0.0/24", 100, 254)));
    app.update(scan_msg(&app, progress("10.0.1.0/24", 12, 254)));
    app.update(scan_msg(&app, progress("10.0.0.0/24", 120, 254)));
    assert_eq!(app.scan.probed(), 132);
    assert!(app.scan.running());
    app.update(Msg::Tick(clock_at(start, 1500)));
    assert_eq!(
        app.scan.elapsed(app.clock.instant),
        Duration::from_millis(1500)
    );
    app.update(scan_msg(&app, DiscoveryEvent::Finished(Via::Broadcast)));
    assert_eq!(
        app.scan.methods,
        vec![(Via::Broadcast, true), (Via::Scan, false)]
    );
    app.update(scan_msg(
        &app,
        DiscoveryEvent::Done {
            found: 0,
            elapsed: Duration::from_millis(2100),
        },
    ));
    assert!(!app.scan.running());
    app.update(Msg::Tick(clock_at(start, 9000)));
    assert_eq!(
        app.scan.elapsed(app.clock.instant),
        Duration::from_millis(2100),
        "the time stops with the search"
    );
}

#[test]
fn the_first_search_probes_saved_and_given_addresses() {
    let start = std::time::Instant::now();
    let mut app = App::new(
        Options {
            name: "kiosk".into(),
            short: peer(0xC1).short(),
            color: true,
            discovery: false,
            manual: Some("10.1.2.3:5000".into()),
            target: None,
        },
        clock_at(start, 0),
        (80, 24),
        vec![paired("front-desk", 1)],
    );
    let actions = app.start();
    assert_eq!(
        actions,
        vec![
            Action::Probe {
                scan: 1,
                spec: addr(1).to_string(),
                via: Via::Last
            },
            Action::Probe {
                scan: 1,
                spec: "10.1.2.3:5000".into(),
                via: Via::Manual
            },
        ],
        "no discovery when every method is off"
    );
    // `--server` names an unpaired server: pairing starts without a key press, once.
    let mut manual = found("new-one", 7, Via::Manual);
    manual.addr = "10.1.2.3:5000".parse().unwrap();
    let actions = app.update(Msg::Scan {
        scan: 1,
        event: DiscoveryEvent::Found(manual),
    });
    assert!(
        matches!(actions.as_slice(), [Action::Pair { .. }]),
        "{actions:?}"
    );
    assert_eq!(app.screen, Screen::Pair);
}

#[test]
fn a_paired_server_found_is_connected_to_at_once() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    // Someone else's server: listed, nothing else.
    let actions = app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("other", 2, Via::Scan)),
    ));
    assert!(actions.is_empty());
    assert_eq!(app.screen, Screen::Scan);
    // Ours, at a new address: connected to without a key press.
    let mut moved = found("front-desk", 1, Via::Scan);
    moved.addr = "192.168.7.7:47474".parse().unwrap();
    let actions = app.update(scan_msg(&app, DiscoveryEvent::Found(moved.clone())));
    match actions.as_slice() {
        [Action::Connect { server, addr, .. }] => {
            assert_eq!(server.server_id, peer(1));
            assert_eq!(*addr, Some(moved.addr));
        }
        other => panic!("expected a connection, got {other:?}"),
    }
    assert_eq!(app.screen, Screen::Console);
    assert!(matches!(
        app.conn.as_ref().unwrap().state,
        LinkState::Connecting { attempt: 0 }
    ));

    // Backing out disconnects, and that server is not connected to again by itself.
    assert_eq!(app.update(key(KeyCode::Esc)), vec![Action::Hangup]);
    assert_eq!(app.screen, Screen::Scan);
    app.update(ch('r'));
    let actions = app.update(scan_msg(&app, DiscoveryEvent::Found(moved)));
    assert!(actions.is_empty(), "{actions:?}");
    // Enter still connects.
    let actions = app.update(key(KeyCode::Enter));
    assert!(
        matches!(actions.as_slice(), [Action::Connect { .. }]),
        "{actions:?}"
    );
}

#[test]
fn typing_a_code_takes_digits_only_and_submits_on_enter() {
    let (mut app, _) = app(80, 24, true);
    let l = start_pairing(&mut app, "front-desk", 1);
    assert_eq!(app.screen, Screen::Pair);
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Requesting);
    app.update(link(l, challenge("front-desk", 1)));
    let pair = app.pairing.as_ref().unwrap();
    assert_eq!(pair.phase, PairPhase::Entering);
    assert_eq!(pair.attempts_left, 5);
    assert_eq!(pair.server_id, Some(peer(1)));

    // Letters, spaces and dashes are skipped; q is not a way out while the box has focus.
    type_text(&mut app, "1x2 3-q4");
    app.update(release('9'));
    assert_eq!(app.pairing.as_ref().unwrap().input.value(), "1234");
    assert_eq!(app.screen, Screen::Pair);
    // Too short: said so, nothing sent.
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert!(
        app.pairing
            .as_ref()
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("6 digits"),
        "{:?}",
        app.pairing
    );
    // Backspace edits; digits past six are dropped.
    app.update(key(KeyCode::Backspace));
    type_text(&mut app, "45678");
    assert_eq!(app.pairing.as_ref().unwrap().input.value(), "123456");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        vec![Action::Submit {
            link: l,
            code: "123456".into()
        }]
    );
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Checking);
    // While checking, nothing is typed or sent twice.
    type_text(&mut app, "7");
    assert!(app.update(key(KeyCode::Enter)).is_empty());
}

#[test]
fn a_wrong_code_says_how_many_attempts_are_left() {
    let (mut app, start) = app(80, 24, true);
    let l = start_pairing(&mut app, "front-desk", 1);
    app.update(link(l, challenge("front-desk", 1)));
    type_text(&mut app, "111 111");
    app.update(key(KeyCode::Enter));
    app.update(link(
        l,
        LinkEvent::Rejected {
            why: Rejection::WrongCode {
                attempts_left: 4,
                retry_after: Some(Duration::from_secs(2)),
            },
            ended: false,
        },
    ));
    let pair = app.pairing.as_ref().unwrap();
    assert_eq!(pair.phase, PairPhase::Entering);
    assert_eq!(pair.attempts_left, 4);
    assert_eq!(pair.input.value(), "", "the box is cleared for the retry");
    assert_eq!(
        pair.error.as_deref(),
        Some("wrong code, 4 attempts left; next try in 2 s")
    );
    assert_eq!(pair.retry_at, Some(clock_at(start, 2000).instant));
    // The retry goes out at once: the engine waits out the pause itself.
    type_text(&mut app, "123456");
    assert!(matches!(
        app.update(key(KeyCode::Enter)).as_slice(),
        [Action::Submit { .. }]
    ));
    // A late message from an earlier pairing changes nothing.
    app.update(link(
        l - 1,
        LinkEvent::Rejected {
            why: Rejection::Expired,
            ended: false,
        },
    ));
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Checking);
}

#[test]
fn an_expired_code_is_renewed_without_leaving() {
    let (mut app, start) = app(80, 24, true);
    let l = start_pairing(&mut app, "front-desk", 1);
    app.update(link(l, challenge("front-desk", 1)));
    type_text(&mut app, "123456");
    app.update(key(KeyCode::Enter));
    app.update(link(
        l,
        LinkEvent::Rejected {
            why: Rejection::Expired,
            ended: false,
        },
    ));
    let pair = app.pairing.as_ref().unwrap();
    assert_eq!(pair.phase, PairPhase::Expired);
    assert!(
        pair.error
            .as_deref()
            .unwrap()
            .starts_with("code expired: ask again")
    );
    assert!(
        app.update(key(KeyCode::Enter)).is_empty(),
        "nothing to submit"
    );
    assert_eq!(app.update(ch('n')), vec![Action::NewCode { link: l }]);
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Requesting);
    app.update(link(l, challenge("front-desk", 1)));
    let pair = app.pairing.as_ref().unwrap();
    assert_eq!(pair.phase, PairPhase::Entering);
    assert_eq!(pair.error, None);
    assert_eq!(app.screen, Screen::Pair);

    // The countdown knows before the server says so.
    app.update(Msg::Tick(clock_at(start, 119_000)));
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Entering);
    app.update(Msg::Tick(clock_at(start, 120_000)));
    let pair = app.pairing.as_ref().unwrap();
    assert_eq!(pair.phase, PairPhase::Expired);
    assert!(pair.error.as_deref().unwrap().contains("code expired"));

    // Too many wrong codes is the same story.
    app.update(ch('n'));
    app.update(link(l, challenge("front-desk", 1)));
    app.update(link(
        l,
        LinkEvent::Rejected {
            why: Rejection::Exhausted,
            ended: false,
        },
    ));
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Expired);
    assert_eq!(app.update(ch('n')), vec![Action::NewCode { link: l }]);
}

#[test]
fn refusals_say_why_and_only_a_rate_limited_attempt_keeps_the_code() {
    use csc_shared::message::PairFailure;
    let refused = |reason, secs: Option<u64>| LinkEvent::Rejected {
        why: Rejection::Refused {
            reason,
            retry_after: secs.map(Duration::from_secs),
        },
        ended: false,
    };
    let (mut app, start) = app(80, 24, true);
    let l = start_pairing(&mut app, "front-desk", 1);
    app.update(link(l, challenge("front-desk", 1)));

    // Typed before the server's wait was over: the code stands, with a countdown.
    type_text(&mut app, "123456");
    app.update(key(KeyCode::Enter));
    app.update(link(l, refused(PairFailure::RateLimited, Some(40))));
    let pair = app.pairing.as_ref().unwrap();
    assert_eq!(pair.phase, PairPhase::Entering);
    assert_eq!(pair.retry_at, Some(clock_at(start, 40_000).instant));
    assert_eq!(
        pair.error.as_deref(),
        Some(
            "pairing refused: too many failures from this address: wait and retry (try again in 40 s)"
        )
    );

    // Displaced: the code is gone, n asks again.
    type_text(&mut app, "123456");
    app.update(key(KeyCode::Enter));
    app.update(link(l, refused(PairFailure::Displaced, None)));
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Expired);
    assert!(
        app.pairing
            .as_ref()
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("ask again")
    );

    // Asking again while pairing is closed: still no code; the reason and when it reopens.
    assert_eq!(app.update(ch('n')), vec![Action::NewCode { link: l }]);
    app.update(link(l, refused(PairFailure::PairingClosed, Some(14 * 60))));
    let pair = app.pairing.as_ref().unwrap();
    assert_eq!(pair.phase, PairPhase::Expired);
    assert_eq!(
        pair.error.as_deref(),
        Some(
            "pairing refused: pairing is closed on this server: ask its operator to open it (reopens by itself in 14 min)"
        )
    );

    // A rate-limited request (not attempt) leaves no code to type either.
    app.update(ch('n'));
    app.update(link(l, refused(PairFailure::RateLimited, Some(40))));
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Expired);
    assert_eq!(app.update(ch('n')), vec![Action::NewCode { link: l }]);
}

#[test]
fn a_failed_pairing_starts_over_on_request() {
    let (mut app, _) = app(80, 24, true);
    let l = start_pairing(&mut app, "front-desk", 1);
    app.update(link(
        l,
        LinkEvent::Rejected {
            why: Rejection::Failed("server unreachable at 192.168.1.1:47474: refused".into()),
            ended: true,
        },
    ));
    assert_eq!(app.pairing.as_ref().unwrap().phase, PairPhase::Failed);
    match app.update(ch('n')).as_slice() {
        [Action::Pair { link, addr: a }] => {
            assert_ne!(*link, l, "a new pairing");
            assert_eq!(*a, addr(1));
        }
        other => panic!("{other:?}"),
    }
    // Esc gives up and goes back.
    assert_eq!(app.update(key(KeyCode::Esc)), vec![Action::Hangup]);
    assert_eq!(app.screen, Screen::Scan);
    assert!(app.pairing.is_none());
}

#[test]
fn the_right_code_pairs_and_opens_the_console() {
    let (mut app, _) = app(80, 24, true);
    let l = start_pairing(&mut app, "front-desk", 1);
    app.update(link(l, challenge("front-desk", 1)));
    type_text(&mut app, "123456");
    app.update(key(KeyCode::Enter));
    app.update(link(l, LinkEvent::Paired(paired("front-desk", 1))));
    assert_eq!(app.screen, Screen::Console);
    assert!(app.is_paired(&peer(1)));
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .starts_with("paired with front-desk")
    );
    app.update(link(
        l,
        LinkEvent::Connected {
            server: paired("front-desk", 1),
            addr: addr(1),
            via: None,
            elapsed: Duration::ZERO,
        },
    ));
    let conn = app.conn.as_ref().unwrap();
    assert!(matches!(conn.state, LinkState::Connected { .. }));
    assert_eq!(conn.via, Some(Via::Scan), "as the host was found");
    let texts = console_texts(&app);
    assert!(
        texts
            .iter()
            .any(|t| t == "connected to front-desk at 192.168.1.1:47474 via scan"),
        "{texts:?}"
    );
}

#[test]
fn the_console_runs_tasks_keeps_history_and_shows_notices() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let l = connected(&mut app, "front-desk", 1);
    type_text(&mut app, "echo hi there");
    let actions = app.update(key(KeyCode::Enter));
    assert_eq!(
        actions,
        vec![Action::Run {
            link: l,
            id: 1,
            task: "echo".into(),
            args: vec!["hi".into(), "there".into()]
        }]
    );
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "");
    app.update(link(
        l,
        LinkEvent::Reply {
            id: 1,
            result: Ok(json!("hi there")),
            rtt: Duration::from_micros(800),
        },
    ));
    let last = app.conn.as_ref().unwrap().console.back().unwrap().clone();
    assert_eq!(last.kind, EntryKind::Reply);
    assert_eq!(last.text, "hi there");
    assert_eq!(last.rtt, Some(Duration::from_micros(800)));

    // q, j and k are typed here; Ctrl-C still quits.
    type_text(&mut app, "qjk");
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "qjk");
    assert_eq!(app.update(key(KeyCode::Esc)), vec![], "Esc clears first");
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "");

    type_text(&mut app, "ping");
    app.update(key(KeyCode::Enter));
    app.update(link(
        l,
        LinkEvent::Reply {
            id: 2,
            result: Err("error (unknown_task): no such task".into()),
            rtt: Duration::from_millis(1),
        },
    ));
    assert_eq!(
        app.conn.as_ref().unwrap().console.back().unwrap().kind,
        EntryKind::Error
    );
    // History: up walks back, down comes forward to what was being typed.
    type_text(&mut app, "ti");
    app.update(key(KeyCode::Up));
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "ping");
    app.update(key(KeyCode::Up));
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "echo hi there");
    app.update(key(KeyCode::Up));
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "echo hi there");
    app.update(key(KeyCode::Down));
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "ping");
    app.update(key(KeyCode::Down));
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "ti");

    app.update(link(
        l,
        LinkEvent::Notice {
            text: "closing at six".into(),
        },
    ));
    let last = app.conn.as_ref().unwrap().console.back().unwrap().clone();
    assert_eq!(last.kind, EntryKind::Notice);
    assert_eq!(last.text, "notice: closing at six");
    assert_eq!(app.update(ctrl('c')), vec![Action::Quit]);
}

#[test]
fn the_console_shows_what_the_link_reports_and_never_reconnects_by_itself() {
    let (mut app, start) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let l = connected(&mut app, "front-desk", 1);
    app.update(link(
        l,
        LinkEvent::Lost {
            reason: "lost: no answer from the server for 8.0 s".into(),
        },
    ));
    assert_eq!(
        app.conn.as_ref().unwrap().state,
        LinkState::Connecting { attempt: 1 }
    );
    assert!(
        console_texts(&app)
            .iter()
            .any(|t| t == "connection lost: lost: no answer from the server for 8.0 s")
    );
    // A task typed meanwhile goes to the link, which holds it until it is back (or its
    // deadline passes): it is not refused here.
    type_text(&mut app, "ping");
    assert!(matches!(
        app.update(key(KeyCode::Enter)).as_slice(),
        [Action::Run { task, .. }] if task == "ping"
    ));
    assert!(
        console_texts(&app)
            .last()
            .unwrap()
            .starts_with("not connected: the task waits")
    );
    // A failed attempt: the countdown the link announced, nothing more.
    app.update(link(
        l,
        LinkEvent::Retrying {
            attempt: 1,
            wait: Duration::from_millis(1200),
            error: "server unreachable".into(),
        },
    ));
    assert_eq!(
        app.conn.as_ref().unwrap().state,
        LinkState::Waiting {
            attempt: 2,
            at: clock_at(start, 1200).instant,
            reason: "server unreachable".into()
        }
    );
    assert!(
        console_texts(&app)
            .iter()
            .any(|t| t == "reconnecting in 2 s (attempt 2)"),
        "{:?}",
        console_texts(&app)
    );
    // The app never starts a connection on its own when the countdown ends.
    for ms in [1000, 1200, 5000, 60_000] {
        assert!(app.update(Msg::Tick(clock_at(start, ms))).is_empty());
    }
    app.update(link(l, LinkEvent::Connecting { attempt: 2 }));
    assert_eq!(
        app.conn.as_ref().unwrap().state,
        LinkState::Connecting { attempt: 2 }
    );
    app.update(link_msg_connected(l, "front-desk", 1));
    assert!(matches!(
        app.conn.as_ref().unwrap().state,
        LinkState::Connected { .. }
    ));
    assert!(
        console_texts(&app)
            .iter()
            .any(|t| t.starts_with("reconnected to front-desk at 192.168.1.1:47474 via last")),
        "{:?}",
        console_texts(&app)
    );
}

#[test]
fn a_revoked_pairing_goes_back_to_the_scan_to_pair_again() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let l = connected(&mut app, "front-desk", 1);
    let actions = app.update(link(
        l,
        LinkEvent::RepairRequired {
            reason: RepairReason::Revoked,
        },
    ));
    assert_eq!(actions, vec![Action::Hangup]);
    assert_eq!(app.screen, Screen::Scan);
    assert!(app.conn.is_none());
    let status = app.status.clone().unwrap();
    assert_eq!(status.level, Level::Error);
    assert!(
        status.text.starts_with("re-pair required with front-desk"),
        "{status:?}"
    );
    // Not connected to again by itself; Enter pairs instead of connecting.
    app.update(ch('r'));
    let actions = app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    assert!(actions.is_empty(), "{actions:?}");
    assert!(matches!(
        app.update(key(KeyCode::Enter)).as_slice(),
        [Action::Pair { .. }]
    ));
}

#[test]
fn a_first_connection_that_fails_goes_back_with_the_reason() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let actions = app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    let Some(Action::Connect { link: l, .. }) = actions.first().cloned() else {
        panic!("{actions:?}");
    };
    app.update(link(l, LinkEvent::Connecting { attempt: 1 }));
    let actions = app.update(link(
        l,
        LinkEvent::Retrying {
            attempt: 1,
            wait: Duration::from_secs(1),
            error: "the server at 192.168.1.1:47474 presented identity 0000-0000".into(),
        },
    ));
    assert_eq!(actions, vec![Action::Hangup]);
    assert_eq!(app.screen, Screen::Scan);
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .contains("presented identity")
    );
}

#[test]
fn addresses_by_hand_and_forgetting_a_server() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    app.update(ch('a'));
    assert_eq!(app.scopes(), vec![Scope::Address]);
    type_text(&mut app, "10.9.8.7:1234");
    assert_eq!(app.update(ch('q')), vec![], "q is typed in the box");
    app.update(key(KeyCode::Backspace));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        vec![Action::Probe {
            scan: app.scan.id,
            spec: "10.9.8.7:1234".into(),
            via: Via::Manual
        }]
    );
    app.update(Msg::ProbeFailed {
        spec: "10.9.8.7:1234".into(),
        error: "connection refused".into(),
    });
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .contains("connection refused")
    );

    assert_eq!(app.update(ch('p')), vec![Action::LoadServers]);
    assert_eq!(app.screen, Screen::Servers);
    app.update(ch('x'));
    assert!(matches!(app.overlay, Overlay::Confirm(_)));
    assert_eq!(app.update(ch('q')), vec![], "q does nothing in the dialog");
    assert_eq!(app.update(key(KeyCode::Esc)), vec![]);
    assert!(matches!(app.overlay, Overlay::None));
    app.update(key(KeyCode::Delete));
    assert_eq!(
        app.update(ch('y')),
        vec![Action::Forget { server_id: peer(1) }]
    );
    assert_eq!(
        app.update(Msg::Forgot {
            name: "front-desk".into(),
            short: peer(1).short(),
            revoked: Ok(())
        }),
        vec![Action::LoadServers]
    );
    app.update(Msg::Servers(Vec::new()));
    assert!(app.paired.is_empty());
    assert_eq!(app.update(key(KeyCode::Esc)), vec![]);
    assert_eq!(app.screen, Screen::Scan);
    assert_eq!(app.update(ch('?')), vec![]);
    assert!(matches!(app.overlay, Overlay::Help));
    assert_eq!(app.update(ch('?')), vec![]);
    assert_eq!(app.update(ch('q')), vec![Action::Quit]);
}

fn task_info(name: &str, args: &[(&str, &str)]) -> csc_shared::message::TaskInfo {
    csc_shared::message::TaskInfo {
        name: name.into(),
        description: format!("{name} things"),
        args: args
            .iter()
            .map(|(n, p)| csc_shared::message::ArgInfo {
                name: (*n).into(),
                pattern: (*p).into(),
            })
            .collect(),
        stdin: false,
        builtin: false,
    }
}

#[test]
fn connecting_asks_for_the_tasks_and_tab_completes_them() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let actions = app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    let Some(Action::Connect { link: l, .. }) = actions.first().cloned() else {
        panic!("{actions:?}");
    };
    assert_eq!(
        app.update(link_msg_connected(l, "front-desk", 1)),
        vec![Action::ListTasks { link: l }]
    );
    app.update(link(
        l,
        LinkEvent::Tasks(vec![
            task_info("greet", &[("who", "^[a-z]{1,16}$")]),
            task_info("grep-logs", &[]),
            task_info("count", &[]),
        ]),
    ));
    type_text(&mut app, "gr");
    app.update(key(KeyCode::Tab));
    assert_eq!(
        app.conn.as_ref().unwrap().input.value(),
        "gre",
        "the common part"
    );
    type_text(&mut app, "e");
    app.update(key(KeyCode::Tab));
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "greet ");
    let hint = crate::app::arg_hint(app.conn.as_ref().unwrap()).unwrap();
    assert!(hint.contains("<who: ^[a-z]{1,16}$>"), "{hint}");
    // `?` is typed when something is typed, and shows the keys on an empty line.
    type_text(&mut app, "?");
    assert_eq!(app.conn.as_ref().unwrap().input.value(), "greet ?");
    app.update(key(KeyCode::Esc));
    assert!(app.update(ch('?')).is_empty());
    assert!(matches!(app.overlay, Overlay::Help));
    app.update(key(KeyCode::Esc));
    app.update(ctrl('t'));
    assert!(matches!(app.overlay, Overlay::Tasks));
    app.update(key(KeyCode::Esc));
    assert!(matches!(app.overlay, Overlay::None));
}

#[test]
fn output_streams_into_the_console_and_ctrl_c_cancels_before_it_quits() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let l = connected(&mut app, "front-desk", 1);
    type_text(&mut app, "count");
    let id = match app.update(key(KeyCode::Enter)).as_slice() {
        [Action::Run { id, task, .. }] if task == "count" => *id,
        other => panic!("{other:?}"),
    };
    // Lines appear as they come, a line split across chunks once it is whole.
    let out = |data: &[u8]| {
        link(
            l,
            LinkEvent::RunOutput {
                id,
                stream: OutputStream::Stdout,
                data: data.to_vec(),
            },
        )
    };
    app.update(out(b"1\n2"));
    assert_eq!(console_texts(&app).last().unwrap(), "1");
    app.update(out(b"\n3"));
    assert_eq!(console_texts(&app).last().unwrap(), "2");
    app.update(link(
        l,
        LinkEvent::RunOutput {
            id,
            stream: OutputStream::Stderr,
            data: b"warning\n".to_vec(),
        },
    ));
    let last = app.conn.as_ref().unwrap().console.back().unwrap().clone();
    assert_eq!(
        (last.kind, last.text.as_str()),
        (EntryKind::Error, "warning")
    );
    // The first Ctrl-C cancels the run in progress, the second quits.
    assert_eq!(
        app.update(ctrl('c')),
        vec![Action::CancelRun { link: l, id }]
    );
    assert_eq!(app.update(ctrl('c')), vec![Action::Quit]);
    // The end: what was left without a newline, then the status.
    app.update(link(
        l,
        LinkEvent::RunDone {
            id,
            status: RunStatus::Stopped {
                reason: csc_shared::message::StopReason::Cancelled,
            },
            rtt: Duration::from_millis(1500),
        },
    ));
    let texts = console_texts(&app);
    assert_eq!(texts[texts.len() - 2], "3");
    assert_eq!(texts.last().unwrap(), "count was stopped: it was cancelled");
    assert!(app.conn.as_ref().unwrap().running.is_empty());
    // Nothing running: Ctrl-C quits at once, Esc on an empty line disconnects.
    assert_eq!(app.update(ctrl('c')), vec![Action::Quit]);
}

#[test]
fn a_line_that_never_ends_is_shown_in_pieces() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let l = connected(&mut app, "front-desk", 1);
    type_text(&mut app, "yes");
    app.update(key(KeyCode::Enter));
    let before = console_texts(&app).len();
    for _ in 0..3 {
        app.update(link(
            l,
            LinkEvent::RunOutput {
                id: 1,
                stream: OutputStream::Stdout,
                data: vec![b'y'; crate::app::OUTPUT_LINE_MAX],
            },
        ));
    }
    assert_eq!(console_texts(&app).len(), before + 3);
    assert!(
        app.conn
            .as_ref()
            .unwrap()
            .partial
            .values()
            .all(Vec::is_empty)
    );
}

#[test]
fn a_key_for_the_other_list_says_where_it_works() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    app.status = None;
    // `x` forgets a paired server, in the paired servers list.
    assert_eq!(app.update(ch('x')), vec![]);
    let said = app.status.clone().expect("x says where it works").text;
    assert!(said.contains("forget") && said.contains("p "), "{said}");
    // `r` searches, on the scan screen.
    app.update(ch('p'));
    assert_eq!(app.screen, Screen::Servers);
    assert_eq!(app.update(ch('r')), vec![]);
    let said = app.status.clone().expect("r says where it works").text;
    assert!(said.contains("search") && said.contains("Esc"), "{said}");
    // A key bound nowhere.
    assert_eq!(app.update(ch('z')), vec![]);
    let said = app.status.clone().expect("z says so").text;
    assert!(said.contains("? lists the keys"), "{said}");
}

#[test]
fn keys_with_nothing_to_act_on_say_so() {
    let (mut app, _) = app(80, 24, true);
    assert!(app.hosts.is_empty());
    assert_eq!(app.update(key(KeyCode::Enter)), vec![]);
    let said = app.status.clone().expect("Enter says why").text;
    assert!(said.contains("no server"), "{said}");
    app.update(ch('p'));
    app.update(Msg::Servers(Vec::new()));
    app.status = None;
    app.update(ch('x'));
    let said = app.status.clone().expect("x says why").text;
    assert!(said.contains("no paired server"), "{said}");

    // On the code screen, a letter is not silently dropped, nor `n` while a code is on its way.
    let (mut app, _) = app_with(80, 24, true, vec![]);
    let l = start_pairing(&mut app, "front-desk", 1);
    app.update(ch('n'));
    let said = app.status.clone().expect("n says why").text;
    assert!(said.contains("on its way"), "{said}");
    app.update(link(l, challenge("front-desk", 1)));
    app.update(ch('w'));
    let said = app.status.clone().expect("w says why").text;
    assert!(said.contains("only digits"), "{said}");
    assert_eq!(app.pairing.as_ref().unwrap().input.value(), "");
}

#[test]
fn the_forget_confirmation_takes_y_and_keeps_the_server_on_n_or_esc() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    app.update(ch('p'));
    app.update(ch('x'));
    assert!(matches!(app.overlay, Overlay::Confirm(_)));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        vec![],
        "Enter is no answer"
    );
    assert!(matches!(app.overlay, Overlay::Confirm(_)));
    assert_eq!(app.update(ch('n')), vec![]);
    assert!(matches!(app.overlay, Overlay::None));
}
