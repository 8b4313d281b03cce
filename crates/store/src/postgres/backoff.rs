//! Reconnect backoff: after a failed attempt to connect, the next one
//! waits, so that a restarting database is not met by a new connection
//! for every call every node makes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the store may next try to connect, and why it may not yet.
#[derive(Debug)]
pub(super) struct Backoff {
    first: Duration,
    max: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Failed attempts in a row.
    failures: u32,
    /// No attempt before this.
    until: Option<Instant>,
    /// The last attempt's error, for the calls refused meanwhile.
    error: String,
}

impl Backoff {
    pub(super) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain values, whole after any panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why a new connection may not be tried at `now`, if it may not.
    pub(super) fn refusal(&self, now: Instant) -> Option<String> {
        let state = self.state();
        let until = state.until?;
        let left = until.checked_duration_since(now)?;
        Some(format!(
            "PostgreSQL could not be reached ({}); the next attempt to connect is in {} ms \
             (reconnect backoff, {} failed in a row)",
            state.error,
            left.as_millis().max(1),
            state.failures
        ))
    }

    /// An attempt to connect failed at `now` with `error`: the next waits
    /// `first × 2^(failures − 1)`, at most `max`, jittered down to half.
    pub(super) fn failed(&self, now: Instant, error: &str) {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        let doubling = 1u32 << (state.failures - 1).min(20);
        let wait = self.first.saturating_mul(doubling).min(self.max);
        let wait = wait.mul_f64(0.5 + fastrand::f64() / 2.0);
        state.until = Some(now + wait);
        state.error = error.to_string();
    }

    /// A call got through: the next failure starts from `first` again.
    pub(super) fn connected(&self) {
        let mut state = self.state();
        if state.failures != 0 || state.until.is_some() {
            *state = State::default();
        }
    }

    #[cfg(test)]
    fn wait(&self, now: Instant) -> Duration {
        self.state()
            .until
            .and_then(|u| u.checked_duration_since(now))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_on_success() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let now = Instant::now();
        assert!(b.refusal(now).is_none(), "nothing failed yet");
        for (failure, full) in [(1, 100), (2, 200), (3, 400), (4, 700), (5, 700), (30, 700)] {
            while b.state().failures < failure {
                b.failed(now, "connection refused");
            }
            let wait = b.wait(now).as_millis();
            assert!(
                (full / 2..=full).contains(&wait),
                "failure {failure}: waited {wait} ms, expected within [{}, {full}]",
                full / 2
            );
        }
        let why = b.refusal(now).expect("refused while waiting");
        assert!(
            why.contains("connection refused") && why.contains("30 failed in a row"),
            "{why}"
        );
        assert!(b.refusal(now + Duration::from_millis(701)).is_none());
        b.connected();
        assert!(b.refusal(now).is_none());
        b.failed(now, "again");
        assert!(
            b.wait(now) <= Duration::from_millis(100),
            "starts again from the first wait"
        );
    }

    #[test]
    fn a_cap_below_the_first_wait_is_the_first_wait() {
        let b = Backoff::new(Duration::from_millis(300), Duration::from_millis(10));
        let now = Instant::now();
        b.failed(now, "x");
        b.failed(now, "x");
        assert!(b.wait(now) >= Duration::from_millis(150));
        assert!(b.wait(now) <= Duration::from_millis(300));
    }
}
