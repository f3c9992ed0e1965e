//! What the server reports to its operator ([`ServerEvent`] and the reasons it carries), and
//! the bounded channel the events travel on from the engine to whoever renders them, with
//! refusals coalesced into a periodic [`ServerEvent::Summary`].
//!
//! Owns what reaches the operator and what is only counted. The network never waits for the
//! operator: when the reader is slow and the channel is full, events are dropped and counted,
//! never buffered without limit. Refusals that strangers can cause at will (rate limits, a
//! closed pairing, bad tokens) and refused runs (only paired clients can cause those, but one
//! can cause many) pass one by one only up to a burst per interval; the rest are counted by
//! reason and address, and the summary says "N failures from M addresses".

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::guard::{ClosedReason, OpenedBy, PairingMode};
use crate::identity::PeerId;
use crate::message::{PairFailure, RefusalCode, RepairReason, RunStatus};

/// What the server reports to its operator. Serialised with an `event` tag for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The listener is up.
    Listening {
        /// Bound address.
        addr: SocketAddr,
        /// Bound port.
        port: u16,
        /// Full server id.
        server_id: PeerId,
        /// Short server id.
        server_short: String,
        /// Server name.
        name: String,
        /// Where clients can reach it: the bound address, or for an unspecified one this
        /// machine's non-loopback addresses (see [`super::addrs::reachable`]).
        addrs: Vec<IpAddr>,
    },
    /// The machine's addresses changed, and with them where clients can reach the server.
    AddressesChanged {
        /// Where clients can reach it now, as in `listening`; empty when the machine has no
        /// address but loopback.
        addrs: Vec<IpAddr>,
    },
    /// A client asks to pair: show `code` to the operator.
    PairRequest {
        /// Identifies this request in later events.
        request_id: u64,
        /// Name the client gave.
        client_name: String,
        /// Where it connects from.
        client_addr: SocketAddr,
        /// Its key id.
        client_id: PeerId,
        /// Short form of its id.
        client_short: String,
        /// The one-time code.
        code: String,
        /// Seconds until the code expires.
        expires_in_s: u64,
        /// Wrong answers allowed.
        attempts_left: u32,
    },
    /// A pairing attempt or request failed.
    PairFailed {
        /// The request, if one was pending.
        request_id: Option<u64>,
        /// Name the client gave.
        client_name: String,
        /// Where it connects from.
        client_addr: SocketAddr,
        /// Its key id.
        client_id: PeerId,
        /// Why.
        reason: PairFailure,
        /// Wrong answers still allowed for the code.
        attempts_left: u32,
    },
    /// A pending request ended without pairing.
    PairClosed {
        /// The request.
        request_id: u64,
        /// Why.
        reason: PairClosedReason,
    },
    /// The operator drew a code before any request ([`crate::server::Server::code_ahead`]):
    /// the next request admitted within `expires_in_s` gets it.
    CodeAhead {
        /// The one-time code.
        code: String,
        /// Seconds it waits for a request.
        expires_in_s: u64,
    },
    /// Pairing is accepted again (a window opened, or a closure ended).
    PairingOpened {
        /// The server's pairing mode.
        mode: PairingMode,
        /// Who opened it.
        by: OpenedBy,
        /// Seconds until a window closes by itself.
        #[serde(skip_serializing_if = "Option::is_none")]
        closes_in_s: Option<u64>,
    },
    /// Pairing is refused from now on; requests get `pairing_closed`.
    PairingClosed {
        /// The server's pairing mode.
        mode: PairingMode,
        /// Why.
        reason: ClosedReason,
        /// Seconds until it reopens by itself (after a spent budget in request mode).
        #[serde(skip_serializing_if = "Option::is_none")]
        reopens_in_s: Option<u64>,
        /// Wrong answers allowed per budget window.
        budget: u32,
        /// The budget window, seconds.
        budget_window_s: u64,
    },
    /// What was held back during the last interval: refusals beyond the burst shown one by
    /// one, events dropped because the reader was behind, connections evicted.
    Summary {
        /// Length of the interval, milliseconds.
        interval_ms: u64,
        /// Refusals in the interval (shown and not).
        failures: u64,
        /// How many of them were shown one by one.
        shown: u64,
        /// Distinct addresses they came from.
        addresses: u64,
        /// Whether there were more addresses than counted.
        addresses_capped: bool,
        /// Refusals by reason (`rate_limited`, `pairing_closed`, `too_many_pending`,
        /// `already_pending`, `auth_failed`, `task_refused`, `other`).
        reasons: std::collections::BTreeMap<String, u64>,
        /// Events dropped because the reader was behind.
        dropped: u64,
        /// Unauthenticated connections closed to make room for new ones.
        evicted: u64,
    },
    /// A client paired successfully and was saved.
    Paired {
        /// The request that succeeded.
        request_id: u64,
        /// Client name.
        client_name: String,
        /// Client address.
        client_addr: SocketAddr,
        /// Client id.
        client_id: PeerId,
    },
    /// An authenticated session started.
    Connected {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client address.
        client_addr: SocketAddr,
        /// Client id.
        client_id: PeerId,
    },
    /// An authenticated session ended.
    Disconnected {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client address.
        client_addr: SocketAddr,
        /// Client id.
        client_id: PeerId,
        /// Why it ended.
        reason: DisconnectReason,
    },
    /// A token was refused.
    AuthFailed {
        /// Where it came from.
        client_addr: SocketAddr,
        /// The key that presented it.
        client_id: PeerId,
        /// Why.
        reason: RepairReason,
    },
    /// A task ran.
    Request {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client id.
        client_id: PeerId,
        /// Task name.
        task: String,
        /// Whether it succeeded.
        ok: bool,
        /// Time it took, microseconds.
        elapsed_us: u64,
    },
    /// Requests of one session not shown one by one: past a burst a second, a busy session's
    /// requests are counted and reported once a second (and when the session ends).
    Requests {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client id.
        client_id: PeerId,
        /// Requests answered in the interval.
        count: u64,
        /// Of which failed.
        failed: u64,
        /// Length of the interval, milliseconds.
        interval_ms: u64,
    },
    /// A run started (`run_started` went out): a program was spawned, or a task registered
    /// in Rust began.
    TaskStarted {
        /// The server's number for the run.
        run_id: u64,
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client id.
        client_id: PeerId,
        /// Task name.
        task: String,
        /// The client's arguments.
        args: Vec<String>,
    },
    /// A run ended (`run_exit` went out, or the session was gone).
    TaskFinished {
        /// The server's number for the run.
        run_id: u64,
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client id.
        client_id: PeerId,
        /// Task name.
        task: String,
        /// How it ended.
        status: RunStatus,
        /// From start to end, milliseconds.
        duration_ms: u64,
        /// Output bytes sent.
        bytes_out: u64,
        /// Stdin bytes received.
        bytes_in: u64,
    },
    /// A run was refused before anything ran (unknown task, not allowed, bad arguments,
    /// busy, the program would not start). Summed up like other refusals beyond the burst.
    TaskRefused {
        /// Session number.
        session_id: u64,
        /// Client name.
        client_name: String,
        /// Client id.
        client_id: PeerId,
        /// Where the client connects from.
        client_addr: SocketAddr,
        /// The task asked for.
        task: String,
        /// Why.
        code: RefusalCode,
        /// What the client was told.
        message: String,
    },
    /// The tasks were read again from the configuration file.
    TasksReloaded {
        /// The file.
        path: String,
        /// The configured tasks now in force, sorted.
        tasks: Vec<String>,
    },
    /// The operator renamed a client.
    Renamed {
        /// Client id.
        client_id: PeerId,
        /// The name it had.
        old_name: String,
        /// The name it has now.
        new_name: String,
    },
    /// A client was removed from the registry.
    Revoked {
        /// Client id.
        client_id: PeerId,
        /// Client name.
        client_name: String,
        /// Who.
        by: RevokedBy,
    },
    /// A notice was pushed to connected clients.
    NoticeSent {
        /// The text.
        text: String,
        /// How many sessions it was queued for.
        recipients: usize,
    },
    /// Something went wrong that the operator should know about.
    Warning {
        /// What.
        message: String,
    },
}

