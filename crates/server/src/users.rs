//! Users: passwords (argon2id, OWASP parameters — the `argon2` crate's defaults: 19 MiB, 2
//! iterations, 1 lane), login with lockout, access tokens and rotating refresh tokens.
//!
//! Refresh tokens rotate: each use returns a new one and marks the old one used. Presenting a
//! used token again means it was copied, so the whole family (that login) is revoked.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::StatusCode;
use chrono::Duration;
use jinliu_domain::access::check_password_policy;
use jinliu_domain::{AuditActor, AuditTarget, MerchantId, Role, Timestamp, User, UserId};
use jinliu_store::{RefreshToken, Store};
use rand::Rng;
use serde_json::json;

use crate::http::error::ApiError;
use crate::secrets::Sealer;
use crate::state::AppState;

/// Consecutive failures that lock an account.
pub const LOCKOUT_THRESHOLD: i64 = 10;
/// How long a locked account stays locked.
pub const LOCKOUT_MINUTES: i64 = 30;
/// How long a refresh token lives.
pub const REFRESH_DAYS: i64 = 30;

/// An argon2id hash of `password` (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewUserError {
    /// The password breaks the policy.
    #[error("{0}")]
    Password(&'static str),
    /// The email is not plausible.
    #[error("the email address is not valid")]
    Email,
    /// Merchant roles need a merchant; platform admins must not have one.
    #[error("{0}")]
    Merchant(&'static str),
    /// Taken.
    #[error("a user with this email exists")]
    Taken,
    /// Store or hashing failure.
    #[error("{0}")]
    Internal(String),
}

/// Creates a user after checking the password policy. A platform admin is enrolled in TOTP at
/// once (MFA is required for them); its secret is returned, to be shown once.
pub async fn create_user(
    store: &Store,
    sealer: &Sealer,
    email: &str,
    password: &str,
    role: Role,
    merchant: Option<MerchantId>,
    now: Timestamp,
) -> Result<(User, Option<String>), NewUserError> {
    let email = email.trim().to_lowercase();
    if email.len() > 254 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(NewUserError::Email);
    }
    check_password_policy(password).map_err(NewUserError::Password)?;
    match (role.is_merchant_role(), &merchant) {
        (true, None) => {
            return Err(NewUserError::Merchant(
                "this role belongs to a merchant: give --merchant",
            ));
        }
        (false, Some(_)) => return Err(NewUserError::Merchant("a platform admin belongs to no merchant")),
        _ => {}
    }
    let pw = password.to_owned();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| NewUserError::Internal(e.to_string()))?
        .map_err(NewUserError::Internal)?;
    let id = UserId::generate();
    let totp = (role == Role::PlatformAdmin).then(crate::totp::new_secret);
    let user = User {
        totp_secret: totp.as_ref().map(|s| sealer.seal(s.as_bytes(), &totp_aad(&id))),
        totp_enabled: totp.is_some(),
        totp_last_step: 0,
        recovery_codes: None,
        id,
        email,
        password_hash,
        role,
        merchant_id: merchant,
        status: "active".into(),
        failed_logins: 0,
        locked_until: None,
        last_login_at: None,
        created_at: now,
    };
    if store
        .create_user(&user)
        .await
        .map_err(|e| NewUserError::Internal(e.to_string()))?
    {
        Ok((user, totp))
    } else {
        Err(NewUserError::Taken)
    }
}

/// The answer to a login or refresh (seed 000's envelope carries it as `data`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Exchange it at `/api/auth/refresh` for a new pair; single use.
    pub refresh_token: String,
    /// Who logged in.
    pub user: serde_json::Value,
}

/// The public view of a user.
pub fn user_view(u: &User) -> serde_json::Value {
    json!({
        "id": u.id, "email": u.email, "role": u.role.as_str(), "merchantId": u.merchant_id,
        "status": u.status,
        "lastLoginAt": u.last_login_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    })
}

fn invalid() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong email or password",
    )
}

/// What a login is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A program: access tokens live `JINLIU_JWT_EXPIRES_IN`, refresh tokens 30 days.
    Api,
    /// A person at the dashboard: short access tokens, and an idle timeout.
    Dashboard,
}

