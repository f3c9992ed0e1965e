//! Headless flows: pairing with the code given (`--code`, `CSC_PAIR_CODE`) or read from
//! stdin, one-shot tasks, a task console on
//! stdin/stdout, and listings. Plain lines by default, one JSON object per line with --json.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use csc_shared::client::limits::wait_in_words;
use csc_shared::client::{Client, ClientError, Link, LinkEvent, Pairing, RunEvent, Session};
use csc_shared::discovery::{DiscoveryEvent, Found, discover};
use csc_shared::message::{B64, OutputStream, PairFailure, RunStatus};
use csc_shared::pairing::Code;
use csc_shared::state::PairedServer;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use crate::cli::Cli;
use crate::{Failure, discovery_options, exit, link_options, resolve};

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON object per line.
    pub json: bool,
}

impl Output {
    fn line(&self, text: impl AsRef<str>, value: Value) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(out, "{value}");
        } else {
            let _ = writeln!(out, "{}", text.as_ref());
        }
        let _ = out.flush();
    }
}

/// Lines typed on stdin, shared by every question a flow asks.
pub struct Input {
    lines: Lines<BufReader<Stdin>>,
    interactive: bool,
}

impl Input {
    /// Read from this process's stdin.
    pub fn stdin() -> Self {
        Self {
            lines: BufReader::new(tokio::io::stdin()).lines(),
            interactive: std::io::stdin().is_terminal(),
        }
    }

    /// The next line, after showing `prompt` on stderr when stdin is a terminal.
    async fn ask(&mut self, prompt: &str) -> Option<String> {
        if self.interactive {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        self.lines.next_line().await.ok().flatten()
    }
}

/// Pair with the server at `addr`, with `given` (`--code` or `CSC_PAIR_CODE`), which gets one
/// try, or else reading codes from `input` until one is right.
pub async fn pair(
    client: &Client,
    addr: SocketAddr,
    input: &mut Input,
    given: Option<Code>,
    out: Output,
) -> Result<Session, Failure> {
    // A code given up front is for scripts: one try, no questions on stdin.
    let interactive = input.interactive && given.is_none();
    let from_flag = given.is_some();
    let mut given = given;
    let mut pairing = client.start_pairing(addr).await?;
    let ch = pairing.challenge().clone();
    eprintln!(
        "pairing with {:?} ({}, server id {}): a {}-digit code is now shown on the server's screen ({})",
        ch.server_name,
        addr,
        ch.server_id.short(),
        ch.code_digits,
        code_terms(&pairing)
    );
    let paired = loop {
        if from_flag && given.is_none() {
            return Err(Failure::new(
                exit::WRONG_CODE,
                "wrong code (given with --code or CSC_PAIR_CODE, so it is not asked again)",
            ));
        }
        let parsed = match given.take() {
            Some(code) => Ok(code),
            None => match input.ask("code: ").await {
                Some(line) => Code::parse(&line),
                None => {
                    return Err(Failure::new(
                        exit::WRONG_CODE,
                        "no code entered (end of input)",
                    ));
                }
            },
        };
        let code = match parsed {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}; try again");
                if interactive {
                    continue;
                }
                return Err(Failure::new(exit::WRONG_CODE, e.to_string()));
            }
        };
        match pairing.submit(&code).await {
            Ok(p) => break p,
            Err(ClientError::WrongCode {
                attempts_left,
                retry_after,
            }) => {
                let wait = retry_after
                    .filter(|w| !w.is_zero())
                    .map(|w| format!("; next try in {}", wait_in_words(w)))
                    .unwrap_or_default();
                eprintln!("wrong code, {attempts_left} attempts left{wait}");
            }
            // Typed before the server's wait was over (and longer than the engine waits by
            // itself): the code still stands, a person may type it again later.
            Err(
                e @ ClientError::PairingRefused {
                    reason: PairFailure::RateLimited,
                    ..
                },
            ) if interactive => eprintln!("{e}; type the code again then"),
            Err(
                e @ (ClientError::CodeExpired
                | ClientError::CodeExhausted
                | ClientError::PairingRefused {
                    reason: PairFailure::Displaced,
                    ..
                }),
            ) if interactive => {
                eprintln!("{e}; requesting a new code");
                pairing.request_new_code(client.name()).await?;
                eprintln!(
                    "a new code is shown on the server's screen ({})",
                    code_terms(&pairing)
                );
            }
            Err(e) => return Err(e.into()),
        }
    };
    out.line(
        format!(
            "paired with {:?} (server id {}) at {}",
            paired.name,
            paired.server_id.short(),
            addr
        ),
        json!({
            "event": "paired",
            "server_id": paired.server_id,
            "server_name": paired.name,
            "addr": addr,
            "token_expires_at": paired.token_expires_at,
        }),
    );
    Ok(pairing.into_session()?)
}

