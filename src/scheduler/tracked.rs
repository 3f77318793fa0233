//! What a scheduler knows of one watch: how busy it is, what a poll costs, how long each of
//! its lanes' builds take, when its running builds should end, how active it was lately, and
//! why its next poll comes.

use super::plan::Heat;
use crate::clock::secs_f64;
use crate::config::Watch;
use crate::domain::{Lane, SourceKind};
use crate::poller::{PollError, PollSummary, RunSeen, Source};
use crate::schedule::CronPattern;
use crate::store::LearnedRecord;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Why a watch's next poll comes: the builds it finds are credited to it in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// Its turn in the plan: an idle or recently active repository looked at again.
    Sweep,
    /// A workspace scan showed it was pushed to.
    Scan,
    /// A build of it is running: looking for its end; or a commit of it still awaits a
    /// status its outside CI posted late before.
    Follow,
    /// One of its Pipelines schedules has just started a run.
    Schedule,
}

/// Weight of the newest observation in the moving averages (poll cost, run time).
const LEARNING_RATE: f64 = 0.2;

/// One watch as the scheduler tracks it.
pub(crate) struct Tracked {
    pub(crate) watch: Watch,
    pub(crate) source: Source,
    /// Requests one poll costs, averaged.
    pub(crate) cost: f64,
    /// A build is running or statuses still settle.
    pub(crate) busy: bool,
    /// When a poll last recorded a change.
    pub(crate) last_change: Option<Instant>,
    /// When its last poll finished.
    pub(crate) polled: Option<Instant>,
    /// Why its queued poll comes.
    pub(crate) why: Why,
    /// A scan showed a push since its last poll began: it is polled at once (or, while the
    /// budget is short, when its new build should have ended).
    pub(crate) hinted: bool,
    /// Builds found lately, decaying by half every `history` (see [`Tracked::activity`]).
    activity: Decaying,
    /// Typical run time of each lane's builds (creation to end, Bitbucket's clock), in
    /// milliseconds, averaged.
    durations: HashMap<Lane, f64>,
    /// When its running builds should next be looked at: the first expected end, see
    /// [`Tracked::learn`]. `None` while nothing runs, or nothing tells how long a run takes.
    pub(crate) expected_end: Option<Instant>,
    /// How long the run that [`Tracked::expected_end`] waits for typically takes: one poll
    /// per such span is what following it costs.
    pub(crate) expected_span: Duration,
    /// When it is polled at the latest, whatever its class (statuses): when a commit awaiting
    /// a status its outside CI posted late before is next due (`PollSummary::late_look_ms`),
    /// or when a status in progress should have ended, whichever comes first.
    pub(crate) look_by: Option<Instant>,
    /// Its enabled Pipelines schedules, as last read.
    pub(crate) schedules: Vec<CronPattern>,
    /// Its source has Pipelines schedules and the scan is on: they are read when a poll shows
    /// a scheduled run while none are known (the first look at a repository shows its
    /// history's), and again every so often while some are.
    pub(crate) reads_schedules: bool,
    /// When its schedules are read again (with the first poll from then on): while some are
    /// known, or after a failed read; `None` otherwise.
    pub(crate) schedules_due: Option<Instant>,
    /// When they were last read (or tried), if ever.
    pub(crate) schedules_read: Option<Instant>,
}

/// A count that halves every half-life: how much of something happened lately.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decaying {
    count: f64,
    at: Instant,
}

impl Decaying {
    pub(crate) fn new(now: Instant) -> Decaying {
        Decaying {
            count: 0.0,
            at: now,
        }
    }

