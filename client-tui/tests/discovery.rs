//! Discovery inside a namespace lab the test builds itself (bridge + veth): broadcast, mDNS
//! and the TCP sweep, two servers, an unrelated service on our port, a server whose address
//! changes after pairing, and a /22 sweep with servers at random addresses. Needs root and
//! iproute2; without them each test prints why and passes without running.

mod lab;

mod common;

use common::{ServerProcess as Server, server_bin};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lab::Lab;
use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

/// Lab tests run one at a time: sweeps share the kernel's neighbour table across namespaces.
static SERIAL: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// Hold the lab for one test; the guard also remembers when the last sweep ended.
fn serial() -> std::sync::MutexGuard<'static, Option<std::time::Instant>> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wait until the incomplete ARP entries of the previous sweep can be reclaimed, as a
/// person running two sweeps a few seconds apart would.
fn settle(last: &mut Option<std::time::Instant>) {
    if let Some(t) = *last {
        let ready = t + csc_shared::discovery::ARP_WINDOW;
        let now = std::time::Instant::now();
        if ready > now {
            std::thread::sleep(ready - now);
        }
    }
}

impl Server {
    /// A server process inside a lab host; stopped on drop (before the lab goes).
    fn start(lab: &Lab, host: usize, dir: &Path, name: &str, extra: &[&str]) -> Server {
        Server::spawn(lab.server_cmd(host, &server_bin(), dir, name, extra))
    }
}

fn client(lab: &Lab, host: usize, dir: &Path) -> Command {
    let mut c = lab.cmd(host, CLIENT);
    c.arg("--state-dir").arg(dir).args(["--name", "lab-client"]);
    c
}

fn ndjson(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn found(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["event"] == "found").collect()
}

fn scan(
    lab: &Lab,
    host: usize,
    dir: &Path,
    flags: &[&str],
    last: &mut Option<std::time::Instant>,
) -> Vec<Value> {
    let sweeps = !flags.contains(&"--no-scan");
    if sweeps {
        settle(last);
    }
    let out = client(lab, host, dir)
        .args(["scan", "--json"])
        .args(flags)
        .output()
        .unwrap();
    if sweeps {
        *last = Some(std::time::Instant::now());
    }
    assert!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = ndjson(&out);
    assert_eq!(events.last().unwrap()["event"], "done", "{events:?}");
    events
}

#[test]
fn found_by_broadcast() {
    let mut last = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start(&lab, 1, s.path(), "bcast", &["--no-mdns"]);
    let events = scan(&lab, 2, c.path(), &["--no-mdns", "--no-scan"], &mut last);
    let f = found(&events);
    assert_eq!(f.len(), 1, "{events:?}");
    assert_eq!(f[0]["via"], "broadcast");
    assert_eq!(f[0]["server_id"], server.id().as_str());
    assert_eq!(f[0]["name"], "bcast");
    assert_eq!(f[0]["addr"], lab.addr(1));
    assert_eq!(f[0]["port"], 47474);
}

#[test]
fn found_by_scan_with_broadcast_disabled() {
    let mut last = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start(&lab, 1, s.path(), "swept", &["--no-mdns"]);
    let events = scan(
        &lab,
        2,
        c.path(),
        &["--no-broadcast", "--no-mdns"],
        &mut last,
    );
    let f = found(&events);
    assert_eq!(f.len(), 1, "{events:?}");
    assert_eq!(f[0]["via"], "scan");
    assert_eq!(f[0]["verified"], true);
    assert_eq!(f[0]["server_id"], server.id().as_str());
    let progress: Vec<&Value> = events.iter().filter(|e| e["event"] == "progress").collect();
    assert!(!progress.is_empty());
    let last = progress.last().unwrap();
    assert_eq!(last["subnet"], "10.213.0.0/24");
    assert_eq!(last["total"], 254);
    assert_eq!(last["probed"], 254);
}

#[test]
fn found_by_mdns() {
    let mut last = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start(&lab, 1, s.path(), "multicast", &[]);
    let events = scan(
        &lab,
        2,
        c.path(),
        &["--no-broadcast", "--no-scan"],
        &mut last,
    );
    let f = found(&events);
    assert!(
        f.iter().any(|e| e["via"] == "mdns"
            && e["server_id"] == server.id().as_str()
            && e["addr"] == lab.addr(1)),
        "{events:?}"
    );
}

