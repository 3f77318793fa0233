//! The scoreboard: reads the Zoom channels back and checks them against what the scenario
//! implies for a set of subscriptions ([`Watcher`]s): which terminal events never showed,
//! which showed more than once, and how long each took.
//!
//! It is written apart from the daemon on purpose (no configuration, glob, detection or
//! rendering code of bbzoom's): it derives the expected events from the scenario by its own
//! reading of the product's documented rules, so a mistake in the daemon shows up as a miss
//! rather than being mirrored. All it assumes of the cards is what a reader sees: a head
//! `"{emoji} {LABEL} · {repository} · {ref}"` with the build's page as the first link, summary
//! cards headed `"📋 "` with one linked line per card, and the same as plain text for webhook
//! messages.

use super::{SimBuild, SimRepo, SimState, SimTarget, SimTrigger, Simulator, pipeline_status_key};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How a summary card's head begins; no build card's does.
const SUMMARY_PREFIX: &str = "📋 ";

/// A subscription as the scoreboard reads it: plain words from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watcher {
    /// Workspace (Cloud) or project key (Data Center): with `slug`, matched in any case to the
    /// first repository of the scenario so named.
    pub workspace: String,
    /// Repository slug.
    pub slug: String,
    /// Follows the repository's pipelines.
    pub pipelines: bool,
    /// Follows its commit statuses: an outside CI's, and the ones Pipelines posts, but not in
    /// a channel where a watcher of the repository's pipelines that takes the run's ref tells
    /// the run already (each run is told once in each channel, as a pipeline where it can).
    pub statuses: bool,
    /// Patterns a branch build's branch must match: `None` takes every branch, an empty list
    /// none.
    pub branches: Option<Vec<String>>,
    /// Patterns a tag build's tag must match: `None` takes every tag, an empty list none.
    pub tags: Option<Vec<String>>,
    /// Takes builds of a bare commit (custom pipelines).
    pub commits: bool,
    /// Events wanted, by configuration name (`started`, `paused`, `succeeded`, `fixed`,
    /// `failed`, `still_failing`, `stopped`; `all` already expanded). `succeeded` also takes
    /// `fixed`, `failed` also `still_failing`.
    pub events: Vec<String>,
    /// Where its cards go, as the simulator names channels: JIDs (for a webhook, the JID of
    /// the channel it posts into).
    pub channels: Vec<String>,
}

/// An event a card announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimEvent {
    /// A build appeared unfinished, or runs again after ending.
    Started,
    /// A pipeline waits on a manual step.
    Paused,
    /// Ended successful, the lane's last result not a failure.
    Succeeded,
    /// Ended successful after the lane's last result failed.
    Fixed,
    /// Ended failed (FAILED or ERROR), the lane's last result not a failure.
    Failed,
    /// Ended failed after the lane's last result failed too.
    StillFailing,
    /// Ended stopped (STOPPED or EXPIRED): says nothing about the code.
    Stopped,
}

impl SimEvent {
    /// Every event, in the order cards list them.
    pub const ALL: [SimEvent; 7] = [
        SimEvent::Started,
        SimEvent::Paused,
        SimEvent::Succeeded,
        SimEvent::Fixed,
        SimEvent::Failed,
        SimEvent::StillFailing,
        SimEvent::Stopped,
    ];

    /// Whether the event is an ending: what a channel must not miss.
    pub fn is_terminal(self) -> bool {
        !matches!(self, SimEvent::Started | SimEvent::Paused)
    }

    /// The event's name in the configuration (`still_failing`).
    pub fn name(self) -> &'static str {
        match self {
            SimEvent::Started => "started",
            SimEvent::Paused => "paused",
            SimEvent::Succeeded => "succeeded",
            SimEvent::Fixed => "fixed",
            SimEvent::Failed => "failed",
            SimEvent::StillFailing => "still_failing",
            SimEvent::Stopped => "stopped",
        }
    }

    /// The label a card head shows (`STILL FAILING`).
    fn label(self) -> &'static str {
        match self {
            SimEvent::Started => "STARTED",
            SimEvent::Paused => "PAUSED",
            SimEvent::Succeeded => "SUCCEEDED",
            SimEvent::Fixed => "FIXED",
            SimEvent::Failed => "FAILED",
            SimEvent::StillFailing => "STILL FAILING",
            SimEvent::Stopped => "STOPPED",
        }
    }

    /// The event a card head (or a summary line, which starts with one) announces: the label
    /// after the first space, up to `" · "`. The emoji before it is not checked.
    pub fn from_head(head: &str) -> Option<SimEvent> {
        let (_, rest) = head.split_once(' ')?;
        let (label, _) = rest.split_once(" · ")?;
        SimEvent::ALL.into_iter().find(|e| e.label() == label)
    }
}

