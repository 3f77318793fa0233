//! `bbzoom configure`, `bbzoom unsubscribe` and `bbzoom subscriptions`: the subscription file
//! edited from the command line.
//!
//! The text editing is `bbzoom::config::edit`'s; this module reads the file, validates the
//! edited text exactly as the daemon will read it, replaces the file atomically, tells a running
//! daemon, and prints. An edit that would make the file invalid is reported and not written.

use anyhow::Context;
use bbzoom::config::edit::{self, SubscriptionKeys};
use bbzoom::config::{Config, ConfigError, Subscription};
use bbzoom::domain::{EventKind, RepoId};
use bbzoom::glob::RefGlob;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How many subscribed repositories "is not subscribed" lists before it only counts them.
const LISTED_AT_MOST: usize = 8;

#[derive(clap::Args)]
pub struct ConfigureArgs {
    /// The repository, as copied from the browser or the clone dialog.
    pub url: String,
    /// A [zoom.channels] table to post to; repeat for several. Required for a new
    /// subscription; given for an existing one, replaces its list.
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// A branch pattern ("main", "release/*"); repeat for several. Default: every branch.
    #[arg(long = "branch", value_name = "GLOB", conflicts_with = "no_branches")]
    pub branches: Vec<String>,
    /// Announce no branch builds (for a subscription of tags only).
    #[arg(long)]
    pub no_branches: bool,
    /// A tag pattern ("v*"); repeat for several. Default: every tag.
    #[arg(long = "tag", value_name = "GLOB", conflicts_with = "no_tags")]
    pub tags: Vec<String>,
    /// Announce no tag builds.
    #[arg(long)]
    pub no_tags: bool,
    /// Whether builds of a bare commit (custom pipelines run on a commit) are announced.
    /// Default: true.
    #[arg(long, value_name = "BOOL")]
    pub commits: Option<bool>,
    /// An event to post; repeat for several. Default: failed and fixed.
    #[arg(long = "event", value_name = "EVENT", value_parser = event_names())]
    pub events: Vec<String>,
    /// A failure that gets a war room (an instant Zoom meeting per failing streak; needs
    /// [zoom.events]); repeat for both. Default: none.
    #[arg(long = "meeting-on", value_name = "FAILURE", value_parser = ["failed", "still_failing"])]
    pub meeting_on: Vec<String>,
    /// Where the builds come from: Bitbucket Pipelines (Cloud only) or the build statuses other
    /// CI posts on commits; repeat for both. Default: pipelines on Cloud, statuses on Data
    /// Center.
    #[arg(long = "source", value_parser = ["pipelines", "statuses"])]
    pub sources: Vec<String>,
    /// The credentials file entry to poll with. Default: the instance's.
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,
    /// Which of the repository's subscriptions to change, by its number in `bbzoom
    /// subscriptions`: needed when the repository has several.
    #[arg(long, value_name = "N", conflicts_with = "new")]
    pub entry: Option<usize>,
    /// Add another subscription for the repository (other branches, events or channels)
    /// rather than change the one it has.
    #[arg(long)]
    pub new: bool,
}

impl ConfigureArgs {
    /// The keys given on the command line; an option not given leaves its key alone.
    fn keys(&self) -> SubscriptionKeys {
        let given = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
        let or_none =
            |none: bool, list: &Vec<String>| if none { Some(Vec::new()) } else { given(list) };
        SubscriptionKeys {
            source: given(&self.sources),
            credential: self.credential.clone(),
            branches: or_none(self.no_branches, &self.branches),
            tags: or_none(self.no_tags, &self.tags),
            commits: self.commits,
            events: given(&self.events),
            meeting_on: given(&self.meeting_on),
            channels: given(&self.channels),
        }
    }
}

/// The values `events` accepts in the file, so `--help` lists them and a typo fails early.
fn event_names() -> clap::builder::PossibleValuesParser {
    let names = EventKind::ALL.map(EventKind::config_name);
    clap::builder::PossibleValuesParser::new(names.into_iter().chain(["all"]))
}

