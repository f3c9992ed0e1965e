//! Render tests: the app drawn into a `TestBackend` at fixed sizes. Content is asserted line by
//! line (and snapshotted with insta); colour is checked through the buffer's styles.

use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use tui_kit::testing::{lines, terminal, text};

use crate::app::{App, Msg};
use crate::test_support::*;

fn render(app: &App) -> Buffer {
    let terminal = terminal(app.size, |f| super::draw(app, f));
    terminal.backend().buffer().clone()
}

/// An app with a pending request and three clients, one connected.
fn busy(w: u16, h: u16, color: bool) -> App {
    let (mut app, _) = app(w, h, color);
    app.update(Msg::Clients(vec![
        client("till-7", 3, 0, 2),
        client("kiosk-1", 1, 1, 12),
        client("pos-3", 2, 0, 0),
    ]));
    app.update(Msg::Engine(pair_request(5, "tablet", 9, "122077")));
    app
}

fn row_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n")))
}

#[test]
fn full_layout_at_80x24_shows_code_clients_and_hints() {
    let app = busy(80, 24, true);
    let buf = render(&app);
    let lines = lines(&buf);
    let screen = lines.join("\n");

    // Header.
    assert!(
        lines[0].contains("kitchen-pc") && lines[0].contains("up 0s"),
        "{screen}"
    );
    assert!(
        lines[1].contains("listening on 192.168.1.5 port 47474"),
        "{screen}"
    );
    assert!(lines[1].contains("3 paired, 1 connected"), "{screen}");

    // Banner: big digits (block glyphs) and the code once more as copyable text.
    let banner = &lines[3..9];
    let glyph_cells = banner
        .iter()
        .flat_map(|l| l.chars())
        .filter(|c| matches!(c, '█' | '▀' | '▄' | '▌' | '▐' | '▘' | '▝' | '▖' | '▗'))
        .count();
    assert!(glyph_cells > 40, "big digits expected:\n{screen}");
    let info = row_with(&lines, "Code 122 077 for tablet");
    assert!(info.contains("10.0.0.9:51234"), "{info}");
    assert!(row_with(&lines, "expires in 2:00").contains("5 attempts left"));
    assert!(row_with(&lines, "Waiting (1)").contains('│'));
    // The plain-text code line in the event log.
    row_with(&lines, "pairing code for tablet (10.0.0.9:51234): 122077");

    // Client rows, sorted, with the connected one marked and the first one selected.
    let kiosk = row_with(&lines, "kiosk-1");
    assert!(kiosk.contains(&peer(1).short()), "{kiosk}");
    assert!(kiosk.contains("10.0.0.1:51001"), "{kiosk}");
    assert!(kiosk.contains("3d ago") && kiosk.contains("now") && kiosk.contains("yes"));
    assert!(kiosk.contains("12"), "{kiosk}");
    assert!(kiosk.contains('▶'), "selected: {kiosk}");
    let pos = row_with(&lines, "pos-3");
    assert!(pos.contains("5m ago") && pos.contains("no"), "{pos}");
    row_with(&lines, "till-7");

    // Footer hints come from the key map.
    let footer = &lines[23];
    for hint in [
        "q quit", "? help", "Tab pane", "x revoke", "n notice", "r reload",
    ] {
        assert!(footer.contains(hint), "{hint:?} missing in {footer:?}");
    }
    insta::assert_snapshot!("full_80x24", screen);
}

#[test]
fn compact_layout_at_40x12_shows_plain_digits_clients_and_hints() {
    let app = busy(40, 12, true);
    let buf = render(&app);
    let lines = lines(&buf);
    let screen = lines.join("\n");
    assert!(lines[0].starts_with("kitchen-pc"), "{screen}");
    let code = row_with(&lines, "CODE 122 077");
    assert!(code.contains("2:00"), "{code}");
    // Plain digits are bold.
    let x = code.find("122").unwrap() as u16;
    let y = lines.iter().position(|l| l.contains("CODE")).unwrap() as u16;
    assert!(
        buf[(x, y)]
            .modifier
            .contains(ratatui::style::Modifier::BOLD)
    );
    row_with(&lines, "tablet · 5 tries left");
    for name in ["kiosk-1", "pos-3", "till-7"] {
        let row = row_with(&lines, name);
        assert!(row.contains("-"), "short id in {row}");
    }
    assert!(row_with(&lines, "kiosk-1").contains("yes"));
    let footer = &lines[11];
    for hint in ["q quit", "? help", "Tab pane", "x revoke"] {
        assert!(footer.contains(hint), "{hint:?} missing in {footer:?}");
    }
    insta::assert_snapshot!("compact_40x12", screen);
}

