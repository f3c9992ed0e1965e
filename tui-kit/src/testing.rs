//! Helpers for the apps' unit tests (feature `testing`): key messages made directly, and a
//! `TestBackend` render read back as text.
//!
//! Owns: nothing the apps ship; test builds only.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::{Frame, Terminal};

use crate::event::TuiMsg;

/// A fixed wall-clock time for tests: 2025-01-01 12:00:00 UTC.
pub const NOW_UNIX: u64 = 1_735_732_800;

/// A press of `code` without modifiers.
pub fn key<M: TuiMsg>(code: KeyCode) -> M {
    M::key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// A press of the character `c`.
pub fn ch<M: TuiMsg>(c: char) -> M {
    key(KeyCode::Char(c))
}

/// Ctrl with the character `c`.
pub fn ctrl<M: TuiMsg>(c: char) -> M {
    M::key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// The release of the character `c` (which apps ignore).
pub fn release<M: TuiMsg>(c: char) -> M {
    M::key(KeyEvent::new_with_kind(
        KeyCode::Char(c),
        KeyModifiers::NONE,
        KeyEventKind::Release,
    ))
}

/// A `width`×`height` test terminal with `draw` drawn once.
pub fn terminal(size: (u16, u16), draw: impl FnOnce(&mut Frame)) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
    terminal.draw(draw).unwrap();
    terminal
}

/// Each row of `buf` as text.
pub fn lines(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

/// `buf` as text, rows joined with newlines.
pub fn text(buf: &Buffer) -> String {
    lines(buf).join("\n")
}
