//! Low-level file handling shared by both sides' state: atomic writes, private permissions,
//! JSON loading with errors that name the file, and an exclusive lock on a state folder.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

/// A state file or folder could not be used. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file exists but its contents cannot be used. It was left as it is.
    #[error(
        "{path} is corrupt ({reason}); it was left untouched: repair it, or move it away to start afresh"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret file is readable or writable by other users.
    #[error(
        "{path} is accessible by other users (mode {mode:o}); refusing to use it. Run: chmod 600 {path}"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Another process holds the folder's lock.
    #[error("{path} is locked by another running process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

impl StateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Create `dir` (and parents) if needed; a folder we create is 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| StateError::io(dir, e))
}

/// Replace `path` with `bytes` atomically: a private temporary file in the same folder,
/// fsync, rename over the old file, fsync of the folder. A crash leaves either the old or the
/// new contents, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // tempfile creates the file 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| StateError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| StateError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| StateError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| StateError::io(path, e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(dir, e))
}

/// Serialise `value` as pretty JSON and write it atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Load JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Read a secret file, refusing it when other users can access it.
pub(crate) fn read_private(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path, e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| StateError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StateError::Permissions {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| StateError::io(path, e))?;
    Ok(Some(bytes))
}

/// An exclusive advisory lock on a state folder, released on drop.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Take the lock at `path` without waiting; [`StateError::Locked`] if another process has it.
    pub fn try_acquire(path: &Path) -> Result<Self, StateError> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StateError::Locked {
                path: path.to_path_buf(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(StateError::io(path, e)),
        }
    }

    /// Take the lock at `path`, waiting for other holders (short read-modify-write sections).
    pub fn acquire(path: &Path) -> Result<Self, StateError> {
        let file = open_lock_file(path)?;
        file.lock().map_err(|e| StateError::io(path, e))?;
        Ok(Self { _file: file })
    }
}

fn open_lock_file(path: &Path) -> Result<File, StateError> {
    let mut opts = fs::OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| StateError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_json_names_the_file_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clients.json");
        fs::write(&p, b"{not json").unwrap();
        let err = read_json::<serde_json::Value>(&p).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("clients.json"), "{text}");
        assert!(text.contains("corrupt"), "{text}");
        assert_eq!(fs::read(&p).unwrap(), b"{not json");
    }

    #[cfg(unix)]
    #[test]
    fn secret_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        fs::write(&p, b"k").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_private(&p),
            Err(StateError::Permissions { mode: 0o644, .. })
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&p).unwrap().unwrap(), b"k");
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = StateLock::try_acquire(&p).unwrap();
        assert!(matches!(
            StateLock::try_acquire(&p),
            Err(StateError::Locked { .. })
        ));
        drop(held);
        StateLock::try_acquire(&p).unwrap();
    }
}
