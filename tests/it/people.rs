//! `[people]` and war rooms (issue 14, sections 3 and 4), through the real daemon against the
//! simulator over loopback with a real sled store: a failing build mentions its mapped author
//! (and only them), build data that looks like a mention mentions no one, a direct message
//! goes out once per failure; and the keys are checked like the rest of the file.

use crate::common::{Harness, replaced};
use bbzoom::config::Config;
use bbzoom::credentials::Credential;
use bbzoom::demo::SimPolling;
use bbzoom_sim::{
    Scenario, SimBuild, SimMessage, SimOptions, SimPerson, SimRepo, SimStart, SimState, Simulator,
};
use std::path::Path;
use std::time::Duration;

use SimState::*;

const CI: &str = "ci@conference.xmpp.zoom.us";
const ALERTS: &str = "alerts@conference.xmpp.zoom.us";
const SPEED: f64 = 20.0;

fn polling() -> SimPolling {
    SimPolling::every(2.0)
}

/// Pipeline `number` of `branch` by `author`, running from `at` and ending `result` 10 s later.
fn build(number: u64, branch: &str, author: &str, at: f64, result: SimState) -> SimBuild {
    SimBuild {
        commit: format!("{number:0>40}"),
        message: format!("Change number {number}"),
        author: author.into(),
        ..SimBuild::pipeline(
            number,
            branch,
            at,
            [(at + 1.0, Running), (at + 10.0, result)],
        )
    }
}

fn person(name: &str) -> SimPerson {
    SimPerson::named(name)
}

fn repo(slug: &str, builds: Vec<SimBuild>) -> SimRepo {
    SimRepo {
        workspace: "acme".into(),
        slug: slug.into(),
        builds,
        ..SimRepo::default()
    }
}

/// A harness whose configuration has `extra` appended (tables after the subscriptions).
async fn harness(scenario: Scenario, subscriptions: &str, extra: &str) -> Harness {
    let options = SimOptions {
        speed: SPEED,
        start: SimStart::AtFirstRequest,
        ..SimOptions::default()
    };
    let mut harness = Harness::start_timed(scenario, options, polling(), subscriptions).await;
    append(&mut harness, extra);
    harness
}

/// Appends `text` to the harness's configuration and reads it again.
fn append(harness: &mut Harness, text: &str) {
    let path = harness.config_path();
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(text);
    std::fs::write(&path, config).unwrap();
    harness.config = Config::load(&path).unwrap();
}

/// Stores the simulator's Server-to-Server app as credential "sim-events" and adds
/// `[zoom.events]` on #ci: what finds people by e-mail and creates meetings.
fn with_events(harness: &mut Harness) {
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
    let events = format!(
        "\n[zoom.events]\ncredential = \"sim-events\"\nsubscription_id = \"{}\"\nurl = \"{}\"\nuser = \"{}\"\nchannels = [\"ci\"]\nheartbeat = \"{}ms\"\n",
        app.subscription_id,
        harness.sim.zoom_events_url(),
        app.user_email,
        (30.0 / SPEED * 1000.0) as u64,
    );
    append(harness, &events);
}

/// The card of pipeline `number` in `to_jid` (not a thread reply).
fn card_of(sim: &Simulator, to_jid: &str, number: u64) -> SimMessage {
    let sub_head = format!("Pipeline #{number}");
    sim.channel(to_jid)
        .into_iter()
        .find(|m| m.reply_to.is_none() && m.content["head"]["sub_head"]["text"] == sub_head)
        .unwrap_or_else(|| panic!("no card of #{number} in {to_jid}"))
}

