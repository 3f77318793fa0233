//! The chat commands that change what a channel is told, against the simulator on loopback
//! with a real sled store: `subscribe` and `unsubscribe` by an admin (the chat's file written
//! with who made it, applied by a reload, a build of the new repository delivered, `bbzoom
//! subscriptions` naming where it comes from), refused to anyone else and for bad arguments,
//! and not applied when the daemon cannot; `mute` and `unmute` (nothing delivered while muted,
//! then one summary card, at unmute or when the mute ends, also across a restart). And the
//! chat's subscriptions file as the configuration reads it.

use crate::chat::{
    CI, SPEED, answered_once, answers, harness_for, harness_with, jane, post, wait_for,
};
use crate::common::{Harness, RunningDaemon, acme_pipelines, cards};
use bbzoom::config::Config;
use bbzoom::demo::SimPolling;
use bbzoom_sim::{Scenario, SimBuild, SimEventsApp, SimOptions, SimPerson, SimState, Simulator};
use std::time::Duration;

/// The `[zoom.events]` keys of these tests: Jane is an admin, and the chat's subscriptions go
/// to a file beside the configuration.
const ADMIN_KEYS: &str =
    "admins = [\"JANE@example.com\"]\nsubscriptions_file = \"chat-subscriptions.toml\"";

/// `acme/api` is subscribed by the configuration (#ci, failed and fixed).
const SUBSCRIPTIONS: &str = r#"
[[subscription]]
repository = "{web}/acme/api"
channels = ["ci"]
"#;

/// A pipeline on main created at `at` (simulated seconds), running, ending as `end` 50 s later.
fn pipeline(number: u64, at: f64, end: SimState) -> SimBuild {
    SimBuild::pipeline(
        number,
        "main",
        at,
        [(at + 5.0, SimState::Running), (at + 50.0, end)],
    )
}

async fn harness(scenario: Scenario) -> Harness {
    harness_with(
        scenario,
        SimPolling::every(15.0),
        SUBSCRIPTIONS,
        SimEventsApp::default(),
        SPEED,
        ADMIN_KEYS,
    )
    .await
}

/// `acme/api` and `acme/web`, with no builds.
fn api_and_web() -> Scenario {
    Scenario {
        repos: vec![
            acme_pipelines("api", Vec::new()),
            acme_pipelines("web", Vec::new()),
        ],
    }
}

/// Starts `h`'s daemon and waits for its event connection: `acme/web`'s URL, and the daemon.
async fn connected(h: &Harness) -> (String, RunningDaemon) {
    let web = format!("{}/acme/web", h.web_url());
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    (web, daemon)
}

fn bob() -> SimPerson {
    SimPerson {
        user_id: "bob-id".to_owned(),
        name: "Bob Outsider".to_owned(),
        email: "bob@example.com".to_owned(),
    }
}

/// The one answer to `id`, as text.
fn answer(sim: &Simulator, id: &str) -> String {
    answers(sim, id)[0].to_string()
}

/// Posts `text` as Jane and waits for its one answer.
async fn ask(sim: &Simulator, text: &str) -> String {
    let id = post(sim, text);
    answered_once(sim, std::slice::from_ref(&id)).await;
    answer(sim, &id)
}

