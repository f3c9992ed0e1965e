//! The server's state folder: identity, token key, and the registry of paired clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::fsio::{
    StateError, StateLock, ensure_private_dir, read_json, read_private, write_atomic, write_json,
};
use crate::identity::{Identity, PeerId};
use crate::token::TokenKey;

const CLIENTS_FILE: &str = "clients.json";
const TOKEN_KEY_FILE: &str = "token.key";
const LOCK_FILE: &str = "server.lock";
const NAME_FILE: &str = "name";
const FORMAT_VERSION: u32 = 1;

/// One paired client as the server remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client's key id.
    pub client_id: PeerId,
    /// Name the client gave when pairing.
    pub name: String,
    /// When it paired, Unix seconds.
    pub paired_at: u64,
    /// Changes at every pairing; tokens carrying another pairing id are void.
    pub pairing_id: String,
    /// Last authenticated contact, Unix seconds.
    pub last_seen: u64,
    /// Address of the last contact.
    #[serde(default)]
    pub last_addr: Option<SocketAddr>,
}

/// A client that was revoked, kept so that its token is refused as "revoked", not "unknown".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    /// The client's key id.
    pub client_id: PeerId,
    /// Its name at the time.
    pub name: String,
    /// When it was revoked, Unix seconds.
    pub revoked_at: u64,
}

/// Contents of `clients.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientsFile {
    /// Format version, currently 1.
    pub version: u32,
    /// Paired clients.
    pub clients: Vec<ClientRecord>,
    /// Recently revoked clients (bounded).
    #[serde(default)]
    pub revoked: Vec<RevokedRecord>,
}

/// Revocation records kept at most; the oldest go first.
pub const MAX_TOMBSTONES: usize = 1000;

impl ClientsFile {
    /// Record a revocation, dropping the oldest records beyond [`MAX_TOMBSTONES`].
    pub fn add_tombstone(&mut self, record: RevokedRecord) {
        self.revoked.retain(|r| r.client_id != record.client_id);
        self.revoked.push(record);
        self.revoked.sort_by_key(|r| r.revoked_at);
        let excess = self.revoked.len().saturating_sub(MAX_TOMBSTONES);
        self.revoked.drain(..excess);
    }
}

/// The server's state folder, locked for the lifetime of this value.
#[derive(Debug)]
pub struct ServerStore {
    dir: PathBuf,
    _lock: StateLock,
}

impl ServerStore {
    /// Open `dir` (creating it), taking its lock: only one server may use a state folder.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        ensure_private_dir(dir)?;
        let lock = StateLock::try_acquire(&dir.join(LOCK_FILE))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Whether a running server holds the lock on `dir`.
    pub fn is_running(dir: &Path) -> bool {
        let path = dir.join(LOCK_FILE);
        path.exists()
            && matches!(
                StateLock::try_acquire(&path),
                Err(StateError::Locked { .. })
            )
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name the server last ran under in `dir`, if it was saved (and is not empty); a
    /// restart without `--name` keeps it instead of taking the host's name again.
    pub fn saved_name(dir: &Path) -> Option<String> {
        let bytes = std::fs::read(dir.join(NAME_FILE)).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let name = text.trim();
        (!name.is_empty()).then(|| crate::message::clean_name(name))
    }

    /// Remember `name` as the one the server runs under (written only when it changed).
    pub fn save_name(&self, name: &str) -> Result<(), StateError> {
        if Self::saved_name(&self.dir).as_deref() == Some(name) {
            return Ok(());
        }
        write_atomic(&self.dir.join(NAME_FILE), format!("{name}\n").as_bytes())
    }

    /// Load or create the server identity.
    pub fn identity(&self, common_name: &str) -> Result<Identity, StateError> {
        Identity::load_or_create(&self.dir, common_name)
    }

    /// Load or create the token signing key.
    pub fn token_key(&self) -> Result<TokenKey, StateError> {
        let path = self.dir.join(TOKEN_KEY_FILE);
        match read_private(&path)? {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| StateError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                let key: [u8; 32] = raw.try_into().map_err(|_| StateError::Corrupt {
                    path: path.clone(),
                    reason: "expected 32 bytes".into(),
                })?;
                Ok(TokenKey(key))
            }
            None => {
                let key = TokenKey::generate();
                let text = base64::engine::general_purpose::STANDARD.encode(key.0) + "\n";
                write_atomic(&path, text.as_bytes())?;
                Ok(key)
            }
        }
    }

    /// Load the registry (empty if the file does not exist yet).
    pub fn load_clients(&self) -> Result<ClientsFile, StateError> {
        Self::read_clients(&self.dir)
    }

    /// Read the registry of `dir` without taking the lock (for listing).
    pub fn read_clients(dir: &Path) -> Result<ClientsFile, StateError> {
        let path = dir.join(CLIENTS_FILE);
        let file = read_json::<ClientsFile>(&path)?.unwrap_or(ClientsFile {
            version: FORMAT_VERSION,
            ..ClientsFile::default()
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

    /// Write the registry atomically.
    pub fn save_clients(&self, clients: &ClientsFile) -> Result<(), StateError> {
        write_json(&self.dir.join(CLIENTS_FILE), clients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_kept_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ServerStore::saved_name(dir.path()), None);
        let store = ServerStore::open(dir.path()).unwrap();
        store.save_name("front desk").unwrap();
        assert_eq!(
            ServerStore::saved_name(dir.path()).as_deref(),
            Some("front desk")
        );
        store.save_name("lobby").unwrap();
        assert_eq!(
            ServerStore::saved_name(dir.path()).as_deref(),
            Some("lobby")
        );
        std::fs::write(dir.path().join(NAME_FILE), " \n").unwrap();
        assert_eq!(ServerStore::saved_name(dir.path()), None);
    }

    #[test]
    fn registry_round_trip_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = ServerStore::open(dir.path()).unwrap();
        assert!(ServerStore::is_running(dir.path()));
        assert!(matches!(
            ServerStore::open(dir.path()),
            Err(StateError::Locked { .. })
        ));
        let mut f = store.load_clients().unwrap();
        assert!(f.clients.is_empty());
        f.clients.push(ClientRecord {
            client_id: PeerId([1; 32]),
            name: "kiosk".into(),
            paired_at: 1,
            pairing_id: "p".into(),
            last_seen: 2,
            last_addr: Some("127.0.0.1:5".parse().unwrap()),
        });
        store.save_clients(&f).unwrap();
        assert_eq!(store.load_clients().unwrap(), f);
        let k1 = store.token_key().unwrap();
        let k2 = store.token_key().unwrap();
        assert_eq!(k1.0, k2.0);
        drop(store);
        assert!(!ServerStore::is_running(dir.path()));
    }

    #[test]
    fn future_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CLIENTS_FILE),
            r#"{"version":9,"clients":[]}"#,
        )
        .unwrap();
        let err = ServerStore::read_clients(dir.path()).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }
}
