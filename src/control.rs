//! The control socket: how `bbzoom status`, `bbzoom reload` and `bbzoom dead-letters` talk to a
//! running daemon. sled lets one process open the store, so while the daemon runs, these
//! commands ask it rather than the store.
//!
//! One request per connection, one JSON line each way. The socket is a file in the state
//! directory (or `[daemon] control_socket`), readable and writable by its owner only: whoever
//! may talk to it may reload the daemon.

use crate::config::{Config, Watch};
use crate::domain::Health;
use crate::store::{Store, StoreError};
use crate::terminal::shown;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// What a client may ask.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Re-read the configuration and credentials; keep the old ones if they are invalid.
    Reload,
    DeadLetters {
        action: DeadLetterAction,
    },
}

/// `bbzoom dead-letters`' actions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum DeadLetterAction {
    #[default]
    List,
    /// Back into their channel's outbox: the given ones, or all.
    Retry { ids: Vec<u64>, all: bool },
    /// Gone for good: the given ones, or all.
    Drop { ids: Vec<u64>, all: bool },
}

/// The daemon's answer: what was asked for, or why not.
pub(crate) type Reply = Result<Answer, String>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Status(Box<StatusReport>),
    Reloaded(ReloadSummary),
    DeadLetters(DeadLetterReport),
}

/// What `bbzoom status` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusReport {
    /// Whether this came from the running daemon; if not, only what the store holds is known.
    pub running: bool,
    pub config: PathBuf,
    /// When the daemon started (Unix milliseconds).
    pub started_ms: Option<i64>,
    pub last_reload: Option<ReloadRecord>,
    pub subscriptions: Vec<SubscriptionStatus>,
    pub credentials: Vec<CredentialStatus>,
    pub channels: Vec<ChannelStatus>,
    pub dead_letters: usize,
    /// How the running daemon found new builds; `None` from the store alone.
    #[serde(default)]
    pub finding: Option<Finding>,
    /// The running daemon's tasks that ended unexpectedly and were started again.
    #[serde(default)]
    pub task_restarts: Vec<crate::daemon::watched::TaskRestarts>,
    /// The running daemon's `[zoom.events]` connection, per subscription.
    #[serde(default)]
    pub events: Vec<crate::chat::EventsStatus>,
    /// The channels' mutes (`bbzoom mute` in the chat), in force or ended with their summary
    /// still to send.
    #[serde(default)]
    pub mutes: Vec<MuteStatus>,
}

/// One mute of a channel, as `bbzoom status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MuteStatus {
    pub channel: String,
    /// "acme/api", or "every repository".
    pub scope: String,
    /// When it ends or ended (Unix milliseconds, the daemon's clock).
    pub until_ms: i64,
    /// Who set it (a Zoom user's email or id).
    pub by: String,
    /// Cards it holds (to be summarised when it ends).
    pub held: usize,
}

/// How new builds were found since the daemon started: what the workspace scan is worth on
/// this Bitbucket (a push shows in it; a scheduled or manual run does not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Workspace scans made, and those that failed.
    pub scans: u64,
    pub scan_errors: u64,
    /// Pushes the scans showed.
    pub hints: u64,
    /// New builds first seen by a poll made for a scan's hint, by the sweep of idle
    /// repositories, while following a running build of the same repository, and just
    /// after one of the repository's Pipelines schedules fired.
    pub by_scan: u64,
    pub by_sweep: u64,
    pub following: u64,
    pub by_schedule: u64,
}

