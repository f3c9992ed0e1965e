//! Windows drawn over the main screen: the help (built from the key map), the "revoke?"
//! confirmation and the notice input.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};
use tui_input::Input;

use super::Theme;
use crate::app::RevokeTarget;
use crate::keymap::{self, BINDINGS, Scope};

/// A `width`×`height` rectangle centred in `area`, clipped to it.
fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn frame<'a>(title: &'a str, theme: Theme) -> Block<'a> {
    Block::bordered()
        .title(Span::styled(title, theme.focused_title()))
        .border_style(theme.focused_border())
}

fn hint_line(scope: Scope, theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (key, word) in keymap::hints(&[scope]) {
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(format!(" {word}  ")));
    }
    Line::from(spans)
}

pub fn help(theme: Theme, area: Rect, buf: &mut Buffer) {
    let scopes = [
        Scope::Global,
        Scope::Main,
        Scope::Clients,
        Scope::Dialog,
        Scope::Input,
        Scope::Help,
    ];
    let mut lines = Vec::new();
    for scope in scopes {
        lines.push(Line::styled(scope.title(), theme.header()));
        for b in BINDINGS.iter().filter(|b| b.scope == scope) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<13}", b.keys_label()), theme.key()),
                Span::raw(b.help),
            ]));
        }
    }
    lines.push(Line::styled(
        "Event times are UTC. Text on screen can be selected and copied.",
        theme.dim(),
    ));
    // Leave the footer line visible: it says how to close this.
    let room = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let rect = centred(room, 66, lines.len() as u16 + 2);
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(frame(" Keys ", theme))
        .render(rect, buf);
}

pub fn confirm(target: &RevokeTarget, theme: Theme, area: Rect, buf: &mut Buffer) {
    let lines = vec![
        Line::from(vec![
            Span::raw("Revoke "),
            Span::styled(target.name.clone(), theme.title()),
            Span::raw(format!(" ({})?", target.client_id.short())),
        ]),
        Line::styled(
            "It is disconnected at once and its token stops working; it must pair again.",
            theme.warn(),
        ),
        Line::from(""),
        hint_line(Scope::Dialog, theme),
    ];
    let rect = centred(area, 56, 8);
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(frame(" Revoke client ", theme))
        .render(rect, buf);
}

fn input_rect(area: Rect) -> Rect {
    centred(area, 70.min(area.width.saturating_sub(2)), 5)
}

/// Where the cursor goes while typing a notice.
pub fn input_cursor(area: Rect, input: &Input) -> Option<(u16, u16)> {
    let rect = input_rect(area);
    let inner = Block::bordered().inner(rect);
    if inner.is_empty() {
        return None;
    }
    let width = inner.width as usize;
    let scroll = input.visual_scroll(width.saturating_sub(1));
    let x = input.visual_cursor().saturating_sub(scroll) as u16;
    Some((inner.x + x.min(inner.width - 1), inner.y))
}

pub fn input(input: &Input, clients: usize, theme: Theme, area: Rect, buf: &mut Buffer) {
    let rect = input_rect(area);
    let inner = Block::bordered().inner(rect);
    let width = inner.width as usize;
    let scroll = input.visual_scroll(width.saturating_sub(1));
    let lines = vec![
        Line::from(input.value().chars().skip(scroll).collect::<String>()),
        Line::styled(
            format!("pushed to every connected client ({clients} paired)"),
            theme.dim(),
        ),
        hint_line(Scope::Input, theme),
    ];
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(frame(" Notice ", theme))
        .render(rect, buf);
}
