//! A first run, as a new user meets it: on a machine with nothing but loopback, and the
//! README's quick start run exactly as it is written there. Each test runs in a network
//! namespace of its own that has only loopback (needs root and iproute2, else it skips).

mod common;
mod lab;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tui_kit::pty::Pty;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with only loopback, deleted on drop.
struct Loopback {
    name: String,
}

impl Loopback {
    fn new() -> Option<Self> {
        if let Some(why) = lab::unavailable() {
            eprintln!("SKIPPED: namespace lab unavailable: {why}");
            return None;
        }
        let name = format!(
            "cfr{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ok = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip runs");
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        ok(&["netns", "add", &name]);
        let ns = Self { name };
        ok(&["-n", &ns.name, "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// `program` run inside the namespace.
    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn with_nothing_but_loopback_pair_and_scan_say_why_and_what_to_type() {
    let Some(ns) = Loopback::new() else { return };
    let state = tempfile::tempdir().unwrap();
    for (sub, code) in [("pair", 6), ("scan", 16)] {
        let out = ns
            .cmd(CLIENT)
            .arg(sub)
            .arg("--state-dir")
            .arg(state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{sub}: {err}");
        assert!(
            err.contains("nothing to search: no network address but loopback"),
            "{sub}: {err}"
        );
        assert!(err.contains("--server 127.0.0.1"), "{sub}: {err}");
        assert!(!err.contains("searching via"), "{sub}: {err}");
    }
}

#[test]
fn the_full_screen_client_with_nothing_to_search_says_what_to_type() {
    let Some(ns) = Loopback::new() else { return };
    let state = tempfile::tempdir().unwrap();
    let mut cmd = ns.cmd(CLIENT);
    cmd.arg("--state-dir").arg(state.path());
    let mut pty = Pty::spawn(cmd, 30, 100);
    pty.wait_text("Nothing to search: no network address but loopback");
    pty.wait_text("--server 127.0.0.1");
    pty.quit(b"q");
}

/// One command of the quick start: `cargo run --release -p PACKAGE [-- ARGS]`.
#[derive(Debug)]
struct Step {
    package: String,
    args: Vec<String>,
}

/// The shell commands of the README's set-up section, before "Test it".
fn quick_start() -> Vec<Step> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme.find("## Set-up").expect("a set-up section");
    let section = &readme[start..];
    let section = &section[..section.find("**Test it.**").expect("a test step")];
    let mut steps = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block && line.trim() == "```sh";
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words[..4],
            ["cargo", "run", "--release", "-p"],
            "a quick-start line this test cannot run: {line}"
        );
        let args = match words.get(5) {
            None => Vec::new(),
            Some(&"--") => words[6..].iter().map(|w| w.to_string()).collect(),
            Some(other) => panic!("unexpected {other} in {line}"),
        };
        steps.push(Step {
            package: words[4].to_string(),
            args,
        });
    }
    steps
}

/// The environment of a fresh account: a new home, no state folder chosen.
fn fresh_home(cmd: &mut Command, home: &Path) {
    for var in [
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "XDG_RUNTIME_DIR",
        csc_shared::state::CLIENT_STATE_ENV,
        csc_shared::state::SERVER_STATE_ENV,
        "CSC_PAIR_CODE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
}

fn binary(package: &str) -> PathBuf {
    match package {
        "client-tui" => PathBuf::from(CLIENT),
        "server-tui" => common::server_bin(),
        other => panic!("the quick start runs an unknown package {other}"),
    }
}

/// The six digits of the newest `pairing code for …: 123 456` line on the server's screen.
fn code_on(screen: &str) -> Option<String> {
    let line = screen
        .lines()
        .rev()
        .find(|l| l.contains("pairing code for"))?;
    let tail = &line[line.rfind("): ")? + 3..];
    let digits: String = tail.chars().filter(char::is_ascii_digit).collect();
    (digits.len() == 6).then_some(digits)
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let Some(ns) = Loopback::new() else { return };
    let home = tempfile::tempdir().unwrap();
    let steps = quick_start();
    assert!(
        steps.len() >= 5,
        "the quick start has its server, pair, tasks, send and console steps: {steps:?}"
    );
    let mut server: Option<Pty> = None;
    let mut ran_console = false;
    for step in &steps {
        let mut cmd = ns.cmd(binary(&step.package));
        cmd.args(&step.args);
        fresh_home(&mut cmd, home.path());
        let shown = format!("{} {}", step.package, step.args.join(" "));
        eprintln!("quick start: {shown}");
        if step.package == "server-tui" {
            // The server runs full screen, as in the first terminal.
            let pty = Pty::spawn(cmd, 40, 110).with_timeout(Duration::from_secs(20));
            pty.wait_text("listening on 127.0.0.1 port 47474");
            // What it tells the person to type is what the README has them type next.
            pty.wait_text("client-tui pair --server 127.0.0.1");
            server = Some(pty);
            continue;
        }
        let server = server
            .as_ref()
            .expect("the quick start starts the server first");
        if step.args.first().map(String::as_str) == Some("pair") {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let code = server.wait_for("a pairing code", code_on);
            writeln!(child.stdin.as_mut().unwrap(), "{code}").unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{shown}: {out:?}");
            continue;
        }
        if step.args.is_empty() || step.args[0].starts_with('-') {
            // The full-screen console: it connects to the server it paired with.
            let mut pty = Pty::spawn(cmd, 30, 100).with_timeout(Duration::from_secs(20));
            pty.wait_text("connected");
            pty.send(b"greet ada\r");
            pty.wait_text("hello ada");
            pty.quit(b"\x03");
            ran_console = true;
            continue;
        }
        let out: Output = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{shown}: {out:?}");
        let stdout = text(&out.stdout);
        match step.args[0].as_str() {
            "tasks" => assert!(stdout.contains("greet"), "{shown}: {stdout}"),
            "send" => assert!(stdout.contains("hello ada"), "{shown}: {stdout}"),
            _ => {}
        }
    }
    assert!(ran_console, "the quick start opens the full-screen client");
    // The server saw one client pair, and its table lists it.
    let server = server.unwrap();
    server.wait_text("1 paired");
}

/// Takes the lab of `prefix` down when dropped, whatever the test did.
struct LabDown(&'static str, String);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = Command::new(self.0)
            .env("LAB_PREFIX", &self.1)
            .arg("down")
            .status();
    }
}

#[test]
fn scripts_lab_run_inside_a_network_namespace_makes_a_lab_that_outlives_it() {
    let Some(ns) = Loopback::new() else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lab");
    let prefix = format!(
        "fl{}{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let _down = LabDown(script, prefix.clone());
    // As a person would from a shell in a namespace: `ip netns exec NAME scripts/lab up 1`.
    // That command gets a private mount namespace, which ends with it.
    let out = ns
        .cmd(script)
        .env("LAB_PREFIX", &prefix)
        .args(["up", "1", "10.219.7"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Afterwards the host is still there, with its address.
    let out = Command::new(script)
        .env("LAB_PREFIX", &prefix)
        .args([
            "exec", "h1", "ip", "-4", "-o", "addr", "show", "dev", "eth0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("10.219.7.11/24"), "{out:?}");
}
