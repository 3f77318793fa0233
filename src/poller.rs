//! Polling one repository: fetch what changed since the last poll, classify each change, route
//! events to channels and commit it all in one store transaction, then wake the channels' workers.
//!
//! A repository polled for the first time is baselined: its history is recorded, not announced,
//! and its unfinished builds are followed to the end (and their endings announced).

use crate::bitbucket::{BitbucketError, CloudClient};
use crate::config::Subscription;
use crate::daemon::Metrics;
use crate::delivery::Wakeups;
use crate::detect::{self, Health};
use crate::domain::{BuildStatus, RepoId};
use crate::shutdown::Shutdown;
use crate::store::{Notification, PollUpdate, RepoCursor, Store, StoreError};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Most pages read in one poll (500 pipelines): a repository that starts more than that
/// between two polls has the excess recorded as history, with an error in the log.
const MAX_PAGES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Bitbucket(#[from] BitbucketError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a poller needs; shared by all repositories' pollers.
#[derive(Clone)]
pub struct PollContext {
    pub client: Arc<CloudClient>,
    pub store: Store,
    pub wakeups: Arc<Wakeups>,
    pub metrics: Arc<Metrics>,
}

/// What one poll found, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSummary {
    pub baselined: bool,
    pub transitions: usize,
    pub notifications: usize,
}

/// Polls `subscription`'s repository every `interval` until shutdown.
pub async fn run(
    ctx: PollContext,
    subscription: Subscription,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    // Spread repositories over the interval so their requests never align.
    let offset = interval.mul_f64(rand::random::<f64>());
    tokio::select! {
        _ = tokio::time::sleep(offset) => {}
        _ = shutdown.wait() => return,
    }
    loop {
        match poll_once(&ctx, &subscription).await {
            Ok(summary) if summary.baselined => {
                tracing::info!(repo = %subscription.repo, "baselined repository: history recorded, not announced");
            }
            Ok(summary) if summary.transitions > 0 => {
                tracing::debug!(repo = %subscription.repo, ?summary, "poll recorded transitions");
            }
            Ok(_) => {}
            Err(err) => {
                ctx.metrics
                    .poll_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(repo = %subscription.repo, url = %subscription.url, %err, "poll failed; will try again");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// One poll of one repository; commits before it returns.
pub async fn poll_once(
    ctx: &PollContext,
    subscription: &Subscription,
) -> Result<PollSummary, PollError> {
    let repo = &subscription.repo;
    let stored = ctx.store.cursor(repo)?;
    let baselined = stored.is_none();
    let cursor = stored.unwrap_or_default();

    let mut seen = fetch_new(ctx, repo, &cursor, baselined).await?;
    let mut gone = BTreeSet::new();
    for id in &cursor.active {
        if seen.iter().any(|b| &b.key.id == id) {
            continue;
        }
        match ctx.client.pipeline(repo, id).await {
            Ok(build) => seen.push(build),
            Err(BitbucketError::NotFound) => {
                tracing::warn!(%repo, pipeline = %id, "a followed pipeline disappeared; no longer following it");
                gone.insert(id.clone());
            }
            Err(err) => return Err(err.into()),
        }
    }
    // Oldest first, so a branch's health follows the order its builds ran in.
    seen.sort_by_key(|b| b.number);
    seen.dedup_by(|a, b| a.key == b.key);

    let update = classify_all(ctx, subscription, &cursor, seen, baselined)?;
    let summary = PollSummary {
        baselined,
        transitions: update.builds.len(),
        notifications: update.notifications.len(),
    };
    let store = ctx.store.clone();
    let now = now_ms();
    let update =
        tokio::task::spawn_blocking(move || store.commit_poll(&update, now).map(|()| update))
            .await
            .expect("store commit does not panic")?;
    if !baselined {
        ctx.metrics.transitions.fetch_add(
            summary.transitions as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
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
}

/// Pages of pipelines newest first, until one reaches what was already recorded.
async fn fetch_new(
    ctx: &PollContext,
    repo: &RepoId,
    cursor: &RepoCursor,
    baselined: bool,
) -> Result<Vec<BuildStatus>, PollError> {
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    for page_number in 1..=MAX_PAGES {
        let page = ctx.client.pipelines(repo, next.as_deref()).await?;
        let reached_known = page.builds.iter().any(|b| b.number <= cursor.high_water);
        seen.extend(page.builds);
        next = page.next;
        if baselined || reached_known || next.is_none() {
            return Ok(seen);
        }
        if page_number == MAX_PAGES {
            tracing::error!(%repo, "more than {MAX_PAGES} pages of new pipelines since the last poll; older ones are not announced");
        }
    }
    Ok(seen)
}

/// Decides what each observed build means and what to tell whom.
fn classify_all(
    ctx: &PollContext,
    subscription: &Subscription,
    cursor: &RepoCursor,
    seen: Vec<BuildStatus>,
    baselined: bool,
) -> Result<PollUpdate, StoreError> {
    let repo = &subscription.repo;
    let mut update = PollUpdate {
        repo: repo.clone(),
        cursor: RepoCursor {
            high_water: cursor.high_water,
            active: Vec::new(),
        },
        builds: Vec::new(),
        health: Vec::new(),
        notifications: Vec::new(),
    };
    let mut health: HashMap<String, Option<Health>> = HashMap::new();
    for build in seen {
        let before = ctx.store.build_state(&build.key)?;
        // A build below the cursor that was never recorded (older than the baseline page) is
        // history: recorded, not announced.
        let is_history = baselined || (before.is_none() && build.number <= cursor.high_water);
        let branch_health = match &build.branch {
            Some(branch) => match health.get(branch) {
                Some(h) => *h,
                None => *health
                    .entry(branch.clone())
                    .or_insert(ctx.store.health(repo, branch)?),
            },
            None => None,
        };
        let verdict = detect::classify(before.as_ref(), &build.state, branch_health);
        update.cursor.high_water = update.cursor.high_water.max(build.number);
        if !build.state.is_finished() {
            update.cursor.active.push(build.key.id.clone());
        }
        if !verdict.changed {
            continue;
        }
        update.builds.push((build.key.clone(), build.state.clone()));
        if let (Some(h), Some(branch)) = (verdict.health, &build.branch) {
            health.insert(branch.clone(), Some(h));
            update.health.retain(|(b, _)| b != branch);
            update.health.push((branch.clone(), h));
        }
        if let Some(event) = verdict.event.filter(|_| !is_history) {
            if subscription.wants(build.branch.as_deref(), event) {
                update
                    .notifications
                    .extend(subscription.channels.iter().map(|channel| Notification {
                        channel: channel.clone(),
                        event,
                        build: build.clone(),
                    }));
            }
        }
    }
    Ok(update)
}

/// Wall-clock Unix milliseconds, for records that must mean the same after a restart.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
