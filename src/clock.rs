//! The wall clock, behind a trait: records that must mean the same after a restart (when a row
//! was queued, when to try it next, when a poll finished) are stamped in Unix milliseconds from
//! the [`Clock`] a task was given, so a test can drive time without waiting for it.
//!
//! Bitbucket's calendar, which Pipelines schedules fire by, is a [`Calendar`] of its own: in
//! production it is the wall clock, but a simulator compressing time fires schedules on a
//! calendar that runs faster than the real time the daemon's timers and the wire's timestamps
//! keep, and a timer set for a scheduled run must wait the real time until it.
//!
//! Time arithmetic on floats goes through [`secs_f64`] and [`scaled`]: std's
//! `Duration::from_secs_f64` and `mul_f64` panic on NaN, negatives and overflow, which a ratio
//! of rates can reach. Every span added to an instant is bounded where it comes in (the
//! configuration's ranges, the clamps of what Bitbucket and Zoom send, [`FAR`] here).

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest span the daemon's arithmetic yields: ten years, beyond every interval, pause
/// and lifetime it keeps (each is bounded lower where it comes in: the configuration's ranges,
/// the clamps of what Bitbucket and Zoom send) and far inside what `Instant` can add.
pub const FAR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Unix milliseconds as UTC text in `format` (RFC 3339, or a description of the fields each
/// reader wants); `None` for an instant `time` cannot represent.
pub(crate) fn utc_text(
    ms: i64,
    format: &(impl time::formatting::Formattable + ?Sized),
) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(format)
        .ok()
}

/// Unix milliseconds as `2023-11-14T22:13:20Z`: RFC 3339 in UTC to the whole second, as
/// Zoom's list-messages takes a time and as the chat's subscriptions file records one.
pub(crate) fn utc_seconds(ms: i64) -> String {
    utc_text(
        ms,
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
    )
    .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// `secs` seconds, within `[0, FAR]`: NaN and negatives are zero, anything longer is [`FAR`].
pub fn secs_f64(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).map_or(FAR, |span| span.min(FAR))
    }
}

/// `span` times `factor`, within `[0, FAR]` (a NaN or negative factor gives zero).
pub fn scaled(span: Duration, factor: f64) -> Duration {
    secs_f64(span.as_secs_f64() * factor)
}

/// Where the time comes from.
pub trait Clock: Debug + Send + Sync {
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock: what the daemon runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// The calendar Bitbucket's schedules fire by.
pub trait Calendar: Debug + Send + Sync {
    /// Bitbucket's calendar now, Unix milliseconds (UTC).
    fn now_ms(&self) -> i64;
    /// The real time until calendar instant `at_ms` (zero if it is past): what a timer waits.
    fn until(&self, at_ms: i64) -> Duration;
}

/// The system's wall clock as Bitbucket's calendar: what the daemon runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemCalendar;

impl Calendar for SystemCalendar {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn until(&self, at_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms())).unwrap_or(0))
    }
}

/// Unix milliseconds now, by the system's wall clock (0 before 1970, which no clock shows).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_seconds_drops_the_milliseconds() {
        assert_eq!(utc_seconds(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn time_arithmetic_saturates_instead_of_panicking() {
        for (secs, expected) in [
            (f64::NAN, Duration::ZERO),
            (-1.0, Duration::ZERO),
            (1.5, Duration::from_millis(1500)),
            (1e300, FAR),
            (f64::INFINITY, FAR),
        ] {
            assert_eq!(secs_f64(secs), expected, "{secs}");
        }
        assert_eq!(scaled(Duration::MAX, 2.0), FAR);
        assert_eq!(scaled(Duration::from_secs(10), f64::NAN), Duration::ZERO);
    }

    #[test]
    fn the_system_calendar_is_the_wall_clock() {
        let calendar = SystemCalendar;
        let before = now_ms();
        let now = calendar.now_ms();
        assert!((before..=now_ms()).contains(&now));
        assert_eq!(calendar.until(now - 1_000), Duration::ZERO);
        assert_eq!(calendar.until(i64::MIN), Duration::ZERO);
        let minute = calendar.until(now_ms() + 60_000);
        assert!(
            (Duration::from_secs(59)..=Duration::from_secs(60)).contains(&minute),
            "{minute:?}"
        );
        assert!(calendar.until(i64::MAX) > Duration::from_secs(1 << 40));
    }
}
