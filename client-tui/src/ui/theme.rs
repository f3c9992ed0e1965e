//! The client's styles: `tui_kit::Theme` (colour or not, the shared styles), plus the
//! selection, progress, status levels and console entries.

use std::ops::Deref;

use ratatui::style::{Color, Modifier, Style};

use crate::app::{EntryKind, Level};

/// The styles of one screen.
#[derive(Debug, Clone, Copy)]
pub struct Theme(tui_kit::Theme);

impl Deref for Theme {
    type Target = tui_kit::Theme;

    fn deref(&self) -> &tui_kit::Theme {
        &self.0
    }
}

impl Theme {
    /// Colour or not.
    pub fn new(color: bool) -> Self {
        Self(tui_kit::Theme::new(color))
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    /// The filled part of the progress bar.
    pub fn bar(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// The "paired" mark and a working connection.
    pub fn good(self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }

    /// Failed.
    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// A status line.
    pub fn level(self, level: Level) -> Style {
        match level {
            Level::Info => Style::new(),
            Level::Good => self.good(),
            Level::Warn => self.warn(),
            Level::Error => self.error(),
        }
    }

    /// A console entry.
    pub fn entry(self, kind: EntryKind) -> Style {
        match kind {
            EntryKind::Command => Style::new().add_modifier(Modifier::BOLD),
            EntryKind::Reply => Style::new(),
            EntryKind::Error => self.error(),
            EntryKind::Notice => self.warn(),
            EntryKind::Info => self.dim(),
            EntryKind::Good => self.fg(Color::Green),
        }
    }
}
