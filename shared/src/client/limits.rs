//! Bounds on every number a server sends the client: lifetimes, waits, counts and clock
//! times. Owns the constants and the clamping functions; the engine calls them where a
//! message is decoded, so no value from a peer reaches `Instant` or `u64` arithmetic unchecked.
//!
//! A server (or anything answering with our ALPN) can send any `u64`. Honest servers stay far
//! inside these bounds (a code lives 120 s, backoffs stop at 5 min, tokens last 30 days by
//! default); the bounds only decide what a lying one can make the client do or show.

use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Longest code lifetime the client believes (`pair_challenge.expires_in_s`): one day. A
/// larger value is shown and counted down as one day; the server still decides.
pub const MAX_CODE_LIFETIME: Duration = DAY;

/// Longest server-requested wait (`pair_failed.retry_after_ms`) the engine sits out by
/// itself before retrying: 30 s. A longer wait is not slept through; it is returned to the
/// caller as a refusal with the wait as its hint. [`crate::client::ClientOptions::max_auto_wait`]
/// can lower it, never raise it.
pub const MAX_AUTO_WAIT: Duration = Duration::from_secs(30);

/// Longest wait the client reports (`retry_after` of an error, countdowns): one day. A
/// server's "come back in 584 billion years" is shown as one day.
pub const MAX_RETRY_HINT: Duration = DAY;

/// Most wrong answers the client believes a code allows (`attempts_left`).
pub const MAX_ATTEMPTS: u32 = 1000;

/// Furthest in the future the client stores a token's expiry (`token_expires_at`), counted
/// from its own clock: ten years. The token's real lifetime is the server's business; this
/// only keeps the saved value and its display sane.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3650 * 24 * 3600);

/// Furthest a server's clock is believed ahead of ours (`notice.at_ms`): one day. A later
/// time is taken as "now + one day".
pub const MAX_CLOCK_AHEAD: Duration = DAY;

/// Times the engine dials again when a request is refused with a short wait (each refusal
/// closes the connection, so each retry is a new one).
pub const MAX_START_RETRIES: u32 = 3;

/// `expires_in_s` as a duration of at most [`MAX_CODE_LIFETIME`].
pub fn code_lifetime(expires_in_s: u64) -> Duration {
    Duration::from_secs(expires_in_s).min(MAX_CODE_LIFETIME)
}

/// `retry_after_ms` as a duration of at most [`MAX_RETRY_HINT`].
pub fn retry_hint(retry_after_ms: u64) -> Duration {
    Duration::from_millis(retry_after_ms).min(MAX_RETRY_HINT)
}

/// `attempts_left` capped at [`MAX_ATTEMPTS`].
pub fn attempts(attempts_left: u32) -> u32 {
    attempts_left.min(MAX_ATTEMPTS)
}

/// A token expiry (Unix seconds) capped at `now` + [`MAX_TOKEN_LIFETIME`].
pub fn token_expiry(token_expires_at: u64, now_unix: u64) -> u64 {
    token_expires_at.min(now_unix.saturating_add(MAX_TOKEN_LIFETIME.as_secs()))
}

/// A server timestamp (Unix milliseconds) capped at `now` + [`MAX_CLOCK_AHEAD`].
pub fn server_time_ms(at_ms: u64, now_unix_ms: u64) -> u64 {
    let ahead = u64::try_from(MAX_CLOCK_AHEAD.as_millis()).unwrap_or(u64::MAX);
    at_ms.min(now_unix_ms.saturating_add(ahead))
}

/// A wait for people: `40 s`, `14 min`, `2 h 05 min`, `24 h`; rounded up, so a wait is never
/// shown shorter than it is.
pub fn wait_in_words(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs.div_ceil(60)),
        _ => {
            let mins = secs.div_ceil(60);
            match mins % 60 {
                0 => format!("{} h", mins / 60),
                m => format!("{} h {m:02} min", mins / 60),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_are_clamped_and_small_ones_kept() {
        assert_eq!(code_lifetime(u64::MAX), MAX_CODE_LIFETIME);
        assert_eq!(code_lifetime(120), Duration::from_secs(120));
        assert_eq!(code_lifetime(0), Duration::ZERO);
        assert_eq!(retry_hint(u64::MAX), MAX_RETRY_HINT);
        assert_eq!(retry_hint(1500), Duration::from_millis(1500));
        assert_eq!(attempts(u32::MAX), MAX_ATTEMPTS);
        assert_eq!(attempts(5), 5);
        let now = 1_800_000_000;
        assert_eq!(
            token_expiry(u64::MAX, now),
            now + MAX_TOKEN_LIFETIME.as_secs()
        );
        assert_eq!(token_expiry(now + 60, now), now + 60);
        assert_eq!(token_expiry(u64::MAX, u64::MAX), u64::MAX);
        let now_ms = now * 1000;
        assert_eq!(server_time_ms(u64::MAX, now_ms), now_ms + 86_400_000);
        assert_eq!(server_time_ms(now_ms - 5, now_ms), now_ms - 5);
    }

    #[test]
    fn waits_read_well_and_round_up() {
        assert_eq!(wait_in_words(Duration::ZERO), "0 s");
        assert_eq!(wait_in_words(Duration::from_millis(200)), "1 s");
        assert_eq!(wait_in_words(Duration::from_secs(40)), "40 s");
        assert_eq!(wait_in_words(Duration::from_secs(13 * 60 + 1)), "14 min");
        assert_eq!(
            wait_in_words(Duration::from_secs(2 * 3600 + 300)),
            "2 h 05 min"
        );
        assert_eq!(wait_in_words(MAX_RETRY_HINT), "24 h");
    }
}
