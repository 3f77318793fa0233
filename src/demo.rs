//! `bbzoom demo`: the real daemon against the built-in simulator, with a scoreboard.
//!
//! The demo writes what an admin would (an age identity, the encrypted credentials, a config
//! file) into a temporary directory, points it at the simulator and runs [`daemon::run`]: the
//! same code `bbzoom run` uses. It prints every card as the channel shows it and ends with a
//! summary that checks the channels against the scenario: nothing missed, nothing twice.
//! The integration tests use the same environment writer and scoreboard.

use crate::config::Config;
use crate::credentials::{self, Credential, Credentials};
use crate::daemon::{self, Metrics, Tuning};
use crate::domain::EventKind;
use crate::render;
use crate::sim::{ChannelEventKind, Scenario, SimOptions, SimState, Simulator};
use crate::store::Store;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Simulated seconds between two polls of a repository in the demo: three repositories polled
/// every 15 s spend 720 of the 900 requests an hour the default budget allows.
pub const DEMO_POLL_SECS: f64 = 15.0;

/// `bbzoom demo`'s options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated seconds per real second.
    pub speed: f64,
}

/// The demo's closing summary (also its JSON line).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Builds the simulator ran.
    pub builds: usize,
    /// Build state changes bbzoom recorded.
    pub transitions: u64,
    /// Cards the channels received.
    pub cards: u64,
    /// Requests the simulated Bitbucket served.
    pub bitbucket_requests: u64,
    /// Subscribed terminal events that never reached their channel.
    pub missed: usize,
    /// Extra cards for a build and event already shown.
    pub duplicates: usize,
}

/// The subscriptions the demo and the tests use with [`Scenario::showcase`].
pub const SHOWCASE_SUBSCRIPTIONS: &str = r#"
[[subscription]]
repository = "{web}/acme/api"
branches = ["**"]
events = ["started", "paused", "succeeded", "fixed", "failed", "still_failing", "stopped"]
channels = ["ci"]

[[subscription]]
repository = "{web}/acme/web"
branches = ["main", "release/*"]
events = ["succeeded", "failed", "stopped"]
channels = ["ci", "releases"]

[[subscription]]
repository = "{web}/acme/mobile"
events = ["failed", "fixed", "stopped"]
channels = ["releases"]
"#;

