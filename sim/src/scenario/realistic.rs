//! [`Scenario::realistic`]: a seeded trace shaped like a real workspace's day, for the
//! benchmark. On top of [`Scenario::random`]'s skewed activity it has a working-day rhythm,
//! pipelines with their own typical durations, scheduled runs from the repositories' schedules,
//! runs started by hand, and a few repositories whose outside CI posts statuses late.

use super::{
    FIRST_RANDOM_BUILD, MAX_BUILDS_PER_HOUR, MEAN_BUILDS_PER_HOUR, PARETO_SHAPE, RANDOM_CUSTOM,
    Scenario, SimBuild, SimRepo, SimSchedule, SimSource, SimState, SimTarget, SimTrigger,
    next_release, pick, random_branch, random_commit, random_ending, repo_created_at, unit_open,
};
use crate::cron::calendar_at;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::f64::consts::TAU;
use time::Weekday;

/// What starts the pipelines of a [`Scenario::realistic`] trace, as shares of them all. Only
/// their ratios count; a negative, infinite or NaN share counts as none, and none at all as
/// the default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceMix {
    /// Pushes of a branch or a tag. Default 0.85.
    pub push: f64,
    /// Runs the repositories' schedules start. Default 0.10.
    pub scheduled: f64,
    /// Runs started by hand: reruns, custom pipelines, "Run pipeline" on a branch. Default
    /// 0.05.
    pub manual: f64,
}

impl Default for TraceMix {
    fn default() -> Self {
        TraceMix {
            push: 0.85,
            scheduled: 0.10,
            manual: 0.05,
        }
    }
}

impl TraceMix {
    /// The shares that make sense, `(push, scheduled, manual)`, not all zero.
    fn shares(self) -> (f64, f64, f64) {
        let share = |s: f64| if s.is_finite() && s > 0.0 { s } else { 0.0 };
        let shares = (share(self.push), share(self.scheduled), share(self.manual));
        if shares == (0.0, 0.0, 0.0) {
            TraceMix::default().shares()
        } else {
            shares
        }
    }
}

/// Share of the repositories whose outside CI (a security scanner) also posts statuses.
const MIXED_SHARE: f64 = 0.04;
/// Share of a mixed repository's pushes the scanner reports on.
const SCANNED_SHARE: f64 = 0.85;
/// Median of the repositories' typical pipeline durations, in seconds.
const TYPICAL_DURATION: f64 = 360.0;
/// Spread (standard deviation of the logarithm) of typical durations between repositories.
const REPO_SPREAD: f64 = 0.6;
/// Spread of a repository's pipelines' typical durations around the repository's.
const PIPELINE_SPREAD: f64 = 0.3;
/// Spread of one pipeline's runs around its typical duration.
const RUN_SPREAD: f64 = 0.12;
/// The shortest and longest a run takes, in seconds.
const DURATIONS: (f64, f64) = (45.0, 3600.0);
/// How many of each schedule's runs before the scenario its repository's history holds.
const SCHEDULED_HISTORY: usize = 2;
/// How far back before the scenario that history reaches: a weekly schedule's last two runs.
const SCHEDULED_HISTORY_REACH: f64 = 15.0 * 86_400.0;
/// How many schedules per repository the generator tries before it gives up reaching the
/// scheduled share (in a trace too short for any schedule to fire).
const SCHEDULE_TRIES_PER_REPO: usize = 8;

/// A repository's activity, drawn before its builds.
struct Activity {
    /// When someone pushes or starts a run by hand (`true`), in order.
    events: Vec<(f64, bool)>,
    /// Whether an outside CI also posts statuses ([`SimSource::CloudMixed`]).
    mixed: bool,
    /// The repository's typical pipeline duration, around which its pipelines' are drawn.
    typical: f64,
    /// Its schedules.
    schedules: Vec<SimSchedule>,
}

