//! The Bitbucket Cloud side of the simulator: the read-only Pipelines endpoints a poller uses
//! (`GET /2.0/repositories/{ws}/{slug}/pipelines` and `.../pipelines/{uuid}`), answering from
//! the scenario as it stands at the current simulated second, in the wire shape of the real
//! service (see `shared/api/bitbucket/samples`).

use super::clock::rfc3339;
use super::{Inner, SimBuild, SimRepo, SimState, bearer_token};
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use std::sync::Arc;
use url::form_urlencoded;

/// Page size when the client names none (as Bitbucket).
const DEFAULT_PAGELEN: usize = 10;
/// Largest page size a client may ask for; above it Bitbucket answers 400.
const MAX_PAGELEN: usize = 100;

/// The Bitbucket routes, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
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
        .route("/2.0/{*rest}", any(unknown))
}

/// A Bitbucket error answer: status plus `{"type":"error","error":{"message","detail"?}}`.
struct BbError {
    status: StatusCode,
    message: &'static str,
    detail: Option<String>,
}

impl BbError {
    fn new(status: StatusCode, message: &'static str) -> BbError {
        BbError {
            status,
            message,
            detail: None,
        }
    }

    fn bad_request(detail: String) -> BbError {
        BbError {
            status: StatusCode::BAD_REQUEST,
            message: "Bad request",
            detail: Some(detail),
        }
    }

    fn repo_not_found() -> BbError {
        BbError::new(StatusCode::NOT_FOUND, "Repository not found")
    }
}

impl IntoResponse for BbError {
    fn into_response(self) -> Response {
        let mut error = json!({ "message": self.message });
        if let Some(detail) = self.detail {
            error["detail"] = json!(detail);
        }
        (
            self.status,
            axum::Json(json!({ "type": "error", "error": error })),
        )
            .into_response()
    }
}

/// An answer: a JSON body with 200, or a Bitbucket error.
fn respond(result: Result<Value, BbError>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Counts the request and checks its token: what every Bitbucket endpoint does first.
fn admit(inner: &Inner, headers: &HeaderMap) -> Result<(), BbError> {
    inner.lock().stats.bitbucket_requests += 1;
    if bearer_token(headers) == Some(inner.options.bitbucket_token.as_str()) {
        Ok(())
    } else {
        Err(BbError::new(
            StatusCode::UNAUTHORIZED,
            "Access token expired or invalid",
        ))
    }
}

/// The repository and its position in the scenario (which seeds its identifiers).
fn find_repo<'a>(
    inner: &'a Inner,
    workspace: &str,
    slug: &str,
) -> Result<(usize, &'a SimRepo), BbError> {
    // Bitbucket matches workspace and slug case-insensitively.
    inner
        .scenario
        .repos
        .iter()
        .enumerate()
        .find(|(_, r)| {
            r.workspace.eq_ignore_ascii_case(workspace) && r.slug.eq_ignore_ascii_case(slug)
        })
        .ok_or_else(BbError::repo_not_found)
}

/// The decoded query parameters, in order, repeats kept.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The last value of a query parameter, as Bitbucket takes repeated scalars.
fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Whether a partial-response `fields` parameter adds the commit message, e.g.
/// `fields=+values.target.commit.message` (a literal `+` decodes to a space, hence the trim).
fn wants_commit_message(pairs: &[(String, String)]) -> bool {
    pairs
        .iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| v.split(','))
        .any(|f| {
            let f = f.trim();
            !f.starts_with('-') && f.trim_start_matches('+').ends_with("target.commit.message")
        })
}

