//! The messages both sides exchange, as JSON objects with a `type` field.
//!
//! Owns the wire vocabulary only: no I/O, no state machine. Unknown `type`s decode to
//! [`Message::Unknown`] so the receiver can answer with an error instead of failing.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes carried as unpadded base64url text inside JSON.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct B64(pub Vec<u8>);

impl std::fmt::Debug for B64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B64({} bytes)", self.0.len())
    }
}

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map(B64)
            .map_err(serde::de::Error::custom)
    }
}

/// Bytes of a stream chunk: base64url text (unpadded) in JSON, the bytes themselves in the
/// compact encoding ([`crate::compact`]), where they are a slice of the received frame.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(pub bytes::Bytes);

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        B64::deserialize(d).map(|b| Payload(b.0.into()))
    }
}

/// Why a pairing attempt did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairFailure {
    /// The key confirmation did not match: the code was wrong (or a machine sits in the middle).
    WrongCode,
    /// Too many wrong answers: the code is void, ask for a new one.
    CodeExhausted,
    /// The code's lifetime ran out: ask for a new one.
    CodeExpired,
    /// This address failed recently; wait `retry_after_ms`.
    RateLimited,
    /// A pairing request from this address is already waiting.
    AlreadyPending,
    /// The server holds too many pending requests right now.
    TooManyPending,
    /// Pairing is closed on this server: its failure budget is spent, its pairing window is
    /// not open, or its operator closed it. `retry_after_ms`, when present, says when it
    /// reopens by itself.
    PairingClosed,
    /// The pending request made room for another one (the pending table was full and this
    /// request's address had been issued more codes recently): ask again.
    Displaced,
    /// A reason this version does not know.
    #[serde(other)]
    Other,
}

impl PairFailure {
    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            PairFailure::WrongCode => "wrong code",
            PairFailure::CodeExhausted => {
                "too many wrong codes: the code is void, ask for a new one"
            }
            PairFailure::CodeExpired => "code expired: ask again",
            PairFailure::RateLimited => "too many failures from this address: wait and retry",
            PairFailure::AlreadyPending => "a pairing request from this address is already waiting",
            PairFailure::TooManyPending => "the server has too many pending pairing requests",
            PairFailure::PairingClosed => {
                "pairing is closed on this server: ask its operator to open it"
            }
            PairFailure::Displaced => {
                "the server needed this request's place for another client: ask again"
            }
            PairFailure::Other => "pairing refused",
        }
    }
}

/// Longest display name kept from a peer (client or server names); longer ones are cut.
pub const MAX_NAME: usize = 64;

/// A display name a peer sent, made safe to show and store: control characters (terminal
/// escapes among them) removed, at most [`MAX_NAME`] characters, trimmed, never empty.
pub fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        "unnamed".into()
    } else {
        cleaned.to_string()
    }
}