#[test]
fn idle_banner_says_how_to_pair() {
    let (app, _) = app(80, 24, true);
    let screen = text(&render(&app));
    assert!(
        screen.contains("run the client on the same network"),
        "{screen}"
    );
    assert!(screen.contains("client-tui pair"), "{screen}");
    assert!(
        screen.contains("client-tui pair --server 192.168.1.5)"),
        "{screen}"
    );
    assert!(screen.contains("No paired clients yet."), "{screen}");

    let (small, _) = app_small();
    let screen = text(&render(&small));
    assert!(screen.contains("To pair: client-tui pair"), "{screen}");
}

#[test]
fn a_server_bound_to_loopback_names_the_command_that_reaches_it() {
    let (mut app, _) = app(80, 24, true);
    let csc_shared::server::ServerEvent::Listening {
        port,
        server_id,
        server_short,
        name,
        addrs,
        ..
    } = crate::test_support::listening()
    else {
        unreachable!()
    };
    app.update(Msg::Engine(csc_shared::server::ServerEvent::Listening {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 47474)),
        port,
        server_id,
        server_short,
        name,
        addrs,
    }));
    let screen = text(&render(&app));
    assert!(
        screen.contains("run the client on this machine:"),
        "{screen}"
    );
    assert!(
        screen.contains("client-tui pair --server 127.0.0.1"),
        "{screen}"
    );
    assert!(!screen.contains("192.168.1.5)"), "{screen}");
}

#[test]
fn the_header_and_the_idle_hint_follow_an_address_change() {
    let (mut app, _) = app(80, 24, true);
    let before = text(&render(&app));
    assert!(
        before.contains("listening on 192.168.1.5 port 47474"),
        "{before}"
    );
    app.update(Msg::Engine(
        csc_shared::server::ServerEvent::AddressesChanged {
            addrs: vec!["10.1.2.3".parse().unwrap(), "10.9.9.9".parse().unwrap()],
        },
    ));
    let after = text(&render(&app));
    assert!(
        after.contains("listening on 10.1.2.3, 10.9.9.9 port 47474"),
        "{after}"
    );
    assert!(
        after.contains("client-tui pair --server 10.1.2.3)"),
        "{after}"
    );
    assert!(!after.contains("192.168.1.5 port"), "{after}");

    // With nothing but loopback, the header says so, and the hint names the one address
    // that works: discovery never searches loopback by itself.
    app.update(Msg::Engine(
        csc_shared::server::ServerEvent::AddressesChanged { addrs: vec![] },
    ));
    let none = text(&render(&app));
    assert!(
        none.contains("listening on port 47474, no network address"),
        "{none}"
    );
    assert!(none.contains("run the client on this machine"), "{none}");
    assert!(
        none.contains("client-tui pair --server 127.0.0.1 "),
        "{none}"
    );
    assert!(!none.contains("(or:"), "{none}");
}

fn app_small() -> (App, std::time::Instant) {
    app(40, 12, true)
}

#[test]
fn big_digits_shrink_then_fall_back_to_plain_bold() {
    // Wide and tall: full-size glyphs (8 rows high).
    let app = busy(100, 40, true);
    let big = lines(&render(&app));
    let full_rows = big.iter().filter(|l| l.contains("██")).count();
    assert!(full_rows >= 6, "{}", big.join("\n"));
    // 60 columns: quadrant glyphs, no room for the list.
    let app = busy(60, 20, true);
    let small = lines(&render(&app));
    assert!(
        small[3..7]
            .iter()
            .any(|l| l.contains('▀') || l.contains('▄') || l.contains('▌')),
        "{}",
        small.join("\n")
    );
    row_with(&small, "Code 122 077");
}

#[test]
fn below_the_minimum_a_notice_instead_of_garbage() {
    for (w, h) in [(39, 24), (80, 11), (20, 5), (1, 1)] {
        let app = busy(w, h, true);
        let screen = text(&render(&app));
        if w >= 18 && h >= 2 {
            assert!(screen.contains("too small"), "{w}x{h}:\n{screen}");
        }
        assert!(!screen.contains("122"), "{w}x{h}:\n{screen}");
    }
}

