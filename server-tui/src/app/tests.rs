//! `App::update` alone: engine events and keys in, state and actions out.

use crossterm::event::KeyCode;
use csc_shared::message::PairFailure;
use csc_shared::server::ServerEvent;

use super::*;
use crate::test_support::*;

fn three_clients(app: &mut App) {
    app.update(Msg::Clients(vec![
        client("zebra", 3, 0, 0),
        client("alpha", 1, 1, 12),
        client("mike", 2, 0, 4),
    ]));
}

#[test]
fn a_pair_request_arrives_counts_down_and_fails_attempts() {
    let (mut app, start) = app(80, 24, true);
    assert!(app.banner_request().is_none());
    app.update(Msg::Engine(pair_request(7, "kiosk-1", 9, "122077")));
    let req = app.banner_request().expect("the request is in the banner");
    assert_eq!(req.code, "122077");
    assert_eq!(req.client_name, "kiosk-1");
    assert_eq!(req.seconds_left(app.clock.instant), 120);
    // The code is printed once in plain text in the log, as the headless output does.
    let with_code: Vec<_> = app
        .log
        .iter()
        .filter(|l| l.text.contains("122077"))
        .collect();
    assert_eq!(with_code.len(), 1, "{:?}", app.log);
    assert!(with_code[0].text.starts_with("pairing code for kiosk-1"));

    app.update(Msg::Tick(clock_at(start, 6)));
    assert_eq!(
        app.banner_request()
            .unwrap()
            .seconds_left(app.clock.instant),
        114
    );

    app.update(Msg::Engine(ServerEvent::PairFailed {
        request_id: Some(7),
        client_name: "kiosk-1".into(),
        client_addr: addr(9, 51_234),
        client_id: peer(9),
        reason: PairFailure::WrongCode,
        attempts_left: 4,
    }));
    assert_eq!(app.banner_request().unwrap().attempts_left, 4);
    let last = app.log.back().unwrap();
    assert!(last.text.contains("wrong code"), "{last:?}");
    assert_eq!(last.level, Level::Warn);
}

#[test]
fn an_expired_request_leaves_the_banner() {
    let (mut app, _) = app(80, 24, true);
    app.update(Msg::Engine(pair_request(1, "old", 1, "111111")));
    app.update(Msg::Engine(pair_request(2, "new", 2, "222222")));
    assert_eq!(app.banner_request().unwrap().code, "222222", "newest first");
    app.update(Msg::Engine(ServerEvent::PairClosed {
        request_id: 2,
        reason: csc_shared::server::PairClosedReason::Expired,
    }));
    assert_eq!(app.banner_request().unwrap().code, "111111");
    app.update(Msg::Engine(ServerEvent::PairClosed {
        request_id: 1,
        reason: csc_shared::server::PairClosedReason::Expired,
    }));
    assert!(app.banner_request().is_none());
    assert!(app.requests.is_empty());
    assert!(app.log.back().unwrap().text.contains("expired"));
}

#[test]
fn a_successful_pairing_removes_the_request_and_refreshes_clients() {
    let (mut app, start) = app(80, 24, true);
    app.update(Msg::Tick(clock_at(start, 0)));
    app.update(Msg::Engine(pair_request(3, "kiosk-1", 9, "122077")));
    app.update(Msg::Engine(ServerEvent::Paired {
        request_id: 3,
        client_name: "kiosk-1".into(),
        client_addr: addr(9, 51_234),
        client_id: peer(9),
    }));
    assert!(app.requests.is_empty());
    assert!(app.log.back().unwrap().text.starts_with("paired kiosk-1"));
    assert_eq!(app.log.back().unwrap().level, Level::Good);
    // The next tick asks for the client list at once, not a second later.
    assert_eq!(
        app.update(Msg::Tick(clock_at(start, 0))),
        Some(Action::Refresh)
    );
    app.update(Msg::Clients(vec![client("kiosk-1", 9, 0, 0)]));
    assert_eq!(app.clients.len(), 1);
    assert_eq!(app.update(Msg::Tick(clock_at(start, 0))), None);
}

