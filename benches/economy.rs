//! Request economy: how soon a build's result reaches its channel for a given Bitbucket
//! budget, bbzoom against a naive poller and the ideal.
//!
//! One activity trace ([`Scenario::realistic`]: Cloud Pipelines repositories, a few busy and
//! most idle, a working day's rhythm, builds pushed, scheduled or run by hand, each pipeline
//! with its own typical duration) is played three ways for each run, each live way against
//! its own simulator on loopback:
//!
//! - **bbzoom**: exactly what `bbzoom demo` does, through the library: the environment written by
//!   [`demo::write_environment`] (production polling targets and workspace scan, the budget),
//!   the real daemon, and the demo's scoreboard. Latency is from a build's state change to its
//!   card arriving in the simulated Zoom channel.
//! - **naive**: a fixed-interval poller with the same budget: every repository polled in turn,
//!   round-robin, evenly spread, at the fastest interval the whole budget allows (bbzoom plans
//!   with 90 % of it), each poll one request for the first page of pipelines. It keeps each
//!   pipeline's last state in memory and counts a change as detected when a poll shows it; it
//!   does not page, follow pipelines that fell off the first page, or deliver anything. Latency
//!   is from the state change to that detection, which favours it over bbzoom's card-arrival
//!   latency. With two credentials it polls half the repositories with each.
//! - **ideal**: computed from the trace: one request per state change, no delay.
//!
//! Latency counts the changes bbzoom turns into cards: a build appearing (from its creation),
//! pausing, and ending; overall and by what started the build (push, schedule, by hand).
//! Missed counts terminal changes (SUCCESSFUL, FAILED, ERROR, STOPPED, EXPIRED) not shown when
//! the run is scored (bbzoom) or never observed (naive). Duplicates are cards repeating a
//! build's event; the naive poller and the ideal have none by construction. bbzoom runs until
//! it has caught up with the trace ([`demo::caught_up`]), at most four simulated hours past its
//! end; the naive poller until every repository was polled once after it. Times are simulated
//! seconds; requests per hour are per simulated hour of each run.
//!
//! Prints a table and writes it, with the parameters, as JSON to
//! `$CARGO_TARGET_DIR/bench/economy.json` (default `target/bench/economy.json`), and a latency
//! CDF chart per run next to it (`economy-<repos>.svg`, `-x2` with two credentials). For
//! bbzoom the JSON also has where its requests went (by the simulator's route), how many of
//! its changes were told later than issue 12's goal (a quarter of the naive poller's p95), its
//! missed changes, and its tail: each change told later than its p95 or that goal, with when
//! it happened and the build.
//!
//! ```text
//! cargo bench --bench economy
//! ECONOMY_REPOS=100 ECONOMY_POOLED= ECONOMY_HOURS=1 cargo bench --bench economy
//! ```
//!
//! Environment variables:
//!
//! - `ECONOMY_REPOS`: comma-separated repository counts (default `10,100,1000,5000`).
//! - `ECONOMY_POOLED`: counts also run with two credentials (default `1000`; empty for none).
//! - `ECONOMY_BUDGET`: requests per simulated hour per credential (default 1000, Bitbucket's).
//! - `ECONOMY_HOURS`: simulated hours of activity in the trace (default 3).
//! - `ECONOMY_SPEED`: simulated seconds per real second (default 360: a simulated hour in ten
//!   real seconds).
//! - `ECONOMY_SEED`: the trace's random seed (default 7, the demo's).
//! - `RUST_LOG`: the daemon's log on stderr (default errors only); for instance
//!   `bbzoom::scheduler=debug` shows each repository's first look and every poll planned
//!   and made (why: scan, sweep, following a run, schedule; its requests and what it found),
//!   which places a slow change against its repository's first look and shows where the
//!   budget went.

