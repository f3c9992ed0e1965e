//! The code entry screen: the code box with the server's name, id and address beside it, the
//! last refusal ("wrong code, 4 attempts left"), the attempts left and the countdown.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use super::{Theme, countdown, seconds_until};
use crate::app::{App, PairPhase, PairState};

/// The part of the body inside the screen's frame (the full layout draws one).
fn inner(body: Rect, compact: bool) -> Rect {
    if compact {
        body
    } else {
        Block::bordered().inner(body)
    }
}

/// Where the code box goes.
fn box_rect(body: Rect, compact: bool, digits: u8) -> Rect {
    let inner = inner(body, compact);
    let top = if compact { 1 } else { 2 };
    let width = (u16::from(digits) + 1 + 4 + 2).min(inner.width);
    let x = inner.x + u16::from(!compact);
    Rect::new(
        x,
        inner.y + top,
        width,
        3.min(inner.height.saturating_sub(top)),
    )
}

/// The digits typed, with dots for the rest and a gap in the middle: `123 4··`.
pub fn code_text(typed: &str, digits: u8) -> String {
    let half = usize::from(digits) / 2;
    let mut out = String::new();
    let mut chars = typed.chars();
    for i in 0..usize::from(digits) {
        if i == half && half > 0 {
            out.push(' ');
        }
        out.push(chars.next().unwrap_or('·'));
    }
    out
}

/// Column of the cursor in [`code_text`] for a cursor after `at` digits.
fn code_column(at: usize, digits: u8) -> usize {
    let half = usize::from(digits) / 2;
    at + usize::from(half > 0 && at >= half)
}

pub fn cursor(app: &App, body: Rect, compact: bool) -> Option<(u16, u16)> {
    let pair = app.pairing.as_ref()?;
    if !matches!(pair.phase, PairPhase::Entering) {
        return None;
    }
    let rect = box_rect(body, compact, pair.digits);
    if rect.height < 3 || rect.width < 3 {
        return None;
    }
    let col = code_column(pair.input.visual_cursor(), pair.digits) as u16;
    Some(((rect.x + 3 + col).min(rect.right() - 2), rect.y + 1))
}

