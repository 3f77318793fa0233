//! Request economy: how many Bitbucket requests bbzoom spends, and what it gets for them.
//!
//! One activity trace ([`Scenario::random`]: Cloud Pipelines repositories, builds arriving at
//! random, running for minutes, some failing, some pausing on manual steps) is played three ways
//! for each repository count, each live way against its own simulator on loopback:
//!
//! - **bbzoom**: exactly what `bbzoom demo` does, through the library: the environment written by
//!   [`demo::write_environment`] (production polling targets, the production budget), the real
//!   daemon, and the demo's scoreboard ([`demo::summarize`]). Latency is from a build's state
//!   change to its card arriving in the simulated Zoom channel.
//! - **naive**: a fixed-interval poller with the same budget: every repository polled in turn,
//!   spread evenly, at the interval that spends 90% of the budget (the share bbzoom plans
//!   with), each poll one request for the first page of pipelines. It keeps each pipeline's last
//!   state in memory and counts a change as detected when a poll shows it; it does not page,
//!   follow pipelines that fell off the first page, or deliver anything. Latency is from the
//!   state change to that detection, which favours it over bbzoom's card-arrival latency.
//! - **ideal**: computed from the trace: one request per state change, no delay.
//!
//! Latency counts the changes bbzoom turns into cards: a build appearing (from its creation),
//! pausing, and ending. Missed counts terminal changes (SUCCESSFUL, FAILED, ERROR, STOPPED,
//! EXPIRED) not shown when the run is scored (bbzoom) or never observed (naive). Duplicates are
//! cards repeating a build's event; the naive poller and the ideal have none by construction.
//! bbzoom runs until it has caught up with the trace ([`demo::caught_up`]), at most four
//! simulated hours past its end; the naive poller until every repository was polled once after
//! it. Times are simulated seconds; requests per hour are per simulated hour of each run.
//!
//! Prints a table and writes it, with the parameters, as JSON to
//! `$CARGO_TARGET_DIR/bench/economy.json` (default `target/bench/economy.json`).
//!
//! ```text
//! cargo bench --bench economy
//! ECONOMY_REPOS=100 ECONOMY_HOURS=1 cargo bench --bench economy
//! ```
//!
//! Environment variables:
//!
//! - `ECONOMY_REPOS`: comma-separated repository counts (default `100,1000`).
//! - `ECONOMY_HOURS`: simulated hours of activity in the trace (default 3).
//! - `ECONOMY_SPEED`: simulated seconds per real second (default 360: a simulated hour in ten
//!   real seconds, 90 requests per real second at the budget).
//! - `ECONOMY_SEED`: the trace's random seed (default 7, the demo's).

use anyhow::Context;
use bbzoom::bitbucket::{Account, Auth, CloudClient, RetryPolicy};
use bbzoom::config::{Config, RateLimit};
use bbzoom::credentials::Credentials;
use bbzoom::daemon::{self, Tuning};
use bbzoom::demo::{self, DEFAULT_BUDGET, Environment, SimPolling};
use bbzoom::domain::{BuildState, Outcome, RepoId};
use bbzoom::metrics::Metrics;
use bbzoom::store::Store;
use bbzoom_sim::{Scenario, SimOptions, SimRepo, SimState, Simulator};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Share of the budget a fixed schedule spends, as bbzoom's scheduler plans.
const PLANNED_SHARE: f64 = 0.9;

/// Timeout of one HTTP request of the naive poller, as bbzoom's demo configures its own.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Simulated seconds bbzoom gets after the trace ends to catch up, before it is stopped and
/// scored anyway (the demo's bound: the cold interval stretched by the budget comes round).
const CATCH_UP_SIM: f64 = 4.0 * 3600.0;

const NOTES: [&str; 4] = [
    "times are simulated seconds; requests per hour are per simulated hour of each run",
    "latency: bbzoom from state change to card arrival in Zoom; naive from state change to the poll that \
     detected it (no delivery, which favours it); ideal 0",
    "latency covers the changes bbzoom makes cards of: a build appearing, pausing and ending",
    "missed: terminal changes not shown when the run was scored (bbzoom) or never observed (naive); naive and \
     ideal have no duplicates by construction",
];

