//! A program that embeds the server engine with a task of its own, written in Rust: `wc`
//! reads what the client streams to its stdin, reports progress on stderr as it goes, and
//! ends with the counts on stdout and exit code 0. Beside it are the built-ins, and the
//! operator's configured tasks when a configuration file is given.
//!
//! ```sh
//! cargo run -p csc-shared --example embed_server -- /tmp/embed-state [server.toml]
//! client-tui pair --server 127.0.0.1:7979     # type the code this program prints
//! client-tui send wc < /etc/services
//! ```
//!
//! It listens on 127.0.0.1:7979 only and answers no discovery, so nothing leaves the machine.
//! Ctrl-C stops it; runs in progress are stopped first.

use std::path::PathBuf;

use csc_shared::server::events::{self, DEFAULT_CAPACITY};
use csc_shared::server::tasks::config;
use csc_shared::server::{
    RunIo, Server, ServerConfig, ServerEvent, TaskAbout, TaskContext, TaskError, Tasks,
};

/// Count lines, words and bytes of stdin, as `wc` does.
async fn wc(ctx: TaskContext, args: Vec<String>, mut io: RunIo) -> Result<i32, TaskError> {
    if !args.is_empty() {
        return Err(TaskError::new("bad_args", "wc takes no arguments"));
    }
    let (mut lines, mut words, mut bytes) = (0u64, 0u64, 0u64);
    let mut in_word = false;
    let mut next_report = 1u64 << 20;
    while let Some(chunk) = io.read_stdin().await {
        for &b in chunk.iter() {
            lines += u64::from(b == b'\n');
            let space = b.is_ascii_whitespace();
            words += u64::from(in_word && space);
            in_word = !space;
        }
        bytes += chunk.len() as u64;
        if bytes >= next_report {
            // Writes wait for the client's credit: a client that stops reading holds this
            // task back, not the server's memory.
            io.stderr(format!("{} MiB read\n", bytes >> 20)).await?;
            next_report += 1 << 20;
        }
    }
    words += u64::from(in_word);
    io.stdout(format!(
        "{lines} {words} {bytes} (for {})\n",
        ctx.client_name
    ))
    .await?;
    Ok(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv = std::env::args_os().skip(1);
    let state: PathBuf = argv
        .next()
        .ok_or("usage: embed_server STATE_DIR [CONFIG]")?
        .into();
    let config_file = argv.next().map(PathBuf::from);

    let mut tasks = Tasks::with_builtins();
    tasks.register_streaming(
        "wc",
        TaskAbout {
            description: "Count the lines, words and bytes of stdin".into(),
            stdin: true,
            ..TaskAbout::default()
        },
        wc,
    );
    let (tx, mut rx) = events::channel(DEFAULT_CAPACITY);
    let server = Server::open(
        &state,
        ServerConfig {
            name: "embedded".into(),
            ..ServerConfig::default()
        },
        tasks,
        Some(tx),
    )?;
    if let Some(path) = config_file {
        let reserved = server.registered_task_names();
        let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
        // A mistake names the file, the line and the field.
        server.set_config(config::load(
            &path,
            &reserved,
            csc_shared::server::effective_uid(),
        )?);
    }
    let names: Vec<String> = server.task_infos().into_iter().map(|t| t.name).collect();
    println!("tasks: {}", names.join(", "));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:7979").await?;
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                ServerEvent::PairRequest {
                    client_name, code, ..
                } => {
                    println!("{client_name} asks to pair: code {code}");
                }
                ServerEvent::TaskFinished {
                    client_name,
                    task,
                    status,
                    duration_ms,
                    ..
                } => println!("{client_name} ran {task}: {status:?} in {duration_ms} ms"),
                _ => {}
            }
        }
    });
    server
        .run(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
