//! State of the full-screen interface and the one function that changes it.
//!
//! Owns: everything the screen shows, and [`App::update`], which takes one [`Msg`] (a key, an
//! engine event, a tick, a fresh client list or list of runs) and returns at most one [`Action`] for the event
//! loop to carry out. It must not touch the terminal, the network or the engine: side effects
//! are asked for as actions, so every transition can be tested without either.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyEvent, KeyEventKind, KeyModifiers};
use csc_shared::identity::PeerId;
use csc_shared::server::{
    ClientView, ClosedReason, PairingMode, PairingStatus, RunView, ServerEvent,
};
use tui_input::Input;
use tui_kit::keymap::Key;

use crate::headless::TasksOrigin;
use crate::keymap::{self, Command, Scope};

/// Lines the event log keeps; the oldest go first.
pub const LOG_CAPACITY: usize = 1000;

/// How often the client list and the runs are re-read when nothing asked for them sooner.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

pub use tui_kit::{Clock, Level};

/// Everything that can change the app.
#[derive(Debug)]
pub enum Msg {
    /// A key (only presses count).
    Key(KeyEvent),
    /// The terminal has a new size.
    Resize(u16, u16),
    /// Time passed.
    Tick(Clock),
    /// Something happened in the engine.
    Engine(ServerEvent),
    /// A fresh list of paired clients (answer to [`Action::Refresh`]).
    Clients(Vec<ClientView>),
    /// A fresh list of the runs in progress (answer to [`Action::Refresh`]).
    Runs(Vec<RunView>),
    /// A line for the event log from elsewhere (logging, a failed action).
    Log(Level, String),
}

tui_kit::impl_tui_msg!(Msg);

/// Side effects the event loop carries out for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Restore the terminal, stop the server, exit.
    Quit,
    /// Revoke this client (full hex id) through the engine.
    Revoke {
        /// Full hex id: matches exactly one client.
        client_id: String,
    },
    /// Push a notice to every connected client.
    Notify(String),
    /// Read the client list and the runs and send them back as [`Msg::Clients`] and
    /// [`Msg::Runs`].
    Refresh,
    /// Read the configuration file's tasks again (the engine reports how it went).
    Reload,
    /// Stop this run (the engine reports its end as `task_finished`).
    StopRun {
        /// The server's number for it.
        run_id: u64,
    },
    /// Accept pairing requests (a window in window mode; ends a closure in either mode).
    OpenPairing,
    /// Refuse pairing requests until opened again.
    ClosePairing,
    /// Draw a code for the next request (the engine reports `code_ahead`).
    CodeAhead,
}

/// Whether pairing is accepted, as the banner shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingView {
    /// The server's mode.
    pub mode: PairingMode,
    /// Whether requests are accepted.
    pub open: bool,
    /// Why not.
    pub reason: Option<ClosedReason>,
    /// When an open window closes.
    pub closes_at: Option<Instant>,
    /// When a closure ends by itself.
    pub reopens_at: Option<Instant>,
    /// Wrong codes allowed per budget window.
    pub budget: u32,
    /// The budget window, seconds.
    pub budget_window_s: u64,
}

impl PairingView {
    /// The view of `status`, read at `now`.
    pub fn from_status(status: &PairingStatus, now: Instant) -> Self {
        let at = |s: u64| now.checked_add(Duration::from_secs(s));
        Self {
            mode: status.mode,
            open: status.open,
            reason: status.reason,
            closes_at: status.closes_in_s.and_then(at),
            reopens_at: status.reopens_in_s.and_then(at),
            budget: status.budget,
            budget_window_s: status.budget_window_s,
        }
    }
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When, Unix seconds.
    pub unix: u64,
    /// Marking.
    pub level: Level,
    /// What.
    pub text: String,
}

/// A pairing request waiting for its code to be typed at the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The engine's request id.
    pub request_id: u64,
    /// Name the client gave.
    pub client_name: String,
    /// Where it connects from.
    pub client_addr: SocketAddr,
    /// Short form of its id.
    pub client_short: String,
    /// The six digits.
    pub code: String,
    /// When the code runs out.
    pub expires_at: Instant,
    /// Wrong answers still allowed.
    pub attempts_left: u32,
}

impl PendingRequest {
    /// Whole seconds left, rounded up, at `now`.
    pub fn seconds_left(&self, now: Instant) -> u64 {
        let left = self.expires_at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }
}

