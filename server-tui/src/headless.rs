//! Headless output: readable lines or JSON, for scripts and services. Consumes the same
//! engine events as the full-screen interface.

use std::io::Write;

use csc_shared::message::{RefusalCode, RunStatus, StopReason};
use csc_shared::server::tasks::config::ConfigFile;
use csc_shared::server::{ClosedReason, OpenedBy, PairingMode, RevokedBy, ServerEvent};
use tokio::sync::mpsc;

use crate::hint::PairHint;

pub(crate) fn seconds(s: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

/// Why pairing is closed, what reopens it, in a sentence.
pub fn closed_text(
    mode: PairingMode,
    reason: ClosedReason,
    reopens_in_s: Option<u64>,
    budget: u32,
    budget_window_s: u64,
) -> String {
    let why = match reason {
        ClosedReason::Budget => format!(
            "{budget} wrong codes within {}: the failure budget is spent",
            seconds(budget_window_s)
        ),
        other => other.describe().to_string(),
    };
    let how = match (mode, reopens_in_s) {
        (PairingMode::Request, Some(s)) => format!(
            "it reopens by itself in {}, or at once with `server-tui pairing open` (o in the full-screen interface)",
            seconds(s)
        ),
        (PairingMode::Request, None) => {
            "open it with `server-tui pairing open` (o in the full-screen interface)".to_string()
        }
        (PairingMode::Window, _) => {
            "open a pairing window with `server-tui pairing open [--for 2m]` (o in the full-screen interface)".to_string()
        }
    };
    format!("{why}; {how}")
}

/// `10.0.0.5, 192.168.1.9`, or what having none means.
fn reach_text(addrs: &[std::net::IpAddr]) -> String {
    if addrs.is_empty() {
        return "no address but loopback".to_string();
    }
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the server's configured tasks came from, as the startup line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TasksOrigin {
    /// The configuration file, if there is one.
    pub path: Option<String>,
    /// Its tasks, sorted.
    pub tasks: Vec<String>,
}

impl TasksOrigin {
    /// The origin of the tasks of `file`, or of none.
    pub fn of(file: Option<&ConfigFile>) -> Self {
        Self {
            path: file.map(|f| f.path.display().to_string()),
            tasks: file
                .map(|f| f.tasks.iter().map(|t| t.name().to_string()).collect())
                .unwrap_or_default(),
        }
    }

    /// `tasks from /etc/x/server.toml: cat, greet`, or what having no file means.
    pub fn text(&self) -> String {
        match &self.path {
            Some(path) => format!("tasks from {path}: {}", names(&self.tasks)),
            None => "no configuration file; built-in tasks only".to_string(),
        }
    }

    /// The JSON object that stands for the startup line.
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"event": "tasks_loaded", "path": self.path, "tasks": self.tasks})
    }
}

/// `a, b, c`, or `none (built-in tasks only)`.
pub(crate) fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none (built-in tasks only)".to_string()
    } else {
        list.join(", ")
    }
}

/// Text a client chose (a task name it asked for, an argument), safe to print: control
/// characters escaped, and cut short when long.
pub(crate) fn clean(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A run's arguments as one might type them: plain words bare, others quoted.
pub fn args_text(args: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut words: Vec<String> = args
        .iter()
        .take(SHOWN)
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\'');
            if plain {
                clean(a, 40)
            } else {
                format!("{:?}", clean(a, 40))
            }
        })
        .collect();
    if args.len() > SHOWN {
        words.push(format!("… ({} more)", args.len() - SHOWN));
    }
    words.join(" ")
}

/// `512 B`, `1.2 KiB`, `3.4 MiB`, `1.0 GiB`.
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `0.4 s`, `3.0 s` under a minute, then `2m 05s`.
pub fn duration_text(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        crate::ui::uptime(std::time::Duration::from_millis(ms))
    }
}

/// A wire code (`forbidden`, `bad_args`) as its name.
fn code_name(code: &impl serde::Serialize) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".into())
}

