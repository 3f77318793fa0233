//! The cron patterns of Bitbucket Pipelines schedules and when they fire. The spec's
//! `pipeline_schedule.cron_pattern` is "the cron expression with second precision (7 fields)":
//! seconds, minutes, hours, day of month, month, day of week, year, in UTC (`0 0 12 * * ? *`
//! runs at noon every day). That is Quartz's form, read here as Quartz reads it: `*`, `?` (no
//! specific value, in day of month or day of week, one of which must have it), numbers, ranges
//! `a-b`, steps `*/n`, `a/n`, `a-b/n`, lists `a,b`, days of the week 1 to 7 from Sunday or
//! `SUN`..`SAT`, months 1 to 12 or `JAN`..`DEC`. Quartz's `L`, `W` and `#` are refused.
//!
//! Patterns fire in the scenario's calendar (see [`calendar_at`]), not the wall clock's.

use time::macros::datetime;
use time::{Date, Duration, OffsetDateTime};

/// The calendar instant of scenario second 0: a Monday, 09:00 UTC, the start of a working day.
/// Only schedules and the working-day rhythm of generated traces read it; wire timestamps start
/// from the simulator's own clock.
const SCENARIO_ZERO: OffsetDateTime = datetime!(2026-01-05 09:00:00 UTC);

/// The years a pattern's year field may name (Quartz's range).
const YEARS: (u32, u32) = (1970, 2199);

/// The calendar instant scenario second `t` stands for, [`SCENARIO_ZERO`] plus `t` seconds
/// (the epoch instant itself for a time out of range).
pub(super) fn calendar_at(t: f64) -> OffsetDateTime {
    Duration::checked_seconds_f64(t)
        .and_then(|d| SCENARIO_ZERO.checked_add(d))
        .unwrap_or(SCENARIO_ZERO)
}

/// The calendar instant scenario second `t` stands for (Monday 2026-01-05 09:00 UTC plus `t`
/// seconds), in Unix milliseconds: what a daemon's cron evaluator is compared with.
pub fn calendar_ms(t: f64) -> i64 {
    (calendar_at(t).unix_timestamp_nanos() / 1_000_000) as i64
}

/// A parsed pattern: the values each field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cron {
    seconds: Vec<u32>,
    minutes: Vec<u32>,
    hours: Vec<u32>,
    /// Days of the month allowed; `None` for `?`.
    days_of_month: Option<Vec<u32>>,
    months: Vec<u32>,
    /// Days of the week allowed, 1 (Sunday) to 7; `None` for `?`.
    days_of_week: Option<Vec<u32>>,
    years: Vec<u32>,
}

/// Names Quartz accepts for months, January first.
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Names Quartz accepts for days of the week, Sunday (1) first.
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    /// Parses a 7-field pattern; the error says what is wrong with it.
    pub(super) fn parse(pattern: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        let [seconds, minutes, hours, dom, month, dow, year] = fields[..] else {
            return Err(format!(
                "'{pattern}' has {} fields, not 7 (seconds to year)",
                fields.len()
            ));
        };
        if (dom == "?") == (dow == "?") {
            return Err(format!(
                "'{pattern}' must have '?' in exactly one of day of month and day of week"
            ));
        }
        let optional = |field: &str, min, max, names: &[&str]| {
            (field != "?")
                .then(|| values(field, min, max, names))
                .transpose()
        };
        Ok(Cron {
            seconds: values(seconds, 0, 59, &[])?,
            minutes: values(minutes, 0, 59, &[])?,
            hours: values(hours, 0, 23, &[])?,
            days_of_month: optional(dom, 1, 31, &[])?,
            months: values(month, 1, 12, &MONTHS)?,
            days_of_week: optional(dow, 1, 7, &WEEKDAYS)?,
            years: values(year, YEARS.0, YEARS.1, &[])?,
        })
    }

    /// Every scenario second in `[from, to)` at which the pattern fires, in order.
    pub(super) fn fire_times(&self, from: f64, to: f64) -> Vec<f64> {
        let mut times = Vec::new();
        let offset = |day: Date| (day.midnight().assume_utc() - SCENARIO_ZERO).as_seconds_f64();
        let mut day = calendar_at(from).date();
        let last = calendar_at(to).date();
        while day <= last {
            if self.takes(day) {
                let midnight = offset(day);
                for &h in &self.hours {
                    for &m in &self.minutes {
                        for &s in &self.seconds {
                            let t = midnight + f64::from(h * 3600 + m * 60 + s);
                            if (from..to).contains(&t) {
                                times.push(t);
                            }
                        }
                    }
                }
            }
            let Some(next) = day.next_day() else { break };
            day = next;
        }
        times
    }

    /// Whether the pattern fires at all on `day`.
    fn takes(&self, day: Date) -> bool {
        let weekday = u32::from(day.weekday().number_from_sunday());
        let year = u32::try_from(day.year()).unwrap_or(0);
        self.years.contains(&year)
            && self.months.contains(&u32::from(u8::from(day.month())))
            && self
                .days_of_month
                .as_ref()
                .is_none_or(|days| days.contains(&u32::from(day.day())))
            && self
                .days_of_week
                .as_ref()
                .is_none_or(|days| days.contains(&weekday))
    }
}

