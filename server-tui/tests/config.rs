//! The real `server-tui` process with a configuration file (`--config`, or the default one):
//! mistakes stop it with the file and the line, settings apply under the command line, SIGHUP
//! and `server-tui reload` read the tasks again (a broken file keeps the old ones), and
//! `runs`, `stop-run` and `rename` act on the running server. Every server binds 127.0.0.1
//! on a free port, without mDNS, and never sees the default configuration folder of the
//! person running the tests.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use csc_shared::client::{Client, ClientOptions, RunEvent, Session};
use csc_shared::message::{RunStatus, StopReason};
use csc_shared::pairing::Code;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_server-tui");

/// The example of the issue, as `assets/server.toml` has it.
const EXAMPLE: &str = include_str!("../../assets/server.toml");

/// A folder only this user can change, as the loader wants a configuration folder to be.
fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Write `text` to `dir/server.toml` (mode 0600), replacing it whole.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("server.toml");
    let tmp = dir.join(".server.toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// `server-tui` with the test's usual flags, and the config home pointed away from the real
/// one (so only `--config` or a default file the test wrote is read).
fn command(state: &Path, config_home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("XDG_CONFIG_HOME", config_home)
        .env_remove(csc_shared::state::SERVER_STATE_ENV)
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-mdns", "--json"])
        .arg("--state-dir")
        .arg(state);
    cmd
}

/// Run `cmd` to its end, at most 20 s (a server that starts when it should not is killed,
/// and the test fails instead of hanging).
fn finish(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after 20 s: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A subcommand against the server of `state`.
fn sub(state: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_remove(csc_shared::state::SERVER_STATE_ENV)
        .args(args)
        .arg("--state-dir")
        .arg(state);
    finish(cmd)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `server-tui --json`; SIGTERM when dropped.
struct Server {
    child: Child,
    events: mpsc::Receiver<Value>,
    listening: Value,
}

impl Server {
    fn start(state: &Path, config_home: &Path, extra: &[&str]) -> Self {
        let mut child = command(state, config_home)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts");
        let out = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            events,
            listening: Value::Null,
        };
        s.listening = s.wait("listening");
        s
    }

    fn addr(&self) -> std::net::SocketAddr {
        let port = self.listening["port"].as_u64().unwrap() as u16;
        ([127, 0, 0, 1], port).into()
    }

    /// Every event up to and including the next of `kind`.
    fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self
                .events
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no {kind} event; saw {seen:?}"));
            let done = v["event"] == kind;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    fn wait(&mut self, kind: &str) -> Value {
        self.until(kind).pop().unwrap()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, and its exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Pair a client named `name` with `server` and open a session.
async fn paired_session(server: &mut Server, dir: &Path, name: &str) -> Session {
    let client = Client::open(dir, name, ClientOptions::default()).unwrap();
    let mut pairing = client.start_pairing(server.addr()).await.unwrap();
    let code = tokio::task::block_in_place(|| server.wait("pair_request"))["code"]
        .as_str()
        .unwrap()
        .to_string();
    let paired = pairing.submit(&Code::parse(&code).unwrap()).await.unwrap();
    drop(pairing);
    client.connect(&paired).await.unwrap()
}

async fn offered(session: &Session) -> Vec<String> {
    session
        .handle()
        .list_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect()
}

fn tasks_of(event: &Value) -> Vec<String> {
    event["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {event}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_mistake_in_the_file_stops_the_server_with_the_file_and_the_line() {
    let (state, conf) = (private_dir(), private_dir());
    let path = write_config(
        conf.path(),
        "name = \"den\"\n\n[tasks.greet]\ncommand = [\"/bin/echo\", \"{who}\"]\nargs = [{ name = \"who\", pattern = \"[a-z\" }]\n",
    );
    let out = finish({
        let mut c = command(state.path(), conf.path());
        c.arg("--config").arg(&path);
        c
    });
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("server.toml:5: tasks.greet.args[0].pattern: "),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "it never listened: {out:?}");
}

#[test]
fn a_file_others_can_change_is_refused() {
    let (state, conf) = (private_dir(), private_dir());
    let path = write_config(conf.path(), EXAMPLE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = finish({
        let mut c = command(state.path(), conf.path());
        c.arg("--config").arg(&path);
        c
    });
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("server.toml") && err.contains("chmod go-w"),
        "{err}"
    );
}

#[test]
fn an_unknown_setting_is_refused_with_its_line() {
    let (state, conf) = (private_dir(), private_dir());
    let path = write_config(conf.path(), "name = \"den\"\nprot = 7000\n");
    let out = finish({
        let mut c = command(state.path(), conf.path());
        c.arg("--config").arg(&path);
        c
    });
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(
            "server.toml:2: prot: no such setting; the settings are the flags of server-tui --help"
        ),
        "{err}"
    );
    // A setting with a bad value: clap's own words, with the line.
    let path = write_config(conf.path(), "\nmax-attempts = 0\n");
    let out = finish({
        let mut c = command(state.path(), conf.path());
        c.arg("--config").arg(&path);
        c
    });
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        stderr(&out).contains("server.toml:2: max-attempts: invalid value '0'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_file_is_an_error_only_when_named() {
    let (state, conf) = (private_dir(), private_dir());
    let out = finish({
        let mut c = command(state.path(), conf.path());
        c.arg("--config").arg(conf.path().join("nowhere.toml"));
        c
    });
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        stderr(&out).contains("nowhere.toml: cannot open"),
        "{}",
        stderr(&out)
    );
    // No default file either: built-in tasks only, and said so.
    let mut server = Server::start(state.path(), conf.path(), &[]);
    let loaded = server.wait("tasks_loaded");
    assert!(loaded["path"].is_null(), "{loaded}");
    assert_eq!(tasks_of(&loaded), Vec::<String>::new());
    assert!(server.stop().success());
}

#[test]
fn the_default_file_is_read_when_it_exists() {
    let (state, home) = (private_dir(), private_dir());
    let folder = home.path().join("client-server-communicator");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = write_config(&folder, &format!("name = \"from-default\"\n{EXAMPLE}"));
    let mut server = Server::start(state.path(), home.path(), &[]);
    assert_eq!(server.listening["name"], "from-default");
    let loaded = server.wait("tasks_loaded");
    assert_eq!(loaded["path"], path.display().to_string());
    assert_eq!(
        tasks_of(&loaded),
        ["cat", "count", "greet", "secret", "slow"]
    );
    assert!(server.stop().success());
}

#[test]
fn a_setting_from_the_file_applies_and_a_flag_overrides_it() {
    let (state, conf) = (private_dir(), private_dir());
    let path = write_config(conf.path(), "name = \"den\"\nno_mdns = true\n");
    let config = path.to_str().unwrap();
    let server = Server::start(state.path(), conf.path(), &["--config", config]);
    assert_eq!(server.listening["name"], "den", "the file over the default");
    assert!(server.stop().success());
    let server = Server::start(
        state.path(),
        conf.path(),
        &["--config", config, "--name", "attic"],
    );
    assert_eq!(server.listening["name"], "attic", "the flag over the file");
    assert!(server.stop().success());

    // Plain text output says where the tasks came from, right after the listening line.
    let path = write_config(conf.path(), &format!("name = \"den\"\n{EXAMPLE}"));
    let mut child = Command::new(BIN)
        .env("XDG_CONFIG_HOME", conf.path())
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-tui", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("listening on 127.0.0.1:") && first.contains("as \"den\""),
        "{first}"
    );
    // The server on loopback names the command that pairs with it from this machine.
    let port = first
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .unwrap();
    let hint = lines.next().unwrap().unwrap();
    assert_eq!(
        hint,
        format!("to pair, run on this machine: client-tui pair --server 127.0.0.1:{port}")
    );
    let second = lines.next().unwrap().unwrap();
    assert_eq!(
        second,
        format!(
            "tasks from {}: cat, count, greet, secret, slow",
            path.display()
        )
    );
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

const GREET: &str = "[tasks.greet]\ncommand = [\"/bin/echo\", \"hello\", \"{who}\"]\nargs = [{ name = \"who\", pattern = \"^[a-z]{1,16}$\" }]\n";
const HELLO: &str = "\n[tasks.hello]\ncommand = [\"/bin/echo\", \"hello\"]\n";
/// Line 8 of GREET + HELLO + BROKEN is `command = []`.
const BROKEN: &str = "[tasks.broken]\ncommand = []\n";

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_a_good_file_and_a_broken_one_keeps_the_tasks_in_force() {
    let (state, conf, cdir) = (private_dir(), private_dir(), private_dir());
    let path = write_config(conf.path(), GREET);
    let mut server = Server::start(
        state.path(),
        conf.path(),
        &["--config", path.to_str().unwrap()],
    );
    let loaded = tokio::task::block_in_place(|| server.wait("tasks_loaded"));
    assert_eq!(tasks_of(&loaded), ["greet"]);
    let session = paired_session(&mut server, cdir.path(), "kiosk-1").await;
    let before = offered(&session).await;
    assert!(before.contains(&"greet".to_string()), "{before:?}");
    assert!(!before.contains(&"hello".to_string()), "{before:?}");

    // A good file: its new task is offered at once, without a restart.
    write_config(conf.path(), &format!("{GREET}{HELLO}"));
    server.signal(libc::SIGHUP);
    let reloaded = tokio::task::block_in_place(|| server.wait("tasks_reloaded"));
    assert_eq!(tasks_of(&reloaded), ["greet", "hello"]);
    assert_eq!(reloaded["path"], path.display().to_string());
    assert!(offered(&session).await.contains(&"hello".to_string()));

    // A broken file: a warning that says where, no reload, and the tasks in force stay.
    write_config(conf.path(), &format!("{GREET}{HELLO}{BROKEN}"));
    server.signal(libc::SIGHUP);
    let seen = tokio::task::block_in_place(|| server.until("warning"));
    assert!(
        !seen.iter().any(|e| e["event"] == "tasks_reloaded"),
        "{seen:?}"
    );
    let warning = &seen.last().unwrap()["message"];
    let warning = warning.as_str().unwrap();
    assert!(
        warning.contains("server.toml:8: tasks.broken.command") && warning.contains("stay"),
        "{warning}"
    );
    let after = offered(&session).await;
    assert!(
        after.contains(&"hello".to_string()) && !after.contains(&"broken".to_string()),
        "{after:?}"
    );

    // `server-tui reload` is refused the same way, with exit code 6.
    let out = sub(state.path(), &["reload"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        stderr(&out).contains("the tasks in force stay")
            && stderr(&out).contains("server.toml:8: tasks.broken.command"),
        "{}",
        stderr(&out)
    );
    let seen = tokio::task::block_in_place(|| server.until("warning"));
    assert!(
        !seen.iter().any(|e| e["event"] == "tasks_reloaded"),
        "{seen:?}"
    );
    // The server still runs, and a fixed file reloads.
    write_config(conf.path(), GREET);
    let out = sub(state.path(), &["reload"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "reloaded; configured tasks: greet\n");
    assert!(!offered(&session).await.contains(&"hello".to_string()));
    drop(session);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_runs_stop_run_and_rename_act_on_the_running_server() {
    let (state, conf, cdir) = (private_dir(), private_dir(), private_dir());
    // Nothing runs yet: each says so, and fails.
    for args in [
        &["reload"][..],
        &["runs"],
        &["stop-run", "1"],
        &["rename", "kiosk-1", "till"],
    ] {
        let out = sub(state.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            stderr(&out).contains("no server is running"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    let path = write_config(conf.path(), EXAMPLE);
    let mut server = Server::start(
        state.path(),
        conf.path(),
        &["--config", path.to_str().unwrap()],
    );
    let out = sub(state.path(), &["reload"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "reloaded; configured tasks: cat, count, greet, secret, slow\n"
    );
    let reloaded = tokio::task::block_in_place(|| server.wait("tasks_reloaded"));
    assert_eq!(
        tasks_of(&reloaded),
        ["cat", "count", "greet", "secret", "slow"]
    );
    let out = sub(state.path(), &["--json", "reload"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tasks_of(&v).len(), 5, "{v}");

    let out = sub(state.path(), &["runs"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "no runs in progress\n");
    let out = sub(state.path(), &["runs", "--json"]);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let out = sub(state.path(), &["stop-run", "999"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        stderr(&out).contains("no run 999 is in progress"),
        "{}",
        stderr(&out)
    );

    // A run in progress is listed, and stopped by the operator.
    let session = paired_session(&mut server, cdir.path(), "kiosk-1").await;
    let mut run = session
        .handle()
        .run("cat", vec![], 256 * 1024)
        .await
        .unwrap();
    let started = tokio::task::block_in_place(|| server.wait("task_started"));
    assert_eq!(started["task"], "cat");
    assert_eq!(started["client_name"], "kiosk-1");
    let run_id = started["run_id"].as_u64().unwrap();
    run.write_stdin(b"hello\n").await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 6 {
        match tokio::time::timeout(Duration::from_secs(10), run.next()).await {
            Ok(Some(RunEvent::Output { data, .. })) => echoed.extend(data),
            Ok(Some(RunEvent::Started { .. })) => {}
            other => panic!("expected output, got {other:?}"),
        }
    }
    assert_eq!(echoed, b"hello\n");
    let out = sub(state.path(), &["runs", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["run_id"], run_id);
    assert_eq!(rows[0]["task"], "cat");
    assert_eq!(rows[0]["client_name"], "kiosk-1");
    assert_eq!(rows[0]["bytes_in"], 6);
    assert_eq!(rows[0]["bytes_out"], 6);
    let out = sub(state.path(), &["runs"]);
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with(&run_id.to_string()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("kiosk-1") && row.ends_with("cat"), "{row}");
    assert!(text.starts_with("RUN "), "{text}");

    let out = sub(state.path(), &["stop-run", &run_id.to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with(&format!("stopping run {run_id}")),
        "{out:?}"
    );
    loop {
        match tokio::time::timeout(Duration::from_secs(10), run.next()).await {
            Ok(Some(RunEvent::Exit { status, .. })) => {
                assert_eq!(
                    status,
                    RunStatus::Stopped {
                        reason: StopReason::Operator
                    }
                );
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("expected the run's end, got {other:?}"),
        }
    }
    let finished = tokio::task::block_in_place(|| server.wait("task_finished"));
    assert_eq!(finished["run_id"], run_id);
    assert_eq!(finished["status"]["kind"], "stopped");
    assert_eq!(finished["status"]["reason"], "operator");
    assert_eq!(
        stdout(&sub(state.path(), &["runs"])),
        "no runs in progress\n"
    );

    // Renaming goes through the running server.
    let out = sub(state.path(), &["rename", "kiosk-1", "kiosk-2"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).ends_with("to \"kiosk-2\"\n"), "{out:?}");
    let renamed = tokio::task::block_in_place(|| server.wait("renamed"));
    assert_eq!(renamed["old_name"], "kiosk-1");
    assert_eq!(renamed["new_name"], "kiosk-2");
    let out = sub(state.path(), &["rename", "nobody", "x"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let out = sub(state.path(), &["rename", "kiosk-2", " "]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    drop(run);
    drop(session);
    assert!(server.stop().success());
}

#[test]
fn help_documents_the_config_flag_and_its_exit_code() {
    let out = finish({
        let mut c = Command::new(BIN);
        c.arg("--help");
        c
    });
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("--config <FILE>"), "{text}");
    assert!(text.contains("6 bad configuration file"), "{text}");
    for sub in ["reload", "runs", "stop-run", "rename"] {
        assert!(text.contains(sub), "{sub} in {text}");
    }
}

#[test]
fn a_restart_without_name_keeps_the_name_the_server_was_given() {
    let (state, conf) = (private_dir(), private_dir());
    let server = Server::start(state.path(), conf.path(), &["--name", "front desk"]);
    assert_eq!(server.listening["name"], "front desk");
    assert!(server.stop().success());
    // Not renamed after the host on a restart with the same state folder.
    let server = Server::start(state.path(), conf.path(), &[]);
    assert_eq!(server.listening["name"], "front desk");
    assert!(server.stop().success());
    // A new --name wins, and is the one kept from then on.
    let server = Server::start(state.path(), conf.path(), &["--name", "lobby"]);
    assert_eq!(server.listening["name"], "lobby");
    assert!(server.stop().success());
    let server = Server::start(state.path(), conf.path(), &[]);
    assert_eq!(server.listening["name"], "lobby");
    assert!(server.stop().success());
}
