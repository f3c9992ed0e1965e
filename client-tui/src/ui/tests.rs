//! Render tests: the app drawn into a `TestBackend` at fixed sizes. Content is asserted line by
//! line (and snapshotted with insta); colour is checked through the buffer's styles.

use std::time::Duration;

use crossterm::event::KeyCode;
use csc_shared::discovery::{DiscoveryEvent, Via};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use serde_json::json;
use tui_kit::testing::{lines, text};

use crate::app::{App, LinkEvent, Msg, Rejection};
use crate::test_support::*;

fn terminal(app: &App) -> Terminal<TestBackend> {
    tui_kit::testing::terminal(app.size, |f| super::draw(app, f))
}

fn render(app: &App) -> Buffer {
    terminal(app).backend().buffer().clone()
}

/// A search a good way in: two subnets, three servers (one paired, left by the person), one
/// method done.
fn scanning(w: u16, h: u16, color: bool) -> App {
    let (mut app, start) = app_with(w, h, color, vec![paired("front-desk", 1)]);
    app.update(scan_msg(
        &app,
        started(&[("192.168.1.0/24", 254), ("10.0.0.0/24", 254)]),
    ));
    app.update(scan_msg(&app, progress("192.168.1.0/24", 200, 254)));
    app.update(scan_msg(&app, progress("10.0.0.0/24", 54, 254)));
    app.update(scan_msg(&app, DiscoveryEvent::Finished(Via::Broadcast)));
    // Found and connected to at once; the person went back to the list.
    app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Last)),
    ));
    app.update(key(KeyCode::Esc));
    app.status = None;
    app.update(Msg::Tick(clock_at(start, 3400)));
    for (name, n, via) in [("lobby-pc", 2, Via::Broadcast), ("till-7", 3, Via::Scan)] {
        app.update(scan_msg(&app, DiscoveryEvent::Found(found(name, n, via))));
    }
    app
}

/// The code screen after one wrong code, 14 s after the code was shown.
fn wrong_code(w: u16, h: u16, color: bool) -> App {
    let (mut app, start) = app(w, h, color);
    app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    let actions = app.update(key(KeyCode::Enter));
    let Some(crate::app::Action::Pair { link: l, .. }) = actions.first().cloned() else {
        panic!("{actions:?}");
    };
    app.update(link(l, challenge("front-desk", 1)));
    type_text(&mut app, "111111");
    app.update(key(KeyCode::Enter));
    app.update(link(
        l,
        LinkEvent::Rejected {
            why: Rejection::WrongCode {
                attempts_left: 4,
                retry_after: None,
            },
            ended: false,
        },
    ));
    app.update(Msg::Tick(clock_at(start, 14_000)));
    type_text(&mut app, "12-3");
    app
}

/// The console after a few tasks and a notice.
fn console(w: u16, h: u16, color: bool) -> App {
    let (mut app, start) = app_with(w, h, color, vec![paired("front-desk", 1)]);
    let actions = app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    let Some(crate::app::Action::Connect { link: l, .. }) = actions.first().cloned() else {
        panic!("{actions:?}");
    };
    app.update(link(
        l,
        LinkEvent::Connected {
            server: paired("front-desk", 1),
            addr: addr(1),
            via: Some(Via::Manual),
            elapsed: Duration::from_micros(3200),
        },
    ));
    for (i, (task, reply)) in [
        ("ping", Ok(json!("pong"))),
        ("echo hi", Ok(json!("hi"))),
        (
            "nope",
            Err("error (unknown_task): unknown task \"nope\"".to_string()),
        ),
        ("time", Ok(json!({"unix_ms": 1735732861000u64}))),
    ]
    .into_iter()
    .enumerate()
    {
        type_text(&mut app, task);
        app.update(key(KeyCode::Enter));
        app.update(link(
            l,
            LinkEvent::Reply {
                id: i as u64 + 1,
                result: reply,
                rtt: Duration::from_micros(700 + 100 * i as u64),
            },
        ));
    }
    app.update(link(
        l,
        LinkEvent::Notice {
            text: "lunch at noon".into(),
        },
    ));
    app.update(Msg::Tick(clock_at(start, 65_000)));
    type_text(&mut app, "info");
    app
}

fn row_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n")))
}

