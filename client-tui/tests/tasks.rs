//! Tasks end to end with both real binaries on 127.0.0.1: `server-tui --config` with the
//! issue's example configuration (exactly as written) plus a few tasks for the hostile cases,
//! and `client-tui tasks` / `client-tui send`. Every line of the example: arguments refused
//! and never run, output streamed as it is written, a timeout that leaves nothing running,
//! the remote exit status, 1 MiB of random bytes through `cat`, a client outside `clients`,
//! and Ctrl-C on `send`. Then injection attempts, a client that disappears mid-run, and a
//! reader that stops reading.
#![cfg(target_os = "linux")]

mod common;

use common::{ServerProcess as Server, server_bin};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

/// The example of the issue, exactly as written.
const EXAMPLE: &str = r#"[tasks.greet]
description = "Say hello to someone"
command = ["/bin/echo", "hello", "{who}"]
args = [{ name = "who", pattern = "^[a-z]{1,16}$" }]

[tasks.count]
description = "Count to three, slowly"
command = ["/bin/sh", "-c", "for i in 1 2 3; do echo $i; sleep 1; done"]

[tasks.slow]
command = ["/bin/sleep", "30"]
timeout = "1s"

[tasks.cat]
description = "Send back what it reads"
command = ["/bin/cat"]
stdin = true

[tasks.secret]
command = ["/bin/echo", "only for kiosk-1"]
clients = ["kiosk-1"]
"#;

/// Tasks for the hostile cases, beside the example. `MARK` is replaced by a folder the test
/// owns, so it can tell what ran.
const EXTRA: &str = r#"
[tasks.touch]
description = "Leave a trace that it ran"
command = ["/bin/sh", "-c", "touch \"$0/ran-$1\"", "MARK", "{name}"]
args = [{ name = "name", pattern = "^[a-z]{1,8}$" }]

[tasks.fail]
description = "Exit with code 3"
command = ["/bin/sh", "-c", "echo failing >&2; exit 3"]

[tasks.argv]
description = "Print each argument between brackets"
command = ["/usr/bin/printf", "<%s>\n", "{any}"]
args = [{ name = "any", pattern = "(?s).*" }]

[tasks.pid]
description = "Say its process id, then wait"
command = ["/bin/sh", "-c", "echo $$ > MARK/pid; exec sleep 30"]

[tasks.zeros]
description = "Write many zeros"
command = ["/usr/bin/head", "-c", "1000000000", "/dev/zero"]
max_output = 2000000000
"#;

struct World {
    server: Server,
    sdir: tempfile::TempDir,
    cdir: tempfile::TempDir,
    mark: tempfile::TempDir,
    _config_dir: tempfile::TempDir,
}