/// The part of the screen that arrows and `j`/`k` act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// Pending pairing requests (only while there are some).
    Requests,
    /// The clients table.
    Clients,
    /// The runs in progress (only while there are some).
    Runs,
    /// The event log.
    Log,
}

/// A client the operator is asked to confirm revoking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeTarget {
    /// Its id.
    pub client_id: PeerId,
    /// Its name.
    pub name: String,
}

/// A line for the footer in place of the key hints, until the next key: why a key did
/// nothing, and where it would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Marking.
    pub level: Level,
    /// What.
    pub text: String,
}

/// What has the keyboard.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The main screen.
    Normal,
    /// "Revoke this client?"
    Confirm(RevokeTarget),
    /// Typing a notice.
    Input(Input),
    /// The list of keys.
    Help,
}

/// Fixed facts the app starts with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server name.
    pub name: String,
    /// Short server id.
    pub server_short: String,
    /// Whether to use colour (`false` for `NO_COLOR` or `--no-color`).
    pub color: bool,
    /// Pairing as it stands at start.
    pub pairing: PairingStatus,
    /// How long `o` opens a pairing window for.
    pub open_for: Duration,
    /// Where the configured tasks came from at start.
    pub origin: TasksOrigin,
}

/// The state of the full-screen interface.
#[derive(Debug)]
pub struct App {
    /// Server name.
    pub name: String,
    /// Short server id.
    pub server_short: String,
    /// Colour or not.
    pub color: bool,
    /// Where clients can reach the server, as the engine last reported (`listening`, then
    /// `addresses_changed`): shown in the header and in the idle hint.
    pub addrs: Vec<IpAddr>,
    /// The bound address, once the listener is up.
    pub listening: Option<SocketAddr>,
    /// When the app started.
    pub started: Instant,
    /// The time as of the last tick.
    pub clock: Clock,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Pending requests, oldest first.
    pub requests: Vec<PendingRequest>,
    /// A code drawn ahead of any request (`p`), and when it stops waiting for one.
    pub ahead: Option<(String, Instant)>,
    /// The request chosen in the list; `None` shows the newest.
    pub chosen_request: Option<u64>,
    /// Paired clients, sorted by name.
    pub clients: Vec<ClientView>,
    /// Index of the selected client.
    pub selected: usize,
    /// First client row shown.
    pub offset: usize,
    /// Runs in progress, oldest first.
    pub runs: Vec<RunView>,
    /// Index of the selected run.
    pub run_selected: usize,
    /// First run row shown.
    pub run_offset: usize,
    /// Where the configured tasks in force came from, and their names.
    pub tasks: TasksOrigin,
    /// Event log, oldest first.
    pub log: VecDeque<LogLine>,
    /// Lines scrolled up from the newest; 0 follows new events.
    pub log_scroll: usize,
    /// Focused pane.
    pub focus: Pane,
    /// What has the keyboard.
    pub mode: Mode,
    /// Whether pairing is accepted.
    pub pairing: PairingView,
    /// How long `o` opens a pairing window for.
    pub open_for: Duration,
    /// Said in the footer until the next key.
    pub status: Option<Status>,
    stale: bool,
    last_refresh: Option<Instant>,
}

impl App {
    /// A fresh app at `clock` on a terminal of `size`.
    pub fn new(options: Options, clock: Clock, size: (u16, u16)) -> Self {
        Self {
            name: options.name,
            server_short: options.server_short,
            color: options.color,
            addrs: Vec::new(),
            listening: None,
            started: clock.instant,
            clock,
            size,
            requests: Vec::new(),
            ahead: None,
            chosen_request: None,
            clients: Vec::new(),
            selected: 0,
            offset: 0,
            runs: Vec::new(),
            run_selected: 0,
            run_offset: 0,
            tasks: options.origin,
            log: VecDeque::new(),
            log_scroll: 0,
            focus: Pane::Clients,
            mode: Mode::Normal,
            pairing: PairingView::from_status(&options.pairing, clock.instant),
            open_for: options.open_for,
            status: None,
            stale: true,
            last_refresh: None,
        }
    }

