//! `bench-load`: the command line of the load generator. Everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Measure a real headless server-tui on 127.0.0.1: pairing, reconnects, echo beside a
/// plain-TLS baseline, and many simultaneous clients. Prints a Markdown report on stdout and
/// progress on stderr. Exit codes: 0 done, 1 a measurement failed, 2 usage.
#[derive(Debug, Parser)]
#[command(name = "bench-load", version, about, long_about = None)]
struct Cli {
    /// A shorter run with the same shape (fewer repetitions and requests).
    #[arg(long)]
    quick: bool,
    /// The server-tui binary to measure (default: the one next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Repetitions of every measurement.
    #[arg(long)]
    reps: Option<usize>,
    /// Comma-separated sizes of the many-clients runs, e.g. 1000,10000.
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
    /// Folder for the temporary state folders (default: the system's temporary folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Only this part (after the pairings it needs), e.g. to profile one path.
    #[arg(long, value_enum)]
    only: Option<bench::Phase>,
    /// Pin the server processes (server-tui, the baseline servers) to one half of the CPUs
    /// and this harness to the other, the same for ours and the baseline (the default with 2
    /// CPUs or more: servers on CPU 1, harness on CPU 0).
    #[arg(long, overrides_with = "no_pin")]
    pin: bool,
    /// Let the scheduler place every process.
    #[arg(long, overrides_with = "pin")]
    no_pin: bool,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Be a baseline server instead (how the harness starts them as their own process): print
    /// the port on stdout, serve on 127.0.0.1 until stdin closes.
    #[arg(long, value_enum, hide = true)]
    serve_baseline: Option<bench::baseline::Kind>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(kind) = cli.serve_baseline {
        return match bench::baseline::serve(kind) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-load --serve-baseline {}: {e}", kind.name());
                ExitCode::from(1)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-load: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(harness(cli))
}

async fn harness(cli: Cli) -> ExitCode {
    let Some(server_bin) = cli.server_bin.clone().or_else(bench::sibling_server_bin) else {
        eprintln!(
            "bench-load: no server-tui next to this executable; build it (cargo build --release -p server-tui) or pass --server-bin"
        );
        return ExitCode::from(2);
    };
    let mut opts = if cli.quick {
        bench::Options::quick(server_bin)
    } else {
        bench::Options::standard(server_bin)
    };
    if let Some(r) = cli.reps {
        opts.reps = r.max(1);
    }
    if let Some(c) = cli.clients {
        opts.clients = c;
    }
    opts.work_dir = cli.work_dir;
    opts.baseline_bin = std::env::current_exe().ok();
    opts.only = cli.only;
    opts.pin = match (cli.pin, cli.no_pin) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let report = match bench::run(&opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-load: {e}");
            return ExitCode::from(1);
        }
    };
    print!("{}\n{}", report.machine_markdown(), report.markdown());
    for w in &report.server_warnings {
        println!("\nserver warning: {w}");
    }
    if let Some(path) = cli.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("bench-load: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
