//! How things are laid out in sled: tree names, key encodings and the stored records. Nothing
//! outside `store` sees these (invariant 2); the store converts to and from domain types, which
//! know nothing of serde: a domain type can change without changing what is on disk.

use crate::domain::{
    BuildKey, BuildRef, BuildState, BuildStatus, EventKind, Health, Lane, Mention, Outcome, RepoId,
    SourceKind, WarRoom, ZoomUser,
};
use crate::mute::{Mute, MuteScope};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Bumped whenever a record or key layout changes incompatibly; `Store::open` migrates the
/// layouts it knows. 2: cursors and watching times per repository and source.
pub(crate) const SCHEMA_VERSION: u32 = 2;

pub(crate) const META: &str = "meta";
pub(crate) const REPOS: &str = "repos";
pub(crate) const BUILDS: &str = "builds";
pub(crate) const HEALTH: &str = "health";
pub(crate) const OUTBOX: &str = "outbox";
pub(crate) const DEAD: &str = "dead_letters";
pub(crate) const MESSAGES: &str = "messages";
/// Chat commands handled: message id -> when (Unix ms, big-endian), so none runs twice.
pub(crate) const CHAT_HANDLED: &str = "chat_handled";
/// Per command channel id: the newest message the backfill got to (Unix ms, big-endian).
pub(crate) const CHAT_CURSORS: &str = "chat_cursors";
/// Per channel and scope, a mute (`bbzoom mute`): [`mute_key`] -> [`MuteRecord`].
pub(crate) const MUTES: &str = "mutes";
/// Answers to chat commands not yet taken by Zoom: command message id -> [`ChatAnswer`].
pub(crate) const CHAT_ANSWERS: &str = "chat_answers";
/// Per failing lane that wants a war room (key: [`health_key`]): its streak, and the meeting
/// once created. Never the meeting's start link.
pub(crate) const MEETINGS: &str = "meetings";
pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";
/// The meta keys of watching times begin with this.
pub(crate) const SINCE_PREFIX: &[u8] = b"watching_since\0";
/// The meta keys of workspace scan positions begin with this: see [`scanned_key`].
pub(crate) const SCANNED_PREFIX: &[u8] = b"scanned_to\0";
/// The meta keys of repositories' Pipelines schedules begin with this, then [`repo_key`]:
/// [`SchedulesRecord`].
pub(crate) const SCHEDULES_PREFIX: &[u8] = b"schedules\0";

/// The meta keys of what the scheduler learnt of a watch begin with this, then
/// [`cursor_key`]: [`LearnedRecord`].
pub(crate) const LEARNED_PREFIX: &[u8] = b"learned\0";

/// What the scheduler learnt of one watch (a repository through one source), kept so a
/// restarted scheduler foresees its runs' ends and weights its sweep as before the stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LearnedRecord {
    /// When it was written (Unix milliseconds): `activity` decays from then.
    at_ms: i64,
    /// Builds found lately, as of `at_ms` (halving every `Tuning::history`).
    activity: f64,
    /// Each lane's typical run time in milliseconds, the lane written as in [`health_key`].
    durations: Vec<(String, f64)>,
}

impl LearnedRecord {
    pub(crate) fn new<'a>(
        at_ms: i64,
        activity: f64,
        durations: impl IntoIterator<Item = (&'a Lane, f64)>,
    ) -> LearnedRecord {
        LearnedRecord {
            at_ms,
            activity,
            durations: durations
                .into_iter()
                .map(|(lane, ms)| (encode_lane(lane), ms))
                .collect(),
        }
    }

    /// The activity as of `now_ms`, halved every `half_life` since it was written; none
    /// where the record holds no sane number.
    pub(crate) fn activity_at(&self, now_ms: i64, half_life: std::time::Duration) -> f64 {
        let age_ms = now_ms.saturating_sub(self.at_ms).max(0) as f64;
        let halvings = age_ms / (half_life.as_secs_f64() * 1000.0).max(1.0);
        let activity = self.activity * 0.5f64.powf(halvings);
        if activity.is_finite() && activity > 0.0 {
            activity
        } else {
            0.0
        }
    }

