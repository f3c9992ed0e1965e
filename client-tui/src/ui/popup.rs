//! Windows drawn over a screen: the help (built from the key map), the address box and the
//! "forget this server?" confirmation. How windows look is `tui_kit::widgets`'.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use tui_input::Input;
use tui_kit::widgets;

use super::Theme;
use crate::app::ForgetTarget;
use crate::keymap::{MAP, Scope};

fn hint_line(scope: Scope, theme: Theme) -> Line<'static> {
    widgets::hint_line(MAP.hints(&[scope]), *theme)
}

/// The keys that answer a question, every one of them written (`n/Esc keep`).
fn answer_line(scope: Scope, theme: Theme) -> Line<'static> {
    widgets::hint_line(MAP.answer_hints(&[scope]), *theme)
}

/// The keys of this screen (`scopes`), of anywhere, and of the help itself; the other
/// screens list theirs when they are open.
pub fn help(scopes: &[Scope], theme: Theme, area: Rect, buf: &mut Buffer) {
    let shown = Scope::ALL
        .into_iter()
        .filter(|s| *s == Scope::Global || *s == Scope::Help || scopes.contains(s));
    let mut lines = widgets::help_lines(&MAP, shown, Scope::title, 11, *theme);
    lines.push(Line::styled(
        "Each screen lists its own keys here. Text can be selected and copied.",
        theme.dim(),
    ));
    widgets::help_window(lines, 76, *theme, area, buf);
}

/// The tasks the server offers this client: how to call each, what it does, and what its
/// arguments must look like.
pub fn tasks(list: &[csc_shared::message::TaskInfo], theme: Theme, area: Rect, buf: &mut Buffer) {
    let mut lines = Vec::new();
    if list.is_empty() {
        lines.push(Line::styled(
            "The server has not listed its tasks (yet).",
            theme.dim(),
        ));
    }
    for t in list {
        let mut usage = t.name.clone();
        for a in &t.args {
            usage.push_str(&format!(" <{}>", a.name));
        }
        if t.stdin {
            usage.push_str("  (reads stdin)");
        }
        lines.push(Line::styled(usage, theme.key()));
        if !t.description.is_empty() {
            lines.push(Line::from(format!("    {}", t.description)));
        }
        for a in &t.args {
            lines.push(Line::styled(
                format!("    {}: {}", a.name, a.pattern),
                theme.dim(),
            ));
        }
    }
    lines.push(Line::from(""));
    lines.push(hint_line(Scope::TaskList, theme));
    widgets::help_window(lines, 76, *theme, area, buf);
}

pub fn confirm(target: &ForgetTarget, theme: Theme, area: Rect, buf: &mut Buffer) {
    widgets::Confirm {
        verb: "Forget",
        name: &target.name,
        short: &target.server_id.short(),
        warning: "The server is asked to revoke the pairing too; using it again needs a new code.",
        title: " Forget server ",
    }
    .render(answer_line(Scope::Dialog, theme), *theme, area, buf);
}

/// Where the cursor goes while typing an address.
pub fn address_cursor(area: Rect, input: &Input) -> Option<(u16, u16)> {
    widgets::input_cursor(widgets::input_rect(area, 60), input)
}

pub fn address(input: &Input, theme: Theme, area: Rect, buf: &mut Buffer) {
    let below = [
        Line::styled("HOST or HOST:PORT, e.g. 192.168.1.20", theme.dim()),
        hint_line(Scope::Address, theme),
    ];
    let rect = widgets::input_rect(area, 60);
    widgets::input_box(input, below, " Server address ", *theme, rect, buf);
}