/// Dashboard logins: access-token lifetime and idle timeout (OWASP ASVS 3.3.2).
const DASHBOARD_SECS: i64 = 15 * 60;
/// Dashboard logins end this long after the password was checked, however busy (NIST SP 800-63B
/// §4.2.3: re-authenticate at least every 12 hours).
pub const DASHBOARD_MAX_SECS: i64 = 12 * 3600;
/// Marks a dashboard login's family id, so a refresh keeps the login's kind.
const DASHBOARD_FAMILY: &str = "dash_";

impl SessionKind {
    fn of_family(family: &str) -> SessionKind {
        if family.starts_with(DASHBOARD_FAMILY) {
            SessionKind::Dashboard
        } else {
            SessionKind::Api
        }
    }

    /// When the login a family descends from began: family ids are UUIDv7, whose first 48 bits
    /// are the creation time, so the absolute limit needs no column of its own.
    fn started(family: &str) -> Option<Timestamp> {
        let id = uuid::Uuid::parse_str(family.strip_prefix(DASHBOARD_FAMILY).unwrap_or(family)).ok()?;
        let (secs, nanos) = id.get_timestamp()?.to_unix();
        chrono::DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }

    fn new_family(self) -> String {
        let id = uuid::Uuid::now_v7().simple().to_string();
        match self {
            SessionKind::Api => id,
            SessionKind::Dashboard => format!("{DASHBOARD_FAMILY}{id}"),
        }
    }
}

async fn issue_session(app: &AppState, user: &User, family: String) -> Result<Session, ApiError> {
    let now = app.clock.now();
    // A dashboard login lives only while it is used: each refresh token expires 15 minutes
    // after it was issued, and every refresh issues the next one; and never past 12 hours from
    // the login, tokens included.
    let (access_secs, refresh_expires) = match SessionKind::of_family(&family) {
        SessionKind::Api => (app.config.jwt_expires_in_secs, now + Duration::days(REFRESH_DAYS)),
        SessionKind::Dashboard => {
            let ends = SessionKind::started(&family).unwrap_or(now) + Duration::seconds(DASHBOARD_MAX_SECS);
            let left = (ends - now).num_seconds().max(1);
            (
                DASHBOARD_SECS.min(app.config.jwt_expires_in_secs).min(left),
                (now + Duration::seconds(DASHBOARD_SECS)).min(ends),
            )
        }
    };
    let family_id = family.clone();
    let refresh = new_refresh_token();
    app.store
        .insert_refresh_token(
            &RefreshToken {
                token_hash: app.auth.hash(&refresh),
                user_id: user.id.clone(),
                family,
                expires_at: refresh_expires,
                used_at: None,
                revoked_at: None,
            },
            now,
        )
        .await?;
    Ok(Session {
        access_token: app.auth.access_token(&user.id, &family_id, now, access_secs),
        token_type: "Bearer",
        expires_in: access_secs,
        refresh_token: refresh,
        user: user_view(user),
    })
}

fn new_refresh_token() -> String {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let mut s = String::from("jl_rt_");
    for _ in 0..43 {
        s.push(BASE62[rng.random_range(0..62)] as char);
    }
    s
}

/// Email + password (+ TOTP) → a session. Attempts count towards a lockout; an unknown email
/// or a locked account costs the same argon2 work and gets the same answer as a wrong password.
pub async fn login(
    app: &AppState,
    email: &str,
    password: &str,
    totp: Option<&str>,
    kind: SessionKind,
) -> Result<Session, ApiError> {
    let result = attempt_login(app, email, password, totp, kind).await;
    if let Err(e) = &result {
        // Failed logins are audited (PCI DSS 10.2.1.4) under the email that was tried: the
        // account may not exist, and the row must not say whether it does.
        let target = AuditTarget::id_only("login", format!("email:{}", email.trim().to_lowercase()));
        let ctx = jinliu_store::audit::current_audit_context();
        if let Err(err) = app
            .store
            .record_audit(&ctx, "user.login", &target, &format!("refused:{}", e.code))
            .await
        {
            tracing::warn!(error = %err, "could not audit a failed login");
        }
    }
    result
}

