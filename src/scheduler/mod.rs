//! When to poll: one scheduler per credential, on tokio timers, fitting the cadence of all the
//! credential's watches (a repository read through one source) into its request budget.
//!
//! A repository with a build running (or statuses still settling) is hot; one that changed
//! within `warm_for` is warm; the rest are cold. The planner ([`plan`], pure) gives each class
//! its target interval when the budget allows, and otherwise stretches the cold class first,
//! then the warm one, then all: latency grows, nothing is missed, and the limiter keeps the
//! budget whatever happens. Cold repositories are swept more often the more builds they ran
//! lately ([`plan::sweep_factors`], bounded both ways). A running build whose lane's typical
//! run time is known ([`tracked`]) is looked at when it should end rather than every `hot`.
//! Every `[polling] scan`, each Cloud workspace is asked which repositories were pushed to
//! ([`scan`]); those are polled at once. Every next poll is jittered so repositories never
//! align.

mod plan;
mod scan;
mod tracked;

use crate::bitbucket::{BitbucketError, WorkspaceChanges};
use crate::config::{PollingConfig, RateLimit, Watch};
use crate::domain::{RepoId, SourceKind};
use crate::poller::{self, PollContext, PollError, Source};
use crate::shutdown::Shutdown;
use plan::{Demand, Heat};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{self, AbortHandle, JoinSet};
use tokio::time::Instant;
use tracked::{Tracked, Why};

/// Polls of one credential in flight at once; they share its limiter, so this only bounds
/// how many wait at it.
const CONCURRENT_POLLS: usize = 4;

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
}

/// A queue of things to do by when: indices into [`Scheduler::watches`] or
/// [`Scheduler::workspaces`], soonest first.
type Queue = BinaryHeap<Reverse<(Instant, usize)>>;

/// Something due: a watch's poll or a workspace's scan (indices as in [`Queue`]).
#[derive(Debug, Clone, Copy)]
enum Job {
    Poll(usize),
    Scan(usize),
}

/// A scan's outcome: the workspace, when it began (Unix milliseconds), what it found.
type ScanDone = (String, i64, Result<WorkspaceChanges, BitbucketError>);

