//! The `bbzoom` binary as an admin runs it: help, check, and the demo's JSON summary.

use std::process::Command;

fn bbzoom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bbzoom"))
}

/// Runs `bbzoom demo --json` with `args`; returns its commentary (stderr) and the summary, which
/// is the whole of stdout.
fn demo_json(args: &[&str]) -> (String, serde_json::Value) {
    let out = bbzoom()
        .args(["demo", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}):\n{stdout}"));
    (String::from_utf8(out.stderr).unwrap(), summary)
}

/// The showcase on a simulator at real speed, with its environment written.
async fn showcase() -> crate::common::Harness {
    crate::common::Harness::start(
        bbzoom_sim::Scenario::showcase(),
        1.0,
        bbzoom::demo::SimPolling::default(),
        bbzoom::demo::SHOWCASE_SUBSCRIPTIONS,
    )
    .await
}

/// Every command, as `bbzoom help` must list it.
const COMMANDS: [&str; 12] = [
    "run",
    "connect",
    "disconnect",
    "configure",
    "unsubscribe",
    "subscriptions",
    "check",
    "preview",
    "status",
    "reload",
    "dead-letters",
    "demo",
];

#[test]
fn help_lists_every_command_with_an_example_and_each_command_explains_itself() {
    let out = bbzoom().arg("help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let examples = &text[text.find("Examples:").expect("an examples section")..];
    for command in COMMANDS {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} listed with its purpose in:\n{text}"
        );
        assert!(
            examples.contains(&format!("bbzoom {command}")),
            "an example of {command} in:\n{examples}"
        );
        let out = bbzoom().args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains("Example") && help.contains(&format!("bbzoom {command}")),
            "{command} --help gives an example:\n{help}"
        );
    }
}

#[test]
fn demo_json_summary_is_complete_and_clean() {
    let (commentary, summary) = demo_json(&["--speed", "400"]);
    assert!(
        commentary.contains("FIXED · acme/"),
        "cards are printed as they arrive:\n{commentary}"
    );
    for key in [
        "builds",
        "transitions",
        "cards",
        "bitbucket_requests",
        "missed",
        "duplicates",
    ] {
        assert!(
            summary.get(key).is_some_and(serde_json::Value::is_u64),
            "{key} in {summary}"
        );
    }
    assert_eq!(summary["missed"], 0, "{summary}");
    assert_eq!(summary["duplicates"], 0, "{summary}");
    assert!(
        summary.get("chat").is_none(),
        "no chat without --chat: {summary}"
    );
    assert!(summary["cards"].as_u64().unwrap() >= 10, "{summary}");
    assert!(
        summary["bitbucket_requests"].as_u64().unwrap() > 0,
        "{summary}"
    );
}

