//! The scan screen: what the search is doing (methods, a progress bar over every subnet, the
//! subnets, the time so far) and the servers found, as they are found. Only the host rows that
//! fit are built.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, HighlightSpacing, Padding, Paragraph, Row, StatefulWidget, Table, TableState,
    Widget, Wrap,
};

use super::{Theme, scroll_into_view};
use crate::app::{App, ScanState};

/// Inner lines of the search panel.
const SEARCH_LINES: u16 = 3;

/// Height of the search panel.
fn search_height(compact: bool) -> u16 {
    if compact {
        SEARCH_LINES
    } else {
        SEARCH_LINES + 2
    }
}

/// Host rows that fit in a list `height` rows high (borders or the top rule, and the header
/// row taken off).
fn list_rows(height: u16, compact: bool) -> usize {
    height.saturating_sub(if compact { 2 } else { 3 }) as usize
}

/// Host rows that fit in `body`.
pub fn host_rows(body: Rect, compact: bool) -> usize {
    list_rows(body.height.saturating_sub(search_height(compact)), compact)
}

pub fn render(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let [search, list] = Layout::vertical([
        Constraint::Length(search_height(compact)),
        Constraint::Fill(1),
    ])
    .areas(area);
    let inner = if compact {
        search
    } else {
        let block = Block::bordered()
            .title(Span::styled(" Search ", theme.title()))
            .border_style(theme.border())
            .padding(Padding::horizontal(1));
        let inner = block.inner(search);
        block.render(search, buf);
        inner
    };
    progress(app, theme, inner, compact, buf);
    hosts(app, theme, list, compact, buf);
}

fn progress(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let scan = &app.scan;
    if let Some(why) = &scan.nothing_to_search {
        // The reason takes the whole panel: it is the one thing to read here.
        let text = format!("{}. Or press a and type its address.", capitalized(why));
        Paragraph::new(Line::styled(text, theme.warn()))
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    let [methods, bar_row, subnets] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
    Paragraph::new(methods_line(scan, theme, compact)).render(methods, buf);
    if scan.enabled {
        let elapsed = scan.elapsed(app.clock.instant).as_secs_f64();
        Paragraph::new(Line::styled(format!("{elapsed:.1} s "), theme.dim()))
            .alignment(Alignment::Right)
            .render(methods, buf);
    }
    bar_line(scan, theme, bar_row, compact, buf);
    let names: Vec<String> = scan
        .subnets
        .iter()
        .map(|s| {
            if compact || scan.subnets.len() == 1 {
                s.name.clone()
            } else {
                format!("{} {}/{}", s.name, s.probed, s.total)
            }
        })
        .collect();
    if !names.is_empty() {
        let label = if compact { "" } else { "Subnets: " };
        Paragraph::new(Line::from(vec![
            Span::styled(label, theme.dim()),
            Span::raw(names.join(", ")),
        ]))
        .render(subnets, buf);
    }
}

/// `text` with its first letter in upper case.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn methods_line(scan: &ScanState, theme: Theme, compact: bool) -> Line<'static> {
    if !scan.enabled {
        return Line::styled(
            "Discovery off: only saved and typed addresses are asked.",
            theme.dim(),
        );
    }
    if !scan.begun {
        return Line::styled("Starting the search…", theme.dim());
    }
    let mut spans = Vec::new();
    let label = match (scan.running(), compact) {
        (true, false) => "Searching with ",
        (false, false) => "Done: ",
        (true, true) => "",
        (false, true) => "Done: ",
    };
    spans.push(Span::raw(label));
    for (i, (via, done)) in scan.methods.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(via.to_string(), theme.title()));
        spans.push(if *done {
            Span::styled(" ✓", theme.good())
        } else {
            Span::styled(" …", theme.dim())
        });
    }
    if scan.methods.is_empty() {
        spans.push(Span::styled("nothing to search", theme.dim()));
    }
    Line::from(spans)
}

fn bar_line(scan: &ScanState, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    if !scan.enabled || !scan.begun {
        return;
    }
    let (probed, total) = (scan.probed(), scan.total());
    if total == 0 {
        Paragraph::new(Line::styled(
            "No subnet sweep: listening for answers only.",
            theme.dim(),
        ))
        .render(area, buf);
        return;
    }
    let label = if compact {
        format!(" {probed}/{total}")
    } else {
        format!(" {probed}/{total} hosts")
    };
    let width = (area.width as usize).saturating_sub(label.chars().count() + 1);
    let (filled, empty) = bar(width, probed, total);
    Paragraph::new(Line::from(vec![
        Span::styled(filled, theme.bar()),
        Span::styled(empty, theme.dim()),
        Span::raw(label),
    ]))
    .render(area, buf);
}

/// A bar `width` cells wide, `probed` of `total` filled: the filled and the empty part.
pub fn bar(width: usize, probed: usize, total: usize) -> (String, String) {
    let filled = (width * probed.min(total)).checked_div(total).unwrap_or(0);
    ("█".repeat(filled), "░".repeat(width - filled))
}

fn hosts(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let block = Block::default()
        .borders(if compact { Borders::TOP } else { Borders::ALL })
        .title(Span::styled(
            format!(" Servers found ({}) ", app.hosts.len()),
            theme.title(),
        ))
        .border_style(theme.border());
    if app.hosts.is_empty() {
        let inner = block.inner(area);
        block.render(area, buf);
        let text = if app.scan.running() {
            "Searching… servers appear here as they answer."
        } else {
            "No server found. r searches again; a adds an address by hand."
        };
        Paragraph::new(Line::styled(format!(" {text}"), theme.dim()))
            .wrap(ratatui::widgets::Wrap { trim: true })
            .render(inner, buf);
        return;
    }
    let rows = list_rows(area.height, compact).max(1);
    let offset = scroll_into_view(app.offset, app.selected, rows, app.hosts.len());
    let end = (offset + rows).min(app.hosts.len());
    let visible = &app.hosts[offset.min(end)..end];
    let table_rows = visible.iter().map(|h| {
        let mark = if app.needs_repair.contains(&h.server_id) {
            Span::styled(if compact { "!" } else { "re-pair" }, theme.warn())
        } else if app.is_paired(&h.server_id) {
            Span::styled(if compact { "✓" } else { "✓ yes" }, theme.good())
        } else {
            Span::raw("")
        };
        let via = format!("{}{}", h.via, if h.verified { "" } else { "?" });
        if compact {
            Row::new(vec![
                Line::from(h.name.clone()),
                Line::from(h.server_id.short()),
                Line::from(mark),
            ])
        } else {
            Row::new(vec![
                Line::from(h.name.clone()),
                Line::from(h.addr.to_string()),
                Line::from(h.server_id.short()),
                Line::from(via),
                Line::from(mark),
            ])
        }
    });
    let (header, widths): (Row, Vec<Constraint>) = if compact {
        (
            Row::new(["Name", "Id", "P"]),
            vec![
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(1),
            ],
        )
    } else {
        (
            Row::new(["Name", "Address", "Id", "Via", "Paired"]),
            vec![
                Constraint::Fill(1),
                Constraint::Length(21),
                Constraint::Length(9),
                Constraint::Length(10),
                Constraint::Length(7),
            ],
        )
    };
    let table = Table::new(table_rows, widths)
        .header(header.style(theme.header()))
        .block(block)
        .row_highlight_style(theme.selected())
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(Some(app.selected.saturating_sub(offset)));
    StatefulWidget::render(table, area, buf, &mut state);
}