#[test]
fn no_color_means_no_colours() {
    let mut app = busy(80, 24, false);
    app.update(Msg::Log(crate::app::Level::Error, "boom".into()));
    for app in [&app, &busy(40, 12, false)] {
        let buf = render(app);
        for cell in buf.content() {
            assert_eq!(cell.fg, Color::Reset, "{cell:?}");
            assert_eq!(cell.bg, Color::Reset, "{cell:?}");
        }
        // Selection still shows: reversed.
        let y = lines(&buf)
            .iter()
            .position(|l| l.contains("kiosk-1"))
            .unwrap() as u16;
        assert!(
            (0..buf.area.width).any(|x| buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::REVERSED)),
            "selection is reversed"
        );
    }
    // And with colour on, colours are used (so the check above can fail).
    let buf = render(&busy(80, 24, true));
    assert!(buf.content().iter().any(|c| c.fg != Color::Reset));
}

#[test]
fn dialogs_and_help_draw_over_the_screen() {
    let mut app = busy(80, 24, true);
    app.update(ch('x'));
    let screen = text(&render(&app));
    assert!(screen.contains("Revoke kiosk-1"), "{screen}");
    assert!(
        screen.contains("y revoke") && screen.contains("n/Esc keep"),
        "{screen}"
    );
    let footer = lines(&render(&app))[23].clone();
    assert!(
        footer.contains("y revoke") && footer.contains("^C quit"),
        "{footer}"
    );

    app.update(key(KeyCode::Esc));
    app.update(ch('?'));
    let screen = text(&render(&app));
    assert!(screen.contains("Keys"), "{screen}");
    assert!(screen.contains("x/Del") && screen.contains("revoke the selected client"));
    assert!(screen.contains("^C"), "{screen}");

    app.update(key(KeyCode::Esc));
    app.update(ch('n'));
    for c in "hello".chars() {
        app.update(ch(c));
    }
    let mut terminal = terminal((80, 24), |f| super::draw(&app, f));
    let screen = text(terminal.backend().buffer());
    assert!(
        screen.contains("Notice") && screen.contains("hello"),
        "{screen}"
    );
    assert!(screen.contains("Enter send") && screen.contains("Esc cancel"));
    // Three clients are paired and one is connected: the notice reaches that one.
    assert!(
        screen.contains("pushed to the 1 connected client"),
        "{screen}"
    );
    assert!(!screen.contains("paired)"), "{screen}");
    // The cursor sits after the typed text.
    let row = lines(terminal.backend().buffer())
        .iter()
        .position(|l| l.contains("hello"))
        .unwrap() as u16;
    let col = lines(terminal.backend().buffer())[row as usize]
        .find("hello")
        .unwrap();
    let col = lines(terminal.backend().buffer())[row as usize][..col]
        .chars()
        .count() as u16;
    terminal
        .backend_mut()
        .assert_cursor_position((col + 5, row));
}

#[test]
fn ten_thousand_clients_render_only_the_visible_rows() {
    let (mut app, _) = app(80, 24, true);
    let many: Vec<_> = (0..10_000u32)
        .map(|i| {
            let mut c = client(&format!("c{i:05}"), (i % 250) as u8, 0, 0);
            c.record.client_id.0[2..6].copy_from_slice(&i.to_be_bytes());
            c
        })
        .collect();
    app.update(Msg::Clients(many));
    app.update(key(KeyCode::End));
    let started = std::time::Instant::now();
    let mut buf = render(&app);
    for _ in 0..20 {
        app.update(ch('k'));
        buf = render(&app);
    }
    let elapsed = started.elapsed();
    let lines = lines(&buf);
    row_with(&lines, "c09979");
    row_with(&lines, "9980/10000");
    assert!(!lines.iter().any(|l| l.contains("c00000")));
    // Generous: a debug build on a busy machine; building 10,000 rows per frame takes longer.
    assert!(elapsed.as_secs() < 5, "{elapsed:?}");
}

