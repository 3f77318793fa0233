//! `bbzoom configure`, `bbzoom unsubscribe` and `bbzoom subscriptions` through the real binary,
//! on a commented configuration file: what changes is exactly the table concerned, whichever
//! form of a repository's address is pasted, and an invalid change writes nothing.

use crate::common::replaced;
use bbzoom::config::{Config, SourceKind};
use bbzoom::domain::{CLOUD, EventKind, RepoId};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A valid configuration with comments around and inside its subscriptions. No daemon runs
/// on it, and its credentials files need not exist for the configuration to load.
const BASE: &str = r#"# ACME's bbzoom: Cloud and the corp Data Center server.
[daemon]
state_dir = "state"
credentials = "credentials.age"
identity = "identity.txt"

[bitbucket]
credential = "acme-ci"

# The old server, until it is retired.
[bitbucket.datacenter.corp]
url = "https://git.example.com"
credential = "corp-token"

[zoom.chatbot]
credential = "zoom-bot"
account_id = "AbCdEf"
robot_jid = "v1bot@xmpp.zoom.us"
user_jid = "user@xmpp.zoom.us"

[zoom.channels.ci]
to_jid = "ci@conference.xmpp.zoom.us"

[zoom.channels.releases]
to_jid = "rel@conference.xmpp.zoom.us"

# The API team asked for main only.
[[subscription]]
repository = "https://bitbucket.org/acme/api"
# Feature branches are too noisy.
branches = ["main"]
events = ["failed", "fixed"]  # the default, spelled out
channels = ["ci"]

# Web: everything, to both channels.
[[subscription]]
repository = "https://bitbucket.org/acme/web"
events = ["all"]
channels = ["ci", "releases"]

# The platform, built by Jenkins.
[[subscription]]
repository = "https://git.example.com/projects/PLAT/repos/platform/browse"
channels = ["releases"]
# Ask before adding the mobile app.
"#;

/// The web subscription's table and its comment, as [`BASE`] has them.
const WEB_TABLE: &str = "\n# Web: everything, to both channels.\n[[subscription]]\n\
                         repository = \"https://bitbucket.org/acme/web\"\nevents = [\"all\"]\n\
                         channels = [\"ci\", \"releases\"]\n";

