//! Pairing and sessions as the app sees them: starting them, what their tasks report, the
//! reconnection timer, and the console entries they leave. Part of `App::update`.

use std::net::SocketAddr;
use std::time::Duration;

use csc_shared::discovery::{Found, Via};
use csc_shared::identity::PeerId;
use csc_shared::message::OutputStream;
use csc_shared::message::{PairFailure, RepairReason};
use csc_shared::state::PairedServer;
use serde_json::Value;
use tui_input::Input;

use super::*;

impl App {
    pub(super) fn new_link(&mut self) -> u64 {
        self.next_link += 1;
        self.next_link
    }

    pub(super) fn begin_pairing(&mut self, host: &Found) -> Vec<Action> {
        self.begin_pairing_at(
            host.addr,
            Some(host.via),
            host.name.clone(),
            Some(host.server_id),
        )
    }

    pub(super) fn begin_pairing_at(
        &mut self,
        addr: SocketAddr,
        via: Option<Via>,
        server_name: String,
        server_id: Option<PeerId>,
    ) -> Vec<Action> {
        let link = self.new_link();
        self.conn = None;
        self.pairing = Some(PairState {
            link,
            addr,
            via,
            server_name,
            server_id,
            phase: PairPhase::Requesting,
            input: Input::default(),
            digits: csc_shared::pairing::CODE_DIGITS as u8,
            attempts_left: 0,
            expires_at: None,
            retry_at: None,
            error: None,
        });
        self.screen = Screen::Pair;
        self.status = None;
        vec![Action::Pair { link, addr }]
    }

    pub(super) fn connect(
        &mut self,
        server: PairedServer,
        addr: Option<SocketAddr>,
        via: Option<Via>,
    ) -> Vec<Action> {
        let link = self.new_link();
        self.pairing = None;
        let width = crate::ui::console_width(self).unwrap_or(1);
        let mut conn = ConnState::new(link, server.clone(), addr, via, width);
        let target = addr
            .map(|a| format!(" at {a}"))
            .unwrap_or_else(|| " (saved addresses, then a search)".into());
        push_entry(
            &mut conn,
            EntryKind::Info,
            format!("connecting to {}{target}…", server.name),
            None,
            self.clock.unix,
        );
        self.conn = Some(conn);
        self.screen = Screen::Console;
        self.status = None;
        vec![Action::Connect {
            link,
            server,
            addr,
            via,
        }]
    }

    pub(super) fn on_tick(&mut self, clock: Clock) -> Vec<Action> {
        self.clock = clock;
        if let Some(pair) = self.pairing.as_mut()
            && pair.phase == PairPhase::Entering
            && pair.expires_at.is_some_and(|t| clock.instant >= t)
        {
            // The server only says so when answered; the countdown already knows.
            pair.phase = PairPhase::Expired;
            pair.error = Some(Rejection::Expired.text());
        }
        // Reconnecting is the link's job (`csc_shared::client::Link`); the console only
        // counts down to the attempt it announced.
        Vec::new()
    }

    pub(super) fn on_link(&mut self, link: u64, event: LinkEvent) -> Vec<Action> {
        if let Some(pair) = self.pairing.as_mut()
            && pair.link == link
        {
            return self.on_pairing_event(event);
        }
        if self.conn.as_ref().is_some_and(|c| c.link == link) {
            return self.on_session_event(event);
        }
        Vec::new()
    }

