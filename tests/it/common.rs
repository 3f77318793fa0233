//! What the integration tests share: a simulator on loopback, an environment written for it
//! (identity, encrypted credentials, config), and the real daemon run in-process.

use bbzoom::config::Config;
use bbzoom::credentials::Credentials;
use bbzoom::daemon::{self, Tuning};
use bbzoom::demo::{
    DEFAULT_BUDGET, Environment, SHOWCASE_SUBSCRIPTIONS, SimPolling, write_environment,
};
use bbzoom::metrics::Metrics;
use bbzoom::shutdown::ShutdownTrigger;
use bbzoom::store::Store;
use bbzoom_sim::{Scenario, SimBuild, SimOptions, SimRepo, SimSource, SimStart, Simulator};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A simulator and a config directory pointing at it.
pub struct Harness {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub config: Config,
    /// What the configuration was written from, for [`Harness::rewrite`].
    pub env: Environment,
}

impl Harness {
    /// Starts `scenario` at `speed` and writes a config polling at `polling` (simulated time),
    /// with a budget that never throttles that polling, and a Bitbucket limit above it:
    /// scripted tests check exact states.
    /// The scenario's clock is held until the first request reaches the simulator, so however
    /// long a daemon takes to start, it sees the scenario from its beginning.
    pub async fn start(
        scenario: Scenario,
        speed: f64,
        polling: SimPolling,
        subscriptions: &str,
    ) -> Harness {
        let options = SimOptions {
            speed,
            start: SimStart::AtFirstRequest,
            ..SimOptions::default()
        };
        Harness::start_timed(scenario, options, polling, subscriptions).await
    }

    /// As [`Harness::start`], with the simulator's options (its speed and clock) chosen by the
    /// test.
    pub async fn start_timed(
        scenario: Scenario,
        options: SimOptions,
        polling: SimPolling,
        subscriptions: &str,
    ) -> Harness {
        // Three requests a poll, every repository hot: more than any scripted test spends.
        let budget = (scenario.repos.len() as f64 * 3.0 * 3600.0 / polling.hot) as u32;
        let budget = budget.max(DEFAULT_BUDGET);
        // Bitbucket's own limit well above it: a server advertising less (`X-RateLimit-Limit`)
        // has the daemon lower its budget to 90% of that, and pace it.
        let options = SimOptions {
            bitbucket_limit_per_hour: options.bitbucket_limit_per_hour.max(u64::from(budget) * 2),
            ..options
        };
        Harness::start_with(scenario, options, polling, budget, subscriptions).await
    }

    /// As [`Harness::start`], with every simulator option and the budget chosen by the test
    /// (`None`: none written, each instance's default).
    pub async fn start_with(
        scenario: Scenario,
        options: SimOptions,
        polling: SimPolling,
        budget: impl Into<Option<u32>>,
        subscriptions: &str,
    ) -> Harness {
        let sim = Simulator::start(scenario, options).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let env = Environment {
            polling,
            budget: budget.into(),
            subscriptions: subscriptions.to_owned(),
            chat_commands: false,
        };
        let path = write_environment(dir.path(), &sim, &env).unwrap();
        let config = Config::load(&path).unwrap();
        Harness {
            sim,
            dir,
            config,
            env,
        }
    }

    /// Writes the configuration (and credentials) again from the environment as `change`
    /// leaves it.
    pub fn rewrite(&mut self, change: impl FnOnce(&mut Environment)) {
        change(&mut self.env);
        let path = write_environment(self.dir.path(), &self.sim, &self.env).unwrap();
        self.config = Config::load(&path).unwrap();
    }

