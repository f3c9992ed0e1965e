//! The agent: a request's round trip through `agent.sock` against the same request on the
//! link used directly in-process, and `client-tui send ping` end to end with and without a
//! running agent. Both in the same run, alternating, one request at a time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use csc_shared::agent::{self, Agent};
use csc_shared::client::{Client, ClientOptions, Link, LinkOptions};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::server::{Launch, ServerProc};
use crate::stats::Latency;
use crate::{BenchError, Options, within};

/// What the agent phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct AgentFigures {
    /// `ping` on the link, in-process.
    pub link: Latency,
    /// `ping` through the agent socket.
    pub agent: Latency,
    /// `client-tui send ping`, process start to exit, through the agent.
    pub send_agent: Option<Latency>,
    /// `client-tui send ping --no-agent`, process start to exit (TLS and auth each time).
    pub send_direct: Option<Latency>,
    /// Why the `send` rows are missing, when they are.
    pub send_skipped: Option<String>,
}

fn mismatch(what: impl Into<String>) -> BenchError {
    BenchError::Mismatch(what.into())
}

/// One `ping` through the agent as request `id`, timed from the write to its last line.
async fn ask(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    id: u64,
) -> Result<Duration, BenchError> {
    let req = format!("{}\n", json!({"id": id, "task": "ping"}));
    let t = Instant::now();
    write.write_all(req.as_bytes()).await?;
    loop {
        let line = lines
            .next_line()
            .await?
            .ok_or_else(|| mismatch("the agent closed the connection"))?;
        let v: Value = serde_json::from_str(&line).map_err(|e| mismatch(e.to_string()))?;
        if v["id"] == id && v.get("ok").is_some() {
            if v["result"] != "pong" {
                return Err(mismatch(format!("the agent answered {v}")));
            }
            return Ok(t.elapsed());
        }
    }
}

/// Run the agent phase against a fresh server whose state lives in `dir`.
pub async fn run(opts: &Options, dir: &Path) -> Result<AgentFigures, BenchError> {
    let srv = ServerProc::start_with(
        &opts.server_bin,
        &dir.join("agent-server"),
        &dir.join("agent.stderr"),
        &Launch { args: vec![] },
    )
    .await?;
    let cdir = dir.join("agent-client");
    let client = Client::open(&cdir, "bench-agent", ClientOptions::default())?;
    let mut pairing = client.start_pairing(srv.addr()).await?;
    let code = srv
        .codes()
        .code_for(&client.id(), Duration::from_secs(30))
        .await?;
    pairing.submit(&code).await?;
    let client = Arc::new(client);
    let server = client.select(None)?;
    let options = LinkOptions {
        discovery: None,
        ..LinkOptions::default()
    };
    let link = Link::start(client.clone(), server.clone(), options.clone());
    let handle = link.handle();
    let agent = Arc::new(Agent::start(client.clone(), vec![server], options));
    let bound = Arc::new(
        agent::bind(&cdir)
            .await
            .map_err(|e| mismatch(e.to_string()))?,
    );
    let serving = {
        let (a, b) = (agent.clone(), bound.clone());
        tokio::spawn(async move { a.serve(&b, std::future::pending::<()>()).await })
    };
    let stream = tokio::net::UnixStream::connect(bound.path()).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let limit = Duration::from_secs(30);
    // Warm both paths up: the link connects, the agent's link too.
    handle.request("ping", vec![], limit).await?;
    let mut id = 0u64;
    id += 1;
    within(
        "the agent's first answer",
        limit,
        ask(&mut write, &mut lines, id),
    )
    .await?;
    let (mut on_link, mut on_agent) = (Vec::new(), Vec::new());
    for rep in 0..opts.reps {
        opts.progress(format!("agent: repetition {}/{}", rep + 1, opts.reps));
        for _ in 0..opts.agent_requests {
            let t = Instant::now();
            let v = handle.request("ping", vec![], limit).await?;
            if v != "pong" {
                return Err(mismatch(format!("the link answered {v}")));
            }
            on_link.push(t.elapsed());
            id += 1;
            on_agent.push(
                within(
                    "a request through the agent",
                    limit,
                    ask(&mut write, &mut lines, id),
                )
                .await?,
            );
        }
    }

    // `client-tui send ping`, with the agent and without.
    let client_bin = opts.server_bin.with_file_name("client-tui");
    let (send_agent, send_direct, send_skipped) = if client_bin.exists() {
        let send = |direct: bool| {
            let mut c = std::process::Command::new(&client_bin);
            c.arg("--state-dir")
                .arg(&cdir)
                .args(["--subnet", "127.0.0.1/32", "--no-broadcast", "--no-mdns"])
                .args(["send", "ping"]);
            if direct {
                c.arg("--no-agent");
            }
            c
        };
        let (mut via, mut direct) = (Vec::new(), Vec::new());
        for _ in 0..opts.reps * opts.agent_sends {
            for (is_direct, into) in [(false, &mut via), (true, &mut direct)] {
                let t = Instant::now();
                let out = tokio::process::Command::from(send(is_direct))
                    .output()
                    .await?;
                if !out.status.success() || out.stdout != b"pong\n" {
                    return Err(mismatch(format!(
                        "client-tui send ping{}: {}",
                        if is_direct { " --no-agent" } else { "" },
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
                into.push(t.elapsed());
            }
        }
        (Some(Latency::of(&via)), Some(Latency::of(&direct)), None)
    } else {
        (
            None,
            None,
            Some(format!(
                "no client-tui next to {} (cargo build --release -p client-tui)",
                opts.server_bin.display()
            )),
        )
    };
    serving.abort();
    drop(lines);
    link.close().await;
    srv.stop().await?;
    Ok(AgentFigures {
        link: Latency::of(&on_link),
        agent: Latency::of(&on_agent),
        send_agent,
        send_direct,
        send_skipped,
    })
}
