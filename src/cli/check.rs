//! `bbzoom check`: validates the configuration and credentials, and with `--online` tries each
//! credential with one cheap live call.
//!
//! An admin runs it after editing a file, so it reports every problem it finds (each naming the
//! file, credential or subscription and the command that fixes it) before failing, rather than
//! stopping at the first one as the daemon does.

use bbzoom::config::{Config, DaemonConfig, Destination};
use bbzoom::credentials::{self, Credential, Credentials, CredentialsError, Role};
use bbzoom::daemon;
use bbzoom::domain::CLOUD;
use bbzoom::zoom::events::missing_scopes;
use std::io::ErrorKind;
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
    say!("{}: configuration is valid", config_path.display());
    let credentials = open_credentials(&config.daemon)?;
    let misfits = misfits(&config, &credentials);
    for misfit in &misfits {
        tell!("problem: {misfit}");
    }
    // The clients cannot be built without every credential they need.
    let broken = if misfits.is_empty() {
        try_credentials(&config, &credentials, args.online).await?
    } else {
        0
    };
    for (name, credential) in unused(&config, &credentials) {
        say!(
            "note: credential {name:?} ({}) is not used by the configuration",
            credential.kind()
        );
    }
    print_subscriptions(&config);
    for overlap in config.overlaps() {
        let (first, second) = (
            &config.subscriptions[overlap.first],
            &config.subscriptions[overlap.second],
        );
        say!(
            "warning: subscription[{}] and subscription[{}] both send {} of {} to #{} but with \
             different events ({} / {}); #{} gets each card once, for the events of either: \
             give them the same events, or split the branches, tags or channels",
            overlap.first,
            overlap.second,
            overlap.example,
            first.repo,
            overlap.channel,
            super::subscriptions::events(&first.events),
            super::subscriptions::events(&second.events),
            overlap.channel,
        );
    }
    if !misfits.is_empty() {
        return Err(super::MustFix(format!(
            "{} credential(s) the configuration uses are missing or of the wrong kind (see the \
             problems above)",
            misfits.len()
        ))
        .into());
    }
    anyhow::ensure!(broken == 0, "{broken} credential(s) do not work");
    Ok(())
}

/// The commands that create the credentials file (and the identity, if there is none).
const CONNECT: &str = "`bbzoom connect bitbucket` and `bbzoom connect zoom`";

/// Decrypts the credentials file. On failure, reports what is wrong with the identity and with
/// the credentials file (both, when both are), and fails with the error that stopped decryption.
fn open_credentials(daemon: &DaemonConfig) -> Result<Credentials, CredentialsError> {
    let (identity, file) = (&daemon.identity_file, &daemon.credentials_file);
    let err = match Credentials::load(file, identity) {
        Ok(credentials) => {
            say!("{}: an age identity", identity.display());
            say!(
                "{}: decrypted, {} credential(s)",
                file.display(),
                credentials.names().count()
            );
            return Ok(credentials);
        }
        Err(err) => err,
    };
    let no_file = || {
        format!(
            "{}: there is no credentials file; {CONNECT} create it",
            file.display()
        )
    };
    // Decryption stopped at the identity: whether the file is there can still be told. When it
    // stopped at the file instead, the identity is checked on its own, read-only: `check` must
    // not create one.
    let identity_stopped = || (Some(fix_identity(&err)), (!file.exists()).then(no_file));
    let (identity_problem, file_problem) = match &err {
        CredentialsError::BadIdentity { .. } | CredentialsError::ExposedIdentity { .. } => {
            identity_stopped()
        }
        CredentialsError::Io { path, .. } if path == identity => identity_stopped(),
        CredentialsError::Io { cause: source, .. } if source.kind() == ErrorKind::NotFound => (
            credentials::check_identity(identity)
                .err()
                .map(|e| fix_identity(&e)),
            Some(no_file()),
        ),
        CredentialsError::Io { cause, .. } => (
            credentials::check_identity(identity)
                .err()
                .map(|e| fix_identity(&e)),
            Some(format!("{err}; {}", unreadable(cause))),
        ),
        CredentialsError::Decrypt { reason, .. } => (
            None,
            Some(format!(
                "{} cannot be decrypted with the identity {}: it was encrypted to another \
                 identity, or is damaged (age: {reason}); point [daemon] identity at the \
                 identity it was encrypted to, or store its credentials again with {CONNECT}",
                file.display(),
                identity.display()
            )),
        ),
        // Its message says what to do.
        CredentialsError::Symlink { .. } => (None, Some(err.to_string())),
        CredentialsError::Malformed { .. } | CredentialsError::Write { .. } => (
            None,
            Some(format!("{err}; store its credentials again with {CONNECT}")),
        ),
    };
    match identity_problem {
        Some(problem) => tell!("problem: {problem}"),
        None => say!("{}: an age identity", identity.display()),
    }
    if let Some(problem) = file_problem {
        tell!("problem: {problem}");
    }
    Err(err)
}

