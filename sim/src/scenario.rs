//! Scenarios: the scripted timeline the simulator plays. Times are simulated seconds from the
//! moment the simulator starts; the simulator's clock runs `speed` times faster than the wall.
//!
//! A repository's builds are Bitbucket Pipelines runs, commit statuses that an external CI
//! posts (on Bitbucket Cloud or Data Center), or both; [`SimSource`] says which. A build runs
//! for a branch push, a tag push or, for a custom pipeline, a bare commit ([`SimTarget`]).
//! Scenarios are written by hand ([`Scenario::showcase`], [`Scenario::mixed`],
//! [`Scenario::burst`]) or drawn at random for load tests ([`Scenario::random`]) and the
//! benchmark ([`Scenario::realistic`]).

mod realistic;

pub use realistic::TraceMix;

use super::cron::Cron;
use super::ids::{fnv1a, hash40};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Everything the simulator will show, decided up front so a run can be checked afterwards.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// The repositories the Bitbucket side serves, each with its scripted builds.
    pub repos: Vec<SimRepo>,
}

/// Where a repository lives and how its builds reach Bitbucket, which decides the endpoints
/// that show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum SimSource {
    /// Bitbucket Cloud running Pipelines: every build is a pipeline, listed by `/pipelines`.
    #[default]
    CloudPipelines,
    /// Bitbucket Cloud with an outside CI posting commit statuses: builds are found through
    /// branch tips (`/refs/branches`) and `/commit/{hash}/statuses`.
    CloudStatuses,
    /// Bitbucket Data Center: no Pipelines; branch tips under
    /// `/dc/rest/api/latest/.../branches`, statuses under
    /// `/dc/rest/build-status/latest/commits/{hash}`.
    DataCenter,
    /// Bitbucket Cloud running Pipelines and also getting commit statuses from an outside CI
    /// (a scanner, a deploy tool): builds with an empty `key` are pipelines, listed by
    /// `/pipelines`; the others are statuses, found as [`SimSource::CloudStatuses`] finds them.
    CloudMixed,
}

impl SimSource {
    /// Whether the repository runs Pipelines (and so also carries the commit statuses
    /// Pipelines posts for its runs).
    pub fn runs_pipelines(self) -> bool {
        matches!(self, SimSource::CloudPipelines | SimSource::CloudMixed)
    }
}

/// What a build ran for: a branch push, a tag push or, for a custom pipeline, a bare commit.
/// Decides the pipeline's `target`, a status's `refname` (Cloud) or `ref` (Data Center), and
/// which ref listings show the commit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub enum SimTarget {
    /// A push to `branch` (pipeline `pipeline_ref_target` with `ref_type: branch`; a status's
    /// `refname` is the branch). The default.
    #[default]
    Branch,
    /// A tag: pipeline `pipeline_ref_target` with `ref_type: "tag"`, `ref_name` the tag; a
    /// status whose `refname` (Cloud) is the tag / whose `ref` (Data Center) is
    /// `refs/tags/NAME`.
    Tag(String),
    /// A custom pipeline run on a bare commit (`pipeline_commit_target`,
    /// `selector {type: "custom", pattern}`), e.g. a manual deploy. Pipelines only.
    Commit {
        /// The custom pipeline's name in `bitbucket-pipelines.yml` (the selector's `pattern`).
        pipeline: String,
    },
}

/// What started a build, as a pipeline's `trigger` says: only a push moves the repository (its
/// refs and its `updated_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum SimTrigger {
    /// A push of the branch or tag (`PUSH`, `pipeline_trigger_push`). The default.
    #[default]
    Push,
    /// One of the repository's schedules (`SCHEDULE`, `pipeline_trigger_schedule`), on the
    /// commit at the tip of the schedule's branch.
    Schedule,
    /// Someone, by hand (`MANUAL`, `pipeline_trigger_manual`): "Run pipeline" on a branch, a
    /// custom pipeline, a rerun of an earlier run.
    Manual,
}

/// A Bitbucket repository, `{workspace}/{slug}` (Cloud) or project `{workspace}`, repository
/// `{slug}` (Data Center), and the builds it will see. `main` is its default branch. It was
/// created before the scenario ([`repo_created_at`]); it may be renamed or deleted during it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimRepo {
    /// Workspace id on Cloud, the first path segment; the project key (`PLAT`) on Data Center.
    pub workspace: String,
    /// Repository slug.
    pub slug: String,
    /// Which API serves the repository and whether its builds are pipelines or statuses.
    pub source: SimSource,
    /// Builds in creation order. Pipelines: numbers count up from 1 as on Bitbucket.
    /// Statuses: one entry per (commit, key), which should be unique. In a
    /// [`SimSource::CloudMixed`] repository both, told apart by `key`.
    pub builds: Vec<SimBuild>,
    /// Its Pipelines schedules (`pipelines_config/schedules`). The runs they start are builds
    /// in `builds` with [`SimTrigger::Schedule`] at their [`SimSchedule::run_times`]. Default
    /// none.
    pub schedules: Vec<SimSchedule>,
    /// A rename: from this simulated second on the repository answers under this slug only
    /// (the old one is 404, as a repository that never existed), and its `updated_on` moves
    /// to the rename. Default none.
    pub renamed: Option<(f64, String)>,
    /// From this simulated second on the repository is gone: 404 under any name, and out of
    /// the workspace's listing. Default never.
    pub deleted_at: Option<f64>,
}

/// One pipeline run, or one commit status (its `key` on its `commit`), and how its state moves
/// over simulated time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimBuild {
    /// Pipeline number (`build_number`); for a status, the CI's build number, which a rerun
    /// counts up from (in the status `name` and Data Center's `buildNumber`).
    pub number: u64,
    /// Status key (`jenkins-build`), what identifies a status on its commit. Empty for
    /// pipelines (which is how a [`SimSource::CloudMixed`] repository tells them apart).
    pub key: String,
    /// Branch the push was to (`target.ref_name`, status `refname`). For a tag or commit
    /// build, the branch the commit came from, which no ref listing shows for it.
    pub branch: String,
    /// What the build ran for: `branch` (the default), a tag or a bare commit.
    pub target: SimTarget,
    /// What started it: a push (the default), a schedule or someone by hand. For a status,
    /// what started the outside CI's build. Only a push moves a ref: a scheduled or manual run
    /// builds a commit that was pushed at `pushed_at`.
    pub trigger: SimTrigger,
    /// Full 40-hex commit hash (`target.commit.hash`).
    pub commit: String,
    /// Full commit message, served only when asked for with `fields`.
    pub message: String,
    /// Display name of the commit's author (`target.commit.author`), and of whoever started
    /// the pipeline (`creator`) unless [`SimBuild::creator`] says otherwise.
    pub author: String,
    /// Display name of whoever started the pipeline, when not the commit's author (someone
    /// who ran it again or by hand). `None`: the author.
    pub started_by: Option<String>,
    /// Simulated second the commit became the tip of its branch (for branch listings), or the
    /// tag was pushed (for tag listings). Equal to `created_at` for pipelines; statuses may be
    /// posted later.
    pub pushed_at: f64,
    /// Simulated second the pipeline is created (PENDING from then on) or the status first
    /// posted (INPROGRESS).
    pub created_at: f64,
    /// Later states, each from a simulated second on, in time order. A pipeline's last state
    /// should be terminal; a status may go back to running after one (a rerun overwriting it).
    pub timeline: Vec<(f64, SimState)>,
}

/// A pipeline state as Bitbucket's wire format spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SimState {
    /// `PENDING`: queued, not started. Status: `INPROGRESS`.
    Pending,
    /// `IN_PROGRESS` / `RUNNING`. Status: `INPROGRESS`.
    Running,
    /// `IN_PROGRESS` / `PAUSED`: waiting for someone to trigger a manual step. Status:
    /// `INPROGRESS`.
    Paused,
    /// `IN_PROGRESS` / `HALTED`: seen in the wild, not in the spec. Status: `INPROGRESS`.
    Halted,
    /// `COMPLETED` / `SUCCESSFUL`. Status: `SUCCESSFUL`.
    Successful,
    /// `COMPLETED` / `FAILED`: a step's commands failed. Status: `FAILED`.
    Failed,
    /// `COMPLETED` / `ERROR`: the pipeline could not run (bad YAML, infrastructure). Status:
    /// `FAILED`.
    Error,
    /// `COMPLETED` / `STOPPED`: someone stopped it. Status: `STOPPED` (Cloud), `CANCELLED`
    /// (Data Center).
    Stopped,
    /// `COMPLETED` / `EXPIRED`: a paused pipeline nobody resumed in time. Status as
    /// [`SimState::Stopped`].
    Expired,
}

impl SimState {
    /// Whether the pipeline is COMPLETED in this state and will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SimState::Successful
                | SimState::Failed
                | SimState::Error
                | SimState::Stopped
                | SimState::Expired
        )
    }
}

/// The run of a status in effect at some moment: reruns restart it under a new build number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SimRun {
    /// Reruns before this one (0 for the first run).
    pub(super) reruns: u64,
    /// When this run started: the status's creation, or the rerun's first running state.
    pub(super) started_at: f64,
    /// When this run last reached a terminal state, if it is in one.
    pub(super) finished_at: Option<f64>,
}

