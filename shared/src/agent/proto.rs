//! The agent's local protocol, as data: the lines a local program sends (parsed, with a clear
//! error for anything else) and the lines it gets back. See `docs/agent.md`.
//!
//! Owns the shapes and nothing else: no I/O, no state. The last line of a run is built here
//! for both the agent and `client-tui send --json`, so the two never drift apart.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::message::{B64, OutputStream, RunStatus, StopReason};

/// The largest request id (JavaScript's safe integers).
pub const MAX_ID: u64 = (1 << 53) - 1;

/// What one line from a local program asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Run a task.
    Run(RunRequest),
    /// Stop request `id`.
    Cancel {
        /// The request.
        id: u64,
    },
    /// More stdin for request `id`, or its end.
    Input {
        /// The request.
        id: u64,
        /// The bytes (empty with `end`).
        data: Vec<u8>,
        /// No more stdin after these bytes.
        end: bool,
    },
    /// List servers or tasks.
    List {
        /// Chosen by the program.
        id: u64,
        /// `servers` or `tasks`.
        what: ListWhat,
        /// For `tasks`: which server.
        server: Option<String>,
    },
    /// Receive notices and link events.
    Subscribe {
        /// Which kinds.
        kinds: Vec<Kind>,
    },
}

/// What a `list` request lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListWhat {
    /// The paired servers and their links.
    Servers,
    /// The tasks of one server.
    Tasks,
}

/// A kind of event a program can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Notices the servers push.
    Notice,
    /// Changes of a link's state.
    Link,
}

/// A request to run a task.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Chosen by the program.
    pub id: u64,
    /// The task.
    pub task: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Which server (id, short id or name).
    pub server: Option<String>,
    /// Stdin given whole in the request (then its end).
    pub stdin: Option<Vec<u8>>,
    /// Whether more stdin follows in `input` lines (`"stdin": "stream"`).
    pub stdin_stream: bool,
    /// How long the request may take, milliseconds.
    pub deadline_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    stdin_b64: Option<String>,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    cancel: Option<Value>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    end: Option<bool>,
    #[serde(default)]
    list: Option<ListWhat>,
    #[serde(default)]
    subscribe: Option<Vec<Kind>>,
}

/// A line that is not a request: why, and the `id` when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// The request's id, when the line had a usable one.
    pub id: Option<u64>,
    /// What is wrong.
    pub message: String,
}

fn id_of(v: &Value, field: &str) -> Result<u64, String> {
    match v.as_u64() {
        Some(n) if n <= MAX_ID => Ok(n),
        _ => Err(format!(
            "`{field}` must be an integer from 0 to {MAX_ID}, not {v}"
        )),
    }
}

fn b64(text: &str, field: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let t = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
        .map_err(|e| format!("`{field}` is not base64: {e}"))
}

