//! The Bitbucket Data Center side of the simulator, on the same port under [`PREFIX`] (`/dc`),
//! as if the instance were served from `http://127.0.0.1:PORT/dc`: branch tips
//! (`GET /dc/rest/api/latest/projects/{p}/repos/{r}/branches`), tags (`.../tags`) and the
//! build statuses of a commit (`GET /dc/rest/build-status/latest/commits/{commit}`), for the
//! scenario's [`SimSource::DataCenter`] repositories, in the 9.2 wire shapes (`RestBranch`,
//! `RestTag`, `RestBuildStatus`, `{size, limit, isLastPage, start, nextPageStart}` pages,
//! `{"errors":[...]}` errors). Only Data Center tokens are accepted here. The prefix keeps the
//! instance's base URL distinct from Bitbucket Cloud's web URL (`http://127.0.0.1:PORT`), as
//! a daemon configured with both requires.

use super::api::{Api, datacenter_error};
use super::clock::Clock;
use super::ids::{email, nickname};
use super::limits::serve;
use super::paging::{Query, window};
use super::statuses::{self, StatusView};
use super::{Inner, SimBuild, SimRepo, SimSource, SimTarget};
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use std::sync::Arc;

/// Page size when the client names none.
const DEFAULT_LIMIT: usize = 25;
/// Largest page size served; larger requests are cut down to it, as Data Center does.
const MAX_LIMIT: usize = 1000;
/// The build-status resource lists only a commit's newest 100 statuses.
const MAX_STATUSES: usize = 100;
/// The default branch of every simulated repository.
const DEFAULT_BRANCH: &str = "main";

/// Where the simulated instance is served: its base URL is the simulator's origin plus this,
/// and every route and web link of the instance starts with it.
pub(super) const PREFIX: &str = "/dc";

/// The Data Center routes, under [`PREFIX`], to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    let instance = Router::new()
        .route(
            "/rest/api/{version}/projects/{project}/repos/{repo}/branches",
            get(branches),
        )
        .route(
            "/rest/api/{version}/projects/{project}/repos/{repo}/tags",
            get(tags),
        )
        .route(
            "/rest/build-status/{version}/commits/{commit}",
            get(build_statuses),
        )
        .route("/rest/{*rest}", any(unknown));
    Router::new().nest(PREFIX, instance)
}

/// A Data Center error answer: status plus
/// `{"errors":[{"context":null,"message","exceptionName"}]}`.
struct DcError {
    status: StatusCode,
    message: String,
    exception: &'static str,
}

impl DcError {
    fn bad_request(message: String) -> DcError {
        DcError {
            status: StatusCode::BAD_REQUEST,
            message,
            exception: "com.atlassian.bitbucket.validation.ArgumentValidationException",
        }
    }

    fn not_found(message: String, exception: &'static str) -> DcError {
        DcError {
            status: StatusCode::NOT_FOUND,
            message,
            exception,
        }
    }

    fn no_resource() -> DcError {
        DcError::not_found(
            "No resource was found at this location".to_owned(),
            "com.atlassian.bitbucket.rest.NoSuchResourceException",
        )
    }
}

impl IntoResponse for DcError {
    fn into_response(self) -> Response {
        datacenter_error(self.status, &self.message, self.exception)
    }
}

/// `latest` and `1.0` name the same REST version; anything else is not there.
fn check_version(version: &str) -> Result<(), DcError> {
    match version {
        "latest" | "1.0" => Ok(()),
        _ => Err(DcError::no_resource()),
    }
}

/// The `orderBy` parameter as one of the `allowed` values' meanings (any case), `default`
/// when absent.
fn order<K: Copy>(query: &Query, allowed: &[(&str, K)], default: K) -> Result<K, DcError> {
    let Some(given) = query.last("orderBy") else {
        return Ok(default);
    };
    allowed
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(given))
        .map(|&(_, meaning)| meaning)
        .ok_or_else(|| DcError::bad_request(format!("Unsupported orderBy value '{given}'")))
}