impl fmt::Display for SimEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the channels show, checked against what the scenario implies.
#[derive(Debug, Clone, Default)]
pub struct Score {
    /// (channel JID, build URL, event) that should have been shown and were not: endings only.
    pub missed: Vec<(String, String, SimEvent)>,
    /// Showings of a (channel, build URL, event) beyond the first.
    pub duplicates: usize,
    /// Every (channel JID, build URL, event) shown: how often, and the simulated second first
    /// shown.
    pub shown: BTreeMap<(String, String, SimEvent), (usize, f64)>,
    /// Each expected event that was shown: how long after it happened, and what started its
    /// build.
    pub latencies: Vec<Latency>,
}

/// How late one event was shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Simulated seconds from the event to its first showing.
    pub seconds: f64,
    /// What started the build (a push, a schedule, someone by hand).
    pub trigger: SimTrigger,
    /// The simulated second the event happened.
    pub at: f64,
    /// The build's link.
    pub url: String,
    /// The event.
    pub event: SimEvent,
}

/// Reads every channel a watcher names and compares it with the events the scenario implies
/// for `watchers`. Each post and each edit of a message is a showing; thread replies are not
/// (they repeat their card's news). An expected event is shown when its channel shows that
/// event with the build's link ([`Simulator::card_link`] at the moment of the event).
pub fn score(sim: &Simulator, watchers: &[Watcher]) -> Score {
    let mut score = Score::default();
    let channels: BTreeSet<&str> = watchers
        .iter()
        .flat_map(|w| w.channels.iter().map(String::as_str))
        .collect();
    for jid in channels {
        for message in sim
            .channel(jid)
            .into_iter()
            .filter(|m| m.reply_to.is_none())
        {
            let showings = std::iter::once((message.posted_at, &message.first_content))
                .chain(message.edits.iter().map(|(at, content)| (*at, content)));
            for (at, content) in showings {
                for (event, url) in showings_in(content) {
                    let entry = score
                        .shown
                        .entry((jid.to_owned(), url, event))
                        .or_insert((0, at));
                    entry.0 += 1;
                    entry.1 = entry.1.min(at);
                }
            }
        }
    }
    score.duplicates = score.shown.values().map(|(n, _)| n - 1).sum();
    for ((channel, url, event), (at, trigger)) in expected(sim, watchers) {
        match score.shown.get(&(channel.clone(), url.clone(), event)) {
            Some(&(_, shown_at)) => score.latencies.push(Latency {
                seconds: (shown_at - at).max(0.0),
                trigger,
                at,
                url,
                event,
            }),
            None if event.is_terminal() => score.missed.push((channel, url, event)),
            None => {}
        }
    }
    score
}

