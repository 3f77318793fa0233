//! `bbzoom preview`: a repository's recent builds fetched once, printed as the cards bbzoom
//! would send; nothing is sent or recorded.
//!
//! The daemon may be running and holds the store's lock, so a preview never opens the store:
//! without history, each build's event is what its own state says (a success is "succeeded",
//! never "fixed"). It writes no file and calls no Zoom API.

use anyhow::Context;
use bbzoom::config::edit::repository_of;
use bbzoom::config::{Config, SourceKind, Subscription};
use bbzoom::credentials::Credentials;
use bbzoom::domain::{BuildStatus, CLOUD, EventKind, RepoId};
use bbzoom::glob::BranchGlob;
use bbzoom::{daemon, detect, render};
use std::path::PathBuf;

/// The longest text taken from a build into a line of the preview's own (cards clean theirs).
const NAME_MAX_CHARS: usize = 120;

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// The repository, as copied from the browser or the clone dialog.
    pub url: String,
    /// How many of its most recent builds to show.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,
}

/// Fetches the repository's recent builds once and prints the card each would make, where it
/// would go, or why it would not be sent.
pub async fn preview(config_path: PathBuf, args: PreviewArgs) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let repo = repository_of(&config, &args.url)
        .map_err(|message| anyhow::anyhow!("cannot preview it: {message}"))?;
    let subscription = match config.subscriptions.iter().find(|s| s.repo == repo) {
        Some(subscription) => {
            println!(
                "{repo} ({} on {}, credential {:?}): branches {}; events {}; to {}",
                subscription.source.name(),
                instance_name(&repo),
                subscription.credential,
                list(&subscription.branches),
                list(&subscription.events),
                channels(subscription)
            );
            subscription.clone()
        }
        None => {
            let subscription = unsubscribed(&config, &args.url, repo.clone())?;
            println!(
                "{repo} is not subscribed in {}: previewing it with the defaults of {} \
                 (credential {:?}, source {}); its cards would go to no channel",
                config_path.display(),
                instance_name(&repo),
                subscription.credential,
                subscription.source.name()
            );
            subscription
        }
    };
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    // The error stays a `DaemonError` under its context, so the exit status says "fix the
    // configuration or the credentials file".
    let source =
        daemon::one_off_source(&config, &credentials, &subscription).with_context(|| {
            format!("cannot preview {repo} with its credential (`bbzoom check` says how to fix it)")
        })?;
    let limit = usize::from(args.limit);
    let builds = source
        .recent_builds(&repo, limit)
        .await
        .with_context(|| format!("cannot read the builds of {repo} ({})", args.url))?;
    if builds.is_empty() {
        println!("\n{repo} has no builds yet.");
        return Ok(());
    }
    println!(
        "\nIts {} most recent build(s), newest first, as cards; nothing is sent or recorded. \
         Without history each event comes from the build's own state: \"fixed\" and \
         \"still failing\" show as \"succeeded\" and \"failed\".",
        builds.len()
    );
    for build in &builds {
        let event = detect::classify(None, &build.state, None)
            .event
            .expect("a build seen for the first time is always news");
        let verdict = match why_not_sent(&subscription, build, event) {
            Some(reason) => format!("NOT SENT: {reason}"),
            None => format!("would go to {}", channels(&subscription)),
        };
        let card = render::chatbot_content(&render::card(build, event));
        println!(
            "\n[{event}] {verdict}\n{}",
            indent(&bbzoom::demo::content_to_text(&card))
        );
    }
    Ok(())
}

/// A stand-in subscription for a repository the configuration does not subscribe: the
/// instance's default credential and source, every branch and event, no channel.
fn unsubscribed(config: &Config, url: &str, repo: RepoId) -> anyhow::Result<Subscription> {
    let (credential, source) = if repo.instance == CLOUD {
        let credential = config.bitbucket.credential.clone().with_context(|| {
            format!(
                "{repo} is not subscribed in {}, and [bitbucket] names no default credential to \
                 preview it with; subscribe it with `bbzoom configure {url} --channel NAME`, or \
                 set [bitbucket] credential",
                config.source.display()
            )
        })?;
        (credential, SourceKind::Pipelines)
    } else {
        let instance = &config.bitbucket.datacenter[&repo.instance];
        (instance.credential.clone(), SourceKind::Statuses)
    };
    Ok(Subscription {
        url: url.to_owned(),
        repo,
        source,
        credential,
        branches: vec![BranchGlob::new("**").expect("\"**\" is a valid pattern")],
        events: EventKind::ALL.into_iter().collect(),
        channels: Vec::new(),
    })
}

/// Why `subscription` would not announce `event` of `build`, or `None` if it would.
fn why_not_sent(
    subscription: &Subscription,
    build: &BuildStatus,
    event: EventKind,
) -> Option<String> {
    if subscription.wants(build.branch.as_deref(), event) {
        return None;
    }
    Some(match build.branch.as_deref() {
        None => "it ran on no branch (a tag or a bare commit)".to_owned(),
        Some(branch) if !subscription.branches.iter().any(|g| g.matches(branch)) => format!(
            "branch {:?} matches none of the branches {}",
            render::clean(branch, NAME_MAX_CHARS),
            list(&subscription.branches)
        ),
        Some(_) => format!(
            "{event} is not among the events {}",
            list(&subscription.events)
        ),
    })
}

/// "#ci, #releases", or what having none means.
fn channels(subscription: &Subscription) -> String {
    if subscription.channels.is_empty() {
        return "no channel (not subscribed)".to_owned();
    }
    subscription
        .channels
        .iter()
        .map(|c| format!("#{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Branch patterns or event names, as the configuration writes them.
fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// "Bitbucket Cloud", or which Data Center instance.
fn instance_name(repo: &RepoId) -> String {
    if repo.instance == CLOUD {
        "Bitbucket Cloud".to_owned()
    } else {
        format!("Data Center instance {:?}", repo.instance)
    }
}

/// The card under its verdict line, as the demo prints cards.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
