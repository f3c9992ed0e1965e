//! The parts of the app's state: the search, a pairing, a connection with its console, and
//! the small enums the screens are drawn from. Changed only by `App::update` and its helpers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use csc_shared::discovery::Via;
use csc_shared::identity::PeerId;
use csc_shared::message::{OutputStream, TaskInfo};
use csc_shared::state::PairedServer;
use tui_input::Input;
use tui_kit::wrap::Piece;

pub use tui_kit::Level;

/// The line above the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Marking.
    pub level: Level,
    /// What.
    pub text: String,
}

/// The screen shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Search progress and the servers found.
    Scan,
    /// Typing the code.
    Pair,
    /// Connected: state and the task console.
    Console,
    /// The saved pairings.
    Servers,
}

/// A paired server the person is asked to confirm forgetting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetTarget {
    /// Its id.
    pub server_id: PeerId,
    /// Its name.
    pub name: String,
}

/// A window over the screen that takes the keyboard.
#[derive(Debug, Clone)]
pub enum Overlay {
    /// Nothing.
    None,
    /// The list of keys.
    Help,
    /// Typing an address.
    Address(Input),
    /// "Forget this server?"
    Confirm(ForgetTarget),
    /// The tasks the server offers.
    Tasks,
}

/// A run in progress in the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The task.
    pub task: String,
    /// When it was typed.
    pub started: Instant,
    /// Whether a cancel was asked for.
    pub cancelling: bool,
}

/// Sweep progress of one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// `10.0.0.0/24`.
    pub name: String,
    /// Hosts tried.
    pub probed: usize,
    /// Hosts to try.
    pub total: usize,
}

/// One search.
#[derive(Debug, Clone)]
pub struct ScanState {
    /// Its id.
    pub id: u64,
    /// When it started.
    pub started: Instant,
    /// Methods running, each with whether it has finished.
    pub methods: Vec<(Via, bool)>,
    /// Subnets swept.
    pub subnets: Vec<Subnet>,
    /// Set once discovery has reported `Started`.
    pub begun: bool,
    /// Time taken, once done.
    pub finished: Option<Duration>,
    /// Whether discovery runs at all (every method can be switched off).
    pub enabled: bool,
    /// Why discovery had nothing to search, and what to do instead.
    pub nothing_to_search: Option<String>,
}

impl ScanState {
    pub(super) fn new(id: u64, started: Instant, enabled: bool) -> Self {
        Self {
            id,
            started,
            methods: Vec::new(),
            subnets: Vec::new(),
            begun: false,
            finished: None,
            enabled,
            nothing_to_search: None,
        }
    }

    /// Hosts tried, over every subnet.
    pub fn probed(&self) -> usize {
        self.subnets.iter().map(|s| s.probed).sum()
    }

    /// Hosts to try, over every subnet.
    pub fn total(&self) -> usize {
        self.subnets.iter().map(|s| s.total).sum()
    }

    /// Whether it still runs.
    pub fn running(&self) -> bool {
        self.enabled && self.finished.is_none()
    }

    /// Time since the start, or the time it took.
    pub fn elapsed(&self, now: Instant) -> Duration {
        self.finished
            .unwrap_or_else(|| now.saturating_duration_since(self.started))
    }
}

/// Where a pairing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPhase {
    /// Waiting for the server to show a code.
    Requesting,
    /// The code can be typed.
    Entering,
    /// The code was sent; waiting for the answer.
    Checking,
    /// The code ran out or was used up; `n` asks for a new one on the same connection.
    Expired,
    /// The pairing task gave up; `n` starts again.
    Failed,
}

/// A pairing in progress.
#[derive(Debug, Clone)]
pub struct PairState {
    /// Its link id.
    pub link: u64,
    /// Where the server is.
    pub addr: SocketAddr,
    /// How it was found.
    pub via: Option<Via>,
    /// Server name (as found, then as the server says).
    pub server_name: String,
    /// Server id, once known.
    pub server_id: Option<PeerId>,
    /// Where it is.
    pub phase: PairPhase,
    /// The digits typed.
    pub input: Input,
    /// Digits in a code.
    pub digits: u8,
    /// Wrong answers still allowed.
    pub attempts_left: u32,
    /// When the code runs out.
    pub expires_at: Option<Instant>,
    /// The engine waits until then before sending the next try.
    pub retry_at: Option<Instant>,
    /// The last refusal.
    pub error: Option<String>,
}

