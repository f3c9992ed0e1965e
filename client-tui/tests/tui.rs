//! The real `client-tui` binary full screen in a pseudo-terminal, read through a terminal
//! emulator (vt100), against a headless `server-tui --json` on 127.0.0.1: the scan finds the
//! server, Enter asks for a code, the code from the server's JSON output is typed, `echo hi`
//! runs and `hi` is read off the screen, and a notice shows up. A second run connects by
//! itself, and a revocation sends it back to the scan. Nothing leaves the machine: the search
//! is limited to 127.0.0.1/32, without broadcast or mDNS.
#![cfg(target_os = "linux")]

mod common;

use common::server_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use csc_shared::server::control::{ControlReply, ControlRequest};
use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");
const ROWS: u16 = 30;
const COLS: u16 = 100;

/// A headless server on an ephemeral loopback port; its JSON events are read in a thread.
struct Server {
    child: Child,
    events: mpsc::Receiver<Value>,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(server_bin())
            .args(["--json", "--bind", "127.0.0.1", "--no-mdns", "--port", "0"])
            .args(["--name", "e2e-desk"])
            .arg("--state-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            events,
            port: 0,
        };
        s.port = s.wait("listening")["port"].as_u64().unwrap() as u16;
        s
    }

    fn wait(&mut self, kind: &str) -> Value {
        loop {
            let v = self
                .events
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no {kind} event from the server"));
            if v["event"] == kind {
                return v;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client in a pseudo-terminal, its screen kept by a terminal emulator.
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
        let mut cmd = Command::new(CLIENT);
        cmd.args(args)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("CSC_CLIENT_STATE_DIR")
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
        let child = cmd.spawn().expect("client starts");
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.contents();
            if let Some(v) = find(&text) {
                return v;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_text(&self, needle: &str) {
        self.wait_for(needle, |t| t.contains(needle).then_some(()));
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
                panic!("client-tui did not exit:\n{}", self.contents());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C, a clean exit, and the terminal given back.
    fn quit(&mut self) {
        self.send(b"\x03");
        let status = self.wait_exit();
        assert!(status.success(), "Ctrl-C quits cleanly: {status:?}");
        // Give the reader a moment for the last bytes.
        std::thread::sleep(Duration::from_millis(200));
        let parser = self.screen.lock().unwrap();
        assert!(
            !parser.screen().alternate_screen(),
            "the alternate screen was left"
        );
        assert!(!parser.screen().hide_cursor(), "the cursor is shown again");
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
    let port = server.port.to_string();
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
    let mut pty = Pty::spawn(&args);

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
    pty.quit();

    // Again: the paired server is found and connected to without a key press.
    let mut pty = Pty::spawn(&args);
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
    pty.quit();
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
