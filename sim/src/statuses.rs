//! Commit statuses as both Bitbucket APIs derive them from the scenario at a moment: which are
//! posted on a commit, and each one's key, name, ref, state, build number, link, description
//! and times. Each API then spells them its own way (Cloud's `commitstatus`, Data Center's
//! `RestBuildStatus`).
//!
//! Besides the statuses an outside CI posts, Bitbucket Cloud Pipelines posts one per pipeline
//! run on the run's commit, as the real service does: key [`pipeline_status_key`], name
//! `Pipeline #N`, linked to the run's page in the Pipelines add-on.

use super::scenario::pipeline_status_key;
use super::{SimBuild, SimRepo, SimState};

/// One status as it stands at a moment.
pub(super) struct StatusView<'a> {
    /// The repository it is in.
    pub(super) repo: &'a SimRepo,
    /// The scenario entry behind it: the CI's status, or the pipeline that posted it.
    pub(super) build: &'a SimBuild,
    /// What identifies it on its commit: the CI's key, or the pipeline's derived one.
    pub(super) key: String,
    /// The status `name`: the key and the CI's build number, or `Pipeline #N`.
    pub(super) name: String,
    /// The ref it was posted for (Cloud's `refname`): branch or tag; `None` for a pipeline
    /// run on a bare commit.
    pub(super) refname: Option<&'a str>,
    /// Cloud's spelling of the state; Data Center says `CANCELLED` for `STOPPED`.
    pub(super) state: &'static str,
    /// The CI's build number: the scenario's, plus one per rerun so far.
    pub(super) build_number: u64,
    /// Link to the build on the CI server, or to the run in the Pipelines add-on.
    pub(super) url: String,
    /// What the CI says about the state.
    pub(super) description: &'static str,
    /// When it was last posted.
    pub(super) updated_at: f64,
    /// Milliseconds the current run took, once it finished.
    pub(super) duration_ms: Option<u64>,
}

/// The statuses posted on `commit` by `now` in `repos` (each with its position in the
/// scenario, which seeds pipeline keys), newest update first (key order on a tie).
pub(super) fn posted<'a>(
    origin: &str,
    repos: impl IntoIterator<Item = (usize, &'a SimRepo)>,
    commit: &str,
    now: f64,
) -> Vec<StatusView<'a>> {
    let mut views: Vec<StatusView<'a>> = repos
        .into_iter()
        .flat_map(|(index, repo)| repo.builds.iter().map(move |build| (index, repo, build)))
        .filter(|(_, _, build)| build.commit.eq_ignore_ascii_case(commit))
        .filter_map(|(index, repo, build)| view(origin, index, repo, build, now))
        .collect();
    views.sort_by(|a, b| {
        b.updated_at
            .total_cmp(&a.updated_at)
            .then_with(|| a.key.cmp(&b.key))
    });
    views
}

/// The page of pipeline `number` in the Pipelines add-on: the link of the status Pipelines
/// posts for it.
pub(super) fn pipeline_url(origin: &str, repo: &SimRepo, number: u64) -> String {
    format!(
        "{origin}/{}/{}/addon/pipelines/home#!/results/{number}",
        repo.workspace, repo.slug
    )
}

/// `build`'s status at `now`, or `None` before it is first posted.
fn view<'a>(
    origin: &str,
    index: usize,
    repo: &'a SimRepo,
    build: &'a SimBuild,
    now: f64,
) -> Option<StatusView<'a>> {
    use SimState::{Error, Expired, Failed, Halted, Paused, Pending, Running, Stopped, Successful};
    let run = build.run_at(now)?;
    let pipeline = repo.runs_pipeline(build);
    let state = build.state_at(now)?;
    let wire = match state {
        Pending | Running | Paused | Halted => "INPROGRESS",
        Successful => "SUCCESSFUL",
        Failed | Error => "FAILED",
        Stopped | Expired => "STOPPED",
    };
    let description = match (pipeline, state) {
        (true, Pending) => "Pipeline pending",
        (true, Running | Halted) => "Pipeline in progress",
        (true, Paused) => "Pipeline paused",
        (true, Successful) => "Pipeline successful",
        (true, Failed | Error) => "Pipeline failed",
        (true, Stopped | Expired) => "Pipeline stopped",
        (false, Pending | Running | Paused | Halted) => "Build in progress",
        (false, Successful) => "All tests passed",
        (false, Failed) => "Tests failed",
        (false, Error) => "The build could not start",
        (false, Stopped) => "Stopped by a user",
        (false, Expired) => "Timed out waiting for input",
    };
    let build_number = build.number + run.reruns;
    let (key, name, url) = if pipeline {
        (
            pipeline_status_key(index, build.number),
            format!("Pipeline #{}", build.number),
            pipeline_url(origin, repo, build.number),
        )
    } else {
        (
            build.key.clone(),
            format!("{} #{build_number}", build.key),
            // Unique per commit and run, as a CI server's build page is.
            format!(
                "{origin}/ci/{}/{}/{}/{}/{build_number}",
                repo.workspace,
                repo.slug,
                build.key,
                &build.commit[..build.commit.len().min(7)]
            ),
        )
    };
    Some(StatusView {
        repo,
        build,
        key,
        name,
        refname: build.ref_name(),
        state: wire,
        build_number,
        url,
        description,
        updated_at: build.updated_at(now)?,
        duration_ms: run
            .finished_at
            .map(|end| ((end - run.started_at).max(0.0) * 1000.0).round() as u64),
    })
}
