//! `bbzoom connect` and `bbzoom disconnect`: credentials in and out of the encrypted file.
//!
//! `connect` takes a credential's kind and values at the terminal (the secret without echo) or,
//! for automation, from flags and the first line of stdin; tries it with one cheap live call
//! where the configuration uses it; and only then stores it in the age-encrypted credentials
//! file, creating the identity on first use. `disconnect` removes one after a confirmation and
//! lists what the configuration uses that is now without a credential. Both make a running
//! daemon reload. Only names, kinds and files are ever printed, never a secret.

use anyhow::{Context, anyhow, bail, ensure};
use bbzoom::bitbucket::BitbucketError;
use bbzoom::config::{Channel, Config, Destination, SourceKind, Watch, edit};
use bbzoom::credentials::{self, Credential, Credentials};
use bbzoom::daemon;
use bbzoom::domain::CLOUD;
use bbzoom::render::Card;
use clap::ValueEnum;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// What the webhook check posts: Incoming Webhooks have no read-only call to try a token with.
const CONNECTED: &str = "bbzoom is connected to this channel";

/// How a check that has nothing to call begins, whatever is missing.
const NOTHING_TO_CHECK: &str = "nothing to check it against";

const CONNECT_EXAMPLES: &str = "\
Examples:
  bbzoom connect bitbucket --name acme-ci
      asks for the kind and the token (not shown), checks it against the first subscription
      that uses acme-ci, and stores it
  bbzoom connect bitbucket --name corp-token --kind datacenter_token --stdin < token.txt
      for automation: the secret is the first line of stdin, nothing is asked
  bbzoom connect zoom --name zoom-bot --kind zoom_chatbot --client-id AbC123dEf
      the chatbot app's client secret is asked without echo; the check fetches a token";

const DISCONNECT_EXAMPLES: &str = "\
Examples:
  bbzoom disconnect bitbucket --name acme-ci
      asks for confirmation, removes it and lists the subscriptions left without a credential
  bbzoom disconnect zoom --name alerts-webhook --yes";

/// Which service a credential is for.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// Bitbucket Cloud or Data Center: a credential subscriptions are polled with.
    Bitbucket,
    /// Zoom: the chatbot app's client, or an Incoming Webhook's verification token.
    Zoom,
}

impl Service {
    /// The word on the command line, for the commands messages suggest.
    fn command_word(self) -> &'static str {
        match self {
            Service::Bitbucket => "bitbucket",
            Service::Zoom => "zoom",
        }
    }

    /// The service's own name, for messages.
    fn title(self) -> &'static str {
        match self {
            Service::Bitbucket => "Bitbucket",
            Service::Zoom => "Zoom",
        }
    }

    /// Its credential kinds, in the order offered (the first is the default).
    fn kinds(self) -> impl Iterator<Item = Kind> {
        Kind::value_variants()
            .iter()
            .copied()
            .filter(move |kind| kind.service() == self)
    }
}

/// A credential kind, named as the credentials file's `kind` key names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Kind {
    /// A Bitbucket Cloud repository, project or workspace access token (best: a budget of its own).
    BitbucketAccessToken,
    /// A Bitbucket Cloud OAuth consumer: its key and secret.
    BitbucketOauthConsumer,
    /// A Bitbucket Cloud API token, with the Atlassian account's e-mail.
    BitbucketApiToken,
    /// A Bitbucket Data Center / Server HTTP access token.
    DatacenterToken,
    /// The Zoom Team Chat chatbot app's client ID and client secret.
    ZoomChatbot,
    /// A Zoom Incoming Webhook connection's verification token.
    ZoomWebhook,
    /// A Zoom Server-to-Server OAuth app's account ID, client ID and client secret (chat commands).
    ZoomServerToServer,
}

