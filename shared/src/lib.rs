//! The protocol crate of client-server-communicator: everything that is not UI.
//!
//! Layout, bottom to top:
//! - [`frame`]: u32 big-endian length + payload, with a size cap; knows nothing of messages.
//! - [`message`]: the messages (JSON objects with a `type`), [`compact`]: the binary layout of
//!   the hot ones, and [`connection`], which reads both and writes what was negotiated.
//! - [`identity`]: Ed25519 key + self-signed certificate per side; ids are SHA-256 of the SPKI.
//! - [`tls`]: TLS 1.3 configs with our ALPN, pinning and the exporter that binds pairing to a session.
//! - [`dialer`]: opening a TLS connection to a server, and the identity probe; used by both
//!   [`discovery`] and [`client`], and knowing neither.
//! - [`pairing`]: codes, SPAKE2 and key confirmation (pure crypto, no I/O).
//! - [`token`]: the session JWT, bound to the client certificate (`cnf`).
//! - [`fsio`]: file handling both sides' state and identities use (atomic writes, private
//!   permissions, locks); a leaf, so [`identity`] and [`state`] can both build on it.
//! - [`state`]: the state files themselves (what they hold, where they live).
//! - [`server`] and [`client`]: the engines the two apps drive; they report through typed events.
//! - [`agent`]: the client's links served to local programs over a Unix socket.
//!
//! Trust never comes from what a peer says, only from TLS identities, the pairing exchange and
//! the pinned server id.

#![warn(missing_docs)]

pub mod agent;
pub mod client;
pub mod compact;
pub mod connection;
pub mod dialer;
pub mod discovery;
pub mod frame;
pub mod fsio;
pub mod identity;
pub mod message;
pub mod pairing;
pub mod server;
pub mod state;
pub mod tls;
pub mod token;

/// TCP (and later UDP) port the server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 47474;

/// Protocol version, reported by the `info` task.
pub const PROTOCOL_VERSION: u32 = 1;

/// Seconds since the Unix epoch, saturating at 0 for clocks set before 1970.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This machine's host name, used as the default display name of either side.
pub fn host_name() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    if name.is_empty() {
        "unnamed".to_string()
    } else {
        name
    }
}
