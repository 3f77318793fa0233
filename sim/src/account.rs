//! The account's REST calls a Server-to-Server OAuth app makes besides chat events: a user by
//! id or e-mail address (`GET /v2/users/{userId}`) and creating a meeting
//! (`POST /v2/users/{userId}/meetings`), with Zoom's answers as its API reference gives them:
//! 201 with the meeting (`id`, `join_url`, `start_url`, `password`, ...), 404 code 1001 for a
//! user the account does not have, 401 code 124 for a token that is not valid, 400 code 4711
//! for one without the scope, 429 past the per-user daily limit of meeting creations (Zoom's
//! "Rate limits" page: 100 a day per user, reset at 00:00 UTC) and on demand.
//!
//! Every meeting created is kept ([`super::Simulator::meetings`]) with its host's start link,
//! so tests can check that it went nowhere.

use super::zoom::{self, ZoomError};
use super::{Inner, SimPerson, State as Shared, bearer_token};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Simulated seconds in a day, the period of [`crate::SimEventsApp::meetings_per_day`].
const DAY: f64 = 86_400.0;

/// The routes of this module, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/v2/users/{user_id}", get(user))
        .route("/v2/users/{user_id}/meetings", post(create_meeting))
}

/// A meeting the simulated Zoom created, as a test reads it back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimMeeting {
    /// The meeting id (11 digits).
    pub id: u64,
    /// Who hosts it (a user id).
    pub host_id: String,
    pub topic: String,
    /// 1 instant, 2 scheduled, 3 and 8 recurring.
    pub meeting_type: u64,
    /// The participants' link, with the passcode.
    pub join_url: String,
    /// The host's link: whoever holds it starts the meeting as its host. It must never show
    /// anywhere but in the answer to the creation.
    pub start_url: String,
    pub password: String,
    /// Simulated second of the creation.
    pub created_at: f64,
}

/// What a meeting creation meets instead, on demand ([`super::Simulator::fail_next_meetings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimMeetingFault {
    /// 429, with `Retry-After` verbatim when given.
    RateLimited { retry_after: Option<String> },
    /// 503.
    Unavailable,
}

/// The account REST side's share of the simulator's state.
#[derive(Default)]
pub(super) struct Account {
    pub(super) meetings: Vec<SimMeeting>,
    /// Creations still to meet a fault, and which.
    pub(super) faults: u32,
    pub(super) fault: Option<SimMeetingFault>,
    /// Requests to these calls, errors included.
    pub(super) requests: u64,
}

/// The scopes any of which allow a call, as Zoom lists them in its refusal.
type Scopes = &'static [&'static str];

const USER_SCOPES: Scopes = &["user:read:user:admin", "user:read:admin"];
const MEETING_SCOPES: Scopes = &["meeting:write:meeting:admin", "meeting:write:admin"];
/// For `me`, the user's own scope does too.
const OWN_MEETING_SCOPES: Scopes = &[
    "meeting:write:meeting:admin",
    "meeting:write:admin",
    "meeting:write:meeting",
];

/// The checks every call of this module meets first, in Zoom's order: outage, token, scope.
/// `Some` is the refusal to answer.
fn refusal(
    inner: &Inner,
    state: &mut Shared,
    headers: &HeaderMap,
    scopes: Scopes,
) -> Option<Response> {
    state.account.requests += 1;
    if zoom::in_outage(inner, state, inner.clock.now()) {
        state.stats.zoom_unavailable += 1;
        return Some(zoom::bad_gateway());
    }
    let token = bearer_token(headers);
    let events = token.and_then(|t| state.events.tokens.get(t));
    let unauthorized = |message| ZoomError::new(StatusCode::UNAUTHORIZED, 124, message);
    let missing_scope = ZoomError::new(
        StatusCode::BAD_REQUEST,
        4711,
        format!(
            "Invalid access token, does not contain scopes:[{}].",
            scopes.join(", ")
        ),
    );
    let refused = match events {
        Some(Some(expiry)) if *expiry <= Instant::now() => unauthorized("Access token is expired."),
        Some(_) => {
            let granted = &inner.options.zoom_events.scopes;
            if scopes.iter().any(|s| granted.iter().any(|g| g == s)) {
                return None;
            }
            missing_scope
        }
        // The chatbot's token is a valid one, of scope imchat:bot only.
        None if token.is_some_and(|t| state.tokens.contains_key(t)) => missing_scope,
        None => unauthorized("Invalid access token."),
    };
    Some(refused.into_response())
}