impl Kind {
    fn of(credential: &Credential) -> Kind {
        match credential {
            Credential::BitbucketAccessToken { .. } => Kind::BitbucketAccessToken,
            Credential::BitbucketOauthConsumer { .. } => Kind::BitbucketOauthConsumer,
            Credential::BitbucketApiToken { .. } => Kind::BitbucketApiToken,
            Credential::DatacenterToken { .. } => Kind::DatacenterToken,
            Credential::ZoomChatbot { .. } => Kind::ZoomChatbot,
            Credential::ZoomWebhook { .. } => Kind::ZoomWebhook,
            Credential::ZoomServerToServer { .. } => Kind::ZoomServerToServer,
        }
    }

    /// Exhaustive on purpose: a new kind must say which service it belongs to.
    fn service(self) -> Service {
        match self {
            Kind::ZoomChatbot | Kind::ZoomWebhook | Kind::ZoomServerToServer => Service::Zoom,
            Kind::BitbucketAccessToken
            | Kind::BitbucketOauthConsumer
            | Kind::BitbucketApiToken
            | Kind::DatacenterToken => Service::Bitbucket,
        }
    }

    /// The `kind` value, as `--kind` and the credentials file write it.
    fn name(self) -> String {
        self.possible_value().get_name().to_owned()
    }

    /// One line saying what it is (the variant's doc comment, also shown by `--help`).
    fn help(self) -> String {
        self.possible_value()
            .get_help()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    fn possible_value(self) -> clap::builder::PossibleValue {
        self.to_possible_value()
            .expect("no kind is hidden from the command line")
    }

    /// The non-secret values the kind needs besides its secret, in the order asked.
    fn identifiers(self) -> &'static [Identifier] {
        match self {
            Kind::BitbucketOauthConsumer => &[Identifier::Key],
            Kind::BitbucketApiToken => &[Identifier::Email],
            Kind::ZoomChatbot => &[Identifier::ClientId],
            Kind::ZoomServerToServer => &[Identifier::AccountId, Identifier::ClientId],
            Kind::BitbucketAccessToken | Kind::DatacenterToken | Kind::ZoomWebhook => &[],
        }
    }

    /// What its secret is called, in prompts and in refusals.
    fn secret_label(self) -> &'static str {
        match self {
            Kind::BitbucketAccessToken => "access token",
            Kind::BitbucketOauthConsumer => "OAuth consumer secret",
            Kind::BitbucketApiToken => "API token",
            Kind::DatacenterToken => "HTTP access token",
            Kind::ZoomChatbot | Kind::ZoomServerToServer => "client secret",
            Kind::ZoomWebhook => "verification token",
        }
    }

    /// The credential of this kind; `identifiers` holds a value for each of
    /// [`Kind::identifiers`], in that order.
    fn build(self, identifiers: Vec<String>, secret: SecretString) -> Credential {
        let mut values = identifiers.into_iter();
        let mut identifier = || {
            values
                .next()
                .expect("a value is read for every identifier the kind has")
        };
        match self {
            Kind::BitbucketAccessToken => Credential::BitbucketAccessToken { token: secret },
            Kind::BitbucketOauthConsumer => Credential::BitbucketOauthConsumer {
                key: identifier(),
                secret,
            },
            Kind::BitbucketApiToken => Credential::BitbucketApiToken {
                email: identifier(),
                token: secret,
            },
            Kind::DatacenterToken => Credential::DatacenterToken { token: secret },
            Kind::ZoomChatbot => Credential::ZoomChatbot {
                client_id: identifier(),
                client_secret: secret,
            },
            Kind::ZoomWebhook => Credential::ZoomWebhook { token: secret },
            Kind::ZoomServerToServer => Credential::ZoomServerToServer {
                account_id: identifier(),
                client_id: identifier(),
                client_secret: secret,
            },
        }
    }
}

/// A credential's non-secret value: given as a flag, or asked with echo at the terminal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identifier {
    Key,
    Email,
    ClientId,
    AccountId,
}

impl Identifier {
    const ALL: [Identifier; 4] = [
        Identifier::Key,
        Identifier::Email,
        Identifier::ClientId,
        Identifier::AccountId,
    ];

