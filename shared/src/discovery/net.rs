//! Which networks discovery may touch: the local IPv4 interfaces, the subnets to sweep, and
//! where broadcast probes go. An explicit subnet list is a hard scope: nothing is sent
//! outside it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Largest subnet swept per interface unless subnets are given explicitly: a /22.
pub const DEFAULT_CAP_PREFIX: u8 = 22;

/// An up, non-loopback IPv4 interface address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNet {
    /// Interface name.
    pub name: String,
    /// Its address and prefix.
    pub net: Ipv4Net,
    /// Its broadcast address.
    pub broadcast: Ipv4Addr,
}

/// The up, non-loopback IPv4 interfaces of this machine (or network namespace).
pub fn local_nets() -> Vec<LocalNet> {
    let Ok(ifaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    ifaces
        .into_iter()
        .filter(|i| !i.is_loopback() && i.is_oper_up())
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(v4) => {
                let net = Ipv4Net::new(v4.ip, v4.prefixlen).ok()?;
                Some(LocalNet {
                    name: i.name,
                    broadcast: v4.broadcast.unwrap_or(net.broadcast()),
                    net,
                })
            }
            _ => None,
        })
        .collect()
}

/// The part of `net` around its own address that a default sweep covers: the whole
/// subnet, or the /`cap` containing the address when the subnet is larger.
pub fn capped(net: Ipv4Net, cap: u8) -> Ipv4Net {
    if net.prefix_len() >= cap {
        net.trunc()
    } else {
        Ipv4Net::new(net.addr(), cap)
            .map(|n| n.trunc())
            .unwrap_or(net)
    }
}

/// Hosts of `net` to probe: all addresses except network and broadcast (for /31 and /32,
/// every address).
pub fn hosts(net: Ipv4Net) -> Vec<Ipv4Addr> {
    net.hosts().collect()
}

/// At most `max` of `net`'s host addresses, first to last, and how many it has in all; a
/// `/8` is not listed in full to sweep 4,096 of it.
pub fn hosts_at_most(net: Ipv4Net, max: usize) -> (Vec<Ipv4Addr>, u64) {
    let size = 1u64 << (32 - u32::from(net.prefix_len()));
    // As `Ipv4Net::hosts`: a /31 and a /32 have no network and broadcast address to skip.
    let total = if net.prefix_len() >= 31 {
        size
    } else {
        size - 2
    };
    (net.hosts().take(max).collect(), total)
}

/// Parse a CIDR such as `10.0.0.0/24`; a bare address means /32.
pub fn parse_subnet(text: &str) -> Result<Ipv4Net, String> {
    if let Ok(net) = text.parse::<Ipv4Net>() {
        return Ok(net.trunc());
    }
    text.parse::<Ipv4Addr>()
        .map(|ip| Ipv4Net::new(ip, 32).expect("/32 is valid"))
        .map_err(|_| format!("{text:?} is not an IPv4 subnet like 192.168.1.0/24"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_small_subnets_and_narrows_big_ones() {
        let small: Ipv4Net = "192.168.1.77/24".parse().unwrap();
        assert_eq!(capped(small, 22), "192.168.1.0/24".parse().unwrap());
        let big: Ipv4Net = "10.1.2.3/8".parse().unwrap();
        assert_eq!(capped(big, 22), "10.1.0.0/22".parse().unwrap());
        assert_eq!(hosts(capped(big, 22)).len(), 1022);
    }

    #[test]
    fn host_lists() {
        assert_eq!(hosts("10.0.0.0/24".parse().unwrap()).len(), 254);
        assert_eq!(
            hosts("127.0.0.1/32".parse().unwrap()),
            vec![Ipv4Addr::new(127, 0, 0, 1)]
        );
        assert_eq!(hosts("10.0.0.0/31".parse().unwrap()).len(), 2);
    }

    #[test]
    fn subnet_parsing() {
        assert_eq!(
            parse_subnet("10.0.0.9/24").unwrap(),
            "10.0.0.0/24".parse().unwrap()
        );
        assert_eq!(
            parse_subnet("127.0.0.5").unwrap(),
            "127.0.0.5/32".parse().unwrap()
        );
        assert!(parse_subnet("10.0.0.0/33").is_err());
        assert!(parse_subnet("fe80::1/64").is_err());
    }
}