    /// The lanes' run times, but for what no run could take (a non-finite or non-positive
    /// time) or no lane is written as.
    pub(crate) fn durations(&self) -> impl Iterator<Item = (Lane, f64)> + '_ {
        self.durations
            .iter()
            .filter(|(_, ms)| ms.is_finite() && *ms > 0.0)
            .filter_map(|(lane, ms)| Some((decode_lane(lane.as_bytes())?, *ms)))
    }
}

/// A repository's enabled Pipelines schedules as last read: what a restarted scheduler polls
/// by until it reads them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchedulesRecord {
    /// When they were read (Unix milliseconds).
    pub(crate) read_ms: i64,
    /// Their cron patterns, as Bitbucket spells them.
    pub(crate) patterns: Vec<String>,
}

/// Per repository and source: how far polling got. Key: [`cursor_key`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RepoRecord {
    /// Highest build number recorded: anything above it is new.
    pub(crate) high_water: u64,
    /// Builds seen unfinished, followed by id until they end.
    pub(crate) active: Vec<String>,
    /// Statuses sources: the commit at the tip of each watched branch.
    #[serde(default)]
    pub(crate) branch_tips: BTreeMap<String, String>,
    /// Statuses sources: the commit each watched tag points at.
    #[serde(default)]
    pub(crate) tag_tips: BTreeMap<String, String>,
    /// Statuses sources: whether tags were listed last poll (when they were not, the first
    /// listing records them without announcing their builds).
    #[serde(default)]
    pub(crate) tags_listed: bool,
    /// Statuses sources: commits whose statuses are still read each poll.
    #[serde(default)]
    pub(crate) followed: Vec<FollowedRecord>,
    /// Statuses sources: outside CI's keys and the longest each took lately to come.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) late_keys: BTreeMap<String, i64>,
    /// Schema 1 only: the source the cursor belonged to, now part of the key. Read by the
    /// migration, never written.
    #[serde(default, skip_serializing)]
    pub(crate) source: Option<String>,
}

/// A commit whose statuses are still read, and until when at least.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FollowedRecord {
    /// The name of the branch (or, with `tag`, the tag) it was found at.
    pub(crate) branch: String,
    /// Whether `branch` names a tag.
    #[serde(default)]
    pub(crate) tag: bool,
    pub(crate) commit: String,
    pub(crate) message: Option<String>,
    pub(crate) author: Option<String>,
    /// The author's identities, for `[people]`; absent in records written before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) author_ids: Vec<String>,
    #[serde(default)]
    pub(crate) committed_ms: Option<i64>,
    pub(crate) settle_until_ms: i64,
    /// Absent in records written before late statuses were looked for: none.
    #[serde(default)]
    pub(crate) late_looks: u32,
    #[serde(default)]
    pub(crate) read_ms: i64,
    /// When it was first followed; absent in records written before: unknown (0).
    #[serde(default)]
    pub(crate) since_ms: i64,
    /// The outside CI's keys read on it so far, or waited for on it in vain.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) keys: BTreeSet<String>,
}

/// Per build: the last state recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuildRecord {
    pub(crate) state: StateRecord,
    /// The source's last update time, to tell an overwrite with the same state.
    #[serde(default)]
    pub(crate) revision: i64,
    /// Wall-clock Unix milliseconds of the observation, for housekeeping.
    pub(crate) observed_ms: i64,
}

/// A build as observed when an event happened, kept in its outbox row to render the card
/// from. The field names are those schema 1 wrote, so old rows still read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuildSnapshot {
    pub(crate) key: KeyRecord,
    pub(crate) job: String,
    pub(crate) name: String,
    pub(crate) number: Option<u64>,
    #[serde(default)]
    pub(crate) revision: i64,
    /// The branch, for a branch build.
    pub(crate) branch: Option<String>,
    /// The tag, for a tag build (neither: a bare commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tag: Option<String>,
    pub(crate) commit: Option<String>,
    pub(crate) commit_message: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) state: StateRecord,
    pub(crate) duration_secs: Option<u64>,
    pub(crate) created_ms: i64,
    pub(crate) url: String,
    pub(crate) commit_url: Option<String>,
    /// The branch's or tag's page.
    pub(crate) branch_url: Option<String>,
}