/// Events the channel holds before new ones are dropped (about 1 MiB of events).
pub const DEFAULT_CAPACITY: usize = 4096;
/// How often refusals are summed up.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);
/// Refusals passed one by one in each interval before they are only counted.
pub const BURST: u32 = 10;
/// Distinct addresses counted per interval; beyond it the summary says "at least".
const MAX_ADDRS: usize = 4096;

/// Make a channel of `capacity` events: the sender for [`super::Server::open`], and the
/// receiver for the operator's interface.
pub fn channel(capacity: usize) -> (EventSender, mpsc::Receiver<ServerEvent>) {
    let (tx, rx) = mpsc::channel(capacity.max(16));
    (
        EventSender {
            tx,
            tally: Arc::new(Mutex::new(Tally::new(Instant::now()))),
        },
        rx,
    )
}

#[derive(Debug)]
struct Tally {
    since: Instant,
    shown: u64,
    failures: u64,
    reasons: BTreeMap<&'static str, u64>,
    addrs: HashSet<IpAddr>,
    addrs_capped: bool,
    dropped: u64,
    evicted: u64,
}

impl Tally {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            shown: 0,
            failures: 0,
            reasons: BTreeMap::new(),
            addrs: HashSet::new(),
            addrs_capped: false,
            dropped: 0,
            evicted: 0,
        }
    }

    fn worth_reporting(&self) -> bool {
        self.failures > self.shown || self.dropped > 0 || self.evicted > 0
    }
}

