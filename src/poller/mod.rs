//! Polling one repository through one source (a [`Watch`]): fetch what changed since the last
//! poll (the source's business), classify each change against the store, route events to the
//! channels of every subscription that wants them (each channel once) and commit it all in one
//! store transaction, then wake the channels' delivery workers. When to poll is the
//! [`scheduler`](crate::scheduler)'s business.
//!
//! A repository polled for the first time is baselined: builds that existed before bbzoom started
//! watching it are recorded, not announced, and the unfinished ones are followed to the end.
//! Builds created after watching started are announced even if the first poll comes late (a
//! large set of repositories can take a while to baseline within its budget).

mod pipelines;
mod statuses;

use crate::bitbucket::{BitbucketError, CloudClient, CommitStatuses, DataCenterClient};
use crate::clock::{Calendar, Clock};
use crate::config::Watch;
use crate::detect;
use crate::domain::{
    BuildKey, BuildRef, BuildState, BuildStatus, EventKind, Health, Lane, Mention, RepoId, WarRoom,
};
use crate::metrics::Metrics;
use crate::store::{Notification, PollUpdate, RepoCursor, Store, StoreError, StoredBuild};
use crate::wakeups::Wakeups;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Bitbucket(#[from] BitbucketError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The poll's task panicked (a bug): it failed, and the repository is polled again later.
    #[error("the poll failed unexpectedly: {0}")]
    Panicked(String),
}

/// Where a subscription's builds are read from, with the client that reads them.
#[derive(Clone)]
pub enum Source {
    /// Bitbucket Cloud Pipelines.
    Pipelines(Arc<CloudClient>),
    /// Commit statuses on Bitbucket Cloud.
    CloudStatuses(Arc<CloudClient>),
    /// Build statuses on Bitbucket Data Center.
    DataCenterStatuses(Arc<DataCenterClient>),
}

impl Source {
    /// The account of the credential this source reads with: its budget in force is
    /// `source.account().budget()`, which follows what Bitbucket advertises.
    pub fn account(&self) -> &Arc<crate::bitbucket::Account> {
        match self {
            Source::Pipelines(client) | Source::CloudStatuses(client) => &client.account,
            Source::DataCenterStatuses(client) => &client.account,
        }
    }

    /// One cheap request for `repo`, to check that the credential works (`bbzoom check --online`).
    pub async fn probe(&self, repo: &RepoId) -> Result<(), BitbucketError> {
        match self {
            Source::Pipelines(client) => client.pipelines(repo, None).await.map(drop),
            Source::CloudStatuses(client) => client.ref_tips(repo, false, |_| true).await.map(drop),
            Source::DataCenterStatuses(client) => {
                client.branch_tips(repo, |_| true).await.map(drop)
            }
        }
    }

    /// The `limit` most recent builds of `repo`, newest first, read once: for `bbzoom
    /// preview`, which shows them without classifying them against the store or recording
    /// anything. Pipelines come from the pipelines list; statuses from the most recently
    /// pushed branch and tag tips, at most one request per build shown plus one or two.
    pub async fn recent_builds(
        &self,
        repo: &RepoId,
        limit: usize,
    ) -> Result<CommitStatuses, BitbucketError> {
        match self {
            Source::Pipelines(client) => Ok(CommitStatuses {
                builds: pipelines::recent(client, repo, limit).await?,
                ..CommitStatuses::default()
            }),
            Source::CloudStatuses(_) | Source::DataCenterStatuses(_) => {
                statuses::recent(self, repo, limit).await
            }
        }
    }
}

/// What every poll needs, shared by all pollers.
#[derive(Clone)]
pub struct PollContext {
    pub store: Store,
    pub wakeups: Arc<Wakeups>,
    pub metrics: Arc<Metrics>,
    /// Stamps the poll: when watching began, when commits stop being followed.
    pub clock: Arc<dyn Clock>,
    /// Bitbucket's calendar, which Pipelines schedules fire by (`daemon::Tuning`'s): the
    /// scheduler times a poll just after a scheduled run by it. Here rather than in
    /// `scheduler::Timing`, which is `Copy`.
    pub calendar: Arc<dyn Calendar>,
    /// One poll at a time per repository, across every scheduler.
    pub polling: Arc<PollTurns>,
    /// How long a commit's statuses are read after their last change.
    pub settle: Duration,
}

/// One turn at a time per repository, across every scheduler: two polls of one repository at
/// once (a reload just moved it to another credential, or re-added it while an old poll still
/// waits on Bitbucket) would both read the same cursor and record the same transitions twice.
#[derive(Debug, Default)]
pub struct PollTurns {
    by_repo: std::sync::Mutex<HashMap<RepoId, Arc<tokio::sync::Mutex<()>>>>,
}

