//! The Bitbucket Cloud side of the simulator: the read-only endpoints a poller uses, answering
//! from the scenario as it stands at the current simulated second, in the wire shape of the
//! real service (Bitbucket Cloud REST API reference: the "Pipelines", "Refs" and "Commit
//! statuses" groups at developer.atlassian.com/cloud/bitbucket/rest):
//!
//! - `GET /2.0/repositories/{ws}`, a workspace's repositories with their `updated_on`, which
//!   only pushes (and renames) move;
//! - `GET /2.0/repositories/{ws}/{slug}/pipelines` and `.../pipelines/{uuid}` (repositories
//!   running Pipelines), for branch pushes, tag pushes and custom pipelines on a commit;
//! - `GET .../pipelines_config/schedules` and `.../schedules/{uuid}`, the repository's
//!   Pipelines schedules;
//! - `GET .../refs`, `.../refs/branches` and `.../refs/tags`, branch tips and tags with their
//!   commits (every Cloud repository);
//! - `GET .../commit/{hash}/statuses`, the statuses an outside CI posted and those Pipelines
//!   posts for its own runs.
//!
//! Every request passes [`serve`]'s gate first: credentials, rate limit, faults. Every answer
//! is cut down as its `fields` parameter asks.

use super::api::{Api, cloud_error};
use super::bbql::Filter;
use super::fields::Fields;
use super::ids::{email, encode_braces, fnv1a, nickname, splitmix, uuid_from};
use super::limits::serve;
use super::paging::{Query, window};
use super::statuses::{self, StatusView};
use super::{
    Inner, SimBuild, SimRepo, SimSchedule, SimSource, SimState, SimTarget, SimTrigger,
    repo_created_at,
};
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::sync::Arc;

/// Page size when the client names none (as Bitbucket).
const DEFAULT_PAGELEN: usize = 10;
/// Largest page size a client may ask for; above it Bitbucket answers 400.
const MAX_PAGELEN: usize = 100;

/// The Bitbucket Cloud routes, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/2.0/repositories/{workspace}", get(repositories))
        .route("/2.0/repositories/{workspace}/", get(repositories))
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/pipelines",
            get(list),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/pipelines/",
            get(list),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/pipelines/{pipeline_uuid}",
            get(get_one),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/pipelines_config/schedules",
            get(schedules),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/pipelines_config/schedules/",
            get(schedules),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/pipelines_config/schedules/{schedule_uuid}",
            get(schedule),
        )
        .route("/2.0/repositories/{workspace}/{repo_slug}/refs", get(refs))
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/refs/branches",
            get(branches),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/refs/tags",
            get(tags),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses",
            get(commit_statuses),
        )
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}/commits/{revision}",
            get(commits),
        )
        .route("/2.0/{*rest}", any(unknown))
}

/// A Bitbucket error answer: status plus `{"type":"error","error":{"message","detail"?}}`.
struct BbError {
    status: StatusCode,
    message: String,
    detail: Option<String>,
}

impl BbError {
    fn new(status: StatusCode, message: impl Into<String>) -> BbError {
        BbError {
            status,
            message: message.into(),
            detail: None,
        }
    }

    fn bad_request(detail: String) -> BbError {
        BbError {
            status: StatusCode::BAD_REQUEST,
            message: "Bad request".to_owned(),
            detail: Some(detail),
        }
    }

    fn repo_not_found() -> BbError {
        BbError::new(StatusCode::NOT_FOUND, "Repository not found")
    }

    fn workspace_not_found(workspace: &str) -> BbError {
        BbError::new(
            StatusCode::NOT_FOUND,
            format!("No workspace with identifier '{workspace}'."),
        )
    }
}

impl IntoResponse for BbError {
    fn into_response(self) -> Response {
        cloud_error(self.status, &self.message, self.detail.as_deref())
    }
}

/// A Cloud repository as it stands at `now`, and its position in the scenario (which seeds its
/// identifiers), named by its slug then or by its `{uuid}` (which, as Bitbucket says, survives
/// renames). A deleted repository, a slug renamed away and Data Center repositories are not
/// found here.
fn find_repo<'a>(
    inner: &'a Inner,
    workspace: &str,
    slug: &str,
    now: f64,
) -> Result<(usize, &'a SimRepo), BbError> {
    // Bitbucket matches workspace and slug case-insensitively.
    let by_uuid = slug.starts_with('{');
    inner
        .scenario
        .repos
        .iter()
        .enumerate()
        .find(|&(index, r)| {
            r.source != SimSource::DataCenter
                && r.exists_at(now)
                && r.workspace.eq_ignore_ascii_case(workspace)
                && if by_uuid {
                    repository_uuid(index).eq_ignore_ascii_case(slug)
                } else {
                    r.slug_at(now).eq_ignore_ascii_case(slug)
                }
        })
        .ok_or_else(BbError::repo_not_found)
}

/// Which page of a Cloud list a request asks for.
struct Paging {
    page: usize,
    pagelen: usize,
}

impl Paging {
    /// `page` (from 1) and `pagelen` (1 to 100, default 10) of the query.
    fn of(query: &Query) -> Result<Paging, BbError> {
        let page = query.number("page", 1, 1).map_err(BbError::bad_request)?;
        let pagelen = query
            .number("pagelen", DEFAULT_PAGELEN, 1)
            .map_err(BbError::bad_request)?;
        if pagelen > MAX_PAGELEN {
            return Err(BbError::bad_request(format!(
                "'pagelen' must be at most {MAX_PAGELEN}, not {pagelen}"
            )));
        }
        Ok(Paging { page, pagelen })
    }

    /// The page of `items` (filtered and ordered) as Cloud spells it: `size` counts them all,
    /// and `next`, absent on the last page, is the same request for the next page.
    fn page<T>(
        &self,
        inner: &Inner,
        uri: &Uri,
        query: &Query,
        items: Vec<T>,
        render: impl FnMut(T) -> Value,
    ) -> Value {
        let size = items.len();
        let start = (self.page - 1).saturating_mul(self.pagelen);
        let (shown, more) = window(items, start, self.pagelen);
        let values: Vec<Value> = shown.into_iter().map(render).collect();
        let mut body = json!({
            "page": self.page,
            "pagelen": self.pagelen,
            "size": size,
            "values": values,
        });
        if more {
            let next = query.with("page", &(self.page + 1).to_string());
            body["next"] = json!(format!("{}{}?{next}", inner.origin, uri.path()));
        }
        body
    }
}

/// The `sort` parameter as one of the `allowed` attributes' meanings, `default` when absent.
fn sort<K: Copy>(query: &Query, allowed: &[(&str, K)], default: K) -> Result<K, BbError> {
    let Some(given) = query.last("sort") else {
        return Ok(default);
    };
    allowed
        .iter()
        .find(|(name, _)| *name == given)
        .map(|&(_, meaning)| meaning)
        .ok_or_else(|| BbError::bad_request(format!("Invalid sort attribute provided '{given}'")))
}

/// The BBQL `q` filter over `fields`, if given; 400 naming the problem if it cannot be parsed.
fn filter(query: &Query, fields: &[&str]) -> Result<Option<Filter>, BbError> {
    query
        .last("q")
        .map(|q| Filter::parse(q, fields))
        .transpose()
        .map_err(|problem| BbError::new(StatusCode::BAD_REQUEST, problem))
}

/// The field pipelines leave out unless `fields` names it
/// (`fields=+values.target.commit.message`).
const COMMIT_MESSAGE: &str = "target.commit.message";

/// The `fields` path that adds a pipeline commit's author, which answers leave out by default.
const COMMIT_AUTHOR: &str = "target.commit.author";

/// Answers a Cloud request through the gate ([`serve`]) with `body`'s answer cut down as the
/// request's `fields` ask (which `body` reads for what it leaves out unless asked).
async fn answer(
    inner: &Inner,
    headers: &HeaderMap,
    uri: &Uri,
    body: impl FnOnce(&Fields) -> Result<Value, BbError>,
) -> Response {
    let fields = Fields::of(&Query::of(uri));
    serve(inner, headers, Api::Cloud, || {
        body(&fields).map(|value| fields.apply(value))
    })
    .await
}

/// `GET /2.0/repositories/{workspace}`.
async fn repositories(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path(workspace) = path.map_err(|_| BbError::workspace_not_found(""))?;
        repositories_page(&inner, &workspace, &uri)
    })
    .await
}

/// A repository as the workspace listing sees it now.
struct Listed<'a> {
    /// Its position in the scenario, which seeds its identifiers and dates its creation.
    index: usize,
    /// The scenario's entry for it.
    repo: &'a SimRepo,
    /// Its `updated_on` now.
    updated_at: f64,
}

