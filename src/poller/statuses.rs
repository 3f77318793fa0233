//! The statuses sources (Cloud commit statuses, Data Center build statuses): there is no
//! repository-wide list of statuses, so read the tips of the branches (and tags, when a
//! subscription takes tag builds) some subscription follows, then the statuses of every commit
//! still followed: a new tip, one with a status in progress, or one whose statuses changed less
//! than the settle time ago, because external CI posts late. Past that, a commit is still read
//! [`LATE_LOOKS`] more times, once a settle time at most and without keeping the repository
//! hot, for a status posted later still (a slow scanner's): found at the repository's next
//! poll rather than never. Looks, not a time: a repository swept every few hours gets them
//! too. When a Cloud branch
//! moved by more than one commit between two looks, the commits in between are listed (one
//! request) and followed too: otherwise a commit pushed over before its first look, and its
//! statuses, would never be seen. A status Pipelines posts for its own run, where every
//! channel hears the run as a pipeline, is dropped as read: it would have the commit followed
//! a second time for as long as the run lasts, and settle again after it.
//!
//! A tag that appears is followed like a branch that moves. The first time tags are listed
//! (a first poll, or the first since a subscription took tags) they are recorded, and only
//! those whose commit is at most a settle time older than watching are followed: a
//! repository's old release tags would otherwise cost a request each, every poll for the
//! settle time, and their old results would read as news. The settle time's grace is for a tag
//! pushed as watching began (its commit made a little before, and Git's dates have whole
//! seconds): external CI may still post on it, and a status posted after watching began is
//! news. On a first poll every branch tip is followed (a build may be running there).

use super::{Fetched, PollError, Source};
use crate::bitbucket::{BitbucketError, CommitStatuses, RefTips};
use crate::config::Watch;
use crate::domain::{BuildRef, RefTip, RepoId};
use crate::store::{Followed, PollUpdate, RepoCursor};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How many times a commit's statuses are still looked at after its settle time (two hours'
/// worth at the default `settle` for a repository polled often).
const LATE_LOOKS: u32 = 12;

