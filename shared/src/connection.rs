//! A framed stream that carries messages, in JSON or in the compact encoding.
//!
//! Owns (de)serialisation between frames and typed values, so framing stays ignorant of
//! message types and engines never see raw bytes. A connection reads both encodings at any
//! time and writes the one its [`Encoding`] says, which the TLS handshake negotiated
//! ([`crate::tls::encoding`]).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

use crate::frame::{FrameError, FramedStream};
use crate::message::Message;

/// How a connection writes the hot messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Every message as JSON (`csc/1`, and every connection until it knows better).
    #[default]
    Json,
    /// The hot messages in the compact binary encoding, the rest as JSON (`csc/2`).
    Compact,
}

/// Why a frame held no valid message.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// Not valid JSON, or not a valid message.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A compact frame that does not follow the layout.
    #[error(transparent)]
    Compact(#[from] crate::compact::DecodeError),
}

/// A value that travels in frames.
pub trait Wire: Sized {
    /// Read one from a whole frame.
    fn decode(frame: BytesMut) -> Result<Self, Malformed>;
    /// Append its frame payload to `dst` in `encoding`.
    fn encode(&self, dst: &mut BytesMut, encoding: Encoding) -> Result<(), Malformed>;
}

impl Wire for Message {
    fn decode(frame: BytesMut) -> Result<Self, Malformed> {
        if crate::compact::is_compact(&frame) {
            Ok(crate::compact::decode(frame.freeze())?)
        } else {
            Ok(serde_json::from_slice(&frame)?)
        }
    }

    fn encode(&self, dst: &mut BytesMut, encoding: Encoding) -> Result<(), Malformed> {
        if encoding == Encoding::Compact && crate::compact::encode(self, dst) {
            return Ok(());
        }
        Ok(serde_json::to_writer(dst.writer(), self)?)
    }
}

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Framing or transport failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The frame held no valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] Malformed),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The peer did not answer in time.
    #[error("timed out waiting for the peer")]
    Timeout,
}

/// Longest [`Connection::close`] waits for queued bytes to drain.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Typed messages over a framed stream.
pub struct Connection<S> {
    frames: FramedStream<S>,
    encoding: Encoding,
}

/// Append `msg` to `dst` as one frame in `encoding`, refusing a payload over `max` bytes
/// (then `dst` is as it was).
pub fn put_message<T: Wire>(
    dst: &mut BytesMut,
    msg: &T,
    encoding: Encoding,
    max: usize,
) -> Result<(), ConnectionError> {
    Ok(crate::frame::put_frame(dst, max, |dst| {
        msg.encode(dst, encoding)
    })??)
}

impl<S> Connection<S> {
    /// Wrap `stream`, refusing frames longer than `max_frame` bytes. It writes JSON until
    /// [`Connection::set_encoding`] says otherwise.
    pub fn new(stream: S, max_frame: usize) -> Self {
        Self {
            frames: FramedStream::new(stream, max_frame),
            encoding: Encoding::Json,
        }
    }

    /// Write the hot messages in `encoding` from now on (what the handshake negotiated).
    pub fn set_encoding(&mut self, encoding: Encoding) {
        self.encoding = encoding;
    }

    /// The encoding this connection writes.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The largest frame this connection accepts.
    pub fn max_frame(&self) -> usize {
        self.frames.max_frame()
    }

    /// Give back the underlying stream.
    pub fn into_inner(self) -> S {
        self.frames.into_inner()
    }

    /// The underlying stream (e.g. to read TLS session details).
    pub fn stream(&self) -> &S {
        self.frames.get_ref()
    }
}

impl<S: AsyncRead + AsyncWrite> Connection<S> {
    /// Split into a reading connection, which keeps what was already received, and the
    /// write half, with whatever was queued and not flushed (to be written first).
    pub fn split(self) -> (Connection<ReadHalf<S>>, WriteHalf<S>, BytesMut) {
        let encoding = self.encoding;
        let (frames, wr, queued) = self.frames.split();
        (Connection { frames, encoding }, wr, queued)
    }
}

impl<S: AsyncRead + Unpin> Connection<S> {
    /// Read the next message; `Ok(None)` on a clean close. Cancel-safe.
    pub async fn read<T: Wire>(&mut self) -> Result<Option<T>, ConnectionError> {
        match self.frames.read().await? {
            None => Ok(None),
            Some(frame) => Ok(Some(T::decode(frame)?)),
        }
    }

    /// Read the next message, treating a close as an error, within `limit`.
    pub async fn expect<T: Wire>(
        &mut self,
        limit: std::time::Duration,
    ) -> Result<T, ConnectionError> {
        match tokio::time::timeout(limit, self.read()).await {
            Err(_) => Err(ConnectionError::Timeout),
            Ok(r) => r?.ok_or(ConnectionError::Closed),
        }
    }
}

impl<S: AsyncWrite + Unpin> Connection<S> {
    /// Queue a message without flushing. It is encoded straight into the write buffer.
    pub async fn feed<T: Wire>(&mut self, msg: &T) -> Result<(), ConnectionError> {
        let encoding = self.encoding;
        Ok(self
            .frames
            .feed_with(|dst| msg.encode(dst, encoding))
            .await??)
    }

    /// Queue any serialisable value as a JSON frame (tests and tools that speak a message
    /// this version does not have).
    pub async fn feed_json<T: Serialize>(&mut self, value: &T) -> Result<(), ConnectionError> {
        Ok(self
            .frames
            .feed_with(|dst| serde_json::to_writer(dst.writer(), value).map_err(Malformed::Json))
            .await??)
    }

    /// Write out queued messages.
    pub async fn flush(&mut self) -> Result<(), ConnectionError> {
        Ok(self.frames.flush().await?)
    }

    /// Send one message and flush.
    pub async fn send<T: Wire>(&mut self, msg: &T) -> Result<(), ConnectionError> {
        self.feed(msg).await?;
        self.flush().await
    }

    /// Send raw bytes as one frame (tests and tools that speak malformed JSON on purpose).
    pub async fn send_raw(&mut self, bytes: Bytes) -> Result<(), ConnectionError> {
        Ok(self.frames.write(bytes).await?)
    }

    /// Flush and close the write half, giving up after [`CLOSE_TIMEOUT`]: a peer that stopped
    /// reading must not hold the connection (and its buffers) open.
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.frames.close()).await;
    }
}