    fn flag(self) -> &'static str {
        match self {
            Identifier::Key => "--key",
            Identifier::Email => "--email",
            Identifier::ClientId => "--client-id",
            Identifier::AccountId => "--account-id",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Identifier::Key => "OAuth consumer key",
            Identifier::Email => "Atlassian account e-mail",
            Identifier::ClientId => "Client ID",
            Identifier::AccountId => "Account ID",
        }
    }

    fn given(self, args: &ConnectArgs) -> Option<&str> {
        match self {
            Identifier::Key => args.key.as_deref(),
            Identifier::Email => args.email.as_deref(),
            Identifier::ClientId => args.client_id.as_deref(),
            Identifier::AccountId => args.account_id.as_deref(),
        }
    }
}

#[derive(clap::Args)]
#[command(after_long_help = CONNECT_EXAMPLES)]
pub struct ConnectArgs {
    /// The service the credential is for.
    pub service: Service,
    /// Name of the entry in the credentials file, as the configuration refers to it. Default:
    /// for bitbucket, [bitbucket] credential, else the first Data Center instance's credential;
    /// for zoom, [zoom.chatbot] credential, else the first Incoming Webhook channel's.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The kind of credential; asked at a terminal when not given. With --stdin the default is
    /// the kind the configuration uses the name for (datacenter_token for a Data Center
    /// instance, zoom_webhook for a webhook channel), else bitbucket_access_token or
    /// zoom_chatbot.
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<Kind>,
    /// The OAuth consumer's key (bitbucket_oauth_consumer); asked at a terminal when not given.
    #[arg(long)]
    pub key: Option<String>,
    /// The Atlassian account's e-mail (bitbucket_api_token); asked at a terminal when not
    /// given.
    #[arg(long)]
    pub email: Option<String>,
    /// The app's client ID (zoom_chatbot, zoom_server_to_server); asked at a terminal when not
    /// given.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The Server-to-Server OAuth app's account ID (zoom_server_to_server); asked at a terminal
    /// when not given.
    #[arg(long)]
    pub account_id: Option<String>,
    /// Read the secret from the first line of stdin and ask nothing, for automation: the
    /// kind's other value must then be given as its flag.
    #[arg(long)]
    pub stdin: bool,
    /// For bitbucket: the repository to check the credential against, one it can read, as
    /// copied from the browser. Default: the first subscription that uses the name.
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Store the credential without the live check.
    #[arg(long)]
    pub offline: bool,
}

#[derive(clap::Args)]
#[command(after_long_help = DISCONNECT_EXAMPLES)]
pub struct DisconnectArgs {
    /// The service the credential is for; a credential of the other one is not removed.
    pub service: Service,
    /// Name of the entry to remove. Default: as for `bbzoom connect` ([bitbucket] credential,
    /// else the first Data Center instance's; [zoom.chatbot] credential, else the first
    /// Incoming Webhook channel's).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Remove without asking; required when stdin is not a terminal.
    #[arg(long, short)]
    pub yes: bool,
}

/// Where the credential's values come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Prompts at the terminal: the kind and identifier echoed, the secret not.
    Terminal,
    /// Flags, and the secret on the first line of stdin; nothing is asked.
    Stdin,
}

