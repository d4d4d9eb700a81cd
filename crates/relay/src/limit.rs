//! The per-IP rate limit of the API: a token bucket for each client address, in memory (so with
//! several relays behind a load balancer each enforces its own share of the limit). The address is
//! the connection's, or, where the operator says a proxy in front sets it, the one that proxy
//! appended to `X-Forwarded-For` ([`client_address`]).

use axum::http::HeaderMap;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// Past this many addresses, those with full buckets are forgotten (bounds the memory a flood of
/// addresses can take).
const PRUNE_ABOVE: usize = 10_000;

/// Buckets of `per_minute` requests, refilled continuously; a full bucket allows a burst of that many.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` 0 lets every request through.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a request from `ip`'s bucket; if it is empty, the seconds until it holds one again.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        if self.buckets.lock().map_or(0, |b| b.len()) > PRUNE_ABOVE {
            self.prune(now);
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(ip).or_insert(Bucket { tokens: capacity, at: now });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_second).ceil() as u64)
        }
    }

    /// Forgets the addresses whose buckets have refilled (they would start full anyway).
    pub fn prune(&self, now: Instant) {
        let full_after = 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets.retain(|_, b| now.saturating_duration_since(b.at).as_secs_f64() < full_after);
    }
}

/// The address a request is counted against: `peer`, the connection's (`None` for a router called
/// in-process), unless `trust_forwarded_for` and the request carries `X-Forwarded-For`; then the
/// rightmost address of its last header. Only the rightmost is the proxy's own: it appends the
/// address it saw, and everything left of it came from the client, who may write anything there.
/// An entry that is not an address (with or without a port) leaves `peer`.
pub fn client_address(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if !trust_forwarded_for {
        return peer;
    }
    let rightmost = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.rsplit(',').next())
        .map(str::trim);
    let forwarded = rightmost.and_then(|entry| {
        entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
    });
    forwarded.or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::time::Duration;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_then_its_rightmost_address() {
        let peer: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let spoofed = forwarded(&["6.6.6.6"]);
        assert_eq!(client_address(&spoofed, peer, false), peer, "untrusted: the header is ignored");
        assert_eq!(client_address(&spoofed, peer, true), ip("6.6.6.6"));
        let chain = forwarded(&["6.6.6.6, 10.0.0.7"]);
        assert_eq!(client_address(&chain, peer, true), ip("10.0.0.7"), "the client wrote the left one");
        let two_headers = forwarded(&["6.6.6.6", "10.0.0.8 , 10.0.0.9"]);
        assert_eq!(client_address(&two_headers, peer, true), ip("10.0.0.9"));
        assert_eq!(client_address(&forwarded(&["6.6.6.6,2001:db8::1"]), peer, true), ip("2001:db8::1"));
        assert_eq!(client_address(&forwarded(&["10.0.0.5:4711"]), peer, true), ip("10.0.0.5"));
        assert_eq!(client_address(&forwarded(&["[2001:db8::2]:443"]), peer, true), ip("2001:db8::2"));
        for not_an_address in ["10.0.0.7, unknown", "", "10.0.0.7,", "999.1.1.1"] {
            let headers = forwarded(&[not_an_address]);
            assert_eq!(client_address(&headers, peer, true), peer, "{not_an_address:?}");
        }
        assert_eq!(client_address(&HeaderMap::new(), peer, true), peer, "no header: the connection's");
        assert_eq!(client_address(&chain, None, true), ip("10.0.0.7"), "in-process, with a proxy's header");
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_per_address() {
        // 30 a minute: one every 2 s (exact in floating point).
        let limiter = RateLimiter::new(30);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        assert_eq!((0..30).map(|_| limiter.take(a, start)).collect::<Vec<_>>(), vec![Ok(()); 30]);
        assert_eq!(limiter.take(a, start), Err(2));
        assert_eq!(limiter.take(b, start), Ok(()), "another address has its own bucket");
        assert_eq!(limiter.take(a, start + Duration::from_secs(2)), Ok(()));
        assert_eq!(limiter.take(a, start + Duration::from_secs(3)), Err(1));
        limiter.prune(start + Duration::from_secs(61));
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1, "b is full again and forgotten, a is not");
        assert_eq!(RateLimiter::new(0).take(a, start), Ok(()));
    }
}