/// Which page of a Data Center list a request asks for.
struct Paging {
    start: usize,
    limit: usize,
}

impl Paging {
    /// `start` (from 0) and `limit` (default 25, at most 1000) of the query.
    fn of(query: &Query) -> Result<Paging, DcError> {
        let start = query.number("start", 0, 0).map_err(DcError::bad_request)?;
        let limit = query
            .number("limit", DEFAULT_LIMIT, 1)
            .map_err(DcError::bad_request)?;
        Ok(Paging {
            start,
            limit: limit.min(MAX_LIMIT),
        })
    }

    /// The page of `items` (filtered and ordered) as Data Center spells it: `size` counts this
    /// page's values, `nextPageStart` is there unless `isLastPage`.
    fn page<T>(&self, items: Vec<T>, render: impl FnMut(T) -> Value) -> Value {
        let (shown, more) = window(items, self.start, self.limit);
        let values: Vec<Value> = shown.into_iter().map(render).collect();
        let next = self.start + values.len();
        let mut body = json!({
            "size": values.len(),
            "limit": self.limit,
            "isLastPage": !more,
            "start": self.start,
            "values": values,
        });
        if more {
            body["nextPageStart"] = json!(next);
        }
        body
    }
}

/// A Data Center repository by project key and slug (any case) as it stands now (not deleted,
/// under its slug then), or the 404 naming what is missing.
fn find_repo<'a>(inner: &'a Inner, project: &str, slug: &str) -> Result<&'a SimRepo, DcError> {
    let mut in_project = inner
        .scenario
        .repos
        .iter()
        .filter(|r| r.source == SimSource::DataCenter && r.workspace.eq_ignore_ascii_case(project))
        .peekable();
    if in_project.peek().is_none() {
        return Err(DcError::not_found(
            format!("Project {project} does not exist."),
            "com.atlassian.bitbucket.project.NoSuchProjectException",
        ));
    }
    let now = inner.clock.now();
    in_project
        .find(|r| r.exists_at(now) && r.slug_at(now).eq_ignore_ascii_case(slug))
        .ok_or_else(|| {
            DcError::not_found(
                format!("Repository {project}/{slug} does not exist."),
                "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
            )
        })
}

/// `GET /dc/rest/api/latest/projects/{project}/repos/{repo}/branches`.
async fn branches(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    serve(&inner, &headers, Api::DataCenter, || {
        let Path((version, project, slug)) = path.map_err(|_| DcError::no_resource())?;
        check_version(&version)?;
        branches_page(&inner, &project, &slug, &uri)
    })
    .await
}

/// One page of a repository's branches as they stand now: by name, or most recently pushed
/// first with `orderBy=MODIFICATION`; `filterText` keeps names containing it; `details=true`
/// adds the tip commit's metadata.
fn branches_page(inner: &Inner, project: &str, slug: &str, uri: &Uri) -> Result<Value, DcError> {
    let query = Query::of(uri);
    let paging = Paging::of(&query)?;
    let by_modification = order(
        &query,
        &[("ALPHABETICAL", false), ("MODIFICATION", true)],
        false,
    )?;
    let details = query
        .last("details")
        .is_some_and(|d| d.eq_ignore_ascii_case("true"));
    let repo = find_repo(inner, project, slug)?;
    let mut tips = repo.branch_tips(inner.clock.now());
    if let Some(text) = query.last("filterText") {
        let text = text.to_lowercase();
        tips.retain(|tip| tip.branch.to_lowercase().contains(&text));
    }
    if by_modification {
        tips.sort_by(|a, b| b.pushed_at.total_cmp(&a.pushed_at));
    }
    Ok(paging.page(tips, |tip| branch_json(&inner.clock, tip, details)))
}

