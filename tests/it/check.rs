//! `bbzoom check` through the real binary: a healthy setup passes (offline and against the
//! simulator); a missing or mistyped credential, an undecryptable credentials file and a missing
//! one each fail with exit status 2 and a message that names what to fix and how.

use crate::common::Harness;
use bbzoom::credentials::{self, Credential, Credentials};
use std::path::Path;

/// Runs `bbzoom check` with `args`; returns its exit status, stdout and stderr.
async fn check(harness: &Harness, args: &[&str]) -> (Option<i32>, String, String) {
    let run = harness.bbzoom(&[&["check"], args].concat(), None).await;
    (run.status, run.stdout, run.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_passes_offline_and_online_without_showing_a_secret() {
    let harness = Harness::showcase().await;
    for args in [&[][..], &["--online"][..]] {
        let (status, stdout, stderr) = check(&harness, args).await;
        assert_eq!(status, Some(0), "{args:?}\n{stdout}{stderr}");
        for line in [
            "configuration is valid",
            "identity.txt: an age identity",
            "credentials.age: decrypted, 3 credential(s)",
            "credential \"sim-bitbucket\": polls 3 repository source(s)",
            "credential \"sim-zoom\": Zoom chatbot",
            "channel #alerts: Incoming Webhook",
            "4 subscription(s):",
            "[1] acme/api (pipelines on cloud)  no branches; tags v*; no bare commits  events: \
             succeeded, failed  -> #releases",
            "3 repository source(s) to poll",
        ] {
            assert!(stdout.contains(line), "{args:?}: {line:?} in\n{stdout}");
        }
        assert!(!stderr.contains("problem"), "{args:?}: {stderr}");
        assert!(!stdout.contains("warning"), "{args:?}: {stdout}");
        if args == ["--online"] {
            assert_eq!(stdout.matches(", works").count(), 2, "{stdout}");
        }
        let options = harness.sim.options();
        for secret in [
            options.bitbucket_token().unwrap(),
            options.zoom.client_secret.as_str(),
            options.zoom.webhooks[0].token.as_str(),
            "AGE-SECRET-KEY",
        ] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{secret} shown"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_missing_or_mistyped_credential_is_named_with_its_users_and_the_fix() {
    let harness = Harness::showcase().await;
    let stored = harness.stored_credentials();
    // The Bitbucket token is dropped, the chatbot's is replaced by a webhook token, and a
    // credential nothing uses is added.
    let mut rewritten = Credentials::default();
    for name in stored.names().filter(|&n| n != "sim-bitbucket") {
        rewritten.insert(name, stored.get(name).unwrap().clone());
    }
    let webhook_token = || Credential::ZoomWebhook {
        token: "stray-token".to_owned().into(),
    };
    rewritten.insert("sim-zoom", webhook_token());
    rewritten.insert("left-over", webhook_token());
    let daemon = &harness.config.daemon;
    rewritten
        .save(&daemon.credentials_file, &daemon.identity_file)
        .unwrap();

    let (status, stdout, stderr) = check(&harness, &[]).await;
    assert_eq!(status, Some(2), "{stdout}{stderr}");
    let web = harness.web_url();
    let missing = stderr
        .lines()
        .find(|l| l.starts_with("problem: credential \"sim-bitbucket\""))
        .unwrap_or_else(|| panic!("{stderr}"));
    for part in [
        &format!("subscription[0] ({web}/acme/api)"),
        &format!("subscription[3] ({web}/acme/mobile)"),
        "[bitbucket] credential",
        "is not in ",
        "`bbzoom connect bitbucket --name sim-bitbucket`",
    ] {
        assert!(missing.contains(part), "{part:?} in {missing}");
    }
    assert!(
        stderr.contains(
            "problem: credential \"sim-zoom\" (used by [zoom.chatbot] credential) is a \
             zoom_webhook in "
        ) && stderr.contains(
            "but must be a zoom_chatbot; replace it with `bbzoom connect zoom --name sim-zoom`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 credential(s) the configuration uses are missing or of the wrong kind"),
        "{stderr}"
    );
    assert!(
        stdout.contains("note: credential \"left-over\" (zoom_webhook) is not used"),
        "{stdout}"
    );
    assert!(!stderr.contains("stray-token") && !stdout.contains("stray-token"));

    // The daemon refuses to start on it with the same status, so systemd does not restart it
    // in a loop (RestartPreventExitStatus=2), and says how to fix it.
    let run = harness.bbzoom(&["run"], None).await;
    assert_eq!(run.status, Some(2), "{}", run.output());
    let api = format!("{web}/acme/api");
    let preview = harness.bbzoom(&["preview", &api], None).await;
    assert_eq!(preview.status, Some(2), "{}", preview.output());
    assert!(
        run.stderr
            .contains("`bbzoom connect bitbucket --name sim-bitbucket`"),
        "{}",
        run.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscriptions_sending_one_build_to_one_channel_with_different_events_are_warned() {
    let subscriptions = r#"
[[subscription]]
repository = "{web}/acme/api"
branches = ["main"]
events = ["failed"]
channels = ["ci"]

[[subscription]]
repository = "{web}/acme/api"
source = ["pipelines", "statuses"]
branches = ["main", "release/*"]
events = ["all"]
channels = ["releases", "ci"]

[[subscription]]
repository = "{web}/acme/api"
branches = ["release/*"]
events = ["failed"]
channels = ["alerts"]
"#;
    let harness = Harness::start(
        bbzoom_sim::Scenario::showcase(),
        1.0,
        bbzoom::demo::SimPolling::default(),
        subscriptions,
    )
    .await;
    let (status, stdout, stderr) = check(&harness, &[]).await;
    assert_eq!(status, Some(0), "a warning is no failure: {stdout}{stderr}");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: subscription[0] and subscription[1] both send branch main of acme/api to #ci \
          but with different events (failed / all); #ci gets each card once, for the events of \
          either: give them the same events, or split the branches, tags or channels"
        ],
        "{stdout}"
    );
    // Three subscriptions, two sources: acme/api's pipelines are polled once, its statuses once.
    assert!(
        stdout.contains("2 repository source(s) to poll"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_encrypted_to_another_identity_is_named_with_exit_2() {
    let harness = Harness::showcase().await;
    let other_identity = harness.dir.path().join("other-identity.txt");
    credentials::ensure_identity(&other_identity).unwrap();
    let daemon = &harness.config.daemon;
    harness
        .stored_credentials()
        .save(&daemon.credentials_file, &other_identity)
        .unwrap();

    let (status, stdout, stderr) = check(&harness, &[]).await;
    assert_eq!(status, Some(2), "{stdout}{stderr}");
    let expected = format!(
        "problem: {} cannot be decrypted with the identity {}: it was encrypted to another \
         identity",
        daemon.credentials_file.display(),
        daemon.identity_file.display()
    );
    assert!(stderr.contains(&expected), "{expected:?} in\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_credentials_file_says_bbzoom_connect_creates_it_and_a_missing_identity_too() {
    let harness = Harness::showcase().await;
    let file = &harness.config.daemon.credentials_file;
    std::fs::remove_file(file).unwrap();

    let (status, stdout, stderr) = check(&harness, &[]).await;
    assert_eq!(status, Some(2), "{stdout}{stderr}");
    let expected = format!(
        "problem: {}: there is no credentials file; `bbzoom connect bitbucket` and `bbzoom \
         connect zoom` create it",
        file.display()
    );
    assert!(stderr.contains(&expected), "{expected:?} in\n{stderr}");

    // Without the identity too, both are reported.
    let identity = &harness.config.daemon.identity_file;
    std::fs::remove_file(identity).unwrap();
    let (status, stdout, stderr) = check(&harness, &[]).await;
    assert_eq!(status, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("problem: {}: cannot read", identity.display())),
        "{stderr}"
    );
    assert!(stderr.contains(&expected), "{expected:?} in\n{stderr}");
}

/// A FIFO, a device or an identity others can read is refused at once, naming the path: never
/// a hang, never gigabytes read.
#[tokio::test(flavor = "multi_thread")]
async fn files_that_are_not_regular_or_readable_by_others_are_refused_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let harness = Harness::showcase().await;
    let daemon = &harness.config.daemon;
    let fifo = harness.dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let config = std::fs::read_to_string(harness.config_path()).unwrap();
    let at = |key: &str, path: &Path| {
        let old = format!(
            "{key} = \"{}\"",
            match key {
                "credentials" => daemon.credentials_file.file_name(),
                _ => daemon.identity_file.file_name(),
            }
            .unwrap()
            .to_string_lossy()
        );
        crate::common::replaced(&config, &old, &format!("{key} = \"{}\"", path.display()))
    };
    let limit = std::time::Duration::from_secs(20);
    let check = |config: String| {
        let harness = &harness;
        async move {
            std::fs::write(harness.config_path(), config).unwrap();
            tokio::time::timeout(limit, harness.bbzoom(&["check"], None))
                .await
                .expect("check answered in time")
        }
    };
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        for key in ["credentials", "identity"] {
            let run = check(at(key, path)).await;
            assert_eq!(
                run.status,
                Some(2),
                "{key} = {}: {}",
                path.display(),
                run.output()
            );
            assert!(
                run.stderr.contains(&format!("{}", path.display()))
                    && run.stderr.contains("not a regular file"),
                "{}",
                run.output()
            );
        }
    }
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_bbzoom"))
            .args(["check", "--config"])
            .arg(path)
            .output();
        let run = tokio::time::timeout(limit, run)
            .await
            .expect("answered in time")
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{}", path.display()))
                && stderr.contains("not a regular file"),
            "{stderr}"
        );
    }
    std::fs::write(harness.config_path(), &config).unwrap();
    std::fs::set_permissions(
        &daemon.identity_file,
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let run = check(config.clone()).await;
    assert_eq!(run.status, Some(2), "{}", run.output());
    assert!(
        run.stderr
            .contains(&format!("chmod 600 {}", daemon.identity_file.display())),
        "{}",
        run.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_the_chat_app_s_scopes_are_checked_against_what_the_configuration_uses() {
    use crate::chat::{SPEED, harness_with};
    use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, SimPolling};
    use bbzoom_sim::{Scenario, SimEventsApp};
    // Admins listed by user id need the user lookup scope; commands need the two others.
    let with = |scopes: &[&str]| SimEventsApp {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..SimEventsApp::default()
    };
    let cases = [
        (
            with(&[
                "team_chat:read:user_message:admin",
                "team_chat:read:list_user_messages:admin",
                "user:read:user:admin",
            ]),
            None,
        ),
        // Classic scopes do as well.
        (with(&["chat_message:read:admin", "user:read:admin"]), None),
        (
            with(&["team_chat:read:user_message:admin"]),
            Some([
                "team_chat:read:list_user_messages:admin (reading a channel back after a reconnect)",
                "user:read:user:admin (looking up [people] by e-mail and admins by user id)",
            ]),
        ),
    ];
    for (app, missing) in cases {
        let scopes = app.scopes.clone();
        let harness = harness_with(
            Scenario::showcase(),
            SimPolling::default(),
            SHOWCASE_SUBSCRIPTIONS,
            app,
            SPEED,
            "admins = [\"jane-id\"]",
        )
        .await;
        let (status, stdout, stderr) = check(&harness, &["--online"]).await;
        let line = stdout
            .lines()
            .find(|l| l.contains("Zoom Server-to-Server app (chat commands)"))
            .unwrap_or_else(|| panic!("{scopes:?}: no line for the app in\n{stdout}"));
        match missing {
            None => {
                assert_eq!(status, Some(0), "{scopes:?}\n{stdout}{stderr}");
                assert!(
                    line.ends_with(", works, with the scopes it needs"),
                    "{line}"
                );
            }
            Some(missing) => {
                assert_ne!(status, Some(0), "{scopes:?}\n{stdout}{stderr}");
                for scope in missing {
                    assert!(line.contains(scope), "{scope} not in {line}");
                }
                assert!(line.contains("add them to the app"), "{line}");
                assert!(
                    !line.contains("meeting"),
                    "no war room is configured: {line}"
                );
            }
        }
    }
}