use anyhow::Context;
use bbzoom::bitbucket::{Account, Auth, CloudClient, RetryPolicy};
use bbzoom::config::{Config, RateLimit};
use bbzoom::credentials::Credentials;
use bbzoom::daemon;
use bbzoom::demo::{self, Environment, SimPolling};
use bbzoom::domain::{BuildState, Outcome, RepoId};
use bbzoom::metrics::Metrics;
use bbzoom::store::Store;
use bbzoom_sim::{
    Scenario, SimBuild, SimCredential, SimCredentialKind, SimOptions, SimRepo, SimStart, SimState,
    SimTrigger, Simulator, TraceMix,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timeout of one HTTP request of the naive poller, as bbzoom's demo configures its own.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Simulated seconds bbzoom gets after the trace ends to catch up, before it is stopped and
/// scored anyway.
const CATCH_UP_SIM: f64 = 4.0 * 3600.0;

/// The credentials a pooled run spreads its repositories over (the first is the simulator's
/// default one).
const POOL: [&str; 2] = ["sim-bitbucket", "sim-bitbucket-2"];

const NOTES: [&str; 6] = [
    "times are simulated seconds; requests per hour are per simulated hour of each run",
    "latency: bbzoom from state change to card arrival in Zoom; naive from state change to the poll that \
     detected it (no delivery, which favours it); ideal 0",
    "latency covers the changes bbzoom makes cards of: a build appearing, pausing and ending",
    "missed: terminal changes not shown when the run was scored (bbzoom) or never observed (naive); naive and \
     ideal have no duplicates by construction",
    "naive: every repository in turn at the fastest interval the whole budget allows; bbzoom plans with 90% of it",
    "over goal: bbzoom's changes told later than a quarter of the naive poller's p95 (its p95 meets that goal \
     while these are at most 5%)",
];

#[derive(Debug, Clone, Serialize)]
struct Parameters {
    seed: u64,
    /// Simulated hours of activity in the trace.
    hours: f64,
    /// Simulated seconds per real second.
    speed: f64,
    /// Requests per simulated hour per credential.
    budget: u32,
    repos: Vec<usize>,
    /// Repository counts also run with two credentials.
    pooled: Vec<usize>,
}

/// One trace, as the ideal sees it.
#[derive(Debug, Serialize)]
struct Trace {
    repos: usize,
    builds: usize,
    state_changes: usize,
    /// Builds by what started them.
    by_trigger: BTreeMap<&'static str, usize>,
    /// Simulated second of the trace's last change.
    end_s: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Way {
    Bbzoom,
    Naive,
    Ideal,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Bbzoom => "bbzoom",
            Way::Naive => "naive",
            Way::Ideal => "ideal",
        }
    }
}

/// Latency quantiles of a set of changes, in simulated seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Quantiles {
    count: usize,
    p50_s: f64,
    p95_s: f64,
    max_s: f64,
}

impl Quantiles {
    fn of(mut values: Vec<f64>) -> Quantiles {
        values.sort_by(f64::total_cmp);
        Quantiles {
            count: values.len(),
            p50_s: quantile(&values, 0.5),
            p95_s: quantile(&values, 0.95),
            max_s: quantile(&values, 1.0),
        }
    }
}

/// One way of following one trace, scored.
#[derive(Debug, Serialize)]
struct Row {
    repos: usize,
    credentials: usize,
    way: Way,
    requests: u64,
    /// Requests per state change of the trace.
    requests_per_change: f64,
    /// Simulated hours the requests were spent over.
    hours: f64,
    requests_per_hour: f64,
    /// The most requests any credential spent in any rolling simulated hour.
    max_per_hour: u64,
    latency: Quantiles,
    /// Latency by what started the build: `push`, `schedule`, `manual`.
    by_trigger: BTreeMap<&'static str, Quantiles>,
    missed: usize,
    duplicates: usize,
    /// Polls that failed (bbzoom's poll errors, the naive poller's failed requests).
    poll_errors: u64,
    /// Real seconds the run took.
    wall_s: f64,
    /// bbzoom's requests by the simulator's route that answered them: where the budget went.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    requests_by_route: BTreeMap<String, u64>,
    /// bbzoom's goal: a quarter of the naive poller's p95 on the same trace (issue 12).
    #[serde(skip_serializing_if = "Option::is_none")]
    goal_s: Option<f64>,
    /// How many of bbzoom's changes were told later than the goal: at most 5 % meets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    over_goal: Option<usize>,
    /// bbzoom's changes told later than its p95 or the goal, whichever is sooner, slowest
    /// first: what makes the tail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tail: Vec<Slow>,
    /// bbzoom's missed changes, each as "channel link event": what to trace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missed_changes: Vec<String>,
    /// Every latency, sorted, for the chart (not in the JSON).
    #[serde(skip)]
    sorted: Vec<f64>,
}

