//! Provider notifications:
//! - `POST /api/payments/notify/{provider}/{accountId}` — each provider account's own URL;
//! - `POST /api/payments/notify/{provider}` — the provider's default test account;
//! - `POST /api/payments/webhook/octopus` — seed 004's path (`X-Octopus-Signature`);
//! - `POST /api/payments/notify` — seed 000's relay format, signed `X-Signature` with the
//!   merchant's notify secret.
//!
//! The adapter verifies the signature over the raw body before anything is read or changed; the
//! answer is the exact acknowledgement the provider expects.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jinliu_domain::{AuditActor, Currency, Money, PaymentId};
use jinliu_providers::{InboundNotification, PaymentProvider, ProviderStatus};
use jinliu_store::NotificationKey;
use std::sync::Arc;

use super::error::ApiError;
use super::extract::RawBody;
use crate::service;
use crate::state::AppState;

fn inbound(headers: &HeaderMap, body: Bytes) -> InboundNotification {
    InboundNotification {
        headers: headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_owned())))
            .collect(),
        body: body.to_vec(),
    }
}

fn unknown_account() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_provider", "no such provider account")
}

async fn handle(
    app: &AppState,
    account: Arc<dyn PaymentProvider>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Whatever the notification changes is audited as the provider account's doing.
    let ctx = jinliu_store::audit::current_audit_context().as_actor(
        AuditActor::Provider {
            account: account.account().id.clone(),
        },
        None,
    );
    let ack = jinliu_store::with_audit_context(
        ctx,
        service::receive_notification(app, &account, &inbound(headers, body)),
    )
    .await?;
    Ok((StatusCode::OK, ack).into_response())
}

/// A notification for one provider account.
#[utoipa::path(post, path = "/api/payments/notify/{provider}/{account}", tag = "notifications",
    params(("provider" = String, Path, description = "Provider id"), ("account" = String, Path, description = "Provider account id")),
    request_body(content = String, description = "The provider's own format and signature", content_type = "application/json"),
    responses((status = 200, description = "Acknowledged in the provider's format (`OK`, `1|OK`…)"), (status = 401, description = "Bad signature"),
        (status = 404, description = "Unknown account or payment"), (status = 413, description = "Body over 1 MiB"),
        (status = 422, description = "Amount differs from the payment"), (status = 502, description = "Query-back to the provider failed; the provider retries")))]
pub async fn for_account(
    State(app): State<AppState>,
    Path((provider, account)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let adapter = crate::provider_accounts::adapter_by_id(&app, &account)
        .await?
        .filter(|a| a.id() == provider)
        .ok_or_else(unknown_account)?;
    handle(&app, adapter, &headers, body).await
}

/// A notification for a provider's default test account.
#[utoipa::path(post, path = "/api/payments/notify/{provider}", tag = "notifications",
    params(("provider" = String, Path, description = "Provider id")),
    request_body(content = String, description = "The provider's own format and signature", content_type = "application/json"),
    responses((status = 200, description = "Acknowledged in the provider's format"), (status = 401, description = "Bad signature"),
        (status = 404, description = "Unknown provider or payment"), (status = 422, description = "Amount differs from the payment")))]
pub async fn for_provider(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let adapter = app
        .providers
        .platform()
        .default_for(&provider, false)
        .ok_or_else(unknown_account)?;
    handle(&app, adapter, &headers, body).await
}

/// Seed 004's Octopus webhook path (default Octopus test account).
#[utoipa::path(post, path = "/api/payments/webhook/octopus", tag = "notifications",
    request_body(content = String, description = "Octopus notification; X-Octopus-Signature, X-Octopus-Timestamp", content_type = "application/json"),
    responses((status = 200, description = "Acknowledged"), (status = 401, description = "Bad signature")))]
pub async fn octopus_alias(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let adapter = app
        .providers
        .platform()
        .default_for("octopus", false)
        .ok_or_else(unknown_account)?;
    handle(&app, adapter, &headers, body).await
}

