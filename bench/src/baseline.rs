//! The transport's limit: the same echo over plain tokio-rustls, with no protocol on top.
//!
//! Same TLS as the real thing (`csc_shared::tls` configs: ring, TLS 1.3 only, the same suite
//! order, mutual Ed25519 certificates, no resumption), and a u32 length prefix so replies can
//! be told apart. The servers run as their own process (this same executable with
//! `--serve-baseline echo|source`) on a two-worker runtime, so they get the CPU the way the
//! server process does and can be placed on the same CPUs. Owns nothing of the protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
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

/// What a baseline server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Echo every length-prefixed frame back ([`EchoClient`]).
    Echo,
    /// Send N zero bytes to whoever asks with an 8-byte big-endian N, then close
    /// ([`download`]): the transport's limit for output that flows one way.
    Source,
}

impl Kind {
    /// Its name on the command line, `echo` or `source`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Source => "source",
        }
    }
}

/// A baseline server in its own process (`bench-load --serve-baseline KIND`, see [`serve`]),
/// so that it gets the CPU the way the `server-tui` process does, and can be placed on the
/// same CPUs. Killed when dropped if not stopped before.
#[derive(Debug)]
pub struct BaselineServer {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
}

impl BaselineServer {
    /// Start `bin --serve-baseline KIND` and wait for the port it prints.
    pub async fn start(bin: &Path, kind: Kind) -> Result<Self, BenchError> {
        let mut command = crate::server::child_command(bin);
        let mut child = command
            .args(["--serve-baseline", kind.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", bin.display())))?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("no stdout".into()))?;
        // Owned from here, so a failure below still kills it.
        let mut proc = Self {
            child: Some(child),
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await;
        let port = match line {
            Ok(Ok(Ok(line))) => line.trim().parse::<u16>().ok(),
            _ => None,
        };
        match port {
            Some(port) if port != 0 => {
                proc.addr.set_port(port);
                Ok(proc)
            }
            _ => Err(BenchError::Setup(format!(
                "the {} baseline server (pid {pid}) did not print its port",
                kind.name()
            ))),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stop it by closing its stdin, killing it after 10 s.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        drop(child.stdin.take());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(BenchError::Setup(format!(
                        "baseline server exited with {status}"
                    )))
                };
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Setup(
                    "baseline server did not stop when its stdin closed".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for BaselineServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The baseline server's own side (`bench-load --serve-baseline KIND`): serve `kind` on
/// 127.0.0.1 with an ephemeral port on a two-worker runtime, print the port on stdout, and
/// serve until stdin closes.
pub fn serve(kind: Kind) -> Result<(), BenchError> {
    let identity = Identity::generate(&format!("baseline-{}", kind.name()))
        .map_err(|e| BenchError::Setup(format!("certificate: {e}")))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&identity)?);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let port = std_listener.local_addr()?.port();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("baseline-{}", kind.name()))
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("baseline-stdin".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
            let _ = stop.send(());
        })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let mut out = std::io::stdout();
        writeln!(out, "{port}")?;
        out.flush()?;
        let accept = async {
            loop {
                let (tcp, _) = listener.accept().await?;
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = match kind {
                            Kind::Echo => echo(tls).await,
                            Kind::Source => source(tls).await,
                        };
                    }
                });
            }
        };
        tokio::select! {
            r = accept => r,
            _ = stopped => Ok::<(), BenchError>(()),
        }
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
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

/// A client of a [`Kind::Echo`] server.
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

/// Read an 8-byte big-endian N, send N zero bytes, close.
async fn source<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> std::io::Result<()> {
    let mut n = [0u8; 8];
    stream.read_exact(&mut n).await?;
    let mut left = u64::from_be_bytes(n) as usize;
    let zeros = vec![0u8; 64 * 1024];
    while left > 0 {
        let take = left.min(zeros.len());
        stream.write_all(&zeros[..take]).await?;
        left -= take;
    }
    stream.shutdown().await
}

/// Ask the [`Kind::Source`] server at `addr` for `bytes` and read them all; the time from
/// asking to the last byte.
pub async fn download(addr: SocketAddr, bytes: usize) -> Result<Duration, BenchError> {
    let identity = Identity::generate("baseline-client")
        .map_err(|e| BenchError::Setup(format!("certificate: {e}")))?;
    let config = tls::client_config(&identity, ServerTrust::Any)?;
    let tcp = TcpStream::connect(addr).await?;
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