/// `bbzoom connect`: reads a credential, checks it live unless `--offline`, stores it and makes
/// a running daemon reload. A failed check stores nothing.
pub async fn connect(config_path: PathBuf, args: ConnectArgs) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let files = &config.daemon;
    // Held until the file is replaced: another `connect` reads it only after this one wrote.
    let _lock = credentials::CredentialsLock::take(&files.credentials_file)?;
    // Before anything is asked: a file that cannot be decrypted stops here, and is left alone.
    let mut stored = Credentials::load_or_empty(&files.credentials_file, &files.identity_file)?;
    let name = entry_name(&config, args.service, args.name.as_deref())?;
    if let Some(existing) = stored.get(&name) {
        ensure_service(&name, existing, args.service, "connect")?;
    }
    ensure!(
        args.repo.is_none() || args.service == Service::Bitbucket,
        "--repo is for bitbucket credentials; a Zoom credential is checked where {} uses it",
        config_path.display()
    );
    let input = if args.stdin {
        Input::Stdin
    } else if std::io::stdin().is_terminal() {
        Input::Terminal
    } else {
        bail!(
            "stdin is not a terminal, so the secret cannot be asked for: pass --stdin and give \
             the secret on the first line of stdin (and --kind and the kind's other value as flags)"
        );
    };
    let credential = read_credential(&config, &name, &args, input)?;
    let kind = credential.kind();

    if args.offline {
        say!("credential {name:?} not checked (--offline)");
    } else {
        let checked = live_check(&config, &name, &credential, args.repo.as_deref())
            .await
            .with_context(|| format!("credential {name:?} was not stored: its check failed"))?;
        say!("{checked}");
    }

    let file = files.credentials_file.display();
    let done = match stored.get(&name) {
        Some(old) if *old == credential => {
            say!("credential {name:?} ({kind}) is already stored in {file}; nothing changed");
            return Ok(());
        }
        Some(old) if old.kind() == kind => format!("replaced credential {name:?} ({kind})"),
        Some(old) => format!(
            "replaced credential {name:?} (a {} until now, a {kind} from now on)",
            old.kind()
        ),
        None => format!("stored new credential {name:?} ({kind})"),
    };
    credentials::ensure_identity(&files.identity_file)?;
    stored.insert(name, credential);
    stored.save(&files.credentials_file, &files.identity_file)?;
    say!("{done} in {file}");
    super::status::reload_if_running(&config_path).await
}

/// `bbzoom disconnect`: removes a credential once confirmed, makes a running daemon reload and
/// lists what the configuration uses that now has no credential.
pub async fn disconnect(config_path: PathBuf, args: DisconnectArgs) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let files = &config.daemon;
    let _lock = credentials::CredentialsLock::take(&files.credentials_file)?;
    let mut stored = Credentials::load_or_empty(&files.credentials_file, &files.identity_file)?;
    let name = entry_name(&config, args.service, args.name.as_deref())?;
    let file = files.credentials_file.display();
    let Some(credential) = stored.get(&name) else {
        let held: Vec<String> = stored
            .names()
            .map(|held| {
                format!(
                    "{held:?} ({})",
                    stored.get(held).map_or("", Credential::kind)
                )
            })
            .collect();
        let held = if held.is_empty() {
            "none".to_owned()
        } else {
            held.join(", ")
        };
        bail!("{file} holds no credential named {name:?}; its credentials: {held}");
    };
    ensure_service(&name, credential, args.service, "disconnect")?;
    let kind = credential.kind();
    if !args.yes && !confirmed(&format!("Remove credential {name:?} ({kind})? [y/N] "))? {
        say!("kept credential {name:?}");
        return Ok(());
    }
    stored.remove(&name);
    stored.save(&files.credentials_file, &files.identity_file)?;
    say!("removed credential {name:?} ({kind}) from {file}");
    // What is left without a credential is listed even when the daemon refuses the reload:
    // those are exactly why it would.
    let reloaded = super::status::reload_if_running(&config_path).await;
    report_lacking(&config, &stored);
    reloaded
}

/// `--name`, else the name the configuration uses by default for `service`'s credentials.
fn entry_name(config: &Config, service: Service, given: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = given {
        ensure!(
            !name.trim().is_empty(),
            "--name is empty: give the name the configuration uses for the credential"
        );
        return Ok(name.to_owned());
    }
    let default = match service {
        Service::Bitbucket => config.bitbucket.credential.clone().or_else(|| {
            let mut instances = config.bitbucket.datacenter.values();
            instances.next().map(|dc| dc.credential.clone())
        }),
        Service::Zoom => config
            .zoom
            .chatbot
            .as_ref()
            .map(|bot| bot.credential.clone())
            .or_else(|| webhook_channels(config).next().map(|(_, c)| c.clone())),
    };
    default.ok_or_else(|| {
        anyhow!(
            "{} names no default {} credential: pass --name NAME",
            config.source.display(),
            service.title()
        )
    })
}

