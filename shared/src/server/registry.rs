//! The paired clients in memory, and their persistence.
//!
//! Lookups take a short synchronous lock; writes to disk are serialised by an async lock and
//! run on the blocking pool. Pairing and revocation are saved before they are reported, so a
//! crash can never lose a pairing the operator was told about, nor bring back a revoked client.
//! `last_seen` changes are batched and flushed periodically.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::identity::PeerId;
use crate::state::{ClientRecord, ClientsFile, RevokedRecord, ServerStore, StateError};

use crate::state::MAX_TOMBSTONES;

#[derive(Debug, Default)]
struct Inner {
    clients: HashMap<PeerId, ClientRecord>,
    revoked: HashMap<PeerId, RevokedRecord>,
}

/// Paired clients.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    dirty: AtomicBool,
    store: Arc<ServerStore>,
    writer: tokio::sync::Mutex<()>,
}

/// What the registry says about a client id.
#[derive(Debug, Clone)]
pub(crate) enum Standing {
    Paired(ClientRecord),
    Revoked,
    Unknown,
}

impl Registry {
    pub(crate) fn load(store: Arc<ServerStore>) -> Result<Self, StateError> {
        let file = store.load_clients()?;
        let inner = Inner {
            clients: file.clients.into_iter().map(|c| (c.client_id, c)).collect(),
            revoked: file.revoked.into_iter().map(|r| (r.client_id, r)).collect(),
        };
        Ok(Self {
            inner: Mutex::new(inner),
            dirty: AtomicBool::new(false),
            store,
            writer: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than stopping service would, so recover from poisoning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn standing(&self, id: &PeerId) -> Standing {
        let inner = self.lock();
        if let Some(c) = inner.clients.get(id) {
            Standing::Paired(c.clone())
        } else if inner.revoked.contains_key(id) {
            Standing::Revoked
        } else {
            Standing::Unknown
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().clients.len()
    }

    pub(crate) fn list(&self) -> Vec<ClientRecord> {
        let mut v: Vec<ClientRecord> = self.lock().clients.values().cloned().collect();
        v.sort_by(|a, b| a.paired_at.cmp(&b.paired_at).then(a.name.cmp(&b.name)));
        v
    }

    /// Find clients whose id starts with `query` or whose name is `query`.
    pub(crate) fn find(&self, query: &str) -> Vec<ClientRecord> {
        self.lock()
            .clients
            .values()
            .filter(|c| c.client_id.matches(query) || c.name == query)
            .cloned()
            .collect()
    }

    /// Add (or re-add) a client and save before returning.
    pub(crate) async fn pair(&self, record: ClientRecord) -> Result<(), StateError> {
        {
            let mut inner = self.lock();
            inner.revoked.remove(&record.client_id);
            inner.clients.insert(record.client_id, record);
        }
        self.save().await
    }

    /// Remove a client, keep a tombstone, and save before returning.
    pub(crate) async fn revoke(&self, id: &PeerId) -> Result<Option<ClientRecord>, StateError> {
        let removed = {
            let mut inner = self.lock();
            let removed = inner.clients.remove(id);
            if let Some(r) = &removed {
                if inner.revoked.len() >= MAX_TOMBSTONES
                    && let Some(oldest) = inner
                        .revoked
                        .values()
                        .min_by_key(|r| r.revoked_at)
                        .map(|r| r.client_id)
                {
                    inner.revoked.remove(&oldest);
                }
                inner.revoked.insert(
                    *id,
                    RevokedRecord {
                        client_id: *id,
                        name: r.name.clone(),
                        revoked_at: crate::unix_now(),
                    },
                );
            }
            removed
        };
        if removed.is_some() {
            self.save().await?;
        }
        Ok(removed)
    }

    /// Give client `id` the name `name` (the operator's choice) and save before returning;
    /// the record as it is now, or `None` when there is no such client.
    pub(crate) async fn rename(
        &self,
        id: &PeerId,
        name: &str,
    ) -> Result<Option<ClientRecord>, StateError> {
        let renamed = {
            let mut inner = self.lock();
            inner.clients.get_mut(id).map(|c| {
                c.name = name.to_string();
                c.clone()
            })
        };
        if renamed.is_some() {
            self.save().await?;
        }
        Ok(renamed)
    }

    /// Note contact from a paired client; saved with the next flush.
    pub(crate) fn touch(&self, id: &PeerId, addr: SocketAddr) {
        let mut inner = self.lock();
        if let Some(c) = inner.clients.get_mut(id) {
            c.last_seen = crate::unix_now();
            c.last_addr = Some(addr);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Save if something changed since the last save.
    pub(crate) async fn flush(&self) -> Result<(), StateError> {
        if self.dirty.load(Ordering::Relaxed) {
            self.save().await
        } else {
            Ok(())
        }
    }

    async fn save(&self) -> Result<(), StateError> {
        let _writer = self.writer.lock().await;
        // Snapshot after taking the writer lock, so a later save always writes a later state.
        self.dirty.store(false, Ordering::Relaxed);
        let file = {
            let inner = self.lock();
            let mut clients: Vec<ClientRecord> = inner.clients.values().cloned().collect();
            clients.sort_by(|a, b| {
                a.paired_at
                    .cmp(&b.paired_at)
                    .then(a.client_id.cmp(&b.client_id))
            });
            let mut revoked: Vec<RevokedRecord> = inner.revoked.values().cloned().collect();
            revoked.sort_by_key(|r| r.revoked_at);
            ClientsFile {
                version: 1,
                clients,
                revoked,
            }
        };
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || store.save_clients(&file))
            .await
            .unwrap_or_else(|e| {
                Err(StateError::Corrupt {
                    path: self.store.dir().join("clients.json"),
                    reason: format!("writer task failed: {e}"),
                })
            });
        if result.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        result
    }
}
