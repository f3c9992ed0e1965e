//! One local program's connection to the agent: its lines in, its requests in flight, its
//! subscriptions, and its lines out.
//!
//! Owns the bounds a local program lives within: a line of at most [`MAX_LINE`] bytes (a
//! longer one is answered with an error and skipped), at most [`MAX_INFLIGHT`] requests at
//! once, and [`OUT_QUEUE`] lines waiting for it. A run waits for room in that queue before it
//! takes more output, so a slow reader slows the run (and, through the link's credit, the
//! server's program); a reader that takes nothing for [`WRITE_TIMEOUT`] is disconnected, and
//! its requests are cancelled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::links::{Event, Links};
use super::proto::{self, Kind, ListWhat, Request, RunRequest};
use crate::client::{ClientError, RunEvent, RunInput, outcome};
use crate::message::RunStatus;

/// The longest line a program may send, bytes.
pub const MAX_LINE: usize = 1 << 20;

/// Requests one connection may have in flight.
pub const MAX_INFLIGHT: usize = 1024;

/// Lines waiting for a program to read them.
pub const OUT_QUEUE: usize = 64;

/// A program that reads nothing for this long is disconnected.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for its link when it sets no deadline.
pub const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Reads lines of at most `max` bytes; a longer line is skipped to its end and reported.
pub(crate) struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
}

/// One read of a [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line, without its newline.
    Text(String),
    /// A line longer than the limit (skipped), or not UTF-8.
    Bad(String),
    /// The end of the stream.
    End,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            buf: Vec::new(),
        }
    }

    /// The next line. Cancel-safe: bytes already read stay in the buffer.
    pub(crate) async fn next(&mut self) -> std::io::Result<Line> {
        let mut skipping = self.buf.len() > self.max;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if self.buf.is_empty() || skipping {
                    self.buf.clear();
                    return Ok(Line::End);
                }
                // A last line without its newline.
                let line = std::mem::take(&mut self.buf);
                return Ok(text(line));
            }
            let (part, found) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            if !skipping {
                self.buf.extend_from_slice(part);
                if self.buf.len() > self.max {
                    skipping = true;
                    // Keep a marker byte past the limit, so a later call keeps skipping.
                    self.buf.truncate(self.max + 1);
                }
            }
            let used = found.unwrap_or(chunk.len());
            self.inner.consume(used);
            if found.is_some() {
                let line = std::mem::take(&mut self.buf);
                if skipping {
                    return Ok(Line::Bad(format!(
                        "the line is longer than {} bytes; it was skipped",
                        self.max
                    )));
                }
                return Ok(text(line));
            }
        }
    }
}

fn text(mut line: Vec<u8>) -> Line {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    match String::from_utf8(line) {
        Ok(s) => Line::Text(s),
        Err(_) => Line::Bad("the line is not UTF-8".into()),
    }
}

/// A request in flight: how to cancel it, and where its streamed stdin goes.
struct Inflight {
    cancel: Option<oneshot::Sender<()>>,
    stdin: Option<mpsc::Sender<(Vec<u8>, bool)>>,
}