/// Writes an identity, encrypted credentials and a config pointing at `sim` into `dir`, with
/// `subscriptions` (TOML, `{web}` standing for the simulator's web URL). Every interval and
/// budget is given in simulated time and written scaled to the simulator's speed: polls every
/// `poll_sim_secs`, 900 Bitbucket requests per simulated hour. Returns the config path.
pub fn write_environment(
    dir: &Path,
    sim: &Simulator,
    poll_sim_secs: f64,
    subscriptions: &str,
) -> std::io::Result<PathBuf> {
    let identity = dir.join("identity.txt");
    let credentials_file = dir.join("credentials.age");
    let to_io = |e: credentials::CredentialsError| std::io::Error::other(e.to_string());
    credentials::ensure_identity(&identity).map_err(to_io)?;
    let options = sim.options();
    let mut credentials = Credentials::default();
    credentials.insert(
        "sim-bitbucket",
        Credential::BitbucketAccessToken {
            token: options.bitbucket_token.clone().into(),
        },
    );
    credentials.insert(
        "sim-zoom",
        Credential::ZoomChatbot {
            client_id: options.zoom.client_id.clone(),
            client_secret: options.zoom.client_secret.clone().into(),
        },
    );
    credentials
        .save(&credentials_file, &identity)
        .map_err(to_io)?;

    let real_ms = |sim_secs: f64| ((sim_secs / options.speed * 1000.0).round() as u64).max(1);
    let web = sim
        .bitbucket_web_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let mut channels = String::new();
    for jid in &options.zoom.channels {
        let name = jid.split('@').next().unwrap_or(jid);
        channels.push_str(&format!("\n[zoom.channels.{name}]\nto_jid = \"{jid}\"\n"));
    }
    let config = format!(
        r#"# Written by bbzoom for a run against its simulator.
[daemon]
state_dir = "state"
poll_interval = "{poll_ms}ms"
request_timeout = "5s"
credentials = "credentials.age"
identity = "identity.txt"

[bitbucket]
api_url = "{api}"
web_url = "{web}"
credential = "sim-bitbucket"
rate_limit = {{ requests = 900, per = "{hour_ms}ms" }}

[zoom]
oauth_url = "{oauth}"
api_url = "{zoom_api}"

[zoom.chatbot]
credential = "sim-zoom"
account_id = "{account}"
robot_jid = "{robot}"
user_jid = "{user}"
{channels}
{subscriptions}"#,
        poll_ms = real_ms(poll_sim_secs),
        hour_ms = real_ms(3600.0),
        api = sim.bitbucket_api_url(),
        oauth = sim.zoom_oauth_url(),
        zoom_api = sim.zoom_api_url(),
        account = options.zoom.account_id,
        robot = options.zoom.robot_jid,
        user = options.zoom.user_jid,
        subscriptions = subscriptions.replace("{web}", &web),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// Runs the demo; prints cards as they arrive and returns the summary.
pub async fn run(options: DemoOptions) -> anyhow::Result<Summary> {
    let scenario = Scenario::showcase();
    let sim = Simulator::start(
        scenario,
        SimOptions {
            speed: options.speed,
            ..SimOptions::default()
        },
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let config = Config::load(&write_environment(
        dir.path(),
        &sim,
        DEMO_POLL_SECS,
        SHOWCASE_SUBSCRIPTIONS,
    )?)?;
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    let store = Store::open(&config.daemon.state_dir)?;

    println!(
        "bbzoom demo: {} repositories, {} builds over {:.0} simulated minutes at {}x speed\n",
        sim.scenario().repos.len(),
        sim.scenario()
            .repos
            .iter()
            .map(|r| r.builds.len())
            .sum::<usize>(),
        sim.scenario().end() / 60.0,
        options.speed
    );
    let printer = tokio::spawn(print_cards(sim.subscribe(), config.clone()));
    let metrics = Arc::new(Metrics::default());
    let (trigger, shutdown) = crate::shutdown::channel();
    let daemon = {
        let (config, store, metrics) = (config.clone(), store.clone(), metrics.clone());
        tokio::spawn(async move {
            daemon::run(
                &config,
                &credentials,
                store,
                Tuning::default(),
                metrics,
                shutdown,
            )
            .await
        })
    };

    let deadline = tokio::time::Instant::now()
        + Duration::from_secs_f64(sim.scenario().end() / options.speed + 30.0);
    while !caught_up(&sim, &config, &store)? && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trigger.trigger();
    daemon.await??;
    printer.abort();

    let score = score(&sim, &config);
    let stats = sim.stats();
    let summary = Summary {
        builds: sim.scenario().repos.iter().map(|r| r.builds.len()).sum(),
        transitions: metrics.transitions.load(Ordering::Relaxed),
        cards: stats.posts,
        bitbucket_requests: stats.bitbucket_requests,
        missed: score.missed.len(),
        duplicates: score.duplicates,
    };
    println!(
        "\nsummary: {} builds, {} transitions, {} cards, {} Bitbucket requests, {} missed, {} duplicates",
        summary.builds,
        summary.transitions,
        summary.cards,
        summary.bitbucket_requests,
        summary.missed,
        summary.duplicates
    );
    for (channel, url, event) in &score.missed {
        println!("  missed: {event} of {url} in #{channel}");
    }
    sim.shutdown().await;
    Ok(summary)
}

/// The scenario is over, every subscribed repository's builds are recorded as finished, and
/// the outbox is empty.
pub fn caught_up(sim: &Simulator, config: &Config, store: &Store) -> anyhow::Result<bool> {
    if sim.now() < sim.scenario().end() || store.outbox_len() > 0 {
        return Ok(false);
    }
    for subscription in &config.subscriptions {
        let builds = sim
            .scenario()
            .repos
            .iter()
            .find(|r| r.workspace == subscription.repo.owner && r.slug == subscription.repo.slug)
            .map_or(0, |r| r.builds.len() as u64);
        match store.cursor(&subscription.repo)? {
            Some(cursor) if cursor.active.is_empty() && cursor.high_water >= builds => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// What the channels show, checked against what the scenario produced.
#[derive(Debug, Default)]
pub struct Score {
    /// (channel, build URL, event) that should have been shown and were not.
    pub missed: Vec<(String, String, EventKind)>,
    /// Showings of a (channel, build, event) beyond the first.
    pub duplicates: usize,
    /// Every (channel, build URL, event) shown, with how often.
    pub shown: BTreeMap<(String, String, EventKind), usize>,
}

/// Reads every channel back and compares it with the terminal events the scenario implies for
/// each subscription. The expectation is computed from the scenario here, independently of the
/// daemon's own detection code.
pub fn score(sim: &Simulator, config: &Config) -> Score {
    let mut score = Score::default();
    for channel in config.zoom.channels.values() {
        for message in sim.channel(&channel.to_jid) {
            let showings =
                std::iter::once(&message.first_content).chain(message.edits.iter().map(|(_, c)| c));
            for content in showings {
                let head = content["head"]["text"].as_str().unwrap_or_default();
                if let (Some(event), Some(url)) =
                    (render::event_from_head(head), first_link(content))
                {
                    *score
                        .shown
                        .entry((channel.name.clone(), url, event))
                        .or_default() += 1;
                }
            }
        }
    }
    score.duplicates = score.shown.values().map(|n| n - 1).sum();
    let web = sim
        .bitbucket_web_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    for subscription in &config.subscriptions {
        let Some(repo) =
            sim.scenario().repos.iter().find(|r| {
                r.workspace == subscription.repo.owner && r.slug == subscription.repo.slug
            })
        else {
            continue;
        };
        for (build, event) in expected_endings(repo) {
            if !subscription.wants(Some(&build.branch), event) {
                continue;
            }
            let url = format!(
                "{web}/{}/{}/pipelines/results/{}",
                repo.workspace, repo.slug, build.number
            );
            for channel in &subscription.channels {
                if !score
                    .shown
                    .contains_key(&(channel.clone(), url.clone(), event))
                {
                    score.missed.push((channel.clone(), url.clone(), event));
                }
            }
        }
    }
    score
}

/// Each finished build of `repo` with the terminal event it must be announced as: branches'
/// results taken in the order the builds finished.
fn expected_endings(repo: &crate::sim::SimRepo) -> Vec<(&crate::sim::SimBuild, EventKind)> {
    let mut finished: Vec<_> = repo
        .builds
        .iter()
        .filter_map(|b| Some((b.finished_at()?, b)))
        .collect();
    finished.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.number.cmp(&b.1.number)));
    let mut failing: BTreeMap<&str, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for (_, build) in finished {
        let was_failing = failing.get(build.branch.as_str()).copied().unwrap_or(false);
        let last = build
            .timeline
            .last()
            .map(|&(_, s)| s)
            .unwrap_or(SimState::Pending);
        let event = match last {
            SimState::Successful => {
                failing.insert(&build.branch, false);
                if was_failing {
                    EventKind::Fixed
                } else {
                    EventKind::Succeeded
                }
            }
            SimState::Failed | SimState::Error => {
                failing.insert(&build.branch, true);
                if was_failing {
                    EventKind::StillFailing
                } else {
                    EventKind::Failed
                }
            }
            _ => EventKind::Stopped,
        };
        out.push((build, event));
    }
    out
}

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

/// Prints each post and edit as the channel shows it.
async fn print_cards(
    mut events: tokio::sync::broadcast::Receiver<crate::sim::ChannelEvent>,
    config: Config,
) {
    let names: BTreeMap<String, String> = config
        .zoom
        .channels
        .values()
        .map(|c| (c.to_jid.clone(), c.name.clone()))
        .collect();
    while let Ok(event) = events.recv().await {
        let channel = names
            .get(&event.to_jid)
            .cloned()
            .unwrap_or(event.to_jid.clone());
        let verb = match event.kind {
            ChannelEventKind::Posted => "new card",
            ChannelEventKind::Edited => "card edited",
        };
        println!(
            "[{:>6.0}s] #{channel} ({verb})\n{}\n",
            event.at,
            indent(&content_to_text(&event.content))
        );
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A chatbot card as text, the way Zoom lays it out: head, sub-head, fields, links.
pub fn content_to_text(content: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(head) = content["head"]["text"].as_str() {
        lines.push(head.to_owned());
    }
    if let Some(sub) = content["head"]["sub_head"]["text"].as_str() {
        lines.push(sub.to_owned());
    }
    fn walk(items: &Value, lines: &mut Vec<String>) {
        for item in items.as_array().into_iter().flatten() {
            match item["type"].as_str() {
                Some("section") => walk(&item["sections"], lines),
                Some("fields") => {
                    for field in item["items"].as_array().into_iter().flatten() {
                        lines.push(format!(
                            "  {}: {}",
                            field["key"].as_str().unwrap_or_default(),
                            field["value"].as_str().unwrap_or_default()
                        ));
                    }
                }
                Some("message") => {
                    let text = item["text"].as_str().unwrap_or_default();
                    match item["link"].as_str() {
                        Some(link) => lines.push(format!("  {text} <{link}>")),
                        None => lines.push(format!("  {text}")),
                    }
                }
                _ => {}
            }
        }
    }
    walk(&content["body"], &mut lines);
    lines.join("\n")
}
