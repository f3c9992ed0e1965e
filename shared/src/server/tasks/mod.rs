//! Tasks a paired client can run, and the registry an embedding program extends.
//!
//! Owns the built-ins (`ping`, `echo`, `time`, `info`), tasks registered in Rust (value tasks
//! that return one JSON value, and streaming tasks that write output and read stdin through a
//! [`RunIo`]), and lookup by name. Tasks the operator configures live in [`command`] (their
//! definition and arguments), [`access`] (who may run them) and `process` (their program).
//! Tasks see only a [`TaskContext`]; they cannot reach connections or state.

pub mod access;
pub mod command;
pub mod config;
pub(crate) mod process;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

pub use command::CommandTask;
pub use process::adopt_orphans;

use crate::identity::PeerId;
use crate::message::{ArgInfo, TaskInfo};
use crate::server::runs::RunIo;

/// What a task knows about its caller and the server.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The calling client's id.
    pub client_id: PeerId,
    /// The calling client's name.
    pub client_name: String,
    /// The server's name.
    pub server_name: String,
    /// The server's id.
    pub server_id: PeerId,
    /// Time since the server started.
    pub uptime: Duration,
    /// Authenticated sessions open right now.
    pub connected_clients: usize,
    /// Clients in the registry.
    pub paired_clients: usize,
}

/// A task failure, sent back as the response's `error` (or a run's `failed` status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// Machine-readable class, e.g. `bad_args`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl TaskError {
    /// A failure of class `code`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What a value task returns.
pub type TaskResult = Result<Value, TaskError>;

/// A task that answers with one value (`request` → `response`, or `run` → `run_exit` with
/// `result`).
pub trait Task: Send + Sync + 'static {
    /// Run with the caller's context and arguments.
    fn run(&self, ctx: TaskContext, args: Vec<String>) -> BoxFuture<'static, TaskResult>;
}

impl<F, Fut> Task for F
where
    F: Fn(TaskContext, Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    fn run(&self, ctx: TaskContext, args: Vec<String>) -> BoxFuture<'static, TaskResult> {
        Box::pin(self(ctx, args))
    }
}

/// A task that streams: it writes output and reads stdin through its [`RunIo`] as a program
/// would, and ends with an exit code (`run_exit` status `exited`) or a [`TaskError`]
/// (`failed`). Only `run` starts it. Stopping it (cancel, timeout, the session's end) drops
/// its future.
pub trait StreamingTask: Send + Sync + 'static {
    /// Run with the caller's context, arguments and the run's output and stdin.
    fn run(
        &self,
        ctx: TaskContext,
        args: Vec<String>,
        io: RunIo,
    ) -> BoxFuture<'static, Result<i32, TaskError>>;
}

impl<F, Fut> StreamingTask for F
where
    F: Fn(TaskContext, Vec<String>, RunIo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<i32, TaskError>> + Send + 'static,
{
    fn run(
        &self,
        ctx: TaskContext,
        args: Vec<String>,
        io: RunIo,
    ) -> BoxFuture<'static, Result<i32, TaskError>> {
        Box::pin(self(ctx, args, io))
    }
}

/// How a task registered in Rust is listed to clients (`task_list`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskAbout {
    /// What it does, for people.
    pub description: String,
    /// Its arguments, for people (the task checks its arguments itself).
    pub args: Vec<ArgInfo>,
    /// Whether it reads stdin (streaming tasks only).
    pub stdin: bool,
}

impl TaskAbout {
    /// A listing with a description only.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            ..Self::default()
        }
    }
}

/// A task registered in Rust.
#[derive(Clone)]
pub(crate) enum Registered {
    Value(Arc<dyn Task>),
    Streaming(Arc<dyn StreamingTask>),
}

/// A built-in's body: the arguments, and the caller's context on demand.
type Inline = fn(Vec<String>, &dyn Fn() -> TaskContext) -> TaskResult;

#[derive(Clone)]
struct Entry {
    task: Registered,
    about: TaskAbout,
    /// Set for the built-ins, which answer in place ([`Tasks::answer_now`]).
    inline: Option<Inline>,
}

