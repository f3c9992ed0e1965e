//! What the bench tests share: the real `server-tui` binary, built with the test's profile.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Build the real `server-tui` with this test's profile (once per test binary) and return
/// its path.
pub fn server_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(build_server_bin).clone()
}

fn build_server_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            "server-tui",
            "--bin",
            "server-tui",
            "--offline",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building server-tui failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "server-tui")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the server-tui executable")
}

/// Run `server-tui ARGS --state-dir DIR` (a subcommand) to completion.
pub fn server_cmd(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(server_bin())
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .output()
        .expect("server-tui runs")
}

/// Peak resident memory seen by sampling `rss` every `every` until `stop` is set.
pub fn sample_peak(
    rss: impl Fn() -> Option<u64> + Send + 'static,
    every: std::time::Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(kib) = rss() {
                peak = peak.max(kib);
            }
            std::thread::sleep(every);
        }
        peak
    })
}

/// VmRSS of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