/// How a run ended, after the task's name: `exited 0`, `was stopped by the operator`.
pub fn run_status_text(status: &RunStatus) -> String {
    match status {
        RunStatus::Exited { code } => format!("exited {code}"),
        RunStatus::Signaled { signal } => format!("was killed by signal {signal}"),
        RunStatus::Stopped { reason } => format!(
            "was stopped: {}",
            match reason {
                StopReason::Timeout => "it ran out of time",
                StopReason::OutputLimit => "it wrote more than its output cap",
                StopReason::StdinLimit => "the client sent more than its stdin cap",
                StopReason::Cancelled => "the client cancelled it",
                StopReason::Disconnected => "the client's session ended",
                StopReason::Shutdown => "the server is shutting down",
                StopReason::Operator => "by the operator",
                StopReason::Other => "for a reason this version does not know",
            }
        ),
        RunStatus::Refused { code, message } => {
            format!("was refused ({}): {}", code_name(code), clean(message, 200))
        }
        RunStatus::Done {} => "done".to_string(),
        RunStatus::Failed { code, message } => {
            format!("failed ({}): {}", clean(code, 40), clean(message, 200))
        }
        RunStatus::Other => "ended".to_string(),
    }
}

/// What a refused client was trying to do, after its name.
fn refusal_text(code: RefusalCode, task: &str, message: &str) -> String {
    let task = clean(task, 64);
    let why = clean(message, 200);
    let name = code_name(&code);
    match code {
        RefusalCode::Forbidden => format!("may not run {task} ({name})"),
        RefusalCode::UnknownTask => format!("asked for {task}, which is no task here ({name})"),
        RefusalCode::BadArgs => format!("gave {task} bad arguments: {why} ({name})"),
        _ => format!("could not run {task}: {why} ({name})"),
    }
}

