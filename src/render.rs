//! Cards: what a channel shows for a build event. Pure (invariant 1): the same build and event
//! always render the same card, with no IO, no clock and no failure.
//!
//! Everything a repository contributor controls (branch names, commit messages, author names,
//! URLs) is untrusted (invariant 7): it is cleaned of control and zero-width characters, cut to
//! a length, and links are only ever http(s).

use crate::domain::{BuildStatus, EventKind};
use serde_json::{Value, json};

/// A rendered card, independent of how it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// "❌ FAILED · acme/api · main": result first, so it reads in a notification preview.
    pub head: String,
    /// "Pipeline #42".
    pub sub_head: String,
    /// Sidebar colour by result.
    pub color: &'static str,
    /// Label and value pairs, in display order.
    pub fields: Vec<(String, String)>,
    /// Link text and an http(s) URL.
    pub link: Option<(String, String)>,
}

/// Longest text taken from build data into one card field.
const FIELD_MAX_CHARS: usize = 300;

struct Look {
    emoji: &'static str,
    label: &'static str,
    color: &'static str,
}

fn look(event: EventKind) -> Look {
    let (emoji, label, color) = match event {
        EventKind::Started => ("🔵", "STARTED", "#0052CC"),
        EventKind::Paused => ("⏸️", "PAUSED", "#FFAB00"),
        EventKind::Succeeded => ("✅", "SUCCEEDED", "#36B37E"),
        EventKind::Fixed => ("✅", "FIXED", "#36B37E"),
        EventKind::Failed => ("❌", "FAILED", "#DE350B"),
        EventKind::StillFailing => ("❌", "STILL FAILING", "#DE350B"),
        EventKind::Stopped => ("⏹️", "STOPPED", "#6B778C"),
    };
    Look {
        emoji,
        label,
        color,
    }
}

/// The card for `event` on `build`.
pub fn card(build: &BuildStatus, event: EventKind) -> Card {
    let look = look(event);
    let branch = build
        .branch
        .as_deref()
        .map(|b| clean(b, 120))
        .unwrap_or_else(|| "(no branch)".into());
    let head = format!(
        "{} {} · {} · {}",
        look.emoji, look.label, build.key.repo, branch
    );
    let mut fields = vec![("Result".to_owned(), build.state.label())];
    if let Some(commit) = &build.commit {
        let short: String = clean(commit, 40).chars().take(7).collect();
        let value = match &build.commit_message {
            Some(message) => format!("{short} {}", clean(message, FIELD_MAX_CHARS)),
            None => short,
        };
        fields.push(("Commit".into(), value));
    }
    if let Some(author) = &build.author {
        fields.push(("Author".into(), clean(author, 120)));
    }
    if let Some(secs) = build.duration_secs.filter(|_| build.state.is_finished()) {
        fields.push(("Duration".into(), duration(secs)));
    }
    // "Pipeline #42", or a status's name ("Jenkins build") when the source has no number.
    let title = match build.number {
        Some(number) => format!("{} #{number}", clean(&build.name, 120)),
        None => clean(&build.name, 120),
    };
    Card {
        head,
        color: look.color,
        fields,
        link: safe_link(&build.url).map(|url| (format!("Open {title} in Bitbucket"), url)),
        sub_head: title,
    }
}

/// The chatbot message `content` for a card (see ../shared/api/zoom/samples/11).
pub fn chatbot_content(card: &Card) -> Value {
    let mut sections = vec![json!({
        "type": "fields",
        "items": card.fields.iter().map(|(k, v)| json!({"key": k, "value": v, "short": true})).collect::<Vec<_>>(),
    })];
    if let Some((text, url)) = &card.link {
        sections.push(json!({"type": "message", "text": text, "link": url}));
    }
    json!({
        "head": {"text": card.head, "sub_head": {"text": card.sub_head}},
        "body": [{"type": "section", "sidebar_color": card.color, "sections": sections}],
    })
}

/// The same card as plain text, for the demo and text-only destinations.
pub fn plain_text(card: &Card) -> String {
    let mut text = format!("{}\n{}", card.head, card.sub_head);
    for (key, value) in &card.fields {
        text.push_str(&format!("\n  {key}: {value}"));
    }
    if let Some((label, url)) = &card.link {
        text.push_str(&format!("\n  {label}: {url}"));
    }
    text
}

/// Which event a card's head announces: the inverse of [`card`]'s head, used by the demo's
/// scoreboard to read back what a channel shows.
pub fn event_from_head(head: &str) -> Option<EventKind> {
    EventKind::ALL.into_iter().find(|&e| {
        let look = look(e);
        head.strip_prefix(look.emoji)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|rest| rest.strip_prefix(look.label))
            .is_some_and(|rest| rest.starts_with(" · "))
    })
}

