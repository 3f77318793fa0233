//! Cards: what a channel shows for a build event. Pure (invariant 1): the same build and event
//! always render the same card, with no IO, no clock and no failure.
//!
//! A [`Card`] travels three ways: as a chatbot card ([`chatbot_content`]), as an Incoming
//! Webhook card ([`webhook_full`]) and as plain text ([`webhook_message`], [`plain_text`], also
//! what `bbzoom demo` prints). Each way has a size limit it keeps by construction: items are
//! added while they fit and what does not fit is announced by a visible "… and N more".
//!
//! Everything a repository contributor controls (branch names, commit messages, author names,
//! status names, URLs) is untrusted (invariant 7). Text is cleaned of control and zero-width
//! characters, cut to a length with a visible ellipsis, and defused: mentions (`@all`) and the
//! characters Zoom's markdown gives meaning to are replaced by look-alikes that mean nothing, so
//! that not even a future `is_markdown_support` could turn build data into formatting, links or
//! notifications; so is the colon of a `javascript:`, `vbscript:` or `data:` scheme, in every
//! text field. All card text passes one function, `text`, for this. Links are only ever
//! absolute http(s) URLs without credentials.

use crate::domain::{BuildRef, BuildStatus, EventKind};
use serde_json::{Value, json};

/// Longest an Incoming Webhook body may be, in characters (what other clients use; Zoom does not
/// document it). [`webhook_message`] and [`webhook_full`] stay within it, JSON encoding included.
pub(crate) const WEBHOOK_MAX_CHARS: usize = 4000;

/// Longest a chatbot card's `content` may serialize to, in bytes: well inside what Zoom renders.
pub(crate) const CARD_MAX_BYTES: usize = 10_000;

/// How a card travels, which decides how much of it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// A chatbot message's `content` ([`chatbot_content`]).
    Chatbot,
    /// An Incoming Webhook card ([`webhook_full`]).
    WebhookFull,
    /// An Incoming Webhook text ([`webhook_message`]).
    WebhookMessage,
}

/// A rendered card, independent of how it travels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    /// "❌ FAILED · acme/api · main" (or "· tag v1.2", "· commit 0123456"): result first, so
    /// it reads in a notification preview.
    pub head: String,
    /// "Pipeline #42"; may be empty.
    pub sub_head: String,
    /// Sidebar colour by result.
    pub color: &'static str,
    /// Label and value pairs, in display order.
    pub fields: Vec<(String, String)>,
    /// Link text and an http(s) URL, shown as links (never buttons). The build's own page comes
    /// first: a reader of the card (the demo's scoreboard) takes the first link for the build.
    pub links: Vec<(String, String)>,
    /// Further lines after the links, each with an optional http(s) link (a summary's entries).
    pub lines: Vec<(String, Option<String>)>,
    /// The person the card mentions (`[people]`), first in a chatbot card's body; plain text
    /// and webhook cards leave it out.
    pub mention: Option<CardMention>,
}

/// A person a chatbot card mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardMention {
    /// Their user JID, `ID@xmpp.zoom.us`.
    pub jid: String,
    /// How Bitbucket names them (untrusted), shown in the mention.
    pub name: Option<String>,
}

/// Longest text taken from build data into one card field (a commit message).
const FIELD_MAX_CHARS: usize = 300;
/// Longest branch, author, repository or status name.
const NAME_MAX_CHARS: usize = 120;
/// Hard caps applied again when a card is rendered, whoever built it.
const HEAD_MAX_CHARS: usize = 300;
const KEY_MAX_CHARS: usize = 60;
const VALUE_MAX_CHARS: usize = 400;
const LINE_MAX_CHARS: usize = 400;
/// Longer URLs are dropped, never cut (a cut URL leads somewhere else).
const LINK_MAX_CHARS: usize = 1000;
/// Field values up to this length sit two to a row; longer ones take the card's width.
const SHORT_VALUE_CHARS: usize = 40;
/// The head of a summary card begins with this; no build card's head does.
const SUMMARY_PREFIX: &str = "📋 ";
const NEUTRAL_COLOR: &str = "#6B778C";

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
        EventKind::Stopped => ("⏹️", "STOPPED", NEUTRAL_COLOR),
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
    let short = build
        .commit
        .as_deref()
        .map(|commit| text(&clean(commit, 40).chars().take(7).collect::<String>(), 7))
        .filter(|short| !short.is_empty());
    // What it ran for, where a branch build names its branch.
    let (target, ref_link) = match &build.git_ref {
        BuildRef::Branch(name) => {
            let name = text(name, NAME_MAX_CHARS);
            (name.clone(), format!("Branch {name}"))
        }
        BuildRef::Tag(name) => {
            let name = text(name, NAME_MAX_CHARS);
            (format!("tag {name}"), format!("Tag {name}"))
        }
        BuildRef::Commit => (
            short
                .as_ref()
                .map_or("commit".into(), |s| format!("commit {s}")),
            "Commit".into(),
        ),
    };
    let head = format!(
        "{} {} · {} · {}",
        look.emoji,
        look.label,
        text(&build.key.repo.to_string(), NAME_MAX_CHARS),
        target
    );
    // "Pipeline #42", or a status's name ("Jenkins build") when the source has no number, or
    // when the name already ends with it (CI servers often name a status "job #42").
    let name = text(&build.name, NAME_MAX_CHARS);
    let title = match build.number {
        Some(number) if !name.ends_with(&format!("#{number}")) => format!("{name} #{number}"),
        _ => name,
    };

    // Short values first, two to a row; the commit line last, full width when long.
    let mut fields = vec![(
        "Result".to_owned(),
        text(&build.state.label(), NAME_MAX_CHARS),
    )];
    if let Some(secs) = build.duration_secs.filter(|_| build.state.is_finished()) {
        fields.push(("Duration".into(), duration(secs)));
    }
    if let Some(author) = &build.author {
        fields.push(("Author".into(), text(author, NAME_MAX_CHARS)));
    }
    if let Some(short) = &short {
        let message = build
            .commit_message
            .as_deref()
            .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(|first| text(first, FIELD_MAX_CHARS))
            .filter(|m| !m.is_empty());
        let value = match message {
            Some(message) => format!("{short} {message}"),
            None => short.clone(),
        };
        fields.push(("Commit".into(), value));
    }

    let mut links = Vec::new();
    if let Some(url) = safe_link(&build.url) {
        links.push((format!("Open {title}"), url));
    }
    if let Some(url) = build.commit_url.as_deref().and_then(safe_link) {
        let label = short
            .as_ref()
            .map_or("Commit".into(), |s| format!("Commit {s}"));
        links.push((label, url));
    }
    if let Some(url) = build.ref_url.as_deref().and_then(safe_link) {
        links.push((ref_link, url));
    }

    Card {
        head,
        sub_head: title,
        color: look.color,
        fields,
        links,
        lines: Vec::new(),
        mention: None,
    }
}

