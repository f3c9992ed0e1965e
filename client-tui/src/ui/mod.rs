//! Drawing: a pure function of [`App`]. Nothing here changes state or does I/O, so the same
//! state always gives the same screen, and tests render into a `TestBackend`.
//!
//! Owns: the frame (header, body, status line, footer), the full layout from 60×20 and the
//! compact one down to 40×12, the "terminal too small" notice below that, and where the cursor
//! goes. Each screen draws its body in its own module. The row counts are shared with
//! `App::update`, which needs them to scroll and page.

mod console;
mod pair;
mod popup;
mod scan;
mod servers;
mod theme;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use crate::app::{App, Overlay, Screen};
use crate::keymap;
pub use theme::Theme;
use tui_kit::widgets::{self, Overflow};

/// Where the frame's parts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// Title and who this client is.
    pub header: Rect,
    /// The screen's own content.
    pub body: Rect,
    /// The last thing worth saying.
    pub status: Rect,
    /// Key hints.
    pub footer: Rect,
    /// Whether this is the compact layout.
    pub compact: bool,
}

/// The frame of `area`, or `None` when the terminal is too small.
pub fn areas(area: Rect) -> Option<Areas> {
    let compact = widgets::compact(area)?;
    let [header, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Some(Areas {
        header,
        body,
        status,
        footer,
        compact,
    })
}

fn screen(app: &App) -> Rect {
    Rect::new(0, 0, app.size.0, app.size.1)
}

/// Host rows visible on the scan screen (at least 1, for paging maths).
pub fn host_rows(app: &App) -> usize {
    areas(screen(app))
        .map(|a| scan::host_rows(a.body, a.compact))
        .unwrap_or(1)
        .max(1)
}

/// Width the console's text wraps at on `app`'s terminal; `None` when it is too small to draw.
pub fn console_width(app: &App) -> Option<usize> {
    areas(screen(app)).map(|a| console::text_width(a.body.width, a.compact))
}

/// Console lines visible on the console screen.
pub fn console_rows(app: &App) -> usize {
    areas(screen(app))
        .map(|a| console::console_rows(a.body, a.compact))
        .unwrap_or(1)
        .max(1)
}

pub use widgets::scroll_into_view;

/// Draw `app` on `frame`, with the cursor in whichever input has the keyboard.
pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    frame.render_widget(app, area);
    if let Some((x, y)) = cursor(app, area) {
        frame.set_cursor_position((x, y));
    }
}

/// Where the cursor goes, if an input has the keyboard.
fn cursor(app: &App, area: Rect) -> Option<(u16, u16)> {
    let a = areas(area)?;
    match &app.overlay {
        Overlay::Address(input) => return popup::address_cursor(area, input),
        Overlay::Help | Overlay::Confirm(_) | Overlay::Tasks => return None,
        Overlay::None => {}
    }
    match app.screen {
        Screen::Pair => pair::cursor(app, a.body, a.compact),
        Screen::Console => console::cursor(app, a.body, a.compact),
        Screen::Scan | Screen::Servers => None,
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let theme = Theme::new(self.color);
        let Some(a) = areas(area) else {
            widgets::too_small(area, buf);
            return;
        };
        header(self, theme, a.header, a.compact, buf);
        match self.screen {
            Screen::Scan => scan::render(self, theme, a.body, a.compact, buf),
            Screen::Pair => pair::render(self, theme, a.body, a.compact, buf),
            Screen::Console => console::render(self, theme, a.body, a.compact, buf),
            Screen::Servers => servers::render(self, theme, a.body, a.compact, buf),
        }
        if let Some(status) = &self.status {
            Paragraph::new(Line::styled(
                format!(" {}", status.text),
                theme.level(status.level),
            ))
            .render(a.status, buf);
        }
        footer(self, theme, a.footer, buf);
        match &self.overlay {
            Overlay::None => {}
            Overlay::Help => popup::help(&self.screen_scopes(), theme, area, buf),
            Overlay::Address(input) => popup::address(input, theme, area, buf),
            Overlay::Confirm(target) => popup::confirm(target, theme, area, buf),
            Overlay::Tasks => {
                let list = self
                    .conn
                    .as_ref()
                    .map(|c| c.tasks.as_slice())
                    .unwrap_or(&[]);
                popup::tasks(list, theme, area, buf)
            }
        }
    }
}

fn header(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let title = match app.screen {
        Screen::Scan => "Find a server",
        Screen::Pair => "Pair",
        Screen::Console => "Console",
        Screen::Servers => "Paired servers",
    };
    let mut left = Vec::new();
    if !compact {
        left.push(Span::styled(" client-tui ", theme.title()));
        left.push(Span::styled("› ", theme.dim()));
    }
    left.push(Span::styled(title, theme.title()));
    Paragraph::new(Line::from(left)).render(area, buf);
    let me = if compact {
        format!("{} ", app.short)
    } else {
        format!("{} · id {} ", app.name, app.short)
    };
    Paragraph::new(Line::styled(me, theme.dim()))
        .alignment(Alignment::Right)
        .render(area, buf);
}

fn footer(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    // Narrow: later, shorter hints may still fit; all of them are under `?`. While a question
    // is open, every key that answers it is written.
    let hints = match app.overlay {
        Overlay::Confirm(_) => keymap::MAP.answer_hints(&app.scopes()),
        _ => keymap::MAP.hints(&app.scopes()),
    };
    widgets::footer(hints, Overflow::Skip, *theme, area, buf);
}

/// A duration for people: `45s`, `12m`, `5h 02m`, `29d 23h`.
pub fn in_words(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// When a token runs out, seen from `now` (Unix seconds).
pub fn token_expiry(now: u64, expires_at: u64) -> String {
    if expires_at <= now {
        "expired".into()
    } else {
        format!("in {}", in_words(expires_at - now))
    }
}

/// Seconds as `1:54`.
pub fn countdown(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// Whole seconds from `now` to `at`, rounded up.
pub fn seconds_until(now: std::time::Instant, at: std::time::Instant) -> u64 {
    let left = at.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// `HH:MM:SS` (UTC) of a Unix time.
pub fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests;
