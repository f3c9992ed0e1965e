//! The real `server-tui` binary in a pseudo-terminal, read through a terminal emulator
//! (vt100), next to a headless client in-process: the code is read off the screen, the client
//! pairs with it and shows up in the clients table, `q` quits and gives the terminal back.
#![cfg(target_os = "linux")]

use std::process::Command;

use csc_shared::client::{Client, ClientOptions};
use csc_shared::pairing::Code;
use tui_kit::pty::Pty;

const BIN: &str = env!("CARGO_BIN_EXE_server-tui");
const ROWS: u16 = 30;
const COLS: u16 = 100;

/// The server in a pseudo-terminal.
fn spawn(args: &[&str]) -> Pty {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    Pty::spawn(cmd, ROWS, COLS)
}

/// The port in the header's "listening on 127.0.0.1 port N".
fn port(text: &str) -> Option<u16> {
    let rest = &text[text.find("listening on 127.0.0.1 port ")? + 28..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The six digits in the event log's "pairing code for NAME (ADDR): 123456".
fn code(text: &str, name: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.contains(&format!("pairing code for {name} (")))?;
    let digits: String = line
        .rsplit("): ")
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (digits.len() == 6).then_some(digits)
}

#[test]
fn pairing_through_the_full_screen_interface() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut pty = spawn(&[
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--name",
        "tui-e2e",
        "--state-dir",
        sdir.path().to_str().unwrap(),
    ]);
    let port = pty.wait_for("listening port", port);
    let text = pty.contents();
    assert!(text.contains("tui-e2e"), "{text}");
    assert!(text.contains("No pairing request waiting"), "{text}");
    assert!(text.contains("q quit") && text.contains("? help"), "{text}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::open(cdir.path(), "pty-kiosk", ClientOptions::default()).unwrap();
    let mut pairing = rt
        .block_on(client.start_pairing(([127, 0, 0, 1], port).into()))
        .unwrap();
    let digits = pty.wait_for("pairing code", |t| code(t, "pty-kiosk"));
    let grouped = format!("{} {}", &digits[..3], &digits[3..]);
    let text = pty.contents();
    assert!(
        text.contains(&format!("Code {grouped} for pty-kiosk")),
        "the banner shows the grouped code:\n{text}"
    );
    assert!(text.contains("Waiting (1)"), "{text}");

    let paired = rt
        .block_on(pairing.submit(&Code::parse(&digits).unwrap()))
        .expect("the code from the screen pairs");
    // The client appears in the table (name and short id on one row), and the banner is idle.
    let short = client.id().short();
    pty.wait_for("client row", |t| {
        t.lines()
            .any(|l| l.contains("pty-kiosk") && l.contains(&short) && !l.contains("paired"))
            .then_some(())
    });
    pty.wait_for("idle banner", |t| {
        t.contains("No pairing request waiting").then_some(())
    });

    // A session shows as connected.
    let _session = rt.block_on(client.connect(&paired)).unwrap();
    pty.wait_for("connected row", |t| {
        t.lines()
            .any(|l| l.contains("pty-kiosk") && l.contains(&short) && l.contains("yes"))
            .then_some(())
    });

    // A clean exit, and the terminal given back.
    pty.quit(b"q");
}

#[test]
fn ctrl_c_quits_even_while_typing_a_notice() {
    let sdir = tempfile::tempdir().unwrap();
    let mut pty = spawn(&[
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-color",
        "--state-dir",
        sdir.path().to_str().unwrap(),
    ]);
    pty.wait_for("listening port", port);
    pty.send(b"n");
    pty.wait_for("notice box", |t| t.contains("Enter send").then_some(()));
    pty.send(b"quit q");
    pty.wait_for("typed text", |t| t.contains("quit q").then_some(()));
    assert!(pty.running(), "q was typed, not obeyed");
    pty.send(b"\x03");
    assert!(pty.wait_exit().success());
}

#[test]
fn r_reloads_the_tasks_and_the_screen_says_how_it_went() {
    use std::os::unix::fs::PermissionsExt;
    let sdir = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let path = conf.path().join("server.toml");
    let write = |text: &str| {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write("[tasks.greet]\ncommand = [\"/bin/echo\", \"hello\"]\n");
    let mut pty = spawn(&[
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-mdns",
        "--no-color",
        "--config",
        path.to_str().unwrap(),
        "--state-dir",
        sdir.path().to_str().unwrap(),
    ]);
    pty.wait_for("listening port", port);
    pty.wait_text("tasks from ");
    pty.wait_text("1 task from server.toml");
    assert!(pty.contents().contains("r reload"), "{}", pty.contents());
    write(
        "[tasks.greet]\ncommand = [\"/bin/echo\", \"hello\"]\n\n[tasks.more]\ncommand = [\"/bin/true\"]\n",
    );
    pty.send(b"r");
    pty.wait_text("tasks reloaded from ");
    pty.wait_text("2 tasks from server.toml");
    write("[tasks.greet]\ncommand = [\"/bin/echo\", \"hello\"]\n\n[tasks.more]\ncommand = []\n");
    pty.send(b"r");
    pty.wait_text("reloading the tasks failed");
    assert!(
        pty.contents().contains("2 tasks from server.toml"),
        "the tasks in force stay: {}",
        pty.contents()
    );
    pty.quit(b"q");
}