/// The topic of `lane`'s war room (at most 200 characters, Zoom's limit): "bbzoom war room:
/// acme/api main (pipeline) is failing". Cleaned (Zoom shows it), not defused (no markdown).
pub(crate) fn meeting_topic(build: &BuildStatus, lane: &crate::domain::Lane) -> String {
    let topic = format!(
        "bbzoom war room: {} {} ({}) is failing",
        build.key.repo,
        match &lane.git_ref {
            BuildRef::Tag(name) => format!("tag {name}"),
            other => other.name().unwrap_or("commit").to_owned(),
        },
        lane.job
    );
    clean(&topic, 200)
}

/// `card` with the join link of its build's war room, when it has one: right after the build's
/// own link (a reader takes the first link for the build's).
pub(crate) fn add_war_room(card: &mut Card, join_url: Option<String>) {
    if let Some(url) = join_url {
        let at = card.links.len().min(1);
        card.links
            .insert(at, ("🚨 Join the war room (Zoom meeting)".to_owned(), url));
    }
}

/// The card of a direct message to the author of `build` (`[people]`): the channel's card,
/// and why they get it.
pub(crate) fn direct_card(build: &BuildStatus, event: EventKind) -> Card {
    let mut card = card(build, event);
    card.lines.push((
        "Sent to you as this build's author (bbzoom [people])".to_owned(),
        None,
    ));
    card
}

/// Summary cards standing for `updates` (a backlog folded after an outage), as many as it
/// takes for every update to have its line within `form`'s limit: nothing is left out. Each
/// reads "📋 3 build updates {why}" (with "(1 of 2)" when there are several), counts its
/// updates by event and has one line per update, "{head} · {sub_head}", linked to that card's
/// first link (its build). `why` completes the head ("held back while Zoom was failing").
pub(crate) fn summary_cards(updates: &[(EventKind, Card)], why: &str, form: Form) -> Vec<Card> {
    let why = text(why, NAME_MAX_CHARS);
    let mut pages: Vec<&[(EventKind, Card)]> = Vec::new();
    let mut rest = updates;
    // Pages are sized under the longest "(n of m)" there could be: one page per update.
    let most = (updates.len(), updates.len());
    while !rest.is_empty() {
        // The most lines that fit; at least one.
        let mut take = 1;
        while take < rest.len() && fits(&summary_page(&rest[..=take], &why, most), form) {
            take += 1;
        }
        pages.push(&rest[..take]);
        rest = &rest[take..];
    }
    let total = pages.len();
    pages
        .iter()
        .enumerate()
        .map(|(i, page)| summary_page(page, &why, (i + 1, total)))
        .collect()
}

/// One summary card: page `n` of `of`.
fn summary_page(updates: &[(EventKind, Card)], why: &str, (n, of): (usize, usize)) -> Card {
    let count = updates.len();
    let page = if of > 1 {
        format!(" ({n} of {of})")
    } else {
        String::new()
    };
    let head = format!(
        "{SUMMARY_PREFIX}{count} build update{} {why}{page}",
        if count == 1 { "" } else { "s" }
    )
    .trim_end()
    .to_owned();
    let counts: Vec<String> = EventKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let count = updates.iter().filter(|(e, _)| *e == kind).count();
            (count > 0).then(|| format!("{count} {}", look(kind).label.to_lowercase()))
        })
        .collect();
    // The most pressing event gives the colour.
    let color = [
        EventKind::Failed,
        EventKind::StillFailing,
        EventKind::Paused,
        EventKind::Stopped,
        EventKind::Fixed,
        EventKind::Succeeded,
        EventKind::Started,
    ]
    .into_iter()
    .find(|e| updates.iter().any(|(u, _)| u == e))
    .map_or(NEUTRAL_COLOR, |e| look(e).color);
    let lines = updates
        .iter()
        .map(|(_, c)| {
            let line = if c.sub_head.is_empty() {
                c.head.clone()
            } else {
                format!("{} · {}", c.head, c.sub_head)
            };
            (line, c.links.first().map(|(_, url)| url.clone()))
        })
        .collect();
    Card {
        head,
        sub_head: counts.join(" · "),
        color,
        lines,
        ..Card::default()
    }
}

/// Whether all of `card` fits `form` (nothing would be announced as "… and N more").
fn fits(card: &Card, form: Form) -> bool {
    match form {
        Form::Chatbot => content_within(card, CARD_MAX_BYTES).1 == 0,
        Form::WebhookFull => content_within(card, webhook_full_budget()).1 == 0,
        Form::WebhookMessage => text_lines(card).1 == 0,
    }
}

/// The chatbot message `content` for a card (a `head` with `sub_head` and a `body` of message
/// elements, as Zoom's "Customizing messages" pages in its Team Chat docs describe them), at
/// most [`CARD_MAX_BYTES`] when serialized. Sent with `is_markdown_support` only when
/// [`chatbot_markdown`] says so: a mention needs Zoom's markdown, and everything else on the
/// card is defused, so markdown changes nothing else.
pub(crate) fn chatbot_content(card: &Card) -> Value {
    content_within(card, CARD_MAX_BYTES).0
}

/// Whether `card`'s chatbot content must be sent with `is_markdown_support`: it mentions
/// someone.
pub(crate) fn chatbot_markdown(card: &Card) -> bool {
    card.mention.as_ref().and_then(mention_markup).is_some()
}

/// The body's first item: the mention, in Zoom's chatbot markdown (`<!JID|name>`), then a word
/// to the person. `None` for a JID that is not a plain user JID (nothing else may reach the
/// markup).
fn mention_item(card: &Card) -> Option<Value> {
    let markup = mention_markup(card.mention.as_ref()?)?;
    Some(json!({"type": "message", "text": format!("{markup} please take a look")}))
}

