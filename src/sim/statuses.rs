//! Commit statuses as both Bitbucket APIs derive them from the scenario at a moment: which are
//! posted on a commit, and each one's state, build number, link, description and times. Each
//! API then spells them its own way (Cloud's `commitstatus`, Data Center's `RestBuildStatus`).

use super::{SimBuild, SimRepo, SimState};

/// One status as it stands at a moment.
pub(super) struct StatusView<'a> {
    /// The repository it is in.
    pub(super) repo: &'a SimRepo,
    /// The scenario entry behind it.
    pub(super) build: &'a SimBuild,
    /// Cloud's spelling of the state; Data Center says `CANCELLED` for `STOPPED`.
    pub(super) state: &'static str,
    /// The CI's build number: the scenario's, plus one per rerun so far.
    pub(super) build_number: u64,
    /// Link to the build on the CI server.
    pub(super) url: String,
    /// What the CI says about the state.
    pub(super) description: &'static str,
    /// When it was last posted.
    pub(super) updated_at: f64,
    /// Milliseconds the current run took, once it finished.
    pub(super) duration_ms: Option<u64>,
}

impl StatusView<'_> {
    /// The status `name`: its key and the build number, as CI servers name them.
    pub(super) fn name(&self) -> String {
        format!("{} #{}", self.build.key, self.build_number)
    }
}

/// The statuses posted on `commit` by `now` in `repos`, newest update first (key order on a
/// tie).
pub(super) fn posted<'a>(
    origin: &str,
    repos: impl IntoIterator<Item = &'a SimRepo>,
    commit: &str,
    now: f64,
) -> Vec<StatusView<'a>> {
    let mut views: Vec<StatusView<'a>> = repos
        .into_iter()
        .flat_map(|repo| repo.builds.iter().map(move |build| (repo, build)))
        .filter(|(_, build)| build.commit.eq_ignore_ascii_case(commit))
        .filter_map(|(repo, build)| view(origin, repo, build, now))
        .collect();
    views.sort_by(|a, b| {
        b.updated_at
            .total_cmp(&a.updated_at)
            .then_with(|| a.build.key.cmp(&b.build.key))
    });
    views
}

/// `build`'s status at `now`, or `None` before it is first posted.
fn view<'a>(
    origin: &str,
    repo: &'a SimRepo,
    build: &'a SimBuild,
    now: f64,
) -> Option<StatusView<'a>> {
    use SimState::{Error, Expired, Failed, Halted, Paused, Pending, Running, Stopped, Successful};
    let run = build.run_at(now)?;
    let (state, description) = match build.state_at(now)? {
        Pending | Running | Paused | Halted => ("INPROGRESS", "Build in progress"),
        Successful => ("SUCCESSFUL", "All tests passed"),
        Failed => ("FAILED", "Tests failed"),
        Error => ("FAILED", "The build could not start"),
        Stopped => ("STOPPED", "Stopped by a user"),
        Expired => ("STOPPED", "Timed out waiting for input"),
    };
    let build_number = build.number + run.reruns;
    Some(StatusView {
        repo,
        build,
        state,
        build_number,
        // Unique per commit and run, as a CI server's build page is.
        url: format!(
            "{origin}/ci/{}/{}/{}/{}/{build_number}",
            repo.workspace,
            repo.slug,
            build.key,
            &build.commit[..build.commit.len().min(7)]
        ),
        description,
        updated_at: build.updated_at(now)?,
        duration_ms: run
            .finished_at
            .map(|end| ((end - run.started_at).max(0.0) * 1000.0).round() as u64),
    })
}
