//! The report: the machine, every figure, and a Markdown table of them with ratios to the
//! plain-TLS baseline and the targets beside them. Formatting only. A ratio to the
//! baseline is the median over alternated pairs (ours, then the baseline, in one repetition)
//! with the smallest and largest pair, except where marked pooled (p99 over every sample) and
//! for CPU time (totals over the phase).

use std::fmt::Write;

use serde::Serialize;

use crate::many::ManyFigures;
use crate::pairing::PairingFigures;
use crate::reconnect::ReconnectFigures;
use crate::stats::{Latency, Ratios, Spread};
use crate::tasks::TaskFigures;

/// Where the figures were measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs this process was allowed to use when the run started.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// /proc/loadavg when the run started.
    pub load_before: String,
    /// /proc/loadavg when it ended.
    pub load_after: String,
    /// Open-files limit in force.
    pub fd_limit: u64,
    /// Which CPUs the servers and the harness ran on.
    pub placement: crate::pin::Placement,
}

impl Machine {
    /// Describe this machine now.
    pub fn detect(load_before: String, fd_limit: u64, placement: crate::pin::Placement) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            // What the run could use, not what the pinned harness can now.
            nproc: match placement.allowed.len() {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            load_before,
            load_after: load_average(),
            fd_limit,
            placement,
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Pairing.
    pub pairing: PairingFigures,
    /// Reconnecting (absent when not run).
    pub reconnect: Option<ReconnectFigures>,
    /// Echo and ping on one session, with the baseline (absent when not run).
    pub tasks: Option<TaskFigures>,
    /// Streaming runs, with the baseline (absent when not run).
    pub streams: Option<crate::streams::StreamFigures>,
    /// The agent against the link, and `send` with and without it (absent when not run).
    pub agent: Option<crate::agent::AgentFigures>,
    /// Many clients, per N.
    pub many: Vec<ManyFigures>,
    /// Warnings the server printed during the run.
    pub server_warnings: Vec<String>,
}

fn ms(us: f64) -> String {
    let v = us / 1000.0;
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn lat(l: &Latency) -> String {
    format!(
        "p50 {} · p99 {} (min {}, max {})",
        ms(l.p50_us),
        ms(l.p99_us),
        ms(l.min_us),
        ms(l.max_us)
    )
}

/// An integer with thousands separators.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        count(v.round() as u64)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn spread(s: &Spread, unit: &str) -> String {
    format!("{} {unit} ({}–{})", num(s.median), num(s.min), num(s.max))
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn ratio(ours: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}×", ours / base)
    } else {
        "–".into()
    }
}

/// Ratios over alternated pairs: their median, and the smallest and largest pair.
fn ratios(r: &Ratios) -> String {
    match r.pairs.len() {
        0 => "–".into(),
        1 => format!("{:.2}× (1 pair)", r.median),
        n => format!(
            "{:.2}× ({:.2}–{:.2} over {n} pairs)",
            r.median, r.min, r.max
        ),
    }
}

