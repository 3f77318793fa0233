//! When to retry: exponential backoff with full jitter, and `Retry-After` in all three forms
//! seen in the wild. *What* to retry is each client's business (see `zoom::ErrorClass`); this
//! module only answers *when*.

use std::time::{Duration, SystemTime};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Exponential backoff with full jitter (AWS's "full jitter": a uniform draw below the cap), so
/// retries of many clients never align.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
    /// Ceiling no delay exceeds, however many attempts failed.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0 for the first retry): `base * 2^attempt`, capped.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A uniformly random delay in `[ceiling/10, ceiling]`; the small floor keeps a storm of
    /// retries from all landing at once at zero.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let floor = ceiling / 10;
        floor + ceiling.saturating_sub(floor).mul_f64(rand::random::<f64>())
    }

    /// The delays before each of `retries` retries of one call: what `backon` waits out when
    /// it retries in-process, so that every retry in bbzoom follows this one policy.
    pub(crate) fn delays(
        self,
        retries: usize,
    ) -> impl Iterator<Item = Duration> + Send + Sync + Unpin {
        (0..retries).map(move |attempt| self.delay(u32::try_from(attempt).unwrap_or(u32::MAX)))
    }
}

/// Parses a `Retry-After` value: delta-seconds (`120`), an HTTP-date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`) or an RFC 3339 timestamp (`2026-10-21T07:28:00Z`, as Zoom
/// has been seen to send). Returns how long to wait from `now`, at most `longest` (a server's
/// number is untrusted: `18446744073709551615` or `1e300` would overflow every clock); a date
/// in the past means zero.
pub fn parse_retry_after(value: &str, now: SystemTime, longest: Duration) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        (secs.is_finite() && secs >= 0.0).then(|| crate::clock::secs_f64(secs))?
    } else {
        let at = match httpdate::parse_http_date(value) {
            Ok(at) => at,
            Err(_) => SystemTime::from(OffsetDateTime::parse(value, &Rfc3339).ok()?),
        };
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(longest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever a server sends, the wait is parsed without a panic and never exceeds the
        /// bound: text, whole and fractional numbers of any size, dates of any year.
        #[test]
        fn any_retry_after_parses_within_the_bound(
            text in prop_oneof![
                any::<String>(),
                any::<u64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|x| x.to_string()),
                any::<f64>().prop_map(|x| format!("{x:e}")),
                (0u32..=9999, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}T00:00:00Z")),
            ],
            now_secs in any::<u32>(),
            longest_secs in 0u64..=86_400,
        ) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(now_secs));
            let longest = Duration::from_secs(longest_secs);
            if let Some(wait) = parse_retry_after(&text, now, longest) {
                prop_assert!(wait <= longest, "{text:?}: {wait:?}");
            }
        }
    }

    #[test]
    fn parses_each_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cases: &[(&str, Option<u64>)] = &[
            ("120", Some(120)),
            (" 7 ", Some(7)),
            ("0", Some(0)),
            // 1_800_000_060 seconds after the epoch is 2027-01-15T08:01:00Z.
            ("Fri, 15 Jan 2027 08:01:00 GMT", Some(60)),
            ("2027-01-15T08:01:00Z", Some(60)),
            ("2027-01-15T09:01:00+01:00", Some(60)),
            ("2020-01-01T00:00:00Z", Some(0)),
            ("soon", None),
            ("1e300", Some(3600)),
            ("18446744073709551615", Some(3600)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(3600)),
            ("NaN", None),
            ("-1e300", None),
            ("-5", None),
            ("", None),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                parse_retry_after(input, now, Duration::from_secs(3600)),
                expected.map(Duration::from_secs),
                "Retry-After {input:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jitters_inside_its_ceiling() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(backoff.ceiling(0), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(3), Duration::from_secs(8));
        assert_eq!(backoff.ceiling(40), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(4)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(1600) && *d <= Duration::from_secs(16))
        );
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 150, "delays are jittered, not fixed");

        let retries: Vec<Duration> = backoff.delays(3).collect();
        assert_eq!(retries.len(), 3, "one delay per retry");
        for (attempt, delay) in retries.into_iter().enumerate() {
            let ceiling = backoff.ceiling(attempt as u32);
            assert!(
                delay >= ceiling / 10 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
    }
}
