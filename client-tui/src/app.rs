//! State of the full-screen interface and the one function that changes it.
//!
//! Owns: everything the screen shows, and [`App::update`], which takes one [`Msg`] (a key, a
//! tick, a discovery event, something a network task reported) and returns the [`Action`]s
//! the event loop must carry out. It must not touch the terminal, the network or the engine:
//! side effects are asked for as actions, so every transition can be tested without either.
//!
//! Network tasks are told apart by number: each search has a `scan` id and each pairing or
//! connection a `link` id, and messages from a search or link that was replaced are ignored.
//!
//! Searches are handled here; `keys` has the key handling, `links` pairing and sessions,
//! `msg` the messages and actions, and `state` the parts of the state.

use std::collections::HashSet;

use crossterm::event::KeyEventKind;
use csc_shared::discovery::{DiscoveryEvent, Found, ScanProgress, Via};
use csc_shared::identity::PeerId;
use csc_shared::state::PairedServer;

use crate::keymap::Scope;

mod keys;
mod links;
mod msg;
mod state;

pub use keys::arg_hint;
#[cfg(test)]
pub use links::OUTPUT_LINE_MAX;
pub use msg::*;
pub use state::*;

/// Console entries kept; the oldest go first.
pub const CONSOLE_CAPACITY: usize = 1000;

/// Tasks kept in the console history.
const HISTORY_CAPACITY: usize = 200;

/// Fixed facts the app starts with.
#[derive(Debug, Clone)]
pub struct Options {
    /// This client's name.
    pub name: String,
    /// Its short id.
    pub short: String,
    /// Colour or not.
    pub color: bool,
    /// Whether any discovery method is on.
    pub discovery: bool,
    /// `--server`: probed with every search, and paired with at once when unpaired.
    pub manual: Option<String>,
    /// `--server-id`/`--server-name`: only this paired server is connected automatically.
    pub target: Option<String>,
}

/// The state of the full-screen interface.
#[derive(Debug)]
pub struct App {
    /// This client's name.
    pub name: String,
    /// Its short id.
    pub short: String,
    /// Colour or not.
    pub color: bool,
    /// The time as of the last tick.
    pub clock: Clock,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// The screen shown.
    pub screen: Screen,
    /// A window over it.
    pub overlay: Overlay,
    /// The current search.
    pub scan: ScanState,
    /// Servers found by it, in the order found.
    pub hosts: Vec<Found>,
    /// Index of the selected host.
    pub selected: usize,
    /// First host row shown.
    pub offset: usize,
    /// Saved pairings.
    pub paired: Vec<PairedServer>,
    /// Index of the selected pairing in the paired servers view.
    pub paired_selected: usize,
    /// A pairing in progress.
    pub pairing: Option<PairState>,
    /// A connection, open or being (re)opened.
    pub conn: Option<ConnState>,
    /// The line above the footer.
    pub status: Option<Status>,
    /// Paired servers the server no longer accepts: Enter pairs them again.
    pub needs_repair: HashSet<PeerId>,
    manual: Option<String>,
    auto_pair_manual: bool,
    target: Option<String>,
    /// Servers the person disconnected from: not connected to automatically again.
    declined: HashSet<PeerId>,
    next_scan: u64,
    next_link: u64,
}

impl App {
    /// A fresh app at `clock` on a terminal of `size`, knowing the saved pairings.
    pub fn new(
        options: Options,
        clock: Clock,
        size: (u16, u16),
        paired: Vec<PairedServer>,
    ) -> Self {
        Self {
            name: options.name,
            short: options.short,
            color: options.color,
            clock,
            size,
            screen: Screen::Scan,
            overlay: Overlay::None,
            scan: ScanState::new(0, clock.instant, options.discovery),
            hosts: Vec::new(),
            selected: 0,
            offset: 0,
            paired,
            paired_selected: 0,
            pairing: None,
            conn: None,
            status: None,
            needs_repair: HashSet::new(),
            auto_pair_manual: options.manual.is_some(),
            manual: options.manual,
            target: options.target,
            declined: HashSet::new(),
            next_scan: 0,
            next_link: 0,
        }
    }

    /// What to do first: search.
    pub fn start(&mut self) -> Vec<Action> {
        self.start_scan()
    }