/// Waits (at most `secs` real seconds) until `done`.
async fn wait_long(what: &str, secs: u64, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The titles of the cards in #ci (answers, which are thread replies, aside).
fn ci_cards(sim: &Simulator) -> Vec<String> {
    cards(sim, CI).into_iter().flatten().collect()
}

fn chat_file(h: &Harness) -> std::path::PathBuf {
    h.dir.path().join("chat-subscriptions.toml")
}

#[tokio::test]
async fn an_admin_subscribes_and_unsubscribes_the_channel_from_the_chat() {
    // acme/web is not subscribed; its build on main fails at simulated second 750.
    let scenario = Scenario {
        repos: vec![
            acme_pipelines("api", Vec::new()),
            acme_pipelines("web", vec![pipeline(1, 700.0, SimState::Failed)]),
        ],
    };
    let h = harness(scenario).await;
    let (web, daemon) = connected(&h).await;

    let said = ask(
        &h.sim,
        &format!("bbzoom subscribe {web} branches:main,release/* events:failed,fixed"),
    )
    .await;
    assert!(said.contains("✅ Subscribed ci to acme/web"), "{said}");
    assert!(
        said.contains("configuration reloaded; now polling"),
        "{said}"
    );
    // Its text is cleaned like any card's: the glob's star and the email's @ are defused.
    assert!(said.contains("branches main, release/∗"), "{said}");
    assert!(said.contains("jane＠example.com"), "{said}");
    assert!(
        h.sim.now() < 700.0,
        "subscribed too late for the test: {}",
        h.sim.now()
    );

    // The file: the table, with a comment saying who, where and when.
    let file = std::fs::read_to_string(chat_file(&h)).unwrap();
    assert!(
        file.starts_with("# Subscriptions made in Zoom Team Chat"),
        "{file}"
    );
    let table = format!(
        "\n[[subscription]]\nrepository = \"{web}\"\nbranches = [\"main\", \"release/*\"]\n\
         events = [\"failed\", \"fixed\"]\nchannels = [\"ci\"]\n"
    );
    assert!(file.contains(&table), "{file}");
    let comment = file
        .lines()
        .find(|l| l.starts_with("# Made in the chat by "))
        .unwrap_or_else(|| panic!("no comment: {file}"));
    assert!(
        comment.starts_with("# Made in the chat by jane@example.com at 20"),
        "{comment}"
    );
    assert!(comment.ends_with("Z in #ci"), "{comment}");
    let config = Config::load(&h.config_path()).unwrap();
    let made = config.subscriptions[1].origin.chat.clone().unwrap();
    assert_eq!(made.by.as_deref(), Some("jane@example.com"));

    // A build of acme/web reaches the channel.
    wait_long("acme/web's failure in #ci", 30, || {
        ci_cards(&h.sim)
            .iter()
            .any(|c| c.starts_with("❌ FAILED · acme/web · main"))
    })
    .await;

    // `bbzoom subscriptions` says where each subscription comes from.
    let run = h.bbzoom(&["subscriptions"], None).await;
    assert!(run.success(), "{}", run.output());
    let row = |repo: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(repo))
            .unwrap_or_else(|| panic!("{repo}: {}", run.stdout))
            .to_owned()
    };
    assert!(
        row("/acme/web").contains("chat, by jane@example.com at 20"),
        "{}",
        run.stdout
    );
    assert!(
        row("/acme/web").contains("chat-subscriptions.toml line "),
        "{}",
        run.stdout
    );
    assert!(
        row("/acme/api").contains(&format!("{} line ", h.config_path().display())),
        "{}",
        run.stdout
    );
    // The command line leaves the chat's subscription to the chat.
    let run = h.bbzoom(&["unsubscribe", &web], None).await;
    assert!(!run.success(), "{}", run.output());
    assert!(
        run.stderr.contains("was made in the chat"),
        "{}",
        run.output()
    );

    // The configuration's own subscription cannot be removed from the chat.
    let said = ask(
        &h.sim,
        &format!("bbzoom unsubscribe {}/acme/api", h.web_url()),
    )
    .await;
    assert!(said.contains("Nothing unsubscribed"), "{said}");
    assert!(said.contains("by the configuration file"), "{said}");
    let line = Config::load(&h.config_path()).unwrap().subscriptions[0]
        .origin
        .line;
    assert!(said.contains(&format!("config.toml line {line}")), "{said}");

    // Unsubscribing takes the table and its comment away, and the reload stops polling it.
    let said = ask(&h.sim, "bbzoom unsubscribe acme/web").await;
    assert!(said.contains("✅ Unsubscribed from acme/web"), "{said}");
    let file = std::fs::read_to_string(chat_file(&h)).unwrap();
    assert!(!file.contains("acme/web"), "{file}");
    assert!(!file.contains("# Made in the chat"), "{file}");
    assert!(
        file.starts_with("# Subscriptions made in Zoom Team Chat"),
        "{file}"
    );
    let config = Config::load(&h.config_path()).unwrap();
    assert_eq!(config.subscriptions.len(), 1);
    let said = ask(&h.sim, "bbzoom unsubscribe acme/web").await;
    assert!(said.contains("acme/web is not subscribed in ci"), "{said}");
    daemon.stop().await;
}

