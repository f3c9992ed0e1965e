//! Attacks on the real `server-tui` binary (headless, `--json`, on 127.0.0.1), from many
//! loopback source addresses: guessing, holding connections open, cheap failures from
//! distinct addresses, and refused-request spam at a server whose stdout nobody reads.
//!
//! Each test asserts a limit (never a timing) and prints the figures SECURITY.md quotes:
//! `cargo test -p bench --test attack -- --nocapture --test-threads 1`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bench::attack::{self, Tally};
use bench::server::{Launch, ServerProc};
use common::{rss_kib, sample_peak, server_bin, server_cmd};
use csc_shared::client::{Client, ClientOptions};
use tokio::time::Instant;

/// An honest client on 127.0.0.1 with its own state folder.
fn honest(dir: &std::path::Path) -> Client {
    Client::open(dir, "honest", ClientOptions::default()).expect("client opens")
}

/// Pair `client` with `srv`, typing the code the server printed.
async fn pair(client: &Client, srv: &ServerProc) -> csc_shared::state::PairedServer {
    let mut pairing = client
        .start_pairing(srv.addr())
        .await
        .expect("pairing starts");
    let code = srv
        .codes()
        .code_for(&client.id(), Duration::from_secs(20))
        .await
        .expect("the server shows a code");
    pairing.submit(&code).await.expect("the right code pairs")
}

/// A server started with `args`, an honest client paired with it, and their folders (bind
/// them all: a folder dropped is deleted under the running programs).
struct Setup {
    srv: ServerProc,
    sdir: tempfile::TempDir,
    client: Client,
    paired: csc_shared::state::PairedServer,
    _cdir: tempfile::TempDir,
}

