//! The connected screen: which server, over which address, the connection state (with the
//! reconnection countdown) and the token's expiry; the console with tasks, replies and their
//! round-trip times, and notices; the task input. Long lines wrap, the same way as the
//! server's event log (`tui_kit::wrap`); only the console lines that fit are built.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use super::{Theme, clock, in_words, seconds_until, token_expiry};
use crate::app::{App, ConnState, Entry, LinkState};

/// Rows above the console: the server line, and in the full layout the token line.
fn info_rows(compact: bool) -> u16 {
    if compact { 1 } else { 2 }
}

/// Rows of the task input, borders included.
fn input_rows(compact: bool) -> u16 {
    if compact { 1 } else { 3 }
}

/// Console lines that fit in `body`.
pub fn console_rows(body: Rect, compact: bool) -> usize {
    let chrome = info_rows(compact) + input_rows(compact) + if compact { 1 } else { 2 };
    body.height.saturating_sub(chrome) as usize
}

fn split(area: Rect, compact: bool) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Length(info_rows(compact)),
        Constraint::Fill(1),
        Constraint::Length(input_rows(compact)),
    ])
    .areas(area)
}

/// Where the input text goes.
fn input_text_area(area: Rect, compact: bool) -> Rect {
    let [_, _, input] = split(area, compact);
    let inner = if compact {
        input
    } else {
        Block::bordered().inner(input)
    };
    // After the "> " prompt.
    Rect {
        x: inner.x + 2,
        width: inner.width.saturating_sub(2),
        ..inner
    }
}

pub fn cursor(app: &App, body: Rect, compact: bool) -> Option<(u16, u16)> {
    let conn = app.conn.as_ref()?;
    let area = input_text_area(body, compact);
    if area.is_empty() {
        return None;
    }
    let width = area.width as usize;
    let scroll = conn.input.visual_scroll(width.saturating_sub(1));
    let x = conn.input.visual_cursor().saturating_sub(scroll) as u16;
    Some((area.x + x.min(area.width - 1), area.y))
}

pub fn render(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let Some(conn) = &app.conn else {
        return;
    };
    let [info, console, input] = split(area, compact);
    info_lines(app, conn, theme, info, compact, buf);
    console_pane(conn, theme, console, compact, buf);
    input_line(app, conn, theme, area, input, compact, buf);
}

/// " running: count 2 s · Esc cancels " while runs are in progress.
fn running_note(app: &App, conn: &ConnState) -> Option<String> {
    let (_, newest) = conn.running.iter().next_back()?;
    let secs = app
        .clock
        .instant
        .saturating_duration_since(newest.started)
        .as_secs();
    let more = match conn.running.len() {
        1 => String::new(),
        n => format!(" +{}", n - 1),
    };
    let what = if conn.running.values().all(|r| r.cancelling) {
        "cancelling"
    } else {
        "Esc cancels"
    };
    Some(format!(
        " running: {}{more} {secs} s · {what} ",
        newest.task
    ))
}

fn state_span(app: &App, conn: &ConnState, theme: Theme, compact: bool) -> Span<'static> {
    let now = app.clock.instant;
    match &conn.state {
        LinkState::Connected { since } => {
            let up = now.saturating_duration_since(*since).as_secs();
            if compact {
                Span::styled("● connected", theme.good())
            } else {
                Span::styled(format!("● connected {}", in_words(up)), theme.good())
            }
        }
        LinkState::Connecting { attempt: 0 } => Span::styled("connecting…", theme.warn()),
        LinkState::Connecting { attempt } => Span::styled(
            if compact {
                "reconnecting…".to_string()
            } else {
                format!("reconnecting… (attempt {attempt})")
            },
            theme.warn(),
        ),
        LinkState::Waiting { attempt, at, .. } => {
            let secs = seconds_until(now, *at);
            Span::styled(
                if compact {
                    format!("retry in {secs} s")
                } else {
                    format!("○ lost: retry in {secs} s (attempt {attempt})")
                },
                theme.error(),
            )
        }
    }
}

