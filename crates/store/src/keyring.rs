//! The key ring and the sealed columns it protects.
//!
//! The store never sees a key or a secret in plain text: ring entries arrive wrapped, and the
//! sealed columns are handed to the server as opaque text to re-seal under a new key
//! (`jinliu keys rotate`). A re-sealed value is written only if the row still holds the value
//! that was read (compare and set), so a secret changed meanwhile by a request is never
//! overwritten with an older one.

use jinliu_domain::{AuditTarget, Timestamp};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use crate::audit::AuditSpec;
use crate::convert::{ms, time};
use crate::entity::{key_ring, merchants, provider_accounts, users, webhook_endpoints};
use crate::{Store, StoreError};

/// One ring entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingKey {
    /// `d2`, `j2`, … (the first key of each purpose is derived, not stored).
    pub kid: String,
    /// `data` or `jwt`.
    pub purpose: String,
    /// Order within the purpose; the highest is in use.
    pub seq: i64,
    /// The key, wrapped under the master key.
    pub wrapped: String,
    /// When it was added.
    pub created_at: Timestamp,
}

/// A column that holds sealed secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedField {
    /// `users.totp_secret`.
    UserTotp,
    /// `merchants.notify_secret`.
    MerchantNotifySecret,
    /// `webhook_endpoints.secret`.
    WebhookSecret,
    /// `webhook_endpoints.previous_secret`.
    WebhookPreviousSecret,
    /// `provider_accounts.credentials`.
    ProviderCredentials,
}

impl SealedField {
    /// Every sealed column.
    pub const ALL: [SealedField; 5] = [
        SealedField::UserTotp,
        SealedField::MerchantNotifySecret,
        SealedField::WebhookSecret,
        SealedField::WebhookPreviousSecret,
        SealedField::ProviderCredentials,
    ];

    /// `table.column`.
    pub fn name(self) -> &'static str {
        match self {
            SealedField::UserTotp => "users.totp_secret",
            SealedField::MerchantNotifySecret => "merchants.notify_secret",
            SealedField::WebhookSecret => "webhook_endpoints.secret",
            SealedField::WebhookPreviousSecret => "webhook_endpoints.previous_secret",
            SealedField::ProviderCredentials => "provider_accounts.credentials",
        }
    }
}

/// One sealed value with what its associated data is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// Where it lives.
    pub field: SealedField,
    /// The row's id.
    pub row_id: String,
    /// The row's merchant, where the associated data names it.
    pub merchant_id: Option<String>,
    /// The sealed text.
    pub value: String,
}

impl Store {
    /// Every stored ring key, oldest first.
    pub async fn ring_keys(&self) -> Result<Vec<RingKey>, StoreError> {
        key_ring::Entity::find()
            .order_by_asc(key_ring::Column::Purpose)
            .order_by_asc(key_ring::Column::Seq)
            .all(self.read())
            .await?
            .into_iter()
            .map(|r| {
                Ok(RingKey {
                    kid: r.kid,
                    purpose: r.purpose,
                    seq: r.seq,
                    wrapped: r.wrapped,
                    created_at: time(r.created_at)?,
                })
            })
            .collect()
    }