/// "valid for 2 min, 5 attempts", from what the server said (clamped by the engine).
fn code_terms(pairing: &Pairing) -> String {
    let ch = pairing.challenge();
    let left = ch
        .expires_at
        .saturating_duration_since(tokio::time::Instant::now());
    format!(
        "valid for {}, {} attempts",
        wait_in_words(left),
        ch.attempts_left
    )
}

/// A link just opened, and how its first session was reached.
struct Opened {
    link: Link,
    server: PairedServer,
    addr: SocketAddr,
    via: csc_shared::discovery::Via,
    elapsed: std::time::Duration,
}

/// Open a link with the paired server `cli` names: `--server` and the saved addresses
/// first, then discovery filtered on its id. The first attempt's failure is the command's
/// (with its exit code); after that the link heals by itself.
async fn connect(client: &Arc<Client>, cli: &Cli) -> Result<Opened, Failure> {
    let query = cli
        .target
        .server_id
        .as_deref()
        .or(cli.target.server_name.as_deref());
    let server = client.select(query)?;
    let manual = match &cli.target.server {
        Some(spec) => Some(resolve(spec, cli.port).await?),
        None => None,
    };
    let reached = client
        .connect_auto(
            &server,
            manual.map(|addr| (addr, csc_shared::discovery::Via::Manual)),
            discovery_options(cli),
        )
        .await?;
    let opened = Opened {
        server: reached.session.server().clone(),
        addr: reached.session.addr(),
        via: reached.via,
        elapsed: reached.elapsed,
        link: Link::adopt(client.clone(), reached, link_options(cli, manual)),
    };
    Ok(opened)
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

pub use csc_shared::client::outcome::{describe as describe_status, exit_code as run_exit_code};

/// Feed this process's stdin to a run, binary-safe, until it ends; then close the run's.
async fn forward_stdin(input: csc_shared::client::RunInput) {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; csc_shared::client::run::CHUNK];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if input.write(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    input.close();
}

/// `client-tui send TASK ARGS..`: start the task as a run and stream it.
pub async fn send(
    client: Arc<Client>,
    cli: &Cli,
    task: &str,
    args: Vec<String>,
    out: Output,
) -> Result<(), Failure> {
    use tokio::io::AsyncWriteExt;
    let opened = connect(&client, cli).await?;
    let t = Instant::now();
    let mut run = opened.link.run(task, args, cli.link.wait).await?;
    let base = |rtt_ms: f64| {
        json!({
            "task": task,
            "server_id": opened.server.server_id,
            "addr": opened.addr,
            "via": opened.via,
            "connect_ms": round(opened.elapsed.as_secs_f64() * 1000.0),
            "rtt_ms": round(rtt_ms),
            // From process start: what a person waits for.
            "elapsed_ms": round(crate::process_elapsed().as_secs_f64() * 1000.0),
        })
    };
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut stdin_task = None;
    let mut interrupts = 0u32;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        tokio::select! {
            event = run.next() => match event {
                Some(RunEvent::Started { stdin }) => {
                    if stdin {
                        stdin_task = Some(tokio::spawn(forward_stdin(run.input())));
                    }
                    if out.json {
                        out.line("", json!({"event": "started", "task": task, "stdin": stdin}));
                    }
                }
                Some(RunEvent::Output { stream, data }) => {
                    if out.json {
                        let text = std::str::from_utf8(&data).ok();
                        out.line("", json!({
                            "event": "output",
                            "stream": stream,
                            "data": B64(data.to_vec()),
                            "text": text,
                        }));
                        continue;
                    }
                    // Our own stdout being slow is the server's signal to slow down: the
                    // credit for these bytes goes back only after the write.
                    let written = match stream {
                        OutputStream::Stdout => stdout.write_all(&data).await.and(stdout.flush().await),
                        OutputStream::Stderr => stderr.write_all(&data).await.and(stderr.flush().await),
                    };
                    if written.is_err() {
                        // Nobody reads us any more (a closed pipe): stop the run.
                        run.cancel();
                    }
                }
                Some(RunEvent::Exit { status, result, duration }) => break Ok((status, result, duration)),
                Some(RunEvent::Lost { reason }) => break Err(reason),
                None => break Err("the run ended without a status".into()),
            },
            _ = &mut ctrl_c => {
                interrupts += 1;
                if interrupts > 1 {
                    return Err(Failure::new(130, "interrupted again: leaving without waiting for the run"));
                }
                eprintln!("cancelling {task}… (Ctrl-C again to leave at once)");
                run.cancel();
                ctrl_c.set(tokio::signal::ctrl_c());
            }
        }
    };
    if let Some(t) = stdin_task {
        t.abort();
    }
    let rtt_ms = t.elapsed().as_secs_f64() * 1000.0;
    opened.link.close().await;
    let (status, result, duration) = outcome.map_err(|reason| {
        Failure::new(
            exit::UNREACHABLE,
            format!("the connection was lost before {task} ended ({reason}); it was not run again"),
        )
    })?;
    let code = run_exit_code(&status);
    // The last line has the shape the agent's has (docs/agent.md), plus how it connected.
    let mut v = base(rtt_ms);
    let last = csc_shared::agent::proto::finished(
        task,
        &status,
        &result,
        duration.as_millis() as u64,
        code,
        &describe_status(task, &status),
    );
    if let (Some(o), Value::Object(l)) = (v.as_object_mut(), last) {
        o.extend(l);
    }
    // A value task (the built-ins) prints its value, as `send` always did.
    if matches!(status, RunStatus::Done {}) {
        out.line(render(&result), v);
        return Ok(());
    }
    if out.json {
        out.line("", v);
    }
    if code == exit::OK {
        return Ok(());
    }
    Err(Failure::new(code, describe_status(task, &status)))
}