/// `<!ID@xmpp.zoom.us|Name>`: the name cleaned and defused, without `|`, so it cannot end the
/// markup early or add to it.
fn mention_markup(mention: &CardMention) -> Option<String> {
    let jid = &mention.jid;
    let plain = jid.strip_suffix("@xmpp.zoom.us").is_some_and(|local| {
        !local.is_empty()
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    if !plain {
        return None;
    }
    let name = mention
        .name
        .as_deref()
        .map(|name| text(name, NAME_MAX_CHARS).replace('|', "¦"))
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "author".to_owned());
    Some(format!("<!{jid}|{name}>"))
}

/// The Incoming Webhook body for `format=full`: `{"content": <card>}`, at most
/// [`WEBHOOK_MAX_CHARS`] when serialized.
pub(crate) fn webhook_full(card: &Card) -> Value {
    // A webhook message is not read as markdown: a mention would show as its markup.
    let card = Card {
        mention: None,
        ..card.clone()
    };
    json!({"content": content_within(&card, webhook_full_budget()).0})
}

/// What a card may take inside the `{"content": ...}` wrapper.
fn webhook_full_budget() -> usize {
    let wrapper = json!({"content": {}}).to_string().len() - 2;
    WEBHOOK_MAX_CHARS - wrapper
}

/// The Incoming Webhook text for `format=message`: [`plain_text`], which stays within
/// [`WEBHOOK_MAX_CHARS`] even as the JSON string it is sent as.
pub(crate) fn webhook_message(card: &Card) -> String {
    plain_text(card)
}

/// The card as plain text, for webhook messages and the demo:
///
/// ```text
/// ❌ FAILED · acme/api · main
/// Pipeline #42
///   Result: FAILED
///   Commit: 0123456 Fix the flaky test
///   Open Pipeline #42: https://bitbucket.org/acme/api/pipelines/results/42
/// ```
///
/// At most [`WEBHOOK_MAX_CHARS`] characters, also once encoded as a JSON string.
pub fn plain_text(card: &Card) -> String {
    text_lines(card).0
}

/// [`plain_text`], and how many lines did not fit.
fn text_lines(card: &Card) -> (String, usize) {
    let mut lines = vec![text(&card.head, HEAD_MAX_CHARS)];
    let sub_head = text(&card.sub_head, HEAD_MAX_CHARS);
    if !sub_head.is_empty() {
        lines.push(sub_head);
    }
    for (key, value) in &card.fields {
        lines.push(labelled(
            &text(key, KEY_MAX_CHARS),
            &text(value, VALUE_MAX_CHARS),
        ));
    }
    for (label, url) in &card.links {
        if let Some(url) = safe_link(url) {
            lines.push(labelled(&text(label, LINE_MAX_CHARS), &url));
        }
    }
    for (line, url) in &card.lines {
        let line = text(line, LINE_MAX_CHARS);
        lines.push(match url.as_deref().and_then(safe_link) {
            Some(url) => labelled(&line, &url),
            None => format!("  {line}"),
        });
    }
    fit_text(&lines, WEBHOOK_MAX_CHARS)
}

/// `content` for `card` within `budget` bytes: fields, then links, then lines, as many as fit
/// in that order; the rest is announced by a last "… and N more", and counted in the second
/// value.
fn content_within(card: &Card, budget: usize) -> (Value, usize) {
    let mut head = json!({"text": text(&card.head, HEAD_MAX_CHARS)});
    let sub_head = text(&card.sub_head, HEAD_MAX_CHARS);
    if !sub_head.is_empty() {
        head["sub_head"] = json!({"text": sub_head});
    }
    let fields = card.fields.iter().map(|(key, value)| {
        let value = text(value, VALUE_MAX_CHARS);
        let short = value.chars().count() <= SHORT_VALUE_CHARS;
        json!({"key": text(key, KEY_MAX_CHARS), "value": value, "short": short})
    });
    let links = card.links.iter().filter_map(|(label, url)| {
        Some(json!({"type": "message", "text": text(label, LINE_MAX_CHARS), "link": safe_link(url)?}))
    });
    let lines = card.lines.iter().map(|(line, url)| {
        let mut item = json!({"type": "message", "text": text(line, LINE_MAX_CHARS)});
        if let Some(url) = url.as_deref().and_then(safe_link) {
            item["link"] = Value::String(url);
        }
        item
    });
    let total = card.fields.len() + card.links.len() + card.lines.len();
    let more = |n: usize| json!({"type": "message", "text": format!("… and {n} more")});
    let mention = mention_item(card);

    // The shell with the mention and an empty fields section, plus room for the "… and N
    // more" item.
    let mut used = shell(
        head.clone(),
        card.color,
        mention
            .iter()
            .cloned()
            .chain([json!({"type": "fields", "items": []})])
            .collect(),
    )
    .to_string()
    .len()
        + more(usize::MAX).to_string().len()
        + 1;
    let mut kept_fields = Vec::new();
    let mut kept_messages = Vec::new();
    let mut full = false;
    for item in fields {
        let size = item.to_string().len() + 1;
        if used + size > budget {
            full = true;
            break;
        }
        used += size;
        kept_fields.push(item);
    }
    if !full {
        for item in links.chain(lines) {
            let size = item.to_string().len() + 1;
            if used + size > budget {
                break;
            }
            used += size;
            kept_messages.push(item);
        }
    }
    // Links found unsafe were never candidates: only what the budget left out is counted.
    let dropped_links = card.links.len()
        - card
            .links
            .iter()
            .filter(|(_, url)| safe_link(url).is_some())
            .count();
    let left_out = total - dropped_links - kept_fields.len() - kept_messages.len();

    let mut sections: Vec<Value> = mention.into_iter().collect();
    if !kept_fields.is_empty() {
        sections.push(json!({"type": "fields", "items": kept_fields}));
    }
    sections.extend(kept_messages);
    if left_out > 0 {
        sections.push(more(left_out));
    }
    (shell(head, card.color, sections), left_out)
}

fn shell(head: Value, color: &str, sections: Vec<Value>) -> Value {
    json!({
        "head": head,
        "body": [{"type": "section", "sidebar_color": color, "sections": sections}],
    })
}

/// A plain text line, "  {label}: {rest}", of defused parts. Its colon is defused like one in
/// the label, since a label ending in a scheme's name (`Branch javascript`) would read as one.
fn labelled(label: &str, rest: &str) -> String {
    format!("  {} {rest}", defuse(&format!("{label}:")))
}

/// `lines` joined by newlines, as many as fit in `max` characters once encoded as a JSON
/// string; the rest is announced by a last "  … and N more", and counted in the second value.
fn fit_text(lines: &[String], max: usize) -> (String, usize) {
    // A line's characters and the "\n" before it; the string's quotes take 2 more.
    let cost = |line: &str| json_chars(line) + 2;
    let all: usize = lines.iter().map(|l| cost(l)).sum();
    if all <= max {
        return (lines.join("\n"), 0);
    }
    let reserve = cost(&format!("  … and {} more", usize::MAX));
    let mut used = 2 + reserve;
    let mut kept: Vec<&str> = Vec::new();
    for line in lines {
        if used + cost(line) > max {
            break;
        }
        used += cost(line);
        kept.push(line);
    }
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    let left_out = lines.len() - kept.len();
    out.push_str(&format!("  … and {left_out} more"));
    (out, left_out)
}

/// Characters `text` takes as a JSON string's content (serde_json's escapes).
fn json_chars(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if u32::from(c) < 0x20 => 6,
            _ => 1,
        })
        .sum()
}

