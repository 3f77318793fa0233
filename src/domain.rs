//! Domain types: what the rest of bbzoom talks about, independent of any wire format or
//! storage layout (Bitbucket's JSON stays in `bitbucket`, sled's records stay in `store`).

use std::fmt;
use std::time::Duration;

/// The instance name of Bitbucket Cloud; Data Center instances go by their configured names.
pub const CLOUD: &str = "cloud";

/// A repository on a Bitbucket instance, as a subscription names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoId {
    /// [`CLOUD`] or the name of a `[bitbucket.datacenter.NAME]` instance: the same
    /// `owner/slug` on two instances are two repositories.
    pub instance: String,
    /// Workspace (Cloud) or project key (Data Center).
    pub(crate) owner: String,
    /// Repository slug.
    pub(crate) slug: String,
}

impl RepoId {
    /// A Bitbucket Cloud repository.
    pub fn new(owner: impl Into<String>, slug: impl Into<String>) -> Self {
        RepoId::on(CLOUD, owner, slug)
    }

    /// A repository on the named instance.
    pub fn on(
        instance: impl Into<String>,
        owner: impl Into<String>,
        slug: impl Into<String>,
    ) -> Self {
        RepoId {
            instance: instance.into(),
            owner: owner.into(),
            slug: slug.into(),
        }
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.slug)
    }
}

/// Where a subscription's builds come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// Bitbucket Cloud Pipelines.
    Pipelines,
    /// Build statuses posted on commits by external CI (Cloud or Data Center).
    Statuses,
}

impl SourceKind {
    pub(crate) const ALL: [SourceKind; 2] = [SourceKind::Pipelines, SourceKind::Statuses];

    /// Its name in the configuration file, and wherever else it is written down.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Pipelines => "pipelines",
            SourceKind::Statuses => "statuses",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where a build was observed: the identity that survives restarts and keys the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildKey {
    pub(crate) repo: RepoId,
    /// Stable identifier of the build within its repository (a pipeline uuid).
    pub(crate) id: String,
}

impl fmt::Display for BuildKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.repo, self.id)
    }
}

/// How a finished build ended. An open set: results bbzoom does not know are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    Successful,
    Failed,
    /// Bitbucket's ERROR: the build could not run (bad YAML, infrastructure); a failure to a reader.
    Error,
    Stopped,
    Expired,
    Other(String),
}

/// Where a build is in its life. Unknown in-progress stages are kept as data, never an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BuildState {
    Pending,
    Running,
    /// Waiting on a manual step.
    Paused,
    /// An in-progress stage bbzoom does not know (e.g. `HALTED`), kept verbatim.
    InProgressOther(String),
    Completed(Outcome),
}

impl BuildState {
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self, BuildState::Completed(_))
    }

    /// Upper-case label as Bitbucket shows it, for cards and logs.
    pub(crate) fn label(&self) -> String {
        match self {
            BuildState::Pending => "PENDING".into(),
            BuildState::Running => "RUNNING".into(),
            BuildState::Paused => "PAUSED".into(),
            BuildState::InProgressOther(s) => s.clone(),
            BuildState::Completed(Outcome::Successful) => "SUCCESSFUL".into(),
            BuildState::Completed(Outcome::Failed) => "FAILED".into(),
            BuildState::Completed(Outcome::Error) => "ERROR".into(),
            BuildState::Completed(Outcome::Stopped) => "STOPPED".into(),
            BuildState::Completed(Outcome::Expired) => "EXPIRED".into(),
            BuildState::Completed(Outcome::Other(s)) => s.clone(),
        }
    }
}

/// What a build ran for: a branch, a tag, or a bare commit (a custom pipeline run on a
/// commit, some scheduled runs). Subscriptions filter on it and cards name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuildRef {
    Branch(String),
    Tag(String),
    /// No branch or tag: the build ran on the commit alone.
    Commit,
}

impl BuildRef {
    /// The branch or tag name; `None` for a bare commit.
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            BuildRef::Branch(name) | BuildRef::Tag(name) => Some(name),
            BuildRef::Commit => None,
        }
    }
}

/// Where a branch's or tag's health ("fixed", "still failing") is kept: the ref and the job.
/// A build of a bare commit has none: nothing before it can have broken what it fixes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Lane {
    /// A [`BuildRef::Branch`] or [`BuildRef::Tag`].
    pub(crate) git_ref: BuildRef,
    /// See [`BuildStatus::job`].
    pub(crate) job: String,
}

impl fmt::Display for Lane {
    /// "main · pipeline", "tag v1.2 · jenkins-build".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.git_ref {
            BuildRef::Branch(name) => write!(f, "{name} · {}", self.job),
            BuildRef::Tag(name) => write!(f, "tag {name} · {}", self.job),
            BuildRef::Commit => write!(f, "commit · {}", self.job),
        }
    }
}