impl Scenario {
    /// `repos` Cloud repositories, `acme/repo-0001` on, with builds over `hours` simulated
    /// hours, the same for the same `seed` and `mix`: the benchmark's trace.
    ///
    /// - Activity is skewed as in [`Scenario::random`] (each repository's rate drawn from a
    ///   Pareto distribution: a few busy, most quiet) and follows a working day. Simulated
    ///   second 0 is a Monday 09:00 (UTC, the calendar schedules read): people push and start
    ///   runs at a repository's full rate from 09:00 to 18:00 on weekdays, at a third of it
    ///   for two hours either side, hardly at night (3%) or at weekends (5%).
    /// - `mix` says what starts the pipelines. Pushes are drawn as in `random` (5% release tags,
    ///   half of the branch pushes to `main`). Scheduled runs come from the repositories'
    ///   schedules, made before the scenario on `main` (nightly, every four hours, hourly
    ///   through the working day, weekly), on `main`'s tip; each schedule's last two runs
    ///   before second 0 are in the repository's history. Runs by hand rerun the last run
    ///   that did not succeed, run a custom pipeline (`deploy-staging`, `nightly-e2e`,
    ///   `db-migrate`) on `main`'s tip, or "Run pipeline" on a branch's tip. Only pushes move a
    ///   repository's `updated_on`.
    /// - Each repository, and each of its pipelines (each branch's, the tags', each custom
    ///   one), has its own typical duration (median 6 minutes, from about one to an hour), and
    ///   runs vary about 12% around it; they queue 5 to 30 seconds and end as in `random`.
    /// - About 4% of the repositories ([`SimSource::CloudMixed`]) also get a scanner's status
    ///   (`security-scan`) on most pushes, posted 2 to 30 minutes after the push.
    pub fn realistic(seed: u64, repos: usize, hours: f64, mix: TraceMix) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let horizon = if hours.is_finite() {
            hours * 3600.0
        } else {
            0.0
        };
        let (push, scheduled, manual) = mix.shares();
        let by_hand = push + manual;
        let scale = MEAN_BUILDS_PER_HOUR * (PARETO_SHAPE - 1.0) / PARETO_SHAPE;
        let mut activities: Vec<Activity> = (0..repos)
            .map(|_| {
                let per_hour = (scale / unit_open(&mut rng).powf(PARETO_SHAPE.recip()))
                    .min(MAX_BUILDS_PER_HOUR);
                let mean_gap = 3600.0 / per_hour;
                let mixed = rng.random_bool(MIXED_SHARE);
                let typical = TYPICAL_DURATION * (REPO_SPREAD * normal(&mut rng)).exp();
                // A Poisson process at the full rate, thinned by the hour's rhythm.
                let mut events = Vec::new();
                let mut t = FIRST_RANDOM_BUILD - unit_open(&mut rng).ln() * mean_gap;
                while t <= horizon {
                    if rng.random::<f64>() < working_rhythm(t) {
                        events.push((t, rng.random::<f64>() * by_hand < manual));
                    }
                    t -= unit_open(&mut rng).ln() * mean_gap;
                }
                Activity {
                    events,
                    mixed,
                    typical,
                    schedules: Vec::new(),
                }
            })
            .collect();

        // Schedules go to repositories at random until their runs reach the scheduled share
        // of all pipelines (the pushes and runs by hand set the volume).
        let events: usize = activities.iter().map(|a| a.events.len()).sum();
        let wanted = if by_hand > 0.0 {
            events as f64 * scheduled / by_hand
        } else {
            events as f64
        };
        let (mut planned, mut tries) = (0, 0);
        while (planned as f64) < wanted && tries < SCHEDULE_TRIES_PER_REPO * repos {
            tries += 1;
            let schedule = random_schedule(&mut rng);
            let runs = schedule
                .run_times(FIRST_RANDOM_BUILD, horizon)
                .map_or(0, |runs| runs.len());
            if runs > 0 {
                planned += runs;
                activities[rng.random_range(0..repos)]
                    .schedules
                    .push(schedule);
            }
        }
        if by_hand == 0.0 {
            // The events only measured the volume: everything is scheduled.
            activities.iter_mut().for_each(|a| a.events.clear());
        }

        let repos = activities
            .into_iter()
            .enumerate()
            .map(|(index, activity)| realistic_repo(&mut rng, index, activity, horizon))
            .collect();
        Scenario { repos }
    }
}

/// How busy people are at simulated second `t`, 1 at the height of a working day: pushes and
/// runs by hand come at a repository's rate times this.
fn working_rhythm(t: f64) -> f64 {
    let at = calendar_at(t);
    let weekend = matches!(at.weekday(), Weekday::Saturday | Weekday::Sunday);
    match (weekend, at.hour()) {
        (true, _) => 0.05,
        (false, 9..18) => 1.0,
        (false, 7..9 | 18..20) => 0.35,
        (false, _) => 0.03,
    }
}

/// A standard normal number (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    (-2.0 * unit_open(rng).ln()).sqrt() * (TAU * rng.random::<f64>()).cos()
}

