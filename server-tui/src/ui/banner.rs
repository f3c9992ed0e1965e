//! The pairing banner: the code of the chosen (by default the newest) request in big digits,
//! who asks, the countdown and the attempts left, and the list of every waiting request. When
//! nothing waits, how to pair; when pairing is closed, why and how it reopens, in place of
//! everything else. Big digits shrink with the room, down to plain bold text.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};
use tui_big_text::{BigText, PixelSize};

use csc_shared::server::{ClosedReason, PairingMode};

use super::{Theme, addresses, countdown, grouped};
use crate::app::{App, Pane, PendingRequest};
use crate::hint::PairHint;

/// Whole seconds from now until `at`, rounded up.
fn secs_until(app: &App, at: std::time::Instant) -> u64 {
    let left = at.saturating_duration_since(app.clock.instant);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// " · window 1:43" while a pairing window is open.
fn window_note(app: &App) -> String {
    match (app.pairing.open, app.pairing.closes_at) {
        (true, Some(at)) => format!(" · window {}", countdown(secs_until(app, at))),
        _ => String::new(),
    }
}

fn short_reason(reason: Option<ClosedReason>) -> &'static str {
    match reason {
        Some(ClosedReason::Budget) => "too many wrong codes",
        Some(ClosedReason::NotOpened) => "no window open",
        Some(ClosedReason::WindowExpired) => "window ended",
        Some(ClosedReason::Paired) => "window used",
        Some(ClosedReason::Operator) => "closed by you",
        None => "closed",
    }
}

/// What reopens pairing, in words.
fn reopen_hint(app: &App) -> String {
    let open_what = match app.pairing.mode {
        PairingMode::Window => format!(
            "press o to accept requests for {}",
            humantime::format_duration(app.open_for)
        ),
        PairingMode::Request => "press o to open it now".to_string(),
    };
    match (app.pairing.mode, app.pairing.reopens_at) {
        (PairingMode::Request, Some(at)) => format!(
            "reopens by itself in {} · {open_what}",
            countdown(secs_until(app, at))
        ),
        _ => open_what,
    }
}

fn closed(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    if compact {
        let lines = vec![
            Line::styled(
                format!("PAIRING CLOSED: {}", short_reason(app.pairing.reason)),
                theme.warn(),
            ),
            Line::styled(reopen_hint(app), theme.dim()),
        ];
        Paragraph::new(lines).render(area, buf);
        return;
    }
    let block = Block::bordered()
        .title(Span::styled(" PAIRING CLOSED ", theme.warn()))
        .border_style(theme.warn());
    let inner = block.inner(area);
    block.render(area, buf);
    let why = match app.pairing.reason {
        Some(ClosedReason::Budget) => format!(
            "{} wrong codes within {}: the failure budget is spent, so no request gets a code.",
            app.pairing.budget,
            humantime::format_duration(std::time::Duration::from_secs(app.pairing.budget_window_s))
        ),
        Some(ClosedReason::NotOpened) => {
            "Window mode: requests get a code only while you have opened pairing.".to_string()
        }
        Some(reason) => {
            let mut s = reason.describe().to_string();
            if let Some(first) = s.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            s + "."
        }
        None => "Pairing is closed.".to_string(),
    };
    let lines = vec![
        Line::from(format!(" {why}")),
        Line::from(vec![
            Span::raw(" "),
            Span::styled(reopen_hint(app), theme.title()),
        ]),
    ];
    Paragraph::new(lines).render(inner, buf);
}

/// Big-text sizes from largest to smallest, with the cells one glyph takes (columns, rows).
const SIZES: [(PixelSize, u16, u16); 3] = [
    (PixelSize::Full, 8, 8),
    (PixelSize::HalfHeight, 8, 4),
    (PixelSize::Quadrant, 4, 4),
];

