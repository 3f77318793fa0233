//! `subscribe` and `unsubscribe` from the chat: the admins' changes to what a channel is
//! told, written to the chat's subscriptions file (`[zoom.events] subscriptions_file`).
//!
//! The configuration stays what the admin edits: the chat writes `[[subscription]]` tables in
//! a file of its own, each with a comment saying who made it, in which channel and when
//! (`config::chat_comment`), using the same editing code as `bbzoom configure`. A change is
//! built as text, then validated with the configuration exactly as the daemon will read it
//! (`Config::parse_with_chat`: the arguments are checked by the code that checks the TOML),
//! and only then written (atomically) and applied by the supervisor's reload; if the reload
//! refuses it, the file is put back as it was. The chat only removes what the chat made in
//! the channel asking: a subscription of the configuration file is the admin's.
//!
//! [`plan`] and the answers are here; the supervisor writes, reloads and restores, one
//! request at a time (as it applies every reload).

use super::commands::{self, Command, SubscribeArgs};
use crate::config::edit::{self, SubscriptionKeys};
use crate::config::{Config, ConfigError, Subscription};
use crate::control::ReloadSummary;
use crate::domain::RepoId;
use crate::render::Card;
use std::path::{Path, PathBuf};

/// What a new chat subscriptions file begins with.
const HEADER: &str = "\
# Subscriptions made in Zoom Team Chat with `bbzoom subscribe`: the file the configuration's
# [zoom.events] subscriptions_file names, read with it. bbzoom rewrites it whole when an admin
# subscribes or unsubscribes in a channel, keeping what it does not change; it holds
# [[subscription]] tables only. Each table's comment says who made it, where and when.
";

/// A change of the chat's subscriptions file, validated, not written yet.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The chat's subscriptions file.
    pub(crate) file: PathBuf,
    /// What it holds now; `None`: it does not exist.
    pub(crate) before: Option<String>,
    /// What it will hold.
    pub(crate) after: String,
    /// What the change does, for the answer.
    change: Change,
}

#[derive(Debug)]
enum Change {
    /// `subscription` (as the changed configuration reads it) was added; `replaced` of this
    /// channel's chat-made ones of the repository were removed for it; `also` lists where
    /// the configuration file itself subscribes the channel to it.
    Subscribed {
        subscription: Box<Subscription>,
        replaced: usize,
        also: Vec<String>,
    },
    /// `removed` chat-made subscriptions of `repo` no longer post to the channel; `kept`
    /// lists those of the configuration file that still do.
    Unsubscribed {
        repo: RepoId,
        removed: usize,
        kept: Vec<String>,
    },
}

