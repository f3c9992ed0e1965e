//! Low-level file handling for everything either side keeps on disk (state files and
//! identities): atomic writes, private permissions, JSON loading with errors that name the
//! file, and an exclusive lock on a state folder. A leaf: it knows no state file or identity.
//!
//! Owns the checks that keep other users out, the way ssh's `StrictModes` does: a state folder
//! must belong to the effective user and not be writable by group or others, and nothing is
//! ever created by following a symbolic link (lock files are opened with `O_NOFOLLOW`; other
//! files are written as fresh temporary files, `O_EXCL`, and renamed over the old name, which
//! replaces a link rather than writing through it).

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
    /// A file the program creates is a symbolic link; following it would create or lock a
    /// file wherever it points. Nothing was created.
    #[error(
        "{path} is a symbolic link; refusing to follow it. Remove it (the program creates the file itself)"
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A state folder that other users can write to: they could replace its files.
    #[error(
        "state folder {path} is writable by other users (mode {mode:04o}); refusing to use it. Run: chmod 700 {path}"
    )]
    FolderPermissions {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A state folder that belongs to another user.
    #[error(
        "state folder {path} belongs to user {owner}, not to this user ({uid}); refusing to use it. Use a folder of your own, or run: chown {uid} {path} && chmod 700 {path}"
    )]
    FolderOwner {
        /// The folder.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The effective uid of this process.
        uid: u32,
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

/// Create `dir` (and parents) if needed, 0700, and check that it is private: owned by the
/// effective user ([`StateError::FolderOwner`]) and not writable by group or others
/// ([`StateError::FolderPermissions`]). Read permission for others is allowed: the secrets
/// inside are 0600 and checked one by one.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| StateError::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(dir).map_err(|e| StateError::io(dir, e))?;
        if let Some(problem) = folder_problem(dir, meta.mode(), meta.uid(), effective_uid()) {
            return Err(problem);
        }
    }
    Ok(())
}

/// The effective uid of this process: what the kernel checks, and so what ownership is
/// compared with (root's files belong to root, not to the user who ran `sudo`).
#[cfg(unix)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why a folder with `mode` owned by `owner` must not be used by `uid`, if it must not.
/// Pure, so the rule is tested as such: root passes every permission check, so a test that
/// relied on the kernel refusing access would pass for the wrong reason.
#[cfg(unix)]
fn folder_problem(dir: &Path, mode: u32, owner: u32, uid: u32) -> Option<StateError> {
    if owner != uid {
        return Some(StateError::FolderOwner {
            path: dir.to_path_buf(),
            owner,
            uid,
        });
    }
    if mode & 0o022 != 0 {
        return Some(StateError::FolderPermissions {
            path: dir.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    None
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

/// Open (creating if missing) the lock file at `path`, never through a symbolic link: a
/// dangling link would otherwise make the program create a file at its target, as whatever
/// user runs it.
fn open_lock_file(path: &Path) -> Result<File, StateError> {
    let mut opts = fs::OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
        // O_NONBLOCK: a FIFO planted here fails at once (ENXIO) instead of blocking the open.
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        // ELOOP on Linux, EMLINK on some BSDs: ask the file system rather than the errno.
        Err(_) if is_symlink(path) => {
            return Err(StateError::Symlink {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(StateError::io(path, e)),
    };
    let meta = file.metadata().map_err(|e| StateError::io(path, e))?;
    if !meta.is_file() {
        return Err(StateError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file; refusing to use it as a lock",
            ),
        ));
    }
    Ok(file)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
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

    #[cfg(unix)]
    #[test]
    fn folder_rule_refuses_other_owners_and_group_or_world_writable() {
        let dir = Path::new("/srv/state");
        assert!(folder_problem(dir, 0o040700, 1000, 1000).is_none());
        // Readable by others is allowed; the secrets inside are 0600 on their own.
        assert!(folder_problem(dir, 0o040755, 1000, 1000).is_none());
        for mode in [0o040777, 0o041777, 0o040770, 0o040702, 0o040720] {
            match folder_problem(dir, mode, 1000, 1000) {
                Some(StateError::FolderPermissions { mode: m, .. }) => {
                    assert_eq!(m, mode & 0o7777)
                }
                other => panic!("mode {mode:o} must be refused, got {other:?}"),
            }
        }
        // Someone else's folder, even a private one; and root's folder for a user.
        assert!(matches!(
            folder_problem(dir, 0o040700, 1001, 1000),
            Some(StateError::FolderOwner {
                owner: 1001,
                uid: 1000,
                ..
            })
        ));
        assert!(matches!(
            folder_problem(dir, 0o040700, 0, 1000),
            Some(StateError::FolderOwner { .. })
        ));
        // Root is held to the same rule: a user's folder is not root's.
        assert!(matches!(
            folder_problem(dir, 0o040700, 1000, 0),
            Some(StateError::FolderOwner { .. })
        ));
        let text = folder_problem(dir, 0o041777, 7, 7).unwrap().to_string();
        assert!(text.contains("/srv/state"), "{text}");
        assert!(text.contains("1777"), "{text}");
        assert!(text.contains("chmod 700 /srv/state"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn a_world_writable_folder_is_refused_and_a_private_one_accepted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        ensure_private_dir(&state).unwrap();
        assert_eq!(
            fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for mode in [0o777, 0o1777, 0o770] {
            fs::set_permissions(&state, fs::Permissions::from_mode(mode)).unwrap();
            let err = ensure_private_dir(&state).unwrap_err();
            assert!(
                matches!(err, StateError::FolderPermissions { .. }),
                "{mode:o}: {err}"
            );
            assert!(
                err.to_string().contains(&state.display().to_string()),
                "{err}"
            );
        }
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        ensure_private_dir(&state).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_lock_is_refused_and_nothing_is_created_at_its_target() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        // Dangling: the target must not come into existence.
        let target = elsewhere.path().join("created-by-mistake");
        let lock = dir.path().join("server.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        match StateLock::try_acquire(&lock) {
            Err(StateError::Symlink { path }) => assert_eq!(path, lock),
            other => panic!("expected a symlink refusal, got {other:?}"),
        }
        assert!(!target.exists(), "a file was created through the link");
        assert!(matches!(
            StateLock::acquire(&lock),
            Err(StateError::Symlink { .. })
        ));
        assert!(!target.exists(), "a file was created through the link");
        // Pointing at an existing file: refused too, the file left exactly as it was.
        fs::write(&target, b"precious").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let err = StateLock::try_acquire(&lock).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a symbolic link; refusing to follow it"),
            "{err}"
        );
        assert!(err.to_string().contains("server.lock"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // Once the link is gone, the lock works as ever.
        fs::remove_file(&lock).unwrap();
        StateLock::try_acquire(&lock).unwrap();
        assert!(fs::symlink_metadata(&lock).unwrap().is_file());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_as_lock_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("client.lock");
        let c = std::ffi::CString::new(lock.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a reader forever.
        assert!(matches!(
            StateLock::try_acquire(&lock),
            Err(StateError::Io { .. })
        ));
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
