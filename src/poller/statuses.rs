//! The statuses sources (Cloud commit statuses, Data Center build statuses): there is no
//! repository-wide list of statuses, so read the tips of the branches (and tags, when a
//! subscription takes tag builds) some subscription follows, then the statuses of every commit
//! still followed: a new tip, one with a status in progress, or one whose statuses changed less
//! than the settle time ago, because external CI posts late. Past that, a commit is still read
//! [`LATE_LOOKS`] more times, once a settle time at most and without keeping the repository
//! hot, for a status posted later still (a slow scanner's): found at the repository's next
//! poll rather than never. Looks, not a time: a repository swept every few hours gets them
//! too. Where an outside CI posted later than the settle time before, the wait is learnt per
//! status key, and a commit still awaiting such a key has its next look timed (a settle time
//! after its last read, until a settle time past the key's longest wait) for the scheduler to
//! poll then. When a Cloud branch
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

/// How many outside keys a repository's record keeps with their longest time to post.
const LATE_KEYS_KEPT: usize = 16;

/// How much of a key's longest time to post (see [`arrived`]) is forgotten with each commit
/// it comes on, or is waited for in vain.
const LAG_FORGETTING: f64 = 0.2;

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
        late_keys: cursor.late_keys.clone(),
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
                    since_ms: now_ms,
                    keys: BTreeSet::new(),
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
        let outside = statuses
            .builds
            .iter()
            .filter(|b| !statuses.by_pipelines.contains(&b.key));
        for status in outside {
            arrived(&mut next.late_keys, commit, &status.job, status.created_ms);
        }
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

/// Learns from a status of `key` read on `commit`: the first one of its key there tells how
/// long that outside CI took to post, from the commit's being followed to the status's
/// creation. A key's longest time shrinks by [`LAG_FORGETTING`] with each commit it comes on
/// and jumps to any longer one: a slow day is waited for, one slow scan not for ever.
fn arrived(
    late_keys: &mut BTreeMap<String, i64>,
    commit: &mut Followed,
    key: &str,
    created_ms: i64,
) {
    if commit.since_ms <= 0 || !commit.keys.insert(key.to_owned()) {
        return;
    }
    let took = created_ms.saturating_sub(commit.since_ms).max(0);
    let longest = late_keys.entry(key.to_owned()).or_insert(took);
    *longest = took.max(forgetting(*longest));
    // A CI naming its status anew on every run would grow the record without end: the
    // quickest keys, which nothing waits for, go first.
    while late_keys.len() > LATE_KEYS_KEPT {
        let Some(quickest) = late_keys
            .iter()
            .min_by_key(|(_, longest)| **longest)
            .map(|(key, _)| key.clone())
        else {
            break;
        };
        late_keys.remove(&quickest);
    }
}

/// A key's longest time, a little forgotten.
fn forgetting(longest_ms: i64) -> i64 {
    (longest_ms as f64 * (1.0 - LAG_FORGETTING)) as i64
}

