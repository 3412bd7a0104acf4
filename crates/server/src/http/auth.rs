//! `/api/auth`: login, refresh, logout, profile (seed 000's `/auth/login` and `/auth/profile`
//! work at the root too).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::dto::ok;
use super::error::ApiError;
use super::extract::{ApiJson, PeerIp};
use super::idempotency::respond;
use super::validate;
use crate::auth::UserSession;
use crate::state::AppState;
use crate::users;

/// `POST /api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Login email.
    pub email: String,
    /// Password.
    pub password: String,
    /// TOTP code or recovery code: required for platform admins and users who enabled TOTP.
    #[serde(default)]
    pub totp: Option<String>,
    /// `api` (default: access tokens live `JINLIU_JWT_EXPIRES_IN`, refresh tokens 30 days) or
    /// `dashboard` (15-minute access tokens, and the login ends after 15 minutes without a
    /// refresh).
    #[serde(default)]
    pub session: Option<String>,
}

/// `POST /api/auth/refresh` and `/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshBody {
    /// The refresh token from the login (or the last refresh).
    pub refresh_token: String,
}

/// The logged-in user of a route with `Access::User`.
pub struct LoggedIn(pub Arc<UserSession>);

impl<S: Send + Sync> FromRequestParts<S> for LoggedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Arc<UserSession>>()
            .cloned()
            .map(LoggedIn)
            .ok_or_else(|| ApiError::internal("LoggedIn used on a route without a user check"))
    }
}

/// Log in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "{ accessToken, tokenType, expiresIn, refreshToken, user }"),
        (status = 401, description = "Wrong email or password, or locked after 10 failures (30 min): one answer"),
        (status = 429, description = "More than 30 attempts a minute from one address, or 20 for one account")))]
pub async fn login(
    State(app): State<AppState>,
    PeerIp(peer): PeerIp,
    body: ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    if let Err(wait) = app.login_limits.check(peer, &b.email) {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many login attempts; retry in {wait} s"),
        )
        .with_details(serde_json::json!({ "retryAfterSeconds": wait })));
    }
    let kind = match b.session.as_deref() {
        None | Some("api") => users::SessionKind::Api,
        Some("dashboard") => users::SessionKind::Dashboard,
        Some(other) => {
            return Err(validate::failed(
                "session",
                &format!("must be api or dashboard, not {other:?}"),
            ));
        }
    };
    let session = users::login(&app, &b.email, &b.password, b.totp.as_deref(), kind).await?;
    Ok(respond(ok(200, session, Some("登入成功"))))
}

/// Exchange a refresh token for a new access and refresh token (single use).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, description = "A new session"), (status = 401, description = "Invalid, expired, revoked or reused refresh token")))]
pub async fn refresh(State(app): State<AppState>, body: ApiJson<RefreshBody>) -> Result<Response, ApiError> {
    let session = users::refresh(&app, &body.value.refresh_token).await?;
    Ok(respond(ok(200, session, None)))
}

/// End the login a refresh token belongs to.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshBody,
    responses((status = 200, description = "Logged out (also for an unknown token)")))]
pub async fn logout(State(app): State<AppState>, body: ApiJson<RefreshBody>) -> Result<Response, ApiError> {
    users::logout(&app, &body.value.refresh_token).await?;
    Ok(respond(ok(200, serde_json::json!({ "loggedOut": true }), None)))
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/auth/profile", tag = "auth",
    responses((status = 200, description = "The user"), (status = 401, description = "No or invalid access token")))]
pub async fn profile(LoggedIn(session): LoggedIn) -> Result<Response, ApiError> {
    Ok(respond(ok(200, users::user_view(&session.user), None)))
}

/// `POST /api/auth/mfa/setup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaSetupBody {
    /// The user's password again: a stolen access token alone must not be able to enrol a
    /// second factor and lock the owner out.
    pub password: String,
}

/// `POST /api/auth/mfa/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaConfirmBody {
    /// The current code from the authenticator app.
    pub code: String,
}

/// Start TOTP enrolment: a new secret and its otpauth URI (not yet required).
#[utoipa::path(post, path = "/api/auth/mfa/setup", tag = "auth", request_body = MfaSetupBody,
    responses((status = 200, description = "{ secret, otpauthUri }"), (status = 401, description = "Wrong password"), (status = 409, description = "Already enabled")))]
pub async fn mfa_setup(
    State(app): State<AppState>,
    LoggedIn(session): LoggedIn,
    body: ApiJson<MfaSetupBody>,
) -> Result<Response, ApiError> {
    users::reauthenticate(&session.user, &body.value.password).await?;
    let (secret, uri) = users::mfa_setup(&app, &session.user).await?;
    Ok(respond(ok(
        200,
        serde_json::json!({ "secret": secret, "otpauthUri": uri }),
        None,
    )))
}

/// Confirm enrolment with a first code: TOTP becomes required; ten recovery codes, shown once.
#[utoipa::path(post, path = "/api/auth/mfa/confirm", tag = "auth", request_body = MfaConfirmBody,
    responses((status = 200, description = "{ recoveryCodes }"), (status = 422, description = "Wrong code")))]
pub async fn mfa_confirm(
    State(app): State<AppState>,
    LoggedIn(session): LoggedIn,
    body: ApiJson<MfaConfirmBody>,
) -> Result<Response, ApiError> {
    let codes = users::mfa_confirm(&app, &session.user, &body.value.code).await?;
    Ok(respond(ok(
        200,
        serde_json::json!({ "recoveryCodes": codes }),
        Some("TOTP enabled"),
    )))
}