/// `client-tui tasks`: what the paired server lets this client run.
pub async fn tasks(client: Arc<Client>, cli: &Cli, out: Output) -> Result<(), Failure> {
    let opened = connect(&client, cli).await?;
    let list = opened.link.handle().list_tasks(cli.link.wait).await;
    opened.link.close().await;
    let mut list = list?;
    list.sort_by(|a, b| a.name.cmp(&b.name));
    if out.json {
        for t in &list {
            out.line("", serde_json::to_value(t).unwrap_or_default());
        }
        return Ok(());
    }
    if list.is_empty() {
        out.line("no tasks", Value::Null);
        return Ok(());
    }
    let usage = |t: &csc_shared::message::TaskInfo| {
        let mut u = t.name.clone();
        for a in &t.args {
            u.push_str(&format!(" <{}>", a.name));
        }
        if t.stdin {
            u.push_str(" < input");
        }
        u
    };
    let width = list
        .iter()
        .map(|t| usage(t).len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.line(format!("{:<width$}  DESCRIPTION", "TASK"), Value::Null);
    for t in &list {
        let mut line = format!("{:<width$}  {}", usage(t), t.description);
        for a in &t.args {
            line.push_str(&format!("\n{:<width$}    {}: {}", "", a.name, a.pattern));
        }
        out.line(line, Value::Null);
    }
    Ok(())
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Say what the link did: on stderr in words, or as a JSON event on stdout.
fn report_link(event: &LinkEvent, out: Output) {
    let (text, value) = match event {
        LinkEvent::Connecting { attempt } => (
            format!("connecting (attempt {attempt})…"),
            json!({"event": "connecting", "attempt": attempt}),
        ),
        LinkEvent::Connected {
            server,
            addr,
            via,
            elapsed,
        } => (
            format!(
                "connected to {:?} at {addr}{} in {:.1} ms",
                server.name,
                via.map(|v| format!(" via {v}")).unwrap_or_default(),
                elapsed.as_secs_f64() * 1000.0
            ),
            json!({"event": "connected", "server_id": server.server_id, "addr": addr, "via": via, "elapsed_ms": round(elapsed.as_secs_f64() * 1000.0)}),
        ),
        LinkEvent::Lost { reason } => (
            format!("connection lost: {reason}; reconnecting"),
            json!({"event": "lost", "reason": reason}),
        ),
        LinkEvent::Retrying {
            attempt,
            wait,
            error,
        } => (
            format!(
                "reconnect attempt {attempt} failed: {error}; next in {}",
                wait_in_words(*wait)
            ),
            json!({"event": "retrying", "attempt": attempt, "in_ms": wait.as_millis() as u64, "error": error.to_string()}),
        ),
        LinkEvent::RepairRequired { reason } => (
            format!("re-pair required: {}", reason.describe()),
            json!({"event": "repair_required", "reason": reason}),
        ),
        LinkEvent::Notice { text, at_ms } => {
            out.line(
                format!("notice: {text}"),
                json!({"event": "notice", "text": text, "at_ms": at_ms}),
            );
            return;
        }
    };
    if out.json {
        out.line("", value);
    } else {
        eprintln!("{text}");
    }
}

/// No subcommand: connect (pairing first if needed) and run tasks typed on stdin, each sent
/// as soon as it is read (pipelined), their answers printed in the order they were typed. The
/// link heals by itself, and says so; a task typed while it heals waits up to --wait.
pub async fn interactive(client: Arc<Client>, cli: &Cli, out: Output) -> Result<(), Failure> {
    let query = cli
        .target
        .server_id
        .as_deref()
        .or(cli.target.server_name.as_deref());
    let paired = client.select(query);
    let mut input = Input::stdin();
    let mut link = match (paired, &cli.target.server) {
        (Ok(_), _) => {
            let opened = connect(&client, cli).await?;
            eprintln!(
                "reached {} via {} in {:.1} ms",
                opened.addr,
                opened.via,
                opened.elapsed.as_secs_f64() * 1000.0
            );
            eprintln!(
                "connected to {:?} (server id {}) at {}; type tasks (ping, echo TEXT, time, info), one per line",
                opened.server.name,
                opened.server.server_id.short(),
                opened.addr
            );
            opened.link
        }
        (Err(ClientError::Select(csc_shared::state::SelectError::NonePaired)), spec) => {
            // Only an address typed with --server stays first when the link heals; one that
            // discovery found is saved with the pairing, among the addresses tried anyway.
            let typed = spec.is_some();
            let addr = match spec {
                Some(spec) => resolve(spec, cli.port).await?,
                None => choose_server(&client, cli, &mut input).await?,
            };
            let session = pair(&client, addr, &mut input, None, out).await?;
            let server = session.server().clone();
            eprintln!(
                "connected to {:?} (server id {}) at {}; type tasks (ping, echo TEXT, time, info), one per line",
                server.name,
                server.server_id.short(),
                session.addr()
            );
            Link::adopt_session(
                client.clone(),
                session,
                link_options(cli, typed.then_some(addr)),
            )
        }
        (Err(e), _) => return Err(e.into()),
    };
    let wait = cli.link.wait;
    let handle = link.handle();
    let mut answers = FuturesOrdered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            line = input.ask("> "), if reading => {
                let Some(line) = line else {
                    reading = false;
                    continue;
                };
                let mut words = line.split_whitespace();
                let Some(task) = words.next().map(str::to_string) else { continue };
                let args: Vec<String> = words.map(str::to_string).collect();
                let handle = handle.clone();
                answers.push_back(async move {
                    let t = Instant::now();
                    let result = console_run(&handle, &task, args, wait, out).await;
                    (task, result, t.elapsed())
                });
            }
            Some((task, result, rtt)) = answers.next(), if !answers.is_empty() => {
                let rtt_ms = round(rtt.as_secs_f64() * 1000.0);
                match result {
                    Ok((RunStatus::Done {}, v)) => out.line(render(&v), json!({"task": task, "ok": true, "result": v, "rtt_ms": rtt_ms})),
                    Ok((status, _)) if status.success() => {
                        if out.json {
                            out.line("", json!({"task": task, "ok": true, "status": status, "rtt_ms": rtt_ms}));
                        }
                    }
                    Ok((RunStatus::Failed { code, message }, _)) => out.line(
                        format!("error ({code}): {message}"),
                        json!({"task": task, "ok": false, "error": {"code": code, "message": message}}),
                    ),
                    Ok((status, _)) => out.line(
                        format!("error: {}", describe_status(&task, &status)),
                        json!({"task": task, "ok": false, "status": status, "error": {"code": "run_failed", "message": describe_status(&task, &status)}}),
                    ),
                    Err(ClientError::RepairRequired { reason }) => {
                        return Err(ClientError::RepairRequired { reason }.into());
                    }
                    // The connection was lost before the answer, or did not come back in
                    // time: the task failed, the console goes on.
                    Err(e) => out.line(
                        format!("error: {e}"),
                        json!({"task": task, "ok": false, "error": {"code": "not_delivered", "message": e.to_string()}}),
                    ),
                }
            }
            event = link.next_event() => match event {
                Some(LinkEvent::RepairRequired { reason }) => {
                    return Err(ClientError::RepairRequired { reason }.into());
                }
                Some(ev) => report_link(&ev, out),
                None => return Ok(()),
            },
        }
        if !reading && answers.is_empty() {
            link.close().await;
            return Ok(());
        }
    }
}

