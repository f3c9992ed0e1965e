//! A throw-away LAN for discovery tests: a bridge in its own network namespace and N hosts,
//! each a namespace with one veth on that bridge. Nothing reaches the machine's real
//! interfaces; everything is deleted on drop. Needs root and iproute2; without them
//! [`Lab::up`] returns `None` after printing why, and the test skips.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct Lab {
    prefix: String,
    pub hosts: usize,
    /// `a.b.c` of the /24 the hosts start on; host i gets `.(10+i)`.
    pub net: String,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("ip runs")
}

fn must(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why the lab cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("needs root to create network namespaces".into());
    }
    if Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        return Some("needs iproute2 (`ip`)".into());
    }
    None
}

impl Lab {
    /// Build a lab of `n` hosts on `net`.0/24, or explain why not.
    pub fn up(n: usize, net: &str) -> Option<Lab> {
        Self::up_with_prefix(n, net, 24)
    }

    /// Build a lab whose hosts start on `net`.(10+i)/`prefix`.
    pub fn up_with_prefix(n: usize, net: &str, prefix_len: u8) -> Option<Lab> {
        if let Some(why) = unavailable() {
            eprintln!("SKIPPED: namespace lab unavailable: {why}");
            return None;
        }
        // Short, unique names: interface names are limited to 15 bytes.
        let prefix = format!(
            "c{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            prefix,
            hosts: n,
            net: net.to_string(),
        };
        let sw = lab.switch();
        must(&["netns", "add", &sw]);
        must(&["-n", &sw, "link", "set", "lo", "up"]);
        must(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &sw, "link", "set", "br0", "up"]);
        for i in 1..=n {
            let h = lab.ns(i);
            let (v, p) = (format!("{}v{i}", lab.prefix), format!("{}p{i}", lab.prefix));
            must(&["netns", "add", &h]);
            must(&["-n", &h, "link", "set", "lo", "up"]);
            must(&["link", "add", &v, "type", "veth", "peer", "name", &p]);
            must(&["link", "set", &v, "netns", &h]);
            must(&["link", "set", &p, "netns", &sw]);
            must(&["-n", &h, "link", "set", &v, "name", "eth0"]);
            must(&[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{net}.{}/{prefix_len}", 10 + i),
                "brd",
                "+",
                "dev",
                "eth0",
            ]);
            must(&["-n", &h, "link", "set", "eth0", "up"]);
            must(&["-n", &h, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
            must(&["-n", &sw, "link", "set", &p, "master", "br0"]);
            must(&["-n", &sw, "link", "set", &p, "up"]);
        }
        lab.wait_forwarding();
        Some(lab)
    }

    /// New bridge ports pass no traffic for about a second; wait until all forward.
    fn wait_forwarding(&self) {
        for _ in 0..100 {
            let out = Command::new("bridge")
                .args(["-n", &self.switch(), "link", "show"])
                .output()
                .expect("bridge runs");
            let text = String::from_utf8_lossy(&out.stdout);
            if text.matches("state forwarding").count() >= self.hosts {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("lab bridge ports never reached forwarding state");
    }

    fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The namespace of host `i` (1-based).
    pub fn ns(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// Host `i`'s first address.
    pub fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.net, 10 + i)
    }

    /// A command that runs `program` inside host `i`.
    pub fn cmd(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(i), program]);
        c
    }

    /// Replace host `i`'s address (a DHCP change), and announce it as DHCP clients do.
    pub fn set_addr(&self, i: usize, cidr: &str) {
        let h = self.ns(i);
        must(&["-n", &h, "addr", "flush", "dev", "eth0"]);
        must(&["-n", &h, "addr", "add", cidr, "brd", "+", "dev", "eth0"]);
        must(&["-n", &h, "route", "replace", "224.0.0.0/4", "dev", "eth0"]);
        let addr = cidr
            .split('/')
            .next()
            .unwrap()
            .parse()
            .expect("an IPv4 address");
        self.announce(i, addr);
    }

