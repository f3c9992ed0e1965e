//! An address typed by a person: parsing `HOST[:PORT]`, resolving it, and asking the one
//! address who is there.
//!
//! Owns what every front end needs to turn text into a server; it does not search the network
//! (that is [`crate::discovery`]) and does not pair or connect.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{Client, ClientError};
use crate::discovery::{Found, Via};

/// How long asking one address may take to connect.
pub const PROBE_CONNECT: Duration = Duration::from_secs(3);

/// Resolve `HOST`, `HOST:PORT`, `IP`, `IP:PORT` or `[IPv6]:PORT`; `default_port` when none
/// is given. IPv4 answers of a name are preferred.
pub async fn resolve(spec: &str, default_port: u16) -> Result<SocketAddr, ClientError> {
    let spec = spec.trim();
    let unreachable = |reason: String| ClientError::unreachable(spec, reason);
    if spec.is_empty() {
        return Err(unreachable("no address given".into()));
    }
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = spec
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let with_port = if spec.contains(':') {
        spec.to_string()
    } else {
        format!("{spec}:{default_port}")
    };
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| unreachable(format!("cannot resolve {spec:?}: {e}")))?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| unreachable(format!("{spec:?} has no address")))
}

/// Resolve `spec` and ask that one address who it is, in TLS, as discovery's sweep does.
/// The answer is reported as a discovery result found `via`.
pub async fn probe(
    client: &Client,
    spec: &str,
    default_port: u16,
    via: Via,
) -> Result<Found, ClientError> {
    let started = Instant::now();
    let addr = resolve(spec, default_port).await?;
    let dialer = client.dialer();
    let tcp = dialer.connect_tcp(addr, PROBE_CONNECT).await?;
    let who = dialer.probe(tcp, addr).await?;
    Ok(Found {
        addr,
        server_id: who.server_id,
        name: who.name,
        via,
        verified: true,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::DialError;

    #[tokio::test]
    async fn addresses_parse_with_and_without_port() {
        let a = |s| async move { resolve(s, 47474).await };
        assert_eq!(
            a("10.0.0.5").await.unwrap(),
            "10.0.0.5:47474".parse().unwrap()
        );
        assert_eq!(
            a("10.0.0.5:80").await.unwrap(),
            "10.0.0.5:80".parse().unwrap()
        );
        assert_eq!(a(" [::1]:9 ").await.unwrap(), "[::1]:9".parse().unwrap());
        assert_eq!(a("[::1]").await.unwrap(), "[::1]:47474".parse().unwrap());
        assert_eq!(a("::1").await.unwrap(), "[::1]:47474".parse().unwrap());
        assert_eq!(a("localhost:5").await.unwrap().port(), 5);
        assert!(matches!(
            a("").await,
            Err(ClientError::Dial(DialError::Unreachable { .. }))
        ));
        // A bad port fails here, without asking any name server.
        assert!(matches!(
            a("10.0.0.5:notaport").await,
            Err(ClientError::Dial(DialError::Unreachable { .. }))
        ));
    }
}
