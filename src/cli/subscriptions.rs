//! `bbzoom configure`, `bbzoom unsubscribe` and `bbzoom subscriptions`: the subscription file
//! edited from the command line.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ConfigureArgs {
    /// The repository, as copied from the browser or the clone dialog.
    pub url: String,
}

#[derive(clap::Args)]
pub struct UnsubscribeArgs {
    /// The repository, in any form `configure` accepts.
    pub url: String,
}

pub async fn configure(_config: PathBuf, _args: ConfigureArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

pub async fn unsubscribe(_config: PathBuf, _args: UnsubscribeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

pub fn list(_config: PathBuf) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