#[derive(clap::Args)]
pub struct UnsubscribeArgs {
    /// The repository, in any form `configure` accepts.
    pub url: String,
    /// Which of the repository's subscriptions to remove, by its number in `bbzoom
    /// subscriptions`: needed when the repository has several.
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub entry: Option<usize>,
    /// Remove every subscription of the repository.
    #[arg(long)]
    pub all: bool,
}

/// The subscription of `repo` a command acts on: the one `entry` names, else the only one.
/// `Ok(None)`: it has none. Several and no `entry`: an error listing them.
fn chosen(
    current: &Config,
    repo: &RepoId,
    entry: Option<usize>,
    alternative: &str,
) -> anyhow::Result<Option<usize>> {
    let entries: Vec<usize> = current
        .subscriptions
        .iter()
        .enumerate()
        .filter(|(_, s)| &s.repo == repo)
        .map(|(i, _)| i)
        .collect();
    let chosen = match (entry, entries.as_slice()) {
        (Some(n), _) if entries.contains(&n) => Some(n),
        (Some(_), []) => anyhow::bail!(
            "{} is not subscribed in {}, so it has no subscription to choose",
            name(repo),
            current.source.display()
        ),
        (Some(n), _) => anyhow::bail!(
            "subscription {n} is not one of {}'s (they are: {}); `bbzoom subscriptions` numbers \
             them",
            name(repo),
            numbers(&entries)
        ),
        (None, []) => None,
        (None, [one]) => Some(*one),
        (None, several) => {
            let listed: Vec<String> = several
                .iter()
                .map(|&i| format!("  {i}: {}", current.subscriptions[i].describe()))
                .collect();
            anyhow::bail!(
                "{} has {} subscriptions; give --entry N to choose one{alternative}:\n{}",
                name(repo),
                several.len(),
                listed.join("\n")
            )
        }
    };
    if let Some(n) = chosen {
        made_here(current, n)?;
    }
    Ok(chosen)
}

/// Refuses subscription `n` of `config` unless it is written in the configuration file itself:
/// one made in the chat is in the chat's subscriptions file, which the chat edits.
fn made_here(config: &Config, n: usize) -> anyhow::Result<()> {
    let subscription = &config.subscriptions[n];
    let Some(made) = &subscription.origin.chat else {
        return Ok(());
    };
    let channel = made
        .channel
        .as_deref()
        .map_or("its channel".to_owned(), |c| format!("#{c}"));
    anyhow::bail!(
        "subscription {n} of {} was made in the chat ({}); remove it there with `bbzoom \
         unsubscribe {}` in {channel}, or edit {} and run `bbzoom reload`",
        name(&subscription.repo),
        subscription.origin,
        subscription.url,
        subscription.origin.file.display()
    )
}

/// "0, 3".
fn numbers(entries: &[usize]) -> String {
    let numbers: Vec<String> = entries.iter().map(ToString::to_string).collect();
    numbers.join(", ")
}