fn row_index(lines: &[String], needle: &str) -> u16 {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n"))) as u16
}

/// Column (in cells) where `needle` starts on `line`.
fn col(line: &str, needle: &str) -> u16 {
    let byte = line.find(needle).unwrap();
    line[..byte].chars().count() as u16
}

fn footer_has(lines: &[String], hints: &[&str]) {
    let footer = lines.last().unwrap();
    for hint in hints {
        assert!(footer.contains(hint), "{hint:?} missing in {footer:?}");
    }
}

/// Filled and empty cells of the progress bar on `line`.
fn bar_cells(line: &str) -> (usize, usize) {
    (
        line.chars().filter(|c| *c == '█').count(),
        line.chars().filter(|c| *c == '░').count(),
    )
}

#[test]
fn scan_screen_at_80x24_shows_progress_and_hosts() {
    let app = scanning(80, 24, true);
    let buf = render(&app);
    let lines = lines(&buf);
    let screen = lines.join("\n");
    assert!(
        lines[0].contains("Find a server") && lines[0].contains("kiosk"),
        "{screen}"
    );
    // Methods: broadcast done, the sweep still running; the time so far.
    let methods = row_with(&lines, "Searching with");
    assert!(
        methods.contains("broadcast ✓") && methods.contains("scan …"),
        "{methods}"
    );
    assert!(methods.contains("3.4 s"), "{methods}");
    // The bar: half of 508 hosts, over both subnets.
    let bar = row_with(&lines, "254/508 hosts");
    let (filled, empty) = bar_cells(bar);
    assert!(filled + empty > 50, "{bar}");
    assert!(filled.abs_diff(empty) <= 1, "half full: {bar}");
    let subnets = row_with(&lines, "Subnets:");
    assert!(
        subnets.contains("192.168.1.0/24 200/254") && subnets.contains("10.0.0.0/24 54/254"),
        "{subnets}"
    );
    // Hosts: name, address, short id, via, and the paired mark.
    let desk = row_with(&lines, "front-desk");
    for part in ["192.168.1.1:47474", &peer(1).short(), "last", "✓ yes", "▶"] {
        assert!(desk.contains(part), "{part:?} in {desk}");
    }
    let lobby = row_with(&lines, "lobby-pc");
    assert!(
        lobby.contains("broadcast") && !lobby.contains("yes"),
        "{lobby}"
    );
    assert!(row_with(&lines, "till-7").contains(&peer(3).short()));
    row_with(&lines, "Servers found (3)");
    // The paired mark is green; the selection is reversed.
    let y = row_index(&lines, "front-desk");
    let x = col(&lines[y as usize], "✓");
    assert_eq!(buf[(x, y)].fg, Color::Green);
    assert!(buf[(x, y)].modifier.contains(Modifier::REVERSED));
    footer_has(
        &lines,
        &[
            "q quit",
            "? help",
            "Enter pair/connect",
            "r rescan",
            "a add address",
            "p paired",
        ],
    );
    insta::assert_snapshot!("scan_80x24", screen);
}

#[test]
fn scan_screen_at_40x12_keeps_the_bar_and_the_list() {
    let app = scanning(40, 12, true);
    let lines = lines(&render(&app));
    let screen = lines.join("\n");
    let bar = row_with(&lines, "254/508");
    let (filled, empty) = bar_cells(bar);
    assert!(filled > 5 && filled.abs_diff(empty) <= 1, "{bar}");
    row_with(&lines, "broadcast ✓ scan …");
    row_with(&lines, "192.168.1.0/24, 10.0.0.0/24");
    let desk = row_with(&lines, "front-desk");
    assert!(
        desk.contains(&peer(1).short()) && desk.contains('✓'),
        "{desk}"
    );
    row_with(&lines, "lobby-pc");
    row_with(&lines, "till-7");
    footer_has(&lines, &["? help", "q quit"]);
    insta::assert_snapshot!("scan_40x12", screen);
}