/// One task typed in the headless console, as a run: its output is printed as it comes (the
/// console's own stdin is its commands, so the task gets an empty stdin); the status and a
/// value task's result are returned.
async fn console_run(
    handle: &csc_shared::client::LinkHandle,
    task: &str,
    args: Vec<String>,
    wait: std::time::Duration,
    out: Output,
) -> Result<(RunStatus, Value), ClientError> {
    use std::io::Write as _;
    let mut run = handle.run(task, args, wait).await?;
    loop {
        match run.next().await {
            Some(RunEvent::Started { stdin }) => {
                if stdin {
                    run.close_stdin();
                }
            }
            Some(RunEvent::Output { stream, data }) => {
                if out.json {
                    let text = std::str::from_utf8(&data).ok();
                    out.line("", json!({"event": "output", "task": task, "stream": stream, "data": B64(data.to_vec()), "text": text}));
                    continue;
                }
                let _ = match stream {
                    OutputStream::Stdout => {
                        let mut o = std::io::stdout().lock();
                        o.write_all(&data).and(o.flush())
                    }
                    OutputStream::Stderr => {
                        let mut e = std::io::stderr().lock();
                        e.write_all(&data).and(e.flush())
                    }
                };
            }
            Some(RunEvent::Exit { status, result, .. }) => return Ok((status, result)),
            Some(RunEvent::Lost { reason }) => {
                return Err(ClientError::Closed(format!(
                    "the connection was lost before {task} ended ({reason}); it was not run again"
                )));
            }
            None => return Err(ClientError::Closed("the run ended without a status".into())),
        }
    }
}