/// The account's user `user_id` names: `me` (the app's user), a user id, or an e-mail
/// address (any case).
fn find_user<'a>(inner: &'a Inner, user_id: &str) -> Result<&'a SimPerson, ZoomError> {
    let wanted = if user_id == "me" {
        inner.options.zoom_events.user_id.as_str()
    } else {
        user_id
    };
    inner
        .options
        .zoom
        .users
        .iter()
        .find(|u| u.user_id == wanted || u.email.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| {
            ZoomError::new(
                StatusCode::NOT_FOUND,
                1001,
                format!("User does not exist: {user_id}."),
            )
        })
}

/// `GET /v2/users/{userId}`.
async fn user(
    State(inner): State<Arc<Inner>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = inner.lock();
    if let Some(refused) = refusal(&inner, &mut state, &headers, USER_SCOPES) {
        return refused;
    }
    let user = match find_user(&inner, &user_id) {
        Ok(user) => user,
        Err(error) => return error.into_response(),
    };
    let (first, last) = user.name.split_once(' ').unwrap_or((&user.name, ""));
    axum::Json(json!({
        "id": user.user_id,
        "first_name": first,
        "last_name": last,
        "display_name": user.name,
        "email": user.email,
        "type": 2,
        "status": "active",
        "role_name": "Member",
        "timezone": "UTC",
        "verified": 1,
        "dept": "",
        "account_id": inner.options.zoom_events.account_id,
        "jid": user.jid(),
    }))
    .into_response()
}

/// `POST /v2/users/{userId}/meetings`.
async fn create_meeting(
    State(inner): State<Arc<Inner>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = inner.lock();
    let scopes = if user_id == "me" {
        OWN_MEETING_SCOPES
    } else {
        MEETING_SCOPES
    };
    if let Some(refused) = refusal(&inner, &mut state, &headers, scopes) {
        return refused;
    }
    match created(&inner, &mut state, &user_id, &body) {
        Ok(answer) => (StatusCode::CREATED, axum::Json(answer)).into_response(),
        Err(error) => {
            zoom::count_refusal(&mut state.stats, error.status);
            let mut response = error.into_response();
            zoom::add_tracking_id(&mut response);
            response
        }
    }
}

