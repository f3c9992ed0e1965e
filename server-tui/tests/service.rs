//! The server under a service manager: with `$NOTIFY_SOCKET` set, as systemd sets it for a
//! `Type=notify` unit, it says READY=1 once it listens (and where, in STATUS) and STOPPING=1
//! when SIGTERM stops it. The test plays systemd with a Unix datagram socket of its own.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_server-tui");

fn next(socket: &UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_server_tells_systemd_when_it_listens_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-tui",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ready = next(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=listening on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no listening status in {ready:?}"));
    let port: u16 = status.parse().expect("the port it listens on");
    // Ready means ready: the port takes connections now.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");

    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopping = next(&socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn without_a_service_manager_the_server_runs_as_before() {
    // NOTIFY_SOCKET names nothing: the server warns and runs on.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-tui",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", dir.path().join("nobody-listens"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(out.id() as i32, libc::SIGTERM) };
    let out = out.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("listening on 127.0.0.1:"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot notify the service manager"),
        "{stderr}"
    );
}