impl SimBuild {
    /// Made before the scenario: history, which a watcher's first look records without telling.
    pub fn is_history(&self) -> bool {
        self.created_at < 0.0
    }

    /// A pipeline on `branch`, created at `created_at` with these later states; commit, message
    /// and author are made up from the number and branch (see the `with_` setters).
    pub fn pipeline(
        number: u64,
        branch: impl Into<String>,
        created_at: f64,
        timeline: impl Into<Vec<(f64, SimState)>>,
    ) -> SimBuild {
        let branch = branch.into();
        SimBuild {
            number,
            key: String::new(),
            commit: hash40(fnv1a(format!("commit/{branch}/{number}").as_bytes())),
            message: format!("Change {number} on {branch}"),
            author: "Sam Developer".to_owned(),
            started_by: None,
            branch,
            target: SimTarget::Branch,
            trigger: SimTrigger::Push,
            pushed_at: created_at,
            created_at,
            timeline: timeline.into(),
        }
    }

    /// The status `key` on `commit`, pushed to `branch` at `pushed_at` and first posted at
    /// `created_at` (an outside CI may post long after the push), with these later states.
    /// Build number 1, message and author made up (see the `with_` setters).
    pub fn status(
        key: impl Into<String>,
        branch: impl Into<String>,
        commit: impl Into<String>,
        pushed_at: f64,
        created_at: f64,
        timeline: impl Into<Vec<(f64, SimState)>>,
    ) -> SimBuild {
        let branch = branch.into();
        SimBuild {
            number: 1,
            key: key.into(),
            message: format!("Change on {branch}"),
            author: "Sam Developer".to_owned(),
            started_by: None,
            branch,
            target: SimTarget::Branch,
            trigger: SimTrigger::Push,
            commit: commit.into(),
            pushed_at,
            created_at,
            timeline: timeline.into(),
        }
    }

    /// The same build with another number.
    pub fn with_number(self, number: u64) -> SimBuild {
        SimBuild { number, ..self }
    }

    /// The same build of another commit.
    pub fn with_commit(self, commit: impl Into<String>) -> SimBuild {
        SimBuild {
            commit: commit.into(),
            ..self
        }
    }

    /// The same build with another commit message.
    pub fn with_message(self, message: impl Into<String>) -> SimBuild {
        SimBuild {
            message: message.into(),
            ..self
        }
    }

    /// The same build by another author.
    pub fn with_author(self, author: impl Into<String>) -> SimBuild {
        SimBuild {
            author: author.into(),
            ..self
        }
    }

    /// The same pipeline started by `name` (its `creator`), who is not the commit's author.
    pub fn started_by(self, name: impl Into<String>) -> SimBuild {
        SimBuild {
            started_by: Some(name.into()),
            ..self
        }
    }

    /// Who started the pipeline: [`SimBuild::started_by`], else the commit's author.
    pub fn creator(&self) -> &str {
        self.started_by.as_deref().unwrap_or(&self.author)
    }

    /// The same build run for tag `name` (pushed at `pushed_at`) instead of a branch push;
    /// `branch` stays where the commit came from.
    pub fn on_tag(self, name: impl Into<String>) -> SimBuild {
        SimBuild {
            target: SimTarget::Tag(name.into()),
            ..self
        }
    }

    /// The same pipeline run as custom pipeline `pipeline` on its bare commit, started by hand
    /// ([`SimTrigger::Manual`]), instead of for a push.
    pub fn as_custom(self, pipeline: impl Into<String>) -> SimBuild {
        SimBuild {
            target: SimTarget::Commit {
                pipeline: pipeline.into(),
            },
            trigger: SimTrigger::Manual,
            ..self
        }
    }

    /// The same build started by `trigger` instead: a scheduled or manual run of a commit
    /// pushed at `pushed_at`, which moves no ref.
    pub fn triggered_by(self, trigger: SimTrigger) -> SimBuild {
        SimBuild { trigger, ..self }
    }

    /// The name of the ref the build ran for: the branch, the tag, or `None` for a bare
    /// commit.
    pub fn ref_name(&self) -> Option<&str> {
        match &self.target {
            SimTarget::Branch => Some(&self.branch),
            SimTarget::Tag(name) => Some(name),
            SimTarget::Commit { .. } => None,
        }
    }

    /// The commit status Bitbucket Pipelines posts for this pipeline in the repository at
    /// position `repo_index` of the scenario: the same commit, ref and timeline under the key
    /// [`pipeline_status_key`]. Pass it to [`Simulator::card_link`](super::Simulator::card_link)
    /// for the link such a status carries.
    pub fn pipeline_status(&self, repo_index: usize) -> SimBuild {
        SimBuild {
            key: pipeline_status_key(repo_index, self.number),
            ..self.clone()
        }
    }

    /// The state at simulated second `t`, or `None` before the build exists.
    pub fn state_at(&self, t: f64) -> Option<SimState> {
        if t < self.created_at {
            return None;
        }
        let mut state = SimState::Pending;
        for &(at, s) in &self.timeline {
            if at <= t {
                state = s;
            }
        }
        Some(state)
    }

    /// When the build first reached a terminal state, if it does.
    pub fn finished_at(&self) -> Option<f64> {
        self.timeline
            .iter()
            .find(|(_, s)| s.is_terminal())
            .map(|&(at, _)| at)
    }

    /// Every change of state with its time, creation (as `Pending`) first: the moments a
    /// notifier could first learn something, for measuring its latency. Timeline entries that
    /// repeat the state before them are left out. Statuses read `Pending`, `Running` and
    /// `Paused` all as INPROGRESS, so compare wire states when measuring those.
    pub fn changes(&self) -> Vec<(f64, SimState)> {
        let mut changes = vec![(self.created_at, SimState::Pending)];
        for &(at, state) in &self.timeline {
            if changes.last().is_some_and(|&(_, last)| last != state) {
                changes.push((at, state));
            }
        }
        changes
    }

    /// When the status was last posted as of `t` (its `updated_on`): its creation or the
    /// latest timeline entry since. `None` before it exists.
    pub fn updated_at(&self, t: f64) -> Option<f64> {
        (t >= self.created_at).then(|| {
            self.timeline
                .iter()
                .map(|&(at, _)| at)
                .filter(|&at| at <= t)
                .fold(self.created_at, f64::max)
        })
    }

    /// The run in effect at `t`, or `None` before the build exists.
    pub(super) fn run_at(&self, t: f64) -> Option<SimRun> {
        if t < self.created_at {
            return None;
        }
        let mut run = SimRun {
            reruns: 0,
            started_at: self.created_at,
            finished_at: None,
        };
        for &(at, state) in self.timeline.iter().filter(|&&(at, _)| at <= t) {
            if state.is_terminal() {
                run.finished_at = Some(at);
            } else if run.finished_at.is_some() {
                run = SimRun {
                    reruns: run.reruns + 1,
                    started_at: at,
                    finished_at: None,
                };
            }
        }
        Some(run)
    }
}

/// The `key` of the commit status Bitbucket Pipelines posts for pipeline `number` of the
/// repository at position `repo_index` of the scenario: a signed 32-bit number in decimal, as
/// real ones look (`"-897687013"`), the same in every run. A scoreboard tells such a status
/// from an outside CI's by it.
pub fn pipeline_status_key(repo_index: usize, number: u64) -> String {
    // The low 32 bits, read as signed: what gives real keys their sign.
    (fnv1a(format!("pipeline-status/{repo_index}/{number}").as_bytes()) as u32 as i32).to_string()
}

/// A Pipelines schedule, as `GET .../pipelines_config/schedules` lists it: it runs the pipeline
/// of `branch`, on the branch's tip, whenever `cron_pattern` fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimSchedule {
    /// When it runs: Bitbucket's 7-field cron pattern with second precision (seconds to year,
    /// `?` in day of month or day of week), in UTC, read in the scenario's calendar, where
    /// simulated second 0 is Monday 2026-01-05 09:00 UTC: `0 30 2 * * ? *` runs at 02:30 every
    /// night, the first time at second 63,000.
    pub cron_pattern: String,
    /// The branch it runs (`target.ref_name`; selector `branches` on it).
    pub branch: String,
    /// Whether it runs; a disabled schedule is listed but starts nothing.
    pub enabled: bool,
    /// Simulated second it was made (its `created_on` and `updated_on`), from which it is
    /// listed and runs.
    pub created_at: f64,
}

/// How long before simulated second 0 [`SimSchedule::new`] makes schedules.
const SCHEDULES_AGE: f64 = 7.0 * 24.0 * 3600.0;

impl SimSchedule {
    /// An enabled schedule of `branch`, made a week before the scenario.
    pub fn new(cron_pattern: impl Into<String>, branch: impl Into<String>) -> SimSchedule {
        SimSchedule {
            cron_pattern: cron_pattern.into(),
            branch: branch.into(),
            enabled: true,
            created_at: -SCHEDULES_AGE,
        }
    }

