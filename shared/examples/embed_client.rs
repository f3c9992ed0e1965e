//! A program that uses a paired server through the protocol crate, the way `client-tui send`
//! does: it opens a supervised link (which finds the server wherever it now is, and heals
//! when it is lost), runs one task as a stream, and prints its output as it comes.
//!
//! ```sh
//! client-tui pair --server 127.0.0.1          # once, typing the code the server shows
//! cargo run -p csc-shared --example embed_client -- count
//! ```
//!
//! It uses the client state folder `client-tui` uses (or `CSC_CLIENT_STATE_DIR`), and only
//! the saved addresses: no discovery, so nothing is sent beyond the server it paired with.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use csc_shared::client::{Client, ClientOptions, Link, LinkOptions, RunEvent};
use csc_shared::message::OutputStream;
use csc_shared::state::{Side, default_state_dir};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv = std::env::args().skip(1);
    let task = argv.next().unwrap_or_else(|| "ping".into());
    let args: Vec<String> = argv.collect();

    let dir = std::env::var_os(csc_shared::state::CLIENT_STATE_ENV)
        .map(Into::into)
        .or_else(|| default_state_dir(Side::Client))
        .ok_or("no state folder: set CSC_CLIENT_STATE_DIR")?;
    let client = Arc::new(Client::open(&dir, "embedded", ClientOptions::default())?);
    // The only paired server (pass an id prefix or a name to `select` to choose one).
    let server = client.select(None)?;
    let options = LinkOptions {
        discovery: None,
        ..LinkOptions::default()
    };
    let link = Link::start(client, server, options);

    // Wait up to 10 s for the link to connect, then start the task once.
    let mut run = link.run(&task, args, Duration::from_secs(10)).await?;
    let status = loop {
        match run.next().await {
            Some(RunEvent::Started { stdin }) => {
                if stdin {
                    // This example feeds no input: the program sees the end at once.
                    run.close_stdin();
                }
            }
            Some(RunEvent::Output { stream, data }) => match stream {
                OutputStream::Stdout => std::io::stdout().write_all(&data)?,
                OutputStream::Stderr => std::io::stderr().write_all(&data)?,
            },
            Some(RunEvent::Exit { status, result, .. }) => {
                if !result.is_null() {
                    println!("{result}");
                }
                break status;
            }
            Some(RunEvent::Lost { reason }) => return Err(format!("lost: {reason}").into()),
            None => return Err("the run ended without a status".into()),
        }
    };
    link.close().await;
    eprintln!("{task}: {status:?}");
    if status.success() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