/// A failing lane's war room as a card asks for it: the lane, and which failing streak of it
/// (named by the build it began with), so that a card about an older streak never shows a
/// newer streak's meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WarRoom {
    pub(crate) lane: Lane,
    pub(crate) streak: String,
}

/// One observation of a build, normalised from whichever source reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStatus {
    pub key: BuildKey,
    /// Which job of the repository this is a run of: `pipeline` (or `custom: NAME` for a
    /// custom pipeline), or a status key such as `jenkins-build`. Health is kept per job.
    pub(crate) job: String,
    /// What the build is called next to its number ("Pipeline", or a CI status name).
    pub(crate) name: String,
    /// The build number a person sees (`#42`), when the source has one.
    pub number: Option<u64>,
    /// The moment of the build's last update in Unix milliseconds, as the source reports it
    /// (a pipeline's completion, a status's `updated_on`), 0 if unknown: a finished build whose
    /// revision moves ran again. It also orders endings seen in one poll.
    pub(crate) revision: i64,
    /// The branch or tag the build ran for, or none (a bare commit).
    pub git_ref: BuildRef,
    pub(crate) commit: Option<String>,
    /// First line of the commit message, when the source gives it.
    pub(crate) commit_message: Option<String>,
    /// Who the card names as the author: the commit's author where the source says, else who
    /// started the run. Never an e-mail address.
    pub(crate) author: Option<String>,
    /// Who the build belongs to, by the identities a `[people]` entry may name, most
    /// responsible first: the commit's author, then who started the run (a pipeline's
    /// creator). Not kept in the store: a build read back from it has none.
    pub(crate) authors: Vec<AuthorIds>,
    pub state: BuildState,
    /// Seconds the build ran, as the source reports it.
    pub(crate) duration_secs: Option<u64>,
    /// Unix milliseconds when the build was created.
    pub(crate) created_ms: i64,
    /// Link a person opens to see the build.
    pub(crate) url: String,
    /// The commit's page, when known.
    pub(crate) commit_url: Option<String>,
    /// The branch's or tag's page, when known.
    pub(crate) ref_url: Option<String>,
    /// A Pipelines schedule started it (its `trigger`): the scheduler learns from it that the
    /// repository has schedules. False for statuses, whose trigger is not known, and for a
    /// build read back from the store, which does not keep it (only fresh polls teach).
    pub(crate) scheduled: bool,
}

impl BuildStatus {
    /// The lane the build's health is tracked in; `None` for a bare commit.
    pub(crate) fn lane(&self) -> Option<Lane> {
        (self.git_ref != BuildRef::Commit).then(|| Lane {
            git_ref: self.git_ref.clone(),
            job: self.job.clone(),
        })
    }
}

/// What happened to a build that is worth telling a channel. Which ones a subscription wants
/// is configurable; `detect::classify` decides which one a transition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Started,
    /// Waiting on a manual step.
    Paused,
    Succeeded,
    /// A success after a failure on the same branch.
    Fixed,
    Failed,
    /// A failure after a failure on the same branch.
    StillFailing,
    Stopped,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Started,
        EventKind::Paused,
        EventKind::Succeeded,
        EventKind::Fixed,
        EventKind::Failed,
        EventKind::StillFailing,
        EventKind::Stopped,
    ];

    /// The name used in the configuration file.
    pub fn config_name(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Paused => "paused",
            EventKind::Succeeded => "succeeded",
            EventKind::Fixed => "fixed",
            EventKind::Failed => "failed",
            EventKind::StillFailing => "still_failing",
            EventKind::Stopped => "stopped",
        }
    }

    pub(crate) fn from_config_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|e| e.config_name() == name)
    }

    /// A build ends at most once per run: these are the events the "missed" count is about.
    pub(crate) fn is_terminal(self) -> bool {
        !matches!(self, EventKind::Started | EventKind::Paused)
    }

    /// A more specific event also satisfies the general one it refines: a subscription for
    /// `succeeded` hears about fixes, one for `failed` hears about builds still failing.
    pub(crate) fn satisfies(self, wanted: EventKind) -> bool {
        self == wanted
            || matches!(
                (self, wanted),
                (EventKind::Fixed, EventKind::Succeeded)
                    | (EventKind::StillFailing, EventKind::Failed)
            )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

/// The identities of one person Bitbucket names for a build (a commit's author, who started a
/// run), as it gives them: Cloud's account uuid (`{...}`), account id and nickname; Data
/// Center's user slug and name; the e-mail address the commit records. What `[people]` keys
/// are matched against; never shown on a card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AuthorIds(pub(crate) Vec<String>);

impl AuthorIds {
    /// The non-empty ones of `ids`, trimmed, each once.
    pub(crate) fn new<'a>(ids: impl IntoIterator<Item = Option<&'a str>>) -> AuthorIds {
        let mut kept: Vec<String> = Vec::new();
        for id in ids.into_iter().flatten().map(str::trim) {
            if !id.is_empty() && !kept.iter().any(|k| k == id) {
                kept.push(id.to_owned());
            }
        }
        AuthorIds(kept)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A person on Zoom, as `[people]` names them: by JID (`...@xmpp.zoom.us`), which a chatbot
/// message can mention and send to, or by e-mail address, whose JID is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZoomUser {
    Jid(String),
    /// Lower case.
    Email(String),
}

impl ZoomUser {
    /// The outbox "channel" of direct messages to this person: `@` and how `[people]` names
    /// them. No `[zoom.channels]` name can begin with `@`.
    pub fn direct_channel(&self) -> String {
        format!("@{self}")
    }
}

impl fmt::Display for ZoomUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoomUser::Jid(text) | ZoomUser::Email(text) => f.write_str(text),
        }
    }
}

