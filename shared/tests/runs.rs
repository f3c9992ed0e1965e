//! Streaming runs against a real server over real TLS, with real programs: streamed output,
//! arguments kept in their place, every way a run is stopped (timeout, cancel, disconnect,
//! the operator, shutdown) leaving nothing running, flow control against a reader that
//! stops, the caps, permissions, reload, and tasks registered in Rust.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use csc_shared::client::{RunEvent, RunHandle};
use csc_shared::message::{OutputStream, RefusalCode, RunStatus, StopReason};
use csc_shared::server::tasks::config;
use csc_shared::server::{ServerConfig, ServerEvent, TaskAbout, TaskError, Tasks};

const LONG: Duration = Duration::from_secs(20);

/// Write `text` as a configuration file (0600) in `dir`.
fn config_file(dir: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("server.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A server with the tasks of `text`, and a client paired with it.
async fn setup(
    text: &str,
    config: ServerConfig,
    tasks: Tasks,
) -> (
    TestServer,
    csc_shared::client::SessionHandle,
    Vec<tempfile::TempDir>,
) {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_tasks(sdir.path(), config, tasks).await;
    let reserved = server.server.registered_task_names();
    let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let file = config::load(&config_file(fdir.path(), text), &reserved, 1000).unwrap();
    server.server.set_config(file);
    let client = client(cdir.path(), "kiosk-1");
    let paired = pair(&client, &server).await;
    let session = client.connect(&paired).await.unwrap();
    (server, session.handle(), vec![sdir, cdir, fdir])
}

/// Everything a run produces: stdout, stderr, and its end.
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: RunStatus,
    started: bool,
}

async fn finish(mut run: RunHandle) -> Outcome {
    let mut o = Outcome {
        stdout: vec![],
        stderr: vec![],
        status: RunStatus::Other,
        started: false,
    };
    loop {
        match tokio::time::timeout(LONG, run.next())
            .await
            .expect("run ends")
        {
            Some(RunEvent::Started { .. }) => o.started = true,
            Some(RunEvent::Output { stream, data }) => match stream {
                OutputStream::Stdout => o.stdout.extend(data),
                OutputStream::Stderr => o.stderr.extend(data),
            },
            Some(RunEvent::Exit { status, .. }) => {
                o.status = status;
                return o;
            }
            Some(RunEvent::Lost { reason }) => panic!("run lost: {reason}"),
            None => panic!("run ended without exit"),
        }
    }
}

async fn run(session: &csc_shared::client::SessionHandle, task: &str, args: &[&str]) -> Outcome {
    let h = session
        .run(
            task,
            args.iter().map(|s| s.to_string()).collect(),
            256 * 1024,
        )
        .await
        .unwrap();
    finish(h).await
}

/// The first stdout line of a run: the pid its program printed.
async fn first_pid(run: &mut RunHandle) -> i32 {
    let mut text = Vec::new();
    loop {
        match tokio::time::timeout(LONG, run.next()).await.unwrap() {
            Some(RunEvent::Output { data, .. }) => {
                text.extend(data);
                if let Some(end) = text.iter().position(|b| *b == b'\n') {
                    return std::str::from_utf8(&text[..end])
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                }
            }
            Some(RunEvent::Started { .. }) => {}
            other => panic!("expected output, got {other:?}"),
        }
    }
}

/// Whether process `pid` is gone (or only a zombie about to be reaped by its parent).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const TASKS: &str = r#"
[tasks.greet]
description = "Say hello to someone"
command = ["/bin/echo", "hello", "{who}"]
args = [{ name = "who", pattern = "^[a-z]{1,16}$" }]

[tasks.tick]
command = ["/bin/sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.4; done"]

[tasks.argv]
command = ["/usr/bin/printf", "[%s]", "{v}"]
args = [{ name = "v", pattern = "(?s).*" }]

[tasks.envarg]
command = ["/bin/sh", "-c", "printf %s \"$MOOD|$CSC_CLIENT_NAME|$PATH|${HOME:-none}\""]
args = [{ name = "mood", pattern = "happy|sad", env = "MOOD" }]

[tasks.touch]
command = ["/usr/bin/touch", "{f}"]
args = [{ name = "f", pattern = "/tmp/[a-z0-9._-]+" }]

[tasks.family]
description = "A program that leaves a child behind"
command = ["/bin/sh", "-c", "sleep 30 & echo $!; wait"]
timeout = "1s"

[tasks.sleepy]
command = ["/bin/sh", "-c", "echo $$; exec sleep 30"]
concurrency = 1

[tasks.zeros]
command = ["/bin/cat", "/dev/zero"]

[tasks.capped]
command = ["/bin/cat", "/dev/zero"]
max_output = 1000

[tasks.cat]
command = ["/bin/cat"]
stdin = true

[tasks.smallcat]
command = ["/bin/cat"]
stdin = true
max_stdin = "100"

[tasks.code]
command = ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]

