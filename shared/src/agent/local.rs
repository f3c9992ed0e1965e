//! The other end of the agent socket, for programs written in Rust: connect when an agent
//! serves the state folder, send request lines, read answer lines.
//!
//! Owns nothing but the connection: what the lines mean is [`super::proto`]'s and the
//! caller's (`client-tui send` drives a run through it).

use std::path::Path;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Connect to the agent serving the state folder `dir`: a sender and a receiver of lines,
/// for one task to feed while another reads. `None` when no agent serves it (no socket, or
/// nobody listening on it).
pub async fn connect(dir: &Path) -> Option<(AgentSender, AgentReceiver)> {
    let stream = UnixStream::connect(super::socket_path(dir)).await.ok()?;
    let (read, write) = stream.into_split();
    Some((
        AgentSender { write },
        AgentReceiver {
            lines: BufReader::new(read).lines(),
        },
    ))
}

/// Sends lines to the agent.
#[derive(Debug)]
pub struct AgentSender {
    write: OwnedWriteHalf,
}

impl AgentSender {
    /// Send one line.
    pub async fn send(&mut self, line: &Value) -> std::io::Result<()> {
        let mut text = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        text.push(b'\n');
        self.write.write_all(&text).await
    }
}

/// Reads the agent's lines.
#[derive(Debug)]
pub struct AgentReceiver {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
}

impl AgentReceiver {
    /// The next line; `None` when the agent closed the connection.
    pub async fn next(&mut self) -> std::io::Result<Option<Value>> {
        match self.lines.next_line().await? {
            None => Ok(None),
            Some(l) => serde_json::from_str(&l)
                .map(Some)
                .map_err(std::io::Error::other),
        }
    }
}
