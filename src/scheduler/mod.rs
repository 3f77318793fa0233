//! When to poll: one scheduler per credential, on tokio timers, fitting the cadence of all the
//! credential's watches (a repository read through one source) into its request budget.
//!
//! A repository with a build running (or statuses still settling) is hot; one that changed
//! within `warm_for` is warm; the rest are cold. The planner ([`plan`], pure) gives each class
//! its target interval when the budget allows, and otherwise stretches the cold class first,
//! then the warm one, then all: latency grows, nothing is missed, and the limiter keeps the
//! budget whatever happens. Every next poll is jittered so repositories never align.
//!
//! Every `[polling] scan`, each Cloud workspace is asked which repositories were pushed to
//! ([`scan`]); those are polled at once. With the scan on, the plan first sets aside what is
//! known to come (the scans, the polls their hints and the schedules bring, one look per
//! running pipeline at its expected end) and the classes share the rest; cold repositories
//! are swept more often the more builds they ran lately ([`plan::sweep_factors`], bounded both
//! ways); when polls run late, what is known to come goes before the sweep, which keeps a floor
//! share ([`queue`]); when the budget cannot follow every running build every `hot`, a running
//! pipeline is looked at when its lane's typical run time says it ends ([`tracked`]), and one
//! running past it after a share of how long it has run; when even the polls for what is
//! known to come run late, a push or a scheduled run in a repository of short pipelines is
//! looked at once, when its build should have ended (counted from the push's `updated_on`);
//! and each repository is polled just after its Pipelines schedules fire. A repository's
//! schedules are read when one of its polls shows a scheduled run, and again daily while it
//! has some; the store keeps them, and where each workspace's scans got to, for a restart.

mod plan;
mod queue;
mod scan;
mod tracked;

use crate::bitbucket::{Account, BitbucketError, RepoSchedules, WorkspaceChanges};
use crate::clock::{scaled, secs_f64};
use crate::config::{PollingConfig, RateLimit, Watch};
use crate::domain::{RepoId, SourceKind};
use crate::poller::{self, PollContext, PollError, Source};
use crate::schedule::CronPattern;
use crate::shutdown::Shutdown;
use crate::store::SchedulesRecord;
use plan::{Demand, Heat};
use queue::{Kind, PollQueue};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{self, AbortHandle, JoinSet};
use tokio::time::Instant;
use tracked::{Decaying, Tracked, Why};

/// Polls of one credential in flight at once; they share its limiter, so this only bounds
/// how many wait at it.
const CONCURRENT_POLLS: usize = 4;

/// How many scan intervals the hints of the past count for, in the rate of polls they bring.
const HINT_MEMORY: u32 = 10;

/// Weight of the newest poll's lateness in [`Scheduler::lateness`].
const LATENESS_WEIGHT: f64 = 0.1;

/// Weight of the newest run time in the credential's typical run time.
const PRIOR_LEARNING_RATE: f64 = 0.05;

/// A watch's identity: a repository and the source it is read through.
pub(crate) type WatchKey = (RepoId, SourceKind);

fn key_of(watch: &Watch) -> WatchKey {
    (watch.repo.clone(), watch.source)
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

/// What a scheduler needs of the daemon's timing (`daemon::Tuning`, compressed in a
/// simulated run).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// How long polls under way may take to commit when the scheduler stops.
    pub(crate) stop_grace: Duration,
    /// How long a repository's activity takes to count half as much for its sweep.
    pub(crate) history: Duration,
    /// How often a repository's Pipelines schedules are read again.
    pub(crate) schedules_every: Duration,
}

impl Timing {
    /// How soon schedules are read again after a failed read, or after a read that found
    /// none when a scheduled run shows: an hour at the default daily reading.
    fn schedules_again(&self) -> Duration {
        self.schedules_every / 24
    }
}

/// A poll's outcome, and the repository's schedules when the poll read them too.
type PollDone = (
    Result<poller::PollSummary, PollError>,
    Option<Result<RepoSchedules, BitbucketError>>,
);

/// A queue of things to do by when: indices into [`Scheduler::watches`] or
/// [`Scheduler::workspaces`], soonest first.
type Queue = BinaryHeap<Reverse<(Instant, usize)>>;

/// Something due: a watch's poll or a workspace's scan (indices as in [`Queue`]).
#[derive(Debug, Clone, Copy)]
enum Job {
    Poll(usize, Kind),
    Scan(usize),
}

/// A scan's outcome: the workspace, when it began (Unix milliseconds), what it found.
type ScanDone = (String, i64, Result<WorkspaceChanges, BitbucketError>);