/// The engine's end of the event stream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<ServerEvent>,
    tally: Arc<Mutex<Tally>>,
}

/// A refusal that strangers can cause as often as they like: its reason and source.
fn refusal(event: &ServerEvent) -> Option<(&'static str, IpAddr)> {
    match event {
        ServerEvent::PairFailed {
            reason,
            client_addr,
            ..
        } => match reason {
            // Wrong answers are few (the failure budget caps them) and each matters.
            PairFailure::WrongCode | PairFailure::CodeExhausted | PairFailure::CodeExpired => None,
            PairFailure::RateLimited => Some(("rate_limited", client_addr.ip())),
            PairFailure::AlreadyPending => Some(("already_pending", client_addr.ip())),
            PairFailure::TooManyPending => Some(("too_many_pending", client_addr.ip())),
            PairFailure::PairingClosed => Some(("pairing_closed", client_addr.ip())),
            PairFailure::Displaced | PairFailure::Other => Some(("other", client_addr.ip())),
        },
        ServerEvent::AuthFailed { client_addr, .. } => Some(("auth_failed", client_addr.ip())),
        // Only paired clients can cause these, but one of them can cause many.
        ServerEvent::TaskRefused { client_addr, .. } => Some(("task_refused", client_addr.ip())),
        _ => None,
    }
}

impl EventSender {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Report `event`: passed on, counted into the next summary, or (when the reader is
    /// behind) dropped and counted.
    pub fn emit(&self, event: ServerEvent) {
        if let Some((reason, ip)) = refusal(&event) {
            let mut t = self.tally();
            t.failures += 1;
            *t.reasons.entry(reason).or_default() += 1;
            if t.addrs.len() < MAX_ADDRS {
                t.addrs.insert(ip);
            } else if !t.addrs.contains(&ip) {
                t.addrs_capped = true;
            }
            if t.shown >= u64::from(BURST) {
                return;
            }
            t.shown += 1;
        }
        self.send(event);
    }

    fn send(&self, event: ServerEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.tally().dropped += 1;
                false
            }
            // Nobody listens any more: nothing to count for.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Count `n` connections evicted to make room for new ones.
    pub fn evicted(&self, n: usize) {
        if n > 0 {
            self.tally().evicted += n as u64;
        }
    }

    /// Send the summary of the interval that ends now, if anything was held back, and start
    /// the next one. While the channel is full the counts are kept for a later summary.
    pub fn flush(&self, now: Instant) {
        if self.tx.capacity() == 0 {
            return;
        }
        let summary = {
            let mut t = self.tally();
            let done = std::mem::replace(&mut *t, Tally::new(now));
            if !done.worth_reporting() {
                return;
            }
            ServerEvent::Summary {
                interval_ms: now.saturating_duration_since(done.since).as_millis() as u64,
                failures: done.failures,
                shown: done.shown,
                addresses: done.addrs.len() as u64,
                addresses_capped: done.addrs_capped,
                reasons: done
                    .reasons
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                dropped: done.dropped,
                evicted: done.evicted,
            }
        };
        self.send(summary);
    }
}

/// How a pending pairing request ended without pairing (`pair_closed.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairClosedReason {
    /// Its code's lifetime ran out.
    Expired,
    /// Its code took the last wrong answer it was allowed.
    Exhausted,
    /// Its connection ended: the client left, broke the protocol, or was evicted.
    Cancelled,
    /// Another request took its place in a full pending table.
    Displaced,
    /// Pairing closed while it waited.
    PairingClosed,
}

