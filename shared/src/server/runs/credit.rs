//! Flow control of one run, both directions: the output credit the client grants
//! (`window`, `run_ack`) and the stdin credit the server grants (`stdin_window`,
//! `run_input_ack`), as SSH channels do.
//!
//! Owns the accounting and the waiting, nothing else. The accounting is plain arithmetic
//! ([`OutputCredit`], [`StdinBook`]) so it is tested as such; the wrappers add a lock and a
//! wake-up for the one task that waits.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// Output bytes the server may still send before the client acknowledges some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputCredit {
    window: u64,
    left: u64,
}

impl OutputCredit {
    pub(crate) fn new(window: u64) -> Self {
        Self {
            window,
            left: window,
        }
    }

    pub(crate) fn left(&self) -> u64 {
        self.left
    }

    /// Spend `n` bytes (at most what is left).
    pub(crate) fn spend(&mut self, n: u64) {
        self.left = self.left.saturating_sub(n);
    }

    /// The client consumed `bytes`. More than was sent cannot raise the credit above the
    /// window: a client cannot talk the server into sending more than it offered to hold.
    pub(crate) fn ack(&mut self, bytes: u64) {
        self.left = self.left.saturating_add(bytes).min(self.window);
    }
}

/// [`OutputCredit`] shared between the session (which hears `run_ack`) and the run (which
/// spends it).
#[derive(Debug)]
pub(crate) struct Credit {
    book: Mutex<OutputCredit>,
    notify: Notify,
}

impl Credit {
    pub(crate) fn new(window: u64) -> Self {
        Self {
            book: Mutex::new(OutputCredit::new(window)),
            notify: Notify::new(),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, OutputCredit> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn left(&self) -> u64 {
        self.book().left()
    }

    pub(crate) fn spend(&self, n: u64) {
        self.book().spend(n);
    }

    pub(crate) fn ack(&self, bytes: u64) {
        self.book().ack(bytes);
        // One waiter at most (the run); a permit is kept when it is not waiting yet.
        self.notify.notify_one();
    }

    /// Wait until some credit is left; returns how much.
    pub(crate) async fn wait(&self) -> u64 {
        loop {
            let notified = self.notify.notified();
            let left = self.left();
            if left > 0 {
                return left;
            }
            notified.await;
        }
    }
}

/// Why stdin from the client was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StdinRefused {
    /// More than the credit granted: the client broke the protocol.
    OverCredit,
    /// More than the run's `max_stdin` in all.
    OverLimit,
}

/// The stdin side's accounting: what the client sent and the server has not acknowledged,
/// and what the program consumed since the last acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StdinBook {
    window: u64,
    max_total: u64,
    outstanding: u64,
    consumed: u64,
    total: u64,
}

impl StdinBook {
    pub(crate) fn new(window: u64, max_total: u64) -> Self {
        Self {
            window,
            max_total,
            outstanding: 0,
            consumed: 0,
            total: 0,
        }
    }

    /// The client sent `n` more bytes.
    pub(crate) fn receive(&mut self, n: u64) -> Result<(), StdinRefused> {
        if self.total.saturating_add(n) > self.max_total {
            return Err(StdinRefused::OverLimit);
        }
        if self.outstanding.saturating_add(n) > self.window {
            return Err(StdinRefused::OverCredit);
        }
        self.outstanding += n;
        self.total += n;
        Ok(())
    }

    /// The program took `n` bytes; returns what to acknowledge now, in batches of at least a
    /// quarter of the window. That never deadlocks: a client out of credit means `window`
    /// bytes are outstanding, and once the program has taken a quarter of them they are
    /// acknowledged.
    pub(crate) fn consume(&mut self, n: u64) -> Option<u64> {
        self.consumed = self.consumed.saturating_add(n).min(self.outstanding);
        if self.consumed > 0 && self.consumed >= (self.window / 4).max(1) {
            let ack = self.consumed;
            self.outstanding -= ack;
            self.consumed = 0;
            Some(ack)
        } else {
            None
        }
    }
}

#[derive(Debug)]
struct StdinState {
    book: StdinBook,
    buf: BytesMut,
    ended: bool,
}

