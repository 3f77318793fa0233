//! The two Bitbucket APIs the simulator serves, and how each spells an error: what the request
//! gate (`limits`) and the endpoints (`bitbucket`, `datacenter`) both need, so neither reaches
//! into the other.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The two Bitbucket APIs, which accept different credentials and spell errors differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    /// Bitbucket Cloud, under `/2.0`.
    Cloud,
    /// Bitbucket Data Center, under `/dc/rest`.
    DataCenter,
}

/// A Cloud error answer: `{"type":"error","error":{"message","detail"?}}`.
pub(super) fn cloud_error(status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    let mut error = json!({ "message": message });
    if let Some(detail) = detail {
        error["detail"] = json!(detail);
    }
    (
        status,
        axum::Json(json!({ "type": "error", "error": error })),
    )
        .into_response()
}

/// A Data Center error answer: `{"errors":[{"context","message","exceptionName"}]}`.
pub(super) fn datacenter_error(status: StatusCode, message: &str, exception: &str) -> Response {
    let body = json!({
        "errors": [{ "context": null, "message": message, "exceptionName": exception }],
    });
    (status, axum::Json(body)).into_response()
}