impl PollTurns {
    /// Waits for `repo`'s turn; it lasts as long as the guard.
    pub(crate) async fn turn(&self, repo: &RepoId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .by_repo
            .lock()
            .expect("poll turns lock")
            .entry(repo.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Forgets the repositories `keep` rejects, unless a poll of one is under way.
    pub(crate) fn retain(&self, keep: impl Fn(&RepoId) -> bool) {
        self.by_repo
            .lock()
            .expect("poll turns lock")
            .retain(|repo, lock| keep(repo) || Arc::strong_count(lock) > 1);
    }
}

/// What one poll found: for the log and for the scheduler's idea of how busy the repository is
/// and when to look next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSummary {
    pub baselined: bool,
    /// Builds whose state changed.
    pub transitions: usize,
    pub(crate) notifications: usize,
    /// Builds seen for the first time (history aside): what `status` credits the poll's
    /// reason with (a scan hint, a sweep, following a run, a schedule).
    pub(crate) discovered: usize,
    /// Requests the poll spent.
    pub(crate) requests: u64,
    /// Something is running or still settling: the repository is hot.
    pub(crate) busy: bool,
    /// The runs seen, for the scheduler to learn how long each lane's builds take and when
    /// the running ones should end.
    pub(crate) runs: Vec<RunSeen>,
    /// Statuses: when a commit's next late look is due (Unix milliseconds), while it awaits a
    /// status its repository's outside CI posted late before; the scheduler polls then.
    pub(crate) late_look_ms: Option<i64>,
}

/// One build as the scheduler learns from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunSeen {
    /// The ref and job it ran for (a bare commit's ref is [`BuildRef::Commit`]).
    pub(crate) lane: Lane,
    /// When it was created (Unix milliseconds, Bitbucket's clock).
    pub(crate) created_ms: i64,
    /// When it ended, if it ended in this poll (Bitbucket's clock); `None` while it runs.
    pub(crate) ended_ms: Option<i64>,
    /// A Pipelines schedule started it: the repository has schedules worth reading.
    pub(crate) scheduled: bool,
}

/// What a source fetched: observations plus the source-specific parts of the next cursor.
pub(crate) struct Fetched {
    pub(crate) builds: Vec<BuildStatus>,
    /// The statuses Bitbucket Pipelines posted for its own runs (see
    /// `Watch::channels_for_pipeline_status`).
    pub(crate) by_pipelines: BTreeSet<BuildKey>,
    pub(crate) cursor: RepoCursor,
    /// Calls the fetch made (other polls share the account, so its counter cannot tell).
    pub(crate) requests: u64,
}

/// One poll of one repository through one source; commits before it returns.
pub async fn poll_once(
    ctx: &PollContext,
    watch: &Watch,
    source: &Source,
) -> Result<PollSummary, PollError> {
    let repo = &watch.repo;
    // Held until the commit is done (it moves into the blocking commit below), so a poll of
    // the same repository by another scheduler reads this one's cursor, never the one before.
    let turn = ctx.polling.turn(repo).await;
    let now = ctx.clock.now_ms();
    let (since, stored) = {
        let (repo, source) = (repo.clone(), watch.source);
        ctx.store
            .blocking(move |store| {
                let since = store.watching_since(&repo, source, now)?;
                Ok::<_, StoreError>((since, store.cursor(&repo, source)?))
            })
            .await?
    };
    let baselined = stored.is_none();
    let cursor = stored.unwrap_or_default();

    let fetched = match source {
        Source::Pipelines(client) => {
            pipelines::fetch(client, repo, &cursor, baselined.then_some(since)).await?
        }
        Source::CloudStatuses(_) | Source::DataCenterStatuses(_) => {
            let since = baselined.then_some(since);
            statuses::fetch(source, watch, &cursor, since, now, ctx.settle).await?
        }
    };
    let requests = fetched.requests;
    let Applied {
        mut update,
        discovered,
        runs,
    } = apply(ctx, watch, &cursor, fetched, baselined.then_some(since))?;
    if !matches!(source, Source::Pipelines(_)) {
        statuses::settle(&mut update, now, ctx.settle);
    }
    let summary = PollSummary {
        baselined,
        transitions: update.builds.len(),
        notifications: update.notifications.len(),
        discovered,
        requests,
        busy: !update.cursor.active.is_empty()
            || update
                .cursor
                .followed
                .iter()
                .any(|commit| statuses::settling(commit, now)),
        late_look_ms: statuses::next_late_look(&update.cursor, now, ctx.settle),
        runs,
    };
    // The commit and the wake-ups are one blocking unit: once started it completes even if
    // this poll is abandoned (a scheduler stopping or a reload does that), so no committed row
    // waits for a wake-up that never comes. Abandoned before it, a poll leaves nothing behind
    // but when watching began, which every try agrees on.
    let ctx = ctx.clone();
    ctx.store
        .clone()
        .blocking(move |store| {
            let _turn = turn;
            store.commit_poll(&update, now)?;
            if !baselined {
                ctx.metrics
                    .transitions
                    .fetch_add(summary.transitions as u64, Ordering::Relaxed);
            }
            for channel in update
                .notifications
                .iter()
                .map(|n| n.channel.as_str())
                .collect::<BTreeSet<_>>()
            {
                ctx.wakeups.wake(channel);
            }
            Ok(summary)
        })
        .await
}

