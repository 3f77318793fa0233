//! `bbzoom preview` through the real binary against the simulator: the cards of a repository's
//! recent builds for each source, which ones the subscription filters out and where the others
//! would go; nothing sent to Zoom, no store created; unknown repositories refused plainly.

use crate::common::Harness;
use bbzoom::demo::{DEFAULT_BUDGET, SimPolling};
use bbzoom_sim::{Scenario, SimCredential, SimCredentialKind, SimOptions};

/// Simulated seconds per real second: the mixed scenario is over within two real seconds.
const SPEED: f64 = 300.0;

/// One subscription per source of the mixed scenario, each with a filter that leaves some of
/// its builds out.
const SUBSCRIPTIONS: &str = r#"
[[subscription]]
repository = "{web}/acme/api/src/main/"
branches = ["main"]
events = ["all"]
channels = ["ci"]

[[subscription]]
repository = "{web}/acme/web"
source = "statuses"
events = ["all"]
channels = ["ci", "releases"]

[[subscription]]
repository = "{dc}/projects/PLAT/repos/platform/browse"
events = ["failed", "fixed"]
channels = ["releases"]

[[subscription]]
repository = "{web}/acme/ops"
source = ["pipelines", "statuses"]
events = ["all"]
channels = ["ci"]

[[subscription]]
repository = "{web}/acme/ops"
events = ["failed"]
channels = ["releases"]
"#;

/// The mixed scenario once it is over, so what the previews show no longer moves: acme/api
/// built #1 (main, succeeded), #2 (feature branch, failed) and #3 (main, succeeded); Data
/// Center's platform has #58 (release/3.1, failed) and #59 (main, stopped) on its branch tips.
/// The simulator has Data Center's credential, so the environment configures that instance.
async fn harness() -> Harness {
    let credential = |name: &str, kind| SimCredential {
        name: name.to_owned(),
        kind,
    };
    let options = SimOptions {
        speed: SPEED,
        bitbucket_credentials: vec![
            credential(
                "sim-bitbucket",
                SimCredentialKind::AccessToken {
                    token: "sim-bitbucket-token".into(),
                },
            ),
            credential(
                "sim-datacenter",
                SimCredentialKind::DataCenterToken {
                    token: "sim-datacenter-token".into(),
                },
            ),
        ],
        ..SimOptions::default()
    };
    let harness = Harness::start_with(
        Scenario::mixed(),
        options,
        SimPolling::default(),
        DEFAULT_BUDGET,
        SUBSCRIPTIONS,
    )
    .await;
    let end = harness.sim.scenario().end();
    harness.sleep_until(end).await;
    harness
}

/// Runs `bbzoom preview` with `args`; returns its exit status, stdout and stderr.
async fn preview(harness: &Harness, args: &[&str]) -> (Option<i32>, String, String) {
    let run = harness.bbzoom(&[&["preview"], args].concat(), None).await;
    (run.status, run.stdout, run.stderr)
}

