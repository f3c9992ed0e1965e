//! Keys: what each key does on each screen and in each window, looked up in the key map.
//! Part of `App::update`; returns actions like the rest of it.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use csc_shared::discovery::Via;
use tui_input::{Input, InputRequest};

use super::links::push_entry;
use super::*;
use crate::keymap::{self, Command, Scope};
use tui_kit::keymap::Key;

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let command = keymap::MAP.lookup(&self.scopes(), &key);
        if command == Some(Command::Quit) {
            // In the console, the first Ctrl-C stops the runs in progress; the next quits.
            if self.screen == Screen::Console
                && matches!(self.overlay, Overlay::None)
                && let Some(actions) = self.cancel_runs()
            {
                return actions;
            }
            return vec![Action::Quit];
        }
        match &mut self.overlay {
            Overlay::Tasks => {
                if command == Some(Command::Cancel) {
                    self.overlay = Overlay::None;
                }
                return Vec::new();
            }
            Overlay::Help => {
                if command == Some(Command::Cancel) {
                    self.overlay = Overlay::None;
                }
                return Vec::new();
            }
            Overlay::Confirm(target) => {
                return match command {
                    Some(Command::Confirm) => {
                        let server_id = target.server_id;
                        let text = format!("forgetting {}…", target.name);
                        self.overlay = Overlay::None;
                        self.set_status(Level::Info, text);
                        vec![Action::Forget { server_id }]
                    }
                    Some(Command::Cancel) => {
                        self.overlay = Overlay::None;
                        Vec::new()
                    }
                    _ => Vec::new(),
                };
            }
            Overlay::Address(input) => {
                return match command {
                    Some(Command::Confirm) => {
                        let spec = input.value().trim().to_string();
                        self.overlay = Overlay::None;
                        if spec.is_empty() {
                            return Vec::new();
                        }
                        self.set_status(Level::Info, format!("asking {spec} who it is…"));
                        vec![Action::Probe {
                            scan: self.scan.id,
                            spec,
                            via: Via::Manual,
                        }]
                    }
                    Some(Command::Cancel) => {
                        self.overlay = Overlay::None;
                        Vec::new()
                    }
                    _ => {
                        edit(input, &key);
                        Vec::new()
                    }
                };
            }
            Overlay::None => {}
        }
        match self.screen {
            Screen::Scan | Screen::Servers if command.is_none() => {
                self.explain(&key);
                Vec::new()
            }
            Screen::Scan => self.on_scan_key(command),
            Screen::Servers => self.on_servers_key(command),
            Screen::Pair => self.on_code_key(command, key),
            Screen::Console => self.on_console_key(command, key),
        }
    }

    /// Say why `key` did nothing on the scan screen or the paired servers: the one where it
    /// works, or that it is no key at all. No key is silent.
    fn explain(&mut self, key: &KeyEvent) {
        let pressed = Key {
            code: key.code,
            mods: key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT),
        }
        .label();
        let elsewhere = keymap::BINDINGS
            .iter()
            .filter(|b| matches!(b.scope, Scope::Scan | Scope::Servers))
            .find(|b| b.keys.iter().any(|k| k.matches(key)));
        let text = match elsewhere {
            Some(b) if b.scope == Scope::Scan => {
                format!(
                    "{pressed} works on the scan screen (Esc goes back): {}",
                    b.help
                )
            }
            Some(b) => format!(
                "{pressed} works in the paired servers (p lists them): {}",
                b.help
            ),
            None => format!("{pressed} does nothing here: ? lists the keys"),
        };
        self.set_status(Level::Info, text);
    }

    pub(super) fn on_scan_key(&mut self, command: Option<Command>) -> Vec<Action> {
        match command {
            Some(Command::Help) => self.overlay = Overlay::Help,
            Some(Command::Up) => self.move_by(-1),
            Some(Command::Down) => self.move_by(1),
            Some(Command::Top) => self.move_by(isize::MIN),
            Some(Command::Bottom) => self.move_by(isize::MAX),
            Some(Command::Rescan) => {
                self.status = None;
                return self.start_scan();
            }
            Some(Command::AddAddress) => self.overlay = Overlay::Address(Input::default()),
            Some(Command::Servers) => {
                self.screen = Screen::Servers;
                return vec![Action::LoadServers];
            }
            Some(Command::Confirm) => {
                let Some(host) = self.hosts.get(self.selected).cloned() else {
                    self.set_status(
                        Level::Info,
                        "no server to pair with yet: wait for the search, or a adds an address",
                    );
                    return Vec::new();
                };
                self.declined.remove(&host.server_id);
                return match self.paired_record(&host.server_id).cloned() {
                    Some(server) if !self.needs_repair.contains(&host.server_id) => {
                        self.connect(server, Some(host.addr), Some(host.via))
                    }
                    _ => self.begin_pairing(&host),
                };
            }
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn on_servers_key(&mut self, command: Option<Command>) -> Vec<Action> {
        let last = self.paired.len().saturating_sub(1);
        match command {
            Some(Command::Help) => self.overlay = Overlay::Help,
            Some(Command::Cancel) => self.screen = Screen::Scan,
            Some(Command::Up) => self.paired_selected = self.paired_selected.saturating_sub(1),
            Some(Command::Down) => self.paired_selected = (self.paired_selected + 1).min(last),
            Some(Command::Top) => self.paired_selected = 0,
            Some(Command::Bottom) => self.paired_selected = last,
            Some(Command::Forget) => match self.paired.get(self.paired_selected) {
                Some(s) => {
                    self.overlay = Overlay::Confirm(ForgetTarget {
                        server_id: s.server_id,
                        name: s.name.clone(),
                    });
                }
                None => self.set_status(Level::Info, "no paired server to forget"),
            },
            Some(Command::Confirm) => match self.paired.get(self.paired_selected).cloned() {
                Some(server) => {
                    self.declined.remove(&server.server_id);
                    return self.connect(server, None, None);
                }
                None => self.set_status(Level::Info, "no paired server to connect to"),
            },
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn on_code_key(&mut self, command: Option<Command>, key: KeyEvent) -> Vec<Action> {
        let Some(pair) = self.pairing.as_mut() else {
            return Vec::new();
        };
        match command {
            Some(Command::Help) => self.overlay = Overlay::Help,
            Some(Command::Cancel) => {
                self.pairing = None;
                self.screen = Screen::Scan;
                return vec![Action::Hangup];
            }
            Some(Command::Confirm) => {
                if pair.phase != PairPhase::Entering {
                    let why = waiting(pair.phase);
                    self.set_status(Level::Info, why);
                    return Vec::new();
                }
                let typed = pair.input.value().to_string();
                if typed.len() != usize::from(pair.digits) {
                    pair.error = Some(format!(
                        "the code has {} digits; {} typed",
                        pair.digits,
                        typed.len()
                    ));
                    return Vec::new();
                }
                pair.phase = PairPhase::Checking;
                pair.error = None;
                return vec![Action::Submit {
                    link: pair.link,
                    code: typed,
                }];
            }
            Some(Command::NewCode) => match pair.phase {
                PairPhase::Failed => {
                    let (addr, via) = (pair.addr, pair.via);
                    let (name, id) = (pair.server_name.clone(), pair.server_id);
                    let actions = self.begin_pairing_at(addr, via, name, id);
                    return actions;
                }
                PairPhase::Entering | PairPhase::Expired => {
                    pair.phase = PairPhase::Requesting;
                    pair.input.reset();
                    pair.error = None;
                    pair.expires_at = None;
                    return vec![Action::NewCode { link: pair.link }];
                }
                PairPhase::Requesting | PairPhase::Checking => {
                    let why = waiting(pair.phase);
                    self.set_status(Level::Info, why);
                }
            },
            _ if pair.phase == PairPhase::Checking => {
                self.set_status(Level::Info, waiting(PairPhase::Checking));
            }
            _ => {
                if !edit_code(&mut pair.input, usize::from(pair.digits), &key) {
                    self.set_status(Level::Info, "only digits go in the code");
                }
            }
        }
        Vec::new()
    }

    pub(super) fn on_console_key(
        &mut self,
        command: Option<Command>,
        key: KeyEvent,
    ) -> Vec<Action> {
        let page = crate::ui::console_rows(self).max(1);
        let Some(conn) = self.conn.as_mut() else {
            return Vec::new();
        };
        match command {
            // `?` is typed when something is being typed; on an empty line it shows the keys.
            Some(Command::Help) if !conn.input.value().is_empty() => edit(&mut conn.input, &key),
            Some(Command::Help) => self.overlay = Overlay::Help,
            Some(Command::Tasks) => self.overlay = Overlay::Tasks,
            Some(Command::Complete) => complete(conn),
            Some(Command::Cancel) => {
                if !conn.input.value().is_empty() {
                    conn.input.reset();
                    conn.history_pos = None;
                    return Vec::new();
                }
                if let Some(actions) = self.cancel_runs() {
                    return actions;
                }
                let Some(conn) = self.conn.as_mut() else {
                    return Vec::new();
                };
                self.declined.insert(conn.server.server_id);
                let name = conn.server.name.clone();
                self.conn = None;
                self.screen = Screen::Scan;
                self.set_status(Level::Info, format!("disconnected from {name}"));
                return vec![Action::Hangup];
            }
            Some(Command::Confirm) => {
                let line = conn.input.value().trim().to_string();
                if line.is_empty() {
                    return Vec::new();
                }
                conn.input.reset();
                conn.history_pos = None;
                conn.draft.clear();
                if conn.history.last() != Some(&line) {
                    conn.history.push(line.clone());
                    if conn.history.len() > HISTORY_CAPACITY {
                        conn.history.remove(0);
                    }
                }
                let unix = self.clock.unix;
                push_entry(conn, EntryKind::Command, format!("> {line}"), None, unix);
                conn.scroll = 0;
                if !matches!(conn.state, LinkState::Connected { .. }) {
                    // Sent as soon as the link is back, or failed when it is not in time.
                    push_entry(
                        conn,
                        EntryKind::Info,
                        "not connected: the task waits for the connection".into(),
                        None,
                        unix,
                    );
                }
                let mut words = line.split_whitespace().map(str::to_string);
                let task = words.next().unwrap_or_default();
                conn.next_id += 1;
                conn.running.insert(
                    conn.next_id,
                    Running {
                        task: task.clone(),
                        started: self.clock.instant,
                        cancelling: false,
                    },
                );
                return vec![Action::Run {
                    link: conn.link,
                    id: conn.next_id,
                    task,
                    args: words.collect(),
                }];
            }
            Some(Command::Up) => {
                if conn.history.is_empty() {
                    return Vec::new();
                }
                let pos = match conn.history_pos {
                    None => {
                        conn.draft = conn.input.value().to_string();
                        conn.history.len() - 1
                    }
                    Some(p) => p.saturating_sub(1),
                };
                conn.history_pos = Some(pos);
                conn.input = Input::new(conn.history[pos].clone());
            }
            Some(Command::Down) => match conn.history_pos {
                Some(p) if p + 1 < conn.history.len() => {
                    conn.history_pos = Some(p + 1);
                    conn.input = Input::new(conn.history[p + 1].clone());
                }
                Some(_) => {
                    conn.history_pos = None;
                    conn.input = Input::new(std::mem::take(&mut conn.draft));
                }
                None => {}
            },
            Some(Command::PageUp) => {
                let max = conn.line_count().saturating_sub(page);
                conn.scroll = (conn.scroll + page).min(max);
            }
            Some(Command::PageDown) => conn.scroll = conn.scroll.saturating_sub(page),
            _ => edit(&mut conn.input, &key),
        }
        Vec::new()
    }

    /// Stop the runs in progress that were not asked to stop yet; `None` when there are
    /// none (then the key does what it does otherwise).
    pub(super) fn cancel_runs(&mut self) -> Option<Vec<Action>> {
        let unix = self.clock.unix;
        let conn = self.conn.as_mut()?;
        let link = conn.link;
        let ids: Vec<u64> = conn
            .running
            .iter_mut()
            .filter(|(_, r)| !r.cancelling)
            .map(|(id, r)| {
                r.cancelling = true;
                *id
            })
            .collect();
        if ids.is_empty() {
            return None;
        }
        push_entry(
            conn,
            EntryKind::Info,
            format!(
                "cancelling {} (Ctrl-C again quits)",
                if ids.len() == 1 {
                    "the run in progress".to_string()
                } else {
                    format!("{} runs in progress", ids.len())
                }
            ),
            None,
            unix,
        );
        Some(
            ids.into_iter()
                .map(|id| Action::CancelRun { link, id })
                .collect(),
        )
    }

    pub(super) fn move_by(&mut self, delta: isize) {
        let last = self.hosts.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
        self.keep_selection_visible();
    }

    /// The host list's offset after the selection or the viewport changed: the selection in
    /// view, and no row that would fit hidden above.
    pub(super) fn keep_selection_visible(&mut self) {
        let rows = crate::ui::host_rows(self);
        self.offset =
            crate::ui::scroll_into_view(self.offset, self.selected, rows, self.hosts.len());
    }

    /// The console after the viewport changed: its lines wrap at the new width, and its
    /// scroll stays within them. A terminal too small to draw keeps the last width.
    pub(super) fn fit_console(&mut self) {
        let Some(width) = crate::ui::console_width(self) else {
            return;
        };
        let rows = crate::ui::console_rows(self);
        if let Some(conn) = self.conn.as_mut() {
            conn.width = width;
            conn.scroll = conn.scroll.min(conn.line_count().saturating_sub(rows));
        }
    }
}

/// Tab in the console: complete the task name being typed (as far as the tasks that start
/// with it agree), and show the arguments of the task it names.
pub(super) fn complete(conn: &mut ConnState) {
    let line = conn.input.value().to_string();
    let word = line.trim_start();
    if word.contains(char::is_whitespace) {
        return;
    }
    let matches: Vec<&str> = conn
        .tasks
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| n.starts_with(word))
        .collect();
    let Some(first) = matches.first() else {
        return;
    };
    let mut common = first.to_string();
    for m in &matches[1..] {
        while !m.starts_with(&common) {
            common.pop();
        }
    }
    let done = matches.len() == 1;
    conn.input = Input::new(if done { format!("{common} ") } else { common });
}

/// What the console shows under the input: the arguments of the task typed.
pub fn arg_hint(conn: &ConnState) -> Option<String> {
    let name = conn.input.value().split_whitespace().next()?;
    let task = conn.tasks.iter().find(|t| t.name == name)?;
    let mut hint = task.name.clone();
    for a in &task.args {
        hint.push_str(&format!(" <{}: {}>", a.name, a.pattern));
    }
    if task.args.is_empty() {
        hint.push_str(" (no arguments)");
    }
    if !task.description.is_empty() {
        hint.push_str(&format!(" · {}", task.description));
    }
    Some(hint)
}

/// Pass an editing key to a text input.
pub(super) fn edit(input: &mut Input, key: &KeyEvent) {
    if let Some(req) = tui_input::backend::crossterm::to_input_request(&Event::Key(*key)) {
        input.handle(req);
    }
}

/// Pass a key to the code box: digits up to `max`, editing keys; spaces and dashes are
/// skipped, so a code can be typed as it is shown (`123 456`, `123-456`). `false` for a
/// character that has no place in a code (the caller says so).
pub(super) fn edit_code(input: &mut Input, max: usize, key: &KeyEvent) -> bool {
    match key.code {
        KeyCode::Char(c) if c.is_ascii_digit() => {
            if input.value().len() < max {
                input.handle(InputRequest::InsertChar(c));
            }
        }
        KeyCode::Char(' ' | '-') => {}
        KeyCode::Char(_) => return false,
        _ => edit(input, key),
    }
    true
}

/// Why the code screen takes no code now.
fn waiting(phase: PairPhase) -> &'static str {
    match phase {
        PairPhase::Requesting => "a new code is on its way from the server",
        PairPhase::Checking => "the code is being checked",
        PairPhase::Failed => "pairing stopped: n starts it again",
        PairPhase::Entering | PairPhase::Expired => {
            "this code can no longer be used: n asks for a new one"
        }
    }
}