/// What to do about a file that cannot be read for `cause`.
fn unreadable(cause: &std::io::Error) -> String {
    if cause.kind() == ErrorKind::InvalidInput {
        format!(
            "point the configuration at a regular file of at most {} MiB",
            bbzoom::files::MAX_FILE_BYTES >> 20
        )
    } else {
        "make it readable by the user bbzoom runs as".to_owned()
    }
}

/// `err`, an identity file's problem, with what to do about it.
fn fix_identity(err: &CredentialsError) -> String {
    let fix = match err {
        CredentialsError::Io { cause: source, .. } if source.kind() == ErrorKind::NotFound => {
            format!(
                "restore it, or let {CONNECT} create a new one (credentials encrypted to the lost \
             one must then be stored again)"
            )
        }
        CredentialsError::Io { cause, .. } => unreadable(cause),
        // Its message says what to run.
        CredentialsError::ExposedIdentity { .. } => return err.to_string(),
        _ => "point [daemon] identity at the identity the credentials were encrypted to".to_owned(),
    };
    format!("{err}; {fix}")
}

/// Every credential the configuration names, with where (for messages) and what it needs, in
/// file order: subscriptions, the instances' defaults, the chatbot, the webhook channels.
fn uses(config: &Config) -> Vec<(&str, String, Role)> {
    let mut uses = Vec::new();
    for (i, sub) in config.subscriptions.iter().enumerate() {
        let need = if sub.repo.instance == CLOUD {
            Role::Cloud
        } else {
            Role::DataCenter
        };
        for credential in &sub.credentials {
            let place = format!("subscription[{i}] ({})", sub.url);
            uses.push((credential.as_str(), place, need));
        }
    }
    if let Some(name) = &config.bitbucket.credential {
        uses.push((
            name.as_str(),
            "[bitbucket] credential".to_owned(),
            Role::Cloud,
        ));
    }
    for dc in config.bitbucket.datacenter.values() {
        let place = format!("[bitbucket.datacenter.{}] credential", dc.name);
        uses.push((dc.credential.as_str(), place, Role::DataCenter));
    }
    if let Some(bot) = &config.zoom.chatbot {
        let place = "[zoom.chatbot] credential".to_owned();
        uses.push((bot.credential.as_str(), place, Role::Chatbot));
    }
    if let Some(events) = &config.zoom.events {
        let place = "[zoom.events] credential".to_owned();
        uses.push((events.credential.as_str(), place, Role::Events));
    }
    for channel in config.zoom.channels.values() {
        if let Destination::Webhook { credential, .. } = &channel.destination {
            let place = format!("[zoom.channels.{}] credential", channel.name);
            uses.push((credential.as_str(), place, Role::Webhook));
        }
    }
    uses
}

/// One line per credential the configuration needs but the file lacks or holds as the wrong
/// kind, naming everywhere it is used and the command that stores it.
fn misfits(config: &Config, credentials: &Credentials) -> Vec<String> {
    // The places of each (credential, need), in order of first use.
    let mut grouped: Vec<((&str, Role), Vec<String>)> = Vec::new();
    for (name, place, need) in uses(config) {
        match grouped.iter_mut().find(|(key, _)| *key == (name, need)) {
            Some((_, places)) => places.push(place),
            None => grouped.push(((name, need), vec![place])),
        }
    }
    let file = config.daemon.credentials_file.display();
    grouped
        .into_iter()
        .filter_map(|((name, need), places)| {
            let places = and_list(&places);
            let fix = format!("`bbzoom connect {} --name {name}`", need.service());
            match credentials.get(name) {
                None => Some(format!(
                    "credential {name:?} (used by {places}) is not in {file}; store it with {fix}"
                )),
                Some(found) if !need.fits(found) => Some(format!(
                    "credential {name:?} (used by {places}) is a {} in {file}, but must be a {}; \
                     replace it with {fix}",
                    found.kind(),
                    need.kinds()
                )),
                Some(_) => None,
            }
        })
        .collect()
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => items.concat(),
    }
}

