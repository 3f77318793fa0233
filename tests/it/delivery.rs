//! Delivery through the real daemon against the simulated Zoom: transient failures retried
//! until delivered once, an expired or revoked token renewed, and a card Zoom refuses for good,
//! or a row the store cannot read, kept as a dead letter while the channels go on.

use crate::common::Harness;
use bbzoom::config::Config;
use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, SimPolling, score};
use bbzoom_sim::Scenario;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SPEED: f64 = 400.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_zoom_failures_are_retried_and_each_card_arrives_once() {
    let harness = Harness::start(
        Scenario::showcase(),
        SPEED,
        SimPolling::every(15.0),
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    harness.sim.fail_next_zoom_calls(6);
    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    let failures = daemon.metrics.delivery_failures.load(Ordering::Relaxed);
    daemon.stop().await;

    assert_eq!(failures, 6, "each 503 was one failed attempt");
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "{:?}", score.missed);
    assert_eq!(score.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_and_the_card_still_arrives() {
    let harness = Harness::start(
        Scenario::showcase(),
        SPEED,
        SimPolling::every(15.0),
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    let daemon = harness.run_daemon();
    // Revoke every token once the first cards went out, and again later.
    for posts in [1, 6] {
        while harness.sim.stats().posts < posts {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        harness.sim.revoke_zoom_tokens();
    }
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    daemon.stop().await;

    let stats = harness.sim.stats();
    assert!(
        stats.zoom_token_requests >= 3,
        "first token plus one renewal per revocation: {stats:?}"
    );
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "{:?}", score.missed);
    assert_eq!(score.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_zoom_refuses_for_good_becomes_a_dead_letter_and_other_channels_go_on() {
    let mut harness = Harness::start(
        Scenario::showcase(),
        SPEED,
        SimPolling::every(15.0),
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    // A channel the bot is not in: Zoom answers 403, code 7004.
    let path = harness.config_path();
    let text = crate::common::replaced(
        &std::fs::read_to_string(&path).unwrap(),
        "events = [\"failed\", \"fixed\", \"stopped\"]\nchannels = [\"releases\"]",
        "events = [\"failed\", \"fixed\", \"stopped\"]\nchannels = [\"releases\", \"ghost\"]",
    ) + "\n[zoom.channels.ghost]\nto_jid = \"ghost@conference.xmpp.zoom.us\"\n";
    std::fs::write(&path, text).unwrap();
    harness.config = Config::load(&path).unwrap();

    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    let dead = daemon.store.dead_letters().unwrap();
    daemon.stop().await;

    // acme/mobile (failed, fixed, stopped) goes to #releases and #ghost: every one for #ghost is dead.
    assert!(!dead.is_empty());
    assert!(dead.iter().all(|d| d.channel == "ghost"), "{dead:?}");
    assert!(dead.iter().all(|d| d.reason.contains("7004")), "{dead:?}");
    let mut score = score(&harness.sim, &harness.config);
    score
        .missed
        .retain(|(jid, _, _)| jid != "ghost@conference.xmpp.zoom.us");
    assert!(
        score.missed.is_empty(),
        "other channels got everything: {:?}",
        score.missed
    );
    assert_eq!(
        dead.len(),
        score
            .shown
            .keys()
            .filter(|(jid, url, _)| {
                jid == "releases@conference.xmpp.zoom.us" && url.contains("/acme/mobile/")
            })
            .count(),
        "the ghost channel lost exactly what #releases got from acme/mobile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_outbox_row_becomes_a_dead_letter_and_the_channel_goes_on() {
    let harness = Harness::start(
        Scenario::showcase(),
        SPEED,
        SimPolling::every(15.0),
        SHOWCASE_SUBSCRIPTIONS,
    )
    .await;
    // Before the daemon starts, a row nobody can read waits at the head of #ci's outbox: a
    // damaged disk, or a row written by some other program.
    let state = &harness.config.daemon.state_dir;
    drop(bbzoom::store::Store::open(state).unwrap());
    let seq = {
        let db = sled::open(state).unwrap();
        let seq = db.generate_id().unwrap();
        let mut key = b"ci\0".to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        db.open_tree("outbox")
            .unwrap()
            .insert(key, &b"\xff\xfe not a row"[..])
            .unwrap();
        db.flush().unwrap();
        seq
    };
    // Written behind bbzoom's back, as another program would: the record of its clean close
    // no longer describes the store, which would be refused as damaged.
    std::fs::remove_file(state.join("clean-close")).unwrap();

    let daemon = harness.run_daemon();
    harness
        .wait_caught_up(&daemon.store, Duration::from_secs(30))
        .await;
    let dead = daemon.store.dead_letters().unwrap();
    daemon.stop().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].seq, dead[0].channel.as_str()), (seq, "ci"));
    assert!(dead[0].row.is_none());
    assert!(
        dead[0].reason.contains("could not be read"),
        "{}",
        dead[0].reason
    );
    let score = score(&harness.sim, &harness.config);
    assert!(score.missed.is_empty(), "#ci went on: {:?}", score.missed);
    assert_eq!(score.duplicates, 0);

    // The admin sees it, cannot retry it, and drops it.
    let listed = harness.bbzoom(&["dead-letters"], None).await;
    assert!(listed.success(), "{}", listed.output());
    assert!(
        listed
            .stdout
            .contains(&format!("{seq:>6}  #ci  unreadable ?")),
        "{}",
        listed.stdout
    );
    let retry = harness
        .bbzoom(&["dead-letters", "retry", &seq.to_string()], None)
        .await;
    assert!(!retry.success());
    assert!(
        retry
            .stderr
            .contains("could not be read, so it cannot be delivered; drop it"),
        "{}",
        retry.output()
    );
    let dropped = harness
        .bbzoom(&["dead-letters", "drop", &seq.to_string()], None)
        .await;
    assert!(dropped.success(), "{}", dropped.output());
    let listed = harness.bbzoom(&["dead-letters"], None).await;
    assert_eq!(listed.stdout.trim(), "no dead letters");
}
