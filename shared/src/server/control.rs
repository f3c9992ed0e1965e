//! The local control socket: lets `server-tui clients`, `forget`, `rename`, `pairing`,
//! `reload` and `runs` act on a running server instead of editing files under its feet.
//!
//! A Unix socket (0600) inside the state folder (0700), so only its owner can connect; one
//! JSON request and one JSON reply per line. Owns nothing but that translation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{ClientView, PairingStatus, RunView, Server};

/// File name of the socket inside the state folder.
pub const SOCKET_FILE: &str = "control.sock";

/// A request to a running server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// List paired clients with live status.
    Clients,
    /// Revoke the client `query` names.
    Forget {
        /// Id prefix or name.
        query: String,
    },
    /// Push a notice to every connected client.
    Notify {
        /// The text.
        text: String,
    },
    /// Open, close or show pairing.
    Pairing {
        /// What to do.
        command: PairingCommand,
    },
    /// Read the configuration file's tasks again.
    Reload,
    /// List the runs in progress.
    Runs,
    /// Stop a run in progress.
    StopRun {
        /// Its `run_id` as [`ControlRequest::Runs`] lists it.
        run_id: u64,
    },
    /// Rename a paired client.
    Rename {
        /// Id prefix or name.
        query: String,
        /// The new name.
        name: String,
    },
}

/// What a [`ControlRequest::Pairing`] does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PairingCommand {
    /// Open pairing (a window of `for_ms`, or the server's default, in window mode).
    Open {
        /// Window length, milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// Close pairing until opened again.
    Close,
    /// Only report.
    Status,
    /// Draw a code for the next request (opening pairing when closed).
    Code,
}

/// The reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ControlReply {
    /// The clients.
    Clients {
        /// Each paired client.
        clients: Vec<serde_json::Value>,
    },
    /// A client was revoked.
    Revoked {
        /// Its id (hex).
        client_id: String,
        /// Its name.
        name: String,
    },
    /// A notice went out.
    Notified {
        /// Sessions it was queued for.
        recipients: usize,
    },
    /// Where pairing stands (after the command).
    Pairing {
        /// The status.
        status: PairingStatus,
    },
    /// A code drawn for the next request.
    CodeAhead {
        /// The code's six digits.
        code: String,
        /// Seconds it waits for a request.
        expires_in_s: u64,
        /// Where pairing stands.
        status: PairingStatus,
    },
    /// The tasks were read again.
    Reloaded {
        /// The configured tasks now in force.
        tasks: Vec<String>,
    },
    /// The runs in progress.
    Runs {
        /// Each run, oldest first.
        runs: Vec<RunView>,
    },
    /// A run was asked to stop.
    Stopping {
        /// The run.
        run_id: u64,
    },
    /// A client was renamed.
    Renamed {
        /// Its id (hex).
        client_id: String,
        /// Its name now.
        name: String,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// The socket path for a state folder.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

/// Serve control requests for `server` on `path` until the task is dropped.
pub async fn serve(server: Server, path: PathBuf) -> std::io::Result<()> {
    // A stale socket from a crashed run would make bind fail; the folder lock proves no other
    // server owns it.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let server = server.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            if let Ok(Some(line)) = lines.next_line().await {
                let reply = match serde_json::from_str::<ControlRequest>(&line) {
                    Ok(req) => handle(&server, req).await,
                    Err(e) => ControlReply::Error {
                        message: format!("bad request: {e}"),
                    },
                };
                let mut text = serde_json::to_string(&reply).unwrap_or_default();
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            }
        });
    }
}

async fn handle(server: &Server, req: ControlRequest) -> ControlReply {
    match req {
        ControlRequest::Clients => ControlReply::Clients {
            clients: server
                .clients()
                .iter()
                .map(|c: &ClientView| serde_json::to_value(c).unwrap_or_default())
                .collect(),
        },
        ControlRequest::Forget { query } => match server.revoke(&query).await {
            Ok(r) => ControlReply::Revoked {
                client_id: r.client_id.to_hex(),
                name: r.name,
            },
            Err(e) => ControlReply::Error {
                message: e.to_string(),
            },
        },
        ControlRequest::Notify { text } => ControlReply::Notified {
            recipients: server.notify_all(&text),
        },
        ControlRequest::Pairing {
            command: PairingCommand::Code,
        } => {
            let (code, status) = server.code_ahead();
            ControlReply::CodeAhead {
                code: code.digits().to_string(),
                expires_in_s: server.code_ttl().as_secs(),
                status,
            }
        }
        ControlRequest::Pairing { command } => ControlReply::Pairing {
            status: match command {
                PairingCommand::Open { for_ms } => {
                    server.open_pairing(for_ms.map(std::time::Duration::from_millis))
                }
                PairingCommand::Close => server.close_pairing(),
                PairingCommand::Status | PairingCommand::Code => server.pairing_status(),
            },
        },
        ControlRequest::Reload => match server.reload_tasks() {
            Ok(tasks) => ControlReply::Reloaded { tasks },
            Err(e) => ControlReply::Error {
                message: format!("the tasks in force stay: {e}"),
            },
        },
        ControlRequest::Runs => ControlReply::Runs {
            runs: server.runs(),
        },
        ControlRequest::StopRun { run_id } => {
            if server.stop_run(run_id) {
                ControlReply::Stopping { run_id }
            } else {
                ControlReply::Error {
                    message: format!("no run {run_id} is in progress"),
                }
            }
        }
        ControlRequest::Rename { query, name } => match server.rename(&query, &name).await {
            Ok(r) => ControlReply::Renamed {
                client_id: r.client_id.to_hex(),
                name: r.name,
            },
            Err(e) => ControlReply::Error {
                message: e.to_string(),
            },
        },
    }
}

/// Send `req` to the server running with `state_dir`.
pub async fn request(state_dir: &Path, req: &ControlRequest) -> std::io::Result<ControlReply> {
    let stream = UnixStream::connect(socket_path(state_dir)).await?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(req).map_err(std::io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    let line = BufReader::new(read)
        .lines()
        .next_line()
        .await?
        .ok_or_else(|| std::io::Error::other("the server closed the control socket"))?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}
