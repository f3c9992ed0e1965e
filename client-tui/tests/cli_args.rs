//! The command line itself, without a server: how `send` splits its words, where the global
//! options may go, `-j`, `pair --code`, what each `--help` lists, the completion scripts and
//! the manual page, and that none of these creates a state folder it was not asked to.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use client_tui::cli::{self, Cli, Command as Sub, SendWords};

const CLIENT: &str = env!("CARGO_BIN_EXE_client-tui");

fn parse(args: &[&str]) -> Cli {
    let mut all = vec!["client-tui"];
    all.extend(args);
    cli::try_parse_from(all).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn refused(args: &[&str]) -> clap::Error {
    let mut all = vec!["client-tui"];
    all.extend(args);
    match cli::try_parse_from(all) {
        Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
        Err(e) => e,
    }
}

/// `send`'s words as the binary splits them.
fn words(cli: &Cli) -> SendWords {
    let Some(Sub::Send { words, .. }) = &cli.command else {
        panic!("not send: {cli:?}");
    };
    let mut cmd = cli::command();
    cmd.build();
    SendWords::split(words, cmd.find_subcommand("send").unwrap()).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn everything_after_the_task_is_the_tasks() {
    // The three shapes of issue #15, now all by one rule.
    let cli = parse(&[
        "send",
        "--json",
        "echo",
        "scripted",
        "ok",
        "--state-dir",
        "D",
        "--server",
        "A",
    ]);
    assert!(cli.json);
    assert_eq!(cli.state_dir, None, "--state-dir after the task is echo's");
    assert_eq!(cli.target.server, None);
    let w = words(&cli);
    assert_eq!(w.task, "echo");
    assert_eq!(
        w.args,
        strings(&["scripted", "ok", "--state-dir", "D", "--server", "A"])
    );
    assert_eq!(w.look_like_ours.len(), 2, "{:?}", w.look_like_ours);
    assert!(w.look_like_ours[0].contains("put it before the task"));
    assert!(w.look_like_ours[0].contains("--state-dir DIR echo"));

    let cli = parse(&["send", "--state-dir", "D", "echo", "hi", "--server", "A"]);
    assert_eq!(cli.state_dir.as_deref(), Some(Path::new("D")));
    assert_eq!(words(&cli).args, strings(&["hi", "--server", "A"]));

    // Right after the task too: `--json` is ping's, not ours.
    let cli = parse(&["send", "ping", "--json"]);
    assert!(!cli.json, "a flag right after the task went to client-tui");
    let w = words(&cli);
    assert_eq!(w.args, strings(&["--json"]));
    assert_eq!(w.look_like_ours.len(), 1);
}

#[test]
fn a_dash_dash_passes_arguments_on_without_a_warning() {
    let w = words(&parse(&["send", "echo", "--", "--json", "-j"]));
    assert_eq!(
        (w.task.as_str(), w.args.clone()),
        ("echo", strings(&["--json", "-j"]))
    );
    assert!(w.look_like_ours.is_empty());
    // Only the first `--` is ours.
    let w = words(&parse(&["send", "echo", "--", "--", "x"]));
    assert_eq!(w.args, strings(&["--", "x"]));
    // Before the task it ends our options.
    let w = words(&parse(&["send", "--", "echo", "--x"]));
    assert_eq!(
        (w.task.as_str(), w.args.clone()),
        ("echo", strings(&["--x"]))
    );
    assert!(w.look_like_ours.is_empty(), "--x is no option of ours");
}

#[test]
fn flag_like_task_arguments_are_named_with_their_fix() {
    let w = words(&parse(&[
        "send",
        "echo",
        "-j",
        "--wait=2s",
        "-jx",
        "--nope",
        "-",
    ]));
    assert_eq!(w.args, strings(&["-j", "--wait=2s", "-jx", "--nope", "-"]));
    assert_eq!(w.look_like_ours.len(), 3, "{:#?}", w.look_like_ours);
    assert!(w.look_like_ours[0].contains("client-tui send --json echo"));
    assert!(w.look_like_ours[1].contains("--wait DURATION echo"));
}

#[test]
fn send_without_a_task_is_a_usage_error() {
    for args in [
        &["send"][..],
        &["send", "--"],
        &["send", "-j"],
        &["send", "--json"],
    ] {
        let e = refused(args);
        assert_eq!(e.exit_code(), 2, "{args:?}");
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
    // An unknown option where the task goes: clap takes it as the task, the split refuses.
    let cli = parse(&["send", "--weird", "x"]);
    let Some(Sub::Send { words, .. }) = &cli.command else {
        panic!()
    };
    let mut cmd = cli::command();
    cmd.build();
    let e = SendWords::split(words, cmd.find_subcommand("send").unwrap()).unwrap_err();
    assert!(e.contains("not an option"), "{e}");
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    for args in [
        &["--subnet", "127.0.0.0/24", "scan"][..],
        &["scan", "--subnet", "127.0.0.0/24"],
        // Listed only where they apply, accepted everywhere as before.
        &["servers", "--subnet", "127.0.0.0/24"],
    ] {
        let cli = parse(args);
        assert_eq!(cli.discovery.subnets.len(), 1, "{args:?}");
    }
    let cli = parse(&["servers", "--wait", "2s", "--server-id", "3F2A"]);
    assert_eq!(cli.link.wait, std::time::Duration::from_secs(2));
    assert_eq!(cli.target.server_id.as_deref(), Some("3F2A"));
    assert!(parse(&["-j", "servers"]).json);
    assert!(parse(&["servers", "-j"]).json);
    assert!(parse(&["send", "-j", "ping"]).json);
}

#[test]
fn pair_code_is_checked_when_parsed() {
    let cli = parse(&["pair", "--code", "123-456"]);
    let Some(Sub::Pair { code: Some(code) }) = &cli.command else {
        panic!("{cli:?}")
    };
    assert_eq!(code.digits(), "123456");
    for bad in ["12345", "12ab56", "", "1234567"] {
        let e = refused(&["pair", "--code", bad]);
        assert_eq!(e.exit_code(), 2, "{bad:?}");
        assert!(e.to_string().contains("a code has"), "{bad:?}: {e}");
    }
}

fn client(home: &Path, args: &[&str]) -> Output {
    Command::new(CLIENT)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("CSC_CLIENT_STATE_DIR")
        .env_remove("CSC_PAIR_CODE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Nothing at all under the fake home folder.
fn untouched(home: &Path) {
    let entries: Vec<_> = std::fs::read_dir(home).unwrap().collect();
    assert!(entries.is_empty(), "created {entries:?}");
}

#[test]
fn no_default_state_folder_is_made_by_a_misplaced_flag_or_a_read() {
    let home = tempfile::tempdir().unwrap();
    let out = client(
        home.path(),
        &[
            "send",
            "--json",
            "echo",
            "scripted",
            "ok",
            "--state-dir",
            "D",
            "--server",
            "127.0.0.1:9",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("\"--state-dir\" comes after the task"),
        "{err}"
    );
    assert!(err.contains("not paired"), "{err}");
    untouched(home.path());

    for args in [
        &["servers"][..],
        &["tasks"],
        &["forget", "x"],
        &["send", "ping"],
    ] {
        let out = client(home.path(), args);
        assert!(out.status.code() != Some(101), "{args:?} panicked");
        untouched(home.path());
    }
    let out = client(home.path(), &["servers"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "no paired servers");

    // --state-dir naming a folder that does not exist: not made by a read either.
    let dir = home.path().join("state");
    let d = dir.to_str().unwrap();
    for args in [
        &["--state-dir", d, "servers"][..],
        &["--state-dir", d, "send", "ping"],
    ] {
        client(home.path(), args);
        assert!(!dir.exists(), "{args:?} made {d}");
    }
    // The environment variable names it as well as the flag.
    let out = Command::new(CLIENT)
        .args(["send", "ping"])
        .env("HOME", home.path())
        .env("CSC_CLIENT_STATE_DIR", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    untouched(home.path());
}

#[test]
fn each_help_lists_the_options_that_apply_there() {
    let home = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let out = client(home.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let servers = help(&["servers", "--help"]);
    assert!(servers.contains("Global options:"), "{servers}");
    for absent in ["--subnet", "--keepalive", "--server-id"] {
        assert!(!servers.contains(absent), "servers --help lists {absent}");
    }
    let scan = help(&["scan", "--help"]);
    assert!(scan.contains("Discovery options:") && scan.contains("--subnet"));
    assert!(!scan.contains("--keepalive") && scan.contains("Examples:"));
    let send = help(&["send", "--help"]);
    for present in [
        "Link options:",
        "Everything after TASK belongs to the task",
        "Examples:",
    ] {
        assert!(send.contains(present), "send --help lacks {present:?}");
    }
    let pair = help(&["pair", "--help"]);
    for present in ["--code", "CSC_PAIR_CODE", "Examples:", "(ps, /proc)"] {
        assert!(pair.contains(present), "pair --help lacks {present:?}");
    }
    let top = help(&["--help"]);
    assert!(top.contains("-j, --json") && top.contains("--concurrency"));
    untouched(home.path());
}

#[test]
fn completions_name_the_subcommands() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = client(home.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["pair", "send", "scan", "code", "completions"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
        if shell == "bash" {
            bash_parses(&out.stdout);
        }
    }
    let out = client(home.path(), &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
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

#[test]
fn man_page_is_roff_with_the_subcommands() {
    let home = tempfile::tempdir().unwrap();
    let out = client(home.path(), &["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.contains(".TH client-tui 1"), "{page}");
    for sub in ["scan", "pair", "send", "servers", "completions"] {
        assert!(page.contains(sub), "man lacks {sub}");
    }
    untouched(home.path());
}
