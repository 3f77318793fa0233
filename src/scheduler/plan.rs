//! The plan: how often each class of repository is polled so that a credential's watches fit
//! its budget, and how an idle repository's sweep is weighted by its history. Pure: tested as
//! tables.

use crate::clock::{scaled, secs_f64};
use crate::config::{PollingConfig, RateLimit};
use std::time::Duration;

/// Share of the budget the plan spends, leaving room for follow-ups and retries.
const PLANNED_SHARE: f64 = 0.9;

/// Shares of the planned budget the warm and the cold class keep however busy the hot one is.
/// Idle repositories are most of them and most builds start in one, so the cold class keeps
/// the larger floor: a few running builds never take every look away from the many. Measured
/// (`cargo bench --bench economy`): raising the cold floor from 0.4 to 0.6 took the 1,000
/// repository p95 from 8,978 s to 5,839 s and the 100 repository p95 from 651 s to 458 s.
const WARM_FLOOR: f64 = 0.1;
const COLD_FLOOR: f64 = 0.6;

/// Share of the planned budget that polls of repositories keep whatever workspace scans
/// cost: the scans' interval is stretched before they take more (see `scan::interval`).
pub(crate) const UNRESERVED: f64 = 0.75;

/// Share of the planned budget the classes keep whatever is reserved (scans, the polls their
/// hints bring, looks at expected ends): however busy, idle repositories are still swept.
const CLASSES_FLOOR: f64 = 0.15;

/// How much more or less often than an even sweep an idle repository may be swept for its
/// history: the busiest at most 4x as often, the quietest at least a quarter as often, so no
/// subscribed repository goes unswept for longer than four even rounds.
pub(crate) const SWEEP_SPREAD: f64 = 4.0;

/// How busy a repository is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Heat {
    Hot,
    Warm,
    Cold,
}

/// One repository's claim on the budget: its class and the requests one poll costs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Demand {
    pub(crate) heat: Heat,
    pub(crate) cost: f64,
}

/// The interval each class is polled at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    pub(crate) hot: Duration,
    pub(crate) warm: Duration,
    pub(crate) cold: Duration,
}

impl Plan {
    pub(crate) fn interval(&self, heat: Heat) -> Duration {
        match heat {
            Heat::Hot => self.hot,
            Heat::Warm => self.warm,
            Heat::Cold => self.cold,
        }
    }
}

/// A class's target interval.
fn target(targets: &PollingConfig, heat: Heat) -> Duration {
    match heat {
        Heat::Hot => targets.hot,
        Heat::Warm => targets.warm,
        Heat::Cold => targets.cold,
    }
}

/// Requests a second the plan may spend of `budget`.
pub(crate) fn planned_rate(budget: RateLimit) -> f64 {
    f64::from(budget.requests) * PLANNED_SHARE / budget.per.as_secs_f64()
}

/// Fits `demands` into `budget`, less the `reserved` requests a second what must come anyway
/// takes (never more than [`CLASSES_FLOOR`] leaves), by priority: the hot class gets what it needs, then the warm
/// one, and the cold one the rest; but warm and cold keep floors of a tenth and three fifths.
/// A class that gets less than its targets cost has its interval stretched to fit. Budget left
/// over shortens the warm and cold intervals alike, down to the hot one: an idle repository is
/// looked at as often as the budget affords, so its next build is seen starting. Pure.
pub(crate) fn plan(
    budget: RateLimit,
    targets: &PollingConfig,
    demands: &[Demand],
    reserved: f64,
) -> Plan {
    let capacity = (planned_rate(budget) - reserved).max(planned_rate(budget) * CLASSES_FLOOR);
    // Requests per second each class costs at its target interval.
    let rate = |heat: Heat| -> f64 {
        demands
            .iter()
            .filter(|d| d.heat == heat)
            .map(|d| d.cost)
            .sum::<f64>()
            / target(targets, heat).as_secs_f64()
    };
    let (hot, warm, cold) = (rate(Heat::Hot), rate(Heat::Warm), rate(Heat::Cold));
    let (warm_floor, cold_floor) = (
        warm.min(capacity * WARM_FLOOR),
        cold.min(capacity * COLD_FLOOR),
    );
    let hot_share = hot.min(capacity - warm_floor - cold_floor);
    let warm_share = warm.min(capacity - hot_share - cold_floor);
    let cold_share = (capacity - hot_share - warm_share).min(cold);
    // A class costing `rate` at `target` that may spend `share` is polled every target * rate / share.
    let stretch = |target: Duration, rate: f64, share: f64| {
        if rate <= share {
            target
        } else {
            scaled(target, rate / share)
        }
    };
    let hot_interval = stretch(targets.hot, hot, hot_share);
    let mut warm_interval = stretch(targets.warm, warm, warm_share);
    let mut cold_interval = stretch(targets.cold, cold, cold_share);
    // Requests one poll of every warm, every cold repository costs; and what hot leaves them.
    let (warm_round, cold_round) = (
        warm * targets.warm.as_secs_f64(),
        cold * targets.cold.as_secs_f64(),
    );
    let room = capacity - hot_share;
    if warm_interval > cold_interval {
        // Too many warm repositories to keep them warm: pool them with the cold ones.
        warm_interval = secs_f64((warm_round + cold_round) / room);
        cold_interval = warm_interval;
    } else {
        // Spend what is left on warm and cold: scale both by the factor that fills the budget.
        let spent =
            warm_round / warm_interval.as_secs_f64() + cold_round / cold_interval.as_secs_f64();
        if spent > 0.0 && room > spent {
            warm_interval = scaled(warm_interval, spent / room);
            cold_interval = scaled(cold_interval, spent / room);
        }
    }
    let warm_interval = warm_interval.max(hot_interval);
    let cold_interval = cold_interval.max(warm_interval);
    Plan {
        hot: hot_interval,
        warm: warm_interval,
        cold: cold_interval,
    }
}