/// Serve one local program until it leaves, stops reading, or the agent stops.
pub(crate) async fn serve(
    stream: UnixStream,
    links: Arc<Links>,
    mut stop: broadcast::Receiver<()>,
) {
    let (read, mut write) = stream.into_split();
    let (out, mut out_rx) = mpsc::channel::<Arc<Value>>(OUT_QUEUE);
    // The writer: one line at a time; a program that takes nothing for WRITE_TIMEOUT is gone.
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            let mut text = serde_json::to_vec(&*line).unwrap_or_default();
            text.push(b'\n');
            match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&text)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::info!("a local program stopped reading; disconnected");
                    break;
                }
            }
        }
    });
    let mut lines = LineReader::new(tokio::io::BufReader::new(read), MAX_LINE);
    let mut inflight: HashMap<u64, Inflight> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::channel::<u64>(MAX_INFLIGHT);
    let mut events = links.events.subscribe();
    let mut kinds: Vec<Kind> = Vec::new();
    let mut line_no: u64 = 0;
    loop {
        let send = |v: Value| {
            let out = out.clone();
            async move { out.send(Arc::new(v)).await.is_ok() }
        };
        tokio::select! {
            _ = stop.recv() => break,
            _ = out.closed() => break,
            Some(id) = done_rx.recv() => {
                inflight.remove(&id);
            }
            ev = events.recv(), if !kinds.is_empty() => match ev {
                Ok(Event { kind, line }) => {
                    if kinds.contains(&kind) && out.send(line).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    if !send(serde_json::json!({"event": "lagged", "missed": n})).await {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => kinds.clear(),
            },
            read = lines.next() => {
                let line = match read {
                    Ok(Line::End) | Err(_) => break,
                    Ok(Line::Bad(why)) => {
                        line_no += 1;
                        let bad = proto::BadLine { id: None, message: format!("line {line_no}: {why}") };
                        if !send(proto::bad_line(&bad)).await { break; }
                        continue;
                    }
                    Ok(Line::Text(t)) => t,
                };
                line_no += 1;
                if line.trim().is_empty() {
                    continue;
                }
                let request = match proto::parse(&line) {
                    Ok(r) => r,
                    Err(mut bad) => {
                        bad.message = format!("line {line_no}: {}", bad.message);
                        if !send(proto::bad_line(&bad)).await { break; }
                        continue;
                    }
                };
                match request {
                    Request::Subscribe { kinds: k } => {
                        for kind in k {
                            if !kinds.contains(&kind) {
                                kinds.push(kind);
                            }
                        }
                        if !send(serde_json::json!({"subscribed": kinds})).await { break; }
                    }
                    Request::Cancel { id } => {
                        if let Some(c) = inflight.get_mut(&id).and_then(|f| f.cancel.take()) {
                            let _ = c.send(());
                        }
                    }
                    Request::Input { id, data, end } => {
                        let target = inflight.get(&id).and_then(|f| f.stdin.clone());
                        match target {
                            // Waits when the run's stdin is behind: that is the backpressure.
                            Some(tx) => { let _ = tx.send((data, end)).await; }
                            None => {
                                let v = proto::failed(Some(id), None, "bad_request", &format!("line {line_no}: request {id} takes no streamed stdin now"));
                                if !send(v).await { break; }
                            }
                        }
                    }
                    Request::List { id, what, server } => {
                        if inflight.contains_key(&id) {
                            if !send(proto::failed(Some(id), None, "duplicate_id", &format!("request {id} is already in flight"))).await { break; }
                            continue;
                        }
                        let v = list(&links, id, what, server.as_deref()).await;
                        if !send(v).await { break; }
                    }
                    Request::Run(r) => {
                        let id = r.id;
                        if inflight.contains_key(&id) {
                            if !send(proto::failed(Some(id), Some(&r.task), "duplicate_id", &format!("request {id} is already in flight"))).await { break; }
                            continue;
                        }
                        if inflight.len() >= MAX_INFLIGHT {
                            if !send(proto::failed(Some(id), Some(&r.task), "busy", &format!("{MAX_INFLIGHT} requests are already in flight on this connection"))).await { break; }
                            continue;
                        }
                        let (cancel, cancelled) = oneshot::channel();
                        let (stdin, stdin_rx) = if r.stdin_stream {
                            let (tx, rx) = mpsc::channel(16);
                            (Some(tx), Some(rx))
                        } else {
                            (None, None)
                        };
                        inflight.insert(id, Inflight { cancel: Some(cancel), stdin });
                        let links = links.clone();
                        let out = out.clone();
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            let last = run(&links, r, &out, cancelled, stdin_rx).await;
                            let _ = out.send(Arc::new(last)).await;
                            let _ = done.send(id).await;
                        });
                    }
                }
            }
        }
    }
    // Whatever is in flight is cancelled: dropping the senders tells each run.
    drop(inflight);
    drop(out);
    writer.abort();
}

