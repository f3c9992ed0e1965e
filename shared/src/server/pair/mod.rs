//! Pairing on one connection: the short I/O loop around the pure [`machine`], the pending
//! request's slot, and saving a pairing that succeeded.
//!
//! Owns carrying out what the machine decides: sending, reporting, asking the guard, and
//! waiting for the next message, the machine's deadline or a cancellation. It decides
//! nothing about the exchange itself; that is the machine's.

pub(super) mod machine;

use std::net::IpAddr;
use std::time::Instant;

use tokio::sync::oneshot;

use super::conn::{Conn, ConnCtx, fail_read};
use super::events::PairClosedReason;
use super::guard::{Cancel, Outcome};
use super::{ServerEvent, Shared};
use crate::message::{B64, ErrorCode, Message};
use crate::pairing::{Code, Confirmation};
use crate::state::ClientRecord;
use machine::{Check, Input, Issued, Output, Setup, State};

/// A request's place in the guard's pending table, held while its code lives. Dropped, it
/// releases the place and tells the operator how the request ended; an answer still holding
/// a unit of the failure budget (the connection was evicted or shut down mid-check) is
/// settled as wrong first, so that no path leaves a unit reserved.
struct Slot<'a> {
    shared: &'a Shared,
    request_id: u64,
    ip: IpAddr,
    /// Fires when the request is displaced or pairing closes; `None` once it has.
    cancelled: Option<oneshot::Receiver<Cancel>>,
    /// A unit of the failure budget is reserved for an answer being checked.
    reserved: bool,
    /// How the request ended, reported on drop; `None` once it paired.
    end: Option<PairClosedReason>,
}

impl Slot<'_> {
    fn end(mut self, reason: PairClosedReason) {
        self.end = Some(reason);
    }

    fn paired(mut self) {
        self.end = None;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.reserved {
            let settled = self.shared.guard().finish_attempt(
                self.request_id,
                self.ip,
                Outcome::Wrong,
                Instant::now(),
            );
            if let Some(change) = settled.change {
                self.shared.report_gate(change);
            }
        }
        self.shared.guard().release(self.request_id);
        if let Some(reason) = self.end {
            self.shared.emit(ServerEvent::PairClosed {
                request_id: self.request_id,
                reason,
            });
        }
    }
}

/// Run pairing after the first `pair_request` (made under `name`); returns the client's name
/// and pairing id once it is paired and saved.
pub(super) async fn run(ctx: &ConnCtx, conn: &mut Conn, name: String) -> Option<(String, String)> {
    let setup = Setup {
        server_name: ctx.shared.config.name.clone(),
        code_ttl: ctx.shared.config.pairing.code_ttl,
        max_attempts: ctx.shared.config.pairing.max_attempts,
        step_timeout: ctx.shared.config.step_timeout,
        peer: ctx.peer,
        client_id: ctx.info.peer_id,
        binding: ctx.binding(),
    };
    let mut slot: Option<Slot<'_>> = None;
    let mut state = State::start(&setup, Instant::now());
    let mut input = Input::Message(Message::PairRequest { client_name: name });
    loop {
        let (next, outputs) = machine::step(state, &setup, input, Instant::now());
        state = next;
        let mut answer = None;
        let mut broken = false;
        for output in outputs {
            match output {
                Output::Send(m) => {
                    // The rest is still carried out (it settles and reports); the machine
                    // then learns the peer is gone.
                    if !broken && conn.send(&m).await.is_err() {
                        broken = true;
                    }
                }
                Output::Event(e) => ctx.shared.emit(e),
                Output::Gate(change) => ctx.shared.report_gate(change),
                Output::Ended(reason) => {
                    if let Some(s) = slot.take() {
                        s.end(reason);
                    }
                }
                Output::Check(check) => answer = Some(ask(ctx, &mut slot, check)),
                Output::Pair {
                    request_id,
                    name,
                    confirmation,
                } => {
                    let paired = finish(ctx, conn, name, request_id, &confirmation.0).await;
                    if paired.is_some()
                        && let Some(s) = slot.take()
                    {
                        s.paired();
                    }
                    return paired;
                }
                Output::Close => return None,
            }
        }
        input = match (answer, broken) {
            (Some(answer), _) => answer,
            (None, true) => Input::PeerGone,
            (None, false) => next_input(conn, &mut slot, &state).await,
        };
    }
}

