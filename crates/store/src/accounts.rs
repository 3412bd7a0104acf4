//! Merchants and API keys. These are configuration rows, written one statement (and its audit
//! row) at a time, not through the group-commit writer: they are rare and carry no domain events.

use jinliu_domain::{
    ApiKey, ApiKeyId, ApiKeyKind, AuditTarget, Currency, Merchant, MerchantId, MerchantSettings, Permission, Timestamp,
};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::audit::AuditSpec;
use crate::convert::{ms, time as from_ms};
use crate::entity::{api_keys, merchants};
use crate::error::is_unique_violation;
use crate::persist::ByKey;
use crate::{Store, StoreError};

fn merchant_from_row(r: merchants::Model) -> Result<Merchant, StoreError> {
    Ok(Merchant {
        id: MerchantId::from_trusted(r.id),
        name: r.name,
        status: r.status,
        default_currency: r
            .default_currency
            .parse::<Currency>()
            .map_err(|e| StoreError::Corrupt(format!("merchant currency: {e}")))?,
        timezone: r.timezone,
        settings: match r.settings {
            None => MerchantSettings::default(),
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("merchant settings: {e}")))?
            }
        },
        notify_secret: r.notify_secret,
        created_at: from_ms(r.created_at)?,
        updated_at: from_ms(r.updated_at)?,
    })
}

fn settings_text(s: &MerchantSettings) -> String {
    // A struct of maps of strings and integers always serialises.
    serde_json::to_string(s).unwrap_or_else(|_| "{}".into())
}

