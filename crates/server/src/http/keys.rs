//! `/api/keys`: a merchant's API keys — create (the text is shown once), list, roll with
//! overlap, revoke. Keys are made in the caller's mode (a test credential makes test keys), and a
//! restricted caller cannot make a key that may do more than itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Duration;
use jinliu_domain::{ApiKey, ApiKeyId, ApiKeyKind, Permission};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::ok;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, IdempotencyKey};
use super::idempotency::{self, respond};
use crate::auth::Principal;
use crate::state::AppState;

/// `POST /api/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKeyBody {
    /// `secret` (default) or `publishable`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Restrict a secret key to these permissions (default: everything the caller may do).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// A note.
    #[serde(default)]
    pub description: Option<String>,
    /// Hours until the key stops working (default: never).
    #[serde(default)]
    pub expires_in_hours: Option<i64>,
}

/// `POST /api/keys/{id}/roll`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollKeyBody {
    /// Hours the old key keeps working beside the new one (default 24, 0–168).
    #[serde(default)]
    pub overlap_hours: Option<i64>,
}

/// A key as listed (never its text).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyDto {
    /// `key_…`
    pub id: String,
    /// `secret` or `publishable`.
    pub kind: &'static str,
    /// Live or test mode.
    pub livemode: bool,
    /// The visible start of the key.
    pub prefix: String,
    /// For a restricted key, what it may do.
    pub permissions: Option<Vec<&'static str>>,
    /// The note.
    pub description: Option<String>,
    /// RFC 3339, when it stops working.
    pub expires_at: Option<String>,
    /// RFC 3339, when it was (or will be) revoked.
    pub revoked_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The key itself: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn rfc(t: jinliu_domain::Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl KeyDto {
    fn of(k: &ApiKey, secret: Option<String>) -> KeyDto {
        KeyDto {
            id: k.id.to_string(),
            kind: k.kind.as_str(),
            livemode: k.livemode,
            prefix: k.prefix.clone(),
            permissions: k.permissions.as_ref().map(|ps| ps.iter().map(|p| p.as_str()).collect()),
            description: k.description.clone(),
            expires_at: k.expires_at.map(rfc),
            revoked_at: k.revoked_at.map(rfc),
            created_at: rfc(k.created_at),
            secret,
        }
    }
}

/// The permissions a new key may have: at most what the caller holds.
fn grantable(caller: &Principal, asked: Option<Vec<String>>) -> Result<Option<Vec<Permission>>, ApiError> {
    let Some(list) = asked else {
        // Unrestricted only if the caller holds everything a merchant may do.
        let all = Permission::merchant_all();
        return Ok(if all.iter().all(|p| caller.may(*p)) {
            None
        } else {
            Some(
                caller
                    .permissions
                    .iter()
                    .copied()
                    .filter(|p| !p.is_platform_only())
                    .collect(),
            )
        });
    };
    let mut out = Vec::new();
    for name in list {
        let p = Permission::parse(&name)
            .filter(|p| !p.is_platform_only())
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_permission", format!("{name:?} is not a merchant permission"))
            })?;
        if !caller.may(p) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                format!("you cannot grant `{p}`, which you do not hold"),
            ));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(Some(out))
}

/// Create an API key; its text is in this answer only.
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = CreateKeyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer (without the key's text) for 24 h")),
    responses((status = 201, description = "The key, with `secret` (shown once)", body = KeyDto),
        (status = 403, description = "Granting a permission the caller lacks"), (status = 422, description = "Unknown kind or permission")))]
pub async fn create(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    body: ApiJson<CreateKeyBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let kind = match b.kind.as_deref() {
        None | Some("secret") => ApiKeyKind::Secret,
        Some("publishable") => ApiKeyKind::Publishable,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_key_kind",
                format!("{other:?} is not secret or publishable"),
            ));
        }
    };
    let permissions = match kind {
        ApiKeyKind::Secret => grantable(&caller, b.permissions)?,
        ApiKeyKind::Publishable if b.permissions.is_some() => {
            return Err(ApiError::unprocessable(
                "invalid_permission",
                "publishable keys carry no permissions",
            ));
        }
        ApiKeyKind::Publishable => None,
    };
    let description = super::validate::opt_text("description", b.description, 200)?;
    let now = app.clock.now();
    let expires_at = match b.expires_in_hours {
        None => None,
        Some(h) if (1..=24 * 366).contains(&h) => Some(now + Duration::hours(h)),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_expiry",
                "expiresInHours must be 1–8784",
            ));
        }
    };
    // A replay answers without the key's text: a stored answer never holds a secret.
    let stored = |key: &ApiKey| {
        ok(
            201,
            KeyDto::of(key, None),
            Some("API key created; its text was in the first answer only (roll the key if it was lost)"),
        )
    };
    let scope = caller.scope();
    Ok(idempotency::run(
        &app,
        &scope,
        idempotency_key,
        "POST /api/keys",
        &body.raw,
        |(key, text): &(ApiKey, String)| {
            ok(
                201,
                KeyDto::of(key, Some(text.clone())),
                Some("API key created; store it now, it is not shown again"),
            )
        },
        |idem| async {
            app.auth
                .issue_key_until(
                    &app.store,
                    &caller.merchant_id,
                    kind,
                    caller.livemode,
                    permissions,
                    description,
                    expires_at,
                    now,
                    idem.map(|c| c.request(true, stored)),
                )
                .await
                .map_err(ApiError::from)
        },
    )
    .await)
}