/// The state of the connection on the console screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Opening a session (attempt 0 is the first connection, then reconnections).
    Connecting {
        /// Reconnection attempt, 0 for the first connection.
        attempt: u32,
    },
    /// A session is open.
    Connected {
        /// Since when.
        since: Instant,
    },
    /// Lost; the next attempt starts at `at`.
    Waiting {
        /// The attempt that starts then.
        attempt: u32,
        /// When.
        at: Instant,
        /// Why the last one ended.
        reason: String,
    },
}

/// How a console entry is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A task typed.
    Command,
    /// Its answer.
    Reply,
    /// A failed task or a connection problem.
    Error,
    /// A notice from the server.
    Notice,
    /// Connection news.
    Info,
    /// Connected.
    Good,
}

/// One console entry (its text may span several lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Marking.
    pub kind: EntryKind,
    /// What.
    pub text: String,
    /// Round-trip time of a reply.
    pub rtt: Option<Duration>,
    /// When, Unix seconds.
    pub unix: u64,
}

impl Entry {
    /// What closes the entry's last line: a reply's round-trip time, `  (0.7 ms)`.
    pub fn suffix(&self) -> Option<String> {
        let rtt = self.rtt.filter(|rtt| !rtt.is_zero())?;
        matches!(self.kind, EntryKind::Reply | EntryKind::Error)
            .then(|| format!("  ({:.1} ms)", rtt.as_secs_f64() * 1000.0))
    }

    /// The entry's screen lines when the console's text is `width` wide: its lines wrapped,
    /// and the suffix on a line of its own when it does not fit after the last one.
    pub fn pieces(&self, width: usize) -> Vec<Piece<'_>> {
        let suffix = self.suffix().map_or(0, |s| s.chars().count());
        tui_kit::wrap::pieces(&self.text, width, suffix)
    }
}

/// A paired server, connected or trying to be.
#[derive(Debug, Clone)]
pub struct ConnState {
    /// Link id of the current attempt or session.
    pub link: u64,
    /// The server as saved.
    pub server: PairedServer,
    /// The address last used.
    pub addr: Option<SocketAddr>,
    /// How it was found.
    pub via: Option<Via>,
    /// Connected, connecting, waiting.
    pub state: LinkState,
    /// Whether a session was ever open (then losing it means reconnecting).
    pub ever_connected: bool,
    /// Console entries, oldest first.
    pub console: VecDeque<Entry>,
    /// Screen lines scrolled back from the newest; 0 follows new lines.
    pub scroll: usize,
    /// Width the console's text wraps at, kept by `App` from the terminal's size: the screen
    /// lines `scroll` counts.
    pub width: usize,
    /// The task being typed.
    pub input: Input,
    /// Tasks typed, oldest first.
    pub history: Vec<String>,
    /// Where Up/Down are in the history.
    pub history_pos: Option<usize>,
    /// What was typed before walking the history.
    pub draft: String,
    /// Number of the last request.
    pub next_id: u64,
    /// The tasks the server offers this client (once asked).
    pub tasks: Vec<TaskInfo>,
    /// Runs in progress, by request number.
    pub running: BTreeMap<u64, Running>,
    /// Output not ended by a newline yet, per run and stream.
    pub partial: HashMap<(u64, OutputStream), Vec<u8>>,
}

impl ConnState {
    pub(super) fn new(
        link: u64,
        server: PairedServer,
        addr: Option<SocketAddr>,
        via: Option<Via>,
        width: usize,
    ) -> Self {
        Self {
            link,
            server,
            addr,
            via,
            state: LinkState::Connecting { attempt: 0 },
            ever_connected: false,
            console: VecDeque::new(),
            scroll: 0,
            width,
            input: Input::default(),
            history: Vec::new(),
            history_pos: None,
            draft: String::new(),
            next_id: 0,
            tasks: Vec::new(),
            running: BTreeMap::new(),
            partial: HashMap::new(),
        }
    }

    /// Screen lines of the whole console at its width (long lines wrapped, multi-line
    /// entries split).
    pub fn line_count(&self) -> usize {
        self.console
            .iter()
            .map(|e| e.pieces(self.width).len())
            .sum()
    }
}
