//! The transport's limit: the same echo over plain tokio-rustls, with no protocol on top.
//!
//! Same TLS as the real thing (`csc_shared::tls` configs: ring, TLS 1.3 only, the same suite
//! order, mutual Ed25519 certificates, no resumption), and a u32 length prefix so replies can
//! be told apart. The echo server runs on its own two-thread runtime, so it competes for the
//! CPU the way the server process does. Owns nothing of the protocol.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use csc_shared::identity::Identity;
use csc_shared::tls::{self, ServerTrust};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::BenchError;

/// Frames larger than this are refused, as the protocol's own limit does.
const MAX_FRAME: usize = 1 << 20;

/// A length-prefixed TLS echo server on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Start it on an ephemeral port.
    pub fn start() -> Result<Self, BenchError> {
        let identity = Identity::generate("baseline-server")
            .map_err(|e| BenchError::Setup(format!("certificate: {e}")))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&identity)?);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("baseline-echo")
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("baseline-echo".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let accept = async {
                        while let Ok((tcp, _)) = listener.accept().await {
                            let _ = tcp.set_nodelay(true);
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    let _ = echo(tls).await;
                                }
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Echo every complete frame; all replies to one read go out in one write.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        input.reserve(32 * 1024);
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        while let Some(len) = complete_frame(&input)? {
            output.extend_from_slice(&input[..4 + len]);
            input.advance(4 + len);
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            stream.flush().await?;
            output.clear();
        }
    }
}

/// The payload length of the first frame in `buf`, if all of it is there.
fn complete_frame(buf: &[u8]) -> std::io::Result<Option<usize>> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    Ok((buf.len() >= 4 + len).then_some(len))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A client of [`EchoServer`].
pub struct EchoClient {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    input: BytesMut,
}

impl EchoClient {
    /// Connect and complete the TLS handshake with a fresh client certificate.
    pub async fn connect(addr: SocketAddr) -> Result<Self, BenchError> {
        let identity = Identity::generate("baseline-client")
            .map_err(|e| BenchError::Setup(format!("certificate: {e}")))?;
        let config = tls::client_config(&identity, ServerTrust::Any)?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(tls::server_name(), tcp)
            .await?;
        Ok(Self {
            stream,
            input: BytesMut::with_capacity(64 * 1024),
        })
    }

    /// The negotiated cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub fn suite(&self) -> String {
        suite_name(self.stream.get_ref().1)
    }

    /// Read one whole frame and check it carries `expected`.
    async fn read_reply(&mut self, expected: &[u8]) -> Result<(), BenchError> {
        loop {
            if let Some(len) = complete_frame(&self.input)? {
                if &self.input[4..4 + len] != expected {
                    return Err(BenchError::Mismatch("baseline echo reply differs".into()));
                }
                self.input.advance(4 + len);
                return Ok(());
            }
            self.input.reserve(32 * 1024);
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Err(BenchError::Mismatch("baseline server closed".into()));
            }
        }
    }

    /// `n` echoes one after another; the round trip of each.
    pub async fn rtt(&mut self, payload: &[u8], n: usize) -> Result<Vec<Duration>, BenchError> {
        let f = frame(payload);
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            self.stream.write_all(&f).await?;
            self.stream.flush().await?;
            self.read_reply(payload).await?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    /// `n` echoes with up to `window` in flight; the time for all of them.
    pub async fn pipelined(
        &mut self,
        payload: &[u8],
        n: usize,
        window: usize,
    ) -> Result<Duration, BenchError> {
        let f = frame(payload);
        let window = Arc::new(Semaphore::new(window));
        let started = Instant::now();
        let (mut rd, mut wr) = tokio::io::split(&mut self.stream);
        let input = &mut self.input;
        let writer = async {
            let mut batch = Vec::with_capacity(64 * 1024);
            for i in 0..n {
                window
                    .acquire()
                    .await
                    .map_err(|_| BenchError::Mismatch("window closed".into()))?
                    .forget();
                batch.extend_from_slice(&f);
                // Write whenever the next request would have to wait for a reply.
                if window.available_permits() == 0 || i + 1 == n {
                    wr.write_all(&batch).await?;
                    wr.flush().await?;
                    batch.clear();
                }
            }
            Ok::<(), BenchError>(())
        };
        let reader = async {
            let mut seen = 0;
            while seen < n {
                while let Some(len) = complete_frame(input)? {
                    if input[4..4 + len] != *payload {
                        return Err(BenchError::Mismatch("baseline echo reply differs".into()));
                    }
                    input.advance(4 + len);
                    seen += 1;
                    window.add_permits(1);
                }
                if seen == n {
                    break;
                }
                input.reserve(32 * 1024);
                if rd.read_buf(input).await? == 0 {
                    return Err(BenchError::Mismatch("baseline server closed".into()));
                }
            }
            Ok(())
        };
        tokio::try_join!(writer, reader)?;
        Ok(started.elapsed())
    }
}

/// The name of the suite a TLS connection negotiated.
pub fn suite_name(conn: &rustls::CommonState) -> String {
    conn.negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "none".into())
}

/// A plain TLS server that sends N zero bytes to whoever asks (an 8-byte big-endian N), then
/// closes: the transport's limit for output that flows one way. Stopped when dropped.
#[derive(Debug)]
pub struct SourceServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SourceServer {
    /// Start it on an ephemeral port, on its own two-thread runtime like [`EchoServer`].
    pub fn start() -> Result<Self, BenchError> {
        let identity = Identity::generate("baseline-source")
            .map_err(|e| BenchError::Setup(format!("certificate: {e}")))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&identity)?);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("baseline-source")
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("baseline-source".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let accept = async {
                        while let Ok((tcp, _)) = listener.accept().await {
                            let _ = tcp.set_nodelay(true);
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                if let Ok(mut tls) = acceptor.accept(tcp).await {
                                    let mut n = [0u8; 8];
                                    if tls.read_exact(&mut n).await.is_err() {
                                        return;
                                    }
                                    let mut left = u64::from_be_bytes(n) as usize;
                                    let zeros = vec![0u8; 64 * 1024];
                                    while left > 0 {
                                        let take = left.min(zeros.len());
                                        if tls.write_all(&zeros[..take]).await.is_err() {
                                            return;
                                        }
                                        left -= take;
                                    }
                                    let _ = tls.shutdown().await;
                                }
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Ask for `bytes` and read them all; the time from asking to the last byte.
    pub async fn download(&self, bytes: usize) -> Result<Duration, BenchError> {
        let identity = Identity::generate("baseline-client")
            .map_err(|e| BenchError::Setup(format!("certificate: {e}")))?;
        let config = tls::client_config(&identity, ServerTrust::Any)?;
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let mut stream = tokio_rustls::TlsConnector::from(config)
            .connect(tls::server_name(), tcp)
            .await?;
        let started = Instant::now();
        stream.write_all(&(bytes as u64).to_be_bytes()).await?;
        stream.flush().await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < bytes {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(BenchError::Mismatch(format!(
                    "baseline source sent {got} of {bytes} bytes"
                )));
            }
            got += n;
        }
        Ok(started.elapsed())
    }
}

impl Drop for SourceServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
