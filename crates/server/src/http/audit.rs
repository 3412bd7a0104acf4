//! `GET /api/audit`: the caller's merchant's audit log, newest first, with filters and a cursor.
//! Rows appear as soon as their transaction commits; `seq` is filled in by the sealer about a
//! second later, once the row is part of the tamper-evident chain.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use jinliu_domain::AuditId;
use jinliu_store::{AuditEntry, AuditFilter};
use serde::Serialize;
use utoipa::ToSchema;

use super::dto::ok;
use super::error::ApiError;
use super::extract::Caller;
use super::idempotency::respond;
use super::validate;
use crate::state::AppState;

/// One audit row.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryDto {
    /// `aud_…`
    pub id: String,
    /// Position in the chain, once sealed.
    pub seq: Option<i64>,
    /// RFC 3339 UTC.
    pub at: String,
    /// `user`, `key`, `provider`, `cli`, `system` or `anonymous`.
    pub actor_type: String,
    /// User or key id, provider account, worker.
    pub actor_id: Option<String>,
    /// The user's role.
    pub role: Option<String>,
    /// `payment.create`, `refund.create`, `key.revoke`, `user.login`, …
    pub action: String,
    /// `order`, `payment`, `refund`, `api_key`, `user`, …
    pub target_type: String,
    /// The target's id.
    pub target_id: String,
    /// The target after the change (redacted summary).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// SHA-256 of `detail`.
    pub digest: String,
    /// `ok`, `no_change` or `refused:<code>`.
    pub outcome: String,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

impl From<AuditEntry> for AuditEntryDto {
    fn from(e: AuditEntry) -> Self {
        AuditEntryDto {
            at: chrono::DateTime::from_timestamp_millis(e.at)
                .map(jinliu_domain::format_time)
                .unwrap_or_default(),
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
            id: e.id,
            seq: e.seq,
            actor_type: e.actor_type,
            actor_id: e.actor_id,
            role: e.role,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            digest: e.digest,
            outcome: e.outcome,
            request_id: e.request_id,
            ip: e.ip,
            user_agent: e.user_agent,
        }
    }
}

/// A page of audit rows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPageDto {
    /// Newest first.
    pub items: Vec<AuditEntryDto>,
    /// Page size.
    pub limit: u64,
    /// Whether older rows follow (pass the last item's id as `before`).
    pub has_more: bool,
}

/// The merchant's audit log.
#[utoipa::path(get, path = "/api/audit", tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "A user or key id"),
        ("action" = Option<String>, Query, description = "e.g. payment.create"),
        ("targetType" = Option<String>, Query, description = "e.g. payment"),
        ("targetId" = Option<String>, Query, description = "The target's id"),
        ("from" = Option<String>, Query, description = "On/after: YYYY-MM-DD in the business time zone, or RFC 3339"),
        ("to" = Option<String>, Query, description = "On/before: YYYY-MM-DD (whole day included), or RFC 3339 (exclusive)"),
        ("before" = Option<String>, Query, description = "Cursor: rows older than this aud_ id"),
        ("limit" = Option<u64>, Query, description = "1–200 (default 50)"),
    ),
    responses((status = 200, description = "A page, newest first", body = AuditPageDto), (status = 400, description = "Bad filter")))]
pub async fn list(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be a whole number in 1–200"))?,
    };
    let before_id = match q.get("before") {
        None => None,
        Some(v) => Some(
            AuditId::parse(v)
                .ok_or_else(|| ApiError::bad_request("before must be an aud_ id"))?
                .to_string(),
        ),
    };
    let tz = app.config.timezone;
    let ms = |v: Option<i64>| v.and_then(chrono::DateTime::from_timestamp_millis);
    let text = |name: &str| {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(128).collect())
    };
    let filter = AuditFilter {
        merchant_id: Some(scope.merchant_id.clone()),
        actor_id: text("actor"),
        action: text("action"),
        target_type: text("targetType"),
        target_id: text("targetId"),
        from: ms(validate::time_bound(tz, "from", q.get("from"), false)?),
        to: ms(validate::time_bound(tz, "to", q.get("to"), true)?),
        before_id,
        // One more than asked, to know whether another page follows.
        limit: limit + 1,
    };
    let mut rows = app.store.audit_entries(&filter).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let page = AuditPageDto {
        items: rows.into_iter().map(AuditEntryDto::from).collect(),
        limit,
        has_more,
    };
    Ok(respond(ok(200, page, None)))
}
