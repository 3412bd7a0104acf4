//! `/api/provider-accounts`: a merchant's own contracts with providers. Credentials go in and are
//! never shown again (only their names come back); the account's mode is the caller's, never a
//! body field. The rules live in [`crate::provider_accounts`].

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use jinliu_domain::{MerchantProviderAccount, ProviderAccountId, format_time};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::ok;
use super::error::ApiError;
use super::extract::{ApiJson, Caller, IdempotencyKey};
use super::idempotency::{self, respond};
use super::webhooks::present;
use crate::provider_accounts::{self, AccountChange, AccountInput};
use crate::state::AppState;

/// `POST /api/provider-accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateAccountBody {
    /// `kpay`, `tpay`, `octopus` or `ecpay`.
    pub provider: String,
    /// The provider's credentials by name (e.g. KPay: `merchant_id`, `api_key`,
    /// `acquirer_type`); an unknown name is refused with the list of known ones.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// The provider's base URL. Test mode: omit for this server's sandbox. Live mode: required
    /// except for ECPay (its production host); https, never a sandbox or test host.
    #[serde(default)]
    pub base_url: Option<String>,
    /// `true`: take over as the default account for its provider in this mode; `false`: not the
    /// default; omitted: the default only if its provider and mode have none yet.
    #[serde(default)]
    pub default: Option<bool>,
    /// A note for staff.
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /api/provider-accounts/{id}`: only the fields sent change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateAccountBody {
    /// A new full set of credentials (replaces the old set).
    #[serde(default)]
    pub credentials: Option<BTreeMap<String, String>>,
    /// A new base URL; `null` for the default (sandbox in test mode).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub base_url: Option<Option<String>>,
    /// Become (true) or stop being (false) the default for its provider and mode.
    #[serde(default)]
    pub default: Option<bool>,
    /// `true`: no new payments use it (its existing payments still refund and sync).
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new note; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// A provider account as returned: never a credential value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderAccountDto {
    /// `pa_…`
    pub id: String,
    /// Provider id.
    pub provider: String,
    /// Live or test.
    pub livemode: bool,
    /// The provider's base URL; `null` for this server's sandbox.
    pub base_url: Option<String>,
    /// Where the provider must send notifications for this account.
    pub notify_url: String,
    /// The names of the credentials that are set.
    pub credential_keys: Vec<String>,
    /// Whether payments for this provider and mode use it.
    pub default: bool,
    /// `active` or `disabled`.
    pub status: String,
    /// A note.
    pub description: Option<String>,
    /// Bumped by every change.
    pub version: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

impl ProviderAccountDto {
    fn of(app: &AppState, a: &MerchantProviderAccount) -> ProviderAccountDto {
        ProviderAccountDto::under(&app.config.public_url, a)
    }

    fn under(public_url: &str, a: &MerchantProviderAccount) -> ProviderAccountDto {
        ProviderAccountDto {
            id: a.id.to_string(),
            provider: a.provider.clone(),
            livemode: a.livemode,
            base_url: a.base_url.clone(),
            notify_url: format!("{public_url}/api/payments/notify/{}/{}", a.provider, a.id),
            credential_keys: a.credential_keys.clone(),
            default: a.is_default,
            status: a.status.as_str().to_owned(),
            description: a.description.clone(),
            version: a.version,
            created_at: format_time(a.created_at),
            updated_at: format_time(a.updated_at),
        }
    }
}

fn account_id(id: &str) -> Result<ProviderAccountId, ApiError> {
    ProviderAccountId::parse(id).ok_or_else(|| ApiError::not_found("provider_account"))
}

/// Add a provider account (its credentials are sealed and never shown again).
#[utoipa::path(post, path = "/api/provider-accounts", tag = "provider accounts", request_body = CreateAccountBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h")),
    responses((status = 201, description = "The account", body = ProviderAccountDto),
        (status = 400, description = "Unknown field (livemode and merchantId cannot be set)"),
        (status = 409, description = "Live accounts need JINLIU_MASTER_KEY"),
        (status = 422, description = "Unknown provider or credential, unusable credentials, or a base URL not allowed")))]
pub async fn create(
    State(app): State<AppState>,
    Caller(scope): Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CreateAccountBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let input = AccountInput {
        provider: b.provider,
        credentials: b.credentials,
        base_url: b.base_url,
        is_default: b.default,
        description: b.description,
    };
    // The answer holds no secret, so the kept one is the live one.
    let public_url = app.config.public_url.clone();
    let render = move |a: &MerchantProviderAccount| {
        ok(
            201,
            ProviderAccountDto::under(&public_url, a),
            Some("provider account added; its credentials are stored encrypted and not shown again"),
        )
    };
    Ok(idempotency::run(
        &app,
        &scope,
        key,
        "POST /api/provider-accounts",
        &body.raw,
        render.clone(),
        |idem| async { provider_accounts::create(&app, &scope, input, idem.map(|c| c.request(true, render))).await },
    )
    .await)
}

/// The caller's provider accounts in its mode.
#[utoipa::path(get, path = "/api/provider-accounts", tag = "provider accounts",
    responses((status = 200, description = "Accounts", body = Vec<ProviderAccountDto>)))]
pub async fn list(State(app): State<AppState>, Caller(scope): Caller) -> Result<Response, ApiError> {
    let list: Vec<ProviderAccountDto> = app
        .store
        .provider_accounts(&scope)
        .await?
        .iter()
        .map(|a| ProviderAccountDto::of(&app, a))
        .collect();
    Ok(respond(ok(200, list, None)))
}

/// One provider account.
#[utoipa::path(get, path = "/api/provider-accounts/{id}", tag = "provider accounts", params(("id" = String, Path, description = "pa_…")),
    responses((status = 200, description = "The account", body = ProviderAccountDto), (status = 404, description = "No such account")))]
pub async fn get(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let a = app
        .store
        .provider_account(&scope, &account_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("provider_account"))?;
    Ok(respond(ok(200, ProviderAccountDto::of(&app, &a), None)))
}

/// Change a provider account: credentials, base URL, default, disabled, note.
#[utoipa::path(patch, path = "/api/provider-accounts/{id}", tag = "provider accounts", request_body = UpdateAccountBody,
    params(("id" = String, Path, description = "pa_…")),
    responses((status = 200, description = "The account", body = ProviderAccountDto), (status = 404, description = "No such account"),
        (status = 422, description = "Unknown credential, unusable credentials, or a base URL not allowed")))]
pub async fn update(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    body: ApiJson<UpdateAccountBody>,
) -> Result<Response, ApiError> {
    let id = account_id(&id)?;
    let b = body.value;
    let change = AccountChange {
        credentials: b.credentials,
        base_url: b.base_url,
        is_default: b.default,
        disabled: b.disabled,
        description: b.description,
    };
    let a = provider_accounts::update(&app, &scope, &id, change).await?;
    Ok(respond(ok(200, ProviderAccountDto::of(&app, &a), None)))
}
