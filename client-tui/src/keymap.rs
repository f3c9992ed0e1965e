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
    /// Complete the task name typed (and show its arguments).
    Complete,
    /// Show the tasks the server offers.
    Tasks,
}

/// Where a binding applies. The app says which scopes are active; `MAP.lookup` tries
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
    /// The list of the server's tasks.
    TaskList,
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
            Scope::TaskList => "Task list",
        }
    }

    /// Every scope, in the order the help screen lists them.
    pub const ALL: [Scope; 10] = [
        Scope::Global,
        Scope::Scan,
        Scope::Servers,
        Scope::Main,
        Scope::Code,
        Scope::Console,
        Scope::Address,
        Scope::Dialog,
        Scope::TaskList,
        Scope::Help,
    ];
}

/// One line of the key map.
pub type Binding = tui_kit::keymap::Binding<Command, Scope>;

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
        help: "clear the input; when empty, cancel the runs in progress, then disconnect",
        hint: Some("back"),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Tab)],
        command: Command::Complete,
        scope: Scope::Console,
        help: "complete the task name, and show its arguments",
        hint: Some("complete"),
    },
    Binding {
        keys: &[Key::ctrl('t')],
        command: Command::Tasks,
        scope: Scope::Console,
        help: "show the tasks the server offers",
        hint: Some("tasks"),
    },
    Binding {
        keys: &[Key::ch('?')],
        command: Command::Help,
        scope: Scope::Console,
        help: "show the keys (when nothing is typed; otherwise it is typed)",
        hint: None,
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
    // Confirmation: only `y` forgets (Enter is no answer to a question that cannot be
    // undone), as in the server's revoke confirmation.
    Binding {
        keys: &[Key::ch('y')],
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
        hint: Some("keep"),
    },
    // The task list.
    Binding {
        keys: &[Key::plain(KeyCode::Esc), Key::ctrl('t')],
        command: Command::Cancel,
        scope: Scope::TaskList,
        help: "close the task list",
        hint: Some("close"),
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
        for scope in Scope::ALL {
            assert_eq!(
                MAP.lookup(&[scope], &ctrl_c),
                Some(Command::Quit),
                "{scope:?}"
            );
        }
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(MAP.lookup(&[Scope::Console], &q), None, "q is typed");
        assert_eq!(MAP.lookup(&[Scope::Address], &q), None, "q is typed");
        assert_eq!(MAP.lookup(&[Scope::Code], &q), None, "an input has focus");
        assert_eq!(
            MAP.lookup(&[Scope::Scan, Scope::Main], &q),
            Some(Command::Quit)
        );
        let r = key(KeyCode::Char('r'), KeyModifiers::NONE);
        assert_eq!(MAP.lookup(&[Scope::Servers, Scope::Main], &r), None);
        assert_eq!(
            MAP.lookup(&[Scope::Scan, Scope::Main], &r),
            Some(Command::Rescan)
        );
        let shifted = key(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(MAP.lookup(&[Scope::Main], &shifted), Some(Command::Help));
        let plain_c = key(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(MAP.lookup(&[Scope::Scan, Scope::Main], &plain_c), None);
        // In the console `k` is typed; only the arrow walks the history.
        let k = key(KeyCode::Char('k'), KeyModifiers::NONE);
        assert_eq!(MAP.lookup(&[Scope::Console], &k), None);
    }

    #[test]
    fn footer_hints_come_from_the_bindings() {
        let scan = MAP.hints(&[Scope::Scan, Scope::Main]);
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
            MAP.hints(&[Scope::Code]),
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
                    MAP.lookup(&scopes, &ev),
                    Some(b.command),
                    "{k:?} in {:?}",
                    b.scope
                );
            }
        }
    }
}