impl Row {
    fn new(way: Way, trace: &Trace, credentials: usize, latencies: &[(f64, SimTrigger)]) -> Row {
        let mut by_trigger: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for &(seconds, trigger) in latencies {
            by_trigger
                .entry(trigger_name(trigger))
                .or_default()
                .push(seconds);
        }
        let mut sorted: Vec<f64> = latencies.iter().map(|&(s, _)| s).collect();
        sorted.sort_by(f64::total_cmp);
        Row {
            repos: trace.repos,
            credentials,
            way,
            requests: 0,
            requests_per_change: 0.0,
            hours: 0.0,
            requests_per_hour: 0.0,
            max_per_hour: 0,
            latency: Quantiles::of(sorted.clone()),
            by_trigger: by_trigger
                .into_iter()
                .map(|(k, v)| (k, Quantiles::of(v)))
                .collect(),
            missed: 0,
            duplicates: 0,
            poll_errors: 0,
            wall_s: 0.0,
            requests_by_route: BTreeMap::new(),
            goal_s: None,
            over_goal: None,
            tail: Vec::new(),
            missed_changes: Vec::new(),
            sorted,
        }
    }

    /// Fills in the goal `naive` sets (a quarter of its p95), how many of the changes `told`
    /// (slowest first) missed it, and the tail: those slower than the goal or the p95.
    fn measure_against(&mut self, naive: &Row, mut told: Vec<Slow>) {
        let goal = naive.latency.p95_s / 4.0;
        let over = told.iter().take_while(|s| s.latency_s > goal).count();
        let cut = goal.min(self.latency.p95_s);
        let tail = told.iter().take_while(|s| s.latency_s > cut).count();
        told.truncate(tail);
        self.tail = told;
        (self.goal_s, self.over_goal) = (Some(goal), Some(over));
    }

    /// Fills in what was spent: `requests` over `hours` simulated hours.
    fn spent(mut self, trace: &Trace, requests: u64, hours: f64, max_per_hour: u64) -> Row {
        self.requests = requests;
        self.requests_per_change = requests as f64 / trace.state_changes.max(1) as f64;
        self.hours = hours;
        self.requests_per_hour = requests as f64 / hours;
        self.max_per_hour = max_per_hour;
        self
    }
}

/// One change bbzoom told late.
#[derive(Debug, Serialize)]
struct Slow {
    /// Simulated second of the change.
    at_s: f64,
    latency_s: f64,
    trigger: &'static str,
    event: String,
    /// The build's page on the simulator.
    build: String,
}

fn trigger_name(trigger: SimTrigger) -> &'static str {
    match trigger {
        SimTrigger::Push => "push",
        SimTrigger::Schedule => "schedule",
        SimTrigger::Manual => "manual",
    }
}

