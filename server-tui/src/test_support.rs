//! Builders for unit tests: engine events, client views and keys made directly, without a
//! server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use csc_shared::identity::PeerId;
use csc_shared::message::RunStatus;
use csc_shared::server::{ClientView, PairingMode, PairingStatus, RunView, ServerEvent};
use csc_shared::state::ClientRecord;

use crate::app::{App, Clock, Msg, Options};

pub use tui_kit::testing::{NOW_UNIX, ch, ctrl, key, release};

pub fn clock_at(start: Instant, secs: u64) -> Clock {
    Clock {
        instant: start + Duration::from_secs(secs),
        unix: NOW_UNIX + secs,
    }
}

/// Pairing as a request-mode server starts: open.
pub fn open_pairing() -> PairingStatus {
    PairingStatus {
        mode: PairingMode::Request,
        open: true,
        reason: None,
        closes_in_s: None,
        reopens_in_s: None,
        failures: 0,
        budget: 20,
        budget_window_s: 86_400,
        closures: 0,
        pending: 0,
        remembered_addresses: 0,
        remembered_prefixes: 0,
    }
}

pub fn peer(n: u8) -> PeerId {
    let mut b = [n; 32];
    b[1] = 0xA5;
    PeerId(b)
}

pub fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], port))
}

pub fn client(name: &str, n: u8, sessions: usize, tasks_run: u64) -> ClientView {
    ClientView {
        record: ClientRecord {
            client_id: peer(n),
            name: name.to_string(),
            paired_at: NOW_UNIX - 3 * 86_400,
            pairing_id: format!("p{n}"),
            last_seen: NOW_UNIX - 300,
            last_addr: Some(addr(n, 51_000 + u16::from(n))),
        },
        sessions,
        tasks_run,
    }
}

pub fn listening() -> ServerEvent {
    ServerEvent::Listening {
        addr: SocketAddr::from(([0, 0, 0, 0], 47474)),
        port: 47474,
        server_id: peer(0xEE),
        server_short: peer(0xEE).short(),
        name: "kitchen-pc".into(),
        addrs: vec!["192.168.1.5".parse().unwrap()],
    }
}

pub fn pair_request(request_id: u64, name: &str, n: u8, code: &str) -> ServerEvent {
    ServerEvent::PairRequest {
        request_id,
        client_name: name.into(),
        client_addr: addr(n, 51_234),
        client_id: peer(n),
        client_short: peer(n).short(),
        code: code.into(),
        expires_in_s: 120,
        attempts_left: 5,
    }
}

/// An app on a `w`×`h` terminal, at [`NOW_UNIX`], with the listener up.
pub fn app(w: u16, h: u16, color: bool) -> (App, Instant) {
    let start = Instant::now();
    let mut app = App::new(
        Options {
            name: "kitchen-pc".into(),
            server_short: peer(0xEE).short(),
            color,
            pairing: open_pairing(),
            open_for: Duration::from_secs(120),
            origin: crate::headless::TasksOrigin {
                path: Some("/etc/csc/server.toml".into()),
                tasks: vec!["cat".into(), "greet".into()],
            },
        },
        clock_at(start, 0),
        (w, h),
    );
    app.update(Msg::Engine(listening()));
    (app, start)
}

/// Pairing closed because the failure budget was spent, reopening in `reopens_in_s`.
pub fn budget_spent(reopens_in_s: u64) -> ServerEvent {
    ServerEvent::PairingClosed {
        mode: PairingMode::Request,
        reason: csc_shared::server::ClosedReason::Budget,
        reopens_in_s: Some(reopens_in_s),
        budget: 20,
        budget_window_s: 86_400,
    }
}

/// A run of `task` by client `n` named `name`, started `secs_ago` before [`NOW_UNIX`].
pub fn run_view(
    run_id: u64,
    name: &str,
    n: u8,
    task: &str,
    args: &[&str],
    secs_ago: u64,
) -> RunView {
    RunView {
        run_id,
        session_id: u64::from(n),
        client_id: peer(n),
        client_name: name.into(),
        task: task.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        started_at_ms: (NOW_UNIX - secs_ago) * 1000,
        running_ms: secs_ago * 1000,
        bytes_out: 0,
        bytes_in: 0,
    }
}

/// The engine's `task_started` for `run`.
pub fn task_started(run: &RunView) -> ServerEvent {
    ServerEvent::TaskStarted {
        run_id: run.run_id,
        session_id: run.session_id,
        client_name: run.client_name.clone(),
        client_id: run.client_id,
        task: run.task.clone(),
        args: run.args.clone(),
    }
}

/// The engine's `task_finished` for `run`, ended with `status` after `duration_ms`.
pub fn task_finished(run: &RunView, status: RunStatus, duration_ms: u64) -> ServerEvent {
    ServerEvent::TaskFinished {
        run_id: run.run_id,
        session_id: run.session_id,
        client_name: run.client_name.clone(),
        client_id: run.client_id,
        task: run.task.clone(),
        status,
        duration_ms,
        bytes_out: run.bytes_out,
        bytes_in: run.bytes_in,
    }
}