#[test]
fn other_requests_can_be_chosen() {
    let (mut app, _) = app(80, 24, true);
    for (id, code) in [(1, "111111"), (2, "222222"), (3, "333333")] {
        app.update(Msg::Engine(pair_request(id, "c", id as u8, code)));
    }
    app.update(key(KeyCode::BackTab));
    assert_eq!(app.focus, Pane::Requests);
    app.update(ch('j'));
    assert_eq!(app.banner_request().unwrap().code, "222222");
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    assert_eq!(
        app.banner_request().unwrap().code,
        "111111",
        "stops at the oldest"
    );
    app.update(ch('k'));
    assert_eq!(app.banner_request().unwrap().code, "222222");
    // A new request takes the banner.
    app.update(Msg::Engine(pair_request(4, "d", 4, "444444")));
    assert_eq!(app.banner_request().unwrap().code, "444444");
}

#[test]
fn revoke_with_confirm_returns_the_action() {
    let (mut app, _) = app(80, 24, true);
    three_clients(&mut app);
    assert_eq!(app.clients[0].record.name, "alpha", "sorted by name");
    app.update(ch('j'));
    assert_eq!(app.selected, 1);
    assert_eq!(app.update(ch('x')), None);
    match &app.mode {
        Mode::Confirm(t) => assert_eq!(t.name, "mike"),
        other => panic!("expected the confirmation, got {other:?}"),
    }
    // While the dialog is open, `x`, `q` and arrows do nothing.
    assert_eq!(app.update(ch('x')), None);
    assert_eq!(app.update(ch('q')), None);
    assert!(matches!(app.mode, Mode::Confirm(_)));
    assert_eq!(
        app.update(ch('y')),
        Some(Action::Revoke {
            client_id: peer(2).to_hex()
        })
    );
    assert!(matches!(app.mode, Mode::Normal));

    // Delete opens it too.
    app.update(key(KeyCode::Delete));
    assert_eq!(
        app.update(ch('y')),
        Some(Action::Revoke {
            client_id: peer(2).to_hex()
        })
    );
}

#[test]
fn revoke_with_cancel_returns_nothing() {
    let (mut app, _) = app(80, 24, true);
    three_clients(&mut app);
    app.update(ch('x'));
    assert!(matches!(app.mode, Mode::Confirm(_)));
    assert_eq!(app.update(key(KeyCode::Esc)), None);
    assert!(matches!(app.mode, Mode::Normal));
    app.update(ch('x'));
    assert_eq!(app.update(ch('n')), None);
    assert!(matches!(app.mode, Mode::Normal));
    assert_eq!(app.clients.len(), 3);
}

#[test]
fn revoke_needs_the_clients_pane_and_a_client() {
    let (mut app, _) = app(80, 24, true);
    app.update(ch('x'));
    assert!(matches!(app.mode, Mode::Normal), "no clients, no dialog");
    three_clients(&mut app);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Log);
    app.update(ch('x'));
    assert!(
        matches!(app.mode, Mode::Normal),
        "x is for the clients table"
    );
}

#[test]
fn quit_while_typing_types_q_and_ctrl_c_quits() {
    let (mut app, _) = app(80, 24, true);
    assert_eq!(app.update(ch('n')), None);
    assert!(matches!(app.mode, Mode::Input(_)));
    for c in "quiet please".chars() {
        assert_eq!(app.update(ch(c)), None, "{c:?} is typed");
    }
    match &app.mode {
        Mode::Input(i) => assert_eq!(i.value(), "quiet please"),
        other => panic!("{other:?}"),
    }
    assert_eq!(app.update(ctrl('c')), Some(Action::Quit));
}

#[test]
fn a_notice_is_sent_with_enter_and_dropped_with_esc() {
    let (mut app, _) = app(80, 24, true);
    app.update(ch('n'));
    for c in " back in 5 ".chars() {
        app.update(ch(c));
    }
    app.update(key(KeyCode::Backspace));
    app.update(key(KeyCode::Backspace));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        Some(Action::Notify("back in".into())),
        "trimmed"
    );
    assert!(matches!(app.mode, Mode::Normal));
    app.update(ch('n'));
    app.update(ch('x'));
    assert_eq!(app.update(key(KeyCode::Esc)), None);
    assert!(matches!(app.mode, Mode::Normal));
    app.update(ch('n'));
    assert_eq!(app.update(key(KeyCode::Enter)), None, "nothing typed");
}

#[test]
fn q_quits_and_help_opens_and_closes() {
    let (mut app, _) = app(80, 24, true);
    app.update(ch('?'));
    assert!(matches!(app.mode, Mode::Help));
    app.update(key(KeyCode::Esc));
    assert!(matches!(app.mode, Mode::Normal));
    assert_eq!(app.update(ch('q')), Some(Action::Quit));
    assert_eq!(app.update(ctrl('c')), Some(Action::Quit));
}