impl From<&BuildStatus> for BuildSnapshot {
    fn from(build: &BuildStatus) -> BuildSnapshot {
        let (branch, tag) = match &build.git_ref {
            BuildRef::Branch(name) => (Some(name.clone()), None),
            BuildRef::Tag(name) => (None, Some(name.clone())),
            BuildRef::Commit => (None, None),
        };
        BuildSnapshot {
            key: KeyRecord::from(&build.key),
            job: build.job.clone(),
            name: build.name.clone(),
            number: build.number,
            revision: build.revision,
            branch,
            tag,
            commit: build.commit.clone(),
            commit_message: build.commit_message.clone(),
            author: build.author.clone(),
            state: StateRecord::from(&build.state),
            duration_secs: build.duration_secs,
            created_ms: build.created_ms,
            url: build.url.clone(),
            commit_url: build.commit_url.clone(),
            branch_url: build.ref_url.clone(),
        }
    }
}

impl From<BuildSnapshot> for BuildStatus {
    fn from(snapshot: BuildSnapshot) -> BuildStatus {
        let git_ref = match (snapshot.branch, snapshot.tag) {
            (_, Some(tag)) => BuildRef::Tag(tag),
            (Some(branch), None) => BuildRef::Branch(branch),
            (None, None) => BuildRef::Commit,
        };
        BuildStatus {
            key: snapshot.key.into(),
            job: snapshot.job,
            name: snapshot.name,
            number: snapshot.number,
            revision: snapshot.revision,
            git_ref,
            commit: snapshot.commit,
            commit_message: snapshot.commit_message,
            author: snapshot.author,
            authors: Vec::new(),
            state: snapshot.state.into(),
            duration_secs: snapshot.duration_secs,
            created_ms: snapshot.created_ms,
            url: snapshot.url,
            commit_url: snapshot.commit_url,
            ref_url: snapshot.branch_url,
            scheduled: false,
        }
    }
}

/// A notification waiting to be delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboxRecord {
    pub(crate) channel: String,
    pub(crate) event: EventRecord,
    /// The build as observed when the event happened; the card is rendered from it.
    pub(crate) build: BuildSnapshot,
    pub(crate) enqueued_ms: i64,
    /// Failed delivery attempts so far.
    pub(crate) attempts: u32,
    /// Not before this wall-clock Unix millisecond (persisted so a restart resumes the backoff).
    pub(crate) next_attempt_ms: i64,
    /// When its first delivery attempt failed, if one did: rows queued after it were queued
    /// while the channel was failing (the fold rule counts them).
    #[serde(default)]
    pub(crate) first_failed_ms: Option<i64>,
    /// The person the card mentions (`[people]`), decided when the row was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mention: Option<MentionRecord>,
    /// The war room the card shows the link of, decided when the row was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) war_room: Option<WarRoomRecord>,
}

/// A war room as a row asks for it: its lane (of the row's repository) and streak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WarRoomRecord {
    /// The branch, or with `tag`, the tag.
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) tag: bool,
    pub(crate) job: String,
    pub(crate) streak: String,
}

impl From<&WarRoom> for WarRoomRecord {
    fn from(room: &WarRoom) -> WarRoomRecord {
        WarRoomRecord {
            name: room.lane.git_ref.name().unwrap_or_default().to_owned(),
            tag: matches!(room.lane.git_ref, BuildRef::Tag(_)),
            job: room.lane.job.clone(),
            streak: room.streak.clone(),
        }
    }
}

impl From<WarRoomRecord> for WarRoom {
    fn from(record: WarRoomRecord) -> WarRoom {
        WarRoom {
            lane: Lane {
                git_ref: if record.tag {
                    BuildRef::Tag(record.name)
                } else {
                    BuildRef::Branch(record.name)
                },
                job: record.job,
            },
            streak: record.streak,
        }
    }
}

