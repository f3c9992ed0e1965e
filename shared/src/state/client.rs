//! The client's state folder: identity and the servers it has paired with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsio::{StateError, StateLock, ensure_private_dir, read_json, write_json};
use crate::identity::{Identity, PeerId};
use crate::message::RepairReason;

const SERVERS_FILE: &str = "servers.json";
const LOCK_FILE: &str = "client.lock";
const FORMAT_VERSION: u32 = 1;

/// A server this client has paired with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedServer {
    /// The pinned server id: only a server proving this key is accepted.
    pub server_id: PeerId,
    /// Its display name.
    pub name: String,
    /// Addresses it was reached at, most recent first.
    pub addrs: Vec<SocketAddr>,
    /// The session token.
    pub token: String,
    /// Token expiry, Unix seconds.
    pub token_expires_at: u64,
    /// When pairing happened, Unix seconds.
    pub paired_at: u64,
    /// Set when the server last refused this pairing for good (revoked, token expired,
    /// client unknown to it): the client has to pair again. Cleared when a session opens
    /// with it again; a new pairing replaces the whole entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

/// Why a paired server refused this client's token, as it said the last time it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What the server said.
    pub reason: RepairReason,
    /// When, Unix seconds.
    pub at: u64,
}

impl PairedServer {
    /// Put `addr` first in the address list (keeping at most 4).
    pub fn remember_addr(&mut self, addr: SocketAddr) {
        self.addrs.retain(|a| *a != addr);
        self.addrs.insert(0, addr);
        self.addrs.truncate(4);
    }
}

/// Contents of `servers.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServersFile {
    /// Format version, currently 1.
    pub version: u32,
    /// Paired servers.
    pub servers: Vec<PairedServer>,
}

/// Ambiguous or unmatched server selection.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// No paired server matches.
    #[error("no paired server matches {0:?}")]
    NoMatch(String),
    /// More than one paired server matches.
    #[error("{query:?} matches {count} paired servers; give more of the id")]
    Ambiguous {
        /// What was asked.
        query: String,
        /// How many matched.
        count: usize,
    },
    /// Nothing is paired yet.
    #[error("not paired with any server yet: run `client-tui pair` first")]
    NonePaired,
    /// Several servers are paired and none was chosen.
    #[error("paired with {0} servers: choose one with --server-id")]
    Choose(usize),
}

impl ServersFile {
    /// Find the server `query` names (id prefix or exact name), or the only one if `None`.
    pub fn select(&self, query: Option<&str>) -> Result<&PairedServer, SelectError> {
        match query {
            None => match self.servers.as_slice() {
                [] => Err(SelectError::NonePaired),
                [only] => Ok(only),
                many => Err(SelectError::Choose(many.len())),
            },
            Some(q) => {
                let hits: Vec<&PairedServer> = self
                    .servers
                    .iter()
                    .filter(|s| s.server_id.matches(q) || s.name == q)
                    .collect();
                match hits.as_slice() {
                    [] => Err(SelectError::NoMatch(q.to_string())),
                    [one] => Ok(one),
                    many => Err(SelectError::Ambiguous {
                        query: q.to_string(),
                        count: many.len(),
                    }),
                }
            }
        }
    }

    /// The entry for `id`, if paired.
    pub fn get(&self, id: &PeerId) -> Option<&PairedServer> {
        self.servers.iter().find(|s| s.server_id == *id)
    }

    /// Record that the server `id` refused `token`. Nothing changes when the entry has
    /// another token by now (it was paired again meanwhile); returns whether it changed.
    pub fn mark_refused(&mut self, id: &PeerId, token: &str, refusal: Refusal) -> bool {
        match self
            .servers
            .iter_mut()
            .find(|s| s.server_id == *id && s.token == token)
        {
            Some(s) => {
                s.refused = Some(refusal);
                true
            }
            None => false,
        }
    }

    /// Insert or replace the entry for `server.server_id`.
    pub fn upsert(&mut self, server: PairedServer) {
        match self
            .servers
            .iter_mut()
            .find(|s| s.server_id == server.server_id)
        {
            Some(slot) => *slot = server,
            None => self.servers.push(server),
        }
    }
}

/// The client's state folder.
#[derive(Debug, Clone)]
pub struct ClientStore {
    dir: PathBuf,
}

impl ClientStore {
    /// Open `dir`, creating it (0700) if needed.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        ensure_private_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Load or create the client identity.
    pub fn identity(&self, common_name: &str) -> Result<Identity, StateError> {
        let _lock = StateLock::acquire(&self.dir.join(LOCK_FILE))?;
        Identity::load_or_create(&self.dir, common_name)
    }

    /// Load the paired servers.
    pub fn load(&self) -> Result<ServersFile, StateError> {
        let path = self.dir.join(SERVERS_FILE);
        let file = read_json::<ServersFile>(&path)?.unwrap_or(ServersFile {
            version: FORMAT_VERSION,
            servers: Vec::new(),
        });
        if file.version != FORMAT_VERSION {
            return Err(StateError::Corrupt {
                path,
                reason: format!(
                    "format version {} is not supported (expected {FORMAT_VERSION})",
                    file.version
                ),
            });
        }
        Ok(file)
    }

    /// Read, change and write the paired servers under the folder lock, so concurrent
    /// client processes never lose each other's updates.
    pub fn update<R>(&self, change: impl FnOnce(&mut ServersFile) -> R) -> Result<R, StateError> {
        let _lock = StateLock::acquire(&self.dir.join(LOCK_FILE))?;
        let mut file = self.load()?;
        let out = change(&mut file);
        write_json(&self.dir.join(SERVERS_FILE), &file)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: u8, name: &str) -> PairedServer {
        PairedServer {
            server_id: PeerId([id; 32]),
            name: name.into(),
            addrs: vec![],
            token: "t".into(),
            token_expires_at: 0,
            paired_at: 0,
            refused: None,
        }
    }

    #[test]
    fn select_by_prefix_name_or_only() {
        let mut f = ServersFile::default();
        assert!(matches!(f.select(None), Err(SelectError::NonePaired)));
        f.upsert(server(0xab, "alpha"));
        assert_eq!(f.select(None).unwrap().name, "alpha");
        f.upsert(server(0xac, "beta"));
        assert!(matches!(f.select(None), Err(SelectError::Choose(2))));
        assert_eq!(f.select(Some("ACAC")).unwrap().name, "beta");
        assert_eq!(f.select(Some("alpha")).unwrap().name, "alpha");
        assert!(matches!(
            f.select(Some("ffff")),
            Err(SelectError::NoMatch(_))
        ));
        f.upsert(server(0xab, "alpha2"));
        assert_eq!(f.servers.len(), 2);
    }

    #[test]
    fn addresses_most_recent_first_and_bounded() {
        let mut s = server(1, "a");
        for p in 1..=6 {
            s.remember_addr(SocketAddr::from(([127, 0, 0, 1], p)));
        }
        s.remember_addr(SocketAddr::from(([127, 0, 0, 1], 4)));
        let ports: Vec<u16> = s.addrs.iter().map(|a| a.port()).collect();
        assert_eq!(ports, vec![4, 6, 5, 3]);
    }

    #[test]
    fn update_persists() {
        let dir = tempfile::tempdir().unwrap();
        let store = ClientStore::open(dir.path()).unwrap();
        store.update(|f| f.upsert(server(1, "a"))).unwrap();
        assert_eq!(store.load().unwrap().servers.len(), 1);
    }
}