    /// The simulated seconds in `[from, to)` at which it starts a run, in order: when its
    /// pattern fires from its creation on; none while disabled. The error says why the pattern
    /// cannot be read.
    pub fn run_times(&self, from: f64, to: f64) -> Result<Vec<f64>, String> {
        let cron = Cron::parse(&self.cron_pattern)?;
        Ok(if self.enabled {
            cron.fire_times(from.max(self.created_at), to)
        } else {
            Vec::new()
        })
    }
}

/// How long before simulated second 0 the scenario's first repository was created.
const REPOS_AGE: f64 = 365.0 * 24.0 * 3600.0;

/// When the repository at position `repo_index` of a scenario was created (its `created_on`):
/// a year before the scenario, the next ones a minute apart in scenario order, so creation
/// orders repositories as their position does.
pub fn repo_created_at(repo_index: usize) -> f64 {
    -REPOS_AGE + 60.0 * repo_index as f64
}

impl SimRepo {
    /// Repository `workspace/slug` read through `source`, with `builds`, no schedules, never
    /// renamed or deleted.
    pub fn new(workspace: &str, slug: &str, source: SimSource, builds: Vec<SimBuild>) -> SimRepo {
        SimRepo {
            workspace: workspace.to_owned(),
            slug: slug.to_owned(),
            source,
            builds,
            ..SimRepo::default()
        }
    }

    /// Its slug at `t`: the new one from a rename on.
    pub fn slug_at(&self, t: f64) -> &str {
        match &self.renamed {
            Some((at, slug)) if *at <= t => slug,
            _ => &self.slug,
        }
    }

    /// Whether it still exists at `t` (not deleted by then).
    pub fn exists_at(&self, t: f64) -> bool {
        self.deleted_at.is_none_or(|at| t < at)
    }

    /// Its `updated_on` at `t`, for the repository at position `repo_index` of its scenario:
    /// the latest push by then (the `pushed_at` of a [`SimTrigger::Push`] build: a pipeline's
    /// push, or for statuses the push of the commit, however late they are posted) or its
    /// rename, whichever is later; before either, its creation ([`repo_created_at`]). Pipeline
    /// progress, statuses, scheduled and manual runs move nothing: only commit activity does,
    /// as implementers observe of Bitbucket.
    pub fn updated_at(&self, repo_index: usize, t: f64) -> f64 {
        let renamed = self
            .renamed
            .as_ref()
            .map(|&(at, _)| at)
            .filter(|&at| at <= t);
        self.pushes(t)
            .map(|b| b.pushed_at)
            .chain(renamed)
            .fold(repo_created_at(repo_index), f64::max)
    }

    /// Whether `build` is a pipeline run here rather than a status an outside CI posts.
    pub fn runs_pipeline(&self, build: &SimBuild) -> bool {
        match self.source {
            SimSource::CloudPipelines => true,
            SimSource::CloudMixed => build.key.is_empty(),
            SimSource::CloudStatuses | SimSource::DataCenter => false,
        }
    }

    /// The tip of each branch at `t`, sorted by branch name: per branch, the build whose commit
    /// was pushed last by then (the later one in `builds` on a tie). Branches appear with their
    /// first push; tag and commit builds, scheduled and manual runs move no branch.
    pub fn branch_tips(&self, t: f64) -> Vec<&SimBuild> {
        let mut tips: Vec<&SimBuild> = Vec::new();
        let pushes = self.pushes(t).filter(|b| b.target == SimTarget::Branch);
        for build in pushes {
            match tips.iter_mut().find(|tip| tip.branch == build.branch) {
                Some(tip) if build.pushed_at >= tip.pushed_at => *tip = build,
                Some(_) => {}
                None => tips.push(build),
            }
        }
        tips.sort_by(|a, b| a.branch.cmp(&b.branch));
        tips
    }

    /// Each tag pushed by `t` with the build that pushed it (its commit and `pushed_at`),
    /// sorted by tag name. Tags do not move: when several builds name a tag, the first pushed
    /// (the earlier in `builds` on a tie) decides.
    pub fn tag_tips(&self, t: f64) -> Vec<(&str, &SimBuild)> {
        let mut tags: Vec<(&str, &SimBuild)> = Vec::new();
        for build in self.pushes(t) {
            let SimTarget::Tag(name) = &build.target else {
                continue;
            };
            match tags.iter_mut().find(|(tag, _)| tag == name) {
                Some(tag) if build.pushed_at < tag.1.pushed_at => tag.1 = build,
                Some(_) => {}
                None => tags.push((name, build)),
            }
        }
        tags.sort_by(|a, b| a.0.cmp(b.0));
        tags
    }

    /// The push-triggered builds pushed by `t`: what moved the repository.
    /// The commits pushed to `branch` by `t`, newest first, each once (at its first push),
    /// down to, not including, `exclude` when it is one of them: `git log branch ^exclude` on a
    /// branch that only ever moved forward.
    pub fn branch_commits(&self, branch: &str, t: f64, exclude: Option<&str>) -> Vec<&SimBuild> {
        let mut commits: Vec<&SimBuild> = Vec::new();
        for build in self
            .pushes(t)
            .filter(|b| b.target == SimTarget::Branch && b.branch == branch)
        {
            match commits.iter_mut().find(|c| c.commit == build.commit) {
                Some(seen) if build.pushed_at < seen.pushed_at => *seen = build,
                Some(_) => {}
                None => commits.push(build),
            }
        }
        commits.sort_by(|a, b| b.pushed_at.total_cmp(&a.pushed_at));
        if let Some(at) = exclude.and_then(|x| commits.iter().position(|c| c.commit == x)) {
            commits.truncate(at);
        }
        commits
    }

    fn pushes(&self, t: f64) -> impl Iterator<Item = &SimBuild> {
        self.builds
            .iter()
            .filter(move |b| b.trigger == SimTrigger::Push && b.pushed_at <= t)
    }
}

impl Scenario {
    /// The simulated second after which nothing changes any more.
    pub fn end(&self) -> f64 {
        let builds = self.repos.iter().flat_map(|r| &r.builds).flat_map(|b| {
            [b.pushed_at, b.created_at]
                .into_iter()
                .chain(b.timeline.iter().map(|&(t, _)| t))
        });
        // Renames, deletions and new schedules change what the repository listings show.
        let repos = self.repos.iter().flat_map(|r| {
            let renamed = r.renamed.as_ref().map(|&(at, _)| at);
            let schedules = r.schedules.iter().map(|s| s.created_at);
            renamed.into_iter().chain(r.deleted_at).chain(schedules)
        });
        builds.chain(repos).fold(0.0, f64::max)
    }
}

/// A pipeline on a branch, for writing scenarios compactly.
fn build(
    number: u64,
    branch: &str,
    commit: &str,
    author: &str,
    message: &str,
    created_at: f64,
    timeline: &[(f64, SimState)],
) -> SimBuild {
    SimBuild::pipeline(number, branch, created_at, timeline)
        .with_commit(commit)
        .with_author(author)
        .with_message(message)
}