/// The merchant's keys in the caller's mode (without their text).
#[utoipa::path(get, path = "/api/keys", tag = "keys", responses((status = 200, description = "Keys", body = Vec<KeyDto>)))]
pub async fn list(State(app): State<AppState>, Authenticated(caller): Authenticated) -> Result<Response, ApiError> {
    let keys = app.store.api_keys(&caller.merchant_id).await?;
    let list: Vec<KeyDto> = keys
        .iter()
        .filter(|k| k.livemode == caller.livemode)
        .map(|k| KeyDto::of(k, None))
        .collect();
    Ok(respond(ok(200, list, None)))
}

async fn own_key(app: &AppState, caller: &Principal, id: &str) -> Result<ApiKey, ApiError> {
    let id = ApiKeyId::parse(id).ok_or_else(|| ApiError::not_found("key"))?;
    let key = app
        .store
        .api_keys(&caller.merchant_id)
        .await?
        .into_iter()
        .find(|k| k.id == id && k.livemode == caller.livemode)
        .ok_or_else(|| ApiError::not_found("key"))?;
    // A caller manages only keys that may do no more than itself: a key restricted to
    // `keys:manage` must not revoke or roll the merchant's full key.
    if key.granted().iter().any(|p| !caller.may(*p)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "this key may do more than you: you cannot manage it",
        ));
    }
    Ok(key)
}

/// Revoke a key now.
#[utoipa::path(post, path = "/api/keys/{id}/revoke", tag = "keys", params(("id" = String, Path, description = "key_…")),
    responses((status = 200, description = "Revoked", body = KeyDto), (status = 404, description = "No such key"), (status = 409, description = "Already revoked")))]
pub async fn revoke(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = own_key(&app, &caller, &id).await?;
    let now = app.clock.now();
    if !app.store.revoke_api_key(&caller.merchant_id, &key.id, now).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_revoked",
            "the key is already revoked",
        ));
    }
    app.auth.forget_all();
    let key = own_key(&app, &caller, &id).await?;
    Ok(respond(ok(200, KeyDto::of(&key, None), None)))
}

/// Replace a key: a new one with the same kind, permissions and note; the old one keeps working
/// for the overlap, so deployments can switch without downtime.
#[utoipa::path(post, path = "/api/keys/{id}/roll", tag = "keys", request_body = RollKeyBody, params(("id" = String, Path, description = "key_…")),
    responses((status = 201, description = "The new key, with `secret` (shown once)", body = KeyDto), (status = 404, description = "No such key")))]
pub async fn roll(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: ApiJson<RollKeyBody>,
) -> Result<Response, ApiError> {
    let old = own_key(&app, &caller, &id).await?;
    let now = app.clock.now();
    if !old.is_usable(now) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_revoked",
            "the key is revoked or expired",
        ));
    }
    let overlap = body.value.overlap_hours.unwrap_or(24);
    if !(0..=168).contains(&overlap) {
        return Err(ApiError::unprocessable("invalid_overlap", "overlapHours must be 0–168"));
    }
    // The new key may do no more than the caller, whatever the old one could.
    let asked = old
        .permissions
        .as_ref()
        .map(|ps| ps.iter().map(|p| p.as_str().to_owned()).collect());
    let permissions = match old.kind {
        ApiKeyKind::Secret => grantable(&caller, asked)?,
        ApiKeyKind::Publishable => None,
    };
    let (key, text) = app
        .auth
        .issue_key_until(
            &app.store,
            &caller.merchant_id,
            old.kind,
            caller.livemode,
            permissions,
            old.description.clone(),
            old.expires_at,
            now,
            None,
        )
        .await?;
    app.store
        .revoke_api_key(&caller.merchant_id, &old.id, now + Duration::hours(overlap))
        .await?;
    app.auth.forget_all();
    Ok(respond(ok(
        201,
        KeyDto::of(&key, Some(text)),
        Some("API key rolled; the old key stops working after the overlap"),
    )))
}