/// The meeting `body` asks for, created for `user_id`, or Zoom's refusal.
fn created(
    inner: &Inner,
    state: &mut Shared,
    user_id: &str,
    body: &[u8],
) -> Result<Value, ZoomError> {
    if state.account.faults > 0 {
        state.account.faults -= 1;
        match state.account.fault.clone() {
            Some(SimMeetingFault::RateLimited { retry_after }) => {
                let mut error = ZoomError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    429,
                    "You have reached the maximum per-second rate limit for this API. Try again later.",
                );
                if let Some(value) = retry_after {
                    error = error.with_header(RETRY_AFTER, value);
                }
                return Err(error);
            }
            Some(SimMeetingFault::Unavailable) | None => {
                return Err(ZoomError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    503,
                    "Service temporarily unavailable.",
                ));
            }
        }
    }
    let host = find_user(inner, user_id)?.clone();
    let bad = |message: &str| ZoomError::new(StatusCode::BAD_REQUEST, 300, message);
    let request: Value = serde_json::from_slice(body)
        .map_err(|_| bad("Request Body should be a valid JSON object."))?;
    if !request.is_object() {
        return Err(bad("Request Body should be a valid JSON object."));
    }
    let meeting_type = match request.get("type") {
        None => 2,
        Some(kind) => match kind.as_u64() {
            Some(kind @ (1 | 2 | 3 | 8)) => kind,
            _ => return Err(bad("Invalid field: type.")),
        },
    };
    let topic = match request.get("topic") {
        None => "Zoom meeting".to_owned(),
        Some(Value::String(topic)) if topic.chars().count() <= 200 => topic.clone(),
        Some(_) => return Err(bad("Invalid field: topic.")),
    };
    let now = inner.clock.now();
    let day = (now / DAY).floor();
    let today = state
        .account
        .meetings
        .iter()
        .filter(|m| m.host_id == host.user_id && (m.created_at / DAY).floor() == day)
        .count();
    if today >= inner.options.zoom_events.meetings_per_day as usize {
        return Err(ZoomError::new(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "You have reached the maximum daily rate limit for this API. Refer to the \
             response header for details on when you can make another request.",
        )
        .with_header(RETRY_AFTER, inner.clock.rfc3339((day + 1.0) * DAY)));
    }
    let mut rng = rand::rng();
    let id: u64 = rng.random_range(80_000_000_000..99_999_999_999);
    let secret = |n: usize| -> String {
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(n)
            .map(char::from)
            .collect()
    };
    let password = secret(8);
    let encrypted = secret(32);
    let origin = &inner.origin;
    let meeting = SimMeeting {
        id,
        host_id: host.user_id.clone(),
        topic: topic.clone(),
        meeting_type,
        join_url: format!("{origin}/j/{id}?pwd={encrypted}"),
        start_url: format!("{origin}/s/{id}?zak=SIM-HOST-ZAK-{}", secret(48)),
        password: password.clone(),
        created_at: now,
    };
    state.account.meetings.push(meeting.clone());
    let created_at = inner.clock.rfc3339(now);
    Ok(json!({
        "uuid": format!("{}==", secret(22)),
        "id": id,
        "host_id": host.user_id,
        "host_email": host.email,
        "topic": topic,
        "type": meeting_type,
        "status": "waiting",
        "timezone": "UTC",
        "created_at": created_at,
        "start_url": meeting.start_url,
        "join_url": meeting.join_url,
        "password": password,
        "h323_password": password,
        "pstn_password": password,
        "encrypted_password": encrypted,
        "settings": {
            "host_video": false,
            "participant_video": false,
            "join_before_host": false,
            "mute_upon_entry": false,
            "waiting_room": false,
            "approval_type": 2,
            "audio": "both",
            "auto_recording": "none",
        },
        "pre_schedule": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::SimMeetingFault;
    use crate::{Scenario, SimEventsApp, SimOptions, Simulator};
    use serde_json::{Value, json};

    async fn start(events: SimEventsApp) -> Simulator {
        let options = SimOptions {
            zoom_events: events,
            ..SimOptions::default()
        };
        Simulator::start(Scenario { repos: vec![] }, options)
            .await
            .expect("simulator starts")
    }

    /// A token of the Server-to-Server app (`chatbot`: of the chatbot app instead).
    async fn token(sim: &Simulator, chatbot: bool) -> String {
        let options = sim.options();
        let (id, secret, query) = if chatbot {
            let app = &options.zoom;
            (
                &app.client_id,
                &app.client_secret,
                vec![("grant_type", "client_credentials".to_owned())],
            )
        } else {
            let app = &options.zoom_events;
            let grant = vec![
                ("grant_type", "account_credentials".to_owned()),
                ("account_id", app.account_id.clone()),
            ];
            (&app.client_id, &app.client_secret, grant)
        };
        let answer: Value = reqwest::Client::new()
            .post(sim.zoom_oauth_url())
            .query(&query)
            .basic_auth(id, Some(secret))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    async fn call(
        sim: &Simulator,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let url = format!("{}{path}", sim.zoom_api_url());
        let client = reqwest::Client::new();
        let request = match body {
            Some(body) => client.post(url).json(&body),
            None => client.get(url),
        };
        let response = request.bearer_auth(token).send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, response.json().await.unwrap(), retry_after)
    }

    #[tokio::test]
    async fn a_user_is_found_by_id_or_e_mail_with_the_scope() {
        let sim = start(SimEventsApp::default()).await;
        let token = token(&sim, false).await;
        let jane = sim
            .options()
            .zoom
            .users
            .iter()
            .find(|u| u.name == "Jane Dev")
            .unwrap()
            .clone();
        for who in [jane.user_id.clone(), "JANE.DEV@example.com".to_owned()] {
            let (status, user, _) = call(&sim, &token, &format!("/users/{who}"), None).await;
            assert_eq!(status, 200);
            assert_eq!(user["jid"], jane.jid());
            assert_eq!(user["email"], "jane.dev@example.com");
        }
        let (status, error, _) = call(&sim, &token, "/users/nobody@example.com", None).await;
        assert_eq!((status, &error["code"]), (404, &json!(1001)));
        let (status, error, _) = call(&sim, "made-up", "/users/me", None).await;
        assert_eq!((status, &error["code"]), (401, &json!(124)));
        let chatbot = self::token(&sim, true).await;
        let (status, error, _) = call(&sim, &chatbot, "/users/me", None).await;
        assert_eq!((status, &error["code"]), (400, &json!(4711)));
    }

    #[tokio::test]
    async fn an_instant_meeting_is_created_kept_and_limited() {
        let sim = start(SimEventsApp {
            meetings_per_day: 2,
            ..SimEventsApp::default()
        })
        .await;
        let token = token(&sim, false).await;
        let body = json!({"topic": "War room: acme/api main", "type": 1});
        let (status, meeting, _) = call(
            &sim,
            &token,
            "/users/admin@example.com/meetings",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 201);
        assert_eq!(meeting["type"], 1);
        assert_eq!(meeting["host_id"], "sim-admin-user");
        assert_eq!(meeting["topic"], "War room: acme/api main");
        for link in ["join_url", "start_url"] {
            assert!(
                meeting[link]
                    .as_str()
                    .is_some_and(|l| l.starts_with("http")),
                "{link}"
            );
        }
        let kept = sim.meetings();
        assert_eq!(kept.len(), 1);
        assert_eq!(json!(kept[0].id), meeting["id"]);
        assert_eq!(json!(kept[0].start_url), meeting["start_url"]);

        let (status, error, _) = call(
            &sim,
            &token,
            "/users/nobody@example.com/meetings",
            Some(body.clone()),
        )
        .await;
        assert_eq!((status, &error["code"]), (404, &json!(1001)));
        let (status, _, _) =
            call(&sim, &token, "/users/me/meetings", Some(json!({"type": 7}))).await;
        assert_eq!(status, 400);

        sim.fail_next_meetings(
            1,
            SimMeetingFault::RateLimited {
                retry_after: Some("3".into()),
            },
        );
        let (status, _, retry_after) =
            call(&sim, &token, "/users/me/meetings", Some(body.clone())).await;
        assert_eq!((status, retry_after.as_deref()), (429, Some("3")));
        let (status, _, _) = call(&sim, &token, "/users/me/meetings", Some(body.clone())).await;
        assert_eq!(status, 201, "the second of the day");
        let (status, _, retry_after) = call(&sim, &token, "/users/me/meetings", Some(body)).await;
        assert_eq!(status, 429, "the daily limit");
        assert!(retry_after.is_some());
        assert_eq!(sim.meetings().len(), 2);

        let scopeless = start(SimEventsApp {
            scopes: vec!["team_chat:read:user_message:admin".into()],
            ..SimEventsApp::default()
        })
        .await;
        let token = self::token(&scopeless, false).await;
        let (status, error, _) = call(
            &scopeless,
            &token,
            "/users/me/meetings",
            Some(json!({"type": 1})),
        )
        .await;
        assert_eq!((status, &error["code"]), (400, &json!(4711)));
        assert!(scopeless.meetings().is_empty());
    }
}
