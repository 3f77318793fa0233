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
    #[arg(long = "branch", value_name = "GLOB")]
    pub branches: Vec<String>,
    /// An event to post; repeat for several. Default: failed and fixed.
    #[arg(long = "event", value_name = "EVENT", value_parser = event_names())]
    pub events: Vec<String>,
    /// Where the builds come from: Bitbucket Pipelines (Cloud only) or the build statuses other
    /// CI posts on commits. Default: pipelines on Cloud, statuses on Data Center.
    #[arg(long, value_parser = ["pipelines", "statuses"])]
    pub source: Option<String>,
    /// The credentials file entry to poll with. Default: the instance's.
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,
}

impl ConfigureArgs {
    /// The keys given on the command line; an option not given leaves its key alone.
    fn keys(&self) -> SubscriptionKeys {
        let given = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
        SubscriptionKeys {
            source: self.source.clone(),
            credential: self.credential.clone(),
            branches: given(&self.branches),
            events: given(&self.events),
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
}

pub async fn configure(config: PathBuf, args: ConfigureArgs) -> anyhow::Result<()> {
    let (text, current) = read(&config)?;
    let repo = repository(&current, &args.url)?;
    let keys = args.keys();
    let changed = keys.names();
    let index = current.subscriptions.iter().position(|s| s.repo == repo);
    let (new_text, change) = match index {
        Some(index) if changed.is_empty() => {
            println!(
                "{} is subscribed: {}; give --channel, --branch, --event, --source or \
                 --credential to change it",
                name(&repo),
                describe(&current.subscriptions[index])
            );
            return Ok(());
        }
        Some(index) => (
            edit::update_subscription(&config, &text, index, &keys)?,
            format!("updated {} ({})", name(&repo), changed.join(", ")),
        ),
        None if keys.channels.is_none() => {
            let channels: Vec<&str> = current.zoom.channels.keys().map(String::as_str).collect();
            anyhow::bail!(
                "{} is not subscribed yet: give at least one --channel NAME to add it (the \
                 channels of {}: {})",
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
        println!(
            "{} already has these settings; nothing changed",
            name(&repo)
        );
        return Ok(());
    }
    let updated = validate(&config, &new_text)?;
    let subscription = updated
        .subscriptions
        .iter()
        .find(|s| s.repo == repo)
        .with_context(|| {
            format!(
                "the edited file does not subscribe {} as intended; {} was left unchanged, \
                 please report this",
                name(&repo),
                config.display()
            )
        })?;
    write(&config, &new_text)?;
    println!("{change}: {}", describe(subscription));
    super::status::reload_if_running(&config).await
}

pub async fn unsubscribe(config: PathBuf, args: UnsubscribeArgs) -> anyhow::Result<()> {
    let (text, current) = read(&config)?;
    let repo = repository(&current, &args.url)?;
    let Some(index) = current.subscriptions.iter().position(|s| s.repo == repo) else {
        anyhow::bail!(
            "{} is not subscribed in {}; {}",
            name(&repo),
            config.display(),
            subscribed(&current.subscriptions)
        );
    };
    let new_text = edit::remove_subscription(&config, &text, index)?;
    // Removing can invalidate too: a [bitbucket.budgets] entry only this subscription used.
    validate(&config, &new_text)?;
    write(&config, &new_text)?;
    println!(
        "removed {} (it posted to {})",
        name(&repo),
        current.subscriptions[index].channels.join(", ")
    );
    super::status::reload_if_running(&config).await
}

pub fn list(config: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    if config.subscriptions.is_empty() {
        println!("no subscriptions; add one with bbzoom configure <repository URL> --channel NAME");
        return Ok(());
    }
    let header = [
        "REPOSITORY",
        "INSTANCE",
        "SOURCE",
        "CREDENTIAL",
        "BRANCHES",
        "EVENTS",
        "CHANNELS",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = std::iter::once(header)
        .chain(config.subscriptions.iter().map(|s| {
            [
                s.url.clone(),
                s.repo.instance.clone(),
                s.source.name().to_owned(),
                s.credential.clone(),
                branches(s),
                events(&s.events),
                s.channels.join(", "),
            ]
        }))
        .collect();
    print!("{}", super::table(&rows));
    Ok(())
}

/// The file's text and its validated configuration, from one read so they agree.
fn read(path: &Path) -> Result<(String, Config), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
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

/// A subscription's settings in one line, defaults included.
fn describe(s: &Subscription) -> String {
    format!(
        "channels {}; source {}; credential {}; branches {}; events {}",
        s.channels.join(", "),
        s.source.name(),
        s.credential,
        branches(s),
        events(&s.events)
    )
}

/// What is subscribed, for "not subscribed": the list when it is short, else where to see it.
fn subscribed(subscriptions: &[Subscription]) -> String {
    match subscriptions.len() {
        0 => "nothing is".into(),
        count if count > LISTED_AT_MOST => {
            format!("{count} repositories are; bbzoom subscriptions lists them")
        }
        _ => {
            let names: Vec<String> = subscriptions.iter().map(|s| name(&s.repo)).collect();
            format!("subscribed are: {}", names.join(", "))
        }
    }
}

fn branches(s: &Subscription) -> String {
    let patterns: Vec<String> = s.branches.iter().map(ToString::to_string).collect();
    patterns.join(", ")
}

/// The events as the file would name them: "all" when it is every one.
fn events(events: &BTreeSet<EventKind>) -> String {
    if events.len() == EventKind::ALL.len() {
        return "all".into();
    }
    let names: Vec<&str> = events.iter().map(|e| e.config_name()).collect();
    names.join(", ")
}