#[test]
fn only_key_presses_count() {
    let (mut app, _) = app(80, 24, true);
    assert_eq!(app.update(release('q')), None);
    assert_eq!(app.update(release('n')), None);
    assert!(matches!(app.mode, Mode::Normal));
}

#[test]
fn selection_scrolls_and_follows_its_client_across_refreshes() {
    let (mut app, _) = app(80, 24, true);
    let many: Vec<_> = (0..200u8)
        .map(|i| client(&format!("c{i:03}"), i, 0, 0))
        .collect();
    app.update(Msg::Clients(many.clone()));
    let rows = crate::ui::client_rows(&app);
    assert!((3..20).contains(&rows), "{rows}");
    for _ in 0..rows + 2 {
        app.update(ch('j'));
    }
    assert_eq!(app.selected, rows + 2);
    assert_eq!(app.offset, 3, "scrolled just enough");
    app.update(key(KeyCode::End));
    assert_eq!(app.selected, 199);
    app.update(key(KeyCode::PageUp));
    assert_eq!(app.selected, 199 - rows);
    let chosen = app.clients[app.selected].record.client_id;
    // A new client sorting first moves everything down; the selection stays on its client.
    let mut more = many;
    more.push(client("a-first", 250, 0, 0));
    app.update(Msg::Clients(more));
    assert_eq!(app.clients[app.selected].record.client_id, chosen);
    app.update(ch('g'));
    assert_eq!((app.selected, app.offset), (0, 0));
}

#[test]
fn the_log_is_bounded_and_scrolls() {
    let (mut app, _) = app(80, 24, true);
    for i in 0..LOG_CAPACITY + 50 {
        app.update(Msg::Log(Level::Info, format!("line {i}")));
    }
    assert_eq!(app.log.len(), LOG_CAPACITY);
    assert_eq!(
        app.log.back().unwrap().text,
        format!("line {}", LOG_CAPACITY + 49)
    );
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Log);
    app.update(ch('k'));
    app.update(ch('k'));
    assert_eq!(app.log_scroll, 2);
    // New lines keep the reader's place.
    app.update(Msg::Log(Level::Info, "new".into()));
    assert_eq!(app.log_scroll, 3);
    app.update(key(KeyCode::End));
    assert_eq!(app.log_scroll, 0);
    app.update(key(KeyCode::Home));
    assert_eq!(app.log_scroll, LOG_CAPACITY - crate::ui::log_rows(&app));
}

#[test]
fn ticks_refresh_clients_once_a_second() {
    let (mut app, start) = app(80, 24, true);
    assert_eq!(
        app.update(Msg::Tick(clock_at(start, 0))),
        Some(Action::Refresh),
        "the first tick reads the list"
    );
    assert_eq!(app.update(Msg::Tick(clock_at(start, 0))), None);
    assert_eq!(
        app.update(Msg::Tick(clock_at(start, 1))),
        Some(Action::Refresh)
    );
    app.update(Msg::Engine(ServerEvent::Connected {
        session_id: 1,
        client_name: "a".into(),
        client_addr: addr(1, 1),
        client_id: peer(1),
    }));
    assert_eq!(
        app.update(Msg::Tick(clock_at(start, 1))),
        Some(Action::Refresh),
        "a connection makes the list stale"
    );
}

#[test]
fn a_client_revoked_elsewhere_closes_its_confirmation() {
    let (mut app, _) = app(80, 24, true);
    three_clients(&mut app);
    app.update(ch('x'));
    assert!(matches!(app.mode, Mode::Confirm(_)));
    app.update(Msg::Clients(vec![client("zebra", 3, 0, 0)]));
    assert!(matches!(app.mode, Mode::Normal));
    assert_eq!(app.selected, 0);
}