impl PairClosedReason {
    /// A few words for people.
    pub fn describe(self) -> &'static str {
        match self {
            PairClosedReason::Expired => "the code expired",
            PairClosedReason::Exhausted => "too many wrong codes",
            PairClosedReason::Cancelled => "the client left",
            PairClosedReason::Displaced => "displaced by another request",
            PairClosedReason::PairingClosed => "pairing closed",
        }
    }
}

/// Why an authenticated session ended (`disconnected.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The client closed the connection.
    ClosedByClient,
    /// No message arrived within the idle timeout.
    Idle,
    /// The client was revoked (by the operator, or by its own `unpair` elsewhere).
    Revoked,
    /// The server is shutting down.
    ShuttingDown,
    /// A write did not complete within the write timeout: the client stopped reading.
    StoppedReading,
    /// A write failed.
    WriteFailed,
    /// The client unpaired itself.
    Unpaired,
    /// The client asked to unpair, and saving that failed.
    UnpairFailed,
    /// The client sent a message that is not valid in a session.
    UnexpectedMessage,
    /// The client sent a frame that holds no valid message.
    BadMessage,
    /// The client announced a frame over the size limit.
    FrameTooLarge,
    /// Reading from the connection failed.
    ReadFailed,
}

impl DisconnectReason {
    /// A few words for people.
    pub fn describe(self) -> &'static str {
        match self {
            DisconnectReason::ClosedByClient => "closed by client",
            DisconnectReason::Idle => "idle (no message within the idle timeout)",
            DisconnectReason::Revoked => "revoked",
            DisconnectReason::ShuttingDown => "server shutting down",
            DisconnectReason::StoppedReading => "client stopped reading",
            DisconnectReason::WriteFailed => "write failed",
            DisconnectReason::Unpaired => "unpaired by client",
            DisconnectReason::UnpairFailed => "unpairing could not be saved",
            DisconnectReason::UnexpectedMessage => "unexpected message",
            DisconnectReason::BadMessage => "malformed message",
            DisconnectReason::FrameTooLarge => "frame too large",
            DisconnectReason::ReadFailed => "read failed",
        }
    }
}

/// Who removed a client from the registry (`revoked.by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedBy {
    /// The server's operator (`x` in the interface, `server-tui forget`, the control socket).
    Operator,
    /// The client itself, with `unpair`.
    Client,
}

