//! The whole path through the real daemon code against the simulator over loopback: scripted
//! builds become exactly the expected cards, also across a restart in the middle (a build
//! still running at the stop looked at first after it); tag and
//! bare-commit builds are announced and routed by several subscriptions of one repository.

use crate::common::{Harness, acme_statuses, cards, replies};
use bbzoom::demo::SimPolling;
use bbzoom_sim::{Scenario, SimBuild, SimOptions, SimRepo, SimStart, SimState};
use std::time::Duration;

use SimState::*;

fn build(number: u64, branch: &str, created_at: f64, timeline: &[(f64, SimState)]) -> SimBuild {
    SimBuild {
        commit: format!("{number:0>40}"),
        message: format!("Change number {number}\n\nLonger description."),
        author: "Jane Dev".into(),
        ..SimBuild::pipeline(number, branch, created_at, timeline)
    }
}

/// Two repositories; every kind of ending, a manual step, a fix and a build still failing.
fn scenario() -> Scenario {
    Scenario {
        repos: vec![
            SimRepo {
                workspace: "acme".into(),
                slug: "api".into(),
                builds: vec![
                    build(1, "main", 5.0, &[(6.0, Running), (20.0, Successful)]),
                    build(2, "main", 25.0, &[(26.0, Running), (40.0, Failed)]),
                    build(3, "feature/x", 30.0, &[(31.0, Running), (45.0, Stopped)]),
                    build(
                        4,
                        "main",
                        46.0,
                        &[
                            (47.0, Running),
                            (52.0, Paused),
                            (62.0, Running),
                            (72.0, Successful),
                        ],
                    ),
                ],
                ..SimRepo::default()
            },
            SimRepo {
                workspace: "acme".into(),
                slug: "web".into(),
                builds: vec![
                    build(1, "main", 10.0, &[(11.0, Running), (30.0, Error)]),
                    build(2, "main", 35.0, &[(36.0, Running), (50.0, Failed)]),
                    build(3, "dev", 36.0, &[(37.0, Running), (51.0, Failed)]),
                    build(4, "main", 55.0, &[(56.0, Running), (70.0, Successful)]),
                ],
                ..SimRepo::default()
            },
        ],
    }
}

const SUBSCRIPTIONS: &str = r#"
[[subscription]]
repository = "{web}/acme/api"
events = ["started", "paused", "succeeded", "fixed", "failed", "still_failing", "stopped"]
channels = ["ci"]

[[subscription]]
repository = "{web}/acme/web.git"
branches = ["main"]
events = ["failed", "fixed"]
channels = ["ci", "releases"]
"#;

/// Cards as sequences of "head (sub-head)": one card per build per channel, edited in place.
fn cards_of(cards: &[&[&str]]) -> Vec<Vec<String>> {
    let mut cards: Vec<Vec<String>> = cards
        .iter()
        .map(|c| c.iter().map(|t| t.to_string()).collect())
        .collect();
    cards.sort();
    cards
}

fn sorted(titles: &[&str]) -> Vec<String> {
    let mut titles: Vec<String> = titles.iter().map(|t| t.to_string()).collect();
    titles.sort();
    titles
}

const WEB_CARDS: [&[&str]; 3] = [
    &["❌ FAILED · acme/web · main (Pipeline #1)"],
    &["❌ STILL FAILING · acme/web · main (Pipeline #2)"],
    &["✅ FIXED · acme/web · main (Pipeline #4)"],
];

fn expected_ci() -> Vec<Vec<String>> {
    let api: [&[&str]; 4] = [
        &[
            "🔵 STARTED · acme/api · main (Pipeline #1)",
            "✅ SUCCEEDED · acme/api · main (Pipeline #1)",
        ],
        &[
            "🔵 STARTED · acme/api · main (Pipeline #2)",
            "❌ FAILED · acme/api · main (Pipeline #2)",
        ],
        &[
            "🔵 STARTED · acme/api · feature/x (Pipeline #3)",
            "⏹️ STOPPED · acme/api · feature/x (Pipeline #3)",
        ],
        &[
            "🔵 STARTED · acme/api · main (Pipeline #4)",
            "⏸️ PAUSED · acme/api · main (Pipeline #4)",
            "✅ FIXED · acme/api · main (Pipeline #4)",
        ],
    ];
    cards_of(&[&api[..], &WEB_CARDS[..]].concat())
}