/// `client-tui servers`.
pub fn servers(client: &Client, out: Output) -> Result<(), Failure> {
    let servers = client.servers()?;
    if servers.is_empty() && !out.json {
        out.line("no paired servers", Value::Null);
        return Ok(());
    }
    if !out.json {
        out.line(
            format!(
                "{:<24} {:<10} {:<28} {}",
                "NAME", "ID", "LAST ADDRESS", "TOKEN"
            ),
            Value::Null,
        );
    }
    for s in servers {
        out.line(
            format!(
                "{:<24} {:<10} {:<28} {}",
                s.name,
                s.server_id.short(),
                s.addrs
                    .first()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                expiry(&s)
            ),
            json!({
                "server_id": s.server_id,
                "name": s.name,
                "addrs": s.addrs,
                "token_expires_at": s.token_expires_at,
                "paired_at": s.paired_at,
                "refused": s.refused,
            }),
        );
    }
    Ok(())
}

/// One or two words for why a server refused the token.
fn refusal_word(reason: csc_shared::message::RepairReason) -> &'static str {
    use csc_shared::message::RepairReason::*;
    match reason {
        Revoked => "revoked",
        Expired => "expired",
        Unknown => "unknown to the server",
        KeyMismatch => "key mismatch",
        Invalid => "invalid token",
        Other => "repair required",
    }
}

