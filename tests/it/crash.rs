//! Crash safety, the claim that earns sled its place: the real `bbzoom run` process is killed
//! with SIGKILL at random moments and restarted on the same state directory, again and again.
//! The store must always open, nothing may be missed, and duplicates may not exceed the kills.
//! Stopped with SIGTERM instead, as systemd stops it, it must exit within the unit's
//! `TimeoutStopSec` having finished what it had under way: nothing missed, nothing repeated.
//!
//! The moments are simulated seconds drawn from a seeded generator: the seed is printed and
//! named in every failure, and `BBZOOM_TEST_SEED=<seed>` replays the same moments.

use crate::common::{Harness, log_text, sigterm, spawn_daemon, wait_for_log};
use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, score};
use bbzoom_sim::Scenario;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KILLS: usize = 24;
/// Graceful stops and restarts in the SIGTERM test.
const STOPS: usize = 6;
const SPEED: f64 = 150.0;
/// How long a daemon may take to log what a step waits for.
const LOG_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let (harness, log) = started_showcase().await;
    let config = harness.config_path();
    let mut child = spawn_daemon(&config, &log, &[]);
    wait_for_baselines(&harness, &log).await;

    let seed = seed();
    for (kill, (at, down)) in moments(&harness, seed, KILLS).into_iter().enumerate() {
        harness.sleep_until(at).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "seed {seed}: daemon exited by itself ({status}) before kill {kill}; log:\n{}",
                log_text(&log)
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        harness.sleep_until(at + down).await;
        child = spawn_daemon(&config, &log, &[]);
    }
    assert!(
        harness.sim.now() < harness.sim.scenario().end(),
        "seed {seed}: the kills happened while builds were running"
    );
    eprintln!(
        "kills done at simulated second {:.0} of {:.0}",
        harness.sim.now(),
        harness.sim.scenario().end()
    );
    catch_up(&harness, &log).await;

    sigterm(child, &log).await;

    let score = score(&harness.sim, &harness.config);
    assert!(
        score.missed.is_empty(),
        "seed {seed}: missed after {KILLS} kills: {:?}\nwarnings in the log:\n{}",
        score.missed,
        log_text(&log)
            .lines()
            .filter(|l| !l.contains(" INFO "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        score.duplicates <= KILLS,
        "seed {seed}: {} duplicates after {KILLS} kills",
        score.duplicates
    );
    assert!(!score.shown.is_empty());
    let store = bbzoom::store::Store::open(&harness.config.daemon.state_dir).unwrap();
    assert_eq!(store.outbox_len(), 0, "everything delivered");
    eprintln!(
        "{KILLS} SIGKILLs: {} cards shown, {} duplicates, 0 missed",
        score.shown.len(),
        score.duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_in_time_and_repeats_nothing() {
    let (harness, log) = started_showcase().await;
    let config = harness.config_path();
    let mut child = spawn_daemon(&config, &log, &[]);
    wait_for_baselines(&harness, &log).await;
    let seed = seed();
    for (stop, (at, down)) in moments(&harness, seed, STOPS).into_iter().enumerate() {
        harness.sleep_until(at).await;
        sigterm(child, &log).await;
        harness.sleep_until(at + down).await;
        child = spawn_daemon(&config, &log, &[]);
        // Up before the next stop: a SIGTERM that beats the handlers ends a process that has
        // nothing under way (systemd counts that a clean stop too), which proves nothing here.
        wait_for_log(&log, "bbzoom running", stop + 2, LOG_WAIT).await;
    }
    catch_up(&harness, &log).await;
    sigterm(child, &log).await;
    let score = score(&harness.sim, &harness.config);
    assert!(
        score.missed.is_empty(),
        "seed {seed}: missed: {:?}",
        score.missed
    );
    assert_eq!(
        score.duplicates, 0,
        "seed {seed}: a graceful stop repeats nothing"
    );
    assert!(!score.shown.is_empty());
}

/// The seed of this run's moments: `BBZOOM_TEST_SEED` if set, else a fresh one. Printed, so
/// a failure can be replayed.
fn seed() -> u64 {
    let seed = match std::env::var("BBZOOM_TEST_SEED") {
        Ok(text) => text.parse().expect("BBZOOM_TEST_SEED is a number"),
        Err(_) => rand::rng().random(),
    };
    eprintln!("seed {seed} (replay with BBZOOM_TEST_SEED={seed})");
    seed
}

/// `count` moments, in simulated seconds, at which to stop the daemon, each with how long it
/// then stays down: in order, while the scenario's builds run (from now to 90% of its end).
fn moments(harness: &Harness, seed: u64, count: usize) -> Vec<(f64, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (from, to) = (harness.sim.now(), harness.sim.scenario().end() * 0.9);
    let mut at: Vec<f64> = (0..count).map(|_| rng.random_range(from..to)).collect();
    at.sort_by(f64::total_cmp);
    at.into_iter()
        .map(|at| (at, rng.random_range(0.0..15.0)))
        .collect()
}

/// The showcase on a simulator, and the file the daemons of a test log to.
async fn started_showcase() -> (Harness, PathBuf) {
    let harness = Harness::start(
        Scenario::showcase(),
        SPEED,
        bbzoom::demo::SimPolling::every(15.0),
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    let log = harness.dir.path().join("daemon.log");
    (harness, log)
}

/// Waits until the first run has baselined every repository source: one never recorded is,
/// by design, baselined (its history not announced) on the next start.
async fn wait_for_baselines(harness: &Harness, log: &Path) {
    wait_for_log(
        log,
        "baselined repository",
        harness.config.watches.len(),
        LOG_WAIT,
    )
    .await;
}

/// Lets the last run finish the scenario and deliver everything (bounded).
async fn catch_up(harness: &Harness, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.sim.now() < harness.sim.scenario().end()
        || !score(&harness.sim, &harness.config).missed.is_empty()
    {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("caught up at simulated second {:.0}", harness.sim.now());
    if std::env::var_os("BBZOOM_CRASH_LOG").is_some() {
        eprintln!("{}", log_text(log));
    }
    // A simulated minute longer, so any late duplicate would be counted too.
    harness.sleep_until(harness.sim.now() + 60.0).await;
}
