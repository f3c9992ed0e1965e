//! Crash safety: the real server is killed with SIGKILL at random moments while clients pair
//! and are revoked, 200 times over. After every restart the state loads, no client reported
//! as paired is lost, and no revoked client comes back. The client's state gets the same
//! treatment.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use csc_shared::client::{Client, ClientOptions};
use csc_shared::pairing::Code;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_server-tui");

struct Proc {
    child: Child,
    lines: mpsc::Receiver<Value>,
    port: u16,
}

fn start(dir: &Path) -> Proc {
    let mut child = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--json",
            "--no-mdns",
            "--backoff",
            "1ms",
            // A pairing cut by a SIGKILL after the answer counts as a wrong code; this test
            // is about the state files, not the failure budget.
            "--pairing-budget",
            "100000",
            "--state-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&l)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(10));
    let Ok(first) = first else {
        let out = child.wait_with_output().unwrap();
        panic!(
            "server did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert_eq!(first["event"], "listening", "{first}");
    Proc {
        port: first["port"].as_u64().unwrap() as u16,
        child,
        lines,
    }
}

/// Tiny deterministic PRNG (xorshift), seeded from the pid and printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn registry(dir: &Path) -> HashSet<String> {
    let out = Command::new(BIN)
        .args(["clients", "--json", "--state-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "state did not load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["client_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_pairing_and_revives_no_revocation() {
    let sdir = tempfile::tempdir().unwrap();
    let seed = std::process::id() as u64 | 1;
    let mut rng = Rng(seed);
    let mut paired: HashSet<String> = HashSet::new();
    let mut revoked: HashSet<String> = HashSet::new();
    let mut clients = Vec::new();
    for i in 0..200 {
        let mut server = start(sdir.path());
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
        // Either pair a new client or revoke a known one; the kill lands anywhere in it.
        let revoke = !clients.is_empty() && rng.next().is_multiple_of(3);
        let delay = Duration::from_micros(rng.next() % 30_000);
        let killer = {
            let pid = server.child.id();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            })
        };
        if revoke {
            let victim: String = clients.remove((rng.next() as usize) % clients.len());
            let out = tokio::task::spawn_blocking({
                let dir = sdir.path().to_path_buf();
                let v = victim.clone();
                move || {
                    Command::new(BIN)
                        .args(["forget", &v, "--state-dir"])
                        .arg(&dir)
                        .output()
                        .unwrap()
                }
            })
            .await
            .unwrap();
            // Reported revoked: must never come back. Not reported (the kill cut the answer
            // off): it may or may not have happened, so neither outcome is asserted.
            paired.remove(&victim);
            if out.status.success() {
                revoked.insert(victim.clone());
            }
        } else {
            let cdir = tempfile::tempdir().unwrap();
            let client =
                Client::open(cdir.path(), &format!("c{i}"), ClientOptions::default()).unwrap();
            let id = client.id().to_hex();
            if let Ok(mut p) = client.start_pairing(addr).await {
                // The operator's screen (stdout) shows the code.
                let code = loop {
                    match server.lines.recv_timeout(Duration::from_millis(200)) {
                        Ok(v) if v["event"] == "pair_request" => {
                            break v["code"].as_str().map(str::to_string);
                        }
                        Ok(_) => continue,
                        Err(_) => break None,
                    }
                };
                if let Some(code) = code
                    && p.submit(&Code::parse(&code).unwrap()).await.is_ok()
                {
                    // Reported paired to the client: must survive.
                    paired.insert(id.clone());
                    clients.push(id.clone());
                }
            }
            // Also count pairings the operator saw reported, even if the client missed the reply.
            while let Ok(v) = server.lines.try_recv() {
                if v["event"] == "paired" {
                    let cid = v["client_id"].as_str().unwrap().to_string();
                    paired.insert(cid.clone());
                    if !clients.contains(&cid) {
                        clients.push(cid);
                    }
                }
            }
        }
        killer.join().unwrap();
        let _ = server.child.kill();
        let _ = server.child.wait();
        let on_disk = registry(sdir.path());
        let lost: Vec<_> = paired.difference(&on_disk).collect();
        assert!(
            lost.is_empty(),
            "iteration {i} (seed {seed}): reported pairings lost: {lost:?}"
        );
        let back: Vec<_> = revoked.intersection(&on_disk).collect();
        assert!(
            back.is_empty(),
            "iteration {i} (seed {seed}): revoked clients came back: {back:?}"
        );
    }
    eprintln!(
        "200 SIGKILLs survived: {} pairings reported and kept, {} revocations reported and kept (seed {seed})",
        paired.len(),
        revoked.len()
    );
    // The loop exercised both paths.
    assert!(
        !paired.is_empty() && !revoked.is_empty(),
        "paired {} revoked {}",
        paired.len(),
        revoked.len()
    );
    // And the state still starts a server.
    let s = start(sdir.path());
    drop(s.lines);
    let mut child = s.child;
    let _ = child.kill();
    let _ = child.wait();
}
