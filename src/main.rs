//! The `bbzoom` binary: argument parsing, logging, signals and exit codes. Everything else lives
//! in the library; `anyhow` is used only here, at the edge.

use anyhow::Context;
use bbzoom::config::Config;
use bbzoom::credentials::Credentials;
use bbzoom::daemon::{self, Metrics, Tuning};
use bbzoom::demo::{self, DemoOptions};
use bbzoom::store::Store;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit status for a configuration the admin must fix.
const EXIT_CONFIG: u8 = 2;

/// Bitbucket build results in Zoom Team Chat, by polling: no inbound webhook needed.
#[derive(Parser)]
#[command(name = "bbzoom", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll Bitbucket, post to Zoom, until SIGTERM or SIGINT.
    ///
    /// Example: bbzoom run --config /etc/bbzoom/config.toml
    Run {
        #[arg(long, short, default_value = "/etc/bbzoom/config.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and credentials and show what is subscribed.
    ///
    /// Example: bbzoom check --config /etc/bbzoom/config.toml --online
    Check {
        #[arg(long, short, default_value = "/etc/bbzoom/config.toml")]
        config: PathBuf,
        /// Also make one cheap live call per credential.
        #[arg(long)]
        online: bool,
    },
    /// List the cards Zoom refused for good, or put them back in the outbox, or drop them.
    ///
    /// Example: bbzoom dead-letters retry --all --config /etc/bbzoom/config.toml
    DeadLetters {
        #[arg(long, short, global = true, default_value = "/etc/bbzoom/config.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<DeadLetterAction>,
    },
    /// Watch bbzoom work against its built-in Bitbucket and Zoom simulator.
    ///
    /// Example: bbzoom demo --repos 100 --hours 2 --speed 600 --faults flaky --json
    Demo {
        /// Simulated seconds per real second; every interval and budget scales with it.
        #[arg(long, default_value_t = 40.0)]
        speed: f64,
        /// Simulate this many repositories of random activity instead of the showcase.
        #[arg(long)]
        repos: Option<usize>,
        /// Simulated hours of random activity (with --repos).
        #[arg(long, default_value_t = 2.0)]
        hours: f64,
        /// Bitbucket requests per simulated hour per credential.
        #[arg(long, default_value_t = demo::DEFAULT_BUDGET)]
        budget: u32,
        /// Faults to inject into the simulated Bitbucket.
        #[arg(long, value_enum, default_value_t = demo::Faults::None)]
        faults: demo::Faults,
        /// Print the summary as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// List them (the default).
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => run(config).await,
            Command::Check { config, online } => check(config, online).await,
            Command::DeadLetters { config, action } => {
                dead_letters(config, action.unwrap_or(DeadLetterAction::List))
            }
            Command::Demo {
                speed,
                repos,
                hours,
                budget,
                faults,
                json,
            } => {
                demo_command(
                    DemoOptions {
                        speed,
                        repos,
                        hours,
                        budget,
                        faults,
                        print_cards: true,
                    },
                    json,
                )
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bbzoom: {err:#}");
            if err.downcast_ref::<bbzoom::config::ConfigError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs to stderr: colours only on a terminal, one event per line, `RUST_LOG` honoured.
fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(config_path: PathBuf) -> anyhow::Result<()> {
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

/// Validates the configuration and credentials; with `online`, also one cheap live call per
/// credential. Fails (after reporting everything) if anything is wrong.
async fn check(config_path: PathBuf, online: bool) -> anyhow::Result<()> {
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
        if online {
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
        if online {
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

/// `bbzoom dead-letters`: works on the store directly, so the daemon must not be running (sled
/// allows one process; the error says so).
fn dead_letters(config_path: PathBuf, action: DeadLetterAction) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let store = Store::open(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot open the store in {} (is the daemon running? stop it first)",
            config.daemon.state_dir.display()
        )
    })?;
    let letters = store.dead_letters()?;
    let (ids, all, retry) = match action {
        DeadLetterAction::List => {
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
        DeadLetterAction::Retry { ids, all } => (ids, all, true),
        DeadLetterAction::Drop { ids, all } => (ids, all, false),
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

async fn demo_command(mut options: DemoOptions, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.speed.is_finite() && options.speed > 0.0,
        "--speed must be a positive number"
    );
    anyhow::ensure!(
        options.hours.is_finite() && options.hours > 0.0,
        "--hours must be a positive number"
    );
    anyhow::ensure!(options.budget > 0, "--budget must be at least 1");
    // A card per line is readable for the showcase, not for hundreds of repositories.
    options.print_cards = options.repos.is_none_or(|n| n <= 10);
    let summary = demo::run(options).await?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}
