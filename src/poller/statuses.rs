//! The statuses sources (Cloud commit statuses, Data Center build statuses): there is no
//! repository-wide list of statuses, so read the tips of the branches (and tags, when a
//! subscription takes tag builds) some subscription follows, then the statuses of every commit
//! still followed: a new tip, one with a status in progress, or one whose statuses changed less
//! than the settle time ago, because external CI posts late.
//!
//! A tag that appears is followed like a branch that moves. On a first poll every branch tip
//! is followed (a build may be running there), but tags are only recorded: a repository's
//! old release tags would otherwise cost a request each, every poll, for the settle time.

use super::{Fetched, PollError, Source};
use crate::bitbucket::{BitbucketError, RefTips};
use crate::config::Watch;
use crate::domain::{BuildRef, BuildStatus, RefTip, RepoId};
use crate::store::{Followed, PollUpdate, RepoCursor};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Reads the tips and the statuses of the followed commits; `baseline` on a first poll.
pub(super) async fn fetch(
    source: &Source,
    watch: &Watch,
    cursor: &RepoCursor,
    baseline: bool,
    now_ms: i64,
    settle: Duration,
) -> Result<Fetched, PollError> {
    let repo = &watch.repo;
    let known = |tip: &RefTip| recorded(cursor, tip) == Some(&tip.commit);
    let RefTips { tips, mut requests } =
        ref_tips(source, repo, watch.follows_tags(), known).await?;
    let mut next = RepoCursor {
        branch_tips: cursor.branch_tips.clone(),
        tag_tips: cursor.tag_tips.clone(),
        followed: cursor.followed.clone(),
        ..RepoCursor::default()
    };
    for tip in tips.into_iter().filter(|t| watch.follows(&t.git_ref)) {
        if recorded(&next, &tip) == Some(&tip.commit) {
            continue;
        }
        let (tips, name) = match &tip.git_ref {
            BuildRef::Tag(name) => (&mut next.tag_tips, name),
            BuildRef::Branch(name) => (&mut next.branch_tips, name),
            BuildRef::Commit => continue,
        };
        tips.insert(name.clone(), tip.commit.clone());
        let old_tag = baseline && matches!(tip.git_ref, BuildRef::Tag(_));
        if !old_tag && !next.followed.iter().any(|f| f.tip == tip) {
            next.followed.push(Followed {
                tip,
                settle_until_ms: now_ms.saturating_add(millis(settle)),
            });
        }
    }
    let mut builds = Vec::new();
    let is_tag = |name: &str| next.tag_tips.contains_key(name);
    for commit in &next.followed {
        builds.extend(commit_statuses(source, watch, &commit.tip, is_tag).await?);
    }
    requests += next.followed.len() as u64;
    Ok(Fetched {
        builds,
        cursor: next,
        requests,
    })
}

/// The commit the cursor last saw at `tip`'s branch or tag.
fn recorded<'a>(cursor: &'a RepoCursor, tip: &RefTip) -> Option<&'a String> {
    let tips: &BTreeMap<String, String> = match &tip.git_ref {
        BuildRef::Tag(_) => &cursor.tag_tips,
        _ => &cursor.branch_tips,
    };
    tips.get(tip.git_ref.name()?)
}

/// The newest `limit` statuses `watch` reads on the most recently pushed branch and tag tips
/// (the first page of them), reading at most `limit` tips: on every branch and tag, since a
/// preview shows what the subscriptions filter out too.
pub(super) async fn recent(
    source: &Source,
    watch: &Watch,
    limit: usize,
) -> Result<Vec<BuildStatus>, BitbucketError> {
    // "Every tip is known" stops the tips at their first page.
    let tips = ref_tips(source, &watch.repo, true, |_| true).await?.tips;
    let is_tag = |name: &str| {
        tips.iter()
            .any(|t| t.git_ref == BuildRef::Tag(name.to_owned()))
    };
    let mut builds = Vec::new();
    for tip in tips.iter().take(limit) {
        builds.extend(commit_statuses(source, watch, tip, is_tag).await?);
        if builds.len() >= limit {
            break;
        }
    }
    builds.sort_by_key(|b| std::cmp::Reverse((b.created_ms, b.revision)));
    builds.truncate(limit);
    Ok(builds)
}

/// Branch tips, and tag tips too with `tags`, through whichever client `source` holds, and
/// the requests that took: Cloud lists both in one where it can (`CloudClient::ref_tips`),
/// Data Center in two.
async fn ref_tips(
    source: &Source,
    repo: &RepoId,
    tags: bool,
    known: impl Fn(&RefTip) -> bool,
) -> Result<RefTips, BitbucketError> {
    match source {
        Source::CloudStatuses(client) => client.ref_tips(repo, tags, known).await,
        Source::DataCenterStatuses(client) => {
            let mut listed = client.branch_tips(repo, &known).await?;
            if tags {
                match client.tag_tips(repo, &known).await {
                    Ok(tags) => {
                        listed.tips.extend(tags.tips);
                        listed.requests += tags.requests;
                    }
                    // A server without the tags list still has its branches' statuses.
                    Err(BitbucketError::NotFound) => listed.requests += 1,
                    Err(err) => return Err(err),
                }
            }
            Ok(listed)
        }
        Source::Pipelines(_) => unreachable!("pipelines are not a statuses source"),
    }
}

/// Every status posted on `tip`'s commit that `watch` reads: on Cloud, not those Pipelines
/// posted when the repository's pipelines are followed already; `is_tag` names the tags a
/// Cloud status's bare `refname` may name.
async fn commit_statuses(
    source: &Source,
    watch: &Watch,
    tip: &RefTip,
    is_tag: impl Fn(&str) -> bool,
) -> Result<Vec<BuildStatus>, BitbucketError> {
    let repo = &watch.repo;
    match source {
        Source::CloudStatuses(client) => {
            client
                .statuses(repo, tip, watch.pipelines_followed, is_tag)
                .await
        }
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
            commit.settle_until_ms = now_ms.saturating_add(millis(settle));
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
