//! The full-screen mode's driver: with the terminal and the loop from `tui_kit::terminal`,
//! feeds events to `App::update` and hands the app's actions to [`Net`].
//!
//! Owns: starting the app and the network side. It must not decide anything the app could
//! decide: keys and network news go to `App::update` untouched.

use std::sync::Arc;

use csc_shared::client::Client;
use tokio::sync::mpsc;
use tui_kit::Events;
use tui_kit::log::LogRouter;
use tui_kit::terminal::{TerminalGuard, drive};

use crate::app::{Action, App, Clock, Options};
use crate::cli::Cli;
use crate::net::Net;
use crate::{Failure, discovery_options, exit, ui};

/// Run the full-screen client until the person quits.
pub async fn run(client: Client, cli: &Cli, color: bool) -> Result<(), Failure> {
    let paired = client.servers()?;
    let client = Arc::new(client);
    let (tx, rx) = mpsc::unbounded_channel();
    LogRouter::attach(tx.clone());

    let mut terminal = match TerminalGuard::init() {
        Ok(t) => t,
        Err(e) => {
            LogRouter::detach();
            return Err(Failure::new(
                exit::FAILURE,
                format!("cannot use the terminal: {e} (try --no-tui)"),
            ));
        }
    };
    let size = terminal.size();
    let options = discovery_options(cli);
    let mut app = App::new(
        Options {
            name: client.name().to_string(),
            short: client.id().short(),
            color,
            discovery: options.is_some(),
            manual: cli.target.server.clone(),
            target: cli
                .target
                .server_id
                .clone()
                .or_else(|| cli.target.server_name.clone()),
        },
        Clock::now(),
        size,
        paired,
    );
    let mut net = Net::new(client, options, cli.port, cli.link.wait, tx);
    let mut events = Events::new(rx);
    for action in app.start() {
        net.perform(action);
    }
    let handle = |app: &mut App, msg| {
        for action in app.update(msg) {
            if action == Action::Quit {
                return false;
            }
            net.perform(action);
        }
        true
    };
    let result = drive(&mut terminal, &mut app, &mut events, ui::draw, handle)
        .await
        .map_err(|e| Failure::new(exit::FAILURE, format!("drawing failed: {e}")));
    LogRouter::detach();
    drop(terminal);
    net.shutdown().await;
    result
}
