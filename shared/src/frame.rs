//! Frames on the wire: a u32 big-endian length, then that many bytes.
//!
//! Owns the size cap and the distinction between a clean close and a truncated frame.
//! It knows nothing about what the bytes mean; see [`crate::connection`] for messages.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{
    Decoder, Encoder, Framed, FramedParts, LengthDelimitedCodec,
    length_delimited::LengthDelimitedCodecError,
};

/// Largest frame accepted unless configured otherwise: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Queued bytes past which [`FramedStream::feed_with`] writes out before it queues more.
pub const WRITE_BACKPRESSURE: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer declared a frame larger than the limit. Nothing was allocated for it.
    #[error("frame of {declared} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Length the peer declared.
        declared: u64,
        /// The configured limit.
        max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `LengthDelimitedCodec`, plus memory of a header already consumed: the inner codec treats a
/// close right after a header as a clean end, but a frame was promised and never came.
struct Codec {
    inner: LengthDelimitedCodec,
    mid_frame: bool,
}

impl Decoder for Codec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        let before = buf.len();
        let frame = self.inner.decode(buf)?;
        self.mid_frame = frame.is_none() && (self.mid_frame || buf.len() < before);
        Ok(frame)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() && !self.mid_frame => Ok(None),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed in the middle of a frame",
            )),
        }
    }
}

impl Encoder<Bytes> for Codec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.inner.encode(item, dst)
    }
}

/// A framed byte stream.
pub struct FramedStream<S> {
    inner: Framed<S, Codec>,
    max: usize,
}