/// Text a peer sent for people (a notice), made safe to print: control characters other
/// than newline and tab removed, so it cannot drive the terminal it is shown on.
pub fn clean_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Error classes carried by [`Message::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON or not a valid message.
    BadMessage,
    /// The declared frame length exceeded the limit.
    FrameTooLarge,
    /// A valid message that makes no sense in the current state.
    UnexpectedMessage,
    /// The token is not accepted; the client must pair again. See `reason`.
    RepairRequired,
    /// The session was revoked by the server's operator.
    Revoked,
    /// The peer took too long.
    Timeout,
    /// The server failed internally.
    Internal,
    /// A code this version does not know.
    #[serde(other)]
    Other,
}

/// Why a token was refused (`reason` of a `repair_required` error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairReason {
    /// The server's operator revoked this client.
    Revoked,
    /// The token's lifetime ran out.
    Expired,
    /// The server has no record of this client (state reset, or another server).
    Unknown,
    /// The token was not issued for the key presented (copied token).
    KeyMismatch,
    /// The token is malformed, altered or signed by someone else.
    Invalid,
    /// A reason this version does not know.
    #[serde(other)]
    Other,
}

impl RepairReason {
    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            RepairReason::Revoked => "this client was revoked by the server",
            RepairReason::Expired => "the saved token has expired",
            RepairReason::Unknown => "the server does not know this client",
            RepairReason::KeyMismatch => "the token belongs to another client key",
            RepairReason::Invalid => "the token is not valid for this server",
            RepairReason::Other => "the server refused the token",
        }
    }
}

/// Error detail of a failed task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskErrorBody {
    /// Machine-readable class, e.g. `unknown_task`, `bad_args`, `failed`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// Which output stream a `run_output` chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A limit or an outside event that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The task's `timeout` passed.
    Timeout,
    /// The run wrote more than its output cap.
    OutputLimit,
    /// The client sent more than the run's stdin cap.
    StdinLimit,
    /// The client cancelled it (`run_cancel`).
    Cancelled,
    /// The client's session ended.
    Disconnected,
    /// The server is shutting down.
    Shutdown,
    /// The server's operator stopped it.
    Operator,
    /// A reason this version does not know.
    #[serde(other)]
    Other,
}

/// Why a run was refused before anything ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// No such task.
    UnknownTask,
    /// An argument is missing, extra, or does not match its pattern.
    BadArgs,
    /// This client is not in the task's `clients`.
    Forbidden,
    /// The task's cap on concurrent runs (`concurrency`) is reached.
    Busy,
    /// The server's cap on concurrent runs (`max_runs`) is reached.
    ServerBusy,
    /// The program could not be started.
    SpawnFailed,
    /// The run id is already in use on this session.
    DuplicateId,
    /// A code this version does not know.
    #[serde(other)]
    Other,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunStatus {
    /// The program exited with `code` (0 is success).
    Exited {
        /// Its exit code.
        code: i32,
    },
    /// The program was killed by `signal` (not by us).
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// A limit or an outside event stopped it (we terminated it).
    Stopped {
        /// Which.
        reason: StopReason,
    },
    /// Refused before anything ran.
    Refused {
        /// Why, for programs.
        code: RefusalCode,
        /// Why, for people (for `bad_args`: which argument and its pattern).
        message: String,
    },
    /// A value task finished; its result is in `run_exit.result`.
    Done {},
    /// A value task failed.
    Failed {
        /// Machine-readable class.
        code: String,
        /// A sentence for people.
        message: String,
    },
    /// A status this version does not know.
    #[serde(other)]
    Other,
}

impl RunStatus {
    /// Whether the run succeeded: exit code 0, or a value task that finished.
    pub fn success(&self) -> bool {
        matches!(self, RunStatus::Exited { code: 0 } | RunStatus::Done {})
    }
}

/// A declared argument of a task, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgInfo {
    /// Its name (the placeholder `{name}` in the command).
    pub name: String,
    /// The pattern a value must match (a regular expression, anchored by the operator).
    pub pattern: String,
}

/// A task as clients see it (`task_list`). The command itself is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Its name.
    pub name: String,
    /// What it does, for people.
    #[serde(default)]
    pub description: String,
    /// Its arguments, in order.
    #[serde(default)]
    pub args: Vec<ArgInfo>,
    /// Whether it reads stdin.
    #[serde(default)]
    pub stdin: bool,
    /// Whether it is built into the server (returns a value) rather than configured.
    #[serde(default)]
    pub builtin: bool,
}

/// Every message of the protocol. See `docs/protocol.md` for the sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    // ---- client to server, before authentication ----
    /// Ask to pair; the server shows a code to its operator.
    PairRequest {
        /// Display name of the client.
        client_name: String,
    },
    /// One answer to the code: the client's SPAKE2 message.
    PairAttempt {
        /// SPAKE2 message A.
        pake: B64,
    },
    /// The client's key-confirmation MAC.
    PairConfirm {
        /// HMAC over the transcript.
        mac: B64,
    },
    /// Ask who the server is (discovery); answered with `server_info`, then closed.
    Hello {},
    /// Open a session with a token from an earlier pairing.
    Auth {
        /// The JWT.
        token: String,
    },

    // ---- server to client ----
    /// The answer to `hello`.
    ServerInfo {
        /// Server display name.
        server_name: String,
        /// Protocol version.
        protocol: u32,
    },
    /// The server made a code and shows it to its operator; the client must ask its user.
    PairChallenge {
        /// Server display name.
        server_name: String,
        /// Number of digits in the code.
        code_digits: u8,
        /// Seconds until the code expires.
        expires_in_s: u64,
        /// Wrong answers allowed before the code is void.
        attempts_left: u32,
    },
    /// The server's SPAKE2 message.
    PairPake {
        /// SPAKE2 message B.
        pake: B64,
    },
    /// A pairing attempt or request failed.
    PairFailed {
        /// Why.
        reason: PairFailure,
        /// Wrong answers still allowed for the current code.
        attempts_left: u32,
        /// Wait this long before the next attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Pairing succeeded; the connection is now an authenticated session.
    Paired {
        /// The server's key-confirmation MAC.
        mac: B64,
        /// The session JWT.
        token: String,
        /// Token expiry, Unix seconds.
        token_expires_at: u64,
        /// Server display name.
        server_name: String,
    },
    /// The token was accepted; the connection is an authenticated session.
    AuthOk {
        /// Server display name.
        server_name: String,
        /// A renewed token, sent when less than a third of the configured token lifetime is left.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Expiry of the token now in force, Unix seconds.
        token_expires_at: u64,
    },

    // ---- authenticated session ----
    /// Run a task. Ids let requests be pipelined.
    Request {
        /// Chosen by the client, echoed in the response.
        id: u64,
        /// Task name, e.g. `ping`.
        task: String,
        /// Task arguments.
        #[serde(default)]
        args: Vec<String>,
    },
    /// The result of a request.
    Response {
        /// The request's id.
        id: u64,
        /// Whether the task succeeded.
        ok: bool,
        /// Result when `ok`.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        result: serde_json::Value,
        /// Error when not `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<TaskErrorBody>,
    },
    /// A message pushed by the server.
    Notice {
        /// Text from the server or its operator.
        text: String,
        /// When it was sent, Unix milliseconds.
        at_ms: u64,
    },
    /// Keep-alive: the server sends it to a quiet session; the client answers `pong`.
    Ping {},
    /// The answer to `ping`.
    Pong {},
    /// Client asks the server to forget it; the server answers `unpaired` and closes.
    Unpair {},
    /// The server removed this client from its registry.
    Unpaired {},

    // ---- streaming runs (a session may hold many at once, interleaved) ----
    /// Start task `task` as run `id`: its output streams back as `run_output`, its end as
    /// `run_exit`. `window` is the output credit granted, in bytes (see `run_ack`).
    Run {
        /// Chosen by the client, unique among its runs in flight on this session.
        id: u64,
        /// Task name.
        task: String,
        /// Positional arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Output bytes the server may send before the client acknowledges any.
        window: u64,
    },
    /// The run was accepted and its program started.
    RunStarted {
        /// The run.
        id: u64,
        /// Whether it reads stdin (`run_input`); when so, `stdin_window` bytes may be sent
        /// before the server acknowledges any.
        stdin: bool,
        /// Stdin credit, bytes.
        #[serde(default)]
        stdin_window: u64,
    },
    /// A chunk of the program's output. Never more than the output credit left.
    RunOutput {
        /// The run.
        id: u64,
        /// Which stream.
        stream: OutputStream,
        /// The bytes, exactly as written (binary-safe).
        data: Payload,
    },
    /// The client consumed `bytes` more output: the server may send that many more.
    RunAck {
        /// The run.
        id: u64,
        /// Bytes consumed since the last acknowledgement.
        bytes: u64,
    },
    /// A chunk for the program's stdin. Never more than the stdin credit left.
    RunInput {
        /// The run.
        id: u64,
        /// The bytes.
        data: Payload,
    },
    /// The program consumed `bytes` more stdin: the client may send that many more.
    RunInputAck {
        /// The run.
        id: u64,
        /// Bytes consumed since the last acknowledgement.
        bytes: u64,
    },
    /// No more stdin: the program's stdin is closed.
    RunInputEnd {
        /// The run.
        id: u64,
    },
    /// Stop the run: its program is terminated (SIGTERM to its process group, SIGKILL after
    /// a grace period); a `run_exit` with status `stopped`/`cancelled` follows.
    RunCancel {
        /// The run.
        id: u64,
    },
    /// The run ended; nothing more comes for `id`.
    RunExit {
        /// The run.
        id: u64,
        /// How it ended.
        status: RunStatus,
        /// From start to end, milliseconds.
        duration_ms: u64,
        /// The result of a task that returns a value instead of output (built-ins and
        /// value tasks registered in Rust).
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        result: serde_json::Value,
    },
    /// Ask for the tasks this client may run.
    ListTasks {},
    /// The tasks this client may run.
    TaskList {
        /// Each task.
        tasks: Vec<TaskInfo>,
    },

    // ---- either direction ----
    /// Something went wrong; usually followed by a close.
    Error {
        /// Class of error.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
        /// For `repair_required`: why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<RepairReason>,
    },

    /// A `type` this version does not know.
    #[serde(other)]
    Unknown,
}

