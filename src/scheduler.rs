//! When to poll: one scheduler per credential, on tokio timers, fitting the cadence of all the
//! credential's watches (a repository read through one source) into its request budget.
//!
//! A repository with a build running (or statuses still settling) is hot and polled often; one
//! that changed within `warm_for` is warm; the rest are cold and polled rarely. The planner
//! ([`plan`], pure) gives each class its target interval when the budget allows, and otherwise
//! stretches the cold class first, then the warm one, then all: latency grows, nothing is
//! missed, and the limiter keeps the budget whatever happens. Every next poll is jittered so
//! repositories never align.

use crate::config::{PollingConfig, RateLimit, Watch};
use crate::domain::{RepoId, SourceKind};
use crate::poller::{self, PollContext, PollError, Source};
use crate::shutdown::Shutdown;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{self, AbortHandle, JoinSet};
use tokio::time::Instant;

/// Polls of one credential in flight at once; they share its limiter, so this only bounds
/// how many wait at it.
const CONCURRENT_POLLS: usize = 4;

/// Share of the budget the plan spends, leaving room for follow-ups and retries.
const PLANNED_SHARE: f64 = 0.9;

/// Shares of the planned budget the warm and the cold class keep however busy the hot one is.
/// Idle repositories are most of them and most builds start in one, so the cold class keeps
/// the larger floor: a few running builds never take every look away from the many. Measured
/// (`cargo bench --bench economy`): raising the cold floor from 0.4 to 0.6 took the 1,000
/// repository p95 from 8,978 s to 5,839 s and the 100 repository p95 from 651 s to 458 s.
const WARM_FLOOR: f64 = 0.1;
const COLD_FLOOR: f64 = 0.6;

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

