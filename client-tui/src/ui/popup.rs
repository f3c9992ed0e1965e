//! Windows drawn over a screen: the help (built from the key map), the address box and the
//! "forget this server?" confirmation.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};
use tui_input::Input;

use super::Theme;
use crate::app::ForgetTarget;
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

/// The keys of this screen (`scopes`), of anywhere, and of the help itself; the other
/// screens list theirs when they are open.
pub fn help(scopes: &[Scope], theme: Theme, area: Rect, buf: &mut Buffer) {
    let mut lines = Vec::new();
    let shown = Scope::ALL
        .into_iter()
        .filter(|s| *s == Scope::Global || *s == Scope::Help || scopes.contains(s));
    for scope in shown {
        lines.push(Line::styled(scope.title(), theme.header()));
        for b in BINDINGS.iter().filter(|b| b.scope == scope) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<11}", b.keys_label()), theme.key()),
                Span::raw(b.help),
            ]));
        }
    }
    lines.push(Line::styled(
        "Each screen lists its own keys here. Text can be selected and copied.",
        theme.dim(),
    ));
    // Leave the footer line visible: it says how to close this.
    let room = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let rect = centred(room, 76, lines.len() as u16 + 2);
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(frame(" Keys ", theme))
        .render(rect, buf);
}

pub fn confirm(target: &ForgetTarget, theme: Theme, area: Rect, buf: &mut Buffer) {
    let lines = vec![
        Line::from(vec![
            Span::raw("Forget "),
            Span::styled(target.name.clone(), theme.title()),
            Span::raw(format!(" ({})?", target.server_id.short())),
        ]),
        Line::styled(
            "The server is asked to revoke the pairing too; using it again needs a new code.",
            theme.warn(),
        ),
        Line::from(""),
        hint_line(Scope::Dialog, theme),
    ];
    let rect = centred(area, 56, 8);
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(frame(" Forget server ", theme))
        .render(rect, buf);
}

fn address_rect(area: Rect) -> Rect {
    centred(area, 60.min(area.width.saturating_sub(2)), 5)
}

/// Where the cursor goes while typing an address.
pub fn address_cursor(area: Rect, input: &Input) -> Option<(u16, u16)> {
    let inner = Block::bordered().inner(address_rect(area));
    if inner.is_empty() {
        return None;
    }
    let scroll = input.visual_scroll((inner.width as usize).saturating_sub(1));
    let x = input.visual_cursor().saturating_sub(scroll) as u16;
    Some((inner.x + x.min(inner.width - 1), inner.y))
}

pub fn address(input: &Input, theme: Theme, area: Rect, buf: &mut Buffer) {
    let rect = address_rect(area);
    let inner = Block::bordered().inner(rect);
    let scroll = input.visual_scroll((inner.width as usize).saturating_sub(1));
    let lines = vec![
        Line::from(input.value().chars().skip(scroll).collect::<String>()),
        Line::styled("HOST or HOST:PORT, e.g. 192.168.1.20", theme.dim()),
        hint_line(Scope::Address, theme),
    ];
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(frame(" Server address ", theme))
        .render(rect, buf);
}