    /// Adds a key (audited as `key_ring.add`, without the key). Two rotations racing to add the
    /// same id: one wins, the other gets [`StoreError::Conflict`].
    pub async fn add_ring_key(&self, key: RingKey) -> Result<(), StoreError> {
        let target = AuditTarget {
            kind: "key_ring",
            id: key.kid.clone(),
            merchant_id: None,
            detail: json!({ "purpose": key.purpose, "seq": key.seq }),
        };
        let spec = AuditSpec::new(
            "key_ring.add",
            move |_: &()| Some(target.clone()),
            AuditTarget::id_only("key_ring", key.kid.as_str()),
        );
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                let row = key_ring::ActiveModel {
                    kid: sea_orm::ActiveValue::Set(key.kid.clone()),
                    purpose: sea_orm::ActiveValue::Set(key.purpose.clone()),
                    seq: sea_orm::ActiveValue::Set(key.seq),
                    wrapped: sea_orm::ActiveValue::Set(key.wrapped.clone()),
                    created_at: sea_orm::ActiveValue::Set(ms(key.created_at)),
                };
                match key_ring::Entity::insert(row).exec_without_returning(txn).await {
                    Ok(_) => Ok(()),
                    Err(e) if crate::error::is_unique_violation(&e) => Err(StoreError::Conflict),
                    Err(e) => Err(e.into()),
                }
            })
        })
        .await
    }

    /// Every non-empty value of one sealed column.
    pub async fn sealed_values(&self, field: SealedField) -> Result<Vec<SealedValue>, StoreError> {
        let db = self.read();
        let value = |field, row_id: String, merchant_id: Option<String>, value: String| SealedValue {
            field,
            row_id,
            merchant_id,
            value,
        };
        Ok(match field {
            SealedField::UserTotp => users::Entity::find()
                .filter(users::Column::TotpSecret.is_not_null())
                .all(db)
                .await?
                .into_iter()
                .filter_map(|r| Some(value(field, r.id, None, r.totp_secret?)))
                .collect(),
            SealedField::MerchantNotifySecret => merchants::Entity::find()
                .filter(merchants::Column::NotifySecret.is_not_null())
                .all(db)
                .await?
                .into_iter()
                .filter_map(|r| Some(value(field, r.id.clone(), Some(r.id), r.notify_secret?)))
                .collect(),
            SealedField::WebhookSecret => webhook_endpoints::Entity::find()
                .all(db)
                .await?
                .into_iter()
                .map(|r| value(field, r.id, Some(r.merchant_id), r.secret))
                .collect(),
            SealedField::WebhookPreviousSecret => webhook_endpoints::Entity::find()
                .filter(webhook_endpoints::Column::PreviousSecret.is_not_null())
                .all(db)
                .await?
                .into_iter()
                .filter_map(|r| Some(value(field, r.id, Some(r.merchant_id), r.previous_secret?)))
                .collect(),
            SealedField::ProviderCredentials => provider_accounts::Entity::find()
                .all(db)
                .await?
                .into_iter()
                .map(|r| value(field, r.id, Some(r.merchant_id), r.credentials))
                .collect(),
        })
    }

    /// Replaces a sealed value if the row still holds `old.value`; `false` when it changed
    /// meanwhile (the caller reads it again).
    pub async fn replace_sealed(&self, old: &SealedValue, new: &str) -> Result<bool, StoreError> {
        let db = self.read();
        let id = old.row_id.as_str();
        let v = old.value.as_str();
        let res = match old.field {
            SealedField::UserTotp => {
                users::Entity::update_many()
                    .col_expr(users::Column::TotpSecret, Expr::value(new))
                    .filter(users::Column::Id.eq(id))
                    .filter(users::Column::TotpSecret.eq(v))
                    .exec(db)
                    .await?
            }
            SealedField::MerchantNotifySecret => {
                merchants::Entity::update_many()
                    .col_expr(merchants::Column::NotifySecret, Expr::value(new))
                    .filter(merchants::Column::Id.eq(id))
                    .filter(merchants::Column::NotifySecret.eq(v))
                    .exec(db)
                    .await?
            }
            SealedField::WebhookSecret => {
                webhook_endpoints::Entity::update_many()
                    .col_expr(webhook_endpoints::Column::Secret, Expr::value(new))
                    .filter(webhook_endpoints::Column::Id.eq(id))
                    .filter(webhook_endpoints::Column::Secret.eq(v))
                    .exec(db)
                    .await?
            }
            SealedField::WebhookPreviousSecret => {
                webhook_endpoints::Entity::update_many()
                    .col_expr(webhook_endpoints::Column::PreviousSecret, Expr::value(new))
                    .filter(webhook_endpoints::Column::Id.eq(id))
                    .filter(webhook_endpoints::Column::PreviousSecret.eq(v))
                    .exec(db)
                    .await?
            }
            SealedField::ProviderCredentials => {
                provider_accounts::Entity::update_many()
                    .col_expr(provider_accounts::Column::Credentials, Expr::value(new))
                    .filter(provider_accounts::Column::Id.eq(id))
                    .filter(provider_accounts::Column::Credentials.eq(v))
                    .exec(db)
                    .await?
            }
        };
        Ok(res.rows_affected == 1)
    }
}