/// Whom a card mentions: a person `[people]` maps the build's author to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub user: ZoomUser,
    /// How Bitbucket names them (untrusted, cleaned when shown); `None` when unknown.
    pub name: Option<String>,
}

/// The commit a branch or tag points at, where a statuses source looks for builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefTip {
    /// A [`BuildRef::Branch`] or [`BuildRef::Tag`].
    pub(crate) git_ref: BuildRef,
    pub(crate) commit: String,
    /// First line of the commit message, when the source gives it.
    pub(crate) message: Option<String>,
    pub(crate) author: Option<String>,
    /// The commit author's identities (see [`AuthorIds`]).
    pub(crate) author_ids: AuthorIds,
    /// When the commit was made (Unix milliseconds), when the source gives it: a tag seen
    /// for the first time is followed only if its commit is new enough to have running builds.
    pub(crate) committed_ms: Option<i64>,
}

impl RefTip {
    /// `branch`'s tip at `commit`, nothing else known: for tests.
    #[cfg(test)]
    pub(crate) fn branch_at(branch: &str, commit: &str) -> RefTip {
        RefTip {
            git_ref: BuildRef::Branch(branch.into()),
            commit: commit.into(),
            message: None,
            author: None,
            author_ids: AuthorIds::default(),
            committed_ms: None,
        }
    }

    /// Whether `other` is the same ref at the same commit.
    pub(crate) fn same(&self, other: &RefTip) -> bool {
        self.git_ref == other.git_ref && self.commit == other.commit
    }
}

/// How a lane's last finished build ended, for telling "fixed" from "succeeded".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Passing,
    Failing,
}

/// A request budget: at most `requests` in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    /// The same number of requests in a window `speed` times shorter: the limit as it runs
    /// under compressed time.
    pub(crate) fn compressed(self, speed: f64) -> RateLimit {
        RateLimit {
            per: self.per.div_f64(speed),
            ..self
        }
    }
}

/// An hour of Bitbucket's: the window its limits are stated in, documented and advertised.
pub const HOUR: Duration = Duration::from_secs(3600);

/// The share of a limit Bitbucket states (documented, or advertised in `X-RateLimit-Limit`)
/// that a budget takes, in tenths: the tenth left is for people and other tools using the same
/// credential, and for a server that counts a little differently.
pub(crate) const STATED_SHARE_TENTHS: u128 = 9;

/// `limit` less the margin (see [`STATED_SHARE_TENTHS`]), rounded down.
pub(crate) const fn less_margin(limit: u128) -> u128 {
    limit * STATED_SHARE_TENTHS / 10
}

/// A Bitbucket credential's budget as configured: where it starts and how far what Bitbucket
/// advertises may move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpec {
    /// The budget until Bitbucket advertises a limit, and the window it is kept in for good.
    pub start: RateLimit,
    /// The most requests per window of `start.per` it may rise to, whatever is advertised.
    pub ceiling: u32,
    /// Whether the admin wrote it, for `status`.
    pub origin: BudgetOrigin,
}

/// Where a budget comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetOrigin {
    /// Written by the admin (`rate_limit`, `[bitbucket.budgets]`): it is its own ceiling, and
    /// an advertised limit can only take it lower.
    Configured,
    /// Not written: the instance's default, which follows what Bitbucket advertises (less the
    /// margin) up to the default's ceiling.
    Default,
}

impl From<RateLimit> for BudgetSpec {
    /// A budget the admin wrote: a ceiling.
    fn from(limit: RateLimit) -> BudgetSpec {
        BudgetSpec {
            start: limit,
            ceiling: limit.requests,
            origin: BudgetOrigin::Configured,
        }
    }
}

impl BudgetSpec {
    /// The budget as it runs with an hour of `hour` on the daemon's clock (shorter in a
    /// compressed run): a default, stated per hour, is kept in that hour; a written budget
    /// keeps the window the admin wrote (a compressed run writes it compressed).
    pub fn in_hour(self, hour: Duration) -> BudgetSpec {
        match self.origin {
            BudgetOrigin::Configured => self,
            BudgetOrigin::Default => BudgetSpec {
                start: self
                    .start
                    .compressed(HOUR.as_secs_f64() / hour.as_secs_f64()),
                ..self
            },
        }
    }
}