/// "3m 12s".
fn duration(secs: u64) -> String {
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// Untrusted text made safe to show: control and zero-width characters removed, whitespace
/// runs folded to one space, and cut to `max` characters with a visible ellipsis.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut count = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            pending_space = count > 0;
            continue;
        }
        if c.is_control() || is_invisible(c) {
            continue;
        }
        let needed = 1 + usize::from(pending_space);
        if count + needed > max {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
        count += needed;
    }
    out
}

/// Characters that render as nothing and can hide text: zero-width spaces and joiners,
/// bidirectional overrides, the BOM.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
}

/// `url` if it is an absolute http(s) URL; anything else (`javascript:`, relative) is dropped.
pub fn safe_link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildKey, BuildState, Outcome, RepoId};

    fn build() -> BuildStatus {
        BuildStatus {
            key: BuildKey {
                repo: RepoId::new("acme", "api"),
                id: "{u}".into(),
            },
            job: "pipeline".into(),
            name: "Pipeline".into(),
            number: Some(42),
            revision: 0,
            branch: Some("main".into()),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            commit_message: Some("Fix the flaky test".into()),
            author: Some("Jane Dev".into()),
            state: BuildState::Completed(Outcome::Failed),
            duration_secs: Some(192),
            created_ms: 0,
            url: "https://bitbucket.org/acme/api/pipelines/results/42".into(),
        }
    }

    #[test]
    fn a_failed_build_card() {
        let card = card(&build(), EventKind::Failed);
        assert_eq!(card.head, "❌ FAILED · acme/api · main");
        assert_eq!(card.sub_head, "Pipeline #42");
        assert_eq!(card.color, "#DE350B");
        assert_eq!(
            card.fields,
            vec![
                ("Result".into(), "FAILED".into()),
                ("Commit".into(), "0123456 Fix the flaky test".into()),
                ("Author".into(), "Jane Dev".into()),
                ("Duration".into(), "3m 12s".into()),
            ]
        );
        assert_eq!(
            card.link,
            Some((
                "Open Pipeline #42 in Bitbucket".into(),
                "https://bitbucket.org/acme/api/pipelines/results/42".into()
            ))
        );
        let content = chatbot_content(&card);
        assert_eq!(content["head"]["text"], "❌ FAILED · acme/api · main");
        assert_eq!(content["body"][0]["sidebar_color"], "#DE350B");
        assert_eq!(
            content["body"][0]["sections"][1]["link"],
            "https://bitbucket.org/acme/api/pipelines/results/42"
        );
        assert_eq!(
            plain_text(&card),
            "❌ FAILED · acme/api · main\nPipeline #42\n  Result: FAILED\n  Commit: 0123456 Fix the flaky test\n  Author: Jane Dev\n  Duration: 3m 12s\n  Open Pipeline #42 in Bitbucket: https://bitbucket.org/acme/api/pipelines/results/42"
        );
    }

    #[test]
    fn every_event_head_reads_back() {
        for event in EventKind::ALL {
            assert_eq!(
                event_from_head(&card(&build(), event).head),
                Some(event),
                "{event}"
            );
        }
        assert_eq!(event_from_head("❌ FAILEDX · a/b · c"), None);
    }

    #[test]
    fn untrusted_text_is_cleaned() {
        #[rustfmt::skip]
        let table = [
            ("plain",                        10, "plain"),
            ("a\u{200B}b\u{202E}c\u{FEFF}",  10, "abc"),
            ("line one\n\tline two\r\n",     40, "line one line two"),
            ("bell\u{7}",                    10, "bell"),
            ("abcdefghijkl",                 5,  "abcde…"),
            ("  leading",                    10, "leading"),
        ];
        for (input, max, expected) in table {
            assert_eq!(clean(input, max), expected, "{input:?}");
        }
        assert_eq!(clean(&"x".repeat(100_000), 300).chars().count(), 301);
    }

    #[test]
    fn only_http_links_survive() {
        assert_eq!(safe_link("javascript:alert(1)"), None);
        assert_eq!(safe_link("/relative"), None);
        assert_eq!(
            safe_link("https://x.example/p").as_deref(),
            Some("https://x.example/p")
        );
        let mut hostile = build();
        hostile.url = "javascript:alert(1)".into();
        assert_eq!(card(&hostile, EventKind::Failed).link, None);
    }

    #[test]
    fn durations() {
        for (secs, text) in [
            (0, "0s"),
            (59, "59s"),
            (61, "1m 1s"),
            (3600, "1h 0m"),
            (3725, "1h 2m"),
        ] {
            assert_eq!(duration(secs), text);
        }
    }
}
