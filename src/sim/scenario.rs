//! Scenarios: the scripted timeline the simulator plays. Times are simulated seconds from the
//! moment the simulator starts; the simulator's clock runs `speed` times faster than the wall.

use serde::Serialize;

/// Everything the simulator will show, decided up front so a run can be checked afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// The repositories the Bitbucket side serves, each with its scripted builds.
    pub repos: Vec<SimRepo>,
}

/// A Bitbucket repository, `{workspace}/{slug}`, and the pipelines it will run.
#[derive(Debug, Clone, Serialize)]
pub struct SimRepo {
    /// Workspace id, the first path segment of the repository.
    pub workspace: String,
    /// Repository slug, the second path segment.
    pub slug: String,
    /// Builds in creation order; numbers count up from 1 as on Bitbucket.
    pub builds: Vec<SimBuild>,
}

/// One pipeline run: what it built and how its state moves over simulated time.
#[derive(Debug, Clone, Serialize)]
pub struct SimBuild {
    /// Pipeline number (`build_number`).
    pub number: u64,
    /// Branch the push was to (`target.ref_name`).
    pub branch: String,
    /// Full 40-hex commit hash (`target.commit.hash`).
    pub commit: String,
    /// Full commit message, served only when asked for with `fields`.
    pub message: String,
    /// Display name of the pusher (`creator.display_name`).
    pub author: String,
    /// Simulated second the pipeline is created (it is PENDING from then on).
    pub created_at: f64,
    /// Later states, each from a simulated second on, in time order; the last should be
    /// terminal.
    pub timeline: Vec<(f64, SimState)>,
}

/// A pipeline state as Bitbucket's wire format spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SimState {
    /// `PENDING`: queued, not started.
    Pending,
    /// `IN_PROGRESS` / `RUNNING`.
    Running,
    /// `IN_PROGRESS` / `PAUSED`: waiting for someone to trigger a manual step.
    Paused,
    /// `IN_PROGRESS` / `HALTED`: seen in the wild, not in the spec.
    Halted,
    /// `COMPLETED` / `SUCCESSFUL`.
    Successful,
    /// `COMPLETED` / `FAILED`: a step's commands failed.
    Failed,
    /// `COMPLETED` / `ERROR`: the pipeline could not run (bad YAML, infrastructure).
    Error,
    /// `COMPLETED` / `STOPPED`: someone stopped it.
    Stopped,
    /// `COMPLETED` / `EXPIRED`: a paused pipeline nobody resumed in time.
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

impl SimBuild {
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

    /// When the build reached its terminal state, if it has one.
    pub fn finished_at(&self) -> Option<f64> {
        self.timeline
            .iter()
            .find(|(_, s)| s.is_terminal())
            .map(|&(at, _)| at)
    }
}

impl Scenario {
    /// The simulated second after which nothing changes any more.
    pub fn end(&self) -> f64 {
        self.repos
            .iter()
            .flat_map(|r| &r.builds)
            .flat_map(|b| std::iter::once(b.created_at).chain(b.timeline.iter().map(|&(t, _)| t)))
            .fold(0.0, f64::max)
    }
}

/// A build on a branch, for writing scenarios compactly.
fn build(
    number: u64,
    branch: &str,
    commit: &str,
    author: &str,
    message: &str,
    created_at: f64,
    timeline: &[(f64, SimState)],
) -> SimBuild {
    SimBuild {
        number,
        branch: branch.to_owned(),
        commit: commit.to_owned(),
        message: message.to_owned(),
        author: author.to_owned(),
        created_at,
        timeline: timeline.to_vec(),
    }
}

fn repo(slug: &str, builds: Vec<SimBuild>) -> SimRepo {
    SimRepo {
        workspace: "acme".to_owned(),
        slug: slug.to_owned(),
        builds,
    }
}

impl Scenario {
    /// The demo: three repositories and twelve builds over about twelve simulated minutes,
    /// touching every case a notifier must handle: a success, a failure then a fix on the same
    /// branch, a failure followed by another failure, an ERROR, a STOPPED build, a pause on a
    /// manual step that resumes and succeeds, one that expires waiting, and pushes to `main`,
    /// `release/*` and feature branches. Nothing happens before simulated second 20, so a
    /// daemon has time to start and take its first look.
    pub fn showcase() -> Scenario {
        use SimState::{Error, Expired, Failed, Paused, Running, Stopped, Successful};
        let api = repo(
            "api",
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
            ],
        );
        let web = repo(
            "web",
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
        let mobile = repo(
            "mobile",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showcase_covers_the_cases_the_demo_promises() {
        let scenario = Scenario::showcase();
        assert_eq!(scenario.repos.len(), 3);
        let builds: Vec<&SimBuild> = scenario.repos.iter().flat_map(|r| &r.builds).collect();
        assert_eq!(builds.len(), 12);
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
    }
}