#[test]
fn a_spent_budget_closes_pairing_and_o_reopens_it() {
    let (mut app, start) = app(80, 24, true);
    assert!(app.pairing.open);
    // `c` closes only what is open; `o` always asks the engine.
    assert_eq!(app.update(ch('c')), Some(Action::ClosePairing));
    app.update(Msg::Engine(budget_spent(900)));
    assert!(!app.pairing.open);
    assert_eq!(
        app.pairing.reason,
        Some(csc_shared::server::ClosedReason::Budget)
    );
    assert_eq!(
        app.pairing.reopens_at,
        Some(start + std::time::Duration::from_secs(900))
    );
    let last = app.log.back().unwrap();
    assert_eq!(last.level, Level::Error);
    assert!(last.text.starts_with("PAIRING CLOSED"), "{last:?}");
    assert!(last.text.contains("20 wrong codes within 1day"), "{last:?}");
    assert_eq!(app.update(ch('c')), None, "already closed");
    assert_eq!(app.update(ch('o')), Some(Action::OpenPairing));
    app.update(Msg::Engine(ServerEvent::PairingOpened {
        mode: csc_shared::server::PairingMode::Request,
        by: csc_shared::server::OpenedBy::Operator,
        closes_in_s: None,
    }));
    assert!(app.pairing.open);
    assert_eq!(app.pairing.reopens_at, None);
}

#[test]
fn summaries_go_to_the_log_as_one_line() {
    let (mut app, _) = app(80, 24, true);
    let before = app.log.len();
    app.update(Msg::Engine(ServerEvent::Summary {
        interval_ms: 5000,
        failures: 1234,
        shown: 10,
        addresses: 250,
        addresses_capped: false,
        reasons: [("pairing_closed".to_string(), 1234)].into_iter().collect(),
        dropped: 0,
        evicted: 3,
    }));
    assert_eq!(app.log.len(), before + 1);
    let line = &app.log.back().unwrap().text;
    assert!(
        line.contains("1234 refusals from 250 addresses") && line.contains("3 unauthenticated"),
        "{line}"
    );
}

#[test]
fn the_addresses_follow_the_engine() {
    let (mut app, _) = app(80, 24, true);
    assert_eq!(
        app.addrs,
        ["192.168.1.5".parse::<std::net::IpAddr>().unwrap()]
    );
    let moved: Vec<std::net::IpAddr> = vec!["10.1.2.3".parse().unwrap()];
    let action = app.update(Msg::Engine(ServerEvent::AddressesChanged {
        addrs: moved.clone(),
    }));
    assert_eq!(action, None);
    assert_eq!(app.addrs, moved);
    assert_eq!(crate::ui::addresses(&app), moved);
    let last = app.log.back().unwrap();
    assert_eq!(last.text, "addresses changed: reachable at 10.1.2.3");
    // Losing every address but loopback leaves none to show.
    app.update(Msg::Engine(ServerEvent::AddressesChanged { addrs: vec![] }));
    assert!(crate::ui::addresses(&app).is_empty());
    assert!(
        app.log
            .back()
            .unwrap()
            .text
            .contains("no address but loopback")
    );
}

#[test]
fn the_log_says_where_the_tasks_came_from_right_after_listening() {
    let (app, _) = app(80, 24, true);
    let texts: Vec<&str> = app.log.iter().map(|l| l.text.as_str()).collect();
    let at = texts
        .iter()
        .position(|t| t.starts_with("listening on"))
        .expect("a listening line");
    assert_eq!(
        texts.get(at + 1),
        Some(&"tasks from /etc/csc/server.toml: cat, greet"),
        "{texts:?}"
    );
}

#[test]
fn a_run_shows_while_it_runs_and_the_log_records_how_it_ended() {
    use csc_shared::message::{RunStatus, StopReason};
    let (mut app, start) = app(80, 24, true);
    app.update(Msg::Tick(clock_at(start, 0)));
    let before = app.log.len();
    let mut run = run_view(12, "kiosk-1", 1, "greet", &["ada"], 0);
    app.update(Msg::Engine(task_started(&run)));
    assert_eq!(app.runs.len(), 1, "shown at once");
    assert_eq!(app.runs[0].task, "greet");
    assert_eq!(app.runs[0].args, ["ada"]);
    assert_eq!(
        app.log.len(),
        before,
        "a start goes to the runs pane, not the log"
    );
    // The next tick reads the runs for their byte counts.
    assert_eq!(
        app.update(Msg::Tick(clock_at(start, 0))),
        Some(Action::Refresh)
    );
    run.bytes_out = 1229;
    app.update(Msg::Runs(vec![run.clone()]));
    assert_eq!(app.runs[0].bytes_out, 1229);

    app.update(Msg::Engine(task_finished(
        &run,
        RunStatus::Exited { code: 0 },
        3000,
    )));
    assert!(app.runs.is_empty(), "gone as soon as it ends");
    let last = app.log.back().unwrap();
    assert_eq!(
        last.text,
        "run 12: kiosk-1 greet exited 0 after 3.0 s, 1.2 KiB out"
    );
    assert_eq!(last.level, Level::Info);

    let slow = run_view(13, "kiosk-1", 1, "slow", &[], 0);
    app.update(Msg::Engine(task_started(&slow)));
    app.update(Msg::Engine(task_finished(
        &slow,
        RunStatus::Stopped {
            reason: StopReason::Timeout,
        },
        1000,
    )));
    let last = app.log.back().unwrap();
    assert!(
        last.text.contains("slow was stopped: it ran out of time"),
        "{last:?}"
    );
    assert_eq!(last.level, Level::Warn, "a run that failed stands out");
}