/// Tasks registered in Rust, by name.
#[derive(Clone)]
pub struct Tasks {
    map: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl Tasks {
    /// No tasks at all.
    pub fn empty() -> Self {
        Self {
            map: BTreeMap::new(),
        }
    }

    /// `ping`, `echo`, `time` and `info`.
    pub fn with_builtins() -> Self {
        let mut t = Self::empty();
        t.builtin("ping", "Answers pong", |_args, _ctx| Ok(json!("pong")));
        t.builtin(
            "echo",
            "Sends its arguments back, joined with spaces",
            |mut args, _ctx| {
                // One argument is sent back as it is, without a copy.
                Ok(Value::String(if args.len() == 1 {
                    args.pop().unwrap_or_default()
                } else {
                    args.join(" ")
                }))
            },
        );
        t.builtin("time", "The server's clock", |_args, _ctx| {
            let now = std::time::SystemTime::now();
            Ok(json!({
                "unix_ms": crate::unix_now_ms(),
                "rfc3339": humantime::format_rfc3339_millis(now).to_string(),
            }))
        });
        t.builtin(
            "info",
            "The server's name, id, version and counts",
            |_args, ctx| {
                let ctx = ctx();
                Ok(json!({
                    "name": ctx.server_name,
                    "server_id": ctx.server_id.to_hex(),
                    "version": env!("CARGO_PKG_VERSION"),
                    "protocol": crate::PROTOCOL_VERSION,
                    "uptime_s": ctx.uptime.as_secs(),
                    "connected_clients": ctx.connected_clients,
                    "paired_clients": ctx.paired_clients,
                }))
            },
        );
        t
    }

    /// A built-in: a value task that answers at once. A session answers a `request` for it
    /// in place, with no future, no task and no context built unless the task asks for it.
    fn builtin(&mut self, name: &str, description: &str, f: Inline) {
        let task =
            move |ctx: TaskContext, args: Vec<String>| std::future::ready(f(args, &|| ctx.clone()));
        self.map.insert(
            name.to_string(),
            Entry {
                task: Registered::Value(Arc::new(task)),
                about: TaskAbout::new(description),
                inline: Some(f),
            },
        );
    }

    /// Answer a built-in `name` in place; its arguments come back when `name` is anything
    /// else (the caller then goes the usual way). `ctx` is called only by tasks that need it.
    pub(crate) fn answer_now(
        &self,
        name: &str,
        args: Vec<String>,
        ctx: &dyn Fn() -> TaskContext,
    ) -> Result<TaskResult, Vec<String>> {
        match self.map.get(name).and_then(|e| e.inline) {
            Some(f) => Ok(f(args, ctx)),
            None => Err(args),
        }
    }

    /// Add or replace the value task called `name`.
    pub fn register(&mut self, name: impl Into<String>, task: impl Task) -> &mut Self {
        self.map.insert(
            name.into(),
            Entry {
                task: Registered::Value(Arc::new(task)),
                about: TaskAbout::default(),
                inline: None,
            },
        );
        self
    }

    /// Add or replace the streaming task called `name`, listed to clients as `about` says.
    pub fn register_streaming(
        &mut self,
        name: impl Into<String>,
        about: TaskAbout,
        task: impl StreamingTask,
    ) -> &mut Self {
        self.map.insert(
            name.into(),
            Entry {
                task: Registered::Streaming(Arc::new(task)),
                about,
                inline: None,
            },
        );
        self
    }

    /// Set the description clients see for the task `name` (no effect when there is none).
    pub fn describe(&mut self, name: &str, description: impl Into<String>) -> &mut Self {
        if let Some(e) = self.map.get_mut(name) {
            e.about.description = description.into();
        }
        self
    }

    /// Names of all tasks, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }

    /// Whether a task called `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<(&Registered, &TaskAbout)> {
        self.map.get(name).map(|e| (&e.task, &e.about))
    }

