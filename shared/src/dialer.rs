//! Opening a TLS connection to a server and classifying what went wrong; also the
//! lightweight identity probe discovery uses to confirm a host is one of our servers.
//!
//! A leaf that both the client engine and discovery build on: it knows connections and TLS
//! trust, not pairing, sessions or searching.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::connection::{Connection, ConnectionError};
use crate::identity::{Identity, PeerId};
use crate::message::Message;
use crate::tls::{ServerTrust, SessionInfo};

/// A client's message connection to a server.
pub type Conn = Connection<TlsStream<TcpStream>>;

/// How connections are opened.
#[derive(Debug, Clone)]
pub struct DialOptions {
    /// Time allowed for the TCP connect.
    pub connect_timeout: Duration,
    /// Time allowed for the TLS handshake and each reply.
    pub step_timeout: Duration,
    /// Largest frame accepted from the server.
    pub max_frame: usize,
    /// Local address to connect from.
    pub local_ip: Option<IpAddr>,
    /// Offer the compact encoding (`csc/2`) besides JSON (`csc/1`).
    pub compact: bool,
}

/// Why a connection could not be opened, or a probe not answered.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Nothing answered.
    #[error("server unreachable at {addr}: {reason}")]
    Unreachable {
        /// Where we tried.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// Something answered but did not speak our protocol.
    #[error("{addr} is not a client-server-communicator server: {reason}")]
    NotOurServer {
        /// Where.
        addr: String,
        /// What went wrong in the handshake.
        reason: String,
    },
    /// A different key answered than the one required.
    #[error(
        "the server at {addr} presented identity {found}, but this client is paired with {expected}; refusing to connect"
    )]
    IdentityMismatch {
        /// Where.
        addr: String,
        /// Short id required.
        expected: String,
        /// Short id that answered.
        found: String,
    },
    /// The server answered a probe with something else than `server_info`.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading or writing messages failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// TLS could not be configured.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// What it takes to open connections: an identity and options. Cheap to clone, so discovery
/// tasks can carry one.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub(crate) identity: Arc<Identity>,
    pub(crate) options: DialOptions,
}

/// A host that proved, in a TLS handshake with our ALPN, to be one of our servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The id of the key it presented.
    pub server_id: PeerId,
    /// The name it reports.
    pub name: String,
}

impl Dialer {
    /// A dialer for `identity` with `options`.
    pub fn new(identity: Arc<Identity>, options: DialOptions) -> Self {
        Self { identity, options }
    }

    /// The identity it presents.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The same identity and options, connecting from `ip`.
    pub fn from_local(&self, ip: IpAddr) -> Self {
        let mut d = self.clone();
        d.options.local_ip = Some(ip);
        d
    }

    /// Open a TCP connection to `addr` (from the configured local address, if any).
    pub async fn connect_tcp(
        &self,
        addr: SocketAddr,
        limit: std::time::Duration,
    ) -> Result<TcpStream, DialError> {
        let unreachable = |reason: String| DialError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| unreachable(e.to_string()))?;
        if let Some(ip) = self.options.local_ip {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| unreachable(format!("cannot bind {ip}: {e}")))?;
        }
        let tcp = match tokio::time::timeout(limit, socket.connect(addr)).await {
            Err(_) => return Err(unreachable("timed out".into())),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// Complete the TLS handshake on `tcp` under `trust`.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        trust: ServerTrust,
    ) -> Result<(Conn, SessionInfo), DialError> {
        let config =
            crate::tls::client_config_offering(&self.identity, trust, self.options.compact)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let handshake = connector.connect(crate::tls::server_name(), tcp);
        let tls = match tokio::time::timeout(self.options.step_timeout, handshake).await {
            Err(_) => {
                return Err(DialError::NotOurServer {
                    addr: addr.to_string(),
                    reason: "TLS handshake timed out".into(),
                });
            }
            Ok(Err(e)) => {
                if let Some(m) = crate::tls::identity_mismatch(&e) {
                    return Err(DialError::IdentityMismatch {
                        addr: addr.to_string(),
                        expected: m.expected.short(),
                        found: m.found.short(),
                    });
                }
                return Err(DialError::NotOurServer {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(tls)) => tls,
        };
        let Some(encoding) = crate::tls::encoding(tls.get_ref().1.alpn_protocol()) else {
            return Err(DialError::NotOurServer {
                addr: addr.to_string(),
                reason: "it does not speak our protocol (ALPN)".into(),
            });
        };
        let info = crate::tls::client_session(&tls).ok_or_else(|| DialError::NotOurServer {
            addr: addr.to_string(),
            reason: "no usable server certificate".into(),
        })?;
        let mut conn = Connection::new(tls, self.options.max_frame);
        conn.set_encoding(encoding);
        Ok((conn, info))
    }

    /// Connect to `addr` and complete the TLS handshake under `trust`.
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
        trust: ServerTrust,
    ) -> Result<(Conn, SessionInfo), DialError> {
        let tcp = self.connect_tcp(addr, self.options.connect_timeout).await?;
        self.handshake(tcp, addr, trust).await
    }

    /// Ask the server on `tcp` who it is: its id comes from the TLS handshake, its name from
    /// a `hello`. Nothing is paired or remembered.
    pub async fn probe(&self, tcp: TcpStream, addr: SocketAddr) -> Result<ProbeResult, DialError> {
        let (mut conn, info) = self.handshake(tcp, addr, ServerTrust::Any).await?;
        conn.send(&Message::Hello {}).await?;
        let reply = conn.expect::<Message>(self.options.step_timeout).await?;
        conn.close().await;
        match reply {
            Message::ServerInfo { server_name, .. } => Ok(ProbeResult {
                server_id: info.peer_id,
                name: crate::message::clean_name(&server_name),
            }),
            other => Err(DialError::Protocol(format!(
                "expected server_info, got {}",
                other.kind()
            ))),
        }
    }
}
