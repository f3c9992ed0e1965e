//! Headless output: readable lines or JSON, for scripts and services. Consumes the same
//! engine events as the full-screen interface.

use std::io::Write;
use std::path::Path;

use csc_shared::server::control::{self, ControlReply, ControlRequest, PairingCommand};
use csc_shared::server::{
    ClosedReason, OpenedBy, PairingMode, PairingStatus, RevokeError, RevokedBy, ServerEvent,
};
use csc_shared::state::{ServerStore, StateError};
use tokio::sync::mpsc;

use crate::cli::PairingAction;
use crate::{Failure, exit};

fn seconds(s: u64) -> String {
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
    }
}

/// Print events until the engine goes away. Blocking: it runs on a thread of its own, so a
/// reader that stops reading stdout stalls only this thread.
pub fn print_events(mut rx: mpsc::Receiver<ServerEvent>, json: bool) {
    // Under load (a `request` event per task) one write per event cost the server more CPU
    // than running the tasks: everything already queued goes out in one write instead.
    const BATCH: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(BATCH);
    while let Some(event) = rx.blocking_recv() {
        render(&event, json, &mut buf);
        while buf.len() < BATCH {
            match rx.try_recv() {
                Ok(event) => render(&event, json, &mut buf),
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

fn ago(ts: u64) -> String {
    let now = csc_shared::unix_now();
    if ts == 0 {
        return "never".into();
    }
    let secs = now.saturating_sub(ts);
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string() + " ago"
}

/// `server-tui clients`.
pub async fn list_clients(dir: &Path, json: bool) -> Result<(), Failure> {
    let rows: Vec<serde_json::Value> = if ServerStore::is_running(dir) {
        match ask_running(dir, &ControlRequest::Clients, exit::FAILURE).await? {
            ControlReply::Clients { clients } => clients,
            other => return Err(unexpected(other)),
        }
    } else {
        ServerStore::read_clients(dir)?
            .clients
            .into_iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect()
    };
    let mut out = std::io::stdout().lock();
    if json {
        for r in &rows {
            let _ = writeln!(out, "{r}");
        }
        return Ok(());
    }
    if rows.is_empty() {
        let _ = writeln!(out, "no paired clients");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<14} {:<14} {:<22} SESSIONS",
        "NAME", "ID", "PAIRED", "LAST SEEN", "LAST ADDRESS"
    );
    for r in rows {
        let id: csc_shared::identity::PeerId = match serde_json::from_value(r["client_id"].clone())
        {
            Ok(id) => id,
            Err(_) => continue,
        };
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<14} {:<14} {:<22} {}",
            r["name"].as_str().unwrap_or("?"),
            id.short(),
            ago(r["paired_at"].as_u64().unwrap_or(0)),
            ago(r["last_seen"].as_u64().unwrap_or(0)),
            r["last_addr"].as_str().unwrap_or("-"),
            r["sessions"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    Ok(())
}

/// Ask the server running with `dir` through its control socket; its error reply becomes a
/// failure with `refused` as exit code.
async fn ask_running(
    dir: &Path,
    req: &ControlRequest,
    refused: u8,
) -> Result<ControlReply, Failure> {
    match control::request(dir, req).await {
        Ok(ControlReply::Error { message }) => Err(Failure::new(refused, message)),
        Ok(reply) => Ok(reply),
        Err(e) => Err(Failure::new(
            exit::FAILURE,
            format!("a server is running but its control socket did not answer: {e}"),
        )),
    }
}

fn unexpected(reply: ControlReply) -> Failure {
    Failure::new(exit::FAILURE, format!("unexpected reply: {reply:?}"))
}

/// `server-tui forget ID`.
pub async fn forget(dir: &Path, query: &str, json: bool) -> Result<(), Failure> {
    let (client_id, name) = match csc_shared::server::revoke_offline(dir, query) {
        Ok(r) => (r.client_id.to_hex(), r.name),
        Err(RevokeError::State(StateError::Locked { .. })) => {
            let req = ControlRequest::Forget {
                query: query.into(),
            };
            match ask_running(dir, &req, exit::NO_MATCH).await? {
                ControlReply::Revoked { client_id, name } => (client_id, name),
                other => return Err(unexpected(other)),
            }
        }
        Err(e @ (RevokeError::NoMatch(_) | RevokeError::Ambiguous(..))) => {
            return Err(Failure::new(exit::NO_MATCH, e.to_string()));
        }
        Err(RevokeError::State(e)) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"event": "revoked", "client_id": client_id, "name": name})
        );
    } else {
        let short = client_id
            .parse::<csc_shared::identity::PeerId>()
            .map(|i| i.short())
            .unwrap_or(client_id);
        let _ = writeln!(out, "revoked {name} ({short}): its token no longer works");
    }
    Ok(())
}

fn status_text(st: &PairingStatus) -> String {
    let state = if st.open {
        match st.closes_in_s {
            Some(s) => format!("open for {} more (window mode)", seconds(s)),
            None => format!("open ({} mode)", st.mode),
        }
    } else {
        match st.reason {
            Some(reason) => format!(
                "closed: {}",
                closed_text(
                    st.mode,
                    reason,
                    st.reopens_in_s,
                    st.budget,
                    st.budget_window_s
                )
            ),
            None => "closed".to_string(),
        }
    };
    format!(
        "pairing {state}\nfailure budget: {} of {} wrong codes used in the last {}; {} closures counted\npending requests: {}\naddresses remembered: {} (and {} network prefixes)",
        st.failures,
        st.budget,
        seconds(st.budget_window_s),
        st.closures,
        st.pending,
        st.remembered_addresses,
        st.remembered_prefixes
    )
}

/// `server-tui pairing open|close|status`: through the running server's control socket.
pub async fn pairing(dir: &Path, action: &PairingAction, json: bool) -> Result<(), Failure> {
    if !ServerStore::is_running(dir) {
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "no server is running with the state folder {}; pairing is set when it starts (--pairing)",
                dir.display()
            ),
        ));
    }
    let command = match action {
        PairingAction::Open { for_ } => PairingCommand::Open {
            for_ms: for_.map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
        },
        PairingAction::Close => PairingCommand::Close,
        PairingAction::Status => PairingCommand::Status,
    };
    let req = ControlRequest::Pairing { command };
    let status = match ask_running(dir, &req, exit::FAILURE).await? {
        ControlReply::Pairing { status } => status,
        other => return Err(unexpected(other)),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&status).unwrap_or_default()
        );
    } else {
        let _ = writeln!(out, "{}", status_text(&status));
    }
    Ok(())
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
}