impl Scenario {
    /// The demo: three repositories and fourteen builds over about thirteen simulated minutes,
    /// touching every case a notifier must handle: a success, a failure then a fix on the same
    /// branch, a failure followed by another failure, an ERROR, a STOPPED build, a pause on a
    /// manual step that resumes and succeeds, one that expires waiting, pushes to `main`,
    /// `release/*` and feature branches, a release tag (`v1.8.0`, successful) and a custom
    /// pipeline someone ran by hand on a commit (`deploy-staging`, failed), both in `acme/api`.
    /// Nothing happens before simulated second 20, so a daemon has time to start and take its
    /// first look.
    pub fn showcase() -> Scenario {
        use SimState::{Error, Expired, Failed, Paused, Running, Stopped, Successful};
        let api = SimRepo::new(
            "acme",
            "api",
            SimSource::CloudPipelines,
            vec![
                build(
                    1,
                    "main",
                    "f616201906c7661b8251ae3efd60d650d2fbbfd1",
                    "Priya Raman",
                    "Add /healthz readiness probe\n\n\
                     Kubernetes kept routing traffic to pods that were still warming the\n\
                     connection pool. The probe now waits for the pool and the migration\n\
                     check before it answers 200.\n\n\
                     Refs OPS-231",
                    20.0,
                    &[(32.0, Running), (198.0, Successful)],
                ),
                build(
                    2,
                    "feature/rate-limit-headers",
                    "0cc80db459df7fd52bb7bebd3541a62c606ba134",
                    "Tom Okafor",
                    "Expose rate-limit headers on every response\n\n\
                     Clients asked for X-RateLimit-Limit and X-RateLimit-Remaining so they\n\
                     can slow down before they hit a 429.\n\n\
                     Refs API-412",
                    75.0,
                    &[(90.0, Running), (262.0, Failed)],
                ),
                build(
                    3,
                    "feature/rate-limit-headers",
                    "3bdf24d3cdab62c8c6d5da2d6d2a74bd00ef9581",
                    "Tom Okafor",
                    "Compare header names case-insensitively in middleware tests\n\n\
                     HTTP header names are case-insensitive and hyper lower-cases them,\n\
                     so the assertions on \"X-RateLimit-Limit\" never matched.",
                    330.0,
                    &[(341.0, Running), (517.0, Successful)],
                ),
                build(
                    4,
                    "main",
                    "67a5f10e3a189b0105b8c3c22a61effe0143e09a",
                    "Priya Raman",
                    "Run integration tests in a parallel step\n\n\
                     Unit and integration tests now run side by side, which should take\n\
                     about four minutes off every pipeline.",
                    585.0,
                    &[(596.0, Running), (611.0, Error)],
                ),
                build(
                    5,
                    "release/1.8",
                    "33450c751618f4dc1a4650430cc34b982ee5a818",
                    "Hannah Schulz",
                    "Release 1.8.0\n\n\
                     - rate-limit headers on every response\n\
                     - /healthz readiness probe\n\
                     - dependency updates",
                    640.0,
                    &[(651.0, Running), (745.0, Successful)],
                ),
                // Someone deploys an earlier main commit to staging by hand.
                build(
                    6,
                    "main",
                    "f616201906c7661b8251ae3efd60d650d2fbbfd1",
                    "Priya Raman",
                    "Add /healthz readiness probe\n\n\
                     Kubernetes kept routing traffic to pods that were still warming the\n\
                     connection pool. The probe now waits for the pool and the migration\n\
                     check before it answers 200.\n\n\
                     Refs OPS-231",
                    655.0,
                    &[(666.0, Running), (770.0, Failed)],
                )
                .as_custom("deploy-staging"),
                build(
                    7,
                    "release/1.8",
                    "33450c751618f4dc1a4650430cc34b982ee5a818",
                    "Hannah Schulz",
                    "Release 1.8.0\n\n\
                     - rate-limit headers on every response\n\
                     - /healthz readiness probe\n\
                     - dependency updates",
                    700.0,
                    &[(711.0, Running), (792.0, Successful)],
                )
                .on_tag("v1.8.0"),
            ],
        );
        let web = SimRepo::new(
            "acme",
            "web",
            SimSource::CloudPipelines,
            vec![
                build(
                    1,
                    "main",
                    "5ec0ae71e670789f38c0283377d1f14ec96896f4",
                    "Lena Fischer",
                    "Upgrade to React 19\n\n\
                     Bumps react and react-dom and replaces the removed ReactDOM.render\n\
                     call in the entry point.",
                    45.0,
                    &[(58.0, Running), (236.0, Failed)],
                ),
                build(
                    2,
                    "main",
                    "5b32312f5b632c0b5c39d4bfedba05985edabce3",
                    "Lena Fischer",
                    "Update snapshot tests for React 19\n\n\
                     The new JSX runtime renders attributes in a different order.",
                    290.0,
                    &[(301.0, Running), (452.0, Failed)],
                ),
                build(
                    3,
                    "feature/dark-mode",
                    "f84b44ec88b7338778bd162563b2a2820516e07a",
                    "Marco Bianchi",
                    "Add a dark mode toggle to the settings page\n\n\
                     WIP: the colours still need a review from design.",
                    380.0,
                    &[(392.0, Running), (470.0, Stopped)],
                ),
                build(
                    4,
                    "main",
                    "cefc88050bad7e399b6f129051c237947a0723a3",
                    "Lena Fischer",
                    "Replace enzyme with Testing Library\n\n\
                     Enzyme has no React 19 adapter; the failing suites are ported to\n\
                     @testing-library/react.\n\n\
                     Fixes WEB-88",
                    560.0,
                    &[(572.0, Running), (728.0, Successful)],
                ),
            ],
        );
        let mobile = SimRepo::new(
            "acme",
            "mobile",
            SimSource::CloudPipelines,
            vec![
                build(
                    1,
                    "release/2.3",
                    "22abde9faec94735927af013fb999597c5665c10",
                    "Sofia Nguyen",
                    "Bump version to 2.3.0 (build 412)\n\n\
                     Release notes: drafts survive going offline, faster cold start.\n\
                     The TestFlight upload waits for a manual trigger.",
                    60.0,
                    &[
                        (74.0, Running),
                        (210.0, Paused),
                        (395.0, Running),
                        (488.0, Successful),
                    ],
                ),
                build(
                    2,
                    "main",
                    "8fbd3a5e8fb17f9a2f30eeaed52d1123a7f483dc",
                    "Daniel Kim",
                    "Enable crash reporting in staging builds\n\n\
                     The deploy-to-staging step waits for a manual approval.",
                    150.0,
                    &[(163.0, Running), (298.0, Paused), (655.0, Expired)],
                ),
                build(
                    3,
                    "feature/offline-sync",
                    "e1bb28fc12b87ac13c62797e408bac19a78a1cfa",
                    "Aisha Bello",
                    "Queue writes while offline and sync on reconnect\n\n\
                     Writes go to a local SQLite queue; a background task replays them\n\
                     with exponential backoff once the network is back.\n\n\
                     Refs MOB-57",
                    470.0,
                    &[(484.0, Running), (690.0, Successful)],
                ),
            ],
        );
        Scenario {
            repos: vec![api, web, mobile],
        }
    }
}

/// Shape of the Pareto distribution per-repository activity is drawn from: a few busy
/// repositories, a long tail of quiet ones (smaller is more skewed; above 1 the mean exists).
const PARETO_SHAPE: f64 = 1.5;
/// Mean builds per repository per hour of that distribution, before the cap.
const MEAN_BUILDS_PER_HOUR: f64 = 0.5;
/// The busiest a random repository gets: a build every five minutes.
const MAX_BUILDS_PER_HOUR: f64 = 12.0;
/// No random build is created before this simulated second, so a daemon can take a first look.
const FIRST_RANDOM_BUILD: f64 = 60.0;

/// Feature branch names for random builds.
const FEATURES: [&str; 8] = [
    "login-throttle",
    "dark-mode",
    "offline-sync",
    "search-v2",
    "billing-export",
    "audit-log",
    "sso",
    "flaky-tests",
];

/// Custom pipelines random builds run on a commit.
const RANDOM_CUSTOM: [&str; 3] = ["deploy-staging", "nightly-e2e", "db-migrate"];

/// Authors of random builds.
const AUTHORS: [&str; 8] = [
    "Priya Raman",
    "Tom Okafor",
    "Hannah Schulz",
    "Lena Fischer",
    "Marco Bianchi",
    "Sofia Nguyen",
    "Daniel Kim",
    "Aisha Bello",
];

/// Subject lines of random builds' commit messages.
const SUBJECTS: [&str; 8] = [
    "Fix race in the connection pool",
    "Bump dependencies",
    "Add retries to the export job",
    "Refactor the settings page",
    "Speed up the integration tests",
    "Handle empty search results",
    "Log request ids on errors",
    "Update the release checklist",
];

