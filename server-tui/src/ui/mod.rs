//! Drawing: a pure function of [`App`]. Nothing here changes state or does I/O, so the same
//! state always gives the same screen, and tests render into a `TestBackend`.
//!
//! Owns: the layout (full above 60×20, compact down to 40×12, a "terminal too small" notice
//! below), and the split of the screen into header, pairing banner, clients table, runs table
//! (while there are runs), event log and footer. The layout functions are shared with `App::update`, which needs the number of
//! visible rows to scroll and page.

mod banner;
mod clients;
mod log;
mod popup;
mod runs;
mod theme;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use crate::app::{App, Mode};
use crate::keymap;
pub use theme::Theme;
use tui_kit::widgets::{self, Overflow};

/// Where each part goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// Server name, id, addresses, counts, uptime.
    pub header: Rect,
    /// Pairing code or how to pair.
    pub banner: Rect,
    /// Clients table, borders included.
    pub clients: Rect,
    /// Runs table, borders included (zero height while nothing runs).
    pub runs: Rect,
    /// Event log, borders included (zero height when there is no room).
    pub log: Rect,
    /// Key hints.
    pub footer: Rect,
    /// Whether this is the compact layout.
    pub compact: bool,
}

/// The layout of `area` for `app`, or `None` when the terminal is too small.
pub fn areas(area: Rect, app: &App) -> Option<Areas> {
    let compact = widgets::compact(area)?;
    let pending = !app.requests.is_empty();
    let (header, banner) = match (compact, pending) {
        (true, true) => (1, 3),
        (true, false) => (1, 2),
        (false, true) if area.height >= 36 => (2, 12),
        (false, true) => (2, 8),
        (false, false) => (2, 4),
    };
    let body = if compact && area.height < 16 {
        [Constraint::Fill(1), Constraint::Length(0)]
    } else {
        [Constraint::Fill(1), Constraint::Fill(1)]
    };
    let room = area.height.saturating_sub(header + banner + 1);
    let runs = runs::height(app.runs.len(), room, compact);
    let [header, banner, clients, runs, log, footer] = Layout::vertical([
        Constraint::Length(header),
        Constraint::Length(banner),
        body[0],
        Constraint::Length(runs),
        body[1],
        Constraint::Length(1),
    ])
    .areas(area);
    Some(Areas {
        header,
        banner,
        clients,
        runs,
        log,
        footer,
        compact,
    })
}

fn screen(app: &App) -> Rect {
    Rect::new(0, 0, app.size.0, app.size.1)
}

/// Client rows visible on `app`'s terminal (at least 1, for paging maths).
pub fn client_rows(app: &App) -> usize {
    areas(screen(app), app)
        .map(|a| clients::body_rows(a.clients, a.compact))
        .unwrap_or(1)
        .max(1)
}

/// Run rows visible on `app`'s terminal (at least 1, for paging maths).
pub fn run_rows(app: &App) -> usize {
    areas(screen(app), app)
        .map(|a| runs::body_rows(a.runs, a.compact))
        .unwrap_or(1)
        .max(1)
}

/// Log lines visible on `app`'s terminal.
pub fn log_rows(app: &App) -> usize {
    areas(screen(app), app)
        .map(|a| log::body_rows(a.log))
        .unwrap_or(0)
}

/// Width the log's lines wrap at on `app`'s terminal.
fn log_width(app: &App) -> usize {
    areas(screen(app), app)
        .map(|a| log::text_width(a.log))
        .unwrap_or(1)
}

/// Screen lines `line` takes in the log on `app`'s terminal.
pub fn log_line_count(app: &App, line: &crate::app::LogLine) -> usize {
    log::line_count(line, log_width(app))
}

/// Screen lines the whole log takes on `app`'s terminal: what its scroll counts.
pub fn log_lines(app: &App) -> usize {
    let width = log_width(app);
    app.log.iter().map(|l| log::line_count(l, width)).sum()
}

pub use widgets::scroll_into_view;

