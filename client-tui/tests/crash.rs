//! Crash safety of the client's state: `client-tui pair` is killed with SIGKILL at random
//! moments, 200 times, while it saves pairings. Its state file always loads, and a pairing
//! it reported stays saved.

mod common;

use common::{ServerProcess, server_bin};

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

#[test]
fn sigkill_during_pairing_never_corrupts_or_loses_the_client_state() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(server_bin());
    cmd.args(["--bind", "127.0.0.1", "--port", "0", "--json", "--no-mdns"])
        .args([
            "--backoff",
            "1ms",
            "--max-pending-per-addr",
            "4",
            // A client killed between its answer and the key confirmation counts as a wrong
            // answer; this test is about the client's state, not the server's budget.
            "--pairing-budget",
            "100000",
            "--state-dir",
        ])
        .arg(sdir.path());
    let mut server = ServerProcess::spawn(cmd);
    let listening = server.listening.clone();
    let addr = format!("127.0.0.1:{}", listening["port"]);
    let mut seed = std::process::id() as u64 | 1;
    let mut reported = false;
    let mut completed = 0;
    let mut refused = 0;
    for i in 0..200 {
        let mut child = Command::new(CLIENT)
            .args(["--state-dir"])
            .arg(cdir.path())
            .args([
                "--name",
                "crashy",
                "--subnet",
                "127.0.0.1/32",
                "pair",
                "--server",
                &addr,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The server may still hold the request of a client killed a moment ago and refuse
        // this one ("already pending"): no code this round.
        let code = server
            .wait_within("pair_request", Duration::from_secs(5))
            .map(|v| v["code"].as_str().unwrap().to_string());
        let Some(code) = code else {
            let _ = child.kill();
            let _ = child.wait();
            refused += 1;
            continue;
        };
        let _ = writeln!(child.stdin.as_mut().unwrap(), "{code}");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 15_000));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("paired with") {
            reported = true;
            completed += 1;
        }
        // The state always loads; once a pairing was reported, it is there.
        let list = Command::new(CLIENT)
            .args(["--state-dir"])
            .arg(cdir.path())
            .args(["servers", "--json"])
            .output()
            .unwrap();
        assert!(
            list.status.success(),
            "iteration {i}: state did not load: {}",
            String::from_utf8_lossy(&list.stderr)
        );
        if reported {
            let v: Value = serde_json::from_slice(&list.stdout)
                .unwrap_or_else(|e| panic!("iteration {i}: {e}"));
            assert_eq!(v["server_id"], listening["server_id"], "iteration {i}");
        }
    }
    server.stop();
    eprintln!(
        "200 SIGKILLs of client-tui pair survived; {completed} pairings completed before the kill, {refused} rounds refused"
    );
    assert!(refused < 20, "{refused} rounds got no code");
    assert!(
        completed > 0,
        "no iteration completed a pairing: the kill window is too short to test anything"
    );
}
