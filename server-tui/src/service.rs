//! What the server tells a service manager about itself, over systemd's notification socket
//! (`$NOTIFY_SOCKET`, `Type=notify`): ready once it listens, and stopping when it ends. With no
//! service manager listening, each call does nothing.

use std::net::SocketAddr;

use sd_notify::NotifyState;

/// The server listens on `bound`, answers discovery and serves its control socket.
pub fn ready(bound: SocketAddr) {
    let status = format!("listening on {bound}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// `shutdown`, saying STOPPING=1 as soon as it fires: the server is shutting down from then
/// on, while its sessions close.
pub async fn stopping_on(shutdown: impl std::future::Future) {
    shutdown.await;
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    // Left in the environment for the later `stopping`; task programs get a cleared one.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}