/// Draw `app` on `frame`, with the cursor in the notice input when it is open.
pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    frame.render_widget(app, area);
    if let Mode::Input(input) = &app.mode
        && let Some((x, y)) = popup::input_cursor(area, input)
    {
        frame.set_cursor_position((x, y));
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let theme = Theme::new(self.color);
        let Some(a) = areas(area, self) else {
            widgets::too_small(area, buf);
            return;
        };
        header(self, theme, a.header, a.compact, buf);
        banner::render(self, theme, a.banner, a.compact, buf);
        clients::render(self, theme, a.clients, a.compact, buf);
        runs::render(self, theme, a.runs, a.compact, buf);
        log::render(self, theme, a.log, buf);
        footer(self, theme, a.footer, buf);
        match &self.mode {
            Mode::Normal => {}
            Mode::Help => popup::help(theme, area, buf),
            Mode::Confirm(target) => popup::confirm(target, theme, area, buf),
            Mode::Input(input) => popup::input(input, self.connected_count(), theme, area, buf),
        }
    }
}

fn header(app: &App, theme: Theme, area: Rect, compact: bool, buf: &mut Buffer) {
    let paired = app.clients.len();
    let connected = app.connected_count();
    let uptime = format!(
        "up {} ",
        uptime(app.clock.instant.saturating_duration_since(app.started))
    );
    if compact {
        let line = Line::from(vec![
            Span::styled(format!("{} ", app.name), theme.title()),
            Span::styled(app.server_short.clone(), theme.dim()),
            Span::raw(format!(" · {paired} paired, {connected} on")),
        ]);
        Paragraph::new(line).render(area, buf);
        return;
    }
    let [top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let name = Line::from(vec![
        Span::styled(format!(" {} ", app.name), theme.title()),
        Span::styled(format!(" id {}", app.server_short), theme.dim()),
    ]);
    // Where the tasks come from, before the uptime when there is room for it.
    let tasks = format!("{} · ", tasks_note(app));
    let right = if name.width() + 2 + tasks.chars().count() + uptime.chars().count()
        <= top.width as usize
    {
        Line::from(vec![Span::styled(tasks, theme.dim()), Span::raw(uptime)])
    } else {
        Line::from(uptime)
    };
    Paragraph::new(name).render(top, buf);
    Paragraph::new(right)
        .alignment(Alignment::Right)
        .render(top, buf);
    let place = match app.listening {
        Some(addr) if app.addrs.is_empty() => {
            format!("listening on port {}, no network address", addr.port())
        }
        Some(addr) => format!(
            "listening on {} port {}",
            addresses(app)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            addr.port()
        ),
        None => "starting…".into(),
    };
    let second = Line::from(vec![
        Span::raw(format!(" {place} · ")),
        Span::styled(format!("{paired} paired"), theme.text()),
        Span::raw(", "),
        Span::styled(format!("{connected} connected"), theme.good()),
    ]);
    Paragraph::new(second).render(bottom, buf);
}

/// `5 tasks from server.toml`, `built-in tasks only`: the header's short word on the tasks.
pub fn tasks_note(app: &App) -> String {
    let Some(path) = &app.tasks.path else {
        return "built-in tasks only".into();
    };
    let file = std::path::Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.clone());
    match app.tasks.tasks.len() {
        1 => format!("1 task from {file}"),
        n => format!("{n} tasks from {file}"),
    }
}

/// The addresses clients can use, as the engine last reported them; none before the
/// listener is up.
pub fn addresses(app: &App) -> Vec<std::net::IpAddr> {
    match app.listening {
        Some(_) => app.addrs.clone(),
        None => Vec::new(),
    }
}

/// The key hints, or what the last key did not do (until the next key). While a question is
/// open, every key that answers it is written.
fn footer(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    if let Some(status) = &app.status {
        Paragraph::new(Line::styled(
            format!(" {}", status.text),
            theme.level(status.level),
        ))
        .render(area, buf);
        return;
    }
    let hints = match app.mode {
        Mode::Confirm(_) => keymap::MAP.answer_hints(&app.scopes()),
        _ => keymap::MAP.hints(&app.scopes()),
    };
    widgets::footer(hints, Overflow::Stop, *theme, area, buf);
}

/// `1h 02m`, `5m 03s`, `12s`.
pub fn uptime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`; `never` for 0.
pub fn ago(now: u64, ts: u64) -> String {
    if ts == 0 {
        return "never".into();
    }
    let s = now.saturating_sub(ts);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

pub use crate::hint::grouped;

/// Seconds as `1:54`.
pub fn countdown(secs: u64) -> String {
    if secs == 0 {
        "expired".into()
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests;