/// Every (channel, build URL, event) the watchers should see, with the simulated second it
/// happened (the first time, if a build repeats an event such as a second pause) and what
/// started the build. A channel named by several watchers that want the same event expects it
/// once.
fn expected(
    sim: &Simulator,
    watchers: &[Watcher],
) -> BTreeMap<(String, String, SimEvent), (f64, SimTrigger)> {
    let repos = &sim.scenario().repos;
    let followed: Vec<Option<usize>> = watchers
        .iter()
        .map(|w| {
            repos.iter().position(|r| {
                r.workspace.eq_ignore_ascii_case(&w.workspace)
                    && r.slug.eq_ignore_ascii_case(&w.slug)
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    for (index, repo) in repos.iter().enumerate() {
        let mine: Vec<&Watcher> = watchers
            .iter()
            .zip(&followed)
            .filter(|(_, followed)| **followed == Some(index))
            .map(|(w, _)| w)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let happened = happenings(repo, index, |at| sim.inner.clock.wire_millis(at))
            .into_iter()
            .filter(|h| !h.build.is_history());
        for happening in happened {
            // A status Pipelines posted for its own run is not told where the run is told as
            // a pipeline: in a channel of a watcher of the repository's pipelines taking its
            // ref, whatever that watcher's events.
            let told_as_pipeline: BTreeSet<&String> = match happening.seen {
                Seen::PipelineStatus => mine
                    .iter()
                    .filter(|w| w.pipelines && w.takes_ref(happening.build))
                    .flat_map(|w| &w.channels)
                    .collect(),
                Seen::Pipeline | Seen::Status => BTreeSet::new(),
            };
            let channels: BTreeSet<&String> = mine
                .iter()
                .filter(|w| w.hears(&happening))
                .flat_map(|w| &w.channels)
                .filter(|c| !told_as_pipeline.contains(c))
                .collect();
            if channels.is_empty() {
                continue;
            }
            let url = match happening.seen {
                Seen::PipelineStatus => {
                    let status = happening.build.pipeline_status(index);
                    sim.card_link(repo, &status, happening.at)
                }
                Seen::Pipeline | Seen::Status => sim.card_link(repo, happening.build, happening.at),
            };
            for channel in channels {
                let (at, _) = expected
                    .entry((channel.clone(), url.clone(), happening.event))
                    .or_insert((happening.at, happening.build.trigger));
                *at = f64::min(*at, happening.at);
            }
        }
    }
    expected
}

impl Watcher {
    /// Whether this watcher is told of `happening`: it follows the source that shows it, the
    /// build's ref passes its filters and it wants the event.
    fn hears(&self, happening: &Happening) -> bool {
        let source = match happening.seen {
            Seen::Pipeline => self.pipelines,
            Seen::Status | Seen::PipelineStatus => self.statuses,
        };
        let wanted_ref = self.takes_ref(happening.build);
        let event = happening.event;
        let wanted_event = self.events.iter().any(|name| {
            name == event.name()
                || (event == SimEvent::Fixed && name == "succeeded")
                || (event == SimEvent::StillFailing && name == "failed")
        });
        source && wanted_ref && wanted_event
    }

    /// Whether `build`'s branch, tag or bare commit passes this watcher's filters.
    fn takes_ref(&self, build: &SimBuild) -> bool {
        let passes = |patterns: &Option<Vec<String>>, name: &str| {
            patterns
                .as_ref()
                .is_none_or(|patterns| patterns.iter().any(|p| glob_matches(p, name)))
        };
        match &build.target {
            SimTarget::Branch => passes(&self.branches, &build.branch),
            SimTarget::Tag(tag) => passes(&self.tags, tag),
            SimTarget::Commit { .. } => self.commits,
        }
    }
}

/// Through which source a build's state is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// As a pipeline (`/pipelines`): pauses show.
    Pipeline,
    /// As an outside CI's commit status: INPROGRESS hides pauses.
    Status,
    /// As the commit status Pipelines posts for a pipeline run.
    PipelineStatus,
}

/// A build's state as a source shows it, reduced to what decides events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Pending, running or halted; for a status, paused too (all INPROGRESS).
    Running,
    /// Paused, as a pipeline shows it.
    Paused,
    /// SUCCESSFUL.
    Succeeded,
    /// FAILED or ERROR.
    Failed,
    /// STOPPED or EXPIRED.
    Stopped,
}

impl Wire {
    fn of(state: SimState, seen: Seen) -> Wire {
        match state {
            SimState::Pending | SimState::Running | SimState::Halted => Wire::Running,
            SimState::Paused if seen == Seen::Pipeline => Wire::Paused,
            SimState::Paused => Wire::Running,
            SimState::Successful => Wire::Succeeded,
            SimState::Failed | SimState::Error => Wire::Failed,
            SimState::Stopped | SimState::Expired => Wire::Stopped,
        }
    }

    fn is_terminal(self) -> bool {
        matches!(self, Wire::Succeeded | Wire::Failed | Wire::Stopped)
    }
}

/// One event the scenario implies, as one source shows it.
#[derive(Debug)]
struct Happening<'a> {
    /// Simulated second it happened.
    at: f64,
    /// The build it happened to (for a status Pipelines posts, the pipeline).
    build: &'a SimBuild,
    /// The source that shows it.
    seen: Seen,
    /// What happened.
    event: SimEvent,
}

/// What a lane is: its ref (whether a tag, and the name) and its job (`None` for the
/// pipeline, else the status key).
type Lane<'a> = (bool, &'a str, Option<String>);