/// What `command` (`subscribe` or `unsubscribe`, asked by `sender` in `channel` at `now_ms`)
/// changes in the chat's subscriptions file of the configuration at `config_path`, as read
/// from disk now; or the answer saying why nothing changes.
pub(crate) fn plan(
    config_path: &Path,
    command: &Command,
    channel: &str,
    sender: &str,
    now_ms: i64,
) -> Result<Plan, Box<Card>> {
    let not = |head: &str| {
        let head = head.to_owned();
        move |why: String| no(&head, &why)
    };
    let main_text = Config::read(config_path).map_err(|e| invalid_now(&e))?;
    let current = Config::parse(config_path, &main_text).map_err(|e| invalid_now(&e))?;
    let file = current
        .zoom
        .events
        .as_ref()
        .and_then(|e| e.subscriptions_file.clone())
        .ok_or_else(|| {
            no(
                "Subscriptions cannot be changed from the chat here",
                "the configuration names no [zoom.events] subscriptions_file for them; an admin \
                 adds one on the server (config.example.toml shows how)",
            )
        })?;
    let before = match crate::files::read_text(&file) {
        Ok((text, _)) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(no(
                "Nothing changed",
                &format!("{} cannot be read: {e}", file.display()),
            ));
        }
    };
    let text = before.clone().unwrap_or_else(|| HEADER.to_owned());
    let (url, head) = match command {
        Command::Subscribe(args) => (&args.url, "Not subscribed"),
        Command::Unsubscribe { url } => (&url.clone(), "Nothing unsubscribed"),
        _ => {
            return Err(no("Nothing changed", "not a subscription command"));
        }
    };
    let written = expand(&current, url);
    let repo = edit::repository_of(&current, &written).map_err(not(head))?;
    let in_channel = |s: &&Subscription| s.repo == repo && s.channels.iter().any(|c| c == channel);
    // This channel's subscriptions of the repository, made in the chat or not.
    let (made_here, admins): (Vec<&Subscription>, Vec<&Subscription>) = current
        .subscriptions
        .iter()
        .filter(in_channel)
        .partition(|s| s.origin.chat.is_some());
    let places: Vec<String> = admins
        .iter()
        .map(|s| format!("{} line {}", s.origin.file.display(), s.origin.line))
        .collect();
    let edit_err = |e: ConfigError| no(head, &e.to_string());
    // Last first, so earlier indices still name the same tables.
    let mut ours: Vec<&Subscription> = made_here.clone();
    ours.sort_by_key(|s| std::cmp::Reverse(s.origin.index));
    let mut after = text.clone();
    let change = match command {
        Command::Subscribe(args) => {
            // A subscription of this channel made in the chat is replaced by the new one; one
            // posting to other channels too only loses this channel.
            for s in &ours {
                after = without_channel(&file, &after, s, channel).map_err(edit_err)?;
            }
            let comment =
                crate::config::chat_comment(sender, channel, &crate::clock::utc_seconds(now_ms));
            after = edit::add_commented_subscription(
                &file,
                &after,
                written.trim(),
                &keys(args, channel),
                &comment,
            )
            .map_err(edit_err)?;
            let updated = checked(config_path, &main_text, &after, head)?;
            let subscription = updated
                .subscriptions
                .iter()
                .rfind(|s| s.repo == repo && s.origin.chat.is_some())
                .cloned()
                .ok_or_else(|| no(head, "the edited file does not read back as intended"))?;
            Change::Subscribed {
                subscription: Box::new(subscription),
                replaced: made_here.len(),
                also: places,
            }
        }
        _ => {
            if made_here.is_empty() {
                let why = if places.is_empty() {
                    format!("{repo} is not subscribed in {channel}")
                } else {
                    format!(
                        "{repo} is subscribed in {channel} by the configuration file ({}), which \
                         only an admin changes, on the server (`bbzoom unsubscribe URL` there)",
                        places.join(", ")
                    )
                };
                return Err(no(head, &why));
            }
            for s in &ours {
                after = without_channel(&file, &after, s, channel).map_err(edit_err)?;
            }
            checked(config_path, &main_text, &after, head)?;
            Change::Unsubscribed {
                repo: repo.clone(),
                removed: made_here.len(),
                kept: places,
            }
        }
    };
    Ok(Plan {
        file,
        before,
        after,
        change,
    })
}

/// The configuration at `config_path` (its text `main_text`) with the chat's file holding
/// `chat`, as the daemon will read it; an error is the answer, naming what is wrong.
fn checked(
    config_path: &Path,
    main_text: &str,
    chat: &str,
    head: &str,
) -> Result<Config, Box<Card>> {
    Config::parse_with_chat(config_path, main_text, chat).map_err(|e| {
        // About the table the command wrote: its key and message say what to fix.
        let why = match e.key().and_then(|k| k.split_once('.')) {
            Some((_, key)) if e.key().is_some_and(|k| k.starts_with("subscription[")) => {
                format!("{key}: {}", e.message())
            }
            _ => e.to_string(),
        };
        no(head, &why)
    })
}

/// The answer that nothing changed: `head`, and why.
fn no(head: &str, why: &str) -> Box<Card> {
    Box::new(commands::failed(head, why))
}

/// The configuration does not load now: nothing is changed from the chat until it does.
fn invalid_now(e: &ConfigError) -> Box<Card> {
    no(
        "Nothing changed: the configuration does not load now",
        &format!("{e}; an admin fixes it on the server first (`bbzoom check`)"),
    )
}

/// `text` (the chat's file at `file`) without `channel` in `s`'s table: the table goes if it
/// posts nowhere else.
fn without_channel(
    file: &Path,
    text: &str,
    s: &Subscription,
    channel: &str,
) -> Result<String, ConfigError> {
    let others: Vec<String> = s
        .channels
        .iter()
        .filter(|c| *c != channel)
        .cloned()
        .collect();
    if others.is_empty() {
        edit::remove_subscription(file, text, s.origin.index)
    } else {
        let keys = SubscriptionKeys {
            channels: Some(others),
            ..SubscriptionKeys::default()
        };
        edit::update_subscription(file, text, s.origin.index, &keys)
    }
}

/// The keys `subscribe` writes: those given, and `channel`.
fn keys(args: &SubscribeArgs, channel: &str) -> SubscriptionKeys {
    SubscriptionKeys {
        branches: args.branches.clone(),
        tags: args.tags.clone(),
        events: args.events.clone(),
        meeting_on: args.meeting_on.clone(),
        channels: Some(vec![channel.to_owned()]),
        ..SubscriptionKeys::default()
    }
}

