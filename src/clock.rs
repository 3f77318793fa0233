//! The wall clock, behind a trait: records that must mean the same after a restart (when a row
//! was queued, when to try it next, when a poll finished) are stamped in Unix milliseconds from
//! the [`Clock`] a task was given, so a test can drive time without waiting for it.
//!
//! Bitbucket's calendar, which Pipelines schedules fire by, is a [`Calendar`] of its own: in
//! production it is the wall clock, but a simulator compressing time fires schedules on a
//! calendar that runs faster than the real time the daemon's timers and the wire's timestamps
//! keep, and a timer set for a scheduled run must wait the real time until it.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