/// Every event `repo` (at position `index` of the scenario) implies, in time order, as each
/// source shows it: pipelines as pipelines and as the statuses they post, other builds as
/// statuses. "Fixed" and "still failing" follow the previous success or failure of the same
/// lane (ref and job); a build of a bare commit has no lane.
///
/// The order is the one the wire can show: by `wire_millis`, the millisecond a simulated
/// second's timestamp carries, and within one millisecond by build number, as a poller seeing
/// two of a lane's builds end "at once" settles them (the older first, so the newer one's
/// result is the lane's). Under a compressed clock a millisecond spans many simulated ones.
fn happenings(
    repo: &SimRepo,
    index: usize,
    wire_millis: impl Fn(f64) -> i64,
) -> Vec<Happening<'_>> {
    let mut changes: Vec<(f64, &SimBuild, Seen, Option<Wire>, Wire)> = Vec::new();
    for build in &repo.builds {
        let seen: &[Seen] = if repo.runs_pipeline(build) {
            &[Seen::Pipeline, Seen::PipelineStatus]
        } else {
            &[Seen::Status]
        };
        for &seen in seen {
            let mut before = None;
            for (at, wire) in wire_states(build, seen) {
                changes.push((at, build, seen, before, wire));
                before = Some(wire);
            }
        }
    }
    changes.sort_by(|a, b| {
        (wire_millis(a.0), a.1.number)
            .cmp(&(wire_millis(b.0), b.1.number))
            .then(a.0.total_cmp(&b.0))
    });
    let mut failing: BTreeMap<Lane, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for (at, build, seen, before, wire) in changes {
        let lane: Option<Lane> = build.ref_name().map(|name| {
            let job = match seen {
                Seen::Pipeline => None,
                Seen::Status => Some(build.key.clone()),
                Seen::PipelineStatus => Some(pipeline_status_key(index, build.number)),
            };
            (matches!(build.target, SimTarget::Tag(_)), name, job)
        });
        let mut settle = |failed: bool| {
            let was_failing = lane
                .clone()
                .and_then(|lane| failing.insert(lane, failed))
                .unwrap_or(false);
            match (failed, was_failing) {
                (false, false) => SimEvent::Succeeded,
                (false, true) => SimEvent::Fixed,
                (true, false) => SimEvent::Failed,
                (true, true) => SimEvent::StillFailing,
            }
        };
        let event = match wire {
            Wire::Running => before
                .is_none_or(Wire::is_terminal)
                .then_some(SimEvent::Started),
            Wire::Paused => Some(SimEvent::Paused),
            Wire::Succeeded => Some(settle(false)),
            Wire::Failed => Some(settle(true)),
            Wire::Stopped => Some(SimEvent::Stopped),
        };
        out.extend(event.map(|event| Happening {
            at,
            build,
            seen,
            event,
        }));
    }
    out
}

/// The states `build` shows through `seen` over its life, each with the simulated second it
/// began; a state that looks like the one before it on the wire is not a change.
fn wire_states(build: &SimBuild, seen: Seen) -> Vec<(f64, Wire)> {
    let mut moments: Vec<f64> = std::iter::once(build.created_at)
        .chain(build.timeline.iter().map(|&(at, _)| at))
        .filter(|&at| at >= build.created_at)
        .collect();
    moments.sort_by(f64::total_cmp);
    moments.dedup();
    let mut states: Vec<(f64, Wire)> = Vec::new();
    for at in moments {
        let Some(state) = build.state_at(at) else {
            continue;
        };
        let wire = Wire::of(state, seen);
        if states.last().is_none_or(|&(_, last)| last != wire) {
            states.push((at, wire));
        }
    }
    states
}

/// The (event, build URL) of each showing in a message's `content`: one for a build card,
/// one per linked line of a summary card, none for anything else. Chatbot and `full` webhook
/// content is a card; `message` webhook content is `{"text": ...}`.
fn showings_in(content: &Value) -> Vec<(SimEvent, String)> {
    if content.get("head").is_none() {
        return content
            .get("text")
            .and_then(Value::as_str)
            .map(text_showings)
            .unwrap_or_default();
    }
    let head = content["head"]["text"].as_str().unwrap_or_default();
    if head.starts_with(SUMMARY_PREFIX) {
        let sections = content["body"].as_array().into_iter().flatten();
        return sections
            .filter_map(|section| section["sections"].as_array())
            .flatten()
            .filter(|item| item["type"] == "message")
            .filter_map(|item| {
                let event = SimEvent::from_head(item["text"].as_str()?)?;
                Some((event, item["link"].as_str()?.to_owned()))
            })
            .collect();
    }
    SimEvent::from_head(head)
        .zip(first_link(content))
        .into_iter()
        .collect()
}

/// The showings of a plain-text card: the head is the first line; a build card's URL is the
/// first indented line's text after its first `": "` when that is a URL (earlier lines are
/// fields, whose values may mention URLs further in); each indented line of a summary,
/// `"  {head} · {sub}: {url}"`, is one showing.
fn text_showings(text: &str) -> Vec<(SimEvent, String)> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let mut indented = lines.filter_map(|line| line.strip_prefix("  "));
    if head.starts_with(SUMMARY_PREFIX) {
        return indented
            .filter_map(|line| {
                let (item, url) = line.rsplit_once(": ")?;
                let event = SimEvent::from_head(item)?;
                url.starts_with("http").then(|| (event, url.to_owned()))
            })
            .collect();
    }
    let url = indented.find_map(|line| {
        let (_, value) = line.split_once(": ")?;
        value.starts_with("http").then(|| value.to_owned())
    });
    SimEvent::from_head(head).zip(url).into_iter().collect()
}

