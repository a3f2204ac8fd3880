//! Per-client rate limits: a token bucket per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained requests per second per client.
    pub per_second: f64,
    /// Requests a client may make at once after being idle.
    pub burst: u32,
}

/// Per client: tokens left and when they were counted.
type Buckets = HashMap<IpAddr, (f64, Instant)>;

#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    buckets: Mutex<(Buckets, Instant)>,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new((HashMap::new(), Instant::now())),
        }
    }

    /// Takes one token for `client`; on refusal, how long until one is available.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let rate = self.limit.per_second.max(0.001);
        let burst = f64::from(self.limit.burst.max(1));
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (map, last_prune) = &mut *guard;
        if now.duration_since(*last_prune) > Duration::from_secs(60) {
            // Forget clients whose bucket has been full for a while.
            let full_after = Duration::from_secs_f64(burst / rate);
            map.retain(|_, (_, t)| now.duration_since(*t) < full_after);
            *last_prune = now;
        }
        let (tokens, last) = map.entry(client).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_per_client() {
        let l = Limiter::new(RateLimit {
            per_second: 0.001,
            burst: 3,
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_err());
        assert!(l.check(b).is_ok(), "another client has its own bucket");
    }
}
