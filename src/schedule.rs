//! Bitbucket Pipelines schedules and when they fire, so a repository can be polled just after a
//! scheduled run starts instead of waiting for the sweep to come round.
//!
//! The spec's `pipeline_schedule.cron_pattern` is "the cron expression with second precision
//! (7 fields)": seconds, minutes, hours, day of month, month, day of week, year, in UTC
//! (`0 0 12 * * ? *` runs at noon every day). That is Quartz's form: `?` (no specific value) in
//! exactly one of day of month and day of week, days of the week 1 to 7 from Sunday or
//! `SUN`..`SAT`, months 1 to 12 or `JAN`..`DEC`, `*`, ranges, steps and lists. croner evaluates
//! it, set up as Quartz reads patterns; what croner would read differently is refused here first:
//!
//! - croner accepts `?` in both day fields, or in neither, and then fires when EITHER matches
//!   (Vixie cron's rule); Quartz refuses both, so a pattern with one `?` is all this accepts,
//!   and with it croner's rule is Quartz's (the other field alone decides).
//! - Quartz's `L`, `W` and `#` mean other things in croner (a lone `L` in day of week is
//!   Saturday to Quartz, "the last of each" to croner), so they are refused, as by the
//!   simulator. A refused schedule costs only the hint: the sweep still finds its runs.
//! - croner swaps names for numbers anywhere in the pattern; names are accepted only in the
//!   month and day-of-week fields.
//! - croner cannot step `*` in day of week when it counts from 1 (`*/2`); it is read as Quartz
//!   reads it, `1-7/2`.
//!
//! No pattern fires before 1970, Quartz's first year.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The fields of a pattern, in order, as an error names them.
const FIELDS: [&str; 7] = [
    "seconds",
    "minutes",
    "hours",
    "day of month",
    "month",
    "day of week",
    "year",
];

/// Position of the day-of-month field.
const DAY_OF_MONTH: usize = 3;
/// Position of the month field.
const MONTH: usize = 4;
/// Position of the day-of-week field.
const DAY_OF_WEEK: usize = 5;

/// Names Quartz accepts for months.
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Names Quartz accepts for days of the week.
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A schedule's cron pattern, read as Quartz reads it.
#[derive(Debug, Clone)]
pub struct CronPattern {
    /// The pattern as Bitbucket spells it, for logs and errors.
    text: String,
    /// croner's reading of it.
    cron: Cron,
}

/// An enabled Pipelines schedule of a repository: when it starts a run, and of what.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its uuid (with braces), which names it in logs.
    pub uuid: String,
    /// When it starts a run.
    pub pattern: CronPattern,
    /// The branch whose pipeline it runs (`target.ref_name`), when Bitbucket names one.
    pub branch: Option<String>,
}

impl CronPattern {
    /// Reads a 7-field Quartz pattern; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<CronPattern, String> {
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        if fields.len() != FIELDS.len() {
            return Err(format!(
                "'{pattern}' has {} fields, not 7 (seconds, minutes, hours, day of month, month, day of week, year)",
                fields.len()
            ));
        }
        if (fields[DAY_OF_MONTH] == "?") == (fields[DAY_OF_WEEK] == "?") {
            return Err(format!(
                "'{pattern}' must have '?' in exactly one of day of month and day of week"
            ));
        }
        for (i, field) in fields.iter().enumerate() {
            check_field(i, field).map_err(|problem| format!("'{pattern}': {problem}"))?;
        }
        let mut quartz = fields.clone();
        let stepped_week = fields[DAY_OF_WEEK]
            .strip_prefix("*/")
            .map(|step| format!("1-7/{step}"));
        if let Some(stepped) = &stepped_week {
            quartz[DAY_OF_WEEK] = stepped;
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Required)
            // Quartz counts days of the week from 1, Sunday.
            .alternative_weekdays(true)
            .build()
            .parse(&quartz.join(" "))
            .map_err(|e| format!("'{pattern}': {e}"))?;
        Ok(CronPattern {
            text: pattern.to_owned(),
            cron,
        })
    }

    /// The first instant strictly after `calendar_ms` (Unix milliseconds, UTC, on Bitbucket's
    /// calendar) at which the pattern fires, in Unix milliseconds; `None` if it never fires
    /// again (its years are past, or it names a day no month has).
    pub fn next_after(&self, calendar_ms: i64) -> Option<i64> {
        // Patterns fire on whole seconds, so the first fire after an instant is the first after
        // its second. From before 1970 the search starts at 1970: croner would otherwise walk
        // year by year from wherever the instant is.
        let second = calendar_ms.div_euclid(1000).max(-1);
        let from = DateTime::<Utc>::from_timestamp(second, 0)?;
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        next.timestamp().checked_mul(1000)
    }
}

