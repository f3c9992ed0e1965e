//! The server's command line itself: `-j`, what `--json` says under each subcommand, the
//! examples of `--help`, the completion scripts and the manual page (none of which may make
//! a state folder).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use server_tui::cli::{self, Command as Sub};

const SERVER: &str = env!("CARGO_BIN_EXE_server-tui");

fn server(home: &Path, args: &[&str]) -> Output {
    Command::new(SERVER)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CSC_SERVER_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn untouched(home: &Path) {
    let entries: Vec<_> = std::fs::read_dir(home).unwrap().collect();
    assert!(entries.is_empty(), "created {entries:?}");
}

#[test]
fn j_is_json_before_or_after_the_subcommand() {
    for args in [
        &["server-tui", "-j"][..],
        &["server-tui", "-j", "clients"],
        &["server-tui", "clients", "-j"],
        &["server-tui", "pairing", "status", "-j"],
        &["server-tui", "runs", "--json"],
    ] {
        let cli = cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(cli.json, "{args:?}");
    }
    let cli = cli::try_parse_from(["server-tui", "completions", "zsh"]).unwrap();
    assert!(matches!(cli.command, Some(Sub::Completions { .. })));
    assert!(cli::try_parse_from(["server-tui", "completions"]).is_err());
}

#[test]
fn json_is_described_as_what_it_prints_there() {
    let home = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let out = server(home.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let clients = help(&["clients", "--help"]);
    assert!(clients.contains("-j, --json"), "{clients}");
    assert!(!clients.contains("per event"), "{clients}");
    assert!(clients.contains("one object per client"), "{clients}");
    assert!(help(&["pairing", "status", "--help"]).contains("status as one JSON object"));
    let top = help(&["--help"]);
    for present in [
        "-j, --json",
        "docs/protocol.md Appendix A",
        "Examples:",
        "Exit codes:",
    ] {
        assert!(top.contains(present), "--help lacks {present:?}");
    }
    untouched(home.path());
}

#[test]
fn completions_and_man_name_the_subcommands() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = server(home.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["clients", "pairing", "stop-run", "bind", "completions"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
        if shell == "bash" {
            bash_parses(&out.stdout);
        }
    }
    let out = server(home.path(), &["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.contains(".TH server-tui 1"), "{page}");
    // roff writes a dash as `\-`.
    for sub in [
        "clients",
        "forget",
        "pairing",
        "reload",
        "runs",
        "stop\\-run",
        "rename",
    ] {
        assert!(page.contains(sub), "man lacks {sub}");
    }
    untouched(home.path());
}

/// `bash -n` on the script, when bash is there.
fn bash_parses(script: &[u8]) {
    use std::io::Write;
    let Ok(mut bash) = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED: bash -n (no bash)");
        return;
    };
    bash.stdin.take().unwrap().write_all(script).unwrap();
    let out = bash.wait_with_output().unwrap();
    assert!(out.status.success(), "bash -n: {}", text(&out.stderr));
}