/// Seed 000's relay notification: `{ merchantId, provider, paymentId, eventId, status, amount,
/// currency }`, `X-Signature` = hex HMAC-SHA256 of the raw body under `JINLIU_NOTIFY_SECRET`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedNotification {
    #[serde(default)]
    merchant_id: Option<String>,
    provider: String,
    payment_id: String,
    #[serde(default)]
    event_id: Option<String>,
    status: String,
    amount: jinliu_domain::MajorAmount,
    currency: String,
}

/// Seed 000's path: a relay names the provider and jinliu's payment id, signed with the
/// merchant's notify secret.
#[utoipa::path(post, path = "/api/payments/notify", tag = "notifications",
    request_body(content = String, description = "{ merchantId, provider, paymentId, eventId, status, amount, currency }; X-Signature = hex HMAC-SHA256(notify secret, raw body)", content_type = "application/json"),
    responses((status = 200, description = "`OK`"), (status = 401, description = "Bad or missing signature, or no notify secret configured"),
        (status = 404, description = "Unknown payment"), (status = 422, description = "Amount differs from the payment")))]
pub async fn seed(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the notification could not be verified",
        )
    };
    let signature = headers
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(bad)?;
    // The secret is the payment's merchant's (or the server's): the body is read first only to
    // find that merchant, and nothing in it is acted on before the signature holds. Until then
    // every refusal is the same 401, so an unsigned request learns nothing about payment ids.
    let n: SeedNotification = serde_json::from_slice(&body).map_err(|_| bad())?;
    let id = PaymentId::parse(&n.payment_id).ok_or_else(bad)?;
    let payment = app
        .store
        .payment_unscoped(&id)
        .await?
        .filter(|p| n.merchant_id.as_deref().is_none_or(|m| m == p.merchant_id.as_str()))
        .ok_or_else(bad)?;
    let merchant = app.store.merchant(&payment.merchant_id).await?.ok_or_else(bad)?;
    crate::keyring::ensure_known(&app, merchant.notify_secret.as_deref()).await;
    let secret = match &merchant.notify_secret {
        Some(sealed) => app
            .sealer
            .open(sealed, &super::merchant::notify_secret_aad(&merchant.id))
            .ok_or_else(|| ApiError::internal("a merchant's notify secret does not open with the master key"))?,
        None => app
            .config
            .notify_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec())
            .ok_or_else(bad)?,
    };
    if !verify_hex_hmac(&secret, &body, signature) {
        return Err(bad());
    }
    if payment.provider != n.provider {
        return Err(ApiError::not_found("payment"));
    }
    let currency: Currency = n
        .currency
        .parse()
        .map_err(|e| ApiError::unprocessable("unsupported_currency", format!("{e}")))?;
    let amount = Money::parse_major(&n.amount.0, currency, i64::MAX / 1_000_000)?;
    if amount != payment.amount {
        return Err(ApiError::unprocessable(
            "notification_amount_mismatch",
            "the notified amount differs from the payment",
        ));
    }
    let status = match n.status.as_str() {
        "completed" | "success" | "succeeded" | "paid" => ProviderStatus::Succeeded {
            transaction_id: n.event_id.clone(),
        },
        "failed" => ProviderStatus::Failed { reason: "relay".into() },
        "processing" => ProviderStatus::Processing,
        "expired" => ProviderStatus::Expired,
        "cancelled" => ProviderStatus::Cancelled,
        "pending" => ProviderStatus::Pending,
        other => {
            return Err(ApiError::unprocessable(
                "invalid_status",
                format!("unknown status {other:?}"),
            ));
        }
    };
    let key = NotificationKey {
        provider: payment.provider.clone(),
        account: "seed-000".into(),
        reference: payment.id.to_string(),
        status_code: n.status.clone(),
    };
    let ctx = jinliu_store::audit::current_audit_context().as_actor(
        AuditActor::Provider {
            account: "seed-000".into(),
        },
        Some(payment.merchant_id.clone()),
    );
    jinliu_store::with_audit_context(ctx, service::apply_status(&app, &payment, status, Some(key))).await?;
    Ok((StatusCode::OK, "OK").into_response())
}

fn verify_hex_hmac(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sig).is_ok()
}
