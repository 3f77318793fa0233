//! Mutes: a channel's cards of one repository, or of every repository, held for a while
//! (`bbzoom mute acme/api 2h` in the channel) and summarised when the mute ends.
//!
//! A muted result is summarised, never dropped: its outbox row stays where the poll put it
//! (durable, in order) and the channel's delivery worker leaves it there while a mute covers
//! its repository. When the mute ends, by `unmute` or at its end time, the worker sends ONE
//! card standing for every row queued for that repository until then (counted by event,
//! grouped by repository and branch, each group linked to its latest build), and removes those
//! rows and the mute in the transaction that records the card as sent. Until then the ended
//! mute stays in the store, so a crash or a refused card loses nothing: the next attempt
//! finds the same rows. Times are the daemon's clock's (Unix ms), the mute's length a span
//! people typed, bounded here.
//!
//! Pure: the store keeps mutes, the delivery worker and the chat act on them.

use crate::domain::{BuildRef, BuildStatus, EventKind, RepoId};
use crate::render::Card;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The shortest mute, as typed: shorter would end before anything could be held.
pub const SHORTEST_MUTE: &str = "1m";
/// The longest mute, as typed: a week (a mute forgotten over a weekend still ends).
pub const LONGEST_MUTE: &str = "168h";

/// Group lines in a summary by repository and branch up to this many; beyond, by repository
/// alone, so the one card holds every group.
const MOST_BRANCH_GROUPS: usize = 12;

/// What a mute covers in its channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MuteScope {
    /// Every repository (`mute all`).
    All,
    /// One repository.
    Repo(RepoId),
}

impl MuteScope {
    /// Whether a build of `repo` is covered.
    pub fn covers(&self, repo: &RepoId) -> bool {
        match self {
            MuteScope::All => true,
            MuteScope::Repo(muted) => muted == repo,
        }
    }
}

impl fmt::Display for MuteScope {
    /// "every repository", "acme/api".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuteScope::All => f.write_str("every repository"),
            MuteScope::Repo(repo) => write!(f, "{repo}"),
        }
    }
}

/// A mute of a channel: set by `by` at `since_ms`, until `until_ms` (the daemon's clock, Unix
/// ms). Ended (`until_ms` past) but still stored: its summary is still to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    /// The `[zoom.channels]` name.
    pub channel: String,
    pub scope: MuteScope,
    pub since_ms: i64,
    pub until_ms: i64,
    /// Who set it: the Zoom user's email or id, as Zoom gave it (untrusted text).
    pub by: String,
}

impl Mute {
    /// Whether it holds cards at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        self.until_ms > now_ms
    }
}

/// What the delivery worker does with a row of a channel with `mutes`, at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Delivered as usual.
    Deliver,
    /// Left in the outbox: a mute in force covers its repository.
    Held,
    /// Goes into the summary of the ended mutes: one that ended covers it and it was queued
    /// before that mute ended, and no mute in force covers it.
    Summarised,
}

/// The [`Fate`] of a row of `repo` queued at `enqueued_ms`.
pub(crate) fn fate(repo: &RepoId, enqueued_ms: i64, mutes: &[Mute], now_ms: i64) -> Fate {
    if mutes
        .iter()
        .any(|m| m.active(now_ms) && m.scope.covers(repo))
    {
        return Fate::Held;
    }
    let ended = mutes
        .iter()
        .any(|m| !m.active(now_ms) && m.scope.covers(repo) && enqueued_ms <= m.until_ms);
    if ended {
        Fate::Summarised
    } else {
        Fate::Deliver
    }
}

/// A mute's length as typed (`"30m"`, `"2h"`, `"1h30m"`): the configuration's duration
/// syntax, from [`SHORTEST_MUTE`] to [`LONGEST_MUTE`]. The error says what to write.
pub fn length(text: &str) -> Result<Duration, String> {
    let bound = |b: &str| crate::config::parse_duration(b).expect("the bounds are durations");
    let range = format!("from {SHORTEST_MUTE} to {LONGEST_MUTE} (a week)");
    match crate::config::parse_duration(text) {
        None => Err(format!(
            "{} is not a duration; write a number and a unit (m, h), like 30m, 2h or 1h30m, \
             {range}",
            crate::render::clean(text, 30)
        )),
        Some(length) if length < bound(SHORTEST_MUTE) || length > bound(LONGEST_MUTE) => {
            Err(format!(
                "{} is out of range; a mute lasts {range}",
                crate::render::clean(text, 30)
            ))
        }
        Some(length) => Ok(length),
    }
}

/// A word for an event in a count: "failed", "still failing".
fn word(event: EventKind) -> &'static str {
    match event {
        EventKind::Started => "started",
        EventKind::Paused => "paused",
        EventKind::Succeeded => "succeeded",
        EventKind::Fixed => "fixed",
        EventKind::Failed => "failed",
        EventKind::StillFailing => "still failing",
        EventKind::Stopped => "stopped",
    }
}