impl Message {
    /// The `type` tag, for logs and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::PairRequest { .. } => "pair_request",
            Message::PairAttempt { .. } => "pair_attempt",
            Message::PairConfirm { .. } => "pair_confirm",
            Message::Auth { .. } => "auth",
            Message::Hello {} => "hello",
            Message::ServerInfo { .. } => "server_info",
            Message::PairChallenge { .. } => "pair_challenge",
            Message::PairPake { .. } => "pair_pake",
            Message::PairFailed { .. } => "pair_failed",
            Message::Paired { .. } => "paired",
            Message::AuthOk { .. } => "auth_ok",
            Message::Request { .. } => "request",
            Message::Response { .. } => "response",
            Message::Notice { .. } => "notice",
            Message::Ping {} => "ping",
            Message::Pong {} => "pong",
            Message::Unpair {} => "unpair",
            Message::Unpaired {} => "unpaired",
            Message::Run { .. } => "run",
            Message::RunStarted { .. } => "run_started",
            Message::RunOutput { .. } => "run_output",
            Message::RunAck { .. } => "run_ack",
            Message::RunInput { .. } => "run_input",
            Message::RunInputAck { .. } => "run_input_ack",
            Message::RunInputEnd { .. } => "run_input_end",
            Message::RunCancel { .. } => "run_cancel",
            Message::RunExit { .. } => "run_exit",
            Message::ListTasks {} => "list_tasks",
            Message::TaskList { .. } => "task_list",
            Message::Error { .. } => "error",
            Message::Unknown => "unknown",
        }
    }

    /// Shorthand for an error message without a repair reason.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Message::Error {
            code,
            message: message.into(),
            reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_form() {
        let m = Message::Request {
            id: 7,
            task: "echo".into(),
            args: vec!["hi".into()],
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"type":"request","id":7,"task":"echo","args":["hi"]}"#
        );
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
    }

    #[test]
    fn unknown_type_is_a_value() {
        let m: Message = serde_json::from_str(r#"{"type":"launch_missiles","n":3}"#).unwrap();
        assert_eq!(m, Message::Unknown);
    }

    #[test]
    fn missing_type_is_an_error() {
        assert!(serde_json::from_str::<Message>(r#"{"id":1}"#).is_err());
    }

    #[test]
    fn b64_round_trip_and_rejects_garbage() {
        let m = Message::PairAttempt {
            pake: B64(vec![0, 1, 2, 250]),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
        assert!(serde_json::from_str::<Message>(r#"{"type":"pair_attempt","pake":"%%"}"#).is_err());
    }

    #[test]
    fn names_and_texts_from_peers_are_made_safe() {
        assert_eq!(clean_name("  kiosk-1 \u{1b}[31m "), "kiosk-1 [31m");
        assert_eq!(clean_name("\u{7}\u{0}"), "unnamed");
        assert_eq!(clean_name(&"x".repeat(500)).len(), MAX_NAME);
        assert_eq!(clean_text("a\u{1b}]0;t\u{7}\nb\tc\r"), "a]0;t\nb\tc");
    }

    #[test]
    fn run_messages_wire_form() {
        let m = Message::RunOutput {
            id: 3,
            stream: OutputStream::Stderr,
            data: Payload(bytes::Bytes::from_static(b"oops\n")),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"type":"run_output","id":3,"stream":"stderr","data":"b29wcwo"}"#
        );
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
        let exit = Message::RunExit {
            id: 3,
            status: RunStatus::Stopped {
                reason: StopReason::Timeout,
            },
            duration_ms: 1000,
            result: serde_json::Value::Null,
        };
        let text = serde_json::to_string(&exit).unwrap();
        assert_eq!(
            text,
            r#"{"type":"run_exit","id":3,"status":{"kind":"stopped","reason":"timeout"},"duration_ms":1000}"#
        );
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), exit);
        // A newer status or reason decodes as `other`, not as an error.
        let m: Message = serde_json::from_str(
            r#"{"type":"run_exit","id":1,"status":{"kind":"teleported"},"duration_ms":0}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            Message::RunExit {
                status: RunStatus::Other,
                ..
            }
        ));
        assert!(RunStatus::Exited { code: 0 }.success());
        assert!(!RunStatus::Exited { code: 1 }.success());
    }

    #[test]
    fn unknown_enum_values_decode_as_other() {
        let m: Message = serde_json::from_str(
            r#"{"type":"pair_failed","reason":"new_reason","attempts_left":1}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            Message::PairFailed {
                reason: PairFailure::Other,
                ..
            }
        ));
    }
}
