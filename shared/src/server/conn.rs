//! One connection from accept to close: the TLS handshake and the first message, which
//! hands the connection to pairing ([`super::pair`]), token authentication ([`super::auth`])
//! or discovery's `hello`, and then to the session ([`super::session`]).
//!
//! Owns what every connection has before anyone trusts it: the handshake's limits, the
//! first-message timeout, eviction while unauthenticated, and answering a broken read.
//! Shared limits live in the guard, persistence in the registry.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::server::TlsStream;

use super::{ConnSlot, Server, ServerEvent, Shared};
use crate::connection::{Connection, ConnectionError};
use crate::frame::FrameError;
use crate::message::{ErrorCode, Message};
use crate::pairing::Binding;
use crate::tls::SessionInfo;

/// A connection after its TLS handshake.
pub(super) type Conn = Connection<TlsStream<TcpStream>>;

/// What every stage of one connection knows: the server, the peer's address and what its
/// TLS session proved.
pub(super) struct ConnCtx {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub info: SessionInfo,
}

impl ConnCtx {
    /// What a pairing code on this connection is bound to.
    pub fn binding(&self) -> Binding {
        Binding {
            exporter: self.info.exporter,
            client_id: self.info.peer_id,
            server_id: self.shared.identity.id(),
            client_cert_hash: self.info.peer_cert_hash,
            server_cert_hash: self.shared.identity.cert_hash(),
        }
    }

    /// Log and report something the operator should know about.
    pub fn warn(&self, message: String) {
        tracing::error!("{message}");
        self.shared.emit(ServerEvent::Warning { message });
    }
}

pub(super) async fn handle(
    server: Server,
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut slot: ConnSlot,
    evicted: oneshot::Receiver<()>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    // Until it authenticates, the connection may be evicted to make room for a newer one.
    let opened = tokio::select! {
        opened = open(&shared, tcp, peer, &mut shutdown) => opened,
        Ok(()) = evicted => {
            tracing::debug!(%peer, "unauthenticated connection evicted to make room");
            None
        }
    };
    let Some((mut conn, ctx, client_name, pairing_id)) = opened else {
        return;
    };
    if !slot.authenticate() {
        // Evicted between its last message and now.
        return conn.close().await;
    }
    super::session::run(&ctx, &server, conn, client_name, pairing_id, shutdown).await;
}

type Opened = (Conn, ConnCtx, String, String);

/// TLS handshake, then pairing or token authentication: the part of a connection that is
/// not yet trusted. Returns the session's connection, or `None` when it ended.
async fn open(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: &mut tokio::sync::broadcast::Receiver<()>,
) -> Option<Opened> {
    let accept = tokio::time::timeout(shared.config.handshake_timeout, shared.acceptor.accept(tcp));
    let tls = tokio::select! {
        r = accept => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        },
        _ = shutdown.recv() => return None,
    };
    let Some(encoding) = crate::tls::encoding(tls.get_ref().1.alpn_protocol()) else {
        tracing::debug!(%peer, "client did not negotiate our ALPN");
        return None;
    };
    let Some(info) = crate::tls::server_session(&tls) else {
        tracing::debug!(%peer, "no usable client certificate");
        return None;
    };
    let mut conn = Connection::new(tls, shared.config.max_frame);
    conn.set_encoding(encoding);
    let ctx = ConnCtx {
        shared: shared.clone(),
        peer,
        info,
    };
    let first = tokio::select! {
        r = conn.expect::<Message>(shared.config.step_timeout) => r,
        _ = shutdown.recv() => return None,
    };
    let first = match first {
        Ok(m) => m,
        Err(e) => {
            fail_read(&mut conn, e).await;
            return None;
        }
    };
    let who = match first {
        Message::PairRequest { client_name } => {
            tokio::select! {
                r = super::pair::run(&ctx, &mut conn, client_name) => r,
                _ = shutdown.recv() => None,
            }
        }
        Message::Auth { token } => super::auth::authenticate(&ctx, &mut conn, &token).await,
        Message::Hello {} => {
            let _ = conn
                .send(&Message::ServerInfo {
                    server_name: shared.config.name.clone(),
                    protocol: crate::PROTOCOL_VERSION,
                })
                .await;
            None
        }
        other => {
            let _ = conn
                .send(&Message::error(
                    ErrorCode::UnexpectedMessage,
                    format!("expected pair_request, auth or hello, got {}", other.kind()),
                ))
                .await;
            None
        }
    };
    match who {
        Some((name, pairing_id)) => Some((conn, ctx, name, pairing_id)),
        None => {
            conn.close().await;
            None
        }
    }
}

/// Answer a failed read with an error message where the peer can still hear one.
pub(super) async fn fail_read(conn: &mut Conn, e: ConnectionError) {
    let reply = match &e {
        ConnectionError::Frame(FrameError::TooLarge { .. }) => {
            Some(Message::error(ErrorCode::FrameTooLarge, e.to_string()))
        }
        ConnectionError::Malformed(_) => Some(Message::error(ErrorCode::BadMessage, e.to_string())),
        ConnectionError::Timeout => Some(Message::error(ErrorCode::Timeout, e.to_string())),
        _ => None,
    };
    if let Some(m) = reply {
        let _ = conn.send(&m).await;
    }
    conn.close().await;
}