#[test]
fn a_closed_pairing_takes_the_banner_with_its_reason_and_countdown() {
    for (w, h) in [(80, 24), (40, 12)] {
        let (mut app, _) = app(w, h, true);
        app.update(Msg::Engine(listening()));
        app.update(Msg::Engine(budget_spent(900)));
        let buf = render(&app);
        let lines = lines(&buf);
        let screen = lines.join("\n");
        assert!(screen.contains("PAIRING CLOSED"), "{w}x{h}\n{screen}");
        assert!(screen.contains("15:00"), "the countdown: {w}x{h}\n{screen}");
        assert!(
            screen.contains("press o"),
            "how to reopen: {w}x{h}\n{screen}"
        );
        if w == 80 {
            assert!(
                screen.contains("20 wrong codes within 1day"),
                "the reason: {screen}"
            );
            // Marked, not only coloured: the title is bold.
            let y = lines
                .iter()
                .position(|l| l.contains("PAIRING CLOSED"))
                .unwrap();
            let x = lines[y].find("PAIRING").unwrap();
            let cell = &buf[(x as u16, y as u16)];
            assert!(
                cell.modifier.contains(ratatui::style::Modifier::BOLD),
                "{cell:?}"
            );
        }
    }
}

#[test]
fn an_open_window_shows_its_countdown() {
    let (mut app, _) = app(80, 24, true);
    app.update(Msg::Engine(listening()));
    app.update(Msg::Engine(
        csc_shared::server::ServerEvent::PairingOpened {
            mode: csc_shared::server::PairingMode::Window,
            by: csc_shared::server::OpenedBy::Operator,
            closes_in_s: Some(120),
        },
    ));
    let screen = lines(&render(&app)).join("\n");
    assert!(screen.contains("Pairing · window 2:00"), "{screen}");
}

/// Three clients, no pending request, and two runs: `count` by kiosk-1 for 42 s, `cat` by
/// pos-3 for 5 s with bytes both ways.
fn running(w: u16, h: u16) -> App {
    let (mut app, _) = app(w, h, true);
    app.update(Msg::Clients(vec![
        client("till-7", 3, 0, 2),
        client("kiosk-1", 1, 1, 12),
        client("pos-3", 2, 1, 0),
    ]));
    let mut cat = run_view(15, "pos-3", 2, "cat", &[], 5);
    cat.bytes_out = 1229;
    cat.bytes_in = 1229;
    let mut count = run_view(12, "kiosk-1", 1, "count", &["to 3"], 42);
    count.bytes_out = 4;
    app.update(Msg::Runs(vec![cat, count]));
    app.update(Msg::Engine(task_finished(
        &run_view(11, "kiosk-1", 1, "greet", &["ada"], 3),
        csc_shared::message::RunStatus::Exited { code: 0 },
        3000,
    )));
    app
}

#[test]
fn the_runs_pane_shows_who_runs_what_since_when_and_the_bytes() {
    let mut app = running(80, 24);
    app.update(key(KeyCode::Tab));
    let buf = render(&app);
    let lines = lines(&buf);
    let screen = lines.join("\n");
    let title = row_with(&lines, " Runs ");
    assert!(title.starts_with('┌'), "{title}");
    let header = row_with(&lines, "Since");
    for column in ["Run", "Client", "Task", "For", "Out", "In"] {
        assert!(header.contains(column), "{column:?} in {header}");
    }
    let count = row_with(&lines, "count");
    assert!(
        count.contains("kiosk-1") && count.contains("\"to 3\""),
        "{count}"
    );
    assert!(
        count.contains("11:59:18") && count.contains("42s"),
        "{count}"
    );
    assert!(count.contains("4 B"), "{count}");
    assert!(count.contains('▶'), "the oldest run is selected: {count}");
    let cat = row_with(&lines, "1.2 KiB");
    assert!(
        cat.contains("pos-3") && cat.contains("cat") && cat.contains("5s"),
        "{cat}"
    );
    // The finished run is in the log, with how it ended.
    row_with(
        &lines,
        "run 11: kiosk-1 greet exited 0 after 3.0 s, 0 B out",
    );
    // The header says where the tasks come from; the footer how to stop a run.
    assert!(
        lines[0].contains("2 tasks from server.toml · up 0s"),
        "{screen}"
    );
    let footer = &lines[23];
    assert!(footer.contains("s stop run"), "{footer}");
    assert!(!footer.contains("x revoke"), "{footer}");
    // Focused: marked by reverse video, not only by colour.
    let y = lines.iter().position(|l| l.contains("count")).unwrap() as u16;
    assert!(
        (0..buf.area.width).any(|x| buf[(x, y)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)),
        "{screen}"
    );
    insta::assert_snapshot!("runs_80x24", screen);
}

