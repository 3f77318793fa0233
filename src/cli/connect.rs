//! `bbzoom connect` and `bbzoom disconnect`: credentials in and out of the encrypted file.

use std::path::PathBuf;

/// Which service a credential is for.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Service {
    Bitbucket,
    Zoom,
}

#[derive(clap::Args)]
pub struct ConnectArgs {
    /// Bitbucket or Zoom.
    pub service: Service,
}

#[derive(clap::Args)]
pub struct DisconnectArgs {
    /// Bitbucket or Zoom.
    pub service: Service,
}

pub async fn connect(_config: PathBuf, _args: ConnectArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

pub async fn disconnect(_config: PathBuf, _args: DisconnectArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
