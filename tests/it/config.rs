//! Configuration loading, from the outside: the shipped example validates, and each kind of
//! mistake an admin can make is reported at the right line and key with a useful message.
//!
//! The broken configurations are edits of one valid base (`BASE`), so each row changes one
//! thing and states only what it expects; see [`check`].

use crate::common::replaced;
use bbzoom::config::{
    BudgetOrigin, BudgetSpec, Channel, ChatbotConfig, Config, DeliveryConfig, Destination,
    PollingConfig, RateLimit, RefFilter, SourceKind, Style, WebhookFormat,
};
use bbzoom::domain::{BuildRef, CLOUD, EventKind, RepoId};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// A minimal valid configuration. Line numbers in the table below refer to it.
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

[zoom.channels.releases]
to_jid = "rel@conference.xmpp.zoom.us"

[[subscription]]
repository = "https://bitbucket.org/acme/api"
channels = ["ci"]
"#;

/// Where the test configurations pretend to live.
const PATH: &str = "/etc/bbzoom/config.toml";

/// A Data Center instance, for [`with_datacenter`].
const CORP: &str = r#"[bitbucket.datacenter.corp]
url = "https://git.example.com"
credential = "corp-token"
"#;

/// A repository on [`CORP`].
const PLATFORM: &str = "https://git.example.com/projects/PLAT/repos/platform/browse";

/// `BASE` edited as by [`replaced`].
fn edit(from: &str, to: &str) -> String {
    replaced(BASE, from, to)
}

/// `BASE` with `tables` inserted at line 9, before `[zoom.chatbot]`; the lines of
/// `[zoom.chatbot]` and below move down by the lines inserted plus one.
fn with_tables(tables: &str) -> String {
    edit("[zoom.chatbot]", &format!("{tables}\n[zoom.chatbot]"))
}

/// `BASE` with the [`CORP`] instance (lines 9 to 11), its subscription moved to line 25.
fn with_datacenter() -> String {
    with_tables(CORP)
}

/// `text` with a `[[subscription]]` appended: `repository`, then `keys`, then channels ci.
fn subscribe(text: &str, repository: &str, keys: &str) -> String {
    format!("{text}\n[[subscription]]\nrepository = \"{repository}\"\n{keys}channels = [\"ci\"]\n")
}

/// An Incoming Webhook channel `alerts`, for [`with_webhook`].
const WEBHOOK_URL: &str = "https://integrations.zoom.us/chat/webhooks/incomingwebhook/abc";

/// `BASE` with the channel `alerts` (an Incoming Webhook) inserted before the subscription:
/// its header on line 21, `webhook_url` on 22, `credential` on 23, then `keys` from line 24.
fn with_webhook(keys: &str) -> String {
    edit(
        "[[subscription]]",
        &format!(
            "[zoom.channels.alerts]\nwebhook_url = \"{WEBHOOK_URL}\"\ncredential = \
             \"alerts-webhook\"\n{keys}\n[[subscription]]"
        ),
    )
}

/// The `[zoom.chatbot]` table of `BASE` (lines 9 to 14), for removing it.
const CHATBOT: &str = "[zoom.chatbot]
credential = \"zoom-bot\"
account_id = \"AbCdEf\"
robot_jid = \"v1bot@xmpp.zoom.us\"
user_jid = \"user@xmpp.zoom.us\"

";

/// The `[zoom.chatbot]` of a configuration that has one.
fn chatbot(config: &Config) -> &ChatbotConfig {
    config
        .zoom
        .chatbot
        .as_ref()
        .expect("[zoom.chatbot] is configured")
}

