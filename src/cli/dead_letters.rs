//! `bbzoom dead-letters`: the cards Zoom refused for good; list, retry or drop them.

use anyhow::Context;
use bbzoom::config::Config;
use bbzoom::store::Store;
use std::path::PathBuf;

#[derive(clap::Subcommand, Default)]
pub enum Action {
    /// List them (the default).
    #[default]
    List,
    /// Put them back in their channel's outbox, to be delivered again.
    Retry {
        /// The dead letters' numbers, as `list` shows them.
        ids: Vec<u64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Drop them for good.
    Drop {
        ids: Vec<u64>,
        #[arg(long)]
        all: bool,
    },
}

/// `bbzoom dead-letters`: works on the store directly, so the daemon must not be running (sled
/// allows one process; the error says so).
pub async fn dead_letters(config_path: PathBuf, action: Action) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let store = Store::open(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot open the store in {} (is the daemon running? stop it first)",
            config.daemon.state_dir.display()
        )
    })?;
    let letters = store.dead_letters()?;
    let (ids, all, retry) = match action {
        Action::List => {
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in &letters {
                println!(
                    "{:>6}  #{}  {} {}  {}",
                    letter.row.seq,
                    letter.row.channel,
                    letter.row.event,
                    letter.row.build.key.repo,
                    letter.reason
                );
            }
            return Ok(());
        }
        Action::Retry { ids, all } => (ids, all, true),
        Action::Drop { ids, all } => (ids, all, false),
    };
    anyhow::ensure!(
        all || !ids.is_empty(),
        "name the dead letters (numbers from `bbzoom dead-letters list`) or say --all"
    );
    let chosen: Vec<u64> = if all {
        letters.iter().map(|l| l.row.seq).collect()
    } else {
        ids
    };
    for id in chosen {
        let found = if retry {
            store.retry_dead_letter(id, bbzoom::poller::now_ms())?
        } else {
            store.drop_dead_letter(id)?
        };
        anyhow::ensure!(
            found,
            "no dead letter {id}; `bbzoom dead-letters list` shows them"
        );
        println!(
            "{} {id}",
            if retry {
                "back in the outbox:"
            } else {
                "dropped:"
            }
        );
    }
    store.flush()?;
    Ok(())
}
