//! The Cloud Pipelines source: page newest-first until a recorded pipeline, then follow every
//! unfinished one that fell off those pages by uuid.

use super::{Fetched, PollError};
use crate::bitbucket::{BitbucketError, CloudClient};
use crate::domain::{BuildStatus, RepoId};
use crate::store::RepoCursor;

/// Most pages read in one poll (500 pipelines): a repository that starts more than that
/// between two polls has the excess recorded as history, with an error in the log.
const MAX_PAGES: usize = 50;

/// Reads what changed since `cursor`. On a first poll (`baseline_since` set) pages go back to
/// the first pipeline created before watching started.
pub(super) async fn fetch(
    client: &CloudClient,
    repo: &RepoId,
    cursor: &RepoCursor,
    baseline_since: Option<i64>,
) -> Result<Fetched, PollError> {
    let mut builds: Vec<BuildStatus> = Vec::new();
    let mut requests = 0;
    let mut next: Option<String> = None;
    for page_number in 1..=MAX_PAGES {
        requests += 1;
        let page = client.pipelines(repo, next.as_deref()).await?;
        let reached_known = page.builds.iter().any(|b| match baseline_since {
            Some(since) => b.created_ms < since,
            None => b.number.is_some_and(|n| n <= cursor.high_water),
        });
        builds.extend(page.builds);
        next = page.next;
        if reached_known || next.is_none() {
            break;
        }
        if page_number == MAX_PAGES {
            tracing::error!(%repo, "more than {MAX_PAGES} pages of new pipelines since the last poll; older ones are not announced");
        }
    }
    // Newest first, as the pages were read: requests are paced, so a poll observes over a
    // while, and a lane's older runs (which mostly end first) are best looked at last. Looked
    // at first, an old run could be seen running while a newer one of its lane is seen ended,
    // and "still failing" would be told before the "failed" it follows.
    for id in cursor.active.iter().rev() {
        if builds.iter().any(|b| &b.key.id == id) {
            continue;
        }
        requests += 1;
        match client.pipeline(repo, id).await {
            Ok(build) => builds.push(build),
            Err(BitbucketError::NotFound) => {
                tracing::warn!(%repo, pipeline = %id, "a followed pipeline disappeared; no longer following it");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Fetched {
        builds,
        by_pipelines: Default::default(),
        cursor: RepoCursor {
            high_water: cursor.high_water,
            ..RepoCursor::default()
        },
        requests,
    })
}

/// The `limit` newest pipelines, from as many pages as they take.
pub(super) async fn recent(
    client: &CloudClient,
    repo: &RepoId,
    limit: usize,
) -> Result<Vec<BuildStatus>, BitbucketError> {
    let mut builds: Vec<BuildStatus> = Vec::new();
    let mut next: Option<String> = None;
    while builds.len() < limit {
        let page = client.pipelines(repo, next.as_deref()).await?;
        builds.extend(page.builds);
        next = page.next;
        if next.is_none() {
            break;
        }
    }
    builds.truncate(limit);
    Ok(builds)
}