#[test]
fn the_search_panel_follows_the_search() {
    let (mut app, start) = app(80, 24, true);
    let screen = text(&render(&app));
    assert!(screen.contains("Starting the search…"), "{screen}");
    assert!(
        screen.contains("Searching… servers appear here"),
        "{screen}"
    );
    app.update(scan_msg(&app, started(&[("127.0.0.0/24", 254)])));
    app.update(scan_msg(&app, progress("127.0.0.0/24", 0, 254)));
    let started = lines(&render(&app));
    let (filled, empty) = bar_cells(row_with(&started, "0/254 hosts"));
    assert_eq!(filled, 0);
    assert!(empty > 50);
    row_with(&started, "Subnets: 127.0.0.0/24");
    app.update(scan_msg(&app, progress("127.0.0.0/24", 254, 254)));
    app.update(scan_msg(
        &app,
        DiscoveryEvent::Done {
            found: 0,
            elapsed: Duration::from_millis(2500),
        },
    ));
    app.update(Msg::Tick(clock_at(start, 60_000)));
    let finished = lines(&render(&app));
    let done = row_with(&finished, "Done:");
    assert!(
        done.contains("broadcast ✓ scan ✓") && done.contains("2.5 s"),
        "{done}"
    );
    let (filled, empty) = bar_cells(row_with(&finished, "254/254 hosts"));
    assert!(filled > 50 && empty == 0);
    row_with(
        &finished,
        "No server found. r searches again; a adds an address by hand.",
    );
}

#[test]
fn code_box_at_80x24_with_an_error() {
    let app = wrong_code(80, 24, true);
    let mut terminal = terminal(&app);
    let buf = terminal.backend().buffer().clone();
    let lines = lines(&buf);
    let screen = lines.join("\n");
    row_with(&lines, "Pair with front-desk");
    row_with(&lines, "Type the 6-digit code shown on the server's screen");
    // The box, and beside it the server's name, id and address.
    let boxed = row_with(&lines, "123 ···");
    assert!(
        boxed.contains(&format!("id {}", peer(1).short())),
        "{boxed}"
    );
    let above = &lines[row_index(&lines, "123 ···") as usize - 1];
    assert!(
        above.contains("Code") && above.contains("front-desk"),
        "{above}"
    );
    // The error and what is left.
    let y = row_index(&lines, "wrong code, 4 attempts left");
    let x = col(&lines[y as usize], "wrong");
    assert_eq!(buf[(x, y)].fg, Color::Red);
    assert!(buf[(x, y)].modifier.contains(Modifier::BOLD));
    row_with(&lines, "4 attempts left · expires in 1:46");
    footer_has(&lines, &["Enter pair", "n new code", "Esc back", "^C quit"]);
    // The cursor waits on the fourth slot, after the gap.
    let y = row_index(&lines, "123 ···");
    let x = col(&lines[y as usize], "123 ···") + 4;
    terminal.backend_mut().assert_cursor_position((x, y));
    insta::assert_snapshot!("code_80x24", screen);
}

#[test]
fn code_box_at_40x12_with_an_error() {
    let app = wrong_code(40, 12, true);
    let lines = lines(&render(&app));
    let screen = lines.join("\n");
    let boxed = row_with(&lines, "123 ···");
    assert!(
        boxed.contains(&format!("id {}", peer(1).short())),
        "{boxed}"
    );
    row_with(&lines, "wrong code, 4 attempts left");
    row_with(&lines, "expires in 1:46");
    footer_has(&lines, &["Enter pair", "n new code", "Esc back"]);
    insta::assert_snapshot!("code_40x12", screen);
}

