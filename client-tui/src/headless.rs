//! Headless flows: pairing with the code read from stdin, one-shot tasks, a task console on
//! stdin/stdout, and listings. Plain lines by default, one JSON object per line with --json.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Instant;

use csc_shared::client::{Client, ClientError, Session, SessionEvent};
use csc_shared::pairing::Code;
use csc_shared::state::PairedServer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use crate::cli::Cli;
use crate::{Failure, exit, resolve};

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

fn stdin_lines() -> Lines<BufReader<Stdin>> {
    BufReader::new(tokio::io::stdin()).lines()
}

/// Pair with the server at `addr`, reading codes from stdin until one is right.
pub async fn pair(client: &Client, addr: SocketAddr, out: Output) -> Result<Session, Failure> {
    let interactive = std::io::stdin().is_terminal();
    let mut lines = stdin_lines();
    let mut pairing = client.start_pairing(addr).await?;
    let ch = pairing.challenge().clone();
    eprintln!(
        "pairing with {:?} ({}, server id {}): a {}-digit code is now shown on the server's screen",
        ch.server_name,
        addr,
        ch.server_id.short(),
        ch.code_digits
    );
    let paired = loop {
        if interactive {
            eprint!("code: ");
            let _ = std::io::stderr().flush();
        }
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) | Err(_) => {
                return Err(Failure::new(
                    exit::WRONG_CODE,
                    "no code entered (end of input)",
                ));
            }
        };
        let code = match Code::parse(&line) {
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
                    .map(|w| format!("; next try in {:.1} s", w.as_secs_f64()))
                    .unwrap_or_default();
                eprintln!("wrong code, {attempts_left} attempts left{wait}");
            }
            Err(e @ (ClientError::CodeExpired | ClientError::CodeExhausted)) if interactive => {
                eprintln!("{e}; requesting a new code");
                pairing.request_new_code(client.name()).await?;
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

/// Open a session with the server `cli` names, trying `--server` first when given.
async fn connect(client: &Client, cli: &Cli) -> Result<Session, Failure> {
    let query = cli
        .target
        .server_id
        .as_deref()
        .or(cli.target.server_name.as_deref());
    let mut server = client.select(query)?;
    if let Some(spec) = &cli.target.server {
        let addr = resolve(spec, cli.port).await?;
        server.remember_addr(addr);
    }
    Ok(client.connect(&server).await?)
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// `client-tui send TASK ARGS..`.
pub async fn send(
    client: &Client,
    cli: &Cli,
    task: &str,
    args: Vec<String>,
    out: Output,
) -> Result<(), Failure> {
    let started = Instant::now();
    let session = connect(client, cli).await?;
    let t = Instant::now();
    let result = session.request(task, args).await;
    let rtt_ms = t.elapsed().as_secs_f64() * 1000.0;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let base = json!({
        "task": task,
        "server_id": session.server().server_id,
        "addr": session.addr(),
        "rtt_ms": round(rtt_ms),
        "elapsed_ms": round(elapsed_ms),
    });
    session.close().await;
    match result {
        Ok(value) => {
            let mut v = base;
            v["ok"] = true.into();
            v["result"] = value.clone();
            out.line(render(&value), v);
            Ok(())
        }
        Err(ClientError::Task { code, message }) => {
            let mut v = base;
            v["ok"] = false.into();
            v["error"] = json!({"code": code, "message": message});
            if cli.json {
                out.line("", v);
            }
            Err(Failure::new(
                exit::TASK_FAILED,
                format!("task failed ({code}): {message}"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// No subcommand: connect (pairing first if needed) and run tasks typed on stdin.
pub async fn interactive(client: &Client, cli: &Cli, out: Output) -> Result<(), Failure> {
    let query = cli
        .target
        .server_id
        .as_deref()
        .or(cli.target.server_name.as_deref());
    let paired = client.select(query);
    let mut session = match (paired, &cli.target.server) {
        (Ok(_), _) => connect(client, cli).await?,
        (Err(ClientError::Select(csc_shared::state::SelectError::NonePaired)), Some(spec)) => {
            let addr = resolve(spec, cli.port).await?;
            pair(client, addr, out).await?
        }
        (Err(ClientError::Select(csc_shared::state::SelectError::NonePaired)), None) => {
            return Err(Failure::new(
                exit::USAGE,
                "not paired with any server yet: give its address with --server HOST[:PORT]",
            ));
        }
        (Err(e), _) => return Err(e.into()),
    };
    let server = session.server().clone();
    eprintln!(
        "connected to {:?} (server id {}) at {}; type tasks (ping, echo TEXT, time, info), one per line",
        server.name,
        server.server_id.short(),
        session.addr()
    );
    let interactive = std::io::stdin().is_terminal();
    let mut lines = stdin_lines();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else {
                    session.close().await;
                    return Ok(());
                };
                let mut words = line.split_whitespace();
                let Some(task) = words.next() else { continue };
                let args: Vec<String> = words.map(str::to_string).collect();
                let t = Instant::now();
                match session.request(task, args).await {
                    Ok(v) => out.line(render(&v), json!({"task": task, "ok": true, "result": v, "rtt_ms": round(t.elapsed().as_secs_f64() * 1000.0)})),
                    Err(ClientError::Task { code, message }) => out.line(
                        format!("error ({code}): {message}"),
                        json!({"task": task, "ok": false, "error": {"code": code, "message": message}}),
                    ),
                    Err(e) => return Err(e.into()),
                }
            }
            ev = session.next_event() => match ev {
                Some(SessionEvent::Notice { text, at_ms }) => {
                    out.line(format!("notice: {text}"), json!({"event": "notice", "text": text, "at_ms": at_ms}));
                }
                Some(SessionEvent::Closed { reason, repair }) => {
                    return Err(match repair {
                        Some(reason) => ClientError::RepairRequired { reason }.into(),
                        None => Failure::new(exit::UNREACHABLE, format!("connection closed: {reason}")),
                    });
                }
                None => return Ok(()),
            },
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
                "NAME", "ID", "LAST ADDRESS", "TOKEN EXPIRES"
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
            }),
        );
    }
    Ok(())
}

fn expiry(s: &PairedServer) -> String {
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
