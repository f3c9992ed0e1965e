//! Key bindings as data. `App::update` looks keys up here, and the footer and the help screen
//! are built from the same table, so a hint can never name a key that does nothing.
//!
//! Owns: which key means what, in which scope (matching and wording keys is `tui_kit::keymap`'s).
//! It must not decide what a command does; that is the app's job.

use crossterm::event::KeyCode;
use tui_kit::keymap::{Key, KeyMap};

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
    /// Accept pairing requests (open a window in window mode, end a closure in any mode).
    OpenPairing,
    /// Refuse pairing requests until opened again.
    ClosePairing,
    /// Draw a code for the next request, for `client-tui pair --code`.
    CodeAhead,
    /// Read the configuration file's tasks again.
    Reload,
    /// Stop the selected run (no confirmation: its program gets SIGTERM, then SIGKILL).
    StopRun,
    /// Say yes in a dialog, or send what was typed.
    Confirm,
    /// Say no, close a dialog or leave the input.
    Cancel,
}

/// Where a binding applies. The app says which scopes are active; `MAP.lookup` tries
/// [`Scope::Global`] first, then the others in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, even while typing.
    Global,
    /// The main screen, whatever pane has focus.
    Main,
    /// The main screen with the clients table focused.
    Clients,
    /// The main screen with the runs table focused.
    Runs,
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
            Scope::Runs => "Runs table",
            Scope::Dialog => "Confirmation",
            Scope::Input => "Notice input",
            Scope::Help => "This help",
        }
    }
}

/// One line of the key map.
pub type Binding = tui_kit::keymap::Binding<Command, Scope>;

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
        help: "focus the next pane (requests, clients, runs, events)",
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
        keys: &[Key::ch('s')],
        command: Command::StopRun,
        scope: Scope::Runs,
        help: "stop the selected run (at once: SIGTERM, then SIGKILL)",
        hint: Some("stop run"),
    },
    Binding {
        keys: &[Key::ch('n')],
        command: Command::Notice,
        scope: Scope::Main,
        help: "send a notice to every connected client",
        hint: Some("notice"),
    },
    Binding {
        keys: &[Key::ch('o')],
        command: Command::OpenPairing,
        scope: Scope::Main,
        help: "open pairing (a window in window mode; also ends a closure after too many wrong codes)",
        hint: Some("open pairing"),
    },
    Binding {
        keys: &[Key::ch('p')],
        command: Command::CodeAhead,
        scope: Scope::Main,
        help: "draw a code before any request, to type on the client with client-tui pair --code",
        hint: None,
    },
    Binding {
        keys: &[Key::ch('c')],
        command: Command::ClosePairing,
        scope: Scope::Main,
        help: "close pairing: refuse requests until opened again",
        hint: None,
    },
    Binding {
        keys: &[Key::ch('r')],
        command: Command::Reload,
        scope: Scope::Main,
        help: "reload the tasks from the configuration file (as SIGHUP does)",
        hint: Some("reload"),
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
    // Confirmation dialog: only `y` revokes (Enter is no answer to a question that cannot
    // be undone); `n` is "no" here, never a notice, and the window says so.
    Binding {
        keys: &[Key::ch('y')],
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
        hint: Some("keep"),
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

/// The key map: [`BINDINGS`], with [`Scope::Global`] tried first. `App::update` looks keys
/// up with `MAP.lookup`; the footer and windows word their hints with `MAP.hints`.
pub const MAP: KeyMap<Command, Scope> = KeyMap {
    bindings: BINDINGS,
    global: Scope::Global,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyEvent, KeyModifiers};

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn global_keys_win_and_scopes_are_respected() {
        let ctrl_c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(MAP.lookup(&[Scope::Input], &ctrl_c), Some(Command::Quit));
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(
            MAP.lookup(&[Scope::Input], &q),
            None,
            "q is typed in the input"
        );
        assert_eq!(MAP.lookup(&[Scope::Main], &q), Some(Command::Quit));
        let x = key(KeyCode::Char('x'), KeyModifiers::NONE);
        assert_eq!(MAP.lookup(&[Scope::Main], &x), None);
        assert_eq!(
            MAP.lookup(&[Scope::Clients, Scope::Main], &x),
            Some(Command::Revoke)
        );
        let shifted = key(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(MAP.lookup(&[Scope::Main], &shifted), Some(Command::Help));
        let plain_c = key(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(MAP.lookup(&[Scope::Input], &plain_c), None, "c is typed");
        assert_eq!(
            MAP.lookup(&[Scope::Main], &plain_c),
            Some(Command::ClosePairing)
        );
    }

    #[test]
    fn footer_hints_come_from_the_bindings() {
        let main = MAP.hints(&[Scope::Clients, Scope::Main]);
        assert!(main.contains(&("q".into(), "quit")), "{main:?}");
        assert!(main.contains(&("x".into(), "revoke")), "{main:?}");
        assert!(main.contains(&("r".into(), "reload")), "{main:?}");
        assert!(!main.iter().any(|(_, w)| *w == "stop run"), "{main:?}");
        let runs = MAP.hints(&[Scope::Runs, Scope::Main]);
        assert!(runs.contains(&("s".into(), "stop run")), "{runs:?}");
        assert!(!runs.iter().any(|(_, w)| *w == "revoke"), "{runs:?}");
        assert!(
            !main.iter().any(|(k, _)| k == "^C"),
            "q already says quit: {main:?}"
        );
        let input = MAP.hints(&[Scope::Input]);
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
            Scope::Runs,
            Scope::Dialog,
            Scope::Input,
            Scope::Help,
        ] {
            for b in BINDINGS.iter().filter(|b| b.scope == scope) {
                for k in b.keys {
                    let ev = KeyEvent::new(k.code, k.mods);
                    let scopes = if matches!(scope, Scope::Clients | Scope::Runs) {
                        vec![scope, Scope::Main]
                    } else {
                        vec![scope]
                    };
                    assert_eq!(
                        MAP.lookup(&scopes, &ev),
                        Some(b.command),
                        "{k:?} in {scope:?}"
                    );
                }
            }
        }
    }
}