impl RevokedBy {
    /// What the client's other open sessions are told.
    pub fn notice(self) -> &'static str {
        match self {
            RevokedBy::Operator => "this client was revoked by the server's operator",
            RevokedBy::Client => "this client was unpaired from another session",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PeerId;
    use std::net::SocketAddr;

    fn refused(n: u8) -> ServerEvent {
        ServerEvent::PairFailed {
            request_id: None,
            client_name: "x".into(),
            client_addr: SocketAddr::from(([10, 0, 0, n], 1000)),
            client_id: PeerId([n; 32]),
            reason: PairFailure::PairingClosed,
            attempts_left: 0,
        }
    }

    fn warning() -> ServerEvent {
        ServerEvent::Warning {
            message: "w".into(),
        }
    }

    #[test]
    fn reasons_are_serialised_as_the_snake_case_codes_scripts_read() {
        let code = |v: serde_json::Value| v.as_str().unwrap().to_string();
        let closed = [
            (PairClosedReason::Expired, "expired"),
            (PairClosedReason::Exhausted, "exhausted"),
            (PairClosedReason::Cancelled, "cancelled"),
            (PairClosedReason::Displaced, "displaced"),
            (PairClosedReason::PairingClosed, "pairing_closed"),
        ];
        for (r, want) in closed {
            assert_eq!(code(serde_json::to_value(r).unwrap()), want);
        }
        for (r, want) in [
            (RevokedBy::Operator, "operator"),
            (RevokedBy::Client, "client"),
        ] {
            assert_eq!(code(serde_json::to_value(r).unwrap()), want);
        }
        let event = ServerEvent::Disconnected {
            session_id: 3,
            client_name: "c".into(),
            client_addr: SocketAddr::from(([10, 0, 0, 1], 9)),
            client_id: PeerId([1; 32]),
            reason: DisconnectReason::StoppedReading,
        };
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["event"], "disconnected");
        assert_eq!(v["reason"], "stopped_reading");
        let moved = ServerEvent::AddressesChanged {
            addrs: vec!["10.0.0.7".parse().unwrap()],
        };
        assert_eq!(
            serde_json::to_value(&moved).unwrap(),
            serde_json::json!({"event": "addresses_changed", "addrs": ["10.0.0.7"]})
        );
    }

    #[test]
    fn refusals_beyond_the_burst_become_one_summary() {
        let (tx, mut rx) = channel(1000);
        let t = Instant::now();
        for i in 0..500u32 {
            tx.emit(refused((i % 50) as u8));
        }
        tx.emit(warning());
        tx.flush(t + SUMMARY_INTERVAL);
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push(e);
        }
        assert_eq!(
            got.len(),
            BURST as usize + 2,
            "burst, the warning, the summary"
        );
        match got.last().unwrap() {
            ServerEvent::Summary {
                failures,
                shown,
                addresses,
                reasons,
                ..
            } => {
                assert_eq!(*failures, 500);
                assert_eq!(*shown, u64::from(BURST));
                assert_eq!(*addresses, 50);
                assert_eq!(reasons.get("pairing_closed"), Some(&500));
            }
            other => panic!("expected a summary, got {other:?}"),
        }
        // The next interval starts afresh: the burst passes again, and an interval with
        // nothing held back sends no summary.
        tx.emit(refused(1));
        tx.flush(t + 2 * SUMMARY_INTERVAL);
        assert!(matches!(rx.try_recv(), Ok(ServerEvent::PairFailed { .. })));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_reader_that_stops_costs_a_bounded_queue_and_a_count() {
        let (tx, mut rx) = channel(16);
        let t = Instant::now();
        for _ in 0..100_000 {
            tx.emit(warning());
        }
        // The summary cannot get in while the channel is full; it is kept.
        tx.flush(t + SUMMARY_INTERVAL);
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 16);
        tx.flush(t + 2 * SUMMARY_INTERVAL);
        match rx.try_recv() {
            Ok(ServerEvent::Summary { dropped, .. }) => assert_eq!(dropped, 100_000 - 16),
            other => panic!("expected a summary, got {other:?}"),
        }
    }

    #[test]
    fn distinct_addresses_are_counted_up_to_a_cap() {
        let (tx, mut rx) = channel(100);
        for i in 0..(MAX_ADDRS as u32 + 100) {
            tx.emit(ServerEvent::AuthFailed {
                client_addr: SocketAddr::from((i.to_be_bytes(), 1)),
                client_id: PeerId([0; 32]),
                reason: crate::message::RepairReason::Invalid,
            });
        }
        tx.flush(Instant::now());
        let summary = std::iter::from_fn(|| rx.try_recv().ok()).last();
        match summary {
            Some(ServerEvent::Summary {
                addresses,
                addresses_capped,
                ..
            }) => {
                assert_eq!(addresses, MAX_ADDRS as u64);
                assert!(addresses_capped);
            }
            other => panic!("expected a summary, got {other:?}"),
        }
    }
}
