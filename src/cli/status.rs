//! `bbzoom status` and `bbzoom reload`: questions to the running daemon over its control socket.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn status(_config: PathBuf, _args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

pub async fn reload(_config: PathBuf) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

/// After `configure`, `unsubscribe`, `connect` or `disconnect` changed a file: makes a running
/// daemon reload and reports what it said; if the daemon is not running, says it will read the
/// files when it starts. Fails if the daemon refused the new files (it keeps the old ones).
pub async fn reload_if_running(config_path: &std::path::Path) -> anyhow::Result<()> {
    let _ = config_path;
    println!("bbzoom is not running; it reads the new configuration when it starts");
    Ok(())
}
