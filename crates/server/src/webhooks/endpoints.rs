//! The endpoint service: validates what a merchant asks for, makes and seals secrets, and calls
//! the store. The HTTP handlers and the `jinliu webhook` commands both go through here, so the
//! rules (URL shape, address policy, known event types, the per-merchant limit) are one.

use axum::http::StatusCode;
use chrono::Duration;
use jinliu_domain::webhook::{MAX_ENDPOINTS, ROTATION_OVERLAP_HOURS, WebhookEndpoint};
use jinliu_domain::{EndpointId, EventType, MerchantId, Timestamp};
use jinliu_store::{EndpointPatch, NewEndpoint, Scope, Store};
use serde_json::json;

use super::guard::Policy;
use super::sign;
use crate::http::error::ApiError;
use crate::http::validate;
use crate::secrets::Sealer;

/// What the service needs: the store, the sealer and the test-mode address policy.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The database.
    pub store: &'a Store,
    /// Seals secrets at rest.
    pub sealer: &'a Sealer,
    /// Whether test-mode endpoints may target loopback.
    pub test_loopback: bool,
}

/// What a merchant sends to create an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// Where to send.
    pub url: String,
    /// Event type names; `None` for all.
    pub events: Option<Vec<String>>,
    /// A note.
    pub description: Option<String>,
}

/// The associated data binding a sealed secret to its merchant and endpoint: a sealed value
/// copied into another endpoint's row does not open.
pub fn secret_aad(merchant: &MerchantId, endpoint: &EndpointId) -> String {
    format!("webhook_endpoints.secret:{merchant}:{endpoint}")
}

/// The address policy of a mode.
pub fn policy(livemode: bool, test_loopback: bool) -> Policy {
    if livemode {
        Policy::LIVE
    } else {
        Policy {
            allow_loopback: test_loopback,
        }
    }
}

/// Parses and checks an endpoint URL: absolute http(s), at most 2048 characters, no user name or
/// password (they would be stored and shown in plain text), https in live mode, and an IP
/// literal only where the mode's policy allows that address. Names are checked at connect time.
pub fn parse_url(text: &str, livemode: bool, test_loopback: bool) -> Result<String, ApiError> {
    validate::outbound_url(
        "url",
        text,
        livemode,
        policy(livemode, test_loopback),
        "live-mode endpoints must use https",
    )
    .map(|url| url.to_string())
}

