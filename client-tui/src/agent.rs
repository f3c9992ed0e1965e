//! `client-tui agent`, and `client-tui send` through a running agent. Thin: the agent itself
//! is `csc_shared::agent`; this module picks the servers, prints what happens, and speaks the
//! local protocol for `send`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use csc_shared::agent::{self, Agent, BindError};
use csc_shared::client::Client;
use csc_shared::client::outcome::exit as run_exit;
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::headless::Output;
use crate::{Failure, exit};

/// `client-tui agent`: serve the links until Ctrl-C or SIGTERM.
pub async fn serve(client: Client, cli: &Cli, dir: &Path, out: Output) -> Result<(), Failure> {
    let query = cli
        .target
        .server_id
        .as_deref()
        .or(cli.target.server_name.as_deref());
    let servers = match query {
        Some(_) => vec![client.select(query)?],
        None => client.servers()?,
    };
    if servers.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            "no paired server to serve: pair one first (client-tui pair)",
        ));
    }
    let bound = agent::bind(dir).await.map_err(|e| match e {
        BindError::Running { .. } => Failure::new(exit::AGENT_RUNNING, e.to_string()),
        other => Failure::new(exit::FAILURE, other.to_string()),
    })?;
    // Before anything says the agent is ready: a SIGTERM from then on stops it cleanly.
    let shutdown = tui_kit::terminal::shutdown_signal();
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    let agent = Agent::start(Arc::new(client), servers, crate::link_options(cli, None));
    let started = json!({
        "event": "agent_listening",
        "socket": bound.path(),
        "servers": agent.servers(),
        "pid": std::process::id(),
    });
    if out.json {
        print_line(&started);
    }
    eprintln!(
        "client-tui agent: serving {} on {} (Ctrl-C stops)",
        names.join(", "),
        bound.path().display()
    );
    let mut events = agent.events();
    let json = out.json;
    let reporter = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if json {
                        print_line(&e.line);
                    } else {
                        eprintln!("client-tui agent: {}", describe(&e.line));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
    });
    let result = agent.serve(&bound, shutdown).await;
    reporter.abort();
    agent.close().await;
    drop(bound);
    eprintln!("client-tui agent: stopped");
    result.map_err(|e| Failure::new(exit::FAILURE, format!("the agent socket failed: {e}")))
}