/// A schedule of `main` as people set them up, at a random minute: nightly (most), every four
/// hours, hourly through the working week, or weekly.
fn random_schedule(rng: &mut StdRng) -> SimSchedule {
    let minute = rng.random_range(0..60);
    let pattern = match rng.random_range(0..100) {
        0..55 => format!("0 {minute} {} * * ? *", rng.random_range(0..6)),
        55..75 => format!("0 {minute} 0/4 * * ? *"),
        75..90 => format!("0 {minute} 9-17 ? * MON-FRI *"),
        _ => format!("0 {minute} {} ? * SUN *", rng.random_range(0..24)),
    };
    SimSchedule::new(pattern, "main")
}

/// Repository `index` (from 0) of a realistic trace, its builds drawn from its `activity` up
/// to `horizon`: pipelines numbered in creation order, then the scanner's statuses.
fn realistic_repo(rng: &mut StdRng, index: usize, activity: Activity, horizon: f64) -> SimRepo {
    /// What starts a pipeline.
    enum Start {
        Push,
        ByHand,
        Schedule,
    }
    let mut starts: Vec<(f64, Start)> = activity
        .events
        .iter()
        .map(|&(t, by_hand)| (t, if by_hand { Start::ByHand } else { Start::Push }))
        .collect();
    for schedule in &activity.schedules {
        let runs = schedule
            .run_times(FIRST_RANDOM_BUILD, horizon)
            .unwrap_or_default();
        starts.extend(runs.into_iter().map(|t| (t, Start::Schedule)));
        // Its last runs before the scenario are in the repository's history, as they would
        // be on Bitbucket: what shows a poller, at its first look, that it has schedules.
        let past = schedule
            .run_times(-SCHEDULED_HISTORY_REACH, 0.0)
            .unwrap_or_default();
        let skip = past.len().saturating_sub(SCHEDULED_HISTORY);
        starts.extend(past.into_iter().skip(skip).map(|t| (t, Start::Schedule)));
    }
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));

    let mut lanes = Lanes {
        typical: activity.typical,
        known: BTreeMap::new(),
    };
    // The tip of each branch; `main` starts at a commit from before the scenario.
    let first = random_commit(
        rng,
        0,
        "main".to_owned(),
        repo_created_at(index),
        Vec::new(),
    );
    let mut tips = BTreeMap::from([("main".to_owned(), first)]);
    let mut pipelines: Vec<SimBuild> = Vec::new();
    let mut scans = Vec::new();
    let mut release = (1, 0, 0);
    for (t, start) in starts {
        let number = pipelines.len() as u64 + 1;
        let pipeline = match start {
            Start::Push => {
                let target = if rng.random_range(0..100) < 5 {
                    next_release(rng, &mut release)
                } else {
                    SimTarget::Branch
                };
                let branch = random_branch(rng, target == SimTarget::Branch);
                let timeline = lanes.timeline(rng, &lane(&target, &branch), t);
                let pushed = random_commit(rng, number, branch, t, timeline);
                let pushed = match target {
                    SimTarget::Tag(name) => pushed.on_tag(name),
                    _ => pushed,
                };
                if pushed.target == SimTarget::Branch {
                    tips.insert(pushed.branch.clone(), pushed.clone());
                }
                if activity.mixed && rng.random_bool(SCANNED_SHARE) {
                    scans.push(scan(rng, scans.len() as u64 + 1, &pushed));
                }
                pushed
            }
            Start::Schedule => {
                let timeline = lanes.timeline(rng, "main", t);
                run_again(&tips["main"], number, t, timeline, SimTrigger::Schedule)
            }
            Start::ByHand => by_hand(rng, number, t, &pipelines, &tips, &mut lanes),
        };
        pipelines.push(pipeline);
    }
    pipelines.extend(scans);
    SimRepo {
        workspace: "acme".to_owned(),
        slug: format!("repo-{:04}", index + 1),
        source: if activity.mixed {
            SimSource::CloudMixed
        } else {
            SimSource::CloudPipelines
        },
        builds: pipelines,
        schedules: activity.schedules,
        ..SimRepo::default()
    }
}

/// The pipeline a build runs, which sets its typical duration: its branch's, the tags', or a
/// custom one.
fn lane(target: &SimTarget, branch: &str) -> String {
    match target {
        SimTarget::Branch => branch.to_owned(),
        SimTarget::Tag(_) => "tags".to_owned(),
        SimTarget::Commit { pipeline } => pipeline.clone(),
    }
}

