//! `bbzoom preview`: a repository's recent builds fetched once, printed as the cards bbzoom
//! would send; nothing is sent or recorded.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// The repository, as copied from the browser or the clone dialog.
    pub url: String,
}

pub async fn preview(_config: PathBuf, _args: PreviewArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
