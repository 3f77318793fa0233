//! Bitbucket in full, against the simulator over loopback: every source, every credential kind,
//! 429s pausing the credential, the budget under a storm, paging, late statuses, and a broken
//! credential that does not stop the others.

use crate::common::{Harness, acme_statuses};
use bbzoom::bitbucket::{Account, Auth, BitbucketError, CloudClient, OAuthConsumer, RetryPolicy};
use bbzoom::config::RateLimit;
use bbzoom::credentials::{Credential, Credentials};
use bbzoom::demo::{SimPolling, score, subscribe_all};
use bbzoom::domain::RepoId;
use bbzoom::retry::Backoff;
use bbzoom_sim::score::{Score, SimEvent};
use bbzoom_sim::{
    BitbucketFault, BitbucketFaults, Scenario, SimBuild, SimCredential, SimCredentialKind,
    SimOptions, SimRepo, SimSource, SimStart, SimState, SimState::*, Simulator,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        rate_limit_backoff: Backoff {
            base: Duration::from_millis(300),
            max: Duration::from_millis(300),
        },
        longest_pause: Duration::from_secs(5),
    }
}

fn credential(name: &str, kind: SimCredentialKind) -> SimCredential {
    SimCredential {
        name: name.into(),
        kind,
    }
}

/// A client of `sim` through an account with `auth`, budget 1,000 a second (not in the way).
pub(crate) fn client(sim: &Simulator, auth: Auth) -> CloudClient {
    let http = bbzoom::http::client(Duration::from_secs(5));
    let budget = RateLimit {
        requests: 1000,
        per: Duration::from_secs(1),
    };
    let account = Arc::new(Account::new("test".into(), http, auth, budget, retry()));
    CloudClient::new(account, sim.bitbucket_api_url(), sim.bitbucket_web_url())
}

async fn showcase_sim(options: SimOptions) -> Simulator {
    Simulator::start(Scenario::showcase(), options)
        .await
        .unwrap()
}

fn api() -> RepoId {
    RepoId::new("acme", "api")
}

#[tokio::test]
async fn every_cloud_credential_kind_authenticates() {
    let options = SimOptions {
        speed: 100.0,
        bitbucket_credentials: vec![
            credential(
                "token",
                SimCredentialKind::AccessToken {
                    token: "t0k".into(),
                },
            ),
            credential(
                "oauth",
                SimCredentialKind::OAuthConsumer {
                    key: "k".into(),
                    secret: "s3cret".into(),
                },
            ),
            credential(
                "api",
                SimCredentialKind::ApiToken {
                    email: "jane@example.com".into(),
                    token: "at".into(),
                },
            ),
        ],
        ..SimOptions::default()
    };
    let sim = showcase_sim(options).await;
    let http = bbzoom::http::client(Duration::from_secs(5));
    let kinds = [
        Auth::Bearer("t0k".to_owned().into()),
        Auth::OAuth(OAuthConsumer::new(
            http,
            sim.bitbucket_oauth_url(),
            "k".into(),
            "s3cret".to_owned().into(),
        )),
        Auth::Basic {
            user: "jane@example.com".into(),
            password: "at".to_owned().into(),
        },
    ];
    for auth in kinds {
        let client = client(&sim, auth);
        client.pipelines(&api(), None).await.unwrap();
        assert_eq!(client.account.broken(), None);
    }
    // An API token sent as a bearer token is refused, as on Bitbucket; the account says so.
    let wrong = client(&sim, Auth::Bearer("at".to_owned().into()));
    assert!(matches!(
        wrong.pipelines(&api(), None).await,
        Err(BitbucketError::Unauthorized(401))
    ));
    assert!(wrong.account.broken().is_some());
}