/// One credential's scheduler: its watches and workspaces, the queue of what comes when, and
/// the polls and scans under way.
struct Scheduler {
    /// What every poll needs (store, clock, metrics, ...).
    ctx: PollContext,
    /// The credential's account, whose budget in force (following what Bitbucket advertises,
    /// within what the admin wrote) the plan spends 90 % of; its limiter enforces it.
    account: Arc<Account>,
    /// The `[polling]` targets of the roster in force.
    targets: PollingConfig,
    timing: Timing,
    /// Where each watch's last poll is recorded for `status`.
    log: Arc<PollLog>,
    /// Every watch of the roster, with what was learnt of it.
    watches: Vec<Tracked>,
    /// The Cloud workspaces of those watches, each scanned for pushes.
    workspaces: Vec<scan::Workspace>,
    /// When each watch's next poll is due.
    due: PollQueue,
    /// When each workspace's next scan is due. Apart from polls: a scan has a slot of its own,
    /// so polls piling up after a 429 pause never hold back the look that finds new pushes.
    scans_due: Queue,
    /// The polls under way.
    polls: JoinSet<PollDone>,
    /// Each poll under way: its watch, and its task to abandon it by.
    in_flight: HashMap<WatchKey, AbortHandle>,
    /// Each poll task's watch and why it was made.
    polling: HashMap<task::Id, (WatchKey, Why)>,
    /// The scans under way.
    scans: JoinSet<ScanDone>,
    /// Workspaces being scanned.
    scanning: HashSet<String>,
    /// Each scan task's workspace.
    scan_ids: HashMap<task::Id, String>,
    /// Polls the scans' hints and the schedules brought lately, for the share of the budget
    /// they take.
    prompted: Decaying,
    /// How late polls for what is known to come (ends, schedules) started lately, in seconds
    /// (a moving average).
    lateness: f64,
    /// They start later than `hot` on average: the budget is short of what is known to come.
    short: bool,
    /// What a run of this credential's repositories takes, as the mean logarithm of run times
    /// in milliseconds: the expected run time of a build of a lane never seen ending.
    typical_run_log: Option<f64>,
}