#[derive(Debug, Serialize)]
struct Report {
    parameters: Parameters,
    traces: Vec<Trace>,
    results: Vec<Row>,
    notes: Vec<String>,
    wall_s: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    // The daemon's log, errors only unless `RUST_LOG` asks for more.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let parameters = parameters()?;
    let mut report = Report {
        parameters: parameters.clone(),
        traces: Vec::new(),
        results: Vec::new(),
        notes: NOTES.iter().map(|&note| note.to_owned()).collect(),
        wall_s: 0.0,
    };
    let mut runs: Vec<(usize, usize)> = parameters.repos.iter().map(|&r| (r, 1)).collect();
    runs.extend(parameters.pooled.iter().map(|&r| (r, POOL.len())));
    let dir = bench_dir()?;
    for (repos, credentials) in runs {
        let scenario = Scenario::realistic(
            parameters.seed,
            repos,
            parameters.hours,
            TraceMix::default(),
        );
        let trace = trace(&scenario);
        eprintln!(
            "economy: {repos} repositories, {credentials} credential(s): {} builds, {} state changes until simulated second {:.0}",
            trace.builds, trace.state_changes, trace.end_s
        );
        let (mut bbzoom, told, caught_up) =
            run_bbzoom(&scenario, &trace, &parameters, credentials).await?;
        if !caught_up {
            report.notes.push(format!(
                "bbzoom on {repos} repositories had not caught up {CATCH_UP_SIM:.0} simulated seconds after the trace ended; scored as it stood"
            ));
        }
        let naive = run_naive(&scenario, &trace, &parameters, credentials).await?;
        bbzoom.measure_against(&naive, told);
        let ideal = ideal(&scenario, &trace, credentials);
        for row in [&bbzoom, &naive] {
            if row.poll_errors > 0 {
                report.notes.push(format!(
                    "{} on {repos} repositories: {} polls failed",
                    row.way.name(),
                    row.poll_errors
                ));
            }
        }
        let chart = dir.join(chart_name(repos, credentials));
        std::fs::write(
            &chart,
            cdf_chart(repos, credentials, [&bbzoom, &naive, &ideal]),
        )
        .with_context(|| format!("writing {}", chart.display()))?;
        if credentials == 1 {
            report.traces.push(trace);
        }
        report.results.extend([bbzoom, naive, ideal]);
    }
    report.wall_s = started.elapsed().as_secs_f64();
    print_table(&report);
    let path = dir.join("economy.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("\nwritten to {} (charts beside it)", path.display());
    Ok(())
}

/// The run parameters, from the environment or the defaults.
fn parameters() -> anyhow::Result<Parameters> {
    let hours: f64 = setting("ECONOMY_HOURS", 3.0)?;
    let speed: f64 = setting("ECONOMY_SPEED", 360.0)?;
    anyhow::ensure!(
        hours.is_finite() && hours > 0.0,
        "ECONOMY_HOURS must be a positive number"
    );
    anyhow::ensure!(
        speed.is_finite() && speed > 0.0,
        "ECONOMY_SPEED must be a positive number"
    );
    let budget: u32 = setting("ECONOMY_BUDGET", 1000)?;
    anyhow::ensure!(budget > 0, "ECONOMY_BUDGET must be a positive number");
    Ok(Parameters {
        seed: setting("ECONOMY_SEED", 7)?,
        hours,
        speed,
        budget,
        repos: counts("ECONOMY_REPOS", &[10, 100, 1000, 5000])?,
        pooled: counts("ECONOMY_POOLED", &[1000])?,
    })
}

/// Comma-separated positive counts from `name`, or `default`; empty means none.
fn counts(name: &str, default: &[usize]) -> anyhow::Result<Vec<usize>> {
    let Ok(list) = std::env::var(name) else {
        return Ok(default.to_vec());
    };
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<Vec<usize>>>()
        .with_context(|| {
            format!("{name} must be positive counts separated by commas, not {list:?}")
        })
}

fn setting<T: FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name} cannot be {value:?}")),
        Err(_) => Ok(default),
    }
}

/// The trace's shape.
fn trace(scenario: &Scenario) -> Trace {
    let builds = played(scenario);
    let mut by_trigger = BTreeMap::new();
    for build in builds.clone() {
        *by_trigger.entry(trigger_name(build.trigger)).or_default() += 1;
    }
    Trace {
        repos: scenario.repos.len(),
        builds: builds.clone().count(),
        state_changes: builds.map(|build| build.changes().len()).sum(),
        by_trigger,
        end_s: scenario.end(),
    }
}