/// Read one line.
pub fn parse(line: &str) -> Result<Request, BadLine> {
    let raw: RawLine = serde_json::from_str(line).map_err(|e| BadLine {
        id: serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64))
            .filter(|n| *n <= MAX_ID),
        message: format!("not a request: {e}"),
    })?;
    let id = raw
        .id
        .as_ref()
        .map(|v| id_of(v, "id"))
        .transpose()
        .map_err(|m| BadLine {
            id: None,
            message: m,
        })?;
    let bad = |message: String| BadLine { id, message };
    if let Some(kinds) = raw.subscribe {
        return Ok(Request::Subscribe { kinds });
    }
    if let Some(c) = &raw.cancel {
        return Ok(Request::Cancel {
            id: id_of(c, "cancel").map_err(bad)?,
        });
    }
    if let Some(i) = &raw.input {
        let target = id_of(i, "input").map_err(bad)?;
        let data = match &raw.data {
            Some(d) => b64(d, "data").map_err(|m| BadLine {
                id: Some(target),
                message: m,
            })?,
            None => Vec::new(),
        };
        return Ok(Request::Input {
            id: target,
            data,
            end: raw.end.unwrap_or(false),
        });
    }
    let Some(id) = id else {
        return Err(bad(
            "a request needs an `id` (or is `cancel`, `input` or `subscribe`)".into(),
        ));
    };
    if let Some(what) = raw.list {
        return Ok(Request::List {
            id,
            what,
            server: raw.server,
        });
    }
    let Some(task) = raw.task else {
        return Err(bad(
            "a request needs `task`, `list`, `cancel`, `input` or `subscribe`".into(),
        ));
    };
    let (stdin, stdin_stream) = match (raw.stdin, raw.stdin_b64) {
        (Some(_), Some(_)) => return Err(bad("give `stdin` or `stdin_b64`, not both".into())),
        (Some(s), None) if s == "stream" => (None, true),
        (Some(s), None) => (Some(s.into_bytes()), false),
        (None, Some(b)) => (Some(b64(&b, "stdin_b64").map_err(bad)?), false),
        (None, None) => (None, false),
    };
    Ok(Request::Run(RunRequest {
        id,
        task,
        args: raw.args.unwrap_or_default(),
        server: raw.server,
        stdin,
        stdin_stream,
        deadline_ms: raw.deadline_ms,
    }))
}

/// The line for a line that was not a request.
pub fn bad_line(bad: &BadLine) -> Value {
    let mut v = json!({"ok": false, "error": {"code": "bad_request", "message": bad.message}});
    if let Some(id) = bad.id {
        v["id"] = id.into();
    }
    v
}

/// The line that ends request `id` with an error.
pub fn failed(id: Option<u64>, task: Option<&str>, code: &str, message: &str) -> Value {
    let mut v = json!({"ok": false, "error": {"code": code, "message": message}});
    if let Some(id) = id {
        v["id"] = id.into();
    }
    if let Some(t) = task {
        v["task"] = t.into();
    }
    v
}

/// The `started` line of a run.
pub fn started(task: &str, stdin: bool) -> Value {
    json!({"event": "started", "task": task, "stdin": stdin})
}

/// An `output` line: the bytes as base64, and as text when they are UTF-8.
pub fn output(stream: OutputStream, data: &[u8]) -> Value {
    json!({
        "event": "output",
        "stream": stream,
        "data": B64(data.to_vec()),
        "text": std::str::from_utf8(data).ok(),
    })
}

/// Why a run that did not succeed failed, as an error code: `refused`, `failed`, `stopped`
/// (`cancelled` and `timeout` for those reasons) or `exited`.
fn status_code(status: &RunStatus) -> &'static str {
    match status {
        RunStatus::Refused { .. } => "refused",
        RunStatus::Failed { .. } => "failed",
        RunStatus::Stopped {
            reason: StopReason::Cancelled,
        } => "cancelled",
        RunStatus::Stopped {
            reason: StopReason::Timeout,
        } => "timeout",
        RunStatus::Stopped { .. } => "stopped",
        RunStatus::Signaled { .. } => "signaled",
        RunStatus::Exited { .. } => "exited",
        RunStatus::Done {} | RunStatus::Other => "failed",
    }
}