/// The first `link` in `content`, depth first: a card's first link is its build's page.
fn first_link(content: &Value) -> Option<String> {
    match content {
        Value::Object(map) => map
            .get("link")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.values().find_map(first_link)),
        Value::Array(items) => items.iter().find_map(first_link),
        _ => None,
    }
}

/// Whether all of `name` matches glob `pattern`: `*` is any run of characters but `/`, `**`
/// (or more stars) any run at all, `?` one character but `/`, anything else itself.
fn glob_matches(pattern: &str, name: &str) -> bool {
    /// One element of a pattern.
    #[derive(Clone, Copy)]
    enum Token {
        Literal(char),
        One,
        Star,
        Any,
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                while chars.next_if_eq(&'*').is_some() {}
                Token::Any
            }
            '*' => Token::Star,
            '?' => Token::One,
            c => Token::Literal(c),
        });
    }
    let text: Vec<char> = name.chars().collect();
    // `reach[j]`: the tokens so far can match exactly `text[..j]`.
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for token in tokens {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            // The character this token would take to reach `j`, if any.
            let took = j.checked_sub(1).map(|i| (i, text[i]));
            next[j] = match token {
                Token::Literal(c) => took.is_some_and(|(i, t)| reach[i] && t == c),
                Token::One => took.is_some_and(|(i, t)| reach[i] && t != '/'),
                // Take nothing, or one more character on top of what the run took so far.
                Token::Star => reach[j] || took.is_some_and(|(i, t)| next[i] && t != '/'),
                Token::Any => reach[j] || took.is_some_and(|(i, _)| next[i]),
            };
        }
        reach = next;
    }
    reach[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::start;
    use crate::{MessageVia, Scenario, SimMessage, SimOptions, SimSource};
    use SimState::{Error, Expired, Failed, Paused, Running, Stopped, Successful};
    use serde_json::json;

    #[test]
    fn globs() {
        // (pattern, name, matches)
        let table = [
            ("main", "main", true),
            ("main", "main2", false),
            ("main", "feature/main", false),
            ("release/*", "release/1.2", true),
            ("release/*", "release/", true),
            ("release/*", "release/1/2", false),
            ("release/*", "release", false),
            ("**", "", true),
            ("**", "feature/a/b", true),
            ("feature/**", "feature/a/b", true),
            ("feature/**", "feature", false),
            ("**/hotfix", "a/b/hotfix", true),
            ("**/hotfix", "hotfix", false),
            ("*", "a/b", false),
            ("*-rc", "1.2-rc", true),
            ("v?.?", "v1.2", true),
            ("v?.?", "v1.23", false),
            ("v?", "v/", false),
            ("v*.*.*", "v1.10.0", true),
            ("v*.*.*", "v1.10", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "a/b/c", false),
            ("a**c", "a/b/c", true),
            ("***", "x/y", true),
            ("é*", "été", true),
            ("release/1.2", "release/1x2", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, name, matches) in table {
            assert_eq!(
                glob_matches(pattern, name),
                matches,
                "{pattern:?} on {name:?}"
            );
        }
    }

    #[test]
    fn events_read_back_from_heads() {
        for event in SimEvent::ALL {
            let head = format!("🔵 {} · acme/api · main", event.label());
            assert_eq!(SimEvent::from_head(&head), Some(event));
            assert_eq!(event.to_string(), event.name());
        }
        assert_eq!(
            SimEvent::from_head("❌ STILL FAILING · acme/api · v1.0 · Pipeline #3"),
            Some(SimEvent::StillFailing)
        );
        assert_eq!(
            SimEvent::from_head("⏸️ PAUSED · a/b · c"),
            Some(SimEvent::Paused)
        );
        assert_eq!(SimEvent::from_head("❌ FAILEDX · a/b · c"), None);
        assert_eq!(SimEvent::from_head("📋 3 build updates while away"), None);
        let terminal: Vec<SimEvent> = SimEvent::ALL
            .into_iter()
            .filter(|e| e.is_terminal())
            .collect();
        assert_eq!(terminal.len(), 5);
        assert!(!terminal.contains(&SimEvent::Paused));
    }

    /// A chatbot card as bbzoom renders one: fields first, then the build's link.
    fn card(head: &str, url: &str) -> Value {
        json!({
            "head": {"text": head, "sub_head": {"text": "Pipeline #1"}},
            "body": [{"type": "section", "sidebar_color": "#DE350B", "sections": [
                {"type": "fields", "items": [{"key": "Commit", "value": "abc see: http://x", "short": true}]},
                {"type": "message", "text": "Open Pipeline #1", "link": url},
                {"type": "message", "text": "Commit abc", "link": "http://commit"},
            ]}],
        })
    }

    #[test]
    fn showings_of_every_kind_of_content() {
        let failed = (SimEvent::Failed, "http://b/1".to_owned());
        assert_eq!(
            showings_in(&card("❌ FAILED · acme/api · main", "http://b/1")),
            std::slice::from_ref(&failed)
        );
        let summary = json!({
            "head": {"text": "📋 3 build updates while Zoom could not be reached"},
            "body": [{"type": "section", "sections": [
                {"type": "message", "text": "❌ FAILED · acme/api · main · Pipeline #1", "link": "http://b/1"},
                {"type": "message", "text": "✅ FIXED · acme/api · main · Pipeline #2", "link": "http://b/2"},
                {"type": "message", "text": "… and 1 more"},
            ]}],
        });
        assert_eq!(
            showings_in(&summary),
            [failed.clone(), (SimEvent::Fixed, "http://b/2".to_owned())]
        );
        let message = json!({"text": "❌ FAILED · acme/api · main\nPipeline #1\n  Result: FAILED\n  Commit: abc Docs: http://docs\n  Open Pipeline #1: http://b/1\n  Commit abc: http://commit"});
        assert_eq!(showings_in(&message), std::slice::from_ref(&failed));
        let message_summary = json!({"text": "📋 2 build updates now\n1 failed · 1 stopped\n  ❌ FAILED · acme/api · main · Pipeline #1: http://b/1\n  ⏹️ STOPPED · acme/api · main · deploy: prod #4: http://b/4\n  … and 1 more"});
        assert_eq!(
            showings_in(&message_summary),
            [failed, (SimEvent::Stopped, "http://b/4".to_owned())]
        );
        assert!(showings_in(&json!({"text": "hello"})).is_empty());
        assert!(showings_in(&json!({"Result": "FAILED"})).is_empty());
        assert!(showings_in(&json!({"head": {"text": "✅ SUCCEEDED · a/b · c"}})).is_empty());
    }

    fn events(repo: &SimRepo) -> Vec<(u64, Seen, SimEvent)> {
        happenings(repo, 0, |at| (at * 1000.0) as i64)
            .into_iter()
            .map(|h| (h.build.number, h.seen, h.event))
            .collect()
    }

    fn pipeline(number: u64, created_at: f64, timeline: &[(f64, SimState)]) -> SimBuild {
        SimBuild::pipeline(number, "main", created_at, timeline)
    }

    fn repo(source: SimSource, builds: Vec<SimBuild>) -> SimRepo {
        SimRepo::new("acme", "api", source, builds)
    }

    #[test]
    fn lanes_decide_fixed_and_still_failing() {
        use SimEvent::{
            Failed as F, Fixed as X, Started as S, StillFailing as SF, Succeeded as OK,
        };
        let repo = repo(
            SimSource::CloudStatuses,
            vec![
                SimBuild::status(
                    "ci",
                    "main",
                    "a",
                    0.0,
                    0.0,
                    [(1.0, Running), (10.0, Failed)],
                ),
                // Another job on the same branch: its own lane.
                SimBuild::status("lint", "main", "a", 0.0, 2.0, [(3.0, Successful)]).with_number(2),
                // A tag: its own lane, though the commit came from main.
                SimBuild::status("ci", "main", "b", 11.0, 11.0, [(20.0, Error)])
                    .with_number(3)
                    .on_tag("v1.0"),
                SimBuild::status("ci", "main", "c", 21.0, 21.0, [(30.0, Failed)]).with_number(4),
                // A stopped build leaves the lane failing.
                SimBuild::status("ci", "main", "d", 31.0, 31.0, [(35.0, Stopped)]).with_number(5),
                // Rerun after a failure: starts again, then is the fix.
                SimBuild::status(
                    "ci",
                    "main",
                    "e",
                    40.0,
                    40.0,
                    [(41.0, Failed), (50.0, Running), (60.0, Successful)],
                )
                .with_number(6),
            ],
        );
        let seen = Seen::Status;
        assert_eq!(
            events(&repo),
            [
                (1, seen, S),
                (2, seen, S),
                (2, seen, OK),
                (1, seen, F),
                (3, seen, S),
                (3, seen, F),
                (4, seen, S),
                (4, seen, SF),
                (5, seen, S),
                (5, seen, SimEvent::Stopped),
                (6, seen, S),
                (6, seen, SF),
                (6, seen, S),
                (6, seen, X),
            ]
        );
    }

    #[test]
    fn a_lane_s_builds_ending_in_one_wire_millisecond_settle_oldest_first() {
        use SimEvent::{Failed as F, Fixed as X, Succeeded as OK};
        // #2 fails 0.3 ms before #1 succeeds: the wire shows both at 10.000 s.
        let tied = repo(
            SimSource::CloudPipelines,
            vec![
                pipeline(1, 0.0, &[(10.0004, Successful)]),
                pipeline(2, 1.0, &[(10.0001, Failed)]),
                pipeline(3, 20.0, &[(30.0, Successful)]),
            ],
        );
        let endings = |repo: &SimRepo| -> Vec<(u64, SimEvent)> {
            events(repo)
                .into_iter()
                .filter(|&(_, seen, event)| seen == Seen::Pipeline && event != SimEvent::Started)
                .map(|(number, _, event)| (number, event))
                .collect()
        };
        assert_eq!(endings(&tied), [(1, OK), (2, F), (3, X)]);
        // A millisecond apart, they are told apart.
        let apart = repo(
            SimSource::CloudPipelines,
            vec![
                pipeline(1, 0.0, &[(10.0014, Successful)]),
                pipeline(2, 1.0, &[(10.0001, Failed)]),
                pipeline(3, 20.0, &[(30.0, Successful)]),
            ],
        );
        assert_eq!(endings(&apart), [(2, F), (1, X), (3, OK)]);
    }

    #[test]
    fn pipelines_show_pauses_and_post_statuses_that_hide_them() {
        use SimEvent::{Paused as P, Started as S, Stopped as X};
        let repo = repo(
            SimSource::CloudPipelines,
            vec![
                pipeline(
                    1,
                    0.0,
                    &[
                        (1.0, Running),
                        (5.0, Paused),
                        (9.0, Running),
                        (12.0, Paused),
                        (20.0, Expired),
                    ],
                ),
                // First seen already finished: no start.
                pipeline(2, 30.0, &[(30.0, Successful)]),
                // Bare commits have no lane: failing twice is failing, not still failing.
                pipeline(3, 40.0, &[(41.0, Failed)]).as_custom("deploy"),
                pipeline(4, 50.0, &[(51.0, Failed)]).as_custom("deploy"),
            ],
        );
        let (p, st) = (Seen::Pipeline, Seen::PipelineStatus);
        assert_eq!(
            events(&repo),
            [
                (1, p, S),
                (1, st, S),
                (1, p, P),
                (1, p, P),
                (1, p, X),
                (1, st, X),
                (2, p, SimEvent::Succeeded),
                (2, st, SimEvent::Succeeded),
                (3, p, S),
                (3, st, S),
                (3, p, SimEvent::Failed),
                (3, st, SimEvent::Failed),
                (4, p, S),
                (4, st, S),
                (4, p, SimEvent::Failed),
                (4, st, SimEvent::Failed),
            ]
        );
        // In a mixed repository, keyed builds are statuses, the rest pipelines.
        let mixed = self::repo(
            SimSource::CloudMixed,
            vec![
                pipeline(1, 0.0, &[(2.0, Failed)]),
                SimBuild::status("scan", "main", "x", 0.0, 1.0, [(3.0, Failed)]),
                pipeline(2, 4.0, &[(6.0, Failed)]),
            ],
        );
        let endings: Vec<(u64, Seen, SimEvent)> = events(&mixed)
            .into_iter()
            .filter(|e| e.2.is_terminal())
            .collect();
        assert_eq!(
            endings,
            [
                (1, p, SimEvent::Failed),
                (1, st, SimEvent::Failed),
                (1, Seen::Status, SimEvent::Failed),
                (2, p, SimEvent::StillFailing),
                (2, st, SimEvent::Failed),
            ]
        );
    }

    /// Puts a message straight into a channel, as if Zoom had accepted it at `at`.
    fn post(sim: &Simulator, jid: &str, at: f64, content: Value, edits: Vec<(f64, Value)>) {
        let mut state = sim.inner.lock();
        let id = format!("m{}", state.messages.len());
        state.messages.push(SimMessage {
            message_id: id,
            to_jid: jid.to_owned(),
            first_content: content.clone(),
            content,
            reply_to: None,
            posted_at: at,
            edits,
            via: MessageVia::Chatbot,
            deleted: false,
            markdown: false,
            mentions: Vec::new(),
        });
    }

    #[tokio::test]
    async fn scores_what_channels_show_against_what_watchers_expect() {
        let scenario = Scenario {
            repos: vec![
                repo(
                    SimSource::CloudPipelines,
                    vec![
                        pipeline(1, 10.0, &[(11.0, Running), (20.0, Failed)]),
                        pipeline(2, 30.0, &[(31.0, Running), (40.0, Successful)]),
                        pipeline(3, 50.0, &[(51.0, Running), (60.0, Successful)]).on_tag("v1.0.0"),
                        pipeline(4, 70.0, &[(71.0, Running), (80.0, Failed)]).as_custom("deploy"),
                    ],
                ),
                SimRepo {
                    slug: "web".to_owned(),
                    ..repo(
                        SimSource::CloudStatuses,
                        vec![SimBuild::status(
                            "ci",
                            "main",
                            "c".repeat(40),
                            0.0,
                            5.0,
                            [(9.0, Stopped)],
                        )],
                    )
                },
            ],
        };
        let sim = start(scenario, SimOptions::default()).await;
        let (ci, releases) = (
            "ci@conference.xmpp.zoom.us",
            "releases@conference.xmpp.zoom.us",
        );
        let api = &sim.scenario().repos[0];
        let link = |n: usize| sim.card_link(api, &api.builds[n - 1], 0.0);
        let watcher = |pipelines: bool, statuses: bool, channels: &[&str]| Watcher {
            workspace: "ACME".to_owned(),
            slug: "api".to_owned(),
            pipelines,
            statuses,
            branches: None,
            tags: Some(vec![]),
            commits: false,
            events: vec!["failed".to_owned(), "succeeded".to_owned()],
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        };
        // Two watchers name #ci: one card each event there. Tags and commits unwanted.
        let watchers = [
            watcher(true, false, &[ci]),
            watcher(true, false, &[ci, releases]),
        ];
        post(
            &sim,
            ci,
            25.0,
            card("❌ FAILED · acme/api · main", &link(1)),
            vec![(26.0, card("❌ FAILED · acme/api · main", &link(1)))],
        );
        post(
            &sim,
            ci,
            45.0,
            card("✅ FIXED · acme/api · main", &link(2)),
            vec![],
        );
        post(
            &sim,
            releases,
            41.0,
            card("✅ FIXED · acme/api · main", &link(2)),
            vec![],
        );
        post(
            &sim,
            releases,
            90.0,
            card("❌ FAILED · acme/api · (no branch)", &link(4)),
            vec![],
        );
        let board = score(&sim, &watchers);
        assert_eq!(
            board.missed,
            [(releases.to_owned(), link(1), SimEvent::Failed)]
        );
        assert_eq!(board.duplicates, 1);
        assert_eq!(board.shown.len(), 4);
        let mut latencies: Vec<f64> = board.latencies.iter().map(|l| l.seconds).collect();
        latencies.sort_by(f64::total_cmp);
        assert_eq!(latencies, [1.0, 5.0, 5.0]);

        // Watching statuses alone, Pipelines' own statuses are expected, tags too now.
        let statuses = Watcher {
            tags: None,
            ..watcher(false, true, &[ci])
        };
        let status_link = |n: usize| sim.card_link(api, &api.builds[n - 1].pipeline_status(0), 0.0);
        assert!(status_link(3).ends_with("/acme/api/addon/pipelines/home#!/results/3"));
        let missed: Vec<String> = score(&sim, std::slice::from_ref(&statuses))
            .missed
            .into_iter()
            .map(|(_, url, _)| url)
            .collect();
        assert_eq!(missed, [status_link(1), status_link(2), status_link(3)]);
        // A watcher of the pipelines in another channel changes nothing for #ci...
        let urls = |watchers: &[Watcher]| -> BTreeSet<String> {
            super::expected(&sim, watchers)
                .into_keys()
                .map(|(_, url, _)| url)
                .collect()
        };
        let apart = [statuses.clone(), watcher(true, false, &[releases])];
        assert_eq!(
            urls(&apart),
            BTreeSet::from([
                link(1),
                link(2),
                status_link(1),
                status_link(2),
                status_link(3)
            ])
        );
        // ... but in #ci itself, a run whose ref it takes is told as a pipeline only; the tag
        // build (#3), which it does not take, still as its status.
        let together = [statuses.clone(), watcher(true, false, &[ci])];
        assert_eq!(
            urls(&together),
            BTreeSet::from([link(1), link(2), status_link(3)])
        );
        // Bare commits only for a watcher that takes them; statuses of another repository.
        let commits = Watcher {
            commits: true,
            branches: Some(vec![]),
            tags: Some(vec![]),
            ..watcher(true, false, &[releases])
        };
        assert!(score(&sim, &[commits]).missed.is_empty());
        let web = Watcher {
            slug: "web".to_owned(),
            events: vec!["stopped".to_owned()],
            ..watcher(false, true, &[ci])
        };
        assert_eq!(score(&sim, &[web]).missed.len(), 1);
    }
}