/// A failing lane's war room in the `meetings` tree: the streak it is for, and the meeting
/// once created (its id and join link: the start link is never kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MeetingRecord {
    pub(crate) streak: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) meeting_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) join_url: Option<String>,
}

/// A mention as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MentionRecord {
    pub(crate) user: ZoomUserRecord,
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// A Zoom user as stored: `{"jid": ...}` or `{"email": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ZoomUserRecord {
    Jid(String),
    Email(String),
}

impl From<&Mention> for MentionRecord {
    fn from(mention: &Mention) -> MentionRecord {
        MentionRecord {
            user: match &mention.user {
                ZoomUser::Jid(jid) => ZoomUserRecord::Jid(jid.clone()),
                ZoomUser::Email(email) => ZoomUserRecord::Email(email.clone()),
            },
            name: mention.name.clone(),
        }
    }
}

impl From<MentionRecord> for Mention {
    fn from(record: MentionRecord) -> Mention {
        Mention {
            user: match record.user {
                ZoomUserRecord::Jid(jid) => ZoomUser::Jid(jid),
                ZoomUserRecord::Email(email) => ZoomUser::Email(email),
            },
            name: record.name,
        }
    }
}

/// A notification Zoom refused for good, or an outbox row that could not be read, kept for
/// the admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeadRecord {
    /// The row, when it could be read.
    #[serde(default)]
    pub(crate) row: Option<OutboxRecord>,
    /// What the store held instead of a readable row (lossy text, cut), for the admin.
    #[serde(default)]
    pub(crate) raw: Option<String>,
    pub(crate) reason: String,
    pub(crate) dead_ms: i64,
}

/// A mute of a channel, in force or ended with its summary still to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MuteRecord {
    /// The repository it covers; `None`: every one.
    pub(crate) repo: Option<RepoIdRecord>,
    pub(crate) since_ms: i64,
    pub(crate) until_ms: i64,
    pub(crate) by: String,
}

impl From<&Mute> for MuteRecord {
    fn from(mute: &Mute) -> MuteRecord {
        MuteRecord {
            repo: match &mute.scope {
                MuteScope::All => None,
                MuteScope::Repo(repo) => Some(RepoIdRecord::from(repo)),
            },
            since_ms: mute.since_ms,
            until_ms: mute.until_ms,
            by: mute.by.clone(),
        }
    }
}

impl MuteRecord {
    pub(crate) fn into_mute(self, channel: &str) -> Mute {
        Mute {
            channel: channel.to_owned(),
            scope: match self.repo {
                None => MuteScope::All,
                Some(repo) => MuteScope::Repo(RepoId::on(repo.instance, repo.owner, repo.slug)),
            },
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            by: self.by,
        }
    }
}

/// `channel \0 scope`: the scope is `*` for every repository, else [`repo_key`] (which never
/// is `*`).
pub(crate) fn mute_key(channel: &str, scope: &MuteScope) -> Vec<u8> {
    let mut out = outbox_prefix(channel);
    match scope {
        MuteScope::All => out.push(b'*'),
        MuteScope::Repo(repo) => out.extend_from_slice(&repo_key(repo)),
    }
    out
}

/// A build's key as stored: the JSON schema 1 wrote for the domain's `BuildKey`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub(crate) repo: RepoIdRecord,
    pub(crate) id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RepoIdRecord {
    pub(crate) instance: String,
    pub(crate) owner: String,
    pub(crate) slug: String,
}

impl From<&BuildKey> for KeyRecord {
    fn from(key: &BuildKey) -> KeyRecord {
        KeyRecord {
            repo: RepoIdRecord::from(&key.repo),
            id: key.id.clone(),
        }
    }
}

impl From<&RepoId> for RepoIdRecord {
    fn from(repo: &RepoId) -> RepoIdRecord {
        RepoIdRecord {
            instance: repo.instance.clone(),
            owner: repo.owner.clone(),
            slug: repo.slug.clone(),
        }
    }
}