/// A repository's pipelines' typical durations, each drawn around the repository's the first
/// time the pipeline runs.
struct Lanes {
    /// The repository's typical duration.
    typical: f64,
    /// Each pipeline's, by [`lane`].
    known: BTreeMap<String, f64>,
}

impl Lanes {
    /// The timeline of a run of pipeline `lane` created at `created_at`: queued 5 to 30
    /// seconds, running about the pipeline's typical duration, ending as `random`'s do.
    fn timeline(&mut self, rng: &mut StdRng, lane: &str, created_at: f64) -> Vec<(f64, SimState)> {
        let typical = match self.known.get(lane) {
            Some(&typical) => typical,
            None => {
                let typical = self.typical * (PIPELINE_SPREAD * normal(rng)).exp();
                self.known.insert(lane.to_owned(), typical);
                typical
            }
        };
        let start = created_at + rng.random_range(5.0..30.0);
        let duration = (typical * (RUN_SPREAD * normal(rng)).exp()).clamp(DURATIONS.0, DURATIONS.1);
        random_ending(rng, start, duration)
    }
}

/// Pipeline `number`, a run of `template`'s commit (its branch, target, message, author and
/// push) that `trigger` started at `created_at`.
fn run_again(
    template: &SimBuild,
    number: u64,
    created_at: f64,
    timeline: Vec<(f64, SimState)>,
    trigger: SimTrigger,
) -> SimBuild {
    SimBuild {
        number,
        created_at,
        timeline,
        trigger,
        ..template.clone()
    }
}

/// Pipeline `number`, started by hand at `t` after `pipelines`: a rerun of the last one that
/// ended without success by then (45%), a custom pipeline on `main`'s tip (30%), or "Run
/// pipeline" on a branch's tip (the rest, and when there is nothing to rerun).
fn by_hand(
    rng: &mut StdRng,
    number: u64,
    t: f64,
    pipelines: &[SimBuild],
    tips: &BTreeMap<String, SimBuild>,
    lanes: &mut Lanes,
) -> SimBuild {
    let unsuccessful = pipelines.iter().rev().find(|b| {
        b.finished_at().is_some_and(|end| end <= t) && b.state_at(t) != Some(SimState::Successful)
    });
    let (template, custom) = match (rng.random_range(0..100), unsuccessful) {
        (0..45, Some(rerun)) => (rerun, None),
        (45..75, _) => (&tips["main"], Some(pick(rng, &RANDOM_CUSTOM))),
        _ => {
            let branch = rng.random_range(0..tips.len());
            let tip = tips.values().nth(branch).unwrap_or(&tips["main"]);
            (tip, None)
        }
    };
    let run = match custom {
        Some(pipeline) => template.clone().as_custom(pipeline),
        None => template.clone(),
    };
    let timeline = lanes.timeline(rng, &lane(&run.target, &run.branch), t);
    run_again(&run, number, t, timeline, SimTrigger::Manual)
}