#[test]
fn demo_chat_answers_every_command_once_across_two_disconnects() {
    let (commentary, summary) = demo_json(&["--speed", "400", "--chat"]);
    assert!(
        commentary.contains("Dana Dev: bbzoom status"),
        "commands are printed:\n{commentary}"
    );
    assert!(
        commentary.contains("bbzoom (in the thread): Status of ci"),
        "answers are printed:\n{commentary}"
    );
    assert!(
        commentary.contains("Only bbzoom's admins may subscribe"),
        "a bystander's subscribe is refused:\n{commentary}"
    );
    let chat = &summary["chat"];
    assert_eq!(chat["forced_disconnects"], 2, "{summary}");
    assert!(chat["connections"].as_u64().unwrap() >= 3, "{summary}");
    let commands = chat["commands"].as_u64().unwrap();
    assert!(commands >= 6, "{summary}");
    assert_eq!(chat["answered_once"], commands, "{summary}");
    assert_eq!(chat["lost"], 0, "{summary}");
    assert_eq!(chat["repeated"], 0, "{summary}");
    // acme/api fails on two branches in the showcase (main and a feature branch), and its
    // subscription asks for war rooms: one each.
    assert_eq!(chat["war_rooms"], 2, "{summary}");
    assert_eq!(summary["missed"], 0, "{summary}");
    assert_eq!(summary["duplicates"], 0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_summarises_a_valid_setup_and_rejects_a_broken_one_with_exit_2() {
    let harness = showcase().await;
    let out = bbzoom()
        .arg("check")
        .arg("--config")
        .arg(harness.config_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("acme/web"), "{stdout}");
    assert!(stdout.contains("#releases"), "{stdout}");

    let broken = harness.dir.path().join("broken.toml");
    let text = std::fs::read_to_string(harness.config_path())
        .unwrap()
        .replace("channels = [\"releases\"]", "channels = [\"ops\"]");
    std::fs::write(&broken, text).unwrap();
    let out = bbzoom()
        .arg("check")
        .arg("--config")
        .arg(&broken)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.toml:") && stderr.contains("ops"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_writing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let harness = showcase().await;
    // `bbzoom check | head -1` once head has gone: every write to stdout fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bbzoom()
        .arg("check")
        .arg("--config")
        .arg(harness.config_path())
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_run_refuse_an_absurd_budget_alike() {
    let harness = showcase().await;
    let path = harness.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, tail) = text.split_once("\n[zoom").expect("a [zoom] table");
    let absurd = format!(
        "{head}\n[bitbucket.budgets]\nsim-bitbucket = {{ requests = 100, per = \"4000000h\" }}\n\n[zoom{tail}"
    );
    std::fs::write(&path, absurd).unwrap();
    for command in ["check", "run"] {
        let out = bbzoom()
            .arg(command)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("bitbucket.budgets.sim-bitbucket.per")
                && stderr.contains("the most this key allows"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn demo_time_compression_keeps_the_budget_and_misses_nothing_under_faults() {
    for faults in ["rate-limit-storm", "flaky"] {
        let (_, summary) = demo_json(&[
            "--repos", "12", "--hours", "1", "--speed", "1000", "--budget", "600", "--faults",
            faults,
        ]);
        for key in [
            "bitbucket_requests_max_per_hour",
            "latency_p50_s",
            "latency_p95_s",
            "latency_max_s",
        ] {
            assert!(
                summary.get(key).is_some_and(|v| v.is_number()),
                "{faults}: {key} in {summary}"
            );
        }
        assert!(
            summary["bitbucket_requests_max_per_hour"].as_u64().unwrap() <= 600,
            "{faults}: {summary}"
        );
        assert_eq!(summary["missed"], 0, "{faults}: {summary}");
        assert_eq!(summary["duplicates"], 0, "{faults}: {summary}");
        assert!(
            summary["cards"].as_u64().unwrap() > 0,
            "{faults}: {summary}"
        );
    }
}

#[test]
fn demo_under_zoom_faults_misses_and_repeats_nothing() {
    // Zoom's 429s ask for whole real seconds, each many simulated ones: that run goes slower.
    for (faults, speed) in [("zoom-outage", "400"), ("zoom-rate-limit", "120")] {
        let (commentary, summary) = demo_json(&["--speed", speed, "--faults", faults]);
        for key in ["posts", "edits", "dead_letters"] {
            assert!(
                summary.get(key).is_some_and(serde_json::Value::is_u64),
                "{faults}: {key} in {summary}"
            );
        }
        assert!(
            summary["edits"].as_u64().unwrap() > 0,
            "cards are edited in place: {summary}"
        );
        assert!(
            commentary.contains("(card edited)"),
            "the demo shows edits as edits"
        );
        assert_eq!(summary["missed"], 0, "{faults}: {summary}");
        assert_eq!(summary["duplicates"], 0, "{faults}: {summary}");
        assert_eq!(summary["dead_letters"], 0, "{faults}: {summary}");
    }
}

#[test]
fn demo_burst_delivers_every_result_card_by_card() {
    let (commentary, summary) = demo_json(&["--speed", "400", "--faults", "burst"]);
    assert!(summary["builds"].as_u64().unwrap() >= 40, "{summary}");
    assert_eq!(summary["missed"], 0, "{summary}");
    assert_eq!(summary["duplicates"], 0, "{summary}");
    assert_eq!(summary["dead_letters"], 0, "{summary}");
    assert!(!commentary.contains("📋"), "nothing folded:\n{commentary}");
    assert!(
        commentary.contains("· tag v3.0.0"),
        "tag builds announced:\n{commentary}"
    );
}

#[test]
fn a_debug_level_demo_logs_no_secret_and_json_logs_are_one_object_per_line() {
    let out = bbzoom()
        .args(["--log-format", "json", "demo", "--speed", "400"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stderr.lines().count() > 100, "debug logging is on");
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    // Every secret the demo's simulator knows: Bitbucket token, Zoom client secret, webhook
    // token, and the age identity written for the run.
    let options = bbzoom_sim::SimOptions::default();
    let mut secrets = vec![
        options.zoom.client_secret.clone(),
        "AGE-SECRET-KEY".to_owned(),
    ];
    secrets.extend(options.bitbucket_token().map(str::to_owned));
    secrets.extend(options.zoom.webhooks.iter().map(|w| w.token.clone()));
    for secret in secrets {
        assert!(
            !stderr.contains(&secret) && !stdout.contains(&secret),
            "{secret} leaked"
        );
    }
    assert!(
        !stderr.to_ascii_lowercase().contains("bearer "),
        "no Authorization header is logged"
    );
}
