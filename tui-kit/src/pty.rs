//! A binary run in a pseudo-terminal, its screen kept by a terminal emulator (vt100), for the
//! apps' end-to-end tests (feature `pty-test`, Linux).
//!
//! Owns: the pseudo-terminal, the reader thread and waiting on the screen; test builds only.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process with a pseudo-terminal as its terminal.
pub struct Pty {
    child: Child,
    master: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
    name: String,
    timeout: Duration,
}

impl Pty {
    /// Start `cmd` in a `rows`×`cols` pseudo-terminal as its controlling terminal, with
    /// `TERM=xterm-256color` and without `NO_COLOR`. Waits on the screen give up after 20 s.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Self {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
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
        let name = std::path::Path::new(cmd.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        cmd.env("TERM", "xterm-256color")
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
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let master = std::fs::File::from(master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            rows.try_into().unwrap(),
            cols.try_into().unwrap(),
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
            name,
            timeout: Duration::from_secs(20),
        }
    }

    /// Waits on the screen give up after `timeout` instead.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The screen's text.
    pub fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Wait until `find` returns something from the screen's text; `what` names it if not.
    pub fn wait_for<T>(&self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + self.timeout;
        loop {
            let text = self.contents();
            if let Some(v) = find(&text) {
                return v;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until `needle` is on the screen.
    pub fn wait_text(&self, needle: &str) {
        self.wait_for(needle, |t| t.contains(needle).then_some(()));
    }

    /// Type `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Wait up to 15 s for the child to exit; kill it and fail if it does not.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not exit:\n{}", self.name, self.contents());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Type `keys`, then check for a clean exit and the terminal given back (the alternate
    /// screen left, the cursor shown).
    pub fn quit(&mut self, keys: &[u8]) {
        self.send(keys);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "{:?} quits cleanly: {status:?}",
            String::from_utf8_lossy(keys)
        );
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