/// The token's state: refused by the server (pair again), expired, or when it expires.
fn expiry(s: &PairedServer) -> String {
    if let Some(refused) = s.refused {
        return format!("refused: {} (pair again)", refusal_word(refused.reason));
    }
    let now = csc_shared::unix_now();
    if s.token_expires_at <= now {
        return "expired".into();
    }
    let left = std::time::Duration::from_secs((s.token_expires_at - now) / 60 * 60);
    format!("in {}", humantime::format_duration(left))
}

/// `client-tui forget ID`.
pub async fn forget(client: &Client, query: &str, out: Output) -> Result<(), Failure> {
    let (server, remote) = client.forget(query).await?;
    let note = match &remote {
        Ok(()) => "the server revoked the pairing".to_string(),
        Err(e) => format!("could not reach the server to revoke it ({e}); forgotten locally"),
    };
    out.line(
        format!(
            "forgot {:?} ({}): {note}",
            server.name,
            server.server_id.short()
        ),
        json!({
            "event": "forgotten",
            "server_id": server.server_id,
            "name": server.name,
            "server_revoked": remote.is_ok(),
        }),
    );
    Ok(())
}

fn found_json(f: &Found, paired: bool) -> Value {
    json!({
        "event": "found",
        "addr": f.addr.ip().to_string(),
        "port": f.addr.port(),
        "server_id": f.server_id,
        "name": f.name,
        "via": f.via,
        "verified": f.verified,
        "paired": paired,
        "elapsed_ms": round(f.elapsed.as_secs_f64() * 1000.0),
    })
}

fn found_line(f: &Found, paired: bool) -> String {
    format!(
        "found {:?} at {} (server id {}, via {}{}, {:.1} ms){}",
        f.name,
        f.addr,
        f.server_id.short(),
        f.via,
        if f.verified { ", verified" } else { "" },
        f.elapsed.as_secs_f64() * 1000.0,
        if paired { " [paired]" } else { "" }
    )
}

/// Run discovery to the end, printing as it goes; returns every server found. When there is
/// nothing to search it fails at once with `nothing_code`, saying why and what to type.
async fn run_discovery(
    client: &Client,
    cli: &Cli,
    out: Output,
    verbose: bool,
    nothing_code: u8,
) -> Result<Vec<Found>, Failure> {
    let Some(options) = discovery_options(cli) else {
        return Err(Failure::new(
            exit::USAGE,
            "every discovery method is off: drop one of --no-broadcast, --no-mdns, --no-scan, or give --server",
        ));
    };
    let paired: Vec<_> = client.servers()?.iter().map(|s| s.server_id).collect();
    let mut search = discover(client.dialer(), options);
    let mut found = Vec::new();
    let progress_on_tty = !out.json && std::io::stderr().is_terminal();
    while let Some(event) = search.next().await {
        match event {
            DiscoveryEvent::Started {
                methods,
                subnets,
                hosts_left_out,
                max_hosts,
                nothing_to_search,
            } => {
                if let Some(why) = nothing_to_search {
                    return Err(Failure::new(nothing_code, why));
                }
                if hosts_left_out > 0 {
                    // Said on stderr in every mode, so a script's log shows it too.
                    eprintln!(
                        "warning: the subnets hold more hosts than --max-hosts {max_hosts}: {hosts_left_out} hosts are not swept; give a smaller --subnet or a larger --max-hosts"
                    );
                }
                let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
                let subnets_text: Vec<String> = subnets
                    .iter()
                    .map(|(s, n)| format!("{s} ({n} hosts)"))
                    .collect();
                if verbose && out.json {
                    out.line("", json!({"event": "started", "methods": methods, "subnets": subnets.iter().map(|(s, n)| json!({"subnet": s, "hosts": n})).collect::<Vec<_>>(), "hosts_left_out": hosts_left_out, "max_hosts": max_hosts}));
                } else if !out.json {
                    eprintln!(
                        "searching via {} {}",
                        methods.join(", "),
                        if subnets_text.is_empty() {
                            String::new()
                        } else {
                            format!("over {}", subnets_text.join(", "))
                        }
                    );
                }
            }
            DiscoveryEvent::Progress(p) => {
                if verbose && out.json {
                    out.line("", json!({"event": "progress", "subnet": p.subnet, "probed": p.probed, "total": p.total, "elapsed_ms": round(p.elapsed.as_secs_f64() * 1000.0)}));
                } else if progress_on_tty {
                    eprint!("\r{}: {}/{} hosts  ", p.subnet, p.probed, p.total);
                }
            }
            DiscoveryEvent::Found(f) => {
                let is_paired = paired.contains(&f.server_id);
                if verbose || !out.json {
                    if progress_on_tty {
                        eprint!("\r");
                    }
                    if verbose {
                        out.line(found_line(&f, is_paired), found_json(&f, is_paired));
                    } else {
                        eprintln!("{}", found_line(&f, is_paired));
                    }
                }
                found.push(f);
            }
            DiscoveryEvent::Finished(_) => {}
            DiscoveryEvent::Done { found: n, elapsed } => {
                if progress_on_tty {
                    eprintln!();
                }
                if verbose {
                    out.line(
                        format!("{n} found in {:.0} ms", elapsed.as_secs_f64() * 1000.0),
                        json!({"event": "done", "found": n, "elapsed_ms": round(elapsed.as_secs_f64() * 1000.0)}),
                    );
                }
            }
        }
    }
    Ok(found)
}

