//! mDNS/DNS-SD: the server advertises `_csc._tcp.local.` with TXT `id`, `name` and `v`; the
//! client browses for it. Only used where the scope allows multicast (see `net`).
//!
//! The advertising half ([`Advertiser`]) owns what the record says: which addresses (never a
//! loopback one; the server's engine decides which, see `server::addrs`) and under which host
//! name. It must not decide when addresses change; the engine tells it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

use super::{DiscoveryEvent, Found, Via};
use crate::identity::PeerId;

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_csc._tcp.local.";

/// Longest a withdrawal waits for the daemon to send its goodbye and stop.
const WITHDRAW_WAIT: Duration = Duration::from_secs(1);

/// Why a record could not be advertised.
#[derive(Debug, thiserror::Error)]
pub enum AdvertiseError {
    /// The mDNS daemon could not start, or refused the record.
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
}

/// A server's mDNS record, carrying exactly the addresses it is given
/// ([`Advertiser::set_addrs`]), never a loopback one. Nothing is registered (and no daemon
/// runs) while it has no address; the record is withdrawn when dropped.
///
/// The record's addresses are set by hand rather than left to mdns-sd's automatic list,
/// which includes loopback addresses and would hand `127.0.0.1` to a browser on the same
/// machine, and every host sharing a host name would merge their addresses. For the same
/// reason its host name carries the server's short id.
pub struct Advertiser {
    bind: IpAddr,
    port: u16,
    id: PeerId,
    name: String,
    live: Option<Live>,
}

/// A registered record and the daemon that answers for it.
struct Live {
    daemon: ServiceDaemon,
    fullname: String,
    addrs: Vec<IpAddr>,
    withdrawn: bool,
}

impl std::fmt::Debug for Advertiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertiser")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("addrs", &self.addrs())
            .finish()
    }
}

impl Advertiser {
    /// An advertiser for a server `id` named `name`, listening on `bind`:`port`; nothing is
    /// registered until [`Advertiser::set_addrs`] gives it an address. A specific `bind` is
    /// advertised only on its own interface.
    pub fn new(bind: IpAddr, port: u16, id: PeerId, name: &str) -> Self {
        Self {
            bind,
            port,
            id,
            name: name.to_string(),
            live: None,
        }
    }

    /// The addresses the record carries now; empty when nothing is registered.
    pub fn addrs(&self) -> &[IpAddr] {
        self.live.as_ref().map_or(&[], |l| &l.addrs)
    }

    /// Advertise exactly `addrs`, less any loopback or unspecified one. When they differ from
    /// the current ones, the old record is withdrawn (goodbye packets) and a new one is
    /// registered by a fresh daemon, which reads the interfaces as they are now. An empty
    /// list withdraws the record and registers nothing.
    pub async fn set_addrs(&mut self, addrs: &[IpAddr]) -> Result<(), AdvertiseError> {
        let mut want: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|a| !a.is_loopback() && !a.is_unspecified())
            .collect();
        want.sort();
        want.dedup();
        if want == self.addrs() {
            return Ok(());
        }
        if let Some(live) = self.live.take() {
            live.withdraw().await;
        }
        if !want.is_empty() {
            self.live = Some(self.register(want)?);
        }
        Ok(())
    }

    fn register(&self, addrs: Vec<IpAddr>) -> Result<Live, AdvertiseError> {
        let daemon = ServiceDaemon::new()?;
        // Held from here, so that every early return shuts the daemon down.
        let live = Live {
            daemon,
            fullname: String::new(),
            addrs,
            withdrawn: false,
        };
        // Not even on the machine's own loopback: what is heard there carries 127.0.0.1.
        live.daemon
            .disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        if !self.bind.is_unspecified() {
            live.daemon.disable_interface(IfKind::All)?;
            live.daemon.enable_interface(IfKind::Addr(self.bind))?;
        }
        let host = format!(
            "{}-{}.local.",
            sanitize(&crate::host_name())
                .chars()
                .take(40)
                .collect::<String>(),
            self.id.short().to_lowercase().replace('-', "")
        );
        let instance = format!(
            "{} {}",
            self.name.chars().take(40).collect::<String>(),
            self.id.short()
        );
        let props = [
            ("id", self.id.to_hex()),
            ("name", self.name.clone()),
            ("v", crate::PROTOCOL_VERSION.to_string()),
        ];
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &host,
            &live.addrs[..],
            self.port,
            &props[..],
        )?;
        let mut live = live;
        live.fullname = info.get_fullname().to_string();
        live.daemon.register(info)?;
        Ok(live)
    }
}

impl Live {
    /// Withdraw the record and stop the daemon, waiting a moment for both, so that the next
    /// daemon does not probe against this one's records.
    async fn withdraw(mut self) {
        self.withdrawn = true;
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = tokio::time::timeout(WITHDRAW_WAIT, done.recv_async()).await;
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(WITHDRAW_WAIT, done.recv_async()).await;
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.withdrawn {
            return;
        }
        if !self.fullname.is_empty() {
            let _ = self.daemon.unregister(&self.fullname);
        }
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
