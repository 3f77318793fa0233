//! `bbzoom demo`: the real daemon against the built-in simulator, with a scoreboard.
//!
//! The demo writes what an admin would (an age identity, the encrypted credentials, a config
//! file) into a temporary directory, points it at the simulator and runs [`daemon::run`]: the
//! same code `bbzoom run` uses. It prints every card as the channel shows it and ends with a
//! summary that checks the channels against the scenario: nothing missed, nothing twice, and
//! how long each card took. Time can be compressed: every interval and budget written into the
//! configuration is scaled to the simulator's speed. The integration tests and the economy
//! benchmark use the same environment writer and scoreboard. With `--chat`, a simulated person
//! also types commands into #ci across forced disconnects ([`chat`]).

mod chat;

use crate::clock::Calendar;
use crate::config::{Config, SourceKind};
use crate::credentials::{self, Credential, Credentials};
use crate::daemon::{self, Tuning};
use crate::metrics::Metrics;
use crate::store::Store;
use bbzoom_sim::score::{self, Score, Watcher};
use bbzoom_sim::{
    BitbucketFaults, ChannelEventKind, Scenario, SimCalendar, SimCredentialKind, SimOptions,
    SimRepo, SimSource, SimStart, Simulator, TraceMix,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Requests per simulated hour per credential, the production default.
pub const DEFAULT_BUDGET: u32 = 900;

/// Polling targets in simulated seconds, as `[polling]` takes them.
#[derive(Debug, Clone, Copy)]
pub struct SimPolling {
    pub hot: f64,
    pub warm: f64,
    pub cold: f64,
    pub warm_for: f64,
    pub settle: f64,
    /// How often each workspace is scanned; `None`: `scan = "off"`.
    pub scan: Option<f64>,
}

impl Default for SimPolling {
    /// The production defaults.
    fn default() -> Self {
        SimPolling {
            hot: 15.0,
            warm: 60.0,
            cold: 600.0,
            warm_for: 1800.0,
            settle: 600.0,
            scan: Some(30.0),
        }
    }
}

impl SimPolling {
    /// Every class at the same interval: a fixed cadence, for tests that script exact states.
    pub fn every(secs: f64) -> SimPolling {
        SimPolling {
            hot: secs,
            warm: secs,
            cold: secs,
            warm_for: 1800.0,
            settle: 600.0,
            scan: Some(secs),
        }
    }
}

/// What to write into a configuration for a simulator run, in simulated time.
#[derive(Debug, Clone)]
pub struct Environment {
    pub polling: SimPolling,
    /// Requests per simulated hour for each credential, written as each instance's
    /// `rate_limit` (a ceiling); `None`: none written, so each credential's budget is its
    /// instance's default (Cloud's follows `X-RateLimit-Limit`).
    pub budget: Option<u32>,
    /// `[[subscription]]` tables; `{web}` stands for the Cloud web URL, `{dc}` for Data Center's.
    pub subscriptions: String,
    /// Write `[zoom.events]` (chat commands in #ci, over the simulator's event WebSocket) and
    /// its Server-to-Server credential, `sim-events`.
    pub chat_commands: bool,
}

/// Faults the demo can inject (`--faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Faults {
    None,
    /// Every Bitbucket request answers 429 (no `Retry-After`) for a tenth of the run.
    RateLimitStorm,
    /// 10% of Bitbucket requests fail with 5xx, 5% are slow, 2% come back malformed.
    Flaky,
    /// Zoom cannot be reached for a fifth of the run.
    ZoomOutage,
    /// Zoom answers 429 now and then, with `Retry-After` as seconds, HTTP-date and RFC 3339.
    ZoomRateLimit,
    /// A release: dozens of builds of several repositories end within one simulated minute,
    /// all announced in one channel, with Zoom healthy (a burst is not an outage).
    Burst,
}