/// One repository read through one source, whichever subscriptions it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionStatus {
    pub repository: String,
    /// "pipelines" or "statuses".
    pub source: String,
    pub(crate) credential: String,
    /// How many `[[subscription]]` tables it serves.
    pub(crate) subscriptions: usize,
    /// Every channel of those subscriptions, each once.
    pub(crate) channels: Vec<String>,
    /// When the last poll finished (Unix milliseconds), if the daemon knows.
    pub last_poll_ms: Option<i64>,
    /// "ok (N transitions)", or why the last poll failed.
    pub last_outcome: Option<String>,
    /// The state observed last, and when (Unix milliseconds).
    pub last_state: Option<(String, i64)>,
    /// Each lane of the repository ("branch · job", "tag v1 · job") with "passing" or
    /// "failing".
    pub lanes: Vec<(String, String)>,
    /// Builds seen running or waiting.
    pub unfinished: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialStatus {
    pub name: String,
    /// Requests sent within the budget's window (its `per`).
    pub requests_in_window: usize,
    /// The budget in force, e.g. "900 per 3600s".
    pub budget: String,
    /// Its requests per window, as a number.
    #[serde(default)]
    pub budget_limit: u64,
    /// Where it comes from: configured (a ceiling), advertised by Bitbucket, or the default;
    /// what Bitbucket advertises, and whether it says the credential is near its limit.
    /// Empty from a daemon that predates it.
    #[serde(default)]
    pub budget_source: String,
    /// Seconds until a 429's pause ends.
    pub paused_for_secs: Option<u64>,
    /// Why Bitbucket last refused it (401/403).
    pub broken: Option<String>,
    /// Since the daemon started: requests sent, 429s received, polls made.
    #[serde(default)]
    pub requests_total: u64,
    #[serde(default)]
    pub rate_limited_total: u64,
    #[serde(default)]
    pub polls_total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub name: String,
    /// Cards waiting to be delivered.
    pub outbox: usize,
    /// False for a channel removed from the configuration whose cards still wait in the
    /// store (for a channel of that name to come back).
    pub configured: bool,
}

/// The last reload and how it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadRecord {
    pub at_ms: i64,
    pub outcome: Result<ReloadSummary, String>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// Repositories now polled that were not.
    pub added: Vec<String>,
    /// Repositories no longer polled.
    pub removed: Vec<String>,
    /// Channels whose worker was restarted because their settings changed.
    pub restarted_channels: Vec<String>,
    /// Credentials whose poller was restarted: the credential, its budget or how it is
    /// reached changed.
    pub restarted_credentials: Vec<String>,
    /// Settings that only take effect at the next start.
    pub needs_restart: Vec<String>,
}

/// The dead letters after a `bbzoom dead-letters` action, and which ones it touched.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeadLetterReport {
    pub letters: Vec<DeadLetterLine>,
    pub touched: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterLine {
    pub id: u64,
    pub channel: String,
    pub event: String,
    pub repository: String,
    pub reason: String,
    /// When it became a dead letter (Unix milliseconds), if known.
    #[serde(default)]
    pub died_ms: Option<i64>,
}

/// A watch's last poll as the daemon saw it: when it finished (Unix milliseconds) and how it
/// went, in words.
pub struct LastPoll {
    pub(crate) at_ms: i64,
    pub(crate) outcome: String,
}

impl StatusReport {
    /// What the store tells: every watch's recorded states, the outboxes and the dead letters,
    /// with each watch's last poll as `last_poll` knows it (only the daemon does; without it
    /// `|_| None`, and this is all there is).
    pub fn from_store(
        config: &Config,
        store: &Store,
        last_poll: impl Fn(&Watch) -> Option<LastPoll>,
    ) -> StatusReport {
        let subscriptions = config
            .watches
            .iter()
            .map(|w| {
                let last = last_poll(w);
                let summary = store.repo_summary(&w.repo).unwrap_or_else(|err| {
                    tracing::warn!(repo = %w.repo, %err, "cannot read what the store holds");
                    Default::default()
                });
                let mut channels: Vec<String> = Vec::new();
                for channel in w.subscriptions.iter().flat_map(|s| &s.channels) {
                    if !channels.contains(channel) {
                        channels.push(channel.clone());
                    }
                }
                SubscriptionStatus {
                    repository: w.url.clone(),
                    source: w.source.name().to_owned(),
                    credential: w.credential.clone(),
                    subscriptions: w.subscriptions.len(),
                    channels,
                    last_poll_ms: last.as_ref().map(|l| l.at_ms),
                    last_outcome: last.map(|l| l.outcome),
                    last_state: summary.last.map(|(state, at)| (shown(&state.label()), at)),
                    lanes: summary
                        .lanes
                        .into_iter()
                        .map(|(lane, health)| {
                            let health = match health {
                                Health::Passing => "passing",
                                Health::Failing => "failing",
                            };
                            // Both the ref and the job come from the build data.
                            (shown(&lane.to_string()), health.to_owned())
                        })
                        .collect(),
                    unfinished: summary.unfinished,
                }
            })
            .collect();
        StatusReport {
            running: false,
            config: config.source.clone(),
            subscriptions,
            channels: channels(config, store),
            dead_letters: store.dead_letters().map_or(0, |l| l.len()),
            mutes: mutes(store),
            ..StatusReport::default()
        }
    }
}