fn parse(text: &str) -> Config {
    Config::parse(Path::new(PATH), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Asserts that `toml` is rejected, at `line` and `key`, with a message containing `fragment`.
#[track_caller]
fn check(toml: &str, line: Option<usize>, key: Option<&str>, fragment: &str) {
    let err = match Config::parse(Path::new(PATH), toml) {
        Ok(_) => panic!("accepted, expected an error containing {fragment:?}:\n{toml}"),
        Err(err) => err,
    };
    let text = err.to_string();
    assert!(
        !text.contains("s3cr3t"),
        "{text:?} echoes a value that might be a secret"
    );
    assert_eq!(err.line(), line, "line of: {text}");
    assert_eq!(err.key(), key, "key of: {text}");
    assert!(
        text.contains(fragment),
        "{text:?}\ndoes not contain {fragment:?}"
    );
    assert!(text.starts_with(PATH), "{text:?} does not name the file");
}

#[test]
fn base_is_valid_and_gets_defaults() {
    let config = parse(BASE);
    assert_eq!(config.daemon.state_dir, Path::new("/etc/bbzoom/state"));
    assert_eq!(config.daemon.request_timeout, Duration::from_secs(20));
    assert_eq!(
        config.bitbucket.api_url.as_str(),
        "https://api.bitbucket.org/2.0"
    );
    assert_eq!(config.bitbucket.web_url.as_str(), "https://bitbucket.org/");
    assert_eq!(
        config.bitbucket.oauth_url.as_str(),
        "https://bitbucket.org/site/oauth2/access_token"
    );
    assert_eq!(config.bitbucket.credential.as_deref(), Some("acme-ci"));
    assert!(config.bitbucket.datacenter.is_empty());
    assert!(config.bitbucket.budgets.is_empty());
    assert_eq!(
        config.zoom.oauth_url.as_str(),
        "https://zoom.us/oauth/token"
    );
    assert_eq!(config.zoom.api_url.as_str(), "https://api.zoom.us/v2");
    assert_eq!(chatbot(&config).rate_limit.requests, 20);
    assert_eq!(chatbot(&config).rate_limit.per, Duration::from_secs(1));
    assert_eq!(
        chatbot(&config).daily_limit,
        None,
        "pro, the default plan, has no daily cap"
    );
    assert_eq!(
        config.zoom.channels["ci"],
        Channel {
            name: "ci".into(),
            destination: Destination::Chatbot {
                to_jid: "ci@conference.xmpp.zoom.us".into()
            },
            style: Style::UpdateAndReply,
        }
    );
    assert_eq!(
        config.zoom.delivery,
        DeliveryConfig {
            max_age: Duration::from_secs(24 * 3600),
            fold_after: 10,
        }
    );
    let sub = &config.subscriptions[0];
    assert_eq!(sub.repo, RepoId::on(CLOUD, "acme", "api"));
    assert_eq!(sub.sources, [SourceKind::Pipelines]);
    assert_eq!(sub.credentials, ["acme-ci"]);
    assert_eq!(
        sub.events,
        BTreeSet::from([EventKind::Failed, EventKind::Fixed])
    );
    assert_eq!(sub.refs, RefFilter::everything());
    assert!(sub.wants(&branch("feature/x/y"), EventKind::Failed));
    assert!(sub.wants(&BuildRef::Tag("v1".into()), EventKind::Failed));
    assert!(sub.wants(&BuildRef::Commit, EventKind::Failed));
    assert!(!sub.wants(&branch("main"), EventKind::Started));
    assert_eq!(config.watches.len(), 1);
}

fn branch(name: &str) -> BuildRef {
    BuildRef::Branch(name.into())
}

#[test]
fn branches_tags_and_commits_filter_what_each_subscription_takes() {
    let text = edit(
        "channels = [\"ci\"]",
        "branches = [\"main\"]\ntags = [\"v*\", \"release-*\"]\ncommits = false\nchannels = [\"ci\"]",
    );
    let sub = &parse(&text).subscriptions[0];
    assert!(sub.wants(&branch("main"), EventKind::Failed));
    assert!(!sub.wants(&branch("develop"), EventKind::Failed));
    assert!(sub.wants(&BuildRef::Tag("v1.2.0".into()), EventKind::Failed));
    assert!(sub.wants(&BuildRef::Tag("release-7".into()), EventKind::Failed));
    assert!(!sub.wants(&BuildRef::Tag("nightly".into()), EventKind::Failed));
    assert!(!sub.wants(&BuildRef::Commit, EventKind::Failed));
    assert_eq!(
        sub.refs.to_string(),
        "branches main; tags v*, release-*; no bare commits"
    );
    // Only branches filtered: what was not filtered out, every tag and commit, is taken.
    let text = edit(
        "channels = [\"ci\"]",
        "branches = [\"main\"]\nchannels = [\"ci\"]",
    );
    let sub = &parse(&text).subscriptions[0];
    assert!(sub.wants(&BuildRef::Tag("anything".into()), EventKind::Failed));
    assert!(sub.wants(&BuildRef::Commit, EventKind::Failed));
    // An empty list takes none of its kind: a subscription of tags only.
    let text = edit(
        "channels = [\"ci\"]",
        "branches = []\ntags = [\"v*\"]\nchannels = [\"ci\"]",
    );
    let sub = &parse(&text).subscriptions[0];
    assert!(!sub.wants(&branch("main"), EventKind::Failed));
    assert!(sub.wants(&BuildRef::Tag("v2".into()), EventKind::Failed));
}

#[test]
fn a_status_pipelines_posts_is_told_only_where_the_run_is_not_told_as_a_pipeline() {
    let text = format!(
        "{}\n[[subscription]]\nrepository = \"https://bitbucket.org/acme/api\"\n\
         source = \"pipelines\"\nbranches = [\"main\"]\nevents = [\"failed\"]\n\
         channels = [\"ci\"]\n",
        edit(
            r#"["ci"]"#,
            "[\"ci\", \"releases\"]\nsource = \"statuses\"\nevents = [\"all\"]"
        )
    );
    let config = parse(&text);
    let statuses = &config.watches[0];
    assert_eq!(statuses.source, SourceKind::Statuses);
    let to = |name: &str, event| -> Vec<&str> {
        statuses
            .channels_for_pipeline_status(&branch(name), event)
            .into_iter()
            .collect()
    };
    // On main #ci hears the run from the pipelines subscription (whatever its events): only
    // #releases gets the status; on another branch #ci does not hear the run, so it does.
    assert_eq!(to("main", EventKind::Succeeded), ["releases"]);
    assert_eq!(to("dev", EventKind::Succeeded), ["ci", "releases"]);
    // An outside CI's status goes to both, wherever.
    let outside: Vec<&str> = statuses
        .channels_for(&branch("main"), EventKind::Succeeded)
        .into_iter()
        .collect();
    assert_eq!(outside, ["ci", "releases"]);
    // #releases hears main's Pipelines statuses; with #ci alone, nobody would.
    assert!(statuses.hears_pipeline_statuses(&branch("main")));
    let ci_only = parse(&text.replacen("[\"ci\", \"releases\"]", "[\"ci\"]", 1));
    assert_eq!(ci_only.watches[0].source, SourceKind::Statuses);
    assert!(!ci_only.watches[0].hears_pipeline_statuses(&branch("main")));
    assert!(ci_only.watches[0].hears_pipeline_statuses(&branch("dev")));
}

#[test]
fn several_subscriptions_of_one_repository_and_both_sources() {
    let text = format!(
        "{}\n[[subscription]]\nrepository = \"https://bitbucket.org/Acme/API.git\"\n\
         branches = [\"release/*\"]\nevents = [\"all\"]\nchannels = [\"releases\", \"ci\"]\n",
        edit(
            r#"["ci"]"#,
            "[\"ci\"]\nsource = [\"statuses\", \"pipelines\"]"
        )
    );
    let config = parse(&text);
    assert_eq!(
        config.subscriptions[0].sources,
        [SourceKind::Pipelines, SourceKind::Statuses]
    );
    // Each source polled once, serving both subscriptions where they read it.
    let watches: Vec<(SourceKind, usize, usize)> = config
        .watches
        .iter()
        .map(|w| (w.source, w.subscriptions.len(), w.pipelines.len()))
        .collect();
    assert_eq!(
        watches,
        [(SourceKind::Pipelines, 2, 2), (SourceKind::Statuses, 1, 2)]
    );
    let pipelines = &config.watches[0];
    // A channel both name gets the card once; each takes what its own filters take.
    let to = |git_ref: &BuildRef, event| -> Vec<&str> {
        pipelines.channels_for(git_ref, event).into_iter().collect()
    };
    assert_eq!(
        to(&branch("release/2"), EventKind::Failed),
        ["ci", "releases"]
    );
    assert_eq!(
        to(&branch("release/2"), EventKind::Started),
        ["ci", "releases"]
    );
    assert_eq!(to(&branch("main"), EventKind::Failed), ["ci"]);
    assert_eq!(
        to(&branch("main"), EventKind::Succeeded),
        Vec::<&str>::new()
    );
    // Both send release branches to #ci, one with failed and fixed, the other all.
    let overlaps = config.overlaps();
    assert_eq!(overlaps.len(), 1, "{overlaps:?}");
    assert_eq!(
        (
            overlaps[0].first,
            overlaps[0].second,
            overlaps[0].channel.as_str()
        ),
        (0, 1, "ci")
    );
    assert_eq!(overlaps[0].example, "branch release/");
    // The same events, or disjoint branches, are no overlap.
    let same_events = text.replace("events = [\"all\"]", "events = [\"failed\", \"fixed\"]");
    assert!(parse(&same_events).overlaps().is_empty());
    let apart = text.replacen(
        "source = [",
        "branches = [\"main\"]\ntags = []\ncommits = false\nsource = [",
        1,
    );
    assert!(
        parse(&apart).overlaps().is_empty(),
        "{:?}",
        parse(&apart).overlaps()
    );
}

#[test]
fn polling_defaults_and_overrides() {
    let minute = Duration::from_secs(60);
    assert_eq!(
        parse(BASE).polling,
        PollingConfig {
            hot: Duration::from_secs(15),
            warm: minute,
            cold: 10 * minute,
            warm_for: 30 * minute,
            settle: 10 * minute,
            scan: Some(Duration::from_secs(30)),
        }
    );
    // Equal intervals are in order; unset ones keep their defaults.
    let config = parse(&with_tables(
        "[polling]\nhot = \"1m\"\ncold = \"1m\"\nsettle = \"2h\"\nscan = \"off\"\n",
    ));
    assert_eq!(
        config.polling,
        PollingConfig {
            hot: minute,
            warm: minute,
            cold: minute,
            warm_for: 30 * minute,
            settle: 120 * minute,
            scan: None,
        }
    );
}

#[test]
fn datacenter_subscription_resolves_instance_credential_and_source() {
    let config = parse(&replaced(
        &with_datacenter(),
        "https://bitbucket.org/acme/api",
        PLATFORM,
    ));
    let corp = &config.bitbucket.datacenter["corp"];
    assert_eq!(
        (
            corp.name.as_str(),
            corp.url.as_str(),
            corp.credential.as_str()
        ),
        ("corp", "https://git.example.com/", "corp-token")
    );
    let sub = &config.subscriptions[0];
    assert_eq!(sub.url, PLATFORM);
    assert_eq!(sub.repo, RepoId::on("corp", "PLAT", "platform"));
    assert_eq!(sub.credentials, ["corp-token"]);
    assert_eq!(sub.sources, [SourceKind::Statuses]);
}

#[test]
fn subscription_credential_overrides_the_default() {
    let text = subscribe(
        &with_datacenter(),
        "https://bitbucket.org/acme/mobile",
        "credential = \"acme-mobile\"\n",
    );
    let text = subscribe(
        &text,
        "https://git.example.com/scm/plat/tools.git",
        "credential = \"plat-token\"\n",
    );
    let resolved: Vec<(String, String)> = parse(&text)
        .subscriptions
        .into_iter()
        .map(|s| (s.repo.to_string(), s.credentials.join(",")))
        .collect();
    let expected = [
        ("acme/api", "acme-ci"),
        ("acme/mobile", "acme-mobile"),
        ("PLAT/tools", "plat-token"),
    ];
    assert_eq!(
        resolved,
        expected.map(|(r, c)| (r.to_owned(), c.to_owned()))
    );

    // Without a default, [bitbucket] itself may go.
    let own_only = replaced(
        &edit("[bitbucket]\ncredential = \"acme-ci\"\n", ""),
        "channels = [\"ci\"]",
        "credential = \"acme-ci\"\nchannels = [\"ci\"]",
    );
    let config = parse(&own_only);
    assert_eq!(config.bitbucket.credential, None);
    assert_eq!(config.subscriptions[0].credentials, ["acme-ci"]);
}

#[test]
fn budget_for_prefers_the_override_then_the_instance_default() {
    let text = with_tables(&format!(
        "{CORP}\n[bitbucket.budgets]\nacme-mobile = {{ requests = 100, per = \"1h\" }}\n"
    ));
    let text = subscribe(&text, PLATFORM, "");
    let text = subscribe(
        &text,
        "https://bitbucket.org/acme/mobile",
        "credential = \"acme-mobile\"\n",
    );
    let config = parse(&text);
    let hour = Duration::from_secs(3600);
    let limit = |requests| RateLimit {
        requests,
        per: hour,
    };
    let budget = |start, ceiling, origin| BudgetSpec {
        start: limit(start),
        ceiling,
        origin,
    };
    // Written: a ceiling.
    assert_eq!(
        config.budget_for("acme-mobile"),
        budget(100, 100, BudgetOrigin::Configured)
    );
    assert_eq!(config.bitbucket.budgets["acme-mobile"], limit(100));
    // Data Center's default is a ceiling too; Cloud's follows Bitbucket's header from the
    // base 1,000 an hour, less a tenth, up to the documented 10,000, less a tenth.
    assert_eq!(
        config.budget_for("corp-token"),
        budget(3600, 3600, BudgetOrigin::Default)
    );
    assert_eq!(
        config.budget_for("acme-ci"),
        budget(900, 9000, BudgetOrigin::Default)
    );
    // A compressed run keeps a default in its shorter hour, and a written budget as written.
    let minute = Duration::from_secs(60);
    let compressed = config.budget_for("acme-ci").in_hour(minute);
    assert_eq!(
        (compressed.start.requests, compressed.start.per),
        (900, minute)
    );
    assert_eq!(
        config.budget_for("acme-mobile").in_hour(minute),
        config.budget_for("acme-mobile")
    );
    // An instance's own rate_limit is written too: a ceiling.
    let written = parse(&edit(
        "credential = \"acme-ci\"\n",
        "credential = \"acme-ci\"\nrate_limit = { requests = 500, per = \"1h\" }\n",
    ));
    assert_eq!(
        written.budget_for("acme-ci"),
        budget(500, 500, BudgetOrigin::Configured)
    );
}

#[test]
fn plan_and_rate_limit_override() {
    let free = edit("user_jid", "plan = \"free\"\nuser_jid");
    let config = parse(&free);
    assert_eq!(chatbot(&config).rate_limit.requests, 2);

    let custom = edit(
        "user_jid",
        "plan = \"free\"\nrate_limit = { requests = 5, per = \"2s\" }\nuser_jid",
    );
    let config = parse(&custom);
    assert_eq!(chatbot(&config).rate_limit.requests, 5);
    assert_eq!(chatbot(&config).rate_limit.per, Duration::from_secs(2));
}

#[test]
fn daily_limit_by_plan_and_override() {
    let daily = |text: &str| chatbot(&parse(text)).daily_limit;
    assert_eq!(
        daily(&edit("user_jid", "plan = \"free\"\nuser_jid")),
        Some(2000)
    );
    assert_eq!(daily(&edit("user_jid", "plan = \"pro\"\nuser_jid")), None);
    assert_eq!(
        daily(&edit("user_jid", "plan = \"business\"\nuser_jid")),
        None
    );
    assert_eq!(
        daily(&edit("user_jid", "daily_limit = 500\nuser_jid")),
        Some(500)
    );
    assert_eq!(
        daily(&edit(
            "user_jid",
            "plan = \"free\"\ndaily_limit = 5000\nuser_jid"
        )),
        Some(5000)
    );
}

#[test]
fn channel_styles_and_delivery_overrides() {
    let styles = [
        ("update", Style::Update),
        ("post", Style::Post),
        ("update+reply", Style::UpdateAndReply),
    ];
    for (name, style) in styles {
        let text = edit(
            "to_jid = \"ci@conference.xmpp.zoom.us\"",
            &format!("to_jid = \"ci@conference.xmpp.zoom.us\"\nstyle = \"{name}\""),
        );
        assert_eq!(parse(&text).zoom.channels["ci"].style, style, "{name}");
    }
    let config = parse(&with_tables(
        "[zoom.delivery]\nmax_age = \"2h\"\nfold_after = 3\n",
    ));
    assert_eq!(
        config.zoom.delivery,
        DeliveryConfig {
            max_age: Duration::from_secs(7200),
            fold_after: 3,
        }
    );
}

#[test]
fn webhook_channels() {
    let config = parse(&with_webhook(""));
    let alerts = &config.zoom.channels["alerts"];
    assert_eq!(
        alerts.destination,
        Destination::Webhook {
            url: WEBHOOK_URL.parse().unwrap(),
            credential: "alerts-webhook".into(),
            format: WebhookFormat::Full,
        }
    );
    assert_eq!(alerts.style, Style::Post, "webhooks cannot edit");

    let config = parse(&with_webhook("format = \"message\"\nstyle = \"post\"\n"));
    let alerts = &config.zoom.channels["alerts"];
    assert!(matches!(
        alerts.destination,
        Destination::Webhook {
            format: WebhookFormat::Message,
            ..
        }
    ));
    assert_eq!(alerts.style, Style::Post);
}

#[test]
fn webhook_only_config_needs_no_chatbot() {
    let text = replaced(
        &edit(CHATBOT, ""),
        "to_jid = \"ci@conference.xmpp.zoom.us\"",
        &format!("webhook_url = \"{WEBHOOK_URL}\"\ncredential = \"ci-webhook\""),
    );
    let text = replaced(
        &text,
        "to_jid = \"rel@conference.xmpp.zoom.us\"",
        "webhook_url = \"http://127.0.0.1:9000/hook/rel\"\ncredential = \"rel-webhook\"",
    );
    let config = parse(&text);
    assert!(config.zoom.chatbot.is_none());
    let credentials: Vec<&str> = config
        .zoom
        .channels
        .values()
        .map(|c| match &c.destination {
            Destination::Webhook { credential, .. } => credential.as_str(),
            _ => panic!("{c:?} is not a webhook"),
        })
        .collect();
    assert_eq!(credentials, ["ci-webhook", "rel-webhook"]);
    assert_eq!(config.subscriptions[0].channels, ["ci"]);
}

#[test]
fn example_file_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let dir = path.parent().unwrap();
    assert_eq!(config.source, path);
    assert_eq!(config.daemon.state_dir, Path::new("/var/lib/bbzoom"));
    assert_eq!(config.daemon.credentials_file, dir.join("credentials.age"));
    assert_eq!(config.daemon.identity_file, dir.join("identity.txt"));
    assert_eq!(
        config.polling,
        parse(BASE).polling,
        "the example shows the defaults"
    );
    assert_eq!(config.bitbucket.credential.as_deref(), Some("acme-ci"));
    assert_eq!(config.budget_for("acme-ci").start.requests, 900);
    assert_eq!(config.budget_for("corp-token").start.requests, 3600);
    assert_eq!(chatbot(&config).rate_limit.requests, 20);
    let channels: Vec<&str> = config.zoom.channels.keys().map(String::as_str).collect();
    assert_eq!(channels, ["ci", "releases"]);
    let watches: Vec<(&RepoId, SourceKind, &str, usize)> = config
        .watches
        .iter()
        .map(|w| {
            (
                &w.repo,
                w.source,
                w.credential.as_str(),
                w.subscriptions.len(),
            )
        })
        .collect();
    let cloud = |slug: &str| RepoId::on(CLOUD, "acme", slug);
    assert_eq!(
        watches,
        [
            (&cloud("api"), SourceKind::Pipelines, "acme-ci", 2),
            (&cloud("web-app"), SourceKind::Pipelines, "acme-ci", 1),
            (&cloud("payments"), SourceKind::Pipelines, "acme-ci", 1),
            (&cloud("payments"), SourceKind::Statuses, "acme-ci", 1),
            (&cloud("mobile"), SourceKind::Statuses, "acme-mobile", 1),
            (
                &RepoId::on("corp", "PLAT", "platform"),
                SourceKind::Statuses,
                "corp-token",
                1
            ),
        ]
    );
    let api = &config.subscriptions[0];
    assert!(api.wants(&branch("release/1.2"), EventKind::StillFailing));
    assert!(!api.wants(&branch("feature/x"), EventKind::Failed));
    assert!(api.wants(&BuildRef::Tag("v3".into()), EventKind::Failed));
    assert!(!api.wants(&BuildRef::Commit, EventKind::Failed));
    assert_eq!(
        config.subscriptions[1].events,
        BTreeSet::from(EventKind::ALL)
    );
    assert_eq!(config.subscriptions[2].channels, ["ci", "releases"]);
    assert!(config.overlaps().is_empty(), "{:?}", config.overlaps());
    assert_eq!(
        config.zoom.delivery,
        parse(BASE).zoom.delivery,
        "the example shows the defaults"
    );
    assert_eq!(chatbot(&config).daily_limit, None);
    assert_eq!(config.zoom.channels["ci"].style, Style::UpdateAndReply);

    // The commented-out webhook channel validates once uncommented.
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("# [zoom.channels.alerts]\n")
        .expect("the example shows a webhook channel");
    let block_len = text[start..].find("\n\n").expect("the block ends");
    let block = &text[start..start + block_len];
    let uncommented: String = block
        .lines()
        .map(|line| line.strip_prefix("# ").expect("every line commented out"))
        .collect::<Vec<_>>()
        .join("\n");
    let config = parse(&text.replacen(block, &uncommented, 1));
    assert!(matches!(
        config.zoom.channels["alerts"].destination,
        Destination::Webhook {
            format: WebhookFormat::Full,
            ..
        }
    ));
}

#[test]
fn unreadable_file_names_the_path() {
    let err = Config::load(Path::new("/nonexistent/bbzoom.toml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent/bbzoom.toml: cannot read"),
        "{text}"
    );
    assert_eq!((err.line(), err.key()), (None, None));
}

#[test]
fn display_is_file_line_column_key_message() {
    let err = Config::parse(Path::new(PATH), &edit(r#"["ci"]"#, r#"["ci", "ops"]"#)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/bbzoom/config.toml:23:19: subscription[0].channels[1]: unknown channel \"ops\"; \
         define it as [zoom.channels.ops] or use one of: ci, releases"
    );
}

#[test]
fn broken_configs() {
    // The metrics endpoint: an address and port, on loopback only.
    check(
        &edit("credentials =", "metrics = \"0.0.0.0:9464\"\ncredentials ="),
        Some(3),
        Some("daemon.metrics"),
        "0.0.0.0:9464 is not a loopback address",
    );
    check(
        &edit("credentials =", "metrics = \"9464\"\ncredentials ="),
        Some(3),
        Some("daemon.metrics"),
        "\"9464\" is not an address and port; write e.g. metrics = \"127.0.0.1:9464\"",
    );

    // TOML syntax.
    check(
        &edit("[daemon]", "[daemon"),
        Some(1),
        None,
        "invalid TOML: unclosed table",
    );
    check(
        &edit("identity =", "state_dir = \"again\"\nidentity ="),
        Some(4),
        None,
        "state_dir is defined twice",
    );

    // Unknown keys, with a guess when one is close.
    check(
        &edit("[bitbucket]", "[bitbucke]"),
        Some(6),
        Some("bitbucke"),
        "unknown key \"bitbucke\" at the top level; did you mean \"bitbucket\"? expected one of: \
         daemon, polling, bitbucket, zoom, subscription, people",
    );
    check(
        &edit("credentials =", "request_timout = \"30s\"\ncredentials ="),
        Some(3),
        Some("daemon.request_timout"),
        "unknown key \"request_timout\" in [daemon]; did you mean \"request_timeout\"? expected \
         one of: state_dir, request_timeout, credentials, identity",
    );
    check(
        &edit("credentials =", "poll_interval = \"30s\"\ncredentials ="),
        Some(3),
        Some("daemon.poll_interval"),
        "unknown key \"poll_interval\" in [daemon]; moved to [polling]; see hot, warm and cold",
    );
    check(
        &edit(
            "channels = [\"ci\"]",
            "channels = [\"ci\"]\nbranch = \"main\"",
        ),
        Some(24),
        Some("subscription[0].branch"),
        "unknown key \"branch\" in subscription[0]; did you mean \"branches\"?",
    );
    check(
        &edit("to_jid = \"ci@", "name = \"CI\"\nto_jid = \"ci@"),
        Some(16),
        Some("zoom.channels.ci.name"),
        "unknown key \"name\" in [zoom.channels.ci]; expected one of: to_jid",
    );

    // A Unix socket path is at most 107 bytes (99 with bind's staging suffix), whether set or
    // derived from state_dir.
    let long = "d".repeat(110);
    check(
        &edit(
            "credentials =",
            &format!("control_socket = \"/{long}\"\ncredentials ="),
        ),
        Some(3),
        Some("daemon.control_socket"),
        "longer than the 99 bytes its path may have; set [daemon] control_socket",
    );
    check(
        &edit("state_dir = \"state\"", &format!("state_dir = \"/{long}\"")),
        Some(2),
        Some("daemon.state_dir"),
        "control.sock longer than the 99 bytes",
    );

    // Wrong types.
    check(
        &edit("credentials =", "request_timeout = 30\ncredentials ="),
        Some(3),
        Some("daemon.request_timeout"),
        "expected a string, found integer `30`; write it like request_timeout = \"20s\"",
    );
    check(
        &edit(r#"channels = ["ci"]"#, r#"channels = "ci""#),
        Some(23),
        Some("subscription[0].channels"),
        "expected an array, found a string; write it like channels = [\"ci\"]",
    );
    check(
        &edit(
            "credentials =",
            "request_timeout = [\"s3cr3t\"]\ncredentials =",
        ),
        Some(3),
        Some("daemon.request_timeout"),
        "expected a string, found an array",
    );
    check(
        &edit(
            "credential = \"acme-ci\"",
            "credential = \"acme-ci\"\nrate_limit = { requests = \"s3cr3t\", per = \"1h\" }",
        ),
        Some(8),
        Some("bitbucket.rate_limit.requests"),
        "expected a whole number from 0 to 4294967295, found a string; write it like \
         requests = 900",
    );
    check(
        &edit("[[subscription]]", "[subscription]"),
        Some(21),
        Some("subscription"),
        "expected an array, found a table; write it like [[subscription]]",
    );

    // Missing required keys point at their table.
    check(
        &edit("credentials = \"credentials.age\"\n", ""),
        Some(1),
        Some("daemon.credentials"),
        "missing key \"credentials\" in [daemon]; add it, e.g. credentials = \"credentials.age\"",
    );
    check(
        &edit("channels = [\"ci\"]\n", ""),
        Some(21),
        Some("subscription[0].channels"),
        "missing key \"channels\" in subscription[0]",
    );
    check(
        &edit(
            "credential = \"acme-ci\"",
            "credential = \"acme-ci\"\nrate_limit = { requests = 5 }",
        ),
        Some(8),
        Some("bitbucket.rate_limit.per"),
        "missing key \"per\" in [bitbucket.rate_limit]",
    );
    check(
        &edit("state_dir = \"state\"", "state_dir = \"\""),
        Some(2),
        Some("daemon.state_dir"),
        "the value is empty",
    );

    // URLs.
    check(
        &edit(
            "[bitbucket]",
            "[bitbucket]\napi_url = \"api.bitbucket.org/2.0\"",
        ),
        Some(7),
        Some("bitbucket.api_url"),
        "invalid URL \"api.bitbucket.org/2.0\"",
    );
    check(
        &edit(
            "[bitbucket]",
            "[bitbucket]\nweb_url = \"ftp://bitbucket.org\"",
        ),
        Some(7),
        Some("bitbucket.web_url"),
        "\"ftp://bitbucket.org\" is not an http(s) URL",
    );
    check(
        &edit(
            "[bitbucket]",
            "[bitbucket]\napi_url = \"https://me:hunter2@api.bitbucket.org/2.0\"",
        ),
        Some(7),
        Some("bitbucket.api_url"),
        "contains a user name or password",
    );

    // Durations and rate limits.
    check(
        &with_tables("[polling]\nhot = \"30\"\n"),
        Some(10),
        Some("polling.hot"),
        "invalid duration \"30\"; write a number and a unit",
    );
    check(
        &edit("credentials =", "request_timeout = \"0s\"\ncredentials ="),
        Some(3),
        Some("daemon.request_timeout"),
        "must be greater than 0",
    );
    check(
        &edit(
            "credential = \"acme-ci\"",
            "credential = \"acme-ci\"\nrate_limit = { requests = 0, per = \"1h\" }",
        ),
        Some(8),
        Some("bitbucket.rate_limit.requests"),
        "at least 1 request",
    );
    check(
        &edit(
            "credential = \"acme-ci\"",
            "credential = \"acme-ci\"\nrate_limit = { requests = -5, per = \"1h\" }",
        ),
        Some(8),
        Some("bitbucket.rate_limit.requests"),
        "expected a whole number",
    );

    // Zoom.
    check(
        &edit("v1bot@xmpp.zoom.us", "v1bot@xmpp.zoom.com"),
        Some(12),
        Some("zoom.chatbot.robot_jid"),
        "\"v1bot@xmpp.zoom.com\" is not a valid JID: it must look like NAME@xmpp.zoom.us",
    );
    check(
        &edit("ci@conference.xmpp.zoom.us", "ci@xmpp.zoom.us"),
        Some(16),
        Some("zoom.channels.ci.to_jid"),
        "must look like NAME@conference.xmpp.zoom.us",
    );
    check(
        &edit("user_jid", "plan = \"enterprise\"\nuser_jid"),
        Some(13),
        Some("zoom.chatbot.plan"),
        "unknown Zoom plan \"enterprise\"; use one of: free, pro, business",
    );
    check(
        &edit("[zoom.channels.ci]", "[zoom.channels.\"ops team\"]"),
        Some(15),
        Some("zoom.channels.\"ops team\""),
        "a channel name may only contain",
    );
    check(
        &edit("to_jid = \"ci@conference.xmpp.zoom.us\"\n", ""),
        Some(15),
        Some("zoom.channels.ci"),
        "[zoom.channels.ci] has no destination; add to_jid = \"NAME@conference.xmpp.zoom.us\" \
         for a channel the chatbot posts to, or webhook_url = \"https://",
    );
    check(
        &edit("[zoom.chatbot]", "[zoom.chatbot]\n[daemon]"),
        Some(10),
        None,
        "daemon is defined twice; keep only one",
    );
    check("", None, Some("daemon"), "missing table [daemon]");
    check(
        &edit("user_jid", "daily_limit = 0\nuser_jid"),
        Some(13),
        Some("zoom.chatbot.daily_limit"),
        "a daily limit of 0 is out of range: 0 would never let the chatbot post",
    );
    check(
        &edit("user_jid", "daily_limit = \"2000\"\nuser_jid"),
        Some(13),
        Some("zoom.chatbot.daily_limit"),
        "expected a whole number from 0 to 4294967295, found a string; write it like \
         daily_limit = 2000",
    );

    // Channels: chatbot or webhook, and how cards evolve.
    let ci_jid = "to_jid = \"ci@conference.xmpp.zoom.us\"";
    check(
        &edit(
            ci_jid,
            &format!("{ci_jid}\nwebhook_url = \"{WEBHOOK_URL}\""),
        ),
        Some(17),
        Some("zoom.channels.ci.webhook_url"),
        "[zoom.channels.ci] has both to_jid and webhook_url; keep to_jid for a channel the \
         chatbot posts to, or webhook_url for an Incoming Webhook",
    );
    check(
        &edit(
            ci_jid,
            &format!("webhook_url = \"{WEBHOOK_URL}\"\n{ci_jid}"),
        ),
        Some(17),
        Some("zoom.channels.ci.to_jid"),
        "has both to_jid and webhook_url",
    );
    check(
        &edit(ci_jid, &format!("{ci_jid}\nstyle = \"updates\"")),
        Some(17),
        Some("zoom.channels.ci.style"),
        "unknown style \"updates\" (did you mean \"update\"?); use \"update\" (one card, \
         edited as the build moves on), \"post\"",
    );
    check(
        &edit(ci_jid, &format!("{ci_jid}\nstyle = \"update + reply\"")),
        Some(17),
        Some("zoom.channels.ci.style"),
        "(did you mean \"update+reply\"?)",
    );
    check(
        &edit(ci_jid, &format!("{ci_jid}\nstyle = 1")),
        Some(17),
        Some("zoom.channels.ci.style"),
        "expected a string, found integer `1`; write it like style = \"update+reply\"",
    );
    check(
        &edit(ci_jid, &format!("{ci_jid}\nformat = \"message\"")),
        Some(17),
        Some("zoom.channels.ci.format"),
        "format is only for webhook channels (with webhook_url); remove it",
    );
    check(
        &edit(ci_jid, &format!("{ci_jid}\ncredential = \"ci-webhook\"")),
        Some(17),
        Some("zoom.channels.ci.credential"),
        "credential is only for webhook channels",
    );
    check(
        &edit(ci_jid, &format!("{ci_jid}\nstlye = \"post\"")),
        Some(17),
        Some("zoom.channels.ci.stlye"),
        "unknown key \"stlye\" in [zoom.channels.ci]; did you mean \"style\"? expected one of: \
         to_jid, webhook_url, credential, format, style",
    );
    check(
        &with_webhook("style = \"update\"\n"),
        Some(24),
        Some("zoom.channels.alerts.style"),
        "style \"update\" is not possible on a webhook channel: Zoom returns no message id for \
         webhook posts, so cards cannot be edited; remove the key or set style = \"post\"",
    );
    check(
        &with_webhook("style = \"update+reply\"\n"),
        Some(24),
        Some("zoom.channels.alerts.style"),
        "is not possible on a webhook channel",
    );
    check(
        &with_webhook("style = \"pots\"\n"),
        Some(24),
        Some("zoom.channels.alerts.style"),
        "unknown style \"pots\" (did you mean \"post\"?)",
    );
    check(
        &replaced(
            &with_webhook(""),
            WEBHOOK_URL,
            &format!("{WEBHOOK_URL}?format=message&s3cr3t=1"),
        ),
        Some(22),
        Some("zoom.channels.alerts.webhook_url"),
        "the URL has a query (?...); remove it: bbzoom sets the query itself; choose a card or \
         plain text with format = \"full\" or \"message\"",
    );
    check(
        &replaced(
            &with_webhook(""),
            "https://integrations",
            "https://bot:s3cr3t@integrations",
        ),
        Some(22),
        Some("zoom.channels.alerts.webhook_url"),
        "the URL contains a user name or password; remove it",
    );
    check(
        &replaced(
            &with_webhook(""),
            "https://integrations",
            "ftp://integrations",
        ),
        Some(22),
        Some("zoom.channels.alerts.webhook_url"),
        "is not an http(s) URL; write an http(s) URL like \
         \"https://integrations.zoom.us/chat/webhooks/incomingwebhook/XXXX\"",
    );
    check(
        &replaced(&with_webhook(""), "credential = \"alerts-webhook\"\n", ""),
        Some(21),
        Some("zoom.channels.alerts.credential"),
        "missing key \"credential\" in [zoom.channels.alerts]: a webhook channel needs the name \
         of the credentials file entry holding the connection's verification token; add it, \
         e.g. credential = \"alerts-webhook\"",
    );
    check(
        &replaced(
            &with_webhook(""),
            "credential = \"alerts-webhook\"",
            "credential = \"\"",
        ),
        Some(23),
        Some("zoom.channels.alerts.credential"),
        "the value is empty; write e.g. credential = \"alerts-webhook\"",
    );
    check(
        &with_webhook("format = \"card\"\n"),
        Some(24),
        Some("zoom.channels.alerts.format"),
        "unknown format \"card\"; use \"full\" (a card) or \"message\" (plain text)",
    );
    check(
        &with_webhook("format = \"mesage\"\n"),
        Some(24),
        Some("zoom.channels.alerts.format"),
        "(did you mean \"message\"?)",
    );
    check(
        &edit(CHATBOT, ""),
        Some(10),
        Some("zoom.channels.ci.to_jid"),
        "add a [zoom.chatbot] section: a to_jid channel is posted to by the chatbot",
    );

    // Delivery.
    check(
        &with_tables("[zoom.delivery]\nfold_after = 0\n"),
        Some(10),
        Some("zoom.delivery.fold_after"),
        "fold_after must be at least 1",
    );
    check(
        &with_tables("[zoom.delivery]\nfold_after = -1\n"),
        Some(10),
        Some("zoom.delivery.fold_after"),
        "expected a whole number from 0 to 4294967295, found integer `-1`; write it like \
         fold_after = 10",
    );
    check(
        &with_tables("[zoom.delivery]\nmax_age = \"1 day\"\n"),
        Some(10),
        Some("zoom.delivery.max_age"),
        "invalid duration \"1 day\"; write a number and a unit",
    );
    check(
        &with_tables("[zoom.delivery]\nmax_age = \"0s\"\n"),
        Some(10),
        Some("zoom.delivery.max_age"),
        "the duration \"0s\" is zero",
    );
    check(
        &with_tables("[zoom.delivery]\nmax_age = \"24h\"\nretries = 3\n"),
        Some(11),
        Some("zoom.delivery.retries"),
        "unknown key \"retries\" in [zoom.delivery]; expected one of: max_age, fold_after",
    );
    let no_channels = edit(
        "[zoom.channels.ci]\nto_jid = \"ci@conference.xmpp.zoom.us\"\n\n\
         [zoom.channels.releases]\nto_jid = \"rel@conference.xmpp.zoom.us\"\n",
        "",
    );
    check(
        &no_channels,
        Some(9),
        Some("zoom.channels"),
        "no channels defined",
    );

    // Subscriptions.
    check(
        &edit(
            "channels = [\"ci\"]",
            "events = [\"failed\", \"broken\"]\nchannels = [\"ci\"]",
        ),
        Some(23),
        Some("subscription[0].events[1]"),
        "unknown event \"broken\"; use one of: started, paused, succeeded, fixed, failed, \
         still_failing, stopped, or all",
    );
    check(
        &edit(
            "channels = [\"ci\"]",
            "events = [\"fail\"]\nchannels = [\"ci\"]",
        ),
        Some(23),
        Some("subscription[0].events[0]"),
        "(did you mean \"failed\"?)",
    );
    check(
        &edit(
            "channels = [\"ci\"]",
            "branches = [\"main\", \"release/[0-9]*\"]\nchannels = [\"ci\"]",
        ),
        Some(23),
        Some("subscription[0].branches[1]"),
        "character classes like [abc] are not supported",
    );
    check(
        &edit(
            "channels = [\"ci\"]",
            "branches = []\ntags = []\ncommits = false\nchannels = [\"ci\"]",
        ),
        Some(21),
        Some("subscription[0]"),
        "this subscription takes no build at all",
    );
    check(
        &edit(
            "channels = [\"ci\"]",
            "tags = [\"v[0-9]*\"]\nchannels = [\"ci\"]",
        ),
        Some(23),
        Some("subscription[0].tags[0]"),
        "character classes like [abc] are not supported",
    );
    check(
        &edit(r#"["ci"]"#, r#"["ci", "ops"]"#),
        Some(23),
        Some("subscription[0].channels[1]"),
        "unknown channel \"ops\"; define it as [zoom.channels.ops] or use one of: ci, releases",
    );
    check(
        &edit(r#"["ci"]"#, "[]"),
        Some(23),
        Some("subscription[0].channels"),
        "the list is empty",
    );
    check(
        &edit(r#"["ci"]"#, r#"["ci", "ci"]"#),
        Some(23),
        Some("subscription[0].channels[1]"),
        "channel \"ci\" is listed twice",
    );
    check(
        &edit(
            "https://bitbucket.org/acme/api",
            "https://github.com/acme/api",
        ),
        Some(22),
        Some("subscription[0].repository"),
        "\"https://github.com/acme/api\" is on none of the configured Bitbucket hosts: \
         bitbucket.org ([bitbucket] web_url); use a repository URL on one of them",
    );
    check(
        &edit(
            "https://bitbucket.org/acme/api",
            "https://bitbucket.org/acme",
        ),
        Some(22),
        Some("subscription[0].repository"),
        "does not name a workspace and a repository",
    );
    check(
        &subscribe(
            BASE,
            "https://bitbucket.org/Acme/API",
            "credential = \"acme-other\"\n",
        ),
        Some(27),
        Some("subscription[1].credential"),
        "acme/api's pipelines are already polled with credential \"acme-ci\" by \
         subscription[0] at line 21",
    );
    check(
        &edit(r#"["ci"]"#, "[\"ci\"]\nsource = \"pipeline\""),
        Some(24),
        Some("subscription[0].source"),
        "unknown source \"pipeline\" (did you mean \"pipelines\"?); use \"pipelines\" (Bitbucket \
         Pipelines, Cloud only), \"statuses\"",
    );
    check(
        &edit(
            r#"["ci"]"#,
            "[\"ci\"]\nsource = [\"pipelines\", \"pipelines\"]",
        ),
        Some(24),
        Some("subscription[0].source"),
        "\"pipelines\" is listed twice; keep one",
    );
    check(
        &edit(r#"["ci"]"#, "[\"ci\"]\nsource = []"),
        Some(24),
        Some("subscription[0].source"),
        "the list is empty",
    );
    check(
        &edit(r#"["ci"]"#, "[\"ci\"]\nsource = 7"),
        Some(24),
        Some("subscription[0].source"),
        "source takes a string or an array of strings",
    );
    check(
        &edit("[bitbucket]\ncredential = \"acme-ci\"\n", ""),
        Some(19),
        Some("subscription[0].credential"),
        "no credential: set [bitbucket] credential or this subscription's credential",
    );
    check(
        &edit(r#"["ci"]"#, "[\"ci\"]\ncredential = \" \""),
        Some(24),
        Some("subscription[0].credential"),
        "the value is empty; write e.g. credential = \"acme-ci\"",
    );

    // Polling.
    check(
        &with_tables("[polling]\nhot = \"2m\"\n"),
        Some(10),
        Some("polling.hot"),
        "hot = \"2m\" is longer than warm = \"1m\" (the default); the intervals must satisfy \
         hot <= warm <= cold",
    );
    check(
        &with_tables("[polling]\nwarm = \"5m\"\ncold = \"2m\"\n"),
        Some(11),
        Some("polling.cold"),
        "warm = \"5m\" is longer than cold = \"2m\"",
    );
    check(
        &with_tables("[polling]\nsettle = \"0s\"\n"),
        Some(10),
        Some("polling.settle"),
        "the duration \"0s\" is zero; it must be greater than 0",
    );
    check(
        &with_tables("[polling]\nscan = \"never\"\n"),
        Some(10),
        Some("polling.scan"),
        "invalid scan \"never\"; write a duration like \"30s\" or \"1m\", or \"off\"",
    );
    check(
        &with_tables("[polling]\nhott = \"5s\"\n"),
        Some(10),
        Some("polling.hott"),
        "unknown key \"hott\" in [polling]; did you mean \"hot\"?",
    );

    // Data Center instances and routing repositories to them.
    let corp = with_datacenter();
    check(
        &replaced(&corp, "datacenter.corp]", "datacenter.cloud]"),
        Some(9),
        Some("bitbucket.datacenter.cloud"),
        "the name \"cloud\" is reserved for Bitbucket Cloud",
    );
    check(
        &replaced(&corp, "datacenter.corp]", "datacenter.\"corp dc\"]"),
        Some(9),
        Some("bitbucket.datacenter.\"corp dc\""),
        "an instance name may only contain ASCII letters, digits, '-' and '_'",
    );
    check(
        &replaced(&corp, "url = \"https://git.example.com\"\n", ""),
        Some(9),
        Some("bitbucket.datacenter.corp.url"),
        "missing key \"url\" in [bitbucket.datacenter.corp]; add it, e.g. url = \
         \"https://git.example.com\"",
    );
    check(
        &replaced(&corp, "credential = \"corp-token\"\n", ""),
        Some(9),
        Some("bitbucket.datacenter.corp.credential"),
        "missing key \"credential\" in [bitbucket.datacenter.corp]",
    );
    check(
        &replaced(
            &corp,
            "https://git.example.com",
            "https://jdoe:s3cr3t@git.example.com",
        ),
        Some(10),
        Some("bitbucket.datacenter.corp.url"),
        "the URL contains a user name or password; remove it",
    );
    check(
        &replaced(
            &corp,
            "https://git.example.com",
            "https://git.example.com/?token=s3cr3t",
        ),
        Some(10),
        Some("bitbucket.datacenter.corp.url"),
        "the URL has a query (?...) or fragment (#...); remove it",
    );
    check(
        &with_tables(&format!(
            "{CORP}\n[bitbucket.datacenter.other]\nurl = \"https://GIT.example.com:443/\"\n\
             credential = \"corp-token\"\n"
        )),
        Some(14),
        Some("bitbucket.datacenter.other.url"),
        "git.example.com is already configured as [bitbucket.datacenter.corp] url; configure \
         each server once",
    );
    check(
        &replaced(&corp, "https://git.example.com", "https://bitbucket.org"),
        Some(10),
        Some("bitbucket.datacenter.corp.url"),
        "bitbucket.org is already configured as [bitbucket] web_url",
    );
    check(
        &replaced(
            &corp,
            "https://bitbucket.org/acme/api",
            "https://git.example.org/scm/plat/x.git",
        ),
        Some(26),
        Some("subscription[0].repository"),
        "is on none of the configured Bitbucket hosts: bitbucket.org ([bitbucket] web_url), \
         git.example.com ([bitbucket.datacenter.corp]); use",
    );
    let platform = replaced(&corp, "https://bitbucket.org/acme/api", PLATFORM);
    check(
        &replaced(&platform, r#"["ci"]"#, "[\"ci\"]\nsource = \"pipelines\""),
        Some(28),
        Some("subscription[0].source"),
        "Data Center has no Pipelines; use source = \"statuses\"",
    );
    check(
        &subscribe(
            &platform,
            "ssh://git@git.example.com:7999/plat/Platform.git",
            "source = [\"statuses\", \"pipelines\"]\n",
        ),
        Some(31),
        Some("subscription[1].source"),
        "Data Center has no Pipelines",
    );

    // Budgets.
    check(
        &with_tables("[bitbucket.budgets]\nacme-cl = { requests = 100, per = \"1h\" }\n"),
        Some(10),
        Some("bitbucket.budgets.acme-cl"),
        "unused budget: no subscription polls with the credential \"acme-cl\" (did you mean \
         \"acme-ci\"?); remove it or check the name",
    );
    check(
        &with_tables("[bitbucket.budgets]\nacme-ci = { requests = 0, per = \"1h\" }\n"),
        Some(10),
        Some("bitbucket.budgets.acme-ci.requests"),
        "a rate limit must allow at least 1 request",
    );

    // Numbers out of their documented ranges: each would have panicked the daemon (or an
    // arithmetic on it) after `check` passed it.
    let polling = |keys: &str| with_tables(&format!("[polling]\n{keys}\n"));
    let too_long = [
        (
            edit("credentials =", "request_timeout = \"11m\"\ncredentials ="),
            3,
            "daemon.request_timeout",
        ),
        (polling("hot = \"25h\""), 10, "polling.hot"),
        (polling("cold = \"4000000h\""), 10, "polling.cold"),
        (polling("warm_for = \"169h\""), 10, "polling.warm_for"),
        (polling("settle = \"25h\""), 10, "polling.settle"),
        (polling("scan = \"25h\""), 10, "polling.scan"),
        (
            edit(
                "credential = \"acme-ci\"",
                "credential = \"acme-ci\"\nrate_limit = { requests = 100, per = \"4000000h\" }",
            ),
            8,
            "bitbucket.rate_limit.per",
        ),
        (
            edit(
                "user_jid",
                "rate_limit = { requests = 100, per = \"24h1ms\" }\nuser_jid",
            ),
            13,
            "zoom.chatbot.rate_limit.per",
        ),
    ];
    for (text, line, key) in too_long {
        check(
            &text,
            Some(line),
            Some(key),
            "the most this key allows; write a duration from \"1ms\"",
        );
    }
    check(
        &with_tables("[zoom.delivery]\nmax_age = \"721h\"\n"),
        Some(10),
        Some("zoom.delivery.max_age"),
        "is longer than \"720h\", the most this key allows",
    );
    check(
        &with_tables("[bitbucket.budgets]\nacme-ci = { requests = 4294967295, per = \"1h\" }\n"),
        Some(10),
        Some("bitbucket.budgets.acme-ci.requests"),
        "at most 1000000",
    );
    check(
        &with_tables("[zoom.delivery]\nfold_after = 4294967295\n"),
        Some(10),
        Some("zoom.delivery.fold_after"),
        "at least 1 and at most 10000",
    );
    check(
        &edit("user_jid", "daily_limit = 4294967295\nuser_jid"),
        Some(13),
        Some("zoom.chatbot.daily_limit"),
        "it may be at most 10000000",
    );
    // `run` cannot use a path with a NUL byte: neither may `check` (one validation for both).
    check(
        &edit("state_dir = \"state\"", "state_dir = \"st\\u0000ate\""),
        Some(2),
        Some("daemon.state_dir"),
        "contains a NUL byte",
    );
}

#[test]
fn a_credential_pool_spreads_repositories_over_its_budgets() {
    // api uses the default acme-ci; five more repositories share ci-a and ci-b.
    let mut text = BASE.to_owned();
    for repo in ["web", "mobile", "docs", "infra", "site"] {
        text = subscribe(
            &text,
            &format!("https://bitbucket.org/acme/{repo}"),
            "credential = [\"ci-a\", \"ci-b\"]\n",
        );
    }
    let config = parse(&text);
    let polled_with: Vec<(String, &str)> = config
        .watches
        .iter()
        .map(|w| (w.repo.to_string(), w.credential.as_str()))
        .collect();
    assert_eq!(
        polled_with,
        [
            ("acme/api".to_owned(), "acme-ci"),
            ("acme/web".to_owned(), "ci-a"),
            ("acme/mobile".to_owned(), "ci-b"),
            ("acme/docs".to_owned(), "ci-a"),
            ("acme/infra".to_owned(), "ci-b"),
            ("acme/site".to_owned(), "ci-a"),
        ]
    );
    assert_eq!(config.subscriptions[1].credentials, ["ci-a", "ci-b"]);
    // Each credential of a pool has its own budget (the Cloud default unless set).
    assert_eq!(config.budget_for("ci-b"), config.budget_for("acme-ci"));

    // A second subscription of a repository must name the same credentials.
    let twice = subscribe(
        &subscribe(
            &BASE.replace("acme/api", "acme/old"),
            "https://bitbucket.org/acme/api",
            "credential = [\"ci-a\", \"ci-b\"]\n",
        ),
        "https://bitbucket.org/acme/api",
        "credential = \"ci-a\"\n",
    );
    check(
        &twice,
        Some(32),
        Some("subscription[2].credential"),
        "acme/api's pipelines are already polled with credential [\"ci-a\", \"ci-b\"] by \
         subscription[1]",
    );
    check(
        &subscribe(
            BASE,
            "https://bitbucket.org/acme/web",
            "credential = [\"ci-a\", \"ci-a\"]\n",
        ),
        Some(27),
        Some("subscription[1].credential"),
        "\"ci-a\" is listed twice; name each credential once",
    );
    check(
        &subscribe(BASE, "https://bitbucket.org/acme/web", "credential = []\n"),
        Some(27),
        Some("subscription[1].credential"),
        "the list is empty; name at least one credential",
    );
    check(
        &subscribe(BASE, "https://bitbucket.org/acme/web", "credential = 7\n"),
        Some(27),
        Some("subscription[1].credential"),
        "credential takes a string or an array of strings; write it like credential = \"acme-ci\"",
    );
}

/// Property tests: whatever the file holds, reading it answers a configuration whose every
/// number is in its documented range, or an error naming the file and the line (and the key,
/// wherever the file parses as TOML).
mod properties {
    use super::{BASE, PATH, chatbot, edit, with_tables};
    use bbzoom::config::Config;
    use proptest::prelude::*;
    use std::path::Path;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    /// `BASE` with a number in one of the keys that take one (a duration, a count, a rate).
    fn numbers_in_known_keys() -> impl Strategy<Value = String> {
        let duration = (
            prop_oneof![any::<u64>(), 0u64..100_000],
            proptest::sample::select(vec!["ms", "s", "m", "h"]),
        )
            .prop_map(|(n, unit)| format!("\"{n}{unit}\""));
        let count = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0i64..20_000_000).prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("TOML spells it", |x| x.is_finite())
                .prop_map(|x| format!("{x:e}")),
        ];
        let polling =
            proptest::sample::select(vec!["hot", "warm", "cold", "warm_for", "settle", "scan"]);
        prop_oneof![
            (polling, duration.clone())
                .prop_map(|(key, d)| with_tables(&format!("[polling]\n{key} = {d}\n"))),
            duration.clone().prop_map(|d| edit(
                "credentials =",
                &format!("request_timeout = {d}\ncredentials =")
            )),
            duration
                .clone()
                .prop_map(|d| with_tables(&format!("[zoom.delivery]\nmax_age = {d}\n"))),
            count
                .clone()
                .prop_map(|n| with_tables(&format!("[zoom.delivery]\nfold_after = {n}\n"))),
            count
                .clone()
                .prop_map(|n| edit("user_jid", &format!("daily_limit = {n}\nuser_jid"))),
            (count, duration).prop_map(|(n, d)| edit(
                "credential = \"acme-ci\"",
                &format!("credential = \"acme-ci\"\nrate_limit = {{ requests = {n}, per = {d} }}")
            )),
        ]
    }

    /// `BASE` with arbitrary text put in at some character, or arbitrary text alone.
    fn toml_ish() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            (0..BASE.len(), any::<String>()).prop_map(|(at, text)| {
                let at = (0..=at)
                    .rev()
                    .find(|&i| BASE.is_char_boundary(i))
                    .unwrap_or(0);
                format!("{}{text}{}", &BASE[..at], &BASE[at..])
            }),
        ]
    }

    /// The error is located: the file, a line, and the key unless the text is not TOML.
    fn assert_located(err: &bbzoom::config::ConfigError) -> Result<(), TestCaseError> {
        let message = err.to_string();
        prop_assert!(message.starts_with(PATH), "{message}");
        prop_assert!(err.line().is_some(), "{message}");
        prop_assert!(
            err.key().is_some() || message.contains("invalid TOML"),
            "{message}"
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_number_in_a_known_key_is_in_range_or_refused_at_its_place(
            text in numbers_in_known_keys(),
        ) {
            match Config::parse(Path::new(PATH), &text) {
                Ok(config) => {
                    let polling = &config.polling;
                    for interval in [polling.hot, polling.warm, polling.cold, polling.settle] {
                        prop_assert!(interval <= 24 * HOUR, "{text}");
                    }
                    prop_assert!(polling.scan.is_none_or(|scan| scan <= 24 * HOUR), "{text}");
                    prop_assert!(polling.warm_for <= 168 * HOUR, "{text}");
                    prop_assert!(config.daemon.request_timeout <= Duration::from_secs(600));
                    let delivery = config.zoom.delivery;
                    prop_assert!(delivery.max_age <= 720 * HOUR, "{text}");
                    prop_assert!((1..=10_000).contains(&delivery.fold_after), "{text}");
                    let daily = chatbot(&config).daily_limit;
                    prop_assert!(daily.is_none_or(|n| (1..=10_000_000).contains(&n)), "{text}");
                    let budget = config.budget_for("acme-ci").start;
                    prop_assert!((1..=1_000_000).contains(&budget.requests), "{text}");
                    prop_assert!(budget.per <= 24 * HOUR, "{text}");
                }
                Err(err) => assert_located(&err)?,
            }
        }

        #[test]
        fn any_text_is_read_or_refused_at_its_place(text in toml_ish()) {
            if let Err(err) = Config::parse(Path::new(PATH), &text) {
                let message = err.to_string();
                prop_assert!(message.starts_with(PATH), "{message}");
            }
        }
    }
}

/// `[zoom.events]`, appended to [`BASE`]: its header on line 25, `channels` on 29, `admins`
/// on 30.
const EVENTS: &str = r#"[zoom.events]
credential = "zoom-events"
subscription_id = "sub-1"
user = "admin@example.com"
channels = ["ci"]
admins = ["Jane@Example.com", "aBc-12_3", "jane@example.com"]
"#;

#[test]
fn zoom_events_is_optional_and_checked_like_the_rest() {
    assert_eq!(
        parse(BASE).zoom.events,
        None,
        "without the section, nothing is read"
    );
    let with_events = format!("{BASE}\n{EVENTS}");
    let config = parse(&with_events);
    let events = config.zoom.events.as_ref().expect("[zoom.events]");
    assert_eq!(events.credential, "zoom-events");
    assert_eq!(events.subscription_id, "sub-1");
    assert_eq!(events.user, "admin@example.com");
    assert_eq!(events.channels, ["ci"]);
    assert_eq!(
        events.admins,
        ["jane@example.com", "aBc-12_3"],
        "emails without case, once"
    );
    assert_eq!(events.heartbeat, Duration::from_secs(30));
    assert_eq!(events.url.as_str(), "wss://ws.zoom.us/ws");

    let events_edit = |from: &str, to: &str| {
        let (base, events) = with_events.split_at(BASE.len());
        format!("{base}{}", replaced(events, from, to))
    };
    let channels = Some("zoom.events.channels");
    check(
        &events_edit(r#"channels = ["ci"]"#, r#"channels = ["cj"]"#),
        Some(29),
        channels,
        "\"cj\" is not a [zoom.channels] table (did you mean \"ci\"?)",
    );
    check(
        &events_edit(r#"channels = ["ci"]"#, r#"channels = ["ci", "ci"]"#),
        Some(29),
        channels,
        "named twice",
    );
    check(
        &events_edit(r#"channels = ["ci"]"#, "channels = []"),
        Some(29),
        channels,
        "no channel is named",
    );
    check(
        &events_edit(r#""aBc-12_3""#, r#""<b>Jane</b>""#),
        Some(30),
        Some("zoom.events.admins"),
        "neither a Zoom user id nor an email address",
    );
    let appended = |line: &str| format!("{with_events}{line}\n");
    check(
        &appended(r#"heartbeat = "6m""#),
        Some(31),
        Some("zoom.events.heartbeat"),
        "longer than \"5m\"",
    );
    check(
        &appended(r#"url = "https://ws.zoom.us/ws""#),
        Some(31),
        Some("zoom.events.url"),
        "is not a ws(s) URL",
    );
    check(
        &appended(r#"url = "wss://ws.zoom.us/ws?subscriptionId=s3cr3t""#),
        Some(31),
        Some("zoom.events.url"),
        "bbzoom adds subscriptionId and access_token itself",
    );
    check(
        &events_edit("user = \"admin@example.com\"\n", ""),
        Some(25),
        Some("zoom.events.user"),
        "missing key \"user\" in [zoom.events]",
    );
}
