//! Streaming runs: bytes through a `cat` task (stdin to stdout), bytes out of a task that
//! only writes, and the overhead of one run of `/bin/true`; beside plain TLS moving the same
//! bytes the same way ([`crate::baseline`]). Within every repetition ours runs and then the
//! baseline, so each repetition is one pair for the ratios.
//!
//! The server runs with its own configuration file holding those three tasks. Every byte is
//! checked: `cat` must give back exactly what it got, and the writer exactly as many zeros as
//! asked for.

use std::path::Path;
use std::time::{Duration, Instant};

use csc_shared::client::{Client, ClientOptions, RunEvent, RunHandle};
use csc_shared::message::{OutputStream, RunStatus};
use serde::Serialize;

use crate::baseline::{BaselineServer, EchoClient, Kind, download};
use crate::server::{Launch, ServerProc};
use crate::stats::{Latency, Ratios, Spread};
use crate::{BenchError, Options, within};

/// The tasks the streams phase runs.
pub const CONFIG: &str = r#"# Tasks of the benchmark's streams phase.
[tasks.cat]
description = "Send back what it reads"
command = ["/bin/cat"]
stdin = true
max_stdin = 4000000000
max_output = 4000000000

[tasks.zeros]
description = "Write this many zeros"
command = ["/usr/bin/head", "-c", "{bytes}", "/dev/zero"]
args = [{ name = "bytes", pattern = "^[0-9]{1,10}$" }]
max_output = 4000000000

[tasks.true]
description = "Do nothing"
command = ["/bin/true"]
"#;

/// What the streams phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct StreamFigures {
    /// Bytes through `cat` per repetition.
    pub cat_bytes: usize,
    /// `cat` throughput, MB/s (bytes through / time).
    pub cat: Spread,
    /// The same bytes echoed over plain TLS, MB/s.
    pub base_cat: Spread,
    /// Bytes written by the writer task per repetition.
    pub out_bytes: usize,
    /// Writer throughput, MB/s.
    pub out: Spread,
    /// The same bytes sent one way over plain TLS, MB/s.
    pub base_out: Spread,
    /// `cat` / its baseline, per repetition (an alternated pair).
    pub cat_ratio: Ratios,
    /// The writer / its baseline, per repetition.
    pub out_ratio: Ratios,
    /// One run of `/bin/true`: from asking to its end.
    pub spawn: Latency,
    /// One run of `/bin/true`: from asking to `run_started` (the program was spawned), the
    /// first thing the server sends for a run.
    pub spawn_started: Latency,
}

fn mb_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// Read a run to its end; the stdout bytes seen are passed to `check`.
async fn drain(
    run: &mut RunHandle,
    mut check: impl FnMut(&[u8]) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    loop {
        match run.next().await {
            Some(RunEvent::Started { .. }) => {}
            Some(RunEvent::Output {
                stream: OutputStream::Stdout,
                data,
            }) => check(&data)?,
            Some(RunEvent::Output { data, .. }) => {
                return Err(BenchError::Mismatch(format!(
                    "unexpected stderr: {}",
                    String::from_utf8_lossy(&data)
                )));
            }
            Some(RunEvent::Exit { status, .. }) => {
                return if status == (RunStatus::Exited { code: 0 }) {
                    Ok(())
                } else {
                    Err(BenchError::Mismatch(format!("the run ended {status:?}")))
                };
            }
            Some(RunEvent::Lost { reason }) => {
                return Err(BenchError::Mismatch(format!("the run was lost: {reason}")));
            }
            None => {
                return Err(BenchError::Mismatch(
                    "the run ended without a status".into(),
                ));
            }
        }
    }
}

/// A deterministic, not-compressible-looking pattern of `n` bytes.
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

