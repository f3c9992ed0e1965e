//! How a finished run reads to people and to scripts: a sentence, and the exit code
//! `client-tui send` exits with (the README's table), which the agent's last line of a run
//! carries too.
//!
//! Owns that mapping only, so the two front ends cannot drift apart.

use crate::message::{RefusalCode, RunStatus, StopReason};

/// The exit codes a run maps to.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The connection to the server was lost, or the server shut down, before the end.
    pub const UNREACHABLE: u8 = 6;
    /// The task failed: unknown task, it could not start, a signal killed it, a value task
    /// failed, or it exited with a code above 155.
    pub const TASK_FAILED: u8 = 8;
    /// The task's arguments were refused (missing, extra, or not matching their pattern).
    pub const BAD_ARGS: u8 = 9;
    /// This client may not run the task.
    pub const FORBIDDEN: u8 = 10;
    /// The task ran out of time and was stopped.
    pub const TIMED_OUT: u8 = 11;
    /// The run was cancelled (Ctrl-C, the program that asked, or the server's operator).
    pub const CANCELLED: u8 = 12;
    /// A limit stopped the run (its output or stdin cap).
    pub const LIMIT: u8 = 13;
    /// The task or the server runs as many at once as it allows: try again.
    pub const BUSY: u8 = 14;
    /// A remote program that exited with code n (1–155) maps to 100 + n.
    pub const REMOTE_EXIT_BASE: u8 = 100;
}

/// The exit code a run that ended with `status` maps to.
pub fn exit_code(status: &RunStatus) -> u8 {
    match status {
        RunStatus::Exited { code: 0 } | RunStatus::Done {} => exit::OK,
        RunStatus::Exited { code } if (1..=155).contains(code) => {
            exit::REMOTE_EXIT_BASE + *code as u8
        }
        RunStatus::Refused { code, .. } => match code {
            RefusalCode::BadArgs => exit::BAD_ARGS,
            RefusalCode::Forbidden => exit::FORBIDDEN,
            RefusalCode::Busy | RefusalCode::ServerBusy => exit::BUSY,
            _ => exit::TASK_FAILED,
        },
        RunStatus::Stopped { reason } => match reason {
            StopReason::Timeout => exit::TIMED_OUT,
            StopReason::Cancelled | StopReason::Operator => exit::CANCELLED,
            StopReason::OutputLimit | StopReason::StdinLimit => exit::LIMIT,
            StopReason::Disconnected | StopReason::Shutdown => exit::UNREACHABLE,
            StopReason::Other => exit::TASK_FAILED,
        },
        _ => exit::TASK_FAILED,
    }
}

/// How a run of `task` ended, in words.
pub fn describe(task: &str, status: &RunStatus) -> String {
    match status {
        RunStatus::Exited { code } => format!("{task} exited with code {code}"),
        RunStatus::Signaled { signal } => format!("{task} was killed by signal {signal}"),
        RunStatus::Stopped { reason } => {
            let why = match reason {
                StopReason::Timeout => "it ran out of time",
                StopReason::OutputLimit => "it wrote more than its output cap",
                StopReason::StdinLimit => "it was sent more than its stdin cap",
                StopReason::Cancelled => "it was cancelled",
                StopReason::Disconnected => "the connection ended",
                StopReason::Shutdown => "the server is shutting down",
                StopReason::Operator => "the server's operator stopped it",
                StopReason::Other => "the server stopped it",
            };
            format!("{task} was stopped: {why}")
        }
        RunStatus::Refused { message, .. } => format!("{task} was refused: {message}"),
        RunStatus::Done {} => format!("{task} finished"),
        RunStatus::Failed { code, message } => format!("{task} failed ({code}): {message}"),
        RunStatus::Other => format!("{task} ended in a way this client does not know"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_a_run_ends_has_its_code() {
        assert_eq!(exit_code(&RunStatus::Exited { code: 0 }), 0);
        assert_eq!(exit_code(&RunStatus::Exited { code: 3 }), 103);
        assert_eq!(
            exit_code(&RunStatus::Exited { code: 200 }),
            exit::TASK_FAILED
        );
        let refused = |code| RunStatus::Refused {
            code,
            message: String::new(),
        };
        assert_eq!(exit_code(&refused(RefusalCode::BadArgs)), exit::BAD_ARGS);
        assert_eq!(exit_code(&refused(RefusalCode::Forbidden)), exit::FORBIDDEN);
        assert_eq!(exit_code(&refused(RefusalCode::ServerBusy)), exit::BUSY);
        let stopped = |reason| RunStatus::Stopped { reason };
        assert_eq!(exit_code(&stopped(StopReason::Timeout)), exit::TIMED_OUT);
        assert_eq!(exit_code(&stopped(StopReason::Cancelled)), exit::CANCELLED);
        assert_eq!(exit_code(&stopped(StopReason::StdinLimit)), exit::LIMIT);
        assert_eq!(
            describe("t", &stopped(StopReason::Timeout)),
            "t was stopped: it ran out of time"
        );
    }
}
