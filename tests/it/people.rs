//! `[people]` and war rooms (issue 14, sections 3 and 4), through the real daemon against the
//! simulator over loopback with a real sled store: a failing build mentions its mapped author
//! (and only them), build data that looks like a mention mentions no one, a direct message
//! goes out once per failure; a failing streak gets one meeting, shown in its cards, whose
//! start link shows nowhere, and a meeting Zoom will not create never holds a card back; and
//! the keys are checked like the rest of the file.

use crate::common::{Harness, acme_pipelines, log_text, replaced, sigterm, spawn_daemon};
use bbzoom::config::Config;
use bbzoom::demo::SimPolling;
use bbzoom_sim::{
    Scenario, SimBuild, SimMeetingFault, SimMessage, SimOptions, SimPerson, SimStart, SimState,
    Simulator,
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

/// Replaces `from` by `to` in the harness's configuration and reads it again.
fn edit(harness: &mut Harness, from: &str, to: &str) {
    let path = harness.config_path();
    let config = replaced(&std::fs::read_to_string(&path).unwrap(), from, to);
    std::fs::write(&path, config).unwrap();
    harness.config = Config::load(&path).unwrap();
}

/// [`with_events`], and war rooms on the subscription of [`WAR_ROOM_SUBSCRIPTIONS`] that
/// awaits them.
fn with_war_rooms(harness: &mut Harness) {
    with_events(harness);
    edit(
        harness,
        "# meeting_on: set once [zoom.events] is there",
        "meeting_on = [\"failed\"]",
    );
}

/// Stores the simulator's Server-to-Server app as credential "sim-events" and adds
/// `[zoom.events]` on #ci: what finds people by e-mail and creates meetings. The
/// configuration is written afresh from the harness's environment: call it before anything
/// is [`append`]ed.
fn with_events(harness: &mut Harness) {
    harness.rewrite(|env| env.chat_commands = true);
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
        repos: vec![acme_pipelines(
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
            acme_pipelines(
                "api",
                vec![
                    build(1, "main", "Priya Raman", 5.0, Failed),
                    build(2, "feature/a", "Tom Okafor", 6.0, Failed),
                    build(3, "main", "Priya Raman", 40.0, Failed),
                    build(4, "main", "Priya Raman", 60.0, Successful),
                ],
            ),
            // Announced in a webhook channel only: the chatbot does not message about it.
            acme_pipelines("web", vec![build(1, "main", "Priya Raman", 5.0, Failed)]),
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
        repos: vec![acme_pipelines(
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

const RELEASES: &str = "releases@conference.xmpp.zoom.us";

/// The war-room links a message shows, in its content as posted and after every edit.
fn war_room_links(message: &SimMessage) -> Vec<String> {
    let mut links = Vec::new();
    for content in std::iter::once(&message.first_content)
        .chain(message.edits.iter().map(|(_, c)| c))
        .chain([&message.content])
    {
        collect_war_rooms(content, &mut links);
    }
    links.sort();
    links.dedup();
    links
}

fn collect_war_rooms(value: &serde_json::Value, links: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            let text = map.get("text").and_then(|t| t.as_str()).unwrap_or_default();
            if text.contains("war room")
                && let Some(link) = map.get("link").and_then(|l| l.as_str())
            {
                links.push(link.to_owned());
            }
            map.values().for_each(|v| collect_war_rooms(v, links));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_war_rooms(v, links)),
        _ => {}
    }
}

/// The war-room links of pipeline `number`'s card in `to_jid` and its thread replies.
fn links_of(sim: &Simulator, to_jid: &str, number: u64) -> Vec<String> {
    let card = card_of(sim, to_jid, number);
    let mut links = war_room_links(&card);
    for reply in sim.channel(to_jid) {
        if reply.reply_to.as_deref() == Some(card.message_id.as_str()) {
            links.extend(war_room_links(&reply));
        }
    }
    links.sort();
    links.dedup();
    links
}

/// Waits (at most `secs` real seconds) until `done`.
async fn wait_for(what: &str, secs: u64, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether pipeline `number`'s card in `to_jid` shows `head` (as posted or edited to).
fn shows(sim: &Simulator, to_jid: &str, number: u64, head: &str) -> bool {
    let sub_head = format!("Pipeline #{number}");
    sim.channel(to_jid).iter().any(|m| {
        m.content["head"]["sub_head"]["text"] == sub_head
            && m.content["head"]["text"]
                .as_str()
                .is_some_and(|h| h.starts_with(head))
    })
}

/// War rooms on failures of `main` to #ci; every branch's failures to #releases, without.
const WAR_ROOM_SUBSCRIPTIONS: &str = r#"
[[subscription]]
repository = "{web}/acme/api"
branches = ["main"]
events = ["all"]
channels = ["ci"]
# meeting_on: set once [zoom.events] is there

[[subscription]]
repository = "{web}/acme/api"
events = ["failed", "fixed"]
channels = ["releases"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_streak_gets_one_meeting_whose_start_link_shows_nowhere() {
    let scenario = Scenario {
        repos: vec![acme_pipelines(
            "api",
            vec![
                build(1, "main", "Priya Raman", 5.0, Failed),
                build(2, "main", "Priya Raman", 40.0, Failed),
                build(3, "feature/x", "Tom Okafor", 41.0, Failed),
                build(4, "main", "Priya Raman", 60.0, Successful),
                build(5, "main", "Tom Okafor", 80.0, Failed),
                build(6, "main", "Tom Okafor", 100.0, Error),
            ],
        )],
    };
    let mut h = harness(scenario, WAR_ROOM_SUBSCRIPTIONS, "").await;
    with_war_rooms(&mut h);
    // The real binary, its log at debug level: the start link must not show there either.
    let log = h.dir.path().join("bbzoom.log");
    let config = h.config_path();
    let child = spawn_daemon(&config, &log, &[("RUST_LOG", "debug")]);
    wait_for("the first war room", 60, || {
        shows(&h.sim, CI, 1, "❌ FAILED")
    })
    .await;
    assert!(!links_of(&h.sim, CI, 1).is_empty());
    // Stopped and started again: the streak's meeting is found in the store.
    sigterm(child, &log).await;
    let child = spawn_daemon(&config, &log, &[("RUST_LOG", "debug")]);
    wait_for("the last failure's card", 60, || {
        shows(&h.sim, CI, 6, "❌ STILL FAILING") && shows(&h.sim, RELEASES, 6, "❌")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(child, &log).await;

    let meetings = h.sim.meetings();
    assert_eq!(
        meetings.len(),
        2,
        "one per failing streak of main: {meetings:?}"
    );
    for meeting in &meetings {
        assert_eq!(meeting.meeting_type, 1, "an instant meeting");
        assert_eq!(
            meeting.host_id, "sim-admin-user",
            "[zoom.events] user hosts"
        );
        assert_eq!(
            meeting.topic,
            "bbzoom war room: acme/api main (pipeline) is failing"
        );
    }
    let (first, second) = (&meetings[0].join_url, &meetings[1].join_url);
    for (number, link) in [(1, first), (2, first), (5, second), (6, second)] {
        assert_eq!(
            links_of(&h.sim, CI, number),
            std::slice::from_ref(link),
            "#{number} in #ci"
        );
    }
    for number in [1, 2, 3, 5, 6] {
        assert!(
            links_of(&h.sim, RELEASES, number).is_empty(),
            "#{number}: #releases wants no war room"
        );
    }
    assert!(links_of(&h.sim, CI, 4).is_empty(), "a fix has none");

    // The host's start link went nowhere: no message, no log line, no byte of the store.
    let secrets: Vec<&str> = meetings
        .iter()
        .map(|m| {
            m.start_url
                .split("zak=")
                .nth(1)
                .expect("a start link's key")
        })
        .collect();
    for channel in [CI, RELEASES, ALERTS] {
        for message in h.sim.channel(channel) {
            let shown = format!(
                "{:?} {:?} {:?}",
                message.first_content, message.edits, message.content
            );
            for secret in &secrets {
                assert!(!shown.contains(secret), "start link in {channel}: {shown}");
            }
        }
    }
    let logged = log_text(&log);
    assert!(logged.contains("war room created"), "{logged}");
    for secret in &secrets {
        assert!(!logged.contains(secret), "start link in the log");
    }
    let mut files = vec![h.config.daemon.state_dir.clone()];
    let mut store_bytes = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            store_bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    let store_text = String::from_utf8_lossy(&store_bytes);
    assert!(store_text.contains(first.as_str()), "the join link is kept");
    for secret in &secrets {
        assert!(!store_text.contains(secret), "start link in the store");
    }
    let store = bbzoom::store::Store::open(&h.config.daemon.state_dir).unwrap();
    assert_eq!(store.outbox_len(), 0, "everything delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_zoom_will_not_create_never_holds_a_card_back() {
    let scenario = Scenario {
        repos: vec![acme_pipelines(
            "api",
            vec![
                build(1, "main", "Priya Raman", 5.0, Failed),
                build(2, "main", "Priya Raman", 30.0, Failed),
                build(3, "main", "Priya Raman", 55.0, Successful),
                build(4, "main", "Priya Raman", 80.0, Failed),
                build(5, "main", "Priya Raman", 105.0, Successful),
                build(6, "main", "Priya Raman", 130.0, Failed),
            ],
        )],
    };
    let mut h = harness(scenario, WAR_ROOM_SUBSCRIPTIONS, "").await;
    with_war_rooms(&mut h);
    // Zoom fails every try at #1's meeting: the card goes out without it.
    h.sim.fail_next_meetings(3, SimMeetingFault::Unavailable);
    let daemon = h.run_daemon();
    wait_for("#1's failure", 30, || shows(&h.sim, CI, 1, "❌ FAILED")).await;
    assert!(links_of(&h.sim, CI, 1).is_empty());
    // The next card of the streak tries again, and gets it.
    wait_for("#2's failure", 30, || {
        shows(&h.sim, CI, 2, "❌ STILL FAILING")
    })
    .await;
    assert_eq!(links_of(&h.sim, CI, 2).len(), 1);
    // A Retry-After longer than a card is held: given up at once.
    h.sim.fail_next_meetings(
        1,
        SimMeetingFault::RateLimited {
            retry_after: Some("3600".into()),
        },
    );
    wait_for("#4's failure", 30, || shows(&h.sim, CI, 4, "❌ FAILED")).await;
    assert!(links_of(&h.sim, CI, 4).is_empty());
    // A short one is waited out (1 s: within the 30 s a card is held, compressed to 1.5 s).
    h.sim.fail_next_meetings(
        1,
        SimMeetingFault::RateLimited {
            retry_after: Some("1".into()),
        },
    );
    h.wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    daemon.stop().await;
    assert_eq!(
        links_of(&h.sim, CI, 6).len(),
        1,
        "#6, after a 1 s Retry-After"
    );
    let meetings = h.sim.meetings();
    assert_eq!(meetings.len(), 2, "#1's streak's, on #2, and #6's");
    assert_eq!(links_of(&h.sim, CI, 2), [meetings[0].join_url.clone()]);
    assert_eq!(links_of(&h.sim, CI, 6), [meetings[1].join_url.clone()]);
    // Every failure was told, link or not.
    for (number, head) in [(1, "❌ FAILED"), (4, "❌ FAILED"), (6, "❌ FAILED")] {
        assert!(shows(&h.sim, CI, number, head), "#{number}");
    }
}

/// `meeting_on = ["still_failing"]`: a war room once a branch failed twice in a row, forgotten
/// when it is fixed, so the next streak gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_war_room_on_still_failing_is_forgotten_when_the_branch_is_fixed() {
    let scenario = Scenario {
        repos: vec![acme_pipelines(
            "api",
            vec![
                build(1, "main", "Priya Raman", 5.0, Failed),
                build(2, "main", "Priya Raman", 25.0, Failed),
                build(3, "main", "Priya Raman", 45.0, Failed),
                build(4, "main", "Priya Raman", 65.0, Successful),
                build(5, "main", "Priya Raman", 85.0, Failed),
                build(6, "main", "Priya Raman", 105.0, Failed),
            ],
        )],
    };
    let mut h = harness(scenario, WAR_ROOM_SUBSCRIPTIONS, "").await;
    with_events(&mut h);
    edit(
        &mut h,
        "# meeting_on: set once [zoom.events] is there",
        "meeting_on = [\"still_failing\"]",
    );
    let daemon = h.run_daemon();
    h.wait_caught_up(&daemon.store, Duration::from_secs(60))
        .await;
    daemon.stop().await;

    let meetings = h.sim.meetings();
    assert_eq!(meetings.len(), 2, "{meetings:?}");
    let (first, second) = (&meetings[0].join_url, &meetings[1].join_url);
    for (number, links) in [
        (1, vec![]),
        (2, vec![first.clone()]),
        (3, vec![first.clone()]),
        (4, vec![]),
        (5, vec![]),
        (6, vec![second.clone()]),
    ] {
        assert_eq!(links_of(&h.sim, CI, number), links, "#{number}");
    }
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
fn war_rooms_are_optional_and_hosted_by_the_events_user_unless_told() {
    let config = Config::parse(Path::new(PATH), BASE).unwrap();
    assert!(config.zoom.meetings.is_none());
    assert!(config.subscriptions[0].meeting_on.is_empty());
    let text = replaced(
        BASE,
        "channels = [\"ci\"]\n\n",
        "channels = [\"ci\"]\nmeeting_on = [\"failed\"]\n\n",
    );
    let config = Config::parse(Path::new(PATH), &format!("{text}{EVENTS}")).unwrap();
    assert_eq!(
        config.zoom.meetings.as_ref().map(|m| m.host.as_str()),
        Some("ci-admin@example.com")
    );
    let subscription = &config.subscriptions[0];
    assert_eq!(
        subscription.meeting_on,
        [bbzoom::domain::EventKind::Failed].into()
    );
    assert!(subscription.describe().ends_with("; war room on failed"));
    let hosted = format!("{text}{EVENTS}[zoom.meetings]\nhost = \"oncall@example.com\"\n");
    let config = Config::parse(Path::new(PATH), &hosted).unwrap();
    assert_eq!(config.zoom.meetings.unwrap().host, "oncall@example.com");
}

#[test]
fn broken_war_rooms() {
    let meeting_on = |events: &str, meeting_on: &str| {
        replaced(
            BASE,
            "channels = [\"ci\"]\n\n",
            &format!("channels = [\"ci\"]\n{events}meeting_on = {meeting_on}\n\n"),
        )
    };
    refused(
        &meeting_on("", "[\"failed\"]"),
        21,
        "subscription[0].meeting_on",
        "this file has no [zoom.events]: add it",
    );
    let with_events = |text: String| format!("{text}{EVENTS}");
    refused(
        &with_events(meeting_on("", "[\"succeeded\"]")),
        21,
        "subscription[0].meeting_on[0]",
        "\"succeeded\" is no failure",
    );
    refused(
        &with_events(meeting_on("", "[\"faild\"]")),
        21,
        "subscription[0].meeting_on[0]",
        "is no event (did you mean \"failed\"?)",
    );
    refused(
        &with_events(meeting_on("events = [\"fixed\"]\n", "[\"failed\"]")),
        22,
        "subscription[0].meeting_on[0]",
        "does not announce failed",
    );
    refused(
        &with_events(meeting_on("", "[]")),
        21,
        "subscription[0].meeting_on",
        "the list is empty",
    );
    refused(
        &format!("{BASE}[zoom.meetings]\nhost = \"oncall@example.com\"\n"),
        22,
        "zoom.meetings",
        "this file has no [zoom.events]",
    );
    refused(
        &format!("{BASE}{EVENTS}[zoom.meetings]\nhost = \"on call\"\n"),
        29,
        "zoom.meetings.host",
        "neither a Zoom user id nor an e-mail address",
    );
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