/// One credential's scheduler: its watches and workspaces, the queue of what comes when, and
/// the polls and scans under way.
struct Scheduler {
    /// What every poll needs (store, clock, metrics, ...).
    ctx: PollContext,
    /// The credential's budget as configured, which the plan spends 90 % of (the account's
    /// limiter enforces it, lowered when Bitbucket advertises less).
    budget: RateLimit,
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
    due: Queue,
    /// When each workspace's next scan is due. Apart from polls: a scan has a slot of its own,
    /// so polls piling up after a 429 pause never hold back the look that finds new pushes.
    scans_due: Queue,
    /// The polls under way.
    polls: JoinSet<Result<poller::PollSummary, PollError>>,
    /// Each poll under way: its watch, and its task to abandon it by.
    in_flight: HashMap<WatchKey, AbortHandle>,
    /// Each poll task's watch and why it was made.
    polling: HashMap<task::Id, (WatchKey, Why)>,
    /// The scans under way.
    scans: JoinSet<ScanDone>,
    /// Workspaces being scanned.
    scanning: HashSet<String>,
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
    budget: RateLimit,
    log: Arc<PollLog>,
    timing: Timing,
    mut shutdown: Shutdown,
) {
    let first = roster.borrow_and_update().clone();
    let mut scheduler = Scheduler {
        ctx,
        budget,
        targets: first.targets,
        timing,
        log,
        watches: Vec::new(),
        workspaces: Vec::new(),
        due: BinaryHeap::new(),
        scans_due: BinaryHeap::new(),
        polls: JoinSet::new(),
        in_flight: HashMap::new(),
        polling: HashMap::new(),
        scans: JoinSet::new(),
        scanning: HashSet::new(),
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
                    Err(err) => panic!("a poll panicked: {err}"),
                }
            }
            Some(done) = scheduler.scans.join_next(), if !scheduler.scanning.is_empty() => {
                match done {
                    Ok(done) => scheduler.scan_done(done),
                    Err(err) if err.is_cancelled() => {}
                    Err(err) => panic!("a scan panicked: {err}"),
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
            .peek()
            .filter(|_| self.in_flight.len() < CONCURRENT_POLLS)
            .map(|Reverse((at, i))| (*at, Job::Poll(*i)));
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
        let Some((_, job)) = self.first_due() else {
            return;
        };
        match job {
            Job::Poll(index) => {
                self.due.pop();
                let tracked = &mut self.watches[index];
                let why = if tracked.hinted {
                    Why::Scan
                } else {
                    tracked.why
                };
                tracked.hinted = false;
                let (ctx, watch, source) = (
                    self.ctx.clone(),
                    tracked.watch.clone(),
                    tracked.source.clone(),
                );
                let key = key_of(&watch);
                let poll = self
                    .polls
                    .spawn(async move { poller::poll_once(&ctx, &watch, &source).await });
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
                self.scans.spawn(async move {
                    let found = client.changed_repositories(&name, since_ms).await;
                    (name, began_ms, found)
                });
            }
        }
    }

    /// Takes in a finished poll and plans the watch's next one.
    fn poll_done(&mut self, id: task::Id, result: Result<poller::PollSummary, PollError>) {
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
        report(&self.watches[index], &result, &self.ctx);
        if let Ok(summary) = &result {
            let found = match why {
                Why::Scan => &self.ctx.metrics.found_by_scan,
                Why::Sweep => &self.ctx.metrics.found_by_sweep,
                Why::Follow => &self.ctx.metrics.found_following,
            };
            if !summary.baselined {
                found.fetch_add(summary.discovered as u64, Ordering::Relaxed);
            }
        }
        let tracked = &mut self.watches[index];
        tracked.learn(&result, now, now_ms, self.timing.history);
        tracked.polled = Some(now);
        tracked.why = if tracked.busy {
            Why::Follow
        } else {
            Why::Sweep
        };
        let next = self.replan(now);
        let (repo, source) = (&key.0, key.1.name());
        tracing::debug!(%repo, source, next_in = ?next[index].saturating_duration_since(now), "next poll planned");
        // A poll planned in a busy moment must not stay far off once the plan relaxes: bring
        // every queued poll forward to what the current plan gives it.
        self.due = std::mem::take(&mut self.due)
            .into_iter()
            .map(|Reverse((at, i))| Reverse((at.min(next[i]), i)))
            .collect();
        let at = if self.watches[index].hinted {
            self.front(now)
        } else {
            next[index]
        };
        self.due.push(Reverse((at, index)));
    }

    /// Takes in a finished scan: the repositories it shows pushed to are polled at once.
    fn scan_done(&mut self, (name, began_ms, found): ScanDone) {
        self.scanning.remove(&name);
        let every = self.scan_every();
        let Some(index) = self.workspaces.iter().position(|w| w.name == name) else {
            return;
        };
        match found {
            Ok(changes) => {
                let fresh = self.workspaces[index].take(changes, began_ms, every);
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
        // A reload may have turned scans off while this one was under way.
        if self.targets.scan.is_some() {
            self.scans_due
                .push(Reverse((Instant::now() + jitter(every), index)));
        }
    }

    /// Polls the watches of `repos` first (or, for one being polled, again when it is done).
    fn hint(&mut self, repos: &[RepoId]) {
        if repos.is_empty() {
            return;
        }
        let wanted: HashSet<(String, String)> = repos.iter().map(case_blind).collect();
        let front = self.front(Instant::now());
        let mut hinted = HashSet::new();
        for (index, tracked) in self.watches.iter_mut().enumerate() {
            if wanted.contains(&case_blind(&tracked.watch.repo)) {
                tracing::debug!(repo = %tracked.watch.repo, "the workspace scan shows a push");
                tracked.hinted = true;
                hinted.insert(index);
            }
        }
        self.due = std::mem::take(&mut self.due)
            .into_iter()
            .map(|Reverse((at, i))| Reverse((if hinted.contains(&i) { front } else { at }, i)))
            .collect();
    }

    /// A due time ahead of every queued poll (and no later than `now`): a push the scan saw is
    /// polled before the polls a pause or a busy moment left overdue.
    fn front(&self, now: Instant) -> Instant {
        self.due
            .peek()
            .map_or(now, |Reverse((at, _))| (*at).min(now))
    }

    /// The plan for now: when each watch's next poll should come after its last one.
    fn replan(&self, now: Instant) -> Vec<Instant> {
        let warm_for = self.targets.warm_for;
        let heats: Vec<Heat> = self.watches.iter().map(|w| w.heat(now, warm_for)).collect();
        let demands = |waits: &[Option<Duration>]| -> Vec<Demand> {
            self.watches
                .iter()
                .zip(&heats)
                .zip(waits)
                .map(|((w, &heat), wait)| {
                    // A running build expected to end later costs one poll by then, not one
                    // every `hot`.
                    let spread = match (heat, wait) {
                        (Heat::Hot, Some(wait)) if *wait > self.targets.hot => {
                            self.targets.hot.as_secs_f64() / wait.as_secs_f64()
                        }
                        _ => 1.0,
                    };
                    Demand {
                        heat,
                        cost: w.cost * spread,
                    }
                })
                .collect()
        };
        let (reserved, evenly) = (self.scan_rate(), vec![None; self.watches.len()]);
        let mut plan = plan::plan(self.budget, &self.targets, &demands(&evenly), reserved);
        // While the budget affords following every running build every `hot`, it is followed
        // so (a new build of the same repository is seen starting); beyond, a build whose end
        // can be foretold is looked at around then, and the saving goes to the rest.
        // With the scan off, the plan is the one before the scan existed: every class
        // evenly, no expected ends, no weighted sweep (`scan = "off"` restores it exactly).
        let scanning = self.targets.scan.is_some();
        let mut waits = evenly;
        if scanning && plan.hot > self.targets.hot {
            waits = self
                .watches
                .iter()
                .map(|w| w.expected_end.map(|end| end.saturating_duration_since(now)))
                .collect();
            plan = plan::plan(self.budget, &self.targets, &demands(&waits), reserved);
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
                match (heats[i], waits[i]) {
                    (Heat::Hot, Some(wait)) if wait > plan.hot => now + wait,
                    (Heat::Cold, _) => since + jitter(plan.cold.mul_f64(sweep[i])),
                    (heat, _) => since + jitter(plan.interval(heat)),
                }
            })
            .collect()
    }

    /// How often each workspace is scanned: `[polling] scan`, stretched so that scans keep
    /// within their share of the budget (`Duration::MAX` when scans are off: none is queued).
    fn scan_every(&self) -> Duration {
        let every = self.targets.scan.unwrap_or(Duration::MAX);
        scan::interval(
            every,
            self.workspaces.len(),
            plan::planned_rate(self.budget),
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

    /// Takes a roster (the first, or a reload's): see [`run`].
    fn take_roster(&mut self, roster: &Roster, first: bool) {
        let now = Instant::now();
        self.targets = roster.targets;
        self.ctx.settle = roster.targets.settle;
        abandon_outdated(roster, &mut self.in_flight);
        // Queued polls by watch; queued scans are dropped and queued again below.
        let mut next_at: HashMap<WatchKey, Instant> = HashMap::new();
        for Reverse((at, i)) in std::mem::take(&mut self.due) {
            next_at.insert(key_of(&self.watches[i].watch), at);
        }
        self.scans_due.clear();
        let mut kept: HashMap<WatchKey, Tracked> = std::mem::take(&mut self.watches)
            .into_iter()
            .map(|t| (key_of(&t.watch), t))
            .collect();
        let spread = first_poll_delay(roster.watches.len(), self.budget, &self.targets);
        for (watch, source) in &roster.watches {
            let key = key_of(watch);
            let (tracked, at) = match kept.remove(&key) {
                Some(mut tracked) => {
                    tracked.watch = watch.clone();
                    tracked.source = source.clone();
                    (tracked, next_at.get(&key).copied())
                }
                None => {
                    let delay = if first {
                        spread.mul_f64(rand::random::<f64>())
                    } else {
                        first_poll_delay(1, self.budget, &self.targets)
                            .mul_f64(rand::random::<f64>())
                    };
                    (
                        Tracked::new(watch.clone(), source.clone(), now),
                        Some(now + delay),
                    )
                }
            };
            // A watch being polled is queued again when its poll ends; one whose poll was just
            // abandoned is due now.
            if !self.in_flight.contains_key(&key) {
                let index = self.watches.len();
                self.due.push(Reverse((at.unwrap_or(now), index)));
            }
            self.watches.push(tracked);
        }
        let sources = self.watches.iter().map(|t| (&t.watch.repo, &t.source));
        self.workspaces = scan::workspaces(sources, std::mem::take(&mut self.workspaces));
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
    let round = Duration::from_secs_f64(repositories as f64 / plan::planned_rate(budget));
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
