//! Bitbucket Cloud's JSON, as much of it as bbzoom reads, and its conversion into domain types.
//! Nothing outside `bitbucket` sees these types (architecture invariant 2).

use crate::domain::{
    AuthorIds, BuildKey, BuildRef, BuildState, BuildStatus, Outcome, RefTip, RepoId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A page of any paginated Cloud collection.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub(crate) values: Vec<T>,
    /// Absolute URL of the next page; absent on the last one.
    pub(crate) next: Option<String>,
}

/// A repository as the workspace scan asks for it (`fields=values.slug,values.updated_on`).
#[derive(Debug, Deserialize)]
pub(crate) struct RepositorySummary {
    pub(crate) slug: String,
    pub(crate) updated_on: Option<String>,
}

impl RepositorySummary {
    /// The repository of `workspace` it names, and when it was last pushed to (Unix
    /// milliseconds); `None` without a readable time (then it cannot be told from a listed
    /// one that did not change, and the scan ignores it).
    pub(crate) fn to_domain(&self, workspace: &str) -> Option<(RepoId, i64)> {
        let updated = parse_ms(self.updated_on.as_deref()?)?;
        Some((RepoId::new(workspace, &self.slug), updated))
    }
}

/// A Pipelines schedule, as `pipelines_config/schedules` lists it.
#[derive(Debug, Deserialize)]
pub(crate) struct Schedule {
    pub(crate) uuid: String,
    /// Absent: enabled, as Bitbucket makes schedules unless told otherwise.
    pub(crate) enabled: Option<bool>,
    /// Quartz's 7 fields, in UTC.
    pub(crate) cron_pattern: Option<String>,
    /// The branch it runs (`ref_name`).
    pub(crate) target: Option<Target>,
}