/// Per idle repository, the factor its sweep interval is the even one's times, from its
/// `activity` (builds lately): a repository is swept in proportion to the square root of its
/// activity plus one (for builds arriving at random, what minimises the mean time to find
/// one for a given number of looks), within [`SWEEP_SPREAD`] either way, and the factors
/// keep the even sweep's total rate. Pure.
pub(crate) fn sweep_factors(activity: &[f64]) -> Vec<f64> {
    if activity.is_empty() {
        return Vec::new();
    }
    let weight: Vec<f64> = activity.iter().map(|a| (1.0 + a.max(0.0)).sqrt()).collect();
    let mean = weight.iter().sum::<f64>() / weight.len() as f64;
    let clamp = |f: f64| f.clamp(SWEEP_SPREAD.recip(), SWEEP_SPREAD);
    let factors: Vec<f64> = weight.iter().map(|w| clamp(mean / w)).collect();
    // The clamp moved the total rate (sum of 1/factor); bring it back to n, once: close
    // enough, and the limiter holds the budget whatever the plan says.
    let rate: f64 = factors.iter().map(|f| f.recip()).sum();
    let scale = rate / factors.len() as f64;
    factors.into_iter().map(|f| clamp(f * scale)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> PollingConfig {
        PollingConfig {
            hot: Duration::from_secs(15),
            warm: Duration::from_secs(60),
            cold: Duration::from_secs(600),
            warm_for: Duration::from_secs(1800),
            settle: Duration::from_secs(600),
            scan: Some(Duration::from_secs(30)),
        }
    }

    fn demands(hot: usize, warm: usize, cold: usize) -> Vec<Demand> {
        let of = |heat, n| std::iter::repeat_n(Demand { heat, cost: 1.0 }, n);
        of(Heat::Hot, hot)
            .chain(of(Heat::Warm, warm))
            .chain(of(Heat::Cold, cold))
            .collect()
    }

    /// Requests per hour a plan spends on `demands`.
    fn hourly(plan: &Plan, demands: &[Demand]) -> f64 {
        demands
            .iter()
            .map(|d| d.cost * 3600.0 / plan.interval(d.heat).as_secs_f64())
            .sum()
    }

    #[test]
    fn plans_fit_the_budget_by_priority_and_starve_no_one() {
        let budget = RateLimit {
            requests: 900,
            per: Duration::from_secs(3600),
        };
        let secs = |d: Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
        #[rustfmt::skip]
        type Row = ((usize, usize, usize), (f64, f64, f64));
        let table: &[Row] = &[
            // (hot, warm, cold) repositories -> (hot, warm, cold) interval in seconds.
            // The planned budget is 810 requests an hour, 0.225 a second.
            ((0, 0, 10), (15.0, 15.0, 44.4)), // 10 idle: 810 an hour buys a look every 44 s
            ((1, 0, 1), (15.0, 15.0, 15.0)),  // never faster than the hot interval
            ((1, 2, 100), (15.0, 85.7, 740.7)), // hot fits, cold keeps its floor (0.135/s), warm the rest
            ((0, 0, 1000), (15.0, 60.0, 4444.4)), // 1,000 idle: 1,000 polls cost 810 an hour
            ((3, 10, 1000), (44.4, 444.4, 7407.4)), // warm and cold at their floors (0.0225/s, 0.135/s)
            ((20, 10, 1000), (296.3, 444.4, 7407.4)), // hot stretched to the 0.3 that is left
            ((0, 500, 10), (15.0, 2266.7, 2266.7)), // warm would be slower than cold: pooled
        ];
        for &((hot, warm, cold), (hot_s, warm_s, cold_s)) in table {
            let demands = demands(hot, warm, cold);
            let plan = plan(budget, &targets(), &demands, 0.0);
            assert_eq!(
                (secs(plan.hot), secs(plan.warm), secs(plan.cold)),
                (hot_s, warm_s, cold_s),
                "{hot}/{warm}/{cold}"
            );
            let spent = hourly(&plan, &demands);
            assert!(
                spent <= 810.0 + 1e-6,
                "{hot}/{warm}/{cold}: {plan:?} spends {spent}"
            );
        }
    }

    #[test]
    fn the_sweep_favours_busy_repositories_keeps_its_rate_and_bounds_the_quiet() {
        // Even activity: an even sweep.
        assert_eq!(sweep_factors(&[3.0, 3.0, 3.0]), vec![1.0, 1.0, 1.0]);
        assert!(sweep_factors(&[]).is_empty());
        // One repository that ran 8 builds lately among nine that ran none.
        let mut activity = vec![0.0; 9];
        activity.push(8.0);
        let factors = sweep_factors(&activity);
        let (quiet, busy) = (factors[0], factors[9]);
        assert!(busy < 1.0 && quiet > 1.0, "{factors:?}");
        // sqrt(9) = 3 times the weight: swept 3x as often as a quiet one.
        assert!((quiet / busy - 3.0).abs() < 1e-9, "{factors:?}");
        let rate: f64 = factors.iter().map(|f| f.recip()).sum();
        assert!((rate - 10.0).abs() < 1e-9, "the even sweep's rate: {rate}");
        // Among many quiet ones, a very busy one is bounded both ways.
        let mut activity = vec![0.0; 999];
        activity.push(1e6);
        let factors = sweep_factors(&activity);
        assert!(
            factors.iter().all(|f| (0.25..=4.0).contains(f)),
            "{factors:?}"
        );
        assert!(factors[999] <= 0.25 + 1e-9);
    }
}
