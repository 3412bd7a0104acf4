//! Provider notifications: `POST /api/payments/notify/{provider}`, and seed 000's
//! `POST /payments/notify` (the provider named in the body's `provider` field).
//!
//! The adapter verifies the signature over the raw body; only then is anything read or changed.
//! The answer is the exact acknowledgement the provider expects.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jinliu_providers::{InboundNotification, ProviderError};

use super::error::ApiError;
use super::extract::RawBody;
use crate::service;
use crate::state::AppState;

/// A notification for a named provider.
#[utoipa::path(post, path = "/api/payments/notify/{provider}", tag = "notifications",
    params(("provider" = String, Path, description = "Provider id")),
    request_body(content = String, description = "The provider's own format; signed", content_type = "application/json"),
    responses((status = 200, description = "Acknowledged in the provider's format"), (status = 401, description = "Bad signature"), (status = 413, description = "Body over 1 MiB"), (status = 422, description = "Amount differs from the payment")))]
pub async fn for_provider(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    handle(&app, &provider, &headers, body).await
}

/// Seed 000's path: the provider is named in the JSON body.
#[utoipa::path(post, path = "/api/payments/notify", tag = "notifications",
    request_body(content = String, description = "JSON with a provider field; X-Signature header", content_type = "application/json"),
    responses((status = 200, description = "Acknowledged"), (status = 401, description = "Bad signature"), (status = 413, description = "Body over 1 MiB"), (status = 422, description = "Amount differs from the payment")))]
pub async fn seed(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Named {
        provider: String,
    }
    let named: Named = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the notification body must be JSON naming its provider"))?;
    handle(&app, &named.provider, &headers, body).await
}

async fn handle(app: &AppState, provider_id: &str, headers: &HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let provider = app
        .providers
        .get(provider_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_provider", "no such provider"))?;
    let inbound = InboundNotification {
        headers: headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let verified = provider.verify_notification(&inbound).map_err(|e| match e {
        ProviderError::BadNotification(reason) => {
            tracing::warn!(provider = provider_id, %reason, "notification rejected");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "the notification could not be verified",
            )
        }
        other => ApiError::internal(other),
    })?;
    let status = if verified.trusted {
        verified.status
    } else {
        // The notification proves nothing by itself: ask the provider.
        provider.query_payment(&verified.reference).await.map_err(|e| {
            tracing::warn!(provider = provider_id, error = %e, "query after notification failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                "the provider could not be reached",
            )
        })?
    };
    service::apply_notification(app, provider_id, &verified.reference, verified.amount, status).await?;
    Ok((StatusCode::OK, verified.ack).into_response())
}