/// Everyone the card of pipeline `number` and its thread replies mentioned.
fn mentioned(sim: &Simulator, number: u64) -> Vec<String> {
    let card = card_of(sim, CI, number);
    let mut all = card.mentions.clone();
    for reply in sim.channel(CI) {
        if reply.reply_to.as_deref() == Some(card.message_id.as_str()) {
            all.extend(reply.mentions);
        }
    }
    all.sort();
    all.dedup();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_mentions_its_mapped_author_and_no_one_else() {
    let (priya, tom, hannah) = (
        person("Priya Raman"),
        person("Tom Okafor"),
        person("Hannah Schulz"),
    );
    let hostile = format!(
        "@all deploy now <!all> <!{}|Tom> @tom.okafor@example.com",
        tom.jid()
    );
    let scenario = Scenario {
        repos: vec![repo(
            "api",
            vec![
                build(1, "main", "Priya Raman", 5.0, Failed),
                build(2, "feature/a", "Tom Okafor", 6.0, Failed),
                build(3, "feature/b", "Priya Raman", 7.0, Failed).with_message(hostile),
                // Tom's change, run again by Priya: she is the one to tell.
                build(4, "main", "Tom Okafor", 30.0, Failed).started_by("Priya Raman"),
                // Priya's change, run by Hannah: both known, the change's author is told.
                build(5, "feature/c", "Priya Raman", 31.0, Error).started_by("Hannah Schulz"),
                build(6, "feature/d", "Priya Raman", 32.0, Successful),
                build(7, "main", "Priya Raman", 50.0, Successful),
            ],
        )],
    };
    let subscriptions = r#"
[[subscription]]
repository = "{web}/acme/api"
events = ["all"]
channels = ["ci", "alerts"]
"#;
    let people = format!(
        "\n[people]\n[people.accounts]\n\"priya.raman\" = \"{}\"\n\"hannah.schulz\" = \"{}\"\n",
        priya.jid(),
        hannah.jid()
    );
    let h = harness(scenario, subscriptions, &people).await;
    let daemon = h.run_daemon();
    h.wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    daemon.stop().await;

    let just_priya = vec![priya.jid()];
    assert_eq!(mentioned(&h.sim, 1), just_priya, "#1: her failure");
    assert!(
        mentioned(&h.sim, 2).is_empty(),
        "#2: Tom is not in [people]"
    );
    assert_eq!(
        mentioned(&h.sim, 3),
        just_priya,
        "#3: nothing in the commit message mentions anyone"
    );
    assert_eq!(
        mentioned(&h.sim, 4),
        just_priya,
        "#4: who ran it, as Tom is unknown"
    );
    assert_eq!(
        mentioned(&h.sim, 5),
        just_priya,
        "#5: the change's author first"
    );
    for success in [6, 7] {
        assert!(mentioned(&h.sim, success).is_empty(), "#{success}");
    }
    // The hostile message shows, defused, and the mention shows her name.
    let third = card_of(&h.sim, CI, 3).content.to_string();
    assert!(third.contains("＠all deploy now ‹!all›"), "{third}");
    let first = card_of(&h.sim, CI, 1).content.to_string();
    assert!(
        first.contains(&format!("<!{}|Priya Raman>", priya.jid())),
        "{first}"
    );
    // Nowhere a channel-wide mention; webhook cards carry no markup.
    for message in h.sim.channel(CI) {
        assert!(
            !message.mentions.contains(&"@all".to_owned()),
            "{message:?}"
        );
    }
    for message in h.sim.channel(ALERTS) {
        let shown = message.content.to_string();
        assert!(!shown.contains("<!"), "{shown}");
        assert!(message.mentions.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_author_gets_one_direct_message_per_failure_across_a_restart() {
    let (priya, tom) = (person("Priya Raman"), person("Tom Okafor"));
    let scenario = Scenario {
        repos: vec![
            repo(
                "api",
                vec![
                    build(1, "main", "Priya Raman", 5.0, Failed),
                    build(2, "feature/a", "Tom Okafor", 6.0, Failed),
                    build(3, "main", "Priya Raman", 40.0, Failed),
                    build(4, "main", "Priya Raman", 60.0, Successful),
                ],
            ),
            // Announced in a webhook channel only: the chatbot does not message about it.
            repo("web", vec![build(1, "main", "Priya Raman", 5.0, Failed)]),
        ],
    };
    let subscriptions = r#"
[[subscription]]
repository = "{web}/acme/api"
channels = ["ci"]

[[subscription]]
repository = "{web}/acme/web"
channels = ["alerts"]
"#;
    let people = format!(
        "\n[people]\n[people.accounts]\n\"priya.raman\" = {{ zoom = \"{}\", direct_message = true }}\n\"tom.okafor\" = \"{}\"\n",
        priya.jid(),
        tom.jid()
    );
    let h = harness(scenario, subscriptions, &people).await;
    let daemon = h.run_daemon();
    // Stopped after the first failure's message, started again: nothing sent twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.sim.channel(&priya.jid()).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no direct message");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.stop().await;
    let daemon = h.run_daemon();
    h.wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    // Long enough for a repeat to show, were one coming.
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.stop().await;

    let direct: Vec<String> = h
        .sim
        .channel(&priya.jid())
        .iter()
        .map(|m| {
            let head = m.content["head"]["text"].as_str().unwrap_or_default();
            let sub = m.content["head"]["sub_head"]["text"]
                .as_str()
                .unwrap_or_default();
            format!("{head} ({sub})")
        })
        .collect();
    assert_eq!(
        direct,
        [
            "❌ FAILED · acme/api · main (Pipeline #1)",
            "❌ STILL FAILING · acme/api · main (Pipeline #3)"
        ]
    );
    assert!(h.sim.channel(&tom.jid()).is_empty(), "Tom asked for none");
    // The channel's cards mention her too, Tom's mentions him (he is in [people]).
    assert_eq!(mentioned(&h.sim, 1), [priya.jid()]);
    assert_eq!(mentioned(&h.sim, 2), [tom.jid()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_named_by_e_mail_is_found_once_through_the_server_to_server_app() {
    let priya = person("Priya Raman");
    let scenario = Scenario {
        repos: vec![repo(
            "api",
            vec![
                build(1, "main", "Priya Raman", 5.0, Failed),
                build(2, "main", "Priya Raman", 30.0, Failed),
            ],
        )],
    };
    let subscriptions = r#"
[[subscription]]
repository = "{web}/acme/api"
channels = ["ci"]
"#;
    let mut h = harness(scenario, subscriptions, "").await;
    with_events(&mut h);
    // The commit's e-mail address (Bitbucket) to her Zoom e-mail address.
    append(
        &mut h,
        &format!(
            "\n[people]\ndirect_message = true\n[people.accounts]\n\"Priya.Raman@example.com\" = \"{}\"\n",
            priya.email.to_uppercase()
        ),
    );
    let daemon = h.run_daemon();
    h.wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    daemon.stop().await;

    assert_eq!(mentioned(&h.sim, 1), [priya.jid()]);
    assert_eq!(mentioned(&h.sim, 2), [priya.jid()]);
    assert_eq!(h.sim.channel(&priya.jid()).len(), 2);
    assert_eq!(h.sim.account_requests(), 1, "her JID was asked for once");
}

/// Where the configuration tests pretend it lives.
const PATH: &str = "/etc/bbzoom/config.toml";

/// A valid configuration to break: `[people]` goes at its end (line 22 on).
const BASE: &str = r#"[daemon]
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

[[subscription]]
repository = "https://bitbucket.org/acme/api"
channels = ["ci"]

"#;

/// `[zoom.events]`, for a configuration that finds people by e-mail address.
const EVENTS: &str = r#"[zoom.events]
credential = "zoom-events"
subscription_id = "AbCdEf"
user = "ci-admin@example.com"
channels = ["ci"]

"#;

#[track_caller]
fn refused(text: &str, line: usize, key: &str, fragment: &str) {
    let err = match Config::parse(Path::new(PATH), text) {
        Ok(_) => panic!("accepted, expected {fragment:?}:\n{text}"),
        Err(err) => err,
    };
    let shown = err.to_string();
    assert_eq!(err.line(), Some(line), "line of: {shown}");
    assert_eq!(err.key(), Some(key), "key of: {shown}");
    assert!(shown.contains(fragment), "{shown:?}\nlacks {fragment:?}");
    assert!(shown.starts_with(PATH), "{shown}");
}

#[test]
fn people_are_optional_and_read_in_every_form() {
    let config = Config::parse(Path::new(PATH), BASE).unwrap();
    assert!(config.people.is_empty());
    let text = format!(
        "{BASE}{EVENTS}[people]\ndirect_message = true\n[people.accounts]\n\"{{0A1B-uuid}}\" = \"Jane@Example.com\"\njdoe = {{ zoom = \"abc.def@xmpp.zoom.us\", direct_message = false }}\n"
    );
    let config = Config::parse(Path::new(PATH), &text).unwrap();
    let messaged: Vec<String> = config
        .people
        .direct_messaged()
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(messaged, ["jane@example.com"], "jdoe opted out");
    assert!(config.watches.iter().all(|w| w.people == config.people));
}

#[test]
fn broken_people() {
    let people = |accounts: &str| format!("{BASE}[people]\n[people.accounts]\n{accounts}");
    refused(
        &people("jane = \"ci@conference.xmpp.zoom.us\"\n"),
        24,
        "people.accounts.jane",
        "is a channel's JID",
    );
    refused(
        &people("jane = \"jane doe\"\n"),
        24,
        "people.accounts.jane",
        "neither an e-mail address nor a Zoom user's JID",
    );
    refused(
        &people("jane = \"a|b@xmpp.zoom.us\"\n"),
        24,
        "people.accounts.jane",
        "is not a user's JID",
    );
    refused(
        &people("jane = \"jane@example.com\"\n"),
        24,
        "people.accounts.jane",
        "add [zoom.events]",
    );
    refused(
        &people("jane = 7\n"),
        24,
        "people.accounts.jane",
        "a person is a Zoom user's e-mail address or JID, or a table",
    );
    refused(
        &people("jane = { zom = \"abc@xmpp.zoom.us\" }\n"),
        24,
        "people.accounts.jane.zom",
        "did you mean \"zoom\"?",
    );
    refused(
        &people("jane = { direct_message = true }\n"),
        24,
        "people.accounts.jane.zoom",
        "zoom is missing",
    );
    refused(
        &people("jane = \"abc@xmpp.zoom.us\"\nJANE = \"def@xmpp.zoom.us\"\n"),
        25,
        "people.accounts.JANE",
        "is already named by people.accounts.jane",
    );
    refused(
        &people("\" \" = \"abc@xmpp.zoom.us\"\n"),
        24,
        "people.accounts.\" \"",
        "without spaces",
    );
    // Direct messages come from the chatbot.
    let no_chatbot = replaced(
        BASE,
        "[zoom.chatbot]\ncredential = \"zoom-bot\"\naccount_id = \"AbCdEf\"\nrobot_jid = \"v1bot@xmpp.zoom.us\"\nuser_jid = \"user@xmpp.zoom.us\"\n",
        "",
    )
    .replace(
        "to_jid = \"ci@conference.xmpp.zoom.us\"",
        "webhook_url = \"https://integrations.zoom.us/chat/webhooks/incomingwebhook/abc\"\ncredential = \"hook\"",
    );
    refused(
        &format!("{no_chatbot}[people]\ndirect_message = true\n"),
        19,
        "people.direct_message",
        "there is no [zoom.chatbot]",
    );
    refused(
        &format!("{BASE}[people]\nmessages = true\n"),
        23,
        "people.messages",
        "unknown key",
    );
}
