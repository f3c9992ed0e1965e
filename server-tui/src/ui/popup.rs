//! Windows drawn over the main screen: the help (built from the key map), the "revoke?"
//! confirmation and the notice input. How windows look is `tui_kit::widgets`'.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use tui_input::Input;
use tui_kit::widgets;

use super::Theme;
use crate::app::RevokeTarget;
use crate::keymap::{MAP, Scope};

fn hint_line(scope: Scope, theme: Theme) -> Line<'static> {
    widgets::hint_line(MAP.hints(&[scope]), *theme)
}

/// The keys that answer a question, every one of them written (`n/Esc keep`).
fn answer_line(scope: Scope, theme: Theme) -> Line<'static> {
    widgets::hint_line(MAP.answer_hints(&[scope]), *theme)
}

pub fn help(theme: Theme, area: Rect, buf: &mut Buffer) {
    let scopes = [
        Scope::Global,
        Scope::Main,
        Scope::Clients,
        Scope::Runs,
        Scope::Dialog,
        Scope::Input,
        Scope::Help,
    ];
    let mut lines = widgets::help_lines(&MAP, scopes, Scope::title, 13, *theme);
    lines.push(Line::styled(
        "Event times are UTC. Text on screen can be selected and copied.",
        theme.dim(),
    ));
    widgets::help_window(lines, 66, *theme, area, buf);
}

pub fn confirm(target: &RevokeTarget, theme: Theme, area: Rect, buf: &mut Buffer) {
    widgets::Confirm {
        verb: "Revoke",
        name: &target.name,
        short: &target.client_id.short(),
        warning: "It is disconnected at once and its token stops working; it must pair again.",
        title: " Revoke client ",
    }
    .render(answer_line(Scope::Dialog, theme), *theme, area, buf);
}

/// Where the cursor goes while typing a notice.
pub fn input_cursor(area: Rect, input: &Input) -> Option<(u16, u16)> {
    widgets::input_cursor(widgets::input_rect(area, 70), input)
}

/// Who a notice reaches: the clients connected now (a client that is paired but away does
/// not get it later).
fn notice_reach(connected: usize) -> String {
    match connected {
        0 => "no client is connected now: nobody would get it".into(),
        1 => "pushed to the 1 connected client".into(),
        n => format!("pushed to the {n} connected clients"),
    }
}

pub fn input(input: &Input, connected: usize, theme: Theme, area: Rect, buf: &mut Buffer) {
    let below = [
        Line::styled(notice_reach(connected), theme.dim()),
        hint_line(Scope::Input, theme),
    ];
    let rect = widgets::input_rect(area, 70);
    widgets::input_box(input, below, " Notice ", *theme, rect, buf);
}