/// The last line of a run that ended with `status`: `ok`, `status`, `exit_code` (as `send`
/// exits), `duration_ms`, the value of a value task as `result`, and on failure `error`
/// (`code`, and `message` as `describe` puts it).
pub fn finished(
    task: &str,
    status: &RunStatus,
    result: &Value,
    duration_ms: u64,
    exit_code: u8,
    describe: &str,
) -> Value {
    let mut v = json!({
        "task": task,
        "ok": status.success(),
        "status": status,
        "exit_code": exit_code,
        "duration_ms": duration_ms,
    });
    if matches!(status, RunStatus::Done {}) {
        v["result"] = result.clone();
    }
    if !status.success() {
        v["error"] = json!({"code": status_code(status), "message": describe});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_line_parses() {
        assert_eq!(
            parse(r#"{"id": 1, "task": "echo", "args": ["hi"]}"#).unwrap(),
            Request::Run(RunRequest {
                id: 1,
                task: "echo".into(),
                args: vec!["hi".into()],
                server: None,
                stdin: None,
                stdin_stream: false,
                deadline_ms: None,
            })
        );
        let Request::Run(r) =
            parse(r#"{"id":2,"task":"cat","stdin":"hello","server":"den","deadline_ms":500}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(r.stdin.as_deref(), Some(&b"hello"[..]));
        assert_eq!(
            (r.server.as_deref(), r.deadline_ms),
            (Some("den"), Some(500))
        );
        let Request::Run(r) = parse(r#"{"id":3,"task":"cat","stdin_b64":"AAEC"}"#).unwrap() else {
            panic!()
        };
        assert_eq!(r.stdin.as_deref(), Some(&[0u8, 1, 2][..]));
        let Request::Run(r) = parse(r#"{"id":3,"task":"cat","stdin":"stream"}"#).unwrap() else {
            panic!()
        };
        assert!(r.stdin_stream && r.stdin.is_none());
        assert_eq!(
            parse(r#"{"cancel": 7}"#).unwrap(),
            Request::Cancel { id: 7 }
        );
        assert_eq!(
            parse(r#"{"input": 7, "data": "aGk", "end": true}"#).unwrap(),
            Request::Input {
                id: 7,
                data: b"hi".to_vec(),
                end: true
            }
        );
        assert_eq!(
            parse(r#"{"id": 4, "list": "servers"}"#).unwrap(),
            Request::List {
                id: 4,
                what: ListWhat::Servers,
                server: None
            }
        );
        assert_eq!(
            parse(r#"{"subscribe": ["notice", "link"]}"#).unwrap(),
            Request::Subscribe {
                kinds: vec![Kind::Notice, Kind::Link]
            }
        );
    }

    #[test]
    fn bad_lines_say_why_and_keep_the_id_they_can() {
        let e = parse("not json").unwrap_err();
        assert_eq!(e.id, None);
        assert!(e.message.contains("not a request"), "{e:?}");
        let e = parse(r#"{"id": 5, "tsak": "echo"}"#).unwrap_err();
        assert_eq!(e.id, Some(5));
        assert!(e.message.contains("tsak"), "{e:?}");
        let e = parse(r#"{"id": -1, "task": "echo"}"#).unwrap_err();
        assert!(e.message.contains("integer"), "{e:?}");
        let e = parse(r#"{"id": 9007199254740993, "task": "echo"}"#).unwrap_err();
        assert!(e.message.contains("integer"), "{e:?}");
        let e = parse(r#"{"task": "echo"}"#).unwrap_err();
        assert!(e.message.contains("`id`"), "{e:?}");
        let e = parse(r#"{"id": 1}"#).unwrap_err();
        assert!(e.message.contains("`task`"), "{e:?}");
        let e = parse(r#"{"id": 1, "task": "x", "stdin_b64": "!!"}"#).unwrap_err();
        assert!(e.message.contains("base64"), "{e:?}");
        assert_eq!(bad_line(&e)["error"]["code"], "bad_request");
        assert_eq!(bad_line(&e)["id"], 1);
    }

    #[test]
    fn the_last_line_has_ok_status_and_error() {
        let ok = finished(
            "greet",
            &RunStatus::Exited { code: 0 },
            &Value::Null,
            2,
            0,
            "",
        );
        assert_eq!(ok["ok"], true);
        assert!(ok.get("error").is_none());
        let value = finished("echo", &RunStatus::Done {}, &json!("hi"), 0, 0, "");
        assert_eq!(value["result"], "hi");
        let cancelled = finished(
            "count",
            &RunStatus::Stopped {
                reason: StopReason::Cancelled,
            },
            &Value::Null,
            1204,
            12,
            "count was cancelled",
        );
        assert_eq!(cancelled["ok"], false);
        assert_eq!(cancelled["error"]["code"], "cancelled");
        assert_eq!(cancelled["exit_code"], 12);
    }
}