/// A configuration file in a directory of its own.
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn with(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        ConfigFile { _dir: dir, path }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    fn load(&self) -> Config {
        Config::load(&self.path).unwrap()
    }

    /// Runs `bbzoom --config FILE args...`.
    fn bbzoom(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bbzoom"))
            .arg("--config")
            .arg(&self.path)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `args` expecting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.bbzoom(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `args` expecting the exit status `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.bbzoom(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        stderr
    }
}

fn subscription_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .matches("[[subscription]]")
        .count()
}

#[test]
fn configure_round_trip_keeps_comments() {
    let file = ConfigFile::with(BASE);
    let end = "# Ask before adding the mobile app.\n";

    let out = file.ok(&[
        "configure",
        "  https://bitbucket.org/acme/mobile/src/main/ ",
        "--channel",
        "releases",
        "--channel",
        "ci",
        "--branch",
        "release/*",
    ]);
    assert!(
        out.contains("added acme/mobile on cloud: channels releases, ci; source pipelines"),
        "{out}"
    );
    let mobile = "\n[[subscription]]\nrepository = \"https://bitbucket.org/acme/mobile/src/main/\"\n\
                  branches = [\"release/*\"]\nchannels = [\"releases\", \"ci\"]\n";
    let added = file.text();
    assert_eq!(added, replaced(BASE, end, &format!("{mobile}{end}")));

    // Only --event, through another form of the address: the rest of the table stays.
    let out = file.ok(&[
        "configure",
        "git@bitbucket.org:acme/mobile.git",
        "--event",
        "failed",
    ]);
    assert!(
        out.contains("updated acme/mobile on cloud (3: events): channels releases, ci"),
        "{out}"
    );
    let updated = file.text();
    assert_eq!(
        updated,
        replaced(
            &added,
            "channels = [\"releases\", \"ci\"]\n",
            "channels = [\"releases\", \"ci\"]\nevents = [\"failed\"]\n"
        )
    );

    // A commented table: the replaced value keeps the comment at the end of its line.
    file.ok(&[
        "configure",
        "https://bitbucket.org/acme/api.git",
        "--event",
        "all",
    ]);
    assert_eq!(
        file.text(),
        replaced(
            &updated,
            "events = [\"failed\", \"fixed\"]  # the default",
            "events = [\"all\"]  # the default"
        )
    );

    let config = file.load();
    assert_eq!(config.subscriptions.len(), 4);
    let mobile = &config.subscriptions[3];
    assert_eq!(mobile.repo, RepoId::on(CLOUD, "acme", "mobile"));
    assert_eq!(mobile.channels, ["releases", "ci"]);
    assert_eq!(mobile.refs.branches[0].to_string(), "release/*");
    assert_eq!(mobile.events, [EventKind::Failed].into());
    assert_eq!(mobile.sources, [SourceKind::Pipelines]);
    assert_eq!(mobile.credentials, ["acme-ci"]);
    assert_eq!(config.subscriptions[0].events.len(), EventKind::ALL.len());

    // Nothing to change: said, and nothing written.
    let out = file.ok(&["configure", "https://bitbucket.org/acme/mobile"]);
    assert!(
        out.contains("acme/mobile on cloud is subscribed (3): channels releases, ci"),
        "{out}"
    );
    let out = file.ok(&[
        "configure",
        "https://bitbucket.org/acme/mobile",
        "--event",
        "failed",
    ]);
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(subscription_count(&file.path), 4);
}

#[test]
fn unsubscribe_removes_one_table_and_keeps_comments() {
    let file = ConfigFile::with(BASE);
    let out = file.ok(&["unsubscribe", "https://bitbucket.org/ACME/web.git"]);
    assert!(
        out.contains("removed acme/web on cloud (1: it posted to ci, releases)"),
        "{out}"
    );
    assert_eq!(file.text(), replaced(BASE, WEB_TABLE, ""));
    let repos: Vec<String> = file
        .load()
        .subscriptions
        .iter()
        .map(|s| s.repo.to_string())
        .collect();
    assert_eq!(repos, ["acme/api", "PLAT/platform"]);

    let before = file.text();
    let err = file.fails(&["unsubscribe", "https://bitbucket.org/acme/web"], 1);
    let expected = format!(
        "acme/web on cloud is not subscribed in {}",
        file.path.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(
        err.contains("subscribed are: acme/api on cloud, PLAT/platform on corp"),
        "{err}"
    );
    assert_eq!(file.text(), before);
}

#[test]
fn subscriptions_prints_a_table() {
    let file = ConfigFile::with(BASE);
    let out = file.ok(&["subscriptions"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(
        lines[4],
        "3 repository source(s) polled, each once however many subscriptions name it"
    );
    let columns = [
        "#",
        "REPOSITORY",
        "INSTANCE",
        "SOURCE",
        "CREDENTIAL",
        "BRANCHES",
        "TAGS",
        "COMMITS",
        "EVENTS",
        "CHANNELS",
    ];
    // (row, its cell under each column)
    let rows = [
        (
            lines[1],
            [
                "0",
                "https://bitbucket.org/acme/api",
                "cloud",
                "pipelines",
                "acme-ci",
                "main",
                "**",
                "yes",
                "fixed, failed",
                "ci",
            ],
        ),
        (
            lines[2],
            [
                "1",
                "https://bitbucket.org/acme/web",
                "cloud",
                "pipelines",
                "acme-ci",
                "**",
                "**",
                "yes",
                "all",
                "ci, releases",
            ],
        ),
        (
            lines[3],
            [
                "2",
                "https://git.example.com/projects/PLAT/repos/platform/browse",
                "corp",
                "statuses",
                "corp-token",
                "**",
                "**",
                "yes",
                "fixed, failed",
                "releases",
            ],
        ),
    ];
    for (line, cells) in rows {
        for (column, cell) in columns.iter().zip(cells) {
            let at = lines[0].find(column).unwrap();
            assert!(
                line[at..].starts_with(cell),
                "{cell:?} under {column} in:\n{out}"
            );
        }
        assert_eq!(line.trim_end(), line, "no trailing spaces");
    }

    let empty = ConfigFile::with(&BASE[..BASE.find("# The API team").unwrap()]);
    assert_eq!(
        empty.ok(&["subscriptions"]),
        "no subscriptions; add one with bbzoom configure <repository URL> --channel NAME\n"
    );
}

#[test]
fn pasted_forms_update_the_same_subscription() {
    let file = ConfigFile::with(BASE);
    let cloud = [
        "https://bitbucket.org/acme/api",
        "https://bitbucket.org/acme/api/",
        "https://bitbucket.org/acme/api.git",
        "https://bitbucket.org/acme/api/src/main/README.md",
        "https://bitbucket.org/acme/api/pipelines/results/42",
        "https://BitBucket.org/Acme/API",
        "https://jdoe@bitbucket.org/acme/api.git",
        "git@bitbucket.org:acme/api.git",
        "ssh://git@bitbucket.org/acme/api.git",
    ];
    let datacenter = [
        "https://git.example.com/projects/PLAT/repos/platform/browse",
        "https://git.example.com/projects/plat/repos/platform",
        "https://git.example.com/projects/PLAT/repos/platform/browse/src/main.rs?at=main",
        "https://git.example.com/projects/PLAT/repos/platform/",
        "https://git.example.com/scm/plat/platform.git",
        "ssh://git@git.example.com:7999/plat/platform.git",
    ];
    let forms = cloud
        .iter()
        .map(|form| (form, RepoId::on(CLOUD, "acme", "api")))
        .chain(
            datacenter
                .iter()
                .map(|form| (form, RepoId::on("corp", "PLAT", "platform"))),
        );
    for (i, (form, repo)) in forms.enumerate() {
        let branch = format!("form-{i}");
        let out = file.ok(&["configure", form, "--branch", &branch]);
        let index = if repo.instance == CLOUD { 0 } else { 2 };
        let expected = format!(
            "updated {} on {} ({index}: branches): ",
            repo, repo.instance
        );
        assert!(out.starts_with(&expected), "{form}: {out}");
        assert_eq!(subscription_count(&file.path), 3, "{form}");
        let config = file.load();
        let found: Vec<_> = config
            .subscriptions
            .iter()
            .filter(|s| s.repo == repo)
            .collect();
        assert_eq!(found.len(), 1, "{form}");
        assert_eq!(found[0].refs.branches[0].to_string(), branch, "{form}");
    }
}

#[test]
fn a_repository_with_several_subscriptions_is_edited_one_entry_at_a_time() {
    let file = ConfigFile::with(BASE);
    let api = "https://bitbucket.org/acme/api";
    // A second subscription for acme/api: its release tags, and its statuses too, to #releases.
    let out = file.ok(&[
        "configure",
        "git@bitbucket.org:acme/api.git",
        "--new",
        "--channel",
        "releases",
        "--no-branches",
        "--tag",
        "v*",
        "--commits",
        "false",
        "--source",
        "pipelines",
        "--source",
        "statuses",
    ]);
    assert!(
        out.contains(
            "added acme/api on cloud: channels releases; source pipelines and statuses; \
             credential acme-ci; no branches; tags v*; no bare commits; events fixed, failed"
        ),
        "{out}"
    );
    assert!(
        file.text().contains(
            "\n\n[[subscription]]\nrepository = \"git@bitbucket.org:acme/api.git\"\nsource = \
             [\"pipelines\", \"statuses\"]\nbranches = []\ntags = [\"v*\"]\ncommits = false\n\
             channels = [\"releases\"]\n# Ask before adding the mobile app.\n"
        ),
        "{}",
        file.text()
    );
    let config = file.load();
    assert_eq!(config.subscriptions.len(), 4);
    assert_eq!(
        config.watches.len(),
        4,
        "acme/api: pipelines once, statuses once"
    );

    // Which one to change must now be said; the message lists them with their numbers.
    let err = file.fails(&["configure", api, "--event", "all"], 1);
    assert!(
        err.contains(
            "acme/api on cloud has 2 subscriptions; give --entry N to choose one, or \
             --new to add another:\n  0: channels ci;"
        ) && err.contains("\n  3: channels releases; source pipelines and statuses"),
        "{err}"
    );
    let err = file.fails(&["configure", api, "--entry", "1", "--event", "all"], 1);
    assert!(
        err.contains("subscription 1 is not one of acme/api on cloud's (they are: 0, 3)"),
        "{err}"
    );
    let out = file.ok(&["configure", api, "--entry", "3", "--event", "all"]);
    assert!(
        out.contains("updated acme/api on cloud (3: events)"),
        "{out}"
    );
    assert_eq!(
        file.load().subscriptions[3].events.len(),
        EventKind::ALL.len()
    );
    assert_eq!(file.load().subscriptions[0].events.len(), 2);

    // Unsubscribing needs the entry too, or --all.
    let err = file.fails(&["unsubscribe", api], 1);
    assert!(
        err.contains("give --entry N to choose one, or --all to remove them all"),
        "{err}"
    );
    let out = file.ok(&["unsubscribe", api, "--all"]);
    assert!(
        out.contains("removed acme/api on cloud (0: it posted to ci)")
            && out.contains("removed acme/api on cloud (3: it posted to releases)"),
        "{out}"
    );
    let repos: Vec<String> = file
        .load()
        .subscriptions
        .iter()
        .map(|s| s.repo.to_string())
        .collect();
    assert_eq!(repos, ["acme/web", "PLAT/platform"]);
}

#[test]
fn invalid_changes_write_nothing() {
    let file = ConfigFile::with(BASE);
    let api = "https://bitbucket.org/acme/api";
    let platform = "https://git.example.com/scm/plat/platform.git";
    // (arguments, exit status, what stderr must say)
    let table: [(&[&str], i32, &[&str]); 9] = [
        (
            &["configure", api, "--channel", "nosuch"],
            2,
            &[
                "config.toml left unchanged: the change would make it invalid",
                "subscription[0].channels[0]: unknown channel \"nosuch\"",
                "use one of: ci, releases",
            ],
        ),
        (
            &["configure", platform, "--source", "pipelines"],
            2,
            &["subscription[2].source: Data Center has no Pipelines"],
        ),
        (
            &["configure", api, "--branch", "feature/[ab]"],
            2,
            &["subscription[0].branches[0]", "character classes"],
        ),
        (
            &["configure", "https://bitbucket.org/acme/new"],
            1,
            &[
                "acme/new on cloud is not subscribed yet: give at least one --channel NAME",
                "ci, releases",
            ],
        ),
        (
            &[
                "configure",
                "https://github.com/acme/api",
                "--channel",
                "ci",
            ],
            1,
            &["is on none of the configured Bitbucket hosts"],
        ),
        (
            &["configure", api, "--event", "fial"],
            2,
            &["invalid value 'fial' for '--event <EVENT>'", "failed"],
        ),
        (
            &[
                "configure",
                api,
                "--no-branches",
                "--tag",
                "v*",
                "--tag",
                "v*",
                "--no-tags",
            ],
            2,
            &["'--tag <GLOB>' cannot be used with '--no-tags'"],
        ),
        (
            &[
                "configure",
                api,
                "--no-branches",
                "--no-tags",
                "--commits",
                "false",
            ],
            2,
            &["subscription[0]: this subscription takes no build at all"],
        ),
        (
            &["configure", api, "--meeting-on", "failed"],
            2,
            &[
                "subscription[0].meeting_on",
                "this file has no [zoom.events]",
            ],
        ),
    ];
    for (args, code, fragments) in table {
        let err = file.fails(args, code);
        for fragment in fragments {
            assert!(
                err.contains(fragment),
                "{args:?}: {fragment:?} not in {err}"
            );
        }
        assert_eq!(file.text(), BASE, "{args:?}");
    }
    let names: Vec<_> = std::fs::read_dir(file.path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.toml"], "no temporary file is left behind");
}

#[test]
fn a_url_carrying_a_secret_is_refused_unechoed_and_never_written() {
    let file = ConfigFile::with(BASE);
    // (pasted address, how the message shows it)
    let table = [
        (
            "https://jdoe:s3cr3t@bitbucket.org/acme/new",
            "https://jdoe:***@bitbucket.org/acme/new",
        ),
        (
            "jdoe:s3cr3t@bitbucket.org:acme/new.git",
            "jdoe:***@bitbucket.org:acme/new.git",
        ),
        (
            "https://bitbucket.org/acme/new?access_token=s3cr3t",
            "https://bitbucket.org/acme/new?access_token=***",
        ),
    ];
    for (url, redacted) in table {
        let err = file.fails(&["configure", url, "--channel", "ci"], 1);
        assert!(!err.contains("s3cr3t"), "{url}: {err}");
        assert!(err.contains(redacted), "{url}: {err}");
        assert!(
            err.contains("bbzoom connect bitbucket --name NAME"),
            "{url}: {err}"
        );
        assert_eq!(file.text(), BASE, "{url}");

        // Written by hand instead, `check` (as the daemon) refuses it the same way.
        let written = ConfigFile::with(&format!(
            "{BASE}\n[[subscription]]\nrepository = {url:?}\nchannels = [\"ci\"]\n"
        ));
        let err = written.fails(&["check"], 2);
        assert!(!err.contains("s3cr3t"), "{url}: {err}");
        assert!(err.contains("subscription[3].repository"), "{url}: {err}");
        assert!(err.contains(redacted), "{url}: {err}");
    }
    // A user name alone is no secret.
    file.ok(&[
        "configure",
        "https://jdoe@bitbucket.org/acme/new.git",
        "--channel",
        "ci",
    ]);
}

#[test]
fn dot_segments_name_no_repository_in_any_form() {
    let file = ConfigFile::with(BASE);
    for url in [
        "https://bitbucket.org/acme/../evil/api",
        "https://bitbucket.org/acme/%2e%2e",
        "git@bitbucket.org:acme/..",
        "ssh://git@bitbucket.org/acme/../pipelines.git",
        "https://git.example.com/scm/plat/...git",
        "https://git.example.com/projects/PLAT/repos/../browse",
        "https://git.example.com/scm/~../dotfiles.git",
        "ssh://git@git.example.com:7999/../platform.git",
    ] {
        let err = file.fails(&["configure", url, "--channel", "ci"], 1);
        assert!(err.contains(&format!("{url:?}")), "{url}: {err}");
        assert!(
            err.contains("is not a name") || err.contains("not \".\" or \"..\""),
            "{url}: {err}"
        );
        assert_eq!(file.text(), BASE, "{url}");
    }
}

#[test]
fn terminal_escapes_in_the_configuration_are_shown_not_obeyed() {
    // A repository URL whose fragment (ignored) holds a title change, a bell and a screen
    // clear: valid, and printed by commands.
    let hostile = replaced(
        BASE,
        "platform/browse\"",
        "platform/browse#\\u001b]0;owned\\u0007\\u001b[2J\"",
    );
    let file = ConfigFile::with(&hostile);
    let listed = file.ok(&["subscriptions"]);
    let refused = file.fails(
        &[
            "configure",
            "https://bitbucket.org/acme/web",
            "--channel",
            "no\u{1b}[2Jsuch",
        ],
        2,
    );
    for out in [&listed, &refused] {
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character in {out:?}"
        );
        assert!(out.contains("\\u{1b}"), "escapes shown: {out}");
    }
}