#[derive(Debug, Clone, Serialize)]
struct Parameters {
    seed: u64,
    /// Simulated hours of activity in the trace.
    hours: f64,
    /// Simulated seconds per real second.
    speed: f64,
    /// Requests per simulated hour.
    budget: u32,
    repos: Vec<usize>,
}

/// One trace, as the ideal sees it.
#[derive(Debug, Serialize)]
struct Trace {
    repos: usize,
    builds: usize,
    state_changes: usize,
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

/// One way of following one trace, scored.
#[derive(Debug, Serialize)]
struct Row {
    repos: usize,
    way: Way,
    requests: u64,
    /// Simulated hours the requests were spent over.
    hours: f64,
    requests_per_hour: f64,
    /// The most requests in any rolling simulated hour.
    max_per_hour: u64,
    latency_p50_s: f64,
    latency_p95_s: f64,
    latency_max_s: f64,
    missed: usize,
    duplicates: usize,
    /// Polls that failed (bbzoom's poll errors, the naive poller's failed requests).
    poll_errors: u64,
    /// Real seconds the run took.
    wall_s: f64,
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
    let parameters = parameters()?;
    let mut report = Report {
        parameters: parameters.clone(),
        traces: Vec::new(),
        results: Vec::new(),
        notes: NOTES.iter().map(|&note| note.to_owned()).collect(),
        wall_s: 0.0,
    };
    for &repos in &parameters.repos {
        let scenario = Scenario::random(parameters.seed, repos, parameters.hours);
        let (trace, ideal) = ideal(&scenario);
        eprintln!(
            "economy: {repos} repositories, {} builds, {} state changes until simulated second {:.0}",
            trace.builds, trace.state_changes, trace.end_s
        );
        report.traces.push(trace);
        eprintln!("economy: running bbzoom on {repos} repositories");
        let (bbzoom, caught_up) = run_bbzoom(&scenario, &parameters).await?;
        if !caught_up {
            report.notes.push(format!(
                "bbzoom on {repos} repositories had not caught up {CATCH_UP_SIM:.0} simulated seconds after the trace ended; scored as it stood"
            ));
        }
        eprintln!("economy: running the naive poller on {repos} repositories");
        let naive = run_naive(&scenario, &parameters).await?;
        for row in [&bbzoom, &naive] {
            if row.poll_errors > 0 {
                report.notes.push(format!(
                    "{} on {repos} repositories: {} polls failed",
                    row.way.name(),
                    row.poll_errors
                ));
            }
        }
        report.results.extend([bbzoom, naive, ideal]);
    }
    report.wall_s = started.elapsed().as_secs_f64();
    print_table(&report);
    let path = write_json(&report)?;
    println!("\nwritten to {}", path.display());
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
    let repos = match std::env::var("ECONOMY_REPOS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
            .collect::<Option<Vec<usize>>>()
            .with_context(|| {
                format!("ECONOMY_REPOS must be positive counts separated by commas, not {list:?}")
            })?,
        Err(_) => vec![100, 1000],
    };
    Ok(Parameters {
        seed: setting("ECONOMY_SEED", 7)?,
        hours,
        speed,
        budget: DEFAULT_BUDGET,
        repos,
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

/// The trace's shape and the ideal notifier's row: one request per state change, on time.
fn ideal(scenario: &Scenario) -> (Trace, Row) {
    let mut change_times: Vec<f64> = scenario
        .repos
        .iter()
        .flat_map(|repo| &repo.builds)
        .flat_map(|build| build.changes())
        .map(|(at, _)| at)
        .collect();
    change_times.sort_by(f64::total_cmp);
    let mut max_per_hour = 0;
    let mut hour_end = 0;
    for (first, &at) in change_times.iter().enumerate() {
        while hour_end < change_times.len() && change_times[hour_end] < at + 3600.0 {
            hour_end += 1;
        }
        max_per_hour = max_per_hour.max(hour_end - first);
    }
    let trace = Trace {
        repos: scenario.repos.len(),
        builds: scenario.repos.iter().map(|repo| repo.builds.len()).sum(),
        state_changes: change_times.len(),
        end_s: scenario.end(),
    };
    let hours = trace.end_s / 3600.0;
    let row = Row {
        repos: trace.repos,
        way: Way::Ideal,
        requests: trace.state_changes as u64,
        hours,
        requests_per_hour: trace.state_changes as f64 / hours,
        max_per_hour: max_per_hour as u64,
        latency_p50_s: 0.0,
        latency_p95_s: 0.0,
        latency_max_s: 0.0,
        missed: 0,
        duplicates: 0,
        poll_errors: 0,
        wall_s: 0.0,
    };
    (trace, row)
}

fn start_simulator(
    scenario: &Scenario,
    parameters: &Parameters,
) -> impl Future<Output = std::io::Result<Simulator>> {
    Simulator::start(
        scenario.clone(),
        SimOptions {
            speed: parameters.speed,
            ..SimOptions::default()
        },
    )
}

/// Runs the real daemon as `bbzoom demo` does until it has caught up with the trace (or the
/// bound passed); returns its row and whether it caught up.
async fn run_bbzoom(scenario: &Scenario, parameters: &Parameters) -> anyhow::Result<(Row, bool)> {
    let wall = Instant::now();
    let sim = start_simulator(scenario, parameters).await?;
    let dir = tempfile::tempdir()?;
    let environment = Environment {
        polling: SimPolling::default(),
        budget: parameters.budget,
        subscriptions: demo::subscribe_all(scenario),
    };
    let config = Config::load(&demo::write_environment(dir.path(), &sim, &environment)?)?;
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    let store = Store::open(&config.daemon.state_dir)?;
    let metrics = Arc::new(Metrics::default());
    let (trigger, shutdown) = bbzoom::shutdown::channel();
    let daemon = {
        let (config, store, metrics) = (config.clone(), store.clone(), metrics.clone());
        let speed = parameters.speed;
        tokio::spawn(async move {
            daemon::run(
                &config,
                &credentials,
                store,
                // Every delay and pace runs at the simulator's speed, as in the demo.
                Tuning::default().compressed(speed),
                metrics,
                shutdown,
            )
            .await
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
    let summary = demo::summarize(&sim, &config, &metrics);
    sim.shutdown().await;
    let row = Row {
        repos: scenario.repos.len(),
        way: Way::Bbzoom,
        requests: summary.bitbucket_requests,
        hours,
        requests_per_hour: summary.bitbucket_requests as f64 / hours,
        max_per_hour: summary.bitbucket_requests_max_per_hour,
        latency_p50_s: summary.latency_p50_s,
        latency_p95_s: summary.latency_p95_s,
        latency_max_s: summary.latency_max_s,
        missed: summary.missed,
        duplicates: summary.duplicates,
        poll_errors: metrics
            .poll_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        wall_s: wall.elapsed().as_secs_f64(),
    };
    Ok((row, caught_up))
}

/// Polls every repository in turn at the fixed interval the budget pays for, until each has
/// been looked at once after the trace ended.
async fn run_naive(scenario: &Scenario, parameters: &Parameters) -> anyhow::Result<Row> {
    let wall = Instant::now();
    let sim = start_simulator(scenario, parameters).await?;
    let token = sim
        .options()
        .bitbucket_token()
        .context("the simulator has no access token")?
        .to_owned();
    let budget = RateLimit {
        requests: parameters.budget,
        per: Duration::from_secs_f64(3600.0 / parameters.speed),
    };
    let account = Account::new(
        "naive".to_owned(),
        bbzoom::http::client(REQUEST_TIMEOUT),
        Auth::Bearer(token.into()),
        budget,
        RetryPolicy::default(),
    );
    let client = CloudClient::new(
        Arc::new(account),
        sim.bitbucket_api_url(),
        sim.bitbucket_web_url(),
    );
    let repos: Vec<RepoId> = scenario
        .repos
        .iter()
        .map(|repo| RepoId::new(&repo.workspace, &repo.slug))
        .collect();
    let interval_sim = repos.len() as f64 * 3600.0 / (f64::from(parameters.budget) * PLANNED_SHARE);
    let stop_at = scenario.end() + interval_sim;
    let between_polls =
        Duration::from_secs_f64(interval_sim / repos.len() as f64 / parameters.speed);
    let mut detector = NaiveDetector::new(&scenario.repos);
    let mut poll_errors = 0;
    let first = tokio::time::Instant::now();
    let mut next = first;
    for index in (0..repos.len()).cycle() {
        tokio::time::sleep_until(next).await;
        if sim.now() >= stop_at {
            break;
        }
        match client.pipelines(&repos[index], None).await {
            Ok(page) => detector.observe(index, sim.now(), &page.builds),
            Err(_) => poll_errors += 1,
        }
        next += between_polls;
    }
    let hours = sim.now() / 3600.0;
    let requests = sim.stats().bitbucket_requests;
    let max_per_hour = sim.bitbucket_max_per_hour();
    sim.shutdown().await;
    let mut latencies = detector.latencies.clone();
    latencies.sort_by(f64::total_cmp);
    Ok(Row {
        repos: repos.len(),
        way: Way::Naive,
        requests,
        hours,
        requests_per_hour: requests as f64 / hours,
        max_per_hour,
        latency_p50_s: quantile(&latencies, 0.5),
        latency_p95_s: quantile(&latencies, 0.95),
        latency_max_s: quantile(&latencies, 1.0),
        missed: detector.missed(),
        duplicates: 0,
        poll_errors,
        wall_s: wall.elapsed().as_secs_f64(),
    })
}

/// What the naive poller remembers and what it detected, checked against the trace.
struct NaiveDetector<'a> {
    repos: &'a [SimRepo],
    /// Last state seen per (repository index, pipeline number).
    last_seen: HashMap<(usize, u64), SimState>,
    /// Simulated seconds from each detected change to its detection.
    latencies: Vec<f64>,
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
            let Some(build) = self.repos[repo].builds.iter().find(|b| b.number == number) else {
                continue;
            };
            let before = self.last_seen.insert((repo, number), state);
            if before == Some(state) {
                continue;
            }
            if before.is_none() {
                self.latencies.push(at - build.created_at);
            }
            if state == SimState::Paused || state.is_terminal() {
                let changed_at = build
                    .changes()
                    .into_iter()
                    .rev()
                    .find(|&(changed_at, changed_to)| changed_to == state && changed_at <= at)
                    .map(|(changed_at, _)| changed_at);
                self.latencies
                    .extend(changed_at.map(|changed_at| at - changed_at));
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
                build.finished_at().is_some()
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

/// The `q` quantile of sorted `values` (nearest rank, as the demo's scoreboard); 0 if empty.
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values[((values.len() - 1) as f64 * q).round() as usize]
    }
}

fn print_table(report: &Report) {
    let p = &report.parameters;
    println!(
        "\nrequest economy: seed {}, {} simulated hours of activity, budget {} requests per simulated hour, speed {}x, {:.0} s wall\n",
        p.seed, p.hours, p.budget, p.speed, report.wall_s
    );
    for trace in &report.traces {
        println!(
            "trace of {} repositories: {} builds, {} state changes, last at simulated second {:.0}",
            trace.repos, trace.builds, trace.state_changes, trace.end_s
        );
    }
    println!(
        "\n{:>5}  {:<6}  {:>8}  {:>8}  {:>8}  {:>7}  {:>7}  {:>7}  {:>6}  {:>10}",
        "repos",
        "way",
        "requests",
        "req/hour",
        "max/hour",
        "p50 s",
        "p95 s",
        "max s",
        "missed",
        "duplicates"
    );
    for row in &report.results {
        println!(
            "{:>5}  {:<6}  {:>8}  {:>8.0}  {:>8}  {:>7.0}  {:>7.0}  {:>7.0}  {:>6}  {:>10}",
            row.repos,
            row.way.name(),
            row.requests,
            row.requests_per_hour,
            row.max_per_hour,
            row.latency_p50_s,
            row.latency_p95_s,
            row.latency_max_s,
            row.missed,
            row.duplicates
        );
    }
    println!();
    for note in &report.notes {
        println!("note: {note}");
    }
}

/// Writes the report to `bench/economy.json` under the target directory; returns the path.
fn write_json(report: &Report) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("economy.json");
    std::fs::write(&path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