    /// The showcase scenario in real time at the default polling, with
    /// [`SHOWCASE_SUBSCRIPTIONS`]: three Cloud subscriptions on credential "sim-bitbucket", the
    /// chatbot on "sim-zoom" and the #alerts webhook on "sim-webhook-sim-alerts".
    pub async fn showcase() -> Harness {
        Harness::start(
            Scenario::showcase(),
            1.0,
            SimPolling::default(),
            SHOWCASE_SUBSCRIPTIONS,
        )
        .await
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The web URL of the simulated Bitbucket Cloud (what `{web}` stands for in
    /// subscriptions), without a trailing slash.
    pub fn web_url(&self) -> String {
        let url = self.sim.bitbucket_web_url();
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// The credentials in the harness's credentials file, decrypted with its identity.
    pub fn stored_credentials(&self) -> Credentials {
        let daemon = &self.config.daemon;
        Credentials::load(&daemon.credentials_file, &daemon.identity_file).unwrap()
    }

    /// Runs the real binary as `bbzoom ARGS --config <the harness's config>`, with `stdin` as
    /// its input (`None`: no input at all); either way stdin is not a terminal. Async, so the
    /// in-process simulator keeps answering while it runs.
    pub async fn bbzoom(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bbzoom"));
        command
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            // At debug level: every test that checks a command shows no secret checks its
            // most talkative logs too.
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().unwrap();
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            // A command that fails before reading its input has closed it: that failure is
            // what the test then looks at, not this write's.
            let _ = input.write_all(text.as_bytes()).await;
        }
        let out = child.wait_with_output().await.unwrap();
        Run {
            status: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// The daemon's built-in delays, backoffs and paces compressed by the simulator's speed,
    /// and the simulator's calendar, as `bbzoom demo` runs them: a compressed run behaves like
    /// a real one.
    pub fn tuning(&self) -> Tuning {
        bbzoom::demo::tuning(&self.sim)
    }

    /// Runs the real daemon code in this process on the harness's state directory, with
    /// [`Harness::tuning`].
    pub fn run_daemon(&self) -> RunningDaemon {
        let tuning = self.tuning();
        let credentials = self.stored_credentials();
        // A daemon stopped just before may leave sled's lock held a moment longer.
        let store =
            Store::open_waiting(&self.config.daemon.state_dir, Duration::from_secs(5)).unwrap();
        let metrics = Arc::new(Metrics::default());
        let (trigger, shutdown) = bbzoom::shutdown::channel();
        let config = self.config.clone();
        let task_store = store.clone();
        let task_metrics = metrics.clone();
        let task = tokio::spawn(async move {
            daemon::run(
                &config,
                &credentials,
                task_store,
                tuning,
                task_metrics,
                shutdown,
            )
            .await
            .unwrap();
        });
        RunningDaemon {
            trigger,
            task,
            store,
            metrics,
        }
    }

    /// Waits until simulated second `at` (at once if it has passed). Panics when the clock
    /// has not got there well after it should have: a held clock nothing started, or a stall.
    pub async fn sleep_until(&self, at: f64) {
        let real = Duration::from_secs_f64(at.max(0.0) / self.sim.options().speed);
        let deadline = tokio::time::Instant::now() + real + Duration::from_secs(30);
        while self.sim.now() < at {
            assert!(
                tokio::time::Instant::now() < deadline,
                "simulated second {at} not reached (now {:.1}); is the clock held with nothing \
                 running (see SimStart::Immediately)?",
                self.sim.now()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (bounded) until the scenario is over and the daemon has delivered everything.
    pub async fn wait_caught_up(&self, store: &Store, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !bbzoom::demo::caught_up(&self.sim, &self.config, store).unwrap() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the daemon did not catch up within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How one run of the binary ended (its exit status, `None` if a signal ended it) and what it
/// printed.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Both streams, for failure messages.
    pub fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// The daemon running in-process, and the handles to stop and inspect it.
pub struct RunningDaemon {
    pub trigger: ShutdownTrigger,
    pub task: tokio::task::JoinHandle<()>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

impl RunningDaemon {
    /// Stops it as SIGTERM would and waits until it has released the store.
    pub async fn stop(self) {
        self.trigger.trigger();
        self.task.await.unwrap();
        drop(self.store);
    }
}

/// "head (sub-head)" of a card's content.
fn title(content: &serde_json::Value) -> String {
    format!(
        "{} ({})",
        content["head"]["text"].as_str().unwrap_or_default(),
        content["head"]["sub_head"]["text"]
            .as_str()
            .unwrap_or_default()
    )
}

/// A harness over `scenario`, all subscribed, with `budget` requests an hour: the simulator at
/// 300x, its clock waiting for the daemon's first request; production polling targets but an
/// hour between looks at an idle repository, and the scan every 30 s. What tests of what is
/// found sooner than the sweep (a scan, a schedule, a restart) run on.
pub async fn sparse_sweeps(scenario: Scenario, budget: u32) -> Harness {
    let subscriptions = bbzoom::demo::subscribe_all(&scenario);
    let options = SimOptions {
        speed: 300.0,
        start: SimStart::AtFirstRequest,
        ..SimOptions::default()
    };
    let polling = SimPolling {
        cold: 3600.0,
        scan: Some(30.0),
        ..SimPolling::default()
    };
    Harness::start_with(scenario, options, polling, budget, &subscriptions).await
}

/// `count` idle repositories `acme/repo-NNNN`.
pub fn idle(count: usize) -> Vec<SimRepo> {
    (1..=count)
        .map(|i| SimRepo {
            workspace: "acme".into(),
            slug: format!("repo-{i:04}"),
            ..SimRepo::default()
        })
        .collect()
}

/// Cloud Pipelines repository `acme/{slug}` with `builds`.
pub fn acme_pipelines(slug: &str, builds: Vec<SimBuild>) -> SimRepo {
    SimRepo::new("acme", slug, SimSource::CloudPipelines, builds)
}

/// Repository `acme/{slug}` on Bitbucket Cloud with an outside CI posting `builds` as
/// commit statuses.
pub fn acme_statuses(slug: &str, builds: Vec<SimBuild>) -> SimRepo {
    SimRepo::new("acme", slug, SimSource::CloudStatuses, builds)
}

/// Every card a channel shows (thread replies aside), each as the sequence of titles it showed:
/// as posted, then after each edit. Sorted, so tests compare sets.
pub fn cards(sim: &Simulator, to_jid: &str) -> Vec<Vec<String>> {
    let mut cards: Vec<Vec<String>> = sim
        .channel(to_jid)
        .iter()
        .filter(|m| m.reply_to.is_none())
        .map(|m| {
            std::iter::once(&m.first_content)
                .chain(m.edits.iter().map(|(_, c)| c))
                .map(title)
                .collect()
        })
        .collect();
    cards.sort();
    cards
}

/// The titles of the thread replies in a channel, sorted.
pub fn replies(sim: &Simulator, to_jid: &str) -> Vec<String> {
    let mut replies: Vec<String> = sim
        .channel(to_jid)
        .iter()
        .filter(|m| m.reply_to.is_some())
        .map(|m| title(&m.content))
        .collect();
    replies.sort();
    replies
}

/// `text` with the first `from` replaced by `to`; `from` must occur, so a stale expectation
/// fails loudly instead of comparing against the unchanged text.
#[track_caller]
pub fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in:\n{text}");
    text.replacen(from, to, 1)
}

/// The real `bbzoom run` on `config`, its log appended to `log`, with `envs` set.
pub fn spawn_daemon(config: &Path, log: &Path, envs: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_bbzoom"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "bbzoom=info")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// What the daemons of a test logged so far.
pub fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits, for `within` at most, until the daemons of a test have logged `line` `count` times.
pub async fn wait_for_log(log: &Path, line: &str, count: usize, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while log_text(log).matches(line).count() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{line:?} not logged {count} times; log:\n{}",
            log_text(log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends signal `name` ("HUP", "TERM") to `child`.
pub fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Stops the daemon as systemd does: SIGTERM, then a clean exit within the unit's
/// `TimeoutStopSec`. Async, so the in-process simulator keeps answering its last deliveries.
pub async fn sigterm(mut child: Child, log: &Path) {
    signal(&child, "TERM");
    let deadline = std::time::Instant::now() + timeout_stop_sec();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after TimeoutStopSec; log:\n{}",
            log_text(log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; log:\n{}",
        log_text(log)
    );
}

/// The unit's `TimeoutStopSec=`, in seconds as the unit writes it ("90s").
fn timeout_stop_sec() -> Duration {
    let unit = include_str!("../../systemd/bbzoom.service");
    let value = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
        .expect("the unit sets TimeoutStopSec");
    Duration::from_secs(value.trim_end_matches('s').parse().expect("seconds"))
}
