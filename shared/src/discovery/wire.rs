//! The UDP probe and announce datagrams.
//!
//! Both are small JSON objects. A probe is padded to a fixed size and an announce is never
//! larger than the probe that asked for it, so the server's port cannot amplify a
//! reflection attack. Parsing never panics and rejects anything odd.

use serde::{Deserialize, Serialize};

use crate::identity::PeerId;

/// Size every probe is padded to, and so the largest announce ever sent.
pub const PROBE_LEN: usize = 512;

/// A client asking "is a server here?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Always `"csc_probe"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Protocol version.
    pub v: u32,
    /// Echoed in the announce, to match replies to this probe.
    pub nonce: String,
    /// Padding, so the probe is at least as large as any announce.
    #[serde(default)]
    pub pad: String,
}

/// A server's answer to a probe. A hint only: trust comes from TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Always `"csc_announce"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Protocol version.
    pub v: u32,
    /// The server id it claims.
    pub id: PeerId,
    /// Its name.
    pub name: String,
    /// Its TCP port.
    pub port: u16,
    /// The probe's nonce.
    pub nonce: String,
}

/// A probe datagram with `nonce`, padded to [`PROBE_LEN`].
pub fn encode_probe(nonce: &str) -> Vec<u8> {
    let mut probe = Probe {
        kind: "csc_probe".into(),
        v: crate::PROTOCOL_VERSION,
        nonce: nonce.chars().take(32).collect(),
        pad: String::new(),
    };
    let bare = serde_json::to_vec(&probe).unwrap_or_default().len();
    probe.pad = ".".repeat(PROBE_LEN.saturating_sub(bare));
    serde_json::to_vec(&probe).unwrap_or_default()
}

/// Parse a probe; `None` for anything that is not one.
pub fn parse_probe(datagram: &[u8]) -> Option<Probe> {
    let p: Probe = serde_json::from_slice(datagram).ok()?;
    (p.kind == "csc_probe" && p.nonce.len() <= 32).then_some(p)
}

/// An announce no larger than `max_len` bytes, shortening the name if needed; `None` if even
/// an empty name does not fit.
pub fn encode_announce(
    id: PeerId,
    name: &str,
    port: u16,
    nonce: &str,
    max_len: usize,
) -> Option<Vec<u8>> {
    let mut name: String = name.chars().take(MAX_ANNOUNCED_NAME).collect();
    loop {
        let a = Announce {
            kind: "csc_announce".into(),
            v: crate::PROTOCOL_VERSION,
            id,
            name: name.clone(),
            port,
            nonce: nonce.to_string(),
        };
        let bytes = serde_json::to_vec(&a).ok()?;
        if bytes.len() <= max_len {
            return Some(bytes);
        }
        name.pop()?;
    }
}

/// Longest server name an announce carries, in characters (longer ones are shortened by the
/// sender and refused by the receiver).
pub const MAX_ANNOUNCED_NAME: usize = 64;

/// Parse an announce; `None` for anything that is not one. Numbers are typed (a port outside
/// 1..=65535, a negative, fractional or quoted number is refused by the decoder), and the
/// name and nonce must be no longer than any honest server sends.
pub fn parse_announce(datagram: &[u8]) -> Option<Announce> {
    let a: Announce = serde_json::from_slice(datagram).ok()?;
    (a.kind == "csc_announce"
        && a.port != 0
        && a.nonce.len() <= 32
        && a.name.chars().count() <= MAX_ANNOUNCED_NAME)
        .then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_is_fixed_size_and_round_trips() {
        let p = encode_probe("abc");
        assert_eq!(p.len(), PROBE_LEN);
        assert_eq!(parse_probe(&p).unwrap().nonce, "abc");
    }

    #[test]
    fn announce_never_exceeds_the_probe() {
        let long = "n".repeat(500);
        let a = encode_announce(PeerId([7; 32]), &long, 47474, "abc", PROBE_LEN).unwrap();
        assert!(a.len() <= PROBE_LEN);
        let parsed = parse_announce(&a).unwrap();
        assert_eq!(parsed.port, 47474);
        assert_eq!(parsed.id, PeerId([7; 32]));
        // A tiny probe gets no answer at all.
        assert!(encode_announce(PeerId([7; 32]), "x", 1, "abc", 60).is_none());
        // A short probe gets a shortened name.
        let short = encode_announce(PeerId([7; 32]), "kiosk-server", 1, "n", 160).unwrap();
        assert!(short.len() <= 160);
    }

    #[test]
    fn junk_is_not_parsed() {
        for junk in [
            &b""[..],
            b"{",
            b"null",
            br#"{"type":"csc_announce"}"#,
            &[0xff; 40],
        ] {
            assert!(parse_probe(junk).is_none());
            assert!(parse_announce(junk).is_none());
        }
        assert!(parse_probe(br#"{"type":"other","v":1,"nonce":"x"}"#).is_none());
    }

    #[test]
    fn hostile_numbers_and_lengths_in_announces_are_refused() {
        let good = encode_announce(PeerId([7; 32]), "srv", 47474, "n", PROBE_LEN).unwrap();
        let text = String::from_utf8(good).unwrap();
        assert!(parse_announce(text.as_bytes()).is_some());
        for port in [
            "0",
            "65536",
            "-1",
            "4747.5",
            "1e3",
            "\"80\"",
            "18446744073709551615",
        ] {
            let bad = text.replace("\"port\":47474", &format!("\"port\":{port}"));
            assert_ne!(bad, text);
            assert!(parse_announce(bad.as_bytes()).is_none(), "port {port}");
        }
        let bad = text.replace("\"v\":1", "\"v\":-1");
        assert!(parse_announce(bad.as_bytes()).is_none());
        let long = text.replace("\"srv\"", &format!("\"{}\"", "n".repeat(65)));
        assert!(parse_announce(long.as_bytes()).is_none());
        let nonce = text.replace(
            "\"nonce\":\"n\"",
            &format!("\"nonce\":\"{}\"", "n".repeat(33)),
        );
        assert!(parse_announce(nonce.as_bytes()).is_none());
    }
}