#[tokio::test]
async fn an_oauth_token_is_renewed_before_expiry_and_once_after_a_401() {
    let options = SimOptions {
        speed: 100.0,
        bitbucket_credentials: vec![credential(
            "oauth",
            SimCredentialKind::OAuthConsumer {
                key: "k".into(),
                secret: "s".into(),
            },
        )],
        oauth_token_lifetime: Duration::from_secs(2),
        ..SimOptions::default()
    };
    let sim = showcase_sim(options).await;
    let http = bbzoom::http::client(Duration::from_secs(5));
    let client = client(
        &sim,
        Auth::OAuth(OAuthConsumer::new(
            http,
            sim.bitbucket_oauth_url(),
            "k".into(),
            "s".to_owned().into(),
        )),
    );
    client.pipelines(&api(), None).await.unwrap();
    client.pipelines(&api(), None).await.unwrap();
    assert_eq!(
        sim.stats().bitbucket_token_requests,
        1,
        "the token is cached"
    );

    sim.revoke_bitbucket_oauth_tokens();
    client.pipelines(&api(), None).await.unwrap();
    assert_eq!(
        sim.stats().bitbucket_token_requests,
        2,
        "a 401 renews the token once"
    );

    // The 2 s token is renewed a quarter of its life early, before Zoom... Bitbucket refuses it.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let before = sim.stats().bitbucket_requests;
    client.pipelines(&api(), None).await.unwrap();
    assert_eq!(
        sim.stats().bitbucket_token_requests,
        3,
        "renewed before expiry"
    );
    assert_eq!(
        sim.stats().bitbucket_requests - before,
        1,
        "without a refused request first"
    );
}