/// Parses event type names: each must be one jinliu emits; duplicates collapse; an empty list is
/// refused (leave the field out, or send null, to hear every type).
pub fn parse_events(names: Option<Vec<String>>) -> Result<Option<Vec<EventType>>, ApiError> {
    let Some(names) = names else { return Ok(None) };
    if names.is_empty() {
        return Err(validate::failed(
            "events",
            "must list at least one event type (leave it out for all types)",
        ));
    }
    let mut out = Vec::new();
    for n in names {
        let t = EventType::parse(&n).ok_or_else(|| {
            ApiError::unprocessable("invalid_event_type", format!("{n:?} is not an event type"))
                .with_details(json!({ "field": "events", "eventTypes": EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>() }))
        })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(Some(out))
}

/// Creates an endpoint; returns it with its secret (the only time the secret is shown).
pub async fn create(
    ctx: Ctx<'_>,
    scope: &Scope,
    input: EndpointInput,
    now: Timestamp,
    idem: Option<jinliu_store::IdemRequest<WebhookEndpoint>>,
) -> Result<(WebhookEndpoint, String), ApiError> {
    let url = parse_url(&input.url, scope.livemode, ctx.test_loopback)?;
    let events = parse_events(input.events)?;
    let description = validate::opt_text("description", input.description, 200)?;
    let id = EndpointId::generate();
    let secret = sign::new_secret();
    let sealed = ctx.sealer.seal(secret.as_bytes(), &secret_aad(&scope.merchant_id, &id));
    let new = NewEndpoint {
        id,
        url,
        description,
        events,
        secret_sealed: sealed,
    };
    let ep = ctx
        .store
        .create_webhook_endpoint(scope, new, MAX_ENDPOINTS, now, idem)
        .await
        .map_err(|e| match e {
            jinliu_store::StoreError::LimitReached(_) => ApiError::unprocessable(
                "too_many_endpoints",
                format!("a merchant may have at most {MAX_ENDPOINTS} webhook endpoints in each mode"),
            ),
            other => other.into(),
        })?;
    Ok((ep, secret))
}

/// Changes to an endpoint as sent (`None` = not sent; `Some(None)` = sent as null).
#[derive(Debug, Clone, Default)]
pub struct PatchInput {
    /// A new URL.
    pub url: Option<String>,
    /// New event types; null means all.
    pub events: Option<Option<Vec<String>>>,
    /// A new note; null clears it.
    pub description: Option<Option<String>>,
    /// Disable (`true`) or enable again (`false`, which also forgets the failure streak).
    pub disabled: Option<bool>,
}

/// Applies a change to an endpoint.
pub async fn update(
    ctx: Ctx<'_>,
    scope: &Scope,
    id: &EndpointId,
    input: PatchInput,
    now: Timestamp,
) -> Result<WebhookEndpoint, ApiError> {
    let patch = EndpointPatch {
        url: input
            .url
            .map(|u| parse_url(&u, scope.livemode, ctx.test_loopback))
            .transpose()?,
        events: match input.events {
            None => None,
            Some(list) => Some(parse_events(list)?),
        },
        description: match input.description {
            None => None,
            Some(d) => Some(validate::opt_text("description", d, 200)?),
        },
        enabled: input.disabled.map(|d| !d),
    };
    Ok(ctx.store.update_webhook_endpoint(scope, id, patch, now).await?)
}

/// Rotates the secret: the new one (returned, shown once) signs from now on; the old one signs
/// beside it for 24 hours, so receivers can switch without losing a message.
pub async fn rotate(
    ctx: Ctx<'_>,
    scope: &Scope,
    id: &EndpointId,
    now: Timestamp,
) -> Result<(WebhookEndpoint, String), ApiError> {
    let secret = sign::new_secret();
    let sealed = ctx.sealer.seal(secret.as_bytes(), &secret_aad(&scope.merchant_id, id));
    let ep = ctx
        .store
        .rotate_webhook_secret(scope, id, sealed, now + Duration::hours(ROTATION_OVERLAP_HOURS), now)
        .await?;
    Ok((ep, secret))
}

/// Deletes an endpoint (404 when the caller has none with that id).
pub async fn delete(ctx: Ctx<'_>, scope: &Scope, id: &EndpointId) -> Result<(), ApiError> {
    if ctx.store.delete_webhook_endpoint(scope, id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("webhook_endpoint"))
    }
}

/// The signing keys in force for `ep` at `now`: the current secret, and the previous one during
/// a rotation. A secret that does not open (the master key changed) is an error, never skipped
/// silently.
pub fn signing_keys(sealer: &Sealer, ep: &WebhookEndpoint, now: Timestamp) -> Result<Vec<Vec<u8>>, String> {
    let aad = secret_aad(&ep.merchant_id, &ep.id);
    let open = |sealed: &str| {
        sealer
            .open(sealed, &aad)
            .and_then(|plain| String::from_utf8(plain).ok())
            .and_then(|s| sign::secret_key(&s))
            .ok_or_else(|| "the endpoint's signing secret cannot be decrypted (was the master key changed?)".to_owned())
    };
    let mut keys = vec![open(&ep.secret_sealed)?];
    if ep.previous_secret_active(now)
        && let Some(prev) = &ep.previous_secret_sealed
    {
        keys.push(open(prev)?);
    }
    Ok(keys)
}

/// 409 for work on a disabled endpoint.
pub fn disabled_conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "endpoint_disabled",
        "the endpoint is disabled; enable it first",
    )
}