/// `bbzoom demo`'s options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// `None`: the showcase scenario; `Some(n)`: n repositories of random activity.
    pub repos: Option<usize>,
    /// Simulated hours of random activity.
    pub hours: f64,
    /// Requests per simulated hour per credential.
    pub budget: u32,
    pub faults: Faults,
    /// Print each card as it arrives.
    pub print_cards: bool,
    /// Where the running commentary (cards, the summary) is written.
    pub narration: Narration,
    /// A simulated person types commands into #ci across forced disconnects.
    pub chat: bool,
}

/// Where the demo's running commentary goes: stdout for a person, stderr when stdout is
/// reserved for the JSON summary (so `bbzoom demo --json | jq` reads one object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Narration {
    Stdout,
    Stderr,
}

impl Narration {
    fn line(self, text: std::fmt::Arguments<'_>) {
        match self {
            Narration::Stdout => println!("{text}"),
            Narration::Stderr => eprintln!("{text}"),
        }
    }
}

/// The demo's closing summary (also its JSON line).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Builds the simulator ran.
    pub(crate) builds: usize,
    /// Build state changes bbzoom recorded.
    pub(crate) transitions: u64,
    /// Cards the channels received.
    pub(crate) cards: u64,
    /// Requests the simulated Bitbucket served.
    pub bitbucket_requests: u64,
    /// The most requests any credential spent in any rolling simulated hour.
    pub bitbucket_requests_max_per_hour: u64,
    /// Subscribed terminal events that never reached their channel.
    pub missed: usize,
    /// Extra cards for a build and event already shown.
    pub duplicates: usize,
    /// Simulated seconds from a build's state change to its card: median, 95th percentile, worst.
    pub latency_p50_s: f64,
    pub latency_p95_s: f64,
    pub latency_max_s: f64,
    /// Messages posted (cards, thread replies, summaries).
    pub(crate) posts: u64,
    /// Cards edited in place.
    pub(crate) edits: u64,
    /// Cards Zoom refused for good, kept in the store.
    pub(crate) dead_letters: u64,
    /// With `--chat`: the commands typed and how each was answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<chat::ChatSummary>,
}

/// The subscriptions the demo and the tests use with [`Scenario::showcase`]: acme/api has two,
/// everything to #ci and its release tags to #releases too.
pub const SHOWCASE_SUBSCRIPTIONS: &str = r#"
[[subscription]]
repository = "{web}/acme/api"
events = ["all"]
channels = ["ci"]

[[subscription]]
repository = "{web}/acme/api"
branches = []
tags = ["v*"]
commits = false
events = ["succeeded", "failed"]
channels = ["releases"]

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

