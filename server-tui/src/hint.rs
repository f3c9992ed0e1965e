//! How a client pairs with this server: the command to type on the client, worked out from
//! the address the server listens on and the addresses it is reachable at. The full-screen
//! banner and the headless start-up line both say it, so they cannot disagree.

use std::net::{IpAddr, SocketAddr};

/// The command a client types to pair, and where it has to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairHint {
    /// Where the client must run: `this machine` or `the same network`.
    pub place: &'static str,
    /// The command that works from there.
    pub command: String,
    /// The same with the address spelled out, for a network where discovery is filtered.
    pub alternative: Option<String>,
}

impl PairHint {
    /// The hint for a server listening on `listening`, reachable at `reachable` (the
    /// interface addresses the engine reports, loopback left out).
    pub fn new(listening: SocketAddr, reachable: &[IpAddr]) -> Self {
        let port = listening.port();
        let ip = listening.ip();
        // A loopback bind, or a wildcard bind on a machine with no other address: only a
        // client on this machine can reach it, and discovery never searches loopback
        // unless told to, so the address has to be given.
        let only_here = ip.is_loopback() || (ip.is_unspecified() && reachable.is_empty());
        if only_here {
            let here = if ip.is_loopback() {
                ip
            } else {
                IpAddr::from([127, 0, 0, 1])
            };
            return Self {
                place: "this machine",
                command: format!("client-tui pair --server {}", host_port(here, port)),
                alternative: None,
            };
        }
        let command = if port == csc_shared::DEFAULT_PORT {
            "client-tui pair".to_string()
        } else {
            format!("client-tui pair --port {port}")
        };
        let spelled = if ip.is_unspecified() {
            reachable.first().copied()
        } else {
            Some(ip)
        };
        Self {
            place: "the same network",
            command,
            alternative: spelled
                .map(|ip| format!("client-tui pair --server {}", host_port(ip, port))),
        }
    }
}

/// A six-digit code as `123 456`, for reading aloud and typing.
pub fn grouped(code: &str) -> String {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        format!("{} {}", &code[..3], &code[3..])
    } else {
        code.to_string()
    }
}

/// `ip`, with `:port` only when the port is not the default one (IPv6 in brackets then).
pub fn host_port(ip: IpAddr, port: u16) -> String {
    let port = (port != csc_shared::DEFAULT_PORT).then(|| port.to_string());
    match (ip, port) {
        (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
        (ip, Some(p)) => format!("{ip}:{p}"),
        (ip, None) => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_loopback_bind_names_the_loopback_address() {
        let hint = PairHint::new(addr("127.0.0.1:47474"), &["10.0.0.5".parse().unwrap()]);
        assert_eq!(hint.command, "client-tui pair --server 127.0.0.1");
        assert_eq!(hint.place, "this machine");
        assert_eq!(hint.alternative, None);
        let other_port = PairHint::new(addr("127.0.0.1:7000"), &[]);
        assert_eq!(
            other_port.command,
            "client-tui pair --server 127.0.0.1:7000"
        );
    }

    #[test]
    fn a_wildcard_bind_relies_on_discovery_and_offers_the_address() {
        let hint = PairHint::new(addr("0.0.0.0:47474"), &["10.0.0.5".parse().unwrap()]);
        assert_eq!(hint.command, "client-tui pair");
        assert_eq!(hint.place, "the same network");
        assert_eq!(
            hint.alternative.as_deref(),
            Some("client-tui pair --server 10.0.0.5")
        );
        let other_port = PairHint::new(addr("0.0.0.0:7000"), &["10.0.0.5".parse().unwrap()]);
        assert_eq!(other_port.command, "client-tui pair --port 7000");
        assert_eq!(
            other_port.alternative.as_deref(),
            Some("client-tui pair --server 10.0.0.5:7000")
        );
    }

    #[test]
    fn a_wildcard_bind_with_no_address_but_loopback_is_reached_on_loopback() {
        let hint = PairHint::new(addr("0.0.0.0:47474"), &[]);
        assert_eq!(hint.command, "client-tui pair --server 127.0.0.1");
        assert_eq!(hint.place, "this machine");
    }

    #[test]
    fn a_bind_to_one_lan_address_names_that_address() {
        let hint = PairHint::new(addr("10.0.0.9:47474"), &["10.0.0.5".parse().unwrap()]);
        assert_eq!(hint.command, "client-tui pair");
        assert_eq!(
            hint.alternative.as_deref(),
            Some("client-tui pair --server 10.0.0.9")
        );
    }
}
