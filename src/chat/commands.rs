//! Chat commands: which messages are addressed to bbzoom, what they ask, and the answer as a
//! card. Pure: the caller reads the configuration and the store and sends the card, which the
//! renderer cleans and defuses like any card (the command's text is untrusted).

use crate::config::Config;
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
    /// Anything else (quoted back, cleaned): answered with the list of commands.
    Unknown(String),
}

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
    Some(match words.as_slice() {
        [] => Command::Help,
        [word] if word.eq_ignore_ascii_case("help") => Command::Help,
        [word] if word.eq_ignore_ascii_case("list") => Command::List,
        [word] if word.eq_ignore_ascii_case("status") => Command::Status,
        _ => Command::Unknown(words.join(" ")),
    })
}

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

/// The answer to `command` from `channel` (a name of `[zoom.channels]`).
pub(crate) fn answer(
    command: &Command,
    channel: &str,
    config: &Config,
    lanes: impl Fn(&crate::domain::RepoId) -> Vec<(String, bool)>,
) -> Card {
    match command {
        Command::Help => help("bbzoom commands"),
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
            Card {
                head: format!("Subscriptions of {channel}"),
                sub_head: format!("{} subscription(s)", mine.len()),
                color: "#0E72ED",
                fields: mine.iter().map(|s| (s.url.clone(), s.describe())).collect(),
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
            Card {
                head: format!("Status of {channel}"),
                sub_head: format!("{failing} failing of {}", rows.len()),
                color: if failing > 0 { "#E02828" } else { "#0E8A16" },
                fields: rows
                    .into_iter()
                    .map(|(failing, lane)| {
                        let result = if failing {
                            "❌ failing"
                        } else {
                            "✅ passing"
                        };
                        (lane, result.to_owned())
                    })
                    .collect(),
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
    Card {
        head: head.to_owned(),
        sub_head: "Write `bbzoom COMMAND`, or mention bbzoom, in this channel".to_owned(),
        color: "#0E72ED",
        fields: vec![
            ("help".into(), "this list".into()),
            ("list".into(), "this channel's subscriptions".into()),
            (
                "status".into(),
                "the latest result of each subscribed branch, failing ones first".into(),
            ),
        ],
        ..Card::default()
    }
}
