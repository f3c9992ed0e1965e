//! The compact binary encoding of the hot messages: requests, responses, stream chunks, their
//! acknowledgements and notices (docs/protocol.md §4.1).
//!
//! Owns the byte layout and its parser. A frame is compact when its first byte is a tag in
//! `0x01..=0x1f` other than JSON whitespace; a JSON frame starts with `{`, so the two never
//! collide and a receiver can take either at any time. Only the sender's choice is
//! negotiated (the `csc/2` ALPN, see [`crate::tls`]), never the receiver's. Every other
//! message, and any hot message whose values do not fit the layout, stays JSON.
//!
//! The parser takes bytes from anyone: every length is checked against what is left in the
//! frame before anything is allocated, text must be UTF-8, and nothing panics.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::message::{Message, OutputStream, Payload, TaskErrorBody};

/// `request`: id u64, task (u16 length, UTF-8), argument count u32, then each argument
/// (u32 length, UTF-8).
pub const TAG_REQUEST: u8 = 0x01;
/// `response`: id u64, a kind byte ([`RESULT_NULL`] and the others), then what the kind says.
pub const TAG_RESPONSE: u8 = 0x02;
/// `notice`: at_ms u64, then the text (UTF-8) to the end of the frame.
pub const TAG_NOTICE: u8 = 0x03;
/// `run_output`: id u64, stream byte (0 stdout, 1 stderr), then the bytes to the end.
pub const TAG_RUN_OUTPUT: u8 = 0x04;
/// `run_input`: id u64, then the bytes to the end.
pub const TAG_RUN_INPUT: u8 = 0x05;
/// `run_ack`: id u64, bytes u64.
pub const TAG_RUN_ACK: u8 = 0x06;
/// `run_input_ack`: id u64, bytes u64.
pub const TAG_RUN_INPUT_ACK: u8 = 0x07;

/// Response kind: `ok` with no result.
pub const RESULT_NULL: u8 = 0;
/// Response kind: `ok`, the result is a string, its UTF-8 to the end of the frame.
pub const RESULT_TEXT: u8 = 1;
/// Response kind: `ok`, the result is any other JSON value, its JSON text to the end.
pub const RESULT_JSON: u8 = 2;
/// Response kind: not `ok`: the error's code (u16 length, UTF-8), then its message to the end.
pub const RESULT_ERROR: u8 = 3;

/// Why a compact frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ended inside a field.
    #[error("compact {message}: frame ends inside {field}")]
    Truncated {
        /// The message being read.
        message: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },
    /// A length or count is larger than what is left of the frame.
    #[error("compact {message}: {field} declares {declared} bytes, {left} left in the frame")]
    Length {
        /// The message being read.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// What it declared.
        declared: u64,
        /// What was left.
        left: usize,
    },
    /// Text that is not UTF-8.
    #[error("compact {message}: {field} is not UTF-8")]
    NotUtf8 {
        /// The message being read.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A byte that must be one of a few values is not.
    #[error("compact {message}: {field} byte {value:#04x} is not defined")]
    BadValue {
        /// The message being read.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The byte.
        value: u8,
    },
    /// Bytes after the last field of a fixed-size message.
    #[error("compact {message}: {extra} bytes after the last field")]
    Trailing {
        /// The message being read.
        message: &'static str,
        /// How many.
        extra: usize,
    },
    /// A JSON result inside a response is not valid JSON.
    #[error("compact response: result is not valid JSON: {0}")]
    Json(String),
}