/// Every channel's mutes, with the cards each holds: those of its repositories queued before
/// it ends.
fn mutes(store: &Store) -> Vec<MuteStatus> {
    let mutes = store.mutes(None).unwrap_or_else(|err| {
        tracing::warn!(%err, "cannot read the mutes");
        Vec::new()
    });
    mutes
        .into_iter()
        .map(|mute| {
            let held = store.outbox(&mute.channel).map_or(0, |outbox| {
                outbox
                    .rows
                    .iter()
                    .filter(|r| {
                        mute.scope.covers(&r.build.key.repo) && r.enqueued_ms <= mute.until_ms
                    })
                    .count()
            });
            MuteStatus {
                channel: mute.channel,
                scope: shown(&mute.scope.to_string()),
                until_ms: mute.until_ms,
                by: shown(&mute.by),
                held,
            }
        })
        .collect()
}

/// Every configured channel with its waiting cards, the direct messages waiting for people of
/// `[people]`, then any channel the store still holds cards for that the configuration no
/// longer has.
fn channels(config: &Config, store: &Store) -> Vec<ChannelStatus> {
    let mut depths = store.outbox_depths().unwrap_or_else(|err| {
        tracing::warn!(%err, "cannot count the outbox");
        Default::default()
    });
    let mut channels: Vec<ChannelStatus> = config
        .zoom
        .channels
        .keys()
        .map(|name| ChannelStatus {
            name: name.clone(),
            outbox: depths.remove(name).unwrap_or(0),
            configured: true,
        })
        .collect();
    // People's direct messages: listed while some wait, as the channels they are.
    for user in config.people.direct_messaged() {
        let name = user.direct_channel();
        if let Some(outbox) = depths.remove(&name) {
            channels.push(ChannelStatus {
                name,
                outbox,
                configured: true,
            });
        }
    }
    channels.extend(depths.into_iter().map(|(name, outbox)| ChannelStatus {
        name,
        outbox,
        configured: false,
    }));
    channels
}