/// "2 failed, 3 succeeded": `events` counted, the most pressing first.
fn counts(events: &[EventKind]) -> String {
    let order = [
        EventKind::Failed,
        EventKind::StillFailing,
        EventKind::Stopped,
        EventKind::Paused,
        EventKind::Fixed,
        EventKind::Succeeded,
        EventKind::Started,
    ];
    let parts: Vec<String> = order
        .into_iter()
        .filter_map(|kind| {
            let n = events.iter().filter(|&&e| e == kind).count();
            (n > 0).then(|| format!("{n} {}", word(kind)))
        })
        .collect();
    parts.join(", ")
}

/// The one card that stands for `updates` (each row's event and build, in queue order) held
/// while `ended` muted the channel: "🔔 While muted: 5 build updates — 2 failed, 3 succeeded",
/// which mutes ended, and one line per repository and branch (per repository when there are
/// many) with its counts and its latest result, linked to that build. Every update is
/// counted in the head and in its group's line: grouped, never hidden. Its text is build
/// data, which the renderer cleans and defuses like any card's.
pub fn summary_card(updates: &[(EventKind, &BuildStatus)], ended: &[Mute]) -> Card {
    let events: Vec<EventKind> = updates.iter().map(|(e, _)| *e).collect();
    let n = updates.len();
    let head = format!(
        "🔔 While muted: {n} build update{} — {}",
        if n == 1 { "" } else { "s" },
        counts(&events)
    );
    let mut scopes: Vec<String> = Vec::new();
    for mute in ended {
        let scope = mute.scope.to_string();
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let sub_head = format!("Mute of {} ended; these were held back", scopes.join(", "));
    let by_branch = |(_, build): &(EventKind, &BuildStatus)| {
        let target = match &build.git_ref {
            BuildRef::Branch(name) => name.clone(),
            BuildRef::Tag(name) => format!("tag {name}"),
            BuildRef::Commit => "commits".to_owned(),
        };
        format!("{} · {target}", build.key.repo)
    };
    let by_repo = |(_, build): &(EventKind, &BuildStatus)| build.key.repo.to_string();
    let mut groups = group(updates, by_branch);
    if groups.len() > MOST_BRANCH_GROUPS {
        groups = group(updates, by_repo);
    }
    // Groups with a failure first, then by name.
    let failing = |events: &[EventKind]| {
        events
            .iter()
            .any(|e| matches!(e, EventKind::Failed | EventKind::StillFailing))
    };
    groups.sort_by(|a, b| {
        failing(&b.1)
            .cmp(&failing(&a.1))
            .then_with(|| a.0.cmp(&b.0))
    });
    let lines = groups
        .into_iter()
        .map(|(name, events, (last_event, last))| {
            let card = crate::render::card(last, last_event);
            let line = format!(
                "{name}: {} · last {} {}",
                counts(&events),
                card.head.split(" · ").next().unwrap_or_default(),
                card.sub_head
            );
            (line, card.links.first().map(|(_, url)| url.clone()))
        })
        .collect();
    Card {
        head,
        sub_head,
        color: if failing(&events) {
            "#DE350B"
        } else if events
            .iter()
            .any(|e| matches!(e, EventKind::Succeeded | EventKind::Fixed))
        {
            "#36B37E"
        } else {
            "#6B778C"
        },
        lines,
        ..Card::default()
    }
}

/// `updates` grouped by `key`, in order of first appearance: each group's events and its
/// latest update.
fn group<'a>(
    updates: &[(EventKind, &'a BuildStatus)],
    key: impl Fn(&(EventKind, &'a BuildStatus)) -> String,
) -> Vec<(String, Vec<EventKind>, (EventKind, &'a BuildStatus))> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, (Vec<EventKind>, (EventKind, &'a BuildStatus))> =
        BTreeMap::new();
    for update in updates {
        let name = key(update);
        let entry = groups
            .entry(name.clone())
            .or_insert_with(|| (Vec::new(), *update));
        entry.0.push(update.0);
        entry.1 = *update;
        if !order.contains(&name) {
            order.push(name);
        }
    }
    order
        .into_iter()
        .filter_map(|name| {
            let (events, last) = groups.remove(&name)?;
            Some((name, events, last))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildKey, BuildState, Outcome};

    fn mute(scope: MuteScope, until_ms: i64) -> Mute {
        Mute {
            channel: "ci".into(),
            scope,
            since_ms: 0,
            until_ms,
            by: "jane@example.com".into(),
        }
    }

    fn build(repo: &str, branch: &str, number: u64, outcome: Outcome) -> BuildStatus {
        let (owner, slug) = repo.split_once('/').unwrap();
        BuildStatus {
            key: BuildKey {
                repo: RepoId::new(owner, slug),
                id: format!("{{{repo}-{number}}}"),
            },
            job: "pipeline".into(),
            name: "Pipeline".into(),
            number: Some(number),
            revision: 0,
            git_ref: BuildRef::Branch(branch.into()),
            commit: None,
            commit_message: None,
            author: None,
            authors: Vec::new(),
            state: BuildState::Completed(outcome),
            duration_secs: Some(60),
            created_ms: 0,
            url: format!("https://bitbucket.org/{repo}/pipelines/results/{number}"),
            commit_url: None,
            ref_url: None,
            scheduled: false,
        }
    }

    #[test]
    fn a_row_is_held_while_a_mute_covers_it_then_summarised_once_all_ended() {
        let api = RepoId::new("acme", "api");
        let web = RepoId::new("acme", "web");
        let mutes = [
            mute(MuteScope::Repo(api.clone()), 2_000),
            mute(MuteScope::All, 1_000),
        ];
        // Both in force: everything is held.
        assert_eq!(fate(&web, 500, &mutes, 900), Fate::Held);
        assert_eq!(fate(&api, 500, &mutes, 900), Fate::Held);
        // `all` ended: what it held is summarised; what came after goes out as usual; api is
        // still muted by its own.
        assert_eq!(fate(&web, 500, &mutes, 1_500), Fate::Summarised);
        assert_eq!(fate(&web, 1_000, &mutes, 1_500), Fate::Summarised);
        assert_eq!(fate(&web, 1_001, &mutes, 1_500), Fate::Deliver);
        assert_eq!(fate(&api, 1_200, &mutes, 1_500), Fate::Held);
        // Both ended.
        assert_eq!(fate(&api, 1_200, &mutes, 2_000), Fate::Summarised);
        assert_eq!(fate(&api, 2_001, &mutes, 2_500), Fate::Deliver);
        assert_eq!(fate(&web, 10, &[], 2_500), Fate::Deliver);
    }

    #[test]
    fn a_mute_lasts_from_a_minute_to_a_week() {
        assert_eq!(length("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(length("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(length("168h"), Ok(Duration::from_secs(168 * 3600)));
        for (text, error) in [
            ("30s", "out of range"),
            ("169h", "out of range"),
            ("2d", "not a duration"),
            ("soon", "not a duration"),
            ("", "not a duration"),
        ] {
            let err = length(text).unwrap_err();
            assert!(err.contains(error), "{text:?}: {err}");
            assert!(err.contains("1m to 168h"), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_summary_counts_every_update_in_one_card_grouped_by_branch() {
        let builds = [
            (
                EventKind::Failed,
                build("acme/api", "main", 41, Outcome::Failed),
            ),
            (
                EventKind::Succeeded,
                build("acme/web", "main", 7, Outcome::Successful),
            ),
            (
                EventKind::StillFailing,
                build("acme/api", "main", 42, Outcome::Failed),
            ),
            (
                EventKind::Succeeded,
                build("acme/api", "feature/x", 43, Outcome::Successful),
            ),
        ];
        let updates: Vec<(EventKind, &BuildStatus)> = builds.iter().map(|(e, b)| (*e, b)).collect();
        let card = summary_card(
            &updates,
            &[mute(MuteScope::Repo(RepoId::new("acme", "api")), 0)],
        );
        assert_eq!(
            card.head,
            "🔔 While muted: 4 build updates — 1 failed, 1 still failing, 2 succeeded"
        );
        assert_eq!(
            card.sub_head,
            "Mute of acme/api ended; these were held back"
        );
        assert_eq!(card.color, "#DE350B");
        let lines: Vec<&str> = card.lines.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "acme/api · main: 1 failed, 1 still failing · last ❌ STILL FAILING Pipeline #42",
                "acme/api · feature/x: 1 succeeded · last ✅ SUCCEEDED Pipeline #43",
                "acme/web · main: 1 succeeded · last ✅ SUCCEEDED Pipeline #7",
            ]
        );
        assert_eq!(
            card.lines[0].1.as_deref(),
            Some("https://bitbucket.org/acme/api/pipelines/results/42")
        );
    }

    #[test]
    fn many_branches_are_grouped_by_repository_and_nothing_is_left_out() {
        let builds: Vec<(EventKind, BuildStatus)> = (0..30)
            .map(|n| {
                let repo = if n % 2 == 0 { "acme/api" } else { "acme/web" };
                (
                    EventKind::Failed,
                    build(repo, &format!("feature/{n}"), n, Outcome::Failed),
                )
            })
            .collect();
        let updates: Vec<(EventKind, &BuildStatus)> = builds.iter().map(|(e, b)| (*e, b)).collect();
        let card = summary_card(&updates, &[mute(MuteScope::All, 0)]);
        assert!(
            card.head.contains("30 build updates — 30 failed"),
            "{}",
            card.head
        );
        assert_eq!(
            card.sub_head,
            "Mute of every repository ended; these were held back"
        );
        let lines: Vec<&str> = card.lines.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "acme/api: 15 failed · last ❌ FAILED Pipeline #28",
                "acme/web: 15 failed · last ❌ FAILED Pipeline #29",
            ]
        );
    }
}
