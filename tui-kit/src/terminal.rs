//! The full-screen mode's plumbing: taking over the terminal (and giving it back on every exit
//! path and on panic), the draw–wait–update loop, and the process entry around it.
//!
//! Owns: the terminal and the loop. It decides nothing: messages go to the app untouched.

use std::future::Future;
use std::io;
use std::process::ExitCode;

use futures_util::FutureExt;
use ratatui::Frame;

use crate::event::{Events, TuiMsg};

/// Messages handled before a redraw at most; the screen shows the latest state of a batch.
pub const BATCH: usize = 512;

/// The full-screen terminal, given back when dropped, whatever the exit path.
pub struct TerminalGuard(ratatui::DefaultTerminal);

impl TerminalGuard {
    /// Take the terminal over. `ratatui::try_init` installs its panic hook on top of whatever
    /// hook is there, so a panic restores the terminal before the message is printed. On
    /// failure the terminal is given back before returning.
    pub fn init() -> io::Result<Self> {
        match ratatui::try_init() {
            Ok(t) => Ok(Self(t)),
            Err(e) => {
                ratatui::restore();
                Err(e)
            }
        }
    }

    /// Width and height, or 80×24 when the terminal does not say.
    pub fn size(&self) -> (u16, u16) {
        self.0
            .size()
            .map(|s| (s.width, s.height))
            .unwrap_or((80, 24))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Draw, wait, update, act, until `handle` returns `false` (quit) or the terminal goes away.
/// Messages already waiting are handled before drawing again: one frame per batch.
pub async fn drive<A, M: TuiMsg, E>(
    terminal: &mut TerminalGuard,
    app: &mut A,
    events: &mut Events<M, E>,
    draw: impl Fn(&A, &mut Frame),
    mut handle: impl FnMut(&mut A, M) -> bool,
) -> io::Result<()> {
    loop {
        terminal.0.draw(|f| draw(app, f))?;
        let Some(mut msg) = events.next().await else {
            return Ok(());
        };
        for _ in 0..BATCH {
            if !handle(app, msg) {
                return Ok(());
            }
            msg = match events.next().now_or_never() {
                Some(Some(next)) => next,
                Some(None) => return Ok(()),
                None => break,
            };
        }
    }
}

/// Run `main` on a new multi-threaded runtime and turn its outcome into the exit code:
/// `Err((code, message))` prints `NAME: message` on stderr and exits with `code`; a runtime
/// that cannot start exits with 1.
pub fn block_on(name: &str, main: impl Future<Output = Result<(), (u8, String)>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::from(0),
        Err((code, message)) => {
            eprintln!("{name}: {message}");
            ExitCode::from(code)
        }
    }
}

/// Colour unless `no_color` (`--no-color`) or a non-empty `NO_COLOR` (<https://no-color.org>).
pub fn wants_color(no_color: bool) -> bool {
    !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM: what stops a server or an agent. The
/// handlers are in place when this returns, not when the future is first polled: a SIGTERM
/// sent right after the program said it is ready must stop it cleanly, not kill it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