/// Reads the tips and the statuses of the followed commits; `baseline_since` on a first poll:
/// when watching began.
pub(super) async fn fetch(
    source: &Source,
    watch: &Watch,
    cursor: &RepoCursor,
    baseline_since: Option<i64>,
    now_ms: i64,
    settle: Duration,
) -> Result<Fetched, PollError> {
    let repo = &watch.repo;
    let tags = watch.follows_tags();
    let known = |tip: &RefTip| recorded(cursor, tip) == Some(&tip.commit);
    let RefTips { tips, mut requests } = ref_tips(source, repo, tags, known).await?;
    // Every name listed, to place a status's bare ref name (followed or not).
    let names: BTreeMap<String, BuildRef> = tips
        .iter()
        .chain(cursor.followed.iter().map(|f| &f.tip))
        .filter_map(|t| Some((t.git_ref.name()?.to_owned(), t.git_ref.clone())))
        .collect();
    let mut next = RepoCursor {
        branch_tips: cursor.branch_tips.clone(),
        tag_tips: cursor.tag_tips.clone(),
        tags_listed: tags,
        followed: cursor.followed.clone(),
        ..RepoCursor::default()
    };
    let first_tag_listing = tags && !cursor.tags_listed;
    // On a first listing, a tag whose commit is older than this is history (see above).
    let tags_before = baseline_since.map(|since| since.saturating_sub(millis(settle)));
    for tip in tips.into_iter().filter(|t| watch.follows(&t.git_ref)) {
        if recorded(&next, &tip) == Some(&tip.commit) {
            continue;
        }
        let (tips, name) = match &tip.git_ref {
            BuildRef::Tag(name) => (&mut next.tag_tips, name),
            BuildRef::Branch(name) => (&mut next.branch_tips, name),
            BuildRef::Commit => continue,
        };
        let before = tips.insert(name.clone(), tip.commit.clone());
        let old_tag = first_tag_listing
            && matches!(tip.git_ref, BuildRef::Tag(_))
            && tags_before
                .zip(tip.committed_ms)
                .is_none_or(|(before, committed)| committed < before);
        // A branch that moved from a commit it was seen at: the commits pushed in between
        // were never a tip we saw, and their statuses would be lost (two quick pushes).
        let mut found = Vec::new();
        if let (Source::CloudStatuses(client), BuildRef::Branch(name), Some(before)) =
            (source, &tip.git_ref, before)
        {
            requests += 1;
            match client.commits_since(repo, name, &before).await {
                Ok(between) => found.extend(between.into_iter().filter(|c| c.commit != tip.commit)),
                // The commit it was at is gone (a force push): nothing in between to find.
                Err(BitbucketError::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if !old_tag {
            found.push(tip);
        }
        for tip in found {
            if !next.followed.iter().any(|f| f.tip.same(&tip)) {
                next.followed.push(Followed {
                    tip,
                    settle_until_ms: now_ms.saturating_add(millis(settle)),
                    late_looks: LATE_LOOKS,
                    read_ms: 0,
                });
            }
        }
    }
    let mut observed = CommitStatuses::default();
    let placed = |name: &str| names.get(name).cloned();
    // A commit with a status in progress is read every poll, settled or not.
    let running: BTreeSet<&str> = cursor.active.iter().map(|id| commit_of(id)).collect();
    for commit in &mut next.followed {
        let in_progress = running.contains(commit.tip.commit.as_str());
        if !in_progress && !due(commit, now_ms, settle) {
            continue;
        }
        if !in_progress && now_ms >= commit.settle_until_ms {
            commit.late_looks = commit.late_looks.saturating_sub(1);
        }
        let statuses = commit_statuses(source, repo, &commit.tip, placed).await?;
        observed.builds.extend(statuses.builds);
        observed.by_pipelines.extend(statuses.by_pipelines);
        commit.read_ms = now_ms;
        requests += 1;
    }
    // A status Pipelines posted for its own run, where every channel hears the run as a
    // pipeline, is nobody's news here: left out, it neither keeps its commit read every poll
    // while the run lasts nor settles it again when the run ends, which would follow each run
    // a second time (the repository's pipelines watch follows it already).
    let heard = |b: &crate::domain::BuildStatus| {
        !observed.by_pipelines.contains(&b.key) || watch.hears_pipeline_statuses(&b.git_ref)
    };
    observed.builds.retain(heard);
    Ok(Fetched {
        builds: observed.builds,
        by_pipelines: observed.by_pipelines,
        cursor: next,
        requests,
    })
}

/// Whether a quiet followed commit's statuses are read now: every poll while it settles, then
/// once a settle time at most while it has late looks left.
fn due(commit: &Followed, now_ms: i64, settle: Duration) -> bool {
    now_ms < commit.settle_until_ms
        || (commit.late_looks > 0 && now_ms.saturating_sub(commit.read_ms) >= millis(settle))
}

/// Whether a followed commit still keeps its repository hot: it settles, or something on it
/// runs (late looks do not).
pub(super) fn settling(commit: &Followed, now_ms: i64) -> bool {
    commit.settle_until_ms > now_ms
}

/// The commit the cursor last saw at `tip`'s branch or tag.
fn recorded<'a>(cursor: &'a RepoCursor, tip: &RefTip) -> Option<&'a String> {
    let tips: &BTreeMap<String, String> = match &tip.git_ref {
        BuildRef::Tag(_) => &cursor.tag_tips,
        _ => &cursor.branch_tips,
    };
    tips.get(tip.git_ref.name()?)
}

/// The newest `limit` statuses on the most recently pushed branch and tag tips (the first
/// page of them), reading at most `limit` tips: on every branch and tag, since a preview shows
/// what the subscriptions filter out too.
pub(super) async fn recent(
    source: &Source,
    repo: &RepoId,
    limit: usize,
) -> Result<CommitStatuses, BitbucketError> {
    // "Every tip is known" stops the tips at their first page.
    let tips = ref_tips(source, repo, true, |_| true).await?.tips;
    let placed = |name: &str| {
        tips.iter()
            .find(|t| t.git_ref.name() == Some(name))
            .map(|t| t.git_ref.clone())
    };
    let mut recent = CommitStatuses::default();
    for tip in tips.iter().take(limit) {
        let statuses = commit_statuses(source, repo, tip, placed).await?;
        recent.builds.extend(statuses.builds);
        recent.by_pipelines.extend(statuses.by_pipelines);
        if recent.builds.len() >= limit {
            break;
        }
    }
    recent
        .builds
        .sort_by_key(|b| std::cmp::Reverse((b.created_ms, b.revision)));
    recent.builds.truncate(limit);
    Ok(recent)
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

/// Every status posted on `tip`'s commit, through whichever client `source` holds; `placed`
/// places a bare ref name among the refs listed.
async fn commit_statuses(
    source: &Source,
    repo: &RepoId,
    tip: &RefTip,
    placed: impl Fn(&str) -> Option<BuildRef>,
) -> Result<CommitStatuses, BitbucketError> {
    match source {
        Source::CloudStatuses(client) => client.statuses(repo, tip, placed).await,
        Source::DataCenterStatuses(client) => client.statuses(repo, tip, placed).await,
        Source::Pipelines(_) => unreachable!("pipelines are not a statuses source"),
    }
}

/// After classification: a commit whose statuses changed settles again from now; one that is
/// quiet past its settle time and its late looks and has nothing in progress is no longer
/// followed.
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
            commit.late_looks = LATE_LOOKS;
        }
    }
    update.cursor.followed.retain(|c| {
        c.settle_until_ms > now_ms || c.late_looks > 0 || running.contains(&c.tip.commit)
    });
}

/// Status build ids are `{commit}/{key}`.
fn commit_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(commit, _)| commit)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}
