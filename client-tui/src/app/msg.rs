//! What goes into `App::update` and what comes out: messages (keys, ticks, what the network
//! tasks report) and actions (what the event loop must do). Plain data, no behaviour beyond
//! wording a refusal.

use std::net::SocketAddr;
use std::time::Duration;

use crossterm::event::KeyEvent;
use csc_shared::client::describe_refusal;
use csc_shared::client::limits::wait_in_words;
use csc_shared::discovery::{DiscoveryEvent, Via};
use csc_shared::identity::PeerId;
use csc_shared::message::{OutputStream, PairFailure, RepairReason, RunStatus, TaskInfo};
use csc_shared::state::PairedServer;
use serde_json::Value;

use super::Level;

pub use tui_kit::Clock;

/// Everything that can change the app.
#[derive(Debug)]
pub enum Msg {
    /// A key (only presses count).
    Key(KeyEvent),
    /// The terminal has a new size.
    Resize(u16, u16),
    /// Time passed.
    Tick(Clock),
    /// Discovery, or a probe of one address, reported something for search `scan`.
    Scan {
        /// Which search.
        scan: u64,
        /// What it found or how far it got.
        event: DiscoveryEvent,
    },
    /// An address typed by hand (or given with `--server`) did not answer as a server.
    ProbeFailed {
        /// What was typed.
        spec: String,
        /// Why, for people.
        error: String,
    },
    /// A pairing or a session reported something.
    Link {
        /// Which pairing or connection.
        link: u64,
        /// What happened.
        event: LinkEvent,
    },
    /// The saved pairings, fresh from the state folder.
    Servers(Vec<PairedServer>),
    /// A server was forgotten; `revoked` says whether the server confirmed it.
    Forgot {
        /// Its name.
        name: String,
        /// Its short id.
        short: String,
        /// `Err` with the reason when the server could not be told.
        revoked: Result<(), String>,
    },
    /// A line for the status bar from elsewhere (logging, a failed action).
    Log(Level, String),
}

tui_kit::impl_tui_msg!(Msg);

/// What the server said when it made a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Server name.
    pub server_name: String,
    /// Server id (from its TLS certificate).
    pub server_id: PeerId,
    /// Time until the code expires.
    pub expires_in: Duration,
    /// Wrong answers still allowed.
    pub attempts_left: u32,
    /// Digits in the code.
    pub digits: u8,
}

/// Why a code or a pairing request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Wrong code; more tries allowed.
    WrongCode {
        /// Tries left for this code.
        attempts_left: u32,
        /// The engine waits this long before sending the next try.
        retry_after: Option<Duration>,
    },
    /// The code ran out: ask for a new one.
    Expired,
    /// Too many wrong codes: ask for a new one.
    Exhausted,
    /// The server would not pair now (busy, rate limited, pairing closed…).
    Refused {
        /// Why, as the server said.
        reason: PairFailure,
        /// When it may work, if the server said (already clamped by the engine).
        retry_after: Option<Duration>,
    },
    /// Anything else (unreachable, connection lost…).
    Failed(String),
}

impl Rejection {
    /// The sentence shown under the code box.
    pub fn text(&self) -> String {
        match self {
            Rejection::WrongCode {
                attempts_left,
                retry_after,
            } => {
                let wait = retry_after
                    .filter(|w| *w >= Duration::from_millis(500))
                    .map(|w| format!("; next try in {}", wait_in_words(w)))
                    .unwrap_or_default();
                format!("wrong code, {attempts_left} attempts left{wait}")
            }
            Rejection::Expired => "code expired: ask again (n)".into(),
            Rejection::Exhausted => "too many wrong codes: ask for a new one (n)".into(),
            Rejection::Refused {
                reason,
                retry_after,
            } => format!(
                "pairing refused: {}",
                describe_refusal(*reason, *retry_after)
            ),
            Rejection::Failed(text) => text.clone(),
        }
    }
}