[tasks.secret]
command = ["/bin/echo", "only for kiosk-2"]
clients = ["kiosk-2"]
"#;

#[tokio::test]
async fn output_streams_as_it_comes_and_the_status_comes_back() {
    let (server, s, _dirs) = setup(TASKS, test_config(), Tasks::with_builtins()).await;
    let greet = run(&s, "greet", &["ada"]).await;
    assert_eq!(greet.stdout, b"hello ada\n");
    assert_eq!(greet.status, RunStatus::Exited { code: 0 });

    // The first line arrives long before the program ends.
    let began = Instant::now();
    let mut h = s.run("tick", vec![], 256 * 1024).await.unwrap();
    let mut first = None;
    let status = loop {
        match tokio::time::timeout(LONG, h.next()).await.unwrap() {
            Some(RunEvent::Output { .. }) if first.is_none() => first = Some(began.elapsed()),
            Some(RunEvent::Exit { status, .. }) => break status,
            Some(_) => {}
            None => panic!("no exit"),
        }
    };
    let total = began.elapsed();
    assert_eq!(status, RunStatus::Exited { code: 0 });
    assert!(
        first.unwrap() * 2 < total,
        "first output after {first:?}, end after {total:?}"
    );

    // Stdout and stderr are kept apart; the exit code comes back.
    let code = run(&s, "code", &[]).await;
    assert_eq!(
        (code.stdout.as_slice(), code.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    assert_eq!(code.status, RunStatus::Exited { code: 3 });
    server
        .events
        .wait_for("task_finished", |e| match e {
            ServerEvent::TaskFinished { task, status, .. } if task == "code" => {
                Some(status.clone())
            }
            _ => None,
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn arguments_are_checked_and_stay_single_argv_elements() {
    let (server, s, _dirs) = setup(TASKS, test_config(), Tasks::with_builtins()).await;
    let bad = run(&s, "greet", &["Robert'); DROP TABLE"]).await;
    assert!(!bad.started, "nothing ran");
    match bad.status {
        RunStatus::Refused { code, message } => {
            assert_eq!(code, RefusalCode::BadArgs);
            assert!(message.contains("argument 1 (who)"), "{message}");
        }
        other => panic!("expected refused, got {other:?}"),
    }
    for args in [&[][..], &["a", "b"][..]] {
        let r = run(&s, "greet", args).await;
        assert!(
            matches!(
                r.status,
                RunStatus::Refused {
                    code: RefusalCode::BadArgs,
                    ..
                }
            ),
            "{args:?}"
        );
    }
    // A refused value never reaches the program.
    let target = format!("/tmp/csc-refused-{}", std::process::id());
    let r = run(&s, "touch", &[&format!("{target}/../x")]).await;
    assert!(matches!(r.status, RunStatus::Refused { .. }));
    assert!(!Path::new(&format!("{target}/../x")).exists());

    let long = "x".repeat(100_000);
    for value in [
        "; rm -rf /",
        "$(touch /tmp/csc-pwned)",
        "`touch /tmp/csc-pwned`",
        "a\nb",
        "-n",
        "--help",
        "*",
        "two words",
        long.as_str(),
    ] {
        let r = run(&s, "argv", &[value]).await;
        assert_eq!(r.status, RunStatus::Exited { code: 0 }, "{value:?}");
        assert_eq!(
            r.stdout,
            format!("[{value}]").into_bytes(),
            "one element, unchanged"
        );
    }
    assert!(!Path::new("/tmp/csc-pwned").exists());
    // Longer than Linux takes in one argument: refused, never cut.
    let huge = "x".repeat(200_000);
    match run(&s, "argv", &[&huge]).await.status {
        RunStatus::Refused { code, message } => {
            assert_eq!(code, RefusalCode::BadArgs);
            assert!(message.contains("longer than"), "{message}");
        }
        other => panic!("expected refused, got {other:?}"),
    }
    let nul = run(&s, "argv", &["a\0b"]).await;
    assert!(matches!(
        nul.status,
        RunStatus::Refused {
            code: RefusalCode::BadArgs,
            ..
        }
    ));

    // An argument can go to the environment instead; the environment is clean.
    let env = run(&s, "envarg", &["sad"]).await;
    assert_eq!(
        String::from_utf8(env.stdout).unwrap(),
        "sad|kiosk-1|/usr/local/bin:/usr/bin:/bin|none"
    );
    server.stop().await;
}

#[tokio::test]
async fn every_stop_leaves_nothing_running() {
    let (server, s, _dirs) = setup(TASKS, test_config(), Tasks::with_builtins()).await;
    // Timeout: the whole group goes, the child it left behind too.
    let mut h = s.run("family", vec![], 256 * 1024).await.unwrap();
    let child = first_pid(&mut h).await;
    let o = finish(h).await;
    assert_eq!(
        o.status,
        RunStatus::Stopped {
            reason: StopReason::Timeout
        }
    );
    wait_gone(child).await;

    // Cancel.
    let mut h = s.run("sleepy", vec![], 256 * 1024).await.unwrap();
    let pid = first_pid(&mut h).await;
    h.cancel();
    let o = finish(h).await;
    assert_eq!(
        o.status,
        RunStatus::Stopped {
            reason: StopReason::Cancelled
        }
    );
    wait_gone(pid).await;

    // The operator.
    let mut h = s.run("sleepy", vec![], 256 * 1024).await.unwrap();
    let pid = first_pid(&mut h).await;
    let runs = server.server.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].task.as_str(), runs[0].client_name.as_str()),
        ("sleepy", "kiosk-1")
    );
    assert!(server.server.stop_run(runs[0].run_id));
    assert!(!server.server.stop_run(runs[0].run_id + 1000));
    let o = finish(h).await;
    assert_eq!(
        o.status,
        RunStatus::Stopped {
            reason: StopReason::Operator
        }
    );
    wait_gone(pid).await;

    // Shutdown.
    let mut h = s.run("sleepy", vec![], 256 * 1024).await.unwrap();
    let pid = first_pid(&mut h).await;
    server.stop().await;
    wait_gone(pid).await;
}

#[tokio::test]
async fn a_client_that_goes_away_takes_its_run_with_it() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    server
        .server
        .set_config(config::load(&config_file(fdir.path(), TASKS), &["ping"], 1000).unwrap());
    let client = client(cdir.path(), "kiosk-1");
    let paired = pair(&client, &server).await;
    let session = client.connect(&paired).await.unwrap();
    let mut h = session
        .handle()
        .run("sleepy", vec![], 256 * 1024)
        .await
        .unwrap();
    let pid = first_pid(&mut h).await;
    drop(h);
    drop(session);
    wait_gone(pid).await;
    let status = server
        .events
        .wait_for("task_finished", |e| match e {
            ServerEvent::TaskFinished { task, status, .. } if task == "sleepy" => {
                Some(status.clone())
            }
            _ => None,
        })
        .await;
    assert!(matches!(status, RunStatus::Stopped { .. }), "{status:?}");
    assert!(server.server.runs().is_empty());
    server.stop().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_reader_that_stops_blocks_the_program_not_the_server() {
    let (server, s, _dirs) = setup(TASKS, test_config(), Tasks::with_builtins()).await;
    let window = 64 * 1024;
    let mut h = s.run("zeros", vec![], window).await.unwrap();
    assert!(matches!(h.next().await, Some(RunEvent::Started { .. })));
    let before = rss_kib();
    // Nobody reads: the server may send one window, then the program must wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = server.server.runs()[0].bytes_out;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = server.server.runs()[0].bytes_out;
    let after = rss_kib();
    assert!(
        first <= window,
        "{first} bytes out with a {window}-byte window"
    );
    assert_eq!(first, second, "the program is held back");
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // Reading again lets it go on.
    let mut got = 0u64;
    while got < 4 * window {
        if let Some(RunEvent::Output { data, .. }) = h.next().await {
            got += data.len() as u64;
        }
    }
    h.cancel();
    let o = finish(h).await;
    assert_eq!(
        o.status,
        RunStatus::Stopped {
            reason: StopReason::Cancelled
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn caps_refuse_or_stop_with_their_own_codes() {
    let mut cfg = test_config();
    cfg.max_runs = 2;
    let (server, s, _dirs) = setup(TASKS, cfg, Tasks::with_builtins()).await;
    // A task's concurrency.
    let mut first = s.run("sleepy", vec![], 256 * 1024).await.unwrap();
    first_pid(&mut first).await;
    let second = run(&s, "sleepy", &[]).await;
    assert!(
        matches!(
            second.status,
            RunStatus::Refused {
                code: RefusalCode::Busy,
                ..
            }
        ),
        "{:?}",
        second.status
    );
    // The server's max_runs.
    let mut other = s.run("cat", vec![], 256 * 1024).await.unwrap();
    assert!(matches!(other.next().await, Some(RunEvent::Started { .. })));
    let third = run(&s, "greet", &["ada"]).await;
    assert!(
        matches!(
            third.status,
            RunStatus::Refused {
                code: RefusalCode::ServerBusy,
                ..
            }
        ),
        "{:?}",
        third.status
    );
    first.cancel();
    other.cancel();
    finish(first).await;
    finish(other).await;

    // Output cap: exactly the cap arrives, then the run is stopped.
    let capped = run(&s, "capped", &[]).await;
    assert_eq!(capped.stdout.len(), 1000);
    assert_eq!(
        capped.status,
        RunStatus::Stopped {
            reason: StopReason::OutputLimit
        }
    );

    // Stdin cap.
    let h = s.run("smallcat", vec![], 256 * 1024).await.unwrap();
    h.write_stdin(&[b'x'; 200]).await.unwrap();
    h.close_stdin();
    let o = finish(h).await;
    assert_eq!(
        o.status,
        RunStatus::Stopped {
            reason: StopReason::StdinLimit
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn stdin_round_trips_a_mebibyte_of_random_bytes() {
    let (server, s, _dirs) = setup(TASKS, test_config(), Tasks::with_builtins()).await;
    let data: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
    let h = s.run("cat", vec![], 256 * 1024).await.unwrap();
    let input = h.input();
    let feed = data.clone();
    let writer = tokio::spawn(async move {
        input.write(&feed).await.unwrap();
        input.close();
    });
    let o = finish(h).await;
    writer.await.unwrap();
    assert_eq!(o.status, RunStatus::Exited { code: 0 });
    assert!(
        o.stdout == data,
        "{} bytes back, not the same",
        o.stdout.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn clients_lists_allow_only_their_members_and_hide_the_rest() {
    let (server, s, _dirs) = setup(TASKS, test_config(), Tasks::with_builtins()).await;
    let r = run(&s, "secret", &[]).await;
    assert!(!r.started);
    assert!(matches!(
        r.status,
        RunStatus::Refused {
            code: RefusalCode::Forbidden,
            ..
        }
    ));
    let names: Vec<String> = s
        .list_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"greet".to_string()) && names.contains(&"ping".to_string()));
    assert!(!names.contains(&"secret".to_string()), "{names:?}");
    server
        .events
        .wait_for("task_refused", |e| match e {
            ServerEvent::TaskRefused { task, code, .. } if task == "secret" => Some(*code),
            _ => None,
        })
        .await;
    // The operator renames the client: now it is kiosk-2, and may.
    server.server.rename("kiosk-1", "kiosk-2").await.unwrap();
    let r = run(&s, "secret", &[]).await;
    assert_eq!(r.stdout, b"only for kiosk-2\n");
    // An unknown task says what there is.
    match run(&s, "nope", &[]).await.status {
        RunStatus::Refused { code, message } => {
            assert_eq!(code, RefusalCode::UnknownTask);
            assert!(message.contains("greet"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Configured tasks answer `request` with use_run; built-ins answer both.
    let err = s.request("greet", vec!["ada".into()]).await.unwrap_err();
    assert!(err.to_string().contains("run"), "{err}");
    let ping = run(&s, "ping", &[]).await;
    assert_eq!(ping.status, RunStatus::Done {});
    server.stop().await;
}

#[tokio::test]
async fn a_reload_swaps_the_tasks_and_a_bad_one_keeps_them() {
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sdir.path(), test_config()).await;
    let path = config_file(
        fdir.path(),
        "[tasks.one]\ncommand = [\"/bin/echo\", \"1\"]\n",
    );
    server
        .server
        .set_config(config::load(&path, &["ping"], 1000).unwrap());
    let client = client(cdir.path(), "c");
    let paired = pair(&client, &server).await;
    let session = client.connect(&paired).await.unwrap();
    let s = session.handle();
    // A run in progress is not disturbed by a reload.
    config_file(
        fdir.path(),
        "[tasks.two]\ncommand = [\"/bin/echo\", \"2\"]\n[tasks.wait]\ncommand = [\"/bin/cat\"]\nstdin = true\n",
    );
    assert_eq!(server.server.reload_tasks().unwrap(), vec!["two", "wait"]);
    assert!(matches!(
        run(&s, "one", &[]).await.status,
        RunStatus::Refused { .. }
    ));
    let mut h = s.run("wait", vec![], 1024).await.unwrap();
    assert!(matches!(h.next().await, Some(RunEvent::Started { .. })));

    config_file(
        fdir.path(),
        "[tasks.three]\ncommand = [\"/bin/echo\"]\nbogus = 1\n",
    );
    let err = server.server.reload_tasks().unwrap_err().to_string();
    assert!(err.contains("server.toml:3"), "{err}");
    assert_eq!(
        run(&s, "two", &[]).await.stdout,
        b"2\n",
        "the old tasks stay"
    );
    server
        .events
        .wait_for("reload warning", |e| match e {
            ServerEvent::Warning { message } if message.contains("reloading") => Some(()),
            _ => None,
        })
        .await;
    h.write_stdin(b"still here").await.unwrap();
    h.close_stdin();
    let o = finish(h).await;
    assert_eq!(o.stdout, b"still here");
    assert!(!session.handle().is_closed(), "the session stayed");
    server.stop().await;
}

#[tokio::test]
async fn tasks_registered_in_rust_stream_and_read_stdin() {
    let mut tasks = Tasks::with_builtins();
    tasks.register_streaming(
        "shout",
        TaskAbout {
            description: "Upper-cases its stdin".into(),
            stdin: true,
            ..TaskAbout::default()
        },
        |_ctx, args: Vec<String>, mut io: csc_shared::server::RunIo| async move {
            io.stderr(format!("args {args:?}\n")).await?;
            while let Some(chunk) = io.read_stdin().await {
                io.stdout(chunk.to_ascii_uppercase()).await?;
            }
            if args.first().map(String::as_str) == Some("fail") {
                return Err(TaskError::new("nope", "asked to fail"));
            }
            Ok(7)
        },
    );
    let (server, s, _dirs) = setup("", test_config(), tasks).await;
    let h = s.run("shout", vec!["x".into()], 256 * 1024).await.unwrap();
    h.write_stdin(b"hello").await.unwrap();
    h.close_stdin();
    let o = finish(h).await;
    assert_eq!(o.stdout, b"HELLO");
    assert_eq!(o.stderr, b"args [\"x\"]\n");
    assert_eq!(o.status, RunStatus::Exited { code: 7 });
    let h = s
        .run("shout", vec!["fail".into()], 256 * 1024)
        .await
        .unwrap();
    h.close_stdin();
    assert!(matches!(finish(h).await.status, RunStatus::Failed { code, .. } if code == "nope"));
    let listed = s.list_tasks().await.unwrap();
    let shout = listed.iter().find(|t| t.name == "shout").unwrap();
    assert!(shout.stdin && !shout.builtin);
    let err = s.request("shout", vec![]).await.unwrap_err();
    assert!(err.to_string().contains("run"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn many_runs_on_one_session_interleave() {
    let (server, s, _dirs) = setup(TASKS, test_config(), Tasks::with_builtins()).await;
    // Three slow counters at once: each one's output arrives while the others still run.
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(s.run("tick", vec![], 256 * 1024).await.unwrap());
    }
    let began = Instant::now();
    let mut firsts = Vec::new();
    let mut exits = Vec::new();
    let mut tasks = Vec::new();
    for mut h in handles {
        tasks.push(tokio::spawn(async move {
            let mut first = None;
            let mut text = Vec::new();
            loop {
                match tokio::time::timeout(LONG, h.next()).await.unwrap() {
                    Some(RunEvent::Output { data, .. }) => {
                        first.get_or_insert_with(Instant::now);
                        text.extend(data);
                    }
                    Some(RunEvent::Exit { status, .. }) => {
                        return (first.unwrap(), Instant::now(), status, text);
                    }
                    Some(_) => {}
                    None => panic!("no exit"),
                }
            }
        }));
    }
    for t in tasks {
        let (first, exit, status, text) = t.await.unwrap();
        assert_eq!(status, RunStatus::Exited { code: 0 });
        assert_eq!(text, b"1\n2\n3\n");
        firsts.push(first);
        exits.push(exit);
    }
    // Every run had started streaming before any of them ended.
    let last_first = *firsts.iter().max().unwrap();
    let first_exit = *exits.iter().min().unwrap();
    assert!(
        last_first < first_exit,
        "runs went one after another: first outputs {:?}, exits {:?}",
        firsts.iter().map(|t| *t - began).collect::<Vec<_>>(),
        exits.iter().map(|t| *t - began).collect::<Vec<_>>()
    );
    server.stop().await;
}
