//! Builders for unit tests: discovery events, pairings, link events and keys made directly,
//! without a network or a server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use csc_shared::discovery::{DiscoveryEvent, Found, ScanProgress, Via};
use csc_shared::identity::PeerId;
use csc_shared::state::PairedServer;

use crate::app::{App, Challenge, Clock, LinkEvent, Msg, Options};

pub use tui_kit::testing::{NOW_UNIX, ch, ctrl, key, release};

pub fn clock_at(start: Instant, millis: u64) -> Clock {
    Clock {
        instant: start + Duration::from_millis(millis),
        unix: NOW_UNIX + millis / 1000,
    }
}

pub fn peer(n: u8) -> PeerId {
    let mut b = [n; 32];
    b[1] = 0xA5;
    PeerId(b)
}

pub fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 168, 1, last], 47474))
}

pub fn found(name: &str, n: u8, via: Via) -> Found {
    Found {
        addr: addr(n),
        server_id: peer(n),
        name: name.into(),
        via,
        verified: true,
        elapsed: Duration::from_millis(120),
    }
}

pub fn paired(name: &str, n: u8) -> PairedServer {
    PairedServer {
        server_id: peer(n),
        name: name.into(),
        addrs: vec![addr(n)],
        token: "token".into(),
        token_expires_at: NOW_UNIX + 30 * 86_400 - 3600,
        paired_at: NOW_UNIX - 86_400,
        refused: None,
    }
}

pub fn started(subnets: &[(&str, usize)]) -> DiscoveryEvent {
    DiscoveryEvent::Started {
        methods: vec![Via::Broadcast, Via::Scan],
        subnets: subnets.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        hosts_left_out: 0,
        max_hosts: 4096,
        nothing_to_search: None,
    }
}

pub fn progress(subnet: &str, probed: usize, total: usize) -> DiscoveryEvent {
    DiscoveryEvent::Progress(ScanProgress {
        subnet: subnet.into(),
        probed,
        total,
        elapsed: Duration::from_millis(1200),
    })
}

pub fn scan_msg(app: &App, event: DiscoveryEvent) -> Msg {
    Msg::Scan {
        scan: app.scan.id,
        event,
    }
}

pub fn link(link: u64, event: LinkEvent) -> Msg {
    Msg::Link { link, event }
}

pub fn challenge(name: &str, n: u8) -> LinkEvent {
    LinkEvent::Challenge(Challenge {
        server_name: name.into(),
        server_id: peer(n),
        expires_in: Duration::from_secs(120),
        attempts_left: 5,
        digits: 6,
    })
}

/// Type `text` key by key.
pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(ch(c));
    }
}

/// An app on a `w`×`h` terminal at [`NOW_UNIX`], with `paired` saved, after its first search
/// started; also the instant it started at.
pub fn app_with(w: u16, h: u16, color: bool, paired: Vec<PairedServer>) -> (App, Instant) {
    let start = Instant::now();
    let mut app = App::new(
        Options {
            name: "kiosk".into(),
            short: peer(0xC1).short(),
            color,
            discovery: true,
            manual: None,
            target: None,
        },
        clock_at(start, 0),
        (w, h),
        paired,
    );
    app.start();
    (app, start)
}

pub fn app(w: u16, h: u16, color: bool) -> (App, Instant) {
    app_with(w, h, color, Vec::new())
}