#[test]
fn the_runs_pane_fits_the_compact_layout_and_goes_when_nothing_runs() {
    let small = running(40, 12);
    let lines = lines(&render(&small));
    let screen = lines.join("\n");
    assert!(screen.contains(" Runs "), "{screen}");
    let count = row_with(&lines, "count");
    assert!(
        count.contains("kiosk-1") && count.contains("42s"),
        "{count}"
    );
    insta::assert_snapshot!("runs_compact_40x12", screen);

    let (idle, _) = app(80, 24, true);
    let screen = text(&render(&idle));
    assert!(!screen.contains(" Runs "), "{screen}");
    assert!(screen.contains("r reload"), "{screen}");
}

#[test]
fn the_header_says_when_there_is_no_configuration_file() {
    let (mut app, _) = app(80, 24, true);
    app.tasks = crate::headless::TasksOrigin::of(None);
    let lines = lines(&render(&app));
    assert!(
        lines[0].contains("built-in tasks only · up 0s"),
        "{}",
        lines[0]
    );
}

/// Through a terminal too small to draw anything and back: every row that fits is shown again,
/// for the clients table and for the runs table, without a key to bring them back.
#[test]
fn after_a_resize_through_too_small_every_row_that_fits_is_shown() {
    for (w, h) in [(100, 30), (200, 50)] {
        let (mut app, _) = app(100, 30, true);
        app.update(Msg::Clients(vec![
            client("kiosk-1", 1, 1, 0),
            client("pos-3", 2, 1, 0),
        ]));
        app.update(Msg::Runs(vec![
            run_view(12, "kiosk-1", 1, "count", &[], 42),
            run_view(15, "pos-3", 2, "cat", &[], 5),
        ]));
        // The second client and the second run selected.
        app.update(ch('j'));
        app.update(key(KeyCode::Tab));
        app.update(ch('j'));
        app.update(key(KeyCode::BackTab));
        app.update(Msg::Resize(39, 11));
        app.update(Msg::Resize(w, h));
        let lines = lines(&render(&app));
        let screen = lines.join("\n");
        assert!(lines[1].contains("2 paired"), "{w}x{h}\n{screen}");
        // Each client has a row in the clients table and one in the runs table.
        for name in ["kiosk-1", "pos-3"] {
            let rows = lines.iter().filter(|l| l.contains(name)).count();
            assert_eq!(rows, 2, "{name} at {w}x{h}\n{screen}");
        }
        assert_eq!((app.offset, app.run_offset), (0, 0), "{w}x{h}");
    }
}