/// What [`apply`] decided: the store's update, and what the scheduler learns from the poll.
struct Applied {
    update: PollUpdate,
    discovered: usize,
    runs: Vec<RunSeen>,
}

/// Decides what each observed build means and what to tell whom. `baseline_since` is set on
/// a repository's first poll: builds created before it are history.
fn apply(
    ctx: &PollContext,
    watch: &Watch,
    cursor: &RepoCursor,
    fetched: Fetched,
    baseline_since: Option<i64>,
) -> Result<Applied, StoreError> {
    let repo = &watch.repo;
    let mut update = PollUpdate {
        repo: repo.clone(),
        source: watch.source,
        cursor: RepoCursor {
            active: Vec::new(),
            ..fetched.cursor
        },
        builds: Vec::new(),
        health: Vec::new(),
        notifications: Vec::new(),
        meetings: Vec::new(),
    };
    let mut builds = fetched.builds;
    // Endings in the order they happened, so a lane's health follows them; unfinished builds
    // (which do not touch health) after.
    builds.sort_by_key(|b| {
        (
            if b.state.is_finished() {
                b.revision
            } else {
                i64::MAX
            },
            b.number,
            b.created_ms,
        )
    });
    // A status found at two refs (a commit both a branch's tip and tagged, the status naming
    // neither) is one build, whose events go where either ref's subscriptions say.
    let mut refs: HashMap<BuildKey, BTreeSet<BuildRef>> = HashMap::new();
    builds.retain(|b| {
        let seen = refs.entry(b.key.clone()).or_default();
        let first = seen.is_empty();
        seen.insert(b.git_ref.clone());
        first
    });
    let mut health: HashMap<Lane, Option<Health>> = HashMap::new();
    // Each lane's failing streak that wants a war room, as this poll leaves it.
    let mut streaks: HashMap<Lane, Option<String>> = HashMap::new();
    let (mut discovered, mut runs) = (0, Vec::new());
    for build in builds {
        let stored = ctx.store.build(&build.key)?;
        let is_history = match baseline_since {
            Some(since) => build.created_ms < since,
            // A pipeline below the cursor never recorded (older than the baseline) is history.
            None => stored.is_none() && build.number.is_some_and(|n| n <= cursor.high_water),
        };
        if stored.is_none() && !is_history {
            discovered += 1;
        }
        let was_running = stored.as_ref().is_none_or(|s| !s.state.is_finished());
        if !build.state.is_finished() || was_running {
            runs.push(RunSeen {
                lane: Lane {
                    git_ref: build.git_ref.clone(),
                    job: build.job.clone(),
                },
                created_ms: build.created_ms,
                ended_ms: build.state.is_finished().then_some(build.revision),
                scheduled: build.scheduled,
            });
        }
        // A status overwritten with the same finished state is a new run that ended alike.
        let overwritten = stored
            .as_ref()
            .is_some_and(|s| s.revision != build.revision);
        let before = match &stored {
            Some(s) if overwritten && s.state == build.state && build.state.is_finished() => {
                Some(BuildState::Running)
            }
            Some(s) => Some(s.state.clone()),
            None => None,
        };
        let lane = build.lane();
        let lane_health = match &lane {
            Some(lane) => match health.get(lane) {
                Some(h) => *h,
                None => *health
                    .entry(lane.clone())
                    .or_insert(ctx.store.health(repo, lane)?),
            },
            None => None,
        };
        let verdict = detect::classify(before.as_ref(), &build.state, lane_health);
        update.cursor.high_water = update.cursor.high_water.max(build.number.unwrap_or(0));
        if !build.state.is_finished() {
            update.cursor.active.push(build.key.id.clone());
        }
        if !verdict.changed && !overwritten {
            continue;
        }
        update.builds.push((
            build.key.clone(),
            StoredBuild {
                state: build.state.clone(),
                revision: build.revision,
            },
        ));
        if let (Some(h), Some(lane)) = (verdict.health, &lane) {
            health.insert(lane.clone(), Some(h));
            update.health.retain(|(l, _)| l != lane);
            update.health.push((lane.clone(), h));
            // Fixed: its war room, if it had one, is forgotten.
            if h == Health::Passing && streak_of(ctx, &mut streaks, repo, lane)?.is_some() {
                streaks.insert(lane.clone(), None);
                update.meetings.push((lane.clone(), None));
            }
        }
        if let Some(event) = verdict.event.filter(|_| !is_history) {
            let by_pipelines = fetched.by_pipelines.contains(&build.key);
            let build_refs = &refs[&build.key];
            let channels = route(watch, build_refs, event, by_pipelines);
            let meeting_channels: BTreeSet<&str> = build_refs
                .iter()
                .flat_map(|git_ref| watch.meeting_channels(git_ref, event))
                .filter(|channel| channels.contains(channel))
                .collect();
            let war_room = match &lane {
                Some(lane) if !meeting_channels.is_empty() => {
                    // A first failure begins a streak; one still failing keeps the lane's.
                    let kept = match event {
                        EventKind::StillFailing => streak_of(ctx, &mut streaks, repo, lane)?,
                        _ => None,
                    };
                    let streak = match kept {
                        Some(streak) => streak,
                        None => {
                            let streak = format!("{}@{}", build.key.id, build.revision);
                            streaks.insert(lane.clone(), Some(streak.clone()));
                            update.meetings.push((lane.clone(), Some(streak.clone())));
                            streak
                        }
                    };
                    Some(WarRoom {
                        lane: lane.clone(),
                        streak,
                    })
                }
                _ => None,
            };
            let mut rows = notifications(watch, &build, event, &channels);
            for row in &mut rows {
                if meeting_channels.contains(row.channel.as_str()) {
                    row.war_room = war_room.clone();
                }
            }
            update.notifications.extend(rows);
        }
    }
    Ok(Applied {
        update,
        discovered,
        runs,
    })
}