    /// Apply one message; the returned actions are for the event loop to carry out, in order.
    pub fn update(&mut self, msg: Msg) -> Vec<Action> {
        match msg {
            Msg::Key(key) if key.kind == KeyEventKind::Press => self.on_key(key),
            Msg::Key(_) => Vec::new(),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.keep_selection_visible();
                self.fit_console();
                Vec::new()
            }
            Msg::Tick(clock) => self.on_tick(clock),
            Msg::Scan { scan, event } if scan == self.scan.id => self.on_discovery(event),
            Msg::Scan { .. } => Vec::new(),
            Msg::ProbeFailed { spec, error } => {
                self.set_status(Level::Error, format!("nothing found at {spec}: {error}"));
                Vec::new()
            }
            Msg::Link { link, event } => self.on_link(link, event),
            Msg::Servers(list) => {
                self.paired = list;
                self.paired_selected = self
                    .paired_selected
                    .min(self.paired.len().saturating_sub(1));
                Vec::new()
            }
            Msg::Forgot {
                name,
                short,
                revoked,
            } => {
                match revoked {
                    Ok(()) => self.set_status(
                        Level::Good,
                        format!("forgot {name} ({short}); the server revoked the pairing"),
                    ),
                    Err(e) => self.set_status(
                        Level::Warn,
                        format!("forgot {name} ({short}) here; the server was not told: {e}"),
                    ),
                }
                vec![Action::LoadServers]
            }
            Msg::Log(level, text) => {
                self.set_status(level, text);
                Vec::new()
            }
        }
    }

    /// Whether `id` is paired (and the pairing still works as far as we know).
    pub fn is_paired(&self, id: &PeerId) -> bool {
        self.paired_record(id).is_some()
    }

    fn paired_record(&self, id: &PeerId) -> Option<&PairedServer> {
        self.paired.iter().find(|s| s.server_id == *id)
    }

    /// Key scopes active now, most specific first.
    pub fn scopes(&self) -> Vec<Scope> {
        match &self.overlay {
            Overlay::Help => return vec![Scope::Help],
            Overlay::Address(_) => return vec![Scope::Address],
            Overlay::Confirm(_) => return vec![Scope::Dialog],
            Overlay::Tasks => return vec![Scope::TaskList],
            Overlay::None => {}
        }
        self.screen_scopes()
    }

    /// Key scopes of the screen under any window, most specific first.
    pub fn screen_scopes(&self) -> Vec<Scope> {
        match self.screen {
            Screen::Scan => vec![Scope::Scan, Scope::Main],
            Screen::Servers => vec![Scope::Servers, Scope::Main],
            Screen::Pair => vec![Scope::Code],
            Screen::Console => vec![Scope::Console],
        }
    }

    fn set_status(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some(Status {
            level,
            text: text.into(),
        });
    }

    fn start_scan(&mut self) -> Vec<Action> {
        self.next_scan += 1;
        let scan = self.next_scan;
        self.scan = ScanState::new(scan, self.clock.instant, self.scan.enabled);
        self.hosts.clear();
        self.selected = 0;
        self.offset = 0;
        let mut actions = Vec::new();
        if self.scan.enabled {
            actions.push(Action::Scan { scan });
        }
        // Saved addresses first: the usual case is a server that has not moved.
        let mut specs: Vec<(String, Via)> = Vec::new();
        for addr in self.paired.iter().flat_map(|s| &s.addrs) {
            let spec = addr.to_string();
            if !specs.iter().any(|(s, _)| *s == spec) {
                specs.push((spec, Via::Last));
            }
        }
        if let Some(spec) = &self.manual {
            specs.push((spec.clone(), Via::Manual));
        }
        actions.extend(
            specs
                .into_iter()
                .map(|(spec, via)| Action::Probe { scan, spec, via }),
        );
        actions
    }

    fn on_discovery(&mut self, event: DiscoveryEvent) -> Vec<Action> {
        match event {
            DiscoveryEvent::Started {
                methods,
                subnets,
                nothing_to_search,
                ..
            } => {
                self.scan.begun = true;
                self.scan.nothing_to_search = nothing_to_search;
                self.scan.methods = methods.into_iter().map(|m| (m, false)).collect();
                self.scan.subnets = subnets
                    .into_iter()
                    .map(|(name, total)| Subnet {
                        name,
                        probed: 0,
                        total,
                    })
                    .collect();
            }
            DiscoveryEvent::Progress(ScanProgress {
                subnet,
                probed,
                total,
                ..
            }) => match self.scan.subnets.iter_mut().find(|s| s.name == subnet) {
                Some(s) => {
                    s.probed = probed;
                    s.total = total;
                }
                None => self.scan.subnets.push(Subnet {
                    name: subnet,
                    probed,
                    total,
                }),
            },
            DiscoveryEvent::Finished(via) => {
                if let Some(m) = self.scan.methods.iter_mut().find(|(m, _)| *m == via) {
                    m.1 = true;
                }
            }
            DiscoveryEvent::Done { elapsed, .. } => {
                self.scan.finished = Some(elapsed);
                for m in &mut self.scan.methods {
                    m.1 = true;
                }
            }
            DiscoveryEvent::Found(found) => return self.on_found(found),
        }
        Vec::new()
    }

    fn on_found(&mut self, found: Found) -> Vec<Action> {
        if let Some(h) = self
            .hosts
            .iter_mut()
            .find(|h| h.server_id == found.server_id && h.addr == found.addr)
        {
            if !h.verified && found.verified {
                *h = found;
            }
            return Vec::new();
        }
        self.hosts.push(found.clone());
        if found.via == Via::Manual {
            self.selected = self.hosts.len() - 1;
            self.keep_selection_visible();
            self.status = None;
        }
        let idle = self.screen == Screen::Scan
            && self.pairing.is_none()
            && self.conn.is_none()
            && matches!(self.overlay, Overlay::None | Overlay::Help);
        if !idle {
            return Vec::new();
        }
        // "The server's address changed, nothing to do": a paired server found is connected
        // to at once, unless the person left it or it needs pairing again.
        if let Some(server) = self.paired_record(&found.server_id).cloned() {
            let wanted = self
                .target
                .as_deref()
                .is_none_or(|t| server.server_id.matches(t) || server.name.eq_ignore_ascii_case(t));
            if wanted
                && !self.declined.contains(&server.server_id)
                && !self.needs_repair.contains(&server.server_id)
            {
                self.overlay = Overlay::None;
                return self.connect(server, Some(found.addr), Some(found.via));
            }
            return Vec::new();
        }
        // `--server` names the server to pair with: no need to press Enter.
        if found.via == Via::Manual && self.auto_pair_manual {
            self.auto_pair_manual = false;
            self.overlay = Overlay::None;
            return self.begin_pairing(&found);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