/// `GET /dc/rest/api/latest/projects/{project}/repos/{repo}/tags`.
async fn tags(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    serve(&inner, &headers, Api::DataCenter, || {
        let Path((version, project, slug)) = path.map_err(|_| DcError::no_resource())?;
        check_version(&version)?;
        tags_page(&inner, &project, &slug, &uri)
    })
    .await
}

/// One page of a repository's tags as they stand now: by name, or most recently pushed first
/// with `orderBy=MODIFICATION`; `filterText` keeps names containing it (any case).
fn tags_page(inner: &Inner, project: &str, slug: &str, uri: &Uri) -> Result<Value, DcError> {
    let query = Query::of(uri);
    let paging = Paging::of(&query)?;
    let by_modification = order(
        &query,
        &[("ALPHABETICAL", false), ("MODIFICATION", true)],
        false,
    )?;
    let repo = find_repo(inner, project, slug)?;
    let mut tags = repo.tag_tips(inner.clock.now());
    if let Some(text) = query.last("filterText") {
        let text = text.to_lowercase();
        tags.retain(|(name, _)| name.to_lowercase().contains(&text));
    }
    if by_modification {
        tags.sort_by(|a, b| b.1.pushed_at.total_cmp(&a.1.pushed_at));
    }
    Ok(paging.page(tags, |(name, build)| tag_json(name, build)))
}

/// `GET /dc/rest/build-status/latest/commits/{commit}`.
async fn build_statuses(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    serve(&inner, &headers, Api::DataCenter, || {
        let Path((version, commit)) = path.map_err(|_| DcError::no_resource())?;
        check_version(&version)?;
        let query = Query::of(&uri);
        let paging = Paging::of(&query)?;
        let newest_first = order(&query, &[("NEWEST", true), ("OLDEST", false)], true)?;
        // Not scoped to a repository: statuses are stored by commit across the instance. An
        // unknown commit simply has none.
        let now = inner.clock.now();
        let repos = inner
            .scenario
            .repos
            .iter()
            .enumerate()
            .filter(|(_, r)| r.source == SimSource::DataCenter && r.exists_at(now));
        let mut views = statuses::posted(&inner.origin, repos, &commit, now);
        views.truncate(MAX_STATUSES);
        if !newest_first {
            views.reverse();
        }
        Ok::<_, DcError>(paging.page(views, |v| status_json(&inner.clock, &v)))
    })
    .await
}

/// Any other path under `/dc/rest`: still counted and checked before the 404, as upstream.
async fn unknown(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    serve(&inner, &headers, Api::DataCenter, || {
        Err::<Value, _>(DcError::no_resource())
    })
    .await
}

/// A branch as `RestBranch` spells it; with `details`, the tip commit's metadata as the
/// branch plugin adds it.
fn branch_json(clock: &Clock, tip: &SimBuild, details: bool) -> Value {
    let mut branch = json!({
        "id": format!("refs/heads/{}", tip.branch),
        "displayId": tip.branch,
        "type": "BRANCH",
        "latestCommit": tip.commit,
        "latestChangeset": tip.commit,
        "isDefault": tip.branch == DEFAULT_BRANCH,
    });
    if details {
        // A person Data Center knows (RestApplicationUser): a linked author.
        let person = json!({
            "name": nickname(&tip.author),
            "emailAddress": email(&tip.author),
            "displayName": tip.author,
            "slug": nickname(&tip.author),
            "type": "NORMAL",
        });
        let at = clock.epoch_millis(tip.pushed_at);
        branch["metadata"] = json!({
            "com.atlassian.bitbucket.server.bitbucket-branch:latest-commit-metadata": {
                "id": tip.commit,
                "displayId": tip.commit.get(..11).unwrap_or(&tip.commit),
                "author": person,
                "authorTimestamp": at,
                "committer": person,
                "committerTimestamp": at,
                "message": tip.message,
                "parents": [],
            },
        });
    }
    branch
}