/// The trace's builds, history from before it aside.
fn played(scenario: &Scenario) -> impl Iterator<Item = &SimBuild> + Clone {
    scenario
        .repos
        .iter()
        .flat_map(|repo| &repo.builds)
        .filter(|build| !build.is_history())
}

/// The ideal notifier's row: one request per state change, on time.
fn ideal(scenario: &Scenario, trace: &Trace, credentials: usize) -> Row {
    let changes: Vec<(f64, SimTrigger)> = played(scenario)
        .flat_map(|build| {
            build
                .changes()
                .into_iter()
                .map(|(at, _)| (at, build.trigger))
        })
        .collect();
    let mut times: Vec<f64> = changes.iter().map(|&(at, _)| at).collect();
    times.sort_by(f64::total_cmp);
    let mut max_per_hour = 0;
    let mut hour_end = 0;
    for (first, &at) in times.iter().enumerate() {
        while hour_end < times.len() && times[hour_end] < at + 3600.0 {
            hour_end += 1;
        }
        max_per_hour = max_per_hour.max(hour_end - first);
    }
    let zero: Vec<(f64, SimTrigger)> = changes.iter().map(|&(_, t)| (0.0, t)).collect();
    Row::new(Way::Ideal, trace, credentials, &zero).spent(
        trace,
        trace.state_changes as u64,
        trace.end_s / 3600.0,
        max_per_hour as u64,
    )
}

/// Simulator options for a run with `credentials` access tokens.
fn sim_options(parameters: &Parameters, credentials: usize) -> SimOptions {
    SimOptions {
        speed: parameters.speed,
        bitbucket_credentials: POOL[..credentials]
            .iter()
            .map(|name| SimCredential {
                name: (*name).to_owned(),
                kind: SimCredentialKind::AccessToken {
                    token: format!("{name}-token"),
                },
            })
            .collect(),
        // The trace begins when the poller under test first asks, as in the demo: a slow
        // start (a cold disk, a busy machine) must not turn the first builds into history.
        start: SimStart::AtFirstRequest,
        ..SimOptions::default()
    }
}

/// Runs the real daemon as `bbzoom demo` does until it has caught up with the trace (or the
/// bound passed); returns its row, its changes as told (slowest first) and whether it caught
/// up.
async fn run_bbzoom(
    scenario: &Scenario,
    trace: &Trace,
    parameters: &Parameters,
    credentials: usize,
) -> anyhow::Result<(Row, Vec<Slow>, bool)> {
    let wall = Instant::now();
    let sim = Simulator::start(scenario.clone(), sim_options(parameters, credentials)).await?;
    let dir = tempfile::tempdir()?;
    let mut subscriptions = demo::subscribe_all(scenario);
    if credentials > 1 {
        let pool = format!(
            "[[subscription]]\ncredential = {:?}\n",
            &POOL[..credentials]
        );
        subscriptions = subscriptions.replace("[[subscription]]\n", &pool);
    }
    let environment = Environment {
        polling: SimPolling::default(),
        budget: Some(parameters.budget),
        subscriptions,
        chat_commands: false,
    };
    let config = Config::load(&demo::write_environment(dir.path(), &sim, &environment)?)?;
    let stored = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    let store = Store::open(&config.daemon.state_dir)?;
    let metrics = Arc::new(Metrics::default());
    let (trigger, shutdown) = bbzoom::shutdown::channel();
    let daemon = {
        let (config, store, metrics) = (config.clone(), store.clone(), metrics.clone());
        // Every delay and pace runs at the simulator's speed, and schedules by its calendar,
        // as in the demo.
        let tuning = demo::tuning(&sim);
        tokio::spawn(async move {
            daemon::run(&config, &stored, store, tuning, metrics, shutdown).await
        })
    };
    let deadline = Instant::now()
        + Duration::from_secs_f64((scenario.end() + CATCH_UP_SIM) / parameters.speed);
    let mut caught_up = false;
    while !caught_up && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        caught_up = demo::caught_up(&sim, &config, &store)?;
    }
    trigger.trigger();
    daemon.await??;
    let hours = sim.now() / 3600.0;
    let score = demo::score(&sim, &config);
    let latencies: Vec<(f64, SimTrigger)> = score
        .latencies
        .iter()
        .map(|l| (l.seconds, l.trigger))
        .collect();
    let mut row = Row::new(Way::Bbzoom, trace, credentials, &latencies).spent(
        trace,
        sim.stats().bitbucket_requests,
        hours,
        sim.bitbucket_max_per_hour(),
    );
    row.requests_by_route = sim.requests_by_route();
    sim.shutdown().await;
    row.missed = score.missed.len();
    row.missed_changes = score
        .missed
        .iter()
        .map(|(channel, link, event)| format!("{channel} {link} {event:?}"))
        .collect();
    row.duplicates = score.duplicates;
    let mut told: Vec<Slow> = score
        .latencies
        .iter()
        .map(|l| Slow {
            at_s: l.at,
            latency_s: l.seconds,
            trigger: trigger_name(l.trigger),
            event: format!("{:?}", l.event),
            build: l.url.clone(),
        })
        .collect();
    told.sort_by(|a, b| b.latency_s.total_cmp(&a.latency_s));
    row.poll_errors = metrics
        .poll_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    row.wall_s = wall.elapsed().as_secs_f64();
    Ok((row, told, caught_up))
}

