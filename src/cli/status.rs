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