/// `client-tui scan`.
pub async fn scan(client: &Client, cli: &Cli, out: Output) -> Result<(), Failure> {
    if run_discovery(client, cli, out, true, exit::NONE_FOUND)
        .await?
        .is_empty()
    {
        return Err(Failure::new(
            exit::NONE_FOUND,
            "no server found: check that one runs on this network (and that the firewall lets port 47474 through), or search elsewhere with --subnet CIDR",
        ));
    }
    Ok(())
}

/// Discover and pick the server to pair with: the only unpaired one, the one named by
/// `--server-id`/`--server-name`, or the person's choice.
pub async fn choose_server(
    client: &Client,
    cli: &Cli,
    input: &mut Input,
) -> Result<SocketAddr, Failure> {
    let found = run_discovery(
        client,
        cli,
        Output { json: false },
        false,
        exit::UNREACHABLE,
    )
    .await?;
    let paired: Vec<_> = client.servers()?.iter().map(|s| s.server_id).collect();
    // One entry per server: prefer a verified address.
    let mut servers: Vec<Found> = Vec::new();
    for f in found {
        match servers.iter_mut().find(|s| s.server_id == f.server_id) {
            Some(s) if !s.verified && f.verified => *s = f,
            Some(_) => {}
            None => servers.push(f),
        }
    }
    let explicit = cli.target.server_id.is_some() || cli.target.server_name.is_some();
    let candidates: Vec<Found> = servers
        .into_iter()
        .filter(|s| match (&cli.target.server_id, &cli.target.server_name) {
            (Some(id), _) => s.server_id.matches(id),
            (None, Some(name)) => &s.name == name,
            (None, None) => !paired.contains(&s.server_id),
        })
        .collect();
    match candidates.as_slice() {
        [] if explicit => Err(Failure::new(
            exit::UNREACHABLE,
            "no server matching --server-id/--server-name was found",
        )),
        [] => Err(Failure::new(
            exit::UNREACHABLE,
            "no unpaired server found: check that it runs on this network, or give --server HOST[:PORT]",
        )),
        [one] => Ok(one.addr),
        many => {
            let list: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "  {}) {:?} at {} (server id {})",
                        i + 1,
                        s.name,
                        s.addr,
                        s.server_id.short()
                    )
                })
                .collect();
            if !input.interactive {
                return Err(Failure::new(
                    exit::USAGE,
                    format!(
                        "{} servers found; choose one with --server-id or --server-name:\n{}",
                        many.len(),
                        list.join("\n")
                    ),
                ));
            }
            eprintln!("{} servers found:\n{}", many.len(), list.join("\n"));
            loop {
                let Some(line) = input.ask("pair with which one? ").await else {
                    return Err(Failure::new(exit::USAGE, "no server chosen"));
                };
                match line.trim().parse::<usize>() {
                    Ok(n) if (1..=many.len()).contains(&n) => return Ok(many[n - 1].addr),
                    _ => eprintln!("type a number from 1 to {}", many.len()),
                }
            }
        }
    }
}