/// Refuses to act on `name` through the other service's command, and names the right one.
fn ensure_service(
    name: &str,
    credential: &Credential,
    service: Service,
    command: &str,
) -> anyhow::Result<()> {
    let belongs_to = Kind::of(credential).service();
    ensure!(
        belongs_to == service,
        "credential {name:?} is a {}, a {} credential: use `bbzoom {command} {} --name {name}`",
        credential.kind(),
        belongs_to.title(),
        belongs_to.command_word()
    );
    Ok(())
}

/// Every Incoming Webhook channel, with the name of its credential.
fn webhook_channels(config: &Config) -> impl Iterator<Item = (&Channel, &String)> {
    config
        .zoom
        .channels
        .values()
        .filter_map(|channel| match &channel.destination {
            Destination::Webhook { credential, .. } => Some((channel, credential)),
            Destination::Chatbot { .. } | Destination::Direct { .. } => None,
        })
}

/// The kind the configuration uses `name` for: what an admin most likely means.
fn default_kind(config: &Config, name: &str, service: Service) -> Kind {
    match service {
        Service::Bitbucket => {
            let on_datacenter = config
                .bitbucket
                .datacenter
                .values()
                .any(|dc| dc.credential == name)
                || config
                    .subscriptions
                    .iter()
                    .any(|s| s.credentials.contains(&name.to_owned()) && s.repo.instance != CLOUD);
            if on_datacenter {
                Kind::DatacenterToken
            } else {
                Kind::BitbucketAccessToken
            }
        }
        Service::Zoom => {
            let events = config.zoom.events.as_ref();
            if webhook_channels(config).any(|(_, credential)| credential == name) {
                Kind::ZoomWebhook
            } else if events.is_some_and(|events| events.credential == name) {
                Kind::ZoomServerToServer
            } else {
                Kind::ZoomChatbot
            }
        }
    }
}

/// The credential from flags, prompts and stdin, as `input` says.
fn read_credential(
    config: &Config,
    name: &str,
    args: &ConnectArgs,
    input: Input,
) -> anyhow::Result<Credential> {
    let kind = match (args.kind, input) {
        (Some(kind), _) => kind,
        (None, Input::Stdin) => default_kind(config, name, args.service),
        (None, Input::Terminal) => {
            ask_kind(args.service, default_kind(config, name, args.service))?
        }
    };
    ensure!(
        kind.service() == args.service,
        "--kind {} is a {} credential: use `bbzoom connect {}`",
        kind.name(),
        kind.service().title(),
        kind.service().command_word()
    );
    for identifier in Identifier::ALL {
        ensure!(
            identifier.given(args).is_none() || kind.identifiers().contains(&identifier),
            "{} does not apply to a {} credential",
            identifier.flag(),
            kind.name()
        );
    }
    let mut identifiers = Vec::new();
    for &identifier in kind.identifiers() {
        identifiers.push(match (identifier.given(args), input) {
            (Some(value), _) => {
                ensure!(!value.trim().is_empty(), "{} is empty", identifier.flag());
                value.trim().to_owned()
            }
            (None, Input::Terminal) => ask_value(identifier.label())?,
            (None, Input::Stdin) => bail!(
                "a {} credential needs {} (the {}) with --stdin",
                kind.name(),
                identifier.flag(),
                identifier.label()
            ),
        });
    }
    let secret = match input {
        Input::Terminal => rpassword::prompt_password(format!(
            "Paste the {} (it is not shown): ",
            kind.secret_label()
        ))
        .context("cannot read the secret from the terminal")?,
        Input::Stdin => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("--stdin: cannot read the secret from stdin")?;
            line
        }
    };
    let secret = secret.trim();
    ensure!(
        !secret.is_empty(),
        "no {} was given{}",
        kind.secret_label(),
        match input {
            Input::Terminal => "",
            Input::Stdin => ": --stdin takes it from the first line of stdin",
        }
    );
    Ok(kind.build(identifiers, SecretString::from(secret.to_owned())))
}