/// One page of a workspace's repositories as they stand now (deleted ones gone, renamed ones
/// under their new slug), in creation order unless `sort` says `updated_on` or `created_on`
/// (`-` reverses; ties stay in creation order). `q` filters on `updated_on` and `created_on`
/// (as instants), `name`, `slug`, `full_name` and `uuid`. A workspace that no Cloud repository
/// of the scenario names is 404; one whose repositories are all deleted lists none.
fn repositories_page(inner: &Inner, workspace: &str, uri: &Uri) -> Result<Value, BbError> {
    /// What a listing is ordered by.
    #[derive(Clone, Copy, PartialEq)]
    enum By {
        Creation,
        Update,
    }
    const DATED: [&str; 2] = ["updated_on", "created_on"];
    let query = Query::of(uri);
    let paging = Paging::of(&query)?;
    let (by, descending) = sort(
        &query,
        &[
            ("created_on", (By::Creation, false)),
            ("-created_on", (By::Creation, true)),
            ("updated_on", (By::Update, false)),
            ("-updated_on", (By::Update, true)),
        ],
        (By::Creation, false),
    )?;
    let filter = filter(
        &query,
        &[&DATED[..], &["name", "slug", "full_name", "uuid"]].concat(),
    )?;
    if let Some(filter) = &filter {
        filter
            .check_dates(&DATED)
            .map_err(|problem| BbError::new(StatusCode::BAD_REQUEST, problem))?;
    }
    let in_workspace: Vec<(usize, &SimRepo)> = inner
        .scenario
        .repos
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.source != SimSource::DataCenter && r.workspace.eq_ignore_ascii_case(workspace)
        })
        .collect();
    if in_workspace.is_empty() {
        return Err(BbError::workspace_not_found(workspace));
    }
    let now = inner.clock.now();
    // Scenario order is creation order.
    let mut listed: Vec<Listed> = in_workspace
        .into_iter()
        .filter(|(_, repo)| repo.exists_at(now))
        .map(|(index, repo)| Listed {
            index,
            repo,
            updated_at: repo.updated_at(index, now),
        })
        .collect();
    if let Some(filter) = filter {
        listed.retain(|l| {
            filter.matches(&|field: &str| match field {
                "updated_on" => inner.clock.rfc3339(l.updated_at),
                "created_on" => inner.clock.rfc3339(repo_created_at(l.index)),
                "full_name" => full_name(inner, l.repo),
                "uuid" => repository_uuid(l.index),
                _ => l.repo.slug_at(now).to_owned(),
            })
        });
    }
    if by == By::Update {
        listed.sort_by(|a, b| a.updated_at.total_cmp(&b.updated_at));
    }
    if descending {
        listed.reverse();
    }
    Ok(paging.page(inner, uri, &query, listed, |l| {
        listed_repository_json(inner, &l)
    }))
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/pipelines`.
async fn list(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |fields| {
        let Path((workspace, slug)) = path.map_err(|_| BbError::repo_not_found())?;
        list_page(&inner, &workspace, &slug, &uri, fields)
    })
    .await
}

/// One page of a repository's visible pipelines, per the query's paging, sort and filters. A
/// statuses repository runs no pipelines: its pages are empty. `target.branch` keeps branch
/// builds of that branch, `target.ref_name` builds of that branch or tag, `trigger_type` (`PUSH`,
/// `SCHEDULED`, `MANUAL`, `PARENT_STEP`, which none is) builds so started.
fn list_page(
    inner: &Inner,
    workspace: &str,
    slug: &str,
    uri: &Uri,
    fields: &Fields,
) -> Result<Value, BbError> {
    let query = Query::of(uri);
    let paging = Paging::of(&query)?;
    // Without a sort Bitbucket lists oldest first; pipelines run once here, so run creation
    // date orders like creation date.
    let newest_first = sort(
        &query,
        &[
            ("created_on", false),
            ("run_creation_date", false),
            ("-created_on", true),
            ("-run_creation_date", true),
        ],
        false,
    )?;
    let now = inner.clock.now();
    let (index, repo) = find_repo(inner, workspace, slug, now)?;

    // The typed filters the spec documents that a poller might use.
    let branch = query.last("target.branch");
    let ref_name = query.last("target.ref_name");
    let hash = query.last("target.commit.hash");
    let triggers = [
        ("PUSH", Some(SimTrigger::Push)),
        ("SCHEDULED", Some(SimTrigger::Schedule)),
        ("MANUAL", Some(SimTrigger::Manual)),
        ("PARENT_STEP", None),
    ];
    let trigger = match query.last("trigger_type") {
        None => None,
        Some(given) => Some(
            triggers
                .iter()
                .find(|(name, _)| *name == given)
                .map(|&(_, trigger)| trigger)
                .ok_or_else(|| BbError::bad_request(format!("Invalid trigger_type '{given}'")))?,
        ),
    };
    let mut visible: Vec<&SimBuild> = repo
        .builds
        .iter()
        .filter(|b| repo.runs_pipeline(b) && b.created_at <= now)
        .filter(|b| branch.is_none_or(|name| b.target == SimTarget::Branch && b.branch == name))
        .filter(|b| ref_name.is_none_or(|name| b.ref_name() == Some(name)))
        .filter(|b| hash.is_none_or(|h| b.commit == h))
        .filter(|b| trigger.is_none_or(|wanted| wanted == Some(b.trigger)))
        .collect();
    visible.sort_by(|a, b| {
        a.created_at
            .total_cmp(&b.created_at)
            .then(a.number.cmp(&b.number))
    });
    if newest_first {
        visible.reverse();
    }

    let extras = CommitExtras::of(fields);
    Ok(paging.page(inner, uri, &query, visible, |b| {
        pipeline_json(inner, index, repo, b, now, extras)
    }))
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/pipelines/{pipeline_uuid}`.
async fn get_one(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |fields| {
        let Path((workspace, slug, uuid)) = path.map_err(|_| BbError::repo_not_found())?;
        let now = inner.clock.now();
        let (index, repo) = find_repo(&inner, &workspace, &slug, now)?;
        let build = repo
            .builds
            .iter()
            .filter(|b| repo.runs_pipeline(b))
            .find(|b| {
                b.created_at <= now && pipeline_uuid(index, b.number).eq_ignore_ascii_case(&uuid)
            })
            .ok_or(BbError::new(StatusCode::NOT_FOUND, "Pipeline not found"))?;
        let extras = CommitExtras::of(fields);
        Ok(pipeline_json(&inner, index, repo, build, now, extras))
    })
    .await
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/pipelines_config/schedules`: the
/// repository's schedules made by now, in the order they were made.
async fn schedules(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path((workspace, slug)) = path.map_err(|_| BbError::repo_not_found())?;
        let query = Query::of(&uri);
        let paging = Paging::of(&query)?;
        let now = inner.clock.now();
        let (index, repo) = find_repo(&inner, &workspace, &slug, now)?;
        let mut made: Vec<(usize, &SimSchedule)> = repo
            .schedules
            .iter()
            .enumerate()
            .filter(|(_, schedule)| schedule.created_at <= now)
            .collect();
        made.sort_by(|a, b| a.1.created_at.total_cmp(&b.1.created_at));
        Ok(
            paging.page(&inner, &uri, &query, made, |(number, schedule)| {
                schedule_json(&inner, index, number, schedule)
            }),
        )
    })
    .await
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/pipelines_config/schedules/{schedule_uuid}`.
async fn schedule(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path((workspace, slug, uuid)) = path.map_err(|_| BbError::repo_not_found())?;
        let now = inner.clock.now();
        let (index, repo) = find_repo(&inner, &workspace, &slug, now)?;
        let (number, schedule) = repo
            .schedules
            .iter()
            .enumerate()
            .find(|&(number, schedule)| {
                schedule.created_at <= now
                    && schedule_uuid(index, number).eq_ignore_ascii_case(&uuid)
            })
            .ok_or(BbError::new(StatusCode::NOT_FOUND, "Schedule not found"))?;
        Ok(schedule_json(&inner, index, number, schedule))
    })
    .await
}

/// Which refs a listing shows.
#[derive(Clone, Copy)]
enum Refs {
    /// `GET .../refs`: branches and tags.
    All,
    /// `GET .../refs/branches`.
    Branches,
    /// `GET .../refs/tags`.
    Tags,
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/refs`.
async fn refs(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path((workspace, slug)) = path.map_err(|_| BbError::repo_not_found())?;
        refs_page(&inner, &workspace, &slug, &uri, Refs::All)
    })
    .await
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/refs/branches`.
async fn branches(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path((workspace, slug)) = path.map_err(|_| BbError::repo_not_found())?;
        refs_page(&inner, &workspace, &slug, &uri, Refs::Branches)
    })
    .await
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/refs/tags`.
async fn tags(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path((workspace, slug)) = path.map_err(|_| BbError::repo_not_found())?;
        refs_page(&inner, &workspace, &slug, &uri, Refs::Tags)
    })
    .await
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/commits/{revision}`: the commits of a
/// branch, newest first, paged; `exclude` (a commit) leaves out it and what came before it.
/// Only branch names are served as revisions, and one `exclude`: what bbzoom asks.
async fn commits(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path((workspace, slug, branch)) = path.map_err(|_| BbError::repo_not_found())?;
        let query = Query::of(&uri);
        let paging = Paging::of(&query)?;
        let now = inner.clock.now();
        let (index, repo) = find_repo(&inner, &workspace, &slug, now)?;
        let exclude = query.last("exclude");
        let commits = repo.branch_commits(&branch, now, exclude);
        if commits.is_empty() && !repo.branch_tips(now).iter().any(|t| t.branch == branch) {
            return Err(BbError::new(
                StatusCode::NOT_FOUND,
                format!("Revision {branch} not found"),
            ));
        }
        Ok(paging.page(&inner, &uri, &query, commits, |build| {
            ref_target_json(&inner, index, repo, build)
        }))
    })
    .await
}

/// A branch tip or a tag, as the ref listings see it.
enum Ref<'a> {
    /// A branch, named by its tip's `branch`.
    Branch(&'a SimBuild),
    /// A tag and the build that pushed it.
    Tag(&'a str, &'a SimBuild),
}

impl Ref<'_> {
    /// The branch's or the tag's name.
    fn name(&self) -> &str {
        match self {
            Ref::Branch(tip) => &tip.branch,
            Ref::Tag(name, _) => name,
        }
    }

    /// When the ref last moved: its tip's push, or the tag's.
    fn pushed_at(&self) -> f64 {
        match self {
            Ref::Branch(build) | Ref::Tag(_, build) => build.pushed_at,
        }
    }
}

/// One page of a repository's refs as they stand now. Unsorted they come as `git show-ref`
/// lists them: by name, branches before tags. `sort=name` sorts naturally (numbers inside
/// names by value: `v1.9` before `v1.10`), `sort=target.date` by when the ref moved (a tag:
/// when it was pushed); `-` reverses. `q` filters on `name`.
fn refs_page(
    inner: &Inner,
    workspace: &str,
    slug: &str,
    uri: &Uri,
    which: Refs,
) -> Result<Value, BbError> {
    /// How a listing is ordered.
    #[derive(Clone, Copy)]
    enum By {
        Git,
        Name,
        Date,
    }
    let query = Query::of(uri);
    let paging = Paging::of(&query)?;
    let (by, descending) = sort(
        &query,
        &[
            ("name", (By::Name, false)),
            ("-name", (By::Name, true)),
            ("target.date", (By::Date, false)),
            ("-target.date", (By::Date, true)),
        ],
        (By::Git, false),
    )?;
    let filter = filter(&query, &["name"])?;
    let now = inner.clock.now();
    let (index, repo) = find_repo(inner, workspace, slug, now)?;
    let mut refs: Vec<Ref> = Vec::new();
    if matches!(which, Refs::All | Refs::Branches) {
        refs.extend(repo.branch_tips(now).into_iter().map(Ref::Branch));
    }
    if matches!(which, Refs::All | Refs::Tags) {
        refs.extend(
            repo.tag_tips(now)
                .into_iter()
                .map(|(name, build)| Ref::Tag(name, build)),
        );
    }
    if let Some(filter) = filter {
        refs.retain(|r| filter.matches(&|_: &str| r.name().to_owned()));
    }
    match by {
        // Both lists come sorted by name already, branches first.
        By::Git => {}
        By::Name => refs.sort_by(|a, b| natural_order(a.name(), b.name())),
        By::Date => refs.sort_by(|a, b| a.pushed_at().total_cmp(&b.pushed_at())),
    }
    if descending {
        refs.reverse();
    }
    Ok(paging.page(inner, uri, &query, refs, |r| match r {
        Ref::Branch(tip) => branch_json(inner, index, repo, tip),
        Ref::Tag(name, build) => tag_json(inner, index, repo, name, build),
    }))
}