pub fn render(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let Some(pair) = &app.pairing else {
        return;
    };
    if !compact {
        Block::bordered()
            .title(Span::styled(
                format!(" Pair with {} ", pair.server_name),
                theme.focused_title(),
            ))
            .border_style(theme.focused_border())
            .render(area, buf);
    }
    let inner = inner(area, compact);
    let pad = u16::from(!compact);
    let text_area = Rect {
        x: inner.x + pad,
        width: inner.width.saturating_sub(pad),
        ..inner
    };
    // The prompt.
    Paragraph::new(prompt(pair, compact)).render(
        Rect {
            height: 1,
            ..text_area
        },
        buf,
    );

    // The box and, beside it, who is asking.
    let rect = box_rect(area, compact, pair.digits);
    let typing = pair.phase == PairPhase::Entering;
    Paragraph::new(Line::from(vec![
        Span::raw("  "),
        Span::styled(
            code_text(pair.input.value(), pair.digits),
            if typing { theme.code() } else { theme.dim() },
        ),
    ]))
    .block(
        Block::bordered()
            .title(Span::styled(" Code ", theme.title()))
            .border_style(if typing {
                theme.focused_border()
            } else {
                theme.border()
            }),
    )
    .render(rect, buf);
    let beside = Rect {
        x: rect.right() + 2,
        width: inner.right().saturating_sub(rect.right() + 2),
        ..rect
    };
    let id = pair
        .server_id
        .map(|id| id.short())
        .unwrap_or_else(|| "…".into());
    Paragraph::new(vec![
        Line::styled(pair.server_name.clone(), theme.title()),
        Line::from(vec![Span::styled("id ", theme.dim()), Span::raw(id)]),
        Line::styled(pair.addr.to_string(), theme.dim()),
    ])
    .render(beside, buf);

    // The last refusal, then what is left.
    let below = rect.bottom() + u16::from(!compact);
    let rest = Rect {
        y: below,
        height: inner.bottom().saturating_sub(below),
        ..text_area
    };
    // A refusal can be a sentence with its wait ("pairing is closed on this server: … (reopens
    // by itself in 14 min)"): it wraps rather than being cut off.
    let error_rows = pair
        .error
        .as_deref()
        .map_or(1, |e| wrapped_rows(e, text_area.width).min(3));
    let [error, info, _, help] = Layout::vertical([
        Constraint::Length(error_rows),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(rest);
    if let Some(e) = &pair.error {
        Paragraph::new(Line::styled(e.clone(), theme.error()))
            .wrap(Wrap { trim: true })
            .render(error, buf);
    }
    Paragraph::new(Line::styled(info_line(app, pair), theme.text())).render(info, buf);
    if !compact {
        Paragraph::new(vec![
            Line::styled(
                "Spaces and dashes may be typed or left out. Letters are not typed here.",
                theme.dim(),
            ),
            Line::styled(
                "After too many wrong codes, or when the code runs out, n asks for a new one.",
                theme.dim(),
            ),
        ])
        .wrap(Wrap { trim: true })
        .render(help, buf);
    }
}

/// Rows `text` takes when wrapped at word boundaries to `width` columns (at least 1).
fn wrapped_rows(text: &str, width: u16) -> u16 {
    let width = usize::from(width.max(1));
    let (mut rows, mut col) = (1usize, 0usize);
    for word in text.split_whitespace() {
        let w = word.chars().count();
        if col > 0 && col + 1 + w <= width {
            col += 1 + w;
            continue;
        }
        if col > 0 {
            rows += 1;
        }
        // A word longer than the line continues on the next ones.
        rows += w.saturating_sub(1) / width;
        col = w.saturating_sub(1) % width + 1;
    }
    u16::try_from(rows).unwrap_or(u16::MAX)
}

fn prompt(pair: &PairState, compact: bool) -> Line<'static> {
    let text = match (pair.phase, compact) {
        (PairPhase::Requesting, false) => format!(
            "Asking {} for a code; it appears on the server's screen…",
            pair.server_name
        ),
        (PairPhase::Requesting, true) => "Asking for a code…".into(),
        (PairPhase::Entering, false) => format!(
            "Type the {}-digit code shown on the server's screen, then Enter.",
            pair.digits
        ),
        (PairPhase::Entering, true) => "Code shown on the server:".into(),
        (PairPhase::Checking, _) => "Checking the code…".into(),
        (PairPhase::Expired, false) => {
            "This code can no longer be used: n asks for a new one.".into()
        }
        (PairPhase::Expired, true) => "n asks for a new code.".into(),
        (PairPhase::Failed, false) => "Pairing stopped: n tries again, Esc goes back.".into(),
        (PairPhase::Failed, true) => "n tries again, Esc goes back.".into(),
    };
    Line::from(text)
}

fn info_line(app: &App, pair: &PairState) -> String {
    let now = app.clock.instant;
    let mut parts = Vec::new();
    if matches!(pair.phase, PairPhase::Entering | PairPhase::Checking) {
        parts.push(format!("{} attempts left", pair.attempts_left));
        if let Some(at) = pair.expires_at {
            parts.push(format!("expires in {}", countdown(seconds_until(now, at))));
        }
    }
    if let Some(at) = pair.retry_at
        && at > now
    {
        parts.push(format!("next try in {} s", seconds_until(now, at)));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_text_groups_and_fills() {
        assert_eq!(code_text("", 6), "··· ···");
        assert_eq!(code_text("12", 6), "12· ···");
        assert_eq!(code_text("1234", 6), "123 4··");
        assert_eq!(code_text("123456", 6), "123 456");
        // Cursor after 3 digits sits on the first slot of the second group.
        assert_eq!(code_column(0, 6), 0);
        assert_eq!(code_column(3, 6), 4);
        assert_eq!(code_column(6, 6), 7);
    }

    #[test]
    fn wrapped_rows_counts_word_wrapped_lines() {
        assert_eq!(wrapped_rows("", 10), 1);
        assert_eq!(wrapped_rows("wrong code", 10), 1);
        assert_eq!(wrapped_rows("wrong code, 4", 10), 2);
        assert_eq!(wrapped_rows("aaaa bbbb cccc", 9), 2);
        assert_eq!(wrapped_rows("abcdefghijklmnopqrstuvwxy", 10), 3);
        assert_eq!(wrapped_rows("x", 0), 1);
    }
}