/// The stdin of one run: what the client sent, waiting for the program, bounded by the credit
/// (so never more than `stdin_window` bytes). Small chunks are joined, so a client sending
/// one byte per message costs bytes, not a message each.
#[derive(Debug)]
pub(crate) struct StdinPipe {
    state: Mutex<StdinState>,
    notify: Notify,
}

impl StdinPipe {
    pub(crate) fn new(window: u64, max_total: u64) -> Self {
        Self {
            state: Mutex::new(StdinState {
                book: StdinBook::new(window, max_total),
                buf: BytesMut::new(),
                ended: false,
            }),
            notify: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StdinState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `data` from the client. Input after the end is ignored.
    pub(crate) fn push(&self, data: &[u8]) -> Result<(), StdinRefused> {
        if data.is_empty() {
            return Ok(());
        }
        {
            let mut s = self.state();
            if s.ended {
                return Ok(());
            }
            s.book.receive(data.len() as u64)?;
            s.buf.extend_from_slice(data);
        }
        self.notify.notify_one();
        Ok(())
    }

    /// The client has no more input.
    pub(crate) fn end(&self) {
        self.state().ended = true;
        self.notify.notify_one();
    }

    /// The next chunk of at most `max` bytes; `None` once the input has ended and all of it
    /// was taken.
    pub(crate) async fn next(&self, max: usize) -> Option<Bytes> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state();
                if !s.buf.is_empty() {
                    let n = s.buf.len().min(max.max(1));
                    return Some(s.buf.split_to(n).freeze());
                }
                if s.ended {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The program took `n` bytes; returns what to acknowledge now, if anything.
    pub(crate) fn consumed(&self, n: usize) -> Option<u64> {
        self.state().book.consume(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_credit_never_exceeds_the_window() {
        let mut c = OutputCredit::new(100);
        c.spend(60);
        assert_eq!(c.left(), 40);
        c.ack(1_000_000);
        assert_eq!(c.left(), 100, "an over-acknowledgement is capped");
        c.spend(500);
        assert_eq!(c.left(), 0);
    }

    #[test]
    fn stdin_past_the_credit_or_the_cap_is_refused() {
        let mut b = StdinBook::new(100, 250);
        assert_eq!(b.receive(100), Ok(()));
        assert_eq!(b.receive(1), Err(StdinRefused::OverCredit));
        // A quarter consumed is acknowledged; less is held back.
        assert_eq!(b.consume(10), None);
        assert_eq!(b.consume(15), Some(25));
        assert_eq!(b.receive(25), Ok(()));
        assert_eq!(b.receive(1), Err(StdinRefused::OverCredit));
        assert_eq!(b.consume(100), Some(100));
        assert_eq!(b.receive(75), Ok(()));
        assert_eq!(b.consume(75), Some(75));
        assert_eq!(b.receive(50), Ok(()), "250 in all");
        assert_eq!(
            b.receive(1),
            Err(StdinRefused::OverLimit),
            "past 250 in all"
        );
    }

    #[test]
    fn consuming_more_than_was_received_acknowledges_only_what_was() {
        let mut b = StdinBook::new(8, 1000);
        b.receive(4).unwrap();
        assert_eq!(b.consume(50), Some(4));
        assert_eq!(b.consume(50), None);
    }

    #[tokio::test]
    async fn the_pipe_joins_chunks_and_ends() {
        let p = StdinPipe::new(1024, 1 << 20);
        p.push(b"ab").unwrap();
        p.push(b"").unwrap();
        p.push(b"cd").unwrap();
        p.end();
        p.push(b"late").unwrap();
        assert_eq!(p.next(3).await.as_deref(), Some(&b"abc"[..]));
        assert_eq!(p.next(3).await.as_deref(), Some(&b"d"[..]));
        assert_eq!(p.next(3).await, None);
    }

    #[tokio::test]
    async fn a_waiter_wakes_on_credit() {
        let c = std::sync::Arc::new(Credit::new(10));
        c.spend(10);
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.wait().await }
        });
        tokio::task::yield_now().await;
        c.ack(4);
        assert_eq!(waiter.await.unwrap(), 4);
    }
}
