//! `bbzoom connect` and `bbzoom disconnect` as an admin runs them: the real binary against the
//! simulator on loopback. A credential is stored only after its live check passes (or with
//! --offline), encrypted and owner-only; its secret never appears in plain text in the file nor
//! in any output; a removal names what it leaves without a credential.

use crate::common::{Harness, Run};
use bbzoom::config::Destination;
use bbzoom::credentials::Credential;
use std::os::unix::fs::PermissionsExt;

fn credentials_bytes(harness: &Harness) -> Vec<u8> {
    std::fs::read(&harness.config.daemon.credentials_file).unwrap()
}

/// `secret` is in neither of the run's outputs nor, in plain text, in the credentials file.
fn assert_hidden(harness: &Harness, run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the secret was printed:\n{}",
        run.output()
    );
    if let Ok(bytes) = std::fs::read(&harness.config.daemon.credentials_file) {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the credentials file holds the secret in plain text"
        );
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_bitbucket_from_stdin_checks_it_live_and_stores_it_encrypted() {
    let harness = Harness::showcase().await;
    let token = harness.sim.options().bitbucket_token().unwrap().to_owned();
    let requests = harness.sim.stats().bitbucket_requests;
    let file = &harness.config.daemon.credentials_file;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o640)).unwrap();
    // Pasted from a browser page, as an admin would.
    let repo = format!(
        "{}acme/api/src/main/README.md",
        harness.sim.bitbucket_web_url()
    );
    let run = harness
        .bbzoom(
            &[
                "connect",
                "bitbucket",
                "--name",
                "acme-new",
                "--stdin",
                "--repo",
                &repo,
            ],
            Some(&format!("{token}\n")),
        )
        .await;
    assert!(run.success(), "{}", run.output());
    assert!(
        run.stdout
            .contains("checked: Bitbucket accepted it for acme/api")
            && run
                .stdout
                .contains("stored new credential \"acme-new\" (bitbucket_access_token)"),
        "{}",
        run.output()
    );
    assert!(harness.sim.stats().bitbucket_requests > requests);
    let credentials = harness.stored_credentials();
    assert_eq!(
        credentials.get("acme-new"),
        Some(&Credential::BitbucketAccessToken {
            token: token.clone().into()
        })
    );
    assert!(credentials.get("sim-zoom").is_some(), "the others are kept");
    assert_eq!(
        mode(&harness.config.daemon.credentials_file),
        0o640,
        "a replaced credentials file keeps the mode the admin gave it"
    );
    assert_hidden(&harness, &run, &token);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_fails_the_check_and_stores_nothing() {
    let harness = Harness::showcase().await;
    let before = credentials_bytes(&harness);
    let wrong = "wrong-token-3f9a";
    // The default name is [bitbucket] credential, checked against its first subscription.
    let run = harness
        .bbzoom(
            &["connect", "bitbucket", "--stdin"],
            Some(&format!("{wrong}\n")),
        )
        .await;
    assert!(!run.success(), "{}", run.output());
    assert!(
        run.stderr
            .contains("credential \"sim-bitbucket\" was not stored")
            && run
                .stderr
                .contains("Bitbucket refused the access token (HTTP 401) for acme/api"),
        "{}",
        run.output()
    );
    assert_eq!(credentials_bytes(&harness), before, "the file is untouched");
    assert_hidden(&harness, &run, wrong);
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_stores_without_a_call_and_a_check_needs_something_to_call() {
    let harness = Harness::showcase().await;
    let before = credentials_bytes(&harness);
    let token = "api-token-81c2";
    let args = [
        "connect",
        "bitbucket",
        "--name",
        "jane",
        "--kind",
        "bitbucket_api_token",
        "--email",
        "jane@example.com",
        "--stdin",
    ];
    let input = format!("{token}\n");

    // No subscription uses "jane", and no --repo says what to try it on.
    let run = harness.bbzoom(&args, Some(&input)).await;
    assert!(!run.success(), "{}", run.output());
    assert!(
        run.stderr.contains(
            "nothing to check it against: give --repo URL of a repository it can read, or \
             --offline"
        ),
        "{}",
        run.output()
    );
    // With --stdin nothing is asked: a missing value is an error naming its flag.
    let without_email: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !["--email", "jane@example.com"].contains(a))
        .collect();
    let run = harness.bbzoom(&without_email, Some(&input)).await;
    assert!(
        !run.success() && run.stderr.contains("--email"),
        "{}",
        run.output()
    );
    assert_eq!(credentials_bytes(&harness), before);

    let requests = harness.sim.stats().bitbucket_requests;
    let run = harness
        .bbzoom(&[&args[..], &["--offline"]].concat(), Some(&input))
        .await;
    assert!(run.success(), "{}", run.output());
    assert!(
        run.stdout.contains("not checked (--offline)"),
        "{}",
        run.output()
    );
    assert_eq!(harness.sim.stats().bitbucket_requests, requests, "no call");
    assert_eq!(
        harness.stored_credentials().get("jane"),
        Some(&Credential::BitbucketApiToken {
            email: "jane@example.com".into(),
            token: token.into()
        })
    );
    assert_hidden(&harness, &run, token);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_zoom_chatbot_fetches_a_token_and_first_use_creates_the_identity() {
    let harness = Harness::showcase().await;
    let daemon = &harness.config.daemon;
    std::fs::remove_file(&daemon.identity_file).unwrap();
    std::fs::remove_file(&daemon.credentials_file).unwrap();
    let zoom = harness.sim.options().zoom.clone();
    let args = ["connect", "zoom", "--stdin", "--client-id", &zoom.client_id];

    let wrong = "wrong-client-secret-77";
    let run = harness.bbzoom(&args, Some(&format!("{wrong}\n"))).await;
    assert!(!run.success(), "{}", run.output());
    assert!(
        run.stderr
            .contains("Zoom refused the chatbot's client credentials"),
        "{}",
        run.output()
    );
    assert!(
        !daemon.identity_file.exists() && !daemon.credentials_file.exists(),
        "a failed check creates nothing"
    );
    assert_hidden(&harness, &run, wrong);

    let tokens = harness.sim.stats().zoom_token_requests;
    let secret = &zoom.client_secret;
    let run = harness.bbzoom(&args, Some(&format!("{secret}\n"))).await;
    assert!(run.success(), "{}", run.output());
    assert!(
        run.stdout.contains("checked: Zoom issued a token")
            && run
                .stdout
                .contains("stored new credential \"sim-zoom\" (zoom_chatbot)"),
        "{}",
        run.output()
    );
    assert_eq!(harness.sim.stats().zoom_token_requests, tokens + 1);
    assert_eq!(
        mode(&daemon.identity_file),
        0o600,
        "the identity is the secret"
    );
    assert_eq!(
        mode(&daemon.credentials_file),
        0o644,
        "ciphertext, readable by the service's dynamic user"
    );
    let credentials = harness.stored_credentials();
    assert_eq!(
        credentials.get("sim-zoom"),
        Some(&Credential::ZoomChatbot {
            client_id: zoom.client_id.clone(),
            client_secret: secret.clone().into()
        })
    );
    assert_eq!(credentials.names().count(), 1);
    assert_hidden(&harness, &run, secret);

    // The same values again: checked, and nothing to change.
    let run = harness.bbzoom(&args, Some(&format!("{secret}\n"))).await;
    assert!(
        run.success() && run.stdout.contains("nothing changed"),
        "{}",
        run.output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_zoom_webhook_posts_a_hello_to_its_channel() {
    let harness = Harness::showcase().await;
    let webhook = harness.sim.options().zoom.webhooks[0].clone();
    let name = format!("sim-webhook-{}", webhook.endpoint_id);
    // The kind follows from the name: a webhook channel uses it.
    let run = harness
        .bbzoom(
            &["connect", "zoom", "--name", &name, "--stdin"],
            Some(&format!("{}\n", webhook.token)),
        )
        .await;
    assert!(run.success(), "{}", run.output());
    let posted = harness.sim.channel(&webhook.channel);
    assert!(
        posted
            .iter()
            .any(|m| m.content.to_string().contains("bbzoom is connected")),
        "{posted:?}"
    );
    assert_hidden(&harness, &run, &webhook.token);
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnect_with_yes_removes_it_and_names_what_now_lacks_a_credential() {
    let harness = Harness::showcase().await;

    // A Bitbucket credential is not removed through the Zoom command.
    let run = harness
        .bbzoom(
            &["disconnect", "zoom", "--name", "sim-bitbucket", "--yes"],
            None,
        )
        .await;
    assert!(
        !run.success()
            && run
                .stderr
                .contains("bbzoom disconnect bitbucket --name sim-bitbucket"),
        "{}",
        run.output()
    );

    let run = harness
        .bbzoom(&["disconnect", "bitbucket", "--yes"], None)
        .await;
    assert!(run.success(), "{}", run.output());
    assert!(
        run.stdout
            .contains("removed credential \"sim-bitbucket\" (bitbucket_access_token)"),
        "{}",
        run.output()
    );
    for repo in ["acme/api", "acme/web", "acme/mobile"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.contains("subscription") && l.contains(repo)),
            "{repo} is named:\n{}",
            run.output()
        );
    }
    assert!(
        run.stdout.contains("keeps its last good configuration"),
        "{}",
        run.output()
    );
    let credentials = harness.stored_credentials();
    assert!(credentials.get("sim-bitbucket").is_none());
    assert!(credentials.get("sim-zoom").is_some(), "the others are kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnect_without_yes_and_no_terminal_refuses_and_changes_nothing() {
    let harness = Harness::showcase().await;
    let before = credentials_bytes(&harness);
    let run = harness.bbzoom(&["disconnect", "bitbucket"], None).await;
    assert!(
        !run.success() && run.stderr.contains("pass --yes"),
        "{}",
        run.output()
    );
    assert_eq!(credentials_bytes(&harness), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credentials_file_that_cannot_be_decrypted_is_never_overwritten() {
    let harness = Harness::showcase().await;
    let file = &harness.config.daemon.credentials_file;
    std::fs::write(file, b"not an age file").unwrap();
    let run = harness
        .bbzoom(
            &[
                "connect",
                "bitbucket",
                "--name",
                "other",
                "--stdin",
                "--offline",
            ],
            Some("tok-5e1d\n"),
        )
        .await;
    assert!(
        !run.success() && run.stderr.contains("credentials.age: cannot decrypt"),
        "{}",
        run.output()
    );
    assert_eq!(std::fs::read(file).unwrap(), b"not an age file");
}

#[test]
fn long_help_ends_with_examples() {
    for command in ["connect", "disconnect"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bbzoom"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let examples = help.rsplit("Examples:").next().unwrap();
        assert!(
            help.contains("Examples:") && examples.contains(&format!("bbzoom {command} ")),
            "{help}"
        );
    }
}

/// `connect`s run at once each keep their credential: the whole read, prompt and write is
/// under one lock. A temporary file a killed `connect` left is removed by the next one.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_connects_keep_every_credential_and_leave_no_temporary_file() {
    let harness = Harness::showcase().await;
    let file = &harness.config.daemon.credentials_file;
    let dir = file.parent().unwrap();
    let left = dir.join(format!(
        ".{}.tmp-00000000deadbeef",
        file.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&left, b"from a killed connect").unwrap();
    const AT_ONCE: usize = 4;
    const ROUNDS: usize = 3;
    let harness = &harness;
    for round in 0..ROUNDS {
        let names: Vec<String> = (0..AT_ONCE).map(|i| format!("dc-{round}-{i}")).collect();
        let runs = names.iter().map(|name| async move {
            let args = [
                "connect",
                "bitbucket",
                "--name",
                name,
                "--kind",
                "datacenter_token",
                "--stdin",
                "--offline",
            ];
            harness.bbzoom(&args, Some("token-of-a-test\n")).await
        });
        for run in futures_util::future::join_all(runs).await {
            assert!(run.success(), "{}", run.output());
        }
    }
    let stored = harness.stored_credentials();
    let missing: Vec<String> = (0..ROUNDS)
        .flat_map(|round| (0..AT_ONCE).map(move |i| format!("dc-{round}-{i}")))
        .filter(|name| stored.get(name).is_none())
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(stored.get("sim-zoom").is_some());
    let temporary: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(temporary.is_empty(), "{temporary:?}");
}

/// A symlinked credentials file is refused before anything is asked: replacing it would
/// replace the link, not the file it points at.
#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_credentials_file_is_refused_and_left_alone() {
    let harness = Harness::showcase().await;
    let file = &harness.config.daemon.credentials_file;
    let real = harness.dir.path().join("real-credentials.age");
    std::fs::rename(file, &real).unwrap();
    std::os::unix::fs::symlink(&real, file).unwrap();
    let before = std::fs::read(&real).unwrap();
    let run = harness
        .bbzoom(
            &[
                "connect",
                "bitbucket",
                "--name",
                "dc",
                "--kind",
                "datacenter_token",
                "--stdin",
                "--offline",
            ],
            Some("token-of-a-test\n"),
        )
        .await;
    assert_eq!(run.status, Some(2), "{}", run.output());
    assert!(
        run.stderr.contains("symbolic link") && run.stderr.contains(&real.display().to_string()),
        "{}",
        run.output()
    );
    assert!(std::fs::symlink_metadata(file).unwrap().is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_zoom_server_to_server_fetches_a_token_for_its_account() {
    let harness = Harness::showcase().await;
    let channel = harness
        .config
        .zoom
        .channels
        .values()
        .find(|c| matches!(c.destination, Destination::Chatbot { .. }))
        .expect("the showcase has a chatbot channel")
        .name
        .clone();
    let path = harness.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let events = format!(
        "\n[zoom.events]\ncredential = \"zoom-events\"\nsubscription_id = \"sim-subscription\"\n\
         user = \"sim-admin-user\"\nchannels = [\"{channel}\"]\n"
    );
    std::fs::write(&path, text + &events).unwrap();
    let app = harness.sim.options().zoom_events.clone();
    let secret = format!("{}\n", app.client_secret);
    let args = |account: &'static str| {
        [
            "connect",
            "zoom",
            "--name",
            "zoom-events",
            "--stdin",
            "--account-id",
            account,
            "--client-id",
            "sim-s2s-client-id",
        ]
    };

    // The kind is the one [zoom.events] uses the name for; the grant names the account.
    let run = harness.bbzoom(&args("elsewhere"), Some(&secret)).await;
    assert!(!run.success(), "{}", run.output());
    assert!(
        run.stderr
            .contains("Zoom refused the Server-to-Server app's client credentials"),
        "{}",
        run.output()
    );
    assert_eq!(harness.stored_credentials().get("zoom-events"), None);
    assert_hidden(&harness, &run, &app.client_secret);

    let run = harness.bbzoom(&args("simaccount"), Some(&secret)).await;
    assert!(run.success(), "{}", run.output());
    assert!(
        run.stdout
            .contains("Zoom issued a token to the Server-to-Server app of account simaccount"),
        "{}",
        run.output()
    );
    assert_eq!(
        harness.stored_credentials().get("zoom-events"),
        Some(&Credential::ZoomServerToServer {
            account_id: "simaccount".into(),
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone().into(),
        })
    );
    assert_hidden(&harness, &run, &app.client_secret);
}