/// Offers `service`'s kinds by number and name; an empty answer takes `default`.
fn ask_kind(service: Service, default: Kind) -> anyhow::Result<Kind> {
    let kinds: Vec<Kind> = service.kinds().collect();
    tell!("Which kind of {} credential is it?", service.title());
    for (number, kind) in (1..).zip(&kinds) {
        tell!("  {number}. {:<26} {}", kind.name(), kind.help());
    }
    let default_number = (1..)
        .zip(&kinds)
        .find_map(|(number, kind)| (*kind == default).then_some(number))
        .unwrap_or(1);
    loop {
        let answer = ask(&format!("Kind [{default_number}]: "))?;
        if answer.is_empty() {
            return Ok(default);
        }
        let chosen = answer
            .parse::<usize>()
            .ok()
            .and_then(|number| kinds.get(number.checked_sub(1)?))
            .or_else(|| kinds.iter().find(|kind| kind.name() == answer));
        match chosen {
            Some(kind) => return Ok(*kind),
            None => tell!("Answer 1 to {}, or a kind's name.", kinds.len()),
        }
    }
}

/// A non-empty value asked with echo; asked again while the answer is empty.
fn ask_value(label: &str) -> anyhow::Result<String> {
    loop {
        let answer = ask(&format!("{label}: "))?;
        if !answer.is_empty() {
            return Ok(answer);
        }
    }
}

/// Whether the admin answered yes to `question`; refuses when nobody can answer.
fn confirmed(question: &str) -> anyhow::Result<bool> {
    ensure!(
        std::io::stdin().is_terminal(),
        "not removing anything without a confirmation, and stdin is not a terminal to ask \
         at: pass --yes to remove it"
    );
    let answer = ask(question)?;
    Ok(["y", "yes"].contains(&answer.to_ascii_lowercase().as_str()))
}

/// One line read at the terminal after `prompt` (on stderr, so stdout stays the result).
fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr()
        .flush()
        .context("cannot write the prompt")?;
    let mut answer = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    ensure!(read > 0, "no answer (end of input)");
    Ok(answer.trim().to_owned())
}

/// One cheap live call with `credential` stored as `name`, where the configuration uses that
/// name; says what was checked.
async fn live_check(
    config: &Config,
    name: &str,
    credential: &Credential,
    repo: Option<&str>,
) -> anyhow::Result<String> {
    // Only the new credential: the check must not succeed thanks to another one.
    let mut alone = Credentials::default();
    alone.insert(name, credential.clone());
    let kind = Kind::of(credential);
    match kind {
        Kind::ZoomChatbot => check_chatbot(config, name, &alone).await,
        Kind::ZoomWebhook => check_webhook(config, name, &alone).await,
        Kind::ZoomServerToServer => check_events(config, name, &alone).await,
        Kind::BitbucketAccessToken
        | Kind::BitbucketOauthConsumer
        | Kind::BitbucketApiToken
        | Kind::DatacenterToken => check_bitbucket(config, name, kind, &alone, repo).await,
    }
}

/// Probes `--repo`, or the first subscription using `name`, with the new credential.
async fn check_bitbucket(
    config: &Config,
    name: &str,
    kind: Kind,
    alone: &Credentials,
    repo: Option<&str>,
) -> anyhow::Result<String> {
    let watch = match repo {
        Some(url) => watch_of(config, url)?,
        None => config
            .watches
            .iter()
            .find(|w| w.credential == name)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "no subscription in {} uses credential {name:?}, so there is {NOTHING_TO_CHECK}: \
                     give --repo URL of a repository it can read, or --offline",
                    config.source.display()
                )
            })?,
    };
    let watch = Watch {
        credential: name.to_owned(),
        ..watch
    };
    let repo = &watch.repo;
    // The error stays a `DaemonError` under its context, so the exit status says "fix the
    // configuration or the credential".
    let source = daemon::one_off_source(config, alone, &watch).with_context(|| {
        let on = if repo.instance == CLOUD {
            "Bitbucket Cloud"
        } else {
            "Data Center"
        };
        format!("{repo} is on {on}")
    })?;
    source.probe(repo).await.map_err(|err| match err {
        BitbucketError::Unauthorized(status) => anyhow!(
            "Bitbucket refused the {} (HTTP {status}) for {repo}: check that it was copied whole, \
             has not expired or been revoked, and may read the repository (and its pipelines)",
            kind.secret_label()
        ),
        BitbucketError::NotFound => anyhow!(
            "Bitbucket cannot find {repo} with this credential (HTTP 404): check the repository \
             URL and that the credential may read it"
        ),
        other => anyhow!(
            "Bitbucket could not be asked about {repo}: {other} (if it cannot be reached from \
             here, pass --offline to store the credential unchecked)"
        ),
    })?;
    Ok(format!("checked: Bitbucket accepted it for {repo}"))
}

