//! Users and refresh tokens. Login bookkeeping (failure counts, lockout) is written with
//! conditional single statements so two nodes counting failures at once never lose one.

use jinliu_domain::{AuditTarget, MerchantId, Role, Timestamp, User, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::audit::AuditSpec;
use crate::convert::{ms, time};
use crate::entity::{refresh_tokens, users};
use crate::error::is_unique_violation;
use crate::persist::ByKey;
use crate::{Store, StoreError};

fn user_from_row(r: users::Model) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::from_trusted(r.id),
        email: r.email,
        password_hash: r.password_hash,
        role: Role::parse(&r.role).ok_or_else(|| StoreError::Corrupt(format!("role {:?}", r.role)))?,
        merchant_id: r.merchant_id.map(MerchantId::from_trusted),
        status: r.status,
        failed_logins: r.failed_logins,
        locked_until: r.locked_until.map(time).transpose()?,
        last_login_at: r.last_login_at.map(time).transpose()?,
        created_at: time(r.created_at)?,
        totp_secret: r.totp_secret,
        totp_enabled: r.totp_enabled,
        totp_last_step: r.totp_last_step,
        recovery_codes: r.recovery_codes,
    })
}

/// A refresh token as stored (by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Keyed hash of the token.
    pub token_hash: String,
    /// Whose.
    pub user_id: UserId,
    /// The login it descends from; reuse of a rotated token revokes the whole family.
    pub family: String,
    /// Expiry.
    pub expires_at: Timestamp,
    /// When it was exchanged for a new one.
    pub used_at: Option<Timestamp>,
    /// When its family was revoked (logout, reuse).
    pub revoked_at: Option<Timestamp>,
}