#[test]
fn two_servers_both_listed_and_an_unrelated_service_is_not() {
    let mut last = serial();
    let Some(lab) = Lab::up(4, "10.213.0") else {
        return;
    };
    let (s1, s2, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Server::start(&lab, 1, s1.path(), "alpha", &["--no-mdns"]);
    let b = Server::start(&lab, 2, s2.path(), "beta", &["--no-mdns"]);
    // Something else entirely listening on our port.
    let other = lab.unrelated_service(3, 47474);
    let events = scan(&lab, 4, c.path(), &["--no-mdns"], &mut last);
    assert!(
        other.accepted() > 0,
        "the sweep never reached the unrelated service"
    );
    drop(other);
    let ids: std::collections::HashSet<&str> = found(&events)
        .iter()
        .map(|e| e["server_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{events:?}");
    assert!(ids.contains(a.id().as_str()) && ids.contains(b.id().as_str()));
    assert!(
        !found(&events).iter().any(|e| e["addr"] == lab.addr(3)),
        "the unrelated service was listed: {events:?}"
    );
}

#[test]
fn a_paired_server_that_changes_address_is_found_again_without_pairing() {
    let mut last = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server = Server::start(&lab, 1, s.path(), "moving", &["--no-mdns"]);
    // Pair by discovery: the only unpaired server on the LAN.
    let mut pair = client(&lab, 2, c.path())
        .args(["pair", "--no-mdns"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Some(request) = server.try_wait("pair_request") else {
        let _ = pair.kill();
        let out = pair.wait_with_output().unwrap();
        panic!(
            "no pair request; client said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let code = request["code"].as_str().unwrap().to_string();
    writeln!(pair.stdin.take().unwrap(), "{code}").unwrap();
    let out = pair.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait("paired");

    lab.set_addr(1, "10.213.0.77/24");
    settle(&mut last);
    let out = client(&lab, 2, c.path())
        .args(["send", "--json", "ping"])
        .output()
        .unwrap();
    *last = Some(std::time::Instant::now());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // NDJSON: `started`, then the result on the last line.
    let v = last_json(&out.stdout);
    assert_eq!(v["result"], "pong");
    assert_eq!(v["addr"], "10.213.0.77:47474");
    assert_ne!(v["via"], "last");
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);
    // The new address is saved: next time it is the first one tried.
    let out = client(&lab, 2, c.path())
        .args(["send", "--json", "ping"])
        .output()
        .unwrap();
    let v = last_json(&out.stdout);
    assert_eq!(v["via"], "last");
    assert_eq!(server.seen("pair_request"), 0, "no new pairing");
}

/// The address a server leaves is soon taken by another machine. The client still has the
/// old holder's MAC cached for that address; the newcomer's announcement must be enough.
#[test]
fn a_server_on_an_address_another_server_just_left_is_found() {
    let mut last = serial();
    let Some(lab) = Lab::up(3, "10.213.0") else {
        return;
    };
    let (s1, s2, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Server::start(&lab, 1, s1.path(), "a", &["--no-mdns"]);
    let b = Server::start(&lab, 2, s2.path(), "b", &["--no-mdns"]);
    let sweep = |last: &mut _| {
        let events = scan(&lab, 3, c.path(), &["--no-broadcast", "--no-mdns"], last);
        let mut hits: Vec<(String, String)> = found(&events)
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().into(),
                    e["addr"].as_str().unwrap().into(),
                )
            })
            .collect();
        hits.sort();
        hits
    };
    let at = |name: &str, addr: &str| (name.to_string(), addr.to_string());
    assert_eq!(
        sweep(&mut last),
        vec![at("a", &lab.addr(1)), at("b", &lab.addr(2))]
    );
    // b moves away and a takes b's address while the client's cache still points at b.
    lab.set_addr(2, "10.213.0.50/24");
    lab.set_addr(1, &format!("{}/24", lab.addr(2)));
    assert_eq!(
        sweep(&mut last),
        vec![at("a", &lab.addr(2)), at("b", "10.213.0.50")]
    );
    drop((a, b));
}

#[test]
fn a_sweep_of_a_22_finds_every_server_at_random_addresses() {
    let mut last = serial();
    let Some(lab) = Lab::up_with_prefix(3, "10.214.0", 22) else {
        return;
    };
    let (s1, s2, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Server::start(&lab, 1, s1.path(), "a", &["--no-mdns"]);
    let b = Server::start(&lab, 2, s2.path(), "b", &["--no-mdns"]);
    let mut seed = std::process::id() as u64;
    let mut random_host = || {
        // xorshift: reproducible from the pid, printed on failure.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = 20 + (seed % 1000) as u32; // 10.214.0.20 .. 10.214.3.251, clear of the client
        format!("10.214.{}.{}", n / 256, n % 256)
    };
    let mut next = || loop {
        let (x, y) = (random_host(), random_host());
        if x != y {
            break (x, y);
        }
    };
    let (mut ia, mut ib) = next();
    lab.set_addr(1, &format!("{ia}/22"));
    lab.set_addr(2, &format!("{ib}/22"));
    // A freshly moved host answers ARP reliably after a moment, as after a real DHCP change;
    // later rounds get that moment from the wait between sweeps.
    std::thread::sleep(Duration::from_secs(2));
    for round in 0..20 {
        let events = scan(
            &lab,
            3,
            c.path(),
            &["--no-broadcast", "--no-mdns"],
            &mut last,
        );
        let hits: Vec<(String, String)> = found(&events)
            .iter()
            .map(|e| {
                (
                    e["server_id"].as_str().unwrap().to_string(),
                    e["addr"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            hits.contains(&(a.id(), ia.clone())),
            "round {round}: {ia} missed: {hits:?}"
        );
        assert!(
            hits.contains(&(b.id(), ib.clone())),
            "round {round}: {ib} missed: {hits:?}"
        );
        let total = events
            .iter()
            .rev()
            .find(|e| e["event"] == "progress")
            .unwrap()["total"]
            .clone();
        assert_eq!(total, 1022);
        // Move both servers for the next round while the ARP window runs out.
        (ia, ib) = next();
        lab.set_addr(1, &format!("{ia}/22"));
        lab.set_addr(2, &format!("{ib}/22"));
    }
}

/// The last line of an NDJSON output.
fn last_json(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

#[test]
fn the_agent_follows_a_server_that_changes_address() {
    let mut last = serial();
    let Some(lab) = Lab::up(2, "10.213.0") else {
        return;
    };
    let (s, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server = Server::start(&lab, 1, s.path(), "moving", &["--no-mdns"]);
    let mut pair = client(&lab, 2, c.path())
        .args(["pair", "--no-mdns"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = server.wait("pair_request")["code"]
        .as_str()
        .unwrap()
        .to_string();
    writeln!(pair.stdin.take().unwrap(), "{code}").unwrap();
    assert!(pair.wait().unwrap().success());
    server.wait("paired");

    // The agent, told to notice a silent server within 2 s.
    let mut agent = client(&lab, 2, c.path())
        .args([
            "--json",
            "--no-mdns",
            "--keepalive",
            "500ms",
            "--dead-after",
            "2s",
            "agent",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = agent.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str(&l) {
                let _ = tx.send(v);
            }
        }
    });
    let connected_at = |rx: &std::sync::mpsc::Receiver<Value>| -> String {
        loop {
            let v = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the agent's link connects");
            if v["event"] == "link" && v["state"] == "connected" {
                return v["addr"].as_str().unwrap().to_string();
            }
        }
    };
    assert_eq!(connected_at(&rx), "10.213.0.11:47474");

    lab.set_addr(1, "10.213.0.77/24");
    settle(&mut last);
    // The link notices the silence, finds the server again, and send goes through it.
    assert_eq!(connected_at(&rx), "10.213.0.77:47474");
    *last = Some(std::time::Instant::now());
    let out = client(&lab, 2, c.path())
        .args(["send", "ping"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pong\n");
    assert_eq!(server.seen("pair_request"), 0, "no new pairing");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
}
