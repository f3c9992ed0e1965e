//! The event log pane: the newest lines, or older ones while the operator scrolls back. Only
//! the lines that fit are built.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use super::Theme;
use crate::app::{App, Pane};

/// Lines that fit in `area` inside its borders.
pub fn body_rows(area: Rect) -> usize {
    area.height.saturating_sub(2) as usize
}

pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    if area.height < 3 || area.width < 3 {
        return;
    }
    let focused = app.focus == Pane::Log;
    let rows = body_rows(area);
    let end = app.log.len().saturating_sub(app.log_scroll);
    let start = end.saturating_sub(rows);
    let mut title = vec![Span::styled(
        " Events ",
        if focused {
            theme.focused_title()
        } else {
            theme.title()
        },
    )];
    if app.log_scroll > 0 {
        title.push(Span::styled(
            format!(" ↓ {} newer (End to follow) ", app.log_scroll),
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
    let lines: Vec<Line> = app
        .log
        .range(start..end)
        .map(|l| {
            Line::from(vec![
                Span::styled(format!("{} ", clock(l.unix)), theme.dim()),
                Span::styled(l.text.clone(), theme.level(l.level)),
            ])
        })
        .collect();
    Paragraph::new(lines).block(block).render(area, buf);
}

/// `HH:MM:SS` (UTC) of a Unix time.
pub(super) fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}