fn info_lines(
    app: &App,
    conn: &ConnState,
    theme: Theme,
    area: Rect,
    compact: bool,
    buf: &mut Buffer,
) {
    let server = &conn.server;
    let [first, second] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let mut spans = vec![
        Span::raw(" "),
        Span::styled(server.name.clone(), theme.title()),
        Span::raw(" "),
        Span::styled(server.server_id.short(), theme.dim()),
    ];
    if !compact {
        if let Some(addr) = conn.addr {
            spans.push(Span::raw(format!("  {addr}")));
        }
        if let Some(via) = conn.via {
            spans.push(Span::styled(format!(" via {via}"), theme.dim()));
        }
    }
    Paragraph::new(Line::from(spans)).render(first, buf);
    let mut state = vec![state_span(app, conn, theme, compact), Span::raw(" ")];
    if compact {
        state.insert(0, Span::raw(" "));
    }
    Paragraph::new(Line::from(state))
        .alignment(Alignment::Right)
        .render(first, buf);
    if compact {
        return;
    }
    let mut second_line = vec![
        Span::styled(" token expires ", theme.dim()),
        Span::raw(token_expiry(app.clock.unix, server.token_expires_at)),
    ];
    if let LinkState::Waiting { reason, .. } = &conn.state {
        second_line.push(Span::styled(format!(" · {reason}"), theme.dim()));
    }
    Paragraph::new(Line::from(second_line)).render(second, buf);
}

/// One screen line of the console.
struct Piece<'a> {
    entry: &'a Entry,
    line: tui_kit::wrap::Piece<'a>,
}

/// Width of the `HH:MM:SS ` column.
const TIME_WIDTH: usize = 9;

/// Width the console's text wraps at in a body `body_width` wide: inside the pane's borders,
/// after the time column (none in the compact layout).
pub fn text_width(body_width: u16, compact: bool) -> usize {
    let inner = if compact {
        body_width
    } else {
        body_width.saturating_sub(2)
    };
    (inner as usize)
        .saturating_sub(if compact { 0 } else { TIME_WIDTH })
        .max(1)
}

fn console_pane(conn: &ConnState, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let block = Block::default()
        .borders(if compact { Borders::TOP } else { Borders::ALL })
        .border_style(theme.border());
    let inner = block.inner(area);
    let rows = inner.height as usize;
    // Long lines wrap (`Entry::pieces`); the scroll counts these screen lines.
    let width = text_width(area.width, compact);
    // Walk back from the newest entry only as far as the screen needs.
    let mut pieces: Vec<Piece> = Vec::new();
    let need = rows + conn.scroll;
    for entry in conn.console.iter().rev() {
        pieces.extend(
            entry
                .pieces(width)
                .into_iter()
                .rev()
                .map(|line| Piece { entry, line }),
        );
        if pieces.len() >= need {
            break;
        }
    }
    // The scroll as drawn: never past the oldest line.
    let skip = conn.scroll.min(pieces.len().saturating_sub(rows));
    let mut title = vec![Span::styled(" Console ", theme.title())];
    if skip > 0 {
        title.push(Span::styled(
            format!(" ↓ {skip} newer (PgDn) "),
            theme.dim(),
        ));
    }
    let mut shown: Vec<Line> = pieces
        .iter()
        .skip(skip)
        .take(rows)
        .map(|p| piece_line(p, theme, compact))
        .collect();
    shown.reverse();
    Paragraph::new(shown)
        .block(block.title(Line::from(title)))
        .render(area, buf);
}

fn piece_line<'a>(p: &Piece<'a>, theme: Theme, compact: bool) -> Line<'a> {
    let mut spans = Vec::new();
    if !compact {
        spans.push(Span::styled(
            if p.line.first {
                format!("{} ", clock(p.entry.unix))
            } else {
                " ".repeat(TIME_WIDTH)
            },
            theme.dim(),
        ));
    }
    spans.push(Span::styled(p.line.text, theme.entry(p.entry.kind)));
    // The round-trip time closes the reply (after the last line of a multi-line one).
    if p.line.last
        && let Some(suffix) = p.entry.suffix()
    {
        spans.push(Span::styled(suffix, theme.dim()));
    }
    Line::from(spans)
}

fn input_line(
    app: &App,
    conn: &ConnState,
    theme: Theme,
    body: Rect,
    area: Rect,
    compact: bool,
    buf: &mut Buffer,
) {
    let input = &conn.input;
    if !compact {
        let mut title = vec![Span::styled(" Task ", theme.focused_title())];
        if let Some(note) = running_note(app, conn) {
            title.push(Span::styled(note, theme.warn()));
        }
        let mut block = Block::bordered()
            .title(Line::from(title))
            .border_style(theme.focused_border());
        if let Some(hint) = crate::app::arg_hint(conn) {
            block = block.title_bottom(Line::styled(format!(" {hint} "), theme.dim()));
        }
        block.render(area, buf);
    }
    let text_area = input_text_area(body, compact);
    let prompt = Rect {
        x: text_area.x.saturating_sub(2),
        width: 2,
        ..text_area
    };
    Paragraph::new(Span::styled("> ", theme.key())).render(prompt, buf);
    let width = text_area.width as usize;
    let scroll = input.visual_scroll(width.saturating_sub(1));
    let shown: String = input.value().chars().skip(scroll).collect();
    Paragraph::new(Line::from(shown)).render(text_area, buf);
}