#[test]
fn the_runs_pane_takes_the_focus_and_s_stops_the_selected_run() {
    let (mut app, _) = app(80, 24, true);
    three_clients(&mut app);
    assert_eq!(
        app.update(ch('s')),
        None,
        "s means nothing in the clients table"
    );
    app.update(Msg::Runs(vec![
        run_view(7, "alpha", 1, "count", &[], 30),
        run_view(9, "mike", 2, "cat", &[], 5),
        run_view(8, "alpha", 1, "greet", &["bo"], 10),
    ]));
    assert_eq!(
        app.runs.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        [7, 8, 9],
        "oldest first"
    );
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Runs);
    assert_eq!(app.scopes(), vec![Scope::Runs, Scope::Main]);
    app.update(ch('j'));
    assert_eq!(app.run_selected, 1);
    assert_eq!(app.selected, 0, "the clients selection stays");
    assert_eq!(app.update(ch('s')), Some(Action::StopRun { run_id: 8 }));
    assert_eq!(app.update(ch('x')), None, "x revokes clients only");
    assert!(matches!(app.mode, Mode::Normal), "stopping asks nothing");

    // The selection follows its run when an older one ends.
    app.update(Msg::Runs(vec![
        run_view(8, "alpha", 1, "greet", &["bo"], 11),
        run_view(9, "mike", 2, "cat", &[], 6),
    ]));
    assert_eq!(app.runs[app.run_selected].run_id, 8);
    // And moves to a neighbour when its own run ends.
    app.update(Msg::Engine(task_finished(
        &run_view(8, "alpha", 1, "greet", &["bo"], 11),
        csc_shared::message::RunStatus::Exited { code: 0 },
        11_000,
    )));
    assert_eq!(app.runs[app.run_selected].run_id, 9);
    // Nothing left: the pane goes, and the focus back to the clients.
    app.update(Msg::Runs(vec![]));
    assert_eq!(app.focus, Pane::Clients);
    assert_eq!(app.update(ch('s')), None);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Log, "no runs pane to visit");
}

#[test]
fn r_reloads_and_the_outcome_is_logged() {
    let (mut app, _) = app(80, 24, true);
    assert_eq!(app.update(ch('r')), Some(Action::Reload));
    app.update(Msg::Engine(ServerEvent::TasksReloaded {
        path: "/etc/csc/server.toml".into(),
        tasks: vec!["cat".into(), "count".into(), "greet".into()],
    }));
    assert_eq!(app.tasks.tasks, ["cat", "count", "greet"]);
    let last = app.log.back().unwrap();
    assert_eq!(
        last.text,
        "tasks reloaded from /etc/csc/server.toml: cat, count, greet"
    );
    assert_eq!(last.level, Level::Good);
    // A bad reload: the engine warns, and the tasks in force stay.
    app.update(Msg::Engine(ServerEvent::Warning {
        message: "reloading the tasks failed, the 3 configured tasks in force stay: /etc/csc/server.toml:4: tasks.x.command: must not be empty".into(),
    }));
    assert_eq!(app.tasks.tasks, ["cat", "count", "greet"]);
    let last = app.log.back().unwrap();
    assert!(last.text.contains("server.toml:4"), "{last:?}");
    assert_eq!(last.level, Level::Warn);
    // r is typed, not a reload, in the notice input.
    app.update(ch('n'));
    assert_eq!(app.update(ch('r')), None);
}

