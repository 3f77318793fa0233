//! `bbzoom check`: validates the configuration and credentials, and with `--online` tries each
//! credential with one cheap live call.

use bbzoom::config::Config;
use bbzoom::credentials::Credentials;
use bbzoom::daemon;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Also make one cheap live call per credential.
    #[arg(long)]
    pub online: bool,
}

/// Validates the configuration and credentials; with `online`, also one cheap live call per
/// credential. Fails (after reporting everything) if anything is wrong.
pub async fn check(config_path: PathBuf, args: CheckArgs) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    println!("{}: configuration is valid", config_path.display());
    let credentials = Credentials::load(
        &config.daemon.credentials_file,
        &config.daemon.identity_file,
    )?;
    println!("{}: decrypted", config.daemon.credentials_file.display());
    let bitbucket = daemon::Bitbucket::new(&config, &credentials, Default::default())?;
    let zoom = daemon::Zoom::new(&config, &credentials)?;
    let mut broken = 0;
    for (name, account) in &bitbucket.accounts {
        let budget = account.budget();
        let used = bitbucket
            .watches
            .iter()
            .filter(|(s, _)| &s.credential == name)
            .count();
        let mut line = format!(
            "credential {name:?}: used by {used} subscription(s), budget {} per {:?}",
            budget.requests, budget.per
        );
        if args.online {
            let (subscription, source) = bitbucket
                .watches
                .iter()
                .find(|(s, _)| &s.credential == name)
                .expect("used");
            match source.probe(&subscription.repo).await {
                Ok(()) => line.push_str(", works"),
                Err(err) => {
                    broken += 1;
                    line.push_str(&format!(", BROKEN: {err}"));
                }
            }
        }
        println!("{line}");
    }
    if let (Some(bot), Some(client)) = (&config.zoom.chatbot, &zoom.chatbot) {
        let mut line = format!("credential {:?}: Zoom chatbot", bot.credential);
        if args.online {
            match client.verify().await {
                Ok(()) => line.push_str(", works"),
                Err(err) => {
                    broken += 1;
                    line.push_str(&format!(", BROKEN: {err}"));
                }
            }
        }
        println!("{line}");
    }
    for route in &zoom.routes {
        if matches!(
            route.destination,
            bbzoom::delivery::Destination::Webhook { .. }
        ) {
            println!(
                "channel #{}: Incoming Webhook (checked when a card is posted)",
                route.channel
            );
        }
    }
    println!("\n{} subscription(s):", config.subscriptions.len());
    for sub in &config.subscriptions {
        let branches: Vec<_> = sub.branches.iter().map(|b| b.to_string()).collect();
        let events: Vec<_> = sub.events.iter().map(|e| e.to_string()).collect();
        println!(
            "  {} ({:?} on {})  branches: {}  events: {}  -> {}",
            sub.repo,
            sub.source,
            sub.repo.instance,
            branches.join(", "),
            events.join(", "),
            sub.channels
                .iter()
                .map(|c| format!("#{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    anyhow::ensure!(broken == 0, "{broken} credential(s) do not work");
    Ok(())
}