/// Run the streams phase against a fresh server whose state lives in `dir`.
pub async fn run(opts: &Options, dir: &Path) -> Result<StreamFigures, BenchError> {
    let config = dir.join("streams.toml");
    std::fs::write(&config, CONFIG)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))?;
    }
    let launch = Launch {
        args: vec!["--config".into(), config.display().to_string()],
    };
    let state = dir.join("streams-server");
    let srv = ServerProc::start_with(
        &opts.server_bin,
        &state,
        &dir.join("streams.stderr"),
        &launch,
    )
    .await?;
    let cdir = dir.join("streams-client");
    let client = Client::open(&cdir, "bench-streams", ClientOptions::default())?;
    let mut pairing = client.start_pairing(srv.addr()).await?;
    let code = srv
        .codes()
        .code_for(&client.id(), Duration::from_secs(30))
        .await?;
    pairing.submit(&code).await?;
    let session = pairing.into_session()?;
    let handle = session.handle();
    let limit = Duration::from_secs(300);
    let baseline_bin = opts.baseline_bin()?;
    let echo = BaselineServer::start(&baseline_bin, Kind::Echo).await?;
    let source = BaselineServer::start(&baseline_bin, Kind::Source).await?;

    let data = pattern(opts.stream_bytes);
    let (mut cat, mut out) = (Vec::new(), Vec::new());
    let (mut base_cat, mut base_out) = (Vec::new(), Vec::new());
    let (mut spawn, mut first) = (Vec::new(), Vec::new());
    for rep in 0..opts.reps {
        opts.progress(format!("streams: repetition {}/{}", rep + 1, opts.reps));
        // cat: write and read at once; every byte must come back in order.
        let started = Instant::now();
        let mut run = handle
            .run("cat", vec![], csc_shared::client::run::DEFAULT_WINDOW)
            .await?;
        let input = run.input();
        let feed = {
            let data = data.clone();
            async move {
                input.write(&data).await?;
                input.close();
                Ok::<(), BenchError>(())
            }
        };
        let mut at = 0usize;
        let read = drain(&mut run, |chunk| {
            if data.get(at..at + chunk.len()) != Some(chunk) {
                return Err(BenchError::Mismatch(format!(
                    "cat changed the bytes at {at}"
                )));
            }
            at += chunk.len();
            Ok(())
        });
        within("cat", limit, async {
            tokio::try_join!(feed, read).map(|_| ())
        })
        .await?;
        if at != data.len() {
            return Err(BenchError::Mismatch(format!(
                "cat gave back {at} of {} bytes",
                data.len()
            )));
        }
        cat.push(mb_s(data.len(), started.elapsed()));

        // The same bytes echoed over plain TLS, 16 KiB frames, 16 in flight.
        let mut c = EchoClient::connect(echo.addr()).await?;
        let chunk = 16 * 1024;
        let frames = data.len().div_ceil(chunk);
        let took = within(
            "baseline cat",
            limit,
            c.pipelined(&data[..chunk.min(data.len())], frames, 16),
        )
        .await?;
        base_cat.push(mb_s(frames * chunk.min(data.len()), took));

        // The writer: zeros, counted.
        let n = opts.stream_out_bytes;
        let started = Instant::now();
        let mut run = handle
            .run(
                "zeros",
                vec![n.to_string()],
                csc_shared::client::run::DEFAULT_WINDOW,
            )
            .await?;
        let mut got = 0usize;
        within(
            "zeros",
            limit,
            drain(&mut run, |chunk| {
                if chunk.iter().any(|&b| b != 0) {
                    return Err(BenchError::Mismatch(
                        "the writer sent non-zero bytes".into(),
                    ));
                }
                got += chunk.len();
                Ok(())
            }),
        )
        .await?;
        if got != n {
            return Err(BenchError::Mismatch(format!(
                "the writer sent {got} of {n} bytes"
            )));
        }
        out.push(mb_s(n, started.elapsed()));

        // The same bytes sent one way over plain TLS.
        let took = within("baseline writer", limit, download(source.addr(), n)).await?;
        base_out.push(mb_s(n, took));

        // /bin/true, one after another: to its first message (the program started) and to
        // its end (the program was reaped and its group found empty).
        for _ in 0..opts.spawns {
            let asked = Instant::now();
            let mut run = handle
                .run("true", vec![], csc_shared::client::run::DEFAULT_WINDOW)
                .await?;
            match within("true", limit, async { Ok(run.next().await) }).await? {
                Some(RunEvent::Started { .. }) => first.push(asked.elapsed()),
                other => {
                    return Err(BenchError::Mismatch(format!(
                        "true began with {other:?}, not started"
                    )));
                }
            }
            within("true", limit, drain(&mut run, |_| Ok(()))).await?;
            spawn.push(asked.elapsed());
        }
    }
    opts.progress("streams: stopping the server");
    // The session ends once no handle on it is left.
    drop(handle);
    session.close().await;
    srv.stop().await?;
    echo.stop().await?;
    source.stop().await?;
    Ok(StreamFigures {
        cat_bytes: data.len(),
        cat: Spread::of(&cat),
        base_cat: Spread::of(&base_cat),
        out_bytes: opts.stream_out_bytes,
        out: Spread::of(&out),
        base_out: Spread::of(&base_out),
        cat_ratio: Ratios::of(&cat, &base_cat),
        out_ratio: Ratios::of(&out, &base_out),
        spawn: Latency::of(&spawn),
        spawn_started: Latency::of(&first),
    })
}
