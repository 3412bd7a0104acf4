//! `/api/merchant`: the caller's merchant and its settings — default currency, time zone,
//! default provider per currency, amount limits — and the seed-000 notify secret (shown once).
//! The id and status are not the merchant's to change (a body naming them is refused).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use jinliu_domain::{Currency, Merchant, Money};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::dto::ok;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use super::idempotency::respond;
use super::validate;
use crate::state::AppState;

/// The merchant as its own staff see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MerchantDto {
    /// `mer_…`
    pub id: String,
    /// Shown on the checkout page.
    pub name: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Orders that name no currency use it.
    #[schema(value_type = String)]
    pub default_currency: Currency,
    /// IANA zone of the business day (date filters, reports).
    pub timezone: String,
    /// Provider per currency for payments that name none (the server's default otherwise).
    pub default_providers: BTreeMap<String, String>,
    /// Largest payment per currency, in major units (the server's limit applies too).
    #[schema(value_type = Object)]
    pub amount_limits: Box<RawValue>,
    /// Whether a seed-000 notify secret is set (its value is shown only when generated).
    pub notify_secret_set: bool,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

impl From<&Merchant> for MerchantDto {
    fn from(m: &Merchant) -> Self {
        let limits: Vec<String> = m
            .settings
            .max_amount_minor
            .iter()
            .filter_map(|(code, minor)| {
                let c: Currency = code.parse().ok()?;
                Some(format!("\"{code}\":{}", jinliu_domain::money::format_minor(*minor, c)))
            })
            .collect();
        MerchantDto {
            id: m.id.to_string(),
            name: m.name.clone(),
            status: m.status.clone(),
            default_currency: m.default_currency,
            timezone: m.timezone.clone(),
            default_providers: m.settings.default_providers.clone(),
            amount_limits: RawValue::from_string(format!("{{{}}}", limits.join(",")))
                .unwrap_or_else(|_| RawValue::NULL.to_owned()),
            notify_secret_set: m.notify_secret.is_some(),
            updated_at: jinliu_domain::format_time(m.updated_at),
        }
    }
}

/// `PATCH /api/merchant`: only the fields sent change; `null` in a map removes that entry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateMerchantBody {
    /// 1–200 characters.
    pub name: Option<String>,
    /// ISO 4217.
    pub default_currency: Option<String>,
    /// IANA zone, e.g. `Asia/Hong_Kong`.
    pub timezone: Option<String>,
    /// `{ "TWD": "ecpay", "HKD": null }`.
    pub default_providers: Option<BTreeMap<String, Option<String>>>,
    /// `{ "TWD": 50000, "HKD": null }` in major units.
    #[schema(value_type = Option<Object>)]
    pub amount_limits: Option<BTreeMap<String, Option<jinliu_domain::MajorAmount>>>,
}

/// The notify secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifySecretDto {
    /// Sign seed-000 relay notifications with it: `X-Signature` = hex HMAC-SHA256(secret, raw body).
    pub notify_secret: String,
}

/// The caller's merchant and its settings.
#[utoipa::path(get, path = "/api/merchant", tag = "merchant",
    responses((status = 200, description = "The merchant", body = MerchantDto)))]
pub async fn get(State(app): State<AppState>, Authenticated(caller): Authenticated) -> Result<Response, ApiError> {
    let m = app
        .store
        .merchant(&caller.merchant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))?;
    Ok(respond(ok(200, MerchantDto::from(&m), None)))
}

/// Change the merchant's settings.
#[utoipa::path(patch, path = "/api/merchant", tag = "merchant", request_body = UpdateMerchantBody,
    responses((status = 200, description = "The merchant after the change", body = MerchantDto),
        (status = 400, description = "Unknown field (id and status cannot be set)"), (status = 422, description = "Invalid value")))]
pub async fn update(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    body: ApiJson<UpdateMerchantBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let mut m = app
        .store
        .merchant(&caller.merchant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))?;
    let currency = |field: &str, code: &str| -> Result<Currency, ApiError> {
        code.parse::<Currency>()
            .map_err(|e| ApiError::unprocessable("unsupported_currency", format!("{field}: {e}")))
    };
    if let Some(name) = b.name {
        validate::text("name", &name, 1, 200)?;
        m.name = name;
    }
    if let Some(code) = b.default_currency {
        m.default_currency = currency("defaultCurrency", &code)?;
    }
    if let Some(tz) = b.timezone {
        let zone: chrono_tz::Tz = tz
            .parse()
            .map_err(|_| validate::failed("timezone", "not an IANA time zone"))?;
        m.timezone = zone.name().to_owned();
    }
    for (code, provider) in b.default_providers.unwrap_or_default() {
        let c = currency("defaultProviders", &code)?;
        match provider {
            None => {
                m.settings.default_providers.remove(c.code());
            }
            Some(p) if jinliu_providers::PROVIDER_IDS.contains(&p.as_str()) => {
                m.settings.default_providers.insert(c.code().to_owned(), p);
            }
            Some(p) => {
                return Err(
                    ApiError::unprocessable("unknown_provider", format!("unknown provider {p:?}"))
                        .with_details(serde_json::json!({ "providers": jinliu_providers::PROVIDER_IDS })),
                );
            }
        }
    }
    for (code, amount) in b.amount_limits.unwrap_or_default() {
        let c = currency("amountLimits", &code)?;
        match amount {
            None => {
                m.settings.max_amount_minor.remove(c.code());
            }
            Some(a) => {
                let money = Money::parse_major(&a.0, c, app.config.amount_limit)?;
                m.settings.max_amount_minor.insert(c.code().to_owned(), money.minor());
            }
        }
    }
    m.updated_at = app.clock.now();
    let m = app.store.update_merchant(&m).await?;
    // Credentials verified on this node carry the old settings; other nodes see the change
    // within the 30 s of their caches.
    app.auth.forget_all();
    Ok(respond(ok(200, MerchantDto::from(&m), None)))
}

/// Generate a new seed-000 notify secret for this merchant (the old one stops working).
#[utoipa::path(post, path = "/api/merchant/notify-secret", tag = "merchant",
    responses((status = 201, description = "The new secret, shown once", body = NotifySecretDto)))]
pub async fn rotate_notify_secret(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let mut m = app
        .store
        .merchant(&caller.merchant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))?;
    let secret = format!("nsk_{}", hex::encode(rand::random::<[u8; 32]>()));
    m.notify_secret = Some(app.sealer.seal(secret.as_bytes(), &notify_secret_aad(&m.id)));
    m.updated_at = app.clock.now();
    app.store.update_merchant(&m).await?;
    Ok(respond(ok(201, NotifySecretDto { notify_secret: secret }, None)))
}

/// The associated data that binds a sealed notify secret to its merchant's row.
pub fn notify_secret_aad(id: &jinliu_domain::MerchantId) -> String {
    format!("merchants.notify_secret:{id}")
}
