//! The HTTP plumbing both clients share: one reqwest client per upstream with TLS 1.2 or newer
//! and a timeout, and budget-shaped governor limiters.

use crate::domain::RateLimit;
use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;
use std::time::Duration;

/// A limiter every request to one upstream account passes (invariant: exactly one per credential).
pub(crate) type Limiter = DefaultDirectRateLimiter;

/// The HTTP client for one upstream. Credentials are attached per request with reqwest's
/// `bearer_auth`/`basic_auth`, which mark the header sensitive so it never shows in `Debug`.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .user_agent(concat!("bbzoom/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS backend is compiled in")
}

/// A limiter that never lets more than `limit.requests` through in any window of `limit.per`.
pub fn budget_limiter(limit: RateLimit) -> Limiter {
    Limiter::direct(budget_quota(limit))
}

/// The quota behind [`budget_limiter`].
///
/// GCRA admits `burst + window / period - 1` requests in a window, so a burst the size of the
/// whole budget would let nearly twice the budget through an hour. The burst is kept to a
/// sixtieth of the budget and the refill period stretched so that the two add up to the budget.
pub(crate) fn budget_quota(limit: RateLimit) -> Quota {
    let requests = limit.requests.max(1);
    let burst = (requests / 60).max(1);
    let period = limit.per / (requests - burst + 1);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst).expect("burst is at least one"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// Counts what the limiter admits in every window of the budget, driven by governor's fake
    /// clock (its async wait ignores tokio's clock, so decisions are tested directly).
    #[test]
    fn budget_is_never_exceeded_in_any_window() {
        for (requests, per) in [(900, 3600), (20, 1), (2, 60), (1, 60), (1000, 3600)] {
            let limit = RateLimit {
                requests,
                per: Duration::from_secs(per),
            };
            let clock = FakeRelativeClock::default();
            let limiter =
                governor::RateLimiter::direct_with_clock(budget_quota(limit), clock.clone());
            // Hammer it every 1/200 of the window for five windows and record admissions.
            let step = limit.per / 200;
            let mut admitted = Vec::new();
            for i in 0..1000u32 {
                while limiter.check().is_ok() {
                    admitted.push(step * i);
                }
                clock.advance(step);
            }
            for (i, &start) in admitted.iter().enumerate() {
                let in_window = admitted[i..]
                    .iter()
                    .take_while(|&&t| t < start + limit.per)
                    .count();
                assert!(
                    in_window <= requests as usize,
                    "{requests}/{per}s: {in_window} in one window"
                );
            }
            assert!(
                admitted.len() as u32 >= requests * 4,
                "{requests}/{per}s uses its budget"
            );
        }
    }
}
