//! Pipelines schedules against the simulator over loopback: `CloudClient::schedules` reads
//! every page (disabled schedules and unreadable patterns left out, the pages bounded), and
//! the simulator's calendar with `CronPattern::next_after` predicts when a scheduled run is
//! created, in the real time the wire shows, though the calendar runs at the simulator's speed.
//! The daemon polls a scheduled run just after it fires, with the schedules learnt from the
//! repository's history or, after a restart, kept in its store.

use crate::bitbucket::client;
use bbzoom::bitbucket::Auth;
use bbzoom::clock::Calendar;
use bbzoom::domain::RepoId;
use bbzoom_sim::{
    Scenario, SimBuild, SimOptions, SimRepo, SimSchedule, SimSource, SimState, SimTrigger,
    Simulator,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Simulated seconds per real second.
const SPEED: f64 = 10.0;

/// The simulated second the clock starts at: six real seconds before the scheduled run, time
/// enough to read its schedule first.
const START: f64 = 240.0;

/// Weekdays at 09:05, five minutes into the scenario (second 0 is Monday 09:00).
const WEEKDAYS_0905: &str = "0 5 9 ? * MON-FRI *";

/// A Cloud Pipelines repository of `acme` with these schedules and builds.
fn repo(slug: &str, schedules: Vec<SimSchedule>, builds: Vec<SimBuild>) -> SimRepo {
    SimRepo {
        schedules,
        ..SimRepo::new("acme", slug, SimSource::CloudPipelines, builds)
    }
}

/// `n` enabled nightly schedules of `main`, a minute apart.
fn nightly(n: usize) -> impl Iterator<Item = SimSchedule> {
    (0..n).map(|i| SimSchedule::new(format!("0 {} 3 * * ? *", i % 60), "main"))
}

/// The scenario: `api` has the weekday schedule whose run starts at second 300, a disabled
/// one, one whose pattern Quartz refuses and 117 more (120: two pages); `many` has 250 (more
/// than the pages read); `none` has none.
fn scenario() -> Scenario {
    let mut api = vec![
        SimSchedule::new(WEEKDAYS_0905, "main"),
        SimSchedule {
            enabled: false,
            ..SimSchedule::new("0 0 12 ? * MON-FRI *", "main")
        },
        SimSchedule::new("0 0 12 L * ? *", "main"),
    ];
    api.extend(nightly(117));
    let run = SimBuild::pipeline(1, "main", 300.0, [(305.0, SimState::Running)])
        .triggered_by(SimTrigger::Schedule);
    Scenario {
        repos: vec![
            repo("api", api, vec![run]),
            repo("many", nightly(250).collect(), vec![]),
            repo("none", vec![], vec![]),
        ],
    }
}

/// Unix milliseconds now, by the wall clock.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `created_on` of `repo`'s pipeline `number` as the wire shows it, in Unix milliseconds.
async fn created_on(sim: &Simulator, repo: &str, number: u64) -> i64 {
    let url = format!(
        "{}/repositories/acme/{repo}/pipelines/?sort=-created_on",
        sim.bitbucket_api_url()
    );
    let token = sim.options().bitbucket_token().unwrap();
    let page: serde_json::Value = bbzoom::http::client(Duration::from_secs(5))
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pipeline = page["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["build_number"] == number)
        .unwrap_or_else(|| panic!("no pipeline {number} in {page}"));
    let text = pipeline["created_on"].as_str().unwrap();
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test]
async fn schedules_are_read_and_their_runs_predicted_on_the_simulators_calendar() {
    let options = SimOptions {
        speed: SPEED,
        starts_at: START,
        ..SimOptions::default()
    };
    let sim = Simulator::start(scenario(), options).await.unwrap();
    let client = client(&sim, Auth::Bearer("sim-bitbucket-token".to_owned().into()));

    let api = client.schedules(&RepoId::new("acme", "api")).await.unwrap();
    // The calendar runs SPEED times faster than the wire's timestamps: the run due at 09:05,
    // five minutes into the scenario, is created (300 - START) / SPEED real seconds after the
    // start.
    let calendar: Arc<dyn Calendar> = Arc::new(sim.calendar());
    let fire = api.enabled[0]
        .pattern
        .next_after(calendar.now_ms())
        .unwrap();
    let wait = calendar.until(fire);
    let predicted = wall_ms() + wait.as_millis() as i64;
    assert_eq!(fire, bbzoom_sim::calendar_ms(300.0));
    assert!(
        wait <= Duration::from_secs_f64((300.0 - START) / SPEED),
        "{wait:?}"
    );

    assert_eq!((api.requests, api.truncated), (2, false));
    assert_eq!(
        api.enabled.len(),
        118,
        "the disabled and the unreadable left out"
    );
    assert_eq!(api.enabled[0].pattern.to_string(), WEEKDAYS_0905);
    assert_eq!(api.enabled[0].branch.as_deref(), Some("main"));
    assert!(api.enabled[0].uuid.starts_with('{'));
    assert_eq!(api.enabled[1].pattern.to_string(), "0 0 3 * * ? *");
    let many = client
        .schedules(&RepoId::new("acme", "many"))
        .await
        .unwrap();
    assert_eq!(
        (many.enabled.len(), many.requests, many.truncated),
        (200, 2, true)
    );
    let none = client
        .schedules(&RepoId::new("acme", "none"))
        .await
        .unwrap();
    assert_eq!(
        (none.enabled.len(), none.requests, none.truncated),
        (0, 1, false)
    );
    // One request a page, each counted against the credential.
    assert_eq!(sim.bitbucket_requests_by_credential()["sim-bitbucket"], 5);

    let left = u64::try_from(predicted - wall_ms()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(left + 100)).await;
    let created = created_on(&sim, "api", 1).await;
    // Within two simulated seconds.
    let slack = (2_000.0 / SPEED) as i64;
    assert!(
        (created - predicted).abs() <= slack,
        "predicted {predicted}, created {created}"
    );
}

/// `nightly` (despite its name, hourly by `pattern`), whose schedule fires at simulated
/// second `fire` and fired an hour before, its run before the scenario being history, and 40
/// idle neighbours; a harness over them, all subscribed, the scan on, an hour between sweeps
/// of an idle repository, 300 requests an hour.
async fn hourly_among_idle(pattern: &str, fire: f64) -> crate::common::Harness {
    let before = fire - 3600.0;
    let history = SimBuild::pipeline(
        1,
        "main",
        before,
        [
            (before + 5.0, SimState::Running),
            (before + 100.0, SimState::Successful),
        ],
    )
    .triggered_by(SimTrigger::Schedule);
    let run = SimBuild::pipeline(
        2,
        "main",
        fire,
        [
            (fire + 5.0, SimState::Running),
            (fire + 400.0, SimState::Successful),
        ],
    )
    .with_commit(&history.commit)
    .triggered_by(SimTrigger::Schedule);
    let hourly = SimSchedule::new(pattern, "main");
    let mut repos = vec![repo("nightly", vec![hourly], vec![history, run])];
    repos.extend((1..=40).map(|i| repo(&format!("idle-{i:02}"), Vec::new(), Vec::new())));
    crate::common::sparse_sweeps(Scenario { repos }, 300).await
}

/// The simulator's route of a repository's schedules.
const SCHEDULES_ROUTE: &str =
    "/2.0/repositories/{workspace}/{repo_slug}/pipelines_config/schedules";

/// Simulated seconds from `fire` to the first card shown.
fn first_card_after(harness: &crate::common::Harness, fire: f64) -> Option<f64> {
    bbzoom::demo::score(&harness.sim, &harness.config)
        .shown
        .values()
        .map(|&(_, at)| at - fire)
        .reduce(f64::min)
}

/// The daemon learns from a repository's history that it has schedules, reads them, and polls
/// just after the next scheduled run starts: while the sweep of its 40 idle neighbours comes
/// round only every few minutes, the run is told within a minute, credited to the schedule.
/// The neighbours, whose histories show no scheduled run, cost no schedules read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_is_polled_just_after_its_schedule_fires() {
    use std::sync::atomic::Ordering;
    // Hourly: 10:00 is second 3,600; the run before the scenario, at 08:00, is history.
    let fire = 3600.0;
    let harness = hourly_among_idle("0 0 * * * ? *", fire).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(fire + 120.0).await;
    let by_schedule = daemon.metrics.found_by_schedule.load(Ordering::Relaxed);
    let first = first_card_after(&harness, fire);
    daemon.stop().await;
    // The idle neighbours' first polls show no scheduled run: their schedules are never read.
    assert_eq!(
        harness.sim.requests_by_route().get(SCHEDULES_ROUTE),
        Some(&1),
        "only the repository whose history shows a scheduled run has its schedules read"
    );
    assert_eq!(
        by_schedule, 1,
        "the scheduled run is found by the schedule's poll"
    );
    let first = first.expect("the scheduled run's card arrived");
    assert!(first < 60.0, "told {first:.0} s after the schedule fired");
}

/// Schedules read before a restart are kept: the restarted daemon, whose first look at the
/// repository shows no new scheduled run to learn them from, still polls just after the next
/// one fires, without reading them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_read_before_a_restart_time_the_polls_after_it() {
    use std::sync::atomic::Ordering;
    // Hourly at half past: 09:30 is second 1,800.
    let (fire, restart) = (1800.0, 900.0);
    let harness = hourly_among_idle("0 30 * * * ? *", fire).await;
    let daemon = harness.run_daemon();
    // Until the first look at the repository has shown its history and its schedules are
    // read (a round of first looks takes 547 s).
    let read = || {
        harness
            .sim
            .requests_by_route()
            .get(SCHEDULES_ROUTE)
            .copied()
    };
    let mut waited = 60.0;
    while read().is_none() && waited < restart - 100.0 {
        waited += 20.0;
        harness.sleep_until(waited).await;
    }
    daemon.stop().await;
    assert_eq!(read(), Some(1), "the schedules were read before the stop");
    harness.sleep_until(restart).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(fire + 120.0).await;
    let by_schedule = daemon.metrics.found_by_schedule.load(Ordering::Relaxed);
    let first = first_card_after(&harness, fire);
    daemon.stop().await;
    assert_eq!(read(), Some(1), "the kept schedules were not read again");
    assert_eq!(
        by_schedule, 1,
        "the scheduled run is found by the kept schedule's poll"
    );
    let first = first.expect("the scheduled run's card arrived");
    // Its turn in the round of first looks would be minutes away (547 s a round); a loaded
    // machine has stretched the poll a `hot` after the firing to 65 s.
    assert!(first < 120.0, "told {first:.0} s after the schedule fired");
}