/// `url` as the file will hold it: `workspace/repo` alone is a Cloud repository, written as its
/// web URL; anything else as typed (the configuration's code reads it).
fn expand(config: &Config, url: &str) -> String {
    let url = url.trim();
    let bare = !url.contains(':') && !url.contains('@') && url.matches('/').count() == 1;
    if bare {
        format!(
            "{}/{url}",
            config.bitbucket.web_url.as_str().trim_end_matches('/')
        )
    } else {
        url.to_owned()
    }
}

/// Replaces the chat's file with `text`, whole or not at all (a link: its target), keeping
/// its mode (a new one: 0644, like a configuration file).
pub(crate) fn write(file: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let mode = crate::atomic_file::mode_or(&target, 0o644);
    crate::atomic_file::write(&target, text.as_bytes(), mode)
}

/// Puts the file of `plan` back as it was before it was written.
pub(crate) fn restore(plan: &Plan) -> std::io::Result<()> {
    match &plan.before {
        Some(text) => write(&plan.file, text),
        None => std::fs::remove_file(&plan.file),
    }
}

/// The answer once `plan` was written and the reload that applied it said `summary`.
pub(crate) fn done(plan: &Plan, summary: &ReloadSummary) -> Card {
    let polled = if summary.added.is_empty() {
        "nothing new to poll".to_owned()
    } else {
        format!("now polling {}", summary.added.join(", "))
    };
    match &plan.change {
        Change::Subscribed {
            subscription,
            replaced,
            also,
        } => {
            let channel = subscription.channels.join(", ");
            let mut fields = vec![
                ("Settings".to_owned(), subscription.describe()),
                (
                    "Written".into(),
                    format!(
                        "to {} line {}, {}",
                        plan.file.display(),
                        subscription.origin.line,
                        match subscription.origin.chat.as_ref().and_then(|m| m.by.clone()) {
                            Some(by) => format!("made by {by}"),
                            None => "made in the chat".into(),
                        }
                    ),
                ),
                (
                    "Applied".into(),
                    format!("configuration reloaded; {polled}"),
                ),
            ];
            if *replaced > 0 {
                fields.push((
                    "Replaces".into(),
                    format!("{replaced} earlier subscription(s) of it made in the chat here"),
                ));
            }
            if !also.is_empty() {
                fields.push((
                    "Note".into(),
                    format!(
                        "the configuration file also subscribes {channel} to it ({}); each card \
                         still comes once, for the events of either",
                        also.join(", ")
                    ),
                ));
            }
            Card {
                head: format!("✅ Subscribed {channel} to {}", subscription.repo),
                sub_head: subscription.url.clone(),
                color: "#0E8A16",
                fields,
                ..Card::default()
            }
        }
        Change::Unsubscribed {
            repo,
            removed,
            kept,
        } => {
            let mut fields = vec![
                (
                    "Removed".to_owned(),
                    format!(
                        "{removed} subscription(s) made in the chat, from {}",
                        plan.file.display()
                    ),
                ),
                ("Applied".into(), "configuration reloaded".into()),
            ];
            if !kept.is_empty() {
                fields.push((
                    "Still subscribed".into(),
                    format!(
                        "by the configuration file ({}), which only an admin changes, on the \
                         server",
                        kept.join(", ")
                    ),
                ));
            }
            Card {
                head: format!("✅ Unsubscribed from {repo}"),
                sub_head: "Its builds no longer come here from the chat's subscriptions".into(),
                color: "#0E8A16",
                fields,
                ..Card::default()
            }
        }
    }
}

/// The answer when the reload refused `plan` (`why`): the file was put back (`restored`) or
/// could not be.
pub(crate) fn not_applied(plan: &Plan, why: &str, restored: std::io::Result<()>) -> Card {
    let file = match restored {
        Ok(()) => format!("{} is as it was", plan.file.display()),
        Err(e) => format!(
            "{} could not be put back ({e}): an admin must check it",
            plan.file.display()
        ),
    };
    let head = match plan.change {
        Change::Subscribed { .. } => "Not subscribed: the daemon cannot apply it",
        Change::Unsubscribed { .. } => "Not unsubscribed: the daemon cannot apply it",
    };
    let mut card = commands::failed(head, why);
    card.fields.push(("File".into(), file));
    card
}

/// The answer when the file could not be written.
pub(crate) fn not_written(plan: &Plan, e: &std::io::Error) -> Card {
    commands::failed(
        "Nothing changed",
        &format!(
            "{} cannot be written ({e}); bbzoom needs to replace it (its directory must be \
             writable by the service)",
            plan.file.display()
        ),
    )
}