/// The code screen's text with the frame and line breaks taken out.
fn flowing(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_closed_pairing_is_explained_in_full_on_the_code_screen() {
    for (w, h) in [(80, 24), (40, 12)] {
        let (mut app, _) = app(w, h, true);
        app.update(scan_msg(
            &app,
            DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
        ));
        let actions = app.update(key(KeyCode::Enter));
        let Some(crate::app::Action::Pair { link: l, .. }) = actions.first().cloned() else {
            panic!("{actions:?}");
        };
        app.update(link(
            l,
            LinkEvent::Rejected {
                why: Rejection::Refused {
                    reason: csc_shared::message::PairFailure::PairingClosed,
                    retry_after: Some(Duration::from_secs(14 * 60)),
                },
                ended: true,
            },
        ));
        let lines = lines(&render(&app));
        let text = flowing(&lines);
        assert!(
            text.contains(
                "pairing refused: pairing is closed on this server: ask its operator to open it (reopens by itself in 14 min)"
            ),
            "{w}x{h}:\n{}",
            lines.join("\n")
        );
        // And what can be done about it still shows.
        footer_has(&lines, &["n new code", "Esc back"]);
    }
}

#[test]
fn console_at_80x24_shows_replies_notices_and_the_input() {
    let app = console(80, 24, true);
    let mut terminal = terminal(&app);
    let lines = lines(terminal.backend().buffer());
    let screen = lines.join("\n");
    let top = row_with(&lines, "front-desk 01A5-0101");
    assert!(top.contains("192.168.1.1:47474 via scan"), "{top}");
    assert!(top.contains("● connected 1m"), "{top}");
    row_with(&lines, "token expires in 29d 22h");
    row_with(
        &lines,
        "connected to front-desk at 192.168.1.1:47474 via scan in 3.2 ms",
    );
    assert!(row_with(&lines, "> ping").contains("12:00:00"));
    row_with(&lines, "pong  (0.7 ms)");
    row_with(&lines, "hi  (0.8 ms)");
    row_with(
        &lines,
        "error (unknown_task): unknown task \"nope\"  (0.9 ms)",
    );
    row_with(&lines, "\"unix_ms\": 1735732861000");
    row_with(&lines, "}  (1.0 ms)");
    row_with(&lines, "notice: lunch at noon");
    footer_has(&lines, &["Enter run", "↑ history", "Esc back", "^C quit"]);
    let y = row_index(&lines, "> info");
    let x = col(&lines[y as usize], "info") + 4;
    terminal.backend_mut().assert_cursor_position((x, y));
    insta::assert_snapshot!("console_80x24", screen);
}

#[test]
fn console_at_40x12_keeps_the_newest_lines() {
    let app = console(40, 12, true);
    let lines = lines(&render(&app));
    let screen = lines.join("\n");
    assert!(
        row_with(&lines, "front-desk").contains("● connected"),
        "{screen}"
    );
    row_with(&lines, "notice: lunch at noon");
    row_with(&lines, "}  (1.0 ms)");
    assert!(
        !screen.contains("> ping"),
        "older lines scroll away:\n{screen}"
    );
    row_with(&lines, "> info");
    insta::assert_snapshot!("console_40x12", screen);
}

#[test]
fn the_console_shows_the_reconnection_countdown() {
    let (mut app, _) = app_with(80, 24, true, vec![paired("front-desk", 1)]);
    let actions = app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    let Some(crate::app::Action::Connect { link: l, .. }) = actions.first().cloned() else {
        panic!("{actions:?}");
    };
    let screen = text(&render(&app));
    assert!(screen.contains("connecting…"), "{screen}");
    app.update(link(
        l,
        LinkEvent::Connected {
            server: paired("front-desk", 1),
            addr: addr(1),
            via: None,
            elapsed: Duration::from_millis(2),
        },
    ));
    app.update(link(
        l,
        LinkEvent::Lost {
            reason: "closed by server".into(),
        },
    ));
    let screen = text(&render(&app));
    assert!(screen.contains("reconnecting… (attempt 1)"), "{screen}");
    app.update(link(
        l,
        LinkEvent::Retrying {
            attempt: 1,
            wait: Duration::from_secs(1),
            error: "server unreachable".into(),
        },
    ));
    let lines = lines(&render(&app));
    assert!(
        row_with(&lines, "front-desk 01A5").contains("○ lost: retry in 1 s (attempt 2)"),
        "{}",
        lines.join("\n")
    );
    row_with(&lines, "connection lost: closed by server");
    row_with(&lines, "reconnecting in 1 s (attempt 2)");
    app.size = (40, 12);
    app.update(link(
        l,
        LinkEvent::Retrying {
            attempt: 2,
            wait: Duration::from_secs(2),
            error: "unreachable".into(),
        },
    ));
    let screen = text(&render(&app));
    assert!(screen.contains("retry in 2 s"), "{screen}");
}

#[test]
fn paired_servers_and_the_forget_dialog() {
    for (w, h) in [(80, 24), (40, 12)] {
        let (mut app, _) = app_with(
            w,
            h,
            true,
            vec![paired("front-desk", 1), paired("till-7", 3)],
        );
        app.update(ch('p'));
        let lines = lines(&render(&app));
        let screen = lines.join("\n");
        row_with(&lines, "Paired servers (2)");
        let desk = row_with(&lines, "front-desk");
        assert!(
            desk.contains(&peer(1).short()) && desk.contains("29d"),
            "{screen}"
        );
        if w == 80 {
            assert!(desk.contains("192.168.1.1:47474"), "{desk}");
        }
        footer_has(&lines, &["q quit", "? help"]);
        app.update(ch('j'));
        app.update(ch('x'));
        let screen = text(&render(&app));
        assert!(screen.contains("Forget till-7"), "{screen}");
        if w == 80 {
            assert!(
                screen.contains("y forget") && screen.contains("n/Esc keep"),
                "{screen}"
            );
        }
    }
    let (mut app, _) = app(80, 24, true);
    app.update(ch('p'));
    assert!(text(&render(&app)).contains("No paired server yet"));
}

#[test]
fn help_and_the_address_box_draw_over_the_screen() {
    let mut app = scanning(80, 24, true);
    app.update(ch('?'));
    let screen = text(&render(&app));
    for part in [
        "Keys",
        "^C",
        "search again",
        "add a server by address",
        "close this help",
    ] {
        assert!(screen.contains(part), "{part:?} in\n{screen}");
    }
    assert!(
        !screen.contains("ask the server for a new code"),
        "another screen's key:\n{screen}"
    );
    assert!(
        !screen.contains("front-desk"),
        "the help covers the list:\n{screen}"
    );
    app.update(key(KeyCode::Esc));
    app.update(ch('a'));
    type_text(&mut app, "10.0.0.9");
    let mut terminal = terminal(&app);
    let lines = lines(terminal.backend().buffer());
    row_with(&lines, "Server address");
    let y = row_index(&lines, "10.0.0.9");
    let x = col(&lines[y as usize], "10.0.0.9") + 8;
    terminal.backend_mut().assert_cursor_position((x, y));
    footer_has(&lines, &["Enter add", "Esc cancel"]);
}

#[test]
fn below_the_minimum_a_notice_instead_of_garbage() {
    for (w, h) in [(39, 24), (80, 11), (20, 5), (1, 1)] {
        let app = scanning(w, h, true);
        let screen = text(&render(&app));
        if w >= 18 && h >= 2 {
            assert!(screen.contains("too small"), "{w}x{h}:\n{screen}");
        }
        assert!(!screen.contains("front-desk"), "{w}x{h}:\n{screen}");
    }
}

#[test]
fn no_color_means_no_colours() {
    for f in [scanning, wrong_code, console] {
        for (w, h) in [(80, 24), (40, 12)] {
            let buf = render(&f(w, h, false));
            for cell in buf.content() {
                assert_eq!(cell.fg, Color::Reset, "{cell:?}");
                assert_eq!(cell.bg, Color::Reset, "{cell:?}");
            }
        }
    }
    // The selection still shows, reversed.
    let buf = render(&scanning(80, 24, false));
    let lines = lines(&buf);
    let y = row_index(&lines, "front-desk");
    assert!((0..80).any(|x| buf[(x, y)].modifier.contains(Modifier::REVERSED)));
    // And with colour on, colours are used (so the check above can fail).
    assert!(
        render(&scanning(80, 24, true))
            .content()
            .iter()
            .any(|c| c.fg != Color::Reset)
    );
}

/// Through a terminal too small to draw anything and back: every server found is listed
/// again, without a key to bring it back.
#[test]
fn after_a_resize_through_too_small_every_host_that_fits_is_shown() {
    for (w, h) in [(100, 30), (200, 50)] {
        let (mut app, _) = app(100, 30, true);
        for (name, n) in [("lobby-pc", 2), ("till-7", 3)] {
            app.update(scan_msg(
                &app,
                DiscoveryEvent::Found(found(name, n, Via::Broadcast)),
            ));
        }
        app.update(ch('j'));
        app.update(Msg::Resize(39, 11));
        app.update(Msg::Resize(w, h));
        let lines = lines(&render(&app));
        let screen = lines.join("\n");
        row_with(&lines, "lobby-pc");
        assert!(row_with(&lines, "till-7").contains('▶'), "{screen}");
        assert_eq!(app.offset, 0, "{w}x{h}");
    }
}

/// A console connected to front-desk on a `w`×`h` terminal, with `replies` sent and answered
/// (the task typed is `say N`); returns the app and the link.
fn replied(w: u16, h: u16, replies: &[String]) -> App {
    let (mut app, _) = app_with(w, h, true, vec![paired("front-desk", 1)]);
    let actions = app.update(scan_msg(
        &app,
        DiscoveryEvent::Found(found("front-desk", 1, Via::Scan)),
    ));
    let Some(crate::app::Action::Connect { link: l, .. }) = actions.first().cloned() else {
        panic!("{actions:?}");
    };
    app.update(link(
        l,
        LinkEvent::Connected {
            server: paired("front-desk", 1),
            addr: addr(1),
            via: Some(Via::Scan),
            elapsed: Duration::from_micros(3200),
        },
    ));
    for (i, reply) in replies.iter().enumerate() {
        type_text(&mut app, &format!("say {i}"));
        app.update(key(KeyCode::Enter));
        app.update(link(
            l,
            LinkEvent::Reply {
                id: i as u64 + 1,
                result: Ok(json!(reply)),
                rtt: Duration::from_micros(3700),
            },
        ));
    }
    app
}

/// The console's text rows between its borders, after the time column, without the padding.
fn console_text(lines: &[String]) -> Vec<String> {
    let top = row_index(lines, "┌ Console") as usize;
    lines[top + 1..]
        .iter()
        .take_while(|l| l.starts_with('│'))
        .map(|l| {
            let inner: String = l.chars().skip(1 + 9).collect();
            inner.trim_end_matches(['│', ' ']).to_string()
        })
        .collect()
}

#[test]
fn long_replies_wrap_and_their_round_trip_time_is_never_cut() {
    // 60 columns leave 49 for the text: the reply fits, its round-trip time does not.
    let reply = "ping, echo, ping, echo, ping, echo, time".to_string();
    let app = replied(60, 20, std::slice::from_ref(&reply));
    let shown = lines(&render(&app));
    let screen = shown.join("\n");
    let text = console_text(&shown);
    assert!(text.contains(&reply), "{screen}");
    assert!(
        text.iter().any(|l| l.trim() == "(3.7 ms)"),
        "the time on a line of its own:\n{screen}"
    );
    // A reply longer than the pane wraps after a space, every word kept.
    let long: String = (0..30).map(|i| format!("word{i} ")).collect::<String>() + "END";
    let app = replied(60, 20, std::slice::from_ref(&long));
    let shown = lines(&render(&app));
    let screen = shown.join("\n");
    let text = console_text(&shown);
    let at = text
        .iter()
        .position(|l| l.starts_with("word0 "))
        .expect(&screen);
    let joined = text[at..]
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(joined.starts_with(&format!("{long}  (3.7 ms)")), "{screen}");
}

#[test]
fn scrolling_counts_wrapped_lines_to_the_oldest_and_back_to_the_newest() {
    // Twelve replies of three screen lines each at 60 columns, their times included.
    let replies: Vec<String> = (0..12)
        .map(|i| (0..18).map(|w| format!("r{i}w{w:02} ")).collect::<String>() + &format!("END{i}"))
        .collect();
    let mut app = replied(60, 20, &replies);
    let newest = |app: &App| {
        let lines = lines(&render(app));
        let text = console_text(&lines);
        (text.clone(), lines.join("\n"))
    };
    let (text, screen) = newest(&app);
    assert!(
        text.iter().any(|l| l.contains("END11  (3.7 ms)")),
        "the newest line, whole, at the bottom:\n{screen}"
    );
    for _ in 0..40 {
        app.update(key(KeyCode::PageUp));
    }
    let (text, screen) = newest(&app);
    assert!(
        text.first()
            .is_some_and(|l| l.starts_with("connecting to front-desk"))
            && text.iter().any(|l| l.starts_with("> say 0")),
        "PgUp reaches the oldest line:\n{screen}"
    );
    for _ in 0..40 {
        app.update(key(KeyCode::PageDown));
    }
    let (text, screen) = newest(&app);
    assert!(
        text.last().is_some_and(|l| l.contains("END11  (3.7 ms)")),
        "PgDn comes back to the newest:\n{screen}"
    );
    assert_eq!(app.conn.as_ref().unwrap().scroll, 0);
}
