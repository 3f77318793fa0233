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

/// The quota behind [`budget_limiter`]: see [`pace`].
pub(crate) fn budget_quota(limit: RateLimit) -> Quota {
    let (burst, period) = pace(limit);
    Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst).expect("burst is at least one"))
}

/// The burst and the period of a GCRA that spreads `limit` over its window.
///
/// GCRA with a burst `b` and a period `t` admits at most `b - 1 + ceil(per / t)` requests in
/// a window, so a burst the size of the whole budget would let nearly twice the budget through
/// an hour. The burst is kept to a sixtieth of the budget and the period stretched so that the
/// two add up to the budget: `t` is rounded UP to the nanosecond, since a period a nanosecond
/// short lets one request more into every window (1,001 in an hour for 1,000).
fn pace(limit: RateLimit) -> (u32, Duration) {
    let requests = limit.requests.max(1);
    let burst = (requests / 60).max(1);
    let steps = u128::from(requests - burst + 1);
    let nanos = limit.per.as_nanos().div_ceil(steps).max(1);
    (
        burst,
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::{Clock, FakeRelativeClock};

    /// The instants a limiter of `quota` admits a request at when it is asked without pause
    /// from 0 to `until`: governor's fake clock jumps to exactly each next admission, so a
    /// window's edge is found to the nanosecond.
    fn admissions(quota: Quota, until: Duration) -> Vec<Duration> {
        let clock = FakeRelativeClock::default();
        let limiter = governor::RateLimiter::direct_with_clock(quota, clock.clone());
        let mut admitted = Vec::new();
        loop {
            // The fake clock starts at 0.
            let now: Duration = clock.now().into();
            if now >= until {
                return admitted;
            }
            match limiter.check() {
                Ok(()) => admitted.push(now),
                Err(not_until) => clock.advance(not_until.wait_time_from(clock.now())),
            }
        }
    }

    /// The most of `at` (sorted) in any window `[t, t + per)`.
    fn most_in_a_window(at: &[Duration], per: Duration) -> usize {
        let mut first = 0;
        let mut most = 0;
        for (last, &t) in at.iter().enumerate() {
            while t - at[first] >= per {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// Every window of the quota, exactly: budgets whose period does not divide evenly
    /// included (1,000 an hour once let 1,001 through).
    #[test]
    fn budget_is_never_exceeded_in_any_window() {
        for (requests, per) in [
            (900, 3600),
            (1000, 3600),
            (999, 3600),
            (60, 3600),
            (7, 3),
            (20, 1),
            (2, 60),
            (1, 60),
        ] {
            let limit = RateLimit {
                requests,
                per: Duration::from_secs(per),
            };
            let admitted = admissions(budget_quota(limit), limit.per * 5);
            let most = most_in_a_window(&admitted, limit.per);
            assert!(
                most <= requests as usize,
                "{requests}/{per}s: {most} in one window"
            );
            assert!(
                admitted.len() as u32 >= requests * 4,
                "{requests}/{per}s uses its budget: {}",
                admitted.len()
            );
        }
    }
}
