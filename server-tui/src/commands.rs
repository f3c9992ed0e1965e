//! The subcommands that act on a server's state: `clients`, `forget`, `rename`, `pairing`,
//! `reload`, `runs` and `stop-run`. Each asks the running server through its control socket
//! (or, for `clients` and `forget` when none runs, reads or edits the state folder), then
//! prints a readable answer or JSON.

use std::io::Write;
use std::path::Path;

use csc_shared::server::control::{self, ControlReply, ControlRequest, PairingCommand};
use csc_shared::server::{PairingStatus, RevokeError, RunView};
use csc_shared::state::{ServerStore, StateError};

use crate::cli::PairingAction;
use crate::headless::{args_text, bytes_text, clean, closed_text, duration_text, names, seconds};
use crate::{Failure, exit};

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
        Err(e @ RevokeError::BadName(_)) => return Err(Failure::new(exit::USAGE, e.to_string())),
        Err(RevokeError::State(e)) => return Err(e.into()),
    };
    print_client(json, "revoked", client_id, name, |short, name| {
        format!("revoked {name} ({short}): its token no longer works")
    });
    Ok(())
}

/// Print what happened to one client: JSON `{"event", "client_id", "name"}`, or `text` of
/// its short id and name.
fn print_client(
    json: bool,
    event: &str,
    client_id: String,
    name: String,
    text: impl FnOnce(&str, &str) -> String,
) {
    let value = serde_json::json!({"event": event, "client_id": client_id, "name": name});
    let short = client_id
        .parse::<csc_shared::identity::PeerId>()
        .map(|i| i.short())
        .unwrap_or(client_id);
    print_answer(json, &value, || text(&short, &name));
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
        PairingAction::Code => PairingCommand::Code,
    };
    let req = ControlRequest::Pairing { command };
    if let PairingAction::Code = action {
        return match ask_running(dir, &req, exit::FAILURE).await? {
            ControlReply::CodeAhead {
                code,
                expires_in_s,
                status,
            } => {
                let value = serde_json::json!({
                    "event": "code_ahead",
                    "code": code,
                    "expires_in_s": expires_in_s,
                    "status": status,
                });
                print_answer(json, &value, || {
                    format!(
                        "pairing code for the next request: {} (waits {expires_in_s} s for one)\non the client: client-tui pair --code {code}",
                        crate::hint::grouped(&code)
                    )
                });
                Ok(())
            }
            other => Err(unexpected(other)),
        };
    }
    let status = match ask_running(dir, &req, exit::FAILURE).await? {
        ControlReply::Pairing { status } => status,
        other => return Err(unexpected(other)),
    };
    let value = serde_json::to_value(&status).unwrap_or_default();
    print_answer(json, &value, || status_text(&status));
    Ok(())
}

/// Fail unless a server runs with `dir`; `why` says what the subcommand needs it for.
fn need_running(dir: &Path, why: &str) -> Result<(), Failure> {
    if ServerStore::is_running(dir) {
        return Ok(());
    }
    Err(Failure::new(
        exit::FAILURE,
        format!(
            "no server is running with the state folder {}; {why}",
            dir.display()
        ),
    ))
}

/// `server-tui reload`: the running server reads its configuration file's tasks again.
pub async fn reload(dir: &Path, json: bool) -> Result<(), Failure> {
    need_running(dir, "a server reads its configuration file when it starts")?;
    let tasks = match ask_running(dir, &ControlRequest::Reload, exit::CONFIG).await? {
        ControlReply::Reloaded { tasks } => tasks,
        other => return Err(unexpected(other)),
    };
    let value = serde_json::json!({"event": "reloaded", "tasks": tasks});
    print_answer(json, &value, || {
        format!("reloaded; configured tasks: {}", names(&tasks))
    });
    Ok(())
}

/// `server-tui runs`: the runs in progress.
pub async fn list_runs(dir: &Path, json: bool) -> Result<(), Failure> {
    need_running(dir, "runs happen only while it runs")?;
    let runs = match ask_running(dir, &ControlRequest::Runs, exit::FAILURE).await? {
        ControlReply::Runs { runs } => runs,
        other => return Err(unexpected(other)),
    };
    let mut out = std::io::stdout().lock();
    if json {
        for r in &runs {
            let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
        }
        return Ok(());
    }
    if runs.is_empty() {
        let _ = writeln!(out, "no runs in progress");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<6} {:<20} {:<10} {:<10} {:>10} {:>10}  TASK",
        "RUN", "CLIENT", "ID", "RUNNING", "OUT", "IN"
    );
    for r in &runs {
        let _ = writeln!(out, "{}", run_row(r));
    }
    Ok(())
}

/// One line of `server-tui runs`.
fn run_row(r: &RunView) -> String {
    let args = args_text(&r.args);
    let sep = if args.is_empty() { "" } else { " " };
    format!(
        "{:<6} {:<20} {:<10} {:<10} {:>10} {:>10}  {}{sep}{args}",
        r.run_id,
        r.client_name,
        r.client_id.short(),
        duration_text(r.running_ms),
        bytes_text(r.bytes_out),
        bytes_text(r.bytes_in),
        clean(&r.task, 64)
    )
}

/// `server-tui stop-run RUN_ID`.
pub async fn stop_run(dir: &Path, run_id: u64, json: bool) -> Result<(), Failure> {
    need_running(dir, "runs happen only while it runs")?;
    let req = ControlRequest::StopRun { run_id };
    let run_id = match ask_running(dir, &req, exit::NO_MATCH).await? {
        ControlReply::Stopping { run_id } => run_id,
        other => return Err(unexpected(other)),
    };
    let value = serde_json::json!({"event": "stopping", "run_id": run_id});
    print_answer(json, &value, || {
        format!("stopping run {run_id}: its program gets SIGTERM, then SIGKILL if it lingers")
    });
    Ok(())
}

/// `server-tui rename ID NAME`: through the running server, which owns the registry.
pub async fn rename(dir: &Path, query: &str, name: &str, json: bool) -> Result<(), Failure> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 64 || trimmed.chars().any(char::is_control) {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{name:?} is not a usable name: give 1 to 64 characters, without control characters"
            ),
        ));
    }
    need_running(
        dir,
        "renaming goes through the running server: start it, then rename",
    )?;
    let req = ControlRequest::Rename {
        query: query.into(),
        name: trimmed.into(),
    };
    let (client_id, name) = match ask_running(dir, &req, exit::NO_MATCH).await? {
        ControlReply::Renamed { client_id, name } => (client_id, name),
        other => return Err(unexpected(other)),
    };
    print_client(json, "renamed", client_id, name, |short, name| {
        format!("renamed {short} to {name:?}")
    });
    Ok(())
}

/// Print a subcommand's one answer: `value` as a JSON line, or `text` for people.
fn print_answer(json: bool, value: &serde_json::Value, text: impl FnOnce() -> String) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{value}");
    } else {
        let _ = writeln!(out, "{}", text());
    }
}
