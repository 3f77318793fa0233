//! The running daemon as an admin and systemd meet it: the real `bbzoom run` process, asked
//! over its control socket (`status`, `reload`), sent SIGHUP and SIGTERM, and listened to on a
//! NOTIFY_SOCKET as systemd would.

use crate::common::{Harness, log_text, signal, sigterm, spawn_daemon};
use bbzoom::demo::{SHOWCASE_SUBSCRIPTIONS, SimPolling};
use bbzoom_sim::Scenario;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// The showcase's subscriptions of acme/api (its first two), and its third (acme/web).
fn showcase_parts() -> (String, String) {
    let tables: Vec<usize> = SHOWCASE_SUBSCRIPTIONS
        .match_indices("[[subscription]]")
        .map(|(at, _)| at)
        .collect();
    (
        SHOWCASE_SUBSCRIPTIONS[..tables[2]].to_owned(),
        SHOWCASE_SUBSCRIPTIONS[tables[2]..tables[3]].to_owned(),
    )
}

async fn harness(subscriptions: &str) -> Harness {
    Harness::start(
        Scenario::showcase(),
        100.0,
        SimPolling::every(10.0),
        subscriptions,
    )
    .await
}

/// The real daemon on the harness's configuration, logging to `daemon.log` beside it.
fn start_daemon(harness: &Harness, envs: &[(&str, &str)]) -> Child {
    spawn_daemon(&harness.config_path(), &daemon_log_path(harness), envs)
}

fn daemon_log_path(harness: &Harness) -> PathBuf {
    harness.dir.path().join("daemon.log")
}

fn daemon_log(harness: &Harness) -> String {
    log_text(&daemon_log_path(harness))
}