/// Does a dead-letter action on `store`: the daemon's way, and the CLI's when no daemon runs.
pub fn dead_letters(store: &Store, action: &DeadLetterAction) -> Result<DeadLetterReport, String> {
    let fail = |e: StoreError| e.to_string();
    let (ids, all, retry) = match action {
        DeadLetterAction::List => (&Vec::new(), false, false),
        DeadLetterAction::Retry { ids, all } => (ids, *all, true),
        DeadLetterAction::Drop { ids, all } => (ids, *all, false),
    };
    if !matches!(action, DeadLetterAction::List) && !all && ids.is_empty() {
        return Err(
            "name the dead letters (numbers from `bbzoom dead-letters list`) or say --all".into(),
        );
    }
    let chosen: Vec<u64> = if all {
        store
            .dead_letters()
            .map_err(fail)?
            .iter()
            // "Retry all" leaves the unreadable ones, which can only be dropped.
            .filter(|l| !retry || l.row.is_some())
            .map(|l| l.seq)
            .collect()
    } else {
        ids.clone()
    };
    for &id in &chosen {
        let found = if retry {
            store
                .retry_dead_letter(id, crate::clock::now_ms())
                .map_err(fail)?
        } else {
            store.drop_dead_letter(id).map_err(fail)?
        };
        if !found {
            return Err(format!(
                "no dead letter {id}; `bbzoom dead-letters list` shows them"
            ));
        }
    }
    store.flush().map_err(fail)?;
    let letters = store
        .dead_letters()
        .map_err(fail)?
        .into_iter()
        .map(|l| DeadLetterLine {
            id: l.seq,
            channel: shown(&l.channel),
            event: l
                .row
                .as_ref()
                .map_or("unreadable".into(), |r| r.event.to_string()),
            repository: l
                .row
                .as_ref()
                .map_or("?".into(), |r| shown(&r.build.key.repo.to_string())),
            // What an unreadable row held, cut and made safe: it may be anything.
            reason: match &l.raw {
                Some(raw) => format!("{}; it held: {}", shown(&l.reason), shown(raw)),
                None => shown(&l.reason),
            },
            died_ms: l.died_ms,
        })
        .collect();
    Ok(DeadLetterReport {
        letters,
        touched: chosen,
    })
}

/// A request on its way to the daemon's supervisor, with where its reply goes.
pub type Envelope = (Request, oneshot::Sender<Reply>);

/// Why a client got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the daemon is not running (nothing answers on {})", .socket.display())]
    NotRunning { socket: PathBuf },
    #[error("{}: {source}", .socket.display())]
    Io {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the daemon gave no answer within {}s", .socket.display(), .after.as_secs())]
    Timeout { socket: PathBuf, after: Duration },
    #[error("{}: unreadable answer: {reason}", .socket.display())]
    Garbled { socket: PathBuf, reason: String },
}

/// How long a client waits: a reload may wait for a delivery under way to finish.
const ANSWER_WITHIN: Duration = Duration::from_secs(90);

/// The longest request line the daemon reads.
const MAX_REQUEST: u64 = 64 * 1024;

/// Asks the daemon listening on `socket`.
pub async fn ask(socket: &Path, request: &Request) -> Result<Reply, ControlError> {
    let io = |source| ControlError::Io {
        socket: socket.to_owned(),
        source,
    };
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning {
                socket: socket.to_owned(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let exchange = async {
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(request).expect("requests serialize");
        line.push('\n');
        write.write_all(line.as_bytes()).await.map_err(io)?;
        let mut answer = String::new();
        BufReader::new(read)
            .read_line(&mut answer)
            .await
            .map_err(io)?;
        serde_json::from_str(&answer).map_err(|e| ControlError::Garbled {
            socket: socket.to_owned(),
            reason: e.to_string(),
        })
    };
    tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .map_err(|_| ControlError::Timeout {
            socket: socket.to_owned(),
            after: ANSWER_WITHIN,
        })?
}

/// Binds `path` for the daemon, owner-only. A socket left by a daemon that died is replaced;
/// one a live daemon answers on is not, and nothing that is not a socket is ever removed (a
/// `control_socket` pointing at a real file by mistake must not delete it).
pub fn bind(path: &Path) -> std::io::Result<(UnixListener, SocketFile)> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        let in_use = |what: String| std::io::Error::new(std::io::ErrorKind::AddrInUse, what);
        if !meta.file_type().is_socket() {
            return Err(in_use(format!(
                "{} exists and is not a socket; choose another [daemon] control_socket",
                path.display()
            )));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(in_use(format!(
                    "another bbzoom answers on {}",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)?;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Bound under a temporary name, made owner-only, then renamed into place: nobody can
    // connect while it still has the umask's mode.
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}", std::process::id()));
    let staging = PathBuf::from(staging);
    let listener = UnixListener::bind(&staging)?;
    let owner_only = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600));
    // Should a step fail, dropping `staged` removes the staging socket.
    let staged = SocketFile::at(&staging)?;
    owner_only?;
    std::fs::rename(&staging, path)?;
    drop(staged);
    Ok((listener, SocketFile::at(path)?))
}

/// The socket file a daemon bound, removed when this is dropped (however the daemon ends),
/// unless something else now sits at its path: another daemon's socket after a race, or a
/// file an admin put there.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device, inode and change time of the socket we bound, to recognise it (an inode number
    /// alone may be reused by the next file).
    identity: (u64, u64, i64, i64),
}

