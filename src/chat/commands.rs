//! Chat commands: which messages are addressed to bbzoom, what they ask, and the answer as a
//! card. Pure: the caller reads the configuration and the store and sends the card, which the
//! renderer cleans and defuses like any card (the command's text is untrusted).

use crate::config::{Config, Origin};
use crate::mute::{LONGEST_MUTE, Mute, MuteScope, SHORTEST_MUTE};
use crate::render::Card;
use crate::zoom::events::ChatMessage;

/// The word that addresses bbzoom in a plain message: `bbzoom help`.
const PREFIX: &str = "bbzoom";

/// Longest piece of a command quoted back in an answer.
const QUOTED_MAX_CHARS: usize = 60;

/// What a message addressed to bbzoom asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Help,
    /// This channel's subscriptions.
    List,
    /// The latest result per subscribed repository and branch of this channel.
    Status,
    /// `mute REPO|all DURATION`: hold this channel's cards of a repository (or of all).
    Mute {
        target: Target,
        length: String,
    },
    /// `unmute [REPO|all]`: end a mute now (`None`: every mute of the channel).
    Unmute(Option<String>),
    /// `subscribe REPO-URL [branches:...] [tags:...] [events:...] [meeting_on:...]` (admins
    /// only).
    Subscribe(SubscribeArgs),
    /// `unsubscribe REPO-URL` (admins only).
    Unsubscribe {
        url: String,
    },
    /// A command with arguments it does not take: its name and what is wrong.
    Usage {
        command: &'static str,
        problem: String,
    },
    /// Anything else (quoted back, cleaned): answered with the list of commands.
    Unknown(String),
}

impl Command {
    /// Whether only `[zoom.events] admins` may run it: it changes what is subscribed.
    pub(crate) fn admin_only(&self) -> bool {
        matches!(self, Command::Subscribe(_) | Command::Unsubscribe { .. })
    }
}

/// What a mute names: a repository as typed (a URL, or `workspace/repo`), or every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    All,
    Repo(String),
}

/// `subscribe`'s arguments as typed: `None` for a key not given (the file's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubscribeArgs {
    pub(crate) url: String,
    pub(crate) branches: Option<Vec<String>>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) events: Option<Vec<String>>,
    pub(crate) meeting_on: Option<Vec<String>>,
}

/// Each command that takes arguments, as `help` and a usage error show it.
const USAGE: [(&str, &str); 4] = [
    (
        "mute",
        "mute REPO|all DURATION, like `bbzoom mute acme/api 2h` or `bbzoom mute all 30m`",
    ),
    (
        "unmute",
        "unmute [REPO|all], like `bbzoom unmute acme/api`; alone, every mute ends",
    ),
    (
        "subscribe",
        "subscribe REPO-URL [branches:a,b] [tags:v*] [events:failed,fixed] \
         [meeting_on:failed], like `bbzoom subscribe https://bitbucket.org/acme/web \
         branches:main,release/* events:failed,fixed`",
    ),
    (
        "unsubscribe",
        "unsubscribe REPO-URL, like `bbzoom unsubscribe https://bitbucket.org/acme/web`",
    ),
];