    /// Send one gratuitous ARP (an RFC 5227 announcement) for `addr` from host `i`'s eth0,
    /// as DHCP clients do after taking an address. Without it, a neighbour that talked to
    /// the address's previous holder keeps sending to that machine's MAC for up to a
    /// minute, and no sweep can reach the new holder. `ip addr add` sends none.
    pub fn announce(&self, i: usize, addr: std::net::Ipv4Addr) {
        let link = ip(&["-n", &self.ns(i), "-o", "link", "show", "eth0"]);
        let text = String::from_utf8_lossy(&link.stdout).to_string();
        let ifindex: i32 = text.split(':').next().unwrap().trim().parse().unwrap();
        let mac: Vec<u8> = text
            .split("link/ether ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("eth0 has a MAC")
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        self.inside(i, move || {
            // SAFETY: plain syscalls on a descriptor owned here; buffers outlive the calls.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(fd >= 0, "AF_PACKET socket");
                let mut frame = Vec::with_capacity(42);
                frame.extend_from_slice(&[0xff; 6]);
                frame.extend_from_slice(&mac);
                frame.extend_from_slice(&[0x08, 0x06]); // ARP
                frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4 request
                frame.extend_from_slice(&mac);
                frame.extend_from_slice(&addr.octets()); // sender = target: gratuitous
                frame.extend_from_slice(&[0; 6]);
                frame.extend_from_slice(&addr.octets());
                let mut to: libc::sockaddr_ll = std::mem::zeroed();
                to.sll_family = libc::AF_PACKET as u16;
                to.sll_protocol = 0x0806u16.to_be();
                to.sll_ifindex = ifindex;
                to.sll_halen = 6;
                to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
                let sent = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const to).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                libc::close(fd);
                assert_eq!(sent, frame.len() as isize, "gratuitous ARP sent");
            }
        });
    }

    /// Run `f` on a thread that has entered host `i`'s network namespace (setns changes
    /// only the calling thread). Sockets made there stay in that namespace wherever they
    /// are used afterwards.
    pub fn inside<T: Send + 'static>(&self, i: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = std::fs::File::open(format!("/var/run/netns/{}", self.ns(i))).unwrap();
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace file this thread holds open.
            let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread inside the namespace")
    }

    /// Something that is not our server, listening on `port` on every address of host
    /// `i`: it answers each connection with a line of HTTP and closes it. Stops on drop.
    pub fn unrelated_service(&self, i: usize, port: u16) -> Unrelated {
        let listener = self.inside(i, move || {
            std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind the unrelated service")
        });
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            use std::io::Write;
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello");
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Unrelated {
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// Give host `i` another address.
    pub fn add_addr(&self, i: usize, cidr: &str) {
        must(&[
            "-n",
            &self.ns(i),
            "addr",
            "add",
            cidr,
            "brd",
            "+",
            "dev",
            "eth0",
        ]);
    }
}

/// See [`Lab::unrelated_service`].
pub struct Unrelated {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Unrelated {
    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Unrelated {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 1..=self.hosts {
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["netns", "del", &self.switch()]);
    }
}

impl Lab {
    /// `server-tui --json --name NAME [EXTRA] --state-dir DIR` inside host `i`, for
    /// `common::ServerProcess::spawn`.
    pub fn server_cmd(
        &self,
        i: usize,
        server_bin: &std::path::Path,
        dir: &std::path::Path,
        name: &str,
        extra: &[&str],
    ) -> Command {
        let mut cmd = self.cmd(i, server_bin.to_str().expect("a UTF-8 path"));
        cmd.args(["--json", "--name", name])
            .args(extra)
            .arg("--state-dir")
            .arg(dir);
        cmd
    }

    /// Take every address off host `i`'s eth0: the host is left with loopback only.
    pub fn flush_addrs(&self, i: usize) {
        must(&["-n", &self.ns(i), "addr", "flush", "dev", "eth0"]);
    }

    /// Send host `i`'s multicast out of eth0 again (after its addresses changed by hand).
    pub fn route_multicast(&self, i: usize) {
        must(&[
            "-n",
            &self.ns(i),
            "route",
            "replace",
            "224.0.0.0/4",
            "dev",
            "eth0",
        ]);
    }
}