async fn paired_server(args: &[&str]) -> Setup {
    bench::raise_fd_limit();
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let launch = Launch {
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    let srv = ServerProc::start_with(
        &server_bin(),
        sdir.path(),
        &sdir.path().join("stderr"),
        &launch,
    )
    .await
    .expect("server starts");
    let client = honest(cdir.path());
    let paired = pair(&client, &srv).await;
    Setup {
        srv,
        sdir,
        client,
        paired,
        _cdir: cdir,
    }
}

/// `server-tui pairing close` on the running server.
fn close_pairing(dir: &std::path::Path) {
    let out = server_cmd(dir, &["pairing", "close"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn ping(client: &Client, paired: &csc_shared::state::PairedServer) -> bool {
    match client.connect(paired).await {
        Ok(s) => matches!(s.request("ping", vec![]).await, Ok(v) if v == "pong"),
        Err(_) => false,
    }
}

fn count(n: usize) -> usize {
    std::env::var("CSC_ATTACK_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| ((n as f64) * f).max(1.0) as usize)
        .unwrap_or(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_during_100k_failures_from_distinct_addresses() {
    // A budget large enough that every failure is a counted wrong answer, so each one reaches
    // the per-address tables; the default budget would close pairing after 20.
    let Setup {
        srv,
        sdir: _sdir,
        client,
        paired,
        _cdir,
    } = paired_server(&["--pairing-budget", "1000000"]).await;
    let start_rss = srv.rss_kib().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pid = srv.pid();
    let peak = sample_peak(
        move || rss_kib(pid),
        Duration::from_millis(200),
        stop.clone(),
    );

    let total = count(100_000) as u32;
    let config = attack::tls_config().unwrap();
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..48 {
        let (config, tally, next) = (config.clone(), tally.clone(), next.clone());
        let addr = srv.addr();
        workers.push(tokio::spawn(async move {
            let mut errors = 0u32;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return errors;
                }
                let block = 30 + (n / 64_516) as u8;
                let local = attack::source(block, n % 64_516);
                if attack::one_failure(&config, local, addr, &tally)
                    .await
                    .is_err()
                {
                    errors += 1;
                }
            }
        }));
    }
    let mut errors = 0;
    for w in workers {
        errors += w.await.unwrap();
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    let wrong = Tally::get(&tally.wrong);
    eprintln!(
        "{wrong} failures from {total} distinct addresses in {:.0} s ({errors} errors, refusals {:?}); server RSS {} MiB at start, peak {} MiB",
        took.as_secs_f64(),
        tally.refusals(),
        start_rss / 1024,
        peak / 1024
    );
    assert_eq!(errors, 0, "every attacker connection completed");
    assert!(
        wrong as f64 >= 0.99 * f64::from(total),
        "{wrong} of {total} failures were counted as wrong answers"
    );
    // Per-address tables are capped (16 384 addresses, 16 384 prefixes), as the server itself
    // reports, and it stays within a fixed allowance above its start.
    let out = server_cmd(srv.state_dir(), &["--json", "pairing", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let remembered = status["remembered_addresses"].as_u64().unwrap();
    eprintln!("the server remembers {remembered} addresses after {total}");
    assert!(remembered <= 16_384, "{remembered} addresses remembered");
    assert!(
        remembered >= 1000.min(u64::from(total)),
        "the table was used ({remembered})"
    );
    assert!(
        peak <= start_rss + 32 * 1024,
        "server grew from {} to {} MiB",
        start_rss / 1024,
        peak / 1024
    );
    assert!(ping(&client, &paired).await, "the paired client is served");
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessers_from_250_addresses_for_60_s_never_pass_the_budget() {
    bench::raise_fd_limit();
    let sdir = tempfile::tempdir().unwrap();
    let cdir = tempfile::tempdir().unwrap();
    let adir = tempfile::tempdir().unwrap();
    // Every limit at its default.
    let srv = ServerProc::start(&server_bin(), sdir.path(), &sdir.path().join("stderr"))
        .await
        .expect("server starts");
    let stop = Arc::new(AtomicBool::new(false));
    let pid = srv.pid();
    let peak = sample_peak(
        move || rss_kib(pid),
        Duration::from_millis(500),
        stop.clone(),
    );
    let seconds = count(60) as u64;
    let until = Instant::now() + Duration::from_secs(seconds);
    let tally = Arc::new(Tally::default());
    let mut guessers = Vec::new();
    for i in 0..250u32 {
        let dir = adir.path().join(i.to_string());
        let tally = tally.clone();
        let addr = srv.addr();
        guessers.push(tokio::spawn(async move {
            attack::guesser(dir, attack::source(21, i), addr, until, tally).await
        }));
    }
    for g in guessers {
        g.await.unwrap().expect("the guesser ran");
    }
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    // Events trail the wire a little.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wrong = Tally::get(&tally.wrong);
    let reported = srv.seen("pair_failed:wrong_code") + srv.seen("pair_failed:code_exhausted");
    let bytes = srv.stdout_bytes();
    eprintln!(
        "250 guessers for {seconds} s: {} codes issued, {wrong} wrong answers ({reported} reported), {} paired; refusals {:?}; --json output {} KiB in {} lines, events {:?}; server RSS peak {} MiB",
        Tally::get(&tally.codes),
        Tally::get(&tally.paired),
        tally.refusals(),
        bytes / 1024,
        srv.stdout_lines(),
        srv.seen_all(),
        peak / 1024,
    );
    assert_eq!(Tally::get(&tally.paired), 0, "a guesser paired blind");
    assert!(wrong <= 20, "{wrong} wrong answers: over the budget of 20");
    assert!(wrong >= 20, "the guessers spent the budget ({wrong})");
    assert_eq!(reported, wrong, "every wrong answer was reported");
    assert!(
        srv.seen("pairing_closed:budget") >= 1,
        "the operator was told"
    );
    assert!(
        tally.refusals_of("pairing_closed") > 0,
        "requests were refused with pairing_closed: {:?}",
        tally.refusals()
    );
    // The operator's output stays small: refusals are summed up every 5 s.
    assert!(bytes <= 512 * 1024, "{bytes} bytes of --json output");
    assert!(peak <= 96 * 1024, "server RSS peak {} MiB", peak / 1024);

    // The operator reopens pairing; an honest client then pairs.
    let out = server_cmd(sdir.path(), &["pairing", "open"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pairing open"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let client = honest(cdir.path());
    let paired = pair(&client, &srv).await;
    assert!(ping(&client, &paired).await);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_spam_with_stdout_unread_keeps_memory_and_service() {
    let Setup {
        srv,
        sdir,
        client,
        paired,
        _cdir,
    } = paired_server(&[]).await;
    // From now on nobody reads the server's stdout, and pairing is closed, so every request
    // is refused with `pairing_closed`.
    srv.stop_reading();
    close_pairing(sdir.path());
    let start_rss = srv.rss_kib().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pid = srv.pid();
    let peak = sample_peak(
        move || rss_kib(pid),
        Duration::from_millis(200),
        stop.clone(),
    );
    let config = attack::tls_config().unwrap();
    let tally = Arc::new(Tally::default());
    let seconds = count(20) as u64;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut spammers = Vec::new();
    for w in 0..32u32 {
        let (config, tally) = (config.clone(), tally.clone());
        let addr = srv.addr();
        spammers.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < until {
                let local = attack::source(60 + (n / 64_516 % 100) as u8, n % 64_516);
                let _ = attack::ask_after_refusal(&config, local, addr, &tally).await;
                n += 32;
            }
        }));
    }
    // Meanwhile the paired client keeps the server busy with tasks. A busy session's requests
    // are counted, not reported one by one, so the tasks go as runs here: each one's start and
    // end are events (`task_started`, `task_finished`) the server must not hold for the
    // reader that stopped.
    let session = client.connect(&paired).await.unwrap();
    let handle = session.handle();
    let mut tasks = 0u64;
    while Instant::now() < until {
        let batch = (0..32).map(|_| {
            let handle = handle.clone();
            async move {
                let mut run = handle.run("ping", vec![], 1 << 16).await.unwrap();
                let mut result = None;
                while let Some(ev) = run.next().await {
                    if let csc_shared::client::RunEvent::Exit { result: r, .. } = ev {
                        result = Some(r);
                    }
                }
                result
            }
        });
        for r in futures_util::future::join_all(batch).await {
            assert_eq!(r.unwrap(), "pong");
            tasks += 1;
        }
    }
    drop(handle);
    for s in spammers {
        s.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    let refused = tally.refusals_of("pairing_closed");
    eprintln!(
        "{seconds} s with stdout unread: {refused} refused requests on {} connections and {tasks} tasks; server RSS {} MiB at start, peak {} MiB; {} left open after a refusal",
        Tally::get(&tally.connections),
        start_rss / 1024,
        peak / 1024,
        Tally::get(&tally.open_after_refusal),
    );
    assert!(refused > 1000, "the spam ran ({refused} refusals)");
    assert!(tasks > count(5_000) as u64, "the tasks ran ({tasks})");
    assert_eq!(Tally::get(&tally.open_after_refusal), 0);
    assert!(
        peak <= start_rss + 16 * 1024,
        "server grew from {} to {} MiB while nobody read its output",
        start_rss / 1024,
        peak / 1024
    );
    // Still serving, and still answering new connections.
    assert!(ping(&client, &paired).await);
    drop(session);
    // Reading again, the operator learns what was dropped meanwhile: the queue was bounded.
    srv.resume_reading();
    let deadline = Instant::now() + Duration::from_secs(20);
    while srv.seen("summary:dropped") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "after reading again: {} events reported dropped, {} refusals summed up",
        srv.seen("summary:dropped"),
        srv.seen("summary:failures")
    );
    assert!(
        srv.seen("summary:dropped") > 0,
        "a summary reports the events that did not fit: {:?}",
        srv.seen_all()
    );
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_thousand_connections_asking_again_are_closed_after_each_refusal() {
    let Setup {
        srv,
        sdir,
        client,
        paired,
        _cdir,
    } = paired_server(&[]).await;
    close_pairing(sdir.path());

    // 16 384 connections (the server's whole connection cap) from 512 addresses, 32 each,
    // every one asking to pair and asking again after the refusal, 1 024 at a time.
    let total = count(16_384) as u32;
    let config = attack::tls_config().unwrap();
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..1024 {
        let (config, tally, next) = (config.clone(), tally.clone(), next.clone());
        let addr = srv.addr();
        workers.push(tokio::spawn(async move {
            let mut errors = 0u32;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return errors;
                }
                let local = attack::source(70, n / 32);
                if attack::ask_after_refusal(&config, local, addr, &tally)
                    .await
                    .is_err()
                {
                    errors += 1;
                }
            }
        }));
    }
    // Meanwhile the paired client connects and pings, again and again.
    let pinger = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !done.load(Ordering::Relaxed) {
                if ping(&client, &paired).await {
                    ok += 1;
                } else {
                    failed += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ok, failed)
        })
    };
    let started = Instant::now();
    let mut errors = 0;
    for w in workers {
        errors += w.await.unwrap();
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (ok, failed) = pinger.await.unwrap();
    let closed = Tally::get(&tally.closed_after_refusal);
    let unanswered = Tally::get(&tally.closed_unanswered);
    eprintln!(
        "{total} connections asking again in {:.0} s: {closed} closed right after their refusal, {unanswered} closed unanswered (evicted), {} left open, {errors} failed to connect; refusals {:?}; paired client: {ok} pings answered, {failed} failed",
        took.as_secs_f64(),
        Tally::get(&tally.open_after_refusal),
        tally.refusals()
    );
    assert_eq!(
        Tally::get(&tally.open_after_refusal),
        0,
        "a refused connection stayed open"
    );
    assert_eq!(errors, 0, "every connection was accepted");
    assert_eq!(closed + unanswered, u64::from(total));
    assert!(
        closed as f64 >= 0.9 * f64::from(total),
        "most were refused, not evicted"
    );
    assert!(
        ok >= count(5) as u32,
        "the paired client pinged during the attack ({ok})"
    );
    assert_eq!(failed, 0, "the paired client was always served");
    srv.stop().await.unwrap();
}
