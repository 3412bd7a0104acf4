//! `/api/users`: a merchant's staff accounts — create, list, change role or status. A caller can
//! only hand out roles whose permissions it holds itself, only touch users whose role it could
//! have handed out, never its own account, and never a platform admin (those are made with the
//! command line). The merchant is always the caller's; a body cannot name another.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use jinliu_domain::{Role, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::dto::ok;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use super::idempotency::respond;
use crate::auth::{Actor, Principal};
use crate::state::AppState;
use crate::users::{NewUserError, user_view};

/// `POST /api/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateUserBody {
    /// Login name.
    pub email: String,
    /// At least 12 characters with letters and digits, not a common password.
    pub password: String,
    /// `merchant_admin`, `finance`, `support` or `viewer`.
    pub role: String,
}

/// `PATCH /api/users/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateUserBody {
    /// A new role.
    pub role: Option<String>,
    /// `active` or `disabled` (a disabled user's tokens stop working at once).
    pub status: Option<String>,
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "permission_denied", message)
}

/// A role the caller may hand out or manage: a merchant role whose permissions it all holds.
fn grantable(caller: &Principal, role: Role) -> Result<(), ApiError> {
    if !role.is_merchant_role() {
        return Err(forbidden("platform admins are created with the command line"));
    }
    if !role.permissions().iter().all(|p| caller.may(*p)) {
        return Err(forbidden(
            "you cannot grant or manage a role with permissions you do not hold",
        ));
    }
    Ok(())
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| {
        ApiError::unprocessable("invalid_role", format!("unknown role {text:?}")).with_details(serde_json::json!({
            "roles": Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()
        }))
    })
}

/// Create a user in the caller's merchant.
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = CreateUserBody,
    responses((status = 201, description = "The user (never the password)"), (status = 403, description = "Role above the caller's"),
        (status = 409, description = "Email taken"), (status = 422, description = "Weak password, bad email or role")))]
pub async fn create(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    body: ApiJson<CreateUserBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let role = parse_role(&b.role)?;
    grantable(&caller, role)?;
    let made = crate::users::create_user(
        &app.store,
        &app.sealer,
        &b.email,
        &b.password,
        role,
        Some(caller.merchant_id.clone()),
        app.clock.now(),
    )
    .await;
    let user = match made {
        Ok((user, _)) => user,
        Err(NewUserError::Password(why)) => return Err(ApiError::unprocessable("weak_password", why)),
        Err(NewUserError::Email) => {
            return Err(ApiError::unprocessable(
                "invalid_email",
                "the email address is not valid",
            ));
        }
        Err(NewUserError::Taken) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "a user with this email exists",
            ));
        }
        Err(NewUserError::Merchant(why)) => return Err(ApiError::unprocessable("invalid_role", why)),
        Err(NewUserError::Internal(e)) => return Err(ApiError::internal(e)),
    };
    Ok(respond(ok(201, user_view(&user), None)))
}

/// The caller's merchant's users.
#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, description = "Users, oldest first")))]
pub async fn list(State(app): State<AppState>, Authenticated(caller): Authenticated) -> Result<Response, ApiError> {
    let users = app.store.users_of_merchant(&caller.merchant_id).await?;
    let views: Vec<serde_json::Value> = users.iter().map(user_view).collect();
    Ok(respond(ok(200, views, None)))
}

/// Change a user's role or status.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", request_body = UpdateUserBody,
    params(("id" = String, Path, description = "usr_…")),
    responses((status = 200, description = "The user after the change"), (status = 403, description = "Role above the caller's, or the caller itself"),
        (status = 404, description = "No such user in this merchant"), (status = 422, description = "Bad role or status")))]
pub async fn update(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: ApiJson<UpdateUserBody>,
) -> Result<Response, ApiError> {
    let id = UserId::parse(&id).ok_or_else(|| ApiError::not_found("user"))?;
    if matches!(&caller.actor, Actor::User { id: me, .. } if *me == id) {
        return Err(forbidden("you cannot change your own role or status"));
    }
    let current = app
        .store
        .user(&id)
        .await?
        .filter(|u| u.merchant_id.as_ref() == Some(&caller.merchant_id))
        .ok_or_else(|| ApiError::not_found("user"))?;
    grantable(&caller, current.role)?;
    let role = match &body.value.role {
        Some(r) => parse_role(r)?,
        None => current.role,
    };
    grantable(&caller, role)?;
    let status = match body.value.status.as_deref() {
        None => current.status.clone(),
        Some(s @ ("active" | "disabled")) => s.to_owned(),
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_status",
                format!("status must be active or disabled, not {other:?}"),
            ));
        }
    };
    let user = app
        .store
        .update_user_access(&caller.merchant_id, &id, role, &status)
        .await?;
    Ok(respond(ok(200, user_view(&user), None)))
}