pub fn render(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    if !app.pairing.open {
        return closed(app, theme, area, compact, buf);
    }
    match (app.banner_request(), compact) {
        (Some(req), true) => compact_request(app, req, theme, area, buf),
        (Some(req), false) => full_request(app, req, theme, area, buf),
        (None, compact) if let Some((code, left)) = app.live_ahead() => {
            if compact {
                let lines = vec![
                    Line::from(vec![
                        Span::styled("NEXT CODE ", theme.dim()),
                        Span::styled(grouped(code), theme.code()),
                        Span::raw(format!("  {}", countdown(left))),
                    ]),
                    Line::styled(ahead_command(app, code), theme.dim()),
                ];
                Paragraph::new(lines).render(area, buf);
            } else {
                ahead(app, code, left, theme, area, buf);
            }
        }
        (None, true) => {
            let mut lines = vec![Line::styled("No pairing request.", theme.dim())];
            if let Some(hint) = pair_hint(app) {
                lines.push(Line::from(vec![
                    Span::raw("To pair: "),
                    Span::styled(hint.command, theme.title()),
                ]));
            }
            Paragraph::new(lines).render(area, buf);
        }
        (None, false) => idle(app, theme, area, buf),
    }
}

fn idle(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered()
        .title(Span::styled(
            format!(" Pairing{} ", window_note(app)),
            theme.title(),
        ))
        .border_style(theme.border());
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(hint) = pair_hint(app) else {
        Paragraph::new(Line::from(" No pairing request waiting.")).render(inner, buf);
        return;
    };
    let mut second = vec![Span::raw(" "), Span::styled(hint.command, theme.title())];
    if let Some(alternative) = hint.alternative {
        second.push(Span::styled(format!("   (or: {alternative})"), theme.dim()));
    }
    let lines = vec![
        Line::from(format!(
            " No pairing request waiting. To pair, run the client on {}:",
            hint.place
        )),
        Line::from(second),
    ];
    Paragraph::new(lines).render(inner, buf);
}

/// How to pair, once the server listens.
fn pair_hint(app: &App) -> Option<PairHint> {
    app.listening
        .map(|addr| PairHint::new(addr, &addresses(app)))
}

fn compact_request(app: &App, req: &PendingRequest, theme: Theme, area: Rect, buf: &mut Buffer) {
    let left = countdown(req.seconds_left(app.clock.instant));
    let others = app.requests.len() - 1;
    let mut lines = vec![
        Line::from(vec![
            Span::styled("CODE ", theme.dim()),
            Span::styled(grouped(&req.code), theme.code()),
            Span::raw(format!("  {left}")),
        ]),
        Line::from(format!(
            "{} · {} tries left",
            req.client_name, req.attempts_left
        )),
    ];
    let mut third = format!("{} {}", req.client_addr.ip(), req.client_short);
    if others > 0 {
        let at = (app.requests.iter().rev())
            .position(|r| r.request_id == req.request_id)
            .unwrap_or(0);
        third.push_str(&format!(" · {} of {}", at + 1, others + 1));
    }
    lines.push(Line::styled(third, theme.dim()));
    Paragraph::new(lines).render(area, buf);
}

fn full_request(app: &App, req: &PendingRequest, theme: Theme, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered()
        .title(Span::styled(
            format!(" Pairing request{} ", window_note(app)),
            theme.title(),
        ))
        .border_style(theme.border());
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.is_empty() {
        return;
    }
    let list_width = match inner.width {
        w if w >= 74 => (w - 57).min(30),
        w if w >= 46 => (w - 29).min(24),
        _ => 0,
    };
    // The list sits beside the big digits; the two info lines below use the whole width.
    let [top, info_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(2)]).areas(inner);
    let [code_area, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(list_width)]).areas(top);

    let text = grouped(&req.code);
    big_code(&text, theme, code_area, buf);

    let left_s = req.seconds_left(app.clock.instant);
    let info = vec![
        Line::from(vec![
            Span::raw(" Code "),
            Span::styled(text, theme.code()),
            Span::raw(" for "),
            Span::styled(req.client_name.clone(), theme.title()),
            Span::raw(format!(" ({}, id {})", req.client_addr, req.client_short)),
        ]),
        Line::from(vec![
            Span::raw(" expires in "),
            Span::styled(countdown(left_s), theme.warn()),
            Span::raw(format!(" · {} attempts left", req.attempts_left)),
        ]),
    ];
    Paragraph::new(info).render(info_area, buf);

    if !right.is_empty() {
        request_list(app, req.request_id, theme, right, buf);
    }
}

