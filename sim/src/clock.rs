//! Simulated time: a wall clock sped up by `SimOptions::speed`. Scenario times are simulated
//! seconds; wire timestamps are real calendar instants (the clock's start plus the REAL time a
//! simulated second falls at), so a client comparing them with its own clock, as
//! bbzoom does to tell builds created before it started watching, sees them in step with it.
//! Durations the APIs report as numbers (`duration_in_seconds`, Data Center's `duration`) are in
//! simulated seconds.
//!
//! The clock starts with the simulator, or, held, at its first request: a scenario then begins
//! when the daemon under test is up however long it took to start, so compressing time harder
//! does not turn a slow start into history the daemon never saw. It may start at a later
//! simulated second than 0, so a test can begin mid-scenario without waiting for it.

use crate::SimStart;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};
use time::macros::format_description;
use time::{Duration, OffsetDateTime};

/// Turns real elapsed time into simulated seconds, and simulated seconds into the calendar
/// instants the wire shows.
#[derive(Debug)]
pub(super) struct Clock {
    speed: f64,
    /// The simulated second the clock starts from.
    from: f64,
    /// When it started, once it runs: unset while a clock made with
    /// [`SimStart::AtFirstRequest`] waits for its first request.
    zero: OnceLock<Zero>,
}

/// When a clock started.
#[derive(Debug)]
struct Zero {
    /// The monotonic instant it started at, which elapsed time is measured from.
    instant: Instant,
    /// The calendar instant of simulated second 0, to the millisecond. Simulated second `t`
    /// is `epoch + t / speed`: the wall-clock time it falls at (before the start for the
    /// seconds before the clock's first).
    epoch: OffsetDateTime,
}

impl Clock {
    /// A clock at simulated second `from`, running now or held until [`Clock::start`].
    pub(super) fn new(speed: f64, from: f64, start: SimStart) -> Clock {
        let clock = Clock {
            speed,
            from,
            zero: OnceLock::new(),
        };
        if start == SimStart::Immediately {
            clock.start();
        }
        clock
    }

    /// A clock at simulated second 0 now whose second 0 is the calendar instant `epoch`.
    #[cfg(test)]
    fn anchored(speed: f64, epoch: OffsetDateTime) -> Clock {
        Clock {
            speed,
            from: 0.0,
            zero: OnceLock::from(Zero {
                instant: Instant::now(),
                epoch,
            }),
        }
    }

    /// Lets a held clock run from now; a running clock runs on.
    pub(super) fn start(&self) {
        self.zero();
    }

    /// When the clock started, starting it if it is held: a calendar instant once shown must
    /// stay where it was shown.
    fn zero(&self) -> &Zero {
        self.zero.get_or_init(|| {
            let now = OffsetDateTime::from(SystemTime::now());
            let before = Duration::checked_seconds_f64(self.from / self.speed).unwrap_or_default();
            Zero {
                instant: Instant::now(),
                epoch: to_millis(now.checked_sub(before).unwrap_or(now)),
            }
        })
    }

    /// The current simulated second; the first one while the clock is held.
    pub(super) fn now(&self) -> f64 {
        self.zero.get().map_or(self.from, |zero| {
            self.from + zero.instant.elapsed().as_secs_f64() * self.speed
        })
    }

    /// The calendar instant of simulated second 0.
    pub(super) fn epoch(&self) -> SystemTime {
        self.zero().epoch.into()
    }

    /// The calendar instant of a simulated second; a nonsensical scenario time (NaN, far out
    /// of range) maps to the epoch instead of panicking inside a request handler.
    fn at(&self, sim_secs: f64) -> OffsetDateTime {
        Duration::checked_seconds_f64(sim_secs / self.speed)
            .and_then(|d| self.zero().epoch.checked_add(d))
            .unwrap_or(self.zero().epoch)
    }

    /// Bitbucket's timestamp form, RFC 3339 in UTC with milliseconds:
    /// `2026-01-05T09:00:20.000Z`.
    pub(super) fn rfc3339(&self, sim_secs: f64) -> String {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        // Formatting a UTC date with a static description cannot fail; fall back to the Unix
        // epoch's text rather than panic in a request handler all the same.
        self.at(sim_secs)
            .format(&format)
            .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
    }

    /// Git's commit date form, RFC 3339 with an offset and whole seconds, as Bitbucket
    /// Cloud's `target.date`: `2026-01-05T09:00:20+00:00`.
    pub(super) fn git_date(&self, sim_secs: f64) -> String {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
        self.at(sim_secs)
            .format(&format)
            .unwrap_or_else(|_| "1970-01-01T00:00:00+00:00".to_owned())
    }

