//! The server's styles: `tui_kit::Theme` (colour or not, the shared styles), plus the
//! selection in a pane, the connected mark and event-log levels.

use std::ops::Deref;

use ratatui::style::{Color, Modifier, Style};

use crate::app::Level;

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

    /// The selected row: reverse and bold in the focused pane, bold elsewhere.
    pub fn selected(self, focused: bool) -> Style {
        if focused {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    /// "yes" in the connected column.
    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }

    /// An event-log line.
    pub fn level(self, level: Level) -> Style {
        match level {
            Level::Info => Style::new(),
            Level::Good => self.fg(Color::Green),
            Level::Warn => self.fg(Color::Yellow),
            Level::Error => self.fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }
}