/// The values one field allows, ascending, each within `min..=max`; `names` spell the values
/// from `min` on.
fn values(field: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<u32>, String> {
    let value = |text: &str| -> Result<u32, String> {
        let named = names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .map(|i| min + i as u32);
        match named.or_else(|| text.parse().ok()) {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(format!("'{text}' is not a value from {min} to {max}")),
        }
    };
    let mut allowed = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => match step.parse::<u32>() {
                Ok(step) if step > 0 => (range, step),
                _ => return Err(format!("'{step}' is not a step in '{part}'")),
            },
            None => (part, 1),
        };
        let (first, last) = match range.split_once('-') {
            _ if range == "*" => (min, max),
            Some((a, b)) => (value(a)?, value(b)?),
            // `a/n` runs from `a` to the end, as in Quartz.
            None if step > 1 => (value(range)?, max),
            None => {
                let v = value(range)?;
                (v, v)
            }
        };
        if first > last {
            return Err(format!("'{part}' runs backwards"));
        }
        allowed.extend((first..=last).step_by(step as usize));
    }
    allowed.sort_unstable();
    allowed.dedup();
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: f64 = 3600.0;
    const DAY: f64 = 24.0 * HOUR;

    #[test]
    fn the_specs_example_fires_at_noon_every_day() {
        let noon = Cron::parse("0 0 12 * * ? *").expect("parses");
        // Second 0 is Monday 09:00: noon is three hours on, then every day.
        assert_eq!(
            noon.fire_times(0.0, 3.0 * DAY),
            [3.0 * HOUR, 3.0 * HOUR + DAY, 3.0 * HOUR + 2.0 * DAY]
        );
        assert_eq!(noon.fire_times(3.0 * HOUR, 3.0 * HOUR + 1.0), [3.0 * HOUR]);
        assert!(noon.fire_times(5.0, 5.0).is_empty());
        assert_eq!(calendar_at(3.0 * HOUR), datetime!(2026-01-05 12:00:00 UTC));
    }

    #[test]
    fn reads_quartz_fields() {
        let working_hours = Cron::parse("30 15 9-17/4 ? * MON-FRI *").expect("parses");
        let week = working_hours.fire_times(-9.0 * HOUR, 7.0 * DAY - 9.0 * HOUR);
        // Monday to Friday at 09:15:30, 13:15:30 and 17:15:30.
        assert_eq!(week.len(), 15);
        assert_eq!(week[0], 15.0 * 60.0 + 30.0);
        assert_eq!(week[1], 4.0 * HOUR + 15.0 * 60.0 + 30.0);
        let sundays = Cron::parse("0 0 3 ? * 1 *").expect("parses");
        assert_eq!(sundays.fire_times(0.0, 7.0 * DAY), [6.0 * DAY - 6.0 * HOUR]);
        let first_of_month = Cron::parse("0 0 0 1 FEB,mar ? 2026").expect("parses");
        assert_eq!(first_of_month.fire_times(0.0, 365.0 * DAY).len(), 2);
        let every_ten_minutes = Cron::parse("0 5/10 * * * ? *").expect("parses");
        assert_eq!(every_ten_minutes.fire_times(0.0, HOUR).len(), 6);
        assert_eq!(every_ten_minutes.fire_times(0.0, HOUR)[0], 300.0);
        let never_again = Cron::parse("0 0 12 * * ? 2025").expect("parses");
        assert!(never_again.fire_times(0.0, 30.0 * DAY).is_empty());
    }

    #[test]
    fn refuses_what_quartz_refuses_or_this_does_not_read() {
        for bad in [
            "0 0 12 * * ?",
            "0 12 * * *",
            "0 0 12 * * * *",
            "0 0 12 ? * ? *",
            "0 0 24 * * ? *",
            "0 0 12 L * ? *",
            "0 0 12 ? * 6#3 *",
            "0 0 12 ? * 8 *",
            "0 */0 12 * * ? *",
            "0 0 17-9 * * ? *",
            "0 0 12 * * ? 1969",
        ] {
            assert!(Cron::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
