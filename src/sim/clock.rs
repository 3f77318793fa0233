//! Simulated time: a wall clock sped up by `SimOptions::speed`, and the fixed calendar date it
//! is pinned to, so that runs are reproducible and wire timestamps look like real ones.

use std::time::Instant;
use time::macros::{datetime, format_description};
use time::{Duration, OffsetDateTime};

/// Calendar instant of simulated second 0. Fixed (not the real date) so that timestamps in a
/// run's output do not depend on when the run happened.
const EPOCH: OffsetDateTime = datetime!(2026-01-05 09:00:00 UTC);

/// Turns real elapsed time into simulated seconds.
#[derive(Debug)]
pub(super) struct Clock {
    start: Instant,
    speed: f64,
}

impl Clock {
    /// A clock at simulated second 0 now.
    pub(super) fn new(speed: f64) -> Clock {
        Clock {
            start: Instant::now(),
            speed,
        }
    }

    /// Simulated seconds since the clock was made.
    pub(super) fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.speed
    }
}

/// The calendar instant of a simulated second; a nonsensical scenario time (NaN, far out of
/// range) maps to the epoch instead of panicking inside a request handler.
fn at(sim_secs: f64) -> OffsetDateTime {
    Duration::checked_seconds_f64(sim_secs)
        .and_then(|d| EPOCH.checked_add(d))
        .unwrap_or(EPOCH)
}

/// Bitbucket's timestamp form, RFC 3339 in UTC with milliseconds: `2026-01-05T09:00:20.000Z`.
pub(super) fn rfc3339(sim_secs: f64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Formatting a UTC date with a static description cannot fail; fall back to the epoch's
    // text rather than panic in a request handler all the same.
    at(sim_secs)
        .format(&format)
        .unwrap_or_else(|_| "2026-01-05T09:00:00.000Z".to_owned())
}

/// Zoom's `sent_time` form, `yyyy-MM-dd HH:mm:ss` in UTC.
pub(super) fn zoom_time(sim_secs: f64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    at(sim_secs)
        .format(&format)
        .unwrap_or_else(|_| "2026-01-05 09:00:00".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_wire() {
        assert_eq!(rfc3339(0.0), "2026-01-05T09:00:00.000Z");
        assert_eq!(rfc3339(80.6715), "2026-01-05T09:01:20.671Z");
        assert_eq!(zoom_time(3661.9), "2026-01-05 10:01:01");
    }

    #[test]
    fn runs_faster_than_the_wall() {
        let clock = Clock::new(1000.0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(clock.now() >= 5.0);
    }
}
