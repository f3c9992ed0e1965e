//! Key bindings as data. `App::update` looks keys up here, and the footer and the help screen
//! are built from the same table, so a hint can never name a key that does nothing.
//!
//! Owns: which key means what, in which scope, and how keys are written for people. It must not
//! decide what a command does; that is the app's job.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks the app to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Leave the app.
    Quit,
    /// Show the list of keys.
    Help,
    /// Yes, go, send: pair or connect with the selected host, submit the code, run the task.
    Confirm,
    /// Back out: close a window, leave a screen, clear the input.
    Cancel,
    /// Move up (in the console: the previous task typed).
    Up,
    /// Move down (in the console: the next task typed).
    Down,
    /// One page up.
    PageUp,
    /// One page down.
    PageDown,
    /// To the first line.
    Top,
    /// To the last line.
    Bottom,
    /// Start the search again.
    Rescan,
    /// Type a server address by hand.
    AddAddress,
    /// Show the paired servers.
    Servers,
    /// Forget the selected paired server (asks first).
    Forget,
    /// Ask the server for a new pairing code.
    NewCode,
}

/// Where a binding applies. The app says which scopes are active; [`lookup`] tries
/// [`Scope::Global`] first, then the others in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, even while typing.
    Global,
    /// The scan screen.
    Scan,
    /// The paired servers list.
    Servers,
    /// Screens without a text input (scan, paired servers).
    Main,
    /// The code entry screen. Only digits are typed, so letters can be keys here.
    Code,
    /// The task console. Keys not bound here are typed.
    Console,
    /// The "add an address" box. Keys not bound here are typed.
    Address,
    /// The "forget this server?" confirmation.
    Dialog,
    /// The help screen.
    Help,
}

impl Scope {
    /// Heading on the help screen.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Anywhere",
            Scope::Scan => "Scan screen",
            Scope::Servers => "Paired servers",
            Scope::Main => "Scan screen and paired servers",
            Scope::Code => "Code entry (digits; spaces and dashes are skipped)",
            Scope::Console => "Task console (other keys are typed)",
            Scope::Address => "Address box",
            Scope::Dialog => "Confirmation",
            Scope::Help => "This help",
        }
    }

    /// Every scope, in the order the help screen lists them.
    pub const ALL: [Scope; 9] = [
        Scope::Global,
        Scope::Scan,
        Scope::Servers,
        Scope::Main,
        Scope::Code,
        Scope::Console,
        Scope::Address,
        Scope::Dialog,
        Scope::Help,
    ];
}

/// One key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl, Alt, Shift…
    pub mods: KeyModifiers,
}

impl Key {
    const fn plain(code: KeyCode) -> Self {
        Self {
            code,
            mods: KeyModifiers::NONE,
        }
    }

    const fn ch(c: char) -> Self {
        Self::plain(KeyCode::Char(c))
    }

    const fn ctrl(c: char) -> Self {
        Self {
            code: KeyCode::Char(c),
            mods: KeyModifiers::CONTROL,
        }
    }

    /// Whether `event` is this key. Shift is ignored for characters (it is already in the
    /// character: `?` arrives as Shift+`?` on some terminals) and for BackTab.
    pub fn matches(&self, event: &KeyEvent) -> bool {
        if event.code != self.code {
            return false;
        }
        let relevant = KeyModifiers::CONTROL | KeyModifiers::ALT;
        let mods = match event.code {
            KeyCode::Char(_) | KeyCode::BackTab => event.modifiers & relevant,
            _ => event.modifiers,
        };
        mods == self.mods
    }

    /// How the key is written in hints: `q`, `^C`, `↑`, `Enter`.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Delete => "Del".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            other => format!("{other:?}"),
        };
        if self.mods.contains(KeyModifiers::CONTROL) {
            format!("^{}", base.to_uppercase())
        } else {
            base
        }
    }
}

/// One line of the key map.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// Keys that trigger it; the first is the one the footer shows.
    pub keys: &'static [Key],
    /// What it does.
    pub command: Command,
    /// Where it applies.
    pub scope: Scope,
    /// Description on the help screen.
    pub help: &'static str,
    /// Word in the footer; `None` keeps it off the footer (it is still on the help screen).
    pub hint: Option<&'static str>,
}

impl Binding {
    /// All keys, as on the help screen: `↑/k`.
    pub fn keys_label(&self) -> String {
        self.keys
            .iter()
            .map(Key::label)
            .collect::<Vec<_>>()
            .join("/")
    }
}