/// The command `message` holds, if it is addressed to bbzoom: it starts with `bbzoom`
/// (any case) followed by a space or nothing, or with an @-mention of `bot` (the
/// `[zoom.events] user`, matched by email or user id, as Zoom's `at_items` name it) at its
/// very start. Anything else is conversation, and left alone.
pub(crate) fn parse(message: &ChatMessage, bot: &str) -> Option<Command> {
    let text = message.text.trim_start();
    let rest = match text.get(..PREFIX.len()) {
        Some(head)
            if head.eq_ignore_ascii_case(PREFIX)
                && text[PREFIX.len()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace) =>
        {
            &text[PREFIX.len()..]
        }
        _ => mentioned(message, bot)?,
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let Some((name, args)) = words.split_first() else {
        return Some(Command::Help);
    };
    let is = |word: &str| name.eq_ignore_ascii_case(word);
    let usage = |command: &'static str, problem: &str| Command::Usage {
        command,
        problem: problem.to_owned(),
    };
    Some(match args {
        [] if is("help") => Command::Help,
        [] if is("list") => Command::List,
        [] if is("status") => Command::Status,
        [target, length] if is("mute") => Command::Mute {
            target: if target.eq_ignore_ascii_case("all") {
                Target::All
            } else {
                Target::Repo(unbracketed(target).to_owned())
            },
            length: (*length).to_owned(),
        },
        _ if is("mute") => usage("mute", "give a repository (or all) and how long"),
        [] if is("unmute") => Command::Unmute(None),
        [all] if is("unmute") && all.eq_ignore_ascii_case("all") => Command::Unmute(None),
        [repo] if is("unmute") => Command::Unmute(Some(unbracketed(repo).to_owned())),
        _ if is("unmute") => usage("unmute", "give one repository, or nothing"),
        [url, options @ ..] if is("subscribe") && !url.contains(',') => {
            match subscribe_args(url, options) {
                Ok(args) => Command::Subscribe(args),
                Err(problem) => usage("subscribe", &problem),
            }
        }
        _ if is("subscribe") => usage("subscribe", "give the repository's URL first"),
        [url] if is("unsubscribe") => Command::Unsubscribe {
            url: unbracketed(url).to_owned(),
        },
        _ if is("unsubscribe") => usage("unsubscribe", "give the repository's URL, and only it"),
        _ => Command::Unknown(words.join(" ")),
    })
}

/// A URL as a chat may wrap it when it links it: `<https://...>`.
fn unbracketed(word: &str) -> &str {
    word.strip_prefix('<')
        .and_then(|w| w.strip_suffix('>'))
        .unwrap_or(word)
}

/// `subscribe`'s URL and `key:a,b` options; each key once.
fn subscribe_args(url: &str, options: &[&str]) -> Result<SubscribeArgs, String> {
    let url = unbracketed(url);
    if url.contains(':')
        && OPTION_KEYS
            .iter()
            .any(|k| url.starts_with(&format!("{k}:")))
    {
        return Err("give the repository's URL first".into());
    }
    let mut args = SubscribeArgs {
        url: url.to_owned(),
        ..SubscribeArgs::default()
    };
    for option in options {
        let Some((key, values)) = option.split_once(':') else {
            return Err(format!(
                "{} is not an option; write branches:, tags:, events: or meeting_on: and a \
                 comma-separated list",
                crate::render::clean(option, QUOTED_MAX_CHARS)
            ));
        };
        let list: Vec<String> = values
            .split(',')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        let slot = match key.to_ascii_lowercase().as_str() {
            "branches" => &mut args.branches,
            "tags" => &mut args.tags,
            "events" => &mut args.events,
            "meeting_on" => &mut args.meeting_on,
            _ => {
                return Err(format!(
                    "unknown option {}:; the options are branches:, tags:, events: and \
                     meeting_on:",
                    crate::render::clean(key, QUOTED_MAX_CHARS)
                ));
            }
        };
        if slot.replace(list).is_some() {
            return Err(format!("{key}: is given twice; give each option once"));
        }
    }
    Ok(args)
}

/// The options `subscribe` takes.
const OPTION_KEYS: [&str; 4] = ["branches", "tags", "events", "meeting_on"];

/// The text after a leading mention of `bot`, if the message begins with one.
fn mentioned<'a>(message: &'a ChatMessage, bot: &str) -> Option<&'a str> {
    let mention = message
        .mentions
        .iter()
        .find(|m| m.start == 0 && (m.user.eq_ignore_ascii_case(bot) || m.user_id == bot))?;
    // Positions count characters, the end just past the mention ("@bbzoom" is 0 to 7).
    let after = message
        .text
        .char_indices()
        .nth(mention.end)
        .map_or(message.text.len(), |(at, _)| at);
    Some(&message.text[after..])
}

/// What `list` and `status` show of a channel's mutes: those in force, and how many cards they
/// hold.
#[derive(Debug, Default)]
pub(crate) struct Muted {
    pub(crate) mutes: Vec<Mute>,
    pub(crate) held: usize,
}

