//! Opening a TLS connection to a server and classifying what went wrong; also the
//! lightweight identity probe discovery uses to confirm a host is one of our servers.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use super::{ClientError, ClientOptions};
use crate::connection::Connection;
use crate::identity::{Identity, PeerId};
use crate::message::Message;
use crate::tls::{ServerTrust, SessionInfo};

pub(crate) type Conn = Connection<TlsStream<TcpStream>>;

/// What it takes to open connections: the client's identity and options. Cheap to clone,
/// so discovery tasks can carry one.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub(crate) identity: Arc<Identity>,
    pub(crate) options: ClientOptions,
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
    /// Open a TCP connection to `addr` (from the configured local address, if any).
    pub async fn connect_tcp(
        &self,
        addr: SocketAddr,
        limit: std::time::Duration,
    ) -> Result<TcpStream, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
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
    ) -> Result<(Conn, SessionInfo), ClientError> {
        let config = crate::tls::client_config(&self.identity, trust)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let handshake = connector.connect(crate::tls::server_name(), tcp);
        let tls = match tokio::time::timeout(self.options.step_timeout, handshake).await {
            Err(_) => {
                return Err(ClientError::NotOurServer {
                    addr: addr.to_string(),
                    reason: "TLS handshake timed out".into(),
                });
            }
            Ok(Err(e)) => {
                if let Some(m) = crate::tls::identity_mismatch(&e) {
                    return Err(ClientError::IdentityMismatch {
                        addr: addr.to_string(),
                        expected: m.expected.short(),
                        found: m.found.short(),
                    });
                }
                return Err(ClientError::NotOurServer {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(tls)) => tls,
        };
        if tls.get_ref().1.alpn_protocol() != Some(crate::tls::ALPN) {
            return Err(ClientError::NotOurServer {
                addr: addr.to_string(),
                reason: "it does not speak our protocol (ALPN)".into(),
            });
        }
        let info = crate::tls::client_session(&tls).ok_or_else(|| ClientError::NotOurServer {
            addr: addr.to_string(),
            reason: "no usable server certificate".into(),
        })?;
        Ok((Connection::new(tls, self.options.max_frame), info))
    }

    /// Connect to `addr` and complete the TLS handshake under `trust`.
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
        trust: ServerTrust,
    ) -> Result<(Conn, SessionInfo), ClientError> {
        let tcp = self.connect_tcp(addr, self.options.connect_timeout).await?;
        self.handshake(tcp, addr, trust).await
    }

    /// Ask the server on `tcp` who it is: its id comes from the TLS handshake, its name from
    /// a `hello`. Nothing is paired or remembered.
    pub async fn probe(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<ProbeResult, ClientError> {
        let (mut conn, info) = self.handshake(tcp, addr, ServerTrust::Any).await?;
        conn.send(&Message::Hello {}).await?;
        let reply = conn.expect::<Message>(self.options.step_timeout).await?;
        conn.close().await;
        match reply {
            Message::ServerInfo { server_name, .. } => Ok(ProbeResult {
                server_id: info.peer_id,
                name: crate::message::clean_name(&server_name),
            }),
            other => Err(ClientError::Protocol(format!(
                "expected server_info, got {}",
                other.kind()
            ))),
        }
    }
}