/// The credentials of the file the configuration never names.
fn unused<'a>(
    config: &Config,
    credentials: &'a Credentials,
) -> impl Iterator<Item = (&'a str, &'a Credential)> {
    let used: Vec<String> = uses(config)
        .into_iter()
        .map(|(name, _, _)| name.to_owned())
        .collect();
    credentials
        .names()
        .filter(move |name| !used.iter().any(|u| u == name))
        .filter_map(|name| credentials.get(name).map(|credential| (name, credential)))
}

/// One line per credential in use: what uses it, its budget, and with `online` whether one
/// live call with it works. Returns how many do not.
async fn try_credentials(
    config: &Config,
    credentials: &Credentials,
    online: bool,
) -> anyhow::Result<usize> {
    let bitbucket = daemon::Bitbucket::new(config, credentials, &daemon::Tuning::default())?;
    let zoom = daemon::Zoom::new(config, credentials, bbzoom::delivery::WEBHOOK_PACE)?;
    let mut broken = 0;
    for (name, account) in &bitbucket.accounts {
        let budget = account.budget_now();
        let used = bitbucket
            .watches
            .iter()
            .filter(|(w, _)| &w.credential == name)
            .count();
        let mut line = format!(
            "credential {name:?}: polls {used} repository source(s), budget {} per {:?} ({budget})",
            budget.limit.requests, budget.limit.per
        );
        if online {
            let (watch, source) = bitbucket
                .watches
                .iter()
                .find(|(w, _)| &w.credential == name)
                .expect("used");
            match source.probe(&watch.repo).await {
                Ok(()) => line.push_str(", works"),
                Err(err) => {
                    broken += 1;
                    line.push_str(&format!(", BROKEN: {err}"));
                }
            }
        }
        say!("{line}");
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
        say!("{line}");
    }
    if let (Some(events), Some(app)) = (&config.zoom.events, zoom.events_app()) {
        let mut line = format!(
            "credential {:?}: Zoom Server-to-Server app (chat commands)",
            events.credential
        );
        if online {
            let looks_up_users = config.people.names_by_email()
                || events.admins.iter().any(|admin| !admin.contains('@'));
            let creates_meetings = config
                .subscriptions
                .iter()
                .any(|s| !s.meeting_on.is_empty());
            match app.granted_scopes().await {
                Ok(Some(granted)) => {
                    let missing = missing_scopes(&granted, looks_up_users, creates_meetings);
                    if missing.is_empty() {
                        line.push_str(", works, with the scopes it needs");
                    } else {
                        broken += 1;
                        let missing: Vec<String> = (missing.iter())
                            .map(|(scope, what)| format!("{scope} ({what})"))
                            .collect();
                        line.push_str(&format!(
                            ", BROKEN: its token lacks {}; add them to the app in the Zoom App Marketplace (Scopes)",
                            missing.join(", ")
                        ));
                    }
                }
                Ok(None) => line.push_str(", works (Zoom did not list its scopes)"),
                Err(err) => {
                    broken += 1;
                    line.push_str(&format!(", BROKEN: {err}"));
                }
            }
        }
        say!("{line}");
    }
    for route in &zoom.routes {
        if matches!(route.sender, bbzoom::delivery::Sender::Webhook { .. }) {
            say!(
                "channel #{}: Incoming Webhook (checked when a card is posted)",
                route.channel
            );
        }
    }
    Ok(broken)
}

/// The subscriptions as the daemon reads them: repository, sources, filters and channels, and
/// how many repository sources that makes to poll.
fn print_subscriptions(config: &Config) {
    say!("\n{} subscription(s):", config.subscriptions.len());
    for (i, sub) in config.subscriptions.iter().enumerate() {
        let sources: Vec<_> = sub.sources.iter().map(|s| s.name()).collect();
        say!(
            "  [{i}] {} ({} on {})  {}  events: {}  -> {}",
            sub.repo,
            sources.join(" and "),
            sub.repo.instance,
            sub.refs,
            super::subscriptions::events(&sub.events),
            sub.channels
                .iter()
                .map(|c| format!("#{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    say!(
        "{} repository source(s) to poll, each once however many subscriptions name it",
        config.watches.len()
    );
}