fn key_from_row(r: api_keys::Model) -> Result<ApiKey, StoreError> {
    let permissions = match r.permissions {
        None => None,
        Some(text) => Some(
            text.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| Permission::parse(p).ok_or_else(|| StoreError::Corrupt(format!("permission {p:?}"))))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(ApiKey {
        id: ApiKeyId::from_trusted(r.id),
        merchant_id: MerchantId::from_trusted(r.merchant_id),
        kind: ApiKeyKind::parse(&r.kind).ok_or_else(|| StoreError::Corrupt(format!("key kind {:?}", r.kind)))?,
        livemode: r.livemode,
        prefix: r.prefix,
        permissions,
        description: r.description,
        expires_at: r.expires_at.map(from_ms).transpose()?,
        revoked_at: r.revoked_at.map(from_ms).transpose()?,
        created_at: from_ms(r.created_at)?,
    })
}

impl Store {
    /// Adds a merchant.
    pub async fn create_merchant(&self, m: &Merchant) -> Result<(), StoreError> {
        let spec = AuditSpec::new(
            "merchant.create",
            |m: &Merchant| Some(AuditTarget::merchant(m)),
            AuditTarget::id_only("merchant", m.id.as_str()),
        );
        let m = m.clone();
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                merchants::Entity::insert(merchants::ActiveModel {
                    id: Set(m.id.to_string()),
                    name: Set(m.name.clone()),
                    status: Set(m.status.clone()),
                    default_currency: Set(m.default_currency.code().to_owned()),
                    timezone: Set(m.timezone.clone()),
                    settings: Set(Some(settings_text(&m.settings))),
                    notify_secret: Set(m.notify_secret.clone()),
                    created_at: Set(ms(m.created_at)),
                    updated_at: Set(ms(m.updated_at)),
                })
                .exec_without_returning(txn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Corrupt(format!("merchant {} exists", m.id))
                    } else {
                        e.into()
                    }
                })?;
                Ok(m)
            })
        })
        .await
        .map(|_| ())
    }

    /// Replaces a merchant's name, currency, time zone, settings and notify secret (status and
    /// id never change here). `NotFound` when there is no such merchant.
    pub async fn update_merchant(&self, m: &Merchant) -> Result<Merchant, StoreError> {
        let spec = AuditSpec::new(
            "merchant.update",
            |m: &Merchant| {
                let mut t = AuditTarget::merchant(m);
                t.detail = serde_json::json!({
                    "name": m.name, "defaultCurrency": m.default_currency.code(), "timezone": m.timezone,
                    "settings": m.settings, "notifySecretSet": m.notify_secret.is_some(),
                });
                Some(t)
            },
            AuditTarget::id_only("merchant", m.id.as_str()),
        );
        let m = m.clone();
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                let res = merchants::Entity::update_many()
                    .col_expr(merchants::Column::Name, Expr::value(m.name.clone()))
                    .col_expr(
                        merchants::Column::DefaultCurrency,
                        Expr::value(m.default_currency.code()),
                    )
                    .col_expr(merchants::Column::Timezone, Expr::value(m.timezone.clone()))
                    .col_expr(merchants::Column::Settings, Expr::value(settings_text(&m.settings)))
                    .col_expr(merchants::Column::NotifySecret, Expr::value(m.notify_secret.clone()))
                    .col_expr(merchants::Column::UpdatedAt, Expr::value(ms(m.updated_at)))
                    .filter(merchants::Column::Id.eq(m.id.as_str()))
                    .exec(txn)
                    .await?;
                if res.rows_affected == 0 {
                    return Err(StoreError::NotFound("merchant"));
                }
                Ok(m)
            })
        })
        .await
    }

    /// One merchant.
    pub async fn merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, StoreError> {
        merchants::Entity::find_by_id(id.to_string())
            .by_key(self.read())
            .await?
            .map(merchant_from_row)
            .transpose()
    }

    /// How many merchants exist (first-run detection).
    pub async fn merchant_count(&self) -> Result<u64, StoreError> {
        Ok(merchants::Entity::find().count(self.read()).await?)
    }

    /// Stores a new key with the keyed hash of its text.
    pub async fn create_api_key(
        &self,
        key: &ApiKey,
        key_hash: &str,
        idem: Option<crate::IdemRequest<ApiKey>>,
    ) -> Result<(), StoreError> {
        let spec = AuditSpec::new(
            "key.create",
            |k: &ApiKey| Some(AuditTarget::api_key(k)),
            AuditTarget::id_only("api_key", key.id.as_str()),
        );
        let (key, key_hash) = (key.clone(), key_hash.to_owned());
        self.audited_txn_idem(spec, idem, move |txn| {
            Box::pin(async move {
                api_keys::Entity::insert(api_keys::ActiveModel {
                    id: Set(key.id.to_string()),
                    merchant_id: Set(key.merchant_id.to_string()),
                    kind: Set(key.kind.as_str().to_owned()),
                    livemode: Set(key.livemode),
                    prefix: Set(key.prefix.clone()),
                    key_hash: Set(key_hash),
                    permissions: Set(key
                        .permissions
                        .as_ref()
                        .map(|ps| ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","))),
                    description: Set(key.description.clone()),
                    expires_at: Set(key.expires_at.map(ms)),
                    revoked_at: Set(key.revoked_at.map(ms)),
                    created_at: Set(ms(key.created_at)),
                })
                .exec_without_returning(txn)
                .await?;
                Ok(key)
            })
        })
        .await
        .map(|_| ())
    }

    /// The key whose keyed hash is `key_hash`, usable or not.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        api_keys::Entity::find()
            .filter(api_keys::Column::KeyHash.eq(key_hash))
            .by_key(self.read())
            .await?
            .map(key_from_row)
            .transpose()
    }

    /// A merchant's keys, oldest first.
    pub async fn api_keys(&self, merchant: &MerchantId) -> Result<Vec<ApiKey>, StoreError> {
        api_keys::Entity::find()
            .filter(api_keys::Column::MerchantId.eq(merchant.as_str()))
            .order_by_asc(api_keys::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(key_from_row)
            .collect()
    }

    /// Revokes a merchant's key at `at` (now, or later to let a rolled key overlap). `false`
    /// when the merchant has no such key, or it is already revoked at or before `at`.
    pub async fn revoke_api_key(
        &self,
        merchant: &MerchantId,
        id: &ApiKeyId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let target = AuditTarget {
            detail: serde_json::json!({ "revokedAt": jinliu_domain::format_time(at) }),
            merchant_id: Some(merchant.clone()),
            ..AuditTarget::id_only("api_key", id.as_str())
        };
        let spec = AuditSpec::new("key.revoke", move |done: &bool| done.then(|| target.clone()), {
            AuditTarget::id_only("api_key", id.as_str())
        });
        let (merchant, id) = (merchant.clone(), id.clone());
        self.audited_txn(spec, move |txn| {
            Box::pin(async move {
                Ok(api_keys::Entity::update_many()
                    .col_expr(api_keys::Column::RevokedAt, Expr::value(ms(at)))
                    .filter(api_keys::Column::Id.eq(id.as_str()))
                    .filter(api_keys::Column::MerchantId.eq(merchant.as_str()))
                    // Not yet revoked, or revoked later than `at` (a rolled key's overlap can be
                    // cut short).
                    .filter(
                        Condition::any()
                            .add(api_keys::Column::RevokedAt.is_null())
                            .add(api_keys::Column::RevokedAt.gt(ms(at))),
                    )
                    .exec(txn)
                    .await?
                    .rows_affected
                    == 1)
            })
        })
        .await
    }
}
