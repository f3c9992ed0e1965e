//! Helpers shared by the client's integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `server-tui` binary next to `client-tui`; built if this package is tested alone.
pub fn server_bin() -> PathBuf {
    let client = env!("CARGO_BIN_EXE_client-tui");
    let path =
        Path::new(client).with_file_name(format!("server-tui{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "server-tui", "--bin", "server-tui"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok && path.exists(), "cannot build {}", path.display());
    }
    path
}
