//! Tasks on one session: `echo` round trips and pipelined throughput, each beside the same
//! echo over plain TLS ([`crate::baseline`]) in the same run, and `ping` on an idle session.
//!
//! Ours and the baseline alternate within every repetition, so background load hits both;
//! every ratio to the baseline is taken per repetition (an alternated pair) and summarised
//! over the pairs.
//! Payloads are printable ASCII, so the JSON carries them without escapes.

use std::time::{Duration, Instant};

use csc_shared::client::ClientError;
use csc_shared::client::Session;
use csc_shared::connection::Connection;
use csc_shared::frame::DEFAULT_MAX_FRAME;
use csc_shared::identity::Identity;
use csc_shared::message::Message;
use csc_shared::tls::{self, ServerTrust};
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::baseline::{BaselineServer, EchoClient, Kind, suite_name};
use crate::cpu::{baseline_ns, cpu_ns, own_ns};
use crate::server::ServerProc;
use crate::stats::{Latency, Ratios, Spread};
use crate::{BenchError, Member, Options, within};

/// Echo figures for one payload size.
#[derive(Debug, Clone, Serialize)]
pub struct EchoFigures {
    /// Payload bytes.
    pub size: usize,
    /// Requests in flight when pipelining.
    pub window: usize,
    /// One in flight, through the protocol.
    pub rtt: Latency,
    /// One in flight, plain TLS.
    pub base_rtt: Latency,
    /// Pipelined requests per second, through the protocol.
    pub rate: Spread,
    /// Pipelined echoes per second, plain TLS.
    pub base_rate: Spread,
    /// One in flight, our messages from one task without the client engine.
    pub raw_rtt: Latency,
    /// Pipelined, our messages from one task without the client engine.
    pub raw_rate: Spread,
    /// Round-trip p50 ours / baseline, per repetition (each repetition's own samples).
    pub rtt_ratio: Ratios,
    /// Pipelined rate ours / baseline, per repetition.
    pub rate_ratio: Ratios,
    /// Round-trip p50 without the client engine / baseline, per repetition.
    pub raw_rtt_ratio: Ratios,
    /// Pipelined rate without the client engine / baseline, per repetition.
    pub raw_rate_ratio: Ratios,
    /// CPU time per pipelined request (client engine), microseconds.
    pub cpu: CpuPerRequest,
}

/// Where the CPU time of a pipelined request goes, microseconds per request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuPerRequest {
    /// The server process, all threads (including its event output).
    pub server_us: f64,
    /// The client engine and the harness driving it.
    pub client_us: f64,
    /// The baseline echo server.
    pub base_server_us: f64,
    /// The baseline client.
    pub base_client_us: f64,
}

impl EchoFigures {
    /// Payload megabytes (10^6) per second in each direction, from a rate.
    pub fn mb_per_sec(&self, rate: f64) -> f64 {
        rate * self.size as f64 / 1e6
    }
}

/// Everything measured on one session.
#[derive(Debug, Clone, Serialize)]
pub struct TaskFigures {
    /// Cipher suite our session negotiated.
    pub suite: String,
    /// Cipher suite the baseline negotiated.
    pub base_suite: String,
    /// Echo per size.
    pub echo: Vec<EchoFigures>,
    /// `ping` on an idle session, one in flight.
    pub ping: Latency,
}

/// A payload of `size` printable bytes.
pub fn payload(size: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size)
        .map(|i| ALPHABET[i % ALPHABET.len()] as char)
        .collect()
}

async fn echo_once(session: &Session, text: &str) -> Result<(), BenchError> {
    let reply = session.request("echo", vec![text.to_string()]).await?;
    if reply.as_str() != Some(text) {
        return Err(BenchError::Mismatch(format!(
            "echo of {} bytes came back as {} bytes",
            text.len(),
            reply.as_str().map(str::len).unwrap_or(0)
        )));
    }
    Ok(())
}

async fn rtt(session: &Session, text: &str, n: usize) -> Result<Vec<Duration>, BenchError> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        echo_once(session, text).await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// `n` echoes with `window` in flight on `session`, as one application task would issue them.
async fn pipelined(
    session: &Session,
    text: &str,
    n: usize,
    window: usize,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|_| echo_once(session, text))
        .buffer_unordered(window)
        .try_for_each(|()| std::future::ready(Ok(())))
        .await?;
    Ok(started.elapsed())
}