#[test]
fn refusals_and_renames_are_logged() {
    let (mut app, start) = app(80, 24, true);
    app.update(Msg::Tick(clock_at(start, 0)));
    app.update(Msg::Engine(ServerEvent::TaskRefused {
        session_id: 1,
        client_name: "kiosk-1".into(),
        client_id: peer(1),
        client_addr: addr(1, 5555),
        task: "secret".into(),
        code: csc_shared::message::RefusalCode::Forbidden,
        message: "not allowed".into(),
    }));
    let last = app.log.back().unwrap();
    assert!(
        last.text.ends_with("may not run secret (forbidden)"),
        "{last:?}"
    );
    assert_eq!(last.level, Level::Warn);
    assert_eq!(app.update(Msg::Tick(clock_at(start, 0))), None);
    app.update(Msg::Engine(ServerEvent::Renamed {
        client_id: peer(1),
        old_name: "kiosk-1".into(),
        new_name: "kiosk-2".into(),
    }));
    assert!(app.log.back().unwrap().text.contains("to \"kiosk-2\""));
    assert_eq!(
        app.update(Msg::Tick(clock_at(start, 0))),
        Some(Action::Refresh),
        "a rename makes the client list stale"
    );
}

#[test]
fn a_resize_never_leaves_an_offset_that_hides_rows_that_fit() {
    let (mut app, _) = app(100, 30, true);
    let many: Vec<_> = (0..40u8)
        .map(|i| client(&format!("c{i:03}"), i, 0, 0))
        .collect();
    app.update(Msg::Clients(many));
    app.update(key(KeyCode::End));
    let rows = crate::ui::client_rows(&app);
    assert_eq!(app.offset, 40 - rows);
    // Taller: the rows above the selection come back into view.
    app.update(Msg::Resize(200, 50));
    let taller = crate::ui::client_rows(&app);
    assert!(taller > rows, "{taller} > {rows}");
    assert_eq!(app.offset, 40usize.saturating_sub(taller));
    // Too small, then back: the same offset as before.
    app.update(Msg::Resize(39, 11));
    app.update(Msg::Resize(100, 30));
    assert_eq!(app.offset, 40 - rows);
    app.update(key(KeyCode::Home));
    app.update(Msg::Resize(39, 11));
    app.update(Msg::Resize(100, 30));
    assert_eq!(app.offset, 0);
}

#[test]
fn the_revoke_confirmation_takes_y_and_keeps_the_client_on_n_or_esc() {
    let (mut app, _) = app(80, 24, true);
    three_clients(&mut app);
    app.update(ch('x'));
    // Enter is no answer to "revoke?": only `y` revokes.
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert!(matches!(app.mode, Mode::Confirm(_)));
    assert_eq!(app.update(ch('n')), None, "n is no, not a notice");
    assert!(matches!(app.mode, Mode::Normal));
    app.update(ch('x'));
    assert_eq!(
        app.update(ch('y')),
        Some(Action::Revoke {
            client_id: peer(1).to_hex()
        })
    );
}

#[test]
fn a_key_that_does_nothing_in_the_focused_pane_says_where_it_does() {
    let (mut app, _) = app(80, 24, true);
    three_clients(&mut app);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Log);
    assert_eq!(app.update(ch('x')), None);
    assert!(matches!(app.mode, Mode::Normal));
    let said = app
        .status
        .clone()
        .expect("x says why nothing happened")
        .text;
    assert!(
        said.contains("revoke") && said.contains("clients table") && said.contains("Tab"),
        "{said}"
    );
    // The next key clears it.
    app.update(ch('k'));
    assert_eq!(app.status, None);

    // `s` needs a run, and there is none.
    app.update(ch('s'));
    let said = app.status.clone().expect("s says why").text;
    assert!(
        said.contains("stop") && said.contains("nothing runs"),
        "{said}"
    );
    // A run: `s` in the clients table points to the runs table.
    app.update(Msg::Runs(vec![run_view(12, "alpha", 1, "count", &[], 4)]));
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Clients);
    assert_eq!(app.update(ch('s')), None);
    let said = app.status.clone().expect("s says where").text;
    assert!(said.contains("runs table"), "{said}");

    // A key bound nowhere.
    app.update(ch('z'));
    let said = app.status.clone().expect("z says so").text;
    assert!(
        said.contains('z') && said.contains("? lists the keys"),
        "{said}"
    );
}

#[test]
fn keys_with_nothing_to_act_on_say_so() {
    let (mut app, _) = app(80, 24, true);
    app.update(ch('x'));
    assert!(matches!(app.mode, Mode::Normal));
    let said = app.status.clone().expect("x says why").text;
    assert!(said.contains("no client"), "{said}");
    // Closing what is already closed.
    app.update(Msg::Engine(budget_spent(900)));
    assert_eq!(app.update(ch('c')), None);
    let said = app.status.clone().expect("c says why").text;
    assert!(said.contains("already closed"), "{said}");
}
