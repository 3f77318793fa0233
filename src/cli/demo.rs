//! `bbzoom demo`: the daemon against the built-in simulator, with a scoreboard at the end.

use bbzoom::demo::{self, DemoOptions, Narration};

#[derive(clap::Args)]
pub struct DemoArgs {
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
    /// Print the summary as one JSON object on stdout (the commentary goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also type commands into #ci (over Zoom's event WebSocket, dropped twice on the way)
    /// and check each is answered exactly once.
    #[arg(long)]
    chat: bool,
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let json = args.json;
    let mut options = DemoOptions {
        speed: args.speed,
        repos: args.repos,
        hours: args.hours,
        budget: args.budget,
        faults: args.faults,
        print_cards: true,
        narration: if json {
            Narration::Stderr
        } else {
            Narration::Stdout
        },
        chat: args.chat,
    };
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
