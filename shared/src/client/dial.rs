//! Opening a TLS connection to a server and classifying what went wrong.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use super::{Client, ClientError};
use crate::connection::Connection;
use crate::tls::{ServerTrust, SessionInfo};

pub(crate) type Conn = Connection<TlsStream<TcpStream>>;

impl Client {
    /// Connect to `addr` and complete the TLS handshake under `trust`.
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
        trust: ServerTrust,
    ) -> Result<(Conn, SessionInfo), ClientError> {
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
        let tcp =
            match tokio::time::timeout(self.options.connect_timeout, socket.connect(addr)).await {
                Err(_) => return Err(unreachable("timed out".into())),
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Ok(Ok(tcp)) => tcp,
            };
        let _ = tcp.set_nodelay(true);
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
}
