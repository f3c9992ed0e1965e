//! State files: where they live, how they are written, and what their contents are.
//!
//! Owns every byte written to disk. Writes are atomic (temporary file, fsync, rename, fsync of
//! the folder); files are private (0600 in a 0700 folder); a corrupt file is reported with its
//! path and never silently replaced.

mod client;
mod server;

pub use crate::fsio::{StateError, StateLock, ensure_private_dir, read_json, write_atomic};
pub use client::{ClientStore, PairedServer, Refusal, SelectError, ServersFile};
pub use server::{ClientRecord, ClientsFile, MAX_TOMBSTONES, RevokedRecord, ServerStore};

use std::path::PathBuf;

/// Environment variable that overrides the server's default state folder.
pub const SERVER_STATE_ENV: &str = "CSC_SERVER_STATE_DIR";
/// Environment variable that overrides the client's default state folder.
pub const CLIENT_STATE_ENV: &str = "CSC_CLIENT_STATE_DIR";

/// Which side a default state folder is for.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// The server.
    Server,
    /// The client.
    Client,
}

/// The platform data folder for `side`, e.g. `~/.local/share/client-server-communicator/server`.
pub fn default_state_dir(side: Side) -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "client-server-communicator")?;
    Some(dirs.data_dir().join(match side {
        Side::Server => "server",
        Side::Client => "client",
    }))
}