/// Polls every repository in turn at the fixed interval the budget pays for, until each has
/// been looked at once after the trace ended. With several credentials, repositories take
/// turns between them, each polled at its own budget.
async fn run_naive(
    scenario: &Scenario,
    trace: &Trace,
    parameters: &Parameters,
    credentials: usize,
) -> anyhow::Result<Row> {
    let wall = Instant::now();
    let options = sim_options(parameters, credentials);
    let sim = Simulator::start(scenario.clone(), options.clone()).await?;
    let budget = RateLimit {
        requests: parameters.budget,
        per: Duration::from_secs_f64(3600.0 / parameters.speed),
    };
    let clients: Vec<CloudClient> = options
        .bitbucket_credentials
        .iter()
        .map(|credential| {
            let SimCredentialKind::AccessToken { token } = &credential.kind else {
                unreachable!("the bench's credentials are access tokens")
            };
            let account = Account::new(
                credential.name.clone(),
                bbzoom::http::client(REQUEST_TIMEOUT),
                Auth::Bearer(token.clone().into()),
                budget,
                RetryPolicy::default(),
            );
            CloudClient::new(
                Arc::new(account),
                sim.bitbucket_api_url(),
                sim.bitbucket_web_url(),
            )
        })
        .collect();
    let repos: Vec<RepoId> = scenario
        .repos
        .iter()
        .map(|repo| RepoId::new(&repo.workspace, &repo.slug))
        .collect();
    // The whole budget of every credential, spread evenly.
    let rate = f64::from(parameters.budget) * credentials as f64 / 3600.0;
    let interval_sim = repos.len() as f64 / rate;
    let stop_at = scenario.end() + interval_sim;
    let between_polls = Duration::from_secs_f64(1.0 / rate / parameters.speed);
    let mut detector = NaiveDetector::new(&scenario.repos);
    let mut poll_errors = 0;
    let mut next = tokio::time::Instant::now();
    for index in (0..repos.len()).cycle() {
        tokio::time::sleep_until(next).await;
        if sim.now() >= stop_at {
            break;
        }
        match clients[index % clients.len()]
            .pipelines(&repos[index], None)
            .await
        {
            Ok(page) => detector.observe(index, sim.now(), &page.builds),
            Err(_) => poll_errors += 1,
        }
        next += between_polls;
    }
    let hours = sim.now() / 3600.0;
    let mut row = Row::new(Way::Naive, trace, credentials, &detector.latencies).spent(
        trace,
        sim.stats().bitbucket_requests,
        hours,
        sim.bitbucket_max_per_hour(),
    );
    sim.shutdown().await;
    row.missed = detector.missed();
    row.poll_errors = poll_errors;
    row.wall_s = wall.elapsed().as_secs_f64();
    Ok(row)
}