/// The event log's text rows between its borders, after the time column, without the padding.
fn log_text(lines: &[String]) -> Vec<String> {
    let top = lines
        .iter()
        .position(|l| l.contains(" Events "))
        .expect("the events pane");
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
fn long_event_lines_wrap_and_scrolling_counts_the_wrapped_lines() {
    // At 60 columns, 49 are left for the text: each of these lines takes three.
    let (mut requested, _) = app(60, 30, true);
    requested.update(Msg::Engine(pair_request(5, "kiosk-1", 23, "122077")));
    let shown = lines_of(&requested);
    let screen = shown.join("\n");
    let joined = log_text(&shown).join(" ");
    assert!(
        joined.contains("pair request from kiosk-1 (10.0.0.23:51234, client id"),
        "{screen}"
    );
    assert!(
        joined.contains("expires in 120 s, 5 attempts"),
        "wrapped, not cut:\n{screen}"
    );

    let (mut app, _) = app(60, 24, true);
    for i in 0..20 {
        let words: String = (0..14).map(|w| format!("e{i:02}w{w:02} ")).collect();
        app.update(Msg::Log(
            crate::app::Level::Info,
            format!("{words}END{i:02}"),
        ));
    }
    let text = log_text(&lines_of(&app));
    assert!(
        text.last().is_some_and(|l| l.ends_with("END19")),
        "the newest line, whole, at the bottom: {text:#?}"
    );
    // Back to the oldest, line by line, and to the newest again.
    app.update(key(KeyCode::BackTab));
    assert_eq!(app.focus, crate::app::Pane::Log);
    app.update(key(KeyCode::Home));
    let text = log_text(&lines_of(&app));
    assert!(
        text.first().is_some_and(|l| l.starts_with("listening on")),
        "Home reaches the oldest line: {text:#?}"
    );
    for _ in 0..100 {
        app.update(ch('j'));
    }
    assert_eq!(app.log_scroll, 0);
    let text = log_text(&lines_of(&app));
    assert!(
        text.last().is_some_and(|l| l.ends_with("END19")),
        "{text:#?}"
    );
    // One line up shows one screen line more, not one event more.
    app.update(ch('k'));
    let text = log_text(&lines_of(&app));
    assert!(text.last().is_some_and(|l| l.contains("e19w")), "{text:#?}");
}

fn lines_of(app: &App) -> Vec<String> {
    lines(&render(app))
}

#[test]
fn the_confirmation_says_which_keys_answer_and_a_silent_key_speaks_in_the_footer() {
    let mut app = busy(80, 24, true);
    app.update(ch('x'));
    let lines = lines(&render(&app));
    let screen = lines.join("\n");
    let answers = row_with(&lines, "y revoke");
    assert!(answers.contains("n/Esc keep"), "{screen}");
    assert!(lines[23].contains("y revoke") && lines[23].contains("n/Esc keep"));
    assert!(!screen.contains("n notice"), "{screen}");

    app.update(key(KeyCode::Esc));
    // From the clients table (after the requests) to the events.
    app.update(key(KeyCode::Tab));
    app.update(ch('x'));
    let footer = lines_of(&app)[23].clone();
    assert!(
        footer.contains("x works in the clients table (Tab moves there)"),
        "{footer}"
    );
    app.update(ch('k'));
    let footer = lines_of(&app)[23].clone();
    assert!(
        footer.contains("q quit"),
        "hints again after the next key: {footer}"
    );
}

#[test]
fn a_code_drawn_ahead_fills_the_banner_until_a_request_takes_it() {
    let (mut app, _) = app(100, 30, true);
    assert_eq!(app.update(ch('p')), Some(crate::app::Action::CodeAhead));
    app.update(Msg::Engine(csc_shared::server::ServerEvent::CodeAhead {
        code: "482913".into(),
        expires_in_s: 120,
    }));
    let screen = text(&render(&app));
    assert!(
        screen.contains("Pairing code for the next request"),
        "{screen}"
    );
    assert!(
        screen.contains("On the client: client-tui pair --code 482913"),
        "{screen}"
    );
    assert!(screen.contains("waits for a request for 2:00"), "{screen}");
    // Small: the same in two lines.
    let (mut small, _) = app_small();
    small.update(Msg::Engine(csc_shared::server::ServerEvent::CodeAhead {
        code: "482913".into(),
        expires_in_s: 120,
    }));
    let screen = text(&render(&small));
    assert!(screen.contains("NEXT CODE 482 913"), "{screen}");

    // The request that takes it shows as any request, and the code ahead is gone.
    app.update(Msg::Engine(pair_request(7, "tablet", 9, "482913")));
    assert_eq!(app.ahead, None);
    let screen = text(&render(&app));
    assert!(
        !screen.contains("Pairing code for the next request"),
        "{screen}"
    );
    assert!(screen.contains("Code 482 913 for tablet"), "{screen}");
}

#[test]
fn a_code_drawn_ahead_stops_showing_when_it_expires_or_pairing_closes() {
    let (mut app, start) = app(100, 30, true);
    app.update(Msg::Engine(csc_shared::server::ServerEvent::CodeAhead {
        code: "482913".into(),
        expires_in_s: 120,
    }));
    app.update(Msg::Tick(clock_at(start, 121)));
    let screen = text(&render(&app));
    // Only the event log still has it.
    assert!(
        !screen.contains("On the client: client-tui pair --code"),
        "{screen}"
    );
    assert!(screen.contains("No pairing request waiting"), "{screen}");

    app.update(Msg::Engine(csc_shared::server::ServerEvent::CodeAhead {
        code: "111222".into(),
        expires_in_s: 120,
    }));
    app.update(Msg::Engine(budget_spent(900)));
    assert_eq!(app.ahead, None);
}
