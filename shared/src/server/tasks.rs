//! Tasks a paired client can run, and the registry an embedding program extends.
//!
//! Owns the built-ins (`ping`, `echo`, `time`, `info`) and dispatch by name. Tasks see only
//! a [`TaskContext`]; they cannot reach connections or state.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::identity::PeerId;

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

/// A task failure, sent back as the response's `error`.
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

/// What a task returns.
pub type TaskResult = Result<Value, TaskError>;

/// A task the server can run.
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

/// Tasks by name.
#[derive(Clone)]
pub struct Tasks {
    map: BTreeMap<String, Arc<dyn Task>>,
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
        t.register("ping", |_ctx, _args| async { Ok(json!("pong")) });
        t.register("echo", |_ctx, args: Vec<String>| async move {
            Ok(Value::String(args.join(" ")))
        });
        t.register("time", |_ctx, _args| async {
            let now = std::time::SystemTime::now();
            Ok(json!({
                "unix_ms": crate::unix_now_ms(),
                "rfc3339": humantime::format_rfc3339_millis(now).to_string(),
            }))
        });
        t.register("info", |ctx: TaskContext, _args| async move {
            Ok(json!({
                "name": ctx.server_name,
                "server_id": ctx.server_id.to_hex(),
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": crate::PROTOCOL_VERSION,
                "uptime_s": ctx.uptime.as_secs(),
                "connected_clients": ctx.connected_clients,
                "paired_clients": ctx.paired_clients,
            }))
        });
        t
    }

    /// Add or replace the task called `name`.
    pub fn register(&mut self, name: impl Into<String>, task: impl Task) -> &mut Self {
        self.map.insert(name.into(), Arc::new(task));
        self
    }

    /// Names of all tasks, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }

    /// Start the task `name`; an unknown name yields an `unknown_task` error.
    pub fn call(
        &self,
        name: &str,
        ctx: TaskContext,
        args: Vec<String>,
    ) -> BoxFuture<'static, TaskResult> {
        match self.map.get(name) {
            Some(task) => task.run(ctx, args),
            None => {
                let err = TaskError::new(
                    "unknown_task",
                    format!(
                        "unknown task {name:?}; available: {}",
                        self.names().join(", ")
                    ),
                );
                Box::pin(async move { Err(err) })
            }
        }
    }
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
    }
}
