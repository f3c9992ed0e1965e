//! Headless output: readable lines or JSON, for scripts and services. Consumes the same
//! engine events as the full-screen interface.

use std::io::Write;
use std::path::Path;

use csc_shared::server::control::{self, ControlReply, ControlRequest};
use csc_shared::server::{RevokeError, ServerEvent};
use csc_shared::state::{ServerStore, StateError};
use tokio::sync::mpsc;

use crate::{Failure, exit};

/// One readable line for an event.
pub fn describe(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Listening {
            addr,
            server_short,
            name,
            ..
        } => format!("listening on {addr} as {name:?} (server id {server_short})"),
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
            format!("pair request #{request_id} closed: {reason}")
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
        } => format!("disconnected: {client_name} ({client_addr}): {reason}"),
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
        } => format!("revoked {client_name} ({}) by {by}", client_id.short()),
        ServerEvent::NoticeSent { text, recipients } => {
            format!("notice to {recipients} clients: {text}")
        }
        ServerEvent::Warning { message } => format!("warning: {message}"),
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

/// Print events until the engine goes away.
pub async fn print_events(mut rx: mpsc::UnboundedReceiver<ServerEvent>, json: bool) {
    // Under load (a `request` event per task) one write per event cost the server more CPU
    // than running the tasks: everything already queued goes out in one write instead.
    const BATCH: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(BATCH);
    while let Some(event) = rx.recv().await {
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
        match control::request(dir, &ControlRequest::Clients).await {
            Ok(ControlReply::Clients { clients }) => clients,
            Ok(other) => {
                return Err(Failure::new(
                    exit::FAILURE,
                    format!("unexpected reply: {other:?}"),
                ));
            }
            Err(e) => {
                return Err(Failure::new(
                    exit::FAILURE,
                    format!("the running server did not answer on its control socket: {e}"),
                ));
            }
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

/// `server-tui forget ID`.
pub async fn forget(dir: &Path, query: &str, json: bool) -> Result<(), Failure> {
    let (client_id, name) = match csc_shared::server::revoke_offline(dir, query) {
        Ok(r) => (r.client_id.to_hex(), r.name),
        Err(RevokeError::State(StateError::Locked { .. })) => {
            match control::request(
                dir,
                &ControlRequest::Forget {
                    query: query.into(),
                },
            )
            .await
            {
                Ok(ControlReply::Revoked { client_id, name }) => (client_id, name),
                Ok(ControlReply::Error { message }) => {
                    return Err(Failure::new(exit::NO_MATCH, message));
                }
                Ok(other) => {
                    return Err(Failure::new(
                        exit::FAILURE,
                        format!("unexpected reply: {other:?}"),
                    ));
                }
                Err(e) => {
                    return Err(Failure::new(
                        exit::FAILURE,
                        format!("a server is running but its control socket did not answer: {e}"),
                    ));
                }
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
