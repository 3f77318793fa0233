//! What a scheduler knows of one watch: how busy it is, what a poll costs, how long each of
//! its lanes' builds take, when its running builds should end, how active it was lately, and
//! why its next poll comes.

use super::plan::Heat;
use crate::config::Watch;
use crate::domain::{Lane, SourceKind};
use crate::poller::{PollError, PollSummary, RunSeen, Source};
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
    /// A build of it is running: looking for its end.
    Follow,
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
    /// A scan showed a push since its last poll began: it is polled at once.
    pub(crate) hinted: bool,
    /// Builds found lately, decaying by half every `history` (see [`Tracked::activity`]).
    activity: f64,
    activity_at: Instant,
    /// Typical run time of each lane's builds (creation to end, Bitbucket's clock), in
    /// milliseconds, averaged.
    durations: HashMap<Lane, f64>,
    /// When the first of its running builds should end, if every running build's lane has a
    /// typical run time and the end is still ahead.
    pub(crate) expected_end: Option<Instant>,
}

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
            activity: 0.0,
            activity_at: now,
            durations: HashMap::new(),
            expected_end: None,
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

    /// Builds found lately, as of `now`: each counts one, halving every `history`.
    pub(crate) fn activity(&self, now: Instant, history: Duration) -> f64 {
        let age = now.duration_since(self.activity_at).as_secs_f64();
        self.activity * 0.5f64.powf(age / history.as_secs_f64().max(f64::MIN_POSITIVE))
    }

    /// Takes in a poll's outcome. `now_ms` is the daemon's clock at `now`, to place the
    /// expected ends Bitbucket's timestamps give on the scheduler's timeline.
    pub(crate) fn learn(
        &mut self,
        result: &Result<PollSummary, PollError>,
        now: Instant,
        now_ms: i64,
        history: Duration,
    ) {
        let Ok(summary) = result else { return };
        self.cost =
            (1.0 - LEARNING_RATE) * self.cost + LEARNING_RATE * summary.requests.max(1) as f64;
        self.busy = summary.busy;
        if summary.transitions > 0 && !summary.baselined {
            self.last_change = Some(now);
        }
        if summary.discovered > 0 {
            self.activity = self.activity(now, history) + summary.discovered as f64;
            self.activity_at = now;
        }
        for run in &summary.runs {
            if let Some(ended_ms) = run.ended_ms.filter(|&end| end > run.created_ms) {
                let took = (ended_ms - run.created_ms) as f64;
                self.durations
                    .entry(run.lane.clone())
                    .and_modify(|d| *d = (1.0 - LEARNING_RATE) * *d + LEARNING_RATE * took)
                    .or_insert(took);
            }
        }
        // A status is overwritten by its rerun: one looked at only at its expected end could
        // be seen failing never. A pipeline run keeps its own number, so waiting loses nothing.
        self.expected_end = match self.watch.source {
            SourceKind::Pipelines => self.first_end(&summary.runs, now, now_ms),
            SourceKind::Statuses => None,
        };
    }

    /// When the first running build among `runs` should end, on the scheduler's timeline;
    /// `None` if one has no typical run time yet or is already past it (it is polled as hot).
    fn first_end(&self, runs: &[RunSeen], now: Instant, now_ms: i64) -> Option<Instant> {
        let mut first: Option<Instant> = None;
        for run in runs.iter().filter(|run| run.ended_ms.is_none()) {
            let typical = *self.durations.get(&run.lane)?;
            let left_ms = run.created_ms as f64 + typical - now_ms as f64;
            if left_ms <= 0.0 {
                return None;
            }
            let end = now + Duration::from_secs_f64(left_ms / 1000.0);
            first = Some(first.map_or(end, |f| f.min(end)));
        }
        first
    }
}