/// The watch to probe `url` with: the configuration's first for that repository if there is
/// one, else one made up for the probe alone.
fn watch_of(config: &Config, url: &str) -> anyhow::Result<Watch> {
    let repo = edit::repository_of(config, url).map_err(|message| anyhow!("--repo: {message}"))?;
    if let Some(watched) = config.watches.iter().find(|w| w.repo == repo) {
        return Ok(watched.clone());
    }
    let source = if repo.instance == CLOUD {
        SourceKind::Pipelines
    } else {
        SourceKind::Statuses
    };
    Ok(Watch {
        url: url.to_owned(),
        repo,
        source,
        // Set by the caller; a probe reads no subscription's branches, events or channels.
        credential: String::new(),
        pool: Vec::new(),
        subscriptions: Vec::new(),
        pipelines: Vec::new(),
        people: Default::default(),
    })
}

/// Fetches a token for the configuration's chatbot with the new credential.
async fn check_chatbot(config: &Config, name: &str, alone: &Credentials) -> anyhow::Result<String> {
    let source = config.source.display();
    let bot = match &config.zoom.chatbot {
        Some(bot) if bot.credential == name => bot,
        Some(bot) => bail!(
            "{NOTHING_TO_CHECK}: [zoom.chatbot] in {source} uses credential {:?}, not {name:?}; \
             set its credential = {name:?}, or pass --offline",
            bot.credential
        ),
        None => bail!(
            "{NOTHING_TO_CHECK}: {source} has no [zoom.chatbot], whose account_id, robot_jid and \
             user_jid a token needs; add it with credential = {name:?}, or pass --offline"
        ),
    };
    // The chatbot alone: the channels' webhook credentials are not in `alone`.
    let mut just_the_chatbot = config.clone();
    just_the_chatbot.zoom.channels.clear();
    let zoom = daemon::Zoom::new(&just_the_chatbot, alone, bbzoom::delivery::WEBHOOK_PACE)?;
    let chatbot = zoom
        .chatbot
        .expect("Zoom::new builds the chatbot of a [zoom.chatbot]");
    chatbot.verify().await?;
    Ok(format!(
        "checked: Zoom issued a token to the chatbot app of account {}",
        bot.account_id
    ))
}

/// Fetches a Server-to-Server token for `[zoom.events]` with the new credential.
async fn check_events(config: &Config, name: &str, alone: &Credentials) -> anyhow::Result<String> {
    let source = config.source.display();
    let events = match &config.zoom.events {
        Some(events) if events.credential == name => events,
        Some(events) => bail!(
            "{NOTHING_TO_CHECK}: [zoom.events] in {source} uses credential {:?}, not {name:?}; \
             set its credential = {name:?}, or pass --offline",
            events.credential
        ),
        None => bail!(
            "{NOTHING_TO_CHECK}: {source} has no [zoom.events]; add it with credential = \
             {name:?}, or pass --offline"
        ),
    };
    // A token only: no REST call, so no account limiter.
    let app = daemon::events_app(config, events, alone, None)?;
    app.verify().await?;
    Ok(format!(
        "checked: Zoom issued a token to the Server-to-Server app of account {}",
        app.account_id()
    ))
}