    /// Apply one message; the returned action is for the event loop to carry out.
    pub fn update(&mut self, msg: Msg) -> Option<Action> {
        match msg {
            Msg::Key(key) if key.kind == KeyEventKind::Press => self.on_key(key),
            Msg::Key(_) => None,
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.keep_selection_visible();
                self.clamp_log_scroll();
                None
            }
            Msg::Tick(clock) => {
                self.clock = clock;
                let due = self
                    .last_refresh
                    .is_none_or(|t| clock.instant.saturating_duration_since(t) >= REFRESH_EVERY);
                if self.stale || due {
                    self.stale = false;
                    self.last_refresh = Some(clock.instant);
                    Some(Action::Refresh)
                } else {
                    None
                }
            }
            Msg::Engine(event) => {
                self.on_engine(event);
                None
            }
            Msg::Clients(list) => {
                self.set_clients(list);
                None
            }
            Msg::Runs(list) => {
                self.set_runs(list);
                None
            }
            Msg::Log(level, text) => {
                self.push_log(level, text);
                None
            }
        }
    }

    /// The request shown in the banner: the chosen one, or the newest.
    pub fn banner_request(&self) -> Option<&PendingRequest> {
        self.chosen_request
            .and_then(|id| self.requests.iter().find(|r| r.request_id == id))
            .or_else(|| self.requests.last())
    }

    /// The code drawn ahead and its seconds left (rounded up), while it still waits.
    pub fn live_ahead(&self) -> Option<(&str, u64)> {
        let (code, at) = self.ahead.as_ref()?;
        let left = at.saturating_duration_since(self.clock.instant);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        (secs > 0).then_some((code.as_str(), secs))
    }

    /// Clients with at least one open session.
    pub fn connected_count(&self) -> usize {
        self.clients.iter().filter(|c| c.sessions > 0).count()
    }

    /// Key scopes active now, most specific first.
    pub fn scopes(&self) -> Vec<Scope> {
        match &self.mode {
            Mode::Normal if self.focus == Pane::Clients => vec![Scope::Clients, Scope::Main],
            Mode::Normal if self.focus == Pane::Runs => vec![Scope::Runs, Scope::Main],
            Mode::Normal => vec![Scope::Main],
            Mode::Confirm(_) => vec![Scope::Dialog],
            Mode::Input(_) => vec![Scope::Input],
            Mode::Help => vec![Scope::Help],
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        // What a key did not do is said until the next one.
        self.status = None;
        let command = keymap::MAP.lookup(&self.scopes(), &key);
        if command == Some(Command::Quit) {
            return Some(Action::Quit);
        }
        match &mut self.mode {
            Mode::Normal => match command {
                Some(c) => self.on_command(c),
                None => {
                    self.explain(&key);
                    None
                }
            },
            Mode::Help => {
                if command == Some(Command::Cancel) {
                    self.mode = Mode::Normal;
                }
                None
            }
            Mode::Confirm(target) => match command {
                Some(Command::Confirm) => {
                    let client_id = target.client_id.to_hex();
                    self.mode = Mode::Normal;
                    Some(Action::Revoke { client_id })
                }
                Some(Command::Cancel) => {
                    self.mode = Mode::Normal;
                    None
                }
                _ => None,
            },
            Mode::Input(input) => match command {
                Some(Command::Confirm) => {
                    let text = input.value().trim().to_string();
                    self.mode = Mode::Normal;
                    (!text.is_empty()).then_some(Action::Notify(text))
                }
                Some(Command::Cancel) => {
                    self.mode = Mode::Normal;
                    None
                }
                _ => {
                    if let Some(req) =
                        tui_input::backend::crossterm::to_input_request(&Event::Key(key))
                    {
                        input.handle(req);
                    }
                    None
                }
            },
        }
    }

    /// Say why `key` did nothing on the main screen: the pane where it works, or that it is no
    /// key at all. No key is silent.
    fn explain(&mut self, key: &KeyEvent) {
        let pressed = Key {
            code: key.code,
            mods: key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT),
        }
        .label();
        let elsewhere = keymap::BINDINGS
            .iter()
            .filter(|b| matches!(b.scope, Scope::Clients | Scope::Runs))
            .find(|b| b.keys.iter().any(|k| k.matches(key)));
        let text = match elsewhere {
            Some(b) if b.scope == Scope::Runs && self.runs.is_empty() => format!(
                "{pressed} works in the runs table, and nothing runs now: {}",
                b.help
            ),
            Some(b) => format!(
                "{pressed} works in the {} (Tab moves there): {}",
                b.scope.title().to_lowercase(),
                b.help
            ),
            None => format!("{pressed} does nothing here: ? lists the keys"),
        };
        self.say(Level::Info, text);
    }

    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some(Status {
            level,
            text: text.into(),
        });
    }

    fn on_command(&mut self, command: Command) -> Option<Action> {
        match command {
            Command::Help => self.mode = Mode::Help,
            Command::Notice => self.mode = Mode::Input(Input::default()),
            Command::OpenPairing => return Some(Action::OpenPairing),
            Command::CodeAhead => return Some(Action::CodeAhead),
            Command::ClosePairing => {
                if self.pairing.open {
                    return Some(Action::ClosePairing);
                }
                self.say(Level::Info, "pairing is already closed (o opens it)");
            }
            Command::Reload => return Some(Action::Reload),
            Command::StopRun => {
                let run = self
                    .runs
                    .get(self.run_selected)
                    .filter(|_| self.focus == Pane::Runs);
                match run {
                    Some(r) => return Some(Action::StopRun { run_id: r.run_id }),
                    None => self.say(Level::Info, "nothing runs now"),
                }
            }
            Command::NextPane => self.cycle_focus(true),
            Command::PrevPane => self.cycle_focus(false),
            Command::Revoke => match self.clients.get(self.selected) {
                Some(c) => {
                    self.mode = Mode::Confirm(RevokeTarget {
                        client_id: c.record.client_id,
                        name: c.record.name.clone(),
                    });
                }
                None => self.say(Level::Info, "no client to revoke: none is paired yet"),
            },
            Command::Up => self.move_by(-1),
            Command::Down => self.move_by(1),
            Command::PageUp => self.move_by(-(self.page() as isize)),
            Command::PageDown => self.move_by(self.page() as isize),
            Command::Top => self.move_by(isize::MIN),
            Command::Bottom => self.move_by(isize::MAX),
            Command::Quit | Command::Confirm | Command::Cancel => {}
        }
        None
    }

    fn cycle_focus(&mut self, forward: bool) {
        let mut order = vec![Pane::Clients, Pane::Log];
        if !self.runs.is_empty() {
            order.insert(1, Pane::Runs);
        }
        if !self.requests.is_empty() {
            order.insert(0, Pane::Requests);
        }
        let at = order.iter().position(|p| *p == self.focus).unwrap_or(0);
        let next = if forward {
            (at + 1) % order.len()
        } else {
            (at + order.len() - 1) % order.len()
        };
        self.focus = order[next];
    }

    fn page(&self) -> usize {
        let rows = match self.focus {
            Pane::Log => crate::ui::log_rows(self),
            Pane::Runs => crate::ui::run_rows(self),
            _ => crate::ui::client_rows(self),
        };
        rows.max(1)
    }

    /// Move within the focused pane; `isize::MIN`/`MAX` go to the ends.
    fn move_by(&mut self, delta: isize) {
        match self.focus {
            Pane::Clients => {
                let last = self.clients.len().saturating_sub(1);
                self.selected = self.selected.saturating_add_signed(delta).min(last);
                self.keep_selection_visible();
            }
            Pane::Runs => {
                let last = self.runs.len().saturating_sub(1);
                self.run_selected = self.run_selected.saturating_add_signed(delta).min(last);
                self.keep_selection_visible();
            }
            Pane::Log => {
                // Up in the log means further back, i.e. more scroll.
                self.log_scroll = self
                    .log_scroll
                    .saturating_add_signed(delta.saturating_neg());
                self.clamp_log_scroll();
            }
            Pane::Requests => {
                if self.requests.is_empty() {
                    return;
                }
                // The list shows the newest first: down goes to older requests.
                let newest_first: Vec<u64> =
                    self.requests.iter().rev().map(|r| r.request_id).collect();
                let current = self
                    .banner_request()
                    .and_then(|r| newest_first.iter().position(|id| *id == r.request_id))
                    .unwrap_or(0);
                let to = current
                    .saturating_add_signed(delta)
                    .min(newest_first.len() - 1);
                self.chosen_request = Some(newest_first[to]);
            }
        }
    }

    /// The offsets after the selection or the viewport changed: the selection in view, and
    /// no row that would fit hidden above.
    fn keep_selection_visible(&mut self) {
        let rows = crate::ui::client_rows(self);
        self.offset =
            crate::ui::scroll_into_view(self.offset, self.selected, rows, self.clients.len());
        let rows = crate::ui::run_rows(self);
        self.run_offset =
            crate::ui::scroll_into_view(self.run_offset, self.run_selected, rows, self.runs.len());
    }

    /// The log's scroll within its screen lines (wrapped at the pane's width), so the oldest
    /// line is at most at the top.
    fn clamp_log_scroll(&mut self) {
        let rows = crate::ui::log_rows(self);
        let lines = crate::ui::log_lines(self);
        self.log_scroll = self.log_scroll.min(lines.saturating_sub(rows));
    }

    fn set_clients(&mut self, mut list: Vec<ClientView>) {
        let keep = self.clients.get(self.selected).map(|c| c.record.client_id);
        // Cached keys: one lowercase copy per client, not two per comparison.
        list.sort_by_cached_key(|c| (c.record.name.to_lowercase(), c.record.client_id));
        self.clients = list;
        self.selected = keep
            .and_then(|id| self.clients.iter().position(|c| c.record.client_id == id))
            .unwrap_or(self.selected)
            .min(self.clients.len().saturating_sub(1));
        if let Mode::Confirm(target) = &self.mode
            && !self
                .clients
                .iter()
                .any(|c| c.record.client_id == target.client_id)
        {
            // Revoked meanwhile (e.g. by `server-tui forget`): nothing left to confirm.
            self.mode = Mode::Normal;
        }
        self.keep_selection_visible();
    }

    /// Replace the runs with `list`, keeping the selection on its run.
    fn set_runs(&mut self, list: Vec<RunView>) {
        let keep = self.selected_run();
        self.runs = list;
        self.settle_runs(keep);
    }

    fn selected_run(&self) -> Option<u64> {
        self.runs.get(self.run_selected).map(|r| r.run_id)
    }

    /// After the runs changed: in order, the selection back on run `keep` (or as near as the
    /// list allows), and the focus elsewhere once the pane is gone.
    fn settle_runs(&mut self, keep: Option<u64>) {
        self.runs.sort_by_key(|r| r.run_id);
        self.run_selected = keep
            .and_then(|id| self.runs.iter().position(|r| r.run_id == id))
            .unwrap_or(self.run_selected)
            .min(self.runs.len().saturating_sub(1));
        if self.runs.is_empty() && self.focus == Pane::Runs {
            self.focus = Pane::Clients;
        }
        self.keep_selection_visible();
    }

    fn on_engine(&mut self, event: ServerEvent) {
        let level = match &event {
            ServerEvent::Paired { .. }
            | ServerEvent::Connected { .. }
            | ServerEvent::PairingOpened { .. }
            | ServerEvent::TasksReloaded { .. } => Level::Good,
            ServerEvent::TaskFinished { status, .. } if !status.success() => Level::Warn,
            ServerEvent::TaskRefused { .. } => Level::Warn,
            ServerEvent::PairingClosed { .. } => Level::Error,
            ServerEvent::PairFailed { .. }
            | ServerEvent::AuthFailed { .. }
            | ServerEvent::Revoked { .. }
            | ServerEvent::Summary { .. }
            | ServerEvent::Warning { .. } => Level::Warn,
            ServerEvent::Request { ok: false, .. } => Level::Warn,
            ServerEvent::Requests { failed, .. } if *failed > 0 => Level::Warn,
            _ => Level::Info,
        };
        // The same words as the headless output; the pair request's second line carries the
        // code in plain text, once, so it can be copied. A run's start shows in the runs pane;
        // the log records how it ended.
        if !matches!(event, ServerEvent::TaskStarted { .. }) {
            for line in crate::headless::describe(&event).lines() {
                self.push_log(level, line.to_string());
            }
        }
        match event {
            ServerEvent::Listening { addr, addrs, .. } => {
                self.listening = Some(addr);
                self.addrs = addrs;
                // As the headless output does: where the tasks came from, after `listening`.
                let text = self.tasks.text();
                self.push_log(Level::Info, text);
            }
            ServerEvent::TaskStarted {
                run_id,
                session_id,
                client_name,
                client_id,
                task,
                args,
            } => {
                // Shown at once; the next refresh brings its byte counts.
                if !self.runs.iter().any(|r| r.run_id == run_id) {
                    let keep = self.selected_run();
                    self.runs.push(RunView {
                        run_id,
                        session_id,
                        client_id,
                        client_name,
                        task,
                        args,
                        started_at_ms: self.clock.unix.saturating_mul(1000),
                        running_ms: 0,
                        bytes_out: 0,
                        bytes_in: 0,
                    });
                    self.settle_runs(keep);
                }
                self.stale = true;
            }
            ServerEvent::TaskFinished { run_id, .. } => {
                let keep = self.selected_run();
                self.runs.retain(|r| r.run_id != run_id);
                self.settle_runs(keep);
                self.stale = true;
            }
            ServerEvent::TasksReloaded { path, tasks } => {
                self.tasks = TasksOrigin {
                    path: Some(path),
                    tasks,
                };
            }
            ServerEvent::AddressesChanged { addrs } => self.addrs = addrs,
            ServerEvent::PairRequest {
                request_id,
                client_name,
                client_addr,
                client_short,
                code,
                expires_in_s,
                attempts_left,
                ..
            } => {
                // The request took the code drawn ahead: it is this request's code now.
                if self.ahead.as_ref().is_some_and(|(c, _)| *c == code) {
                    self.ahead = None;
                }
                self.requests.push(PendingRequest {
                    request_id,
                    client_name,
                    client_addr,
                    client_short,
                    code,
                    expires_at: self.clock.instant + Duration::from_secs(expires_in_s),
                    attempts_left,
                });
                // The newest goes into the banner.
                self.chosen_request = None;
            }
            ServerEvent::PairFailed {
                request_id: Some(id),
                attempts_left,
                ..
            } => {
                if let Some(r) = self.requests.iter_mut().find(|r| r.request_id == id) {
                    r.attempts_left = attempts_left;
                }
            }
            ServerEvent::PairClosed { request_id, .. } => self.remove_request(request_id),
            ServerEvent::Paired { request_id, .. } => {
                self.remove_request(request_id);
                self.stale = true;
            }
            ServerEvent::Connected { .. }
            | ServerEvent::Disconnected { .. }
            | ServerEvent::Revoked { .. }
            | ServerEvent::Renamed { .. }
            | ServerEvent::Request { .. }
            | ServerEvent::Requests { .. } => self.stale = true,
            ServerEvent::PairingOpened {
                mode, closes_in_s, ..
            } => {
                let now = self.clock.instant;
                self.pairing.mode = mode;
                self.pairing.open = true;
                self.pairing.reason = None;
                self.pairing.reopens_at = None;
                self.pairing.closes_at =
                    closes_in_s.and_then(|s| now.checked_add(Duration::from_secs(s)));
            }
            ServerEvent::PairingClosed {
                mode,
                reason,
                reopens_in_s,
                budget,
                budget_window_s,
            } => {
                let now = self.clock.instant;
                // Closing drops a code drawn ahead.
                self.ahead = None;
                self.pairing = PairingView {
                    mode,
                    open: false,
                    reason: Some(reason),
                    closes_at: None,
                    reopens_at: reopens_in_s.and_then(|s| now.checked_add(Duration::from_secs(s))),
                    budget,
                    budget_window_s,
                };
            }
            ServerEvent::CodeAhead { code, expires_in_s } => {
                self.ahead = Some((code, self.clock.instant + Duration::from_secs(expires_in_s)));
            }
            ServerEvent::PairFailed { .. }
            | ServerEvent::AuthFailed { .. }
            | ServerEvent::NoticeSent { .. }
            | ServerEvent::Summary { .. }
            | ServerEvent::TaskRefused { .. }
            | ServerEvent::Warning { .. } => {}
        }
    }

    fn remove_request(&mut self, request_id: u64) {
        self.requests.retain(|r| r.request_id != request_id);
        if self.chosen_request == Some(request_id) {
            self.chosen_request = None;
        }
        if self.requests.is_empty() && self.focus == Pane::Requests {
            self.focus = Pane::Clients;
        }
    }

    fn push_log(&mut self, level: Level, text: String) {
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        let line = LogLine {
            unix: self.clock.unix,
            level,
            text,
        };
        if self.log_scroll > 0 {
            // Someone is reading back: keep their lines where they are.
            self.log_scroll += crate::ui::log_line_count(self, &line);
            self.log.push_back(line);
            self.clamp_log_scroll();
        } else {
            self.log.push_back(line);
        }
    }
}

#[cfg(test)]
mod tests;