async fn attempt_login(
    app: &AppState,
    email: &str,
    password: &str,
    totp: Option<&str>,
    kind: SessionKind,
) -> Result<Session, ApiError> {
    let now = app.clock.now();
    let user = app.store.user_by_email(&email.trim().to_lowercase()).await?;
    // The attempt is counted before the password is checked, atomically, so parallel guesses
    // get no more than the threshold; a locked account answers exactly like a wrong password
    // (no enumeration), after the same argon2 work.
    let admitted = match &user {
        Some(u) => app.store.begin_login_attempt(&u.id, LOCKOUT_THRESHOLD, now).await?,
        None => false,
    };
    let hash = user
        .as_ref()
        .filter(|_| admitted)
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(dummy_hash);
    let pw = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &pw))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| admitted) else {
        return Err(invalid());
    };
    let failed = || async {
        app.store
            .record_login_failure(&user.id, LOCKOUT_THRESHOLD, now + Duration::minutes(LOCKOUT_MINUTES))
            .await
    };
    if !ok || user.status != "active" {
        failed().await?;
        return Err(invalid());
    }
    if user.totp_enabled || user.role == Role::PlatformAdmin {
        let Some(code) = totp.map(str::trim).filter(|c| !c.is_empty()) else {
            failed().await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "this account needs a TOTP code (or a recovery code) in `totp`",
            ));
        };
        if !second_factor(app, &user, code).await? {
            failed().await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_code",
                "the TOTP or recovery code is wrong or already used",
            ));
        }
    }
    let actor = AuditActor::User {
        id: user.id.clone(),
        role: user.role,
    };
    let ctx = jinliu_store::audit::current_audit_context().as_actor(actor, user.merchant_id.clone());
    jinliu_store::with_audit_context(ctx, app.store.record_login_success(&user.id, now)).await?;
    issue_session(app, &user, kind.new_family()).await
}

/// The associated data that binds a sealed TOTP seed to its user's row.
pub fn totp_aad(id: &UserId) -> String {
    format!("users.totp_secret:{id}")
}

/// Checks a TOTP code (each step once) or spends a recovery code.
async fn second_factor(app: &AppState, user: &User, code: &str) -> Result<bool, ApiError> {
    crate::keyring::ensure_known(app, user.totp_secret.as_deref()).await;
    let secret = user
        .totp_secret
        .as_deref()
        .filter(|_| user.totp_enabled)
        .and_then(|sealed| app.sealer.open(sealed, &totp_aad(&user.id)))
        .and_then(|b| String::from_utf8(b).ok());
    if let Some(secret) = &secret
        && let Some(step) = crate::totp::verify(secret, code, app.clock.now().timestamp(), user.totp_last_step)
    {
        return Ok(app.store.use_totp_step(&user.id, step).await?);
    }
    let Some(stored) = user.recovery_codes.as_deref() else {
        return Ok(false);
    };
    let hash = app.auth.hash(&normalise_recovery(code));
    let remaining: Vec<&str> = stored.split(',').filter(|h| !h.is_empty() && *h != hash).collect();
    if remaining.len() == stored.split(',').filter(|h| !h.is_empty()).count() {
        return Ok(false);
    }
    Ok(app
        .store
        .swap_recovery_codes(&user.id, stored, &remaining.join(","))
        .await?)
}

fn normalise_recovery(code: &str) -> String {
    code.trim().replace('-', "").to_uppercase()
}

/// Checks a logged-in user's password again before a sensitive change.
pub async fn reauthenticate(user: &User, password: &str) -> Result<(), ApiError> {
    let (hash, pw) = (user.password_hash.clone(), password.to_owned());
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &pw))
        .await
        .map_err(ApiError::internal)?;
    if ok { Ok(()) } else { Err(invalid()) }
}

/// Starts TOTP enrolment for a user without it: a new secret, not yet required. Returns the
/// secret and its `otpauth://` URI.
pub async fn mfa_setup(app: &AppState, user: &User) -> Result<(String, String), ApiError> {
    if user.totp_enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mfa_enabled",
            "TOTP is already enabled",
        ));
    }
    let secret = crate::totp::new_secret();
    let sealed = app.sealer.seal(secret.as_bytes(), &totp_aad(&user.id));
    app.store.set_totp(&user.id, Some(sealed), false, None).await?;
    let uri = crate::totp::uri(&secret, &user.email);
    Ok((secret, uri))
}

