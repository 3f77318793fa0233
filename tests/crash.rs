//! Crash safety, the claim that earns sled its place: the real `bbzoom run` process is killed
//! with SIGKILL at random moments and restarted on the same state directory, again and again.
//! The store must always open, nothing may be missed, and duplicates may not exceed the kills.
//! Stopped with SIGTERM instead, as systemd stops it, it must exit within the unit's
//! `TimeoutStopSec` having finished what it had under way: nothing missed, nothing repeated.

mod common;

use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, score};
use bbzoom_sim::Scenario;
use common::{Harness, log_text, sigterm, spawn_daemon};
use rand::Rng;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KILLS: usize = 24;
/// Graceful stops and restarts in the SIGTERM test.
const STOPS: usize = 6;
const SPEED: f64 = 40.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let (harness, log) = started_showcase().await;
    let config = harness.config_path();
    let mut child = spawn_daemon(&config, &log, &[]);
    wait_for_baselines(&harness, &log).await;

    let mut rng = rand::rng();
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..600))).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "daemon exited by itself ({status}) before kill {kill}; log:\n{}",
                log_text(&log)
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        child = spawn_daemon(&config, &log, &[]);
    }
    assert!(
        harness.sim.now() < harness.sim.scenario().end(),
        "the kills happened while builds were running"
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
        "missed after {KILLS} kills: {:?}\nwarnings in the log:\n{}",
        score.missed,
        log_text(&log)
            .lines()
            .filter(|l| !l.contains(" INFO "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        score.duplicates <= KILLS,
        "{} duplicates after {KILLS} kills",
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
    let mut rng = rand::rng();
    for _ in 0..STOPS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..900))).await;
        sigterm(child, &log).await;
        child = spawn_daemon(&config, &log, &[]);
    }
    assert!(
        harness.sim.now() < harness.sim.scenario().end(),
        "the stops happened while builds were running"
    );
    catch_up(&harness, &log).await;
    sigterm(child, &log).await;
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "missed: {:?}", score.missed);
    assert_eq!(score.duplicates, 0, "a graceful stop repeats nothing");
    assert!(!score.shown.is_empty());
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
    let repos = harness.config.watches.len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_text(log).matches("baselined repository").count() < repos {
        assert!(
            Instant::now() < deadline,
            "no baseline; log:\n{}",
            log_text(log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    // A little longer, so any late duplicate would be counted too.
    tokio::time::sleep(Duration::from_millis(500)).await;
}