/// Endings that edited an existing card are also posted in its thread, so people are notified.
fn expected_ci_replies() -> Vec<String> {
    sorted(&[
        "✅ SUCCEEDED · acme/api · main (Pipeline #1)",
        "❌ FAILED · acme/api · main (Pipeline #2)",
        "⏹️ STOPPED · acme/api · feature/x (Pipeline #3)",
        "✅ FIXED · acme/api · main (Pipeline #4)",
    ])
}

fn expected_releases() -> Vec<Vec<String>> {
    cards_of(&WEB_CARDS)
}

const SPEED: f64 = 20.0;
fn polling() -> SimPolling {
    SimPolling::every(2.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_builds_become_exactly_the_expected_cards() {
    let harness = Harness::start(scenario(), SPEED, polling(), SUBSCRIPTIONS).await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(20))
        .await;
    daemon.stop().await;

    assert_eq!(
        cards(&harness.sim, "ci@conference.xmpp.zoom.us"),
        expected_ci()
    );
    assert_eq!(
        replies(&harness.sim, "ci@conference.xmpp.zoom.us"),
        expected_ci_replies()
    );
    assert_eq!(
        cards(&harness.sim, "releases@conference.xmpp.zoom.us"),
        expected_releases()
    );
    assert!(replies(&harness.sim, "releases@conference.xmpp.zoom.us").is_empty());
    // The card carries the pipeline's facts and a link to it.
    let card = harness
        .sim
        .channel("ci@conference.xmpp.zoom.us")
        .into_iter()
        .find(|m| m.content["head"]["text"] == "✅ FIXED · acme/api · main")
        .unwrap();
    let text = bbzoom_sim::view::card_text(&card.content);
    assert!(text.contains("Commit: 0000000 Change number 4"), "{text}");
    assert!(text.contains("Author: Jane Dev"), "{text}");
    assert!(text.contains("Duration: 26s"), "{text}");
    assert!(text.contains("/acme/api/pipelines/results/4>"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_misses_and_repeats_nothing() {
    let harness = Harness::start(scenario(), SPEED, polling(), SUBSCRIPTIONS).await;
    let first = harness.run_daemon();
    // Stop while builds are running (api #2 and #3, web #2 are in progress at 38 s).
    harness.sleep_until(38.0).await;
    first.stop().await;
    let shown_before = harness.sim.stats();
    assert!(
        shown_before.posts > 0 && shown_before.edits < 6,
        "stopped mid-scenario: {shown_before:?}"
    );
    // Down for a while: builds move on meanwhile.
    harness.sleep_until(48.0).await;
    let second = harness.run_daemon();
    harness
        .wait_caught_up(&second.store, Duration::from_secs(20))
        .await;
    second.stop().await;

    // The message ids survived the restart: the same cards were edited, none posted twice. (A
    // start that queued up behind a later state while the daemon caught up is superseded, so
    // only each card's final state is compared.)
    let last = |cards: Vec<Vec<String>>| -> Vec<String> {
        let mut last: Vec<String> = cards
            .into_iter()
            .filter_map(|c| c.last().cloned())
            .collect();
        last.sort();
        last
    };
    assert_eq!(
        last(cards(&harness.sim, "ci@conference.xmpp.zoom.us")),
        last(expected_ci())
    );
    assert_eq!(
        replies(&harness.sim, "ci@conference.xmpp.zoom.us"),
        expected_ci_replies()
    );
    assert_eq!(
        cards(&harness.sim, "releases@conference.xmpp.zoom.us"),
        expected_releases()
    );
}

/// A build running when bbzoom stops and ending while it is down is looked at first after
/// the restart, not at the repository's turn in the round of first looks (at 162 planned
/// requests an hour, 200 repositories take 4,444 s). Its push is older than what the first
/// scan after the restart reaches back to (four scan intervals before the last scan), so no
/// hint brings the look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_running_at_a_stop_is_looked_at_first_after_the_restart() {
    let (stop, ended, restart) = (1200.0, 1500.0, 1800.0);
    let mut repos = crate::common::idle(200);
    repos[199].builds = vec![build(1, "main", 60.0, &[(65.0, Running), (ended, Failed)])];
    let harness = crate::common::sparse_sweeps(Scenario { repos }, 180).await;
    let failed = || {
        cards(&harness.sim, "ci@conference.xmpp.zoom.us")
            .iter()
            .flatten()
            .any(|title| title.starts_with("❌ FAILED"))
    };
    let daemon = harness.run_daemon();
    // Until the build is seen running, which its push's hint brings soon.
    let mut waited = 120.0;
    harness.sleep_until(waited).await;
    while cards(&harness.sim, "ci@conference.xmpp.zoom.us").is_empty() && waited < stop {
        waited += 20.0;
        harness.sleep_until(waited).await;
    }
    harness.sleep_until(stop).await;
    daemon.stop().await;
    assert!(!failed(), "stopped while the build ran");
    harness.sleep_until(restart).await;
    let daemon = harness.run_daemon();
    let mut waited = restart;
    while !failed() && waited < restart + 600.0 {
        waited += 10.0;
        harness.sleep_until(waited).await;
    }
    daemon.stop().await;
    assert!(
        failed() && waited <= restart + 120.0,
        "the ending was told {:.0} s after the restart",
        waited - restart
    );
}

/// A budget a little short of following every running build every `hot` keeps following
/// them at the stretched interval where that sees a run's end sooner than one look when it
/// should end: three twenty-minute pipelines at once, at 600 requests an hour, are followed
/// about every half minute, not looked at once four minutes after their ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_is_followed_when_the_budget_is_a_little_short() {
    let (second, ends) = (1500.0, 2700.0);
    let repos: Vec<SimRepo> = ["a", "b", "c"]
        .into_iter()
        .map(|slug| {
            crate::common::acme_pipelines(
                slug,
                vec![
                    // The first run teaches its branch's run time: twenty minutes.
                    build(1, "main", 30.0, &[(35.0, Running), (1230.0, Successful)]),
                    build(
                        2,
                        "main",
                        second,
                        &[(second + 5.0, Running), (ends, Successful)],
                    ),
                ],
            )
        })
        .collect();
    let harness = crate::common::sparse_sweeps(Scenario { repos }, 600).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(ends + 300.0).await;
    daemon.stop().await;
    let score = bbzoom::demo::score(&harness.sim, &harness.config);
    for slug in ["a", "b", "c"] {
        let told = score
            .shown
            .iter()
            .find(|((_, url, event), _)| {
                url.ends_with(&format!("/acme/{slug}/pipelines/results/2"))
                    && *event == bbzoom_sim::score::SimEvent::Succeeded
            })
            .map(|(_, &(_, at))| at - ends);
        // Followed, its end is seen within an interval (about 30 s); looked at once, 240 s
        // after it (a fifth of its run time).
        assert!(
            told.is_some_and(|late| late < 120.0),
            "acme/{slug} #2 told {told:?} s after its end"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_seen_first_is_baselined_and_its_running_builds_followed() {
    // Start watching at 42 s: api #1, #2 and web #1 are history; api #3 and web #2, #3 are
    // running. The clock starts there at the daemon's first look, so that look comes before
    // api #3 stops (3 simulated seconds later) however long the daemon took to start.
    let harness = Harness::start_timed(
        scenario(),
        from_second(42.0, SPEED),
        polling(),
        SUBSCRIPTIONS,
    )
    .await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(20))
        .await;
    daemon.stop().await;

    let expected = cards_of(&[
        // api #3 was running when first seen: its start is not news, its ending is.
        &["⏹️ STOPPED · acme/api · feature/x (Pipeline #3)"],
        // api #2 failed before bbzoom looked, yet the baseline remembers it: #4 fixes main.
        &[
            "🔵 STARTED · acme/api · main (Pipeline #4)",
            "⏸️ PAUSED · acme/api · main (Pipeline #4)",
            "✅ FIXED · acme/api · main (Pipeline #4)",
        ],
        &["❌ STILL FAILING · acme/web · main (Pipeline #2)"],
        &["✅ FIXED · acme/web · main (Pipeline #4)"],
    ]);
    assert_eq!(cards(&harness.sim, "ci@conference.xmpp.zoom.us"), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_bare_commits_are_announced_and_each_channel_gets_a_card_once() {
    let scenario = Scenario {
        repos: vec![SimRepo {
            workspace: "acme".into(),
            slug: "api".into(),
            builds: vec![
                build(1, "main", 5.0, &[(6.0, Running), (20.0, Failed)]),
                build(2, "main", 8.0, &[(9.0, Running), (30.0, Successful)]).on_tag("v1.0.0"),
                build(3, "main", 10.0, &[(11.0, Running), (40.0, Failed)]).as_custom("deploy"),
                build(4, "main", 50.0, &[(51.0, Running), (70.0, Successful)]),
            ],
            ..SimRepo::default()
        }],
    };
    // Everything to #ci; release tags' results to #releases; main's failures and fixes to #ci
    // again, which must not double its cards.
    let subscriptions = r#"
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
repository = "{web}/acme/api"
branches = ["main"]
events = ["failed", "fixed"]
channels = ["ci"]
"#;
    let harness = Harness::start(scenario, 20.0, SimPolling::every(5.0), subscriptions).await;
    assert_eq!(
        harness.config.watches.len(),
        1,
        "one repository, one source"
    );
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(20))
        .await;
    daemon.stop().await;

    let commit = format!("commit {}", &format!("{:0>40}", 3)[..7]);
    let card = |build: &str, ending: &str| {
        vec![
            format!("🔵 STARTED · acme/api · {build}"),
            format!("{ending} · acme/api · {build}"),
        ]
    };
    let mut expected = vec![
        card("main (Pipeline #1)", "❌ FAILED"),
        card("tag v1.0.0 (Pipeline #2)", "✅ SUCCEEDED"),
        card(&format!("{commit} (Pipeline deploy #3)"), "❌ FAILED"),
        card("main (Pipeline #4)", "✅ FIXED"),
    ];
    expected.sort();
    assert_eq!(cards(&harness.sim, "ci@conference.xmpp.zoom.us"), expected);
    assert_eq!(
        cards(&harness.sim, "releases@conference.xmpp.zoom.us"),
        vec![vec![
            "✅ SUCCEEDED · acme/api · tag v1.0.0 (Pipeline #2)".to_owned()
        ]]
    );
    let score = bbzoom::demo::score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "{:?}", score.missed);
    assert_eq!(score.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_polls_of_one_repository_at_once_record_each_change_once() {
    use bbzoom::poller::poll_once;
    let harness = Harness::start(
        scenario(),
        20.0,
        SimPolling::every(5.0),
        bbzoom::demo::SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    let credentials = harness.stored_credentials();
    let (store, ctx) = poll_context(&harness);
    let watch = harness.config.watches[0].clone();
    // Two sources, as two schedulers would have (a reload moved it between credentials).
    let source = || bbzoom::daemon::one_off_source(&harness.config, &credentials, &watch).unwrap();
    let (first, second) = (source(), source());
    poll_once(&ctx, &watch, &first).await.unwrap();
    // Builds start and end meanwhile; then both poll at the same moment.
    harness.sleep_until(50.0).await;
    let (a, b) = tokio::join!(
        poll_once(&ctx, &watch, &first),
        poll_once(&ctx, &watch, &second)
    );
    let recorded = a.unwrap().transitions + b.unwrap().transitions;
    assert!(recorded > 0, "there were changes to record");
    let rows = store.outbox("ci").unwrap().rows;
    let mut seen = std::collections::BTreeSet::new();
    for row in &rows {
        assert!(
            seen.insert((row.build.key.clone(), row.event)),
            "{} {} queued twice",
            row.build.key,
            row.event
        );
    }
    assert!(!rows.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_taken_up_or_taken_up_again_is_baselined_not_replayed() {
    use bbzoom::config::SourceKind;
    use bbzoom::poller::poll_once;
    let commit = "c".repeat(40);
    let jenkins = |key: &str, at: f64| {
        SimBuild::status(
            key,
            "main",
            commit.as_str(),
            1.0,
            at,
            [(at + 5.0, Successful)],
        )
    };
    let scenario = Scenario {
        repos: vec![acme_statuses(
            "mobile",
            vec![jenkins("jenkins-build", 2.0), jenkins("jenkins-lint", 3.0)],
        )],
    };
    // The first look comes at 20 s, when every status is old.
    let harness = Harness::start_timed(
        scenario,
        from_second(20.0, 20.0),
        SimPolling::every(5.0),
        "\n[[subscription]]\nrepository = \"{web}/acme/mobile\"\nsource = \"pipelines\"\nevents = [\"all\"]\nchannels = [\"ci\"]\n",
    )
    .await;
    let credentials = harness.stored_credentials();
    let (store, ctx) = poll_context(&harness);
    // Polled as pipelines first (there are none), then the admin runs
    // `bbzoom configure ... --source statuses`: the statuses, all old, are history.
    let as_pipelines = harness.config.watches[0].clone();
    let as_statuses = bbzoom::config::Watch {
        source: SourceKind::Statuses,
        ..as_pipelines.clone()
    };
    let poll = |watch: &bbzoom::config::Watch| {
        let source = bbzoom::daemon::one_off_source(&harness.config, &credentials, watch).unwrap();
        let (ctx, watch) = (ctx.clone(), watch.clone());
        async move { poll_once(&ctx, &watch, &source).await.unwrap() }
    };
    for watch in [&as_pipelines, &as_statuses] {
        let summary = poll(watch).await;
        assert!(summary.baselined, "{:?}: {summary:?}", watch.source);
        assert!(!poll(watch).await.baselined, "{:?}", watch.source);
    }
    assert!(
        store.outbox("ci").unwrap().rows.is_empty(),
        "nothing old is announced"
    );
    let recorded = store.repo_summary(&as_statuses.repo).unwrap();
    assert_eq!(recorded.builds, 2, "the statuses are recorded");
    // The daemon forgets what it no longer polls (here: pipelines); taken up again later,
    // they are baselined again rather than replayed.
    let watched = [(as_statuses.repo.clone(), SourceKind::Statuses)].into();
    assert_eq!(store.forget_unwatched(&watched).unwrap(), 1);
    assert!(poll(&as_pipelines).await.baselined);
    assert!(!poll(&as_statuses).await.baselined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_listed_for_the_first_time_are_recorded_and_only_new_ones_followed() {
    use bbzoom::domain::BuildRef;
    use bbzoom::glob::RefGlob;
    use bbzoom::poller::poll_once;
    let status = |commit: &str, at: f64| {
        SimBuild::status(
            "jenkins",
            "main",
            commit.repeat(40),
            at,
            at,
            [(at + 1.0, Successful)],
        )
    };
    // The first look comes at 20 s; the polls before v2.0's tag (at 60 s) take far less than
    // those 40 simulated seconds at this speed.
    let harness = statuses_of_acme_web(
        vec![
            status("a", 1.0),
            // An old release, built long before anyone listed tags...
            status("b", 2.0).on_tag("v1.0"),
            // ... and one tagged and built later.
            status("c", 60.0).on_tag("v2.0"),
        ],
        "[]",
    )
    .await;
    let credentials = harness.stored_credentials();
    let (store, ctx) = poll_context(&harness);
    let without_tags = harness.config.watches[0].clone();
    // The admin then lets the subscription take tags (a reload would).
    let mut with_tags = without_tags.clone();
    with_tags.subscriptions[0].refs.tags = vec![RefGlob::any()];
    let poll = |watch: &bbzoom::config::Watch| {
        let source = bbzoom::daemon::one_off_source(&harness.config, &credentials, watch).unwrap();
        let (ctx, watch) = (ctx.clone(), watch.clone());
        async move { poll_once(&ctx, &watch, &source).await.unwrap() }
    };
    assert!(poll(&without_tags).await.baselined);
    poll(&without_tags).await;
    // Tags listed for the first time: v1.0 is recorded, its old result not announced.
    poll(&with_tags).await;
    let cursor = store
        .cursor(&without_tags.repo, without_tags.source)
        .unwrap()
        .unwrap();
    assert_eq!(cursor.tag_tips.keys().collect::<Vec<_>>(), ["v1.0"]);
    assert!(cursor.tags_listed);
    assert!(store.outbox("ci").unwrap().rows.is_empty());
    // A tag that appears afterwards is followed and its build announced.
    harness.sleep_until(70.0).await;
    poll(&with_tags).await;
    assert_eq!(
        announced(&store),
        [(BuildRef::Tag("v2.0".into()), "succeeded".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_pushed_as_watching_began_is_followed_for_the_statuses_posted_after() {
    use bbzoom::domain::BuildRef;
    use bbzoom::poller::poll_once;
    let scanned = |commit: &str, pushed_at: f64, timeline: &[(f64, SimState)]| {
        SimBuild::status(
            "scanner",
            "main",
            commit.repeat(40),
            pushed_at,
            timeline[0].0 - 1.0,
            timeline.to_vec(),
        )
    };
    let harness = statuses_of_acme_web(
        vec![
            // A release of long ago, its scan long done: recorded, not announced.
            scanned("a", -1.0e6, &[(-999_000.0, Successful)]).on_tag("v2.0"),
            // Tagged five simulated seconds before the first look, when watching began, and
            // scanned after it: a status posted while watching is news.
            scanned("b", 15.0, &[(41.0, Running), (45.0, Successful)]).on_tag("v3.0"),
        ],
        "[\"v*\"]",
    )
    .await;
    let credentials = harness.stored_credentials();
    let (store, ctx) = poll_context(&harness);
    let watch = harness.config.watches[0].clone();
    let source = bbzoom::daemon::one_off_source(&harness.config, &credentials, &watch).unwrap();
    assert!(poll_once(&ctx, &watch, &source).await.unwrap().baselined);
    let cursor = store.cursor(&watch.repo, watch.source).unwrap().unwrap();
    assert_eq!(cursor.tag_tips.keys().collect::<Vec<_>>(), ["v2.0", "v3.0"]);
    harness.sleep_until(50.0).await;
    poll_once(&ctx, &watch, &source).await.unwrap();
    assert_eq!(
        announced(&store),
        [(BuildRef::Tag("v3.0".into()), "succeeded".to_owned())]
    );
}

/// The repository `acme/web` read through commit statuses, with `builds`, subscribed to by
/// channel `ci` with `tags` (a TOML list) and every event; the simulator's clock starts at
/// simulated second 20, at 50x, with the first request.
async fn statuses_of_acme_web(builds: Vec<SimBuild>, tags: &str) -> Harness {
    let scenario = Scenario {
        repos: vec![acme_statuses("web", builds)],
    };
    let subscriptions = format!(
        "\n[[subscription]]\nrepository = \"{{web}}/acme/web\"\nsource = \"statuses\"\ntags = {tags}\nevents = [\"all\"]\nchannels = [\"ci\"]\n"
    );
    Harness::start_timed(
        scenario,
        from_second(20.0, 50.0),
        SimPolling::every(5.0),
        &subscriptions,
    )
    .await
}

/// The ref and event of each card queued for channel `ci`, in order.
fn announced(store: &bbzoom::store::Store) -> Vec<(bbzoom::domain::BuildRef, String)> {
    let rows = store.outbox("ci").unwrap().rows;
    rows.iter()
        .map(|r| (r.build.git_ref.clone(), r.event.to_string()))
        .collect()
}

/// A simulator at `speed` whose clock starts at simulated second `first` with the first
/// request: what came before is history when the test first looks.
fn from_second(first: f64, speed: f64) -> SimOptions {
    SimOptions {
        speed,
        start: SimStart::AtFirstRequest,
        starts_at: first,
        ..SimOptions::default()
    }
}

/// The harness's store, and what polls need to write to it, for tests that poll by hand.
fn poll_context(harness: &Harness) -> (bbzoom::store::Store, bbzoom::poller::PollContext) {
    let store = bbzoom::store::Store::open(&harness.config.daemon.state_dir).unwrap();
    let ctx = bbzoom::poller::PollContext {
        store: store.clone(),
        wakeups: Default::default(),
        metrics: Default::default(),
        clock: std::sync::Arc::new(bbzoom::clock::SystemClock),
        calendar: std::sync::Arc::new(bbzoom::clock::SystemCalendar),
        polling: Default::default(),
        settle: harness.config.polling.settle,
    };
    (store, ctx)
}
