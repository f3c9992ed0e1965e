//! The program of a configured task, from spawn to reaping: its own process group, a clean
//! environment, its pipes fed and drained within the run's credit, and a stop that leaves
//! nothing behind.
//!
//! Owns signals and waiting. A stop sends SIGTERM to the whole group, SIGKILL after the grace
//! period, and waits for the program; when the program ends by itself, whatever it left
//! running in its group is stopped the same way. It must not decide why a run stops (the
//! run's stop signal says) nor what a value means (`command` placed them already).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::time::Instant;

use super::TaskContext;
use super::command::{CommandTask, DEFAULT_PATH, Prepared};
use crate::message::{OutputStream, RunStatus, StopReason};
use crate::server::runs::{MAX_CHUNK, RunIo, RunStopped};

/// Make this process the reaper of its orphaned descendants (Linux `PR_SET_CHILD_SUBREAPER`),
/// so that what a task's program leaves behind is re-parented here, where the server reaps it,
/// rather than to an init that may not. `server-tui` calls it at start; an embedding program
/// may. Harmless to call twice.
pub fn adopt_orphans() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A process group the server made: signalled as a whole, killed when dropped unless it is
/// known to be gone.
#[derive(Debug)]
pub(crate) struct Group {
    pgid: i32,
    gone: bool,
}

impl Group {
    fn new(pgid: i32) -> Self {
        Self {
            pgid,
            // Never signal groups 0 or 1 (`kill(-1)` reaches every process).
            gone: pgid <= 1,
        }
    }

    fn signal(&self, sig: i32) {
        if !self.gone {
            // SAFETY: kill has no memory effects; the group id is one this server created.
            unsafe {
                libc::kill(-self.pgid, sig);
            }
        }
    }