#[tokio::test]
async fn a_429_pauses_the_whole_credential_for_retry_after_in_each_form() {
    let sim = showcase_sim(SimOptions {
        speed: 100.0,
        ..SimOptions::default()
    })
    .await;
    let client = client(&sim, Auth::Bearer("sim-bitbucket-token".to_owned().into()));
    // Each form asks for two seconds from when it is sent (HTTP-dates in whole seconds, so
    // one to two).
    for form in 0..3 {
        let retry_after = bbzoom_sim::retry_after_forms(Duration::from_secs(2))[form].clone();
        sim.fail_next_bitbucket_calls(
            1,
            BitbucketFault::RateLimited {
                retry_after: Some(retry_after.clone()),
            },
        );
        let err = client.pipelines(&api(), None).await.unwrap_err();
        let BitbucketError::RateLimited(pause) = err else {
            panic!("{err:?}")
        };
        assert!(
            pause >= Duration::from_millis(900) && pause <= Duration::from_secs(2),
            "{retry_after}: {pause:?}"
        );
        assert!(
            client.account.paused_until().is_some(),
            "the credential is paused"
        );
        // Any other request of the credential waits the pause out.
        let started = Instant::now();
        client
            .pipeline(&api(), "{00000000-0000-0000-0000-000000000000}")
            .await
            .unwrap_err();
        assert!(
            started.elapsed() >= pause - Duration::from_millis(100),
            "{retry_after}: waited {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn absurd_numbers_from_bitbucket_are_clamped_not_panicked_on() {
    let sim = showcase_sim(SimOptions {
        speed: 100.0,
        bitbucket_credentials: vec![
            credential(
                "token",
                SimCredentialKind::AccessToken {
                    token: "sim-bitbucket-token".into(),
                },
            ),
            credential(
                "oauth",
                SimCredentialKind::OAuthConsumer {
                    key: "k".into(),
                    secret: "s".into(),
                },
            ),
        ],
        // `expires_in: 18446744073709551615`.
        oauth_token_lifetime: Duration::MAX,
        ..SimOptions::default()
    })
    .await;
    let longest_pause = Duration::from_millis(200);
    let http = bbzoom::http::client(Duration::from_secs(5));
    let budget = RateLimit {
        requests: 1000,
        per: Duration::from_secs(1),
    };
    let account = Arc::new(Account::new(
        "test".into(),
        http.clone(),
        Auth::Bearer("sim-bitbucket-token".to_owned().into()),
        budget,
        RetryPolicy {
            longest_pause,
            ..retry()
        },
    ));
    let client = CloudClient::new(account, sim.bitbucket_api_url(), sim.bitbucket_web_url());
    for retry_after in [
        "18446744073709551615",
        "1e300",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        sim.fail_next_bitbucket_calls(
            1,
            BitbucketFault::RateLimited {
                retry_after: Some(retry_after.to_owned()),
            },
        );
        let err = client.pipelines(&api(), None).await.unwrap_err();
        let BitbucketError::RateLimited(pause) = err else {
            panic!("{err:?}")
        };
        assert_eq!(pause, longest_pause, "Retry-After: {retry_after}");
    }
    client.pipelines(&api(), None).await.unwrap();

    // An OAuth token said to live forever is used, and renewed within a day at the latest.
    let oauth = bbzoom::bitbucket::OAuthConsumer::new(
        http,
        sim.bitbucket_oauth_url(),
        "k".into(),
        "s".to_owned().into(),
    );
    let client = self::client(&sim, Auth::OAuth(oauth));
    client.pipelines(&api(), None).await.unwrap();
    client.pipelines(&api(), None).await.unwrap();
    assert_eq!(
        sim.stats().bitbucket_token_requests,
        1,
        "the token is cached"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_with_jitter() {
    let sim = showcase_sim(SimOptions {
        speed: 100.0,
        ..SimOptions::default()
    })
    .await;
    let client = client(&sim, Auth::Bearer("sim-bitbucket-token".to_owned().into()));
    sim.fail_next_bitbucket_calls(1, BitbucketFault::RateLimited { retry_after: None });
    let err = client.pipelines(&api(), None).await.unwrap_err();
    let BitbucketError::RateLimited(pause) = err else {
        panic!("{err:?}")
    };
    // The injected backoff's ceiling is 300 ms; full jitter draws within [30 ms, 300 ms].
    assert!(
        pause >= Duration::from_millis(30) && pause <= Duration::from_millis(300),
        "{pause:?}"
    );
    let started = Instant::now();
    client.pipelines(&api(), None).await.unwrap();
    assert!(started.elapsed() >= pause - Duration::from_millis(20));
}

#[tokio::test]
async fn transient_failures_are_retried_and_malformed_answers_are_errors_of_that_call() {
    let sim = showcase_sim(SimOptions {
        speed: 100.0,
        ..SimOptions::default()
    })
    .await;
    let client = client(&sim, Auth::Bearer("sim-bitbucket-token".to_owned().into()));
    sim.fail_next_bitbucket_calls(2, BitbucketFault::ServerError);
    client
        .pipelines(&api(), None)
        .await
        .expect("two 503s are within the retries");
    for fault in [BitbucketFault::Malformed, BitbucketFault::Html] {
        sim.fail_next_bitbucket_calls(1, fault);
        assert!(matches!(
            client.pipelines(&api(), None).await,
            Err(BitbucketError::Malformed(_))
        ));
        client
            .pipelines(&api(), None)
            .await
            .expect("the next call is fine");
    }
    // Unknown repository: 404 for that subscription only.
    assert!(matches!(
        client.pipelines(&RepoId::new("acme", "nope"), None).await,
        Err(BitbucketError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_end_to_end_cloud_pipelines_cloud_statuses_data_center_and_both() {
    let scenario = Scenario::mixed();
    let subscriptions = subscribe_all(&scenario);
    let options = SimOptions {
        speed: 300.0,
        start: SimStart::AtFirstRequest,
        bitbucket_credentials: vec![
            credential(
                "cloud",
                SimCredentialKind::AccessToken { token: "c".into() },
            ),
            credential(
                "dc",
                SimCredentialKind::DataCenterToken { token: "d".into() },
            ),
        ],
        // Room to follow every running build every `hot`: a status rerun overwrites its
        // failure within a minute, which only a budget-starved plan would miss.
        bitbucket_limit_per_hour: 2 * 3600,
        ..SimOptions::default()
    };
    let harness = Harness::start_with(
        scenario,
        options,
        SimPolling::default(),
        3600,
        &subscriptions,
    )
    .await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(40))
        .await;
    daemon.stop().await;

    let score = score(&harness.sim, &harness.config);
    assert!(
        score.missed.is_empty(),
        "missed {:?}\nshown {:?}",
        score.missed,
        score.shown
    );
    assert_eq!(score.duplicates, 0);
    for repo in ["acme/api", "acme/web", "PLAT/platform", "acme/ops"] {
        assert!(
            score
                .shown
                .keys()
                .any(|(_, url, _)| url.contains(repo) || url.contains(&repo.to_lowercase())),
            "{repo}: {:?}",
            score.shown.keys()
        );
    }
    // acme/ops runs Pipelines and a scanner posting statuses: both are announced, and the
    // statuses Pipelines posts for its own runs are not (each run is told once).
    let ops: Vec<&String> = score
        .shown
        .keys()
        .map(|(_, url, _)| url)
        .filter(|url| url.contains("/acme/ops/"))
        .collect();
    assert!(
        ops.iter().any(|url| url.contains("/pipelines/results/")),
        "{ops:?}"
    );
    assert!(
        ops.iter().any(|url| url.contains("/ci/acme/ops/")),
        "{ops:?}"
    );
    assert!(
        !ops.iter().any(|url| url.contains("addon/pipelines")),
        "{ops:?}"
    );
    // Tags: a status posted for a tag, on Cloud and on Data Center.
    let tag_cards: Vec<String> = ["ci@conference.xmpp.zoom.us"]
        .iter()
        .flat_map(|jid| harness.sim.channel(jid))
        .filter_map(|m| m.content["head"]["text"].as_str().map(str::to_owned))
        .filter(|head| head.contains(" · tag "))
        .collect();
    assert!(
        tag_cards.iter().any(|h| h.contains("acme/web · tag "))
            && tag_cards.iter().any(|h| h.contains("PLAT/platform · tag ")),
        "{tag_cards:?}"
    );
    let by_credential = harness.sim.bitbucket_requests_by_credential();
    assert!(
        by_credential["cloud"] > 0 && by_credential["dc"] > 0,
        "{by_credential:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_told_as_a_pipeline_is_not_followed_again_through_its_commit_statuses() {
    // acme/ops runs Pipelines and a scanner, both subscribed to #ci: a 40-minute pipeline
    // pushed at 30 s, and the scanner's status on its commit from 230 s to 400 s.
    let pipeline = SimBuild::pipeline(1, "main", 30.0, vec![(40.0, Running), (2430.0, Successful)]);
    let scan = SimBuild::status(
        "security-scan",
        "main",
        pipeline.commit.clone(),
        30.0,
        230.0,
        vec![(235.0, Running), (400.0, Successful)],
    );
    let scenario = Scenario {
        repos: vec![SimRepo::new(
            "acme",
            "ops",
            SimSource::CloudMixed,
            vec![pipeline, scan],
        )],
    };
    let harness = crate::common::sparse_sweeps(scenario, 3600).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(3100.0).await;
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(20))
        .await;
    daemon.stop().await;

    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "missed {:?}", score.missed);
    let urls: Vec<&String> = score.shown.keys().map(|(_, url, _)| url).collect();
    assert!(
        urls.iter().any(|u| u.contains("/pipelines/results/1")),
        "{urls:?}"
    );
    assert!(urls.iter().any(|u| u.contains("/ci/acme/ops/")), "{urls:?}");
    // The commit's statuses are read while the scanner's settle (until its end at 400 s and a
    // settle time after: about 1,000 s at one read every 15 s), not for as long as the
    // pipeline's own status runs and settles after it (until about 3,030 s: some 200 reads).
    let reads = harness.sim.requests_by_route()["/2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses"];
    assert!(reads < 110, "{reads} reads of the commit's statuses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_past_a_full_page_of_new_pipelines_misses_none() {
    // Forty pipelines created within half a simulated second, between two polls.
    let builds: Vec<SimBuild> = (1..=40)
        .map(|n| {
            SimBuild::pipeline(
                n,
                "main",
                30.0 + n as f64 / 100.0,
                vec![(35.0, Running), (40.0 + n as f64 / 10.0, Failed)],
            )
        })
        .collect();
    let scenario = Scenario {
        repos: vec![SimRepo {
            workspace: "acme".into(),
            slug: "api".into(),
            builds,
            ..SimRepo::default()
        }],
    };
    let subscriptions = subscribe_all(&scenario).replace("[\"all\"]", "[\"failed\"]");
    let harness = Harness::start(scenario, 60.0, SimPolling::every(20.0), &subscriptions).await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(20))
        .await;
    daemon.stop().await;
    let score = score(&harness.sim, &harness.config);
    assert!(
        score.missed.is_empty(),
        "{} missed: {:?}",
        score.missed.len(),
        score.missed
    );
    // One failed, thirty-nine still failing: each announced once.
    assert_eq!(score.shown.len(), 40);
    assert_eq!(score.duplicates, 0);
}

/// A commit of `main` pushed at 10 s with Jenkins' status, and a second CI's status `key`
/// first posted at `posted` and ending (`state`) at `ends`; a settle time of 150 s and a look
/// every `every` seconds. Runs the daemon until it caught up, and returns the scoreboard.
async fn late_status(key: &str, posted: f64, ends: f64, state: SimState, every: f64) -> Score {
    let commit = "c".repeat(40);
    let builds = vec![
        SimBuild::status(
            "jenkins-build",
            "main",
            commit.clone(),
            10.0,
            12.0,
            vec![(40.0, Successful)],
        ),
        SimBuild::status(key, "main", commit, 10.0, posted, vec![(ends, state)]),
    ];
    let scenario = Scenario {
        repos: vec![acme_statuses("web", builds)],
    };
    let polling = SimPolling {
        settle: 150.0,
        ..SimPolling::every(every)
    };
    // Time runs as fast as the looks are rare, up to 6,000x: faster, a few milliseconds of a
    // loaded machine's stall are a simulated look missed.
    let speed = (24.0 * every.max(5.0)).min(6000.0);
    let harness = Harness::start(scenario.clone(), speed, polling, &subscribe_all(&scenario)).await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    daemon.stop().await;
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "{:?}", score.missed);
    score
}

/// When `key`'s `event` was first told, in simulated seconds.
fn told(score: &Score, key: &str, event: SimEvent) -> f64 {
    let told: Vec<_> = score
        .shown
        .iter()
        .map(|((_, url, event), (_, at))| (url.rsplit('/').nth(2).unwrap().to_owned(), *event, *at))
        .collect();
    told.iter()
        .find(|(k, e, _)| k == key && *e == event)
        .unwrap_or_else(|| panic!("{key} {event:?} was not told: {told:?}"))
        .2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_posted_late_within_the_settle_time_is_announced() {
    // CI posts its status 90 simulated seconds after the push, when nothing else moves.
    let score = late_status("sonar-scan", 100.0, 130.0, Failed, 5.0).await;
    told(&score, "sonar-scan", SimEvent::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_posted_long_after_the_settle_time_is_still_found() {
    // A slow scanner posts 450 simulated seconds after the settle time ended. The commit is
    // looked at again now and then (twelve more times, once a settle time at most), without
    // keeping the repository hot.
    let score = late_status("security-scan", 600.0, 630.0, Failed, 5.0).await;
    // Found at a late look: within a settle time (and a poll) of its ending at 630 s.
    let at = told(&score, "security-scan", SimEvent::Failed);
    assert!(at - 630.0 < 160.0, "told at {at:.0} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_status_of_a_repository_looked_at_rarely_is_still_found() {
    // Looked at about every 1,000 s: the commit is found at the first look and settles 150 s
    // later; the scanner posts at 2,200 s and ends at 2,230 s, after the second look, and is
    // found at a later one. Late looks are counted, not timed: twelve settle times (1,800 s)
    // from the first look would have ended before the look that finds it.
    let score = late_status("security-scan", 2200.0, 2230.0, Successful, 1000.0).await;
    let at = told(&score, "security-scan", SimEvent::Succeeded);
    assert!(at - 2230.0 < 2200.0, "told at {at:.0} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanner_that_posted_late_before_is_looked_for_every_settle_time() {
    // acme/web among 400 idle repositories at 600 requests an hour: once its commit has
    // settled (600 s), it waits for the repository's next turn, some 2,000 s or more away.
    // Its scanner posts 900 s after each push. The first push's status, found at a later look
    // (the sweep's, or the one the second push brings), teaches how late the scanner posts:
    // the second push's commit is then looked at a settle time after its last read until
    // then, and its status told within a settle time of its end rather than at that turn.
    let (c1, c2) = ("1".repeat(40), "2".repeat(40));
    let second = 2000.0;
    let scan_ends = second + 930.0;
    let mut builds = Vec::new();
    for (commit, pushed) in [(&c1, 60.0), (&c2, second)] {
        builds.push(SimBuild::status(
            "jenkins-build",
            "main",
            commit.clone(),
            pushed,
            pushed + 2.0,
            vec![(pushed + 30.0, Successful)],
        ));
        builds.push(SimBuild::status(
            "security-scan",
            "main",
            commit.clone(),
            pushed,
            pushed + 900.0,
            vec![(pushed + 930.0, Successful)],
        ));
    }
    let mut repos = crate::common::idle(400);
    repos.push(acme_statuses("web", builds));
    let harness = crate::common::sparse_sweeps(Scenario { repos }, 600).await;
    let daemon = harness.run_daemon();
    harness.sleep_until(scan_ends + 800.0).await;
    daemon.stop().await;
    let score = score(&harness.sim, &harness.config);
    let told = |commit: &str| {
        let page = format!("/security-scan/{}", &commit[..7]);
        score
            .shown
            .iter()
            .find(|((_, url, event), _)| url.contains(&page) && *event == SimEvent::Succeeded)
            .map(|(_, (_, at))| *at)
    };
    assert!(told(&c1).is_some(), "the first scan is told");
    let at = told(&c2).expect("the second scan is told");
    assert!(at - scan_ends < 600.0, "told at {at:.0} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_running_past_the_settle_time_is_still_read_every_poll() {
    // In progress from 20 s to 500 s, long past the 150 s settle time: its commit is read
    // every poll while it runs, so its end is told within a poll or two (every 5 s).
    let score = late_status("long-e2e", 20.0, 500.0, Successful, 5.0).await;
    let at = told(&score, "long-e2e", SimEvent::Succeeded);
    assert!(at - 500.0 < 60.0, "told at {at:.0} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_pushed_over_before_a_look_still_has_its_statuses_read() {
    // `main` is at c0 from 10 s; c1 is pushed at 100 s and c2 ten seconds later, both before
    // the next look (every 60 s): c1 is never a tip bbzoom sees. Its scanner status comes at
    // 130 s; the commits between c0 and c2 are listed, so it is found all the same.
    let (c0, c1, c2) = ("a".repeat(40), "b".repeat(40), "e".repeat(40));
    let status = |key: &str, commit: &str, pushed: f64, ends: f64| {
        SimBuild::status(
            key,
            "main",
            commit,
            pushed,
            pushed + 5.0,
            vec![(ends, Successful)],
        )
    };
    let builds = vec![
        status("ci", &c0, 10.0, 40.0),
        status("ci", &c1, 100.0, 140.0),
        status("scanner", &c1, 100.0, 170.0),
        status("ci", &c2, 110.0, 150.0),
    ];
    let scenario = Scenario {
        repos: vec![acme_statuses("web", builds)],
    };
    let harness = Harness::start(
        scenario.clone(),
        60.0,
        SimPolling::every(60.0),
        &subscribe_all(&scenario),
    )
    .await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    daemon.stop().await;
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "missed: {:?}", score.missed);
    told(&score, "scanner", SimEvent::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_never_exceeded_under_a_rate_limit_storm() {
    let scenario = Scenario::random(3, 20, 1.0);
    let end = scenario.end();
    let options = SimOptions {
        speed: 600.0,
        start: SimStart::AtFirstRequest,
        bitbucket_faults: BitbucketFaults {
            storm: Some((end * 0.2, end * 0.4)),
            ..BitbucketFaults::default()
        },
        ..SimOptions::default()
    };
    let subscriptions = subscribe_all(&scenario);
    let harness = Harness::start_with(
        scenario,
        options,
        SimPolling::default(),
        300,
        &subscriptions,
    )
    .await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    daemon.stop().await;

    let max = harness.sim.bitbucket_max_per_hour();
    assert!(
        max <= 300,
        "{max} requests in one simulated hour against a budget of 300"
    );
    let score = score(&harness.sim, &harness.config);
    assert!(
        score.missed.is_empty(),
        "latency grows, nothing is missed: {:?}",
        score.missed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_credential_does_not_stop_the_others() {
    let scenario = Scenario::showcase();
    let mut harness = Harness::start(
        scenario,
        400.0,
        SimPolling::every(15.0),
        bbzoom::demo::SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    // acme/mobile is polled with a credential Bitbucket does not know.
    let config = &harness.config;
    let mut credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )
    .unwrap();
    credentials.insert(
        "revoked",
        Credential::BitbucketAccessToken {
            token: "no-longer-valid".to_owned().into(),
        },
    );
    credentials
        .save(
            &config.daemon.credentials_file,
            &config.daemon.identity_file,
        )
        .unwrap();
    let path = harness.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "events = [\"failed\", \"fixed\", \"stopped\"]",
        "events = [\"failed\", \"fixed\", \"stopped\"]\ncredential = \"revoked\"",
    );
    std::fs::write(&path, text).unwrap();
    harness.config = bbzoom::config::Config::load(&path).unwrap();

    let daemon = harness.run_daemon();
    harness
        .sleep_until(harness.sim.scenario().end() + 60.0)
        .await;
    let poll_errors = daemon
        .metrics
        .poll_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    daemon.stop().await;

    let score = score(&harness.sim, &harness.config);
    assert!(
        score
            .missed
            .iter()
            .all(|(_, url, _)| url.contains("/acme/mobile/")),
        "only mobile is missed: {:?}",
        score.missed
    );
    assert!(!score.missed.is_empty());
    assert!(
        score
            .shown
            .keys()
            .any(|(_, url, _)| url.contains("/acme/api/"))
    );
    assert!(poll_errors > 0);
}

#[test]
fn every_retry_after_form_the_simulator_sends_reads_as_the_same_pause() {
    for value in bbzoom_sim::retry_after_forms(Duration::from_secs(3)) {
        let pause = bbzoom::retry::parse_retry_after(
            &value,
            std::time::SystemTime::now(),
            Duration::from_secs(3600),
        )
        .unwrap();
        // HTTP-dates have whole seconds.
        assert!(
            pause >= Duration::from_secs(2) && pause <= Duration::from_secs(3),
            "{value}: {pause:?}"
        );
    }
}