/// A tag as `RestTag` spells it: a lightweight tag, so its `hash` is the commit's.
fn tag_json(name: &str, build: &SimBuild) -> Value {
    json!({
        "id": format!("refs/tags/{name}"),
        "displayId": name,
        "type": "TAG",
        "latestCommit": build.commit,
        "latestChangeset": build.commit,
        "hash": build.commit,
    })
}

/// A build status as `RestBuildStatus` spells it (sample 07); `duration` once finished, `ref`
/// the branch or tag it was built for.
fn status_json(clock: &Clock, status: &StatusView) -> Value {
    let build = status.build;
    let mut value = json!({
        "state": if status.state == "STOPPED" { "CANCELLED" } else { status.state },
        "key": status.key,
        "name": status.name,
        "url": status.url,
        "description": status.description,
        "buildNumber": status.build_number.to_string(),
        "createdDate": clock.epoch_millis(build.created_at),
        "updatedDate": clock.epoch_millis(status.updated_at),
    });
    match &build.target {
        SimTarget::Branch => value["ref"] = json!(format!("refs/heads/{}", build.branch)),
        SimTarget::Tag(name) => value["ref"] = json!(format!("refs/tags/{name}")),
        // Data Center runs no pipelines, so no status is for a bare commit; none says a ref.
        SimTarget::Commit { .. } => {}
    }
    if let Some(ms) = status.duration_ms {
        value["duration"] = json!(ms);
    }
    value
}

#[cfg(test)]
mod tests {
    use crate::testing::{Auth, TOKEN, get, start, wait_until};
    use crate::{
        Scenario, SimBuild, SimCredential, SimCredentialKind, SimOptions, SimRepo, SimSource,
        SimState, Simulator,
    };
    use serde_json::Value;

    const DC_TOKEN: &str = "dc-token";

    fn options(speed: f64) -> SimOptions {
        let mut options = SimOptions {
            speed,
            ..SimOptions::default()
        };
        options.bitbucket_credentials.push(SimCredential {
            name: "dc".to_owned(),
            kind: SimCredentialKind::DataCenterToken {
                token: DC_TOKEN.to_owned(),
            },
        });
        options
    }

    fn platform(builds: Vec<SimBuild>) -> Scenario {
        Scenario {
            repos: vec![SimRepo {
                workspace: "PLAT".to_owned(),
                slug: "platform".to_owned(),
                source: SimSource::DataCenter,
                builds,
                ..SimRepo::default()
            }],
        }
    }

    async fn dc_get(sim: &Simulator, path_and_query: &str) -> (u16, Value) {
        let url = format!("{}/rest{path_and_query}", sim.datacenter_url());
        let answer = get(&url, Auth::Bearer(DC_TOKEN)).await;
        (answer.status, answer.json())
    }