/// Append one frame to `dst`: a length, then the payload `fill` writes. `fill` returns `Err`
/// to take back what it wrote; a payload over `max` bytes is taken back and refused. `dst`
/// is as it was unless `Ok(Ok(()))` is returned.
pub fn put_frame<E>(
    dst: &mut BytesMut,
    max: usize,
    fill: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Result<(), E>, FrameError> {
    let max = max.min(u32::MAX as usize);
    let start = dst.len();
    dst.extend_from_slice(&[0; 4]);
    if let Err(e) = fill(dst) {
        dst.truncate(start);
        return Ok(Err(e));
    }
    let len = dst.len() - start - 4;
    if len > max {
        dst.truncate(start);
        return Err(FrameError::TooLarge {
            declared: len as u64,
            max,
        });
    }
    // `len <= max <= u32::MAX`.
    dst[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(Ok(()))
}

impl<S> FramedStream<S> {
    /// Wrap `stream`, refusing frames longer than `max` bytes.
    pub fn new(stream: S, max: usize) -> Self {
        // The length field is a u32.
        let max = max.min(u32::MAX as usize);
        let codec = LengthDelimitedCodec::builder()
            .big_endian()
            .length_field_type::<u32>()
            .max_frame_length(max)
            .new_codec();
        Self {
            inner: Framed::new(
                stream,
                Codec {
                    inner: codec,
                    mid_frame: false,
                },
            ),
            max,
        }
    }

    /// The largest frame this stream accepts.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Give back the underlying stream (buffered bytes are dropped).
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }
}

impl<S: AsyncRead + AsyncWrite> FramedStream<S> {
    /// Split into a framed read half, keeping what was already received, and the write
    /// half. Anything queued and not flushed is returned too, to be written first.
    pub fn split(self) -> (FramedStream<ReadHalf<S>>, WriteHalf<S>, BytesMut) {
        let max = self.max;
        let parts = self.inner.into_parts();
        let (rd, wr) = tokio::io::split(parts.io);
        let mut read = FramedParts::new::<Bytes>(rd, parts.codec);
        read.read_buf = parts.read_buf;
        (
            FramedStream {
                inner: Framed::from_parts(read),
                max,
            },
            wr,
            parts.write_buf,
        )
    }
}

impl<S: AsyncRead + Unpin> FramedStream<S> {
    /// Read one frame. `Ok(None)` means the peer closed cleanly between frames.
    ///
    /// Cancel-safe: a partly received frame stays buffered.
    pub async fn read(&mut self) -> Result<Option<BytesMut>, FrameError> {
        match self.inner.next().await {
            None => Ok(None),
            Some(Ok(frame)) => Ok(Some(frame)),
            // A peer that vanishes between frames without a TLS close_notify has still
            // closed cleanly as far as messages go.
            Some(Err(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    && self.inner.read_buffer().is_empty()
                    && !self.inner.codec().mid_frame =>
            {
                Ok(None)
            }
            Some(Err(e)) => Err(self.classify(e)),
        }
    }

    fn classify(&self, e: std::io::Error) -> FrameError {
        let buffered = self.inner.read_buffer();
        if e.get_ref()
            .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
        {
            // The codec checks the length before advancing, so the header is still buffered.
            let declared = buffered
                .get(..4)
                .map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64)
                .unwrap_or(u64::MAX);
            return FrameError::TooLarge {
                declared,
                max: self.max,
            };
        }
        if e.kind() == std::io::ErrorKind::UnexpectedEof || !buffered.is_empty() {
            return FrameError::Truncated;
        }
        FrameError::Io(e)
    }
}

impl<S: AsyncWrite + Unpin> FramedStream<S> {
    fn check_len(&self, payload: &Bytes) -> Result<(), FrameError> {
        if payload.len() > self.max {
            return Err(FrameError::TooLarge {
                declared: payload.len() as u64,
                max: self.max,
            });
        }
        Ok(())
    }

    /// Queue a frame whose payload `fill` writes straight into the write buffer, with no
    /// buffer of its own. `fill` returns `Err` to take back what it wrote. A payload over the
    /// limit is taken back and refused, and the stream stays usable. A buffer already past
    /// [`WRITE_BACKPRESSURE`] is written out first, so queuing never grows it without bound.
    pub async fn feed_with<E>(
        &mut self,
        fill: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<Result<(), E>, FrameError> {
        if self.inner.write_buffer().len() >= WRITE_BACKPRESSURE {
            self.flush().await?;
        }
        let max = self.max;
        put_frame(self.inner.write_buffer_mut(), max, fill)
    }

    /// Write out everything queued.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        SinkExt::<Bytes>::flush(&mut self.inner)
            .await
            .map_err(FrameError::Io)
    }

    /// Write one frame and flush it.
    pub async fn write(&mut self, payload: Bytes) -> Result<(), FrameError> {
        self.check_len(&payload)?;
        self.inner.send(payload).await.map_err(FrameError::Io)
    }

    /// Flush and shut down the write half (TLS close_notify).
    pub async fn close(&mut self) -> Result<(), FrameError> {
        SinkExt::<Bytes>::close(&mut self.inner)
            .await
            .map_err(FrameError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn round_trip_and_clean_close() {
        let (a, b) = tokio::io::duplex(1024);
        let mut a = FramedStream::new(a, 64);
        let mut b = FramedStream::new(b, 64);
        a.write(Bytes::from_static(b"hello")).await.unwrap();
        a.write(Bytes::new()).await.unwrap();
        drop(a);
        assert_eq!(&b.read().await.unwrap().unwrap()[..], b"hello");
        assert_eq!(b.read().await.unwrap().unwrap().len(), 0);
        assert!(b.read().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversize_length_is_refused_with_declared_size() {
        let (mut a, b) = tokio::io::duplex(1024);
        let mut b = FramedStream::new(b, 64);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        match b.read().await {
            Err(FrameError::TooLarge { declared, max }) => {
                assert_eq!(declared, u32::MAX as u64);
                assert_eq!(max, 64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn close_mid_frame_is_truncated() {
        let (mut a, b) = tokio::io::duplex(1024);
        let mut b = FramedStream::new(b, 64);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"abc").await.unwrap();
        drop(a);
        assert!(matches!(b.read().await, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn oversize_write_is_refused_locally_and_stream_stays_usable() {
        let (a, b) = tokio::io::duplex(4096);
        let mut a = FramedStream::new(a, 10);
        let mut b = FramedStream::new(b, 10);
        assert!(matches!(
            a.write(Bytes::from(vec![0u8; 11])).await,
            Err(FrameError::TooLarge {
                declared: 11,
                max: 10
            })
        ));
        a.write(Bytes::from_static(b"ok")).await.unwrap();
        assert_eq!(&b.read().await.unwrap().unwrap()[..], b"ok");
    }

    #[tokio::test]
    async fn close_right_after_a_header_is_truncated() {
        let (mut a, b) = tokio::io::duplex(1024);
        let mut b = FramedStream::new(b, 64);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        drop(a);
        assert!(matches!(b.read().await, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn frame_at_limit_is_accepted() {
        let (a, b) = tokio::io::duplex(4096);
        let mut a = FramedStream::new(a, 100);
        let mut b = FramedStream::new(b, 100);
        a.write(Bytes::from(vec![7u8; 100])).await.unwrap();
        assert_eq!(b.read().await.unwrap().unwrap().len(), 100);
    }
}