pub async fn configure(config: PathBuf, args: ConfigureArgs) -> anyhow::Result<()> {
    let (text, current) = read(&config)?;
    let repo = repository(&current, &args.url)?;
    let keys = args.keys();
    let changed = keys.names();
    let index = if args.new {
        None
    } else {
        chosen(&current, &repo, args.entry, ", or --new to add another")?
    };
    let (new_text, change) = match index {
        Some(index) if changed.is_empty() => {
            say!(
                "{} is subscribed ({index}): {}; give --channel, --branch, --tag, --event, \
                 --source or --credential to change it",
                name(&repo),
                current.subscriptions[index].describe()
            );
            return Ok(());
        }
        Some(index) => (
            edit::update_subscription(&config, &text, index, &keys)?,
            format!("updated {} ({index}: {})", name(&repo), changed.join(", ")),
        ),
        None if keys.channels.is_none() => {
            let channels: Vec<&str> = current.zoom.channels.keys().map(String::as_str).collect();
            let what = if args.new {
                "another subscription needs at least one --channel NAME"
            } else {
                "is not subscribed yet: give at least one --channel NAME to add it"
            };
            anyhow::bail!(
                "{} {what} (the channels of {}: {})",
                name(&repo),
                config.display(),
                channels.join(", ")
            );
        }
        // Written as given (trimmed): it is the address the admin knows the repository by, and
        // it reads back as the same repository because the file's `repository` keys are parsed
        // by the same function against the same instances. The check below proves it.
        None => (
            edit::add_subscription(&config, &text, args.url.trim(), &keys)?,
            format!("added {}", name(&repo)),
        ),
    };
    if new_text == text {
        say!(
            "{} already has these settings; nothing changed",
            name(&repo)
        );
        return Ok(());
    }
    let updated = validate(&config, &new_text)?;
    // The subscription written: the one updated keeps its number, a new one is the last of
    // the repository's.
    let written = match index {
        Some(index) => updated.subscriptions.get(index).filter(|s| s.repo == repo),
        None => updated.subscriptions.iter().rfind(|s| s.repo == repo),
    };
    let subscription = written.with_context(|| {
        format!(
            "the edited file does not subscribe {} as intended; {} was left unchanged, please \
             report this",
            name(&repo),
            config.display()
        )
    })?;
    write(&config, &new_text)?;
    say!("{change}: {}", subscription.describe());
    warn_overlaps(&updated, &repo);
    super::status::reload_if_running(&config).await
}

/// The overlaps `bbzoom check` warns about, for `repo`'s subscriptions.
fn warn_overlaps(config: &Config, repo: &RepoId) {
    for overlap in config.overlaps() {
        if &config.subscriptions[overlap.first].repo == repo {
            say!(
                "note: subscriptions {} and {} both send {} to #{} with different events; it gets \
                 each card once, for the events of either (`bbzoom check` says more)",
                overlap.first,
                overlap.second,
                overlap.example,
                overlap.channel
            );
        }
    }
}

pub async fn unsubscribe(config: PathBuf, args: UnsubscribeArgs) -> anyhow::Result<()> {
    let (mut text, current) = read(&config)?;
    let repo = repository(&current, &args.url)?;
    let indices: Vec<usize> = if args.all {
        let (here, chat): (Vec<_>, Vec<_>) = current
            .subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.repo == repo)
            .partition(|(_, s)| s.origin.chat.is_none());
        for (i, s) in chat {
            say!(
                "note: subscription {i} of {} was made in the chat ({}) and stays; remove it \
                 with `bbzoom unsubscribe {}` in the channel, or edit {}",
                name(&repo),
                s.origin,
                s.url,
                s.origin.file.display()
            );
        }
        here.into_iter().map(|(i, _)| i).collect()
    } else {
        chosen(&current, &repo, args.entry, ", or --all to remove them all")?
            .into_iter()
            .collect()
    };
    if indices.is_empty() {
        anyhow::bail!(
            "{} is not subscribed in {}; {}",
            name(&repo),
            config.display(),
            subscribed(&current.subscriptions)
        );
    }
    // Last first, so the earlier numbers still name the same tables.
    for &index in indices.iter().rev() {
        text = edit::remove_subscription(&config, &text, index)?;
    }
    // Removing can invalidate too: a [bitbucket.budgets] entry only this subscription used.
    validate(&config, &text)?;
    write(&config, &text)?;
    for &index in &indices {
        say!(
            "removed {} ({index}: it posted to {})",
            name(&repo),
            current.subscriptions[index].channels.join(", ")
        );
    }
    super::status::reload_if_running(&config).await
}

