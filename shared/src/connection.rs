//! A framed stream that carries JSON messages.
//!
//! Owns (de)serialisation between frames and typed values, so framing stays ignorant of
//! message types and engines never see raw bytes.

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::frame::{FrameError, FramedStream};

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Framing or transport failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The frame held no valid message.
    #[error("malformed message: {0}")]
    Malformed(serde_json::Error),
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
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wrap `stream`, refusing frames longer than `max_frame` bytes.
    pub fn new(stream: S, max_frame: usize) -> Self {
        Self {
            frames: FramedStream::new(stream, max_frame),
        }
    }

    /// Read the next message; `Ok(None)` on a clean close. Cancel-safe.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ConnectionError> {
        match self.frames.read().await? {
            None => Ok(None),
            Some(frame) => serde_json::from_slice(&frame)
                .map(Some)
                .map_err(ConnectionError::Malformed),
        }
    }

    /// Read the next message, treating a close as an error, within `limit`.
    pub async fn expect<T: DeserializeOwned>(
        &mut self,
        limit: std::time::Duration,
    ) -> Result<T, ConnectionError> {
        match tokio::time::timeout(limit, self.read()).await {
            Err(_) => Err(ConnectionError::Timeout),
            Ok(r) => r?.ok_or(ConnectionError::Closed),
        }
    }

    /// Queue a message without flushing.
    pub async fn feed<T: Serialize>(&mut self, msg: &T) -> Result<(), ConnectionError> {
        let bytes = serde_json::to_vec(msg).map_err(ConnectionError::Malformed)?;
        Ok(self.frames.feed(Bytes::from(bytes)).await?)
    }

    /// Write out queued messages.
    pub async fn flush(&mut self) -> Result<(), ConnectionError> {
        Ok(self.frames.flush().await?)
    }

    /// Send one message and flush.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), ConnectionError> {
        let bytes = serde_json::to_vec(msg).map_err(ConnectionError::Malformed)?;
        Ok(self.frames.write(Bytes::from(bytes)).await?)
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

    /// Give back the underlying stream.
    pub fn into_inner(self) -> S {
        self.frames.into_inner()
    }

    /// The underlying stream (e.g. to read TLS session details).
    pub fn stream(&self) -> &S {
        self.frames.get_ref()
    }
}
