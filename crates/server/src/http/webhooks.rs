//! `/api/webhook-endpoints` and `/api/webhook-messages`: a merchant's webhook endpoints (the
//! secret is shown on creation and rotation only), their messages and attempts log, resend and
//! recovery. Thin: parse, call `webhooks::endpoints` or the store, render.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use jinliu_domain::webhook::{MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage};
use jinliu_domain::{EndpointId, MessageId, format_time};
use jinliu_store::{MessageFilter, StoreError};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::dto::{ListDto, ok};
use super::error::ApiError;
use super::extract::{ApiJson, Caller, IdempotencyKey};
use super::idempotency::{self, respond};
use crate::state::AppState;
use crate::webhooks::endpoints::{self, Ctx, EndpointInput, PatchInput};

/// `POST /api/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateEndpointBody {
    /// Where to POST events: https (http in test mode), at most 2048 characters.
    pub url: String,
    /// Event types to receive (e.g. `payment.completed`); leave out for all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// A note (≤ 200 characters).
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /api/webhook-endpoints/{id}`: only the fields sent change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateEndpointBody {
    /// A new URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New event types; `null` for all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    /// A new note; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` stops sending; `false` sends again and forgets the failure streak.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// `POST /api/webhook-endpoints/{id}/recover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecoverBody {
    /// RFC 3339, required: re-queue everything since then (never before the endpoint was
    /// created).
    #[serde(default)]
    pub since: Option<String>,
}

/// A field that is present is `Some`, even when it is `null` (which then means "clear").
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An endpoint as returned (never its secret, except in the answer that made it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointDto {
    /// `ep_…`
    pub id: String,
    /// Where events go.
    pub url: String,
    /// The note.
    pub description: Option<String>,
    /// Event types received; `null` means all.
    pub events: Option<Vec<&'static str>>,
    /// `enabled` or `disabled`.
    pub status: &'static str,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// RFC 3339: start of the current run of failed attempts.
    pub failing_since: Option<String>,
    /// RFC 3339: until when the previous secret also signs (after a rotation).
    pub previous_secret_expires_at: Option<String>,
    /// Test or live events.
    pub livemode: bool,
    /// Increases on every change.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// `whsec_…`: only in the answers to create and rotate-secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointDto {
    fn of(e: &WebhookEndpoint, secret: Option<String>) -> EndpointDto {
        EndpointDto {
            id: e.id.to_string(),
            url: e.url.clone(),
            description: e.description.clone(),
            events: e.events.as_ref().map(|l| l.iter().map(|t| t.as_str()).collect()),
            status: e.status.as_str(),
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since.map(format_time),
            previous_secret_expires_at: e
                .previous_secret_until
                .filter(|_| e.previous_secret_sealed.is_some())
                .map(format_time),
            livemode: e.livemode,
            version: e.version,
            created_at: format_time(e.created_at),
            updated_at: format_time(e.updated_at),
            secret,
        }
    }
}

/// A message as listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    /// `msg_…`, sent as `webhook-id`.
    pub id: String,
    /// `ep_…`
    pub endpoint_id: String,
    /// `evt_…`
    pub event_id: String,
    /// `payment.completed`, …
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    /// Attempts made.
    pub attempts: i64,
    /// RFC 3339, when pending.
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The body sent (in the single-message view).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
    /// Every attempt, oldest first (in the single-message view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptDto>>,
}