/// One readable line for an event.
pub fn describe(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Listening {
            addr,
            server_short,
            name,
            addrs,
            ..
        } => {
            let reach = if addr.ip().is_unspecified() {
                format!("; reachable at {}", reach_text(addrs))
            } else {
                String::new()
            };
            format!("listening on {addr} as {name:?} (server id {server_short}){reach}")
        }
        ServerEvent::CodeAhead { code, expires_in_s } => format!(
            "pairing code for the next request: {} (waits {expires_in_s} s for one); on the client: client-tui pair --code {code}",
            crate::hint::grouped(code)
        ),
        ServerEvent::AddressesChanged { addrs } => {
            format!("addresses changed: reachable at {}", reach_text(addrs))
        }
        ServerEvent::PairRequest {
            client_name,
            client_addr,
            client_short,
            code,
            expires_in_s,
            attempts_left,
            ..
        } => format!(
            "pair request from {client_name} ({client_addr}, client id {client_short}); expires in {expires_in_s} s, {attempts_left} attempts\npairing code for {client_name} ({client_addr}): {code}"
        ),
        ServerEvent::PairFailed {
            client_name,
            client_addr,
            reason,
            attempts_left,
            ..
        } => format!(
            "pairing failed for {client_name} ({client_addr}): {} ({attempts_left} attempts left)",
            reason.describe()
        ),
        ServerEvent::PairClosed { request_id, reason } => {
            format!("pair request #{request_id} closed: {}", reason.describe())
        }
        ServerEvent::Paired {
            client_name,
            client_addr,
            client_id,
            ..
        } => format!(
            "paired {client_name} ({client_addr}, client id {})",
            client_id.short()
        ),
        ServerEvent::Connected {
            client_name,
            client_addr,
            ..
        } => format!("connected: {client_name} ({client_addr})"),
        ServerEvent::Disconnected {
            client_name,
            client_addr,
            reason,
            ..
        } => format!(
            "disconnected: {client_name} ({client_addr}): {}",
            reason.describe()
        ),
        ServerEvent::AuthFailed {
            client_addr,
            client_id,
            reason,
        } => format!(
            "refused token from {client_addr} (client id {}): {}",
            client_id.short(),
            reason.describe()
        ),
        ServerEvent::Request {
            client_name,
            task,
            ok,
            elapsed_us,
            ..
        } => format!(
            "request from {client_name}: {task} -> {} ({elapsed_us} µs)",
            if *ok { "ok" } else { "error" }
        ),
        ServerEvent::Requests {
            client_name,
            count,
            failed,
            interval_ms,
            ..
        } => {
            let failed = if *failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            };
            format!(
                "{count} requests from {client_name} in {:.1} s{failed}",
                *interval_ms as f64 / 1000.0
            )
        }
        ServerEvent::Revoked {
            client_name,
            client_id,
            by,
        } => {
            let by = match by {
                RevokedBy::Operator => "the operator",
                RevokedBy::Client => "the client itself",
            };
            format!("revoked {client_name} ({}) by {by}", client_id.short())
        }
        ServerEvent::NoticeSent { text, recipients } => {
            format!("notice to {recipients} clients: {text}")
        }
        ServerEvent::Warning { message } => format!("warning: {message}"),
        ServerEvent::TaskStarted {
            run_id,
            client_name,
            client_id,
            task,
            args,
            ..
        } => {
            let args = args_text(args);
            let sep = if args.is_empty() { "" } else { " " };
            format!(
                "run {run_id}: {client_name} ({}) started {}{sep}{args}",
                client_id.short(),
                clean(task, 64)
            )
        }
        ServerEvent::TaskFinished {
            run_id,
            client_name,
            task,
            status,
            duration_ms,
            bytes_out,
            bytes_in,
            ..
        } => {
            let input = if *bytes_in > 0 {
                format!(", {} in", bytes_text(*bytes_in))
            } else {
                String::new()
            };
            format!(
                "run {run_id}: {client_name} {} {} after {}, {} out{input}",
                clean(task, 64),
                run_status_text(status),
                duration_text(*duration_ms),
                bytes_text(*bytes_out)
            )
        }
        ServerEvent::TaskRefused {
            client_name,
            client_id,
            client_addr,
            task,
            code,
            message,
            ..
        } => format!(
            "refused: {client_name} ({}) from {client_addr} {}",
            client_id.short(),
            refusal_text(*code, task, message)
        ),
        ServerEvent::TasksReloaded { path, tasks } => {
            format!("tasks reloaded from {path}: {}", names(tasks))
        }
        ServerEvent::Renamed {
            client_id,
            old_name,
            new_name,
        } => format!(
            "renamed {} from {old_name:?} to {new_name:?}",
            client_id.short()
        ),
        ServerEvent::PairingOpened {
            mode,
            by,
            closes_in_s,
        } => {
            let by = match by {
                OpenedBy::Operator => "by the operator",
                OpenedBy::Cooloff => "after its cool-off",
            };
            match (mode, closes_in_s) {
                (PairingMode::Window, Some(s)) => format!(
                    "PAIRING OPEN {by}: requests are accepted for {}, or until one client pairs",
                    seconds(*s)
                ),
                _ => format!("PAIRING OPEN {by}: requests are accepted again"),
            }
        }
        ServerEvent::PairingClosed {
            mode,
            reason,
            reopens_in_s,
            budget,
            budget_window_s,
        } => format!(
            "PAIRING CLOSED: {}",
            closed_text(*mode, *reason, *reopens_in_s, *budget, *budget_window_s)
        ),
        ServerEvent::Summary {
            interval_ms,
            failures,
            shown,
            addresses,
            addresses_capped,
            reasons,
            dropped,
            evicted,
        } => {
            let mut parts = Vec::new();
            if failures > shown {
                let by: Vec<String> = reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
                parts.push(format!(
                    "{failures} refusals from {}{} addresses ({}; {} shown one by one)",
                    if *addresses_capped { "at least " } else { "" },
                    addresses,
                    by.join(", "),
                    shown
                ));
            }
            if *evicted > 0 {
                parts.push(format!(
                    "{evicted} unauthenticated connections closed to make room"
                ));
            }
            if *dropped > 0 {
                parts.push(format!("{dropped} events not shown (output was behind)"));
            }
            format!(
                "in the last {:.0} s: {}",
                *interval_ms as f64 / 1000.0,
                parts.join("; ")
            )
        }
    }
}

/// Append one event as a line to `buf`.
fn render(event: &ServerEvent, json: bool, buf: &mut Vec<u8>) {
    if json {
        let mut v = serde_json::to_value(event).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("ts_ms".into(), csc_shared::unix_now_ms().into());
        }
        let _ = serde_json::to_writer(&mut *buf, &v);
        buf.push(b'\n');
    } else {
        let _ = writeln!(buf, "{}", describe(event));
        if let ServerEvent::Listening { addr, addrs, .. } = event {
            let _ = writeln!(buf, "{}", pair_hint_line(*addr, addrs));
        }
    }
}