impl Scenario {
    /// A small scenario with one repository of each [`SimSource`], over about ten simulated
    /// minutes, nothing before second 20: `acme/api` runs Pipelines (a success, a failure on
    /// a feature branch, a pause that resumes); `acme/web` gets commit statuses from Jenkins
    /// (`jenkins-build`) and SonarQube (`sonar-scan`) on every commit, one scan posted minutes
    /// after its push, one build overwritten FAILED then SUCCESSFUL by a rerun, and both on
    /// release tag `v5.2.0`; Data Center project `PLAT` repository `platform` gets Bamboo
    /// statuses, one of them CANCELLED, one for tag `v3.0.0` (`PLAT-RELEASE`); `acme/ops` runs
    /// Pipelines and also gets a scanner's statuses (`security-scan`) on the same commits,
    /// one of each failing on a feature branch.
    pub fn mixed() -> Scenario {
        use SimState::{Failed, Paused, Running, Stopped, Successful};
        let api = SimRepo::new(
            "acme",
            "api",
            SimSource::CloudPipelines,
            vec![
                build(
                    1,
                    "main",
                    "a518d06d85783598b175bc61ccb96165ee69918a",
                    "Priya Raman",
                    "Cache tenant settings for a minute\n\nCuts settings lookups per request from three to one.",
                    20.0,
                    &[(31.0, Running), (205.0, Successful)],
                ),
                build(
                    2,
                    "feature/login-throttle",
                    "577f999c6970e7bcd16984a68e3d7e2db61aeb72",
                    "Tom Okafor",
                    "Throttle failed logins per account\n\nFive failures lock the account for a minute.",
                    95.0,
                    &[(104.0, Running), (288.0, Failed)],
                ),
                build(
                    3,
                    "main",
                    "d527a744d0a971a28163beb8283af45cf80cfdb0",
                    "Priya Raman",
                    "Deploy to staging after the tests\n\nThe deploy step waits for a manual trigger.",
                    330.0,
                    &[
                        (342.0, Running),
                        (420.0, Paused),
                        (480.0, Running),
                        (560.0, Successful),
                    ],
                ),
            ],
        );
        // (commit, branch, pushed at, message) of each commit pushed to acme/web.
        let lazy_load = (
            "1665b012c5881b2301b5d2ec623de61f8d63a639",
            "main",
            25.0,
            "Lazy-load the settings page\n\nThe bundle for settings is 300 kB.",
        );
        let search = (
            "ecf85fd5d94fe97ccba84831ee496b9aa9472c8f",
            "feature/search",
            110.0,
            "Search as you type\n\nDebounced by 200 ms.",
        );
        let retry = (
            "7bc7789db04686e43f88d7a14d43a0d12cc43f6f",
            "main",
            300.0,
            "Retry flaky asset uploads\n\nThe CDN answers 502 now and then.",
        );
        // A release tag on a commit of main that no branch listing shows at its tip.
        let release = (
            "b6d0176d7a1558ecc756e51c907f537a1f7f1c0a",
            "main",
            480.0,
            "Release 5.2.0\n\nLazy settings, search as you type, upload retries.",
        );
        let status = |(commit, branch, pushed_at, message): (&str, &str, f64, &str),
                      key: &str,
                      created_at: f64,
                      timeline: &[(f64, SimState)]| {
            SimBuild::status(key, branch, commit, pushed_at, created_at, timeline)
                .with_author("Lena Fischer")
                .with_message(message)
        };
        let web = SimRepo::new(
            "acme",
            "web",
            SimSource::CloudStatuses,
            vec![
                status(
                    lazy_load,
                    "jenkins-build",
                    30.0,
                    &[(40.0, Running), (230.0, Successful)],
                )
                .with_number(101),
                // SonarQube reports six minutes after the push.
                status(lazy_load, "sonar-scan", 400.0, &[(440.0, Successful)]),
                status(
                    search,
                    "jenkins-build",
                    115.0,
                    &[(116.0, Running), (290.0, Failed)],
                )
                .with_number(102),
                status(search, "sonar-scan", 118.0, &[(180.0, Successful)]),
                // Fails, is rerun under the same key and passes: one status, overwritten.
                status(
                    retry,
                    "jenkins-build",
                    306.0,
                    &[
                        (307.0, Running),
                        (420.0, Failed),
                        (470.0, Running),
                        (575.0, Successful),
                    ],
                )
                .with_number(103),
                status(retry, "sonar-scan", 310.0, &[(360.0, Successful)]),
                status(
                    release,
                    "jenkins-build",
                    482.0,
                    &[(483.0, Running), (600.0, Successful)],
                )
                .with_number(105)
                .on_tag("v5.2.0"),
                status(release, "sonar-scan", 485.0, &[(540.0, Successful)]).on_tag("v5.2.0"),
            ],
        );
        // Bamboo posts its first status five seconds after each push.
        let bamboo = |(commit, branch, pushed_at, message): (&str, &str, f64, &str),
                      number: u64,
                      timeline: &[(f64, SimState)]| {
            SimBuild::status(
                "PLAT-BUILD",
                branch,
                commit,
                pushed_at,
                pushed_at + 5.0,
                timeline,
            )
            .with_number(number)
            .with_author("Hannah Schulz")
            .with_message(message)
        };
        let platform = SimRepo::new(
            "PLAT",
            "platform",
            SimSource::DataCenter,
            vec![
                bamboo(
                    (
                        "a0f6f9e3c745bc19241e8bb0331f59bb0497a515",
                        "main",
                        40.0,
                        "Move the job queue to Postgres\n\nDrops the Redis dependency.",
                    ),
                    57,
                    &[(52.0, Running), (250.0, Successful)],
                ),
                bamboo(
                    (
                        "410ae5956c9f16f1ae10a8d887c29e39719650e2",
                        "release/3.1",
                        150.0,
                        "Release 3.1.0\n\n- Postgres job queue\n- audit log export",
                    ),
                    58,
                    &[(160.0, Running), (335.0, Failed)],
                ),
                bamboo(
                    (
                        "8b55a88345b45a96dbc65459a02388dff876ae73",
                        "main",
                        380.0,
                        "Vacuum the job table nightly\n\nThe table grew to 40 GB.",
                    ),
                    59,
                    &[(386.0, Running), (455.0, Stopped)],
                ),
                // The release build of tag v3.0.0, on main's first commit.
                SimBuild::status(
                    "PLAT-RELEASE",
                    "main",
                    "a0f6f9e3c745bc19241e8bb0331f59bb0497a515",
                    300.0,
                    305.0,
                    [(310.0, Running), (470.0, Successful)],
                )
                .with_number(12)
                .with_author("Hannah Schulz")
                .with_message("Move the job queue to Postgres\n\nDrops the Redis dependency.")
                .on_tag("v3.0.0"),
            ],
        );
        // Pipelines and a security scanner on the same pushes.
        let scan =
            |number: u64, pipeline: &SimBuild, created_at: f64, timeline: &[(f64, SimState)]| {
                SimBuild::status(
                    "security-scan",
                    pipeline.branch.as_str(),
                    pipeline.commit.as_str(),
                    pipeline.pushed_at,
                    created_at,
                    timeline,
                )
                .with_number(number)
                .with_author(pipeline.author.as_str())
                .with_message(pipeline.message.as_str())
            };
        let terraform = build(
            1,
            "main",
            "1e9d0900fe342b224cf99f4fc689cbdc1a1a0857",
            "Aisha Bello",
            "Pin the Terraform AWS provider\n\nProvider 6.0 renamed half the S3 arguments.",
            60.0,
            &[(71.0, Running), (240.0, Successful)],
        );
        let upgrade = build(
            2,
            "feature/terraform-1.9",
            "93a5b428389564a91eeadd315025335827888833",
            "Daniel Kim",
            "Upgrade to Terraform 1.9\n\nThe new state encryption needs a KMS key.",
            200.0,
            &[(212.0, Running), (390.0, Failed)],
        );
        let alerts = build(
            3,
            "main",
            "c230053715d4123d96c2078d206b70ffca9216c6",
            "Aisha Bello",
            "Page on disk usage above 90%\n\nThe old threshold fired at 80% every night.",
            420.0,
            &[(431.0, Running), (610.0, Successful)],
        );
        let ops = SimRepo::new(
            "acme",
            "ops",
            SimSource::CloudMixed,
            vec![
                scan(
                    31,
                    &terraform,
                    90.0,
                    &[(91.0, Running), (200.0, Successful)],
                ),
                scan(32, &upgrade, 230.0, &[(231.0, Running), (300.0, Failed)]),
                scan(33, &alerts, 440.0, &[(441.0, Running), (520.0, Successful)]),
                terraform,
                upgrade,
                alerts,
            ],
        );
        Scenario {
            repos: vec![api, web, platform, ops],
        }
    }

    /// `repos` Cloud Pipelines repositories, `acme/repo-0001` on, with builds over `hours`
    /// simulated hours, the same for the same `seed`: for benchmarks and soak runs.
    ///
    /// Activity is skewed as in real teams: each repository's build rate is drawn from a
    /// Pareto distribution (mean about one build every two hours, capped at one every five
    /// minutes), so a few repositories are busy and most idle. Builds arrive at random (a
    /// Poisson process) from simulated second 60 on, none after `hours`. About 5% are pushes
    /// of a release tag (`v{major}.{minor}.{patch}`, counting up, so unique per repository)
    /// and 3% custom pipelines someone ran on a commit of `main` (`deploy-staging`,
    /// `nightly-e2e`, `db-migrate`); of the branch pushes, half are to `main`, the rest to
    /// `release/*` and `feature/*` branches. They run 2 to 15 minutes. About 20% fail, 3% end in ERROR, 5% are stopped and 8% pause
    /// 1 to 10 minutes on a manual step, then resume and succeed (three in four) or expire.
    pub fn random(seed: u64, repos: usize, hours: f64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let horizon = if hours.is_finite() {
            hours * 3600.0
        } else {
            0.0
        };
        let scale = MEAN_BUILDS_PER_HOUR * (PARETO_SHAPE - 1.0) / PARETO_SHAPE;
        let repos = (1..=repos)
            .map(|i| {
                let per_hour = (scale / unit_open(&mut rng).powf(PARETO_SHAPE.recip()))
                    .min(MAX_BUILDS_PER_HOUR);
                let mean_gap = 3600.0 / per_hour;
                let mut builds = Vec::new();
                let mut release = (1, 0, 0);
                let mut t = FIRST_RANDOM_BUILD - unit_open(&mut rng).ln() * mean_gap;
                while t <= horizon {
                    let number = builds.len() as u64 + 1;
                    builds.push(random_build(&mut rng, number, t, &mut release));
                    t -= unit_open(&mut rng).ln() * mean_gap;
                }
                SimRepo::new(
                    "acme",
                    &format!("repo-{i:04}"),
                    SimSource::CloudPipelines,
                    builds,
                )
            })
            .collect();
        Scenario { repos }
    }
}

/// Repositories of [`Scenario::burst`].
const BURST_REPOS: [&str; 6] = [
    "gateway",
    "billing",
    "search",
    "accounts",
    "notifications",
    "frontend",
];

