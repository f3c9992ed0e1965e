//! Drawing helpers both apps use: the layout sizes, the "terminal too small" notice, key hint
//! lines and the footer, and the windows drawn over a screen (help, input box).
//!
//! Owns: how these look. What they say (titles, notes, which scopes) is the app's.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};
use tui_input::Input;

use crate::Theme;
use crate::keymap::KeyMap;

/// Smallest terminal that gets the (compact) interface.
pub const MIN_WIDTH: u16 = 40;
/// Smallest terminal that gets the (compact) interface.
pub const MIN_HEIGHT: u16 = 12;
/// From this width on, the full layout.
pub const FULL_WIDTH: u16 = 60;
/// From this height on, the full layout.
pub const FULL_HEIGHT: u16 = 20;

/// Whether `area` gets the compact layout, or `None` when it is too small for any.
pub fn compact(area: Rect) -> Option<bool> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    Some(area.width < FULL_WIDTH || area.height < FULL_HEIGHT)
}

/// The "terminal too small" notice, centred in `area`.
pub fn too_small(area: Rect, buf: &mut Buffer) {
    let lines = vec![
        Line::from("Terminal too small"),
        Line::from(format!(
            "need {MIN_WIDTH}×{MIN_HEIGHT}, have {}×{}",
            area.width, area.height
        )),
    ];
    let y = area.y + area.height.saturating_sub(2) / 2;
    let rect = Rect::new(area.x, y, area.width, 2.min(area.height));
    Paragraph::new(lines)
        .alignment(Alignment::Center)
        .render(rect, buf);
}

/// The first row to show of a list of `len` rows so that `selected` is among the `rows` shown,
/// moving `offset` as little as possible, and never so far down that rows which would fit stay
/// hidden above (after the window grew, or came back from too small to draw).
pub fn scroll_into_view(offset: usize, selected: usize, rows: usize, len: usize) -> usize {
    let rows = rows.max(1);
    let offset = if selected < offset {
        selected
    } else if selected >= offset + rows {
        selected + 1 - rows
    } else {
        offset
    };
    offset.min(len.saturating_sub(rows))
}

/// What the footer does with a hint that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Leave it out and try the next ones: later, shorter hints may still fit.
    Skip,
    /// Stop there.
    Stop,
}

/// Key hints as one line: `key word  key word  `.
pub fn hint_line(hints: Vec<(String, &'static str)>, theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (key, word) in hints {
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(format!(" {word}  ")));
    }
    Line::from(spans)
}

/// The footer: `hints` after one space, as many as fit in `area`'s width.
pub fn footer(
    hints: Vec<(String, &'static str)>,
    overflow: Overflow,
    theme: Theme,
    area: Rect,
    buf: &mut Buffer,
) {
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1usize;
    for (key, word) in hints {
        let width = key.chars().count() + word.chars().count() + 3;
        if used + width > area.width as usize {
            match overflow {
                Overflow::Skip => continue,
                Overflow::Stop => break,
            }
        }
        used += width;
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(format!(" {word}  ")));
    }
    Paragraph::new(Line::from(spans)).render(area, buf);
}

/// A `width`×`height` rectangle centred in `area`, clipped to it.
pub fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// The border and title of a window that has the keyboard.
pub fn frame<'a>(title: &'a str, theme: Theme) -> Block<'a> {
    Block::bordered()
        .title(Span::styled(title, theme.focused_title()))
        .border_style(theme.focused_border())
}

/// The help lines of `scopes`, in that order: each scope's heading (`title`), then its keys,
/// padded to `key_width`, and what they do.
pub fn help_lines<C: Copy + PartialEq, S: Copy + PartialEq>(
    map: &KeyMap<C, S>,
    scopes: impl IntoIterator<Item = S>,
    title: impl Fn(S) -> &'static str,
    key_width: usize,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for scope in scopes {
        lines.push(Line::styled(title(scope), theme.header()));
        for b in map.in_scope(scope) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<key_width$}", b.keys_label()), theme.key()),
                Span::raw(b.help),
            ]));
        }
    }
    lines
}

