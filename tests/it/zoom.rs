//! Zoom in full, through the real daemon against the simulated Zoom over loopback: a deleted
//! card replaced, tokens expiring mid-run, 429s in every `Retry-After` form, the daily limit,
//! permanent errors to dead letters and back with the CLI, an outage's backlog delivered as
//! latest states (and folded into as many summaries as it takes), a burst with Zoom healthy
//! never folded, and Incoming Webhook channels.

use crate::common::{Harness, cards};
use bbzoom::config::Config;
use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, SimPolling, score, subscribe_all};
use bbzoom::zoom::{AppCredentials, ChatbotClient, ChatbotIdentity, ErrorClass};
use bbzoom_sim::{
    Scenario, SimBuild, SimOptions, SimRepo, SimStart, SimState::*, SimZoomApp, Simulator,
};
use std::process::Command;
use std::time::Duration;

const SPEED: f64 = 400.0;

fn showcase(options: SimOptions) -> SimOptions {
    SimOptions {
        speed: SPEED,
        start: SimStart::AtFirstRequest,
        ..options
    }
}

async fn start(options: SimOptions, subscriptions: &str) -> Harness {
    Harness::start_with(
        Scenario::showcase(),
        showcase(options),
        SimPolling::every(15.0),
        10_000,
        subscriptions,
    )
    .await
}

/// Appends TOML to the harness's config file and reloads it.
fn amend(harness: &mut Harness, replace: (&str, &str), append: &str) {
    let path = harness.config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(replace.0, replace.1)
        + append;
    std::fs::write(&path, text).unwrap();
    harness.config = Config::load(&path).unwrap();
}