/// What a pairing task or a session reported.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The server shows a code (the first, or a new one).
    Challenge(Challenge),
    /// The code or the request was refused; `ended` when the task gave up (a new pairing
    /// must be started).
    Rejected {
        /// Why.
        why: Rejection,
        /// Whether the pairing task has ended.
        ended: bool,
    },
    /// The code was right: the pairing is saved. A session on the same connection follows.
    Paired(PairedServer),
    /// A session is open.
    Connected {
        /// The server as saved now (the token may be renewed).
        server: PairedServer,
        /// Where.
        addr: SocketAddr,
        /// How the address was found (`None` right after pairing).
        via: Option<Via>,
        /// Time the connection took.
        elapsed: Duration,
    },
    /// The session right after pairing could not be started.
    ConnectFailed {
        /// Why, for people.
        error: String,
        /// Set when the client must pair again.
        repair: Option<RepairReason>,
    },
    /// The link is opening a session (attempt 1 after a start or a loss).
    Connecting {
        /// The attempt's number.
        attempt: u32,
    },
    /// The link's session was lost; the link is already trying again.
    Lost {
        /// Why, for people.
        reason: String,
    },
    /// An attempt failed; the link tries again after `wait`.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// Until the next.
        wait: Duration,
        /// Why, for people.
        error: String,
    },
    /// The server no longer accepts this pairing; the link has stopped.
    RepairRequired {
        /// Why.
        reason: RepairReason,
    },
    /// The answer to a task.
    Reply {
        /// The request number the app gave it.
        id: u64,
        /// The result, or the error for people.
        result: Result<Value, String>,
        /// Round-trip time.
        rtt: Duration,
    },
    /// A notice pushed by the server.
    Notice {
        /// Its text.
        text: String,
    },
    /// Output of run `id`, as it comes.
    RunOutput {
        /// The run (the request number the app gave it).
        id: u64,
        /// Which stream.
        stream: OutputStream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Run `id` of a program ended (value tasks end with [`LinkEvent::Reply`]).
    RunDone {
        /// The run.
        id: u64,
        /// How it ended.
        status: RunStatus,
        /// From typing to the end.
        rtt: Duration,
    },
    /// The tasks this client may run (asked for after connecting).
    Tasks(Vec<TaskInfo>),
}

/// Side effects the event loop carries out for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Restore the terminal, close the session, exit.
    Quit,
    /// Start discovery as search `scan` (stopping any earlier one).
    Scan {
        /// Search id for its events.
        scan: u64,
    },
    /// Resolve `spec` (`HOST[:PORT]`) and ask it who it is; found servers come back as
    /// [`Msg::Scan`] with this `via`.
    Probe {
        /// Search id for its events.
        scan: u64,
        /// What to look up.
        spec: String,
        /// How to label it.
        via: Via,
    },
    /// Ask the server at `addr` for a code (replacing any other pairing or session).
    Pair {
        /// Link id for its events.
        link: u64,
        /// Where.
        addr: SocketAddr,
    },
    /// Answer with these digits.
    Submit {
        /// Which pairing.
        link: u64,
        /// The digits typed.
        code: String,
    },
    /// Ask for a fresh code on the same pairing.
    NewCode {
        /// Which pairing.
        link: u64,
    },
    /// Open a session with a paired server (replacing any other pairing or session).
    Connect {
        /// Link id for its events.
        link: u64,
        /// The saved pairing.
        server: PairedServer,
        /// An address to try first (the one just found); the saved ones and a search
        /// filtered on its id follow when it does not answer, then and whenever the link
        /// heals.
        addr: Option<SocketAddr>,
        /// How `addr` was found: typed by the person (`manual`) keeps it first whenever the
        /// link heals; one discovery found counts as a saved address after the first
        /// connection.
        via: Option<Via>,
    },
    /// Run a task on the open session.
    Run {
        /// Which session.
        link: u64,
        /// Request number, echoed in the reply.
        id: u64,
        /// Task name.
        task: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Stop run `id` of the session.
    CancelRun {
        /// Which session.
        link: u64,
        /// The run.
        id: u64,
    },
    /// Ask the session for the tasks this client may run.
    ListTasks {
        /// Which session.
        link: u64,
    },
    /// End the pairing or session in progress.
    Hangup,
    /// Read the saved pairings and send them back as [`Msg::Servers`].
    LoadServers,
    /// Forget a paired server (asking it to revoke the pairing too).
    Forget {
        /// Which one.
        server_id: PeerId,
    },
}
