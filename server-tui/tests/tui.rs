//! The real `server-tui` binary in a pseudo-terminal, read through a terminal emulator
//! (vt100), next to a headless client in-process: the code is read off the screen, the client
//! pairs with it and shows up in the clients table, `q` quits and gives the terminal back.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csc_shared::client::{Client, ClientOptions};
use csc_shared::pairing::Code;

const BIN: &str = env!("CARGO_BIN_EXE_server-tui");
const ROWS: u16 = 30;
const COLS: u16 = 100;

struct Pty {
    child: Child,
    master: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl Pty {
    fn spawn(args: &[&str]) -> Self {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let size = libc::winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors into valid locations; no name buffer or
        // termios is passed, and the size struct outlives the call.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are owned here alone.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec: a new session, with the
        // pseudo-terminal (already on fd 0) as its controlling terminal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("server starts");
        let master = std::fs::File::from(master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            ROWS.try_into().unwrap(),
            COLS.try_into().unwrap(),
            0,
        )));
        let mut reader = master.try_clone().unwrap();
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // Ends with EIO once the child has exited and the slave side is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().process(&buf[..n]);
            }
        });
        Pty {
            child,
            master,
            screen,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Wait until `find` returns something from the screen's text.
    fn wait_for<T>(&self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.contents();
            if let Some(v) = find(&text) {
                return v;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server-tui did not exit:\n{}", self.contents());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
    let mut pty = Pty::spawn(&[
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

    pty.send(b"q");
    let status = pty.wait_exit();
    assert!(status.success(), "q quits cleanly: {status:?}");
    // Give the reader a moment for the last bytes, then check the terminal was given back.
    std::thread::sleep(Duration::from_millis(200));
    let parser = pty.screen.lock().unwrap();
    assert!(
        !parser.screen().alternate_screen(),
        "the alternate screen was left"
    );
    assert!(!parser.screen().hide_cursor(), "the cursor is shown again");
}

#[test]
fn ctrl_c_quits_even_while_typing_a_notice() {
    let sdir = tempfile::tempdir().unwrap();
    let mut pty = Pty::spawn(&[
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
    assert!(
        pty.child.try_wait().unwrap().is_none(),
        "q was typed, not obeyed"
    );
    pty.send(b"\x03");
    assert!(pty.wait_exit().success());
}
