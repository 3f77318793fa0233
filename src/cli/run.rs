//! `bbzoom run`: the daemon in the foreground, stopped by SIGTERM or SIGINT.

use anyhow::Context;
use bbzoom::config::Config;
use bbzoom::credentials::Credentials;
use bbzoom::daemon::{self, Metrics, Tuning};
use bbzoom::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    let store = Store::open(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot open the store in {}",
            config.daemon.state_dir.display()
        )
    })?;
    let (trigger, shutdown) = bbzoom::shutdown::channel();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stop signal received; finishing deliveries under way");
        trigger.trigger();
    });
    daemon::run(
        &config,
        &credentials,
        store,
        Tuning::default(),
        Arc::new(Metrics::default()),
        shutdown,
    )
    .await?;
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