impl Scenario {
    /// A release: six Cloud Pipelines repositories (`acme/gateway` to `acme/frontend`), seven
    /// pipelines each, 42 in all, created at staggered times from second 30 on (the
    /// repositories take turns, one build every 12 seconds) and all ending between seconds
    /// 600 and 660, each at its own second. Per repository: five pushes to `main`, one to
    /// `release/3.0`, and tag `v3.0.0` on that release commit; one build in five fails, one
    /// is stopped. For `bbzoom demo --faults burst` and the tests behind it: a burst of
    /// endings is not an outage, so every card should still arrive, promptly and once.
    pub fn burst() -> Scenario {
        use SimState::{Failed, Running, Stopped, Successful};
        let repos = BURST_REPOS
            .iter()
            .enumerate()
            .map(|(r, slug)| {
                let builds = (0..7u32)
                    .map(|k| {
                        // Turns interleave the repositories; 37 and 60 are coprime, so
                        // the 42 endings fall on distinct seconds of the minute.
                        let turn = k as usize * BURST_REPOS.len() + r;
                        let created_at = 30.0 + 12.0 * turn as f64;
                        let ended_at = 600.0 + (turn * 37 % 60) as f64;
                        let ending = if (r, k) == (2, 3) {
                            Stopped
                        } else if turn % 5 == 3 {
                            Failed
                        } else {
                            Successful
                        };
                        let (branch, commit_of) = match k {
                            0..5 => ("main", k),
                            _ => ("release/3.0", 5),
                        };
                        let build = SimBuild::pipeline(
                            u64::from(k) + 1,
                            branch,
                            created_at,
                            [(created_at + 10.0, Running), (ended_at, ending)],
                        )
                        .with_commit(hash40(fnv1a(
                            format!("burst/{slug}/{commit_of}").as_bytes(),
                        )))
                        .with_author(AUTHORS[turn % AUTHORS.len()])
                        .with_message(format!(
                            "{}\n\nPart of the 3.0 release of {slug}.",
                            SUBJECTS[turn % SUBJECTS.len()]
                        ));
                        if k == 6 {
                            build.on_tag("v3.0.0")
                        } else {
                            build
                        }
                    })
                    .collect();
                SimRepo::new("acme", slug, SimSource::CloudPipelines, builds)
            })
            .collect();
        Scenario { repos }
    }
}

/// A uniform number in (0, 1], safe to take the logarithm of.
fn unit_open(rng: &mut StdRng) -> f64 {
    1.0 - rng.random::<f64>()
}

/// Picks one of `items`.
fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// Pipeline `number` created at `created_at`, with target, branch, duration and ending drawn
/// as [`Scenario::random`] describes. `release` is the repository's last tagged version
/// (major, minor, patch), bumped when this build is a tag push.
fn random_build(
    rng: &mut StdRng,
    number: u64,
    created_at: f64,
    release: &mut (u32, u32, u32),
) -> SimBuild {
    let target = match rng.random_range(0..100) {
        0..5 => next_release(rng, release),
        5..8 => SimTarget::Commit {
            pipeline: pick(rng, &RANDOM_CUSTOM).to_owned(),
        },
        _ => SimTarget::Branch,
    };
    let branch = random_branch(rng, target == SimTarget::Branch);
    let start = created_at + rng.random_range(5.0..30.0);
    let duration = rng.random_range(120.0..900.0);
    let timeline = random_ending(rng, start, duration);
    let build = random_commit(rng, number, branch, created_at, timeline);
    match target {
        SimTarget::Branch => build,
        SimTarget::Tag(name) => build.on_tag(name),
        SimTarget::Commit { pipeline } => build.as_custom(pipeline),
    }
}

/// The tag of the repository's next release, `release` (its last one) bumped: a new minor
/// version one time in four, else a patch.
fn next_release(rng: &mut StdRng, release: &mut (u32, u32, u32)) -> SimTarget {
    *release = if rng.random_bool(0.25) {
        (release.0, release.1 + 1, 0)
    } else {
        (release.0, release.1, release.2 + 1)
    };
    let (major, minor, patch) = *release;
    SimTarget::Tag(format!("v{major}.{minor}.{patch}"))
}

/// The branch of a push: for a branch build (`on_branch`) half the time `main`, else a
/// `release/*` or (most) a `feature/*` branch; a tag or a commit comes from `main`.
fn random_branch(rng: &mut StdRng, on_branch: bool) -> String {
    match (on_branch, rng.random_range(0..100)) {
        (false, _) | (true, 0..50) => "main".to_owned(),
        (true, 50..65) => format!(
            "release/{}.{}",
            rng.random_range(1..4),
            rng.random_range(0..10)
        ),
        (true, _) => format!("feature/{}", pick(rng, &FEATURES)),
    }
}

/// The timeline of a run starting at `start` that would take `duration`: 3% end in ERROR
/// within a minute, 20% fail at the end, 5% are stopped on the way, 8% pause on a manual step
/// for 1 to 10 minutes, then resume and succeed (three in four) or expire; the rest succeed.
fn random_ending(rng: &mut StdRng, start: f64, duration: f64) -> Vec<(f64, SimState)> {
    use SimState::{Error, Expired, Failed, Paused, Running, Stopped, Successful};
    let end = start + duration;
    let mut timeline = vec![(start, Running)];
    let ending = rng.random::<f64>();
    if ending < 0.03 {
        timeline.push((start + rng.random_range(5.0..60.0), Error));
    } else if ending < 0.23 {
        timeline.push((end, Failed));
    } else if ending < 0.28 {
        timeline.push((start + duration * rng.random_range(0.2..0.9), Stopped));
    } else if ending < 0.36 {
        let paused = start + duration * rng.random_range(0.3..0.7);
        let waited = rng.random_range(60.0..600.0);
        timeline.push((paused, Paused));
        if rng.random_bool(0.75) {
            timeline.push((paused + waited, Running));
            timeline.push((end + waited, Successful));
        } else {
            timeline.push((paused + waited, Expired));
        }
    } else {
        timeline.push((end, Successful));
    }
    timeline
}

