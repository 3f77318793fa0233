//! Chat commands over the event WebSocket, against the simulator on loopback with a real sled
//! store: each command answered once, live or caught up after a disconnect; a
//! malformed command; a token renewed mid-connection; the heartbeat under time compression.

use crate::common::Harness;
use bbzoom::config::Config;
use bbzoom::credentials::Credential;
use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, SimPolling};
use bbzoom_sim::{Scenario, SimEventsApp, SimOptions, SimPerson, SimStart, Simulator};
use std::time::Duration;

pub(crate) const CI: &str = "ci@conference.xmpp.zoom.us";

/// 100x: Zoom's 30 s heartbeat is 0.3 s, its 60 s silence rule 0.6 s.
pub(crate) const SPEED: f64 = 100.0;

/// The showcase with `[zoom.events]` on #ci, its Server-to-Server app as `events` says.
async fn harness(events: SimEventsApp) -> Harness {
    harness_with(
        Scenario::showcase(),
        SimPolling::default(),
        SHOWCASE_SUBSCRIPTIONS,
        events,
        "",
    )
    .await
}

/// `scenario` and `subscriptions` polled at `polling`, with `[zoom.events]` on #ci, its
/// Server-to-Server app as `events` says, and `events_keys` (lines) added to that section.
pub(crate) async fn harness_with(
    scenario: Scenario,
    polling: SimPolling,
    subscriptions: &str,
    events: SimEventsApp,
    events_keys: &str,
) -> Harness {
    let options = SimOptions {
        speed: SPEED,
        start: SimStart::AtFirstRequest,
        zoom_events: events,
        ..SimOptions::default()
    };
    let mut harness = Harness::start_timed(scenario, options, polling, subscriptions).await;
    let app = harness.sim.options().zoom_events.clone();
    let daemon = &harness.config.daemon;
    let mut credentials = harness.stored_credentials();
    credentials.insert(
        "sim-events",
        Credential::ZoomServerToServer {
            account_id: app.account_id.clone(),
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone().into(),
        },
    );
    credentials
        .save(&daemon.credentials_file, &daemon.identity_file)
        .unwrap();
    let path = harness.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[zoom.events]\ncredential = \"sim-events\"\nsubscription_id = \"{}\"\nurl = \"{}\"\nuser = \"{}\"\nchannels = [\"ci\"]\nheartbeat = \"{}ms\"\n{events_keys}\n",
        app.subscription_id,
        harness.sim.zoom_events_url(),
        app.user_email,
        (30.0 / SPEED * 1000.0) as u64,
    ));
    std::fs::write(&path, text).unwrap();
    harness.config = Config::load(&path).unwrap();
    harness
}

pub(crate) fn jane() -> SimPerson {
    SimPerson {
        user_id: "jane-id".to_owned(),
        name: "Jane Dev".to_owned(),
        email: "jane@example.com".to_owned(),
    }
}

/// Jane posts `text` in #ci; its message id.
pub(crate) fn post(sim: &Simulator, text: &str) -> String {
    sim.post_to_channel(CI, &jane(), text, &[], None).unwrap()
}

/// The chatbot's answers in the thread of `message_id`.
pub(crate) fn answers(sim: &Simulator, message_id: &str) -> Vec<serde_json::Value> {
    sim.channel(CI)
        .into_iter()
        .filter(|m| m.reply_to.as_deref() == Some(message_id))
        .map(|m| m.content)
        .collect()
}

/// Waits (at most 5 s) until `done`.
pub(crate) async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until each of `ids` has an answer, then a while longer, and checks each has one.
pub(crate) async fn answered_once(sim: &Simulator, ids: &[String]) {
    wait_for("every command answered", || {
        ids.iter().all(|id| !answers(sim, id).is_empty())
    })
    .await;
    // Long enough for a second answer to show, were one coming.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in ids {
        assert_eq!(answers(sim, id).len(), 1, "answers to {id}");
    }
}

#[tokio::test]
async fn commands_are_answered_once_live_and_after_a_disconnect() {
    let h = harness(SimEventsApp::default()).await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    let live = post(&h.sim, "bbzoom help");
    answered_once(&h.sim, std::slice::from_ref(&live)).await;
    let chit_chat = post(&h.sim, "the build is green again");

    assert!(h.sim.disconnect_events());
    let mut meanwhile = Vec::new();
    for command in ["bbzoom list", "BBZOOM status", "bbzoom help"] {
        meanwhile.push(post(&h.sim, command));
    }
    answered_once(&h.sim, &meanwhile).await;
    assert!(answers(&h.sim, &chit_chat).is_empty());
    let list = &answers(&h.sim, &meanwhile[0])[0];
    assert!(list.to_string().contains("acme/api"), "{list}");

    for id in meanwhile.iter().chain([&live]) {
        assert_eq!(answers(&h.sim, id).len(), 1, "answers to {id}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_malformed_command_gets_the_help_without_its_markup() {
    let h = harness(SimEventsApp::default()).await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    let id = post(
        &h.sim,
        "bbzoom <!all> *subscribe* [x](https://evil.example)",
    );
    answered_once(&h.sim, std::slice::from_ref(&id)).await;
    let answer = answers(&h.sim, &id)[0].to_string();
    assert!(answer.contains("Unknown command"), "{answer}");
    assert!(answer.contains("status"), "{answer}");
    for raw in ["<!all>", "*subscribe*", "](https"] {
        assert!(!answer.contains(raw), "{raw} echoed: {answer}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn tokens_are_renewed_and_heartbeats_keep_the_connection_without_losing_a_command() {
    // A 2 s token (renewed at 1.5 s); silence closes a connection after 0.6 s.
    let h = harness(SimEventsApp {
        token_lifetime: Duration::from_secs(2),
        ..SimEventsApp::default()
    })
    .await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(post(&h.sim, &format!("bbzoom status {n}")));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    answered_once(&h.sim, &ids).await;
    let stats = h.sim.stats();
    assert!(stats.zoom_events_connections >= 3, "{stats:?}");
    assert_eq!(stats.zoom_events_silent_closes, 0, "{stats:?}");
    assert!(stats.zoom_heartbeats >= 8, "{stats:?}");
    daemon.stop().await;
}