/// The failing streak of `lane` that wants a war room, as this poll has left it so far
/// (`streaks`), else as the store has it.
fn streak_of(
    ctx: &PollContext,
    streaks: &mut HashMap<Lane, Option<String>>,
    repo: &RepoId,
    lane: &Lane,
) -> Result<Option<String>, StoreError> {
    if let Some(known) = streaks.get(lane) {
        return Ok(known.clone());
    }
    let stored = ctx.store.meeting_streak(repo, lane)?;
    streaks.insert(lane.clone(), stored.clone());
    Ok(stored)
}

/// The rows `event` of `build` makes for `channels`: a card in each, mentioning the build's
/// author where `[people]` knows them and the channel is the chatbot's (a failure only), and
/// a direct message to them when they asked for one and some chatbot channel hears of it.
fn notifications(
    watch: &Watch,
    build: &BuildStatus,
    event: EventKind,
    channels: &BTreeSet<&str>,
) -> Vec<Notification> {
    let people = &watch.people;
    let author = matches!(event, EventKind::Failed | EventKind::StillFailing)
        .then(|| people.find(&build.authors))
        .flatten()
        .map(|(place, person)| {
            let mention = Mention {
                user: person.zoom.clone(),
                // The card's author is the first one's name; another's is not known.
                name: (place == 0).then(|| build.author.clone()).flatten(),
            };
            (person, mention)
        });
    let chatbot = |channel: &str| people.chatbot_channels.contains(channel);
    let mut rows: Vec<Notification> = channels
        .iter()
        .map(|&channel| Notification {
            channel: channel.to_owned(),
            event,
            build: build.clone(),
            mention: author
                .as_ref()
                .filter(|_| chatbot(channel))
                .map(|(_, mention)| mention.clone()),
            war_room: None,
        })
        .collect();
    if let Some((person, _)) = &author
        && person.direct_message
        && channels.iter().any(|c| chatbot(c))
    {
        rows.push(Notification {
            channel: person.zoom.direct_channel(),
            event,
            build: build.clone(),
            mention: None,
            war_room: None,
        });
    }
    rows
}

/// The channels `event` of a build found at `refs` goes to, each once: a status Pipelines
/// posted for its own run is left out where the run is told as a pipeline.
pub fn route<'w>(
    watch: &'w Watch,
    refs: &BTreeSet<BuildRef>,
    event: EventKind,
    by_pipelines: bool,
) -> BTreeSet<&'w str> {
    refs.iter()
        .flat_map(|git_ref| {
            if by_pipelines {
                watch.channels_for_pipeline_status(git_ref, event)
            } else {
                watch.channels_for(git_ref, event)
            }
        })
        .collect()
}