const UP: &[Key] = &[Key::plain(KeyCode::Up), Key::ch('k')];
const DOWN: &[Key] = &[Key::plain(KeyCode::Down), Key::ch('j')];

/// Every binding, in footer order within each scope.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::ctrl('c')],
        command: Command::Quit,
        scope: Scope::Global,
        help: "quit (always, even while typing)",
        hint: Some("quit"),
    },
    // Screens without a text input.
    Binding {
        keys: &[Key::ch('?')],
        command: Command::Help,
        scope: Scope::Main,
        help: "show the keys",
        hint: Some("help"),
    },
    Binding {
        keys: &[Key::ch('q')],
        command: Command::Quit,
        scope: Scope::Main,
        help: "quit",
        hint: Some("quit"),
    },
    // Scan screen.
    Binding {
        keys: &[Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Scan,
        help: "pair with the selected server, or connect if it is paired",
        hint: Some("pair/connect"),
    },
    Binding {
        keys: &[Key::ch('r')],
        command: Command::Rescan,
        scope: Scope::Scan,
        help: "search again",
        hint: Some("rescan"),
    },
    Binding {
        keys: &[Key::ch('a')],
        command: Command::AddAddress,
        scope: Scope::Scan,
        help: "add a server by address (HOST or HOST:PORT)",
        hint: Some("add address"),
    },
    Binding {
        keys: &[Key::ch('p')],
        command: Command::Servers,
        scope: Scope::Scan,
        help: "show the paired servers",
        hint: Some("paired"),
    },
    // Paired servers.
    Binding {
        keys: &[Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Servers,
        help: "connect to the selected server (saved addresses, then a search)",
        hint: Some("connect"),
    },
    Binding {
        keys: &[Key::ch('x'), Key::plain(KeyCode::Delete)],
        command: Command::Forget,
        scope: Scope::Servers,
        help: "forget the selected server (asks first)",
        hint: Some("forget"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Esc)],
        command: Command::Cancel,
        scope: Scope::Servers,
        help: "back to the scan",
        hint: Some("back"),
    },
    // Moving in lists (scan screen and paired servers).
    Binding {
        keys: UP,
        command: Command::Up,
        scope: Scope::Main,
        help: "move up",
        hint: None,
    },
    Binding {
        keys: DOWN,
        command: Command::Down,
        scope: Scope::Main,
        help: "move down",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::Home), Key::ch('g')],
        command: Command::Top,
        scope: Scope::Main,
        help: "to the top",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::End), Key::ch('G')],
        command: Command::Bottom,
        scope: Scope::Main,
        help: "to the bottom",
        hint: None,
    },
    // Code entry.
    Binding {
        keys: &[Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Code,
        help: "pair with the code typed",
        hint: Some("pair"),
    },
    Binding {
        keys: &[Key::ch('n')],
        command: Command::NewCode,
        scope: Scope::Code,
        help: "ask the server for a new code",
        hint: Some("new code"),
    },
    Binding {
        keys: &[Key::ch('?')],
        command: Command::Help,
        scope: Scope::Code,
        help: "show the keys",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::Esc)],
        command: Command::Cancel,
        scope: Scope::Code,
        help: "stop pairing, back to the scan",
        hint: Some("back"),
    },
    // Task console.
    Binding {
        keys: &[Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Console,
        help: "run the task typed (ping, echo TEXT, time, info, …)",
        hint: Some("run"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Up)],
        command: Command::Up,
        scope: Scope::Console,
        help: "previous task in the history",
        hint: Some("history"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Down)],
        command: Command::Down,
        scope: Scope::Console,
        help: "next task in the history",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::PageUp)],
        command: Command::PageUp,
        scope: Scope::Console,
        help: "scroll the console back",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::PageDown)],
        command: Command::PageDown,
        scope: Scope::Console,
        help: "scroll the console forward",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::Esc)],
        command: Command::Cancel,
        scope: Scope::Console,
        help: "clear the input; when empty, disconnect and go back to the scan",
        hint: Some("back"),
    },
    // Address box.
    Binding {
        keys: &[Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Address,
        help: "look the address up and add the server",
        hint: Some("add"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Esc)],
        command: Command::Cancel,
        scope: Scope::Address,
        help: "close without adding",
        hint: Some("cancel"),
    },
    // Confirmation.
    Binding {
        keys: &[Key::ch('y'), Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Dialog,
        help: "yes, forget it",
        hint: Some("forget"),
    },
    Binding {
        keys: &[Key::ch('n'), Key::plain(KeyCode::Esc)],
        command: Command::Cancel,
        scope: Scope::Dialog,
        help: "no, keep it",
        hint: Some("cancel"),
    },
    // Help.
    Binding {
        keys: &[Key::plain(KeyCode::Esc), Key::ch('?')],
        command: Command::Cancel,
        scope: Scope::Help,
        help: "close this help",
        hint: Some("close"),
    },
    Binding {
        keys: &[Key::ch('q')],
        command: Command::Quit,
        scope: Scope::Help,
        help: "quit",
        hint: Some("quit"),
    },
];