/// "3m 12s".
pub(crate) fn duration(secs: u64) -> String {
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// Untrusted text as a card shows it: [`clean`], then [`defuse`].
fn text(untrusted: &str, max: usize) -> String {
    defuse(&clean(untrusted, max))
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

/// Cleaned text with nothing left for a chat to interpret, character for character (the
/// length does not change) and readable as before:
/// - `@` becomes the full-width `＠`, so `@all`, `@here` or `@jane` never mention anyone;
/// - `<` and `>` become `‹ ›`: no `<!all>`, `<@jid>`, `<https://…|text>` link or HTML tag;
/// - the markdown emphasis marks `*`, `~` and `` ` `` become `∗ ∼ ˋ`; `_` does too where it
///   could open or close emphasis (next to anything but a letter or digit on both sides), so
///   `snake_case` and `feature/my_branch` stay as they are;
/// - the `(` of a markdown link's `](` becomes `（`, and a leading `#` (a heading) `＃`;
/// - the `:` after a link scheme that runs or embeds content (`javascript:`, `vbscript:`,
///   `data:`, in any case, spaces inside) becomes `：`, so no field reads as such a link
///   wherever a chat or a reader's tool might linkify it.
fn defuse(cleaned: &str) -> String {
    let chars: Vec<char> = cleaned.chars().collect();
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            match c {
                '@' => '＠',
                '<' => '‹',
                '>' => '›',
                '*' => '∗',
                '~' => '∼',
                '`' => 'ˋ',
                '_' if !(prev.is_some_and(char::is_alphanumeric)
                    && next.is_some_and(char::is_alphanumeric)) =>
                {
                    '＿'
                }
                '(' if prev == Some(']') => '（',
                '#' if i == 0 => '＃',
                ':' if ends_in_unsafe_scheme(&chars[..i]) => '：',
                c => c,
            }
        })
        .collect()
}

/// Link schemes that run or embed content rather than lead to a page.
const UNSAFE_SCHEMES: [&str; 3] = ["javascript", "vbscript", "data"];

/// Whether `before` (the text before a `:`) ends in an [`UNSAFE_SCHEMES`] name that starts a
/// word, in any case and with whitespace inside or after it: a browser drops tabs and newlines
/// from a URL (`java\tscript:`), which [`clean`] has made spaces. `metadata:` is no scheme.
fn ends_in_unsafe_scheme(before: &[char]) -> bool {
    let longest = UNSAFE_SCHEMES.map(str::len).into_iter().max().unwrap_or(0);
    // The letters before the colon, last first, with where each stands.
    let letters: Vec<(usize, char)> = before
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, c)| !c.is_whitespace())
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .take(longest)
        .map(|(i, c)| (i, c.to_ascii_lowercase()))
        .collect();
    UNSAFE_SCHEMES.iter().any(|scheme| {
        let Some(&(first, _)) = letters.get(scheme.len() - 1) else {
            return false;
        };
        let spelled = letters[..scheme.len()].iter().rev().map(|(_, c)| *c);
        spelled.eq(scheme.chars())
            && first
                .checked_sub(1)
                .is_none_or(|p| !before[p].is_alphanumeric())
    })
}

/// Characters that render as nothing and can hide or reorder text: zero-width spaces and
/// joiners, bidirectional marks, overrides and isolates, invisible fillers and separators, the
/// BOM, soft hyphens and Unicode tags. (Variation selectors stay: emoji need them.)
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E007F}')
}