/// Polls the roster's watches (all of one credential) within `budget` until shutdown, and
/// scans their Cloud workspaces for pushes every `[polling] scan`.
///
/// A new roster (a reload) is merged in: a watch still there keeps what was learnt of it and
/// its next poll, one that is new gets its first poll soon, one that is gone is dropped (a
/// poll of it under way is abandoned).
pub(crate) async fn run(
    ctx: PollContext,
    mut roster: watch::Receiver<Roster>,
    account: Arc<Account>,
    log: Arc<PollLog>,
    timing: Timing,
    mut shutdown: Shutdown,
) {
    let first = roster.borrow_and_update().clone();
    let mut scheduler = Scheduler {
        ctx,
        account,
        targets: first.targets,
        timing,
        log,
        watches: Vec::new(),
        workspaces: Vec::new(),
        due: PollQueue::default(),
        scans_due: BinaryHeap::new(),
        polls: JoinSet::new(),
        in_flight: HashMap::new(),
        polling: HashMap::new(),
        scans: JoinSet::new(),
        scanning: HashSet::new(),
        scan_ids: HashMap::new(),
        prompted: Decaying::new(Instant::now()),
        typical_run_log: None,
        lateness: 0.0,
        short: false,
    };
    scheduler.take_roster(&first, true);
    loop {
        let next = scheduler.next_due();
        tokio::select! {
            _ = shutdown.wait() => break,
            Ok(()) = roster.changed() => {
                let roster = roster.borrow_and_update().clone();
                scheduler.take_roster(&roster, false);
                tracing::info!(watches = scheduler.watches.len(), "scheduler took the reloaded subscriptions");
            }
            Some(done) = scheduler.polls.join_next_with_id(), if !scheduler.polling.is_empty() => {
                match done {
                    Ok((id, result)) => scheduler.poll_done(id, result),
                    Err(err) if err.is_cancelled() => {
                        scheduler.polling.remove(&err.id());
                    }
                    // A bug in a poll: that poll failed, the repository is polled again later.
                    Err(err) => {
                        let lost = PollError::Panicked(err.to_string());
                        scheduler.poll_done(err.id(), (Err(lost), None));
                    }
                }
            }
            Some(done) = scheduler.scans.join_next_with_id(), if !scheduler.scanning.is_empty() => {
                match done {
                    Ok((id, done)) => {
                        scheduler.scan_ids.remove(&id);
                        scheduler.scan_done(done);
                    }
                    Err(err) if err.is_cancelled() => {}
                    // A bug in a scan: that scan failed, the workspace is scanned again later.
                    Err(err) => {
                        if let Some(name) = scheduler.scan_ids.remove(&err.id()) {
                            tracing::error!(workspace = %name, %err, "a workspace scan failed unexpectedly");
                            scheduler.ctx.metrics.scan_errors.fetch_add(1, Ordering::Relaxed);
                            scheduler.scan_again(name);
                        }
                    }
                }
            }
            _ = sleep_until(next) => scheduler.start_next(),
        }
    }
    scheduler.scans.shutdown().await;
    // Let polls under way commit, for a while: one waiting out a 429 pause or the budget would
    // hold a reload or a stop for minutes. Abandoned, a poll leaves nothing half done (see
    // `poll_once`) and is simply made again.
    let mut polls = scheduler.polls;
    let drained = tokio::time::timeout(timing.stop_grace, async {
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

impl Scheduler {
    /// The poll (unless enough are under way already) or scan due first, and when.
    fn first_due(&self) -> Option<(Instant, Job)> {
        let poll = self
            .due
            .head(Instant::now(), self.hint_memory())
            .filter(|_| self.in_flight.len() < CONCURRENT_POLLS)
            .map(|(at, i, kind)| (at, Job::Poll(i, kind)));
        let scan = self
            .scans_due
            .peek()
            .map(|Reverse((at, i))| (*at, Job::Scan(*i)));
        poll.into_iter().chain(scan).min_by_key(|(at, _)| *at)
    }

    /// When the next job is due.
    fn next_due(&self) -> Option<Instant> {
        self.first_due().map(|(at, _)| at)
    }

    /// Starts the job due first.
    fn start_next(&mut self) {
        let Some((due, job)) = self.first_due() else {
            return;
        };
        match job {
            Job::Poll(index, kind) => {
                let (now, memory) = (Instant::now(), self.hint_memory());
                self.due.pop(kind, now, memory);
                let tracked = &mut self.watches[index];
                let why = if tracked.hinted {
                    Why::Scan
                } else {
                    tracked.why
                };
                // How late what is known to come starts (a hint's due time is only a place
                // in the line): late by more than `hot`, the budget is short of it.
                if kind == Kind::Expected && why != Why::Scan {
                    let late = now.saturating_duration_since(due).as_secs_f64();
                    self.lateness =
                        (1.0 - LATENESS_WEIGHT) * self.lateness + LATENESS_WEIGHT * late;
                    self.short = self.lateness > self.targets.hot.as_secs_f64();
                }
                if matches!(why, Why::Scan | Why::Schedule) {
                    self.prompted.add(1.0, now, memory);
                }
                self.account.spent.polls.fetch_add(1, Ordering::Relaxed);
                tracked.hinted = false;
                // Due for reading; or, when none is known lately, as soon as a scheduled run
                // shows (the first look at a repository shows its history's).
                let read_schedules =
                    tracked.reads_schedules && tracked.schedules_due.is_some_and(|at| at <= now);
                let learn_schedules = tracked.reads_schedules
                    && tracked.schedules.is_empty()
                    && tracked.schedules_read.is_none_or(|read| {
                        now.saturating_duration_since(read) >= self.timing.schedules_again()
                    });
                let (ctx, watch, source) = (
                    self.ctx.clone(),
                    tracked.watch.clone(),
                    tracked.source.clone(),
                );
                let key = key_of(&watch);
                let poll = self.polls.spawn(async move {
                    let polled = poller::poll_once(&ctx, &watch, &source).await;
                    let scheduled = polled
                        .as_ref()
                        .is_ok_and(|summary| summary.runs.iter().any(|run| run.scheduled));
                    let schedules = match &source {
                        Source::Pipelines(client)
                            if read_schedules || (learn_schedules && scheduled) =>
                        {
                            Some(client.schedules(&watch.repo).await)
                        }
                        _ => None,
                    };
                    (polled, schedules)
                });
                self.polling.insert(poll.id(), (key.clone(), why));
                self.in_flight.insert(key, poll);
            }
            Job::Scan(index) => {
                self.scans_due.pop();
                let workspace = &self.workspaces[index];
                let began_ms = self.ctx.clock.now_ms();
                let since_ms = workspace.query_since(began_ms, self.scan_every());
                let (client, name) = (workspace.client.clone(), workspace.name.clone());
                self.scanning.insert(name.clone());
                self.ctx.metrics.scans.fetch_add(1, Ordering::Relaxed);
                let scan = self.scans.spawn(async move {
                    let found = client.changed_repositories(&name, since_ms).await;
                    (name, began_ms, found)
                });
                self.scan_ids.insert(scan.id(), workspace.name.clone());
            }
        }
    }

    /// Takes in a finished poll and plans the watch's next one.
    fn poll_done(&mut self, id: task::Id, (result, schedules): PollDone) {
        let (key, why) = self.polling.remove(&id).expect("every poll is listed");
        // Abandoned by a reload but done first: what it committed stands; the watch's turn is
        // the reload's business now.
        if self.in_flight.get(&key).is_none_or(|poll| poll.id() != id) {
            return;
        }
        self.in_flight.remove(&key);
        let Some(index) = self.watches.iter().position(|w| key_of(&w.watch) == key) else {
            return;
        };
        let (now, now_ms) = (Instant::now(), self.ctx.clock.now_ms());
        self.log.record(&key, &result, now_ms);
        report(&self.watches[index], why, &result, &self.ctx);
        if let Ok(summary) = &result {
            let found = match why {
                Why::Scan => &self.ctx.metrics.found_by_scan,
                Why::Sweep => &self.ctx.metrics.found_by_sweep,
                Why::Follow => &self.ctx.metrics.found_following,
                Why::Schedule => &self.ctx.metrics.found_by_schedule,
            };
            if !summary.baselined {
                found.fetch_add(summary.discovered as u64, Ordering::Relaxed);
            }
        }
        if let Ok(summary) = &result {
            for (_, took) in tracked::run_times(&summary.runs) {
                // A geometric mean: run times are skewed, an hour-long one must not drag it.
                let log = took.max(1.0).ln();
                self.typical_run_log = Some(self.typical_run_log.map_or(log, |mean| {
                    (1.0 - PRIOR_LEARNING_RATE) * mean + PRIOR_LEARNING_RATE * log
                }));
            }
        }
        // A guess from other repositories' runs is worth its error only when the budget is
        // short: otherwise a build of a lane never seen ending is followed every `hot`.
        let prior_ms = self.prior_ms().filter(|_| self.short);
        let tracked = &mut self.watches[index];
        tracked.learn(&result, now, now_ms, self.timing.history, prior_ms);
        if self.targets.scan.is_none() {
            // As before the scan (`scan = "off"` restores it): late looks wait for the turn.
            tracked.look_by = None;
        }
        // Kept for a restart when it moved: a build found, or a run's end timed.
        let learnt = result.as_ref().is_ok_and(|summary| {
            summary.discovered > 0 || tracked::run_times(&summary.runs).next().is_some()
        });
        if learnt {
            let learned = tracked.learned(now, now_ms, self.timing.history);
            let kept =
                self.ctx
                    .store
                    .set_learned(&tracked.watch.repo, tracked.watch.source, &learned);
            self.ctx.store.note(&kept);
        }
        tracked.polled = Some(now);
        tracked.why = if tracked.busy || tracked.look_by.is_some() {
            Why::Follow
        } else {
            Why::Sweep
        };
        self.take_schedules(index, schedules, now);
        let mut next = self.replan(now);
        // Just after a scheduled run starts, if that comes before the plan's turn.
        if let Some(fire) = self
            .next_fire(&self.watches[index], now)
            .filter(|fire| *fire < next[index])
        {
            next[index] = fire;
            self.watches[index].why = Why::Schedule;
        }
        let (repo, source) = (&key.0, key.1.name());
        tracing::debug!(%repo, source, next_in = ?next[index].saturating_duration_since(now), "next poll planned");
        // A poll planned in a busy moment must not stay far off once the plan relaxes: bring
        // every queued poll forward to what the current plan gives it.
        let lines = self.lines();
        self.due.requeue(|at, i| (at.min(next[i]), lines[i]));
        let at = if self.watches[index].hinted {
            self.hinted_at(&self.watches[index], now, Duration::ZERO)
                .min(next[index])
        } else {
            next[index]
        };
        self.due.push(at, index, self.line(&self.watches[index]));
    }

    /// Takes in the schedules a poll read.
    fn take_schedules(
        &mut self,
        index: usize,
        read: Option<Result<RepoSchedules, BitbucketError>>,
        now: Instant,
    ) {
        let every = self.timing.schedules_every;
        let tracked = &mut self.watches[index];
        match read {
            Some(Ok(read)) => {
                tracked.schedules = read.enabled.into_iter().map(|s| s.pattern).collect();
                tracked.schedules_read = Some(now);
                // Known schedules are read again to follow their changes; a repository with
                // none is not read again until a scheduled run shows: reading every
                // repository's schedules every day would cost a large set a share of its
                // budget to learn what its runs tell anyway.
                tracked.schedules_due = (!tracked.schedules.is_empty()).then(|| now + every);
                // Kept for a restart, which would otherwise know them only once a scheduled
                // run is found without them.
                let kept = SchedulesRecord {
                    read_ms: self.ctx.clock.now_ms(),
                    patterns: tracked.schedules.iter().map(ToString::to_string).collect(),
                };
                let kept = self.ctx.store.set_schedules(&tracked.watch.repo, &kept);
                self.ctx.store.note(&kept);
            }
            Some(Err(err)) => {
                // Tried again a while later: the sweep finds the scheduled runs meanwhile.
                let (repo, retry) = (&tracked.watch.repo, self.timing.schedules_again());
                tracing::warn!(%repo, %err, ?retry, "could not read the repository's Pipelines schedules");
                tracked.schedules_read = Some(now);
                tracked.schedules_due = Some(now + retry);
            }
            None => {}
        }
    }

    /// When to poll a watch for the next run its schedules start: a hot interval after it
    /// starts (Bitbucket's calendar, compressed in a simulated run), so the run is there; or,
    /// while the budget is short and its pipelines are short, once, when the run should end.
    fn next_fire(&self, tracked: &Tracked, now: Instant) -> Option<Instant> {
        let calendar = &self.ctx.calendar;
        let fire_ms = tracked.next_fire_ms(calendar.now_ms())?;
        let after = self.look_once_after(tracked).unwrap_or(self.targets.hot);
        Some(now + calendar.until(fire_ms) + after)
    }

    /// Takes in a finished scan: the repositories it shows pushed to are polled at once.
    fn scan_done(&mut self, (name, began_ms, found): ScanDone) {
        let every = self.scan_every();
        let Some(index) = self.workspaces.iter().position(|w| w.name == name) else {
            self.scanning.remove(&name);
            return;
        };
        match found {
            Ok(changes) => {
                let workspace = &mut self.workspaces[index];
                let fresh = workspace.take(changes, began_ms, every);
                if let Some(reached_ms) = workspace.scanned_to() {
                    let kept = self.ctx.store.set_scanned_to(
                        &self.account.name,
                        &workspace.name,
                        reached_ms,
                    );
                    self.ctx.store.note(&kept);
                }
                self.ctx
                    .metrics
                    .scan_hints
                    .fetch_add(fresh.len() as u64, Ordering::Relaxed);
                self.hint(&fresh);
            }
            Err(err) => {
                self.ctx.metrics.scan_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(workspace = %name, %err, "workspace scan failed; every repository is still polled, and the next scan reaches back over this one");
            }
        }
        self.scan_again(name);
    }

    /// Queues the next scan of workspace `name`, whose scan ended.
    fn scan_again(&mut self, name: String) {
        self.scanning.remove(&name);
        let Some(index) = self.workspaces.iter().position(|w| w.name == name) else {
            return;
        };
        // A reload may have turned scans off while this one was under way.
        if self.targets.scan.is_some() {
            self.scans_due
                .push(Reverse((Instant::now() + jitter(self.scan_every()), index)));
        }
    }

    /// Polls the watches of the repositories `pushed` (each with its `updated_on`, Unix
    /// milliseconds) first (or, for one being polled, again when it is done).
    fn hint(&mut self, pushed: &[(RepoId, i64)]) {
        if pushed.is_empty() {
            return;
        }
        let wanted: HashMap<(String, String), i64> = pushed
            .iter()
            .map(|(repo, at_ms)| (case_blind(repo), *at_ms))
            .collect();
        let (now, now_ms) = (Instant::now(), self.ctx.clock.now_ms());
        let mut hinted = Vec::new();
        for (index, tracked) in self.watches.iter_mut().enumerate() {
            if let Some(&pushed_ms) = wanted.get(&case_blind(&tracked.watch.repo)) {
                tracing::debug!(repo = %tracked.watch.repo, "the workspace scan shows a push");
                tracked.hinted = true;
                // How long ago the push was, as far as the two clocks agree.
                let ago_ms = u64::try_from(now_ms.saturating_sub(pushed_ms)).unwrap_or(0);
                hinted.push((index, Duration::from_millis(ago_ms)));
            }
        }
        let hinted: HashMap<usize, Instant> = hinted
            .into_iter()
            .map(|(i, ago)| (i, self.hinted_at(&self.watches[i], now, ago)))
            .collect();
        let lines = self.lines();
        self.due.requeue(|at, i| match hinted.get(&i) {
            Some(&hinted_at) => (at.min(hinted_at), lines[i]),
            None => (at, lines[i]),
        });
    }

    /// When to poll a watch the scan showed pushed to `ago`: ahead of every queued poll,
    /// before the polls a pause or a busy moment left overdue; or, for a pipelines source
    /// whose runs can be looked at once ([`Scheduler::look_once_after`]), when the pushed
    /// build should have ended, counted from the push.
    fn hinted_at(&self, tracked: &Tracked, now: Instant, ago: Duration) -> Instant {
        // A statuses source sees only the tips it reads: a second push before a deferred look
        // would hide the first one's commit, and its statuses, for good.
        match self
            .look_once_after(tracked)
            .filter(|_| tracked.watch.source == SourceKind::Pipelines)
        {
            Some(end) => now + end.saturating_sub(ago),
            None => self.due.front(now),
        }
    }

    /// While the budget is short, a run of a repository whose pipelines all take less than the
    /// cold interval (as far as is known) is looked at once, when it should have ended: its
    /// start and its end in one poll, where two would tell the start minutes sooner and leave
    /// less for everyone else. How long after the run starts that is; `None` when it is to be
    /// looked at as soon as it starts.
    fn look_once_after(&self, tracked: &Tracked) -> Option<Duration> {
        if !self.short {
            return None;
        }
        let prior = self.prior_ms().map(|ms| secs_f64(ms / 1000.0));
        let run = tracked.longest_run().or(prior)?;
        Some(scaled(run, tracked::END_MARGIN)).filter(|end| *end <= self.targets.cold)
    }

    /// What a run of this credential's repositories typically takes, in milliseconds, once
    /// one was seen ending.
    fn prior_ms(&self) -> Option<f64> {
        self.typical_run_log.map(f64::exp)
    }

    /// Each watch's [`Scheduler::line`].
    fn lines(&self) -> Vec<Kind> {
        self.watches.iter().map(|w| self.line(w)).collect()
    }

    /// The line a watch's next poll waits in: with the scan on, an idle repository's is the
    /// sweep's, behind what is known to come when both are late.
    fn line(&self, tracked: &Tracked) -> Kind {
        if self.targets.scan.is_some()
            && !tracked.busy
            && !tracked.hinted
            && !matches!(tracked.why, Why::Schedule | Why::Follow)
        {
            Kind::Sweep
        } else {
            Kind::Expected
        }
    }

    /// The plan for now: when each watch's next poll should come after its last one.
    ///
    /// With the scan on, what must come anyway is taken off the budget first: the scans, the
    /// polls their hints bring (at the rate they came lately), one look per running pipeline
    /// at its expected end, and one per settle time of each statuses watch polled by a time
    /// (`Tracked::look_by`: a commit awaiting a status its outside CI posted late before, a
    /// status in progress due to end). The classes share the rest. With the scan off, the plan
    /// is the one before the scan existed: every class evenly, no expected ends, no weighted
    /// sweep (`scan = "off"` restores it exactly).
    fn replan(&self, now: Instant) -> Vec<Instant> {
        let (targets, scanning) = (&self.targets, self.targets.scan.is_some());
        // With the scan on, a repository that changed lately is swept as an idle one, weighted
        // by its history: its next push is the scan's to see.
        let heats: Vec<Heat> = self
            .watches
            .iter()
            .map(|w| match w.heat(now, targets.warm_for) {
                Heat::Warm if scanning => Heat::Cold,
                heat => heat,
            })
            .collect();
        // A statuses watch is polled by its `look_by` whatever its class: a commit awaiting a
        // late status is looked at every settle time (a status's end, sooner, but once);
        // counted as one look a settle time.
        let settle = self.ctx.settle.max(targets.hot).as_secs_f64();
        let timed_looks: f64 = self
            .watches
            .iter()
            .filter(|w| w.look_by.is_some())
            .map(|w| w.cost / settle)
            .sum();
        // What each watch costs the classes, and what must come anyway, when the running
        // builds `foretold` are looked at once at their expected ends.
        let (scans, prompted) = (self.scan_rate(), self.prompted_rate(now) + timed_looks);
        let claims = |foretold: &[Option<Duration>]| -> (Vec<Demand>, f64) {
            let ends: f64 = self
                .watches
                .iter()
                .zip(foretold)
                .filter(|(_, wait)| wait.is_some())
                .map(|(w, _)| w.cost / w.expected_span.max(targets.hot).as_secs_f64())
                .sum();
            let demands = self
                .watches
                .iter()
                .zip(&heats)
                .zip(foretold)
                .map(|((w, &heat), wait)| Demand {
                    heat,
                    cost: if wait.is_some() { 0.0 } else { w.cost },
                })
                .collect();
            (demands, scans + prompted + ends)
        };
        let mut foretold = vec![None; self.watches.len()];
        let (mut demands, mut reserved) = claims(&foretold);
        let mut plan = plan::plan(self.budget(), targets, &demands, reserved);
        // While the budget affords following every running build every `hot`, it is followed
        // so (a new build of the same repository, a pause, are seen at once); beyond, a build
        // whose end can be foretold is looked at then, whatever else waits: one poll per run.
        // But only where that sees its end sooner than following it at the stretched `hot`
        // would: a budget a little short keeps following.
        if scanning && plan.hot > targets.hot {
            let follow_every = plan.hot;
            foretold = self
                .watches
                .iter()
                .zip(&heats)
                .map(|(w, &heat)| {
                    let end = w.expected_end.filter(|_| heat == Heat::Hot)?;
                    tracked::once_is_sooner(w.expected_span, follow_every)
                        .then(|| end.saturating_duration_since(now))
                })
                .collect();
            (demands, reserved) = claims(&foretold);
            plan = plan::plan(self.budget(), targets, &demands, reserved);
        }
        let cold: Vec<usize> = (0..self.watches.len())
            .filter(|&i| heats[i] == Heat::Cold)
            .collect();
        let mut sweep = vec![1.0; self.watches.len()];
        if scanning {
            let activity: Vec<f64> = cold
                .iter()
                .map(|&i| self.watches[i].activity(now, self.timing.history))
                .collect();
            for (&i, factor) in cold.iter().zip(plan::sweep_factors(&activity)) {
                sweep[i] = factor;
            }
        }
        self.watches
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let since = w.polled.unwrap_or(now);
                let planned = match (heats[i], foretold[i]) {
                    (_, Some(wait)) => now + wait.max(targets.hot),
                    (Heat::Cold, _) => since + jitter(scaled(plan.cold, sweep[i])),
                    (heat, _) => since + jitter(plan.interval(heat)),
                };
                match w.look_by {
                    Some(look) => planned.min(look.max(since + targets.hot)),
                    None => planned,
                }
            })
            .collect()
    }

    /// The budget in force now: it rises and falls with what Bitbucket advertises.
    fn budget(&self) -> RateLimit {
        self.account.budget()
    }

    /// Polls a second the scan's hints and the schedules brought lately.
    fn prompted_rate(&self, now: Instant) -> f64 {
        self.prompted.rate(now, self.hint_memory())
    }

    /// How long the hints and scheduled runs of the past count for the rate they come at, and
    /// polls started for the sweep's share.
    fn hint_memory(&self) -> Duration {
        self.scan_every().saturating_mul(HINT_MEMORY)
    }

    /// How often each workspace is scanned: `[polling] scan`, stretched so that scans keep
    /// within their share of the budget (`Duration::MAX` when scans are off: none is queued).
    fn scan_every(&self) -> Duration {
        let every = self.targets.scan.unwrap_or(Duration::MAX);
        scan::interval(
            every,
            self.workspaces.len(),
            plan::planned_rate(self.budget()),
            1.0 - plan::UNRESERVED,
        )
    }

    /// Requests a second the scans take.
    fn scan_rate(&self) -> f64 {
        if self.targets.scan.is_none() || self.workspaces.is_empty() {
            return 0.0;
        }
        self.workspaces.len() as f64 / self.scan_every().as_secs_f64()
    }

    /// Whether a watch through `source` has its schedules read: Pipelines have schedules, read
    /// with the scan on (see `Tracked::reads_schedules`).
    fn reads_schedules(&self, source: &Source) -> bool {
        matches!((source, self.targets.scan), (Source::Pipelines(_), Some(_)))
    }

    /// Whether the store shows `watch` following something when polling last stopped: a
    /// build still running, or a commit whose statuses still settle (not one kept only for
    /// its late looks, which wait for the repository's turn anyway).
    fn was_following(&self, watch: &Watch) -> bool {
        let now_ms = self.ctx.clock.now_ms();
        match self.ctx.store.cursor(&watch.repo, watch.source) {
            Ok(cursor) => cursor.is_some_and(|c| {
                !c.active.is_empty() || c.followed.iter().any(|f| f.settle_until_ms > now_ms)
            }),
            Err(err) => {
                let repo = &watch.repo;
                tracing::warn!(%repo, %err, "cannot read the repository's cursor; it waits for its turn");
                false
            }
        }
    }

    /// Gives a watch new to this scheduler the schedules the store kept from an earlier run
    /// (before a restart), due to be read again when they would have been.
    fn restore_schedules(&self, tracked: &mut Tracked, now: Instant) {
        if !self.reads_schedules(&tracked.source) {
            return;
        }
        let repo = &tracked.watch.repo;
        let kept = match self.ctx.store.schedules(repo) {
            Ok(Some(kept)) => kept,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(%repo, %err, "cannot read the schedules kept for the repository; they are read again once a scheduled run shows");
                return;
            }
        };
        tracked.schedules = kept
            .patterns
            .iter()
            .filter_map(|pattern| CronPattern::parse(pattern).ok())
            .collect();
        let age_ms = self.ctx.clock.now_ms().saturating_sub(kept.read_ms);
        let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
        let read = now.checked_sub(age).unwrap_or(now);
        tracked.schedules_read = Some(read);
        tracked.schedules_due = read
            .checked_add(self.timing.schedules_every)
            .map(|due| due.max(now));
    }

    /// Gives a watch new to this scheduler what an earlier run (before a restart) learnt of
    /// it: its lanes' run times and how busy it was.
    fn restore_learned(&self, tracked: &mut Tracked, now: Instant) {
        let (repo, source) = (&tracked.watch.repo, tracked.watch.source);
        match self.ctx.store.learned(repo, source) {
            Ok(Some(kept)) => {
                let now_ms = self.ctx.clock.now_ms();
                tracked.relearn(&kept, now, now_ms, self.timing.history);
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%repo, %err, "cannot read what was learnt of the repository; it is learnt again");
            }
        }
    }

    /// Takes a roster (the first, or a reload's): see [`run`].
    fn take_roster(&mut self, roster: &Roster, first: bool) {
        let now = Instant::now();
        self.targets = roster.targets;
        self.ctx.settle = roster.targets.settle;
        abandon_outdated(roster, &mut self.in_flight);
        // Queued polls by watch; queued scans are dropped and queued again below.
        let mut next_at: HashMap<WatchKey, Instant> = HashMap::new();
        for (at, i) in self.due.drain() {
            next_at.insert(key_of(&self.watches[i].watch), at);
        }
        self.scans_due.clear();
        let mut kept: HashMap<WatchKey, Tracked> = std::mem::take(&mut self.watches)
            .into_iter()
            .map(|t| (key_of(&t.watch), t))
            .collect();
        let spread = first_poll_delay(roster.watches.len(), self.budget(), &self.targets);
        for (watch, source) in &roster.watches {
            let key = key_of(watch);
            let (mut tracked, at) = match kept.remove(&key) {
                Some(mut tracked) => {
                    tracked.watch = watch.clone();
                    tracked.source = source.clone();
                    (tracked, next_at.get(&key).copied())
                }
                None => {
                    let mut tracked = Tracked::new(watch.clone(), source.clone(), now);
                    let delay = if self.was_following(watch) {
                        // What was running when bbzoom stopped has likely ended since: looked
                        // at within a hot interval, ahead of the round of first looks.
                        tracked.busy = true;
                        tracked.why = Why::Follow;
                        self.targets.hot.mul_f64(rand::random::<f64>())
                    } else if first {
                        spread.mul_f64(rand::random::<f64>())
                    } else {
                        first_poll_delay(1, self.budget(), &self.targets)
                            .mul_f64(rand::random::<f64>())
                    };
                    self.restore_schedules(&mut tracked, now);
                    self.restore_learned(&mut tracked, now);
                    let mut at = now + delay;
                    // Just after a kept schedule fires, if that comes first.
                    if let Some(fire) = self.next_fire(&tracked, now).filter(|fire| *fire < at) {
                        at = fire;
                        tracked.why = Why::Schedule;
                    }
                    (tracked, Some(at))
                }
            };
            tracked.reads_schedules = self.reads_schedules(&tracked.source);
            if !tracked.reads_schedules {
                tracked.schedules.clear();
                tracked.schedules_due = None;
            }
            // A watch being polled is queued again when its poll ends; one whose poll was just
            // abandoned is due now.
            if !self.in_flight.contains_key(&key) {
                let index = self.watches.len();
                let line = self.line(&tracked);
                self.due.push(at.unwrap_or(now), index, line);
            }
            self.watches.push(tracked);
        }
        let sources = self.watches.iter().map(|t| (&t.watch.repo, &t.source));
        let (store, credential) = (&self.ctx.store, &self.account.name);
        let scanned_to = |workspace: &str| {
            store
                .scanned_to(credential, workspace)
                .unwrap_or_else(|err| {
                    tracing::warn!(workspace, %err, "cannot read where the last scans got to; scanning from now");
                    None
                })
        };
        self.workspaces =
            scan::workspaces(sources, std::mem::take(&mut self.workspaces), scanned_to);
        if self.targets.scan.is_some() {
            let every = self.scan_every();
            for (index, workspace) in self.workspaces.iter().enumerate() {
                // One being scanned is queued again when its scan ends.
                if self.scanning.contains(&workspace.name) {
                    continue;
                }
                let at = now + every.mul_f64(rand::random::<f64>());
                self.scans_due.push(Reverse((at, index)));
            }
        }
    }
}