/// The command `event` triggers in `scopes` (after [`Scope::Global`]), if any.
pub fn lookup(scopes: &[Scope], event: &KeyEvent) -> Option<Command> {
    std::iter::once(&Scope::Global)
        .chain(scopes)
        .flat_map(|scope| BINDINGS.iter().filter(move |b| b.scope == *scope))
        .find(|b| b.keys.iter().any(|k| k.matches(event)))
        .map(|b| b.command)
}

/// Footer hints for `scopes`: `(key, word)` pairs, in the order of [`BINDINGS`]. Global
/// bindings come last, and only when no active binding already shows the same command.
pub fn hints(scopes: &[Scope]) -> Vec<(String, &'static str)> {
    let active: Vec<&Binding> = BINDINGS
        .iter()
        .filter(|b| scopes.contains(&b.scope) && b.hint.is_some())
        .collect();
    let global = BINDINGS
        .iter()
        .filter(|b| b.scope == Scope::Global && b.hint.is_some())
        .filter(|g| !active.iter().any(|b| b.command == g.command));
    active
        .iter()
        .copied()
        .chain(global)
        .filter_map(|b| Some((b.keys.first()?.label(), b.hint?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn global_keys_win_and_scopes_are_respected() {
        let ctrl_c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for scope in Scope::ALL {
            assert_eq!(lookup(&[scope], &ctrl_c), Some(Command::Quit), "{scope:?}");
        }
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Console], &q), None, "q is typed");
        assert_eq!(lookup(&[Scope::Address], &q), None, "q is typed");
        assert_eq!(lookup(&[Scope::Code], &q), None, "an input has focus");
        assert_eq!(lookup(&[Scope::Scan, Scope::Main], &q), Some(Command::Quit));
        let r = key(KeyCode::Char('r'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Servers, Scope::Main], &r), None);
        assert_eq!(
            lookup(&[Scope::Scan, Scope::Main], &r),
            Some(Command::Rescan)
        );
        let shifted = key(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(lookup(&[Scope::Main], &shifted), Some(Command::Help));
        let plain_c = key(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Scan, Scope::Main], &plain_c), None);
        // In the console `k` is typed; only the arrow walks the history.
        let k = key(KeyCode::Char('k'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Console], &k), None);
    }

    #[test]
    fn footer_hints_come_from_the_bindings() {
        let scan = hints(&[Scope::Scan, Scope::Main]);
        for want in [
            ("Enter", "pair/connect"),
            ("r", "rescan"),
            ("a", "add address"),
            ("p", "paired"),
            ("q", "quit"),
        ] {
            assert!(scan.contains(&(want.0.into(), want.1)), "{scan:?}");
        }
        assert!(
            !scan.iter().any(|(k, _)| k == "^C"),
            "q already says quit: {scan:?}"
        );
        assert_eq!(
            hints(&[Scope::Code]),
            vec![
                ("Enter".into(), "pair"),
                ("n".into(), "new code"),
                ("Esc".into(), "back"),
                ("^C".into(), "quit")
            ]
        );
        // Every key of every binding really triggers its command.
        for b in BINDINGS.iter().filter(|b| b.scope != Scope::Global) {
            let scopes = match b.scope {
                Scope::Scan | Scope::Servers => vec![b.scope, Scope::Main],
                Scope::Main => vec![Scope::Scan, Scope::Main],
                other => vec![other],
            };
            for k in b.keys {
                let ev = KeyEvent::new(k.code, k.mods);
                assert_eq!(
                    lookup(&scopes, &ev),
                    Some(b.command),
                    "{k:?} in {:?}",
                    b.scope
                );
            }
        }
    }
}