pub fn list(config: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    if config.subscriptions.is_empty() {
        say!("no subscriptions; add one with bbzoom configure <repository URL> --channel NAME");
        return Ok(());
    }
    let header = [
        "#",
        "REPOSITORY",
        "INSTANCE",
        "SOURCE",
        "CREDENTIAL",
        "BRANCHES",
        "TAGS",
        "COMMITS",
        "EVENTS",
        "CHANNELS",
        "FROM",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 11]> = std::iter::once(header)
        .chain(config.subscriptions.iter().enumerate().map(|(i, s)| {
            [
                i.to_string(),
                s.url.clone(),
                s.repo.instance.clone(),
                s.source_names(),
                s.credentials.join(", "),
                patterns(&s.refs.branches),
                patterns(&s.refs.tags),
                if s.refs.commits { "yes" } else { "no" }.to_owned(),
                events(&s.events),
                s.channels.join(", "),
                s.origin.to_string(),
            ]
        }))
        .collect();
    print!("{}", super::table(&rows));
    say!(
        "{} repository source(s) polled, each once however many subscriptions name it",
        config.watches.len()
    );
    Ok(())
}

/// The file's text and its validated configuration, from one read so they agree.
fn read(path: &Path) -> Result<(String, Config), ConfigError> {
    let text = Config::read(path)?;
    let config = Config::parse(path, &text)?;
    Ok((text, config))
}

/// The repository `url` names on the instances of `config`.
fn repository(config: &Config, url: &str) -> anyhow::Result<RepoId> {
    edit::repository_of(config, url).map_err(anyhow::Error::msg)
}

/// `new_text` read as the daemon will read it. The error stays a [`ConfigError`] under its
/// context, so the exit status says "fix the configuration".
fn validate(path: &Path, new_text: &str) -> anyhow::Result<Config> {
    Config::parse(path, new_text).with_context(|| {
        format!(
            "{} left unchanged: the change would make it invalid (line numbers are those of \
             the changed file)",
            path.display()
        )
    })
}

/// Replaces the file at `path` with `text`, whole or not at all, keeping its permissions.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    // A configuration kept elsewhere (a checkout) and linked into place stays linked: the file
    // the link points at is replaced, not the link.
    let target = std::fs::canonicalize(path).with_context(|| {
        format!(
            "cannot resolve {}; check that it still exists",
            path.display()
        )
    })?;
    let mode = bbzoom::atomic_file::mode_or(&target, 0o644);
    bbzoom::atomic_file::write(&target, text.as_bytes(), mode).with_context(|| {
        format!(
            "cannot write {}; its directory must be writable by you (the file is replaced \
             through a temporary file next to it)",
            target.display()
        )
    })
}

/// "acme/api on cloud": a repository and the instance it is on.
fn name(repo: &RepoId) -> String {
    format!("{repo} on {}", repo.instance)
}

/// What is subscribed, for "not subscribed": the list when it is short, else where to see it.
fn subscribed(subscriptions: &[Subscription]) -> String {
    match subscriptions.len() {
        0 => "nothing is".into(),
        count if count > LISTED_AT_MOST => {
            format!("{count} repositories are; bbzoom subscriptions lists them")
        }
        _ => {
            let mut names: Vec<String> = Vec::new();
            for repo in subscriptions.iter().map(|s| name(&s.repo)) {
                if !names.contains(&repo) {
                    names.push(repo);
                }
            }
            format!("subscribed are: {}", names.join(", "))
        }
    }
}

/// Patterns as the file writes them; "(none)" for an empty list.
fn patterns(globs: &[RefGlob]) -> String {
    if globs.is_empty() {
        return "(none)".into();
    }
    let patterns: Vec<&str> = globs.iter().map(RefGlob::as_str).collect();
    patterns.join(", ")
}

/// The events as the file would name them: "all" when it is every one.
pub fn events(events: &BTreeSet<EventKind>) -> String {
    bbzoom::config::event_names(events)
}
