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
