//! Configuration loading, from the outside: the shipped example validates, and each kind of
//! mistake an admin can make is reported at the right line and key with a useful message.
//!
//! The broken configurations are edits of one valid base (`BASE`), so each row changes one
//! thing and states only what it expects; see [`check`].

use bbzoom::config::Config;
use bbzoom::domain::{EventKind, RepoId};
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

/// `BASE` with the first `from` replaced by `to`; `from` must occur, so a stale row fails
/// loudly instead of testing the valid base.
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE does not contain {from:?}");
    BASE.replacen(from, to, 1)
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
    let config = Config::parse(Path::new(PATH), BASE).unwrap();
    assert_eq!(config.daemon.state_dir, Path::new("/etc/bbzoom/state"));
    assert_eq!(config.daemon.poll_interval, Duration::from_secs(30));
    assert_eq!(config.daemon.request_timeout, Duration::from_secs(20));
    assert_eq!(
        config.bitbucket.api_url.as_str(),
        "https://api.bitbucket.org/2.0"
    );
    assert_eq!(config.bitbucket.web_url.as_str(), "https://bitbucket.org/");
    assert_eq!(
        config.zoom.oauth_url.as_str(),
        "https://zoom.us/oauth/token"
    );
    assert_eq!(config.zoom.api_url.as_str(), "https://api.zoom.us/v2");
    assert_eq!(config.zoom.chatbot.rate_limit.requests, 20);
    assert_eq!(config.zoom.chatbot.rate_limit.per, Duration::from_secs(1));
    let sub = &config.subscriptions[0];
    assert_eq!(
        sub.events,
        BTreeSet::from([EventKind::Failed, EventKind::Fixed])
    );
    assert!(sub.wants(Some("feature/x/y"), EventKind::Failed));
    assert!(!sub.wants(Some("main"), EventKind::Started));
}

#[test]
fn plan_and_rate_limit_override() {
    let free = edit("user_jid", "plan = \"free\"\nuser_jid");
    let config = Config::parse(Path::new(PATH), &free).unwrap();
    assert_eq!(config.zoom.chatbot.rate_limit.requests, 2);

    let custom = edit(
        "user_jid",
        "plan = \"free\"\nrate_limit = { requests = 5, per = \"2s\" }\nuser_jid",
    );
    let config = Config::parse(Path::new(PATH), &custom).unwrap();
    assert_eq!(config.zoom.chatbot.rate_limit.requests, 5);
    assert_eq!(config.zoom.chatbot.rate_limit.per, Duration::from_secs(2));
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
    assert_eq!(config.daemon.poll_interval, Duration::from_secs(30));
    assert_eq!(config.bitbucket.credential, "acme-ci");
    assert_eq!(config.bitbucket.rate_limit.requests, 900);
    assert_eq!(config.bitbucket.rate_limit.per, Duration::from_secs(3600));
    assert_eq!(config.zoom.chatbot.rate_limit.requests, 20);
    let channels: Vec<&str> = config.zoom.channels.keys().map(String::as_str).collect();
    assert_eq!(channels, ["ci", "releases"]);
    assert_eq!(config.subscriptions.len(), 2);
    assert_eq!(config.subscriptions[0].repo, RepoId::new("acme", "api"));
    assert!(config.subscriptions[0].wants(Some("release/1.2"), EventKind::StillFailing));
    assert!(!config.subscriptions[0].wants(Some("feature/x"), EventKind::Failed));
    assert_eq!(
        config.subscriptions[1].events,
        BTreeSet::from(EventKind::ALL)
    );
    assert_eq!(config.subscriptions[1].channels, ["ci", "releases"]);
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
         daemon, bitbucket, zoom, subscription",
    );
    check(
        &edit("credentials =", "pol_interval = \"30s\"\ncredentials ="),
        Some(3),
        Some("daemon.pol_interval"),
        "unknown key \"pol_interval\" in [daemon]; did you mean \"poll_interval\"? expected one \
         of: state_dir, poll_interval, request_timeout, credentials, identity",
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

    // Wrong types.
    check(
        &edit("credentials =", "poll_interval = 30\ncredentials ="),
        Some(3),
        Some("daemon.poll_interval"),
        "expected a string, found integer `30`; write it like poll_interval = \"30s\"",
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
            "poll_interval = [\"s3cr3t\"]\ncredentials =",
        ),
        Some(3),
        Some("daemon.poll_interval"),
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
        &edit("[bitbucket]\ncredential = \"acme-ci\"\n", ""),
        None,
        Some("bitbucket"),
        "missing table [bitbucket]",
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
        &edit("credentials =", "poll_interval = \"30\"\ncredentials ="),
        Some(3),
        Some("daemon.poll_interval"),
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
        Some("zoom.channels.ci.to_jid"),
        "missing key \"to_jid\" in [zoom.channels.ci]; add it, e.g. to_jid = ",
    );
    check(
        &edit("[zoom.chatbot]", "[zoom.chatbot]\n[daemon]"),
        Some(10),
        None,
        "daemon is defined twice; keep only one",
    );
    check("", None, Some("daemon"), "missing table [daemon]");
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
        &edit("channels = [\"ci\"]", "branches = []\nchannels = [\"ci\"]"),
        Some(23),
        Some("subscription[0].branches"),
        "the list is empty; remove the key to follow all branches",
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
        &format!(
            "{BASE}\n[[subscription]]\n\
             repository = \"https://bitbucket.org/acme/api.git\"\nchannels = [\"releases\"]\n"
        ),
        Some(26),
        Some("subscription[1].repository"),
        "acme/api is already subscribed by subscription[0] at line 22; merge them into one \
         [[subscription]]",
    );
    check(
        &edit(
            "https://bitbucket.org/acme/api",
            "https://github.com/acme/api",
        ),
        Some(22),
        Some("subscription[0].repository"),
        "is not on the configured Bitbucket host bitbucket.org",
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
}
