//! The server follows its own address changes, and never hands a loopback address to the
//! LAN: the real `server-tui` in a host of a namespace lab (bridge + veth, built by the test;
//! see `client-tui/tests/lab`), with a plain mDNS browser and a raw UDP probe in other hosts
//! and in the server's own host. Needs root and iproute2; without them each test prints why
//! and passes without running. Nothing here reaches the machine's real interfaces.
#![cfg(target_os = "linux")]

#[path = "../../client-tui/tests/lab/mod.rs"]
mod lab;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lab::Lab;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_server-tui");

/// Lab tests run one at a time: they share the kernel's neighbour table and mDNS port.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `server-tui --json` inside a lab host; SIGTERM (then SIGKILL) on drop.
struct Server {
    child: Child,
    events: mpsc::Receiver<Value>,
    listening: Value,
}

impl Server {
    fn start(lab: &Lab, host: usize, dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = lab.cmd(host, BIN);
        cmd.args(["--json", "--name", "moving"])
            .args(extra)
            .arg("--state-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("server-tui starts");
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
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

    fn id(&self) -> String {
        self.listening["server_id"].as_str().unwrap().to_string()
    }

    /// The next event of `kind`, skipping others; panics after 20 s without one.
    fn wait(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if v["event"] == kind => return v,
                Ok(_) => {}
                Err(_) => panic!("no {kind} event from the server"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child, which has not been waited for yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ips(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("an array of addresses: {v}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Every address any mDNS record for server `id` carried, browsing from inside host `host`
/// for `listen`: a plain mdns-sd browser, so nothing the client filters is hidden.
fn mdns_addrs(lab: &Lab, host: usize, id: &str, listen: Duration) -> BTreeSet<IpAddr> {
    let id = id.to_string();
    lab.inside(host, move || {
        let daemon = mdns_sd::ServiceDaemon::new().expect("mDNS daemon");
        let rx = daemon.browse("_csc._tcp.local.").expect("browse");
        let deadline = Instant::now() + listen;
        let mut seen = BTreeSet::new();
        while let Ok(event) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let mdns_sd::ServiceEvent::ServiceResolved(info) = event
                && info.get_property_val_str("id") == Some(id.as_str())
            {
                seen.extend(info.get_addresses().iter().map(|a| a.to_ip_addr()));
            }
        }
        let _ = daemon.stop_browse("_csc._tcp.local.");
        let _ = daemon.shutdown();
        seen
    })
}

/// Browse from `host` until a record for `id` carries `want`, for at most 15 s; returns
/// every address seen meanwhile.
fn mdns_until(lab: &Lab, host: usize, id: &str, want: IpAddr) -> BTreeSet<IpAddr> {
    let mut all = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        all.extend(mdns_addrs(lab, host, id, Duration::from_secs(3)));
        if all.contains(&want) {
            break;
        }
    }
    all
}

fn no_loopback(seen: &BTreeSet<IpAddr>, from: &str) {
    assert!(
        !seen.iter().any(IpAddr::is_loopback),
        "a loopback address reached {from} over mDNS: {seen:?}"
    );
}

#[test]
fn the_mdns_record_follows_an_address_change_and_never_carries_loopback() {
    let _serial = serial();
    let Some(lab) = Lab::up(3, "10.215.0") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&lab, 1, dir.path(), &[]);
    let old: IpAddr = lab.addr(1).parse().unwrap();
    assert_eq!(ips(&server.listening["addrs"]), vec![lab.addr(1)]);

    let seen = mdns_until(&lab, 2, &server.id(), old);
    assert!(seen.contains(&old), "host 2 never saw {old}: {seen:?}");
    no_loopback(&seen, "another host");
    // Its own host hears it over eth0's multicast loop, and must not get 127.0.0.1 either.
    let local = mdns_until(&lab, 1, &server.id(), old);
    assert!(local.contains(&old), "host 1 never saw {old}: {local:?}");
    no_loopback(&local, "the server's own host");

    // A DHCP change: the old address goes, a new one in another subnet comes.
    lab.set_addr(1, "10.215.7.9/24");
    let new: IpAddr = "10.215.7.9".parse().unwrap();
    let changed = server.wait("addresses_changed");
    assert_eq!(ips(&changed["addrs"]), vec!["10.215.7.9".to_string()]);
    // Host 3 moves into the new subnet to hear it.
    lab.set_addr(3, "10.215.7.20/24");
    let seen = mdns_until(&lab, 3, &server.id(), new);
    assert!(seen.contains(&new), "host 3 never saw {new}: {seen:?}");
    assert!(
        !seen.contains(&old),
        "the old address is still advertised: {seen:?}"
    );
    no_loopback(&seen, "another host");
}

#[test]
fn a_host_with_only_loopback_advertises_nothing_until_it_gets_an_address() {
    let _serial = serial();
    let Some(lab) = Lab::up(2, "10.216.0") else {
        return;
    };
    lab.flush_addrs(1);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&lab, 1, dir.path(), &[]);
    assert_eq!(ips(&server.listening["addrs"]), Vec::<String>::new());
    // Only loopback: nothing registered, so not even the server's own host sees a record.
    let local = mdns_addrs(&lab, 1, &server.id(), Duration::from_secs(4));
    assert!(local.is_empty(), "advertised with only loopback: {local:?}");

    lab.add_addr(1, "10.216.0.11/24");
    lab.route_multicast(1);
    let changed = server.wait("addresses_changed");
    assert_eq!(ips(&changed["addrs"]), vec!["10.216.0.11".to_string()]);
    let want: IpAddr = "10.216.0.11".parse().unwrap();
    let seen = mdns_until(&lab, 2, &server.id(), want);
    assert!(seen.contains(&want), "host 2 never saw {want}: {seen:?}");
    no_loopback(&seen, "another host");
}

/// Send one probe from inside `host` to `to` and return the announce and where it came from.
fn probe(lab: &Lab, host: usize, to: SocketAddr) -> Option<(Value, SocketAddr)> {
    lab.inside(host, move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.set_broadcast(true).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let probe = csc_shared::discovery::wire::encode_probe("labprobe");
        let mut buf = [0u8; 2048];
        for _ in 0..6 {
            socket.send_to(&probe, to).unwrap();
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let v: Value = serde_json::from_slice(&buf[..n]).expect("an announce is JSON");
                return Some((v, from));
            }
        }
        None
    })
}

#[test]
fn udp_announces_carry_no_address_and_come_from_the_current_one() {
    let _serial = serial();
    let Some(lab) = Lab::up(2, "10.217.0") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&lab, 1, dir.path(), &["--no-mdns"]);
    let port = server.listening["port"].as_u64().unwrap() as u16;
    let broadcast: SocketAddr = format!("10.217.0.255:{port}").parse().unwrap();
    let (announce, from) = probe(&lab, 2, broadcast).expect("an announce");
    // The client takes the address from the datagram: nothing in it names one.
    let mut keys: Vec<&str> = announce
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["id", "name", "nonce", "port", "type", "v"],
        "{announce}"
    );
    assert_eq!(from.ip().to_string(), lab.addr(1));
    // Asked on its own loopback, it answers from loopback: a reply that stays on the machine.
    let (_, local) = probe(&lab, 1, ([127, 0, 0, 1], port).into()).expect("a local announce");
    assert!(local.ip().is_loopback());

    lab.set_addr(1, "10.217.0.99/24");
    server.wait("addresses_changed");
    let (_, from) = probe(&lab, 2, broadcast).expect("an announce after the change");
    assert_eq!(from.ip().to_string(), "10.217.0.99");
}

#[test]
fn the_full_screen_header_and_hint_follow_an_address_change() {
    let _serial = serial();
    let Some(lab) = Lab::up(1, "10.218.0") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = lab.cmd(1, BIN);
    cmd.args(["--no-mdns", "--no-color", "--name", "moving", "--state-dir"])
        .arg(dir.path());
    let mut pty = tui_kit::pty::Pty::spawn(cmd, 30, 100);
    pty.wait_text(&format!("listening on {} port 47474", lab.addr(1)));
    pty.wait_text(&format!("client-tui pair --server {})", lab.addr(1)));

    lab.set_addr(1, "10.218.0.77/24");
    pty.wait_text("listening on 10.218.0.77 port 47474");
    pty.wait_text("client-tui pair --server 10.218.0.77)");
    let screen = pty.contents();
    assert!(
        !screen.contains(&format!("listening on {} ", lab.addr(1))),
        "{screen}"
    );
    pty.quit(b"q");
}
