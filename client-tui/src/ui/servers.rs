//! The paired servers view: every saved pairing with its id, last address and token expiry;
//! a server that must pair again is marked.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, HighlightSpacing, Paragraph, Row, StatefulWidget, Table, TableState, Widget,
    Wrap,
};

use super::{Theme, scroll_into_view, token_expiry};
use crate::app::App;

pub fn render(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let block = Block::default()
        .borders(if compact { Borders::TOP } else { Borders::ALL })
        .title(Span::styled(
            format!(" Paired servers ({}) ", app.paired.len()),
            theme.title(),
        ))
        .border_style(theme.border());
    if app.paired.is_empty() {
        let inner = block.inner(area);
        block.render(area, buf);
        Paragraph::new(Line::styled(
            " No paired server yet: choose one on the scan screen and press Enter.",
            theme.dim(),
        ))
        .wrap(Wrap { trim: true })
        .render(inner, buf);
        return;
    }
    let rows = block.inner(area).height.saturating_sub(1).max(1) as usize;
    let offset = scroll_into_view(0, app.paired_selected, rows, app.paired.len());
    let now = app.clock.unix;
    let end = (offset + rows).min(app.paired.len());
    let table_rows = app.paired[offset.min(end)..end].iter().map(|s| {
        let token = if app.needs_repair.contains(&s.server_id) {
            Span::styled("re-pair", theme.warn())
        } else {
            Span::raw(token_expiry(now, s.token_expires_at))
        };
        let addr = s
            .addrs
            .first()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        if compact {
            Row::new(vec![
                Line::from(s.name.clone()),
                Line::from(s.server_id.short()),
                Line::from(token),
            ])
        } else {
            Row::new(vec![
                Line::from(s.name.clone()),
                Line::from(s.server_id.short()),
                Line::from(addr),
                Line::from(token),
            ])
        }
    });
    let (header, widths): (Row, Vec<Constraint>) = if compact {
        (
            Row::new(["Name", "Id", "Token"]),
            vec![
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(10),
            ],
        )
    } else {
        (
            Row::new(["Name", "Id", "Last address", "Token expires"]),
            vec![
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(21),
                Constraint::Length(13),
            ],
        )
    };
    let table = Table::new(table_rows, widths)
        .header(header.style(theme.header()))
        .block(block)
        .row_highlight_style(theme.selected())
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state =
        TableState::default().with_selected(Some(app.paired_selected.saturating_sub(offset)));
    StatefulWidget::render(table, area, buf, &mut state);
}