    /// How clients see every registered task.
    pub fn infos(&self) -> Vec<TaskInfo> {
        self.map
            .iter()
            .map(|(name, e)| TaskInfo {
                name: name.clone(),
                description: e.about.description.clone(),
                args: e.about.args.clone(),
                stdin: e.about.stdin,
                builtin: matches!(e.task, Registered::Value(_)),
            })
            .collect()
    }

    /// Start the value task `name`; an unknown name yields an `unknown_task` error, a
    /// streaming task a `use_run` error.
    pub fn call(
        &self,
        name: &str,
        ctx: TaskContext,
        args: Vec<String>,
    ) -> BoxFuture<'static, TaskResult> {
        let err = match self.map.get(name) {
            Some(Entry {
                task: Registered::Value(task),
                ..
            }) => return task.run(ctx, args),
            Some(_) => use_run(name),
            None => TaskError::new(
                "unknown_task",
                format!(
                    "unknown task {name:?}; available: {}",
                    self.names().join(", ")
                ),
            ),
        };
        Box::pin(async move { Err(err) })
    }
}

/// The answer to a `request` for a task that streams.
pub(crate) fn use_run(name: &str) -> TaskError {
    TaskError::new(
        "use_run",
        format!("task {name:?} streams its output: start it with run, not request"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TaskContext {
        TaskContext {
            client_id: PeerId([1; 32]),
            client_name: "c".into(),
            server_name: "s".into(),
            server_id: PeerId([2; 32]),
            uptime: Duration::from_secs(3),
            connected_clients: 4,
            paired_clients: 5,
        }
    }

    #[tokio::test]
    async fn builtins() {
        let t = Tasks::with_builtins();
        assert_eq!(t.call("ping", ctx(), vec![]).await.unwrap(), json!("pong"));
        assert_eq!(
            t.call("echo", ctx(), vec!["a".into(), "b".into()])
                .await
                .unwrap(),
            json!("a b")
        );
        let info = t.call("info", ctx(), vec![]).await.unwrap();
        assert_eq!(info["connected_clients"], 4);
        assert_eq!(info["uptime_s"], 3);
        assert!(
            t.call("time", ctx(), vec![]).await.unwrap()["unix_ms"]
                .as_u64()
                .unwrap()
                > 0
        );
        // In place, the same answers; anything else gives its arguments back.
        assert_eq!(
            t.answer_now("echo", vec!["x y".into()], &ctx)
                .unwrap()
                .unwrap(),
            json!("x y")
        );
        assert_eq!(
            t.answer_now("info", vec![], &ctx).unwrap().unwrap()["paired_clients"],
            5
        );
        assert_eq!(
            t.answer_now("nope", vec!["a".into()], &ctx).unwrap_err(),
            vec!["a"]
        );
        let err = t.call("nope", ctx(), vec![]).await.unwrap_err();
        assert_eq!(err.code, "unknown_task");
        assert!(err.message.contains("ping"));
    }

    #[tokio::test]
    async fn custom_task() {
        let mut t = Tasks::empty();
        t.register("add", |_ctx, args: Vec<String>| async move {
            let mut sum = 0i64;
            for a in args {
                sum += a
                    .parse::<i64>()
                    .map_err(|_| TaskError::new("bad_args", format!("not a number: {a}")))?;
            }
            Ok(json!(sum))
        });
        assert_eq!(
            t.call("add", ctx(), vec!["2".into(), "3".into()])
                .await
                .unwrap(),
            json!(5)
        );
        assert_eq!(
            t.call("add", ctx(), vec!["x".into()])
                .await
                .unwrap_err()
                .code,
            "bad_args"
        );
        assert_eq!(t.names(), vec!["add"]);
        // A registered task replaces a built-in of the same name, in place too.
        let mut t = Tasks::with_builtins();
        t.register("echo", |_ctx, _args| async { Ok(json!("mine")) });
        assert!(t.answer_now("echo", vec![], &ctx).is_err());
        assert_eq!(t.call("echo", ctx(), vec![]).await.unwrap(), json!("mine"));
    }
}