/// The answer to `command` from `channel` (a name of `[zoom.channels]`), for the commands that
/// only read: help, list, status, and a wrong use of any.
pub(crate) fn answer(
    command: &Command,
    channel: &str,
    config: &Config,
    muted: &Muted,
    lanes: impl Fn(&crate::domain::RepoId) -> Vec<(String, bool)>,
) -> Card {
    match command {
        Command::Help => help("bbzoom commands"),
        Command::Usage { command, problem } => {
            let usage = USAGE
                .iter()
                .find(|(name, _)| name == command)
                .map_or("", |(_, usage)| usage);
            Card {
                head: format!("⚠️ {command}: {problem}"),
                sub_head: format!("Usage: bbzoom {usage}"),
                color: "#E0A800",
                fields: vec![("More".into(), "`bbzoom help` lists every command".into())],
                ..Card::default()
            }
        }
        Command::Mute { .. }
        | Command::Unmute(_)
        | Command::Subscribe(_)
        | Command::Unsubscribe { .. } => help("bbzoom commands"),
        Command::Unknown(asked) => {
            let mut card = help("Unknown command");
            card.fields.insert(
                0,
                (
                    "You asked".into(),
                    crate::render::clean(asked, QUOTED_MAX_CHARS),
                ),
            );
            card
        }
        Command::List => {
            let mine: Vec<_> = config
                .subscriptions
                .iter()
                .filter(|s| s.channels.iter().any(|c| c == channel))
                .collect();
            let mut fields = muted_fields(muted);
            fields.extend(mine.iter().map(|s| {
                (
                    s.url.clone(),
                    format!("{}; {}", s.describe(), origin(&s.origin)),
                )
            }));
            Card {
                head: format!("Subscriptions of {channel}"),
                sub_head: format!("{} subscription(s)", mine.len()),
                color: "#0E72ED",
                fields,
                ..Card::default()
            }
        }
        Command::Status => {
            let mut rows: Vec<(bool, String)> = Vec::new();
            for s in config
                .subscriptions
                .iter()
                .filter(|s| s.channels.iter().any(|c| c == channel))
            {
                for (lane, failing) in lanes(&s.repo) {
                    let row = (failing, format!("{} · {lane}", s.repo));
                    if !rows.contains(&row) {
                        rows.push(row);
                    }
                }
            }
            // Failing ones first, then by name.
            rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let failing = rows.iter().filter(|r| r.0).count();
            let total = rows.len();
            let mut fields = muted_fields(muted);
            fields.extend(rows.into_iter().map(|(failing, lane)| {
                let result = if failing {
                    "❌ failing"
                } else {
                    "✅ passing"
                };
                (lane, result.to_owned())
            }));
            Card {
                head: format!("Status of {channel}"),
                sub_head: format!("{failing} failing of {total}"),
                color: if failing > 0 { "#E02828" } else { "#0E8A16" },
                fields,
                ..Card::default()
            }
        }
    }
}

/// The one answer to a person over the rate limit; what they send next is ignored until the
/// limit admits them again.
pub(crate) fn slow_down() -> Card {
    Card {
        head: "Slow down".to_owned(),
        sub_head: "Too many commands: the next ones are ignored for a while".to_owned(),
        color: "#E0A800",
        ..Card::default()
    }
}

/// The list of commands, under `head`.
fn help(head: &str) -> Card {
    let usage = |name: &str| {
        USAGE
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, usage)| usage)
            .split(", like")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    Card {
        head: head.to_owned(),
        sub_head: "Write `bbzoom COMMAND`, or mention bbzoom, in this channel".to_owned(),
        color: "#0E72ED",
        fields: vec![
            ("help".into(), "this list".into()),
            (
                "list".into(),
                "this channel's subscriptions, and its mutes".into(),
            ),
            (
                "status".into(),
                "the latest result of each subscribed branch, failing ones first".into(),
            ),
            (
                "mute".into(),
                format!(
                    "{}: hold this channel's cards of a repository (workspace/repo or its URL), \
                     or of all, for {SHORTEST_MUTE} to {LONGEST_MUTE}, e.g. `bbzoom mute \
                     acme/api 2h`; when it ends, one card sums up what was held",
                    usage("mute")
                ),
            ),
            (
                "unmute".into(),
                format!(
                    "{}: end a mute now (without REPO, every mute of this channel); the \
                     summary follows",
                    usage("unmute")
                ),
            ),
            (
                "subscribe (admins only)".into(),
                format!(
                    "{}: subscribe this channel to a repository's builds, e.g. `bbzoom \
                     subscribe https://bitbucket.org/acme/web branches:main \
                     events:failed,fixed` (default: every branch and tag; failed and fixed)",
                    usage("subscribe")
                ),
            ),
            (
                "unsubscribe (admins only)".into(),
                format!(
                    "{}: remove this channel's subscriptions of a repository made in the chat",
                    usage("unsubscribe")
                ),
            ),
        ],
        ..Card::default()
    }
}