impl Schedule {
    /// The schedule with its pattern read, or why the pattern cannot be; `None` for a
    /// disabled one, which starts nothing.
    pub(crate) fn to_domain(&self) -> Option<Result<crate::schedule::Schedule, String>> {
        if self.enabled == Some(false) {
            return None;
        }
        let pattern = match self.cron_pattern.as_deref() {
            Some(text) => crate::schedule::CronPattern::parse(text),
            None => Err("no cron_pattern".to_owned()),
        };
        Some(pattern.map(|pattern| crate::schedule::Schedule {
            uuid: self.uuid.clone(),
            pattern,
            branch: self.target.as_ref().and_then(|t| t.ref_name.clone()),
        }))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Pipeline {
    pub(crate) uuid: String,
    pub(crate) build_number: u64,
    pub(crate) state: PipelineState,
    pub(crate) created_on: Option<String>,
    pub(crate) creator: Option<Account>,
    pub(crate) target: Option<Target>,
    pub(crate) duration_in_seconds: Option<u64>,
    pub(crate) completed_on: Option<String>,
    /// What started it: a push, a schedule or a person. Only a hint, so a shape not read
    /// here is no trigger rather than an unreadable pipeline.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) trigger: Option<Trigger>,
}

/// A pipeline's `trigger`: `pipeline_trigger_push`, `pipeline_trigger_schedule` (name
/// `SCHEDULE`) or `pipeline_trigger_manual`; an open set, so anything else is no schedule.
#[derive(Debug, Deserialize)]
pub(crate) struct Trigger {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) name: Option<String>,
}

impl Trigger {
    /// Whether a schedule started the pipeline: its `type` says so, or, without one, its
    /// `name`.
    fn is_schedule(&self) -> bool {
        match &self.kind {
            Some(kind) => kind == "pipeline_trigger_schedule",
            None => self.name.as_deref() == Some("SCHEDULE"),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PipelineState {
    pub(crate) name: String,
    pub(crate) stage: Option<Named>,
    pub(crate) result: Option<Named>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    pub(crate) name: String,
}

/// A Bitbucket Cloud account as answers embed it (a pipeline's `creator`, a commit author's
/// `user`).
#[derive(Debug, Deserialize)]
pub(crate) struct Account {
    pub(crate) display_name: Option<String>,
    /// `{...}`, with braces.
    pub(crate) uuid: Option<String>,
    /// The Atlassian account id.
    pub(crate) account_id: Option<String>,
    pub(crate) nickname: Option<String>,
}

impl Account {
    fn ids(&self) -> AuthorIds {
        AuthorIds::new([
            self.uuid.as_deref(),
            self.account_id.as_deref(),
            self.nickname.as_deref(),
        ])
    }
}

/// What a pipeline ran for: `pipeline_ref_target` (a branch or tag), `pipeline_commit_target`
/// (a bare commit) or `pipeline_pullrequest_target`.
#[derive(Debug, Deserialize)]
pub(crate) struct Target {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) ref_type: Option<String>,
    pub(crate) ref_name: Option<String>,
    /// Pull-request pipelines name their source branch here.
    pub(crate) source: Option<String>,
    pub(crate) commit: Option<Commit>,
    /// Which pipeline of `bitbucket-pipelines.yml` ran: `default`, `branches`, `tags`,
    /// `custom` (with its name as `pattern`), ...
    pub(crate) selector: Option<Selector>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Selector {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) pattern: Option<String>,
}

impl Target {
    /// The branch or tag the pipeline ran for; a bare commit when it names neither.
    fn git_ref(&self) -> BuildRef {
        if self.kind.as_deref() == Some("pipeline_commit_target") {
            return BuildRef::Commit;
        }
        match (self.ref_type.as_deref(), &self.ref_name, &self.source) {
            (Some("tag" | "annotated_tag"), Some(name), _) => BuildRef::Tag(name.clone()),
            // Branches (and Mercurial's named branches and bookmarks, and any ref type yet
            // unknown): what people filter on as a branch.
            (Some(_), Some(name), _) => BuildRef::Branch(name.clone()),
            (None, _, Some(source)) => BuildRef::Branch(source.clone()),
            _ => BuildRef::Commit,
        }
    }

    /// A custom pipeline's name: it is a job of its own, whose health is its own.
    fn custom(&self) -> Option<&str> {
        let selector = self.selector.as_ref()?;
        (selector.kind.as_deref() == Some("custom"))
            .then_some(selector.pattern.as_deref())
            .flatten()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Commit {
    pub(crate) hash: Option<String>,
    /// Only present when asked for with `fields=+values.target.commit.message`.
    pub(crate) message: Option<String>,
    /// Only present when asked for with `fields=+values.target.commit.author`.
    pub(crate) author: Option<CommitAuthor>,
}

impl PipelineState {
    /// Known names map to domain states; anything else is kept as data.
    pub(crate) fn to_domain(&self) -> BuildState {
        match (self.name.as_str(), &self.stage, &self.result) {
            ("PENDING", _, _) => BuildState::Pending,
            ("IN_PROGRESS", Some(stage), _) => match stage.name.as_str() {
                "RUNNING" => BuildState::Running,
                "PAUSED" => BuildState::Paused,
                other => BuildState::InProgressOther(other.to_owned()),
            },
            ("IN_PROGRESS", None, _) => BuildState::Running,
            (_, _, Some(result)) => BuildState::Completed(match result.name.as_str() {
                "SUCCESSFUL" => Outcome::Successful,
                "FAILED" => Outcome::Failed,
                "ERROR" => Outcome::Error,
                "STOPPED" => Outcome::Stopped,
                "EXPIRED" => Outcome::Expired,
                other => Outcome::Other(other.to_owned()),
            }),
            ("COMPLETED", _, None) => BuildState::Completed(Outcome::Other("COMPLETED".into())),
            (other, _, None) => BuildState::InProgressOther(other.to_owned()),
        }
    }
}

impl Pipeline {
    /// The domain view of this pipeline of `repo`, linking to its page under `web_url`.
    pub(crate) fn to_domain(&self, repo: &RepoId, web_url: &url::Url) -> BuildStatus {
        let target = self.target.as_ref();
        let git_ref = target.map_or(BuildRef::Commit, Target::git_ref);
        let commit = target.and_then(|t| t.commit.as_ref());
        let hash = commit.and_then(|c| c.hash.as_deref());
        let (job, name) = match target.and_then(Target::custom) {
            Some(custom) => (format!("custom: {custom}"), format!("Pipeline {custom}")),
            None => ("pipeline".to_owned(), "Pipeline".to_owned()),
        };
        // The commit's author first (whose change it is), then who started the run.
        let commit_author = commit.and_then(|c| c.author.as_ref());
        let creator = self.creator.as_ref();
        let authors = [
            commit_author.map(CommitAuthor::ids),
            creator.map(Account::ids),
        ]
        .into_iter()
        .flatten()
        .filter(|ids| !ids.is_empty())
        .collect();
        BuildStatus {
            commit_url: hash.map(|h| cloud_page(web_url, repo, &["commits", h])),
            ref_url: cloud_ref_page(web_url, repo, &git_ref),
            key: BuildKey {
                repo: repo.clone(),
                id: self.uuid.clone(),
            },
            job,
            name,
            number: Some(self.build_number),
            // A rerun ends again with a new completion time: the same state, a new revision.
            revision: self.completed_on.as_deref().and_then(parse_ms).unwrap_or(0),
            git_ref,
            commit: commit.and_then(|c| c.hash.clone()),
            commit_message: commit.and_then(|c| c.message.as_deref()).map(first_line),
            author: commit_author
                .and_then(CommitAuthor::name)
                .or_else(|| creator.and_then(|c| c.display_name.clone()))
                .filter(|a| !a.is_empty()),
            authors,
            state: self.state.to_domain(),
            duration_secs: self.duration_in_seconds,
            created_ms: self.created_on.as_deref().and_then(parse_ms).unwrap_or(0),
            url: cloud_page(
                web_url,
                repo,
                &["pipelines", "results", &self.build_number.to_string()],
            ),
            scheduled: self.trigger.as_ref().is_some_and(Trigger::is_schedule),
        }
    }
}

/// A branch or tag from `refs/branches`, `refs/tags` or `refs`.
#[derive(Debug, Deserialize)]
pub(crate) struct Ref {
    /// `branch` or `tag`.
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) name: String,
    pub(crate) target: Option<BranchTarget>,
}

/// A commit as ref listings (a ref's `target`) and commit listings show it.
#[derive(Debug, Deserialize)]
pub(crate) struct BranchTarget {
    pub(crate) hash: Option<String>,
    /// The commit's date.
    pub(crate) date: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) author: Option<CommitAuthor>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CommitAuthor {
    /// `Name <email>` as git recorded it.
    pub(crate) raw: Option<String>,
    pub(crate) user: Option<Account>,
}

impl CommitAuthor {
    /// The Bitbucket account's name, else the name git recorded: "Jane Dev <jane@example.com>"
    /// is "Jane Dev", since a card never shows an e-mail address.
    fn name(&self) -> Option<String> {
        self.user
            .as_ref()
            .and_then(|u| u.display_name.clone())
            .or_else(|| {
                let raw = self.raw.as_deref()?;
                Some(raw.split('<').next().unwrap_or_default().trim().to_owned())
            })
            .filter(|name| !name.is_empty())
    }

    /// The account's identities, and the e-mail address git recorded.
    fn ids(&self) -> AuthorIds {
        let email = self.raw.as_deref().and_then(|raw| {
            let (_, rest) = raw.rsplit_once('<')?;
            rest.split_once('>').map(|(email, _)| email)
        });
        let mut ids = self.user.as_ref().map(Account::ids).unwrap_or_default();
        ids.0.extend(AuthorIds::new([email]).0);
        AuthorIds::new(ids.0.iter().map(|id| Some(id.as_str())))
    }
}

impl Ref {
    /// The commit the ref points at; `None` for one without a commit. `listing` is the list it
    /// came from (`branches`, `tags`, or `refs` for both), for objects that do not say their
    /// `type`.
    pub(crate) fn into_tip(self, listing: Option<&str>) -> Option<RefTip> {
        let git_ref = match self.kind.as_deref().or(listing) {
            Some("tag" | "tags") => BuildRef::Tag(self.name),
            _ => BuildRef::Branch(self.name),
        };
        self.target?.into_tip(git_ref)
    }
}

impl BranchTarget {
    /// This commit as found at `git_ref`; `None` without a hash.
    pub(crate) fn into_tip(self, git_ref: BuildRef) -> Option<RefTip> {
        Some(RefTip {
            git_ref,
            committed_ms: self.date.as_deref().and_then(parse_ms),
            message: self.message.as_deref().map(first_line),
            author: self.author.as_ref().and_then(CommitAuthor::name),
            author_ids: self
                .author
                .as_ref()
                .map(CommitAuthor::ids)
                .unwrap_or_default(),
            commit: self.hash?,
        })
    }
}

/// A build status external CI posted on a commit.
#[derive(Debug, Deserialize)]
pub(crate) struct CommitStatus {
    pub(crate) key: String,
    pub(crate) name: Option<String>,
    pub(crate) state: String,
    pub(crate) url: Option<String>,
    pub(crate) refname: Option<String>,
    pub(crate) created_on: Option<String>,
    pub(crate) updated_on: Option<String>,
}

impl CommitStatus {
    /// The domain view of this status of `tip`'s commit; `known` tells which ref a bare name
    /// is (a listed tag or branch).
    pub(crate) fn to_domain(
        &self,
        repo: &RepoId,
        tip: &RefTip,
        known: impl Fn(&str) -> Option<BuildRef>,
        web_url: &url::Url,
    ) -> BuildStatus {
        let created_ms = self.created_on.as_deref().and_then(parse_ms).unwrap_or(0);
        let git_ref = super::named_ref(self.refname.as_deref(), tip, known);
        super::PostedStatus {
            key: &self.key,
            name: self.name.as_deref(),
            state: &self.state,
            number: None,
            ref_url: cloud_ref_page(web_url, repo, &git_ref),
            git_ref,
            commit_url: cloud_page(web_url, repo, &["commits", &tip.commit]),
            // CI servers sometimes post their URL template unexpanded.
            url: self.url.clone().filter(|u| !u.contains('{')),
            created_ms,
            updated_ms: self
                .updated_on
                .as_deref()
                .and_then(parse_ms)
                .unwrap_or(created_ms),
            duration_secs: None,
        }
        .into_build(repo, tip)
    }
}

/// A page of `repo` on Bitbucket Cloud's web site, each segment percent-encoded.
fn cloud_page(web_url: &url::Url, repo: &RepoId, tail: &[&str]) -> String {
    let segments = [repo.owner.as_str(), repo.slug.as_str()].into_iter();
    crate::http::with_segments(web_url, segments.chain(tail.iter().copied())).to_string()
}

/// A branch's page on Bitbucket Cloud (`/branch/feature/x`, slashes kept as the site writes
/// them) or a tag's (`/commits/tag/v1.2`); a bare commit has none.
fn cloud_ref_page(web_url: &url::Url, repo: &RepoId, git_ref: &BuildRef) -> Option<String> {
    let (page, name): (&[&str], &str) = match git_ref {
        BuildRef::Branch(name) => (&["branch"], name),
        BuildRef::Tag(name) => (&["commits", "tag"], name),
        BuildRef::Commit => return None,
    };
    let tail: Vec<&str> = page.iter().copied().chain(name.split('/')).collect();
    Some(cloud_page(web_url, repo, &tail))
}

/// Whether a commit status was posted by Bitbucket Pipelines itself: its link is the
/// pipeline's page (`{web}/{owner}/{slug}/addon/pipelines/home#!/results/N`).
pub(crate) fn posted_by_pipelines(url: Option<&str>) -> bool {
    url.is_some_and(|url| url.contains("/addon/pipelines/home#!/results/"))
}

pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// A `T` if the value reads as one, else `None`.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(serde_json::from_value(serde_json::Value::deserialize(deserializer)?).ok())
}

fn parse_ms(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> BuildState {
        serde_json::from_str::<PipelineState>(json)
            .unwrap()
            .to_domain()
    }

    #[test]
    fn every_documented_state_shape_and_unknown_ones() {
        let table = [
            (
                r#"{"name":"PENDING","type":"pipeline_state_pending"}"#,
                BuildState::Pending,
            ),
            (
                r#"{"name":"IN_PROGRESS","stage":{"name":"RUNNING"}}"#,
                BuildState::Running,
            ),
            (
                r#"{"name":"IN_PROGRESS","stage":{"name":"PAUSED"}}"#,
                BuildState::Paused,
            ),
            (
                r#"{"name":"IN_PROGRESS","stage":{"name":"HALTED"}}"#,
                BuildState::InProgressOther("HALTED".into()),
            ),
            (r#"{"name":"IN_PROGRESS"}"#, BuildState::Running),
            (
                r#"{"name":"COMPLETED","result":{"name":"SUCCESSFUL"}}"#,
                BuildState::Completed(Outcome::Successful),
            ),
            (
                r#"{"name":"COMPLETED","result":{"name":"FAILED"}}"#,
                BuildState::Completed(Outcome::Failed),
            ),
            (
                r#"{"name":"COMPLETED","result":{"name":"ERROR","error":{"key":"k","message":"m"}}}"#,
                BuildState::Completed(Outcome::Error),
            ),
            (
                r#"{"name":"COMPLETED","result":{"name":"STOPPED","terminator":{}}}"#,
                BuildState::Completed(Outcome::Stopped),
            ),
            (
                r#"{"name":"COMPLETED","result":{"name":"EXPIRED"}}"#,
                BuildState::Completed(Outcome::Expired),
            ),
            (
                r#"{"name":"COMPLETED","result":{"name":"NEW_RESULT"}}"#,
                BuildState::Completed(Outcome::Other("NEW_RESULT".into())),
            ),
            (
                r#"{"name":"QUEUED_SOMEWHERE"}"#,
                BuildState::InProgressOther("QUEUED_SOMEWHERE".into()),
            ),
        ];
        for (json, expected) in table {
            assert_eq!(state(json), expected, "{json}");
        }
    }

    #[test]
    fn the_published_sample_converts() {
        let sample: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/data/bitbucket-pipelines-list.json"
        ))
        .unwrap();
        let page: Page<Pipeline> = serde_json::from_value(sample).unwrap();
        let repo = RepoId::new("TestWorkspace1", "testrepository");
        let build =
            page.values[0].to_domain(&repo, &url::Url::parse("https://bitbucket.org").unwrap());
        assert_eq!(build.number, Some(25));
        assert_eq!(build.git_ref, BuildRef::Branch("master".into()));
        assert_eq!(
            build.commit.as_deref(),
            Some("30c1b58a2341992fe6870756a8880d5006ddb18e")
        );
        assert_eq!(build.author.as_deref(), Some("DisplayName"));
        // No commit author asked for: the creator alone, by uuid, account id and nickname.
        assert_eq!(
            build.authors,
            [AuthorIds(vec![
                "{OwnerTestWorkspace1AccountId}".into(),
                "OwnerTestWorkspace1AccountId".into(),
                "OwnerTestWorkspace1Nickname".into()
            ])]
        );
        assert_eq!(build.state, BuildState::Completed(Outcome::Stopped));
        assert_eq!(build.created_ms, 1_604_441_690_671);
        assert_eq!(
            build.url,
            "https://bitbucket.org/TestWorkspace1/testrepository/pipelines/results/25"
        );
    }

    /// The commit's author comes first (shown, and matched first), the creator after; an
    /// author git knows only by name and e-mail is matched by the e-mail, never shown by it.
    #[test]
    fn the_commit_author_comes_before_who_started_the_run() {
        let web = url::Url::parse("https://bitbucket.org").unwrap();
        let repo = RepoId::new("acme", "api");
        let pipeline = |commit_author: &str| {
            let json = format!(
                r#"{{"uuid":"{{u}}","build_number":7,"state":{{"name":"PENDING"}},
                "creator":{{"display_name":"Rita Runner","uuid":"{{r}}","account_id":"557058:r","nickname":"rita"}},
                "target":{{"ref_type":"branch","ref_name":"main","commit":{{"hash":"abc"{commit_author}}}}}}}"#
            );
            serde_json::from_str::<Pipeline>(&json)
                .unwrap()
                .to_domain(&repo, &web)
        };
        let rita = AuthorIds(vec!["{r}".into(), "557058:r".into(), "rita".into()]);
        let linked = pipeline(
            r#","author":{"raw":"Jane Dev <jane@example.com>","user":{"display_name":"Jane D.","uuid":"{j}","account_id":"557058:j","nickname":"jane"}}"#,
        );
        assert_eq!(linked.author.as_deref(), Some("Jane D."));
        assert_eq!(
            linked.authors,
            [
                AuthorIds(vec![
                    "{j}".into(),
                    "557058:j".into(),
                    "jane".into(),
                    "jane@example.com".into()
                ]),
                rita.clone()
            ]
        );
        let unlinked = pipeline(r#","author":{"raw":"Jane Dev <jane@example.com>"}"#);
        assert_eq!(unlinked.author.as_deref(), Some("Jane Dev"));
        assert_eq!(
            unlinked.authors,
            [AuthorIds(vec!["jane@example.com".into()]), rita.clone()]
        );
        let none = pipeline("");
        assert_eq!(none.author.as_deref(), Some("Rita Runner"));
        assert_eq!(none.authors, [rita]);
    }