    pub(super) fn on_pairing_event(&mut self, event: LinkEvent) -> Vec<Action> {
        let now = self.clock.instant;
        let Some(pair) = self.pairing.as_mut() else {
            return Vec::new();
        };
        match event {
            LinkEvent::Challenge(ch) => {
                pair.server_name = ch.server_name;
                pair.server_id = Some(ch.server_id);
                pair.attempts_left = ch.attempts_left;
                pair.digits = ch.digits.max(1);
                // The engine bounds the lifetime; a sum that still overflows counts as expired.
                pair.expires_at = Some(now.checked_add(ch.expires_in).unwrap_or(now));
                pair.phase = PairPhase::Entering;
                pair.error = None;
                pair.retry_at = None;
                Vec::new()
            }
            LinkEvent::Rejected { why, ended } => {
                pair.input.reset();
                pair.error = Some(why.text());
                pair.retry_at = match &why {
                    Rejection::WrongCode {
                        retry_after: Some(w),
                        ..
                    }
                    | Rejection::Refused {
                        retry_after: Some(w),
                        ..
                    } => now.checked_add(*w),
                    _ => None,
                };
                if let Rejection::WrongCode { attempts_left, .. } = why {
                    pair.attempts_left = attempts_left;
                }
                // A refused request (rather than a refused attempt) leaves no code to type.
                let requesting = pair.phase == PairPhase::Requesting;
                pair.phase = if ended {
                    PairPhase::Failed
                } else {
                    match why {
                        Rejection::Expired | Rejection::Exhausted => {
                            pair.attempts_left = 0;
                            PairPhase::Expired
                        }
                        // Only a rate-limited attempt keeps the code: anything else the
                        // server refuses (closed, displaced, busy) ends it; `n` asks again.
                        Rejection::Refused { reason, .. }
                            if requesting || reason != PairFailure::RateLimited =>
                        {
                            pair.attempts_left = 0;
                            PairPhase::Expired
                        }
                        _ => PairPhase::Entering,
                    }
                };
                Vec::new()
            }
            LinkEvent::Paired(server) => {
                let (link, addr, via) = (pair.link, pair.addr, pair.via);
                self.pairing = None;
                self.needs_repair.remove(&server.server_id);
                self.declined.remove(&server.server_id);
                self.upsert_paired(server.clone());
                self.set_status(
                    Level::Good,
                    format!("paired with {} ({})", server.name, server.server_id.short()),
                );
                let width = crate::ui::console_width(self).unwrap_or(1);
                let mut conn = ConnState::new(link, server, Some(addr), via, width);
                push_entry(
                    &mut conn,
                    EntryKind::Good,
                    "paired: the code was right".into(),
                    None,
                    self.clock.unix,
                );
                self.conn = Some(conn);
                self.screen = Screen::Console;
                Vec::new()
            }
            LinkEvent::ConnectFailed { error, .. } => {
                pair.phase = PairPhase::Failed;
                pair.error = Some(error);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn on_session_event(&mut self, event: LinkEvent) -> Vec<Action> {
        let clock = self.clock;
        let Some(conn) = self.conn.as_mut() else {
            return Vec::new();
        };
        match event {
            LinkEvent::Connected {
                server,
                addr,
                via,
                elapsed,
            } => {
                let again = conn.ever_connected;
                conn.server = server.clone();
                conn.addr = Some(addr);
                // The first time, how the person found it; after that, how it was found again.
                conn.via = if again {
                    via.or(conn.via)
                } else {
                    conn.via.or(via)
                };
                conn.state = LinkState::Connected {
                    since: clock.instant,
                };
                conn.ever_connected = true;
                let how = conn.via.map(|v| format!(" via {v}")).unwrap_or_default();
                let took = if elapsed.is_zero() {
                    String::new()
                } else {
                    format!(" in {:.1} ms", elapsed.as_secs_f64() * 1000.0)
                };
                let text = format!(
                    "{} {} at {addr}{how}{took}",
                    if again {
                        "reconnected to"
                    } else {
                        "connected to"
                    },
                    server.name,
                );
                push_entry(conn, EntryKind::Good, text, None, clock.unix);
                let link = conn.link;
                if !again {
                    push_entry(
                        conn,
                        EntryKind::Info,
                        "type a task and press Enter: ping, echo TEXT, time, info, …".into(),
                        None,
                        clock.unix,
                    );
                }
                if matches!(
                    self.status,
                    Some(Status {
                        level: Level::Error | Level::Warn,
                        ..
                    })
                ) {
                    self.status = None;
                }
                self.upsert_paired(server);
                // What it offers, for completion and the task list.
                vec![Action::ListTasks { link }]
            }
            LinkEvent::Connecting { attempt } => {
                conn.state = LinkState::Connecting {
                    attempt: if conn.ever_connected { attempt } else { 0 },
                };
                Vec::new()
            }
            LinkEvent::Retrying {
                attempt,
                wait,
                error,
            } => {
                if !conn.ever_connected {
                    // The person chose this server just now: say why it did not answer
                    // rather than keep them waiting.
                    let name = conn.server.name.clone();
                    self.conn = None;
                    self.screen = Screen::Scan;
                    self.set_status(Level::Error, format!("cannot connect to {name}: {error}"));
                    return vec![Action::Hangup];
                }
                push_entry(
                    conn,
                    EntryKind::Error,
                    format!("reconnect failed: {error}"),
                    None,
                    clock.unix,
                );
                push_entry(
                    conn,
                    EntryKind::Info,
                    format!(
                        "reconnecting in {} s (attempt {})",
                        wait.as_secs_f64().ceil().max(1.0),
                        attempt + 1
                    ),
                    None,
                    clock.unix,
                );
                conn.state = LinkState::Waiting {
                    attempt: attempt + 1,
                    at: clock.instant + wait,
                    reason: error,
                };
                Vec::new()
            }
            LinkEvent::Lost { reason } => {
                push_entry(
                    conn,
                    EntryKind::Error,
                    format!("connection lost: {reason}"),
                    None,
                    clock.unix,
                );
                conn.state = LinkState::Connecting { attempt: 1 };
                Vec::new()
            }
            LinkEvent::RepairRequired { reason } => self.repair_required(reason),
            LinkEvent::ConnectFailed { error, repair } => {
                if let Some(reason) = repair {
                    return self.repair_required(reason);
                }
                let name = conn.server.name.clone();
                self.conn = None;
                self.screen = Screen::Scan;
                self.set_status(Level::Error, format!("cannot connect to {name}: {error}"));
                vec![Action::Hangup]
            }
            LinkEvent::Reply { id, result, rtt } => {
                flush_partial(conn, id, clock.unix);
                conn.running.remove(&id);
                push_reply(conn, id, result, rtt, clock.unix);
                Vec::new()
            }
            LinkEvent::RunOutput { id, stream, data } => {
                push_output(conn, id, stream, &data, clock.unix);
                Vec::new()
            }
            LinkEvent::RunDone { id, status, rtt } => {
                flush_partial(conn, id, clock.unix);
                let task = conn
                    .running
                    .remove(&id)
                    .map(|r| r.task)
                    .unwrap_or_else(|| "the task".into());
                let text = crate::headless::describe_status(&task, &status);
                let kind = if status.success() {
                    EntryKind::Good
                } else {
                    EntryKind::Error
                };
                push_entry(conn, kind, text, Some(rtt), clock.unix);
                Vec::new()
            }
            LinkEvent::Tasks(mut tasks) => {
                tasks.sort_by(|a, b| a.name.cmp(&b.name));
                conn.tasks = tasks;
                Vec::new()
            }
            LinkEvent::Notice { text } => {
                push_entry(
                    conn,
                    EntryKind::Notice,
                    format!("notice: {text}"),
                    None,
                    clock.unix,
                );
                Vec::new()
            }
            LinkEvent::Paired(_) | LinkEvent::Challenge(_) | LinkEvent::Rejected { .. } => {
                Vec::new()
            }
        }
    }

    /// The server no longer accepts this client: say so and go back to the scan, where Enter
    /// on the server pairs again.
    pub(super) fn repair_required(&mut self, reason: RepairReason) -> Vec<Action> {
        let Some(conn) = self.conn.take() else {
            return Vec::new();
        };
        let id = conn.server.server_id;
        self.needs_repair.insert(id);
        self.screen = Screen::Scan;
        self.overlay = Overlay::None;
        if let Some(i) = self.hosts.iter().position(|h| h.server_id == id) {
            self.selected = i;
            self.keep_selection_visible();
        }
        self.set_status(
            Level::Error,
            format!(
                "re-pair required with {}: {}. Select it and press Enter to pair again.",
                conn.server.name,
                reason.describe()
            ),
        );
        vec![Action::Hangup]
    }

    pub(super) fn upsert_paired(&mut self, server: PairedServer) {
        match self
            .paired
            .iter_mut()
            .find(|s| s.server_id == server.server_id)
        {
            Some(s) => *s = server,
            None => self.paired.push(server),
        }
    }
}

pub(super) fn push_entry(
    conn: &mut ConnState,
    kind: EntryKind,
    text: String,
    rtt: Option<Duration>,
    unix: u64,
) {
    if conn.console.len() == CONSOLE_CAPACITY {
        conn.console.pop_front();
    }
    let entry = Entry {
        kind,
        text,
        rtt,
        unix,
    };
    if conn.scroll > 0 {
        // Someone is reading back: keep their lines where they are.
        conn.scroll += entry.pieces(conn.width).len();
    }
    conn.console.push_back(entry);
}

/// Output of run `id`: whole lines go into the console as they come (stderr marked as
/// errors); a line not finished yet waits for its end, or for the run's.
pub(super) fn push_output(
    conn: &mut ConnState,
    id: u64,
    stream: OutputStream,
    data: &[u8],
    unix: u64,
) {
    let kind = match stream {
        OutputStream::Stdout => EntryKind::Reply,
        OutputStream::Stderr => EntryKind::Error,
    };
    let buf = conn.partial.entry((id, stream)).or_default();
    buf.extend_from_slice(data);
    let mut lines = Vec::new();
    while let Some(at) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=at).collect();
        lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
    }
    // A line that never ends (binary, or a program that prints no newline) is shown in
    // pieces rather than held without bound.
    if buf.len() >= OUTPUT_LINE_MAX {
        lines.push(String::from_utf8_lossy(&std::mem::take(buf)).into_owned());
    }
    for line in lines {
        push_entry(conn, kind, line, None, unix);
    }
}

/// Longest piece of one output line held back waiting for its newline.
pub const OUTPUT_LINE_MAX: usize = 4096;

/// Show what run `id` left without a final newline.
pub(super) fn flush_partial(conn: &mut ConnState, id: u64, unix: u64) {
    for stream in [OutputStream::Stdout, OutputStream::Stderr] {
        if let Some(rest) = conn.partial.remove(&(id, stream))
            && !rest.is_empty()
        {
            let kind = match stream {
                OutputStream::Stdout => EntryKind::Reply,
                OutputStream::Stderr => EntryKind::Error,
            };
            push_entry(
                conn,
                kind,
                String::from_utf8_lossy(&rest).into_owned(),
                None,
                unix,
            );
        }
    }
}

pub(super) fn push_reply(
    conn: &mut ConnState,
    _id: u64,
    result: Result<Value, String>,
    rtt: Duration,
    unix: u64,
) {
    match result {
        Ok(value) => push_entry(
            conn,
            EntryKind::Reply,
            render_value(&value),
            Some(rtt),
            unix,
        ),
        Err(e) => push_entry(conn, EntryKind::Error, e, Some(rtt), unix),
    }
}

/// A task result as text: strings as they are, anything else as indented JSON.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}
