//! The styles both apps share. With colour off (`NO_COLOR`, `--no-color`) every style is made of
//! modifiers only (bold, reverse, dim), so nothing on screen depends on colour; with colour on,
//! only the basic ANSI colours are used, on the terminal's own background.
//!
//! Owns: the common styles. Each app adds its own on top (selection, levels, entries).

use ratatui::style::{Color, Modifier, Style};

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

    /// `color` as foreground when colour is on, else no style.
    pub fn fg(self, color: Color) -> Style {
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

    /// The title of what has the keyboard: reversed, so it shows without colour.
    pub fn focused_title(self) -> Style {
        self.title().add_modifier(Modifier::REVERSED)
    }

    /// The border of what has the keyboard.
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

    /// Table and list headers.
    pub fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    /// A key in hints.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// A pairing code.
    pub fn code(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Worth a look.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
}