#[tokio::test]
async fn an_admin_s_subscription_may_ask_for_war_rooms() {
    let h = harness(api_and_web()).await;
    let (web, daemon) = connected(&h).await;
    // A war room on an event the subscription does not announce is refused by the
    // configuration's code, which names the key.
    let said = ask(
        &h.sim,
        &format!("bbzoom subscribe {web} meeting_on:stopped"),
    )
    .await;
    assert!(said.contains("meeting_on"), "{said}");
    assert!(!chat_file(&h).exists());

    let said = ask(
        &h.sim,
        &format!("bbzoom subscribe {web} events:failed meeting_on:still_failing"),
    )
    .await;
    assert!(said.contains("✅ Subscribed ci to acme/web"), "{said}");
    let file = std::fs::read_to_string(chat_file(&h)).unwrap();
    assert!(file.contains("meeting_on = [\"still_failing\"]"), "{file}");
    let config = Config::load(&h.config_path()).unwrap();
    let made = (config.subscriptions.iter())
        .find(|s| s.repo.to_string().ends_with("acme/web"))
        .expect("the chat's subscription");
    assert_eq!(
        made.meeting_on,
        [bbzoom::domain::EventKind::StillFailing].into()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_admin_listed_by_user_id_is_known_in_commands_read_back_after_a_reconnect() {
    // Jane is listed by her user id, which list-messages does not show: only her email.
    let mut options = SimOptions {
        speed: SPEED,
        ..SimOptions::default()
    };
    options.zoom.users.push(jane());
    let h = harness_for(
        api_and_web(),
        SimPolling::every(15.0),
        SUBSCRIPTIONS,
        options,
        "admins = [\"jane-id\"]\nsubscriptions_file = \"chat-subscriptions.toml\"",
    )
    .await;
    let (web, daemon) = connected(&h).await;

    // Posted while Zoom is unreachable: read back by list-messages once it is back.
    h.sim.set_zoom_outage(true);
    assert!(h.sim.disconnect_events());
    let janes = post(&h.sim, &format!("bbzoom subscribe {web}"));
    let bobs = h
        .sim
        .post_to_channel(CI, &bob(), &format!("bbzoom unsubscribe {web}"), &[], None)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.sim.set_zoom_outage(false);
    answered_once(&h.sim, &[janes.clone(), bobs.clone()]).await;
    assert!(h.sim.stats().zoom_list_requests > 0, "read back, not live");
    let said = answer(&h.sim, &janes);
    assert!(said.contains("✅ Subscribed ci to acme/web"), "{said}");
    let said = answer(&h.sim, &bobs);
    assert!(said.contains("Only bbzoom's admins may"), "{said}");
    assert!(chat_file(&h).exists());
    daemon.stop().await;
}

#[tokio::test]
async fn a_subscription_is_refused_to_non_admins_bad_arguments_and_a_daemon_that_cannot_apply_it() {
    let h = harness(api_and_web()).await;
    let before = std::fs::read_to_string(h.config_path()).unwrap();
    let (web, daemon) = connected(&h).await;

    // Bob is not an admin.
    let id = h
        .sim
        .post_to_channel(CI, &bob(), &format!("bbzoom subscribe {web}"), &[], None)
        .unwrap();
    answered_once(&h.sim, std::slice::from_ref(&id)).await;
    let said = answer(&h.sim, &id);
    assert!(
        said.contains("Only bbzoom's admins may subscribe"),
        "{said}"
    );

    // Jane's arguments are checked by the configuration's code, which names what is wrong.
    for (typed, expected) in [
        (
            "bbzoom subscribe https://example.com/acme/web".to_owned(),
            "example.com",
        ),
        (
            format!("bbzoom subscribe {web} branches:main,[x"),
            "branches[1]",
        ),
        (
            format!("bbzoom subscribe {web} events:faild"),
            "unknown event",
        ),
        (
            format!("bbzoom subscribe {web} events:faild"),
            "did you mean",
        ),
        (
            format!("bbzoom subscribe {web} branch:main"),
            "unknown option branch:",
        ),
    ] {
        let said = ask(&h.sim, &typed).await;
        assert!(
            said.contains("Not subscribed") || said.contains("⚠️ subscribe:"),
            "{typed}: {said}"
        );
        assert!(said.contains(expected), "{typed}: {expected} not in {said}");
    }
    assert!(!chat_file(&h).exists());

    // A reload that cannot be applied (the credentials file is gone): the file is put back.
    std::fs::remove_file(&h.config.daemon.credentials_file).unwrap();
    let said = ask(&h.sim, &format!("bbzoom subscribe {web}")).await;
    assert!(
        said.contains("Not subscribed: the daemon cannot apply it"),
        "{said}"
    );
    assert!(said.contains("is as it was"), "{said}");
    assert!(!chat_file(&h).exists());

    assert_eq!(std::fs::read_to_string(h.config_path()).unwrap(), before);
    assert_eq!(
        Config::load(&h.config_path()).unwrap().subscriptions.len(),
        1
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_muted_repository_s_results_wait_across_a_restart_then_come_as_one_summary() {
    // A failure, then the fix, on acme/api's main.
    let h = harness(Scenario {
        repos: vec![acme_pipelines(
            "api",
            vec![
                pipeline(1, 500.0, SimState::Failed),
                pipeline(2, 600.0, SimState::Successful),
            ],
        )],
    })
    .await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    let said = ask(&h.sim, "bbzoom mute acme/api 2h").await;
    assert!(said.contains("🔕 Muted acme/api in ci for 2h"), "{said}");
    assert!(h.sim.now() < 500.0, "muted too late: {}", h.sim.now());

    // Both results are queued, and held.
    wait_long("both results queued", 30, || {
        daemon.store.outbox("ci").unwrap().rows.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ci_cards(&h.sim), Vec::<String>::new());
    let said = ask(&h.sim, "bbzoom status").await;
    assert!(said.contains("🔕 Muted: acme/api"), "{said}");
    assert!(said.contains("2 card(s) held"), "{said}");

    // The mute is in the store: a restart keeps it, and `bbzoom status` shows it meanwhile.
    daemon.stop().await;
    let run = h.bbzoom(&["status"], None).await;
    assert_eq!(run.status, Some(3), "{}", run.output());
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("ci ") && l.contains("acme/api"))
        .unwrap_or_else(|| panic!("no mute in:\n{}", run.stdout));
    // Two hours at 100x: a minute and twelve seconds of real time.
    assert!(row.contains(" in "), "{row}");
    assert!(row.contains("jane@example.com"), "{row}");
    assert!(row.trim_end().ends_with('2'), "{row}");
    let daemon = h.run_daemon();
    wait_for("the connection again", || h.sim.events_connected()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ci_cards(&h.sim), Vec::<String>::new());

    let said = ask(&h.sim, "bbzoom unmute acme/api").await;
    assert!(said.contains("🔔 Unmuted acme/api in ci"), "{said}");
    assert!(said.contains("2 build update(s)"), "{said}");
    wait_long("the summary", 10, || !ci_cards(&h.sim).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ci_cards(&h.sim),
        [
            "🔔 While muted: 2 build updates — 1 failed, 1 fixed (Mute of acme/api ended; these \
          were held back)"
        ]
    );
    let summary = h.sim.channel(CI)[0..]
        .iter()
        .find(|m| m.reply_to.is_none())
        .unwrap()
        .content
        .to_string();
    assert!(
        summary.contains("acme/api · main: 1 failed, 1 fixed · last ✅ FIXED Pipeline #2"),
        "{summary}"
    );
    assert!(daemon.store.outbox("ci").unwrap().rows.is_empty());
    assert!(daemon.store.mutes(None).unwrap().is_empty());
    daemon.stop().await;
}

#[tokio::test]
async fn a_mute_that_runs_out_sends_its_summary_by_itself() {
    let h = harness(Scenario {
        repos: vec![acme_pipelines(
            "api",
            vec![pipeline(1, 450.0, SimState::Failed)],
        )],
    })
    .await;
    let daemon = h.run_daemon();
    wait_for("the connection", || h.sim.events_connected()).await;
    // Ten simulated minutes: six real seconds at 100x.
    let said = ask(&h.sim, "bbzoom mute all 10m").await;
    assert!(
        said.contains("🔕 Muted every repository in ci for 10m"),
        "{said}"
    );
    assert!(h.sim.now() < 450.0, "muted too late: {}", h.sim.now());
    wait_long("the failure queued", 30, || {
        daemon.store.outbox("ci").unwrap().rows.len() == 1
    })
    .await;
    assert_eq!(ci_cards(&h.sim), Vec::<String>::new());
    // Nothing goes out before the mute ends, then its summary does, unasked.
    wait_long("the summary", 30, || !ci_cards(&h.sim).is_empty()).await;
    assert!(h.sim.now() >= 600.0, "sent at {}", h.sim.now());
    assert_eq!(
        ci_cards(&h.sim),
        [
            "🔔 While muted: 1 build update — 1 failed (Mute of every repository ended; these were \
          held back)"
        ]
    );
    wait_long("the mute forgotten", 5, || {
        daemon.store.mutes(None).unwrap().is_empty()
    })
    .await;
    // Unmuting now has nothing to end.
    let said = ask(&h.sim, "bbzoom unmute").await;
    assert!(said.contains("Nothing to unmute in ci"), "{said}");
    // A wrong use says how to write it, and a bad length what is allowed.
    let said = ask(&h.sim, "bbzoom mute acme/api").await;
    assert!(
        said.contains("Usage: bbzoom mute REPO|all DURATION"),
        "{said}"
    );
    let said = ask(&h.sim, "bbzoom mute acme/api 2d").await;
    assert!(said.contains("from 1m to 168h"), "{said}");
    let said = ask(&h.sim, "bbzoom mute acme/nope 1h").await;
    assert!(
        said.contains("acme/nope is not a repository subscribed in ci"),
        "{said}"
    );
    daemon.stop().await;
}

/// The chat's file as the configuration reads it: only subscription tables, errors placed in
/// that file, and its tables after the configuration's.
#[test]
fn the_chat_s_file_is_read_with_the_configuration_and_errors_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let main = format!(
        "{}\n[[subscription]]\nrepository = \"https://bitbucket.org/acme/api\"\nchannels = [\"ci\"]\n",
        CONFIG.trim_end()
    );
    std::fs::write(&path, &main).unwrap();
    let chat_path = dir.path().join("chat.toml");
    let parse = |chat: &str| Config::parse_with_chat(&path, &main, chat);

    // Missing: no subscriptions of its own.
    assert_eq!(Config::load(&path).unwrap().subscriptions.len(), 1);

    let chat = "# made in the chat\n\n# Made in the chat by jane@example.com at 2025-06-01T10:00:00Z in #ci\n\
                [[subscription]]\nrepository = \"https://bitbucket.org/acme/web\"\nchannels = [\"ci\"]\n";
    std::fs::write(&chat_path, chat).unwrap();
    let config = Config::load(&path).unwrap();
    let origins: Vec<String> = config
        .subscriptions
        .iter()
        .map(|s| s.origin.to_string())
        .collect();
    assert_eq!(
        origins,
        [
            format!(
                "{} line {}",
                path.display(),
                main.lines().position(|l| l == "[[subscription]]").unwrap() + 1
            ),
            format!(
                "chat, by jane@example.com at 2025-06-01T10:00:00Z ({} line 4)",
                chat_path.display()
            ),
        ]
    );
    assert_eq!(config.subscriptions[1].origin.index, 0);

    // A bad value: that file, its line, its table's key.
    let err = parse(&chat.replace("[\"ci\"]", "[\"nope\"]")).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}:6:13: subscription[0].channels[0]: unknown channel \"nope\"",
            chat_path.display()
        )),
        "{err}"
    );
    // A key of the wrong shape, and broken TOML, likewise.
    let err = parse(&chat.replace("channels", "chanels")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&chat_path.display().to_string()),
        "{err}"
    );
    assert_eq!(err.line(), Some(6), "{err}");
    let err = parse("[[subscription]\n").unwrap_err();
    assert_eq!((err.line(), err.key()), (Some(1), None), "{err}");
    assert!(
        err.to_string()
            .starts_with(&chat_path.display().to_string()),
        "{err}"
    );
    // Anything but subscription tables.
    let err = parse("[daemon]\nstate_dir = \"x\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("as [[subscription]] tables only; move \"daemon\""),
        "{err}"
    );
    let err = parse("subscription = []\n").unwrap_err();
    assert!(err.to_string().contains("tables only"), "{err}");
    // A conflict between the two files names both places.
    let pooled = chat.replace("acme/web", "acme/api").replace(
        "channels = [\"ci\"]",
        "credential = \"other\"\nchannels = [\"ci\"]",
    );
    let err = parse(&pooled).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&chat_path.display().to_string()),
        "{err}"
    );
    let line = main.lines().position(|l| l == "[[subscription]]").unwrap() + 1;
    assert!(
        err.to_string()
            .contains(&format!("by subscription[0] at line {line}")),
        "{err}"
    );
    // The configuration itself cannot be its chat's file.
    let itself = main.replace("chat.toml", "config.toml");
    let err = Config::parse(&path, &itself).unwrap_err();
    assert_eq!(err.key(), Some("zoom.events.subscriptions_file"), "{err}");
}

/// A configuration with `[zoom.events]` naming `chat.toml`; the harness's path stands in.
const CONFIG: &str = r#"
[daemon]
state_dir = "state"
credentials = "credentials.age"
identity = "identity.txt"

[bitbucket]
credential = "acme-ci"

[zoom.chatbot]
credential = "zoom-bot"
account_id = "AbCdEf"
robot_jid = "v1bot@xmpp.zoom.us"
user_jid = "user@xmpp.zoom.us"

[zoom.channels.ci]
to_jid = "ci@conference.xmpp.zoom.us"

[zoom.events]
credential = "zoom-events"
subscription_id = "abc"
user = "bot@example.com"
channels = ["ci"]
subscriptions_file = "chat.toml"
"#;