/// One subscription per repository of `scenario`, every event of every source to `#ci`.
pub fn subscribe_all(scenario: &Scenario) -> String {
    scenario
        .repos
        .iter()
        .map(|repo| {
            let cloud = format!("{{web}}/{}/{}", repo.workspace, repo.slug);
            let (url, source) = match repo.source {
                SimSource::CloudPipelines => (cloud, r#""pipelines""#),
                SimSource::CloudStatuses => (cloud, r#""statuses""#),
                SimSource::CloudMixed => (cloud, r#"["pipelines", "statuses"]"#),
                SimSource::DataCenter => (
                    format!("{{dc}}/projects/{}/repos/{}/browse", repo.workspace, repo.slug),
                    r#""statuses""#,
                ),
            };
            format!("\n[[subscription]]\nrepository = \"{url}\"\nsource = {source}\nevents = [\"all\"]\nchannels = [\"ci\"]\n")
        })
        .collect()
}

/// Writes an identity, encrypted credentials (every credential the simulator knows, by its
/// name) and a config pointing at `sim` into `dir`. Every interval and budget of `env` is in
/// simulated time and written scaled to the simulator's speed. Returns the config path.
pub fn write_environment(
    dir: &Path,
    sim: &Simulator,
    env: &Environment,
) -> std::io::Result<PathBuf> {
    let identity = dir.join("identity.txt");
    let credentials_file = dir.join("credentials.age");
    let to_io = |e: credentials::CredentialsError| std::io::Error::other(e.to_string());
    credentials::ensure_identity(&identity).map_err(to_io)?;
    let options = sim.options();
    let mut credentials = Credentials::default();
    let (mut cloud_credential, mut dc_credential) = (None, None);
    for credential in &options.bitbucket_credentials {
        let stored = match &credential.kind {
            SimCredentialKind::AccessToken { token } => Credential::BitbucketAccessToken {
                token: token.clone().into(),
            },
            SimCredentialKind::OAuthConsumer { key, secret } => {
                Credential::BitbucketOauthConsumer {
                    key: key.clone(),
                    secret: secret.clone().into(),
                }
            }
            SimCredentialKind::ApiToken { email, token } => Credential::BitbucketApiToken {
                email: email.clone(),
                token: token.clone().into(),
            },
            SimCredentialKind::DataCenterToken { token } => Credential::DatacenterToken {
                token: token.clone().into(),
            },
        };
        let default = if matches!(stored, Credential::DatacenterToken { .. }) {
            &mut dc_credential
        } else {
            &mut cloud_credential
        };
        default.get_or_insert_with(|| credential.name.clone());
        credentials.insert(credential.name.clone(), stored);
    }
    credentials.insert(
        "sim-zoom",
        Credential::ZoomChatbot {
            client_id: options.zoom.client_id.clone(),
            client_secret: options.zoom.client_secret.clone().into(),
        },
    );
    if env.chat_commands {
        let app = &options.zoom_events;
        credentials.insert(
            "sim-events",
            Credential::ZoomServerToServer {
                account_id: app.account_id.clone(),
                client_id: app.client_id.clone(),
                client_secret: app.client_secret.clone().into(),
            },
        );
    }
    for webhook in &options.zoom.webhooks {
        credentials.insert(
            format!("sim-webhook-{}", webhook.endpoint_id),
            Credential::ZoomWebhook {
                token: webhook.token.clone().into(),
            },
        );
    }
    credentials
        .save(&credentials_file, &identity)
        .map_err(to_io)?;

    let real = |sim_secs: f64| {
        format!(
            "{}ms",
            ((sim_secs / options.speed * 1000.0).round() as u64).max(1)
        )
    };
    let rate_limit = env.budget.map_or(String::new(), |budget| {
        format!(
            "rate_limit = {{ requests = {budget}, per = \"{}\" }}\n",
            real(3600.0)
        )
    });
    let web = sim
        .bitbucket_web_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let dc = sim
        .datacenter_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let p = env.polling;
    let mut config = format!(
        "# Written by bbzoom for a run against its simulator.
[daemon]
state_dir = \"state\"
request_timeout = \"5s\"
credentials = \"credentials.age\"
identity = \"identity.txt\"

[polling]
hot = \"{hot}\"
warm = \"{warm}\"
cold = \"{cold}\"
warm_for = \"{warm_for}\"
settle = \"{settle}\"
scan = \"{scan}\"

[bitbucket]
api_url = \"{api}\"
web_url = \"{web}\"
oauth_url = \"{oauth}\"
{rate_limit}",
        hot = real(p.hot),
        warm = real(p.warm),
        cold = real(p.cold),
        warm_for = real(p.warm_for),
        settle = real(p.settle),
        scan = p.scan.map_or("off".to_owned(), real),
        api = sim.bitbucket_api_url(),
        oauth = sim.bitbucket_oauth_url(),
    );
    if let Some(name) = cloud_credential {
        config.push_str(&format!("credential = \"{name}\"\n"));
    }
    if let Some(name) = dc_credential.filter(|_| env.subscriptions.contains("{dc}")) {
        config.push_str(&format!(
            "\n[bitbucket.datacenter.sim]\nurl = \"{dc}\"\ncredential = \"{name}\"\n{rate_limit}"
        ));
    }
    config.push_str(&format!(
        "
[zoom]
oauth_url = \"{oauth}\"
api_url = \"{api}\"

[zoom.chatbot]
credential = \"sim-zoom\"
account_id = \"{account}\"
robot_jid = \"{robot}\"
user_jid = \"{user}\"
rate_limit = {{ requests = 20, per = \"{second}\" }}
",
        oauth = sim.zoom_oauth_url(),
        api = sim.zoom_api_url(),
        account = options.zoom.account_id,
        robot = options.zoom.robot_jid,
        user = options.zoom.user_jid,
        // The Pro plan's 20 chat calls a second, in simulated time like every other rate.
        second = real(1.0),
    ));
    if env.chat_commands {
        // Zoom asks for a heartbeat every 30 s, in simulated time like every other interval.
        config.push_str(&format!(
            "
[zoom.events]
credential = \"sim-events\"
subscription_id = \"{subscription}\"
url = \"{url}\"
user = \"{user}\"
channels = [\"ci\"]
heartbeat = \"{heartbeat}\"
",
            subscription = options.zoom_events.subscription_id,
            url = sim.zoom_events_url(),
            user = options.zoom_events.user_email,
            heartbeat = real(30.0),
        ));
    }
    let channel_name = |jid: &str| jid.split('@').next().unwrap_or(jid).to_owned();
    let webhook_targets: Vec<&str> = options
        .zoom
        .webhooks
        .iter()
        .map(|w| w.channel.as_str())
        .collect();
    for jid in options
        .zoom
        .channels
        .iter()
        .filter(|jid| !webhook_targets.contains(&jid.as_str()))
    {
        config.push_str(&format!(
            "\n[zoom.channels.{}]\nto_jid = \"{jid}\"\n",
            channel_name(jid)
        ));
    }
    for webhook in &options.zoom.webhooks {
        config.push_str(&format!(
            "\n[zoom.channels.{}]\nwebhook_url = \"{}\"\ncredential = \"sim-webhook-{}\"\n",
            channel_name(&webhook.channel),
            sim.zoom_webhook_url(&webhook.endpoint_id),
            webhook.endpoint_id
        ));
    }
    config.push_str(
        &env.subscriptions
            .replace("{web}", &web)
            .replace("{dc}", &dc),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// The daemon's tuning for a run against `sim`, as the demo, the tests and the benchmark run
/// it: every delay, backoff and pace compressed by the simulator's speed, and schedules
/// timed by the simulator's calendar.
pub fn tuning(sim: &Simulator) -> Tuning {
    Tuning::default()
        .compressed(sim.options().speed)
        .with_calendar(Arc::new(sim.calendar()))
}

/// The simulator's calendar is Bitbucket's in a simulated run: it runs at the simulator's
/// speed, so a real wait is the calendar's divided by it.
impl Calendar for SimCalendar {
    fn now_ms(&self) -> i64 {
        SimCalendar::now_ms(self)
    }

    fn until(&self, at_ms: i64) -> Duration {
        let calendar_secs = at_ms.saturating_sub(SimCalendar::now_ms(self)) as f64 / 1000.0;
        Duration::try_from_secs_f64(calendar_secs / self.speed()).unwrap_or(Duration::ZERO)
    }
}

/// Runs the demo; prints cards as they arrive and returns the summary.
pub async fn run(options: DemoOptions) -> anyhow::Result<Summary> {
    let (scenario, subscriptions) = match (options.faults, options.repos) {
        (Faults::Burst, _) => {
            let scenario = Scenario::burst();
            let subscriptions = subscribe_all(&scenario);
            (scenario, subscriptions)
        }
        (_, None) if options.chat => {
            // War rooms come from the Server-to-Server app the chat needs: the first
            // subscription (acme/api, every event, #ci) asks for them.
            let with_war_rooms = SHOWCASE_SUBSCRIPTIONS.replacen(
                "channels = [\"ci\"]\n",
                &format!("channels = [\"ci\"]\n{}\n", chat::WAR_ROOMS),
                1,
            );
            (Scenario::showcase(), with_war_rooms)
        }
        (_, None) => (Scenario::showcase(), SHOWCASE_SUBSCRIPTIONS.to_owned()),
        (_, Some(repos)) => {
            let scenario = Scenario::realistic(7, repos, options.hours, TraceMix::default());
            let subscriptions = subscribe_all(&scenario);
            (scenario, subscriptions)
        }
    };
    let end = scenario.end();
    let mut zoom = bbzoom_sim::SimZoomApp::default();
    if options.faults == Faults::ZoomOutage {
        zoom.outage = Some((end * 0.3, end * 0.5));
    }
    let bitbucket_faults = match options.faults {
        Faults::None | Faults::ZoomOutage | Faults::ZoomRateLimit | Faults::Burst => {
            BitbucketFaults::default()
        }
        Faults::RateLimitStorm => BitbucketFaults {
            storm: Some((end * 0.3, end * 0.4)),
            ..BitbucketFaults::default()
        },
        Faults::Flaky => BitbucketFaults {
            server_error_rate: 0.10,
            slow_rate: 0.05,
            slow_by: Duration::from_millis(500),
            malformed_rate: 0.02,
            ..BitbucketFaults::default()
        },
    };
    let sim = Arc::new(
        Simulator::start(
            scenario,
            SimOptions {
                speed: options.speed,
                bitbucket_faults,
                zoom,
                // The scenario begins when the daemon first asks, however long its start took.
                start: SimStart::AtFirstRequest,
                ..SimOptions::default()
            },
        )
        .await?,
    );
    let rate_limits = (options.faults == Faults::ZoomRateLimit)
        .then(|| tokio::spawn(zoom_rate_limits(sim.clone())));
    let dir = tempfile::tempdir()?;
    let env = Environment {
        polling: SimPolling::default(),
        budget: Some(options.budget),
        subscriptions,
        chat_commands: options.chat,
    };
    let config = Config::load(&write_environment(dir.path(), &sim, &env)?)?;
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    let store = Store::open(&config.daemon.state_dir)?;

    let say = options.narration;
    say.line(format_args!(
        "bbzoom demo: {} repositories, {} builds over {:.0} simulated minutes at {}x speed, {} requests per simulated hour\n",
        sim.scenario().repos.len(),
        sim.scenario()
            .repos
            .iter()
            .map(|r| r.builds.len())
            .sum::<usize>(),
        end / 60.0,
        options.speed,
        options.budget,
    ));
    let printer = options.print_cards.then(|| {
        tokio::spawn(print_cards(
            sim.subscribe(),
            sim.clone(),
            config.clone(),
            say,
        ))
    });
    let metrics = Arc::new(Metrics::default());
    let (trigger, shutdown) = crate::shutdown::channel();
    let daemon = {
        let (config, store, metrics, tuning) =
            (config.clone(), store.clone(), metrics.clone(), tuning(&sim));
        tokio::spawn(async move {
            daemon::run(&config, &credentials, store, tuning, metrics, shutdown).await
        })
    };

    let typist = options.chat.then(|| {
        (
            tokio::spawn(chat::play(sim.clone(), end, say)),
            tokio::spawn(chat::print_answers(sim.clone(), say)),
        )
    });

    // Long enough for the cold interval, stretched by the budget, to come round after the end.
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs_f64((end + 4.0 * 3600.0) / options.speed + 30.0);
    while !caught_up(&sim, &config, &store)? && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let chat = match typist {
        Some((typist, printer)) => {
            let (posted, disconnects) = typist.await?;
            // Each answer is a chat call: a few simulated minutes cover even a rate-limited one.
            let patience = Duration::from_secs_f64(600.0 / options.speed + 5.0);
            chat::wait_for_answers(&sim, &posted, patience).await;
            printer.abort();
            Some(chat::summarize(&sim, &posted, disconnects))
        }
        None => None,
    };
    trigger.trigger();
    daemon.await??;
    if let Some(printer) = printer {
        printer.abort();
    }
    if let Some(rate_limits) = rate_limits {
        rate_limits.abort();
    }

    let summary = Summary {
        chat,
        ..summarize(&sim, &config, &metrics)
    };
    say.line(format_args!(
        "\nsummary: {} builds, {} transitions, {} cards, {} Bitbucket requests (at most {} in a simulated hour), {} missed, {} duplicates, latency p50 {:.0}s p95 {:.0}s max {:.0}s",
        summary.builds,
        summary.transitions,
        summary.cards,
        summary.bitbucket_requests,
        summary.bitbucket_requests_max_per_hour,
        summary.missed,
        summary.duplicates,
        summary.latency_p50_s,
        summary.latency_p95_s,
        summary.latency_max_s,
    ));
    say.line(format_args!(
        "         {} posts, {} edits, {} dead letters",
        summary.posts, summary.edits, summary.dead_letters
    ));
    if let Some(chat) = &summary.chat {
        say.line(format_args!(
            "   chat: {} commands across {} forced disconnects ({} connections): {} answered once, {} lost, {} answered twice or more; {} war rooms",
            chat.commands, chat.forced_disconnects, chat.connections, chat.answered_once, chat.lost, chat.repeated, chat.war_rooms
        ));
    }
    let names = channel_names(&sim, &config);
    for (jid, url, event) in score(&sim, &config).missed.iter().take(20) {
        let channel = names.get(jid).unwrap_or(jid);
        say.line(format_args!(
            "  missed: {} of {url} in #{channel}",
            event.name()
        ));
    }
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.shutdown().await;
    }
    Ok(summary)
}

/// Every four simulated minutes, Zoom answers the next call with 429, cycling through the three
/// `Retry-After` forms (whole real seconds: under compressed time each costs many simulated ones).
async fn zoom_rate_limits(sim: Arc<Simulator>) {
    let pause = Duration::from_secs_f64(240.0 / sim.options().speed);
    for round in 0u32.. {
        tokio::time::sleep(pause).await;
        let forms = bbzoom_sim::retry_after_forms(Duration::from_secs(1));
        sim.zoom_rate_limit_next(1, Some(forms[round as usize % 3].clone()));
    }
}

/// The summary of a finished run.
pub fn summarize(sim: &Simulator, config: &Config, metrics: &Metrics) -> Summary {
    let score = score(sim, config);
    let stats = sim.stats();
    let mut latencies: Vec<f64> = score.latencies.iter().map(|l| l.seconds).collect();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    Summary {
        builds: sim.scenario().repos.iter().map(|r| r.builds.len()).sum(),
        transitions: metrics.transitions.load(Ordering::Relaxed),
        cards: stats.posts,
        bitbucket_requests: stats.bitbucket_requests,
        bitbucket_requests_max_per_hour: sim.bitbucket_max_per_hour(),
        missed: score.missed.len(),
        duplicates: score.duplicates,
        latency_p50_s: quantile(0.5),
        latency_p95_s: quantile(0.95),
        latency_max_s: quantile(1.0),
        posts: stats.posts,
        edits: stats.edits,
        dead_letters: metrics.dead_letters.load(Ordering::Relaxed),
        chat: None,
    }
}

/// The scenario is over, every watched repository source has nothing running and has read
/// every commit it follows since the last change, and the outbox is empty.
///
/// The outbox is read last, and the order matters: a poll commits its cursor and its rows in
/// one transaction, so once the cursors read as done every row they imply is already in the
/// outbox. Read first, the outbox could look empty just before a final poll commits both.
pub fn caught_up(sim: &Simulator, config: &Config, store: &Store) -> anyhow::Result<bool> {
    if sim.now() < sim.scenario().end() {
        return Ok(false);
    }
    // The wire time of the scenario's last change (see `Simulator::epoch_ms`).
    let end_ms = sim.epoch_ms() + (sim.scenario().end() * 1000.0 / sim.options().speed) as i64;
    for watch in &config.watches {
        let Some(repo) = scenario_repo(sim, &watch.repo.owner, &watch.repo.slug) else {
            continue;
        };
        let pipelines = watch.source == SourceKind::Pipelines;
        let builds = repo
            .builds
            .iter()
            .filter(|b| pipelines && repo.runs_pipeline(b))
            .map(|b| b.number)
            .max()
            .unwrap_or(0);
        // A commit still followed (settling, or looked at now and then for a late status) has
        // shown all it will once read after the scenario's last change.
        match store.cursor(&watch.repo, watch.source)? {
            Some(cursor)
                if cursor.active.is_empty()
                    && cursor.followed.iter().all(|f| f.read_ms >= end_ms)
                    && cursor.high_water >= builds => {}
            _ => return Ok(false),
        }
    }
    Ok(store.outbox_len() == 0)
}

fn scenario_repo<'a>(sim: &'a Simulator, owner: &str, slug: &str) -> Option<&'a SimRepo> {
    sim.scenario()
        .repos
        .iter()
        .find(|r| r.workspace.eq_ignore_ascii_case(owner) && r.slug.eq_ignore_ascii_case(slug))
}

/// Reads every channel back and compares it with what the scenario implies for each
/// subscription: the simulator's scoreboard, which knows nothing of the daemon's own filter,
/// detection or rendering code; it is handed the configuration's subscriptions as plain words.
pub fn score(sim: &Simulator, config: &Config) -> Score {
    let watchers: Vec<Watcher> = config
        .subscriptions
        .iter()
        .map(|s| {
            let patterns = |globs: &[crate::glob::RefGlob]| {
                Some(globs.iter().map(|g| g.as_str().to_owned()).collect())
            };
            Watcher {
                workspace: s.repo.owner.clone(),
                slug: s.repo.slug.clone(),
                pipelines: s.sources.contains(&SourceKind::Pipelines),
                statuses: s.sources.contains(&SourceKind::Statuses),
                branches: patterns(&s.refs.branches),
                tags: patterns(&s.refs.tags),
                commits: s.refs.commits,
                events: s
                    .events
                    .iter()
                    .map(|e| e.config_name().to_owned())
                    .collect(),
                channels: s
                    .channels
                    .iter()
                    .map(|name| sim_jid(sim, &config.zoom.channels[name]))
                    .collect(),
            }
        })
        .collect();
    score::score(sim, &watchers)
}

/// Each simulated channel's JID with the configured channel's name.
fn channel_names(sim: &Simulator, config: &Config) -> BTreeMap<String, String> {
    config
        .zoom
        .channels
        .values()
        .map(|c| (sim_jid(sim, c), c.name.clone()))
        .collect()
}

/// The simulator's channel a configured channel shows up in: its `to_jid`, or the channel its
/// webhook posts into.
fn sim_jid(sim: &Simulator, channel: &crate::config::Channel) -> String {
    match &channel.destination {
        crate::config::Destination::Chatbot { to_jid } => to_jid.clone(),
        // A person's own messages (never among the configured channels).
        crate::config::Destination::Direct { user } => user.to_string(),
        crate::config::Destination::Webhook { url, .. } => {
            let endpoint = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default();
            let webhooks = &sim.options().zoom.webhooks;
            webhooks
                .iter()
                .find(|w| w.endpoint_id == endpoint)
                .map(|w| w.channel.clone())
                .unwrap_or_default()
        }
    }
}

/// Prints each post and edit as the channel shows it.
async fn print_cards(
    mut events: tokio::sync::broadcast::Receiver<bbzoom_sim::ChannelEvent>,
    sim: Arc<Simulator>,
    config: Config,
    say: Narration,
) {
    let names = channel_names(&sim, &config);
    while let Ok(event) = events.recv().await {
        let channel = names
            .get(&event.to_jid)
            .cloned()
            .unwrap_or(event.to_jid.clone());
        let verb = match event.kind {
            ChannelEventKind::Posted => "new card",
            ChannelEventKind::Edited => "card edited",
        };
        say.line(format_args!(
            "[{:>6.0}s] #{channel} ({verb})\n{}\n",
            event.at,
            indent(&bbzoom_sim::view::card_text(&event.content))
        ));
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