/// Pipeline `number` pushed to `branch` at `created_at`, of a made-up commit: random hash,
/// author and subject.
fn random_commit(
    rng: &mut StdRng,
    number: u64,
    branch: String,
    created_at: f64,
    timeline: Vec<(f64, SimState)>,
) -> SimBuild {
    let message = format!("{}\n\nChange {number} on {branch}.", pick(rng, &SUBJECTS));
    SimBuild::pipeline(number, branch, created_at, timeline)
        .with_commit(hash40(rng.random()))
        .with_author(pick(rng, &AUTHORS))
        .with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SimState::{Failed, Running, Successful};

    #[test]
    fn showcase_covers_the_cases_the_demo_promises() {
        let scenario = Scenario::showcase();
        assert_eq!(scenario.repos.len(), 3);
        let builds: Vec<&SimBuild> = scenario.repos.iter().flat_map(|r| &r.builds).collect();
        assert_eq!(builds.len(), 14);
        assert!(builds.iter().all(|b| b.created_at >= 20.0));
        assert!((600.0..=900.0).contains(&scenario.end()));
        for b in &builds {
            assert_eq!(b.commit.len(), 40);
            assert!(b.commit.chars().all(|c| c.is_ascii_hexdigit()));
            assert!(
                b.message.lines().count() > 1,
                "single-line message on #{}",
                b.number
            );
            let finished = b.finished_at().expect("every build finishes");
            assert!(b.state_at(finished).is_some_and(SimState::is_terminal));
            assert_eq!(b.state_at(b.created_at - 1.0), None);
            assert!(
                b.timeline.windows(2).all(|w| w[0].0 <= w[1].0),
                "timeline out of order"
            );
        }
        let results: Vec<SimState> = builds.iter().filter_map(|b| b.state_at(1.0e9)).collect();
        for wanted in [
            SimState::Successful,
            SimState::Failed,
            SimState::Error,
            SimState::Stopped,
            SimState::Expired,
        ] {
            assert!(results.contains(&wanted), "no {wanted:?}");
        }
        assert!(builds.iter().any(|b| {
            b.timeline.iter().any(|&(_, s)| s == SimState::Paused)
                && b.state_at(1.0e9) == Some(SimState::Successful)
        }));
        for branch in ["main", "release/", "feature/"] {
            assert!(
                builds.iter().any(|b| b.branch.starts_with(branch)),
                "no {branch} build"
            );
        }
        let api = &scenario.repos[0];
        let targets: Vec<&SimTarget> = api
            .builds
            .iter()
            .map(|b| &b.target)
            .filter(|t| **t != SimTarget::Branch)
            .collect();
        let deploy = SimTarget::Commit {
            pipeline: "deploy-staging".to_owned(),
        };
        assert_eq!(targets, [&deploy, &SimTarget::Tag("v1.8.0".to_owned())]);
        let ending = |target: &SimTarget| {
            let build = api.builds.iter().find(|b| &b.target == target);
            build.and_then(|b| b.state_at(1.0e9))
        };
        assert_eq!(ending(&deploy), Some(SimState::Failed));
        assert_eq!(
            ending(&SimTarget::Tag("v1.8.0".to_owned())),
            Some(SimState::Successful)
        );
        assert!(
            api.builds
                .windows(2)
                .all(|w| w[0].number + 1 == w[1].number && w[0].created_at <= w[1].created_at),
            "pipelines numbered in creation order"
        );
    }

    #[test]
    fn reruns_changes_and_updates() {
        let status = SimBuild::status(
            "ci",
            "main",
            "c".repeat(40),
            5.0,
            10.0,
            [
                (11.0, Running),
                (20.0, Failed),
                (30.0, Running),
                (30.0, Running),
                (45.0, Successful),
            ],
        )
        .with_number(7);
        assert_eq!(status.finished_at(), Some(20.0));
        assert_eq!(status.state_at(25.0), Some(Failed));
        assert_eq!(status.state_at(50.0), Some(Successful));
        assert_eq!(
            status.changes(),
            vec![
                (10.0, SimState::Pending),
                (11.0, Running),
                (20.0, Failed),
                (30.0, Running),
                (45.0, Successful)
            ]
        );
        assert_eq!(status.updated_at(9.0), None);
        assert_eq!(status.updated_at(10.5), Some(10.0));
        assert_eq!(status.updated_at(25.0), Some(20.0));
        let first = status.run_at(25.0).expect("exists");
        assert_eq!((first.reruns, first.started_at), (0, 10.0));
        assert_eq!(first.finished_at, Some(20.0));
        let rerun = status.run_at(35.0).expect("exists");
        assert_eq!(
            (rerun.reruns, rerun.started_at, rerun.finished_at),
            (1, 30.0, None)
        );
        assert_eq!(status.run_at(50.0).and_then(|r| r.finished_at), Some(45.0));

        let pipeline = SimBuild::pipeline(3, "main", 4.0, []);
        assert_eq!(pipeline.pushed_at, 4.0);
        assert_eq!(pipeline.commit.len(), 40);
        assert_ne!(
            pipeline.commit,
            SimBuild::pipeline(4, "main", 4.0, []).commit
        );
    }

    #[test]
    fn updated_on_moves_on_pushes_and_the_rename_only() {
        use SimTrigger::{Manual, Schedule};
        let created = repo_created_at(2);
        assert_eq!(created, repo_created_at(0) + 120.0);
        assert!(created < 0.0);
        let pushed = |commit: &str, at: f64| SimBuild::status("ci", "main", commit, at, at, []);
        let mut repo = SimRepo::new(
            "acme",
            "web",
            SimSource::CloudMixed,
            vec![
                // A pipeline pushed at 10 that runs until 500.
                SimBuild::pipeline(1, "main", 10.0, [(20.0, Running), (500.0, Failed)]),
                // A status on it posted late, rerun later still.
                SimBuild::status("scan", "main", "c1", 10.0, 300.0, [(600.0, Running)]),
                SimBuild::pipeline(2, "main", 700.0, []).triggered_by(Schedule),
                SimBuild::pipeline(3, "main", 800.0, []).triggered_by(Manual),
                SimBuild::pipeline(4, "main", 850.0, []).as_custom("deploy"),
                pushed("c2", 900.0).on_tag("v1.0.0"),
                pushed("c3", 1000.0),
            ],
        );
        let at = |repo: &SimRepo, t: f64| repo.updated_at(2, t);
        assert_eq!(at(&repo, 5.0), created);
        for t in [10.0, 299.0, 500.0, 650.0, 750.0, 899.0] {
            assert_eq!(at(&repo, t), 10.0, "at {t}");
        }
        assert_eq!(at(&repo, 950.0), 900.0);
        assert_eq!(at(&repo, 1.0e9), 1000.0);

        repo.renamed = Some((960.0, "website".to_owned()));
        repo.deleted_at = Some(2000.0);
        assert_eq!(
            (repo.slug_at(959.0), repo.slug_at(960.0)),
            ("web", "website")
        );
        assert_eq!(at(&repo, 970.0), 960.0);
        assert_eq!(at(&repo, 1.0e9), 1000.0);
        assert!(repo.exists_at(1999.0) && !repo.exists_at(2000.0));
        assert_eq!(Scenario { repos: vec![repo] }.end(), 2000.0);
    }

    #[test]
    fn schedules_run_at_their_patterns_times_once_made_and_enabled() {
        const HOUR: f64 = 3600.0;
        let nightly = SimSchedule::new("0 30 2 * * ? *", "main");
        assert_eq!(
            nightly.run_times(0.0, 48.0 * HOUR),
            Ok(vec![17.5 * HOUR, 41.5 * HOUR])
        );
        let made_later = SimSchedule {
            created_at: 20.0 * HOUR,
            ..nightly.clone()
        };
        assert_eq!(
            made_later.run_times(0.0, 48.0 * HOUR),
            Ok(vec![41.5 * HOUR])
        );
        let disabled = SimSchedule {
            enabled: false,
            ..nightly
        };
        assert_eq!(disabled.run_times(0.0, 48.0 * HOUR), Ok(vec![]));
        assert!(
            SimSchedule::new("30 2 * * *", "main")
                .run_times(0.0, HOUR)
                .is_err()
        );
    }

    #[test]
    fn branch_tips_follow_pushes() {
        let at = |branch: &str, commit: &str, pushed_at: f64| {
            SimBuild::status("k", branch, commit, pushed_at, pushed_at + 100.0, [])
        };
        let repo = SimRepo::new(
            "acme",
            "web",
            SimSource::CloudStatuses,
            vec![
                at("main", "a", 10.0),
                at("dev", "b", 20.0),
                at("main", "c", 30.0),
            ],
        );
        let tips = |t: f64| -> Vec<(String, String)> {
            repo.branch_tips(t)
                .into_iter()
                .map(|b| (b.branch.clone(), b.commit.clone()))
                .collect()
        };
        let pair = |b: &str, c: &str| (b.to_owned(), c.to_owned());
        assert!(tips(5.0).is_empty());
        assert_eq!(tips(25.0), vec![pair("dev", "b"), pair("main", "a")]);
        assert_eq!(tips(30.0), vec![pair("dev", "b"), pair("main", "c")]);
    }

    #[test]
    fn tags_and_commits_move_no_branch_and_tags_do_not_move() {
        let at = |commit: &str, pushed_at: f64| {
            SimBuild::status("k", "main", commit, pushed_at, pushed_at, [])
        };
        let repo = SimRepo::new(
            "acme",
            "web",
            SimSource::CloudMixed,
            vec![
                at("a", 10.0),
                at("b", 20.0).on_tag("v1.10.0"),
                SimBuild::pipeline(1, "main", 25.0, [])
                    .with_commit("c")
                    .as_custom("deploy"),
                at("d", 30.0).on_tag("v1.9.0"),
                at("e", 40.0).on_tag("v1.10.0"),
                at("f", 5.0).on_tag("v0.1.0").with_number(2),
            ],
        );
        let tips: Vec<&str> = repo
            .branch_tips(1.0e9)
            .iter()
            .map(|b| b.commit.as_str())
            .collect();
        assert_eq!(tips, ["a"]);
        let tags = |t: f64| -> Vec<(&str, &str)> {
            repo.tag_tips(t)
                .into_iter()
                .map(|(name, b)| (name, b.commit.as_str()))
                .collect()
        };
        assert_eq!(tags(4.0), []);
        assert_eq!(tags(25.0), [("v0.1.0", "f"), ("v1.10.0", "b")]);
        assert_eq!(
            tags(1.0e9),
            [("v0.1.0", "f"), ("v1.10.0", "b"), ("v1.9.0", "d")]
        );
        assert_eq!(repo.builds[1].ref_name(), Some("v1.10.0"));
        assert_eq!(repo.builds[2].ref_name(), None);
        assert!(repo.runs_pipeline(&repo.builds[2]));
        assert!(!repo.runs_pipeline(&repo.builds[0]));
        let status = repo.builds[2].pipeline_status(3);
        assert_eq!(status.key, pipeline_status_key(3, 1));
        assert_ne!(status.key, pipeline_status_key(4, 1));
        assert_ne!(status.key, pipeline_status_key(3, 2));
        assert_eq!(
            (status.commit.as_str(), &status.target),
            ("c", &repo.builds[2].target)
        );
    }

    #[test]
    fn mixed_covers_its_promises() {
        let scenario = Scenario::mixed();
        let sources: Vec<SimSource> = scenario.repos.iter().map(|r| r.source).collect();
        assert_eq!(
            sources,
            [
                SimSource::CloudPipelines,
                SimSource::CloudStatuses,
                SimSource::DataCenter,
                SimSource::CloudMixed
            ]
        );
        let builds: Vec<&SimBuild> = scenario.repos.iter().flat_map(|r| &r.builds).collect();
        let first = builds
            .iter()
            .map(|b| b.pushed_at.min(b.created_at))
            .fold(f64::INFINITY, f64::min);
        assert_eq!(first, 20.0);
        assert!((480.0..=660.0).contains(&scenario.end()));
        for b in &builds {
            assert_eq!(b.commit.len(), 40);
            assert!(b.pushed_at <= b.created_at);
            assert!(b.timeline.windows(2).all(|w| w[0].0 <= w[1].0));
            assert!(b.state_at(1.0e9).is_some_and(SimState::is_terminal));
        }

        let web = &scenario.repos[1];
        for commit in web.builds.iter().map(|b| &b.commit) {
            let mut keys: Vec<&str> = web
                .builds
                .iter()
                .filter(|b| &b.commit == commit)
                .map(|b| b.key.as_str())
                .collect();
            keys.sort_unstable();
            assert_eq!(keys, ["jenkins-build", "sonar-scan"], "on {commit}");
        }
        assert!(
            web.builds
                .iter()
                .any(|b| b.created_at - b.pushed_at >= 300.0)
        );
        assert!(web.builds.iter().any(|b| {
            let failed = b.timeline.iter().position(|&(_, s)| s == Failed);
            failed.is_some_and(|i| b.timeline[i..].iter().any(|&(_, s)| s == Successful))
        }));
        let v520 = SimTarget::Tag("v5.2.0".to_owned());
        assert_eq!(web.builds.iter().filter(|b| b.target == v520).count(), 2);
        assert_eq!(web.tag_tips(1.0e9).len(), 1);
        let main = web.branch_tips(1.0e9);
        assert!(main.iter().all(|tip| tip.target == SimTarget::Branch));

        let platform = &scenario.repos[2];
        assert_eq!(
            (platform.workspace.as_str(), platform.slug.as_str()),
            ("PLAT", "platform")
        );
        assert!(
            platform
                .builds
                .iter()
                .any(|b| b.state_at(1.0e9) == Some(SimState::Stopped))
        );
        assert!(platform.builds.iter().all(|b| !b.key.is_empty()));
        let tags: Vec<&str> = platform.tag_tips(1.0e9).iter().map(|t| t.0).collect();
        assert_eq!(tags, ["v3.0.0"]);

        let ops = &scenario.repos[3];
        let pipelines: Vec<&SimBuild> =
            ops.builds.iter().filter(|b| ops.runs_pipeline(b)).collect();
        let numbers: Vec<u64> = pipelines.iter().map(|b| b.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        for pipeline in &pipelines {
            let scans = ops
                .builds
                .iter()
                .filter(|b| b.commit == pipeline.commit && b.key == "security-scan");
            assert_eq!(scans.count(), 1, "on #{}", pipeline.number);
        }
        assert_eq!(ops.builds.len(), 2 * pipelines.len());
        let failed = |b: &&SimBuild| b.state_at(1.0e9) == Some(Failed);
        assert!(pipelines.iter().any(failed));
        assert!(
            ops.builds
                .iter()
                .filter(|b| !ops.runs_pipeline(b))
                .any(|b| failed(&b))
        );
    }

    #[test]
    fn random_is_deterministic_and_within_bounds() {
        let scenario = Scenario::random(42, 30, 3.0);
        assert_eq!(scenario, Scenario::random(42, 30, 3.0));
        assert_ne!(scenario, Scenario::random(43, 30, 3.0));
        assert_eq!(scenario.repos.len(), 30);
        assert_eq!(scenario.repos[0].slug, "repo-0001");
        assert_eq!(scenario.repos[29].slug, "repo-0030");
        for repo in &scenario.repos {
            assert_eq!(repo.workspace, "acme");
            assert_eq!(repo.source, SimSource::CloudPipelines);
            for (i, b) in repo.builds.iter().enumerate() {
                assert_eq!(b.number, i as u64 + 1);
                assert!((60.0..=3.0 * 3600.0).contains(&b.created_at));
                assert_eq!(b.pushed_at, b.created_at);
                assert!(b.timeline.windows(2).all(|w| w[0].0 <= w[1].0));
                assert!(b.state_at(1.0e9).is_some_and(SimState::is_terminal));
                assert_eq!(b.commit.len(), 40);
                if b.target != SimTarget::Branch {
                    assert_eq!(b.branch, "main");
                }
            }
            let mut tags: Vec<&str> = repo
                .builds
                .iter()
                .filter_map(|b| match &b.target {
                    SimTarget::Tag(name) => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            for tag in &tags {
                let parts: Vec<&str> = tag.trim_start_matches('v').split('.').collect();
                assert!(tag.starts_with('v') && parts.len() == 3, "{tag}");
                assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{tag}");
            }
            let count = tags.len();
            tags.sort_unstable();
            tags.dedup();
            assert_eq!(tags.len(), count, "a tag pushed twice in {}", repo.slug);
        }
        assert!(
            Scenario::random(1, 5, f64::NAN)
                .repos
                .iter()
                .all(|r| r.builds.is_empty())
        );
    }

    #[test]
    fn random_is_skewed_and_has_the_promised_mix() {
        let (repos, hours) = (400, 24.0);
        let scenario = Scenario::random(7, repos, hours);
        let builds: Vec<&SimBuild> = scenario.repos.iter().flat_map(|r| &r.builds).collect();
        let n = builds.len() as f64;
        let per_repo_hour = n / (repos as f64 * hours);
        assert!((0.3..=0.6).contains(&per_repo_hour), "{per_repo_hour}");

        let mut counts: Vec<usize> = scenario.repos.iter().map(|r| r.builds.len()).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let busiest_tenth: usize = counts[..repos / 10].iter().sum();
        assert!(
            busiest_tenth as f64 > 0.3 * n,
            "top tenth: {busiest_tenth} of {n}"
        );
        assert!(
            counts[repos / 2] < counts[0] / 10,
            "median {}",
            counts[repos / 2]
        );
        assert!(counts[0] as f64 <= MAX_BUILDS_PER_HOUR * hours * 1.5);

        let share = |wanted: SimState| {
            builds
                .iter()
                .filter(|b| b.state_at(1.0e9) == Some(wanted))
                .count() as f64
                / n
        };
        let paused = builds
            .iter()
            .filter(|b| b.timeline.iter().any(|&(_, s)| s == SimState::Paused))
            .count() as f64
            / n;
        assert!((0.16..=0.24).contains(&share(Failed)), "failed");
        assert!((0.015..=0.05).contains(&share(SimState::Error)), "error");
        assert!((0.03..=0.07).contains(&share(SimState::Stopped)), "stopped");
        assert!((0.05..=0.11).contains(&paused), "paused");
        for branch in ["main", "release/", "feature/"] {
            assert!(builds.iter().any(|b| b.branch.starts_with(branch)));
        }
        let kind = |wanted: fn(&SimTarget) -> bool| {
            builds.iter().filter(|b| wanted(&b.target)).count() as f64 / n
        };
        let tags = kind(|t| matches!(t, SimTarget::Tag(_)));
        let custom = kind(|t| matches!(t, SimTarget::Commit { .. }));
        assert!((0.035..=0.065).contains(&tags), "tags {tags}");
        assert!((0.015..=0.045).contains(&custom), "custom {custom}");
        for name in RANDOM_CUSTOM {
            let wanted = SimTarget::Commit {
                pipeline: name.to_owned(),
            };
            assert!(builds.iter().any(|b| b.target == wanted), "no {name}");
        }
        for b in builds.iter().filter(|b| b.timeline.len() == 2) {
            let ran = b.timeline[1].0 - b.timeline[0].0;
            assert!(ran <= 900.0, "ran {ran}");
        }
    }

    #[test]
    fn burst_ends_everything_within_a_minute() {
        let scenario = Scenario::burst();
        assert!(scenario.repos.len() >= 6);
        let builds: Vec<&SimBuild> = scenario.repos.iter().flat_map(|r| &r.builds).collect();
        assert!(builds.len() >= 40);
        let endings: Vec<f64> = builds
            .iter()
            .map(|b| b.finished_at().expect("every build ends"))
            .collect();
        let first = endings.iter().copied().fold(f64::INFINITY, f64::min);
        let last = endings.iter().copied().fold(0.0, f64::max);
        assert!(last - first <= 60.0, "endings from {first} to {last}");
        assert!(
            builds
                .iter()
                .all(|b| b.created_at >= 30.0 && b.created_at < first)
        );
        let mut starts: Vec<f64> = builds.iter().map(|b| b.created_at).collect();
        starts.sort_by(f64::total_cmp);
        starts.dedup();
        assert_eq!(starts.len(), builds.len(), "starts staggered");
        for repo in &scenario.repos {
            assert_eq!(repo.source, SimSource::CloudPipelines);
            let tag = SimTarget::Tag("v3.0.0".to_owned());
            assert_eq!(repo.builds.iter().filter(|b| b.target == tag).count(), 1);
            let main = repo.builds.iter().filter(|b| b.branch == "main").count();
            assert!(main * 2 > repo.builds.len(), "mostly main in {}", repo.slug);
            assert!(
                repo.builds
                    .iter()
                    .enumerate()
                    .all(|(i, b)| b.number == i as u64 + 1)
            );
        }
        let ended = |wanted: SimState| {
            builds
                .iter()
                .filter(|b| b.state_at(1.0e9) == Some(wanted))
                .count()
        };
        assert!(ended(Failed) >= 3);
        assert!(ended(SimState::Stopped) >= 1);
        assert!(ended(Successful) > builds.len() / 2);
    }
}
