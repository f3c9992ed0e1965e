//! The clients table. Only the rows that fit are built, so ten thousand clients draw as fast
//! as ten.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, HighlightSpacing, Paragraph, Row, StatefulWidget, Table, TableState, Widget,
};

use super::{Theme, ago, scroll_into_view};
use crate::app::{App, Pane};

/// Client rows that fit in `area` (borders and the header row taken off).
pub fn body_rows(area: Rect, compact: bool) -> usize {
    let chrome = if compact { 1 } else { 2 };
    area.height.saturating_sub(chrome + 1) as usize
}

pub fn render(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let focused = app.focus == Pane::Clients;
    let rows = body_rows(area, compact);
    let offset = scroll_into_view(app.offset, app.selected, rows, app.clients.len());
    let mut title = vec![Span::styled(
        " Clients ",
        if focused {
            theme.focused_title()
        } else {
            theme.title()
        },
    )];
    if app.clients.len() > rows && !app.clients.is_empty() {
        title.push(Span::styled(
            format!(" {}/{} ", app.selected + 1, app.clients.len()),
            theme.dim(),
        ));
    }
    let block = Block::default()
        .borders(if compact { Borders::TOP } else { Borders::ALL })
        .title(Line::from(title))
        .border_style(if focused {
            theme.focused_border()
        } else {
            theme.border()
        });
    if app.clients.is_empty() {
        let inner = block.inner(area);
        block.render(area, buf);
        Paragraph::new(Line::styled(" No paired clients yet.", theme.dim())).render(inner, buf);
        return;
    }
    let end = (offset + rows).min(app.clients.len());
    let visible = &app.clients[offset.min(end)..end];
    let now = app.clock.unix;
    let table_rows = visible.iter().map(|c| {
        let r = &c.record;
        let on = c.sessions > 0;
        let conn = if on {
            Span::styled("yes", theme.good())
        } else {
            Span::styled("no", theme.dim())
        };
        if compact {
            Row::new(vec![
                Line::from(r.name.clone()),
                Line::from(r.client_id.short()),
                Line::from(conn),
            ])
        } else {
            let seen = if on {
                "now".to_string()
            } else {
                ago(now, r.last_seen)
            };
            Row::new(vec![
                Line::from(r.name.clone()),
                Line::from(r.client_id.short()),
                Line::from(
                    r.last_addr
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
                Line::from(ago(now, r.paired_at)),
                Line::from(seen),
                Line::from(conn),
                Line::from(c.tasks_run.to_string()).right_aligned(),
            ])
        }
    });
    let (header, widths): (Row, Vec<Constraint>) = if compact {
        (
            Row::new(["Name", "Id", "On"]),
            vec![
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(3),
            ],
        )
    } else {
        (
            Row::new(["Name", "Id", "Address", "Paired", "Seen", "On", "Tasks"]),
            vec![
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(21),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(3),
                Constraint::Length(5),
            ],
        )
    };
    let table = Table::new(table_rows, widths)
        .header(header.style(theme.header()))
        .block(block)
        .row_highlight_style(theme.selected(focused))
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state =
        TableState::default().with_selected(Some(app.selected - offset.min(app.selected)));
    StatefulWidget::render(table, area, buf, &mut state);
}