/// A repository as the scan and the configuration are compared: Bitbucket's slugs and
/// workspace ids are lower case, an admin's URL may not be.
fn case_blind(repo: &RepoId) -> (String, String) {
    (repo.owner.to_lowercase(), repo.slug.to_lowercase())
}

/// When a repository's first poll comes at the latest: spread over what the budget needs for
/// one round of `repositories`, at least the hot interval, so a large set does not start in a
/// burst.
fn first_poll_delay(repositories: usize, budget: RateLimit, targets: &PollingConfig) -> Duration {
    let round = secs_f64(repositories as f64 / plan::planned_rate(budget));
    round.max(targets.hot)
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

/// Logs a finished poll (why it was made, what it cost and found; a failure with what to do)
/// and tells the store's health what the poll's commit showed.
fn report(
    tracked: &Tracked,
    why: Why,
    result: &Result<poller::PollSummary, PollError>,
    ctx: &PollContext,
) {
    match result {
        Err(PollError::Store(err)) => ctx.store.note::<(), _>(&Err(err)),
        Ok(_) => ctx.store.note::<(), &str>(&Ok(())),
        // Bitbucket's answer says nothing of the store.
        Err(_) => {}
    }
    let watch = &tracked.watch;
    let (repo, source) = (&watch.repo, watch.source.name());
    match result {
        Ok(summary) if summary.baselined => {
            tracing::info!(%repo, source, ?why, summary.requests, "baselined repository: history recorded, not announced");
        }
        // Why each poll was made and what it cost and found: where the budget goes.
        Ok(summary) => tracing::debug!(
            %repo,
            source,
            ?why,
            summary.requests,
            summary.transitions,
            summary.discovered,
            "polled"
        ),
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

/// A client for a workspace never reached, for the scheduler's unit tests.
#[cfg(test)]
fn test_client() -> Arc<crate::bitbucket::CloudClient> {
    Arc::new(crate::bitbucket::CloudClient::new(
        Arc::new(crate::bitbucket::Account::new(
            "t".into(),
            crate::http::client(Duration::from_secs(1)),
            crate::bitbucket::Auth::Bearer("x".to_owned().into()),
            crate::domain::RateLimit {
                requests: 10,
                per: Duration::from_secs(1),
            },
            Default::default(),
        )),
        "http://127.0.0.1:1/2.0".parse().unwrap(),
        "http://127.0.0.1:1".parse().unwrap(),
    ))
}