/// Inserts a user; `Ok(false)` when the email is taken.
async fn insert_user<C: ConnectionTrait>(conn: &C, u: &User) -> Result<bool, StoreError> {
    let res = users::Entity::insert(users::ActiveModel {
        id: Set(u.id.to_string()),
        email: Set(u.email.clone()),
        password_hash: Set(u.password_hash.clone()),
        role: Set(u.role.as_str().to_owned()),
        merchant_id: Set(u.merchant_id.as_ref().map(|m| m.to_string())),
        status: Set(u.status.clone()),
        failed_logins: Set(u.failed_logins),
        locked_until: Set(u.locked_until.map(ms)),
        last_login_at: Set(u.last_login_at.map(ms)),
        created_at: Set(ms(u.created_at)),
        totp_secret: Set(u.totp_secret.clone()),
        totp_enabled: Set(u.totp_enabled),
        totp_last_step: Set(u.totp_last_step),
        recovery_codes: Set(u.recovery_codes.clone()),
    })
    .exec_without_returning(conn)
    .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Adds a user; `Ok(false)` when the email is taken.
    pub async fn create_user(&self, u: &User) -> Result<bool, StoreError> {
        let target = AuditTarget::user(u);
        let spec = AuditSpec::new(
            "user.create",
            move |created: &bool| created.then(|| target.clone()),
            AuditTarget::id_only("user", u.id.as_str()),
        );
        let u = u.clone();
        self.audited_txn(spec, move |txn| Box::pin(async move { insert_user(txn, &u).await }))
            .await
    }

    /// A merchant's users, oldest first.
    pub async fn users_of_merchant(&self, merchant: &MerchantId) -> Result<Vec<User>, StoreError> {
        use sea_orm::QueryOrder;
        users::Entity::find()
            .filter(users::Column::MerchantId.eq(merchant.as_str()))
            .order_by_asc(users::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(user_from_row)
            .collect()
    }

    /// Sets a merchant user's role and status. `NotFound` when the merchant has no such user.
    pub async fn update_user_access(
        &self,
        merchant: &MerchantId,
        id: &UserId,
        role: Role,
        status: &str,
    ) -> Result<User, StoreError> {
        let spec = AuditSpec::new(
            "user.update",
            |u: &User| Some(AuditTarget::user(u)),
            AuditTarget::id_only("user", id.as_str()),
        );
        let (merchant, id, status) = (merchant.clone(), id.clone(), status.to_owned());
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                let res = users::Entity::update_many()
                    .col_expr(users::Column::Role, Expr::value(role.as_str()))
                    .col_expr(users::Column::Status, Expr::value(status.as_str()))
                    .filter(users::Column::Id.eq(id.as_str()))
                    .filter(users::Column::MerchantId.eq(merchant.as_str()))
                    .exec(txn)
                    .await?;
                if res.rows_affected == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                let row = users::Entity::find_by_id(id.to_string())
                    .by_key(txn)
                    .await?
                    .ok_or(StoreError::NotFound("user"))?;
                user_from_row(row)
            })
        })
        .await
    }

    /// The user with this (lower-case) email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .by_key(self.read())
            .await?
            .map(user_from_row)
            .transpose()
    }

    /// One user.
    pub async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        users::Entity::find_by_id(id.to_string())
            .by_key(self.read())
            .await?
            .map(user_from_row)
            .transpose()
    }

    /// How many users exist.
    pub async fn user_count(&self) -> Result<u64, StoreError> {
        Ok(users::Entity::find().count(self.read()).await?)
    }

    /// Reserves a login attempt before the password is checked: the attempt counts as a failure
    /// until it succeeds. `false` when the account is locked, or `threshold` attempts are already
    /// counted — so parallel guesses, on any node, get no more than `threshold` tries.
    pub async fn begin_login_attempt(&self, id: &UserId, threshold: i64, now: Timestamp) -> Result<bool, StoreError> {
        Ok(users::Entity::update_many()
            .col_expr(
                users::Column::FailedLogins,
                Expr::col(users::Column::FailedLogins).add(1),
            )
            .filter(users::Column::Id.eq(id.as_str()))
            .filter(users::Column::FailedLogins.lt(threshold))
            .filter(
                sea_orm::Condition::any()
                    .add(users::Column::LockedUntil.is_null())
                    .add(users::Column::LockedUntil.lte(ms(now))),
            )
            .exec(self.read())
            .await?
            .rows_affected
            == 1)
    }

    /// After a failed attempt (already counted by
    /// [`begin_login_attempt`](Store::begin_login_attempt)): at `threshold` consecutive failures
    /// the account locks until `lock_until`.
    pub async fn record_login_failure(
        &self,
        id: &UserId,
        threshold: i64,
        lock_until: Timestamp,
    ) -> Result<(), StoreError> {
        users::Entity::update_many()
            .col_expr(users::Column::LockedUntil, Expr::value(ms(lock_until)))
            .col_expr(users::Column::FailedLogins, Expr::value(0_i64))
            .filter(users::Column::Id.eq(id.as_str()))
            .filter(users::Column::FailedLogins.gte(threshold))
            .exec(self.read())
            .await?;
        Ok(())
    }

    /// A successful login: failures reset, time recorded.
    pub async fn record_login_success(&self, id: &UserId, now: Timestamp) -> Result<(), StoreError> {
        let target = AuditTarget::id_only("user", id.as_str());
        let spec = AuditSpec::new(
            "user.login",
            move |_: &()| Some(target.clone()),
            AuditTarget::id_only("user", ""),
        );
        let id = id.clone();
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                users::Entity::update_many()
                    .col_expr(users::Column::FailedLogins, Expr::value(0_i64))
                    .col_expr(users::Column::LockedUntil, Expr::value(Option::<i64>::None))
                    .col_expr(users::Column::LastLoginAt, Expr::value(ms(now)))
                    .filter(users::Column::Id.eq(id.as_str()))
                    .exec(txn)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Sets a user's TOTP state: the sealed secret, whether it is required, and the recovery
    /// code hashes.
    pub async fn set_totp(
        &self,
        id: &UserId,
        sealed_secret: Option<String>,
        enabled: bool,
        recovery_codes: Option<String>,
    ) -> Result<(), StoreError> {
        let target = AuditTarget {
            detail: serde_json::json!({ "totpEnabled": enabled }),
            ..AuditTarget::id_only("user", id.as_str())
        };
        let action = if enabled { "user.mfa_enable" } else { "user.mfa_setup" };
        let spec = AuditSpec::new(
            action,
            move |_: &()| Some(target.clone()),
            AuditTarget::id_only("user", ""),
        );
        let id = id.clone();
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                users::Entity::update_many()
                    .col_expr(users::Column::TotpSecret, Expr::value(sealed_secret))
                    .col_expr(users::Column::TotpEnabled, Expr::value(enabled))
                    .col_expr(users::Column::RecoveryCodes, Expr::value(recovery_codes))
                    .col_expr(users::Column::TotpLastStep, Expr::value(0_i64))
                    .filter(users::Column::Id.eq(id.as_str()))
                    .exec(txn)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Spends a TOTP step: `false` when this step (or a later one) was already used, on any node.
    pub async fn use_totp_step(&self, id: &UserId, step: i64) -> Result<bool, StoreError> {
        Ok(users::Entity::update_many()
            .col_expr(users::Column::TotpLastStep, Expr::value(step))
            .filter(users::Column::Id.eq(id.as_str()))
            .filter(users::Column::TotpLastStep.lt(step))
            .exec(self.read())
            .await?
            .rows_affected
            == 1)
    }

    /// Replaces the recovery codes only if they are still `expected` (a code spent twice at once
    /// works once).
    pub async fn swap_recovery_codes(&self, id: &UserId, expected: &str, remaining: &str) -> Result<bool, StoreError> {
        Ok(users::Entity::update_many()
            .col_expr(users::Column::RecoveryCodes, Expr::value(remaining))
            .filter(users::Column::Id.eq(id.as_str()))
            .filter(users::Column::RecoveryCodes.eq(expected))
            .exec(self.read())
            .await?
            .rows_affected
            == 1)
    }

    /// Stores a new refresh token.
    pub async fn insert_refresh_token(&self, t: &RefreshToken, now: Timestamp) -> Result<(), StoreError> {
        refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
            token_hash: Set(t.token_hash.clone()),
            user_id: Set(t.user_id.to_string()),
            family: Set(t.family.clone()),
            expires_at: Set(ms(t.expires_at)),
            used_at: Set(None),
            revoked_at: Set(None),
            created_at: Set(ms(now)),
        })
        .exec_without_returning(self.read())
        .await?;
        Ok(())
    }

    /// A refresh token by hash.
    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let Some(r) = refresh_tokens::Entity::find_by_id(token_hash.to_owned())
            .by_key(self.read())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(RefreshToken {
            token_hash: r.token_hash,
            user_id: UserId::from_trusted(r.user_id),
            family: r.family,
            expires_at: time(r.expires_at)?,
            used_at: r.used_at.map(time).transpose()?,
            revoked_at: r.revoked_at.map(time).transpose()?,
        }))
    }

    /// Marks a token used, only if it was not used yet: `false` means someone used it first
    /// (a replay), and the caller must revoke the family.
    pub async fn use_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::UsedAt, Expr::value(ms(now)))
            .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
            .filter(refresh_tokens::Column::UsedAt.is_null())
            .filter(refresh_tokens::Column::RevokedAt.is_null())
            .exec(self.read())
            .await?
            .rows_affected
            == 1)
    }

    /// Whether a login (refresh-token family) was revoked: logout, or reuse of a spent token.
    pub async fn refresh_family_revoked(&self, family: &str) -> Result<bool, StoreError> {
        Ok(refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::Family.eq(family))
            .filter(refresh_tokens::Column::RevokedAt.is_not_null())
            .count(self.read())
            .await?
            > 0)
    }

    /// Revokes every token of a login (logout, or a rotated token presented again).
    pub async fn revoke_refresh_family(&self, family: &str, now: Timestamp) -> Result<(), StoreError> {
        // The family id is a random handle of the login, not a credential: safe to log.
        let target = AuditTarget::id_only("session", family);
        let spec = AuditSpec::new(
            "session.revoke",
            move |_: &()| Some(target.clone()),
            AuditTarget::id_only("session", ""),
        );
        let family = family.to_owned();
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                refresh_tokens::Entity::update_many()
                    .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(ms(now)))
                    .filter(refresh_tokens::Column::Family.eq(family.as_str()))
                    .filter(refresh_tokens::Column::RevokedAt.is_null())
                    .exec(txn)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}
