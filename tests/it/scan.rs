//! The workspace scan against the simulator: a push is found within a scan or two while the
//! sweep of idle repositories comes round only every half hour; renamed, deleted and empty
//! workspaces' repositories, a second page of changes, a 429 storm on the scan and a restart
//! lose nothing; `scan = "off"` makes no scan at all and still finds every build.

use crate::common::*;
use bbzoom::demo::{SimPolling, score, subscribe_all};
use bbzoom_sim::{BitbucketFaults, Scenario, SimBuild, SimOptions, SimRepo, SimStart, SimState};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Simulated seconds per real second.
const SPEED: f64 = 300.0;

/// A pipeline of `main` pushed at `at`, running two minutes.
fn pushed(at: f64) -> SimBuild {
    SimBuild::pipeline(
        1,
        "main",
        at,
        [
            (at + 5.0, SimState::Running),
            (at + 120.0, SimState::Successful),
        ],
    )
}

/// Production targets but an hour between looks at an idle repository, so only a scan can
/// find a push soon.
fn polling(scan: Option<f64>) -> SimPolling {
    SimPolling {
        cold: 3600.0,
        scan,
        ..SimPolling::default()
    }
}

fn options(faults: BitbucketFaults) -> SimOptions {
    SimOptions {
        speed: SPEED,
        start: SimStart::AtFirstRequest,
        bitbucket_faults: faults,
        ..SimOptions::default()
    }
}

/// The simulated seconds from `push` to the build's first card, if any came.
fn first_card_after(harness: &Harness, push: f64) -> Option<f64> {
    let score = score(&harness.sim, &harness.config);
    score
        .shown
        .values()
        .map(|&(_, at)| at - push)
        .reduce(f64::min)
}