/// Whether a frame is in the compact encoding (by its first byte).
pub fn is_compact(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(&b) if (0x01..=0x1f).contains(&b) && !matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Append `msg`'s compact form to `dst` and return `true`, or return `false` and leave `dst`
/// as it was when the message has none (it then goes as JSON).
pub fn encode(msg: &Message, dst: &mut BytesMut) -> bool {
    match msg {
        Message::Request { id, task, args } => {
            let Ok(task_len) = u16::try_from(task.len()) else {
                return false;
            };
            let Ok(argc) = u32::try_from(args.len()) else {
                return false;
            };
            if args.iter().any(|a| u32::try_from(a.len()).is_err()) {
                return false;
            }
            dst.reserve(
                1 + 8 + 2 + task.len() + 4 + args.iter().map(|a| 4 + a.len()).sum::<usize>(),
            );
            dst.put_u8(TAG_REQUEST);
            dst.put_u64(*id);
            dst.put_u16(task_len);
            dst.put_slice(task.as_bytes());
            dst.put_u32(argc);
            for a in args {
                dst.put_u32(a.len() as u32);
                dst.put_slice(a.as_bytes());
            }
            true
        }
        Message::Response {
            id,
            ok: true,
            result,
            error: None,
        } => {
            match result {
                serde_json::Value::Null => {
                    dst.reserve(10);
                    dst.put_u8(TAG_RESPONSE);
                    dst.put_u64(*id);
                    dst.put_u8(RESULT_NULL);
                }
                serde_json::Value::String(s) => {
                    dst.reserve(10 + s.len());
                    dst.put_u8(TAG_RESPONSE);
                    dst.put_u64(*id);
                    dst.put_u8(RESULT_TEXT);
                    dst.put_slice(s.as_bytes());
                }
                other => {
                    let start = dst.len();
                    dst.put_u8(TAG_RESPONSE);
                    dst.put_u64(*id);
                    dst.put_u8(RESULT_JSON);
                    if serde_json::to_writer(dst.writer(), other).is_err() {
                        dst.truncate(start);
                        return false;
                    }
                }
            }
            true
        }
        Message::Response {
            id,
            ok: false,
            result: serde_json::Value::Null,
            error: Some(TaskErrorBody { code, message }),
        } => {
            let Ok(code_len) = u16::try_from(code.len()) else {
                return false;
            };
            dst.reserve(12 + code.len() + message.len());
            dst.put_u8(TAG_RESPONSE);
            dst.put_u64(*id);
            dst.put_u8(RESULT_ERROR);
            dst.put_u16(code_len);
            dst.put_slice(code.as_bytes());
            dst.put_slice(message.as_bytes());
            true
        }
        Message::Notice { text, at_ms } => {
            dst.reserve(9 + text.len());
            dst.put_u8(TAG_NOTICE);
            dst.put_u64(*at_ms);
            dst.put_slice(text.as_bytes());
            true
        }
        Message::RunOutput { id, stream, data } => {
            dst.reserve(10 + data.0.len());
            dst.put_u8(TAG_RUN_OUTPUT);
            dst.put_u64(*id);
            dst.put_u8(match stream {
                OutputStream::Stdout => 0,
                OutputStream::Stderr => 1,
            });
            dst.put_slice(&data.0);
            true
        }
        Message::RunInput { id, data } => {
            dst.reserve(9 + data.0.len());
            dst.put_u8(TAG_RUN_INPUT);
            dst.put_u64(*id);
            dst.put_slice(&data.0);
            true
        }
        Message::RunAck { id, bytes } | Message::RunInputAck { id, bytes } => {
            dst.reserve(17);
            dst.put_u8(if matches!(msg, Message::RunAck { .. }) {
                TAG_RUN_ACK
            } else {
                TAG_RUN_INPUT_ACK
            });
            dst.put_u64(*id);
            dst.put_u64(*bytes);
            true
        }
        _ => false,
    }
}

/// Read a compact frame (one for which [`is_compact`] holds). Payloads are slices of
/// `frame`, not copies. A tag this version does not know is [`Message::Unknown`], as an
/// unknown JSON `type` is.
pub fn decode(frame: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader {
        buf: frame,
        message: "frame",
    };
    let tag = r.u8("tag")?;
    match tag {
        TAG_REQUEST => {
            r.message = "request";
            let id = r.u64("id")?;
            let task_len = r.u16("task length")?;
            let task = r.text(task_len.into(), "task")?;
            let argc = r.u32("argument count")?;
            // Each argument takes at least its 4-byte length: a count that cannot fit is
            // refused before anything is allocated for it.
            let most = r.buf.remaining() / 4;
            if argc as usize > most {
                return Err(DecodeError::Length {
                    message: r.message,
                    field: "argument count",
                    declared: argc.into(),
                    left: r.buf.remaining(),
                });
            }
            let mut args = Vec::with_capacity(argc as usize);
            for _ in 0..argc {
                let len = r.u32("argument length")?;
                args.push(r.text(len.into(), "argument")?);
            }
            r.end()?;
            Ok(Message::Request { id, task, args })
        }
        TAG_RESPONSE => {
            r.message = "response";
            let id = r.u64("id")?;
            match r.u8("result kind")? {
                RESULT_NULL => {
                    r.end()?;
                    Ok(ok_response(id, serde_json::Value::Null))
                }
                RESULT_TEXT => {
                    let n = r.buf.remaining() as u64;
                    let text = r.text(n, "result")?;
                    Ok(ok_response(id, serde_json::Value::String(text)))
                }
                RESULT_JSON => {
                    let value: serde_json::Value = serde_json::from_slice(r.buf.chunk())
                        .map_err(|e| DecodeError::Json(e.to_string()))?;
                    // A string or null has its own kind; accepting them here too would give
                    // one message two spellings for no reason.
                    if value.is_null() || value.is_string() {
                        return Err(DecodeError::Json(
                            "a null or string result has its own kind".into(),
                        ));
                    }
                    Ok(ok_response(id, value))
                }
                RESULT_ERROR => {
                    let code_len = r.u16("error code length")?;
                    let code = r.text(code_len.into(), "error code")?;
                    let n = r.buf.remaining() as u64;
                    let message = r.text(n, "error message")?;
                    Ok(Message::Response {
                        id,
                        ok: false,
                        result: serde_json::Value::Null,
                        error: Some(TaskErrorBody { code, message }),
                    })
                }
                value => Err(DecodeError::BadValue {
                    message: r.message,
                    field: "result kind",
                    value,
                }),
            }
        }
        TAG_NOTICE => {
            r.message = "notice";
            let at_ms = r.u64("at_ms")?;
            let n = r.buf.remaining() as u64;
            let text = r.text(n, "text")?;
            Ok(Message::Notice { text, at_ms })
        }
        TAG_RUN_OUTPUT => {
            r.message = "run_output";
            let id = r.u64("id")?;
            let stream = match r.u8("stream")? {
                0 => OutputStream::Stdout,
                1 => OutputStream::Stderr,
                value => {
                    return Err(DecodeError::BadValue {
                        message: r.message,
                        field: "stream",
                        value,
                    });
                }
            };
            Ok(Message::RunOutput {
                id,
                stream,
                data: Payload(r.buf),
            })
        }
        TAG_RUN_INPUT => {
            r.message = "run_input";
            let id = r.u64("id")?;
            Ok(Message::RunInput {
                id,
                data: Payload(r.buf),
            })
        }
        TAG_RUN_ACK | TAG_RUN_INPUT_ACK => {
            r.message = if tag == TAG_RUN_ACK {
                "run_ack"
            } else {
                "run_input_ack"
            };
            let id = r.u64("id")?;
            let bytes = r.u64("bytes")?;
            r.end()?;
            Ok(if tag == TAG_RUN_ACK {
                Message::RunAck { id, bytes }
            } else {
                Message::RunInputAck { id, bytes }
            })
        }
        _ => Ok(Message::Unknown),
    }
}

fn ok_response(id: u64, result: serde_json::Value) -> Message {
    Message::Response {
        id,
        ok: true,
        result,
        error: None,
    }
}

/// A cursor over one frame that names what it failed to read.
struct Reader {
    buf: Bytes,
    message: &'static str,
}

impl Reader {
    fn need(&self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        if self.buf.remaining() < n {
            return Err(DecodeError::Truncated {
                message: self.message,
                field,
            });
        }
        Ok(())
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    /// `len` bytes of UTF-8, copied into a `String`.
    fn text(&mut self, len: u64, field: &'static str) -> Result<String, DecodeError> {
        let left = self.buf.remaining();
        let Some(n) = usize::try_from(len).ok().filter(|n| *n <= left) else {
            return Err(DecodeError::Length {
                message: self.message,
                field,
                declared: len,
                left,
            });
        };
        let text = std::str::from_utf8(&self.buf[..n])
            .map_err(|_| DecodeError::NotUtf8 {
                message: self.message,
                field,
            })?
            .to_owned();
        self.buf.advance(n);
        Ok(text)
    }

    fn end(&self) -> Result<(), DecodeError> {
        match self.buf.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing {
                message: self.message,
                extra,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(m: &Message) -> Message {
        let mut buf = BytesMut::new();
        assert!(encode(m, &mut buf), "{} has a compact form", m.kind());
        assert!(is_compact(&buf));
        decode(buf.freeze()).unwrap()
    }

    #[test]
    fn request_layout_is_the_documented_one() {
        // The example of docs/protocol.md §4.1.
        let m = Message::Request {
            id: 7,
            task: "echo".into(),
            args: vec!["hi".into()],
        };
        let mut buf = BytesMut::new();
        assert!(encode(&m, &mut buf));
        assert_eq!(
            hex::encode(&buf),
            "01000000000000000700046563686f000000010000000268 69".replace(' ', "")
        );
        assert_eq!(decode(buf.freeze()).unwrap(), m);
        let hex_of = |m: &Message| {
            let mut b = BytesMut::new();
            assert!(encode(m, &mut b));
            hex::encode(b)
        };
        assert_eq!(
            hex_of(&ok_response(7, json!("hi"))),
            "020000000000000007016869"
        );
        assert_eq!(
            hex_of(&Message::RunOutput {
                id: 3,
                stream: OutputStream::Stderr,
                data: Payload(Bytes::from_static(b"oops\n")),
            }),
            "040000000000000003016f6f70730a"
        );
    }

    #[test]
    fn response_kinds() {
        for result in [json!(null), json!("pong"), json!({"a": [1, 2]}), json!(3)] {
            let m = ok_response(9, result);
            assert_eq!(round_trip(&m), m);
        }
        let failed = Message::Response {
            id: 1,
            ok: false,
            result: serde_json::Value::Null,
            error: Some(TaskErrorBody {
                code: "bad_args".into(),
                message: "no".into(),
            }),
        };
        assert_eq!(round_trip(&failed), failed);
        // Shapes the layout cannot hold exactly go as JSON.
        let odd = Message::Response {
            id: 1,
            ok: false,
            result: serde_json::Value::Null,
            error: None,
        };
        assert!(!encode(&odd, &mut BytesMut::new()));
    }

    #[test]
    fn payloads_are_slices_of_the_frame() {
        let m = Message::RunOutput {
            id: 3,
            stream: OutputStream::Stderr,
            data: Payload(Bytes::from_static(&[0, 255, 10])),
        };
        let mut buf = BytesMut::new();
        encode(&m, &mut buf);
        let frame = buf.freeze();
        let base = frame.as_ptr() as usize;
        match decode(frame.clone()).unwrap() {
            Message::RunOutput { data, .. } => {
                assert_eq!(&data.0[..], &[0, 255, 10]);
                assert_eq!(data.0.as_ptr() as usize, base + 10, "not copied");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        // A request that declares 4 billion arguments in a 20-byte frame.
        let mut b = BytesMut::new();
        b.put_u8(TAG_REQUEST);
        b.put_u64(1);
        b.put_u16(0);
        b.put_u32(u32::MAX);
        assert!(matches!(
            decode(b.freeze()),
            Err(DecodeError::Length {
                field: "argument count",
                ..
            })
        ));
        // An argument longer than the frame.
        let mut b = BytesMut::new();
        b.put_u8(TAG_REQUEST);
        b.put_u64(1);
        b.put_u16(0);
        b.put_u32(1);
        b.put_u32(u32::MAX);
        assert!(matches!(
            decode(b.freeze()),
            Err(DecodeError::Length { .. })
        ));
        // Invalid UTF-8 in a notice.
        let mut b = BytesMut::new();
        b.put_u8(TAG_NOTICE);
        b.put_u64(0);
        b.put_slice(&[0xff, 0xfe]);
        assert!(matches!(
            decode(b.freeze()),
            Err(DecodeError::NotUtf8 { .. })
        ));
        // Truncated fixed fields, a bad stream byte, trailing bytes.
        assert!(matches!(
            decode(Bytes::from_static(&[TAG_RUN_ACK, 0, 0])),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode(Bytes::from_static(&[
                TAG_RUN_OUTPUT,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                7
            ])),
            Err(DecodeError::BadValue { .. })
        ));
        let mut b = BytesMut::new();
        b.put_u8(TAG_RUN_ACK);
        b.put_u64(1);
        b.put_u64(2);
        b.put_u8(0);
        assert!(matches!(
            decode(b.freeze()),
            Err(DecodeError::Trailing { extra: 1, .. })
        ));
        // A tag from a later version.
        assert_eq!(
            decode(Bytes::from_static(&[0x1e])).unwrap(),
            Message::Unknown
        );
    }

    #[test]
    fn json_and_compact_frames_are_told_apart() {
        assert!(!is_compact(b"{\"type\":\"ping\"}"));
        assert!(!is_compact(b" {}"));
        assert!(!is_compact(b"\n{}"));
        assert!(!is_compact(b""));
        assert!(is_compact(&[TAG_REQUEST]));
        assert!(!is_compact(&[0x00]));
    }
}