impl MessageDto {
    fn of(m: &WebhookMessage, attempts: Option<&[WebhookAttempt]>) -> MessageDto {
        MessageDto {
            id: m.id.to_string(),
            endpoint_id: m.endpoint_id.to_string(),
            event_id: m.event_id.clone(),
            event_type: m.event_type.clone(),
            status: m.status.as_str(),
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at.map(format_time),
            created_at: format_time(m.created_at),
            updated_at: format_time(m.updated_at),
            payload: attempts.and_then(|_| RawValue::from_string(m.payload.clone()).ok()),
            attempt_log: attempts.map(|a| a.iter().map(AttemptDto::from).collect()),
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptDto {
    /// `att_…`
    pub id: String,
    /// RFC 3339.
    pub attempted_at: String,
    /// The HTTP status, when an answer came.
    pub status_code: Option<i32>,
    /// How long it took.
    pub duration_ms: i64,
    /// The first 20 kB of the answer.
    pub response_body: Option<String>,
    /// Why no answer came (timeout, refused address, connection error).
    pub error: Option<String>,
    /// 2xx.
    pub succeeded: bool,
    /// RFC 3339: the retry this attempt scheduled.
    pub next_attempt_at: Option<String>,
}

impl From<&WebhookAttempt> for AttemptDto {
    fn from(a: &WebhookAttempt) -> Self {
        AttemptDto {
            id: a.id.to_string(),
            attempted_at: format_time(a.attempted_at),
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            response_body: a.response_body.clone(),
            error: a.error.clone(),
            succeeded: a.succeeded,
            next_attempt_at: a.next_attempt_at.map(format_time),
        }
    }
}

/// `{ queued }` after a recovery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverDto {
    /// Messages queued again or made.
    pub queued: u64,
}

fn ctx(app: &AppState) -> Ctx<'_> {
    Ctx {
        store: &app.store,
        sealer: &app.sealer,
        test_loopback: app.webhooks.test_loopback(),
    }
}

fn endpoint_id(id: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(id).ok_or_else(|| ApiError::not_found("webhook_endpoint"))
}

fn message_id(id: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(id).ok_or_else(|| ApiError::not_found("webhook_message"))
}

/// A disabled endpoint refuses resend and recovery with 409 `endpoint_disabled`.
fn disabled_or(e: StoreError) -> ApiError {
    match e {
        StoreError::Transition(t) if t.object == "webhook endpoint" => endpoints::disabled_conflict(),
        other => other.into(),
    }
}

/// Create a webhook endpoint; its signing secret is in this answer only.
#[utoipa::path(post, path = "/api/webhook-endpoints", tag = "webhooks", request_body = CreateEndpointBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer (without the secret) for 24 h")),
    responses((status = 201, description = "The endpoint, with `secret` (shown once)", body = EndpointDto),
        (status = 422, description = "Bad URL, unknown event type, address not allowed, or 16 endpoints already")))]
pub async fn create(
    State(app): State<AppState>,
    Caller(scope): Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CreateEndpointBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let input = EndpointInput {
        url: b.url,
        events: b.events,
        description: b.description,
    };
    // A replay answers without the secret: a stored answer never holds one.
    let stored = |ep: &WebhookEndpoint| {
        ok(
            201,
            EndpointDto::of(ep, None),
            Some("webhook endpoint created; its secret was in the first answer only (rotate it if it was lost)"),
        )
    };
    let now = app.clock.now();
    Ok(idempotency::run(
        &app,
        &scope,
        key,
        "POST /api/webhook-endpoints",
        &body.raw,
        |(ep, secret): &(WebhookEndpoint, String)| {
            ok(
                201,
                EndpointDto::of(ep, Some(secret.clone())),
                Some("webhook endpoint created; store the secret now, it is not shown again"),
            )
        },
        |idem| async { endpoints::create(ctx(&app), &scope, input, now, idem.map(|c| c.request(true, stored))).await },
    )
    .await)
}

/// The caller's webhook endpoints (without secrets).
#[utoipa::path(get, path = "/api/webhook-endpoints", tag = "webhooks",
    responses((status = 200, description = "Endpoints", body = Vec<EndpointDto>)))]
pub async fn list(State(app): State<AppState>, Caller(scope): Caller) -> Result<Response, ApiError> {
    let list: Vec<EndpointDto> = app
        .store
        .webhook_endpoints(&scope)
        .await?
        .iter()
        .map(|e| EndpointDto::of(e, None))
        .collect();
    Ok(respond(ok(200, list, None)))
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/api/webhook-endpoints/{id}", tag = "webhooks", params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, description = "The endpoint", body = EndpointDto), (status = 404, description = "No such endpoint")))]
pub async fn get(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ep = app
        .store
        .webhook_endpoint(&scope, &endpoint_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook_endpoint"))?;
    Ok(respond(ok(200, EndpointDto::of(&ep, None), None)))
}

/// Change a webhook endpoint (URL, events, note, disabled).
#[utoipa::path(patch, path = "/api/webhook-endpoints/{id}", tag = "webhooks", request_body = UpdateEndpointBody,
    params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, description = "The endpoint", body = EndpointDto), (status = 404, description = "No such endpoint"),
        (status = 422, description = "Bad URL or event type")))]
pub async fn update(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    body: ApiJson<UpdateEndpointBody>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let b = body.value;
    let input = PatchInput {
        url: b.url,
        events: b.events,
        description: b.description,
        disabled: b.disabled,
    };
    let ep = endpoints::update(ctx(&app), &scope, &id, input, app.clock.now()).await?;
    Ok(respond(ok(200, EndpointDto::of(&ep, None), None)))
}

/// Delete a webhook endpoint with its messages and attempts log.
#[utoipa::path(delete, path = "/api/webhook-endpoints/{id}", tag = "webhooks", params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, description = "Deleted"), (status = 404, description = "No such endpoint")))]
pub async fn delete(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    endpoints::delete(ctx(&app), &scope, &id).await?;
    Ok(respond(ok(200, serde_json::json!({ "id": id, "deleted": true }), None)))
}