/// The scanner's status number `number` on `push`'s commit: posted 2 to 30 minutes after the
/// push, running 1 to 10 minutes, failing one time in six.
fn scan(rng: &mut StdRng, number: u64, push: &SimBuild) -> SimBuild {
    let created_at = push.pushed_at + rng.random_range(120.0..1800.0);
    let started = created_at + rng.random_range(1.0..10.0);
    let ended = started + rng.random_range(60.0..600.0);
    let result = if rng.random_bool(1.0 / 6.0) {
        SimState::Failed
    } else {
        SimState::Successful
    };
    SimBuild {
        number,
        key: "security-scan".to_owned(),
        created_at,
        timeline: vec![(started, SimState::Running), (ended, result)],
        ..push.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pipelines of `scenario` (no statuses) with their repository.
    fn pipelines(scenario: &Scenario) -> Vec<(&SimRepo, &SimBuild)> {
        scenario
            .repos
            .iter()
            .flat_map(|r| r.builds.iter().map(move |b| (r, b)))
            .filter(|(r, b)| r.runs_pipeline(b) && !b.is_history())
            .collect()
    }

    /// Each trigger's share of `scenario`'s pipelines: push, schedule, manual.
    fn shares(scenario: &Scenario) -> [f64; 3] {
        let all = pipelines(scenario);
        let share = |trigger: SimTrigger| {
            all.iter().filter(|(_, b)| b.trigger == trigger).count() as f64 / all.len() as f64
        };
        [
            share(SimTrigger::Push),
            share(SimTrigger::Schedule),
            share(SimTrigger::Manual),
        ]
    }

    fn close(actual: [f64; 3], wanted: [f64; 3], tolerance: f64) -> bool {
        actual
            .iter()
            .zip(wanted)
            .all(|(a, w)| (a - w).abs() <= tolerance)
    }

    #[test]
    fn deterministic_for_a_seed() {
        let scenario = Scenario::realistic(5, 40, 24.0, TraceMix::default());
        assert_eq!(
            scenario,
            Scenario::realistic(5, 40, 24.0, TraceMix::default())
        );
        assert_ne!(
            scenario,
            Scenario::realistic(6, 40, 24.0, TraceMix::default())
        );
        assert_eq!(scenario.repos.len(), 40);
        assert_eq!(scenario.repos[0].slug, "repo-0001");
        assert!(
            Scenario::realistic(5, 0, 24.0, TraceMix::default())
                .repos
                .is_empty()
        );
        let empty = Scenario::realistic(5, 3, f64::NAN, TraceMix::default());
        assert!(empty.repos.iter().all(|r| r.builds.is_empty()));
    }

    #[test]
    fn the_trigger_mix_is_as_asked() {
        let scenario = Scenario::realistic(11, 300, 24.0, TraceMix::default());
        let n = pipelines(&scenario).len();
        assert!(n > 1000, "{n} pipelines");
        let got = shares(&scenario);
        assert!(close(got, [0.85, 0.10, 0.05], 0.03), "{got:?}");

        let mix = TraceMix {
            push: 2.0,
            scheduled: 1.0,
            manual: 1.0,
        };
        let got = shares(&Scenario::realistic(11, 300, 24.0, mix));
        assert!(close(got, [0.5, 0.25, 0.25], 0.04), "{got:?}");
        let only_scheduled = TraceMix {
            push: 0.0,
            scheduled: 1.0,
            manual: f64::NAN,
        };
        let got = shares(&Scenario::realistic(11, 100, 24.0, only_scheduled));
        assert_eq!(got, [0.0, 1.0, 0.0]);
        let nonsense = TraceMix {
            push: -1.0,
            scheduled: 0.0,
            manual: f64::INFINITY,
        };
        assert_eq!(
            Scenario::realistic(11, 50, 24.0, nonsense),
            Scenario::realistic(11, 50, 24.0, TraceMix::default())
        );
    }

    #[test]
    fn each_schedule_shows_its_last_two_runs_in_history() {
        let scenario = Scenario::realistic(11, 300, 3.0, TraceMix::default());
        let mut scheduled = 0;
        for repo in &scenario.repos {
            let history: Vec<&SimBuild> = repo.builds.iter().filter(|b| b.is_history()).collect();
            assert_eq!(history.len(), 2 * repo.schedules.len(), "{}", repo.slug);
            assert!(history.iter().all(|b| b.trigger == SimTrigger::Schedule
                && b.finished_at().is_some_and(|end| end < 0.0)));
            scheduled += repo.schedules.len();
        }
        assert!(scheduled > 0);
    }

    #[test]
    fn activity_is_skewed_and_follows_the_working_day() {
        let scenario = Scenario::realistic(3, 300, 24.0, TraceMix::default());
        let mut counts: Vec<usize> = scenario.repos.iter().map(|r| r.builds.len()).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = counts.iter().sum();
        assert!(
            counts[..30].iter().sum::<usize>() * 10 > total * 3,
            "{counts:?}"
        );
        // Second 0 is Monday 09:00: 09:00 to 18:00 is work, 21:00 to 07:00 night.
        let by_hand: Vec<f64> = pipelines(&scenario)
            .into_iter()
            .filter(|(_, b)| b.trigger != SimTrigger::Schedule)
            .map(|(_, b)| b.created_at)
            .collect();
        let per_hour = |from: f64, to: f64| {
            let n = by_hand.iter().filter(|&&t| (from..to).contains(&t)).count();
            n as f64 / ((to - from) / 3600.0)
        };
        let (work, night) = (
            per_hour(0.0, 9.0 * 3600.0),
            per_hour(12.0 * 3600.0, 22.0 * 3600.0),
        );
        assert!(
            work > 8.0 * night,
            "{work} an hour at work, {night} at night"
        );
    }

    #[test]
    fn each_pipeline_keeps_its_own_pace() {
        let scenario = Scenario::realistic(8, 200, 48.0, TraceMix::default());
        // Per repository and branch, how long its plain successful runs took.
        let mut runs: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
        for (repo, build) in pipelines(&scenario) {
            if let [(start, SimState::Running), (end, SimState::Successful)] = build.timeline[..]
                && build.target == SimTarget::Branch
            {
                let lane = (repo.slug.as_str(), build.branch.as_str());
                runs.entry(lane).or_default().push(end - start);
            }
        }
        let busy: Vec<&Vec<f64>> = runs.values().filter(|r| r.len() >= 8).collect();
        assert!(busy.len() >= 10, "{} busy pipelines", busy.len());
        let ln_spread = |durations: &[f64]| {
            let logs: Vec<f64> = durations.iter().map(|d| d.ln()).collect();
            let mean = logs.iter().sum::<f64>() / logs.len() as f64;
            (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt()
        };
        for durations in &busy {
            assert!(ln_spread(durations) < 0.25, "{durations:?}");
        }
        let medians: Vec<f64> = busy
            .iter()
            .map(|d| {
                let mut d = d.to_vec();
                d.sort_by(f64::total_cmp);
                d[d.len() / 2]
            })
            .collect();
        let fastest = medians.iter().copied().fold(f64::INFINITY, f64::min);
        let slowest = medians.iter().copied().fold(0.0, f64::max);
        assert!(slowest > 3.0 * fastest, "{fastest} to {slowest}");
    }

    #[test]
    fn scheduled_and_manual_runs_build_earlier_pushes_and_move_nothing() {
        let scenario = Scenario::realistic(21, 150, 30.0, TraceMix::default());
        for (index, repo) in scenario.repos.iter().enumerate() {
            let numbers: Vec<u64> = repo
                .builds
                .iter()
                .filter(|b| repo.runs_pipeline(b))
                .map(|b| b.number)
                .collect();
            assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
            assert!(
                repo.builds
                    .windows(2)
                    .filter(|w| repo.runs_pipeline(&w[1]))
                    .all(|w| w[0].created_at <= w[1].created_at),
                "{} not in creation order",
                repo.slug
            );
            let last_push = repo
                .builds
                .iter()
                .filter(|b| b.trigger == SimTrigger::Push)
                .map(|b| b.pushed_at)
                .fold(repo_created_at(index), f64::max);
            assert_eq!(repo.updated_at(index, 1.0e9), last_push, "{}", repo.slug);
            for build in &repo.builds {
                match build.trigger {
                    SimTrigger::Push => assert!(build.pushed_at <= build.created_at),
                    SimTrigger::Schedule => {
                        let t = build.created_at;
                        let fired = repo
                            .schedules
                            .iter()
                            .any(|s| s.run_times(t, t + 1.0).is_ok_and(|runs| runs == [t]));
                        assert!(fired, "{} #{} at {t}", repo.slug, build.number);
                        let tip = repo.branch_tips(t).into_iter().find(|b| b.branch == "main");
                        match tip {
                            Some(tip) => assert_eq!(build.commit, tip.commit),
                            None => assert!(build.pushed_at < 0.0),
                        }
                    }
                    SimTrigger::Manual => assert!(build.pushed_at <= build.created_at),
                }
            }
        }
        let custom = pipelines(&scenario)
            .into_iter()
            .filter(|(_, b)| matches!(b.target, SimTarget::Commit { .. }))
            .count();
        assert!(custom > 0);
        let reruns = pipelines(&scenario)
            .into_iter()
            .filter(|(r, b)| {
                b.trigger == SimTrigger::Manual
                    && r.builds
                        .iter()
                        .any(|o| o.number < b.number && o.commit == b.commit && r.runs_pipeline(o))
            })
            .count();
        assert!(reruns > 0);
    }

    #[test]
    fn a_few_repositories_get_late_statuses() {
        let scenario = Scenario::realistic(4, 500, 12.0, TraceMix::default());
        let mixed: Vec<&SimRepo> = scenario
            .repos
            .iter()
            .filter(|r| r.source == SimSource::CloudMixed)
            .collect();
        assert!((5..=40).contains(&mixed.len()), "{} mixed", mixed.len());
        let statuses: Vec<&SimBuild> = mixed
            .iter()
            .flat_map(|r| r.builds.iter().filter(|b| !r.runs_pipeline(b)))
            .collect();
        assert!(!statuses.is_empty());
        for status in statuses {
            assert_eq!(status.key, "security-scan");
            assert!(status.created_at >= status.pushed_at + 120.0);
            assert_eq!(status.trigger, SimTrigger::Push);
        }
    }
}