    #[test]
    fn scheduled_runs_are_told_by_their_trigger_and_anything_else_is_not_one() {
        let web = url::Url::parse("https://bitbucket.org").unwrap();
        let repo = RepoId::new("acme", "api");
        let scheduled = |trigger: &str| {
            let json = format!(
                r#"{{"uuid":"{{u}}","build_number":7,"state":{{"name":"PENDING"}}{trigger}}}"#
            );
            serde_json::from_str::<Pipeline>(&json)
                .unwrap()
                .to_domain(&repo, &web)
                .scheduled
        };
        let table = [
            (
                r#","trigger":{"name":"SCHEDULE","type":"pipeline_trigger_schedule"}"#,
                true,
            ),
            (r#","trigger":{"type":"pipeline_trigger_schedule"}"#, true),
            (r#","trigger":{"name":"SCHEDULE"}"#, true),
            (
                r#","trigger":{"name":"PUSH","type":"pipeline_trigger_push"}"#,
                false,
            ),
            (
                r#","trigger":{"name":"MANUAL","type":"pipeline_trigger_manual"}"#,
                false,
            ),
            (
                r#","trigger":{"name":"SCHEDULE","type":"pipeline_trigger_new"}"#,
                false,
            ),
            (r#","trigger":{}"#, false),
            (r#","trigger":null"#, false),
            (r#","trigger":"SCHEDULE""#, false),
            (r#","trigger":{"type":7}"#, false),
            ("", false),
        ];
        for (trigger, expected) in table {
            assert_eq!(scheduled(trigger), expected, "{trigger}");
        }
        // The published sample's run was started by hand.
        let sample: Page<Pipeline> = serde_json::from_str(include_str!(
            "../../tests/data/bitbucket-pipelines-list.json"
        ))
        .unwrap();
        assert!(!sample.values[0].to_domain(&repo, &web).scheduled);
    }

    #[test]
    fn schedules_enabled_unless_said_otherwise_with_their_patterns_read() {
        let schedule = |json: &str| {
            serde_json::from_str::<Schedule>(json)
                .unwrap()
                .to_domain()
                .map(|read| read.map(|s| (s.uuid, s.pattern.to_string(), s.branch)))
        };
        assert_eq!(
            schedule(
                r#"{"uuid":"{s}","enabled":true,"cron_pattern":"0 0 12 * * ? *","target":{"ref_name":"main"}}"#
            ),
            Some(Ok((
                "{s}".to_owned(),
                "0 0 12 * * ? *".to_owned(),
                Some("main".to_owned())
            )))
        );
        assert_eq!(
            schedule(r#"{"uuid":"{s}","cron_pattern":"0 0 12 * * ? *"}"#),
            Some(Ok(("{s}".to_owned(), "0 0 12 * * ? *".to_owned(), None)))
        );
        assert_eq!(
            schedule(r#"{"uuid":"{s}","enabled":false,"cron_pattern":"0 0 12 * * ? *"}"#),
            None
        );
        assert!(schedule(r#"{"uuid":"{s}","cron_pattern":"@daily"}"#).is_some_and(|r| r.is_err()));
        assert_eq!(
            schedule(r#"{"uuid":"{s}"}"#),
            Some(Err("no cron_pattern".to_owned()))
        );
    }

    #[test]
    fn tag_commit_and_custom_targets() {
        let web = url::Url::parse("https://bitbucket.org").unwrap();
        let repo = RepoId::new("acme", "api");
        let pipeline = |target: &str| {
            let json = format!(
                r#"{{"uuid":"{{u}}","build_number":7,"state":{{"name":"PENDING"}},"target":{target}}}"#
            );
            serde_json::from_str::<Pipeline>(&json)
                .unwrap()
                .to_domain(&repo, &web)
        };
        let tag = pipeline(
            r#"{"type":"pipeline_ref_target","ref_type":"tag","ref_name":"v1.2.0","selector":{"type":"tags","pattern":"v*"},"commit":{"hash":"abc"}}"#,
        );
        assert_eq!(tag.git_ref, BuildRef::Tag("v1.2.0".into()));
        assert_eq!(
            tag.ref_url.as_deref(),
            Some("https://bitbucket.org/acme/api/commits/tag/v1.2.0")
        );
        assert_eq!(
            (tag.job.as_str(), tag.name.as_str()),
            ("pipeline", "Pipeline")
        );
        let custom = pipeline(
            r#"{"type":"pipeline_commit_target","selector":{"type":"custom","pattern":"deploy"},"commit":{"hash":"abc"}}"#,
        );
        assert_eq!(custom.git_ref, BuildRef::Commit);
        assert_eq!(custom.ref_url, None);
        assert_eq!(
            (custom.job.as_str(), custom.name.as_str()),
            ("custom: deploy", "Pipeline deploy")
        );
        let pull_request = pipeline(
            r#"{"type":"pipeline_pullrequest_target","source":"feature/x","destination":"main"}"#,
        );
        assert_eq!(pull_request.git_ref, BuildRef::Branch("feature/x".into()));
        let branch = pipeline(
            r#"{"type":"pipeline_ref_target","ref_type":"branch","ref_name":"release/2"}"#,
        );
        assert_eq!(
            branch.ref_url.as_deref(),
            Some("https://bitbucket.org/acme/api/branch/release/2")
        );
    }

    mod properties {
        use super::super::*;
        use crate::arbitrary::{branch_tip, json};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any JSON Bitbucket Cloud could send decodes to an error or to builds, tips,
            /// repositories and schedules, never a panic.
            #[test]
            fn any_cloud_json_decodes_without_a_panic(value in json()) {
                let repo = RepoId::new("acme", "api");
                let web = url::Url::parse("https://bitbucket.org").unwrap();
                if let Ok(page) = serde_json::from_value::<Page<Pipeline>>(value.clone()) {
                    for pipeline in &page.values {
                        let _ = pipeline.to_domain(&repo, &web);
                    }
                }
                if let Ok(page) = serde_json::from_value::<Page<RepositorySummary>>(value.clone()) {
                    for summary in &page.values {
                        let _ = summary.to_domain("acme");
                    }
                }
                if let Ok(page) = serde_json::from_value::<Page<Schedule>>(value.clone()) {
                    for schedule in &page.values {
                        let _ = schedule.to_domain();
                    }
                }
                if let Ok(page) = serde_json::from_value::<Page<Ref>>(value.clone()) {
                    for git_ref in page.values {
                        let _ = git_ref.into_tip(None);
                    }
                }
                if let Ok(tip) = serde_json::from_value::<BranchTarget>(value.clone()) {
                    let _ = tip.into_tip(BuildRef::Branch("main".into()));
                }
                if let Ok(page) = serde_json::from_value::<Page<CommitStatus>>(value) {
                    let tip = branch_tip("main");
                    for status in &page.values {
                        let _ = status.to_domain(&repo, &tip, |_| None, &web);
                    }
                }
            }
        }
    }
}
