//! The `bbzoom` binary: argument parsing, logging and exit codes; each command lives in its own
//! module under `cli/`. Everything else lives in the library; `anyhow` is used only here, at
//! the edge.

mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Bitbucket build results in Zoom Team Chat, by polling: no inbound webhook needed.
#[derive(Parser)]
#[command(
    name = "bbzoom",
    version,
    about,
    long_about = None,
    after_help = cli::EXAMPLES,
)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "BBZOOM_CONFIG",
        default_value = "/etc/bbzoom/config.toml"
    )]
    config: PathBuf,
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
    /// Run the daemon: poll Bitbucket, post to Zoom, until SIGTERM or SIGINT; SIGHUP reloads.
    ///
    /// Example: bbzoom run --config /etc/bbzoom/config.toml
    Run,
    /// Store a Bitbucket or Zoom credential, encrypted, after one live check.
    ///
    /// Example: bbzoom connect bitbucket --name acme-ci
    Connect(cli::connect::ConnectArgs),
    /// Remove a stored credential and say which subscriptions now lack one.
    ///
    /// Example: bbzoom disconnect bitbucket --name acme-ci
    Disconnect(cli::connect::DisconnectArgs),
    /// Subscribe a repository's builds to channels, or change its subscription.
    ///
    /// Example: bbzoom configure https://bitbucket.org/acme/api --channel ci --event all
    Configure(cli::subscriptions::ConfigureArgs),
    /// Remove a repository's subscription.
    ///
    /// Example: bbzoom unsubscribe https://bitbucket.org/acme/api
    Unsubscribe(cli::subscriptions::UnsubscribeArgs),
    /// List the subscriptions as a table.
    ///
    /// Example: bbzoom subscriptions
    Subscriptions,
    /// Validate the configuration and credentials; with --online, try each credential.
    ///
    /// Example: bbzoom check --online
    Check(cli::check::CheckArgs),
    /// Fetch a repository's recent builds once and print the cards bbzoom would send.
    ///
    /// Example: bbzoom preview https://bitbucket.org/acme/api
    Preview(cli::preview::PreviewArgs),
    /// Show what the running daemon is doing: polls, budgets, outbox, dead letters.
    ///
    /// Example: bbzoom status
    Status(cli::status::StatusArgs),
    /// Make the running daemon re-read its configuration and credentials.
    ///
    /// Example: bbzoom reload
    Reload,
    /// List the cards Zoom refused for good, or put them back in the outbox, or drop them.
    ///
    /// Example: bbzoom dead-letters retry --all
    DeadLetters {
        #[command(subcommand)]
        action: Option<cli::dead_letters::Action>,
    },
    /// Watch bbzoom work against its built-in Bitbucket and Zoom simulator.
    ///
    /// Example: bbzoom demo --repos 100 --hours 2 --speed 600 --faults flaky --json
    #[cfg(feature = "demo")]
    Demo(cli::demo::DemoArgs),
}

fn main() -> ExitCode {
    // A command whose reader went away (`bbzoom check | head -1`) ends quietly, killed by
    // SIGPIPE as Unix tools are, instead of panicking in `println!` (Rust ignores SIGPIPE).
    set_sigpipe(libc::SIG_DFL);
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run) {
        // The daemon writes to control-socket clients, which may hang up: that is an error
        // to log, never a reason to die.
        set_sigpipe(libc::SIG_IGN);
    }
    // The daemon's log is its voice; a one-off command speaks on stdout, and logs only what
    // went wrong underneath.
    let default_level = match cli.command {
        Command::Run => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = cli.config;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run => cli::run::run(config).await,
            Command::Connect(args) => cli::connect::connect(config, args).await,
            Command::Disconnect(args) => cli::connect::disconnect(config, args).await,
            Command::Configure(args) => cli::subscriptions::configure(config, args).await,
            Command::Unsubscribe(args) => cli::subscriptions::unsubscribe(config, args).await,
            Command::Subscriptions => cli::subscriptions::list(config),
            Command::Check(args) => cli::check::check(config, args).await,
            Command::Preview(args) => cli::preview::preview(config, args).await,
            Command::Status(args) => cli::status::status(config, args).await,
            Command::Reload => cli::status::reload(config).await,
            Command::DeadLetters { action } => {
                cli::dead_letters::dead_letters(config, action.unwrap_or_default()).await
            }
            #[cfg(feature = "demo")]
            Command::Demo(args) => cli::demo::demo(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Errors quote configuration values and servers' answers.
            eprintln!(
                "bbzoom: {}",
                bbzoom::terminal::shown_lines(&format!("{err:#}"))
            );
            ExitCode::from(cli::exit_code(&err))
        }
    }
}

/// Sets what SIGPIPE does to this process: `SIG_DFL` (end it) or `SIG_IGN` (writes fail with
/// `BrokenPipe` instead).
fn set_sigpipe(disposition: libc::sighandler_t) {
    // SAFETY: setting SIGPIPE to SIG_DFL or SIG_IGN installs no handler and has no other
    // precondition; no other thread exists yet, or reads the disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, disposition);
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