/// What the naive poller remembers and what it detected, checked against the trace.
struct NaiveDetector<'a> {
    repos: &'a [SimRepo],
    /// Last state seen per (repository index, pipeline number).
    last_seen: HashMap<(usize, u64), SimState>,
    /// Simulated seconds from each detected change to its detection, and what started the
    /// build.
    latencies: Vec<(f64, SimTrigger)>,
}

impl<'a> NaiveDetector<'a> {
    fn new(repos: &'a [SimRepo]) -> NaiveDetector<'a> {
        NaiveDetector {
            repos,
            last_seen: HashMap::new(),
            latencies: Vec::new(),
        }
    }

    /// Takes in the pipelines one poll of repository `repo` showed at simulated second `at`.
    fn observe(&mut self, repo: usize, at: f64, page: &[bbzoom::domain::BuildStatus]) {
        for status in page {
            let (Some(number), Some(state)) = (status.number, sim_state(&status.state)) else {
                continue;
            };
            let Some(build) = self.repos[repo]
                .builds
                .iter()
                .find(|b| b.number == number && !b.is_history())
            else {
                continue;
            };
            let before = self.last_seen.insert((repo, number), state);
            if before == Some(state) {
                continue;
            }
            if before.is_none() {
                self.latencies.push((at - build.created_at, build.trigger));
            }
            if state == SimState::Paused || state.is_terminal() {
                let changed_at = build
                    .changes()
                    .into_iter()
                    .rev()
                    .find(|&(changed_at, changed_to)| changed_to == state && changed_at <= at)
                    .map(|(changed_at, _)| changed_at);
                self.latencies
                    .extend(changed_at.map(|changed_at| (at - changed_at, build.trigger)));
            }
        }
    }

    /// Builds of the trace that end without the poller ever seeing them ended.
    fn missed(&self) -> usize {
        self.repos
            .iter()
            .enumerate()
            .flat_map(|(index, repo)| repo.builds.iter().map(move |build| (index, build)))
            .filter(|(index, build)| {
                !build.is_history()
                    && build.finished_at().is_some()
                    && !self
                        .last_seen
                        .get(&(*index, build.number))
                        .is_some_and(|state| state.is_terminal())
            })
            .count()
    }
}

/// The trace state a pipeline's domain state shows, if it is one the simulator plays.
fn sim_state(state: &BuildState) -> Option<SimState> {
    Some(match state {
        BuildState::Pending => SimState::Pending,
        BuildState::Running => SimState::Running,
        BuildState::Paused => SimState::Paused,
        BuildState::InProgressOther(stage) if stage == "HALTED" => SimState::Halted,
        BuildState::Completed(Outcome::Successful) => SimState::Successful,
        BuildState::Completed(Outcome::Failed) => SimState::Failed,
        BuildState::Completed(Outcome::Error) => SimState::Error,
        BuildState::Completed(Outcome::Stopped) => SimState::Stopped,
        BuildState::Completed(Outcome::Expired) => SimState::Expired,
        BuildState::InProgressOther(_) | BuildState::Completed(Outcome::Other(_)) => return None,
    })
}

fn print_table(report: &Report) {
    let p = &report.parameters;
    println!(
        "\nrequest economy: seed {}, {} simulated hours of activity, budget {} requests per simulated hour per credential, speed {}x, {:.0} s wall\n",
        p.seed, p.hours, p.budget, p.speed, report.wall_s
    );
    for trace in &report.traces {
        println!(
            "trace of {} repositories: {} builds ({:?}), {} state changes, last at simulated second {:.0}",
            trace.repos, trace.builds, trace.by_trigger, trace.state_changes, trace.end_s
        );
    }
    println!(
        "\n{:>5}  {:>5}  {:<6}  {:>8}  {:>7}  {:>8}  {:>6}  {:>6}  {:>6}  {:>9}  {:>9}  {:>9}  {:>6}  {:>4}  {:>9}",
        "repos",
        "creds",
        "way",
        "requests",
        "req/chg",
        "max/hour",
        "p50 s",
        "p95 s",
        "max s",
        "push p95",
        "sched p95",
        "hand p95",
        "missed",
        "dups",
        "over goal"
    );
    let p95 = |row: &Row, kind: &str| {
        row.by_trigger
            .get(kind)
            .map_or("-".to_owned(), |q| format!("{:.0}", q.p95_s))
    };
    for row in &report.results {
        println!(
            "{:>5}  {:>5}  {:<6}  {:>8}  {:>7.2}  {:>8}  {:>6.0}  {:>6.0}  {:>6.0}  {:>9}  {:>9}  {:>9}  {:>6}  {:>4}  {:>9}",
            row.repos,
            row.credentials,
            row.way.name(),
            row.requests,
            row.requests_per_change,
            row.max_per_hour,
            row.latency.p50_s,
            row.latency.p95_s,
            row.latency.max_s,
            p95(row, "push"),
            p95(row, "schedule"),
            p95(row, "manual"),
            row.missed,
            row.duplicates,
            row.over_goal.map_or("-".to_owned(), |over| format!(
                "{over} of {}",
                row.latency.count
            ))
        );
    }
    println!();
    for note in &report.notes {
        println!("note: {note}");
    }
}

/// `bench/` under the target directory, created.
fn bench_dir() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn chart_name(repos: usize, credentials: usize) -> String {
    match credentials {
        1 => format!("economy-{repos}.svg"),
        n => format!("economy-{repos}-x{n}.svg"),
    }
}

/// The latency CDF of each way as an SVG line chart: the share of changes (y) shown within a
/// latency (x, simulated seconds, up to the slowest way's 99th percentile).
fn cdf_chart(repos: usize, credentials: usize, rows: [&Row; 3]) -> String {
    // The canvas and its margins, in pixels.
    let (width, height, left, bottom, top, right) = (720.0, 420.0, 60.0, 40.0, 40.0, 20.0);
    let x_max = rows
        .iter()
        .map(|row| quantile(&row.sorted, 0.99))
        .fold(60.0, f64::max);
    let x = |s: f64| left + (s.min(x_max) / x_max) * (width - left - right);
    let y = |share: f64| height - bottom - share * (height - bottom - top);
    let colours = ["#1f77b4", "#d62728", "#2ca02c"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\">Card latency CDF, {repos} repositories, {credentials} credential(s); x: simulated seconds, y: share of changes shown</text>\n"
    );
    for tick in 0..=5 {
        let (share, secs) = (f64::from(tick) / 5.0, x_max * f64::from(tick) / 5.0);
        svg.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{y0}\" y2=\"{y0}\" stroke=\"#ddd\"/>\
             <text x=\"8\" y=\"{ylabel}\">{percent:.0}%</text>\n\
             <text x=\"{xs}\" y=\"{xlabel}\" text-anchor=\"middle\">{secs:.0} s</text>\n",
            x2 = width - right,
            y0 = y(share),
            ylabel = y(share) + 4.0,
            percent = share * 100.0,
            xs = x(secs),
            xlabel = height - bottom + 16.0,
        ));
    }
    for (i, (row, colour)) in rows.iter().zip(colours).enumerate() {
        let n = row.sorted.len().max(1) as f64;
        let mut points = format!("{:.1},{:.1}", x(0.0), y(0.0));
        for (k, &s) in row.sorted.iter().enumerate() {
            points.push_str(&format!(" {:.1},{:.1}", x(s), y((k + 1) as f64 / n)));
        }
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points}\"/>\n\
             <text x=\"{lx}\" y=\"{ly}\" fill=\"{colour}\">{name} (p95 {p95:.0} s)</text>\n",
            lx = width - right - 170.0,
            ly = height - bottom - 20.0 - 16.0 * i as f64,
            name = row.way.name(),
            p95 = row.latency.p95_s
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// The `q` quantile of sorted `values` (nearest rank, as the demo's scoreboard); 0 if empty.
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values[((values.len() - 1) as f64 * q).round() as usize]
    }
}