    /// The count as of `now`.
    pub(crate) fn at(&self, now: Instant, half_life: Duration) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.count * 0.5f64.powf(age / half_life.as_secs_f64().max(f64::MIN_POSITIVE))
    }

    /// Counts `n` more at `now`.
    pub(crate) fn add(&mut self, n: f64, now: Instant, half_life: Duration) {
        self.count = self.at(now, half_life) + n;
        self.at = now;
    }

    /// The rate, per second, of what arrives steadily and is counted so (a steady rate r
    /// keeps the count at r * half_life / ln 2).
    pub(crate) fn rate(&self, now: Instant, half_life: Duration) -> f64 {
        self.at(now, half_life) * std::f64::consts::LN_2
            / half_life.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// How much longer than its lane's typical run time a build is first looked at: runs vary
/// (about 12 % in the benchmark's trace), and a look a little late finds most ended where a
/// look on time would find half still running and need another. At 1.2 about one run in
/// sixteen of such a spread still runs, at 1.1 one in five; the margin costs a result a
/// tenth of its run time more.
pub(crate) const END_MARGIN: f64 = 1.2;

/// Whether a run typically taking `typical` is better looked at once, when it should have
/// ended, than followed every `follow_every`: followed, its end is seen half an interval late
/// on average; looked at once, the margin of [`END_MARGIN`] late. A small set whose budget
/// falls a little short of following every build every `hot` keeps following them (a few
/// seconds late) rather than leave a twenty-minute pipeline's result four minutes late.
pub(crate) fn once_is_sooner(typical: Duration, follow_every: Duration) -> bool {
    typical.as_secs_f64() * (END_MARGIN - 1.0) < follow_every.as_secs_f64() / 2.0
}

/// A build still running when it should have ended is looked at again after this share of
/// its typical run time or of how long it has run, whichever is longer, and so on: the longer
/// a pipeline (or the worse its expected time was guessed), the coarser its overtime.
const OVERRUN_STEP: f64 = 0.15;

impl Tracked {
    pub(crate) fn new(watch: Watch, source: Source, now: Instant) -> Tracked {
        Tracked {
            watch,
            source,
            cost: 1.0,
            busy: false,
            last_change: None,
            polled: None,
            why: Why::Sweep,
            hinted: false,
            activity: Decaying::new(now),
            durations: HashMap::new(),
            expected_end: None,
            expected_span: Duration::ZERO,
            look_by: None,
            schedules: Vec::new(),
            reads_schedules: false,
            schedules_due: None,
            schedules_read: None,
        }
    }

    pub(crate) fn heat(&self, now: Instant, warm_for: Duration) -> Heat {
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

    /// The typical run time of its slowest lane, once one is known.
    pub(crate) fn longest_run(&self) -> Option<Duration> {
        let longest = self.durations.values().copied().reduce(f64::max)?;
        Some(secs_f64(longest / 1000.0))
    }

    /// What it learnt, as of `now` (`now_ms` on the daemon's clock), for the store to keep
    /// over a restart.
    pub(crate) fn learned(&self, now: Instant, now_ms: i64, history: Duration) -> LearnedRecord {
        let activity = self.activity.at(now, history);
        LearnedRecord::new(
            now_ms,
            activity,
            self.durations.iter().map(|(l, ms)| (l, *ms)),
        )
    }

    /// Takes back what a run before a restart learnt: its lanes' run times, and its activity
    /// decayed since.
    pub(crate) fn relearn(
        &mut self,
        record: &LearnedRecord,
        now: Instant,
        now_ms: i64,
        history: Duration,
    ) {
        self.activity = Decaying {
            count: record.activity_at(now_ms, history),
            at: now,
        };
        self.durations = record.durations().collect();
    }

    /// When the first of its schedules fires after calendar instant `now_ms` (Unix ms).
    pub(crate) fn next_fire_ms(&self, now_ms: i64) -> Option<i64> {
        self.schedules
            .iter()
            .filter_map(|pattern| pattern.next_after(now_ms))
            .min()
    }

    /// Builds found lately, as of `now`: each counts one, halving every `history`.
    pub(crate) fn activity(&self, now: Instant, history: Duration) -> f64 {
        self.activity.at(now, history)
    }

    /// Takes in a poll's outcome. `now_ms` is the daemon's clock at `now`, to place the
    /// expected ends Bitbucket's timestamps give on the scheduler's timeline; `prior_ms` is
    /// what a run takes when nothing of this repository tells.
    pub(crate) fn learn(
        &mut self,
        result: &Result<PollSummary, PollError>,
        now: Instant,
        now_ms: i64,
        history: Duration,
        prior_ms: Option<f64>,
    ) {
        let Ok(summary) = result else { return };
        self.cost =
            (1.0 - LEARNING_RATE) * self.cost + LEARNING_RATE * summary.requests.max(1) as f64;
        self.busy = summary.busy;
        if summary.transitions > 0 && !summary.baselined {
            self.last_change = Some(now);
        }
        if summary.discovered > 0 {
            self.activity.add(summary.discovered as f64, now, history);
        }
        for (lane, took) in run_times(&summary.runs) {
            self.durations
                .entry(lane.clone())
                .and_modify(|d| *d = (1.0 - LEARNING_RATE) * *d + LEARNING_RATE * took)
                .or_insert(took);
        }
        let first = first_end(&self.durations, &summary.runs, now_ms, prior_ms);
        let end = first.map(|(left, _)| now + left);
        match self.watch.source {
            SourceKind::Pipelines => {
                self.expected_end = end;
                self.expected_span = first.map_or(Duration::ZERO, |(_, span)| span);
            }
            // A status is overwritten by its rerun: one looked at only at its expected end
            // could be seen failing never. It is followed, and looked at when it should end
            // too if that comes before the next follow-up.
            SourceKind::Statuses => {
                let late_look = summary.late_look_ms.map(|at_ms| {
                    let wait = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
                    now + Duration::from_millis(wait)
                });
                self.look_by = late_look.into_iter().chain(end).min();
            }
        }
    }
}

/// How long until the first running build among `runs` should be looked at, and its typical
/// run time: at [`END_MARGIN`] times its typical run time, or for one already past that
/// [`OVERRUN_STEP`] of it, or of how long it has run if longer, from now. A run's typical
/// time is its lane's in `durations`, else the mean of the repository's other lanes, else
/// `prior_ms` (what runs of the credential's repositories take); `None` when nothing runs or
/// nothing is known.
fn first_end(
    durations: &HashMap<Lane, f64>,
    runs: &[RunSeen],
    now_ms: i64,
    prior_ms: Option<f64>,
) -> Option<(Duration, Duration)> {
    let repository_ms =
        (!durations.is_empty()).then(|| durations.values().sum::<f64>() / durations.len() as f64);
    let mut first: Option<(f64, f64)> = None;
    for run in runs.iter().filter(|run| run.ended_ms.is_none()) {
        let typical = durations
            .get(&run.lane)
            .copied()
            .or(repository_ms)
            .or(prior_ms)?;
        let due_ms = run.created_ms as f64 + typical * END_MARGIN;
        let running_ms = (now_ms - run.created_ms) as f64;
        let left_ms = (due_ms - now_ms as f64).max(typical.max(running_ms) * OVERRUN_STEP);
        if first.is_none_or(|(left, _)| left_ms < left) {
            first = Some((left_ms, typical));
        }
    }
    let seconds = |ms: f64| secs_f64(ms / 1000.0);
    first.map(|(left, typical)| (seconds(left), seconds(typical)))
}

/// How long each run that ended among `runs` took, by lane (milliseconds, Bitbucket's clock).
pub(crate) fn run_times(runs: &[RunSeen]) -> impl Iterator<Item = (&Lane, f64)> {
    runs.iter().filter_map(|run| {
        let ended_ms = run.ended_ms.filter(|&end| end > run.created_ms)?;
        Some((&run.lane, (ended_ms - run.created_ms) as f64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BuildRef;

    fn lane(branch: &str) -> Lane {
        Lane {
            git_ref: BuildRef::Branch(branch.into()),
            job: String::new(),
        }
    }

    fn running(branch: &str, created_ms: i64) -> RunSeen {
        RunSeen {
            lane: lane(branch),
            created_ms,
            ended_ms: None,
            scheduled: false,
        }
    }

    #[test]
    fn a_run_is_looked_at_when_its_lane_the_repository_or_the_credential_says_it_ends() {
        let secs = |s: u64| Duration::from_secs(s);
        let durations = HashMap::from([(lane("main"), 100_000.0), (lane("dev"), 300_000.0)]);
        // Its lane's time, with the margin: created at 0, seen at 50 s, due at 120 s.
        let main = [running("main", 0)];
        assert_eq!(
            first_end(&durations, &main, 50_000, None),
            Some((secs(70), secs(100)))
        );
        // A lane never seen ending: the repository's mean (200 s); the first end wins.
        let both = [running("feature", 0), running("main", 0)];
        assert_eq!(
            first_end(&durations, &both, 0, None),
            Some((secs(120), secs(100)))
        );
        assert_eq!(
            first_end(&durations, &[running("feature", 0)], 0, None),
            Some((secs(240), secs(200)))
        );
        // Nothing of the repository known: the credential's prior, else nothing.
        let none = HashMap::new();
        assert_eq!(
            first_end(&none, &main, 0, Some(60_000.0)),
            Some((secs(72), secs(60)))
        );
        assert_eq!(first_end(&none, &main, 0, None), None);
        // Past its end: looked at again after a share of how long it has run (of its typical
        // time, when that is longer): a run far past what was expected is not looked at every
        // few seconds.
        assert_eq!(
            first_end(&durations, &main, 500_000, None),
            Some((secs(75), secs(100)))
        );
        assert_eq!(
            first_end(&durations, &[running("dev", 0)], 340_000, None),
            Some((secs(51), secs(300)))
        );
        // Nothing running.
        let ended = RunSeen {
            ended_ms: Some(90_000),
            ..running("main", 0)
        };
        assert_eq!(
            first_end(&durations, std::slice::from_ref(&ended), 0, None),
            None
        );
        assert_eq!(
            run_times(&[ended]).collect::<Vec<_>>(),
            [(&lane("main"), 90_000.0)]
        );
    }

    /// acme/api's pipelines, as a scheduler tracks them from `now`.
    fn tracked(now: Instant) -> Tracked {
        let watch = Watch {
            repo: crate::domain::RepoId::new("acme", "api"),
            source: SourceKind::Pipelines,
            credential: "ci".into(),
            pool: vec!["ci".into()],
            url: "https://bitbucket.org/acme/api".into(),
            subscriptions: Vec::new(),
            pipelines: Vec::new(),
            people: Default::default(),
        };
        Tracked::new(
            watch,
            Source::Pipelines(crate::scheduler::test_client()),
            now,
        )
    }

    /// A poll that found `runs`, each a build new to it.
    fn polled(runs: Vec<RunSeen>) -> Result<PollSummary, PollError> {
        Ok(PollSummary {
            baselined: false,
            transitions: runs.len(),
            notifications: 0,
            discovered: runs.len(),
            requests: 1,
            busy: runs.iter().any(|run| run.ended_ms.is_none()),
            runs,
            late_look_ms: None,
        })
    }

    #[test]
    fn what_was_learnt_before_a_restart_foresees_the_next_run_s_end() {
        let (history, now) = (Duration::from_secs(3600), Instant::now());
        let mut before = tracked(now);
        // A run of main took 100 s; four builds found in all.
        let ended = RunSeen {
            ended_ms: Some(100_000),
            ..running("main", 0)
        };
        before.learn(&polled(vec![ended]), now, 100_000, history, None);
        before.learn(
            &polled(vec![running("a", 0), running("b", 0), running("c", 0)]),
            now,
            100_000,
            history,
            None,
        );
        let kept = before.learned(now, 100_000, history);
        // Restarted an hour later, a new run of main shows: its end is foreseen (120 s after
        // it started) where a scheduler that learnt nothing follows it blindly.
        let (later, later_ms) = (now + history, 100_000 + 3_600_000);
        let mut after = tracked(later);
        after.relearn(&kept, later, later_ms, history);
        assert_eq!(after.longest_run(), Some(Duration::from_secs(100)));
        assert!((after.activity(later, history) - 2.0).abs() < 1e-9);
        let new_run = || polled(vec![running("main", later_ms - 20_000)]);
        after.learn(&new_run(), later, later_ms, history, None);
        assert_eq!(after.expected_end, Some(later + Duration::from_secs(100)));
        let mut fresh = tracked(later);
        fresh.learn(&new_run(), later, later_ms, history, None);
        assert_eq!(fresh.expected_end, None);
    }

    #[test]
    fn a_status_in_progress_is_followed_and_looked_at_by_when_it_should_end() {
        let (history, now) = (Duration::from_secs(3600), Instant::now());
        let mut statuses = tracked(now);
        statuses.watch.source = SourceKind::Statuses;
        let ended = RunSeen {
            ended_ms: Some(100_000),
            ..running("main", 0)
        };
        statuses.learn(&polled(vec![ended]), now, 100_000, history, None);
        statuses.learn(
            &polled(vec![running("main", 200_000)]),
            now,
            200_000,
            history,
            None,
        );
        // Never one look only (a rerun overwrites a status), but polled by its end at the
        // latest: 120 s after it started.
        assert_eq!(statuses.expected_end, None);
        assert_eq!(statuses.look_by, Some(now + Duration::from_secs(120)));
    }

    #[test]
    fn a_run_is_looked_at_once_where_following_it_would_see_its_end_later() {
        let secs = Duration::from_secs;
        // A six-minute pipeline: once (72 s late) beats following every 5 minutes, not
        // every 30 s.
        assert!(once_is_sooner(secs(360), secs(300)));
        assert!(!once_is_sooner(secs(360), secs(30)));
        // A twenty-minute one is followed even every 5 minutes (150 s against 240 s late).
        assert!(!once_is_sooner(secs(1200), secs(300)));
        assert!(once_is_sooner(secs(1200), secs(600)));
    }

    #[test]
    fn a_decaying_count_halves_every_half_life_and_reads_as_a_rate() {
        let (now, half) = (Instant::now(), Duration::from_secs(100));
        let mut count = Decaying::new(now);
        count.add(8.0, now, half);
        assert!((count.at(now + half, half) - 4.0).abs() < 1e-9);
        count.add(4.0, now + half, half);
        assert!((count.at(now + half * 2, half) - 4.0).abs() < 1e-9);
        // One a second, steadily, for many half-lives: about one a second.
        let mut steady = Decaying::new(now);
        for s in 0..2000 {
            steady.add(1.0, now + Duration::from_secs(s), half);
        }
        let rate = steady.rate(now + Duration::from_secs(1999), half);
        assert!((rate - 1.0).abs() < 0.01, "{rate}");
    }
}
