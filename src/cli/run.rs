//! `bbzoom run`: the daemon in the foreground. SIGTERM or SIGINT stop it (deliveries under way
//! finish first); SIGHUP, like `bbzoom reload`, makes it re-read its files. It answers the
//! control socket and, under systemd, reports readiness, status and watchdog pings.

use anyhow::Context;
use bbzoom::config::Config;
use bbzoom::control::{self, Envelope, Request};
use bbzoom::credentials::Credentials;
use bbzoom::daemon::{self, Control, Tuning};
use bbzoom::metrics::Metrics;
use bbzoom::sd_notify::Notifier;
use bbzoom::shutdown::ShutdownTrigger;
use bbzoom::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

/// How long the daemon waits for a command that was reading the store to let go of it.
const STORE_PATIENCE: Duration = Duration::from_secs(5);

/// The signals the daemon handles, installed before anything else so that none arriving
/// during start-up kills it by default.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let signals = Signals {
        term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
        int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
        hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
    };
    let config = Config::load(&config_path)?;
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    // The socket first: from now on `bbzoom status` asks (and waits for) this daemon rather
    // than reading the store, whose lock the daemon needs.
    let socket = &config.daemon.control_socket;
    // Removed when `_socket` drops, on every way out of here.
    let (listener, _socket) = control::bind(socket).with_context(|| {
        format!(
            "cannot listen on the control socket {} ([daemon] control_socket)",
            socket.display()
        )
    })?;
    serve(&config, &credentials, listener, signals).await
}

/// Everything after the socket is bound.
async fn serve(
    config: &Config,
    credentials: &Credentials,
    listener: tokio::net::UnixListener,
    signals: Signals,
) -> anyhow::Result<()> {
    let state_dir = config.daemon.state_dir.clone();
    // Its errors name the directory and say what to do: a context would say it twice.
    let store =
        tokio::task::spawn_blocking(move || Store::open_waiting(&state_dir, STORE_PATIENCE))
            .await
            .context("opening the store")??;
    let (requests, received) = mpsc::channel::<Envelope>(16);
    tokio::spawn(control::serve(listener, requests.clone()));
    let metrics = Arc::new(Metrics::default());
    if let Some(address) = config.daemon.metrics {
        let listener = tokio::net::TcpListener::bind(address).await.with_context(|| {
            format!(
                "{}: [daemon] metrics = \"{address}\": cannot listen there (another process on that port?); pick a free port or remove the key",
                config.source.display()
            )
        })?;
        tracing::info!(%address, "serving Prometheus metrics at /metrics");
        tokio::spawn(bbzoom::metrics::serve(
            listener,
            requests.clone(),
            metrics.clone(),
        ));
    }
    let (trigger, shutdown) = bbzoom::shutdown::channel();
    tokio::spawn(handle_signals(signals, requests, trigger));
    let control = Control {
        requests: received,
        notifier: Notifier::from_env(),
    };
    daemon::run_with_control(
        config,
        credentials,
        store,
        Tuning::default(),
        metrics,
        control,
        shutdown,
    )
    .await?;
    Ok(())
}

/// SIGHUP asks for a reload; SIGTERM or SIGINT stops the daemon, a second one at once.
async fn handle_signals(
    mut signals: Signals,
    requests: mpsc::Sender<Envelope>,
    trigger: ShutdownTrigger,
) {
    loop {
        tokio::select! {
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                // The daemon logs the outcome; nobody waits for the reply. A full queue means
                // reloads are already pending, which read the same files.
                let (reply, _) = tokio::sync::oneshot::channel();
                let _ = requests.try_send((Request::Reload, reply));
            }
        }
    }
    tracing::info!("stop signal received; finishing deliveries under way");
    trigger.trigger();
    // A second one means now (an admin's second Ctrl-C): what is not delivered stays in the
    // outbox, and the card in flight may be repeated, as after a crash.
    tokio::select! {
        _ = signals.term.recv() => {}
        _ = signals.int.recv() => {}
    }
    tracing::warn!("second stop signal: exiting without waiting for deliveries under way");
    std::process::exit(1);
}