/// Put `check` to the guard; the verdict is the machine's next input.
fn ask<'a>(ctx: &'a ConnCtx, slot: &mut Option<Slot<'a>>, check: Check) -> Input {
    let shared: &Shared = &ctx.shared;
    let ip = ctx.peer.ip();
    let now = Instant::now();
    match check {
        Check::Admit => {
            let request_id = shared.next_id();
            let admitted = shared.guard().admit(ip, request_id, now);
            Input::Admitted(admitted.map(|admission| {
                *slot = Some(Slot {
                    shared,
                    request_id,
                    ip,
                    cancelled: Some(admission.cancelled),
                    reserved: false,
                    end: Some(PairClosedReason::Cancelled),
                });
                Issued {
                    request_id,
                    code: admission.ahead.unwrap_or_else(Code::generate),
                }
            }))
        }
        Check::BeginAttempt(request_id) => {
            let allowed = shared.guard().begin_attempt(request_id, ip, now);
            if allowed.is_ok()
                && let Some(s) = slot.as_mut()
            {
                s.reserved = true;
            }
            Input::AttemptChecked(allowed)
        }
        Check::Settle(request_id, outcome) => {
            if let Some(s) = slot.as_mut() {
                s.reserved = false;
            }
            Input::Settled(shared.guard().finish_attempt(request_id, ip, outcome, now))
        }
    }
}

/// Wait for the client's next message (when the machine wants one), the machine's deadline,
/// or the cancellation of the pending request.
async fn next_input(conn: &mut Conn, slot: &mut Option<Slot<'_>>, state: &State) -> Input {
    enum Woke {
        Read(Result<Option<Message>, crate::connection::ConnectionError>),
        Cancelled(Option<Cancel>),
        Deadline,
    }
    let deadline = state.deadline().map(tokio::time::Instant::from_std);
    loop {
        let woke = {
            let cancelled = async {
                match slot.as_mut().and_then(|s| s.cancelled.as_mut()) {
                    Some(rx) => rx.await.ok(),
                    None => std::future::pending().await,
                }
            };
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                why = cancelled => Woke::Cancelled(why),
                read = conn.read::<Message>(), if state.reads() => Woke::Read(read),
                () = sleep => Woke::Deadline,
            }
        };
        return match woke {
            Woke::Cancelled(why) => {
                // A oneshot answers once; it must not be polled again.
                if let Some(s) = slot.as_mut() {
                    s.cancelled = None;
                }
                match why {
                    Some(why) => Input::Cancelled(why),
                    // Dropped without a word: nothing was cancelled.
                    None => continue,
                }
            }
            Woke::Read(Ok(Some(m))) => Input::Message(m),
            Woke::Read(Ok(None)) => Input::PeerGone,
            Woke::Read(Err(e)) => {
                fail_read(conn, e).await;
                Input::PeerGone
            }
            Woke::Deadline => Input::Deadline,
        };
    }
}

/// Issue the token and save the pairing, then tell the operator and the client. Saved
/// before anyone is told: a reported pairing survives a crash.
async fn finish(
    ctx: &ConnCtx,
    conn: &mut Conn,
    name: String,
    request_id: u64,
    confirmation: &Confirmation,
) -> Option<(String, String)> {
    let shared = &ctx.shared;
    let now = crate::unix_now();
    let pairing_id = crate::token::new_pairing_id();
    let record = ClientRecord {
        client_id: ctx.info.peer_id,
        name: name.clone(),
        paired_at: now,
        pairing_id: pairing_id.clone(),
        last_seen: now,
        last_addr: Some(ctx.peer),
    };
    let issued = match shared.authority.issue(
        ctx.info.peer_id,
        &ctx.info.peer_cert_hash,
        &pairing_id,
        shared.config.token_ttl,
    ) {
        Ok(i) => i,
        Err(e) => {
            ctx.warn(format!("issuing a token failed: {e}"));
            let _ = conn
                .send(&Message::error(
                    ErrorCode::Internal,
                    "could not issue a token",
                ))
                .await;
            return None;
        }
    };
    if let Err(e) = shared.registry.pair(record).await {
        ctx.warn(format!("saving the new pairing failed: {e}"));
        let _ = conn
            .send(&Message::error(
                ErrorCode::Internal,
                "the server could not save the pairing",
            ))
            .await;
        return None;
    }
    let change = shared.guard().paired(Instant::now());
    shared.emit(ServerEvent::Paired {
        request_id,
        client_name: name.clone(),
        client_addr: ctx.peer,
        client_id: ctx.info.peer_id,
    });
    if let Some(change) = change {
        shared.report_gate(change);
    }
    let sent = conn
        .send(&Message::Paired {
            mac: B64(confirmation.server_mac()),
            token: issued.token,
            token_expires_at: issued.claims.exp,
            server_name: shared.config.name.clone(),
        })
        .await;
    sent.ok().map(|_| (name, pairing_id))
}
