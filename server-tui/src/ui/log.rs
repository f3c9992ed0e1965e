//! The event log pane: the newest lines, or older ones while the operator scrolls back. Long
//! lines wrap (as the client's console does, `tui_kit::wrap`), and the scroll counts screen
//! lines, so the newest line shows whole at the bottom. Only the lines that fit are built.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};
use tui_kit::wrap::{self, Piece};

use super::Theme;
use crate::app::{App, LogLine, Pane};

/// Width of the `HH:MM:SS ` column.
const TIME_WIDTH: usize = 9;

/// Lines that fit in `area` inside its borders.
pub fn body_rows(area: Rect) -> usize {
    area.height.saturating_sub(2) as usize
}

/// Width the text of a line wraps at in `area`: inside the borders, after the time column.
pub fn text_width(area: Rect) -> usize {
    (area.width.saturating_sub(2) as usize)
        .saturating_sub(TIME_WIDTH)
        .max(1)
}

/// Screen lines `line` takes at `width`.
pub fn line_count(line: &LogLine, width: usize) -> usize {
    wrap::line_count(&line.text, width, 0)
}

pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    if area.height < 3 || area.width < 3 {
        return;
    }
    let focused = app.focus == Pane::Log;
    let rows = body_rows(area);
    let width = text_width(area);
    // Walk back from the newest line only as far as the screen needs.
    let need = rows + app.log_scroll;
    let mut pieces: Vec<(&LogLine, Piece)> = Vec::new();
    for line in app.log.iter().rev() {
        pieces.extend(
            wrap::pieces(&line.text, width, 0)
                .into_iter()
                .rev()
                .map(|p| (line, p)),
        );
        if pieces.len() >= need {
            break;
        }
    }
    // The scroll as drawn: never past the oldest line.
    let scroll = app.log_scroll.min(pieces.len().saturating_sub(rows));
    let mut title = vec![Span::styled(
        " Events ",
        if focused {
            theme.focused_title()
        } else {
            theme.title()
        },
    )];
    if scroll > 0 {
        title.push(Span::styled(
            format!(" ↓ {scroll} newer (End to follow) "),
            theme.dim(),
        ));
    }
    let block = Block::bordered()
        .title(Line::from(title))
        .border_style(if focused {
            theme.focused_border()
        } else {
            theme.border()
        });
    let mut shown: Vec<Line> = pieces
        .iter()
        .skip(scroll)
        .take(rows)
        .map(|(l, p)| {
            let time = if p.first {
                format!("{} ", clock(l.unix))
            } else {
                " ".repeat(TIME_WIDTH)
            };
            Line::from(vec![
                Span::styled(time, theme.dim()),
                Span::styled(p.text, theme.level(l.level)),
            ])
        })
        .collect();
    shown.reverse();
    Paragraph::new(shown).block(block).render(area, buf);
}

/// `HH:MM:SS` (UTC) of a Unix time.
pub(super) fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}