impl Report {
    /// The machine and the run, as Markdown lines.
    pub fn machine_markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "- machine: {} × {}, kernel {}, open-files limit {}\n\
             - load average (1/5/15 min): {} before, {} after\n\
             - CPU placement: {}\n",
            m.nproc,
            m.cpu,
            m.kernel,
            m.fd_limit,
            m.load_before,
            m.load_after,
            m.placement.describe(),
        );
        if let Some(t) = &self.tasks {
            let _ = writeln!(
                out,
                "- cipher suite: ours {}, baseline {}",
                t.suite, t.base_suite
            );
        }
        out
    }

    /// Every figure as one Markdown table.
    pub fn markdown(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| figure | measured | plain TLS baseline | ratio | target |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|");
        let row = |t: &mut String, a: &str, b: String, c: String, d: String, e: &str| {
            let _ = writeln!(t, "| {a} | {b} | {c} | {d} | {e} |");
        };
        let p = &self.pairing;
        row(
            &mut t,
            &format!(
                "pairing, request → stored token ({} samples)",
                p.latency.samples
            ),
            lat(&p.latency),
            "–".into(),
            "–".into(),
            "p50 < 20 ms",
        );
        row(
            &mut t,
            &format!("pairings per second, {} at once", p.workers),
            spread(&p.per_sec, "/s"),
            "–".into(),
            "–".into(),
            "",
        );
        if let Some(r) = &self.reconnect {
            row(
                &mut t,
                &format!(
                    "reconnect, TCP → authenticated session ({} samples)",
                    r.latency.samples
                ),
                lat(&r.latency),
                "–".into(),
                "–".into(),
                "p50 < 5 ms",
            );
            row(
                &mut t,
                &format!("sessions opened per second, {} loops at once", r.workers),
                spread(&r.per_sec, "/s"),
                "–".into(),
                "–".into(),
                "",
            );
        }
        if let Some(tasks) = &self.tasks {
            for e in &tasks.echo {
                row(
                    &mut t,
                    &format!(
                        "echo {}, one in flight ({} samples)",
                        size(e.size),
                        e.rtt.samples
                    ),
                    lat(&e.rtt),
                    lat(&e.base_rtt),
                    format!(
                        "p50 {} · p99 {} (pooled)",
                        ratios(&e.rtt_ratio),
                        ratio(e.rtt.p99_us, e.base_rtt.p99_us)
                    ),
                    "≤ 1.5×",
                );
                row(
                    &mut t,
                    &format!("echo {}, pipelined ({} in flight)", size(e.size), e.window),
                    format!(
                        "{}; {} MB/s",
                        spread(&e.rate, "req/s"),
                        num(e.mb_per_sec(e.rate.median))
                    ),
                    format!(
                        "{}; {} MB/s",
                        spread(&e.base_rate, "req/s"),
                        num(e.mb_per_sec(e.base_rate.median))
                    ),
                    ratios(&e.rate_ratio),
                    // The channel-speed issue's targets: 0.5× for small requests, 0.8× for
                    // large ones.
                    if e.size <= 1024 {
                        "≥ 0.5×"
                    } else {
                        "≥ 0.8×"
                    },
                );
                row(
                    &mut t,
                    &format!(
                        "echo {}, same messages without the client engine",
                        size(e.size)
                    ),
                    format!(
                        "one in flight: p50 {} · p99 {}; pipelined: {}",
                        ms(e.raw_rtt.p50_us),
                        ms(e.raw_rtt.p99_us),
                        spread(&e.raw_rate, "req/s")
                    ),
                    "–".into(),
                    format!(
                        "p50 {} · p99 {} (pooled); pipelined {}",
                        ratios(&e.raw_rtt_ratio),
                        ratio(e.raw_rtt.p99_us, e.base_rtt.p99_us),
                        ratios(&e.raw_rate_ratio)
                    ),
                    "(diagnostic)",
                );
                row(
                    &mut t,
                    &format!(
                        "echo {}, pipelined: CPU per request, server + client",
                        size(e.size)
                    ),
                    format!("{:.1} + {:.1} µs", e.cpu.server_us, e.cpu.client_us),
                    format!(
                        "{:.1} + {:.1} µs",
                        e.cpu.base_server_us, e.cpu.base_client_us
                    ),
                    ratio(
                        e.cpu.server_us + e.cpu.client_us,
                        e.cpu.base_server_us + e.cpu.base_client_us,
                    ),
                    "(diagnostic)",
                );
            }
            row(
                &mut t,
                &format!("ping, one idle session ({} samples)", tasks.ping.samples),
                lat(&tasks.ping),
                "–".into(),
                "–".into(),
                "",
            );
        }
        if let Some(s) = &self.streams {
            row(
                &mut t,
                &format!("`send cat`: {} MiB stdin → stdout", s.cat_bytes >> 20),
                spread(&s.cat, "MB/s"),
                spread(&s.base_cat, "MB/s"),
                ratios(&s.cat_ratio),
                "≥ 0.5×",
            );
            row(
                &mut t,
                &format!("a task writing {} MiB to stdout", s.out_bytes >> 20),
                spread(&s.out, "MB/s"),
                spread(&s.base_out, "MB/s"),
                ratios(&s.out_ratio),
                "≥ 0.8×",
            );
            row(
                &mut t,
                &format!(
                    "one run of /bin/true, asked → started ({} samples)",
                    s.spawn_started.samples
                ),
                lat(&s.spawn_started),
                "–".into(),
                "–".into(),
                "",
            );
            row(
                &mut t,
                &format!(
                    "one run of /bin/true, asked → ended ({} samples)",
                    s.spawn.samples
                ),
                lat(&s.spawn),
                "–".into(),
                "–".into(),
                "",
            );
        }
        if let Some(a) = &self.agent {
            row(
                &mut t,
                &format!(
                    "ping through the agent, one in flight ({} samples)",
                    a.agent.samples
                ),
                lat(&a.agent),
                lat(&a.link),
                ratio(a.agent.p50_us, a.link.p50_us),
                "≤ 1.5× (baseline: the link in-process)",
            );
            match (&a.send_agent, &a.send_direct) {
                (Some(via), Some(direct)) => row(
                    &mut t,
                    &format!(
                        "`client-tui send ping`, start to exit, via the agent ({} samples)",
                        via.samples
                    ),
                    lat(via),
                    lat(direct),
                    ratio(via.p50_us, direct.p50_us),
                    "(baseline: --no-agent)",
                ),
                _ => row(
                    &mut t,
                    "`client-tui send ping`",
                    a.send_skipped.clone().unwrap_or_default(),
                    "–".into(),
                    "–".into(),
                    "",
                ),
            }
        }
        for m in &self.many {
            let n = count(m.n as u64);
            if let Some(why) = &m.skipped {
                row(
                    &mut t,
                    &format!("{n} clients"),
                    format!("not run: {why}"),
                    "–".into(),
                    "–".into(),
                    "",
                );
                continue;
            }
            row(
                &mut t,
                &format!("{n} clients: open all ({} identities)", m.identities),
                format!(
                    "{:.2} s ({} sessions/s)",
                    m.connect_all_s,
                    num(m.n as f64 / m.connect_all_s)
                ),
                "–".into(),
                "–".into(),
                if m.n >= 10_000 { "10,000 held" } else { "" },
            );
            row(
                &mut t,
                &format!("{n} clients: server memory per session"),
                format!(
                    "{:.1} KiB (RSS {} → {} MiB)",
                    m.bytes_per_session / 1024.0,
                    num(m.rss_before_kib as f64 / 1024.0),
                    num(m.rss_after_kib as f64 / 1024.0)
                ),
                "–".into(),
                "–".into(),
                "≤ 64 KiB",
            );
            row(
                &mut t,
                &format!(
                    "{n} clients: notice to all ({} notices)",
                    m.notice_all_ms.reps
                ),
                format!(
                    "last client after {}; median client after {}",
                    spread(&m.notice_all_ms, "ms"),
                    spread(&m.notice_median_ms, "ms")
                ),
                "–".into(),
                "–".into(),
                if m.n >= 10_000 { "< 1 s" } else { "" },
            );
            row(
                &mut t,
                &format!("{n} clients: ping under load ({} samples)", m.ping.samples),
                lat(&m.ping),
                "–".into(),
                "–".into(),
                "",
            );
        }
        t
    }
}