/// `url` if it is an absolute http(s) URL without credentials and at most 1,000 characters;
/// anything else (`javascript:`, relative, `https://bitbucket.org@evil.example`) is dropped,
/// never cut. An `@` left in the path or query is percent-encoded, so no link reads as a mention.
pub(crate) fn safe_link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let acceptable = matches!(parsed.scheme(), "http" | "https")
        && parsed.host().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    let link = parsed.to_string().replace('@', "%40");
    (acceptable && link.len() <= LINK_MAX_CHARS).then_some(link)
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
            git_ref: BuildRef::Branch("main".into()),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            commit_message: Some("Fix the flaky test".into()),
            author: Some("Jane Dev".into()),
            authors: Vec::new(),
            state: BuildState::Completed(Outcome::Failed),
            duration_secs: Some(192),
            created_ms: 0,
            url: "https://bitbucket.org/acme/api/pipelines/results/42".into(),
            commit_url: Some("https://bitbucket.org/acme/api/commits/0123456789abcdef".into()),
            ref_url: Some("https://bitbucket.org/acme/api/branch/main".into()),
            scheduled: false,
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
                ("Duration".into(), "3m 12s".into()),
                ("Author".into(), "Jane Dev".into()),
                ("Commit".into(), "0123456 Fix the flaky test".into()),
            ]
        );
        assert_eq!(
            card.links,
            vec![
                (
                    "Open Pipeline #42".into(),
                    "https://bitbucket.org/acme/api/pipelines/results/42".into()
                ),
                (
                    "Commit 0123456".into(),
                    "https://bitbucket.org/acme/api/commits/0123456789abcdef".into()
                ),
                (
                    "Branch main".into(),
                    "https://bitbucket.org/acme/api/branch/main".into()
                ),
            ]
        );
        let content = chatbot_content(&card);
        assert_eq!(
            content,
            json!({
                "head": {"text": "❌ FAILED · acme/api · main", "sub_head": {"text": "Pipeline #42"}},
                "body": [{"type": "section", "sidebar_color": "#DE350B", "sections": [
                    {"type": "fields", "items": [
                        {"key": "Result", "value": "FAILED", "short": true},
                        {"key": "Duration", "value": "3m 12s", "short": true},
                        {"key": "Author", "value": "Jane Dev", "short": true},
                        {"key": "Commit", "value": "0123456 Fix the flaky test", "short": true},
                    ]},
                    {"type": "message", "text": "Open Pipeline #42",
                     "link": "https://bitbucket.org/acme/api/pipelines/results/42"},
                    {"type": "message", "text": "Commit 0123456",
                     "link": "https://bitbucket.org/acme/api/commits/0123456789abcdef"},
                    {"type": "message", "text": "Branch main",
                     "link": "https://bitbucket.org/acme/api/branch/main"},
                ]}],
            })
        );
        assert_eq!(
            plain_text(&card),
            "❌ FAILED · acme/api · main\nPipeline #42\n  Result: FAILED\n  Duration: 3m 12s\n  Author: Jane Dev\n  Commit: 0123456 Fix the flaky test\n  Open Pipeline #42: https://bitbucket.org/acme/api/pipelines/results/42\n  Commit 0123456: https://bitbucket.org/acme/api/commits/0123456789abcdef\n  Branch main: https://bitbucket.org/acme/api/branch/main"
        );
        assert_eq!(webhook_message(&card), plain_text(&card));
        assert_eq!(webhook_full(&card), json!({ "content": content }));
    }

    #[test]
    fn a_number_the_name_already_ends_with_is_not_repeated() {
        let titled = |name: &str, number| {
            let mut b = build();
            b.name = name.into();
            b.number = number;
            card(&b, EventKind::Failed).sub_head
        };
        assert_eq!(titled("PLAT-BUILD #58", Some(58)), "PLAT-BUILD #58");
        assert_eq!(titled("PLAT-BUILD #5", Some(58)), "PLAT-BUILD #5 #58");
        assert_eq!(titled("Jenkins build", None), "Jenkins build");
    }

    #[test]
    fn a_long_commit_message_takes_the_width_and_only_its_first_line_shows() {
        let mut b = build();
        b.commit_message =
            Some("Make the scheduler fit every class into the budget\n\nLong body".into());
        b.state = BuildState::Running;
        b.commit_url = None;
        let card = card(&b, EventKind::Started);
        assert_eq!(
            card.fields,
            vec![
                ("Result".into(), "RUNNING".into()),
                ("Author".into(), "Jane Dev".into()),
                (
                    "Commit".into(),
                    "0123456 Make the scheduler fit every class into the budget".into()
                ),
            ]
        );
        let content = chatbot_content(&card);
        assert_eq!(
            content["body"][0]["sections"][0]["items"][2]["short"],
            false
        );
        assert_eq!(card.links.len(), 2, "no commit link without a commit URL");
        assert_eq!(card.links[1].0, "Branch main");
    }

    #[test]
    fn tags_and_bare_commits_are_named_where_a_branch_would_be() {
        let tag = BuildStatus {
            git_ref: BuildRef::Tag("v2.4.0".into()),
            ref_url: Some("https://bitbucket.org/acme/api/commits/tag/v2.4.0".into()),
            ..build()
        };
        let card = card(&tag, EventKind::Succeeded);
        assert_eq!(card.head, "✅ SUCCEEDED · acme/api · tag v2.4.0");
        assert_eq!(
            card.links[2],
            (
                "Tag v2.4.0".into(),
                "https://bitbucket.org/acme/api/commits/tag/v2.4.0".into()
            )
        );
        let commit = BuildStatus {
            git_ref: BuildRef::Commit,
            ref_url: None,
            name: "Pipeline deploy".into(),
            ..build()
        };
        let card = super::card(&commit, EventKind::Failed);
        assert_eq!(card.head, "❌ FAILED · acme/api · commit 0123456");
        assert_eq!(card.sub_head, "Pipeline deploy #42");
        assert_eq!(card.links.len(), 2, "{:?}", card.links);
    }

    /// `n` failed builds' updates, numbered from 0.
    fn failures(n: u64) -> Vec<(EventKind, Card)> {
        (0..n)
            .map(|n| {
                let mut b = build();
                b.number = Some(n);
                b.url = format!("https://bitbucket.org/acme/api/pipelines/results/{n}");
                (EventKind::Failed, card(&b, EventKind::Failed))
            })
            .collect()
    }

    #[test]
    fn a_summary_card_lists_each_card_with_its_build_link() {
        let mut other = build();
        other.url = "https://bitbucket.org/acme/api/pipelines/results/43".into();
        other.number = Some(43);
        other.state = BuildState::Completed(Outcome::Successful);
        let updates = [
            (EventKind::Failed, card(&build(), EventKind::Failed)),
            (EventKind::Fixed, card(&other, EventKind::Fixed)),
            (EventKind::Started, card(&build(), EventKind::Started)),
        ];
        let summaries = summary_cards(&updates, "held back while Zoom was failing", Form::Chatbot);
        let [summary] = summaries.as_slice() else {
            panic!("one card: {summaries:?}");
        };
        assert_eq!(
            summary.head,
            "📋 3 build updates held back while Zoom was failing"
        );
        assert_eq!(summary.sub_head, "1 started · 1 fixed · 1 failed");
        assert_eq!(summary.color, "#DE350B");
        assert_eq!(
            summary.lines[1],
            (
                "✅ FIXED · acme/api · main · Pipeline #43".into(),
                Some("https://bitbucket.org/acme/api/pipelines/results/43".into())
            )
        );
        assert_eq!(
            plain_text(summary),
            "📋 3 build updates held back while Zoom was failing\n1 started · 1 fixed · 1 failed\n  ❌ FAILED · acme/api · main · Pipeline #42: https://bitbucket.org/acme/api/pipelines/results/42\n  ✅ FIXED · acme/api · main · Pipeline #43: https://bitbucket.org/acme/api/pipelines/results/43\n  🔵 STARTED · acme/api · main · Pipeline #42: https://bitbucket.org/acme/api/pipelines/results/42"
        );
        let one = summary_cards(&updates[..1], "", Form::Chatbot);
        assert_eq!(one[0].head, "📋 1 build update");
    }

    #[test]
    fn a_large_backlog_takes_as_many_summaries_as_it_needs_and_drops_nothing() {
        let updates = failures(400);
        for form in [Form::Chatbot, Form::WebhookFull, Form::WebhookMessage] {
            let summaries = summary_cards(&updates, "held back while Zoom was failing", form);
            assert!(summaries.len() > 1, "{form:?}");
            let of = summaries.len();
            let mut listed = Vec::new();
            for (i, summary) in summaries.iter().enumerate() {
                assert!(
                    summary.head.ends_with(&format!("({} of {of})", i + 1)),
                    "{}",
                    summary.head
                );
                let fits = match form {
                    Form::Chatbot => chatbot_content(summary).to_string().len() <= CARD_MAX_BYTES,
                    Form::WebhookFull => {
                        webhook_full(summary).to_string().chars().count() <= WEBHOOK_MAX_CHARS
                    }
                    Form::WebhookMessage => {
                        let text = Value::String(webhook_message(summary)).to_string();
                        text.chars().count() <= WEBHOOK_MAX_CHARS
                    }
                };
                assert!(fits, "{form:?} page {i}");
                let rendered = match form {
                    Form::Chatbot => chatbot_content(summary).to_string(),
                    Form::WebhookFull => webhook_full(summary).to_string(),
                    Form::WebhookMessage => webhook_message(summary),
                };
                assert!(!rendered.contains(" more"), "{form:?} page {i} drops lines");
                listed.extend(summary.lines.iter().map(|(_, url)| url.clone().unwrap()));
            }
            let expected: Vec<String> = (0..400)
                .map(|n| format!("https://bitbucket.org/acme/api/pipelines/results/{n}"))
                .collect();
            assert_eq!(listed, expected, "{form:?}");
        }
    }

    /// Rendering hostile build data: whatever the input, every rendering keeps the promises.
    fn check(name: &str, hostile: impl FnOnce(&mut BuildStatus), expect_in_text: &str) {
        let mut b = build();
        hostile(&mut b);
        for event in EventKind::ALL {
            let card = card(&b, event);
            let look = look(event);
            let announced = format!("{} {} · ", look.emoji, look.label);
            assert!(card.head.starts_with(&announced), "{name}: {}", card.head);
            let content = chatbot_content(&card);
            let full = webhook_full(&card);
            let message = webhook_message(&card);
            let updates = [(event, card.clone()), (event, card.clone())];
            let summary = chatbot_content(&summary_cards(&updates, "now", Form::Chatbot)[0]);
            let serialized = [
                content.to_string(),
                full.to_string(),
                Value::String(message.clone()).to_string(),
                summary.to_string(),
            ];
            for out in &serialized {
                let lower = out.to_lowercase();
                // A link scheme is defused in every field: its colon is no longer a colon, even
                // with whitespace once inside it (a tab in `java\tscript:` becomes a space).
                let squeezed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
                for scheme in ["javascript:", "vbscript:", "data:"] {
                    assert!(!squeezed.contains(scheme), "{name}: {scheme} in {out}");
                }
                for mention in [
                    "@all",
                    "@here",
                    "@channel",
                    "@everyone",
                    "<!",
                    "<@",
                    "<script",
                ] {
                    assert!(!lower.contains(mention), "{name}: {mention} in {out}");
                }
                assert!(
                    !out.chars().any(|c| c.is_control() || is_invisible(c)),
                    "{name}: invisible character in {out:?}"
                );
            }
            assert!(serialized[0].len() <= CARD_MAX_BYTES, "{name}");
            assert!(serialized[1].chars().count() <= WEBHOOK_MAX_CHARS, "{name}");
            assert!(serialized[2].chars().count() <= WEBHOOK_MAX_CHARS, "{name}");
            assert!(serialized[3].len() <= CARD_MAX_BYTES, "{name}");
            assert!(
                !message.chars().any(|c| c != '\n' && c.is_control()),
                "{name}"
            );
            for value in [&content, &full, &summary] {
                for link in links_in(value) {
                    assert!(
                        link.starts_with("https://") || link.starts_with("http://"),
                        "{name}: {link}"
                    );
                    assert!(link.len() <= LINK_MAX_CHARS, "{name}");
                }
            }
            if let Some(build_link) = safe_link(&b.url) {
                assert_eq!(
                    links_in(&content).first(),
                    Some(&build_link),
                    "{name}: build link first"
                );
            }
            assert!(
                message.contains(expect_in_text),
                "{name}: {expect_in_text:?} not in {message}"
            );
        }
    }

    fn links_in(value: &Value) -> Vec<String> {
        match value {
            Value::Object(map) => map
                .iter()
                .flat_map(|(k, v)| match (k.as_str(), v) {
                    ("link", Value::String(link)) => vec![link.clone()],
                    _ => links_in(v),
                })
                .collect(),
            Value::Array(items) => items.iter().flat_map(links_in).collect(),
            _ => Vec::new(),
        }
    }

    /// A mention is the first item of a chatbot card, and its markup holds nothing but the
    /// JID and a defused name: a hostile name can neither end it early nor add to it.
    #[test]
    fn a_mention_is_one_markup_of_a_plain_jid_and_a_defused_name() {
        let mention = |jid: &str, name: Option<&str>| {
            let mut card = card(&build(), EventKind::Failed);
            card.mention = Some(CardMention {
                jid: jid.into(),
                name: name.map(str::to_owned),
            });
            card
        };
        let card = mention("abc.def@xmpp.zoom.us", Some("Jane <!all>|x> @here *b*"));
        assert!(chatbot_markdown(&card));
        let content = chatbot_content(&card);
        let first = &content["body"][0]["sections"][0];
        assert_eq!(
            first["text"],
            "<!abc.def@xmpp.zoom.us|Jane ‹!all›¦x› ＠here ∗b∗> please take a look"
        );
        assert_eq!(content.to_string().matches("<!").count(), 1);
        assert!(!plain_text(&card).contains("abc.def"), "no mention in text");
        assert!(!webhook_full(&card).to_string().contains("abc.def"));
        let unnamed = chatbot_content(&mention("abc@xmpp.zoom.us", None));
        assert_eq!(
            unnamed["body"][0]["sections"][0]["text"],
            "<!abc@xmpp.zoom.us|author> please take a look"
        );
        // Anything but a plain user JID mentions no one, and needs no markdown.
        for jid in [
            "all",
            "a|b@xmpp.zoom.us",
            "x>y@xmpp.zoom.us",
            "ci@conference.xmpp.zoom.us",
            "jane@example.com",
            "@xmpp.zoom.us",
        ] {
            let card = mention(jid, Some("Jane"));
            assert!(!chatbot_markdown(&card), "{jid}");
            assert!(!chatbot_content(&card).to_string().contains("<!"), "{jid}");
        }
    }

    #[test]
    fn hostile_build_data_is_neutralised() {
        let huge = "x".repeat(100_000);
        let huge_url = format!("https://evil.example/{huge}");
        check(
            "markdown",
            |b| {
                b.commit_message =
                    Some("**bold** [x](javascript:alert(1)) `code` ~strike~ _it_".into())
            },
            "∗∗bold∗∗ [x]（javascript：alert(1)) ˋcodeˋ ∼strike∼ ＿it＿",
        );
        check(
            "markdown branch",
            |b| b.git_ref = BuildRef::Branch("_x_/`y`/**z**".into()),
            "· ＿x＿/ˋyˋ/∗∗z∗∗",
        );
        check(
            "snake_case stays",
            |b| b.git_ref = BuildRef::Branch("feature/my_branch-2".into()),
            "· feature/my_branch-2\n",
        );
        check(
            "@all in a message",
            |b| b.commit_message = Some("@all deploy now".into()),
            "＠all deploy now",
        );
        check(
            "@here in a branch",
            |b| b.git_ref = BuildRef::Branch("@here please".into()),
            "· ＠here please\n",
        );
        check(
            "@channel author",
            |b| b.author = Some("@channel <@U123> <!all> <!here|here>".into()),
            "Author: ＠channel ‹＠U123› ‹!all› ‹!here|here›",
        );
        check(
            "@everyone status name",
            |b| b.name = "@everyone".into(),
            "＠everyone #42",
        );
        check(
            "mention in a state",
            |b| b.state = BuildState::InProgressOther("@all".into()),
            "Result: ＠all",
        );
        check(
            "zero-width mention",
            |b| {
                b.commit_message =
                    Some("@\u{200B}all a\u{200D}b\u{2066}c\u{202E}d\u{FEFF}e\u{E0041}".into())
            },
            "＠all abcde",
        );
        check(
            "zero-width link syntax",
            |b| b.commit_message = Some("[x]\u{200B}(javascript:alert(1))".into()),
            "[x]（javascript",
        );
        check(
            "bidi branch",
            |b| b.git_ref = BuildRef::Branch("main\u{202E}txt.exe".into()),
            "· maintxt.exe",
        );
        check(
            "newlines and tabs",
            |b| b.commit_message = Some("first\tline\r\nsecond line".into()),
            "0123456 first line\n",
        );
        check(
            "blank first line",
            |b| b.commit_message = Some("\n\n  real subject\nbody".into()),
            "0123456 real subject\n",
        );
        check(
            "html",
            |b| {
                b.commit_message =
                    Some("<script>alert(1)</script> <img src=x onerror=alert(1)>".into())
            },
            "‹script›alert(1)‹/script› ‹img",
        );
        check(
            "heading",
            |b| b.author = Some("# Big".into()),
            "Author: ＃ Big",
        );
        check(
            "100 KB message",
            |b| b.commit_message = Some(huge.clone()),
            &format!("0123456 {}…", "x".repeat(FIELD_MAX_CHARS)),
        );
        check(
            "100 KB branch",
            |b| b.git_ref = BuildRef::Branch(huge.clone()),
            &format!("· {}…\n", "x".repeat(NAME_MAX_CHARS)),
        );
        check(
            "100 KB everything",
            |b| {
                b.author = Some(huge.clone());
                b.name.clone_from(&huge);
                b.commit = Some(huge.clone());
                b.commit_message = Some(huge.clone());
                b.git_ref = BuildRef::Branch(huge.clone());
                b.state = BuildState::Completed(Outcome::Other(huge.clone()));
            },
            "Result: xxx",
        );
        check(
            "100 KB URLs",
            |b| {
                b.url.clone_from(&huge_url);
                b.commit_url = Some(huge_url.clone());
                b.ref_url = Some(huge_url.clone());
            },
            "Pipeline #42\n",
        );
        check(
            "javascript: everywhere",
            |b| {
                b.url = "javascript:alert(1)".into();
                b.commit_url = Some("JavaScript:alert(1)".into());
                b.ref_url = Some(" javascript:alert(1)".into());
            },
            "Commit: 0123456",
        );
        check(
            "schemes in every text field",
            |b| {
                b.commit_message = Some("see JavaScript:alert(1) and data:text/html,x".into());
                b.git_ref = BuildRef::Branch("java\tscript:alert(1)".into());
                b.author = Some("VBScript:MsgBox(1)".into());
                b.name = "j\u{200B}avascript:alert(1)".into();
                b.state = BuildState::InProgressOther(" Data\n: x".into());
            },
            "Commit: 0123456 see JavaScript：alert(1) and data：text/html,x",
        );
        check(
            "a name a plain text line puts a colon after",
            |b| {
                b.git_ref = BuildRef::Branch("JavaScript".into());
                b.name = "data".into();
                b.number = None;
            },
            "Branch JavaScript： https://",
        );
        check(
            "a scheme in a tag and a status",
            |b| {
                b.git_ref = BuildRef::Tag("javascript:alert(1)".into());
                b.state = BuildState::Completed(Outcome::Other("vbscript:x".into()));
            },
            "tag javascript：alert(1)",
        );
        check(
            "other schemes",
            |b| {
                b.url = "data:text/html,<script>alert(1)</script>".into();
                b.commit_url = Some("file:///etc/passwd".into());
                b.ref_url = Some("/relative/main".into());
            },
            "Pipeline #42\n",
        );
        check(
            "credentials and @ in URLs",
            |b| {
                b.url = "https://bitbucket.org@evil.example/x".into();
                b.commit_url = Some("https://x.example/@all?who=@here#@channel".into());
            },
            "Commit 0123456: https://x.example/%40all?who=%40here#%40channel",
        );
        check(
            "a bare commit, no commit hash",
            |b| {
                b.commit = None;
                b.git_ref = BuildRef::Commit;
            },
            "· commit\n",
        );
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
            ("a\u{2028}b\u{85}c",            10, "a b c"),
        ];
        for (input, max, expected) in table {
            assert_eq!(clean(input, max), expected, "{input:?}");
        }
        assert_eq!(clean(&"x".repeat(100_000), 300).chars().count(), 301);
    }

    #[test]
    fn defusing_keeps_length_and_is_idempotent() {
        #[rustfmt::skip]
        let table = [
            ("snake_case feature/my_branch", "snake_case feature/my_branch"),
            ("__init__.py",                  "＿＿init＿＿.py"),
            ("@all @here a@b",               "＠all ＠here a＠b"),
            ("<https://x|click>",            "‹https://x|click›"),
            ("[skip ci] (#12)",              "[skip ci] (#12)"),
            ("[a](b)",                       "[a]（b)"),
            ("#1 fix",                       "＃1 fix"),
            ("⏸️ PAUSED",                    "⏸️ PAUSED"),
            ("javascript:alert(1)",          "javascript：alert(1)"),
            ("x JAVA SCRIPT :y",             "x JAVA SCRIPT ：y"),
            ("(data:text/html",              "(data：text/html"),
            ("update data: later",           "update data： later"),
            ("metadata: kept",               "metadata: kept"),
            ("vbscriptish: kept",            "vbscriptish: kept"),
            ("https://x.example/a",          "https://x.example/a"),
        ];
        for (input, expected) in table {
            let once = defuse(input);
            assert_eq!(once, expected, "{input:?}");
            assert_eq!(once.chars().count(), input.chars().count(), "{input:?}");
            assert_eq!(defuse(&once), once, "{input:?}");
        }
    }

    #[test]
    fn only_http_links_survive() {
        #[rustfmt::skip]
        let table = [
            ("javascript:alert(1)",                None),
            ("/relative",                          None),
            ("mailto:a@b.example",                 None),
            ("https://user:pw@x.example/",         None),
            ("https://bitbucket.org@evil.example", None),
            ("https://x.example/p",                Some("https://x.example/p")),
            ("HTTP://X.example",                   Some("http://x.example/")),
            ("https://x.example/a b<c>",           Some("https://x.example/a%20b%3Cc%3E")),
            ("https://x.example/~u/@x",            Some("https://x.example/~u/%40x")),
        ];
        for (input, expected) in table {
            assert_eq!(safe_link(input).as_deref(), expected, "{input:?}");
        }
        assert_eq!(
            safe_link(&format!("https://x.example/{}", "a".repeat(LINK_MAX_CHARS))),
            None
        );
        let mut hostile = build();
        hostile.url = "javascript:alert(1)".into();
        let card = card(&hostile, EventKind::Failed);
        assert!(card.links.iter().all(|(text, _)| !text.starts_with("Open")));
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

    mod properties {
        use super::super::*;
        use crate::domain::{BuildKey, BuildState, Outcome, RepoId};
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// Any text up to `max` characters, control characters and all of Unicode included.
        fn any_text(max: usize) -> impl Strategy<Value = String> {
            vec(any::<char>(), 0..max).prop_map(String::from_iter)
        }

        /// Text that may pass for a link, or anything at all.
        fn any_link() -> impl Strategy<Value = String> {
            prop_oneof![
                any_text(1200).prop_map(|path| format!("https://x.example/{path}")),
                any_text(60),
            ]
        }

        fn any_state() -> impl Strategy<Value = BuildState> {
            prop_oneof![
                Just(BuildState::Pending),
                Just(BuildState::Running),
                Just(BuildState::Paused),
                any_text(200).prop_map(BuildState::InProgressOther),
                Just(BuildState::Completed(Outcome::Successful)),
                Just(BuildState::Completed(Outcome::Failed)),
                any_text(200).prop_map(|o| BuildState::Completed(Outcome::Other(o))),
            ]
        }

        fn any_ref() -> impl Strategy<Value = BuildRef> {
            prop_oneof![
                any_text(500).prop_map(BuildRef::Branch),
                any_text(500).prop_map(BuildRef::Tag),
                Just(BuildRef::Commit),
            ]
        }

        prop_compose! {
            fn any_build()(
                (owner, slug, id, job, name) in
                    (any_text(300), any_text(300), any_text(100), any_text(300), any_text(300)),
                (number, revision, created_ms, duration_secs) in
                    (any::<Option<u64>>(), any::<i64>(), any::<i64>(), any::<Option<u64>>()),
                git_ref in any_ref(),
                (commit, commit_message, author) in (
                    proptest::option::of(any_text(100)),
                    proptest::option::of(any_text(2000)),
                    proptest::option::of(any_text(500)),
                ),
                state in any_state(),
                (url, commit_url, ref_url) in
                    (any_link(), proptest::option::of(any_link()), proptest::option::of(any_link())),
                scheduled in any::<bool>(),
            ) -> BuildStatus {
                BuildStatus {
                    key: BuildKey { repo: RepoId::new(&owner, &slug), id },
                    job, name, number, revision, git_ref, commit, commit_message, author, state,
                    duration_secs, created_ms, url, commit_url, ref_url, scheduled,
                    authors: Vec::new(),
                }
            }
        }

        /// Each way a card travels holds it within Zoom's limits.
        fn assert_fits(card: &Card) -> Result<(), TestCaseError> {
            let content = chatbot_content(card).to_string();
            prop_assert!(content.len() <= CARD_MAX_BYTES, "{} bytes", content.len());
            let full = webhook_full(card).to_string();
            prop_assert!(full.chars().count() <= WEBHOOK_MAX_CHARS, "{full}");
            let message = webhook_message(card);
            prop_assert!(message.chars().count() <= WEBHOOK_MAX_CHARS, "{message}");
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever a build holds, its card renders without a panic and fits every form.
            #[test]
            fn any_build_renders_within_zooms_limits(
                build in any_build(),
                event in proptest::sample::select(EventKind::ALL.to_vec()),
            ) {
                let card = card(&build, event);
                assert_fits(&card)?;
                let _ = plain_text(&card);
            }

            /// A backlog of any builds is paged into summary cards that each fit their form.
            #[test]
            fn any_backlog_pages_into_cards_within_zooms_limits(
                builds in vec((any_build(), proptest::sample::select(EventKind::ALL.to_vec())), 1..12),
            ) {
                let updates: Vec<(EventKind, Card)> =
                    builds.iter().map(|(b, event)| (*event, card(b, *event))).collect();
                for form in [Form::Chatbot, Form::WebhookFull, Form::WebhookMessage] {
                    for page in summary_cards(&updates, "held back", form) {
                        prop_assert!(fits(&page, form), "{form:?}: {page:?}");
                    }
                }
            }
        }
    }
}
