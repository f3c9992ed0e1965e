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
    /// Show or hide the list of keys.
    Help,
    /// Focus the next pane.
    NextPane,
    /// Focus the previous pane.
    PrevPane,
    /// Move the selection (or the log) up one line.
    Up,
    /// Move the selection (or the log) down one line.
    Down,
    /// One page up.
    PageUp,
    /// One page down.
    PageDown,
    /// To the first line.
    Top,
    /// To the last line.
    Bottom,
    /// Revoke the selected client (asks first).
    Revoke,
    /// Type a notice for every connected client.
    Notice,
    /// Say yes in a dialog, or send what was typed.
    Confirm,
    /// Say no, close a dialog or leave the input.
    Cancel,
}

/// Where a binding applies. The app says which scopes are active; [`lookup`] tries
/// [`Scope::Global`] first, then the others in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, even while typing.
    Global,
    /// The main screen, whatever pane has focus.
    Main,
    /// The main screen with the clients table focused.
    Clients,
    /// The "revoke?" confirmation.
    Dialog,
    /// The notice input box. Keys not bound here are typed.
    Input,
    /// The help screen.
    Help,
}

impl Scope {
    /// Heading on the help screen.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Anywhere",
            Scope::Main => "Main screen",
            Scope::Clients => "Clients table",
            Scope::Dialog => "Confirmation",
            Scope::Input => "Notice input",
            Scope::Help => "This help",
        }
    }
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

    /// How the key is written in hints: `q`, `^C`, `↑`, `Tab`.
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

/// Every binding, in footer order within each scope.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::ctrl('c')],
        command: Command::Quit,
        scope: Scope::Global,
        help: "quit (always, even while typing)",
        hint: Some("quit"),
    },
    // Main screen.
    Binding {
        keys: &[Key::ch('q')],
        command: Command::Quit,
        scope: Scope::Main,
        help: "quit",
        hint: Some("quit"),
    },
    Binding {
        keys: &[Key::ch('?')],
        command: Command::Help,
        scope: Scope::Main,
        help: "show the keys",
        hint: Some("help"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Tab)],
        command: Command::NextPane,
        scope: Scope::Main,
        help: "focus the next pane (requests, clients, events)",
        hint: Some("pane"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::BackTab)],
        command: Command::PrevPane,
        scope: Scope::Main,
        help: "focus the previous pane",
        hint: None,
    },
    Binding {
        keys: &[Key::ch('x'), Key::plain(KeyCode::Delete)],
        command: Command::Revoke,
        scope: Scope::Clients,
        help: "revoke the selected client (asks first)",
        hint: Some("revoke"),
    },
    Binding {
        keys: &[Key::ch('n')],
        command: Command::Notice,
        scope: Scope::Main,
        help: "send a notice to every connected client",
        hint: Some("notice"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Up), Key::ch('k')],
        command: Command::Up,
        scope: Scope::Main,
        help: "move up",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::Down), Key::ch('j')],
        command: Command::Down,
        scope: Scope::Main,
        help: "move down",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::PageUp)],
        command: Command::PageUp,
        scope: Scope::Main,
        help: "one page up",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::PageDown)],
        command: Command::PageDown,
        scope: Scope::Main,
        help: "one page down",
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
        help: "to the bottom (the log follows new events again)",
        hint: None,
    },
    // Confirmation dialog.
    Binding {
        keys: &[Key::ch('y'), Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Dialog,
        help: "yes, revoke",
        hint: Some("revoke"),
    },
    Binding {
        keys: &[Key::ch('n'), Key::plain(KeyCode::Esc)],
        command: Command::Cancel,
        scope: Scope::Dialog,
        help: "no, keep the client",
        hint: Some("cancel"),
    },
    // Notice input.
    Binding {
        keys: &[Key::plain(KeyCode::Enter)],
        command: Command::Confirm,
        scope: Scope::Input,
        help: "send the notice",
        hint: Some("send"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Esc)],
        command: Command::Cancel,
        scope: Scope::Input,
        help: "close without sending",
        hint: Some("cancel"),
    },
    // Help screen.
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

/// Footer hints for `scopes`: `(key, word)` pairs, in the order of [`BINDINGS`]. Global bindings come last,
/// and only when no active binding already shows the same command.
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
        assert_eq!(lookup(&[Scope::Input], &ctrl_c), Some(Command::Quit));
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Input], &q), None, "q is typed in the input");
        assert_eq!(lookup(&[Scope::Main], &q), Some(Command::Quit));
        let x = key(KeyCode::Char('x'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Main], &x), None);
        assert_eq!(
            lookup(&[Scope::Clients, Scope::Main], &x),
            Some(Command::Revoke)
        );
        let shifted = key(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(lookup(&[Scope::Main], &shifted), Some(Command::Help));
        let plain_c = key(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Main], &plain_c), None);
    }

    #[test]
    fn footer_hints_come_from_the_bindings() {
        let main = hints(&[Scope::Clients, Scope::Main]);
        assert!(main.contains(&("q".into(), "quit")), "{main:?}");
        assert!(main.contains(&("x".into(), "revoke")), "{main:?}");
        assert!(
            !main.iter().any(|(k, _)| k == "^C"),
            "q already says quit: {main:?}"
        );
        let input = hints(&[Scope::Input]);
        assert_eq!(
            input,
            vec![
                ("Enter".into(), "send"),
                ("Esc".into(), "cancel"),
                ("^C".into(), "quit")
            ]
        );
        // Every hinted key really triggers its command.
        for scope in [
            Scope::Main,
            Scope::Clients,
            Scope::Dialog,
            Scope::Input,
            Scope::Help,
        ] {
            for b in BINDINGS.iter().filter(|b| b.scope == scope) {
                for k in b.keys {
                    let ev = KeyEvent::new(k.code, k.mods);
                    let scopes = if scope == Scope::Clients {
                        vec![Scope::Clients, Scope::Main]
                    } else {
                        vec![scope]
                    };
                    assert_eq!(lookup(&scopes, &ev), Some(b.command), "{k:?} in {scope:?}");
                }
            }
        }
    }
}