/// `bbzoom status --json` once `ready` holds for it, within ten seconds.
async fn status_when(harness: &Harness, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = harness.bbzoom(&["status", "--json"], None).await;
        if out.success() {
            let report: Value = serde_json::from_str(&out.stdout).unwrap();
            if ready(&report) {
                return report;
            }
        }
        assert!(
            Instant::now() < deadline,
            "status never got there; last: {}{}\ndaemon log:\n{}",
            out.stdout,
            out.stderr,
            daemon_log(harness)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The repository sources a status report lists, by repository URL.
fn repositories(report: &Value) -> Vec<String> {
    report["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["repository"].as_str().unwrap().to_owned())
        .collect()
}

fn every_subscription_polled(report: &Value) -> bool {
    report["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["last_poll_ms"].is_i64())
}

/// SIGTERM, then a clean exit within the unit's TimeoutStopSec.
async fn stop(child: Child, harness: &Harness) {
    sigterm(child, &daemon_log_path(harness)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_running_and_says_plainly_when_not() {
    let harness = harness(SHOWCASE_SUBSCRIPTIONS).await;

    let before = harness.bbzoom(&["status"], None).await;
    assert_eq!(before.status, Some(3), "{}", before.stderr);
    assert!(
        before
            .stderr
            .contains("the daemon is not running (nothing answers on"),
        "{}",
        before.stderr
    );
    assert!(
        before.stderr.contains("nothing recorded yet"),
        "never started, so no store to show (and none is created):\n{}",
        before.stderr
    );
    assert!(!harness.config.daemon.state_dir.exists());

    let daemon = start_daemon(&harness, &[]);
    let report = status_when(&harness, every_subscription_polled).await;
    assert_eq!(report["running"], true);
    assert_eq!(repositories(&report).len(), harness.config.watches.len());
    assert!(
        report["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"] == "pipelines"),
        "{report}"
    );
    // acme/api's two subscriptions are one repository source to poll.
    assert_eq!(report["subscriptions"][0]["subscriptions"], 2, "{report}");
    let credentials = report["credentials"].as_array().unwrap();
    assert!(!credentials.is_empty());
    assert!(
        credentials
            .iter()
            .all(|c| c["requests_in_window"].as_u64().unwrap() > 0),
        "{report}"
    );
    // A written budget is a ceiling: status says so, and what Bitbucket advertises above it.
    assert!(
        credentials.iter().all(|c| c["budget_source"]
            .as_str()
            .unwrap()
            .starts_with("configured (a ceiling); Bitbucket advertises")),
        "{report}"
    );
    // Let the scenario's builds move so the store has states to show.
    harness.sleep_until(400.0).await;
    let running = harness.bbzoom(&["status"], None).await;
    assert!(running.success(), "{}", running.stderr);
    let shown = running.stdout;
    // The showcase's builds are new builds, each credited to the poll that found it.
    let finding = found_in_status(&shown);
    assert!(finding > 0, "builds found:\n{shown}");
    for expected in [
        "bbzoom is running",
        "new builds found: ",
        "LAST POLL",
        "REQUESTS IN WINDOW",
        "configured (a ceiling); Bitbucket advertises",
        "CARDS WAITING",
        "dead letters: 0",
    ] {
        assert!(shown.contains(expected), "{expected} in:\n{shown}");
    }
    for subscription in &harness.config.subscriptions {
        assert!(shown.contains(&subscription.url), "{shown}");
    }
    assert!(shown.contains("ok, "), "each poll's outcome:\n{shown}");
    // The store is the daemon's (sled allows one process): dead letters go through the socket.
    let letters = harness.bbzoom(&["dead-letters"], None).await;
    assert!(letters.success(), "{}", letters.stderr);
    assert_eq!(letters.stdout.trim(), "no dead letters");

    stop(daemon, &harness).await;
    let after = harness.bbzoom(&["status"], None).await;
    assert_eq!(after.status, Some(3));
    let recorded = after.stdout;
    assert!(
        recorded.contains("NOT running") && recorded.contains("main · pipeline passing"),
        "the store's last states are shown, lanes as branch · job:\n{recorded}"
    );
    assert!(
        !recorded.contains('\0'),
        "no raw store key reaches the terminal"
    );

    // A store the service's own user owns is not opened by another (as root would after
    // `systemctl stop`): sled could leave files there the service cannot write.
    use std::os::unix::fs::MetadataExt;
    let state = &harness.config.daemon.state_dir;
    if std::fs::metadata(state).unwrap().uid() != 0 {
        eprintln!("not root: the store cannot be given to another user; that part is skipped");
        return;
    }
    let theirs = 4242;
    std::os::unix::fs::chown(state, Some(theirs), None).unwrap();
    let refused = harness.bbzoom(&["status"], None).await;
    assert_eq!(refused.status, Some(3));
    assert!(
        refused.stderr.contains(&format!("belongs to uid {theirs}")),
        "{}",
        refused.stderr
    );
    let letters = harness.bbzoom(&["dead-letters"], None).await;
    assert!(!letters.success());
    assert!(letters.stderr.contains("start the daemon and ask it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_a_bad_file_and_sighup_adds_a_subscription_without_a_restart() {
    let (api, web) = showcase_parts();
    let harness = harness(&api).await;
    let config_path = harness.config_path();
    let good = std::fs::read_to_string(&config_path).unwrap();
    let base = harness
        .sim
        .bitbucket_web_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let web_url = format!("{base}/acme/web");
    let web = web.replace("{web}", &base);

    let mut daemon = start_daemon(&harness, &[]);
    let report = status_when(&harness, every_subscription_polled).await;
    assert_eq!(repositories(&report).len(), 1);

    // A channel that does not exist: reload refuses, names the place, and the old runs on.
    let bad = format!(
        "{good}{}",
        web.replace(
            "channels = [\"ci\", \"releases\"]",
            "channels = [\"nosuch\"]"
        )
    );
    assert!(bad.contains("nosuch"));
    std::fs::write(&config_path, &bad).unwrap();
    let refused = harness.bbzoom(&["reload"], None).await;
    assert_eq!(refused.status, Some(2), "a file to fix");
    let message = refused.stderr;
    assert!(
        message.contains("config.toml:") && message.contains("nosuch"),
        "{message}"
    );
    let report = status_when(&harness, |r| r["last_reload"].is_object()).await;
    assert!(
        report["last_reload"]["outcome"]["Err"].is_string(),
        "{report}"
    );
    assert_eq!(
        repositories(&report).len(),
        1,
        "the old configuration runs on"
    );
    assert!(daemon.try_wait().unwrap().is_none(), "still running");
    let refused_at = report["last_reload"]["at_ms"].as_i64();
    status_when(&harness, |r| {
        r["subscriptions"][0]["last_poll_ms"].as_i64() > refused_at
    })
    .await;

    // The admin fixes it and sends SIGHUP: acme/web is polled, by the same process.
    std::fs::write(&config_path, format!("{good}{web}")).unwrap();
    signal(&daemon, "HUP");
    let report = status_when(&harness, |r| {
        repositories(r).len() == 2 && every_subscription_polled(r)
    })
    .await;
    assert_eq!(
        report["last_reload"]["outcome"]["Ok"]["added"],
        serde_json::json!([format!("{web_url} (pipelines)")]),
        "{report}"
    );
    assert!(daemon.try_wait().unwrap().is_none(), "no restart");
    // Everything else kept its state: the account (limiter, counts) and every channel's worker.
    let outcome = &report["last_reload"]["outcome"]["Ok"];
    assert_eq!(
        outcome["restarted_credentials"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(
        outcome["restarted_channels"],
        serde_json::json!([]),
        "{report}"
    );

    // `bbzoom configure` on a running daemon: the change is written and applied at once.
    let reloaded_at = report["last_reload"]["at_ms"].as_i64().unwrap();
    let configured = harness
        .bbzoom(&["configure", &web_url, "--event", "all"], None)
        .await;
    assert!(configured.success(), "{}", configured.stderr);
    assert!(
        configured.stdout.contains("the running daemon reloaded"),
        "{}",
        configured.stdout
    );
    let report = status_when(&harness, |r| {
        r["last_reload"]["at_ms"].as_i64() > Some(reloaded_at)
            && r["last_reload"]["outcome"]["Ok"].is_object()
    })
    .await;
    assert_eq!(repositories(&report).len(), 2);

    // Unsubscribing acme/api with `bbzoom reload`: it is no longer polled.
    let web_only = good.replacen(&api.replace("{web}", &base), "", 1);
    std::fs::write(&config_path, format!("{web_only}{web}")).unwrap();
    let reloaded = harness.bbzoom(&["reload"], None).await;
    assert!(reloaded.success(), "{}", reloaded.stderr);
    assert!(reloaded.stdout.contains("removed"), "{}", reloaded.stdout);
    let report = status_when(&harness, |r| repositories(r).len() == 1).await;
    assert_eq!(repositories(&report), vec![web_url]);
    stop(daemon, &harness).await;
    let log = daemon_log(&harness);
    assert!(log.contains("reload refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_status_watchdog_reloading_and_stopping() {
    let harness = harness(SHOWCASE_SUBSCRIPTIONS).await;
    let socket_path = harness.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let daemon = start_daemon(
        &harness,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            // Pinged every 200 ms.
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let listener = {
        let heard = heard.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(n) = socket.recv(&mut buf) {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let stopping = message.contains("STOPPING=1");
                    heard.lock().unwrap().push(message);
                    if stopping {
                        return;
                    }
                }
            }
        })
    };
    let count = |what: &str| {
        heard
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains(what))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count("WATCHDOG=1") < 3 {
        assert!(
            Instant::now() < deadline,
            "heard: {:?}",
            heard.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reloaded = harness.bbzoom(&["reload"], None).await;
    assert!(reloaded.success(), "{}", reloaded.stderr);
    stop(daemon, &harness).await;
    listener.join().unwrap();
    let heard = heard.lock().unwrap().clone();
    let polling = format!(
        "STATUS=polling {} repository source(s)",
        harness.config.watches.len()
    );
    let first = |what: &str| {
        heard
            .iter()
            .position(|m| m.contains(what))
            .unwrap_or_else(|| panic!("{what} in {heard:?}"))
    };
    assert_eq!(first("READY=1"), 0, "{heard:?}");
    assert!(heard.iter().any(|m| m.starts_with(&polling)), "{heard:?}");
    let reloading = first("RELOADING=1");
    assert!(heard[reloading].contains("MONOTONIC_USEC="));
    assert!(
        heard[reloading..].iter().any(|m| m.contains("READY=1")),
        "READY follows RELOADING: {heard:?}"
    );
    assert!(first("STOPPING=1") > reloading);
}

/// The real daemon code in this process, on the showcase with a second Bitbucket token
/// ("second") the simulator knows, driven through its control channel as the socket would.
struct InProcess {
    harness: Harness,
    requests: tokio::sync::mpsc::Sender<bbzoom::control::Envelope>,
    trigger: bbzoom::shutdown::ShutdownTrigger,
    daemon: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start() -> InProcess {
        use bbzoom_sim::{SimCredential, SimCredentialKind, SimOptions, SimStart};
        let mut options = SimOptions {
            speed: 40.0,
            start: SimStart::AtFirstRequest,
            ..SimOptions::default()
        };
        options.bitbucket_credentials.push(SimCredential {
            name: "second".into(),
            kind: SimCredentialKind::AccessToken {
                token: "second-token".into(),
            },
        });
        let harness = Harness::start_with(
            Scenario::showcase(),
            options,
            SimPolling::every(10.0),
            bbzoom::demo::DEFAULT_BUDGET * 10,
            SHOWCASE_SUBSCRIPTIONS,
        )
        .await;
        let credentials = harness.stored_credentials();
        let store = bbzoom::store::Store::open(&harness.config.daemon.state_dir).unwrap();
        let (requests, received) = tokio::sync::mpsc::channel(1);
        let (trigger, shutdown) = bbzoom::shutdown::channel();
        let config = harness.config.clone();
        let tuning = harness.tuning();
        let daemon = tokio::spawn(async move {
            let control = bbzoom::daemon::Control {
                requests: received,
                notifier: Default::default(),
            };
            let metrics = Default::default();
            bbzoom::daemon::run_with_control(
                &config,
                &credentials,
                store,
                tuning,
                metrics,
                control,
                shutdown,
            )
            .await
            .unwrap();
        });
        InProcess {
            harness,
            requests,
            trigger,
            daemon,
        }
    }

    /// Replaces the first `from` in the configuration file with `to`.
    fn edit(&self, from: &str, to: &str) {
        let path = self.harness.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} in:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// The daemon's answer to `request`, as JSON.
    async fn ask(&self, request: bbzoom::control::Request) -> Value {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests.send((request, reply)).await.unwrap();
        serde_json::to_value(answer.await.unwrap()).unwrap()
    }

    async fn reload(&self) -> Value {
        self.ask(bbzoom::control::Request::Reload).await
    }

    /// The status report once `ready` holds for it, within ten seconds.
    async fn status_when(&self, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let report = self.ask(bbzoom::control::Request::Status).await;
            let report = &report["Ok"]["status"];
            if ready(report) {
                return report.clone();
            }
            assert!(
                Instant::now() < deadline,
                "status never got there: {report}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.trigger.trigger();
        self.daemon.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_restarts_only_what_changed() {
    let daemon = InProcess::start().await;
    let nothing = serde_json::json!({"Ok": {"reloaded": {
        "added": [], "removed": [], "restarted_channels": [],
        "restarted_credentials": [], "needs_restart": []
    }}});
    assert_eq!(
        daemon.reload().await,
        nothing,
        "the same files change nothing"
    );

    // acme/web moves to the second token, which starts polling it; nothing restarts (the two
    // schedulers take turns on it: see two_polls_of_one_repository_at_once_record_each_change_once).
    daemon.edit("/acme/web\"\n", "/acme/web\"\ncredential = \"second\"\n");
    let moved = daemon.reload().await;
    let summary = &moved["Ok"]["reloaded"];
    assert_eq!(
        summary["restarted_credentials"],
        serde_json::json!([]),
        "{moved}"
    );
    assert_eq!(
        summary["restarted_channels"],
        serde_json::json!([]),
        "{moved}"
    );

    // A budget of its own for the second token: only its scheduler restarts.
    daemon.edit(
        "\n[zoom]",
        "\n[bitbucket.budgets]\nsecond = { requests = 5000, per = \"90s\" }\n\n[zoom]",
    );
    let budget = daemon.reload().await;
    assert_eq!(
        budget["Ok"]["reloaded"]["restarted_credentials"],
        serde_json::json!(["second"]),
        "{budget}"
    );

    // One channel's style: only its worker restarts. A new state directory needs a restart.
    daemon.edit(
        "[zoom.channels.releases]\n",
        "[zoom.channels.releases]\nstyle = \"post\"\n",
    );
    daemon.edit("state_dir = \"", "state_dir = \"elsewhere-");
    let styled = daemon.reload().await;
    let summary = &styled["Ok"]["reloaded"];
    assert_eq!(
        summary["restarted_channels"],
        serde_json::json!(["releases"]),
        "{styled}"
    );
    assert_eq!(
        summary["restarted_credentials"],
        serde_json::json!([]),
        "{styled}"
    );
    assert_eq!(
        summary["needs_restart"],
        // The default control socket lives in the state directory: it moves too.
        serde_json::json!(["[daemon] state_dir", "[daemon] control_socket"]),
        "{styled}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_an_absurd_number_is_refused_and_the_running_configuration_stays() {
    let daemon = InProcess::start().await;
    daemon.status_when(every_subscription_polled).await;
    daemon.edit(
        "\n[zoom",
        "\n[bitbucket.budgets]\nsim-bitbucket = { requests = 100, per = \"4000000h\" }\n\n[zoom",
    );
    let refused = daemon.reload().await;
    let why = refused["Err"]
        .as_str()
        .unwrap_or_else(|| panic!("{refused}"));
    assert!(
        why.contains("bitbucket.budgets.sim-bitbucket.per") && why.contains("\"24h\""),
        "{why}"
    );
    // The daemon runs on, on the configuration it had: still polling, and answering.
    let polled_at = bbzoom::clock::now_ms();
    let report = daemon
        .status_when(|r| {
            r["subscriptions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["last_poll_ms"].as_i64() > Some(polled_at))
        })
        .await;
    assert!(
        report["last_reload"].to_string().contains("4000000h"),
        "{report}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_moved_off_a_paused_credential_is_polled_by_its_new_one_at_once() {
    use bbzoom_sim::BitbucketFault;
    let daemon = InProcess::start().await;
    daemon.status_when(every_subscription_polled).await;
    // Bitbucket pauses the first token for ten minutes: its polls wait, each holding its
    // repository's turn.
    daemon.harness.sim.fail_next_bitbucket_calls(
        1,
        BitbucketFault::RateLimited {
            retry_after: Some("600".into()),
        },
    );
    daemon
        .status_when(|r| r["credentials"][0]["paused_for_secs"].as_u64() > Some(0))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The admin moves acme/web to the second token: it is polled at once, not in ten minutes.
    daemon.edit("/acme/web\"\n", "/acme/web\"\ncredential = \"second\"\n");
    let moved_at = bbzoom::clock::now_ms();
    assert!(daemon.reload().await["Ok"].is_object());
    let web = |r: &Value| {
        r["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["repository"].as_str().unwrap().ends_with("/acme/web"))
            .unwrap()
            .clone()
    };
    let report = daemon
        .status_when(|r| web(r)["last_poll_ms"].as_i64() > Some(moved_at))
        .await;
    assert_eq!(web(&report)["credential"], "second");
    assert!(
        web(&report)["last_outcome"]
            .as_str()
            .unwrap()
            .starts_with("ok"),
        "{report}"
    );
    daemon.stop().await;
}

/// The sum of the counts on `status`'s "new builds found" line.
fn found_in_status(shown: &str) -> u64 {
    let line = shown
        .lines()
        .find(|l| l.starts_with("new builds found: "))
        .unwrap_or_else(|| panic!("no \"new builds found\" line in:\n{shown}"));
    let (found, _) = line.split_once(" (").unwrap_or((line, ""));
    found
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// Local clients that connect and say nothing (a stuck script, a hostile user) neither delay
/// `status` nor fill the socket: each is let go after a short patience, and past a bound the
/// oldest silent one makes room for a client that talks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_neither_stall_nor_lock_out_status() {
    use tokio::io::AsyncReadExt;
    let harness = harness(SHOWCASE_SUBSCRIPTIONS).await;
    let daemon = start_daemon(&harness, &[]);
    status_when(&harness, |report| report["running"] == true).await;
    let socket = harness.config.daemon.control_socket.clone();

    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::UnixStream::connect(&socket).await.unwrap());
    }
    let asked = Instant::now();
    let reply = bbzoom::control::ask(&socket, &bbzoom::control::Request::Status)
        .await
        .unwrap();
    let took = asked.elapsed();
    assert!(
        matches!(reply, Ok(bbzoom::control::Answer::Status(_))),
        "{reply:?}"
    );
    assert!(
        took < Duration::from_secs(1),
        "status took {took:?} behind 100 silent clients"
    );

    // Each silent client is hung up on, soon, whether evicted or out of patience.
    for mut client in silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a silent client is let go: {read:?}"
        );
    }
    stop(daemon, &harness).await;
}

/// With `[daemon] metrics` set, the running daemon serves Prometheus metrics on that loopback
/// address: per credential, per channel, the delivery latency histogram and task restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_loopback_in_the_prometheus_format() {
    let harness = harness(SHOWCASE_SUBSCRIPTIONS).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = harness.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "[daemon]\n",
        &format!("[daemon]\nmetrics = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let daemon = start_daemon(&harness, &[]);
    status_when(&harness, every_subscription_polled).await;

    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = match reqwest::get(&url).await {
            Ok(response) if response.status().is_success() => response.text().await.unwrap(),
            _ => String::new(),
        };
        // Once a card was delivered, every metric has a value to show.
        if body.contains("bbzoom_delivery_latency_seconds_count")
            && !body.contains("bbzoom_cards_sent_total 0")
            && !body.is_empty()
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed a delivery:\n{body}\n{}",
            daemon_log(&harness)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let value = |prefix: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} in:\n{body}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let credential = "credential=\"sim-bitbucket\"";
    assert!(value(&format!("bbzoom_polls_total{{{credential}}}")) > 0.0);
    assert!(value(&format!("bbzoom_bitbucket_requests_total{{{credential}}}")) > 0.0);
    assert_eq!(
        value(&format!(
            "bbzoom_bitbucket_rate_limited_total{{{credential}}}"
        )),
        0.0
    );
    assert!(value(&format!("bbzoom_budget_left{{{credential}}}")) > 0.0);
    assert!(value("bbzoom_transitions_total") > 0.0);
    assert!(value("bbzoom_cards_sent_total") > 0.0);
    assert!(value("bbzoom_outbox_depth{channel=") >= 0.0);
    assert_eq!(value("bbzoom_dead_letters"), 0.0);
    assert!(value("bbzoom_delivery_latency_seconds_count") > 0.0);
    assert!(
        !body.contains("bbzoom_task_restarts_total{"),
        "no task restarted:\n{body}"
    );
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let missing = reqwest::get(format!("http://127.0.0.1:{port}/other"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    stop(daemon, &harness).await;
}
