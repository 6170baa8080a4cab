//! Token buckets per workload: what unauthenticated requests can make this process do.
//!
//! Two limits use them. Nonce issuance (`--nonce-rate`): anyone may ask for a nonce, and each
//! lets one post be appraised. Refused posts (`--refusal-rate`): a post is authenticated by its
//! signature, which costs an Ed25519 check (~37 µs) before the verifier knows it is genuine, and
//! a post that fails (a bad signature, a foreign, replayed or expired nonce) consumes nothing, so
//! without a limit one nonce would let anyone make the verifier check signatures without end.
//! Accepted posts are never charged: each consumes the nonce it carries and gets the next one
//! (docs/verifier.md, "The next nonce"), so they are bounded by the nonces issued.
//!
//! # Warning
//! A limit per workload is also a handle on it: whoever exhausts a workload's bucket delays its
//! genuine requests until the bucket refills (at most a second's worth of tokens is kept). The
//! buckets are this process's: N verifier processes allow N times the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets of one limit: workload → (tokens, last refill).
pub(crate) struct Buckets {
    /// Tokens added per second, and the most a bucket holds; 0: no limit.
    rate: u32,
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    /// Buckets refilled at `rate` a second with a burst of `rate` (0: no limit).
    pub(crate) fn new(rate: u32) -> Self {
        Self {
            rate,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The limit (tokens a second).
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Take a token from `workload`'s bucket (made full on first use); `false` when it is empty.
    pub(crate) fn take(&self, workload: &str) -> bool {
        self.with(workload, |tokens| {
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                true
            } else {
                false
            }
        })
    }

    /// Whether `workload`'s bucket holds a token, taking none.
    pub(crate) fn has(&self, workload: &str) -> bool {
        self.with(workload, |tokens| *tokens >= 1.0)
    }

    /// Drop `workload`'s bucket (it is not enrolled: made-up names must not grow the map).
    pub(crate) fn forget(&self, workload: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(workload);
        }
    }

    fn with(&self, workload: &str, f: impl FnOnce(&mut f64) -> bool) -> bool {
        if self.rate == 0 {
            return true;
        }
        let rate = f64::from(self.rate);
        // A poisoned map fails closed: nothing is allowed.
        let Ok(mut m) = self.map.lock() else {
            return false;
        };
        let now = Instant::now();
        let (tokens, last) = m.entry(workload.to_string()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        f(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_and_refills() {
        let b = Buckets::new(3);
        assert!(b.has("w"));
        assert!((0..3).all(|_| b.take("w")));
        assert!(!b.has("w") && !b.take("w"));
        // Another workload has its own bucket.
        assert!(b.take("v"));
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(
            b.take("w"),
            "a third of a second refills one of three tokens a second"
        );
        b.forget("w");
        assert!(
            (0..3).all(|_| b.take("w")),
            "a forgotten bucket starts full"
        );
    }

    #[test]
    fn rate_zero_is_no_limit() {
        let b = Buckets::new(0);
        assert!((0..10_000).all(|_| b.take("w")));
    }
}