    /// Whether any process is left in the group.
    fn alive(&self) -> bool {
        if self.gone {
            return false;
        }
        // SAFETY: signal 0 only checks for existence.
        let rc = unsafe { libc::kill(-self.pgid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    /// Reap members re-parented to this process ([`adopt_orphans`]). Call only once the
    /// program itself was reaped, so its status is not taken from tokio.
    fn reap(&self) {
        if self.gone {
            return;
        }
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes only to `status`.
            let pid = unsafe { libc::waitpid(-self.pgid, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
        }
    }

    /// Wait until the group is empty, reaping what is ours, until `deadline`.
    async fn wait_empty(&mut self, deadline: Instant) -> bool {
        loop {
            self.reap();
            if !self.alive() {
                self.gone = true;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM to the group, SIGKILL to what is left after `grace`, and wait for the program
    /// (when not yet reaped) and for the group to empty.
    async fn terminate(&mut self, child: Option<&mut Child>, grace: Duration) {
        if self.gone {
            if let Some(c) = child {
                let _ = c.wait().await;
            }
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        let mut child = child;
        let leader_done = match child.as_deref_mut() {
            Some(c) => tokio::time::timeout_at(deadline, c.wait()).await.is_ok(),
            None => true,
        };
        if leader_done && self.wait_empty(deadline).await {
            return;
        }
        self.signal(libc::SIGKILL);
        if let Some(c) = child {
            // SIGKILL cannot be ignored; only a process stuck in the kernel could outlast this.
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
        self.wait_empty(Instant::now() + Duration::from_secs(1))
            .await;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The run was dropped without a stop (the runtime is going away): leave nothing running.
        self.signal(libc::SIGKILL);
    }
}

/// A started program.
pub(crate) struct Running {
    child: Child,
    group: Group,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

/// Start `task` with the values `prepared` placed, for the client in `ctx`.
pub(crate) fn spawn(
    task: &CommandTask,
    prepared: &Prepared,
    ctx: &TaskContext,
) -> std::io::Result<Running> {
    let mut cmd = tokio::process::Command::new(&task.program);
    cmd.args(&prepared.argv)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("CSC_CLIENT_ID", ctx.client_id.to_hex())
        .env("CSC_CLIENT_NAME", &ctx.client_name)
        .envs(task.env.iter().map(|(k, v)| (k, v)))
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .current_dir(task.cwd.as_deref().unwrap_or(std::path::Path::new("/")))
        .stdin(if task.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(user) = &task.user {
        // Setting the uid also drops supplementary groups: the program has the user's uid
        // and primary group, and nothing of the server's.
        cmd.uid(user.uid).gid(user.gid);
    }
    let mut child = cmd.spawn()?;
    let pgid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("the program ended before it could be watched"))?;
    Ok(Running {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        group: Group::new(pgid),
        child,
    })
}

/// Read into `buf` from `pipe`; `Ok(0)` at its end.
async fn read_pipe<R: AsyncReadExt + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Add to the `n` bytes just read into `buf` what else the pipe holds already, without
/// waiting. Programs write in small pieces (`head` and `cat` 4 KiB at a time); a chunk per
/// piece would cost a message, a TLS record and a wake-up each.
fn top_up<R: AsyncReadExt + Unpin>(pipe: &mut Option<R>, buf: &mut [u8], mut n: usize) -> usize {
    use futures_util::FutureExt;
    while n < buf.len() {
        match read_pipe(pipe, &mut buf[n..]).now_or_never() {
            Some(Ok(more)) if more > 0 => n += more,
            // Empty for now, at its end, or failed: the next read says which.
            _ => break,
        }
    }
    n
}

fn status_of(exit: ExitStatus) -> RunStatus {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = exit.signal() {
            return RunStatus::Signaled { signal };
        }
    }
    RunStatus::Exited {
        code: exit.code().unwrap_or(-1),
    }
}

impl Running {
    /// Feed and drain the program until it ends or the run is stopped (by its stop signal,
    /// or `deadline`: `timeout`); nothing of it is left running when this returns.
    pub(crate) async fn drive(
        mut self,
        io: &mut RunIo,
        deadline: Instant,
        grace: Duration,
    ) -> RunStatus {
        let stop = io.stop().clone();
        let mut out_buf = vec![0u8; MAX_CHUNK];
        let mut err_buf = vec![0u8; MAX_CHUNK];
        // A chunk of stdin on its way into the program, and how much of it went in.
        let mut feeding: Option<(bytes::Bytes, usize)> = None;
        // The program closed its stdin: what the client still sends is taken and dropped, so
        // it never waits for credit that would not come.
        let mut discard_stdin = false;
        let mut exit: Option<ExitStatus> = None;
        // What the program left in its group after it ended, being stopped meanwhile.
        let mut leftovers: Option<tokio::task::JoinHandle<()>> = None;
        let reason = loop {
            if exit.is_some() && self.stdout.is_none() && self.stderr.is_none() {
                break None;
            }
            let room = io.writable_now();
            let pipes_open = self.stdout.is_some() || self.stderr.is_some();
            let stdin_open = self.stdin.is_some() || discard_stdin;
            tokio::select! {
                biased;
                r = stop.wait() => break Some(r),
                _ = tokio::time::sleep_until(deadline) => {
                    stop.request(StopReason::Timeout);
                    break stop.reason();
                }
                status = self.child.wait(), if exit.is_none() => {
                    let status = match status {
                        Ok(s) => s,
                        Err(_) => break Some(StopReason::Other),
                    };
                    exit = Some(status);
                    // What it started and left behind stops with it; its output still
                    // drains meanwhile.
                    let mut group = Group { pgid: self.group.pgid, gone: self.group.gone };
                    self.group.gone = true;
                    leftovers = Some(tokio::spawn(async move {
                        group.terminate(None, grace).await;
                    }));
                }
                n = read_pipe(&mut self.stdout, &mut out_buf[..room.max(1)]), if room > 0 => {
                    match n {
                        Ok(n) if n > 0 => {
                            let n = top_up(&mut self.stdout, &mut out_buf[..room.max(1)], n);
                            if let Err(RunStopped(r)) = io.send_chunk(OutputStream::Stdout, out_buf[..n].to_vec()).await {
                                break Some(r);
                            }
                        }
                        _ => self.stdout = None,
                    }
                }
                n = read_pipe(&mut self.stderr, &mut err_buf[..room.max(1)]), if room > 0 => {
                    match n {
                        Ok(n) if n > 0 => {
                            let n = top_up(&mut self.stderr, &mut err_buf[..room.max(1)], n);
                            if let Err(RunStopped(r)) = io.send_chunk(OutputStream::Stderr, err_buf[..n].to_vec()).await {
                                break Some(r);
                            }
                        }
                        _ => self.stderr = None,
                    }
                }
                _ = io.credit(), if room == 0 && pipes_open => {}
                written = write_some(&mut self.stdin, &feeding), if feeding.is_some() => {
                    match written {
                        Ok(n) if n > 0 => {
                            if let Some((chunk, done)) = &mut feeding {
                                *done += n;
                                if *done >= chunk.len() {
                                    feeding = None;
                                }
                            }
                            if let Err(RunStopped(r)) = io.stdin_consumed(n).await {
                                break Some(r);
                            }
                        }
                        _ => {
                            // The program closed its stdin (or ended).
                            self.stdin = None;
                            if let Some((chunk, done)) = feeding.take() {
                                let _ = io.stdin_consumed(chunk.len() - done).await;
                            }
                            discard_stdin = true;
                        }
                    }
                }
                chunk = io.stdin_next(MAX_CHUNK), if feeding.is_none() && stdin_open => {
                    match chunk {
                        Some(c) if discard_stdin => {
                            if let Err(RunStopped(r)) = io.stdin_consumed(c.len()).await {
                                break Some(r);
                            }
                        }
                        Some(c) => feeding = Some((c, 0)),
                        None => {
                            // End of input: closing the pipe is the program's EOF.
                            self.stdin = None;
                            discard_stdin = false;
                        }
                    }
                }
            }
        };
        match reason {
            Some(reason) => {
                self.stdin = None;
                self.stdout = None;
                self.stderr = None;
                if let Some(l) = leftovers.take() {
                    let _ = l.await;
                }
                self.group
                    .terminate(exit.is_none().then_some(&mut self.child), grace)
                    .await;
                RunStatus::Stopped { reason }
            }
            None => {
                if let Some(l) = leftovers.take() {
                    let _ = l.await;
                }
                exit.map(status_of).unwrap_or(RunStatus::Other)
            }
        }
    }
}

/// Write what is left of `feeding` into `stdin`.
async fn write_some(
    stdin: &mut Option<ChildStdin>,
    feeding: &Option<(bytes::Bytes, usize)>,
) -> std::io::Result<usize> {
    match (stdin, feeding) {
        (Some(pipe), Some((chunk, done))) => pipe.write(&chunk[*done..]).await,
        (None, _) => Ok(0),
        (_, None) => std::future::pending().await,
    }
}