impl SocketFile {
    fn at(path: &Path) -> std::io::Result<SocketFile> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            identity: identity(&meta),
        })
    }
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| identity(&meta) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Connections still to send their request that the socket keeps at once: at the bound, the
/// oldest is let go, so clients that connect and say nothing never lock out one that talks.
const WAITING_CLIENTS: usize = 64;

/// How long a client may take to send its request, or to read the answer. A well-behaved
/// client (`bbzoom status`) sends its line as it connects: this bounds only idle ones.
const CLIENT_PATIENCE: Duration = Duration::from_secs(1);

/// Answers connections on `listener` by passing each request to `supervisor`, until the
/// process ends. Accepting never waits: each connection has [`CLIENT_PATIENCE`] to send its
/// request, and at most [`WAITING_CLIENTS`] wait for theirs at once.
pub async fn serve(listener: UnixListener, supervisor: mpsc::Sender<Envelope>) {
    let mut waiting: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, say: give the connections under way a moment to end.
                tracing::warn!(%err, "control socket: accept failed");
                tokio::time::sleep(CLIENT_PATIENCE / 10).await;
                continue;
            }
        };
        waiting.retain(|reading| !reading.is_finished());
        if waiting.len() >= WAITING_CLIENTS
            && let Some(oldest) = waiting.pop_front()
        {
            tracing::debug!("control socket: too many silent clients; the oldest is let go");
            oldest.abort();
        }
        let supervisor = supervisor.clone();
        let reading = tokio::spawn(async move {
            match read_request(stream).await {
                // Answered in a task of its own: a reload may take a while, and this one must
                // end as soon as the request is read to free its place among the waiting.
                Ok((line, write)) => {
                    tokio::spawn(async move {
                        if let Err(err) = answer(&line, write, supervisor).await {
                            tracing::debug!(%err, "control socket: a client went away");
                        }
                    });
                }
                Err(err) => tracing::debug!(%err, "control socket: a client sent no request"),
            }
        });
        waiting.push_back(reading.abort_handle());
    }
}

/// A client's request line (at most [`MAX_REQUEST`] bytes), within [`CLIENT_PATIENCE`].
async fn read_request(stream: UnixStream) -> std::io::Result<(Vec<u8>, OwnedWriteHalf)> {
    use tokio::io::AsyncReadExt;
    let (read, write) = stream.into_split();
    let mut line = Vec::new();
    tokio::time::timeout(
        CLIENT_PATIENCE,
        BufReader::new(read.take(MAX_REQUEST)).read_until(b'\n', &mut line),
    )
    .await
    .map_err(|_| too_slow("no request"))??;
    Ok((line, write))
}

/// Answers `line` through `supervisor`; the client has [`CLIENT_PATIENCE`] to read it.
async fn answer(
    line: &[u8],
    mut write: OwnedWriteHalf,
    supervisor: mpsc::Sender<Envelope>,
) -> std::io::Result<()> {
    let reply: Reply = match serde_json::from_slice::<Request>(line) {
        Err(e) => Err(format!("not a request: {e}")),
        Ok(request) => {
            let (tx, rx) = oneshot::channel();
            if supervisor.send((request, tx)).await.is_err() {
                Err("bbzoom is stopping".into())
            } else {
                rx.await
                    .unwrap_or_else(|_| Err("bbzoom is stopping".into()))
            }
        }
    };
    let mut out = serde_json::to_vec(&reply).expect("replies serialize");
    out.push(b'\n');
    tokio::time::timeout(CLIENT_PATIENCE, write.write_all(&out))
        .await
        .map_err(|_| too_slow("answer not read"))?
}

