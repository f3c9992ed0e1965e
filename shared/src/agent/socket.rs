//! The agent's Unix socket: `agent.sock` in the client's state folder, one agent per folder,
//! and only the same user on the other end.
//!
//! Owns binding (the folder lock `agent.lock` first, so a second agent is refused and a
//! socket left by a killed one can be replaced), the socket's mode, and the peer check.

use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use crate::fsio::StateLock;
use crate::state::StateError;

/// The socket's file name in the client's state folder.
pub const SOCKET_FILE: &str = "agent.sock";

/// The lock held while an agent serves a state folder.
pub const LOCK_FILE: &str = "agent.lock";

/// The agent's socket for the state folder `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_FILE)
}

/// The agent could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another agent serves this state folder.
    #[error("another client-tui agent{} is already serving {}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), dir.display())]
    Running {
        /// The state folder.
        dir: PathBuf,
        /// The other agent's process id, when it answered.
        pid: Option<i32>,
    },
    /// Something that is not a socket has the socket's name.
    #[error("{} exists and is not a socket; remove it if nothing uses it", .0.display())]
    NotASocket(PathBuf),
    /// The state folder's lock.
    #[error(transparent)]
    State(#[from] StateError),
    /// Binding or setting the mode failed.
    #[error("cannot listen on {}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound agent socket. The socket file is removed when it is dropped.
#[derive(Debug)]
pub struct Bound {
    pub(crate) listener: UnixListener,
    path: PathBuf,
    _lock: StateLock,
}

impl Bound {
    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind the agent socket of the state folder `dir` (which the client already checked is
/// private). Call from within a tokio runtime.
pub async fn bind(dir: &Path) -> Result<Bound, BindError> {
    let path = socket_path(dir);
    let lock = match StateLock::try_acquire(&dir.join(LOCK_FILE)) {
        Ok(l) => l,
        Err(StateError::Locked { .. }) => {
            let pid = UnixStream::connect(&path)
                .await
                .ok()
                .and_then(|s| s.peer_cred().ok())
                .and_then(|c| c.pid());
            return Err(BindError::Running {
                dir: dir.to_path_buf(),
                pid,
            });
        }
        Err(e) => return Err(e.into()),
    };
    // The lock proves no agent serves this folder: what is left is a killed agent's socket.
    match std::fs::symlink_metadata(&path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket(path));
            }
            std::fs::remove_file(&path).map_err(|e| BindError::Io {
                path: path.clone(),
                source: e,
            })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BindError::Io { path, source: e }),
    }
    let listener = UnixListener::bind(&path).map_err(|e| BindError::Io {
        path: path.clone(),
        source: e,
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            BindError::Io {
                path: path.clone(),
                source: e,
            }
        })?;
    }
    Ok(Bound {
        listener,
        path,
        _lock: lock,
    })
}

/// Whether the peer of `stream` runs as this process's user; the peer's uid otherwise.
pub(crate) fn same_user(stream: &UnixStream) -> Result<(), Option<u32>> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    match stream.peer_cred() {
        Ok(c) if c.uid() == me => Ok(()),
        Ok(c) => Err(Some(c.uid())),
        Err(_) => Err(None),
    }
}
