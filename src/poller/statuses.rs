//! The statuses sources (Cloud commit statuses, Data Center build statuses): there is no
//! repository-wide list of statuses, so read the watched branches' tips, then the statuses of
//! every commit still followed: a new tip, one with a status in progress, or one whose statuses
//! changed less than the settle time ago, because external CI posts late.

use super::{Fetched, PollError, Source};
use crate::bitbucket::BitbucketError;
use crate::config::Subscription;
use crate::domain::{BranchTip, BuildStatus, RepoId};
use crate::store::{Followed, PollUpdate, RepoCursor};
use std::collections::BTreeSet;
use std::time::Duration;

/// Reads the tips and the statuses of the followed commits.
pub(super) async fn fetch(
    source: &Source,
    subscription: &Subscription,
    cursor: &RepoCursor,
    now_ms: i64,
    settle: Duration,
) -> Result<Fetched, PollError> {
    let repo = &subscription.repo;
    let known = |tip: &BranchTip| cursor.branch_tips.get(&tip.branch) == Some(&tip.commit);
    let tips = branch_tips(source, repo, known).await?;
    let mut branch_tips = cursor.branch_tips.clone();
    let mut followed = cursor.followed.clone();
    for tip in tips
        .into_iter()
        .filter(|t| subscription.branches.iter().any(|g| g.matches(&t.branch)))
    {
        if branch_tips.get(&tip.branch) == Some(&tip.commit) {
            continue;
        }
        branch_tips.insert(tip.branch.clone(), tip.commit.clone());
        if !followed.iter().any(|f| f.tip == tip) {
            followed.push(Followed {
                tip,
                settle_until_ms: now_ms + millis(settle),
            });
        }
    }
    let mut builds = Vec::new();
    for commit in &followed {
        builds.extend(commit_statuses(source, repo, &commit.tip).await?);
    }
    // One call for the branch tips (usually one page), one per followed commit.
    let requests = 1 + followed.len() as u64;
    Ok(Fetched {
        builds,
        cursor: RepoCursor {
            branch_tips,
            followed,
            ..RepoCursor::default()
        },
        requests,
    })
}

/// The newest `limit` statuses on the most recently pushed branch tips (the first page of
/// them), reading at most `limit` tips: on every branch, since a preview shows what the
/// subscription's branches filter out too.
pub(super) async fn recent(
    source: &Source,
    repo: &RepoId,
    limit: usize,
) -> Result<Vec<BuildStatus>, BitbucketError> {
    // "Every tip is known" stops the tips at their first page.
    let tips = branch_tips(source, repo, |_| true).await?;
    let mut builds = Vec::new();
    for tip in tips.iter().take(limit) {
        builds.extend(commit_statuses(source, repo, tip).await?);
        if builds.len() >= limit {
            break;
        }
    }
    builds.sort_by_key(|b| std::cmp::Reverse((b.created_ms, b.revision)));
    builds.truncate(limit);
    Ok(builds)
}

/// Branch tips through whichever client `source` holds; see `CloudClient::branch_tips`.
async fn branch_tips(
    source: &Source,
    repo: &RepoId,
    known: impl Fn(&BranchTip) -> bool,
) -> Result<Vec<BranchTip>, BitbucketError> {
    match source {
        Source::CloudStatuses(client) => client.branch_tips(repo, known).await,
        Source::DataCenterStatuses(client) => client.branch_tips(repo, known).await,
        Source::Pipelines(_) => unreachable!("pipelines are not a statuses source"),
    }
}

/// Every status posted on `tip`'s commit, through whichever client `source` holds.
async fn commit_statuses(
    source: &Source,
    repo: &RepoId,
    tip: &BranchTip,
) -> Result<Vec<BuildStatus>, BitbucketError> {
    match source {
        Source::CloudStatuses(client) => client.statuses(repo, tip).await,
        Source::DataCenterStatuses(client) => client.statuses(repo, tip).await,
        Source::Pipelines(_) => unreachable!("pipelines are not a statuses source"),
    }
}

/// After classification: a commit whose statuses changed settles again from now; one that is
/// quiet past its settle time and has nothing in progress is no longer followed.
pub(super) fn settle(update: &mut PollUpdate, now_ms: i64, settle: Duration) {
    let changed: BTreeSet<String> = update
        .builds
        .iter()
        .map(|(key, _)| commit_of(&key.id).to_owned())
        .collect();
    let running: BTreeSet<String> = update
        .cursor
        .active
        .iter()
        .map(|id| commit_of(id).to_owned())
        .collect();
    for commit in &mut update.cursor.followed {
        if changed.contains(&commit.tip.commit) {
            commit.settle_until_ms = now_ms + millis(settle);
        }
    }
    update
        .cursor
        .followed
        .retain(|c| c.settle_until_ms > now_ms || running.contains(&c.tip.commit));
}

/// Status build ids are `{commit}/{key}`.
fn commit_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(commit, _)| commit)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}
