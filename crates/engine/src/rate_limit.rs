//! Per-trigger rate limits (spec decision 9): at most `count` firings of one virtual button or
//! one webhook per window of `per`. Off unless configured (Losant's own limit is 100 per 10 s).
//!
//! Fixed windows per key: a key's window opens with its first firing and lasts `per`; firings
//! past `count` in it are refused (the API answers 429). Keys idle for a whole window are
//! forgotten, so the map holds only recently active triggers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A limit: `count` firings per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    /// Parses `COUNT/SECONDS`, e.g. `100/10`.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let bad = || format!("\"{text}\" is not COUNT/SECONDS (for example 100/10)");
        let (count, seconds) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let seconds: f64 = seconds.trim().parse().map_err(|_| bad())?;
        if count == 0 || !(seconds > 0.0 && seconds <= 86_400.0) {
            return Err(format!(
                "\"{text}\": the count must be at least 1 and the window from 0 to 86400 seconds"
            ));
        }
        Ok(RateLimit {
            count,
            per: Duration::from_secs_f64(seconds),
        })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} per {} s", self.count, self.per.as_secs_f64())
    }
}

/// Counts firings per key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept before idle ones are swept out.
const SWEEP_ABOVE: usize = 4096;

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Counts one firing of `key`; false when it is over the limit.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > SWEEP_ABOVE {
            let per = self.limit.per;
            windows.retain(|_, (opened, _)| now.duration_since(*opened) < per);
        }
        let (opened, count) = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(*opened) >= self.limit.per {
            *opened = now;
            *count = 0;
        }
        if *count >= self.limit.count {
            return false;
        }
        *count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            RateLimit::parse("100/10").unwrap(),
            RateLimit {
                count: 100,
                per: Duration::from_secs(10)
            }
        );
        assert_eq!(
            RateLimit::parse(" 5 / 0.5 ").unwrap().per,
            Duration::from_millis(500)
        );
        for bad in ["", "100", "0/10", "10/0", "x/1", "1/-2", "1/100000"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_per_key_in_fixed_windows() {
        let limiter = RateLimiter::new(RateLimit {
            count: 3,
            per: Duration::from_secs(10),
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.allow_at("a", start));
        }
        assert!(!limiter.allow_at("a", start + Duration::from_secs(9)));
        // Another key has its own window.
        assert!(limiter.allow_at("b", start));
        // The window over, counting starts again.
        assert!(limiter.allow_at("a", start + Duration::from_secs(10)));
    }
}
