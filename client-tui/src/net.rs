//! Network work, in tokio tasks: discovery, asking one address who it is, pairing and the
//! link to a paired server. Every task reports over the app's channel as typed [`Msg`]s,
//! tagged with the search or link id the app gave it.
//!
//! Owns: the engine objects (`Discovery`, `Pairing`, `Link`), at most one search and one
//! pairing-or-link at a time. It must not decide anything: the app asks through
//! [`Action`]s, and what happened goes back to `App::update`. Keeping a session alive and
//! healing it is the engine's `Link`; this module only passes its events on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use csc_shared::client::{Client, ClientError, Link, LinkEvent as Linked, LinkOptions, Pairing};
use csc_shared::discovery::{DiscoveryEvent, DiscoveryOptions, Via, discover};
use csc_shared::pairing::Code;
use csc_shared::state::PairedServer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::{Action, Challenge, Level, LinkEvent, Msg, Rejection};

/// How long a replaced pairing or session gets to close cleanly before it is cut.
const GRACE: Duration = Duration::from_secs(2);

/// What the app can ask of the pairing or session in progress.
enum LinkCmd {
    Submit(Code),
    NewCode,
    Run {
        id: u64,
        task: String,
        args: Vec<String>,
    },
    Cancel {
        id: u64,
    },
    ListTasks,
}

struct Task {
    id: u64,
    cmds: mpsc::UnboundedSender<LinkCmd>,
    task: JoinHandle<()>,
}

/// The network side of the full-screen app.
pub struct Net {
    client: Arc<Client>,
    discovery: Option<DiscoveryOptions>,
    port: u16,
    /// How long a task typed while the link heals waits for it.
    wait: Duration,
    tx: mpsc::UnboundedSender<Msg>,
    search: Vec<JoinHandle<()>>,
    link: Option<Task>,
}

