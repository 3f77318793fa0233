//! What the integration tests share: a simulator on loopback, an environment written for it
//! (identity, encrypted credentials, config), and the real daemon run in-process.
#![allow(dead_code)] // each test binary uses its own part of this module

use bbzoom::config::Config;
use bbzoom::credentials::Credentials;
use bbzoom::daemon::{self, Metrics, Tuning};
use bbzoom::shutdown::ShutdownTrigger;
use bbzoom::sim::{Scenario, SimOptions, Simulator};
use bbzoom::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// A simulator and a config directory pointing at it.
pub struct Harness {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub config: Config,
}

impl Harness {
    /// Starts `scenario` at `speed` and writes a config polling every `poll_sim_secs` simulated seconds.
    pub async fn start(
        scenario: Scenario,
        speed: f64,
        poll_sim_secs: f64,
        subscriptions: &str,
    ) -> Harness {
        let sim = Simulator::start(
            scenario,
            SimOptions {
                speed,
                ..SimOptions::default()
            },
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = bbzoom::demo::write_environment(dir.path(), &sim, poll_sim_secs, subscriptions)
            .unwrap();
        let config = Config::load(&path).unwrap();
        Harness { sim, dir, config }
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Runs the real daemon code in this process on the harness's state directory.
    pub fn run_daemon(&self, tuning: Tuning) -> RunningDaemon {
        let credentials = Credentials::load(
            &self.config.daemon.credentials_file,
            &self.config.daemon.identity_file,
        )
        .unwrap();
        let store = Store::open(&self.config.daemon.state_dir).unwrap();
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

/// Tuning with short delays, so retries happen within a test's time.
pub fn fast_tuning() -> Tuning {
    let mut tuning = Tuning::default();
    tuning.bitbucket_retry.backoff = bbzoom::retry::Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
    };
    tuning.delivery_backoff = bbzoom::retry::Backoff {
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    tuning
}

/// (head, sub-head) of every card each showing in a channel, sorted.
pub fn cards(sim: &Simulator, to_jid: &str) -> Vec<(String, String)> {
    let mut cards: Vec<_> = sim
        .channel(to_jid)
        .iter()
        .map(|m| {
            (
                m.content["head"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                m.content["head"]["sub_head"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    cards.sort();
    cards
}
