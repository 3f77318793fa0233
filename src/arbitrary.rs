//! What the decoders' tests share (test builds only): JSON shaped like what Bitbucket and Zoom
//! send, built from their field names, so that arbitrary documents reach the decoders'
//! conversions rather than stopping at the first unknown key; and a tip to decode statuses at.

use crate::domain::{BuildRef, RefTip};
use proptest::prelude::*;
use serde_json::Value;

/// The tip of `branch` at commit `abc`: where the decoded statuses are said to be found.
pub(crate) fn branch_tip(branch: &str) -> RefTip {
    RefTip {
        git_ref: BuildRef::Branch(branch.into()),
        committed_ms: None,
        commit: "abc".into(),
        message: None,
        author: None,
        author_ids: Default::default(),
    }
}

/// Field names of the Bitbucket (Cloud and Data Center) and Zoom answers bbzoom decodes.
const FIELDS: &[&str] = &[
    "values",
    "next",
    "page",
    "pagelen",
    "size",
    "isLastPage",
    "nextPageStart",
    "start",
    "uuid",
    "build_number",
    "state",
    "name",
    "type",
    "stage",
    "result",
    "target",
    "ref_type",
    "ref_name",
    "selector",
    "pattern",
    "commit",
    "hash",
    "message",
    "author",
    "raw",
    "user",
    "display_name",
    "created_on",
    "completed_on",
    "updated_on",
    "duration_in_seconds",
    "trigger",
    "links",
    "html",
    "href",
    "key",
    "url",
    "refname",
    "full_name",
    "slug",
    "cron_pattern",
    "enabled",
    "id",
    "displayId",
    "latestCommit",
    "dateAdded",
    "duration",
    "buildNumber",
    "description",
    "parent",
    "ref",
    "date",
    "access_token",
    "expires_in",
    "code",
    "message_id",
    "workspace",
    "project",
];

/// Any JSON value: scalars of every kind and size (huge, negative, fractional numbers
/// included), nested in arrays and objects whose keys are mostly [`FIELDS`].
pub(crate) fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        Just(Value::from("2026-10-21T07:28:00Z")),
        Just(Value::from("IN_PROGRESS")),
        Just(Value::from("SUCCESSFUL")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let key = prop_oneof![
            4 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
            1 => any::<String>(),
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}
