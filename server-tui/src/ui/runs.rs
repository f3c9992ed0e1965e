//! The runs table: who runs what, since when, and the bytes each run moved so far. Shown only
//! while something runs; only the rows that fit are built.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, HighlightSpacing, Row, StatefulWidget, Table, TableState};

use super::{Theme, log::clock, scroll_into_view, uptime};
use crate::app::{App, Pane};
use crate::headless::{args_text, bytes_text};

/// Height of the table for `runs` runs when `room` rows are left under the banner: none while
/// nothing runs, else every run if they fit in a third of the room (one at least).
pub fn height(runs: usize, room: u16, compact: bool) -> u16 {
    if runs == 0 {
        return 0;
    }
    let chrome: u16 = if compact { 2 } else { 3 };
    let want = chrome.saturating_add(u16::try_from(runs).unwrap_or(u16::MAX));
    want.min((room / 3).max(chrome + 1))
}

/// Run rows that fit in `area` (borders and the header row taken off).
pub fn body_rows(area: Rect, compact: bool) -> usize {
    let chrome = if compact { 1 } else { 2 };
    area.height.saturating_sub(chrome + 1) as usize
}

pub fn render(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    if area.is_empty() || app.runs.is_empty() {
        return;
    }
    let focused = app.focus == Pane::Runs;
    let rows = body_rows(area, compact);
    let offset = scroll_into_view(app.run_offset, app.run_selected, rows, app.runs.len());
    let mut title = vec![Span::styled(
        " Runs ",
        if focused {
            theme.focused_title()
        } else {
            theme.title()
        },
    )];
    if app.runs.len() > rows {
        title.push(Span::styled(
            format!(" {}/{} ", app.run_selected + 1, app.runs.len()),
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
    let end = (offset + rows).min(app.runs.len());
    let visible = &app.runs[offset.min(end)..end];
    let now = app.clock.unix;
    let table_rows = visible.iter().map(|r| {
        let started = r.started_at_ms / 1000;
        let running = uptime(std::time::Duration::from_secs(now.saturating_sub(started)));
        let args = args_text(&r.args);
        let what = if args.is_empty() {
            r.task.clone()
        } else {
            format!("{} {args}", r.task)
        };
        if compact {
            Row::new(vec![
                Line::from(r.client_name.clone()),
                Line::from(what),
                Line::from(running).right_aligned(),
            ])
        } else {
            Row::new(vec![
                Line::from(r.run_id.to_string()).right_aligned(),
                Line::from(r.client_name.clone()),
                Line::from(what),
                Line::from(clock(started)),
                Line::from(running).right_aligned(),
                Line::from(bytes_text(r.bytes_out)).right_aligned(),
                Line::from(bytes_text(r.bytes_in)).right_aligned(),
            ])
        }
    });
    let (header, widths): (Row, Vec<Constraint>) = if compact {
        (
            Row::new([
                Line::from("Client"),
                Line::from("Task"),
                Line::from("For").right_aligned(),
            ]),
            vec![
                Constraint::Fill(1),
                Constraint::Fill(2),
                Constraint::Length(7),
            ],
        )
    } else {
        (
            Row::new([
                Line::from("Run").right_aligned(),
                Line::from("Client"),
                Line::from("Task"),
                Line::from("Since"),
                Line::from("For").right_aligned(),
                Line::from("Out").right_aligned(),
                Line::from("In").right_aligned(),
            ]),
            vec![
                Constraint::Length(4),
                Constraint::Fill(1),
                Constraint::Fill(2),
                Constraint::Length(8),
                Constraint::Length(7),
                Constraint::Length(9),
                Constraint::Length(9),
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
        TableState::default().with_selected(Some(app.run_selected - offset.min(app.run_selected)));
    StatefulWidget::render(table, area, buf, &mut state);
}