    fn field<'a>(page: &'a Value, name: &str) -> Vec<&'a str> {
        page["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|v| v[name].as_str())
            .collect()
    }

    #[tokio::test]
    async fn branches_page_by_modification() {
        let push = |branch: &str, n: u64, at: f64| {
            SimBuild::status("PLAT-BUILD", branch, format!("{n:040x}"), at, at, [])
                .with_author("Hannah Schulz")
                .with_message(format!("Change {n}"))
        };
        let scenario = platform(vec![
            push("main", 1, 10.0),
            push("release/1", 2, 30.0),
            push("feature/x", 3, 20.0),
        ]);
        let sim = start(scenario, options(1000.0)).await;
        wait_until(&sim, 30.0).await;
        let branches = "/api/latest/projects/PLAT/repos/platform/branches";

        let (status, first) =
            dc_get(&sim, &format!("{branches}?orderBy=MODIFICATION&limit=2")).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(field(&first, "displayId"), ["release/1", "feature/x"]);
        assert_eq!(
            (&first["size"], &first["limit"], &first["start"]),
            (&Value::from(2), &Value::from(2), &Value::from(0))
        );
        assert_eq!(first["isLastPage"], false);
        assert_eq!(first["nextPageStart"], 2);
        let (_, last) = dc_get(
            &sim,
            &format!("{branches}?orderBy=MODIFICATION&details=true&limit=2&start=2"),
        )
        .await;
        assert_eq!(field(&last, "displayId"), ["main"]);
        assert_eq!(last["isLastPage"], true);
        assert!(last.get("nextPageStart").is_none());
        let main = &last["values"][0];
        assert_eq!(main["id"], "refs/heads/main");
        assert_eq!(main["type"], "BRANCH");
        assert_eq!(main["latestCommit"], format!("{:040x}", 1));
        assert_eq!(main["latestChangeset"], main["latestCommit"]);
        assert_eq!(main["isDefault"], true);
        let metadata = &main["metadata"]["com.atlassian.bitbucket.server.bitbucket-branch:latest-commit-metadata"];
        assert_eq!(metadata["message"], "Change 1");
        assert_eq!(metadata["author"]["displayName"], "Hannah Schulz");
        assert_eq!(metadata["authorTimestamp"], sim.epoch_ms() + 10); // simulated 10 s at speed 1000

        let (_, alphabetical) = dc_get(&sim, &format!("{branches}?filterText=E")).await;
        assert_eq!(
            field(&alphabetical, "displayId"),
            ["feature/x", "release/1"]
        );
        assert!(alphabetical["values"][0].get("metadata").is_none());
        let (status, _) = dc_get(&sim, &format!("{branches}?orderBy=SIZE")).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn build_statuses_page_newest_first() {
        use SimState::{Failed, Running, Stopped, Successful};
        let commit = "cd".repeat(20);
        let status = |key: &str, created_at: f64, timeline: &[(f64, SimState)]| {
            SimBuild::status(key, "release/3.1", &commit, 0.0, created_at, timeline)
        };
        let scenario = platform(vec![
            status("A", 1.0, &[(2.0, Running), (12.0, Successful)]).with_number(41),
            status("B", 3.0, &[(4.0, Stopped)]),
            status("C", 5.0, &[(8.0, Failed), (9.0, Running)]),
            status("D", 1.0e6, &[]),
        ]);
        let sim = start(scenario, options(1000.0)).await;
        wait_until(&sim, 13.0).await;
        let url = format!("/build-status/latest/commits/{commit}");

        let (status, first) = dc_get(&sim, &format!("{url}?limit=2")).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(field(&first, "key"), ["A", "C"]);
        assert_eq!(
            (&first["isLastPage"], &first["nextPageStart"]),
            (&Value::from(false), &Value::from(2))
        );
        let a = &first["values"][0];
        assert_eq!(a["state"], "SUCCESSFUL");
        assert_eq!(a["buildNumber"], "41");
        assert_eq!(a["name"], "A #41");
        assert_eq!(a["duration"], 11_000);
        // Simulated seconds 1 and 12 at speed 1000 fall 1 ms and 12 ms into the real run.
        assert_eq!(a["createdDate"], sim.epoch_ms() + 1);
        assert_eq!(a["updatedDate"], sim.epoch_ms() + 12);
        assert_eq!(a["ref"], "refs/heads/release/3.1");
        let c = &first["values"][1];
        assert_eq!(
            (c["state"].as_str(), c["buildNumber"].as_str()),
            (Some("INPROGRESS"), Some("2"))
        );
        assert!(c.get("duration").is_none());

        let (_, last) = dc_get(&sim, &format!("{url}?limit=2&start=2")).await;
        assert_eq!(field(&last, "key"), ["B"]);
        assert_eq!(last["values"][0]["state"], "CANCELLED");
        assert_eq!(last["isLastPage"], true);
        assert!(last.get("nextPageStart").is_none());

        let (_, oldest) = dc_get(&sim, &format!("{url}?orderBy=oldest")).await;
        assert_eq!(field(&oldest, "key"), ["B", "C", "A"]);
        let (status, none) = dc_get(
            &sim,
            &format!("/build-status/1.0/commits/{}", "0".repeat(40)),
        )
        .await;
        assert_eq!((status, none["size"].as_u64()), (200, Some(0)));
    }

    #[tokio::test]
    async fn tags_page_and_statuses_name_their_ref() {
        use SimState::{Running, Successful};
        let commit = |n: u64| format!("{n:040x}");
        let scenario = platform(vec![
            SimBuild::status(
                "PLAT-BUILD",
                "main",
                commit(1),
                10.0,
                11.0,
                [(12.0, Running)],
            ),
            SimBuild::status(
                "PLAT-RELEASE",
                "main",
                commit(1),
                20.0,
                21.0,
                [(22.0, Successful)],
            )
            .on_tag("v3.1.0"),
            SimBuild::status("PLAT-RELEASE", "main", commit(2), 15.0, 16.0, []).on_tag("v3.0.0"),
            SimBuild::status("PLAT-RELEASE", "main", commit(3), 1.0e6, 1.0e6, []).on_tag("v4.0.0"),
        ]);
        let sim = start(scenario, options(1000.0)).await;
        wait_until(&sim, 22.0).await;
        let tags = "/api/latest/projects/PLAT/repos/platform/tags";

        let (status, page) = dc_get(&sim, tags).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(field(&page, "displayId"), ["v3.0.0", "v3.1.0"]);
        let (_, newest) = dc_get(&sim, &format!("{tags}?orderBy=MODIFICATION&limit=1")).await;
        assert_eq!(field(&newest, "displayId"), ["v3.1.0"]);
        assert_eq!(newest["isLastPage"], false);
        assert_eq!(newest["nextPageStart"], 1);
        let tag = &newest["values"][0];
        assert_eq!(tag["id"], "refs/tags/v3.1.0");
        assert_eq!(tag["type"], "TAG");
        for name in ["latestCommit", "latestChangeset", "hash"] {
            assert_eq!(tag[name], commit(1), "{name}");
        }
        let (_, filtered) = dc_get(&sim, &format!("{tags}?filterText=.1")).await;
        assert_eq!(field(&filtered, "displayId"), ["v3.1.0"]);
        let (status, _) = dc_get(&sim, &format!("{tags}?orderBy=NEWEST")).await;
        assert_eq!(status, 400);

        // Tags move no branch.
        let (_, branches) = dc_get(&sim, "/api/latest/projects/PLAT/repos/platform/branches").await;
        assert_eq!(field(&branches, "latestCommit"), [commit(1)]);
        let (_, statuses) =
            dc_get(&sim, &format!("/build-status/latest/commits/{}", commit(1))).await;
        assert_eq!(field(&statuses, "key"), ["PLAT-RELEASE", "PLAT-BUILD"]);
        assert_eq!(
            field(&statuses, "ref"),
            ["refs/tags/v3.1.0", "refs/heads/main"]
        );
    }

    #[tokio::test]
    async fn renamed_and_deleted_repositories_answer_as_they_stand() {
        let commit = "ef".repeat(20);
        let status = SimBuild::status("PLAT-BUILD", "main", &commit, 0.0, 0.0, []);
        let mut scenario = platform(vec![status.clone()]);
        scenario.repos[0].renamed = Some((0.0, "core".to_owned()));
        let mut tools = scenario.repos[0].clone();
        tools.slug = "tools".to_owned();
        tools.renamed = None;
        tools.deleted_at = Some(0.0);
        scenario.repos.push(tools);
        let sim = start(scenario, options(1.0)).await;
        let branches = |repo: &str| format!("/api/latest/projects/PLAT/repos/{repo}/branches");
        assert_eq!(dc_get(&sim, &branches("core")).await.0, 200);
        for gone in ["platform", "tools"] {
            let (status, body) = dc_get(&sim, &branches(gone)).await;
            assert_eq!(status, 404, "{gone}");
            assert_eq!(
                body["errors"][0]["message"],
                format!("Repository PLAT/{gone} does not exist.")
            );
        }
        // The commit's one status is the renamed repository's; the deleted one's went with it.
        let (_, statuses) = dc_get(&sim, &format!("/build-status/latest/commits/{commit}")).await;
        assert_eq!(statuses["size"], 1);
    }

    #[tokio::test]
    async fn refuses_cloud_credentials_and_unknown_repositories() {
        let sim = start(platform(vec![]), options(1.0)).await;
        let branches = |project: &str, repo: &str| {
            format!(
                "{}/rest/api/latest/projects/{project}/repos/{repo}/branches",
                sim.datacenter_url()
            )
        };
        let answer = get(&branches("PLAT", "platform"), Auth::Bearer(TOKEN)).await;
        assert_eq!(answer.status, 401);
        let error = &answer.json()["errors"][0];
        assert!(error["context"].is_null());
        assert_eq!(
            error["exceptionName"],
            "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException"
        );
        assert_eq!(
            get(&branches("PLAT", "platform"), Auth::Nothing)
                .await
                .status,
            401
        );
        let answer = get(&branches("PLAT", "platform"), Auth::Bearer(DC_TOKEN)).await;
        assert_eq!(
            (answer.status, answer.header("x-ratelimit-limit")),
            (200, None)
        );

        let answer = get(&branches("NOPE", "platform"), Auth::Bearer(DC_TOKEN)).await;
        assert_eq!(answer.status, 404);
        assert_eq!(
            answer.json()["errors"][0]["exceptionName"],
            "com.atlassian.bitbucket.project.NoSuchProjectException"
        );
        let answer = get(&branches("plat", "nope"), Auth::Bearer(DC_TOKEN)).await;
        assert_eq!(answer.status, 404);
        assert_eq!(
            answer.json()["errors"][0]["message"],
            "Repository plat/nope does not exist."
        );
        let (status, _) = dc_get(&sim, "/api/2.0/projects/PLAT/repos/platform/branches").await;
        assert_eq!(status, 404);
        // The instance lives under `/dc`, apart from Cloud's web URL: nothing answers (or is
        // counted) at the port's own `/rest`.
        assert_eq!(
            sim.datacenter_url().as_str(),
            format!("{}dc", sim.bitbucket_web_url())
        );
        let unprefixed = format!(
            "{}rest/api/latest/projects/PLAT/repos/platform/branches",
            sim.bitbucket_web_url()
        );
        let answer = get(&unprefixed, Auth::Bearer(DC_TOKEN)).await;
        assert_eq!((answer.status, answer.text.as_str()), (404, ""));
        // A Data Center repository is not on the Cloud API.
        let cloud = format!(
            "{}/repositories/PLAT/platform/refs/branches",
            sim.bitbucket_api_url()
        );
        assert_eq!(get(&cloud, Auth::Bearer(TOKEN)).await.status, 404);
        assert_eq!(sim.bitbucket_requests_by_credential()["dc"], 4);
    }

    #[tokio::test]
    async fn rate_limited_answers_always_say_when_to_retry() {
        let options = SimOptions {
            bitbucket_limit_per_hour: 1,
            ..options(10.0)
        };
        let sim = start(platform(vec![]), options).await;
        let (status, _) = dc_get(&sim, "/api/latest/projects/PLAT/repos/platform/branches").await;
        assert_eq!(status, 200);
        let url = format!(
            "{}/rest/api/latest/projects/PLAT/repos/platform/branches",
            sim.datacenter_url()
        );
        let answer = get(&url, Auth::Bearer(DC_TOKEN)).await;
        assert_eq!(answer.status, 429);
        assert_eq!(answer.header("retry-after"), Some("360"));
        assert_eq!(
            answer.text,
            "Rate limit for this resource has been exceeded"
        );
    }
}