async fn list(links: &Links, id: u64, what: ListWhat, server: Option<&str>) -> Value {
    match what {
        ListWhat::Servers => serde_json::json!({"id": id, "ok": true, "result": links.list()}),
        ListWhat::Tasks => {
            let served = match links.select(server) {
                Ok(s) => s,
                Err(m) => return proto::failed(Some(id), None, "unknown_server", &m),
            };
            match served.handle.list_tasks(CONNECT_WAIT).await {
                Ok(mut tasks) => {
                    tasks.sort_by(|a, b| a.name.cmp(&b.name));
                    serde_json::json!({"id": id, "ok": true, "result": tasks})
                }
                Err(e) => client_failure(Some(id), None, &e),
            }
        }
    }
}

/// The last line for a request that failed before its run ended.
fn client_failure(id: Option<u64>, task: Option<&str>, e: &ClientError) -> Value {
    let code = match e {
        ClientError::RepairRequired { .. } => "repair_required",
        ClientError::NotConnected { .. } => "not_connected",
        _ => "lost",
    };
    proto::failed(id, task, code, &e.to_string())
}

fn with_id(mut v: Value, id: u64) -> Arc<Value> {
    v["id"] = id.into();
    Arc::new(v)
}

/// Carry out run request `r`; returns its last line.
async fn run(
    links: &Links,
    r: RunRequest,
    out: &mpsc::Sender<Arc<Value>>,
    mut cancelled: oneshot::Receiver<()>,
    mut stdin_rx: Option<mpsc::Receiver<(Vec<u8>, bool)>>,
) -> Value {
    let id = r.id;
    let task = r.task.as_str();
    let served = match links.select(r.server.as_deref()) {
        Ok(s) => s,
        Err(m) => return proto::failed(Some(id), Some(task), "unknown_server", &m),
    };
    let began = tokio::time::Instant::now();
    let deadline = r.deadline_ms.map(|ms| began + Duration::from_millis(ms));
    // Wait for a place among this server's runs (held until the run ends).
    let _slot = tokio::select! {
        p = served.slots.clone().acquire_owned() => match p {
            Ok(p) => p,
            Err(_) => return proto::failed(Some(id), Some(task), "lost", "the agent is stopping"),
        },
        _ = &mut cancelled => {
            return proto::failed(Some(id), Some(task), "cancelled", &format!("{task} was cancelled before it started"));
        }
        _ = sleep_until(deadline) => {
            return proto::failed(Some(id), Some(task), "timeout", &format!("{task} did not start within its deadline of {} ms", r.deadline_ms.unwrap_or(0)));
        }
    };
    let wait = deadline.map_or(CONNECT_WAIT, |d| {
        d.saturating_duration_since(tokio::time::Instant::now())
    });
    // A task that takes no stdin goes as a `request` first: a value task (the built-ins)
    // answers with one message. One that streams answers `use_run`, is remembered, and is
    // started as a run; so is an unknown name, whose refusal the run then gives. Nothing runs
    // twice: neither answer means the task ran.
    if r.stdin.is_none() && !r.stdin_stream && !served.streams(task) {
        let asked = tokio::time::Instant::now();
        let answer = tokio::select! {
            a = served.handle.request(task, r.args.clone(), wait) => a,
            _ = &mut cancelled => {
                return proto::failed(Some(id), Some(task), "cancelled", &format!("{task} was cancelled"));
            }
            _ = sleep_until(deadline) => {
                return proto::failed(Some(id), Some(task), "timeout", &format!("{task} did not finish within its deadline of {} ms", r.deadline_ms.unwrap_or(0)));
            }
        };
        let status = match answer {
            Ok(v) => Ok((RunStatus::Done {}, v)),
            Err(ClientError::Task { code, .. }) if code == "use_run" => {
                served.remember_streaming(task);
                Err(())
            }
            Err(ClientError::Task { code, .. }) if code == "unknown_task" => Err(()),
            Err(ClientError::Task { code, message }) => {
                Ok((RunStatus::Failed { code, message }, Value::Null))
            }
            Err(e) => return client_failure(Some(id), Some(task), &e),
        };
        if let Ok((status, value)) = status {
            let _ = out.send(with_id(proto::started(task, false), id)).await;
            let describe = outcome::describe(task, &status);
            let ms = asked.elapsed().as_millis() as u64;
            let mut v = proto::finished(
                task,
                &status,
                &value,
                ms,
                outcome::exit_code(&status),
                &describe,
            );
            v["id"] = id.into();
            return v;
        }
    }
    let mut handle = tokio::select! {
        h = served.handle.run(task, r.args.clone(), wait) => match h {
            Ok(h) => h,
            Err(e) => return client_failure(Some(id), Some(task), &e),
        },
        _ = &mut cancelled => {
            return proto::failed(Some(id), Some(task), "cancelled", &format!("{task} was cancelled before it started"));
        }
    };
    let mut timed_out = false;
    let mut feeder: Option<tokio::task::JoinHandle<()>> = None;
    let sleep = sleep_until(deadline);
    tokio::pin!(sleep);
    let mut cancel_open = true;
    let last = loop {
        tokio::select! {
            event = handle.next() => match event {
                Some(RunEvent::Started { stdin }) => {
                    if !stdin {
                        // Streamed stdin for a task that reads none is refused at once.
                        stdin_rx = None;
                    }
                    if stdin {
                        let input = handle.input();
                        feeder = Some(match (r.stdin.clone(), stdin_rx.take()) {
                            (Some(bytes), _) => tokio::spawn(async move {
                                let _ = input.write(&bytes).await;
                                input.close();
                            }),
                            (None, Some(rx)) => tokio::spawn(feed(input, rx)),
                            (None, None) => {
                                input.close();
                                tokio::spawn(async {})
                            }
                        });
                    }
                    if out.send(with_id(proto::started(task, stdin), id)).await.is_err() {
                        handle.cancel();
                    }
                }
                Some(RunEvent::Output { stream, data }) => {
                    // Waiting for room here holds the credit back: the server slows down.
                    if out.send(with_id(proto::output(stream, &data), id)).await.is_err() {
                        handle.cancel();
                    }
                }
                Some(RunEvent::Exit { status, result, duration }) => {
                    let describe = outcome::describe(task, &status);
                    let mut v = proto::finished(task, &status, &result, duration.as_millis() as u64, outcome::exit_code(&status), &describe);
                    if timed_out {
                        v["error"] = serde_json::json!({"code": "timeout", "message": format!("{task} did not finish within its deadline of {} ms", r.deadline_ms.unwrap_or(0))});
                    }
                    v["id"] = id.into();
                    break v;
                }
                Some(RunEvent::Lost { reason }) => {
                    break proto::failed(Some(id), Some(task), "lost", &format!("the connection to the server was lost before {task} ended ({reason}); it was not run again"));
                }
                None => {
                    break proto::failed(Some(id), Some(task), "lost", &format!("{task} ended without a status"));
                }
            },
            c = &mut cancelled, if cancel_open => {
                cancel_open = false;
                // A dropped sender (the program left) cancels too.
                let _ = c;
                handle.cancel();
            }
            _ = &mut sleep, if !timed_out => {
                timed_out = true;
                handle.cancel();
            }
        }
    };
    if let Some(f) = feeder {
        f.abort();
    }
    last
}

/// Until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Feed streamed stdin lines to a run until their end.
async fn feed(input: RunInput, mut rx: mpsc::Receiver<(Vec<u8>, bool)>) {
    while let Some((data, end)) = rx.recv().await {
        if !data.is_empty() && input.write(&data).await.is_err() {
            return;
        }
        if end {
            break;
        }
    }
    input.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_skipped_past_the_limit() {
        let data: &[u8] = b"short\r\n0123456789abcdef\nok\nnot\xffutf8\nlast";
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, data), 10);
        assert_eq!(r.next().await.unwrap(), Line::Text("short".into()));
        assert!(matches!(r.next().await.unwrap(), Line::Bad(m) if m.contains("longer than 10")));
        assert_eq!(r.next().await.unwrap(), Line::Text("ok".into()));
        assert!(matches!(r.next().await.unwrap(), Line::Bad(m) if m.contains("UTF-8")));
        assert_eq!(r.next().await.unwrap(), Line::Text("last".into()));
        assert_eq!(r.next().await.unwrap(), Line::End);
    }
}