/// Replace the signing secret; the old one also signs for 24 hours (two signatures are sent).
#[utoipa::path(post, path = "/api/webhook-endpoints/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, description = "The endpoint, with the new `secret` (shown once)", body = EndpointDto),
        (status = 404, description = "No such endpoint")))]
pub async fn rotate_secret(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let (ep, secret) = endpoints::rotate(ctx(&app), &scope, &id, app.clock.now()).await?;
    Ok(respond(ok(
        200,
        EndpointDto::of(&ep, Some(secret)),
        Some("secret rotated; the previous secret also signs for 24 hours"),
    )))
}

/// An endpoint's messages, newest first.
#[utoipa::path(get, path = "/api/webhook-endpoints/{id}/messages", tag = "webhooks",
    params(("id" = String, Path, description = "ep_…"),
        ("status" = Option<String>, Query, description = "pending, succeeded or failed"),
        ("page" = Option<u64>, Query, description = "1-based page (default 1)"),
        ("limit" = Option<u64>, Query, description = "1–100 (default 20)"),
        ("startingAfter" = Option<String>, Query, description = "Cursor: messages older than this id")),
    responses((status = 200, description = "A page", body = ListDto<MessageDto>), (status = 404, description = "No such endpoint")))]
pub async fn messages(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let num = |name: &str, default: u64, max: u64| -> Result<u64, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::bad_request(format!("{name} must be a whole number in 1–{max}"))),
        }
    };
    let filter = MessageFilter {
        status: match q.get("status") {
            None => None,
            Some(s) => Some(
                MessageStatus::parse(s)
                    .ok_or_else(|| ApiError::bad_request("status must be pending, succeeded or failed"))?,
            ),
        },
        page: num("page", 1, 1_000_000)?,
        limit: num("limit", 20, 100)?,
        starting_after: match q.get("startingAfter") {
            None => None,
            Some(s) => {
                Some(MessageId::parse(s).ok_or_else(|| ApiError::bad_request("startingAfter must be a message id"))?)
            }
        },
    };
    let page = app.store.webhook_messages(&scope, &id, &filter).await?;
    Ok(respond(ok(
        200,
        ListDto {
            items: page.items.iter().map(|m| MessageDto::of(m, None)).collect(),
            page: page.page,
            limit: page.limit,
            total: page.total,
            has_more: page.has_more,
        },
        None,
    )))
}

/// Re-queue everything for an endpoint since a time: failed messages, and events it missed
/// while disabled.
#[utoipa::path(post, path = "/api/webhook-endpoints/{id}/recover", tag = "webhooks", request_body = RecoverBody,
    params(("id" = String, Path, description = "ep_…")),
    responses((status = 202, description = "Queued", body = RecoverDto), (status = 404, description = "No such endpoint"),
        (status = 409, description = "The endpoint is disabled"), (status = 422, description = "Bad `since`")))]
pub async fn recover(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    body: ApiJson<RecoverBody>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    // Another merchant's id answers 404 whatever the body says.
    app.store
        .webhook_endpoint(&scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook_endpoint"))?;
    let now = app.clock.now();
    let since = body
        .value
        .since
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .filter(|t| *t <= now)
        .ok_or_else(|| ApiError::unprocessable("invalid_since", "since must be an RFC 3339 time, not in the future"))?;
    let queued = app
        .store
        .recover_webhook_endpoint(&scope, &id, since, now)
        .await
        .map_err(disabled_or)?;
    app.webhooks.wake();
    Ok(respond(ok(202, RecoverDto { queued }, None)))
}

/// One message with its payload and attempts log.
#[utoipa::path(get, path = "/api/webhook-messages/{id}", tag = "webhooks", params(("id" = String, Path, description = "msg_…")),
    responses((status = 200, description = "The message", body = MessageDto), (status = 404, description = "No such message")))]
pub async fn get_message(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (m, attempts) = app
        .store
        .webhook_message(&scope, &message_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook_message"))?;
    Ok(respond(ok(200, MessageDto::of(&m, Some(&attempts)), None)))
}

/// Send a message again now, with a fresh retry schedule.
#[utoipa::path(post, path = "/api/webhook-messages/{id}/resend", tag = "webhooks", params(("id" = String, Path, description = "msg_…")),
    responses((status = 202, description = "Queued", body = MessageDto), (status = 404, description = "No such message"),
        (status = 409, description = "The endpoint is disabled")))]
pub async fn resend(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let m = app
        .store
        .resend_webhook_message(&scope, &message_id(&id)?, app.clock.now())
        .await
        .map_err(disabled_or)?;
    app.webhooks.wake();
    Ok(respond(ok(202, MessageDto::of(&m, None), None)))
}