/// Posts [`CONNECTED`] through the first Incoming Webhook channel using `name`.
async fn check_webhook(config: &Config, name: &str, alone: &Credentials) -> anyhow::Result<String> {
    let (channel, _) = webhook_channels(config)
        .find(|(_, credential)| *credential == name)
        .ok_or_else(|| {
            anyhow!(
                "{NOTHING_TO_CHECK}: no channel in {} has credential = {name:?}; add its \
                 [zoom.channels.NAME] with webhook_url and credential = {name:?} first, or \
                 pass --offline",
                config.source.display()
            )
        })?;
    let mut just_the_channel = config.clone();
    just_the_channel.zoom.chatbot = None;
    just_the_channel.zoom.channels = BTreeMap::from([(channel.name.clone(), channel.clone())]);
    let zoom = daemon::Zoom::new(&just_the_channel, alone, bbzoom::delivery::WEBHOOK_PACE)?;
    let client = match zoom.routes.into_iter().next().map(|route| route.sender) {
        Some(bbzoom::delivery::Sender::Webhook { client }) => client,
        _ => unreachable!("one webhook channel makes one webhook route"),
    };
    let card = Card {
        head: CONNECTED.to_owned(),
        sub_head: String::new(),
        // Neutral grey: this says nothing about a build.
        color: "#6B778C",
        ..Card::default()
    };
    client.post(&card).await?;
    Ok(format!(
        "checked: posted {CONNECTED:?} to #{}",
        channel.name
    ))
}

/// Prints what the configuration uses but the credentials file no longer holds.
fn report_lacking(config: &Config, stored: &Credentials) {
    let missing = |name: &str| stored.get(name).is_none();
    let mut lacking: Vec<String> = config
        .subscriptions
        .iter()
        .flat_map(|s| s.credentials.iter().map(move |c| (s, c)))
        .filter(|(_, credential)| missing(credential))
        .map(|(s, credential)| format!("subscription {} (credential {credential:?})", s.url))
        .collect();
    let chatbot = config.zoom.chatbot.as_ref();
    if let Some(bot) = chatbot.filter(|bot| missing(&bot.credential)) {
        lacking.push(format!("[zoom.chatbot] (credential {:?})", bot.credential));
    }
    let events = config.zoom.events.as_ref();
    if let Some(events) = events.filter(|events| missing(&events.credential)) {
        lacking.push(format!(
            "[zoom.events] (credential {:?})",
            events.credential
        ));
    }
    lacking.extend(
        webhook_channels(config)
            .filter(|(_, credential)| missing(credential))
            .map(|(channel, credential)| {
                format!("channel #{} (credential {credential:?})", channel.name)
            }),
    );
    if lacking.is_empty() {
        say!("everything the configuration uses still has its credential");
        return;
    }
    say!("now without a credential:");
    for line in &lacking {
        say!("  {line}");
    }
    say!(
        "a running daemon keeps its last good configuration until they are fixed: store their \
         credentials with `bbzoom connect`, or change {}",
        config.source.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_named_as_the_credentials_file_names_it() {
        for &kind in Kind::value_variants() {
            let identifiers = kind.identifiers().iter().map(|_| "id".to_owned()).collect();
            let credential = kind.build(identifiers, SecretString::from("secret"));
            assert_eq!(credential.kind(), kind.name());
            assert_eq!(Kind::of(&credential), kind);
            assert!(!kind.help().is_empty(), "{kind:?} has a description");
        }
        let names: Vec<String> = Kind::value_variants().iter().map(|k| k.name()).collect();
        let mut known = Credential::KINDS.to_vec();
        known.sort_unstable();
        let mut offered: Vec<&str> = names.iter().map(String::as_str).collect();
        offered.sort_unstable();
        assert_eq!(offered, known, "every kind can be connected");
    }

    #[test]
    fn each_service_offers_its_own_kinds_first_the_default() {
        let bitbucket: Vec<Kind> = Service::Bitbucket.kinds().collect();
        assert_eq!(bitbucket.first(), Some(&Kind::BitbucketAccessToken));
        assert_eq!(bitbucket.len(), 4);
        let zoom: Vec<Kind> = Service::Zoom.kinds().collect();
        assert_eq!(
            zoom,
            [
                Kind::ZoomChatbot,
                Kind::ZoomWebhook,
                Kind::ZoomServerToServer
            ]
        );
    }
}