impl std::fmt::Display for CronPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Refuses in field `i` what croner reads otherwise than Quartz (see the module's notes): `?`
/// as part of a field or outside the day fields, `L`, `W`, `#`, and names outside the month
/// and day-of-week fields.
fn check_field(i: usize, field: &str) -> Result<(), String> {
    let name = FIELDS[i];
    if field == "?" {
        return match i {
            DAY_OF_MONTH | DAY_OF_WEEK => Ok(()),
            _ => Err(format!("'?' is not allowed in {name}")),
        };
    }
    for part in field.split([',', '-', '/']) {
        let names: &[&str] = match i {
            MONTH => &MONTHS,
            DAY_OF_WEEK => &WEEKDAYS,
            _ => &[],
        };
        let readable = part == "*"
            || part.chars().all(|c| c.is_ascii_digit())
            || names.iter().any(|n| n.eq_ignore_ascii_case(part));
        if !readable || part.is_empty() {
            return Err(format!(
                "'{part}' in {name} is not a number, '*' or a name this field takes ('L', 'W' and '#' are not read)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Unix milliseconds of a UTC date and time.
    fn ms(at: time::OffsetDateTime) -> i64 {
        (at.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Every fire of `pattern` from `from` on, the first `n`.
    fn fires(pattern: &str, from: time::OffsetDateTime, n: usize) -> Vec<i64> {
        let pattern = CronPattern::parse(pattern).expect("parses");
        std::iter::successors(pattern.next_after(ms(from) - 1), |&t| pattern.next_after(t))
            .take(n)
            .collect()
    }

    /// A fire in January 2026: day, hour, minute.
    type Fire = (u8, u8, u8);

    #[test]
    fn quartz_patterns_fire_when_quartz_says() {
        // 2026-01-05 is a Monday.
        let monday = datetime!(2026-01-05 00:00 UTC);
        let table: [(&str, &[Fire]); 6] = [
            (
                "0 0 9 ? * MON-FRI *",
                &[
                    (5, 9, 0),
                    (6, 9, 0),
                    (7, 9, 0),
                    (8, 9, 0),
                    (9, 9, 0),
                    (12, 9, 0),
                ],
            ),
            ("0 30 2 * * ? *", &[(5, 2, 30), (6, 2, 30)]),
            (
                "0 0 */4 * * ? *",
                &[
                    (5, 0, 0),
                    (5, 4, 0),
                    (5, 8, 0),
                    (5, 12, 0),
                    (5, 16, 0),
                    (5, 20, 0),
                    (6, 0, 0),
                ],
            ),
            ("0 0 8 ? * MON *", &[(5, 8, 0), (12, 8, 0), (19, 8, 0)]),
            // Sunday is 1, Saturday 7; `*/2` in day of week is Quartz's 1, 3, 5, 7.
            ("0 0 3 ? * 1,7 *", &[(10, 3, 0), (11, 3, 0), (17, 3, 0)]),
            (
                "0 0 3 ? * */2 *",
                &[(6, 3, 0), (8, 3, 0), (10, 3, 0), (11, 3, 0)],
            ),
        ];
        for (pattern, expected) in table {
            let expected: Vec<i64> = expected
                .iter()
                .map(|&(day, hour, minute)| {
                    let date = time::Date::from_calendar_date(2026, time::Month::January, day);
                    let at = date
                        .and_then(|d| d.with_hms(hour, minute, 0))
                        .expect("a time");
                    ms(at.assume_utc())
                })
                .collect();
            assert_eq!(
                fires(pattern, monday, expected.len()),
                expected,
                "{pattern}"
            );
        }
        let working_hours = fires("0 0 9-17 ? * MON-FRI *", monday, 45);
        assert_eq!(working_hours.len(), 45);
        assert_eq!(working_hours[0], ms(datetime!(2026-01-05 09:00 UTC)));
        assert_eq!(working_hours[8], ms(datetime!(2026-01-05 17:00 UTC)));
        assert_eq!(working_hours[9], ms(datetime!(2026-01-06 09:00 UTC)));
        assert_eq!(working_hours[44], ms(datetime!(2026-01-09 17:00 UTC)));
        assert_eq!(
            fires("0 0 9-17 ? * MON-FRI *", monday, 46)[45],
            ms(datetime!(2026-01-12 09:00 UTC))
        );
    }

    #[test]
    fn fires_when_the_simulator_runs_schedules_through_a_week() {
        const WEEK: f64 = 7.0 * 24.0 * 3600.0;
        for pattern in [
            "0 0 9 ? * MON-FRI *",
            "0 30 2 * * ? *",
            "0 0 */4 * * ? *",
            "0 0 9-17 ? * MON-FRI *",
            "0 0 8 ? * MON *",
            "30 15 9-17/4 ? * 2-6 *",
            "0 0 12 * * ? *",
            "0 0,30 * ? * SAT,SUN *",
            "0 5/20 10 * * ? *",
            "0 0 0 1,8,10-11 * ? *",
            "0 0 3 ? * 1,7 2026",
            "0 0 3 ? * */2 *",
            "0 0 12 * * ? 2025",
        ] {
            let simulated = bbzoom_sim::SimSchedule::new(pattern, "main");
            let expected: Vec<i64> = simulated
                .run_times(0.0, WEEK)
                .expect("the simulator reads it")
                .into_iter()
                .map(bbzoom_sim::calendar_ms)
                .collect();
            let cron = CronPattern::parse(pattern).expect("parses");
            let end = bbzoom_sim::calendar_ms(WEEK);
            let fired: Vec<i64> =
                std::iter::successors(cron.next_after(bbzoom_sim::calendar_ms(0.0) - 1), |&t| {
                    cron.next_after(t)
                })
                .take_while(|&t| t < end)
                .collect();
            assert_eq!(fired, expected, "{pattern}");
        }
    }

    #[test]
    fn next_is_strictly_after_to_the_millisecond() {
        let noon = CronPattern::parse("0 0 12 * * ? *").expect("parses");
        let at = ms(datetime!(2026-01-05 12:00 UTC));
        let tomorrow = ms(datetime!(2026-01-06 12:00 UTC));
        assert_eq!(noon.next_after(at - 1), Some(at));
        assert_eq!(noon.next_after(at), Some(tomorrow));
        assert_eq!(noon.next_after(at + 500), Some(tomorrow));
        assert_eq!(noon.next_after(-5_000), Some(12 * 3600 * 1000));
        assert_eq!(noon.to_string(), "0 0 12 * * ? *");
    }

    #[test]
    fn patterns_that_stop_firing_say_so() {
        let now = ms(datetime!(2026-01-05 09:00 UTC));
        for never in [
            "0 0 12 * * ? 2025",
            "0 0 0 30 2 ? *",
            "0 0 0 31 4 ? 2026-2030",
        ] {
            let pattern = CronPattern::parse(never).expect("parses");
            assert_eq!(pattern.next_after(now), None, "{never}");
        }
        let last = CronPattern::parse("0 0 12 1 JAN ? 2027").expect("parses");
        let once = ms(datetime!(2027-01-01 12:00 UTC));
        assert_eq!(last.next_after(now), Some(once));
        assert_eq!(last.next_after(once), None);
        for far in [i64::MIN, i64::MAX, i64::MAX - 999, 8_000_000_000_000_000] {
            assert_eq!(last.next_after(far).is_some(), far < once, "{far}");
        }
    }

    #[test]
    fn refuses_what_quartz_refuses_or_croner_reads_otherwise() {
        for (bad, says) in [
            ("", "0 fields"),
            ("0 0 12 * * ?", "6 fields"),
            ("0 0 12 * * * *", "exactly one"),
            ("0 0 12 ? * ? *", "exactly one"),
            ("0 0 12 15 * MON *", "exactly one"),
            ("0 0 12 L * ? *", "'L' in day of month"),
            ("0 0 12 15W * ? *", "'15W'"),
            ("0 0 12 ? * 6#3 *", "'6#3'"),
            ("0 0 12 ? * L *", "'L' in day of week"),
            ("0 0 12 ? * 5L *", "'5L'"),
            ("0 MON 12 * * ? *", "'MON' in minutes"),
            ("0 0 12 * * ? ?", "'?' is not allowed in year"),
            ("0 0 12 1? * ? *", "'1?'"),
            ("0 0 24 * * ? *", "0 0 24"),
            ("0 0 12 ? * 8 *", "0 0 12 ? * 8 *"),
            ("0 0 12 ? * 0 *", "0 0 12 ? * 0 *"),
            ("0 */0 12 * * ? *", "*/0"),
            ("0 0 17-9 * * ? *", "17-9"),
            ("0 0 12 * * ? 99999999999999999999", "99999999999999999999"),
            ("0 0 12 * * ? 5001", "5001"),
            ("0 0 12 * * ? ,", "'' in year"),
            ("0 0 12 * * ? 2026-", "'' in year"),
        ] {
            match CronPattern::parse(bad) {
                Ok(_) => panic!("accepted {bad:?}"),
                Err(error) => assert!(error.contains(says), "{bad:?}: {error}"),
            }
        }
        for good in [
            "0 0 12 * * ? *",
            "0 15 10 ? jan,Jul mon-fri 2026",
            "0 0 12 ? * SUN-SAT *",
        ] {
            assert!(CronPattern::parse(good).is_ok(), "{good}");
        }
    }
}