/// A time on the daemon's clock as people read it: "2025-06-01 14:30 UTC".
pub(crate) fn utc(ms: i64) -> String {
    crate::clock::utc_text(
        ms,
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"),
    )
    .unwrap_or_else(|| "an unknown time".to_owned())
}

/// The fields `list` and `status` open with: each mute in force, and the cards held.
fn muted_fields(muted: &Muted) -> Vec<(String, String)> {
    let n = muted.mutes.len();
    muted
        .mutes
        .iter()
        .map(|m| {
            let held = if n == 1 {
                format!(", {} card(s) held", muted.held)
            } else {
                String::new()
            };
            (
                format!("🔕 Muted: {}", m.scope),
                format!("until {} (by {}){held}", utc(m.until_ms), m.by),
            )
        })
        .collect()
}

/// Where a subscription comes from, as the channel reads it.
fn origin(origin: &Origin) -> String {
    match &origin.chat {
        None => format!("in the configuration, line {}", origin.line),
        Some(made) => format!(
            "made in the chat{}{}",
            made.by
                .as_ref()
                .map_or(String::new(), |by| format!(" by {by}")),
            made.at
                .as_ref()
                .map_or(String::new(), |at| format!(" at {at}"))
        ),
    }
}

/// The answer to `mute`: what is muted, until when, and what happens to its cards.
pub(crate) fn muted(
    mute: &Mute,
    length: &str,
    replaced: Option<&Mute>,
    all: Option<&Mute>,
) -> Card {
    let mut fields = vec![(
        "Its cards".to_owned(),
        format!(
            "wait in bbzoom; when the mute ends (at its end, or with `bbzoom unmute{}`) one \
             card sums up every result held",
            match &mute.scope {
                MuteScope::All => String::new(),
                MuteScope::Repo(repo) => format!(" {repo}"),
            }
        ),
    )];
    if let Some(old) = replaced {
        fields.push((
            "Replaces".into(),
            format!("the mute until {} (by {})", utc(old.until_ms), old.by),
        ));
    }
    if let Some(all) = all.filter(|a| a.scope != mute.scope) {
        fields.push((
            "Also".into(),
            format!("every repository is muted until {}", utc(all.until_ms)),
        ));
    }
    Card {
        head: format!("🔕 Muted {} in {} for {length}", mute.scope, mute.channel),
        sub_head: format!("until {} · by {}", utc(mute.until_ms), mute.by),
        color: "#6B778C",
        fields,
        ..Card::default()
    }
}

/// The answer to `unmute`: the mutes `ended` (none: there was nothing to end), the cards
/// their summary holds, and mutes still in force over the same repositories.
pub(crate) fn unmuted(channel: &str, ended: &[Mute], summarised: usize, still: &[Mute]) -> Card {
    let mut fields: Vec<(String, String)> = still
        .iter()
        .map(|m| {
            (
                format!("Still muted: {}", m.scope),
                format!(
                    "until {} (by {}); `bbzoom unmute` ends every mute",
                    utc(m.until_ms),
                    m.by
                ),
            )
        })
        .collect();
    if ended.is_empty() {
        return Card {
            head: format!("Nothing to unmute in {channel}"),
            sub_head: "No such mute is in force; `bbzoom list` shows this channel's mutes".into(),
            color: "#E0A800",
            fields,
            ..Card::default()
        };
    }
    let scopes: Vec<String> = ended.iter().map(|m| m.scope.to_string()).collect();
    fields.insert(
        0,
        (
            "Held meanwhile".into(),
            match summarised {
                0 => "nothing".to_owned(),
                n => format!("{n} build update(s): one card sums them up next"),
            },
        ),
    );
    Card {
        head: format!("🔔 Unmuted {} in {channel}", scopes.join(", ")),
        sub_head: "Cards go out as usual again".into(),
        color: "#0E72ED",
        fields,
        ..Card::default()
    }
}

