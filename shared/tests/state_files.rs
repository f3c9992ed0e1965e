//! State folders other users could tamper with, and lock files that are symbolic links, are
//! refused by both stores with an error that names the path and the fix; nothing is created
//! through a link. Tests run as root in CI, where the kernel lets every access through, so
//! these check the stores' own rules, never a permission error from the kernel.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use csc_shared::client::{Client, ClientError, ClientOptions};
use csc_shared::state::{ClientStore, ServerStore, StateError};

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_dangling_lock_link_is_refused_by_both_sides_and_creates_nothing() {
    let elsewhere = tempfile::tempdir().unwrap();
    for lock_name in ["server.lock", "client.lock"] {
        let dir = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join(format!("via-{lock_name}"));
        let lock = dir.path().join(lock_name);
        symlink(&target, &lock).unwrap();
        let err = if lock_name == "server.lock" {
            ServerStore::open(dir.path()).map(|_| ()).unwrap_err()
        } else {
            let store = ClientStore::open(dir.path()).unwrap();
            store.update(|_| ()).unwrap_err()
        };
        match &err {
            StateError::Symlink { path } => assert_eq!(path, &lock),
            other => panic!("{lock_name}: expected a symlink refusal, got {other}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("{} is a symbolic link", lock.display())),
            "{err}"
        );
        assert!(
            !target.exists(),
            "{lock_name}: a file was created at the link's target"
        );
    }
}

#[test]
fn a_lock_link_to_an_existing_file_is_refused_and_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("passwd");
    fs::write(&target, "root:x:0:0\n").unwrap();
    chmod(&target, 0o644);
    symlink(&target, dir.path().join("client.lock")).unwrap();
    // The client takes its lock to create its identity: opening the client fails.
    match Client::open(dir.path(), "c", ClientOptions::default()) {
        Err(ClientError::State(StateError::Symlink { .. })) => {}
        other => panic!("expected a symlink refusal, got {other:?}"),
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), "root:x:0:0\n");
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert!(
        !dir.path().join("identity.key").exists(),
        "nothing is done without the lock"
    );
}

#[test]
fn a_world_writable_state_folder_is_refused_by_name_with_the_fix() {
    for mode in [0o777, 0o1777] {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), mode);
        let shown = dir.path().display().to_string();
        let errors = [
            ServerStore::open(dir.path()).map(|_| ()).unwrap_err(),
            ClientStore::open(dir.path()).map(|_| ()).unwrap_err(),
        ];
        for err in errors {
            assert!(
                matches!(err, StateError::FolderPermissions { mode: m, .. } if m == mode),
                "{mode:o}: {err}"
            );
            let text = err.to_string();
            assert!(text.contains(&shown), "{text}");
            assert!(text.contains(&format!("chmod 700 {shown}")), "{text}");
        }
        // Refused before anything was written or locked.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        chmod(dir.path(), 0o700);
    }
}

#[test]
fn a_private_state_folder_still_works_for_both_sides() {
    let sdir = tempfile::tempdir().unwrap();
    chmod(sdir.path(), 0o700);
    let store = ServerStore::open(sdir.path()).unwrap();
    store.identity("s").unwrap();
    store.token_key().unwrap();
    drop(store);
    // A folder the program creates is private, so it passes its own check next time.
    let parent = tempfile::tempdir().unwrap();
    let cdir = parent.path().join("nested").join("client");
    Client::open(&cdir, "c", ClientOptions::default()).unwrap();
    assert_eq!(
        fs::metadata(&cdir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    Client::open(&cdir, "c", ClientOptions::default()).unwrap();
}

#[test]
fn a_folder_of_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let dir = tempfile::tempdir().unwrap();
    let (path, owner) = if euid == 0 {
        // As root (CI), give a private folder to `nobody`: root may use it, but must not.
        let c = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
        (dir.path().to_path_buf(), 65534)
    } else {
        // Unprivileged, the root folder is someone else's (and nothing is created in it).
        (Path::new("/").to_path_buf(), 0)
    };
    for err in [
        ServerStore::open(&path).map(|_| ()).unwrap_err(),
        ClientStore::open(&path).map(|_| ()).unwrap_err(),
    ] {
        match &err {
            StateError::FolderOwner { owner: o, uid, .. } => {
                assert_eq!((*o, *uid), (owner, euid), "{err}")
            }
            other => panic!("expected an owner refusal, got {other}"),
        }
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
