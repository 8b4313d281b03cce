//! Per-principal request rate limiting: a token bucket per authenticated
//! principal, so one runaway pipeline cannot starve the others. Time is
//! passed in, which keeps the limiter deterministic under test.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle ones are evicted; bounds memory even when
/// principals are many (OIDC subjects).
pub const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per principal: `burst` requests at once, refilled at
/// `per_second`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_second <= 0` (or not finite) means unlimited; a `burst` of 0
    /// is taken as 1 so that a limited principal can still make requests.
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateLimiter {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A limiter that allows everything.
    pub fn unlimited() -> Self {
        RateLimiter::new(0.0, 1)
    }

    /// Whether every request is allowed (no rate was set).
    pub fn is_unlimited(&self) -> bool {
        !(self.per_second > 0.0 && self.per_second.is_finite())
    }

    /// Takes one token from `principal`'s bucket at `now`, or says how long
    /// to wait for one (always more than zero; see [`retry_after_secs`]).
    pub fn check(&self, principal: &str, now: Instant) -> Result<(), Duration> {
        if self.is_unlimited() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(principal) && buckets.len() >= MAX_BUCKETS {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(principal.to_string()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.last = bucket.last.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.per_second;
        Err(Duration::try_from_secs_f64(wait)
            .unwrap_or(Duration::MAX)
            .max(Duration::from_millis(1)))
    }

    /// Number of principals tracked.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no principal is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops buckets that have refilled (forgetting them changes nothing);
    /// if that is not enough, the least recently used ones go too (they
    /// get a fresh burst: acceptable, and memory stays bounded).
    fn evict(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let (rate, burst) = (self.per_second, self.burst);
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
        let target = MAX_BUCKETS * 9 / 10;
        if buckets.len() > target {
            let mut by_age: Vec<(Instant, String)> =
                buckets.iter().map(|(k, b)| (b.last, k.clone())).collect();
            by_age.sort_unstable();
            for (_, k) in by_age.into_iter().take(buckets.len() - target) {
                buckets.remove(&k);
            }
        }
    }
}

/// Seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let rl = RateLimiter::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.check("ci", t0).unwrap();
        }
        let wait = rl.check("ci", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Another principal has its own bucket.
        rl.check("other", t0).unwrap();
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        rl.check("ci", t1).unwrap();
        assert!(rl.check("ci", t1).is_err());
        // After a long pause the bucket is full again, never fuller.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            rl.check("ci", t2).unwrap();
        }
        assert!(rl.check("ci", t2).is_err());
        // Time going backwards refills nothing.
        assert!(rl.check("ci", t0).is_err());
    }

    #[test]
    fn slow_rates_give_long_retry_after() {
        let rl = RateLimiter::new(0.1, 1);
        let t0 = Instant::now();
        rl.check("ci", t0).unwrap();
        let wait = rl.check("ci", t0).unwrap_err();
        assert_eq!(retry_after_secs(wait), 10);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn zero_or_negative_rate_is_unlimited() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let rl = RateLimiter::new(rate, 1);
            let t0 = Instant::now();
            for _ in 0..100 {
                rl.check("ci", t0).unwrap();
            }
            assert!(rl.is_empty());
        }
    }

    #[test]
    fn bucket_map_stays_bounded() {
        let rl = RateLimiter::new(1.0, 2);
        let t0 = Instant::now();
        for i in 0..MAX_BUCKETS {
            rl.check(&format!("p{i}"), t0).unwrap();
        }
        assert_eq!(rl.len(), MAX_BUCKETS);
        // None has refilled yet: the oldest are dropped to make room.
        rl.check("new", t0).unwrap();
        assert!(rl.len() <= MAX_BUCKETS * 9 / 10 + 1);
        // Later, every refilled bucket is dropped.
        let t1 = t0 + Duration::from_secs(10);
        for i in 0..MAX_BUCKETS {
            rl.check(&format!("q{i}"), t1).unwrap();
        }
        assert!(rl.len() <= MAX_BUCKETS);
    }
}