impl Net {
    /// Work for `client`, searching with `discovery` (`None`: every method is off), using
    /// `port` for addresses without one, letting a task typed while the link heals wait
    /// `wait`, reporting on `tx`.
    pub fn new(
        client: Arc<Client>,
        discovery: Option<DiscoveryOptions>,
        port: u16,
        wait: Duration,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Self {
        Self {
            client,
            discovery,
            port,
            wait,
            tx,
            search: Vec::new(),
            link: None,
        }
    }

    /// Start carrying out `action`; returns at once ([`Action::Quit`] is the loop's).
    pub fn perform(&mut self, action: Action) {
        match action {
            Action::Quit => {}
            Action::Scan { scan } => {
                for task in self.search.drain(..) {
                    task.abort();
                }
                if let Some(options) = self.discovery.clone() {
                    let (dialer, tx) = (self.client.dialer(), self.tx.clone());
                    self.search.push(tokio::spawn(async move {
                        let mut search = discover(dialer, options);
                        while let Some(event) = search.next().await {
                            if tx.send(Msg::Scan { scan, event }).is_err() {
                                break;
                            }
                        }
                    }));
                }
            }
            Action::Probe { scan, spec, via } => {
                let task = tokio::spawn(probe(
                    self.client.clone(),
                    spec,
                    self.port,
                    via,
                    scan,
                    self.tx.clone(),
                ));
                self.search.push(task);
            }
            Action::Pair { link, addr } => {
                let client = self.client.clone();
                let options = self.link_options(None);
                let wait = self.wait;
                self.open_link(link, move |out, cmds| {
                    pair(client, addr, options, wait, out, cmds)
                });
            }
            Action::Connect {
                link,
                server,
                addr,
                via,
            } => {
                let client = self.client.clone();
                let options = self.link_options(addr.map(|a| (a, via.unwrap_or(Via::Last))));
                let wait = self.wait;
                self.open_link(link, move |out, cmds| {
                    let link = Link::start(client, server, options);
                    serve(link, wait, out, cmds)
                });
            }
            Action::Submit { link, code } => match Code::parse(&code) {
                Ok(code) => self.send(link, LinkCmd::Submit(code)),
                Err(e) => self.report(
                    link,
                    LinkEvent::Rejected {
                        why: Rejection::Failed(e.to_string()),
                        ended: false,
                    },
                ),
            },
            Action::NewCode { link } => self.send(link, LinkCmd::NewCode),
            Action::Run {
                link,
                id,
                task,
                args,
            } => self.send(link, LinkCmd::Run { id, task, args }),
            Action::CancelRun { link, id } => self.send(link, LinkCmd::Cancel { id }),
            Action::ListTasks { link } => self.send(link, LinkCmd::ListTasks),
            Action::Hangup => self.hangup(),
            Action::LoadServers => match self.client.servers() {
                Ok(list) => {
                    let _ = self.tx.send(Msg::Servers(list));
                }
                Err(e) => {
                    let _ = self.tx.send(Msg::Log(Level::Error, e.to_string()));
                }
            },
            Action::Forget { server_id } => {
                let (client, tx) = (self.client.clone(), self.tx.clone());
                tokio::spawn(async move {
                    let msg = match client.forget(&server_id.to_hex()).await {
                        Ok((server, remote)) => Msg::Forgot {
                            name: server.name,
                            short: server.server_id.short(),
                            revoked: remote.map_err(|e| e.to_string()),
                        },
                        Err(e) => Msg::Log(Level::Error, format!("cannot forget: {e}")),
                    };
                    let _ = tx.send(msg);
                });
            }
        }
    }

    /// Options for a link that tries `first` first: where the server was just found, and
    /// how (typed: `manual`).
    fn link_options(&self, first: Option<(SocketAddr, Via)>) -> LinkOptions {
        LinkOptions {
            discovery: self.discovery.clone(),
            first,
            ..LinkOptions::default()
        }
    }

    fn report(&self, link: u64, event: LinkEvent) {
        let _ = self.tx.send(Msg::Link { link, event });
    }

    fn send(&self, link: u64, cmd: LinkCmd) {
        let sent = match &self.link {
            Some(l) if l.id == link => l.cmds.send(cmd).map_err(|e| e.0),
            _ => Err(cmd),
        };
        // The task has ended (its end was reported); a task typed meanwhile gets an answer.
        if let Err(LinkCmd::Run { id, .. }) = sent {
            self.report(
                link,
                LinkEvent::Reply {
                    id,
                    result: Err("not connected: the task was not sent".into()),
                    rtt: Duration::ZERO,
                },
            );
        }
    }

    /// End the pairing or session in progress: it closes cleanly, or is cut after a grace
    /// period.
    /// Replace the current link with `task`, which reports as `link` and takes its commands.
    fn open_link<F>(
        &mut self,
        link: u64,
        task: impl FnOnce(Reporter, mpsc::UnboundedReceiver<LinkCmd>) -> F,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.hangup();
        let (cmds, rx) = mpsc::unbounded_channel();
        let out = Reporter {
            link,
            tx: self.tx.clone(),
        };
        let task = tokio::spawn(task(out, rx));
        self.link = Some(Task {
            id: link,
            cmds,
            task,
        });
    }

    fn hangup(&mut self) {
        if let Some(Task { cmds, mut task, .. }) = self.link.take() {
            drop(cmds);
            tokio::spawn(async move {
                if tokio::time::timeout(GRACE, &mut task).await.is_err() {
                    task.abort();
                }
            });
        }
    }

    /// Stop everything, giving an open session a moment to say goodbye.
    pub async fn shutdown(mut self) {
        for task in self.search.drain(..) {
            task.abort();
        }
        if let Some(Task { cmds, mut task, .. }) = self.link.take() {
            drop(cmds);
            if tokio::time::timeout(Duration::from_millis(500), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for task in &self.search {
            task.abort();
        }
        if let Some(link) = &self.link {
            link.task.abort();
        }
    }
}

/// Sends one link's events to the app.
#[derive(Clone)]
struct Reporter {
    link: u64,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Reporter {
    fn send(&self, event: LinkEvent) {
        let _ = self.tx.send(Msg::Link {
            link: self.link,
            event,
        });
    }
}

/// Resolve `spec`, connect and ask who is there; a server found is reported like a
/// discovery result. Failures are reported only for addresses typed by a person.
async fn probe(
    client: Arc<Client>,
    spec: String,
    port: u16,
    via: Via,
    scan: u64,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let msg = match csc_shared::client::target::probe(&client, &spec, port, via).await {
        Ok(found) => Msg::Scan {
            scan,
            event: DiscoveryEvent::Found(found),
        },
        Err(error) if via == Via::Manual => Msg::ProbeFailed {
            spec,
            error: error.to_string(),
        },
        Err(_) => return,
    };
    let _ = tx.send(msg);
}

/// How the app sees a refusal.
fn rejection(e: ClientError) -> Rejection {
    match e {
        ClientError::WrongCode {
            attempts_left,
            retry_after,
        } => Rejection::WrongCode {
            attempts_left,
            retry_after,
        },
        ClientError::CodeExpired => Rejection::Expired,
        ClientError::CodeExhausted => Rejection::Exhausted,
        ClientError::PairingRefused {
            reason,
            retry_after,
        } => Rejection::Refused {
            reason,
            retry_after,
        },
        other => Rejection::Failed(other.to_string()),
    }
}

fn challenge(pairing: &Pairing) -> Challenge {
    let ch = pairing.challenge();
    Challenge {
        server_name: ch.server_name.clone(),
        server_id: ch.server_id,
        expires_in: ch
            .expires_at
            .saturating_duration_since(tokio::time::Instant::now()),
        attempts_left: ch.attempts_left,
        digits: ch.code_digits,
    }
}

/// Ask `addr` for a code, answer with what the person types until it is right, then carry on
/// as a session on the same connection.
async fn pair(
    client: Arc<Client>,
    addr: SocketAddr,
    options: LinkOptions,
    wait: Duration,
    out: Reporter,
    mut cmds: mpsc::UnboundedReceiver<LinkCmd>,
) {
    let mut pairing = match client.start_pairing(addr).await {
        Ok(p) => p,
        Err(e) => {
            out.send(LinkEvent::Rejected {
                why: rejection(e),
                ended: true,
            });
            return;
        }
    };
    out.send(LinkEvent::Challenge(challenge(&pairing)));
    let paired: PairedServer = loop {
        let Some(cmd) = cmds.recv().await else {
            return;
        };
        match cmd {
            LinkCmd::Submit(code) => match pairing.submit(&code).await {
                Ok(p) => break p,
                Err(e) => {
                    let why = rejection(e);
                    let ended = matches!(why, Rejection::Failed(_));
                    out.send(LinkEvent::Rejected { why, ended });
                    if ended {
                        return;
                    }
                }
            },
            // The engine dials again when the server has closed the connection (after a
            // refusal, or some seconds after a code ended). A refusal leaves the pairing
            // usable for another request; only a failure to reach the server ends it.
            LinkCmd::NewCode => match pairing.request_new_code(client.name()).await {
                Ok(()) => out.send(LinkEvent::Challenge(challenge(&pairing))),
                Err(e) => {
                    let why = rejection(e);
                    let ended = matches!(why, Rejection::Failed(_));
                    out.send(LinkEvent::Rejected { why, ended });
                    if ended {
                        return;
                    }
                }
            },
            LinkCmd::Run { id, .. } => out.send(LinkEvent::Reply {
                id,
                result: Err("not connected yet".into()),
                rtt: Duration::ZERO,
            }),
            LinkCmd::Cancel { .. } | LinkCmd::ListTasks => {}
        }
    };
    out.send(LinkEvent::Paired(paired));
    match pairing.into_session() {
        Ok(session) => {
            out.send(LinkEvent::Connected {
                server: session.server().clone(),
                addr: session.addr(),
                via: None,
                elapsed: Duration::ZERO,
            });
            // The session on the pairing connection carries on as a link that heals.
            let link = Link::adopt_session(client, session, options);
            serve(link, wait, out, cmds).await;
        }
        Err(e) => out.send(LinkEvent::ConnectFailed {
            error: e.to_string(),
            repair: None,
        }),
    }
}

/// Run the tasks the app sends over `link`, each as soon as it is typed (pipelined), and pass
/// on what the link reports, until the app hangs up or the link stops.
async fn serve(
    mut link: Link,
    wait: Duration,
    out: Reporter,
    mut cmds: mpsc::UnboundedReceiver<LinkCmd>,
) {
    // The session handed over after pairing was reported already.
    let mut skip_first_connected = false;
    // Runs in progress: how to stop each.
    let mut runs: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<()>> =
        std::collections::HashMap::new();
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => {
                    link.close().await;
                    return;
                }
                Some(LinkCmd::Run { id, task, args }) => {
                    runs.retain(|_, stop| !stop.is_closed());
                    let (stop, stopped) = tokio::sync::oneshot::channel();
                    runs.insert(id, stop);
                    tokio::spawn(run_task(link.handle(), id, task, args, wait, stopped, out.clone()));
                }
                Some(LinkCmd::Cancel { id }) => {
                    if let Some(stop) = runs.remove(&id) {
                        let _ = stop.send(());
                    }
                }
                Some(LinkCmd::ListTasks) => {
                    let (handle, out) = (link.handle(), out.clone());
                    tokio::spawn(async move {
                        if let Ok(tasks) = handle.list_tasks(wait).await {
                            out.send(LinkEvent::Tasks(tasks));
                        }
                    });
                }
                Some(LinkCmd::Submit(_) | LinkCmd::NewCode) => {}
            },
            event = link.next_event() => {
                let Some(event) = event else { return };
                let event = match event {
                    Linked::Connecting { attempt } => LinkEvent::Connecting { attempt },
                    Linked::Connected { server, addr, via, elapsed } => {
                        if std::mem::take(&mut skip_first_connected) {
                            continue;
                        }
                        LinkEvent::Connected { server, addr, via, elapsed }
                    }
                    Linked::Lost { reason } => LinkEvent::Lost { reason },
                    Linked::Retrying { attempt, wait, error } => LinkEvent::Retrying {
                        attempt,
                        wait,
                        error: error.to_string(),
                    },
                    Linked::RepairRequired { reason } => LinkEvent::RepairRequired { reason },
                    Linked::Notice { text, .. } => LinkEvent::Notice { text },
                };
                out.send(event);
            }
        }
    }
}

/// One task typed in the console, as a run: output is passed on as it comes, the end as
/// [`LinkEvent::RunDone`] (or [`LinkEvent::Reply`] for a value task, or an error); `stop`
/// cancels it. The console's tasks get no stdin: it is closed at once.
async fn run_task(
    handle: csc_shared::client::LinkHandle,
    id: u64,
    task: String,
    args: Vec<String>,
    wait: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    out: Reporter,
) {
    use csc_shared::client::RunEvent;
    use csc_shared::message::RunStatus;
    let started = Instant::now();
    let mut run = tokio::select! {
        r = handle.run(&task, args, wait) => match r {
            Ok(run) => run,
            Err(e) => {
                out.send(LinkEvent::Reply { id, result: Err(format!("error: {e}")), rtt: started.elapsed() });
                return;
            }
        },
        _ = &mut stop => {
            out.send(LinkEvent::Reply { id, result: Err("cancelled before it started".into()), rtt: started.elapsed() });
            return;
        }
    };
    let mut stop_open = true;
    loop {
        let event = tokio::select! {
            event = run.next() => event,
            _ = &mut stop, if stop_open => {
                stop_open = false;
                run.cancel();
                continue;
            }
        };
        match event {
            Some(RunEvent::Started { stdin }) => {
                if stdin {
                    run.close_stdin();
                }
            }
            Some(RunEvent::Output { stream, data }) => out.send(LinkEvent::RunOutput {
                id,
                stream,
                data: data.to_vec(),
            }),
            Some(RunEvent::Exit { status, result, .. }) => {
                let rtt = started.elapsed();
                let event = match status {
                    RunStatus::Done {} => LinkEvent::Reply {
                        id,
                        result: Ok(result),
                        rtt,
                    },
                    RunStatus::Failed { code, message } => LinkEvent::Reply {
                        id,
                        result: Err(format!("error ({code}): {message}")),
                        rtt,
                    },
                    status => LinkEvent::RunDone { id, status, rtt },
                };
                out.send(event);
                return;
            }
            Some(RunEvent::Lost { reason }) => {
                out.send(LinkEvent::Reply {
                    id,
                    result: Err(format!("error: the connection was lost before {task} ended ({reason}); it was not run again")),
                    rtt: started.elapsed(),
                });
                return;
            }
            None => return,
        }
    }
}