/// The line after `listening` that says which command pairs a client, and from where.
fn pair_hint_line(addr: std::net::SocketAddr, addrs: &[std::net::IpAddr]) -> String {
    let hint = PairHint::new(addr, addrs);
    let alternative = hint
        .alternative
        .map(|a| format!(" (or: {a})"))
        .unwrap_or_default();
    format!(
        "to pair, run on {}: {}{alternative}",
        hint.place, hint.command
    )
}

/// Append the startup line that says where the tasks came from.
fn render_origin(origin: &TasksOrigin, json: bool, buf: &mut Vec<u8>) {
    if json {
        let mut v = origin.json();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("ts_ms".into(), csc_shared::unix_now_ms().into());
        }
        let _ = serde_json::to_writer(&mut *buf, &v);
        buf.push(b'\n');
    } else {
        let _ = writeln!(buf, "{}", origin.text());
    }
}

/// Print events until the engine goes away, with where the tasks came from right after the
/// `listening` line. Blocking: it runs on a thread of its own, so a reader that stops reading
/// stdout stalls only this thread.
pub fn print_events(mut rx: mpsc::Receiver<ServerEvent>, json: bool, origin: TasksOrigin) {
    // Under load (a `request` event per task) one write per event cost the server more CPU
    // than running the tasks: everything already queued goes out in one write instead.
    const BATCH: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(BATCH);
    let mut origin = Some(origin);
    let mut one = |event: &ServerEvent, buf: &mut Vec<u8>| {
        render(event, json, buf);
        if matches!(event, ServerEvent::Listening { .. })
            && let Some(origin) = origin.take()
        {
            render_origin(&origin, json, buf);
        }
    };
    while let Some(event) = rx.blocking_recv() {
        one(&event, &mut buf);
        while buf.len() < BATCH {
            match rx.try_recv() {
                Ok(event) => one(&event, &mut buf),
                Err(_) => break,
            }
        }
        {
            let mut out = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) must not stop the server.
            let _ = out.write_all(&buf);
            let _ = out.flush();
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{addr, peer};
    use csc_shared::server::{DisconnectReason, PairClosedReason};

    #[test]
    fn reasons_read_as_words_and_addresses_as_a_list() {
        let closed = ServerEvent::PairClosed {
            request_id: 4,
            reason: PairClosedReason::Displaced,
        };
        assert_eq!(
            describe(&closed),
            "pair request #4 closed: displaced by another request"
        );
        let gone = ServerEvent::Disconnected {
            session_id: 1,
            client_name: "kiosk".into(),
            client_addr: addr(3, 5000),
            client_id: peer(3),
            reason: DisconnectReason::StoppedReading,
        };
        assert_eq!(
            describe(&gone),
            "disconnected: kiosk (10.0.0.3:5000): client stopped reading"
        );
        let revoked = ServerEvent::Revoked {
            client_id: peer(3),
            client_name: "kiosk".into(),
            by: RevokedBy::Client,
        };
        assert!(describe(&revoked).ends_with("by the client itself"));
        let moved = ServerEvent::AddressesChanged {
            addrs: vec!["10.0.0.7".parse().unwrap(), "10.0.1.7".parse().unwrap()],
        };
        assert_eq!(
            describe(&moved),
            "addresses changed: reachable at 10.0.0.7, 10.0.1.7"
        );
        let listening = crate::test_support::listening();
        assert!(
            describe(&listening).ends_with("; reachable at 192.168.1.5"),
            "{}",
            describe(&listening)
        );
    }

    fn kiosk_run(
        status: RunStatus,
        duration_ms: u64,
        bytes_out: u64,
        bytes_in: u64,
    ) -> ServerEvent {
        ServerEvent::TaskFinished {
            run_id: 12,
            session_id: 3,
            client_name: "kiosk-1".into(),
            client_id: peer(1),
            task: "greet".into(),
            status,
            duration_ms,
            bytes_out,
            bytes_in,
        }
    }

    #[test]
    fn runs_read_as_who_ran_what_and_how_it_ended() {
        let started = ServerEvent::TaskStarted {
            run_id: 12,
            session_id: 3,
            client_name: "kiosk-1".into(),
            client_id: peer(1),
            task: "greet".into(),
            args: vec!["ada".into()],
        };
        assert_eq!(
            describe(&started),
            format!("run 12: kiosk-1 ({}) started greet ada", peer(1).short())
        );
        let odd = ServerEvent::TaskStarted {
            run_id: 13,
            session_id: 3,
            client_name: "kiosk-1".into(),
            client_id: peer(1),
            task: "echo".into(),
            args: vec!["two words".into(), "\u{1b}[31mred".into(), String::new()],
        };
        let line = describe(&odd);
        assert!(
            line.ends_with(r#"started echo "two words" "\\u{1b}[31mred" """#),
            "quoted, and no escape sequence reaches the terminal: {line}"
        );
        assert!(!line.contains('\u{1b}'), "{line}");
        let bare = ServerEvent::TaskStarted {
            run_id: 14,
            session_id: 3,
            client_name: "kiosk-1".into(),
            client_id: peer(1),
            task: "count".into(),
            args: vec![],
        };
        assert!(
            describe(&bare).ends_with("started count"),
            "{}",
            describe(&bare)
        );

        assert_eq!(
            describe(&kiosk_run(RunStatus::Exited { code: 0 }, 3000, 1229, 0)),
            "run 12: kiosk-1 greet exited 0 after 3.0 s, 1.2 KiB out"
        );
        assert_eq!(
            describe(&kiosk_run(
                RunStatus::Stopped {
                    reason: StopReason::Timeout
                },
                1000,
                0,
                5
            )),
            "run 12: kiosk-1 greet was stopped: it ran out of time after 1.0 s, 0 B out, 5 B in"
        );
        assert!(
            describe(&kiosk_run(
                RunStatus::Signaled { signal: 9 },
                125_000,
                3 << 20,
                0
            ))
            .ends_with("was killed by signal 9 after 2m 05s, 3.0 MiB out")
        );
        assert!(
            describe(&kiosk_run(
                RunStatus::Stopped {
                    reason: StopReason::Operator
                },
                10,
                0,
                0
            ))
            .contains("was stopped: by the operator")
        );
    }

    #[test]
    fn refusals_reloads_and_renames() {
        let refused = ServerEvent::TaskRefused {
            session_id: 3,
            client_name: "kiosk-1".into(),
            client_id: peer(1),
            client_addr: "127.0.0.1:5555".parse().unwrap(),
            task: "secret".into(),
            code: RefusalCode::Forbidden,
            message: "not for you".into(),
        };
        assert_eq!(
            describe(&refused),
            format!(
                "refused: kiosk-1 ({}) from 127.0.0.1:5555 may not run secret (forbidden)",
                peer(1).short()
            )
        );
        let unknown = ServerEvent::TaskRefused {
            session_id: 3,
            client_name: "kiosk-1".into(),
            client_id: peer(1),
            client_addr: "127.0.0.1:5555".parse().unwrap(),
            task: "nope\n".into(),
            code: RefusalCode::UnknownTask,
            message: "no such task".into(),
        };
        let line = describe(&unknown);
        assert!(
            line.ends_with("asked for nope\\n, which is no task here (unknown_task)"),
            "{line}"
        );
        let reloaded = ServerEvent::TasksReloaded {
            path: "/etc/x/server.toml".into(),
            tasks: vec!["a".into(), "b".into(), "c".into()],
        };
        assert_eq!(
            describe(&reloaded),
            "tasks reloaded from /etc/x/server.toml: a, b, c"
        );
        let renamed = ServerEvent::Renamed {
            client_id: peer(1),
            old_name: "x".into(),
            new_name: "y".into(),
        };
        assert_eq!(
            describe(&renamed),
            format!("renamed {} from \"x\" to \"y\"", peer(1).short())
        );
    }

    #[test]
    fn the_startup_line_says_where_the_tasks_came_from() {
        let none = TasksOrigin::of(None);
        assert_eq!(none.text(), "no configuration file; built-in tasks only");
        let some = TasksOrigin {
            path: Some("/etc/x/server.toml".into()),
            tasks: vec!["cat".into(), "greet".into()],
        };
        assert_eq!(some.text(), "tasks from /etc/x/server.toml: cat, greet");
        assert_eq!(some.json()["event"], "tasks_loaded");
        assert_eq!(some.json()["tasks"][1], "greet");
        assert!(none.json()["path"].is_null());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1024), "1.0 KiB");
        assert_eq!(bytes_text(1 << 30), "1.0 GiB");
        assert_eq!(duration_text(400), "0.4 s");
        assert_eq!(duration_text(59_900), "59.9 s");
        assert_eq!(duration_text(3_600_000), "1h 00m");
    }
}
