//! `bbzoom dead-letters`: the cards Zoom refused for good; list, retry or drop them. Asks the
//! running daemon over its control socket; without one, works on the store directly.

use bbzoom::config::Config;
use bbzoom::control::{self, Answer, DeadLetterAction, Request};
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
        /// The dead letters' numbers, as `list` shows them.
        ids: Vec<u64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}

pub async fn dead_letters(config_path: PathBuf, action: Action) -> anyhow::Result<()> {
    let (action, verb) = match action {
        Action::List => (DeadLetterAction::List, ""),
        Action::Retry { ids, all } => (DeadLetterAction::Retry { ids, all }, "back in the outbox"),
        Action::Drop { ids, all } => (DeadLetterAction::Drop { ids, all }, "dropped"),
    };
    let request = Request::DeadLetters {
        action: action.clone(),
    };
    let report = match super::status::ask(&config_path, &request).await? {
        Some(Answer::DeadLetters(report)) => report,
        Some(other) => anyhow::bail!("unexpected answer: {other:?}"),
        None => {
            let config = Config::load(&config_path)?;
            let store = super::open_idle_store(&config)?;
            control::dead_letters(&store, &action).map_err(anyhow::Error::msg)?
        }
    };
    for id in &report.touched {
        say!("{verb}: {id}");
    }
    if matches!(action, DeadLetterAction::List) {
        if report.letters.is_empty() {
            say!("no dead letters");
        }
        let now_ms = bbzoom::clock::now_ms();
        for letter in &report.letters {
            let died = letter.died_ms.map_or_else(String::new, |ms| {
                format!(" ({})", super::status::format_ago(now_ms - ms))
            });
            say!(
                "{:>6}  #{}  {} {}  {}{died}",
                letter.id,
                letter.channel,
                letter.event,
                letter.repository,
                letter.reason
            );
        }
    }
    Ok(())
}
