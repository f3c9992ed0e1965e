//! The real `client-tui` binary full screen in a pseudo-terminal, read through a terminal
//! emulator (vt100), against a headless `server-tui --json` on 127.0.0.1: the scan finds the
//! server, Enter asks for a code, the code from the server's JSON output is typed, `echo hi`
//! runs and `hi` is read off the screen, and a notice shows up. A second run connects by
//! itself, and a revocation sends it back to the scan. Nothing leaves the machine: the search
//! is limited to 127.0.0.1/32, without broadcast or mDNS.
#![cfg(target_os = "linux")]

mod common;

use common::{ServerProcess as Server, server_bin};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use csc_shared::server::control::{ControlReply, ControlRequest};
use tui_kit::pty::Pty;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");
const ROWS: u16 = 30;
const COLS: u16 = 100;
/// Quits from any screen, even while typing.
const CTRL_C: &[u8] = b"\x03";

/// A headless server on an ephemeral loopback port.
impl Server {
    fn start(dir: &Path) -> Self {
        let mut cmd = Command::new(server_bin());
        cmd.args(["--json", "--bind", "127.0.0.1", "--no-mdns", "--port", "0"])
            .args(["--name", "e2e-desk"])
            .arg("--state-dir")
            .arg(dir);
        Server::spawn(cmd)
    }
}

/// The client in a pseudo-terminal, its screen kept by a terminal emulator.
fn spawn(args: &[&str]) -> Pty {
    let mut cmd = Command::new(CLIENT);
    cmd.args(args).env_remove("CSC_CLIENT_STATE_DIR");
    Pty::spawn(cmd, ROWS, COLS).with_timeout(Duration::from_secs(30))
}

/// A reply line in the console: `hi  (0.4 ms)`, after the time.
fn reply_line(text: &str, reply: &str) -> Option<String> {
    text.lines()
        .find(|l| {
            let rest = l.trim_start_matches(['│', ' ']);
            let rest = rest.get(9..).unwrap_or("");
            rest.starts_with(&format!("{reply}  (")) && rest.contains(" ms)")
        })
        .map(str::to_string)
}

#[test]
fn scan_pair_and_run_a_task_in_the_full_screen_client() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path());
    let port = server.port().to_string();
    let args = [
        "--state-dir",
        cdir.path().to_str().unwrap(),
        "--name",
        "pty-kiosk",
        "--subnet",
        "127.0.0.1/32",
        "--no-broadcast",
        "--no-mdns",
        "--port",
        &port,
    ];
    let mut pty = spawn(&args);

    // The scan screen: the sweep of one host, and the server in the list.
    pty.wait_text("Find a server");
    pty.wait_text("1/1 hosts");
    let row = pty.wait_for("server row", |t| {
        t.lines()
            .find(|l| l.contains("e2e-desk") && l.contains(&format!("127.0.0.1:{port}")))
            .map(str::to_string)
    });
    assert!(row.contains("scan"), "{row}");
    assert!(pty.contents().contains("q quit"), "{}", pty.contents());

    // Enter asks for a code; it is typed as read from the server, with a stray letter and a
    // dash that the box skips.
    pty.send(b"\r");
    pty.wait_text("Type the 6-digit code");
    let code = server.wait("pair_request")["code"]
        .as_str()
        .unwrap()
        .to_string();
    let typed = format!("{}x-{}", &code[..3], &code[3..]);
    pty.send(typed.as_bytes());
    pty.wait_text(&format!("{} {}", &code[..3], &code[3..]));
    pty.send(b"\r");
    pty.wait_text("connected to e2e-desk");
    server.wait("paired");

    // A task, and its reply read off the screen.
    pty.send(b"echo hi\r");
    pty.wait_text("> echo hi");
    let line = pty.wait_for("the reply to echo hi", |t| reply_line(t, "hi"));
    assert!(line.contains("ms)"), "{line}");
    // A notice pushed by the server (through its control socket, as its operator would).
    control(
        sdir.path(),
        ControlRequest::Notify {
            text: "lunch at noon".into(),
        },
    );
    pty.wait_text("notice: lunch at noon");
    pty.quit(CTRL_C);

    // Again: the paired server is found and connected to without a key press.
    let mut pty = spawn(&args);
    pty.wait_text("connected to e2e-desk");
    pty.send(b"ping\r");
    pty.wait_for("pong", |t| reply_line(t, "pong"));
    // The operator revokes this client: back to the scan, told to pair again.
    control(
        sdir.path(),
        ControlRequest::Forget {
            query: "pty-kiosk".into(),
        },
    );
    pty.wait_text("re-pair required with e2e-desk");
    pty.wait_text("Find a server");
    pty.quit(CTRL_C);
}

/// Send `req` to the running server's control socket.
fn control(state_dir: &Path, req: ControlRequest) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reply = rt
        .block_on(csc_shared::server::control::request(state_dir, &req))
        .expect("the server answers on its control socket");
    assert!(
        !matches!(reply, ControlReply::Error { .. }),
        "{req:?}: {reply:?}"
    );
}
