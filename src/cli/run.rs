//! `bbzoom run`: the daemon in the foreground. SIGTERM or SIGINT stop it (deliveries under way
//! finish first); SIGHUP, like `bbzoom reload`, makes it re-read its files. It answers the
//! control socket and, under systemd, reports readiness, status and watchdog pings.

use anyhow::Context;
use bbzoom::config::Config;
use bbzoom::control::{self, Envelope, Request};
use bbzoom::credentials::Credentials;
use bbzoom::daemon::{self, Control, Metrics, Tuning};
use bbzoom::notify::Notifier;
use bbzoom::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// How long the daemon waits for a command that was reading the store to let go of it.
const STORE_PATIENCE: Duration = Duration::from_secs(5);

pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    // The socket first: from now on `bbzoom status` asks (and waits for) this daemon rather
    // than reading the store, whose lock the daemon needs.
    let socket = &config.daemon.control_socket;
    let listener = control::bind(socket).with_context(|| {
        format!(
            "cannot listen on the control socket {} ([daemon] control_socket)",
            socket.display()
        )
    })?;
    let state_dir = config.daemon.state_dir.clone();
    let opened =
        tokio::task::spawn_blocking(move || Store::open_waiting(&state_dir, STORE_PATIENCE))
            .await
            .context("opening the store")?;
    let store = opened.with_context(|| {
        let _ = std::fs::remove_file(socket);
        format!(
            "cannot open the store in {} (is another bbzoom running on it?)",
            config.daemon.state_dir.display()
        )
    })?;
    let (requests, received) = mpsc::channel::<Envelope>(16);
    tokio::spawn(control::serve(listener, requests.clone()));
    let (trigger, shutdown) = bbzoom::shutdown::channel();
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    // The daemon logs the outcome; nobody waits for the reply.
                    let (reply, _) = tokio::sync::oneshot::channel();
                    let _ = requests.send((Request::Reload, reply)).await;
                }
            }
        }
        tracing::info!("stop signal received; finishing deliveries under way");
        trigger.trigger();
    });
    let control = Control {
        requests: received,
        notifier: Notifier::from_env(),
    };
    let result = daemon::run_with_control(
        &config,
        &credentials,
        store,
        Tuning::default(),
        Arc::new(Metrics::default()),
        control,
        shutdown,
    )
    .await;
    let _ = std::fs::remove_file(socket);
    result?;
    Ok(())
}