/// The keys that came later than the settle time on earlier commits and have not come on
/// `commit` yet, while it is still worth waiting for them: until a settle time past the
/// longest each took, each with whether that wait still runs. None for a commit followed
/// before this was recorded.
fn awaited<'a>(
    late_keys: &'a BTreeMap<String, i64>,
    commit: &'a Followed,
    now_ms: i64,
    settle: Duration,
) -> impl Iterator<Item = (&'a String, bool)> + 'a {
    let settle = millis(settle);
    late_keys
        .iter()
        .filter(move |(key, longest)| {
            commit.since_ms > 0 && **longest > settle && !commit.keys.contains(*key)
        })
        .map(move |(key, longest)| {
            let until = commit
                .since_ms
                .saturating_add(*longest)
                .saturating_add(settle);
            (key, now_ms < until)
        })
}

/// When the next look at a followed commit is due, for the scheduler to poll then at the
/// latest (rather than at the repository's turn, or at a hot interval a short budget
/// stretched past the settle time): only for a commit that awaits a key an outside CI posted
/// later than the settle time before (a slow scanner's). Without that history,
/// late looks wait for the repository's turn: most repositories' CI posts within the settle
/// time, and looking again and again for a status that never comes late would cost every
/// push a dozen requests.
pub(super) fn next_late_look(cursor: &RepoCursor, now_ms: i64, settle: Duration) -> Option<i64> {
    cursor
        .followed
        .iter()
        .filter(|c| c.late_looks > 0)
        .filter(|c| awaited(&cursor.late_keys, c, now_ms, settle).any(|(_, wait)| wait))
        .map(|c| c.read_ms.saturating_add(millis(settle)))
        .min()
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
    let late_keys = &mut update.cursor.late_keys;
    for commit in &mut update.cursor.followed {
        if changed.contains(&commit.tip.commit) {
            commit.settle_until_ms = now_ms.saturating_add(millis(settle));
            commit.late_looks = LATE_LOOKS;
        }
        // A key waited for in vain (the scanner skipped this push, or it got quicker): not
        // waited for again on this commit, and its longest time is a little forgotten.
        let missed: Vec<String> = awaited(late_keys, commit, now_ms, settle)
            .filter(|(_, wait)| !wait)
            .map(|(key, _)| key.clone())
            .collect();
        for key in missed {
            if let Some(longest) = late_keys.get_mut(&key) {
                *longest = forgetting(*longest);
            }
            commit.keys.insert(key);
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

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(600);
    /// A moment to count from (Unix milliseconds).
    const T: i64 = 1_700_000_000_000;

    /// `main`'s commit `commit`, followed since `since_ms`, last read at `read_ms`, settled.
    fn followed(commit: &str, since_ms: i64, read_ms: i64) -> Followed {
        Followed {
            tip: RefTip::branch_at("main", commit),
            settle_until_ms: since_ms + millis(SETTLE),
            late_looks: LATE_LOOKS,
            read_ms,
            since_ms,
            keys: BTreeSet::new(),
        }
    }

    #[test]
    fn a_key_s_longest_time_to_post_follows_its_slow_days_and_forgets_them_slowly() {
        let mut late_keys = BTreeMap::new();
        let mut c1 = followed("c1", 100_000, 0);
        arrived(&mut late_keys, &mut c1, "security-scan", 1_300_000);
        assert_eq!(late_keys["security-scan"], 1_200_000);
        // A second status of the key on the same commit (a rerun) teaches nothing.
        arrived(&mut late_keys, &mut c1, "security-scan", 9_000_000);
        assert_eq!(late_keys["security-scan"], 1_200_000);
        // A quicker one: a fifth forgotten. A slower one: taken at once.
        let mut c2 = followed("c2", 2_000_000, 0);
        arrived(&mut late_keys, &mut c2, "security-scan", 2_300_000);
        assert_eq!(late_keys["security-scan"], 960_000);
        let mut c3 = followed("c3", 3_000_000, 0);
        arrived(&mut late_keys, &mut c3, "security-scan", 4_500_000);
        assert_eq!(late_keys["security-scan"], 1_500_000);
        // A status older than the commit's following, or on a commit followed before this
        // was recorded, teaches nothing wrong.
        let mut c4 = followed("c4", 5_000_000, 0);
        arrived(&mut late_keys, &mut c4, "jenkins", 4_000_000);
        assert_eq!(late_keys["jenkins"], 0);
        let mut old = followed("c5", 0, 0);
        arrived(&mut late_keys, &mut old, "lint", 4_000_000);
        assert!(!late_keys.contains_key("lint"));
        // A CI with a new key every run: the record keeps the slowest sixteen.
        for run in 0..40 {
            let mut commit = followed(&format!("r{run}"), 6_000_000, 0);
            arrived(
                &mut late_keys,
                &mut commit,
                &format!("run-{run}"),
                6_000_000 + run,
            );
        }
        assert_eq!(late_keys.len(), LATE_KEYS_KEPT);
        assert_eq!(late_keys["security-scan"], 1_500_000);
        assert!(late_keys.contains_key("run-39") && !late_keys.contains_key("run-0"));
    }

    #[test]
    fn a_commit_is_looked_at_every_settle_time_while_a_key_that_came_late_before_has_not_come() {
        let cursor = |commit: Followed, longest_ms: i64| RepoCursor {
            followed: vec![commit],
            late_keys: [
                ("jenkins".to_owned(), 30_000),
                ("security-scan".to_owned(), longest_ms),
            ]
            .into(),
            ..RepoCursor::default()
        };
        // Followed at T, the scanner took 20 minutes before: looked at a settle time after
        // each read, settling or not, until a settle time past those 20 minutes.
        let commit = followed("c1", T, T + 300_000);
        assert_eq!(
            next_late_look(&cursor(commit.clone(), 1_200_000), T + 300_000, SETTLE),
            Some(T + 900_000)
        );
        assert_eq!(
            next_late_look(&cursor(commit.clone(), 1_200_000), T + 1_700_000, SETTLE),
            Some(T + 900_000)
        );
        assert_eq!(
            next_late_look(&cursor(commit.clone(), 1_200_000), T + 1_800_000, SETTLE),
            None
        );
        // Keys that come within the settle time are waited for by settling alone.
        assert_eq!(
            next_late_look(&cursor(commit.clone(), 500_000), T + 300_000, SETTLE),
            None
        );
        // Once the scanner's status is there, or its late looks are spent: nothing awaited.
        let mut scanned = commit.clone();
        scanned.keys.insert("security-scan".into());
        assert_eq!(
            next_late_look(&cursor(scanned, 1_200_000), T + 300_000, SETTLE),
            None
        );
        let spent = Followed {
            late_looks: 0,
            ..commit
        };
        assert_eq!(
            next_late_look(&cursor(spent, 1_200_000), T + 300_000, SETTLE),
            None
        );
    }

    #[test]
    fn a_key_waited_for_in_vain_is_not_waited_for_again_and_is_a_little_forgotten() {
        let mut update = PollUpdate {
            repo: RepoId::new("acme", "web"),
            source: crate::domain::SourceKind::Statuses,
            cursor: RepoCursor {
                followed: vec![followed("c1", T, T + 1_700_000)],
                late_keys: [("security-scan".to_owned(), 1_200_000)].into(),
                ..RepoCursor::default()
            },
            builds: Vec::new(),
            health: Vec::new(),
            notifications: Vec::new(),
            meetings: Vec::new(),
        };
        // Still within its wait: nothing changes.
        settle(&mut update, T + 1_700_000, SETTLE);
        assert_eq!(update.cursor.late_keys["security-scan"], 1_200_000);
        assert!(update.cursor.followed[0].keys.is_empty());
        // Past it (the scanner skipped this push): given up on for this commit, and its
        // longest time shrinks; the commit keeps its late looks for a status later still.
        settle(&mut update, T + 1_800_000, SETTLE);
        assert_eq!(update.cursor.late_keys["security-scan"], 960_000);
        assert!(update.cursor.followed[0].keys.contains("security-scan"));
        assert_eq!(next_late_look(&update.cursor, T + 1_800_000, SETTLE), None);
        settle(&mut update, T + 1_900_000, SETTLE);
        assert_eq!(update.cursor.late_keys["security-scan"], 960_000);
    }
}