/// The answer to someone not in `[zoom.events] admins` asking for `command`.
pub(crate) fn refused(command: &Command) -> Card {
    let name = match command {
        Command::Subscribe(_) => "subscribe",
        _ => "unsubscribe",
    };
    Card {
        head: format!("⛔ Only bbzoom's admins may {name}"),
        sub_head: "It changes what this channel is told; ask one of the people listed in \
                   [zoom.events] admins"
            .into(),
        color: "#E02828",
        ..Card::default()
    }
}

/// A command that could not be carried out: `head` and why.
pub(crate) fn failed(head: &str, why: &str) -> Card {
    Card {
        head: format!("⚠️ {head}"),
        sub_head: String::new(),
        color: "#E0A800",
        fields: vec![("Why".into(), why.to_owned())],
        ..Card::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> ChatMessage {
        ChatMessage {
            id: "m1".into(),
            channel_id: "ci".into(),
            sender: "jane@example.com".into(),
            sender_id: "u1".into(),
            text: text.into(),
            mentions: Vec::new(),
            thread: None,
            at_ms: 0,
        }
    }

    fn parsed(text: &str) -> Command {
        parse(&message(text), "bot@example.com").unwrap_or_else(|| panic!("{text:?}"))
    }

    fn usage(text: &str) -> (&'static str, String) {
        match parsed(text) {
            Command::Usage { command, problem } => (command, problem),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn mute_and_unmute_take_a_repository_or_all() {
        assert_eq!(
            parsed("bbzoom mute acme/api 2h"),
            Command::Mute {
                target: Target::Repo("acme/api".into()),
                length: "2h".into()
            }
        );
        assert_eq!(
            parsed("bbzoom MUTE <https://bitbucket.org/acme/api> 1h30m"),
            Command::Mute {
                target: Target::Repo("https://bitbucket.org/acme/api".into()),
                length: "1h30m".into()
            }
        );
        assert_eq!(
            parsed("bbzoom mute ALL 30m"),
            Command::Mute {
                target: Target::All,
                length: "30m".into()
            }
        );
        assert_eq!(parsed("bbzoom unmute"), Command::Unmute(None));
        assert_eq!(parsed("bbzoom unmute all"), Command::Unmute(None));
        assert_eq!(
            parsed("bbzoom unmute acme/api"),
            Command::Unmute(Some("acme/api".into()))
        );
        for wrong in ["bbzoom mute", "bbzoom mute acme/api", "bbzoom mute a b c"] {
            assert_eq!(usage(wrong).0, "mute", "{wrong}");
        }
        assert_eq!(usage("bbzoom unmute a b").0, "unmute");
    }

    #[test]
    fn subscribe_takes_a_url_and_each_option_once() {
        assert_eq!(
            parsed(
                "bbzoom subscribe https://bitbucket.org/acme/web branches:main,release/* \
                 events:failed,fixed"
            ),
            Command::Subscribe(SubscribeArgs {
                url: "https://bitbucket.org/acme/web".into(),
                branches: Some(vec!["main".into(), "release/*".into()]),
                tags: None,
                events: Some(vec!["failed".into(), "fixed".into()]),
                meeting_on: None,
            })
        );
        assert_eq!(
            parsed("bbzoom subscribe acme/web Tags:v* branches:"),
            Command::Subscribe(SubscribeArgs {
                url: "acme/web".into(),
                branches: Some(Vec::new()),
                tags: Some(vec!["v*".into()]),
                events: None,
                meeting_on: None,
            })
        );
        assert_eq!(
            parsed("bbzoom subscribe acme/web Meeting_On:failed,still_failing"),
            Command::Subscribe(SubscribeArgs {
                url: "acme/web".into(),
                meeting_on: Some(vec!["failed".into(), "still_failing".into()]),
                ..SubscribeArgs::default()
            })
        );
        assert_eq!(
            parsed("bbzoom unsubscribe <https://bitbucket.org/acme/web>"),
            Command::Unsubscribe {
                url: "https://bitbucket.org/acme/web".into()
            }
        );
        let (command, problem) = usage("bbzoom subscribe https://bitbucket.org/a/b branch:main");
        assert_eq!(command, "subscribe");
        assert!(problem.contains("unknown option branch:"), "{problem}");
        let (_, problem) = usage("bbzoom subscribe https://bitbucket.org/a/b events:a events:b");
        assert!(problem.contains("given twice"), "{problem}");
        let (_, problem) = usage("bbzoom subscribe https://bitbucket.org/a/b main");
        assert!(problem.contains("is not an option"), "{problem}");
        assert_eq!(usage("bbzoom subscribe").0, "subscribe");
        assert_eq!(usage("bbzoom subscribe branches:main").0, "subscribe");
        assert_eq!(usage("bbzoom unsubscribe").0, "unsubscribe");
        assert_eq!(usage("bbzoom unsubscribe a b").0, "unsubscribe");
        assert!(parsed("bbzoom subscribe x").admin_only());
        assert!(parsed("bbzoom unsubscribe x").admin_only());
        assert!(!parsed("bbzoom mute all 1h").admin_only());
    }

    #[test]
    fn help_lists_every_command_and_marks_the_admins_ones() {
        let card = help("bbzoom commands");
        let keys: Vec<&str> = card.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "help",
                "list",
                "status",
                "mute",
                "unmute",
                "subscribe (admins only)",
                "unsubscribe (admins only)"
            ]
        );
        assert!(card.fields[3].1.starts_with("mute REPO|all DURATION: "));
        assert!(card.fields[5].1.contains("[branches:a,b]"));
        // Within the renderer's limits: nothing is cut.
        for (key, value) in &card.fields {
            assert!(key.chars().count() <= 60, "{key}");
            assert!(value.chars().count() <= 400, "{value}");
        }
    }

    #[test]
    fn a_usage_error_says_what_is_wrong_and_how_to_write_it() {
        let config =
            crate::config::Config::parse(std::path::Path::new("/x/config.toml"), TEST_CONFIG)
                .unwrap();
        let card = answer(&usage_command(), "ci", &config, &Muted::default(), |_| {
            Vec::new()
        });
        assert_eq!(
            card.head,
            "⚠️ mute: give a repository (or all) and how long"
        );
        assert!(
            card.sub_head
                .starts_with("Usage: bbzoom mute REPO|all DURATION")
        );
    }

    fn usage_command() -> Command {
        parsed("bbzoom mute acme/api")
    }

    #[test]
    fn list_and_status_show_the_mutes_in_force() {
        let config =
            crate::config::Config::parse(std::path::Path::new("/x/config.toml"), TEST_CONFIG)
                .unwrap();
        let muted = Muted {
            mutes: vec![Mute {
                channel: "ci".into(),
                scope: MuteScope::Repo(crate::domain::RepoId::new("acme", "api")),
                since_ms: 0,
                until_ms: 1_748_772_600_000,
                by: "jane@example.com".into(),
            }],
            held: 3,
        };
        let list = answer(&Command::List, "ci", &config, &muted, |_| Vec::new());
        assert_eq!(
            list.fields[0],
            (
                "🔕 Muted: acme/api".to_owned(),
                "until 2025-06-01 10:10 UTC (by jane@example.com), 3 card(s) held".to_owned()
            )
        );
        assert!(
            list.fields[1].1.ends_with("in the configuration, line 19"),
            "{list:?}"
        );
        let status = answer(&Command::Status, "ci", &config, &muted, |_| {
            vec![("main · pipeline".into(), true)]
        });
        assert_eq!(status.fields[0].0, "🔕 Muted: acme/api");
        assert_eq!(status.sub_head, "1 failing of 1");
    }

    const TEST_CONFIG: &str = r#"
[daemon]
state_dir = "state"
credentials = "credentials.age"
identity = "identity.txt"

[bitbucket]
credential = "acme-ci"

[zoom.chatbot]
credential = "zoom-bot"
account_id = "AbCdEf"
robot_jid = "v1bot@xmpp.zoom.us"
user_jid = "user@xmpp.zoom.us"

[zoom.channels.ci]
to_jid = "ci@conference.xmpp.zoom.us"

[[subscription]]
repository = "https://bitbucket.org/acme/api"
channels = ["ci"]
"#;
}