fn too_slow(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A person's direct messages waiting show as theirs, not as a channel gone.
    #[test]
    fn direct_messages_waiting_are_listed_as_configured() {
        use crate::domain::{BuildKey, BuildRef, BuildState, BuildStatus, EventKind, RepoId};
        use crate::store::{Notification, PollUpdate};
        let text = "[daemon]\nstate_dir = \"s\"\ncredentials = \"c\"\nidentity = \"i\"\n\
            [bitbucket]\ncredential = \"ci\"\n[zoom.chatbot]\ncredential = \"bot\"\n\
            account_id = \"a\"\nrobot_jid = \"bot@xmpp.zoom.us\"\nuser_jid = \"u@xmpp.zoom.us\"\n\
            [zoom.channels.ci]\nto_jid = \"ci@conference.xmpp.zoom.us\"\n\
            [[subscription]]\nrepository = \"https://bitbucket.org/acme/api\"\nchannels = [\"ci\"]\n\
            [people]\ndirect_message = true\n[people.accounts]\njane = \"abc@xmpp.zoom.us\"\n";
        let config = Config::parse(Path::new("/etc/bbzoom/config.toml"), text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repo = RepoId::new("acme", "api");
        let build = BuildStatus {
            key: BuildKey {
                repo: repo.clone(),
                id: "{1}".into(),
            },
            job: "pipeline".into(),
            name: "Pipeline".into(),
            number: Some(1),
            revision: 1,
            git_ref: BuildRef::Branch("main".into()),
            commit: None,
            commit_message: None,
            author: None,
            authors: Vec::new(),
            state: BuildState::Completed(crate::domain::Outcome::Failed),
            duration_secs: None,
            created_ms: 0,
            url: "https://bitbucket.org/acme/api/pipelines/results/1".into(),
            commit_url: None,
            ref_url: None,
            scheduled: false,
        };
        let row = |channel: &str| Notification {
            channel: channel.into(),
            event: EventKind::Failed,
            build: build.clone(),
            mention: None,
            war_room: None,
        };
        let update = PollUpdate {
            repo,
            source: crate::domain::SourceKind::Pipelines,
            cursor: Default::default(),
            builds: Vec::new(),
            health: Vec::new(),
            notifications: vec![row("@abc@xmpp.zoom.us"), row("gone")],
            meetings: Vec::new(),
        };
        store.commit_poll(&update, 1).unwrap();
        let listed: Vec<(String, usize, bool)> = channels(&config, &store)
            .into_iter()
            .map(|c| (c.name, c.outbox, c.configured))
            .collect();
        assert_eq!(
            listed,
            [
                ("ci".to_owned(), 0, true),
                ("@abc@xmpp.zoom.us".to_owned(), 1, true),
                ("gone".to_owned(), 1, false)
            ]
        );
    }

    #[tokio::test]
    async fn the_socket_is_owner_only_exclusive_and_removed_only_if_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (listener, file) = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = bind(&path).unwrap_err();
        assert!(
            second.to_string().contains("another bbzoom answers"),
            "{second}"
        );

        // A daemon that died left its socket: the next one replaces it.
        drop(listener);
        std::mem::forget(file);
        let (_listener, file) = bind(&path).unwrap();
        drop(file);
        assert!(!path.exists(), "removed at exit");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no staging left"
        );

        // Not a socket: refused, and left alone.
        std::fs::write(&path, "precious").unwrap();
        let refused = bind(&path).unwrap_err();
        assert!(refused.to_string().contains("is not a socket"), "{refused}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[tokio::test]
    async fn a_socket_someone_else_put_in_its_place_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (listener, file) = bind(&path).unwrap();
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(file);
        assert!(path.exists(), "another daemon's socket stays");
    }
}
