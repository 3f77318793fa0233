//! `bbzoom preview`: a repository's recent builds fetched once, printed as the cards bbzoom
//! would send; nothing is sent or recorded.
//!
//! The daemon may be running and holds the store's lock, so a preview never opens the store:
//! without history, each build's event is what its own state says (a success is "succeeded",
//! never "fixed"). It writes no file and calls no Zoom API.

use anyhow::Context;
use bbzoom::config::edit::repository_of;
use bbzoom::config::{Config, RefFilter, SourceKind, Subscription, Watch};
use bbzoom::credentials::Credentials;
use bbzoom::domain::{BuildRef, BuildStatus, CLOUD, EventKind, RepoId};
use bbzoom::{daemon, detect, poller, render};
use std::path::PathBuf;

/// The longest text taken from a build into a line of the preview's own (cards clean theirs).
const NAME_MAX_CHARS: usize = 120;

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// The repository, as copied from the browser or the clone dialog.
    pub url: String,
    /// How many of its most recent builds to show, per source.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,
}

/// Fetches the repository's recent builds once from each source it is read through and prints
/// the card each would make, where it would go, or why it would not be sent.
pub async fn preview(config_path: PathBuf, args: PreviewArgs) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let repo = repository_of(&config, &args.url)
        .map_err(|message| anyhow::anyhow!("cannot preview it: {message}"))?;
    let mut watches: Vec<Watch> = config
        .watches
        .iter()
        .filter(|w| w.repo == repo)
        .cloned()
        .collect();
    if watches.is_empty() {
        let watch = unsubscribed(&config, &args.url, repo.clone())?;
        say!(
            "{repo} is not subscribed in {}: previewing it with the defaults of {} \
             (credential {:?}, source {}); its cards would go to no channel",
            config_path.display(),
            instance_name(&repo),
            watch.credential,
            watch.source.name()
        );
        watches.push(watch);
    } else {
        let first = &watches[0];
        say!(
            "{repo} on {}, credential {:?}, subscribed by:",
            instance_name(&repo),
            first.credential
        );
        for (i, sub) in config.subscriptions.iter().enumerate() {
            if sub.repo == repo {
                let sources: Vec<&str> = sub.sources.iter().map(|s| s.name()).collect();
                say!(
                    "  [{i}] {}; {}; events {}; to {}",
                    sources.join(" and "),
                    sub.refs,
                    super::subscriptions::events(&sub.events),
                    channels(sub.channels.iter().map(String::as_str))
                );
            }
        }
    }
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    for watch in &watches {
        show_source(
            &config,
            &credentials,
            watch,
            usize::from(args.limit),
            &args.url,
        )
        .await?;
    }
    Ok(())
}

/// The recent builds of one source of the repository, each as its card and its verdict.
async fn show_source(
    config: &Config,
    credentials: &Credentials,
    watch: &Watch,
    limit: usize,
    url: &str,
) -> anyhow::Result<()> {
    let repo = &watch.repo;
    // The error stays a `DaemonError` under its context, so the exit status says "fix the
    // configuration or the credentials file".
    let source = daemon::one_off_source(config, credentials, watch).with_context(|| {
        format!("cannot preview {repo} with its credential (`bbzoom check` says how to fix it)")
    })?;
    let recent = source
        .recent_builds(repo, limit)
        .await
        .with_context(|| format!("cannot read the {} of {repo} ({url})", watch.source.name()))?;
    let builds = &recent.builds;
    if builds.is_empty() {
        say!("\n{repo} has no {} yet.", watch.source.name());
        return Ok(());
    }
    say!(
        "\nIts {} most recent {}, newest first, as cards; nothing is sent or recorded. \
         Without history each event comes from the build's own state: \"fixed\" and \
         \"still failing\" show as \"succeeded\" and \"failed\".",
        builds.len(),
        watch.source.name()
    );
    for build in builds {
        let event = detect::classify(None, &build.state, None)
            .event
            .expect("a build seen for the first time is always news");
        let by_pipelines = recent.by_pipelines.contains(&build.key);
        let to = poller::route(watch, &[build.git_ref.clone()].into(), event, by_pipelines);
        let told_as_pipeline = !watch.channels_for(&build.git_ref, event).is_empty();
        let verdict = if to.is_empty() && told_as_pipeline {
            "NOT SENT: Bitbucket Pipelines posted it for its own run, which these channels hear \
             of as a pipeline"
                .to_owned()
        } else if to.is_empty() {
            format!("NOT SENT: {}", why_not_sent(watch, build, event))
        } else {
            format!("would go to {}", channels(to))
        };
        let card = render::plain_text(&render::card(build, event));
        say!("\n[{event}] {verdict}\n{}", indent(&card));
    }
    Ok(())
}

/// A stand-in for a repository the configuration does not subscribe: the instance's default
/// credential and source, one subscription taking every build and event, to no channel.
fn unsubscribed(config: &Config, url: &str, repo: RepoId) -> anyhow::Result<Watch> {
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
    let subscription = Subscription {
        origin: Default::default(),
        url: url.to_owned(),
        repo: repo.clone(),
        sources: vec![source],
        credentials: vec![credential.clone()],
        refs: RefFilter::everything(),
        events: EventKind::ALL.into_iter().collect(),
        channels: Vec::new(),
        meeting_on: Default::default(),
    };
    Ok(Watch {
        repo,
        source,
        pool: vec![credential.clone()],
        credential,
        url: url.to_owned(),
        subscriptions: vec![subscription],
        pipelines: Vec::new(),
        people: Default::default(),
    })
}

/// Why no subscription of `watch` announces `event` of `build`: each one's reason.
fn why_not_sent(watch: &Watch, build: &BuildStatus, event: EventKind) -> String {
    let reasons: Vec<String> = watch
        .subscriptions
        .iter()
        .map(|sub| {
            if sub.channels.is_empty() {
                return "not subscribed".to_owned();
            }
            let (word, name, patterns) = match &build.git_ref {
                BuildRef::Branch(name) => ("branch", name, &sub.refs.branches),
                BuildRef::Tag(name) => ("tag", name, &sub.refs.tags),
                BuildRef::Commit if !sub.refs.commits => {
                    return "it ran on a bare commit, and commits = false".to_owned();
                }
                BuildRef::Commit => {
                    return format!("{event} is not among the events {}", list(&sub.events));
                }
            };
            if sub.refs.matches(&build.git_ref) {
                format!("{event} is not among the events {}", list(&sub.events))
            } else if patterns.is_empty() {
                format!("it takes no {word} builds")
            } else {
                format!(
                    "{word} {:?} matches none of {}",
                    render::clean(name, NAME_MAX_CHARS),
                    list(patterns)
                )
            }
        })
        .collect();
    reasons.join("; ")
}

/// "#ci, #releases", or what having none means.
fn channels<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|c| format!("#{c}")).collect();
    if names.is_empty() {
        return "no channel (not subscribed)".to_owned();
    }
    names.join(", ")
}

/// Patterns or event names, as the configuration writes them.
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