fn print_line(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// A link or notice event, for people.
fn describe(v: &Value) -> String {
    let server = v["server_id"].as_str().unwrap_or("?");
    let short = server.get(..8).unwrap_or(server);
    match v["event"].as_str() {
        Some("notice") => format!("notice from {short}: {}", v["text"].as_str().unwrap_or("")),
        _ => {
            let mut s = format!("{short}: {}", v["state"].as_str().unwrap_or("?"));
            if let Some(a) = v["addr"].as_str() {
                s.push_str(&format!(" at {a}"));
            }
            if let Some(r) = v["reason"].as_str() {
                s.push_str(&format!(" ({r})"));
            }
            s
        }
    }
}

/// `client-tui send` through the agent serving `dir`; `None` when no agent serves it (the
/// caller connects directly then).
pub async fn send(
    dir: &Path,
    cli: &Cli,
    task: &str,
    args: &[String],
    out: Output,
) -> Option<Result<(), Failure>> {
    let (mut tx, mut rx) = agent::local::connect(dir).await?;
    let mut request = json!({"id": 1, "task": task, "args": args, "stdin": "stream"});
    let server = cli
        .target
        .server_id
        .as_deref()
        .or(cli.target.server_name.as_deref());
    if let Some(s) = server {
        request["server"] = s.into();
    }
    if tx.send(&request).await.is_err() {
        return None;
    }
    drive(tx, &mut rx, task, out).await
}

/// Carry the run out through the agent; `None` when the agent does not serve the server
/// asked for (the caller connects directly then).
async fn drive(
    tx: agent::local::AgentSender,
    rx: &mut agent::local::AgentReceiver,
    task: &str,
    out: Output,
) -> Option<Result<(), Failure>> {
    use tokio::io::AsyncWriteExt;
    let tx = Arc::new(tokio::sync::Mutex::new(tx));
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut feeder = None;
    let mut interrupts = 0u32;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let last = loop {
        let line = tokio::select! {
            l = rx.next() => l,
            _ = &mut ctrl_c => {
                interrupts += 1;
                if interrupts > 1 {
                    return Some(Err(Failure::new(130, "interrupted again: leaving without waiting for the run")));
                }
                eprintln!("cancelling {task}… (Ctrl-C again to leave at once)");
                let _ = tx.lock().await.send(&json!({"cancel": 1})).await;
                ctrl_c.set(tokio::signal::ctrl_c());
                continue;
            }
        };
        let mut v = match line {
            Ok(Some(v)) => v,
            _ => {
                return Some(Err(Failure::new(
                    exit::UNREACHABLE,
                    format!("the agent went away before {task} ended"),
                )));
            }
        };
        if v.get("ok").is_some() {
            if v["error"]["code"] == "unknown_server" {
                return None;
            }
            break v;
        }
        match v["event"].as_str() {
            Some("started") if v["stdin"].as_bool() == Some(true) => {
                feeder = Some(tokio::spawn(forward_stdin(tx.clone())));
            }
            Some("output") if !out.json => {
                let data = decode(&v["data"]);
                let written = if v["stream"] == "stderr" {
                    stderr.write_all(&data).await.and(stderr.flush().await)
                } else {
                    stdout.write_all(&data).await.and(stdout.flush().await)
                };
                if written.is_err() {
                    let _ = tx.lock().await.send(&json!({"cancel": 1})).await;
                }
                continue;
            }
            _ => {}
        }
        if out.json {
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
            print_line(&v);
        }
    };
    if let Some(f) = feeder {
        f.abort();
    }
    Some(finish(last, task, out))
}

/// The exit of `send` from the agent's last line.
fn finish(mut last: Value, task: &str, out: Output) -> Result<(), Failure> {
    if let Some(o) = last.as_object_mut() {
        o.remove("id");
    }
    let ok = last["ok"].as_bool() == Some(true);
    if last.get("status").is_some() {
        let code = last["exit_code"]
            .as_u64()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(run_exit::TASK_FAILED);
        if last.get("result").is_some() && ok {
            let text = match &last["result"] {
                Value::String(s) => s.clone(),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            if out.json {
                print_line(&last);
            } else {
                println!("{text}");
            }
            return Ok(());
        }
        if out.json {
            print_line(&last);
        }
        if ok {
            return Ok(());
        }
        let message = last["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{task} failed"));
        return Err(Failure::new(code, message));
    }
    // Failed before the run ended: the agent's error code says why.
    if out.json {
        print_line(&last);
    }
    let message = last["error"]["message"]
        .as_str()
        .unwrap_or("the agent could not run the task")
        .to_string();
    let code = match last["error"]["code"].as_str() {
        Some("repair_required") => exit::REPAIR_REQUIRED,
        Some("not_connected" | "lost") => exit::UNREACHABLE,
        Some("cancelled") => run_exit::CANCELLED,
        Some("timeout") => run_exit::TIMED_OUT,
        _ => exit::FAILURE,
    };
    Err(Failure::new(code, message))
}

fn decode(data: &Value) -> Vec<u8> {
    serde_json::from_value::<csc_shared::message::B64>(data.clone())
        .map(|b| b.0)
        .unwrap_or_default()
}

/// Feed this process's stdin to the agent as `input` lines, then their end.
async fn forward_stdin(tx: Arc<tokio::sync::Mutex<agent::local::AgentSender>>) {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; csc_shared::client::run::CHUNK];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let data = csc_shared::message::B64(buf[..n].to_vec());
                if tx
                    .lock()
                    .await
                    .send(&json!({"input": 1, "data": data}))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = tx
        .lock()
        .await
        .send(&json!({"input": 1, "end": true}))
        .await;
}