impl From<KeyRecord> for BuildKey {
    fn from(record: KeyRecord) -> BuildKey {
        let RepoIdRecord {
            instance,
            owner,
            slug,
        } = record.repo;
        BuildKey {
            repo: RepoId::on(instance, owner, slug),
            id: record.id,
        }
    }
}

/// A build state as stored (variant names as schema 1 wrote them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StateRecord {
    Pending,
    Running,
    Paused,
    InProgressOther(String),
    Completed(OutcomeRecord),
}

impl StateRecord {
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self, StateRecord::Completed(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum OutcomeRecord {
    Successful,
    Failed,
    Error,
    Stopped,
    Expired,
    Other(String),
}

impl From<&BuildState> for StateRecord {
    fn from(state: &BuildState) -> StateRecord {
        match state {
            BuildState::Pending => StateRecord::Pending,
            BuildState::Running => StateRecord::Running,
            BuildState::Paused => StateRecord::Paused,
            BuildState::InProgressOther(stage) => StateRecord::InProgressOther(stage.clone()),
            BuildState::Completed(outcome) => StateRecord::Completed(match outcome {
                Outcome::Successful => OutcomeRecord::Successful,
                Outcome::Failed => OutcomeRecord::Failed,
                Outcome::Error => OutcomeRecord::Error,
                Outcome::Stopped => OutcomeRecord::Stopped,
                Outcome::Expired => OutcomeRecord::Expired,
                Outcome::Other(result) => OutcomeRecord::Other(result.clone()),
            }),
        }
    }
}

impl From<StateRecord> for BuildState {
    fn from(record: StateRecord) -> BuildState {
        match record {
            StateRecord::Pending => BuildState::Pending,
            StateRecord::Running => BuildState::Running,
            StateRecord::Paused => BuildState::Paused,
            StateRecord::InProgressOther(stage) => BuildState::InProgressOther(stage),
            StateRecord::Completed(outcome) => BuildState::Completed(match outcome {
                OutcomeRecord::Successful => Outcome::Successful,
                OutcomeRecord::Failed => Outcome::Failed,
                OutcomeRecord::Error => Outcome::Error,
                OutcomeRecord::Stopped => Outcome::Stopped,
                OutcomeRecord::Expired => Outcome::Expired,
                OutcomeRecord::Other(result) => Outcome::Other(result),
            }),
        }
    }
}

/// An event as stored, by the names the configuration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EventRecord {
    Started,
    Paused,
    Succeeded,
    Fixed,
    Failed,
    StillFailing,
    Stopped,
}

impl From<EventKind> for EventRecord {
    fn from(event: EventKind) -> EventRecord {
        match event {
            EventKind::Started => EventRecord::Started,
            EventKind::Paused => EventRecord::Paused,
            EventKind::Succeeded => EventRecord::Succeeded,
            EventKind::Fixed => EventRecord::Fixed,
            EventKind::Failed => EventRecord::Failed,
            EventKind::StillFailing => EventRecord::StillFailing,
            EventKind::Stopped => EventRecord::Stopped,
        }
    }
}

impl From<EventRecord> for EventKind {
    fn from(record: EventRecord) -> EventKind {
        match record {
            EventRecord::Started => EventKind::Started,
            EventRecord::Paused => EventKind::Paused,
            EventRecord::Succeeded => EventKind::Succeeded,
            EventRecord::Fixed => EventKind::Fixed,
            EventRecord::Failed => EventKind::Failed,
            EventRecord::StillFailing => EventKind::StillFailing,
            EventRecord::Stopped => EventKind::Stopped,
        }
    }
}

/// `instance:owner/slug`: the same path on two instances is two repositories.
pub(crate) fn repo_key(repo: &RepoId) -> Vec<u8> {
    format!("{}:{}/{}", repo.instance, repo.owner, repo.slug).into_bytes()
}

/// The cursor of `repo` read through `source`: `repo \0 source`.
pub(crate) fn cursor_key(repo: &RepoId, source: SourceKind) -> Vec<u8> {
    let mut out = repo_key(repo);
    out.push(0);
    out.extend_from_slice(source.name().as_bytes());
    out
}

/// The card a channel shows for a build: `channel \0 build key`.
pub(crate) fn message_key(channel: &str, build: &BuildKey) -> Vec<u8> {
    let mut out = outbox_prefix(channel);
    out.extend_from_slice(&build_key(build));
    out
}

/// Meta key of the time bbzoom started watching `repo` through `source`; its value is the
/// time, 8 bytes, big-endian Unix milliseconds.
pub(crate) fn since_key(repo: &RepoId, source: SourceKind) -> Vec<u8> {
    let mut out = SINCE_PREFIX.to_vec();
    out.extend_from_slice(&cursor_key(repo, source));
    out
}

/// Meta key of where the scans of `workspace` with credential `credential` got to: the
/// workspace (lower case, as Bitbucket's ids are), a NUL, then the credential's name. Its
/// value is 8 bytes, big-endian Unix milliseconds.
pub(crate) fn scanned_key(credential: &str, workspace: &str) -> Vec<u8> {
    let mut out = SCANNED_PREFIX.to_vec();
    out.extend_from_slice(workspace.to_lowercase().as_bytes());
    out.push(0);
    out.extend_from_slice(credential.as_bytes());
    out
}

/// Meta key of what the scheduler learnt of `repo` through `source`.
pub(crate) fn learned_key(repo: &RepoId, source: SourceKind) -> Vec<u8> {
    let mut out = LEARNED_PREFIX.to_vec();
    out.extend_from_slice(&cursor_key(repo, source));
    out
}

/// Meta key of `repo`'s Pipelines schedules.
pub(crate) fn schedules_key(repo: &RepoId) -> Vec<u8> {
    let mut out = SCHEDULES_PREFIX.to_vec();
    out.extend_from_slice(&repo_key(repo));
    out
}

/// Schema 1's value of a watching time: the time, then the source's name if it was kept.
pub(crate) fn decode_v1_since(bytes: &[u8]) -> Option<(i64, Option<&str>)> {
    let (time, source) = bytes.split_first_chunk::<8>()?;
    let source = (!source.is_empty())
        .then(|| std::str::from_utf8(source).ok())
        .map_or(Some(None), |name| name.map(Some))?;
    Some((i64::from_be_bytes(*time), source))
}

pub(crate) fn build_key(key: &BuildKey) -> Vec<u8> {
    let mut out = repo_key(&key.repo);
    out.push(0);
    out.extend_from_slice(key.id.as_bytes());
    out
}

/// Marks a tag lane's name; Git allows no control character in a ref name, so no branch
/// name begins with it. Branch lanes are written as schema 1 wrote them.
const TAG_MARK: char = '\u{1}';

/// `repo \0 ref \0 job`, where a tag's ref is written with [`TAG_MARK`] before its name.
pub(crate) fn health_key(repo: &RepoId, lane: &Lane) -> Vec<u8> {
    let mut out = repo_key(repo);
    out.push(0);
    out.extend_from_slice(encode_lane(lane).as_bytes());
    out
}

fn encode_lane(lane: &Lane) -> String {
    match &lane.git_ref {
        BuildRef::Tag(name) => format!("{TAG_MARK}{name}\0{}", lane.job),
        BuildRef::Branch(name) => format!("{name}\0{}", lane.job),
        BuildRef::Commit => format!("\0{}", lane.job),
    }
}

/// The lane of a health key's part after `repo \0`: no branch has an empty name, so an
/// empty one is a bare commit's.
pub(crate) fn decode_lane(bytes: &[u8]) -> Option<Lane> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (name, job) = text.split_once('\0')?;
    let git_ref = match name.strip_prefix(TAG_MARK) {
        Some(tag) => BuildRef::Tag(tag.to_owned()),
        None if name.is_empty() => BuildRef::Commit,
        None => BuildRef::Branch(name.to_owned()),
    };
    Some(Lane {
        git_ref,
        job: job.to_owned(),
    })
}