/// Fits `demands` into `budget`, by priority: the hot class gets what it needs, then the warm
/// one, and the cold one the rest; but warm and cold keep floors of a tenth and three fifths.
/// A class that gets less than its targets cost has its interval stretched to fit. Budget left
/// over shortens the warm and cold intervals alike, down to the hot one: an idle repository is
/// looked at as often as the budget affords, so its next build is seen starting. Pure.
pub(crate) fn plan(budget: RateLimit, targets: &PollingConfig, demands: &[Demand]) -> Plan {
    let capacity = f64::from(budget.requests) * PLANNED_SHARE / budget.per.as_secs_f64();
    // Requests per second each class costs at its target interval.
    let rate = |heat: Heat, target: Duration| -> f64 {
        demands
            .iter()
            .filter(|d| d.heat == heat)
            .map(|d| d.cost)
            .sum::<f64>()
            / target.as_secs_f64()
    };
    let (hot, warm, cold) = (
        rate(Heat::Hot, targets.hot),
        rate(Heat::Warm, targets.warm),
        rate(Heat::Cold, targets.cold),
    );
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
            target.mul_f64(rate / share)
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
        warm_interval = Duration::from_secs_f64((warm_round + cold_round) / room);
        cold_interval = warm_interval;
    } else {
        // Spend what is left on warm and cold: scale both by the factor that fills the budget.
        let spent =
            warm_round / warm_interval.as_secs_f64() + cold_round / cold_interval.as_secs_f64();
        if spent > 0.0 && room > spent {
            warm_interval = warm_interval.mul_f64(spent / room);
            cold_interval = cold_interval.mul_f64(spent / room);
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

/// A watch's identity: a repository and the source it is read through.
pub(crate) type WatchKey = (RepoId, SourceKind);

fn key_of(watch: &Watch) -> WatchKey {
    (watch.repo.clone(), watch.source)
}

/// One watch as the scheduler tracks it.
struct Tracked {
    watch: Watch,
    source: Source,
    /// Requests one poll costs, averaged.
    cost: f64,
    busy: bool,
    last_change: Option<Instant>,
    /// When its last poll finished.
    polled: Option<Instant>,
}

impl Tracked {
    fn new(watch: Watch, source: Source) -> Tracked {
        Tracked {
            watch,
            source,
            cost: 1.0,
            busy: false,
            last_change: None,
            polled: None,
        }
    }

    fn heat(&self, now: Instant, warm_for: Duration) -> Heat {
        if self.busy {
            Heat::Hot
        } else if self
            .last_change
            .is_some_and(|at| now.duration_since(at) < warm_for)
        {
            Heat::Warm
        } else {
            Heat::Cold
        }
    }

    fn learn(&mut self, result: &Result<poller::PollSummary, PollError>, now: Instant) {
        if let Ok(summary) = result {
            self.cost = 0.8 * self.cost + 0.2 * summary.requests.max(1) as f64;
            self.busy = summary.busy;
            if summary.transitions > 0 && !summary.baselined {
                self.last_change = Some(now);
            }
        }
    }
}

/// What one scheduler polls: every watch of its credential, each with the source that reads
/// it, and the target intervals. A reload sends a new roster; see [`run`].
#[derive(Clone)]
pub(crate) struct Roster {
    pub(crate) watches: Vec<(Watch, Source)>,
    pub(crate) targets: PollingConfig,
}

/// The last poll of each watch and how it went, for `bbzoom status`.
#[derive(Debug, Default)]
pub(crate) struct PollLog {
    by_watch: Mutex<HashMap<WatchKey, LastPoll>>,
}

/// One watch's last poll.
#[derive(Debug, Clone)]
pub(crate) struct LastPoll {
    /// When it finished (Unix milliseconds).
    pub(crate) at_ms: i64,
    /// Transitions it recorded, or why it failed.
    pub(crate) outcome: Result<usize, String>,
}

impl PollLog {
    pub(crate) fn last(&self, watch: &WatchKey) -> Option<LastPoll> {
        self.by_watch
            .lock()
            .expect("poll log lock")
            .get(watch)
            .cloned()
    }

    /// Forgets the watches `keep` rejects: those no longer polled.
    pub(crate) fn retain(&self, keep: impl Fn(&WatchKey) -> bool) {
        self.by_watch
            .lock()
            .expect("poll log lock")
            .retain(|watch, _| keep(watch));
    }

    fn record(
        &self,
        watch: &WatchKey,
        result: &Result<poller::PollSummary, PollError>,
        at_ms: i64,
    ) {
        let outcome = match result {
            Ok(summary) => Ok(summary.transitions),
            Err(err) => Err(err.to_string()),
        };
        let last = LastPoll { at_ms, outcome };
        self.by_watch
            .lock()
            .expect("poll log lock")
            .insert(watch.clone(), last);
    }
}

/// Polls the roster's watches (all of one credential) within `budget` until shutdown.
///
/// A new roster (a reload) is merged in: a watch still there keeps what was learnt of it and
/// its next poll, one that is new gets its first poll soon, one that is gone is dropped (a
/// poll of it under way is abandoned).
pub(crate) async fn run(
    mut ctx: PollContext,
    mut roster: watch::Receiver<Roster>,
    budget: RateLimit,
    log: Arc<PollLog>,
    stop_grace: Duration,
    mut shutdown: Shutdown,
) {
    let start = Instant::now();
    let (mut watches, mut targets) = {
        let roster = roster.borrow_and_update();
        let watches: Vec<Tracked> = roster
            .watches
            .iter()
            .map(|(w, source)| Tracked::new(w.clone(), source.clone()))
            .collect();
        (watches, roster.targets)
    };
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..watches.len())
        .map(|i| Reverse((start + first_poll_delay(watches.len(), budget, &targets), i)))
        .collect();
    let mut polls: JoinSet<Result<poller::PollSummary, PollError>> = JoinSet::new();
    // Each poll under way: its watch, and its task to abandon it by.
    let mut in_flight: HashMap<WatchKey, AbortHandle> = HashMap::new();
    let mut polling: HashMap<task::Id, WatchKey> = HashMap::new();
    loop {
        let next = due
            .peek()
            .map(|Reverse((at, _))| *at)
            .filter(|_| in_flight.len() < CONCURRENT_POLLS);
        tokio::select! {
            _ = shutdown.wait() => break,
            Ok(()) = roster.changed() => {
                let roster = roster.borrow_and_update().clone();
                targets = roster.targets;
                ctx.settle = targets.settle;
                abandon_outdated(&roster, &mut in_flight);
                (watches, due) = merge(watches, due, &roster, &in_flight, budget);
                tracing::info!(watches = watches.len(), "scheduler took the reloaded subscriptions");
            }
            Some(done) = polls.join_next_with_id(), if !polling.is_empty() => {
                let (id, result) = match done {
                    Ok(done) => done,
                    Err(err) if err.is_cancelled() => {
                        polling.remove(&err.id());
                        continue;
                    }
                    Err(err) => panic!("a poll panicked: {err}"),
                };
                let key = polling.remove(&id).expect("every poll is listed");
                // Abandoned by a reload but done first: what it committed stands; the
                // watch's turn is the reload's business now.
                if in_flight.get(&key).is_none_or(|poll| poll.id() != id) {
                    continue;
                }
                in_flight.remove(&key);
                let Some(index) = watches.iter().position(|w| key_of(&w.watch) == key) else { continue };
                log.record(&key, &result, ctx.clock.now_ms());
                let now = Instant::now();
                report(&watches[index], &result, &ctx);
                watches[index].learn(&result, now);
                let demands: Vec<Demand> = watches.iter().map(|w| Demand { heat: w.heat(now, targets.warm_for), cost: w.cost }).collect();
                let plan = plan(budget, &targets, &demands);
                let heat = watches[index].heat(now, targets.warm_for);
                let interval = plan.interval(heat);
                tracing::debug!(repo = %key.0, source = key.1.name(), ?heat, ?interval, "next poll planned");
                watches[index].polled = Some(now);
                // A poll planned in a busy moment must not stay far off once the plan relaxes:
                // bring every queued poll forward to what the current plan gives it.
                due = due
                    .into_iter()
                    .map(|Reverse((at, i))| {
                        let planned = watches[i].polled.map(|p| p + plan.interval(watches[i].heat(now, targets.warm_for)));
                        Reverse((planned.map_or(at, |p| at.min(p)), i))
                    })
                    .collect();
                due.push(Reverse((now + jitter(interval), index)));
            }
            _ = sleep_until(next) => {
                let Some(Reverse((_, index))) = due.pop() else { continue };
                let (ctx, tracked) = (ctx.clone(), &watches[index]);
                let (watch, source) = (tracked.watch.clone(), tracked.source.clone());
                let key = key_of(&watch);
                let poll = polls.spawn(async move { poller::poll_once(&ctx, &watch, &source).await });
                polling.insert(poll.id(), key.clone());
                in_flight.insert(key, poll);
            }
        }
    }
    // Let polls under way commit, for a while: one waiting out a 429 pause or the budget would
    // hold a reload or a stop for minutes. Abandoned, a poll leaves nothing half done (see
    // `poll_once`) and is simply made again.
    let drained = tokio::time::timeout(stop_grace, async {
        while polls.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            abandoned = polls.len(),
            "polls still waiting on Bitbucket were abandoned; they are made again later"
        );
        polls.shutdown().await;
    }
}

/// When a repository's first poll comes: spread over what the budget needs for one round of
/// `repositories`, at least the hot interval, so a large set does not start in a burst.
fn first_poll_delay(repositories: usize, budget: RateLimit, targets: &PollingConfig) -> Duration {
    let round = budget
        .per
        .mul_f64(repositories as f64 / (f64::from(budget.requests) * PLANNED_SHARE));
    round.max(targets.hot).mul_f64(rand::random::<f64>())
}

/// Abandons the polls under way of watches a reload took away from this scheduler: one would
/// hold the repository's turn (through a 429 pause, say) while its new scheduler's polls wait.
/// Abandoning is safe (see `poll_once`); a watch still here is polled again soon.
fn abandon_outdated(roster: &Roster, in_flight: &mut HashMap<WatchKey, AbortHandle>) {
    in_flight.retain(|key, poll| {
        let current = roster.watches.iter().any(|(w, _)| key_of(w) == *key);
        if !current {
            poll.abort();
        }
        current
    });
}

/// The watches and queue after a reload: see [`run`].
fn merge(
    old: Vec<Tracked>,
    old_due: BinaryHeap<Reverse<(Instant, usize)>>,
    roster: &Roster,
    in_flight: &HashMap<WatchKey, AbortHandle>,
    budget: RateLimit,
) -> (Vec<Tracked>, BinaryHeap<Reverse<(Instant, usize)>>) {
    let now = Instant::now();
    let mut next_at: HashMap<usize, Instant> = old_due
        .into_iter()
        .map(|Reverse((at, i))| (i, at))
        .collect();
    let mut kept: HashMap<WatchKey, (Tracked, Option<Instant>)> = old
        .into_iter()
        .enumerate()
        .map(|(i, t)| (key_of(&t.watch), (t, next_at.remove(&i))))
        .collect();
    let mut watches = Vec::with_capacity(roster.watches.len());
    let mut due = BinaryHeap::new();
    for (watch, source) in &roster.watches {
        let key = key_of(watch);
        let (tracked, at) = match kept.remove(&key) {
            Some((mut tracked, at)) => {
                tracked.watch = watch.clone();
                tracked.source = source.clone();
                (tracked, at)
            }
            None => {
                let first = now + first_poll_delay(1, budget, &roster.targets);
                (Tracked::new(watch.clone(), source.clone()), Some(first))
            }
        };
        // A watch being polled is queued again when its poll ends; one whose poll was just
        // abandoned is due now.
        if !in_flight.contains_key(&key) {
            due.push(Reverse((at.unwrap_or(now), watches.len())));
        }
        watches.push(tracked);
    }
    (watches, due)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `interval` give or take 10%, so repositories polled alike drift apart.
fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * rand::random::<f64>())
}

fn report(tracked: &Tracked, result: &Result<poller::PollSummary, PollError>, ctx: &PollContext) {
    let watch = &tracked.watch;
    let (repo, source) = (&watch.repo, watch.source.name());
    match result {
        Ok(summary) if summary.baselined => {
            tracing::info!(%repo, source, "baselined repository: history recorded, not announced");
        }
        Ok(summary) if summary.transitions > 0 => {
            tracing::debug!(%repo, source, ?summary, "poll recorded transitions")
        }
        Ok(_) => {}
        Err(PollError::Bitbucket(crate::bitbucket::BitbucketError::NotFound)) => {
            ctx.metrics
                .poll_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(%repo, source, url = %watch.url, "repository not found (404): check the URL and the credential's access; other subscriptions go on");
        }
        Err(err) => {
            ctx.metrics
                .poll_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%repo, source, credential = %watch.credential, %err, "poll failed; will try again");
        }
    }
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
            let plan = plan(budget, &targets(), &demands);
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
}