impl World {
    /// The server with the example (and the extra tasks), and a client named `name`
    /// paired with it.
    fn start(name: &str) -> World {
        let sdir = tempfile::tempdir().unwrap();
        let cdir = tempfile::tempdir().unwrap();
        let mark = tempfile::tempdir().unwrap();
        let config_dir = tempfile::tempdir().unwrap();
        let config = config_dir.path().join("server.toml");
        let text = format!(
            "{EXAMPLE}{}",
            EXTRA.replace("MARK", mark.path().to_str().unwrap())
        );
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(server_bin());
        cmd.args(["--bind", "127.0.0.1", "--port", "0", "--json", "--no-mdns"])
            .args(["--name", "task-desk", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(sdir.path());
        let mut server = Server::spawn(cmd);
        let mut child = client_at(cdir.path(), name)
            .args(["pair", "--server", &format!("127.0.0.1:{}", server.port())])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let code = server.wait("pair_request")["code"]
            .as_str()
            .unwrap()
            .to_string();
        writeln!(child.stdin.take().unwrap(), "{code}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        World {
            server,
            sdir,
            cdir,
            mark,
            _config_dir: config_dir,
        }
    }

    fn client(&self) -> Command {
        client_at(self.cdir.path(), "unused")
    }

    fn send(&self, args: &[&str]) -> Output {
        self.client()
            .arg("send")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn marked(&self, name: &str) -> PathBuf {
        self.mark.path().join(name)
    }
}

fn client_at(dir: &Path, name: &str) -> Command {
    let mut c = Command::new(CLIENT);
    c.arg("--state-dir").arg(dir).args(["--name", name]);
    // Any rediscovery stays on this one loopback address: nothing leaves the machine.
    c.args(["--subnet", "127.0.0.1/32", "--no-broadcast", "--no-mdns"]);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether process `pid` (or, for a negative one, process group `-pid`) still exists.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Whether a process whose command line is `cmdline` (NUL-separated) runs.
fn running(cmdline: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).starts_with(cmdline))
}

fn read_pid(path: &Path, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the task never wrote {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn every_line_of_the_example_config_works() {
    let w = World::start("kiosk-7");

    // `tasks` lists what this client may run, with patterns; never the commands.
    let out = w.client().args(["tasks", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = listed.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for n in ["greet", "count", "slow", "cat", "ping"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        !names.contains(&"secret"),
        "a task this client may not run is listed"
    );
    let greet = listed.iter().find(|t| t["name"] == "greet").unwrap();
    assert_eq!(greet["args"][0]["name"], "who");
    assert_eq!(greet["args"][0]["pattern"], "^[a-z]{1,16}$");
    assert!(
        !text(&out.stdout).contains("/bin/echo"),
        "a command was shown"
    );

    // greet: a good argument runs; a bad one is refused, with the reason, and never runs.
    let out = w.send(&["greet", "ada"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello ada\n");
    let out = w.send(&["greet", "Ada Lovelace"]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("who"), "{}", text(&out.stderr));
    let out = w.send(&["touch", "NOPE"]);
    assert_eq!(out.status.code(), Some(9));
    assert!(!w.marked("ran-NOPE").exists(), "a refused task ran");
    assert_eq!(
        w.send(&["greet"]).status.code(),
        Some(9),
        "a missing argument"
    );
    assert_eq!(
        w.send(&["greet", "a", "b"]).status.code(),
        Some(9),
        "an extra one"
    );

    // count: the first line arrives well before the program ends.
    let started = Instant::now();
    let mut child = w
        .client()
        .args(["send", "count"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 2];
    stdout.read_exact(&mut first).unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first, b"1\n");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let all_at = started.elapsed();
    assert!(status.success());
    assert_eq!(rest, "2\n3\n");
    assert!(
        all_at - first_at >= Duration::from_millis(1500),
        "the first line came with the rest: {first_at:?} of {all_at:?}"
    );

    // slow: stopped by its 1 s timeout (exit 11), long before its 30 s.
    let t = Instant::now();
    let out = w.send(&["slow"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(20));

    // The remote exit status: 100 + its code; its stderr on ours.
    let out = w.send(&["fail"]);
    assert_eq!(out.status.code(), Some(103), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("failing"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("exited with code 3"),
        "{}",
        text(&out.stderr)
    );

    // cat: 1 MiB of random bytes comes back identical.
    let data: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
    let mut child = w
        .client()
        .args(["send", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = {
        let data = data.clone();
        std::thread::spawn(move || {
            stdin.write_all(&data).unwrap();
        })
    };
    let mut back = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut back).unwrap();
    feeder.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(back.len(), data.len());
    assert!(back == data, "cat changed the bytes");

    // secret: this client is not kiosk-1.
    let out = w.send(&["secret"]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty());

    // The operator saw each run.
    let mut w = w;
    let finished = w.server.wait("task_finished");
    assert!(finished["task"].is_string(), "{finished}");
}

#[test]
fn secret_runs_for_the_client_it_names() {
    let w = World::start("kiosk-1");
    let out = w.send(&["secret"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "only for kiosk-1\n");
}

#[test]
fn injection_attempts_stay_one_argument_or_are_refused() {
    let w = World::start("kiosk-9");
    let long = "a".repeat(100_000);
    for value in [
        "; rm -rf MARK",
        "$(touch MARK/owned)",
        "`touch MARK/owned`",
        "two\nlines",
        "-n",
        "--help",
        "*",
        "a b c",
        long.as_str(),
    ] {
        let value = value.replace("MARK", w.mark.path().to_str().unwrap());
        // `--` ends the options of `send`, so a value such as `--help` is the task's.
        let out = w.send(&["argv", "--", &value]);
        assert!(out.status.success(), "{value:?}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("<{value}>\n"),
            "{value:?} was not one argument"
        );
    }
    assert!(!w.marked("owned").exists(), "something reached a shell");
    // (A NUL cannot be in a command-line argument here at all, nor a value longer than the
    // 128 KiB Linux allows one: the engine's own tests send both over the wire.)
    let out = w.send(&["touch", "../etc"]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "a pattern keeps out what it does not match"
    );
}

#[test]
fn ctrl_c_on_send_and_a_vanished_client_both_stop_the_program() {
    let w = World::start("kiosk-5");
    // Ctrl-C (SIGINT) on send: the remote program is stopped before it would finish.
    let mut child: Child = w
        .client()
        .args(["send", "pid"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = read_pid(&w.marked("pid"), Duration::from_secs(20));
    assert!(alive(pid));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(12), "cancelled");
    assert!(
        gone_within(pid, Duration::from_secs(10)),
        "the program outlived the cancel"
    );
    std::fs::remove_file(w.marked("pid")).unwrap();

    // SIGKILL on send: the session ends, and the server stops the program.
    let mut child = w
        .client()
        .args(["send", "pid"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = read_pid(&w.marked("pid"), Duration::from_secs(20));
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        gone_within(pid, Duration::from_secs(15)),
        "the program outlived its client"
    );
    let _ = &w.sdir;
}

#[test]
fn a_reader_that_stops_reading_holds_the_program_not_the_servers_memory() {
    let w = World::start("kiosk-3");
    let pid = w.server.pid() as i32;
    let rss = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let before = rss();
    // 1 GB of zeros to a stdout nobody reads.
    let mut child = w
        .client()
        .args(["send", "zeros"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let during = rss();
    // The program is still there, blocked on its pipe, long after it could have written 1 GB.
    assert!(
        running("/usr/bin/head\0-c\x001000000000\0/dev/zero"),
        "the program is not running any more"
    );
    eprintln!("server RSS {before} KiB before, {during} KiB with a reader that stopped");
    assert!(
        during < before + 32 * 1024,
        "the server grew from {before} to {during} KiB"
    );
    child.kill().unwrap();
    let _ = child.wait();
}
