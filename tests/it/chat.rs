//! Chat commands over the event WebSocket, against the simulator on loopback with a real sled
//! store: each command answered once, live, caught up after a disconnect Zoom did not replay,
//! and across a restart; a malformed command; a flood; a token renewed mid-connection; the
//! heartbeat under time compression.

use crate::common::Harness;
use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, SimPolling};
use bbzoom_sim::{Scenario, SimEventsApp, SimOptions, SimPerson, SimStart, Simulator};
use std::time::Duration;

pub(crate) const CI: &str = "ci@conference.xmpp.zoom.us";

/// 100x: Zoom's 30 s heartbeat is 0.3 s, its 60 s silence rule 0.6 s.
pub(crate) const SPEED: f64 = 100.0;

/// Commands a person may send at once (the daemon's default: five a minute).
const ALLOWANCE: usize = 5;

/// The showcase with `[zoom.events]` on #ci, its Server-to-Server app as `events` says.
async fn harness(events: SimEventsApp) -> Harness {
    harness_at(events, SPEED).await
}

/// [`harness`] with time `speed` times as fast.
async fn harness_at(events: SimEventsApp, speed: f64) -> Harness {
    harness_with(
        Scenario::showcase(),
        SimPolling::default(),
        SHOWCASE_SUBSCRIPTIONS,
        events,
        speed,
        "",
    )
    .await
}

/// `scenario` and `subscriptions` polled at `polling`, time `speed` times as fast, with
/// `[zoom.events]` on #ci, its Server-to-Server app as `events` says, and `events_keys`
/// (lines) added to that section.
pub(crate) async fn harness_with(
    scenario: Scenario,
    polling: SimPolling,
    subscriptions: &str,
    events: SimEventsApp,
    speed: f64,
    events_keys: &str,
) -> Harness {
    let options = SimOptions {
        speed,
        zoom_events: events,
        ..SimOptions::default()
    };
    harness_for(scenario, polling, subscriptions, options, events_keys).await
}

/// [`harness_with`] on a simulator with `options` (its clock held until the first request).
pub(crate) async fn harness_for(
    scenario: Scenario,
    polling: SimPolling,
    subscriptions: &str,
    options: SimOptions,
    events_keys: &str,
) -> Harness {
    let options = SimOptions {
        start: SimStart::AtFirstRequest,
        ..options
    };
    let mut harness = Harness::start_timed(scenario, options, polling, subscriptions).await;
    harness.rewrite(|env| env.chat_commands = true);
    if !events_keys.is_empty() {
        let path = harness.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let section = "\n[zoom.events]\n";
        assert!(text.contains(section), "{text}");
        let text = text.replacen(section, &format!("{section}{events_keys}\n"), 1);
        std::fs::write(&path, text).unwrap();
        harness.config = bbzoom::config::Config::load(&path).unwrap();
    }
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

#[tokio::test]
async fn commands_posted_while_zoom_was_unreachable_are_caught_up_once() {
    let h = harness(SimEventsApp::default()).await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    let before = post(&h.sim, "bbzoom help");
    answered_once(&h.sim, std::slice::from_ref(&before)).await;

    // Zoom goes away and stays away while people post: nothing reaches bbzoom live.
    h.sim.set_zoom_outage(true);
    assert!(h.sim.disconnect_events());
    let delivered = h.sim.stats().zoom_events_delivered;
    let meanwhile = vec![post(&h.sim, "bbzoom list"), post(&h.sim, "bbzoom status")];
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.sim.events_connected());
    assert_eq!(h.sim.stats().zoom_events_delivered, delivered);
    for id in &meanwhile {
        assert!(
            answers(&h.sim, id).is_empty(),
            "{id} answered during the outage"
        );
    }

    // Back: only the catch-up can find them.
    h.sim.set_zoom_outage(false);
    answered_once(&h.sim, &meanwhile).await;
    assert_eq!(
        h.sim.stats().zoom_events_delivered,
        delivered,
        "replayed live"
    );
    assert!(h.sim.stats().zoom_list_requests > 0);
    assert_eq!(answers(&h.sim, &before).len(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_restart_neither_repeats_nor_loses_a_command() {
    let h = harness(SimEventsApp::default()).await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    let before = vec![post(&h.sim, "bbzoom help"), post(&h.sim, "bbzoom list")];
    answered_once(&h.sim, &before).await;
    daemon.stop().await;

    let while_down = vec![post(&h.sim, "bbzoom status"), post(&h.sim, "bbzoom help")];
    let daemon = h.run_daemon();
    answered_once(&h.sim, &while_down).await;
    for id in &before {
        assert_eq!(
            answers(&h.sim, id).len(),
            1,
            "{id} answered again after the restart"
        );
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_flood_gets_one_slow_down_and_no_more_answers() {
    // 10x: the allowance grows back one command per 1.2 s, longer than the flood takes.
    let h = harness_at(SimEventsApp::default(), 10.0).await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    let allowance = ALLOWANCE;
    let ids: Vec<String> = (0..allowance + 5)
        .map(|n| post(&h.sim, &format!("bbzoom help {n}")))
        .collect();
    wait_for("the slow-down answer", || {
        !answers(&h.sim, &ids[allowance]).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered: Vec<usize> = (0..ids.len())
        .filter(|&n| !answers(&h.sim, &ids[n]).is_empty())
        .collect();
    assert_eq!(answered, (0..=allowance).collect::<Vec<_>>());
    let slow_down = answers(&h.sim, &ids[allowance])[0].to_string();
    assert!(slow_down.contains("Slow down"), "{slow_down}");
    daemon.stop().await;
}

#[tokio::test]
async fn an_answer_zoom_keeps_refusing_is_sent_once_it_takes_it_even_after_a_restart() {
    let h = harness(SimEventsApp::default()).await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    // Zoom's chat API fails (503) for longer than any fixed number of attempts.
    h.sim.fail_next_zoom_calls(u32::MAX);
    let before = h.sim.stats().zoom_requests;
    let id = post(&h.sim, "bbzoom help");
    wait_for("more failed calls than a fixed number of attempts", || {
        h.sim.stats().zoom_requests >= before + 8
    })
    .await;
    daemon.stop().await;
    assert!(answers(&h.sim, &id).is_empty());

    h.sim.fail_next_zoom_calls(0);
    let daemon = h.run_daemon();
    answered_once(&h.sim, std::slice::from_ref(&id)).await;
    daemon.stop().await;
}