/// Bitbucket's natural order of ref names: runs of digits compare by value, the rest as text.
fn natural_order(a: &str, b: &str) -> Ordering {
    /// The name cut into runs of digits and runs of anything else.
    fn runs(name: &str) -> Vec<&str> {
        let (mut runs, mut start, mut digits) = (Vec::new(), 0, None);
        for (i, c) in name.char_indices() {
            let digit = c.is_ascii_digit();
            if digits.is_some_and(|d| d != digit) {
                runs.push(&name[start..i]);
                start = i;
            }
            digits = Some(digit);
        }
        if start < name.len() {
            runs.push(&name[start..]);
        }
        runs
    }
    /// A run of digits without its leading zeros; `None` for any other run.
    fn number(run: &str) -> Option<&str> {
        run.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| run.trim_start_matches('0'))
    }
    let (a_runs, b_runs) = (runs(a), runs(b));
    for (x, y) in a_runs.iter().zip(&b_runs) {
        let order = match (number(x), number(y)) {
            (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a_runs.len().cmp(&b_runs.len()).then_with(|| a.cmp(b))
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses`.
async fn commit_statuses(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(&inner, &headers, &uri, |_| {
        let Path((workspace, slug, commit)) = path.map_err(|_| BbError::repo_not_found())?;
        statuses_page(&inner, &workspace, &slug, &commit, &uri)
    })
    .await
}

/// One page of the statuses posted on a commit by now, most recently updated first (or
/// oldest with `sort=updated_on`), filtered by `q` on `key`, `state` or `refname`: an outside
/// CI's and, where Pipelines runs, one per pipeline run. A commit not pushed yet (on a branch
/// or a tag) is 404.
fn statuses_page(
    inner: &Inner,
    workspace: &str,
    slug: &str,
    commit: &str,
    uri: &Uri,
) -> Result<Value, BbError> {
    let query = Query::of(uri);
    let paging = Paging::of(&query)?;
    let newest_first = sort(
        &query,
        &[("-updated_on", true), ("updated_on", false)],
        true,
    )?;
    let filter = filter(&query, &["key", "state", "refname"])?;
    let now = inner.clock.now();
    let (index, repo) = find_repo(inner, workspace, slug, now)?;
    let pushed = repo
        .builds
        .iter()
        .any(|b| b.pushed_at <= now && b.commit.eq_ignore_ascii_case(commit));
    if !pushed {
        return Err(BbError::new(StatusCode::NOT_FOUND, "Commit not found"));
    }
    let mut views = statuses::posted(&inner.origin, [(index, repo)], commit, now);
    if let Some(filter) = filter {
        views.retain(|v| {
            filter.matches(&|field: &str| match field {
                "key" => v.key.clone(),
                "state" => v.state.to_owned(),
                _ => v.refname.unwrap_or_default().to_owned(),
            })
        });
    }
    if !newest_first {
        views.reverse();
    }
    Ok(paging.page(inner, uri, &query, views, |v| status_json(inner, index, &v)))
}

/// Any other path under `/2.0`: still counted and checked before the 404, as upstream.
async fn unknown(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    serve(&inner, &headers, Api::Cloud, || {
        Err::<Value, _>(BbError::new(StatusCode::NOT_FOUND, "Resource not found"))
    })
    .await
}

/// `{workspace}/{slug}` of a repository now (after a rename, the new slug).
fn full_name(inner: &Inner, repo: &SimRepo) -> String {
    format!("{}/{}", repo.workspace, repo.slug_at(inner.clock.now()))
}

/// The API and web URLs of a repository.
fn repo_urls(inner: &Inner, repo: &SimRepo) -> (String, String) {
    let (origin, full_name) = (&inner.origin, full_name(inner, repo));
    (
        format!("{origin}/2.0/repositories/{full_name}"),
        format!("{origin}/{full_name}"),
    )
}

/// The short repository object answers embed.
fn repository_json(inner: &Inner, index: usize, repo: &SimRepo) -> Value {
    let (api_repo, web_repo) = repo_urls(inner, repo);
    json!({
        "name": repo.slug_at(inner.clock.now()),
        "type": "repository",
        "full_name": full_name(inner, repo),
        "links": {
            "self": { "href": api_repo },
            "html": { "href": web_repo },
        },
        "uuid": repository_uuid(index),
    })
}

/// A repository as the workspace listing spells it (the spec's `repository`): the short object
/// plus its slug, dates, more links and what a private Git repository says of itself.
fn listed_repository_json(inner: &Inner, listed: &Listed) -> Value {
    let Listed {
        index,
        repo,
        updated_at,
    } = *listed;
    let (api_repo, web_repo) = repo_urls(inner, repo);
    let workspace = &repo.workspace;
    let mut json = repository_json(inner, index, repo);
    json["slug"] = json!(repo.slug_at(inner.clock.now()));
    json["created_on"] = json!(inner.clock.rfc3339(repo_created_at(index)));
    json["updated_on"] = json!(inner.clock.rfc3339(updated_at));
    json["links"]["commits"] = json!({ "href": format!("{api_repo}/commits") });
    json["links"]["pullrequests"] = json!({ "href": format!("{api_repo}/pullrequests") });
    json["links"]["clone"] = json!([
        { "name": "https", "href": format!("{web_repo}.git") },
    ]);
    json["scm"] = json!("git");
    json["is_private"] = json!(true);
    json["description"] = json!("");
    json["language"] = json!("");
    json["has_issues"] = json!(false);
    json["has_wiki"] = json!(false);
    json["fork_policy"] = json!("no_public_forks");
    json["mainbranch"] = json!({ "type": "branch", "name": "main" });
    json["workspace"] = json!({
        "type": "workspace",
        "slug": workspace,
        "name": workspace,
        "uuid": uuid_from(fnv1a(format!("workspace/{workspace}").as_bytes())),
    });
    json
}

/// The short commit object answers embed.
fn commit_json(inner: &Inner, repo: &SimRepo, hash: &str) -> Value {
    let (api_repo, web_repo) = repo_urls(inner, repo);
    json!({
        "type": "commit",
        "hash": hash,
        "links": {
            "self": { "href": format!("{api_repo}/commit/{hash}") },
            "html": { "href": format!("{web_repo}/commits/{hash}") },
        },
    })
}

/// The commit a ref points at, as ref listings spell their `target`: dated when the ref moved
/// there (`build`'s push).
fn ref_target_json(inner: &Inner, index: usize, repo: &SimRepo, build: &SimBuild) -> Value {
    let mut target = commit_json(inner, repo, &build.commit);
    target["date"] = json!(inner.clock.git_date(build.pushed_at));
    target["message"] = json!(build.message);
    target["author"] = author_json(&inner.origin, &build.author);
    target["parents"] = json!([]);
    target["repository"] = repository_json(inner, index, repo);
    target
}

/// An `author` object (a commit's author, a tag's tagger) for a display name.
fn author_json(origin: &str, name: &str) -> Value {
    json!({
        "type": "author",
        "raw": format!("{name} <{}>", email(name)),
        "user": user_json(origin, name),
    })
}

/// A branch as `GET .../refs/branches` spells it (sample 06), its tip at `tip`'s push.
fn branch_json(inner: &Inner, index: usize, repo: &SimRepo, tip: &SimBuild) -> Value {
    let (api_repo, web_repo) = repo_urls(inner, repo);
    let name = &tip.branch;
    json!({
        "type": "branch",
        "name": name,
        "target": ref_target_json(inner, index, repo, tip),
        "links": {
            "self": { "href": format!("{api_repo}/refs/branches/{name}") },
            "commits": { "href": format!("{api_repo}/commits/{name}") },
            "html": { "href": format!("{web_repo}/branch/{name}") },
        },
        "merge_strategies": ["merge_commit", "squash", "fast_forward"],
        "default_merge_strategy": "merge_commit",
    })
}

/// A tag as `GET .../refs/tags` spells it (the spec's `tag`): an annotated tag on `build`'s
/// commit, made by its author when `build` pushed it.
fn tag_json(inner: &Inner, index: usize, repo: &SimRepo, name: &str, build: &SimBuild) -> Value {
    let (api_repo, web_repo) = repo_urls(inner, repo);
    json!({
        "type": "tag",
        "name": name,
        "target": ref_target_json(inner, index, repo, build),
        "message": format!("Release {name}\n"),
        "date": inner.clock.git_date(build.pushed_at),
        "tagger": author_json(&inner.origin, &build.author),
        "links": {
            "self": { "href": format!("{api_repo}/refs/tags/{name}") },
            "commits": { "href": format!("{api_repo}/commits/{name}") },
            "html": { "href": format!("{web_repo}/commits/tag/{name}") },
        },
    })
}

/// A commit status as `GET .../commit/{hash}/statuses` spells it (samples 04, 05); `refname`
/// is null for a pipeline run on a bare commit.
fn status_json(inner: &Inner, index: usize, status: &StatusView) -> Value {
    let (api_repo, _) = repo_urls(inner, status.repo);
    let build = status.build;
    let (hash, key) = (&build.commit, &status.key);
    json!({
        "type": "build",
        "uuid": uuid_from(fnv1a(format!("status/{index}/{hash}/{key}").as_bytes())),
        "key": key,
        "name": status.name,
        "state": status.state,
        "url": status.url,
        "description": status.description,
        "refname": status.refname,
        "created_on": inner.clock.rfc3339(build.created_at),
        "updated_on": inner.clock.rfc3339(status.updated_at),
        "commit": commit_json(inner, status.repo, hash),
        "repository": repository_json(inner, index, status.repo),
        "links": {
            "self": { "href": format!("{api_repo}/commit/{hash}/statuses/build/{key}") },
            "commit": { "href": format!("{api_repo}/commit/{hash}") },
        },
    })
}

/// What of a pipeline's commit an answer shows beyond its hash, as `fields` asked.
#[derive(Clone, Copy)]
struct CommitExtras {
    message: bool,
    author: bool,
}

impl CommitExtras {
    fn of(fields: &Fields) -> CommitExtras {
        CommitExtras {
            message: fields.names(COMMIT_MESSAGE),
            author: fields.names(COMMIT_AUTHOR),
        }
    }
}

/// A pipeline object as `GET .../pipelines/{uuid}` spells it, at simulated second `now`.
fn pipeline_json(
    inner: &Inner,
    index: usize,
    repo: &SimRepo,
    build: &SimBuild,
    now: f64,
    extras: CommitExtras,
) -> Value {
    let (api_repo, _) = repo_urls(inner, repo);
    let uuid = pipeline_uuid(index, build.number);
    let encoded_uuid = encode_braces(&uuid);

    let state = build.state_at(now).unwrap_or(SimState::Pending);
    let completed_on = if state.is_terminal() {
        build.finished_at()
    } else {
        None
    };
    // Duration keeps growing while the pipeline runs and freezes when it completes.
    let until = completed_on.unwrap_or(now);
    let creator = user_json(&inner.origin, build.creator());
    let first_successful = state == SimState::Successful
        && !repo.builds.iter().any(|b| {
            repo.runs_pipeline(b)
                && b.number < build.number
                && b.state_at(now) == Some(SimState::Successful)
        });

    let mut commit = commit_json(inner, repo, &build.commit);
    if extras.message {
        commit["message"] = json!(build.message);
    }
    if extras.author {
        commit["author"] = author_json(&inner.origin, &build.author);
    }
    let name = trigger_name(build.trigger);
    let trigger = json!({
        "name": name,
        "type": format!("pipeline_trigger_{}", name.to_ascii_lowercase()),
    });
    let mut pipeline = json!({
        "type": "pipeline",
        "uuid": uuid,
        "repository": repository_json(inner, index, repo),
        "state": state_json(state, &creator),
        "build_number": build.number,
        "creator": creator,
        "created_on": inner.clock.rfc3339(build.created_at),
        "target": target_json(build, commit),
        "trigger": trigger,
        "run_number": 1,
        "duration_in_seconds": (until - build.created_at).max(0.0).floor() as u64,
        "build_seconds_used": build_seconds(build, until),
        "first_successful": first_successful,
        "expired": state == SimState::Expired,
        "links": {
            "self": { "href": format!("{api_repo}/pipelines/{encoded_uuid}") },
            "steps": { "href": format!("{api_repo}/pipelines/{encoded_uuid}/steps") },
        },
        "has_variables": false,
    });
    if let Some(at) = completed_on {
        pipeline["completed_on"] = json!(inner.clock.rfc3339(at));
    }
    pipeline
}

/// A schedule as the spec's `pipeline_schedule` spells it: `number` is its position among the
/// repository's, which with the repository's seeds its uuid.
fn schedule_json(inner: &Inner, index: usize, number: usize, schedule: &SimSchedule) -> Value {
    let made = inner.clock.rfc3339(schedule.created_at);
    json!({
        "type": "pipeline_schedule",
        "uuid": schedule_uuid(index, number),
        "enabled": schedule.enabled,
        "cron_pattern": schedule.cron_pattern,
        "target": {
            "type": "pipeline_ref_target",
            "ref_type": "branch",
            "ref_name": schedule.branch,
            "selector": { "type": "branches", "pattern": schedule.branch },
        },
        "created_on": made,
        "updated_on": made,
    })
}

/// A trigger's `name`, as pipelines spell it (`SCHEDULE`; the list's `trigger_type` filter
/// says `SCHEDULED`).
fn trigger_name(trigger: SimTrigger) -> &'static str {
    match trigger {
        SimTrigger::Push => "PUSH",
        SimTrigger::Schedule => "SCHEDULE",
        SimTrigger::Manual => "MANUAL",
    }
}

/// A pipeline's `target`: the branch or tag pushed, or the bare commit a custom pipeline ran
/// on, with the selector of `bitbucket-pipelines.yml` that matched.
fn target_json(build: &SimBuild, commit: Value) -> Value {
    match &build.target {
        SimTarget::Branch => json!({
            "type": "pipeline_ref_target",
            "ref_type": "branch",
            "ref_name": build.branch,
            "selector": { "type": "default" },
            "commit": commit,
        }),
        SimTarget::Tag(name) => json!({
            "type": "pipeline_ref_target",
            "ref_type": "tag",
            "ref_name": name,
            "selector": { "type": "tags", "pattern": name },
            "commit": commit,
        }),
        SimTarget::Commit { pipeline } => json!({
            "type": "pipeline_commit_target",
            "selector": { "type": "custom", "pattern": pipeline },
            "commit": commit,
        }),
    }
}

/// `state` with its `type` discriminators, as in sample 09. A STOPPED pipeline names who
/// stopped it: the simulator says its creator did.
fn state_json(state: SimState, terminator: &Value) -> Value {
    let in_progress = |stage: &str| {
        json!({
            "name": "IN_PROGRESS",
            "type": "pipeline_state_in_progress",
            "stage": {
                "name": stage,
                "type": format!("pipeline_state_in_progress_{}", stage.to_ascii_lowercase()),
            },
        })
    };
    let completed = |result: &str| {
        let mut result_json = json!({
            "name": result,
            "type": format!("pipeline_state_completed_{}", result.to_ascii_lowercase()),
        });
        match state {
            SimState::Error => {
                result_json["error"] = json!({
                    "key": "plan-service.parse.parse-error",
                    "message": "There is an error in your bitbucket-pipelines.yml: \
                                unexpected key 'sript' in step 'Build'.",
                });
            }
            SimState::Stopped => result_json["terminator"] = terminator.clone(),
            _ => {}
        }
        json!({ "name": "COMPLETED", "type": "pipeline_state_completed", "result": result_json })
    };
    match state {
        SimState::Pending => json!({ "name": "PENDING", "type": "pipeline_state_pending" }),
        SimState::Running => in_progress("RUNNING"),
        SimState::Paused => in_progress("PAUSED"),
        SimState::Halted => in_progress("HALTED"),
        SimState::Successful => completed("SUCCESSFUL"),
        SimState::Failed => completed("FAILED"),
        SimState::Error => completed("ERROR"),
        SimState::Stopped => completed("STOPPED"),
        SimState::Expired => completed("EXPIRED"),
    }
}

/// Seconds spent RUNNING up to `until`: paused and queued time is not billed.
fn build_seconds(build: &SimBuild, until: f64) -> u64 {
    let mut total = 0.0;
    let mut running_since = None;
    for &(at, state) in build.timeline.iter().take_while(|(at, _)| *at <= until) {
        match (state == SimState::Running, running_since) {
            (true, None) => running_since = Some(at),
            (false, Some(since)) => {
                total += at - since;
                running_since = None;
            }
            _ => {}
        }
    }
    if let Some(since) = running_since {
        total += until - since;
    }
    f64::max(total, 0.0).floor() as u64
}

/// A Bitbucket user object for a display name, with identifiers derived from the name so the
/// same person looks the same in every answer.
fn user_json(origin: &str, name: &str) -> Value {
    let seed = fnv1a(format!("user/{name}").as_bytes());
    let uuid = uuid_from(seed);
    let account_id = format!("{:016x}{:08x}", splitmix(seed), splitmix(seed ^ 1) >> 32);
    let encoded_uuid = encode_braces(&uuid);
    json!({
        "display_name": name,
        "uuid": uuid,
        "links": {
            "self": { "href": format!("{origin}/2.0/users/{encoded_uuid}") },
            "html": { "href": format!("{origin}/{encoded_uuid}/") },
        },
        "type": "user",
        "nickname": nickname(name),
        "account_id": account_id,
    })
}

/// `{uuid}` of a pipeline, stable for (repository position, build number) across runs.
fn pipeline_uuid(repo_index: usize, build_number: u64) -> String {
    uuid_from(fnv1a(
        format!("pipeline/{repo_index}/{build_number}").as_bytes(),
    ))
}

/// `{uuid}` of schedule `number` of a repository, stable across runs.
fn schedule_uuid(repo_index: usize, number: usize) -> String {
    uuid_from(fnv1a(format!("schedule/{repo_index}/{number}").as_bytes()))
}

/// `{uuid}` of a repository, stable for its position in the scenario across runs and renames.
fn repository_uuid(repo_index: usize) -> String {
    uuid_from(fnv1a(format!("repository/{repo_index}").as_bytes()))
}

#[cfg(test)]
mod tests {
    use crate::testing::{Auth, TOKEN, get, start, wait_until};
    use crate::{
        BitbucketFault, BitbucketFaults, Scenario, SimBuild, SimCredential, SimCredentialKind,
        SimOptions, SimRepo, SimSchedule, SimSource, SimState, SimTrigger, Simulator,
    };
    use SimState::{Failed, Running, Successful};
    use serde_json::Value;
    use std::time::{Duration, Instant};

    fn build(number: u64, created_at: f64, timeline: Vec<(f64, SimState)>) -> SimBuild {
        SimBuild::pipeline(number, "main", created_at, timeline)
            .with_commit(format!("{number:040x}"))
            .with_message(format!("Change {number}\n\nLonger description."))
            .with_author("Jane Dev")
    }

    fn repo(slug: &str, source: SimSource, builds: Vec<SimBuild>) -> SimRepo {
        SimRepo::new("acme", slug, source, builds)
    }

    fn one_repo(builds: Vec<SimBuild>) -> Scenario {
        Scenario {
            repos: vec![repo("api", SimSource::CloudPipelines, builds)],
        }
    }

    fn at_speed(speed: f64) -> SimOptions {
        SimOptions {
            speed,
            ..SimOptions::default()
        }
    }

    /// `GET` with the default token: status and JSON body.
    async fn get_json(url: &str) -> (u16, Value) {
        let answer = get(url, Auth::Bearer(TOKEN)).await;
        (answer.status, answer.json())
    }

    fn list_url(sim: &Simulator, query: &str) -> String {
        format!(
            "{}/repositories/acme/api/pipelines?{query}",
            sim.bitbucket_api_url()
        )
    }

    fn branches_url(sim: &Simulator, slug: &str, query: &str) -> String {
        format!(
            "{}/repositories/acme/{slug}/refs/branches?{query}",
            sim.bitbucket_api_url()
        )
    }

    /// Every page from `url` on, following `next`: the values' `field` and how many pages.
    async fn collect(url: String, field: &str) -> (Vec<String>, usize) {
        let (mut seen, mut pages) = (Vec::new(), 0);
        let mut next = Some(url);
        while let Some(url) = next {
            let (status, page) = get_json(&url).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            for value in page["values"].as_array().expect("values") {
                seen.push(match value.pointer(field).expect("field") {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
            next = page["next"].as_str().map(str::to_owned);
        }
        (seen, pages)
    }

    #[tokio::test]
    async fn paging_newest_first_visits_every_visible_pipeline_once() {
        // Five visible now, one created far in the future.
        let mut builds: Vec<SimBuild> = (1..=5).map(|n| build(n, 0.0, vec![])).collect();
        builds.push(build(6, 1.0e6, vec![]));
        let sim = start(one_repo(builds), at_speed(1.0)).await;
        let (status, page) = get_json(&list_url(&sim, "sort=-created_on&pagelen=2")).await;
        assert_eq!(
            (status, page["size"].as_u64(), page["pagelen"].as_u64()),
            (200, Some(5), Some(2))
        );
        let (seen, pages) = collect(
            list_url(&sim, "sort=-created_on&pagelen=2"),
            "/build_number",
        )
        .await;
        assert_eq!(seen, ["5", "4", "3", "2", "1"]);
        assert_eq!(pages, 3);
        assert_eq!(sim.stats().bitbucket_requests, 4);
    }

    #[tokio::test]
    async fn without_sort_lists_oldest_first() {
        let builds = (1..=3)
            .map(|n| build(n, f64::from(n as u32), vec![]))
            .collect();
        let sim = start(one_repo(builds), at_speed(1000.0)).await;
        wait_until(&sim, 3.0).await;
        let (status, page) = get_json(&list_url(&sim, "")).await;
        assert_eq!(status, 200);
        let numbers: Vec<u64> = page["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|v| v["build_number"].as_u64())
            .collect();
        assert_eq!(numbers, vec![1, 2, 3]);
        assert!(page.get("next").is_none());
        assert_eq!(page["page"], 1);
    }

    #[tokio::test]
    async fn states_change_over_simulated_time() {
        let scenario = one_repo(vec![build(
            1,
            0.0,
            vec![(100.0, Running), (250.0, Successful)],
        )]);
        let sim = start(scenario.clone(), at_speed(1000.0)).await;
        let url = format!(
            "{}/repositories/acme/api/pipelines/{}",
            sim.bitbucket_api_url(),
            super::encode_braces(&super::pipeline_uuid(0, 1))
        );
        let order = ["PENDING", "IN_PROGRESS", "COMPLETED"];
        let mut seen: Vec<String> = Vec::new();
        let last = loop {
            let before = sim.now();
            let (status, pipeline) = get_json(&url).await;
            let after = sim.now();
            assert_eq!(status, 200);
            let name = pipeline["state"]["name"]
                .as_str()
                .expect("state name")
                .to_owned();
            // What came back is what the scenario says for some moment during the request.
            let expected = |t: f64| match scenario.repos[0].builds[0].state_at(t) {
                Some(SimState::Pending) => "PENDING",
                Some(SimState::Running) => "IN_PROGRESS",
                _ => "COMPLETED",
            };
            assert!(
                name == expected(before) || name == expected(after),
                "{name} at {before}..{after}"
            );
            if seen.last() != Some(&name) {
                seen.push(name.clone());
            }
            if name == "COMPLETED" {
                break pipeline;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let positions: Vec<usize> = seen
            .iter()
            .filter_map(|s| order.iter().position(|o| o == s))
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "states went back: {seen:?}"
        );
        assert!(seen.len() >= 2, "saw only {seen:?}");
        assert_eq!(last["state"]["result"]["name"], "SUCCESSFUL");
        assert_eq!(last["duration_in_seconds"], 250);
        assert_eq!(last["build_seconds_used"], 150);
        assert_eq!(last["completed_on"], sim.inner.clock.rfc3339(250.0));
        assert_eq!(last["first_successful"], true);
    }

    #[tokio::test]
    async fn triggers_show_as_bitbucket_spells_them_and_filter_the_list() {
        let scenario = one_repo(vec![
            build(1, 0.0, vec![]),
            build(2, 1.0, vec![]).triggered_by(SimTrigger::Schedule),
            build(3, 2.0, vec![]).triggered_by(SimTrigger::Manual),
        ]);
        let sim = start(scenario, at_speed(1000.0)).await;
        wait_until(&sim, 2.0).await;
        let (names, _) = collect(list_url(&sim, ""), "/trigger/name").await;
        assert_eq!(names, ["PUSH", "SCHEDULE", "MANUAL"]);
        let (types, _) = collect(list_url(&sim, ""), "/trigger/type").await;
        assert_eq!(
            types,
            [
                "pipeline_trigger_push",
                "pipeline_trigger_schedule",
                "pipeline_trigger_manual"
            ]
        );
        for (query, numbers) in [
            ("trigger_type=PUSH", vec!["1"]),
            ("trigger_type=SCHEDULED", vec!["2"]),
            ("trigger_type=MANUAL", vec!["3"]),
            ("trigger_type=PARENT_STEP", vec![]),
        ] {
            let (seen, _) = collect(list_url(&sim, query), "/build_number").await;
            assert_eq!(seen, numbers, "{query}");
        }
        let (status, _) = get_json(&list_url(&sim, "trigger_type=SCHEDULE")).await;
        assert_eq!(status, 400);
        // Only the push moved main.
        let (tips, _) = collect(branches_url(&sim, "api", ""), "/target/hash").await;
        assert_eq!(tips, [format!("{:040x}", 1)]);
    }

    #[tokio::test]
    async fn a_renamed_repository_answers_under_its_new_slug_and_a_deleted_one_nowhere() {
        let commit = format!("{:040x}", 9);
        let mut api = repo(
            "api",
            SimSource::CloudPipelines,
            vec![build(1, 0.0, vec![])],
        );
        api.renamed = Some((60.0, "backend".to_owned()));
        let status = SimBuild::status("ci", "main", &commit, 0.0, 0.0, []);
        let mut web = repo("web", SimSource::CloudStatuses, vec![status]);
        web.deleted_at = Some(60.0);
        let sim = start(
            Scenario {
                repos: vec![api, web],
            },
            at_speed(100.0),
        )
        .await;
        let base = sim.bitbucket_api_url();
        let at = |path: &str| format!("{base}/repositories/acme/{path}");
        let api_uuid = super::encode_braces(&super::repository_uuid(0));
        let web_uuid = super::encode_braces(&super::repository_uuid(1));
        let statuses = format!("web/commit/{commit}/statuses");
        let status_of = |path: String| async move { get_json(&path).await.0 };

        let (status, page) = get_json(&at("api/pipelines")).await;
        assert_eq!(status, 200);
        assert_eq!(page["values"][0]["repository"]["full_name"], "acme/api");
        assert_eq!(status_of(at(&format!("{api_uuid}/pipelines"))).await, 200);
        assert_eq!(status_of(at("backend/pipelines")).await, 404);
        assert_eq!(status_of(at("web/refs/branches")).await, 200);
        assert_eq!(status_of(at(&statuses)).await, 200);
        assert!(sim.now() < 60.0, "too slow to look before the rename");

        wait_until(&sim, 60.0).await;
        let (status, body) = get_json(&at("api/pipelines")).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["message"], "Repository not found");
        let (status, page) = get_json(&at("BACKEND/pipelines")).await;
        assert_eq!(status, 200);
        let repository = &page["values"][0]["repository"];
        assert_eq!(repository["full_name"], "acme/backend");
        assert_eq!(repository["name"], "backend");
        assert_eq!(
            repository["links"]["html"]["href"],
            format!("{}acme/backend", sim.bitbucket_web_url())
        );
        assert_eq!(status_of(at(&format!("{api_uuid}/pipelines"))).await, 200);
        for gone in ["web/refs/branches", &statuses, &format!("{web_uuid}/refs")] {
            assert_eq!(status_of(at(gone)).await, 404, "{gone}");
        }
    }

    /// Workspace `acme` (and two more) with a repository of each kind of history; the numbers
    /// are when each one was last pushed (or renamed).
    fn workspace() -> Scenario {
        use SimTrigger::{Manual, Schedule};
        let pipeline = |n: u64, at: f64| build(n, at, vec![(at + 10.0, Running)]);
        // 100: a push, whose pipeline runs on; a scheduled run at 300 and a manual one at 500.
        let api = repo(
            "api",
            SimSource::CloudPipelines,
            vec![
                build(1, 100.0, vec![(110.0, Running), (900.0, Successful)]),
                pipeline(2, 300.0).triggered_by(Schedule),
                pipeline(3, 500.0).triggered_by(Manual),
            ],
        );
        // 200: a commit whose status comes at 600 and reruns at 700.
        let status = SimBuild::status(
            "ci",
            "main",
            "c".repeat(40),
            200.0,
            600.0,
            [(650.0, Failed), (700.0, Running)],
        );
        let web = repo("web", SimSource::CloudStatuses, vec![status]);
        // Never pushed: its creation.
        let ops = repo("ops", SimSource::CloudPipelines, vec![]);
        // 400: pushed at 50, renamed at 400.
        let mut docs = repo("docs", SimSource::CloudPipelines, vec![pipeline(1, 50.0)]);
        docs.renamed = Some((400.0, "handbook".to_owned()));
        let mut tmp = repo("tmp", SimSource::CloudPipelines, vec![pipeline(1, 150.0)]);
        tmp.deleted_at = Some(800.0);
        let dc = repo("platform", SimSource::DataCenter, vec![]);
        let site = SimRepo {
            workspace: "globex".to_owned(),
            ..repo("site", SimSource::CloudPipelines, vec![pipeline(1, 120.0)])
        };
        let gone = SimRepo {
            workspace: "ghost".to_owned(),
            deleted_at: Some(10.0),
            ..repo("gone", SimSource::CloudPipelines, vec![])
        };
        Scenario {
            repos: vec![api, web, ops, docs, tmp, dc, site, gone],
        }
    }

    /// A simulator whose clock stands (nearly) still at simulated second `at`.
    async fn standing_at(scenario: Scenario, at: f64) -> Simulator {
        let options = SimOptions {
            starts_at: at,
            ..SimOptions::default()
        };
        start(scenario, options).await
    }

    /// The workspace listing URL with `query`'s pairs encoded.
    fn listing(sim: &Simulator, workspace: &str, query: &[(&str, &str)]) -> String {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        format!(
            "{}/repositories/{workspace}?{query}",
            sim.bitbucket_api_url()
        )
    }

    #[tokio::test]
    async fn workspace_listing_shows_when_repositories_were_last_pushed() {
        let early = standing_at(workspace(), 5.0).await;
        let (names, _) = collect(listing(&early, "acme", &[]), "/full_name").await;
        assert_eq!(
            names,
            ["acme/api", "acme/web", "acme/ops", "acme/docs", "acme/tmp"]
        );
        let (updated, _) = collect(listing(&early, "acme", &[]), "/updated_on").await;
        let created: Vec<String> = [0, 1, 2, 3, 4]
            .map(|i| early.inner.clock.rfc3339(crate::repo_created_at(i)))
            .into();
        assert_eq!(updated, created);

        let sim = standing_at(workspace(), 1000.0).await;
        let rfc3339 = |t: f64| sim.inner.clock.rfc3339(t);
        let (page_status, page) = get_json(&listing(&sim, "acme", &[("pagelen", "1")])).await;
        assert_eq!(page_status, 200);
        let api = &page["values"][0];
        assert_eq!(api["type"], "repository");
        assert_eq!(api["full_name"], "acme/api");
        assert_eq!((&api["slug"], &api["name"]), (&"api".into(), &"api".into()));
        assert_eq!(api["uuid"], super::repository_uuid(0));
        assert_eq!(api["created_on"], rfc3339(crate::repo_created_at(0)));
        // Not the schedule, the manual run, nor the pipeline still running.
        assert_eq!(api["updated_on"], rfc3339(100.0));
        assert_eq!(
            api["links"]["self"]["href"],
            format!("{}/repositories/acme/api", sim.bitbucket_api_url())
        );
        assert_eq!(
            api["links"]["html"]["href"],
            format!("{}acme/api", sim.bitbucket_web_url())
        );
        let (_, pipelines) = get_json(&list_url(&sim, "")).await;
        assert_eq!(pipelines["values"][0]["repository"]["uuid"], api["uuid"]);

        // The rename moved docs; the late status did not move web; tmp is gone.
        let (names, _) = collect(listing(&sim, "acme", &[("sort", "-updated_on")]), "/slug").await;
        assert_eq!(names, ["handbook", "web", "api", "ops"]);
        let (times, _) = collect(
            listing(&sim, "acme", &[("sort", "-updated_on")]),
            "/updated_on",
        )
        .await;
        assert_eq!(times[..3], [rfc3339(400.0), rfc3339(200.0), rfc3339(100.0)]);
        let (names, _) = collect(listing(&sim, "acme", &[("sort", "updated_on")]), "/slug").await;
        assert_eq!(names, ["ops", "api", "web", "handbook"]);
        let (names, _) = collect(listing(&sim, "acme", &[("sort", "-created_on")]), "/slug").await;
        assert_eq!(names, ["handbook", "ops", "web", "api"]);
        let (names, _) = collect(listing(&sim, "globex", &[]), "/full_name").await;
        assert_eq!(names, ["globex/site"]);
        let (status, page) = get_json(&listing(&sim, "ghost", &[])).await;
        assert_eq!((status, &page["values"]), (200, &serde_json::json!([])));
        let (status, body) = get_json(&listing(&sim, "nobody", &[])).await;
        assert_eq!(status, 404);
        assert_eq!(
            body["error"]["message"],
            "No workspace with identifier 'nobody'."
        );
    }

    #[tokio::test]
    async fn workspace_listing_filters_sorts_pages_and_cuts_fields() {
        let sim = standing_at(workspace(), 1000.0).await;
        let rfc3339 = |t: f64| sim.inner.clock.rfc3339(t);
        let slugs = |query: Vec<(&'static str, String)>| {
            let url = {
                let pairs: Vec<(&str, &str)> =
                    query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                listing(&sim, "acme", &pairs)
            };
            async move { collect(url, "/slug").await.0 }
        };
        let q = |text: String| vec![("q", text), ("sort", "updated_on".to_owned())];
        assert_eq!(
            slugs(q(format!("updated_on >= \"{}\"", rfc3339(200.0)))).await,
            ["web", "handbook"]
        );
        assert_eq!(
            slugs(q(format!("updated_on>\"{}\"", rfc3339(200.0)))).await,
            ["handbook"]
        );
        assert_eq!(
            slugs(q(format!(
                "updated_on < \"{}\" AND updated_on >= \"{}\"",
                rfc3339(200.0),
                rfc3339(100.0)
            )))
            .await,
            ["api"]
        );
        assert_eq!(
            slugs(q(format!("updated_on = \"{}\"", rfc3339(100.0)))).await,
            ["api"]
        );
        assert_eq!(
            slugs(q(format!(
                "updated_on <= {}",
                rfc3339(crate::repo_created_at(2))
            )))
            .await,
            ["ops"]
        );
        assert_eq!(
            slugs(q(
                "full_name = \"acme/handbook\" OR slug = \"api\"".to_owned()
            ))
            .await,
            ["api", "handbook"]
        );
        for bad in [
            vec![("q", "updated_on > \"yesterday\"")],
            vec![("q", "project.key = \"X\"")],
            vec![("sort", "name")],
            vec![("pagelen", "101")],
        ] {
            let (status, body) = get_json(&listing(&sim, "acme", &bad)).await;
            assert_eq!((status, &body["type"]), (400, &"error".into()), "{bad:?}");
        }

        // Pages follow `next`, which keeps the query; the last page has none.
        let url = listing(&sim, "acme", &[("pagelen", "3"), ("sort", "-updated_on")]);
        let (names, pages) = collect(url.clone(), "/slug").await;
        assert_eq!((names.len(), pages), (4, 2));
        let (_, first) = get_json(&url).await;
        assert_eq!(
            (first["size"].as_u64(), first["pagelen"].as_u64()),
            (Some(4), Some(3))
        );
        let next = first["next"].as_str().expect("next");
        assert!(
            next.contains("sort=-updated_on") && next.contains("page=2"),
            "{next}"
        );
        let (_, last) = get_json(next).await;
        assert!(last.get("next").is_none());
        assert_eq!(last["values"][0]["slug"], "ops");

        // `fields` keeps only what is asked.
        let fields = "next,values.full_name,values.updated_on";
        let (_, page) = get_json(&listing(
            &sim,
            "acme",
            &[("pagelen", "1"), ("fields", fields)],
        ))
        .await;
        let mut keys: Vec<&String> = page.as_object().expect("object").keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["next", "values"]);
        assert_eq!(
            page["values"][0],
            serde_json::json!({ "full_name": "acme/api", "updated_on": rfc3339(100.0) })
        );
        let fields = "values.uuid,values.slug,values.name,values.created_on,-values.name";
        let (_, page) = get_json(&listing(
            &sim,
            "acme",
            &[("pagelen", "1"), ("fields", fields)],
        ))
        .await;
        let mut keys: Vec<&String> = page["values"][0]
            .as_object()
            .expect("object")
            .keys()
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["created_on", "slug", "uuid"]);

        // Every request counted against the credential, refused ones included; none without one.
        assert_eq!(
            get(&listing(&sim, "acme", &[]), Auth::Nothing).await.status,
            401
        );
        assert_eq!(sim.bitbucket_requests_by_credential()["sim-bitbucket"], 16);
        assert_eq!(sim.stats().bitbucket_requests, 17);
    }

    #[tokio::test]
    async fn schedules_are_listed_and_start_scheduled_pipelines() {
        let nightly = SimSchedule::new("0 30 2 * * ? *", "main");
        let runs = nightly.run_times(0.0, 86_400.0).expect("pattern");
        assert_eq!(runs, [63_000.0]);
        let hourly = SimSchedule {
            created_at: 1000.0,
            ..SimSchedule::new("0 0 * * * ? *", "release/1.0")
        };
        let off = SimSchedule {
            enabled: false,
            ..SimSchedule::new("0 0 12 ? * MON-FRI *", "main")
        };
        let pushed = build(1, 10.0, vec![(20.0, Running), (300.0, Successful)]);
        let scheduled = build(2, runs[0], vec![(runs[0] + 5.0, Running)])
            .with_commit(&pushed.commit)
            .triggered_by(SimTrigger::Schedule);
        let mut api = repo("api", SimSource::CloudPipelines, vec![pushed, scheduled]);
        api.schedules = vec![nightly, hourly, off];
        let scenario = Scenario { repos: vec![api] };

        let before = standing_at(scenario.clone(), 500.0).await;
        let url = |sim: &Simulator, tail: &str| {
            format!(
                "{}/repositories/acme/api/pipelines_config/schedules{tail}",
                sim.bitbucket_api_url()
            )
        };
        let (status, page) = get_json(&url(&before, "")).await;
        assert_eq!((status, page["size"].as_u64()), (200, Some(2)));

        let sim = standing_at(scenario, 70_000.0).await;
        let (crons, pages) = collect(url(&sim, "?pagelen=2"), "/cron_pattern").await;
        assert_eq!(
            crons,
            ["0 30 2 * * ? *", "0 0 12 ? * MON-FRI *", "0 0 * * * ? *"]
        );
        assert_eq!(pages, 2);
        let (_, page) = get_json(&url(&sim, "/")).await;
        let nightly = &page["values"][0];
        assert_eq!(nightly["type"], "pipeline_schedule");
        assert_eq!(nightly["enabled"], true);
        assert_eq!(page["values"][1]["enabled"], false);
        assert_eq!(
            nightly["target"],
            serde_json::json!({
                "type": "pipeline_ref_target",
                "ref_type": "branch",
                "ref_name": "main",
                "selector": { "type": "branches", "pattern": "main" },
            })
        );
        let made = sim.inner.clock.rfc3339(-7.0 * 86_400.0);
        assert_eq!(
            (&nightly["created_on"], &nightly["updated_on"]),
            (&made.clone().into(), &made.into())
        );
        let uuid = nightly["uuid"].as_str().expect("uuid");
        let (status, one) = get_json(&url(&sim, &format!("/{}", super::encode_braces(uuid)))).await;
        assert_eq!(
            (status, &one["cron_pattern"]),
            (200, &nightly["cron_pattern"])
        );
        let (status, _) = get_json(&url(&sim, "/%7Bnope%7D")).await;
        assert_eq!(status, 404);

        // Its run: a SCHEDULE pipeline at the pattern's time on main's tip, which moved nothing.
        let (status, runs) = get_json(&list_url(&sim, "trigger_type=SCHEDULED")).await;
        assert_eq!((status, runs["size"].as_u64()), (200, Some(1)));
        let run = &runs["values"][0];
        assert_eq!(run["trigger"]["name"], "SCHEDULE");
        assert_eq!(run["created_on"], sim.inner.clock.rfc3339(63_000.0));
        assert_eq!(run["target"]["ref_name"], "main");
        assert_eq!(run["target"]["commit"]["hash"], format!("{:040x}", 1));
        let (updated, _) = collect(listing(&sim, "acme", &[]), "/updated_on").await;
        assert_eq!(updated, [sim.inner.clock.rfc3339(10.0)]);
    }

    #[tokio::test]
    async fn failed_pipeline_has_the_wire_shape() {
        let scenario = one_repo(vec![build(7, 0.0, vec![(0.0, Running), (0.0, Failed)])]);
        let sim = start(scenario, at_speed(1.0)).await;
        let (status, page) =
            get_json(&list_url(&sim, "fields=%2Bvalues.target.commit.message")).await;
        assert_eq!(status, 200);
        let pipeline = &page["values"][0];
        assert_eq!(pipeline["type"], "pipeline");
        assert_eq!(pipeline["uuid"], super::pipeline_uuid(0, 7));
        assert_eq!(pipeline["state"]["type"], "pipeline_state_completed");
        assert_eq!(pipeline["state"]["name"], "COMPLETED");
        assert_eq!(
            pipeline["state"]["result"]["type"],
            "pipeline_state_completed_failed"
        );
        assert_eq!(pipeline["state"]["result"]["name"], "FAILED");
        let start = sim.inner.clock.rfc3339(0.0);
        assert_eq!(pipeline["created_on"], start);
        assert_eq!(pipeline["completed_on"], start);
        assert_eq!(pipeline["target"]["ref_name"], "main");
        assert_eq!(
            pipeline["target"]["commit"]["message"],
            "Change 7\n\nLonger description."
        );
        assert_eq!(pipeline["repository"]["full_name"], "acme/api");
        let web = format!("{}acme/api", sim.bitbucket_web_url());
        assert_eq!(
            pipeline["repository"]["links"]["html"]["href"],
            web.as_str()
        );
        assert_eq!(
            pipeline["target"]["commit"]["links"]["html"]["href"],
            format!("{web}/commits/{:040x}", 7).as_str()
        );
        assert_eq!(pipeline["creator"]["display_name"], "Jane Dev");

        // Without `fields` the message and the author stay out, as upstream.
        let (_, page) = get_json(&list_url(&sim, "")).await;
        let commit = &page["values"][0]["target"]["commit"];
        assert!(commit.get("message").is_none());
        assert!(commit.get("author").is_none());
    }

    /// The commit's author, asked for with `fields`, and the creator: the same person unless
    /// someone else started the run.
    #[tokio::test]
    async fn a_pipeline_names_its_commit_author_when_asked_and_who_started_it() {
        let scenario = one_repo(vec![
            build(1, 0.0, vec![(0.0, Running)]),
            build(2, 0.0, vec![(0.0, Running)]).started_by("Rita Runner"),
        ]);
        let sim = start(scenario, at_speed(1.0)).await;
        let (_, page) = get_json(&list_url(
            &sim,
            "fields=%2Bvalues.target.commit.author&sort=-created_on",
        ))
        .await;
        let (rerun, first) = (&page["values"][0], &page["values"][1]);
        for pipeline in [rerun, first] {
            let author = &pipeline["target"]["commit"]["author"];
            assert_eq!(author["raw"], "Jane Dev <jane.dev@example.com>");
            assert_eq!(author["user"]["display_name"], "Jane Dev");
            assert_eq!(author["user"]["nickname"], "jane.dev");
            assert!(
                author["user"]["uuid"]
                    .as_str()
                    .is_some_and(|u| u.starts_with('{'))
            );
        }
        assert_eq!(
            first["creator"],
            first["target"]["commit"]["author"]["user"]
        );
        assert_eq!(rerun["creator"]["display_name"], "Rita Runner");
        assert_ne!(rerun["creator"]["uuid"], first["creator"]["uuid"]);
    }

    #[tokio::test]
    async fn refuses_requests_without_the_token() {
        let sim = start(one_repo(vec![build(1, 0.0, vec![])]), SimOptions::default()).await;
        let answer = get(&list_url(&sim, ""), Auth::Nothing).await;
        assert_eq!(answer.status, 401);
        let body = answer.json();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["message"], "Access token expired or invalid");
        assert_eq!(sim.stats().bitbucket_requests, 1);
        assert!(sim.bitbucket_requests_by_credential().is_empty());
    }

    #[tokio::test]
    async fn rejects_bad_queries_and_unknown_things() {
        let sim = start(
            one_repo(vec![build(1, 1.0e6, vec![])]),
            SimOptions::default(),
        )
        .await;
        let (status, body) = get_json(&list_url(&sim, "pagelen=101")).await;
        assert_eq!(status, 400);
        assert_eq!(body["type"], "error");
        let (status, _) = get_json(&list_url(&sim, "page=0")).await;
        assert_eq!(status, 400);
        let (status, body) = get_json(&format!(
            "{}/repositories/acme/nope/pipelines/",
            sim.bitbucket_api_url()
        ))
        .await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["message"], "Repository not found");
        // Build 1 exists in the scenario but is not created yet.
        let url = format!(
            "{}/repositories/acme/api/pipelines/{}",
            sim.bitbucket_api_url(),
            super::pipeline_uuid(0, 1)
        );
        let (status, _) = get_json(&url).await;
        assert_eq!(status, 404);
        let (status, _) = get_json(&format!("{}/user", sim.bitbucket_api_url())).await;
        assert_eq!(status, 404);
        assert_eq!(sim.stats().bitbucket_requests, 5);
    }

    /// `acme/web` with statuses on four branches pushed at 10, 40, 20, 30 and a later push.
    fn branchy() -> Scenario {
        let push = |branch: &str, n: u64, pushed_at: f64| {
            SimBuild::status("ci", branch, format!("{n:040x}"), pushed_at, pushed_at, [])
                .with_author("Priya Raman")
                .with_message(format!("Change {n}"))
        };
        Scenario {
            repos: vec![repo(
                "web",
                SimSource::CloudStatuses,
                vec![
                    push("main", 1, 10.0),
                    push("release/1.0", 2, 40.0),
                    push("feature/a", 3, 20.0),
                    push("feature/b", 4, 30.0),
                    push("main", 5, 1.0e6),
                ],
            )],
        }
    }

    #[tokio::test]
    async fn branches_sort_by_tip_date_and_page() {
        let sim = start(branchy(), at_speed(1000.0)).await;
        wait_until(&sim, 40.0).await;
        let (names, pages) = collect(
            branches_url(&sim, "web", "sort=-target.date&pagelen=3"),
            "/name",
        )
        .await;
        assert_eq!(names, ["release/1.0", "feature/b", "feature/a", "main"]);
        assert_eq!(pages, 2);
        let (names, _) = collect(branches_url(&sim, "web", ""), "/name").await;
        assert_eq!(names, ["feature/a", "feature/b", "main", "release/1.0"]);

        let (status, page) =
            get_json(&branches_url(&sim, "web", "pagelen=1&sort=-target.date")).await;
        assert_eq!((status, page["size"].as_u64()), (200, Some(4)));
        let branch = &page["values"][0];
        assert_eq!(branch["type"], "branch");
        assert_eq!(branch["target"]["hash"], format!("{:040x}", 2));
        assert_eq!(branch["target"]["date"], sim.inner.clock.git_date(40.0));
        assert_eq!(branch["target"]["message"], "Change 2");
        assert_eq!(
            branch["target"]["author"]["raw"],
            "Priya Raman <priya.raman@example.com>"
        );
        assert_eq!(
            branch["target"]["author"]["user"]["display_name"],
            "Priya Raman"
        );
        assert_eq!(
            branch["links"]["html"]["href"],
            format!("{}acme/web/branch/release/1.0", sim.bitbucket_web_url())
        );
        assert!(page["next"].as_str().is_some_and(|n| n.contains("page=2")));

        let (names, _) = collect(
            branches_url(
                &sim,
                "web",
                "q=name%3D%22main%22%20OR%20name%3D%22feature%2Fb%22",
            ),
            "/name",
        )
        .await;
        assert_eq!(names, ["feature/b", "main"]);
        for bad in ["q=name%3Dmain", "q=target.date%3E%222026%22", "sort=date"] {
            let (status, body) = get_json(&branches_url(&sim, "web", bad)).await;
            assert_eq!(status, 400, "{bad}");
            assert_eq!(body["type"], "error");
        }
    }

    #[tokio::test]
    async fn statuses_appear_late_and_change_on_overwrite() {
        let commit = "ab".repeat(20);
        let scenario = Scenario {
            repos: vec![
                repo(
                    "web",
                    SimSource::CloudStatuses,
                    vec![
                        SimBuild::status(
                            "jenkins-build",
                            "main",
                            &commit,
                            0.0,
                            20.0,
                            [(30.0, Failed), (40.0, Running), (50.0, Successful)],
                        )
                        .with_number(8),
                        SimBuild::status("sonar", "main", &commit, 0.0, 35.0, [(36.0, Successful)]),
                    ],
                ),
                repo(
                    "api",
                    SimSource::CloudPipelines,
                    vec![build(1, 0.0, vec![])],
                ),
            ],
        };
        // The clock starts at the first request, so a loaded machine still asks before the
        // CI posts (20 simulated seconds are 0.2 real ones).
        let options = SimOptions {
            start: crate::SimStart::AtFirstRequest,
            ..at_speed(100.0)
        };
        let sim = start(scenario, options).await;
        let url = format!(
            "{}/repositories/acme/web/commit/{commit}/statuses",
            sim.bitbucket_api_url()
        );
        let statuses = || async {
            let (status, page) = get_json(&url).await;
            assert_eq!(status, 200, "{page}");
            page["values"].as_array().expect("values").clone()
        };
        // Pushed, but the CI has not posted yet.
        assert!(statuses().await.is_empty());

        wait_until(&sim, 22.0).await;
        let posted = statuses().await;
        assert_eq!(posted.len(), 1);
        let first = &posted[0];
        assert_eq!(first["type"], "build");
        assert_eq!(first["key"], "jenkins-build");
        assert_eq!(first["state"], "INPROGRESS");
        assert_eq!(first["name"], "jenkins-build #8");
        assert_eq!(first["refname"], "main");
        assert_eq!(first["commit"]["hash"], commit.as_str());
        let created = sim.inner.clock.rfc3339(20.0);
        assert_eq!(first["created_on"], created);
        assert_eq!(first["updated_on"], created);

        wait_until(&sim, 32.0).await;
        assert_eq!(statuses().await[0]["state"], "FAILED");

        wait_until(&sim, 52.0).await;
        let both = statuses().await;
        let keys: Vec<&str> = both.iter().filter_map(|s| s["key"].as_str()).collect();
        assert_eq!(keys, ["jenkins-build", "sonar"], "newest update first");
        let rerun = &both[0];
        assert_eq!(rerun["state"], "SUCCESSFUL");
        assert_eq!(rerun["name"], "jenkins-build #9");
        assert_eq!(rerun["created_on"], created);
        assert_eq!(rerun["updated_on"], sim.inner.clock.rfc3339(50.0));
        assert_eq!(
            rerun["links"]["self"]["href"],
            format!("{url}/build/jenkins-build")
        );

        let (_, page) =
            get_json(&format!("{url}?sort=updated_on&q=state%3D%22SUCCESSFUL%22")).await;
        let keys: Vec<&str> = page["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|s| s["key"].as_str())
            .collect();
        assert_eq!(keys, ["sonar", "jenkins-build"]);

        // Unknown commits are 404; a pipelines repository's commits carry only the status
        // Pipelines posts for each run.
        let (status, _) = get_json(&url.replace(&commit, &"0".repeat(40))).await;
        assert_eq!(status, 404);
        let (status, page) = get_json(&format!(
            "{}/repositories/acme/api/commit/{:040x}/statuses",
            sim.bitbucket_api_url(),
            1
        ))
        .await;
        assert_eq!((status, page["size"].as_u64()), (200, Some(1)));
        assert_eq!(page["values"][0]["name"], "Pipeline #1");
        // And a statuses repository runs no pipelines.
        let (status, page) = get_json(&format!(
            "{}/repositories/acme/web/pipelines",
            sim.bitbucket_api_url()
        ))
        .await;
        assert_eq!((status, page["size"].as_u64()), (200, Some(0)));
    }

    #[tokio::test]
    async fn pipelines_run_for_tags_and_commits_and_post_their_own_statuses() {
        let commit = format!("{:040x}", 1);
        let scenario = Scenario {
            repos: vec![repo(
                "ops",
                SimSource::CloudMixed,
                vec![
                    build(1, 0.0, vec![(1.0, Running), (5.0, Successful)]),
                    build(2, 10.0, vec![(11.0, Running), (20.0, Failed)])
                        .with_commit(&commit)
                        .on_tag("v1.10.0"),
                    build(3, 12.0, vec![(13.0, Running)])
                        .with_commit(&commit)
                        .as_custom("deploy-staging"),
                    SimBuild::status(
                        "security-scan",
                        "main",
                        &commit,
                        0.0,
                        2.0,
                        [(3.0, Successful)],
                    )
                    .with_number(77),
                ],
            )],
        };
        let sim = start(scenario, at_speed(1000.0)).await;
        wait_until(&sim, 21.0).await;
        let api = sim.bitbucket_api_url();
        let pipelines = |query: &str| format!("{api}/repositories/acme/ops/pipelines?{query}");

        // Only the runs are pipelines; the scanner's status is not one.
        let (_, page) = get_json(&pipelines("")).await;
        assert_eq!(page["size"], 3);
        let (tag, custom) = (&page["values"][1], &page["values"][2]);
        assert_eq!(tag["target"]["type"], "pipeline_ref_target");
        assert_eq!(tag["target"]["ref_type"], "tag");
        assert_eq!(tag["target"]["ref_name"], "v1.10.0");
        assert_eq!(tag["target"]["selector"]["type"], "tags");
        assert_eq!(tag["target"]["selector"]["pattern"], "v1.10.0");
        assert_eq!(tag["target"]["commit"]["hash"], commit.as_str());
        assert_eq!(tag["trigger"]["type"], "pipeline_trigger_push");
        assert_eq!(custom["target"]["type"], "pipeline_commit_target");
        assert!(custom["target"].get("ref_name").is_none());
        assert_eq!(custom["target"]["selector"]["type"], "custom");
        assert_eq!(custom["target"]["selector"]["pattern"], "deploy-staging");
        assert_eq!(custom["trigger"]["name"], "MANUAL");
        assert_eq!(custom["trigger"]["type"], "pipeline_trigger_manual");
        for (query, numbers) in [
            ("target.branch=main", vec!["1"]),
            ("target.ref_name=main", vec!["1"]),
            ("target.ref_name=v1.10.0", vec!["2"]),
            ("target.branch=v1.10.0", vec![]),
        ] {
            let (seen, _) = collect(pipelines(query), "/build_number").await;
            assert_eq!(seen, numbers, "{query}");
        }

        // Each run posts a status on its commit, beside the scanner's.
        let url = format!("{api}/repositories/acme/ops/commit/{commit}/statuses");
        let (status, page) = get_json(&url).await;
        assert_eq!(status, 200, "{page}");
        let values = page["values"].as_array().expect("values");
        let by_key = |key: &str| {
            values
                .iter()
                .find(|s| s["key"] == key)
                .unwrap_or_else(|| panic!("no status {key} in {page}"))
        };
        let ops = &sim.scenario().repos[0];
        let web = sim.bitbucket_web_url();
        for (number, state, refname) in [
            (1, "SUCCESSFUL", Value::from("main")),
            (2, "FAILED", Value::from("v1.10.0")),
            (3, "INPROGRESS", Value::Null),
        ] {
            let key = crate::pipeline_status_key(0, number);
            let posted = by_key(&key);
            assert_eq!(posted["name"], format!("Pipeline #{number}"));
            assert_eq!(posted["state"], state, "#{number}");
            assert_eq!(posted["refname"], refname, "#{number}");
            let link = format!("{web}acme/ops/addon/pipelines/home#!/results/{number}");
            assert_eq!(posted["url"], link.as_str());
            let pipeline = &ops.builds[number as usize - 1];
            assert_eq!(sim.card_link(ops, &pipeline.pipeline_status(0), 21.0), link);
            assert_eq!(
                sim.card_link(ops, pipeline, 21.0),
                format!("{web}acme/ops/pipelines/results/{number}")
            );
        }
        assert!(
            crate::pipeline_status_key(0, 1)
                .trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
        );
        let scan = by_key("security-scan");
        assert_eq!(scan["name"], "security-scan #77");
        assert_eq!(scan["refname"], "main");
        assert_eq!(
            sim.card_link(ops, &ops.builds[3], 21.0),
            scan["url"].as_str().expect("url")
        );
        let (_, tagged) = get_json(&format!("{url}?q=refname%3D%22v1.10.0%22")).await;
        assert_eq!(tagged["size"], 1);
    }

    #[tokio::test]
    async fn refs_list_branches_and_tags() {
        let push = |branch: &str, n: u64, pushed_at: f64| {
            SimBuild::status("ci", branch, format!("{n:040x}"), pushed_at, pushed_at, [])
                .with_author("Priya Raman")
                .with_message(format!("Change {n}"))
        };
        let scenario = Scenario {
            repos: vec![repo(
                "web",
                SimSource::CloudStatuses,
                vec![
                    push("main", 1, 10.0),
                    push("main", 2, 20.0).on_tag("v1.9.0"),
                    push("main", 3, 30.0).on_tag("v1.10.0"),
                    push("feature/x", 4, 25.0),
                    push("main", 5, 1.0e6).on_tag("v2.0.0"),
                ],
            )],
        };
        let sim = start(scenario, at_speed(1000.0)).await;
        wait_until(&sim, 30.0).await;
        let refs = |path: &str, query: &str| {
            format!(
                "{}/repositories/acme/web/refs{path}?{query}",
                sim.bitbucket_api_url()
            )
        };

        // A tag moves no branch: main is still at its own push.
        let (_, page) = get_json(&refs("/branches", "")).await;
        assert_eq!(page["size"], 2);
        assert_eq!(page["values"][1]["target"]["hash"], format!("{:040x}", 1));
        for (query, names) in [
            ("", ["v1.10.0", "v1.9.0"]),
            ("sort=name", ["v1.9.0", "v1.10.0"]),
            ("sort=-target.date", ["v1.10.0", "v1.9.0"]),
        ] {
            let (seen, _) = collect(refs("/tags", query), "/name").await;
            assert_eq!(seen, names, "{query}");
        }
        let (seen, pages) = collect(refs("", "pagelen=3"), "/name").await;
        assert_eq!(seen, ["feature/x", "main", "v1.10.0", "v1.9.0"]);
        assert_eq!(pages, 2);
        let (types, _) = collect(refs("", ""), "/type").await;
        assert_eq!(types, ["branch", "branch", "tag", "tag"]);
        let (seen, _) = collect(refs("", "sort=-name"), "/name").await;
        assert_eq!(seen, ["v1.10.0", "v1.9.0", "main", "feature/x"]);
        let (seen, _) = collect(refs("", "q=name~%22v1%22"), "/name").await;
        assert_eq!(seen, ["v1.10.0", "v1.9.0"]);

        let (_, page) = get_json(&refs("/tags", "pagelen=1")).await;
        let tag = &page["values"][0];
        assert_eq!(tag["type"], "tag");
        assert_eq!(tag["name"], "v1.10.0");
        assert_eq!(tag["target"]["hash"], format!("{:040x}", 3));
        assert_eq!(tag["target"]["date"], sim.inner.clock.git_date(30.0));
        assert_eq!(tag["target"]["message"], "Change 3");
        assert_eq!(tag["date"], sim.inner.clock.git_date(30.0));
        assert_eq!(tag["message"], "Release v1.10.0\n");
        assert_eq!(
            tag["tagger"]["raw"],
            "Priya Raman <priya.raman@example.com>"
        );
        assert_eq!(
            tag["links"]["html"]["href"],
            format!("{}acme/web/commits/tag/v1.10.0", sim.bitbucket_web_url())
        );
        assert_eq!(
            tag["links"]["self"]["href"],
            format!(
                "{}/repositories/acme/web/refs/tags/v1.10.0",
                sim.bitbucket_api_url()
            )
        );
        assert!(page["next"].as_str().is_some_and(|n| n.contains("page=2")));
        let (status, _) = get_json(&refs("/tags", "sort=date")).await;
        assert_eq!(status, 400);

        // A commit only a tag points at is known, and its status names the tag.
        let (status, page) = get_json(&format!(
            "{}/repositories/acme/web/commit/{:040x}/statuses",
            sim.bitbucket_api_url(),
            2
        ))
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["values"][0]["refname"], "v1.9.0");
    }

    #[test]
    fn natural_order_reads_numbers_by_value() {
        let mut names = [
            "v1.10.0",
            "v1.9.0",
            "main",
            "release/10",
            "release/9",
            "v1.9.0-rc1",
            "a01",
            "a1",
            "v2",
        ];
        names.sort_by(|a, b| super::natural_order(a, b));
        assert_eq!(
            names,
            [
                "a01",
                "a1",
                "main",
                "release/9",
                "release/10",
                "v1.9.0",
                "v1.9.0-rc1",
                "v1.10.0",
                "v2"
            ]
        );
    }

    fn credential(name: &str, kind: SimCredentialKind) -> SimCredential {
        SimCredential {
            name: name.to_owned(),
            kind,
        }
    }

    /// Every credential kind, OAuth tokens living `oauth_lifetime`.
    fn all_kinds(oauth_lifetime: Duration) -> SimOptions {
        let mut options = SimOptions {
            oauth_token_lifetime: oauth_lifetime,
            ..SimOptions::default()
        };
        options.bitbucket_credentials.extend([
            credential(
                "consumer",
                SimCredentialKind::OAuthConsumer {
                    key: "key".to_owned(),
                    secret: "secret".to_owned(),
                },
            ),
            credential(
                "api-token",
                SimCredentialKind::ApiToken {
                    email: "ci@example.com".to_owned(),
                    token: "api-token".to_owned(),
                },
            ),
            credential(
                "dc",
                SimCredentialKind::DataCenterToken {
                    token: "dc-token".to_owned(),
                },
            ),
        ]);
        options
    }

    async fn oauth_token(sim: &Simulator, key: &str, secret: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(sim.bitbucket_oauth_url())
            .basic_auth(key, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("request goes through");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    #[tokio::test]
    async fn oauth_tokens_are_issued_used_and_expire() {
        let sim = start(one_repo(vec![]), all_kinds(Duration::from_millis(300))).await;
        let url = list_url(&sim, "");
        let (status, grant) = oauth_token(&sim, "key", "secret").await;
        assert_eq!(status, 200, "{grant}");
        assert_eq!(grant["token_type"], "bearer");
        assert_eq!(grant["expires_in"], 0);
        assert_eq!(grant["scopes"], "pipeline repository");
        assert_eq!(grant["state"], "client_credentials");
        assert!(grant["refresh_token"].is_string());
        let token = grant["access_token"].as_str().expect("access_token");

        let answer = get(&url, Auth::Bearer(token)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-ratelimit-limit"), None);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let answer = get(&url, Auth::Bearer(token)).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.json()["error"]["message"], "Access token expired.");

        let (_, grant) = oauth_token(&sim, "key", "secret").await;
        let fresh = grant["access_token"].as_str().expect("access_token");
        sim.revoke_bitbucket_oauth_tokens();
        assert_eq!(get(&url, Auth::Bearer(fresh)).await.status, 401);

        let (status, error) = oauth_token(&sim, "key", "wrong").await;
        assert_eq!(
            (status, error["error"].as_str()),
            (401, Some("invalid_client"))
        );
        let response = reqwest::Client::new()
            .post(sim.bitbucket_oauth_url())
            .basic_auth("key", Some("secret"))
            .form(&[("grant_type", "password")])
            .send()
            .await
            .expect("request goes through");
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(sim.stats().bitbucket_token_requests, 4);
        assert_eq!(sim.bitbucket_requests_by_credential()["consumer"], 1);
    }

    #[tokio::test]
    async fn api_tokens_only_as_basic_and_dc_tokens_not_on_cloud() {
        let sim = start(one_repo(vec![]), all_kinds(Duration::from_secs(60))).await;
        let url = list_url(&sim, "");
        let answer = get(&url, Auth::Basic("ci@example.com", "api-token")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-ratelimit-limit"), None);
        let answer = get(&url, Auth::Bearer("api-token")).await;
        assert_eq!(answer.status, 401);
        assert_eq!(
            answer.json()["error"]["message"],
            "Token is invalid, expired, or not supported for this endpoint."
        );
        assert_eq!(
            get(&url, Auth::Basic("ci@example.com", "nope"))
                .await
                .status,
            401
        );
        assert_eq!(get(&url, Auth::Basic("key", "secret")).await.status, 401);
        assert_eq!(get(&url, Auth::Bearer("dc-token")).await.status, 401);

        let answer = get(&url, Auth::Bearer(TOKEN)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("1000"));
        assert_eq!(answer.header("x-ratelimit-resource"), Some("api"));
        let by_credential = sim.bitbucket_requests_by_credential();
        assert_eq!(by_credential.len(), 2);
        assert_eq!(by_credential["api-token"], 1);
        assert_eq!(by_credential["sim-bitbucket"], 1);
        assert_eq!(sim.stats().bitbucket_requests, 6);
    }

    #[tokio::test]
    async fn rolling_limit_answers_plain_text_429s() {
        for (retry_after, speed) in [(false, 1.0), (true, 100.0)] {
            let options = SimOptions {
                speed,
                bitbucket_limit_per_hour: 3,
                bitbucket_retry_after: retry_after,
                ..SimOptions::default()
            };
            let sim = start(one_repo(vec![]), options).await;
            let url = list_url(&sim, "");
            for _ in 0..3 {
                assert_eq!(get(&url, Auth::Bearer(TOKEN)).await.status, 200);
            }
            let answer = get(&url, Auth::Bearer(TOKEN)).await;
            assert_eq!(answer.status, 429);
            assert_eq!(
                answer.text,
                "Rate limit for this resource has been exceeded"
            );
            assert_eq!(answer.header("content-type"), Some("text/plain"));
            // Three per simulated hour is `3 * speed` per real hour.
            let per_real_hour = format!("{}", 3.0 * speed);
            assert_eq!(
                answer.header("x-ratelimit-limit"),
                Some(per_real_hour.as_str())
            );
            let wait = answer.header("retry-after").map(|v| v.parse::<u64>());
            if retry_after {
                // An hour of simulated time at 100x, less the moments the requests took.
                assert!(matches!(wait, Some(Ok(34..=36))), "{wait:?}");
            } else {
                assert_eq!(wait, None);
            }
            assert_eq!(sim.bitbucket_requests_by_credential()["sim-bitbucket"], 4);
            assert_eq!(sim.bitbucket_max_per_hour(), 4);
        }
    }

    #[tokio::test]
    async fn access_tokens_answer_with_their_own_limit_and_say_when_it_nears() {
        let mut options = all_kinds(Duration::from_secs(60));
        options.bitbucket_credentials.push(credential(
            "ci",
            SimCredentialKind::AccessToken {
                token: "ci-token".to_owned(),
            },
        ));
        options
            .bitbucket_scaled_limits
            .insert("sim-bitbucket".to_owned(), 40);
        let sim = start(workspace(), options).await;
        let url = listing(&sim, "acme", &[("fields", "values.slug")]);
        let near = |answer: &crate::testing::Answer| {
            (
                answer.header("x-ratelimit-limit").map(str::to_owned),
                answer.header("x-ratelimit-resource").map(str::to_owned),
                answer.header("x-ratelimit-nearlimit").map(str::to_owned),
            )
        };
        let says = |limit: &str, near: &str| {
            (
                Some(limit.to_owned()),
                Some("api".to_owned()),
                Some(near.to_owned()),
            )
        };
        // 40 an hour: fewer than a fifth (8) left from the 33rd request on.
        for n in 1..=32 {
            let answer = get(&url, Auth::Bearer(TOKEN)).await;
            assert_eq!(answer.status, 200);
            assert_eq!(near(&answer), says("40", "false"), "request {n}");
        }
        for _ in 33..=40 {
            assert_eq!(
                near(&get(&url, Auth::Bearer(TOKEN)).await),
                says("40", "true")
            );
        }
        let refused = get(&url, Auth::Bearer(TOKEN)).await;
        assert_eq!(refused.status, 429);
        assert_eq!(near(&refused), says("40", "true"));
        // The workspace grows: the higher limit is said at once and takes more in this hour.
        sim.set_bitbucket_scaled_limit("sim-bitbucket", 80).unwrap();
        let answer = get(&url, Auth::Bearer(TOKEN)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(near(&answer), says("80", "false"));
        assert!(sim.set_bitbucket_scaled_limit("api-token", 80).is_err());
        // Even a 404 tells; another access token has its own, unscaled, budget.
        let answer = get(&listing(&sim, "nobody", &[]), Auth::Bearer("ci-token")).await;
        assert_eq!(answer.status, 404);
        assert_eq!(near(&answer), says("1000", "false"));
        // Other kinds of credential get no such headers.
        let answer = get(&url, Auth::Basic("ci@example.com", "api-token")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(near(&answer), (None, None, None));
        let (_, grant) = oauth_token(&sim, "key", "secret").await;
        let oauth = grant["access_token"].as_str().expect("access_token");
        let answer = get(&url, Auth::Bearer(oauth)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(near(&answer), (None, None, None));
        assert_eq!(sim.bitbucket_requests_by_credential()["sim-bitbucket"], 42);
    }

    #[tokio::test]
    async fn only_access_tokens_may_have_scaled_limits() {
        for name in ["api-token", "consumer", "dc", "nobody"] {
            let mut options = all_kinds(Duration::from_secs(60));
            options
                .bitbucket_scaled_limits
                .insert(name.to_owned(), 2500);
            let refused = Simulator::start(one_repo(vec![]), options).await;
            assert!(
                refused.is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidInput),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn fault_knobs_answer_as_asked_then_recover() {
        let sim = start(one_repo(vec![build(1, 0.0, vec![])]), SimOptions::default()).await;
        let url = list_url(&sim, "");

        sim.fail_next_bitbucket_calls(2, BitbucketFault::ServerError);
        for _ in 0..2 {
            let answer = get(&url, Auth::Bearer(TOKEN)).await;
            assert_eq!(answer.status, 503);
            assert_eq!(answer.json()["type"], "error");
        }
        let date = "Wed, 21 Oct 2026 07:28:00 GMT";
        sim.fail_next_bitbucket_calls(
            1,
            BitbucketFault::RateLimited {
                retry_after: Some(date.to_owned()),
            },
        );
        let answer = get(&url, Auth::Bearer(TOKEN)).await;
        assert_eq!(
            (answer.status, answer.header("retry-after")),
            (429, Some(date))
        );
        assert_eq!(
            answer.text,
            "Rate limit for this resource has been exceeded"
        );

        sim.fail_next_bitbucket_calls(1, BitbucketFault::Malformed);
        let answer = get(&url, Auth::Bearer(TOKEN)).await;
        assert_eq!(answer.status, 200);
        assert!(serde_json::from_str::<Value>(&answer.text).is_err());
        assert!(answer.text.starts_with('{'));

        sim.fail_next_bitbucket_calls(1, BitbucketFault::Html);
        let answer = get(&url, Auth::Bearer(TOKEN)).await;
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html"))
        );
        assert!(answer.text.contains("<html"));

        sim.fail_next_bitbucket_calls(1, BitbucketFault::Slow(Duration::from_millis(150)));
        let started = Instant::now();
        let answer = get(&url, Auth::Bearer(TOKEN)).await;
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(answer.json()["size"], 1);

        // The storm 429s everything until it is called off.
        sim.set_bitbucket_faults(BitbucketFaults {
            storm: Some((0.0, 1.0e9)),
            ..BitbucketFaults::default()
        });
        let answer = get(&url, Auth::Bearer(TOKEN)).await;
        assert_eq!((answer.status, answer.header("retry-after")), (429, None));
        sim.set_bitbucket_faults(BitbucketFaults {
            malformed_rate: 1.0,
            ..BitbucketFaults::default()
        });
        assert!(serde_json::from_str::<Value>(&get(&url, Auth::Bearer(TOKEN)).await.text).is_err());
        sim.set_bitbucket_faults(BitbucketFaults::default());
        assert_eq!(get_json(&url).await.0, 200);
        assert_eq!(sim.bitbucket_requests_by_credential()["sim-bitbucket"], 9);
        assert_eq!(sim.bitbucket_max_per_hour(), 9);
    }

    #[tokio::test]
    async fn refuses_twin_credential_names() {
        let mut options = SimOptions::default();
        options.bitbucket_credentials.push(credential(
            "sim-bitbucket",
            SimCredentialKind::DataCenterToken {
                token: "x".to_owned(),
            },
        ));
        let refused = Simulator::start(one_repo(vec![]), options).await;
        assert!(refused.is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidInput));
    }
}