/// A positive integer query parameter, `default` when absent.
fn positive(pairs: &[(String, String)], key: &str, default: usize) -> Result<usize, BbError> {
    match last(pairs, key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(BbError::bad_request(format!(
                "'{key}' must be a positive integer, not '{v}'"
            ))),
        },
    }
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/pipelines`.
async fn list(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    respond(admit(&inner, &headers).and_then(|()| {
        let Path((workspace, slug)) = path.map_err(|_| BbError::repo_not_found())?;
        list_page(&inner, &workspace, &slug, &uri)
    }))
}

/// One page of a repository's visible pipelines, per the query's paging, sort and filters.
fn list_page(inner: &Inner, workspace: &str, slug: &str, uri: &Uri) -> Result<Value, BbError> {
    let pairs = query_pairs(uri);
    let page = positive(&pairs, "page", 1)?;
    let pagelen = positive(&pairs, "pagelen", DEFAULT_PAGELEN)?;
    if pagelen > MAX_PAGELEN {
        return Err(BbError::bad_request(format!(
            "'pagelen' must be at most {MAX_PAGELEN}, not {pagelen}"
        )));
    }
    // Without a sort Bitbucket lists oldest first; pipelines run once here, so run creation
    // date orders like creation date.
    let newest_first = match last(&pairs, "sort") {
        None | Some("created_on" | "run_creation_date") => false,
        Some("-created_on" | "-run_creation_date") => true,
        Some(other) => {
            return Err(BbError::bad_request(format!(
                "Invalid sort attribute provided '{other}'"
            )));
        }
    };
    let (index, repo) = find_repo(inner, workspace, slug)?;

    let now = inner.clock.now();
    // The typed filters the spec documents that a poller might use.
    let branch = last(&pairs, "target.branch").or(last(&pairs, "target.ref_name"));
    let hash = last(&pairs, "target.commit.hash");
    let mut visible: Vec<&SimBuild> = repo
        .builds
        .iter()
        .filter(|b| b.created_at <= now)
        .filter(|b| branch.is_none_or(|name| b.branch == name))
        .filter(|b| hash.is_none_or(|h| b.commit == h))
        .collect();
    visible.sort_by(|a, b| {
        a.created_at
            .total_cmp(&b.created_at)
            .then(a.number.cmp(&b.number))
    });
    if newest_first {
        visible.reverse();
    }

    let with_message = wants_commit_message(&pairs);
    let size = visible.len();
    let start = (page - 1).saturating_mul(pagelen);
    let values: Vec<Value> = visible
        .iter()
        .skip(start)
        .take(pagelen)
        .map(|b| pipeline_json(inner, index, repo, b, now, with_message))
        .collect();
    let mut body = json!({ "page": page, "pagelen": pagelen, "size": size, "values": values });
    if start.saturating_add(pagelen) < size {
        // The same request with the next page number, as an absolute URL.
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "page") {
            next.append_pair(k, v);
        }
        next.append_pair("page", &(page + 1).to_string());
        body["next"] = json!(format!("{}{}?{}", inner.origin, uri.path(), next.finish()));
    }
    Ok(body)
}

/// `GET /2.0/repositories/{workspace}/{repo_slug}/pipelines/{pipeline_uuid}`.
async fn get_one(
    State(inner): State<Arc<Inner>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    respond(admit(&inner, &headers).and_then(|()| {
        let Path((workspace, slug, uuid)) = path.map_err(|_| BbError::repo_not_found())?;
        let (index, repo) = find_repo(&inner, &workspace, &slug)?;
        let now = inner.clock.now();
        let build = repo
            .builds
            .iter()
            .find(|b| {
                b.created_at <= now && pipeline_uuid(index, b.number).eq_ignore_ascii_case(&uuid)
            })
            .ok_or(BbError::new(StatusCode::NOT_FOUND, "Pipeline not found"))?;
        let with_message = wants_commit_message(&query_pairs(&uri));
        Ok(pipeline_json(&inner, index, repo, build, now, with_message))
    }))
}

/// Any other path under `/2.0`: still counted and token-checked before the 404, as upstream.
async fn unknown(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    match admit(&inner, &headers) {
        Ok(()) => BbError::new(StatusCode::NOT_FOUND, "Resource not found"),
        Err(denied) => denied,
    }
    .into_response()
}

/// A pipeline object as `GET .../pipelines/{uuid}` spells it, at simulated second `now`.
fn pipeline_json(
    inner: &Inner,
    index: usize,
    repo: &SimRepo,
    build: &SimBuild,
    now: f64,
    with_message: bool,
) -> Value {
    let origin = &inner.origin;
    let (ws, slug, hash) = (&repo.workspace, &repo.slug, &build.commit);
    let api_repo = format!("{origin}/2.0/repositories/{ws}/{slug}");
    let web_repo = format!("{origin}/{ws}/{slug}");
    let uuid = pipeline_uuid(index, build.number);
    let encoded_uuid = uuid.replace('{', "%7B").replace('}', "%7D");

    let state = build.state_at(now).unwrap_or(SimState::Pending);
    let completed_on = if state.is_terminal() {
        build.finished_at()
    } else {
        None
    };
    // Duration keeps growing while the pipeline runs and freezes when it completes.
    let until = completed_on.unwrap_or(now);
    let creator = user_json(origin, &build.author);
    let first_successful = state == SimState::Successful
        && !repo
            .builds
            .iter()
            .any(|b| b.number < build.number && b.state_at(now) == Some(SimState::Successful));

    let mut commit = json!({
        "type": "commit",
        "hash": hash,
        "links": {
            "self": { "href": format!("{api_repo}/commit/{hash}") },
            "html": { "href": format!("{web_repo}/commits/{hash}") },
        },
    });
    if with_message {
        commit["message"] = json!(build.message);
    }
    let mut pipeline = json!({
        "type": "pipeline",
        "uuid": uuid,
        "repository": {
            "name": slug,
            "type": "repository",
            "full_name": format!("{ws}/{slug}"),
            "links": {
                "self": { "href": api_repo },
                "html": { "href": web_repo },
            },
            "uuid": repository_uuid(index),
        },
        "state": state_json(state, &creator),
        "build_number": build.number,
        "creator": creator,
        "created_on": rfc3339(build.created_at),
        "target": {
            "type": "pipeline_ref_target",
            "ref_type": "branch",
            "ref_name": build.branch,
            "selector": { "type": "default" },
            "commit": commit,
        },
        "trigger": { "name": "PUSH", "type": "pipeline_trigger_push" },
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
        pipeline["completed_on"] = json!(rfc3339(at));
    }
    pipeline
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
    let nickname = name.to_lowercase().replace(' ', ".");
    let encoded_uuid = uuid.replace('{', "%7B").replace('}', "%7D");
    json!({
        "display_name": name,
        "uuid": uuid,
        "links": {
            "self": { "href": format!("{origin}/2.0/users/{encoded_uuid}") },
            "html": { "href": format!("{origin}/{encoded_uuid}/") },
        },
        "type": "user",
        "nickname": nickname,
        "account_id": account_id,
    })
}

/// `{uuid}` of a pipeline, stable for (repository position, build number) across runs.
pub(super) fn pipeline_uuid(repo_index: usize, build_number: u64) -> String {
    uuid_from(fnv1a(
        format!("pipeline/{repo_index}/{build_number}").as_bytes(),
    ))
}

fn repository_uuid(repo_index: usize) -> String {
    uuid_from(fnv1a(format!("repository/{repo_index}").as_bytes()))
}

/// A braced, lower-case version-4-looking UUID, as Bitbucket writes them, from a seed.
fn uuid_from(seed: u64) -> String {
    let hi = splitmix(seed);
    let lo = splitmix(hi);
    format!(
        "{{{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}}}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        ((lo >> 48) & 0x3fff) | 0x8000,
        lo & 0xffff_ffff_ffff
    )
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use crate::sim::{Scenario, SimBuild, SimOptions, SimRepo, SimState, Simulator};
    use serde_json::Value;

    const TOKEN: &str = "sim-bitbucket-token";

    fn build(number: u64, created_at: f64, timeline: Vec<(f64, SimState)>) -> SimBuild {
        SimBuild {
            number,
            branch: "main".to_owned(),
            commit: format!("{number:040x}"),
            message: format!("Change {number}\n\nLonger description."),
            author: "Jane Dev".to_owned(),
            created_at,
            timeline,
        }
    }

    fn one_repo(builds: Vec<SimBuild>) -> Scenario {
        Scenario {
            repos: vec![SimRepo {
                workspace: "acme".to_owned(),
                slug: "api".to_owned(),
                builds,
            }],
        }
    }

    async fn start(scenario: Scenario, speed: f64) -> Simulator {
        let options = SimOptions {
            speed,
            ..SimOptions::default()
        };
        Simulator::start(scenario, options)
            .await
            .expect("simulator starts")
    }

    async fn get(url: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request goes through");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    fn list_url(sim: &Simulator, query: &str) -> String {
        format!(
            "{}/repositories/acme/api/pipelines?{query}",
            sim.bitbucket_api_url()
        )
    }

    #[tokio::test]
    async fn paging_newest_first_visits_every_visible_pipeline_once() {
        // Five visible now, one created far in the future.
        let mut builds: Vec<SimBuild> = (1..=5).map(|n| build(n, 0.0, vec![])).collect();
        builds.push(build(6, 1.0e6, vec![]));
        let sim = start(one_repo(builds), 1.0).await;

        let mut seen = Vec::new();
        let mut url = Some(list_url(&sim, "sort=-created_on&pagelen=2"));
        while let Some(next) = url {
            let (status, page) = get(&next).await;
            assert_eq!(status, 200);
            assert_eq!(page["size"], 5);
            assert_eq!(page["pagelen"], 2);
            for value in page["values"].as_array().expect("values") {
                seen.push(value["build_number"].as_u64().expect("build_number"));
            }
            url = page["next"].as_str().map(str::to_owned);
        }
        assert_eq!(seen, vec![5, 4, 3, 2, 1]);
        assert_eq!(sim.stats().bitbucket_requests, 3);
    }

    #[tokio::test]
    async fn without_sort_lists_oldest_first() {
        let builds = (1..=3)
            .map(|n| build(n, f64::from(n as u32), vec![]))
            .collect();
        let sim = start(one_repo(builds), 1000.0).await;
        // Wait (a few real milliseconds) until all three exist.
        while sim.now() < 3.0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let (status, page) = get(&list_url(&sim, "")).await;
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
            vec![(100.0, SimState::Running), (250.0, SimState::Successful)],
        )]);
        let sim = start(scenario.clone(), 1000.0).await;
        let url = format!(
            "{}/repositories/acme/api/pipelines/{}",
            sim.bitbucket_api_url(),
            super::pipeline_uuid(0, 1)
                .replace('{', "%7B")
                .replace('}', "%7D")
        );
        let order = ["PENDING", "IN_PROGRESS", "COMPLETED"];
        let mut seen: Vec<String> = Vec::new();
        let last = loop {
            let before = sim.now();
            let (status, pipeline) = get(&url).await;
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
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
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
        assert_eq!(last["completed_on"], "2026-01-05T09:04:10.000Z");
        assert_eq!(last["first_successful"], true);
    }

    #[tokio::test]
    async fn failed_pipeline_has_the_wire_shape() {
        let scenario = one_repo(vec![build(
            7,
            0.0,
            vec![(0.0, SimState::Running), (0.0, SimState::Failed)],
        )]);
        let sim = start(scenario, 1.0).await;
        let (status, page) = get(&list_url(&sim, "fields=%2Bvalues.target.commit.message")).await;
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
        assert_eq!(pipeline["created_on"], "2026-01-05T09:00:00.000Z");
        assert_eq!(pipeline["completed_on"], "2026-01-05T09:00:00.000Z");
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

        // Without `fields` the message stays out, as upstream.
        let (_, page) = get(&list_url(&sim, "")).await;
        assert!(
            page["values"][0]["target"]["commit"]
                .get("message")
                .is_none()
        );
    }

    #[tokio::test]
    async fn refuses_requests_without_the_token() {
        let sim = start(one_repo(vec![build(1, 0.0, vec![])]), 1.0).await;
        let response = reqwest::get(list_url(&sim, ""))
            .await
            .expect("request goes through");
        assert_eq!(response.status().as_u16(), 401);
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["message"], "Access token expired or invalid");
        assert_eq!(sim.stats().bitbucket_requests, 1);
    }

    #[tokio::test]
    async fn rejects_bad_queries_and_unknown_things() {
        let sim = start(one_repo(vec![build(1, 1.0e6, vec![])]), 1.0).await;
        let (status, body) = get(&list_url(&sim, "pagelen=101")).await;
        assert_eq!(status, 400);
        assert_eq!(body["type"], "error");
        let (status, _) = get(&list_url(&sim, "page=0")).await;
        assert_eq!(status, 400);
        let (status, body) = get(&format!(
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
        let (status, _) = get(&url).await;
        assert_eq!(status, 404);
        assert_eq!(sim.stats().bitbucket_requests, 4);
    }
}