/// Waits from simulated second `from` until the card of the build pushed at `push` is in, or
/// `until`; stops the daemon and returns the pushes its scans saw and the card's latency.
async fn hints_and_first_card(
    harness: &Harness,
    daemon: RunningDaemon,
    push: f64,
    from: f64,
    until: f64,
) -> (u64, Option<f64>) {
    let mut waited = from;
    harness.sleep_until(waited).await;
    while first_card_after(harness, push).is_none() && waited < until {
        waited += 50.0;
        harness.sleep_until(waited).await;
    }
    let hints = daemon.metrics.scan_hints.load(Ordering::Relaxed);
    daemon.stop().await;
    (hints, first_card_after(harness, push))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_found_by_the_scan_and_renamed_deleted_or_empty_repositories_change_nothing() {
    let push = 1500.0;
    let mut repos = idle(60);
    repos[0].renamed = Some((600.0, "renamed".into()));
    repos[1].deleted_at = Some(600.0);
    repos[59].builds = vec![pushed(push)];
    // A workspace whose only repository is gone: its listing is empty.
    repos.push(SimRepo {
        workspace: "empty".into(),
        slug: "gone".into(),
        deleted_at: Some(0.0),
        ..SimRepo::default()
    });
    let harness = sparse_sweeps(Scenario { repos }, 600).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(push + 300.0).await;
    let latency = first_card_after(&harness, push);
    let metrics = &daemon.metrics;
    let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let (scans, scan_errors, hints) = (
        count(&metrics.scans),
        count(&metrics.scan_errors),
        count(&metrics.scan_hints),
    );
    let found = count(&metrics.found_by_scan) + count(&metrics.found_by_sweep);
    daemon.stop().await;
    // Two workspaces, every 30 s at most a quarter of 540 planned an hour: scans every 53 s.
    assert!(scans >= 2 * 20, "{scans} scans");
    assert_eq!(
        scan_errors, 0,
        "an empty workspace or a renamed repository is no error"
    );
    // The push and the rename (a new name is commit activity too), each seen once. Which
    // poll finds the build first, the hint's or the sweep's, is a race; it is found once.
    assert_eq!(hints, 2, "pushes the scans saw");
    assert_eq!(found, 1);
    let latency = latency.expect("the pushed build's card arrived");
    assert!(latency < 180.0, "found {latency:.0} s after the push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_page_of_changes_is_read() {
    let push = 1200.0;
    let mut repos = idle(150);
    for repo in &mut repos {
        repo.builds = vec![pushed(push)];
    }
    let harness = sparse_sweeps(Scenario { repos }, 900).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(push).await;
    // Until every push is seen, for up to half an hour (the daemon, on a loaded machine, may
    // run some simulated minutes behind a clock this fast).
    let hints = || daemon.metrics.scan_hints.load(Ordering::Relaxed);
    while hints() < 150 && harness.sim.now() < push + 1800.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hints = hints();
    daemon.stop().await;
    // A page holds 100 repositories: the scan read the second to see all 150 pushes. (Which
    // poll finds each build first, the hint's or the sweep's, is a race; what the scan saw
    // is not.)
    assert_eq!(hints, 150, "pushes the scan saw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_during_a_429_storm_is_seen_by_the_first_scan_that_gets_through() {
    // The storm outlasts what a query's overlap reaches back (four scan intervals, 212 s
    // here): only a scan starting where the last successful one did sees the push.
    let (push, storm_end) = (1450.0, 1800.0);
    let mut repos = idle(40);
    repos[7].builds = vec![pushed(push)];
    let scenario = Scenario { repos };
    let subscriptions = subscribe_all(&scenario);
    let storm = BitbucketFaults {
        storm: Some((1400.0, storm_end)),
        ..BitbucketFaults::default()
    };
    // The 429s say when to come back (the storm's end), so the pause ends with the storm.
    let options = SimOptions {
        bitbucket_retry_after: true,
        ..options(storm)
    };
    let harness =
        Harness::start_with(scenario, options, polling(Some(30.0)), 600, &subscriptions).await;
    let daemon = harness.run_daemon();
    // Until well past the latency allowed below (a loaded machine's limiter and delivery lag
    // behind simulated time).
    let (hints, latency) =
        hints_and_first_card(&harness, daemon, push, storm_end + 300.0, storm_end + 900.0).await;
    assert_eq!(hints, 1, "the push was seen by a scan after the storm");
    let latency = latency.expect("the pushed build's card arrived");
    // The storm ends 350 s after the push; the polls it left overdue queue up at the limiter.
    assert!(
        latency < storm_end - push + 500.0,
        "found {latency:.0} s after the push"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_made_while_bbzoom_was_down_is_seen_by_the_first_scan_after_the_restart() {
    // 100 repositories at 162 planned requests an hour: a round of first looks after the
    // restart takes 2,222 s, scans come every 89 s (a quarter of the plan) and each reaches
    // back 356 s, not to the push.
    let (stop, push, restart) = (600.0, 700.0, 1300.0);
    let mut repos = idle(100);
    repos[99].builds = vec![pushed(push)];
    let harness = sparse_sweeps(Scenario { repos }, 180).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(stop).await;
    daemon.stop().await;
    harness.sleep_until(restart).await;
    let daemon = harness.run_daemon();
    // Until at most a round of first looks has passed.
    let (hints, latency) =
        hints_and_first_card(&harness, daemon, push, restart + 100.0, restart + 2300.0).await;
    // A scan reaching back only its overlap from the restart cannot see it.
    assert_eq!(hints, 1, "the push was seen by a scan after the restart");
    let latency = latency.expect("the pushed build's card arrived");
    // Well within the round of first looks (2,222 s), with room for a loaded machine's
    // limiter and delivery lagging behind simulated time (329 s seen in CI).
    assert!(
        latency < restart - push + 600.0,
        "found {:.0} s after the restart",
        latency - (restart - push)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_scan_off_no_scan_is_made_and_the_sweep_still_finds_every_build() {
    let push = 300.0;
    let mut repos = idle(5);
    repos[2].builds = vec![pushed(push)];
    let scenario = Scenario { repos };
    let subscriptions = subscribe_all(&scenario);
    let harness = Harness::start_with(
        scenario,
        options(BitbucketFaults::default()),
        polling(None),
        600,
        &subscriptions,
    )
    .await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    let metrics = &daemon.metrics;
    assert_eq!(metrics.scans.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.found_by_scan.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.found_by_sweep.load(Ordering::Relaxed), 1);
    daemon.stop().await;
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "{:?}", score.missed);
}