async fn ping(session: &Session, n: usize) -> Result<Vec<Duration>, BenchError> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let reply = session.request("ping", Vec::new()).await?;
        if reply.as_str() != Some("pong") {
            return Err(BenchError::Mismatch(format!("ping answered {reply}")));
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// Our frames and messages on a TLS stream driven from one task, without the client engine's
/// driver task and channels: separates the engine's share of a figure from the server's.
struct RawSession {
    conn: Connection<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl RawSession {
    async fn open(m: &Member, srv: &ServerProc) -> Result<Self, BenchError> {
        let identity = m
            .client
            .store()
            .identity(m.client.name())
            .map_err(ClientError::from)?;
        let config = tls::client_config(&identity, ServerTrust::Pinned(srv.server_id()))?;
        let tcp = tokio::net::TcpStream::connect(srv.addr()).await?;
        tcp.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(tls::server_name(), tcp)
            .await?;
        // The encoding the handshake negotiated, as the client engine uses.
        let encoding = tls::encoding(stream.get_ref().1.alpn_protocol()).unwrap_or_default();
        let mut conn = Connection::new(stream, DEFAULT_MAX_FRAME);
        conn.set_encoding(encoding);
        conn.send(&Message::Auth {
            token: m.paired()?.token.clone(),
        })
        .await?;
        match conn.expect::<Message>(Duration::from_secs(15)).await? {
            Message::AuthOk { .. } => Ok(Self { conn, next_id: 0 }),
            other => Err(BenchError::Mismatch(format!(
                "expected auth_ok, got {other:?}"
            ))),
        }
    }

    async fn feed(&mut self, text: &str) -> Result<(), BenchError> {
        self.next_id += 1;
        let request = Message::Request {
            id: self.next_id,
            task: "echo".into(),
            args: vec![text.to_string()],
        };
        Ok(self.conn.feed(&request).await?)
    }

    fn check(reply: Option<Message>, text: &str) -> Result<(), BenchError> {
        match reply {
            Some(Message::Response {
                ok: true,
                result: serde_json::Value::String(s),
                ..
            }) if s == text => Ok(()),
            other => Err(BenchError::Mismatch(format!(
                "echo of {} bytes answered {:?}",
                text.len(),
                other.map(|m| m.kind())
            ))),
        }
    }

    async fn rtt(&mut self, text: &str, n: usize) -> Result<Vec<Duration>, BenchError> {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            self.feed(text).await?;
            self.conn.flush().await?;
            Self::check(self.conn.read().await?, text)?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    async fn pipelined(
        &mut self,
        text: &str,
        n: usize,
        window: usize,
    ) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let (mut sent, mut done) = (0, 0);
        while done < n {
            while sent < n && sent - done < window {
                self.feed(text).await?;
                sent += 1;
            }
            self.conn.flush().await?;
            Self::check(self.conn.read().await?, text)?;
            done += 1;
            // Take every reply already here before refilling the window.
            while done < sent {
                match self.conn.read::<Message>().now_or_never() {
                    Some(reply) => Self::check(reply?, text)?,
                    None => break,
                }
                done += 1;
            }
        }
        Ok(started.elapsed())
    }
}

/// The suite the server negotiates with the client engine's TLS configuration.
async fn server_suite(srv: &ServerProc) -> Result<String, BenchError> {
    let identity = Identity::generate("suite-probe")
        .map_err(|e| BenchError::Setup(format!("certificate: {e}")))?;
    let config = tls::client_config(&identity, ServerTrust::Pinned(srv.server_id()))?;
    let tcp = tokio::net::TcpStream::connect(srv.addr()).await?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(tls::server_name(), tcp)
        .await?;
    Ok(suite_name(stream.get_ref().1))
}

/// Measure echo and ping on a session of the first member, and the baseline beside it.
pub async fn run(
    opts: &Options,
    srv: &ServerProc,
    members: &[Member],
) -> Result<TaskFigures, BenchError> {
    let m = members
        .first()
        .ok_or_else(|| BenchError::Setup("no paired client".into()))?;
    let before = srv.counts().requests;
    let mut sent = 0u64;
    let session = m.client.connect_addr(m.paired()?, srv.addr()).await?;
    let echo_server = BaselineServer::start(&opts.baseline_bin()?, Kind::Echo).await?;
    let mut base = EchoClient::connect(echo_server.addr()).await?;
    let mut raw = RawSession::open(m, srv).await?;
    let suite = server_suite(srv).await?;
    let base_suite = base.suite();
    if suite != base_suite {
        return Err(BenchError::Mismatch(format!(
            "cipher suites differ: ours {suite}, baseline {base_suite}"
        )));
    }
    let limit = Duration::from_secs(300);

    // Warm both paths up (allocator, caches, TCP windows) before anything counts.
    let warm = payload(1024);
    rtt(&session, &warm, 100).await?;
    base.rtt(warm.as_bytes(), 100).await?;
    raw.rtt(&warm, 100).await?;
    sent += 200;

    let mut echo = Vec::new();
    for plan in &opts.echo {
        let text = payload(plan.size);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut rate, mut base_rate) = (Vec::new(), Vec::new());
        let (mut raw_rtt, mut raw_rate) = (Vec::new(), Vec::new());
        // The p50 of each repetition's round trips, for the per-pair ratios.
        let (mut p50, mut base_p50, mut raw_p50) = (Vec::new(), Vec::new(), Vec::new());
        let mut cpu = [0u64; 4];
        for rep in 0..opts.reps {
            opts.progress(format!(
                "echo {} B: repetition {}/{}",
                plan.size,
                rep + 1,
                opts.reps
            ));
            let samples = within("echo", limit, rtt(&session, &text, plan.rtt_requests)).await?;
            p50.push(Latency::of(&samples).p50_us);
            ours.extend(samples);
            let samples = within(
                "baseline echo",
                limit,
                base.rtt(text.as_bytes(), plan.rtt_requests),
            )
            .await?;
            base_p50.push(Latency::of(&samples).p50_us);
            theirs.extend(samples);
            let n = plan.pipelined_requests;
            let (srv0, own0) = (cpu_ns(srv.pid(), |_| true), own_ns());
            let took = within(
                "pipelined echo",
                limit,
                pipelined(&session, &text, n, opts.window),
            )
            .await?;
            cpu[0] += cpu_ns(srv.pid(), |_| true).saturating_sub(srv0);
            cpu[1] += own_ns().saturating_sub(own0);
            rate.push(n as f64 / took.as_secs_f64());
            let (base0, own0) = (baseline_ns(echo_server.pid()), own_ns());
            let took = within(
                "baseline pipelined echo",
                limit,
                base.pipelined(text.as_bytes(), n, opts.window),
            )
            .await?;
            cpu[2] += baseline_ns(echo_server.pid()).saturating_sub(base0);
            cpu[3] += own_ns().saturating_sub(own0);
            base_rate.push(n as f64 / took.as_secs_f64());
            let samples = within("raw echo", limit, raw.rtt(&text, plan.rtt_requests)).await?;
            raw_p50.push(Latency::of(&samples).p50_us);
            raw_rtt.extend(samples);
            let took = within(
                "raw pipelined echo",
                limit,
                raw.pipelined(&text, n, opts.window),
            )
            .await?;
            raw_rate.push(n as f64 / took.as_secs_f64());
            sent += 2 * (plan.rtt_requests + n) as u64;
        }
        echo.push(EchoFigures {
            size: plan.size,
            window: opts.window,
            rtt: Latency::of(&ours),
            base_rtt: Latency::of(&theirs),
            rate: Spread::of(&rate),
            base_rate: Spread::of(&base_rate),
            raw_rtt: Latency::of(&raw_rtt),
            raw_rate: Spread::of(&raw_rate),
            rtt_ratio: Ratios::of(&p50, &base_p50),
            rate_ratio: Ratios::of(&rate, &base_rate),
            raw_rtt_ratio: Ratios::of(&raw_p50, &base_p50),
            raw_rate_ratio: Ratios::of(&raw_rate, &base_rate),
            cpu: {
                let per = |ns: u64| {
                    ns as f64 / 1000.0 / (opts.reps * plan.pipelined_requests).max(1) as f64
                };
                CpuPerRequest {
                    server_us: per(cpu[0]),
                    client_us: per(cpu[1]),
                    base_server_us: per(cpu[2]),
                    base_client_us: per(cpu[3]),
                }
            },
        });
    }

    let mut pings = Vec::new();
    for _ in 0..opts.reps {
        pings.extend(within("ping", limit, ping(&session, opts.pings)).await?);
        sent += opts.pings as u64;
    }
    session.close().await;
    raw.conn.close().await;
    drop(base);
    echo_server.stop().await?;
    srv.wait_counts("every request reported", Duration::from_secs(30), |c| {
        c.requests - before >= sent
    })
    .await?;
    let seen = srv.counts().requests - before;
    if seen != sent {
        return Err(BenchError::Mismatch(format!(
            "{sent} requests sent, server reported {seen}"
        )));
    }
    Ok(TaskFigures {
        suite,
        base_suite,
        echo,
        ping: Latency::of(&pings),
    })
}