/// The prefix of every outbox key of `channel`; rows sort by sequence number within it.
pub(crate) fn outbox_prefix(channel: &str) -> Vec<u8> {
    let mut out = channel.as_bytes().to_vec();
    out.push(0);
    out
}

pub(crate) fn outbox_key(channel: &str, seq: u64) -> Vec<u8> {
    let mut out = outbox_prefix(channel);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The sequence number an outbox or dead-letter key ends with.
pub(crate) fn seq_of(key: &[u8]) -> Option<u64> {
    let at = key.len().checked_sub(8)?;
    <[u8; 8]>::try_from(&key[at..]).ok().map(u64::from_be_bytes)
}

/// Health is stored as one byte.
pub(crate) fn encode_health(health: Health) -> [u8; 1] {
    [match health {
        Health::Passing => b'P',
        Health::Failing => b'F',
    }]
}

pub(crate) fn decode_health(bytes: &[u8]) -> Option<Health> {
    match bytes {
        b"P" => Some(Health::Passing),
        b"F" => Some(Health::Failing),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is on disk does not move when a domain type does: the forms schema 1 and 2 wrote.
    #[test]
    fn records_keep_the_json_already_on_disk() {
        let state = |s: &BuildState| serde_json::to_string(&StateRecord::from(s)).unwrap();
        assert_eq!(state(&BuildState::Running), r#""Running""#);
        assert_eq!(
            state(&BuildState::InProgressOther("HALTED".into())),
            r#"{"InProgressOther":"HALTED"}"#
        );
        assert_eq!(
            state(&BuildState::Completed(Outcome::Failed)),
            r#"{"Completed":"Failed"}"#
        );
        assert_eq!(
            state(&BuildState::Completed(Outcome::Other("X".into()))),
            r#"{"Completed":{"Other":"X"}}"#
        );
        let event = serde_json::to_string(&EventRecord::from(EventKind::StillFailing)).unwrap();
        assert_eq!(event, r#""still_failing""#);
        let key = BuildKey {
            repo: RepoId::on("dc", "PLAT", "web"),
            id: "{u}".into(),
        };
        let json = serde_json::to_string(&KeyRecord::from(&key)).unwrap();
        assert_eq!(
            json,
            r#"{"repo":{"instance":"dc","owner":"PLAT","slug":"web"},"id":"{u}"}"#
        );
        let back: KeyRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(BuildKey::from(back), key);
        for state in [
            BuildState::Pending,
            BuildState::Paused,
            BuildState::Completed(Outcome::Expired),
        ] {
            assert_eq!(BuildState::from(StateRecord::from(&state)), state);
        }
    }

    #[test]
    fn lanes_round_trip_and_branch_lanes_keep_schema_1_keys() {
        let repo = RepoId::new("acme", "api");
        let branch = Lane {
            git_ref: BuildRef::Branch("release/1.2".into()),
            job: "pipeline".into(),
        };
        let tag = Lane {
            git_ref: BuildRef::Tag("v1.2".into()),
            job: "jenkins".into(),
        };
        assert_eq!(
            health_key(&repo, &branch),
            b"cloud:acme/api\0release/1.2\0pipeline".to_vec()
        );
        let custom = Lane {
            git_ref: BuildRef::Commit,
            job: "deploy-staging".into(),
        };
        for lane in [branch, tag, custom] {
            let key = health_key(&repo, &lane);
            let prefix = repo_key(&repo).len() + 1;
            assert_eq!(decode_lane(&key[prefix..]), Some(lane));
        }
    }
}

/// An answer to a chat command waiting to be sent, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChatAnswer {
    /// The command's channel.
    pub(crate) to_jid: String,
    /// The message whose thread the answer goes in.
    pub(crate) thread: String,
    /// The chatbot message content, rendered when the command ran.
    pub(crate) content: serde_json::Value,
    /// When it was queued (Unix ms): answers go out in this order, and are given up on
    /// `[zoom.delivery] max_age` after it.
    pub(crate) queued_ms: i64,
}