/// The help window: `lines` in a box `width` wide, centred above the footer line (left visible:
/// it says how to close this).
pub fn help_window(
    lines: Vec<Line<'static>>,
    width: u16,
    theme: Theme,
    area: Rect,
    buf: &mut Buffer,
) {
    let room = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let rect = centred(room, width, lines.len() as u16 + 2);
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(frame(" Keys ", theme))
        .render(rect, buf);
}

/// Where a one-line input box `width` wide (at most the screen less two) goes in `area`.
pub fn input_rect(area: Rect, width: u16) -> Rect {
    centred(area, width.min(area.width.saturating_sub(2)), 5)
}

/// Where the cursor goes while typing in the input box at `rect`.
pub fn input_cursor(rect: Rect, input: &Input) -> Option<(u16, u16)> {
    let inner = Block::bordered().inner(rect);
    if inner.is_empty() {
        return None;
    }
    let scroll = input.visual_scroll((inner.width as usize).saturating_sub(1));
    let x = input.visual_cursor().saturating_sub(scroll) as u16;
    Some((inner.x + x.min(inner.width - 1), inner.y))
}

/// The input box at `rect`: the text typed (scrolled to the cursor), then `below`.
pub fn input_box(
    input: &Input,
    below: [Line<'static>; 2],
    title: &str,
    theme: Theme,
    rect: Rect,
    buf: &mut Buffer,
) {
    let inner = Block::bordered().inner(rect);
    let scroll = input.visual_scroll((inner.width as usize).saturating_sub(1));
    let [note, hints] = below;
    let lines = vec![
        Line::from(input.value().chars().skip(scroll).collect::<String>()),
        note,
        hints,
    ];
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(frame(title, theme))
        .render(rect, buf);
}

/// A yes/no window: "VERB NAME (SHORT)?", what saying yes does, and the window's key hints.
#[derive(Debug, Clone, Copy)]
pub struct Confirm<'a> {
    /// What is asked: `Revoke`, `Forget`…
    pub verb: &'a str,
    /// What it applies to, shown in the title style.
    pub name: &'a str,
    /// Its short id.
    pub short: &'a str,
    /// What saying yes does, shown as a warning.
    pub warning: &'a str,
    /// The window's title.
    pub title: &'a str,
}

impl Confirm<'_> {
    /// Draw the window, with `hints` on its last line, centred in `area`.
    pub fn render(self, hints: Line<'static>, theme: Theme, area: Rect, buf: &mut Buffer) {
        let lines = vec![
            Line::from(vec![
                Span::raw(format!("{} ", self.verb)),
                Span::styled(self.name, theme.title()),
                Span::raw(format!(" ({})?", self.short)),
            ]),
            Line::styled(self.warning, theme.warn()),
            Line::from(""),
            hints,
        ];
        let rect = centred(area, 56, 8);
        Clear.render(rect, buf);
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(frame(self.title, theme))
            .render(rect, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::scroll_into_view;

    #[test]
    fn the_offset_shows_the_selection_and_every_row_that_fits() {
        // Moving down past the window, and back up.
        assert_eq!(scroll_into_view(0, 7, 5, 20), 3);
        assert_eq!(scroll_into_view(3, 2, 5, 20), 2);
        assert_eq!(scroll_into_view(3, 5, 5, 20), 3);
        // The window grew: rows above come back instead of blank rows below.
        assert_eq!(scroll_into_view(1, 1, 10, 2), 0);
        assert_eq!(scroll_into_view(15, 19, 10, 20), 10);
        // No room at all counts as one row.
        assert_eq!(scroll_into_view(0, 1, 0, 2), 1);
        assert_eq!(scroll_into_view(4, 0, 5, 0), 0);
    }
}
