//! mDNS/DNS-SD: the server advertises `_csc._tcp.local.` with TXT `id`, `name` and `v`; the
//! client browses for it. Only used where the scope allows multicast (see `net`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

use super::{DiscoveryEvent, Found, Via};
use crate::identity::PeerId;

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_csc._tcp.local.";

/// A running advertisement; withdrawn when dropped.
pub struct Advertiser {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Advertiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertiser")
            .field("fullname", &self.fullname)
            .finish()
    }
}

impl Advertiser {
    /// Advertise a server listening on `bind`:`port`. Returns `Ok(None)` for a loopback bind:
    /// nothing is advertised and nothing leaves the machine. A specific address is advertised
    /// only on its own interface; an unspecified one on all, following address changes.
    pub fn start(bind: IpAddr, port: u16, id: PeerId, name: &str) -> Result<Option<Self>, String> {
        if bind.is_loopback() {
            return Ok(None);
        }
        let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
        if !bind.is_unspecified() {
            let _ = daemon.disable_interface(IfKind::All);
            daemon
                .enable_interface(IfKind::Addr(bind))
                .map_err(|e| e.to_string())?;
        }
        let host = format!("{}.local.", sanitize(&crate::host_name()));
        let instance = format!(
            "{} {}",
            name.chars().take(40).collect::<String>(),
            id.short()
        );
        let props = [
            ("id", id.to_hex()),
            ("name", name.to_string()),
            ("v", crate::PROTOCOL_VERSION.to_string()),
        ];
        let info = if bind.is_unspecified() {
            ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", port, &props[..])
                .map(|i| i.enable_addr_auto())
        } else {
            ServiceInfo::new(SERVICE_TYPE, &instance, &host, bind, port, &props[..])
        }
        .map_err(|e| e.to_string())?;
        let fullname = info.get_fullname().to_string();
        daemon.register(info).map_err(|e| e.to_string())?;
        Ok(Some(Self { daemon, fullname }))
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

fn sanitize(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "csc-server".into() } else { s }
}

/// Browse for servers until `listen` has passed.
pub(super) async fn browse(listen: Duration, started: Instant, tx: mpsc::Sender<DiscoveryEvent>) {
    let daemon = match ServiceDaemon::new() {
        Ok(d) => Browser(d),
        Err(e) => {
            tracing::warn!("mDNS unavailable: {e}");
            return;
        }
    };
    let receiver = match daemon.0.browse(SERVICE_TYPE) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("mDNS browse failed: {e}");
            return;
        }
    };
    let deadline = tokio::time::Instant::now() + listen;
    loop {
        let event = match tokio::time::timeout_at(deadline, receiver.recv_async()).await {
            Ok(Ok(e)) => e,
            _ => break,
        };
        let ServiceEvent::ServiceResolved(info) = event else {
            continue;
        };
        let Some(id) = info
            .get_property_val_str("id")
            .and_then(|t| t.parse::<PeerId>().ok())
        else {
            continue;
        };
        // A port of 0 cannot be connected to; a name is a hint and shown, so it is bounded.
        if info.get_port() == 0 {
            continue;
        }
        let name: String = info
            .get_property_val_str("name")
            .unwrap_or("")
            .chars()
            .take(super::wire::MAX_ANNOUNCED_NAME)
            .collect();
        for ip in info.get_addresses_v4() {
            let found = Found {
                addr: SocketAddr::new(IpAddr::V4(ip), info.get_port()),
                server_id: id,
                name: name.clone(),
                via: Via::Mdns,
                verified: false,
                elapsed: started.elapsed(),
            };
            if tx.send(DiscoveryEvent::Found(found)).await.is_err() {
                break;
            }
        }
    }
}

/// Stops the browsing daemon however the browse ends, including cancellation.
struct Browser(ServiceDaemon);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.stop_browse(SERVICE_TYPE);
        let _ = self.0.shutdown();
    }
}
