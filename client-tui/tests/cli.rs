//! Both real binaries on 127.0.0.1: `server-tui --json` on an ephemeral port, and
//! `client-tui` pairing with the code taken from the server's output, as a person would type
//! it. Covers every documented exit code.

mod common;

use common::{ServerProcess as Server, server_bin};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

impl Server {
    /// The server on 127.0.0.1; `port` 0 for any free one.
    fn start(dir: &Path, port: u16) -> Self {
        let mut cmd = Command::new(server_bin());
        cmd.args(["--bind", "127.0.0.1", "--json", "--name", "front-desk"])
            .args(["--backoff", "10ms", "--port", &port.to_string()])
            .arg("--state-dir")
            .arg(dir);
        Server::spawn(cmd)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }
}

fn client(dir: &Path) -> Command {
    let mut c = Command::new(CLIENT);
    c.arg("--state-dir").arg(dir).arg("--name").arg("kiosk");
    // Any rediscovery stays on this one loopback address: nothing leaves the machine.
    c.args(["--subnet", "127.0.0.1/32"]);
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// Start `client-tui pair`, then type `answers` one by one, each after the server showed a
/// code (the first answer may be a function of the code).
fn pair(server: &mut Server, dir: &Path, answers: &[&dyn Fn(&str) -> String]) -> Output {
    let mut child = client(dir)
        .args(["pair", "--server", &server.addr()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = server.wait("pair_request")["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stdin = child.stdin.take().unwrap();
    for answer in answers {
        writeln!(stdin, "{}", answer(&code)).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn right(code: &str) -> String {
    // Typed the way a person reads the banner: grouped.
    format!("{} {}", &code[..3], &code[3..])
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn pair_send_list_and_console() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path(), 0);

    let out = pair(&mut server, cdir.path(), &[&wrong, &right]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("wrong code, 4 attempts left"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("paired with \"front-desk\""),
        "{}",
        text(&out.stdout)
    );
    server.wait("paired");

    let out = run(client(cdir.path()).args(["--json", "send", "echo", "hello", "world"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // NDJSON: `started`, then the result on the last line.
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "started");
    let v = &lines[1];
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"], "hello world");
    assert_eq!(v["addr"], server.addr());
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);

    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert_eq!(text(&out.stdout).trim(), "pong");

    let out = run(client(cdir.path()).args(["servers", "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "front-desk");
    assert_eq!(v["addrs"][0], server.addr());

    // No subcommand: a console on stdin.
    let mut child = client(cdir.path())
        .arg("--no-tui")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ping\necho a  b\nnope\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "pong");
    assert_eq!(lines[1], "a b");
    assert!(
        lines[2].starts_with("error: nope was refused: unknown task \"nope\""),
        "{lines:?}"
    );

    // Unknown task as a one-shot command: exit 8.
    let out = run(client(cdir.path()).args(["send", "nope"]));
    assert_eq!(out.status.code(), Some(8), "{}", text(&out.stderr));
    server.stop();
}

#[test]
fn wrong_codes_until_input_ends_exit_3() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path(), 0);
    let out = pair(&mut server, cdir.path(), &[&wrong]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(server.wait("pair_closed")["reason"], "cancelled");
    let out = pair(&mut server, cdir.path(), &[&|_| "12ab56".to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only digits"),
        "{}",
        text(&out.stderr)
    );
    let out = run(client(cdir.path()).args(["servers"]));
    assert!(text(&out.stdout).contains("no paired servers"));
    server.stop();
}

#[test]
fn revoked_unreachable_and_impostor_have_distinct_exit_codes() {
    let sdir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path(), 0);
    let port = server.port();
    assert!(pair(&mut server, cdir.path(), &[&right]).status.success());
    server.stop();

    // Nothing listening: unreachable.
    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unreachable"));

    // Another server on the same address: refused, with both ids named.
    let impostor = Server::start(other.path(), port);
    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("presented identity"),
        "{}",
        text(&out.stderr)
    );
    impostor.stop();

    // The real one again, then revoked by its operator: re-pair required.
    let server = Server::start(sdir.path(), port);
    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = Command::new(server_bin())
        .args(["forget", "kiosk", "--state-dir"])
        .arg(sdir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("re-pair required"),
        "{}",
        text(&out.stderr)
    );
    server.stop();
}

#[test]
fn forget_revokes_on_the_server() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path(), 0);
    assert!(pair(&mut server, cdir.path(), &[&right]).status.success());
    let out = run(client(cdir.path()).args(["forget", "front-desk", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["server_revoked"], true);
    assert_eq!(server.wait("revoked")["by"], "client");
    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "nothing paired is a usage error"
    );
    server.stop();
}

#[test]
fn usage_errors_exit_2() {
    let cdir = tempfile::tempdir().unwrap();
    // Without --server, pair discovers (here only 127.0.0.1): nothing found is "unreachable".
    let out = run(client(cdir.path()).arg("pair"));
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no unpaired server found"),
        "{}",
        text(&out.stderr)
    );
    let out = run(client(cdir.path()).args(["pair", "--no-broadcast", "--no-mdns", "--no-scan"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(client(cdir.path()).args(["send"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not paired"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn corrupt_client_state_is_reported() {
    let cdir = tempfile::tempdir().unwrap();
    let out = run(client(cdir.path()).arg("servers"));
    assert!(out.status.success());
    std::fs::write(cdir.path().join("servers.json"), "nonsense").unwrap();
    let out = run(client(cdir.path()).arg("servers"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("servers.json"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(cdir.path().join("servers.json")).unwrap(),
        "nonsense"
    );
}

#[test]
fn a_world_writable_state_folder_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let cdir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cdir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run(client(cdir.path()).arg("servers"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&cdir.path().display().to_string()), "{err}");
    assert!(err.contains("writable by other users"), "{err}");
    assert!(
        err.contains(&format!("chmod 700 {}", cdir.path().display())),
        "{err}"
    );
    assert!(
        !cdir.path().join("identity.key").exists(),
        "nothing is written to a folder that was refused"
    );
    std::fs::set_permissions(cdir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run(client(cdir.path()).arg("servers"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn scan_that_finds_nothing_exits_16_and_says_what_the_host_cap_left_out() {
    let cdir = tempfile::tempdir().unwrap();
    // Loopback only, and a port nothing listens on: nothing is found. 127.0.0.0/16 holds
    // 65,534 hosts; the cap sweeps 8 of them and must say so.
    let out = run(Command::new(CLIENT)
        .arg("--state-dir")
        .arg(cdir.path())
        .args([
            "scan",
            "--json",
            "--subnet",
            "127.0.0.0/16",
            "--max-hosts",
            "8",
            "--port",
            "9",
            "--no-broadcast",
            "--no-mdns",
        ]));
    assert_eq!(out.status.code(), Some(16), "{}", text(&out.stderr));
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "started", "{events:?}");
    assert_eq!(events[0]["hosts_left_out"], 65_534 - 8);
    assert_eq!(events[0]["max_hosts"], 8);
    assert_eq!(events[0]["subnets"][0]["hosts"], 8);
    assert_eq!(events.last().unwrap()["found"], 0);
    let err = text(&out.stderr);
    assert!(err.contains("65526 hosts are not swept"), "{err}");
    assert!(err.contains("no server found"), "{err}");
}

#[test]
fn servers_lists_a_revoked_pairing_as_refused_until_it_is_paired_again() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path(), 0);
    assert!(pair(&mut server, cdir.path(), &[&right]).status.success());
    let listed = run(client(cdir.path()).arg("servers"));
    assert!(text(&listed.stdout).contains("days"), "{listed:?}");

    // Revoked by its operator: the next attempt learns it, and the listing says so.
    let out = Command::new(server_bin())
        .args(["forget", "kiosk", "--state-dir"])
        .arg(sdir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(client(cdir.path()).args(["send", "ping"]));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let listed = text(&run(client(cdir.path()).arg("servers")).stdout);
    assert!(listed.contains("refused: revoked (pair again)"), "{listed}");
    assert!(!listed.contains("days"), "{listed}");
    let json = run(client(cdir.path()).args(["servers", "--json"]));
    let v: Value = serde_json::from_str(text(&json.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["refused"]["reason"], "revoked", "{v}");

    // Paired again: the mark goes with the old pairing.
    assert!(pair(&mut server, cdir.path(), &[&right]).status.success());
    let listed = text(&run(client(cdir.path()).arg("servers")).stdout);
    assert!(!listed.contains("refused"), "{listed}");
    assert!(listed.contains("days"), "{listed}");
    server.stop();
}

/// `pair` with the code given up front, by `--code` or `CSC_PAIR_CODE`: one try, no
/// questions on stdin. Only a code the operator drew ahead (`server-tui pairing code`) can be
/// right: otherwise the server draws a new code for the request.
fn pair_given(server: &Server, dir: &Path, code: Option<&str>, env: Option<&str>) -> Output {
    let mut cmd = client(dir);
    cmd.args(["pair", "--server", &server.addr()]);
    if let Some(code) = code {
        cmd.args(["--code", code]);
    }
    cmd.env_remove("CSC_PAIR_CODE");
    if let Some(env) = env {
        cmd.env("CSC_PAIR_CODE", env);
    }
    // A stdin with a line on it that must not be read.
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "000000");
    let _ = writeln!(stdin, "000000");
    child.wait_with_output().unwrap()
}

#[test]
fn a_given_code_gets_one_try_and_the_flag_beats_the_environment() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path(), 0);
    for (code, env) in [
        (Some("999-999"), None),
        (None, Some("999 999")),
        (Some("999999"), Some("12ab")),
    ] {
        let out = pair_given(&server, cdir.path(), code, env);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{code:?} {env:?}: {err}");
        assert!(err.contains("not asked again"), "{err}");
        let request = server.wait("pair_request");
        assert_ne!(request["code"], "999999", "the server drew the test's code");
        let failed = server.wait("pair_failed");
        assert_eq!(failed["attempts_left"], 4, "one try only: {failed}");
        assert_eq!(server.wait("pair_closed")["reason"], "cancelled");
    }
    assert_eq!(server.seen("pair_failed"), 0);
    server.stop();
}

#[test]
fn a_malformed_code_is_refused_before_any_connection() {
    let cdir = tempfile::tempdir().unwrap();
    // A listener that counts who connects to it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    for (code, env) in [
        (Some("12345"), None),
        (Some("12ab56"), None),
        (None, Some("1234567")),
    ] {
        let mut cmd = client(cdir.path());
        cmd.args(["pair", "--server", &addr])
            .env_remove("CSC_PAIR_CODE");
        if let Some(code) = code {
            cmd.args(["--code", code]);
        }
        if let Some(env) = env {
            cmd.env("CSC_PAIR_CODE", env);
        }
        let out = run(&mut cmd);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{code:?} {env:?}: {err}");
        assert!(err.contains("a code has"), "{err}");
    }
    assert!(
        listener.accept().is_err(),
        "a malformed code still connected to the server"
    );
}

/// `server-tui pairing code --json` against the running server: the code drawn ahead.
fn code_ahead(sdir: &Path) -> String {
    let out = Command::new(server_bin())
        .args(["pairing", "code", "--json", "--state-dir"])
        .arg(sdir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["expires_in_s"], 120, "{v}");
    v["code"].as_str().unwrap().to_string()
}

#[test]
fn a_code_drawn_ahead_pairs_from_the_command_line_and_from_the_environment() {
    let sdir = tempfile::tempdir().unwrap();
    let mut server = Server::start(sdir.path(), 0);
    // As with adb: the code is shown first, then typed on the client with the command.
    for by_flag in [true, false] {
        let cdir = tempfile::tempdir().unwrap();
        let code = code_ahead(sdir.path());
        assert_eq!(server.wait("code_ahead")["code"], code.as_str());
        let (flag, env) = if by_flag {
            (Some(code.as_str()), None)
        } else {
            (None, Some(code.as_str()))
        };
        let out = pair_given(&server, cdir.path(), flag, env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("paired with \"front-desk\""),
            "{}",
            text(&out.stdout)
        );
        // The request took the code drawn ahead.
        assert_eq!(server.wait("pair_request")["code"], code.as_str());
        server.wait("paired");
        let out = run(client(cdir.path()).args(["send", "ping"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // A code is good for one request: the next one gets a fresh code, and this one fails.
    let cdir = tempfile::tempdir().unwrap();
    let code = code_ahead(sdir.path());
    let first = pair_given(&server, cdir.path(), Some(&code), None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let other = tempfile::tempdir().unwrap();
    let second = pair_given(&server, other.path(), Some(&code), None);
    assert_eq!(second.status.code(), Some(3), "{}", text(&second.stderr));
    server.stop();
}