/// Nothing reached Zoom and no store was created: a preview is read-only.
fn assert_nothing_sent_or_recorded(harness: &Harness) {
    let stats = harness.sim.stats();
    assert_eq!(
        (stats.zoom_requests, stats.zoom_token_requests, stats.posts),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(
        !harness.config.daemon.state_dir.exists(),
        "{} was created",
        harness.config.daemon.state_dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_prints_the_cards_of_each_source_and_sends_and_records_nothing() {
    let harness = harness().await;
    let web = harness.web_url();

    // Pipelines, found by a URL written differently from the subscription's.
    let (status, stdout, stderr) = preview(&harness, &[&format!("{web}/acme/api.git")]).await;
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    let cards: Vec<&str> = stdout.split("\n\n[").skip(1).collect();
    assert_eq!(
        cards.len(),
        3,
        "three builds so far, newest first:\n{stdout}"
    );
    assert!(
        cards[0].starts_with("succeeded] would go to #ci") && cards[0].contains("Pipeline #3"),
        "{stdout}"
    );
    assert!(
        cards[1].starts_with("failed] NOT SENT: branch \"feature/login-throttle\"")
            && cards[1].contains("❌ FAILED · acme/api · feature/login-throttle"),
        "{stdout}"
    );
    assert!(
        cards[2].starts_with("succeeded] would go to #ci")
            && cards[2].contains("✅ SUCCEEDED · acme/api · main")
            && cards[2].contains("Cache tenant settings for a minute"),
        "{stdout}"
    );

    // --limit keeps the newest.
    let (status, stdout, _) =
        preview(&harness, &[&format!("{web}/acme/api"), "--limit", "1"]).await;
    assert_eq!(status, Some(0));
    assert_eq!(stdout.matches("\n\n[").count(), 1, "{stdout}");
    assert!(stdout.contains("Pipeline #3"), "{stdout}");

    // Cloud commit statuses: the branch and tag tips' statuses, to both channels; a tag's
    // card names the tag and links its page.
    let (status, stdout, stderr) =
        preview(&harness, &[&format!("{web}/acme/web"), "--limit", "20"]).await;
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("acme/web on Bitbucket Cloud, credential \"sim-bitbucket\", subscribed by:\n  [1] statuses; branches **; tags **; bare commits; events all; to #ci, #releases"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would go to #ci, #releases") && stdout.contains("· acme/web · main"),
        "{stdout}"
    );
    assert!(
        stdout.contains("❌ FAILED · acme/web · feature/search"),
        "{stdout}"
    );
    assert!(
        stdout.contains("· acme/web · tag v5.2.0")
            && stdout.contains(&format!("Tag v5.2.0: {web}/acme/web/commits/tag/v5.2.0")),
        "{stdout}"
    );

    // A repository read through both sources by two subscriptions: each source previewed,
    // each card going where the subscriptions that take it say, each channel once.
    let (status, stdout, stderr) = preview(&harness, &[&format!("{web}/acme/ops")]).await;
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("  [3] pipelines and statuses; branches **; tags **; bare commits; events all; to #ci\n  [4] pipelines;")
            && stdout.contains("most recent pipelines")
            && stdout.contains("most recent statuses"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[failed] would go to #ci, #releases"),
        "{stdout}"
    );
    assert!(stdout.contains("[succeeded] would go to #ci\n"), "{stdout}");
    // The statuses Pipelines posts for its runs go nowhere: both channels hear of the runs
    // as pipelines.
    assert!(
        stdout.contains(
            "[failed] NOT SENT: Bitbucket Pipelines posted it for its own run, which these \
             channels hear of as a pipeline\n    ❌ FAILED · acme/ops · feature/terraform-1.9\n    \
             Pipeline #2"
        ),
        "{stdout}"
    );

    // Data Center build statuses, one event filtered out.
    let (status, stdout, stderr) = preview(
        &harness,
        &[&format!(
            "{}/projects/plat/repos/platform",
            harness.sim.datacenter_url().as_str().trim_end_matches('/')
        )],
    )
    .await;
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "[failed] would go to #releases\n    ❌ FAILED · PLAT/platform · release/3.1"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "[stopped] NOT SENT: stopped is not among the events fixed, failed\n    ⏹️ STOPPED · PLAT/platform · main"
        ),
        "{stdout}"
    );

    assert_nothing_sent_or_recorded(&harness);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_an_unknown_repository_says_what_is_wrong() {
    let harness = harness().await;
    let web = harness.web_url();

    // Not subscribed: previewed with the defaults, and Bitbucket does not know it.
    let (status, stdout, stderr) = preview(&harness, &[&format!("{web}/acme/nope")]).await;
    assert_ne!(status, Some(0));
    assert!(
        stdout.starts_with("acme/nope is not subscribed in ")
            && stdout.contains("credential \"sim-bitbucket\""),
        "{stdout}"
    );
    assert!(
        stderr.contains("cannot read the pipelines of acme/nope") && stderr.contains("HTTP 404"),
        "{stderr}"
    );

    // On no configured instance.
    let (status, _, stderr) = preview(&harness, &["https://git.example.org/acme/api"]).await;
    assert_ne!(status, Some(0));
    assert!(
        stderr.contains("cannot preview it")
            && stderr.contains("none of the configured Bitbucket hosts"),
        "{stderr}"
    );

    assert_nothing_sent_or_recorded(&harness);
}
