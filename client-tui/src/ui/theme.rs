//! Styles. With colour off (`NO_COLOR`, `--no-color`) every style is made of modifiers only
//! (bold, reverse, dim), so nothing on screen depends on colour; with colour on, only the basic
//! ANSI colours are used, on the terminal's own background.

use ratatui::style::{Color, Modifier, Style};

use crate::app::{EntryKind, Level};

/// The styles of one screen.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colour or not.
    pub fn new(color: bool) -> Self {
        Self { color }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// Plain text.
    pub fn text(self) -> Style {
        Style::new()
    }

    /// Pane titles and names.
    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The title of a window that has the keyboard: reversed, so it shows without colour.
    pub fn focused_title(self) -> Style {
        self.title().add_modifier(Modifier::REVERSED)
    }

    /// The border of a window that has the keyboard.
    pub fn focused_border(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Other borders.
    pub fn border(self) -> Style {
        Style::new()
    }

    /// Secondary text.
    pub fn dim(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    /// Table headers.
    pub fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    /// A key in hints.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The digits typed in the code box.
    pub fn code(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// The filled part of the progress bar.
    pub fn bar(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// The "paired" mark and a working connection.
    pub fn good(self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }

    /// Worth a look.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
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
