//! Key bindings as data: a key, a binding of keys to an app's command in one of its scopes,
//! and a [`KeyMap`] that looks keys up and words the footer from the same table.
//!
//! Owns: matching keys and writing them for people. Each app owns its commands, scopes and
//! table.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl, Alt, Shift…
    pub mods: KeyModifiers,
}

impl Key {
    /// `code` without modifiers.
    pub const fn plain(code: KeyCode) -> Self {
        Self {
            code,
            mods: KeyModifiers::NONE,
        }
    }

    /// The character `c` without modifiers.
    pub const fn ch(c: char) -> Self {
        Self::plain(KeyCode::Char(c))
    }

    /// Ctrl with the character `c`.
    pub const fn ctrl(c: char) -> Self {
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

/// One line of a key map: keys that trigger command `C` in scope `S`.
#[derive(Debug, Clone, Copy)]
pub struct Binding<C: 'static, S: 'static> {
    /// Keys that trigger it; the first is the one the footer shows.
    pub keys: &'static [Key],
    /// What it does.
    pub command: C,
    /// Where it applies.
    pub scope: S,
    /// Description on the help screen.
    pub help: &'static str,
    /// Word in the footer; `None` keeps it off the footer (it is still on the help screen).
    pub hint: Option<&'static str>,
}

impl<C, S> Binding<C, S> {
    /// All keys, as on the help screen: `↑/k`.
    pub fn keys_label(&self) -> String {
        self.keys
            .iter()
            .map(Key::label)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// An app's table of bindings, with the scope that applies everywhere.
#[derive(Debug, Clone, Copy)]
pub struct KeyMap<C: 'static, S: 'static> {
    /// Every binding, in footer order within each scope.
    pub bindings: &'static [Binding<C, S>],
    /// The scope tried first, whatever else is active (even while typing).
    pub global: S,
}

impl<C: Copy + PartialEq, S: Copy + PartialEq> KeyMap<C, S> {
    /// The command `event` triggers in `scopes` (after the global scope), if any.
    pub fn lookup(&self, scopes: &[S], event: &KeyEvent) -> Option<C> {
        std::iter::once(&self.global)
            .chain(scopes)
            .flat_map(|scope| self.bindings.iter().filter(move |b| b.scope == *scope))
            .find(|b| b.keys.iter().any(|k| k.matches(event)))
            .map(|b| b.command)
    }

    /// Footer hints for `scopes`: `(key, word)` pairs, in table order. Global bindings come
    /// last, and only when no active binding already shows the same command.
    pub fn hints(&self, scopes: &[S]) -> Vec<(String, &'static str)> {
        self.hints_labelled(scopes, |b| b.keys.first().map(Key::label))
    }

    /// Like [`hints`](Self::hints), with every key of each binding written (`n/Esc keep`):
    /// for a question, where every key that answers it must be seen.
    pub fn answer_hints(&self, scopes: &[S]) -> Vec<(String, &'static str)> {
        self.hints_labelled(scopes, |b| (!b.keys.is_empty()).then(|| b.keys_label()))
    }

    fn hints_labelled(
        &self,
        scopes: &[S],
        label: impl Fn(&Binding<C, S>) -> Option<String>,
    ) -> Vec<(String, &'static str)> {
        let active: Vec<&Binding<C, S>> = self
            .bindings
            .iter()
            .filter(|b| scopes.contains(&b.scope) && b.hint.is_some())
            .collect();
        let global = self
            .bindings
            .iter()
            .filter(|b| b.scope == self.global && b.hint.is_some())
            .filter(|g| !active.iter().any(|b| b.command == g.command));
        active
            .iter()
            .copied()
            .chain(global)
            .filter_map(|b| Some((label(b)?, b.hint?)))
            .collect()
    }

    /// The bindings of `scope`, in table order.
    pub fn in_scope(&self, scope: S) -> impl Iterator<Item = &'static Binding<C, S>> {
        self.bindings.iter().filter(move |b| b.scope == scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Cmd {
        Quit,
        Go,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Sc {
        Global,
        Main,
        Input,
    }

    const MAP: KeyMap<Cmd, Sc> = KeyMap {
        bindings: &[
            Binding {
                keys: &[Key::ctrl('c')],
                command: Cmd::Quit,
                scope: Sc::Global,
                help: "quit",
                hint: Some("quit"),
            },
            Binding {
                keys: &[Key::ch('q')],
                command: Cmd::Quit,
                scope: Sc::Main,
                help: "quit",
                hint: Some("quit"),
            },
            Binding {
                keys: &[Key::plain(KeyCode::Enter), Key::ch('g')],
                command: Cmd::Go,
                scope: Sc::Main,
                help: "go",
                hint: None,
            },
            Binding {
                keys: &[Key::plain(KeyCode::Enter)],
                command: Cmd::Go,
                scope: Sc::Input,
                help: "go",
                hint: Some("go"),
            },
        ],
        global: Sc::Global,
    };

    #[test]
    fn keys_match_and_read_like_hints() {
        let shifted = KeyEvent::new(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert!(Key::ch('?').matches(&shifted));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(!Key::ch('c').matches(&ctrl_c));
        assert_eq!(Key::ctrl('c').label(), "^C");
        assert_eq!(Key::plain(KeyCode::PageDown).label(), "PgDn");
        assert_eq!(MAP.bindings[2].keys_label(), "Enter/g");
    }

    #[test]
    fn global_first_then_scopes_and_hints_without_repeats() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(MAP.lookup(&[Sc::Input], &ctrl_c), Some(Cmd::Quit));
        let q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(MAP.lookup(&[Sc::Input], &q), None);
        assert_eq!(MAP.lookup(&[Sc::Main], &q), Some(Cmd::Quit));
        assert_eq!(MAP.hints(&[Sc::Main]), vec![("q".into(), "quit")]);
        assert_eq!(
            MAP.hints(&[Sc::Input]),
            vec![("Enter".into(), "go"), ("^C".into(), "quit")]
        );
        assert_eq!(MAP.in_scope(Sc::Main).count(), 2);
        assert_eq!(
            MAP.answer_hints(&[Sc::Input]),
            vec![("Enter".into(), "go"), ("^C".into(), "quit")]
        );
        assert_eq!(
            MAP.answer_hints(&[Sc::Main]),
            vec![("q".into(), "quit")],
            "only hinted bindings"
        );
    }
}