fn assert_clean(harness: &Harness) {
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "missed {:?}", score.missed);
    assert_eq!(score.duplicates, 0, "{:?}", score.shown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_deleted_in_zoom_is_replaced_by_a_new_one() {
    let builds = vec![SimBuild::pipeline(
        1,
        "main",
        20.0,
        vec![(21.0, Running), (200.0, Failed)],
    )];
    let scenario = Scenario {
        repos: vec![SimRepo {
            workspace: "acme".into(),
            slug: "api".into(),
            builds,
            ..SimRepo::default()
        }],
    };
    let subscriptions = "[[subscription]]\nrepository = \"{web}/acme/api\"\nevents = [\"all\"]\nchannels = [\"ci\"]\n";
    let harness = Harness::start(scenario, 150.0, SimPolling::every(5.0), subscriptions).await;
    let daemon = harness.run_daemon();
    let jid = "ci@conference.xmpp.zoom.us";
    while harness.sim.channel(jid).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = harness.sim.channel(jid).remove(0);
    assert!(
        harness.sim.delete_message(&started.message_id),
        "a person deletes the card"
    );
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(20))
        .await;
    daemon.stop().await;

    assert!(harness.sim.message(&started.message_id).unwrap().deleted);
    assert_eq!(
        cards(&harness.sim, jid),
        vec![vec!["❌ FAILED · acme/api · main (Pipeline #1)".to_owned()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_mid_run_are_renewed() {
    // Tokens live one real second (the shortest `expires_in`); the run, at half the usual
    // speed, several: renewals are due however fast the machine runs it.
    let options = SimOptions {
        zoom_token_lifetime: Duration::from_secs(1),
        speed: SPEED / 2.0,
        ..showcase(SimOptions::default())
    };
    let harness = Harness::start_with(
        Scenario::showcase(),
        options,
        SimPolling::every(15.0),
        10_000,
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    daemon.stop().await;
    assert!(
        harness.sim.stats().zoom_token_requests >= 3,
        "{:?}",
        harness.sim.stats()
    );
    assert_clean(&harness);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoom_429s_in_each_retry_after_form_are_waited_out() {
    let harness = start(SimOptions::default(), SHOWCASE_SUBSCRIPTIONS).await;
    let daemon = harness.run_daemon();

    for i in 0..3 {
        while harness.sim.stats().posts < 1 + 4 * i as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let form = bbzoom_sim::retry_after_forms(Duration::from_secs(1))[i].clone();
        harness.sim.zoom_rate_limit_next(1, Some(form));
    }
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    let failures = daemon
        .metrics
        .delivery_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    daemon.stop().await;
    assert_eq!(harness.sim.stats().zoom_rate_limited, 3);
    assert!(
        failures >= 3,
        "each 429 was a failed attempt, retried after Retry-After"
    );
    assert_clean(&harness);
}

fn chatbot(sim: &Simulator, daily_limit: Option<u32>) -> ChatbotClient {
    let app = &sim.options().zoom;
    ChatbotClient::new(
        bbzoom::http::client(Duration::from_secs(5)),
        sim.zoom_oauth_url(),
        sim.zoom_api_url(),
        AppCredentials {
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone().into(),
        },
        ChatbotIdentity {
            account_id: app.account_id.clone(),
            robot_jid: app.robot_jid.clone(),
            user_jid: app.user_jid.clone(),
        },
        bbzoom::http::budget_limiter(bbzoom::config::RateLimit {
            requests: 100,
            per: Duration::from_secs(1),
        }),
        daily_limit,
    )
}

/// A simulator of the showcase with `options`, and a chatbot client of it without a daily cap.
async fn with_chatbot(options: SimOptions) -> (Simulator, ChatbotClient) {
    let sim = Simulator::start(Scenario::showcase(), options)
        .await
        .unwrap();
    let client = chatbot(&sim, None);
    (sim, client)
}

#[tokio::test]
async fn a_daily_limit_pauses_the_whole_account_until_its_reset() {
    let options = SimOptions {
        zoom: SimZoomApp {
            daily_limit: Some(1000),
            ..SimZoomApp::default()
        },
        ..SimOptions::default()
    };
    let (sim, client) = with_chatbot(options).await;
    let content = serde_json::json!({"head": {"text": "hello"}});
    client
        .send("ci@conference.xmpp.zoom.us", &content, None)
        .await
        .unwrap();
    sim.exhaust_zoom_daily_limit();
    let err = client
        .send("ci@conference.xmpp.zoom.us", &content, None)
        .await
        .unwrap_err();
    let ErrorClass::Transient {
        retry_after: Some(wait),
    } = err.class
    else {
        panic!("{err:?}")
    };
    assert!(
        wait > Duration::from_secs(3600),
        "until the simulated day resets: {wait:?}"
    );
    // Paused: the next call, to any channel, does not even reach Zoom.
    let before = sim.stats().zoom_requests;
    let err = client
        .send("releases@conference.xmpp.zoom.us", &content, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.class,
            ErrorClass::Transient {
                retry_after: Some(_)
            }
        ),
        "{err:?}"
    );
    assert_eq!(sim.stats().zoom_requests, before);

    // Our own count of the plan's daily allowance pauses before Zoom has to say so.
    let sim = Simulator::start(Scenario::showcase(), SimOptions::default())
        .await
        .unwrap();
    let client = chatbot(&sim, Some(2));
    for _ in 0..2 {
        client
            .send("ci@conference.xmpp.zoom.us", &content, None)
            .await
            .unwrap();
    }
    let err = client
        .send("ci@conference.xmpp.zoom.us", &content, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.class,
            ErrorClass::Transient {
                retry_after: Some(_)
            }
        ),
        "{err:?}"
    );
    assert_eq!(sim.stats().posts, 2);
}

#[tokio::test]
async fn absurd_numbers_from_zoom_are_clamped_not_panicked_on() {
    let options = SimOptions {
        // `expires_in: 18446744073709551615`.
        zoom_token_lifetime: Duration::MAX,
        ..SimOptions::default()
    };
    let (sim, client) = with_chatbot(options).await;
    let content = serde_json::json!({"head": {"text": "hello"}});
    let channel = "ci@conference.xmpp.zoom.us";
    let day = Duration::from_secs(24 * 3600);
    for retry_after in [
        "18446744073709551615",
        "1e300",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        sim.zoom_rate_limit_next(1, Some(retry_after.to_owned()));
        let err = client.send(channel, &content, None).await.unwrap_err();
        assert_eq!(
            err.class,
            ErrorClass::Transient {
                retry_after: Some(day)
            },
            "Retry-After: {retry_after}"
        );
    }
    client.send(channel, &content, None).await.unwrap();
    client.send(channel, &content, None).await.unwrap();
    assert_eq!(sim.stats().zoom_token_requests, 1, "the token is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_become_dead_letters_and_come_back_with_the_cli() {
    for (mutation, code) in [
        (
            (
                "to_jid = \"releases@conference.xmpp.zoom.us\"",
                "to_jid = \"gone@conference.xmpp.zoom.us\"",
            ),
            "7004",
        ),
        (
            (
                "robot_jid = \"bbzoom-bot@xmpp.zoom.us\"",
                "robot_jid = \"other-bot@xmpp.zoom.us\"",
            ),
            "7002",
        ),
    ] {
        let mut harness = start(SimOptions::default(), SHOWCASE_SUBSCRIPTIONS).await;
        amend(&mut harness, mutation, "");
        let daemon = harness.run_daemon();
        harness
            .wait_caught_up(&daemon.store, Duration::from_secs(30))
            .await;
        let dead = daemon.store.dead_letters().unwrap();
        daemon.stop().await;
        assert!(
            !dead.is_empty() && dead.iter().all(|d| d.reason.contains(code)),
            "{code}: {dead:?}"
        );

        let config_path = harness.config_path();
        let bbzoom = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_bbzoom"))
                .args(args)
                .arg("--config")
                .arg(&config_path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let listed = bbzoom(&["dead-letters", "list"]);
        assert_eq!(
            listed.lines().filter(|l| l.contains(code)).count(),
            dead.len(),
            "{listed}"
        );
        // Each says when it died: moments ago, not at the epoch.
        assert!(
            listed
                .lines()
                .all(|l| l.ends_with("s ago)") || l.ends_with("m ago)")),
            "{listed}"
        );

        // The admin fixes the configuration, puts the letters back and starts the daemon again.
        amend(&mut harness, (mutation.1, mutation.0), "");
        let retried = bbzoom(&["dead-letters", "retry", "--all"]);
        assert_eq!(retried.lines().count(), dead.len(), "{retried}");
        let daemon = harness.run_daemon();
        harness
            .wait_caught_up(&daemon.store, Duration::from_secs(30))
            .await;
        assert!(daemon.store.dead_letters().unwrap().is_empty());
        daemon.stop().await;
        assert_clean(&harness);
        assert_eq!(bbzoom(&["dead-letters"]).trim(), "no dead letters");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_each_build_shows_its_latest_state_once() {
    let harness = start(SimOptions::default(), SHOWCASE_SUBSCRIPTIONS).await;
    let daemon = harness.run_daemon();
    // Zoom is unreachable from simulated minute 1 to 9: builds start, pause and end meanwhile.
    harness.sleep_until(60.0).await;
    harness.sim.set_zoom_outage(true);
    harness.sleep_until(540.0).await;
    harness.sim.set_zoom_outage(false);
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    daemon.stop().await;
    assert_clean(&harness);
    // A build that ran entirely during the outage got one card, with its ending only.
    let api = cards(&harness.sim, "ci@conference.xmpp.zoom.us");
    let whole_outage = api
        .iter()
        .find(|c| {
            c.iter()
                .any(|t| t.contains("Pipeline #2") && t.contains("acme/api"))
        })
        .unwrap();
    assert_eq!(whole_outage.len(), 1, "no stale sequence: {whole_outage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_backlog_is_folded_into_one_summary_card() {
    let mut harness = start(SimOptions::default(), SHOWCASE_SUBSCRIPTIONS).await;
    amend(
        &mut harness,
        ("", ""),
        "\n[zoom.delivery]\nfold_after = 2\n",
    );
    let daemon = harness.run_daemon();
    harness.sim.set_zoom_outage(true);
    // Long enough past the end for every ending to be found during the outage, a run's last
    // look coming up to a tenth of its run time late, on a loaded machine too.
    harness
        .sleep_until(harness.sim.scenario().end() + 120.0)
        .await;
    harness.sim.set_zoom_outage(false);
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    daemon.stop().await;
    assert_clean(&harness);
    for jid in [
        "ci@conference.xmpp.zoom.us",
        "releases@conference.xmpp.zoom.us",
    ] {
        let messages = harness.sim.channel(jid);
        let heads: Vec<_> = messages
            .iter()
            .map(|m| m.content["head"]["text"].to_string())
            .collect();
        assert_eq!(
            messages.len(),
            1,
            "{jid}: one summary card, not a storm: {heads:?}"
        );
        assert!(
            messages[0].content["head"]["text"]
                .as_str()
                .unwrap()
                .starts_with("📋")
        );
    }
}

/// The summary cards among `messages`: their heads, in posting order.
fn summaries(messages: &[bbzoom_sim::SimMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| {
            let head = m.content["head"]["text"]
                .as_str()
                .or(m.content["text"].as_str())?;
            head.starts_with('📋')
                .then(|| head.lines().next().unwrap_or_default().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_with_zoom_healthy_is_delivered_card_by_card() {
    // A release: over forty builds of six repositories end within one simulated minute, all
    // into #ci; a fold would already be allowed after two cards.
    let scenario = Scenario::burst();
    let ends: Vec<f64> = scenario
        .repos
        .iter()
        .flat_map(|r| &r.builds)
        .filter_map(|b| b.finished_at())
        .collect();
    assert!(ends.len() >= 40);
    let mut harness = Harness::start(
        scenario.clone(),
        SPEED,
        SimPolling::every(15.0),
        &subscribe_all(&scenario),
    )
    .await;
    amend(
        &mut harness,
        ("", ""),
        "\n[zoom.delivery]\nfold_after = 2\n",
    );
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    daemon.stop().await;
    assert_clean(&harness);
    let messages = harness.sim.channel("ci@conference.xmpp.zoom.us");
    assert_eq!(summaries(&messages), Vec::<String>::new(), "nothing folded");
    // One card per build; each card edited to its ending has it replied in its thread too.
    let builds: usize = harness
        .sim
        .scenario()
        .repos
        .iter()
        .map(|r| r.builds.len())
        .sum();
    let cards: Vec<_> = messages.iter().filter(|m| m.reply_to.is_none()).collect();
    let edited = cards.iter().filter(|m| !m.edits.is_empty()).count();
    let replies = messages.iter().filter(|m| m.reply_to.is_some()).count();
    assert_eq!(cards.len(), builds, "{:?}", harness.sim.stats());
    assert_eq!(replies, edited, "{:?}", harness.sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_backlog_too_long_for_one_card_takes_several_and_hides_no_result() {
    // Everything of the burst into #alerts, an Incoming Webhook posting plain text (a 4,000
    // character message): the backlog of a whole outage cannot fit one summary.
    let scenario = Scenario::burst();
    let subscriptions = subscribe_all(&scenario).replace(r#"["ci"]"#, r#"["alerts"]"#);
    let mut harness =
        Harness::start(scenario, SPEED, SimPolling::every(15.0), &subscriptions).await;
    amend(
        &mut harness,
        (
            "credential = \"sim-webhook-sim-alerts\"",
            "credential = \"sim-webhook-sim-alerts\"\nformat = \"message\"",
        ),
        "",
    );
    harness.sim.set_zoom_outage(true);
    let daemon = harness.run_daemon();
    harness
        .sleep_until(harness.sim.scenario().end() + 30.0)
        .await;
    harness.sim.set_zoom_outage(false);
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    daemon.stop().await;
    let messages = harness.sim.channel("alerts@conference.xmpp.zoom.us");
    let heads = summaries(&messages);
    assert!(heads.len() >= 2, "{heads:?}");
    let of = heads.len();
    for (i, head) in heads.iter().enumerate() {
        assert!(
            head.contains("held back while Zoom was failing for ")
                && head.ends_with(&format!("({} of {of})", i + 1)),
            "{head}"
        );
    }
    for message in &messages {
        let text = message.content["text"].as_str().unwrap();
        assert!(
            text.chars().count() <= 4000 && !text.contains("… and"),
            "{text}"
        );
    }
    // Every result is on some summary's line (the scoreboard reads them), none twice.
    assert_clean(&harness);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_webhook_channels_end_to_end() {
    for (format, via) in [
        ("full", bbzoom_sim::MessageVia::WebhookFull),
        ("message", bbzoom_sim::MessageVia::WebhookMessage),
    ] {
        let subscriptions = "[[subscription]]\nrepository = \"{web}/acme/api\"\nevents = [\"all\"]\nchannels = [\"alerts\"]\n";
        let mut harness = start(SimOptions::default(), subscriptions).await;
        amend(
            &mut harness,
            (
                "credential = \"sim-webhook-sim-alerts\"",
                &format!("credential = \"sim-webhook-sim-alerts\"\nformat = \"{format}\""),
            ),
            "",
        );
        let daemon = harness.run_daemon();
        harness
            .wait_caught_up(&daemon.store, Duration::from_secs(30))
            .await;
        let dead = daemon.store.dead_letters().unwrap();
        daemon.stop().await;
        assert!(
            dead.is_empty(),
            "{format}: {:?}",
            dead.iter().map(|d| &d.reason).collect::<Vec<_>>()
        );
        let messages = harness.sim.channel("alerts@conference.xmpp.zoom.us");
        assert!(
            !messages.is_empty() && messages.iter().all(|m| m.via == via),
            "{format}: {messages:?} {:?} {}",
            harness.sim.stats(),
            std::fs::read_to_string(harness.config_path()).unwrap()
        );
        assert_eq!(
            harness.sim.stats().edits,
            0,
            "webhook cards are never edited"
        );
        if format == "full" {
            assert_clean(&harness);
        } else {
            let text = messages
                .iter()
                .map(|m| m.content["text"].as_str().unwrap())
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                text.contains("FIXED · acme/api · main") || text.contains("SUCCEEDED · acme/api"),
                "{text}"
            );
        }
    }
}