/// `text` (a grouped code) in the largest digits that fit `area`, centred; plain bold text
/// when none do.
fn big_code(text: &str, theme: Theme, area: Rect, buf: &mut Buffer) {
    let glyphs = text.chars().count() as u16;
    let size = SIZES
        .iter()
        .find(|(_, w, h)| glyphs * w <= area.width && *h <= area.height);
    match size {
        Some((pixel, _, h)) => {
            // Centre vertically; BigText centres horizontally.
            let y = area.y + (area.height - h) / 2;
            let rect = Rect::new(area.x, y, area.width, *h);
            BigText::builder()
                .pixel_size(*pixel)
                .style(theme.code())
                .lines(vec![Line::from(text.to_string())])
                .centered()
                .build()
                .render(rect, buf);
        }
        None => {
            let y = area.y + area.height.saturating_sub(1) / 2;
            let rect = Rect::new(area.x, y, area.width, 1.min(area.height));
            Paragraph::new(Line::styled(text.to_string(), theme.code()))
                .alignment(Alignment::Center)
                .render(rect, buf);
        }
    }
}

/// The command that pairs with the code drawn ahead, from where the client runs.
fn ahead_command(app: &App, code: &str) -> String {
    match pair_hint(app) {
        Some(hint) => format!("{} --code {code}", hint.command),
        None => format!("client-tui pair --code {code}"),
    }
}

/// A code drawn ahead (`p`), waiting for the request it will go to.
fn ahead(app: &App, code: &str, left: u64, theme: Theme, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered()
        .title(Span::styled(
            format!(" Pairing code for the next request{} ", window_note(app)),
            theme.title(),
        ))
        .border_style(theme.border());
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.is_empty() {
        return;
    }
    let [code_area, info_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(2)]).areas(inner);
    big_code(&grouped(code), theme, code_area, buf);
    let info = vec![
        Line::from(vec![
            Span::raw(" On the client: "),
            Span::styled(ahead_command(app, code), theme.title()),
        ]),
        Line::from(vec![
            Span::raw(" waits for a request for "),
            Span::styled(countdown(left), theme.warn()),
            Span::raw(" · the next request gets it, whoever sends it"),
        ]),
    ];
    Paragraph::new(info).render(info_area, buf);
}

fn request_list(app: &App, shown: u64, theme: Theme, area: Rect, buf: &mut Buffer) {
    let focused = app.focus == Pane::Requests;
    let title_style = if focused {
        theme.focused_title()
    } else {
        theme.header()
    };
    let mut lines = vec![Line::styled(
        format!("Waiting ({})", app.requests.len()),
        title_style,
    )];
    let rows = area.height.saturating_sub(1) as usize;
    let newest_first: Vec<&PendingRequest> = app.requests.iter().rev().collect();
    let at = newest_first
        .iter()
        .position(|r| r.request_id == shown)
        .unwrap_or(0);
    let offset = super::scroll_into_view(0, at, rows, newest_first.len());
    for r in newest_first.iter().skip(offset).take(rows) {
        let mark = if r.request_id == shown { "▶ " } else { "  " };
        let left = countdown(r.seconds_left(app.clock.instant));
        let width = area.width as usize;
        let name_width = width.saturating_sub(2 + left.len() + 1);
        let name: String = r.client_name.chars().take(name_width).collect();
        let text = format!("{mark}{name:<name_width$} {left}");
        let style = if r.request_id == shown {
            theme.selected(focused)
        } else {
            theme.text()
        };
        lines.push(Line::styled(text, style));
    }
    Paragraph::new(lines).render(area, buf);
}