    /// Milliseconds since the Unix epoch, Data Center's timestamp form.
    pub(super) fn epoch_millis(&self, sim_secs: f64) -> i64 {
        (self.at(sim_secs).unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The millisecond after simulated second 0 that a wire timestamp of `sim_secs` shows,
    /// without starting a held clock: what tells two instants apart on the wire.
    pub(super) fn wire_millis(&self, sim_secs: f64) -> i64 {
        Duration::checked_seconds_f64(sim_secs / self.speed)
            .map_or(0, |d| d.whole_milliseconds() as i64)
    }

    /// Zoom's `sent_time` form, `yyyy-MM-dd HH:mm:ss` in UTC.
    pub(super) fn zoom_time(&self, sim_secs: f64) -> String {
        let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        self.at(sim_secs)
            .format(&format)
            .unwrap_or_else(|_| "1970-01-01 00:00:00".to_owned())
    }
}

/// `at` cut down to whole milliseconds.
fn to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let millis = at.millisecond();
    at.replace_millisecond(millis).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_like_the_wire() {
        let clock = Clock::anchored(1.0, datetime!(2026-01-05 09:00:00 UTC));
        assert_eq!(clock.rfc3339(0.0), "2026-01-05T09:00:00.000Z");
        assert_eq!(clock.rfc3339(80.6715), "2026-01-05T09:01:20.671Z");
        assert_eq!(clock.zoom_time(3661.9), "2026-01-05 10:01:01");
        assert_eq!(clock.git_date(20.5), "2026-01-05T09:00:20+00:00");
        assert_eq!(clock.epoch_millis(1.5), 1_767_603_601_500);
        assert_eq!(clock.epoch_millis(f64::NAN), 1_767_603_600_000);
    }

    #[test]
    fn wire_milliseconds_are_compressed_and_leave_a_held_clock_held() {
        let clock = Clock::new(360.0, 0.0, SimStart::AtFirstRequest);
        // 0.23 simulated seconds apart, the same millisecond on the wire at 360x.
        assert_eq!(clock.wire_millis(5499.818), 15_277);
        assert_eq!(clock.wire_millis(5500.050), 15_277);
        assert_eq!(clock.wire_millis(5500.5), 15_279);
        assert_eq!(clock.now(), 0.0, "still held");
    }

    #[test]
    fn second_zero_is_the_wall_clock_at_start_to_the_millisecond() {
        let millis = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as i64
        };
        let before = millis(SystemTime::now());
        let clock = Clock::new(40.0, 0.0, SimStart::Immediately);
        let after = millis(SystemTime::now());
        let epoch = clock.epoch_millis(0.0);
        assert!(
            (before..=after).contains(&epoch),
            "{before} {epoch} {after}"
        );
        assert_eq!(millis(clock.epoch()), epoch);
        let since_1970 = clock.epoch().duration_since(SystemTime::UNIX_EPOCH).ok();
        assert_eq!(since_1970.map(|d| d.subsec_nanos() % 1_000_000), Some(0));
        // A simulated minute falls at a real minute divided by the speed.
        assert_eq!(
            Clock::anchored(4.0, clock.zero().epoch).epoch_millis(60.0),
            epoch + 15_000
        );
        assert!(
            clock
                .rfc3339(0.0)
                .ends_with(&format!("{:03}Z", epoch % 1000))
        );
    }

    #[test]
    fn runs_faster_than_the_wall() {
        let clock = Clock::new(1000.0, 0.0, SimStart::Immediately);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(clock.now() >= 5.0);
    }

    #[test]
    fn a_clock_started_later_in_the_scenario_shows_its_past_in_the_past() {
        let before = OffsetDateTime::from(SystemTime::now());
        let clock = Clock::new(10.0, 40.0, SimStart::Immediately);
        assert!((40.0..41.0).contains(&clock.now()));
        // Second 0 fell four real seconds before the start; second 40 at it.
        let zero = clock.epoch_millis(0.0);
        let start = clock.epoch_millis(40.0);
        assert_eq!(start - zero, 4_000);
        let before = (before.unix_timestamp_nanos() / 1_000_000) as i64;
        assert!(
            (before - 1..=before + 1_000).contains(&start),
            "{before} {start}"
        );
    }

    #[test]
    fn a_held_clock_stays_at_zero_until_started_or_read_as_a_calendar() {
        let held = Clock::new(1000.0, 0.0, SimStart::AtFirstRequest);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(held.now(), 0.0);
        held.start();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(held.now() >= 5.0);

        let read = Clock::new(1000.0, 0.0, SimStart::AtFirstRequest);
        let shown = read.rfc3339(0.0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(read.now() >= 5.0, "a calendar read starts the clock");
        assert_eq!(
            read.rfc3339(0.0),
            shown,
            "second 0 stays where it was shown"
        );
    }
}