/// Confirms enrolment with a first code; TOTP is then required, and ten single-use recovery
/// codes are returned (shown once; only their keyed hashes are kept).
pub async fn mfa_confirm(app: &AppState, user: &User, code: &str) -> Result<Vec<String>, ApiError> {
    if user.totp_enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mfa_enabled",
            "TOTP is already enabled",
        ));
    }
    crate::keyring::ensure_known(app, user.totp_secret.as_deref()).await;
    let secret = user
        .totp_secret
        .as_deref()
        .and_then(|sealed| app.sealer.open(sealed, &totp_aad(&user.id)))
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "mfa_not_started",
                "call /api/auth/mfa/setup first",
            )
        })?;
    let Some(step) = crate::totp::verify(&secret, code, app.clock.now().timestamp(), 0) else {
        return Err(ApiError::unprocessable("invalid_mfa_code", "the TOTP code is wrong"));
    };
    let codes: Vec<String> = (0..10).map(|_| recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| app.auth.hash(&normalise_recovery(c))).collect();
    app.store
        .set_totp(&user.id, user.totp_secret.clone(), true, Some(hashes.join(",")))
        .await?;
    app.store.use_totp_step(&user.id, step).await?;
    Ok(codes)
}

fn recovery_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    let raw: String = (0..10).map(|_| ALPHABET[rng.random_range(0..32)] as char).collect();
    format!("{}-{}", &raw[..5], &raw[5..])
}

/// A fixed argon2id hash of a random password, verified when the email is unknown.
fn dummy_hash() -> String {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3eN1r9o0+Lq5n6mCwz0Yb7GkZ0Hq1p5q7S0aW8xV2dE".into()
}

/// A refresh token → a new session; the old token is spent. A spent token presented again
/// revokes its whole family.
pub async fn refresh(app: &AppState, token: &str) -> Result<Session, ApiError> {
    let now = app.clock.now();
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
            "the refresh token is not valid",
        )
    };
    let hash = app.auth.hash(token);
    let stored = app.store.refresh_token(&hash).await?.ok_or_else(refused)?;
    if stored.revoked_at.is_some() || stored.expires_at <= now {
        return Err(refused());
    }
    if !app.store.use_refresh_token(&hash, now).await? {
        // Used before: a copy is in someone else's hands. End that login everywhere.
        app.store.revoke_refresh_family(&stored.family, now).await?;
        tracing::warn!(user = %stored.user_id, "refresh token reused; its login was revoked");
        return Err(refused());
    }
    let user = app
        .store
        .user(&stored.user_id)
        .await?
        .filter(|u| u.status == "active")
        .ok_or_else(refused)?;
    let session = issue_session(app, &user, stored.family.clone()).await?;
    // A concurrent replay of the same token may have revoked the family while this request
    // was inserting its successor: check after the insert, so either that revocation covered
    // the new token or this check sees it.
    if app.store.refresh_family_revoked(&stored.family).await? {
        app.store.revoke_refresh_family(&stored.family, now).await?;
        return Err(refused());
    }
    Ok(session)
}

/// Ends the login a refresh token belongs to.
pub async fn logout(app: &AppState, token: &str) -> Result<(), ApiError> {
    if let Some(stored) = app.store.refresh_token(&app.auth.hash(token)).await? {
        app.store.revoke_refresh_family(&stored.family, app.clock.now()).await?;
    }
    Ok(())
}

/// Demo helper: a random password that meets the policy.
pub fn random_password() -> String {
    const ALNUM: &[u8; 54] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut s: String = (0..14)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect();
    s.push_str(&format!("{}", rng.random_range(10..99)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_email_hash_is_a_real_argon2id_hash_so_it_costs_the_same() {
        let parsed = PasswordHash::new(&dummy_hash()).map(|h| h.algorithm.as_str().to_owned());
        assert_eq!(parsed.ok().as_deref(), Some("argon2id"));
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse 42").unwrap_or_default();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse 42"));
        assert!(!verify_password(&h, "correct horse 43"));
        assert!(random_password().len() >= 12);
        assert!(check_password_policy(&random_password()).is_ok());
    }
}
