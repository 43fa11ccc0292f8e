//! When `fmapdec` asks upstream for a key unit: at most once per [`INTERVAL`], and, once asked,
//! not again until the stream is back in sync or [`RETRY`] has passed without that. Without the
//! second rule, an outage of more than a second cost two key units: the first requested one
//! arrives only after the backlog of concealed frames has gone through the back network (just
//! over a second on vtest.avi with PLI), by which time the concealed units had asked again.

use std::time::{Duration, Instant};

/// Shortest time between two requests.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How long an unanswered request waits before it is repeated (the request or the key unit may
/// itself be lost).
pub const RETRY: Duration = Duration::from_secs(3);

/// The request state of one stream.
#[derive(Debug, Default, Clone)]
pub struct KeyRequests {
    last: Option<Instant>,
    /// A request went out and the stream has not been in sync since.
    pending: bool,
}

impl KeyRequests {
    /// Whether a key unit should be requested at `now`, the stream being out of sync; if so,
    /// the request is recorded.
    pub fn due(&mut self, now: Instant) -> bool {
        let wait = if self.pending { RETRY } else { INTERVAL };
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < wait)
        {
            return false;
        }
        self.last = Some(now);
        self.pending = true;
        true
    }

    /// A unit decoded without concealment: a request was answered (or was not needed).
    pub fn in_sync(&mut self) {
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_outage_until_sync_or_retry() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = KeyRequests::default();
        assert!(r.due(at(0)));
        // Still out of sync past the interval: the request is pending, no second one.
        assert!(!r.due(at(500)));
        assert!(!r.due(at(1050)));
        assert!(!r.due(at(2900)));
        // Unanswered for RETRY: asked again.
        assert!(r.due(at(3000)));
        // Answered; a new loss soon after waits for the interval only.
        r.in_sync();
        assert!(!r.due(at(3500)));
        assert!(r.due(at(4000)));
    }

    #[test]
    fn in_sync_streams_never_wait_longer_than_the_interval() {
        let t0 = Instant::now();
        let mut r = KeyRequests::default();
        for s in 0..5 {
            assert!(r.due(t0 + INTERVAL * s));
            r.in_sync();
        }
    }
}
