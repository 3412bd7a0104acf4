//! A merchant's own provider accounts. Every query takes the caller's scope (merchant and mode),
//! except the two the server needs to route a notification or rebuild adapters by account id.
//! Credentials arrive sealed; the store never sees them in plain text.

use jinliu_domain::provider_account::MAX_ACCOUNTS;
use jinliu_domain::{AccountStatus, AuditTarget, MerchantId, MerchantProviderAccount, ProviderAccountId, Timestamp};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::audit::AuditSpec;
use crate::convert::{ms, time};
use crate::entity::{merchants, provider_accounts};
use crate::persist::ByKey;
use crate::writer::work;
use crate::{Scope, Store, StoreError};

/// A new account, with its id already chosen (the sealed credentials are bound to it).
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// `pa_…`
    pub id: ProviderAccountId,
    /// Provider id.
    pub provider: String,
    /// `None` for the server's sandbox.
    pub base_url: Option<String>,
    /// Sealed JSON object.
    pub credentials_sealed: String,
    /// Names of the credentials, sorted.
    pub credential_keys: Vec<String>,
    /// `Some(true)`: take the default over; `Some(false)`: not the default; `None`: the default
    /// only when its provider and mode have none.
    pub is_default: Option<bool>,
    /// A note.
    pub description: Option<String>,
}

/// A change to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    /// New sealed credentials and their names (replace the whole set).
    pub credentials: Option<(String, Vec<String>)>,
    /// New base URL (`Some(None)`: the server's sandbox).
    pub base_url: Option<Option<String>>,
    /// Become (or stop being) the default for its provider and mode.
    pub is_default: Option<bool>,
    /// Enable or disable.
    pub status: Option<AccountStatus>,
    /// New note (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

fn from_row(r: provider_accounts::Model) -> Result<MerchantProviderAccount, StoreError> {
    Ok(MerchantProviderAccount {
        id: ProviderAccountId::from_trusted(r.id),
        merchant_id: MerchantId::from_trusted(r.merchant_id),
        livemode: r.livemode,
        provider: r.provider,
        base_url: r.base_url,
        credentials_sealed: r.credentials,
        credential_keys: r
            .credential_keys
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        is_default: r.is_default,
        status: AccountStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("provider account status {:?}", r.status)))?,
        description: r.description,
        version: r.version,
        created_at: time(r.created_at)?,
        updated_at: time(r.updated_at)?,
    })
}

fn to_row(a: &MerchantProviderAccount) -> provider_accounts::ActiveModel {
    provider_accounts::ActiveModel {
        id: Set(a.id.to_string()),
        merchant_id: Set(a.merchant_id.to_string()),
        livemode: Set(a.livemode),
        provider: Set(a.provider.clone()),
        base_url: Set(a.base_url.clone()),
        credentials: Set(a.credentials_sealed.clone()),
        credential_keys: Set(a.credential_keys.join(",")),
        is_default: Set(a.is_default),
        status: Set(a.status.as_str().to_owned()),
        description: Set(a.description.clone()),
        version: Set(a.version),
        created_at: Set(ms(a.created_at)),
        updated_at: Set(ms(a.updated_at)),
    }
}

async fn load<C: ConnectionTrait>(
    conn: &C,
    scope: Option<&Scope>,
    id: &str,
) -> Result<provider_accounts::Model, StoreError> {
    let mut q = provider_accounts::Entity::find_by_id(id.to_owned());
    if let Some(s) = scope {
        q = q
            .filter(provider_accounts::Column::MerchantId.eq(s.merchant_id.as_str()))
            .filter(provider_accounts::Column::Livemode.eq(s.livemode));
    }
    q.by_key(conn).await?.ok_or(StoreError::NotFound("provider_account"))
}

/// Clears the default flag of the merchant's other accounts of this provider and mode.
async fn clear_other_defaults<C: ConnectionTrait>(conn: &C, a: &MerchantProviderAccount) -> Result<(), StoreError> {
    provider_accounts::Entity::update_many()
        .col_expr(provider_accounts::Column::IsDefault, Expr::value(false))
        .col_expr(
            provider_accounts::Column::Version,
            Expr::col(provider_accounts::Column::Version).add(1),
        )
        .filter(provider_accounts::Column::MerchantId.eq(a.merchant_id.as_str()))
        .filter(provider_accounts::Column::Livemode.eq(a.livemode))
        .filter(provider_accounts::Column::Provider.eq(a.provider.as_str()))
        .filter(provider_accounts::Column::IsDefault.eq(true))
        .filter(provider_accounts::Column::Id.ne(a.id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Queues writers of the same merchant behind one row lock (PostgreSQL, MySQL), so a count and
/// the insert or default switch that depends on it cannot interleave with another's.
async fn lock_merchant<C: ConnectionTrait>(conn: &C, merchant: &MerchantId) -> Result<(), StoreError> {
    merchants::Entity::update_many()
        .col_expr(merchants::Column::UpdatedAt, Expr::col(merchants::Column::UpdatedAt))
        .filter(merchants::Column::Id.eq(merchant.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Adds an account, refusing the merchant's 21st in one mode. Unless told otherwise, the
    /// first account of a provider and mode becomes its default.
    pub async fn create_provider_account(
        &self,
        scope: &Scope,
        new: NewAccount,
        now: Timestamp,
        idem: Option<crate::IdemRequest<MerchantProviderAccount>>,
    ) -> Result<MerchantProviderAccount, StoreError> {
        let spec = AuditSpec::new(
            "provider_account.create",
            |a: &MerchantProviderAccount| Some(AuditTarget::provider_account(a)),
            AuditTarget::id_only("provider_account", new.id.as_str()),
        );
        let scope = scope.clone();
        let w = work(move |txn, _sink| {
            let (scope, new) = (scope.clone(), new.clone());
            Box::pin(async move {
                lock_merchant(txn, &scope.merchant_id).await?;
                let mine = || {
                    provider_accounts::Entity::find()
                        .filter(provider_accounts::Column::MerchantId.eq(scope.merchant_id.as_str()))
                        .filter(provider_accounts::Column::Livemode.eq(scope.livemode))
                };
                if mine().count(txn).await? >= MAX_ACCOUNTS as u64 {
                    return Err(StoreError::LimitReached("provider accounts"));
                }
                let has_default = mine()
                    .filter(provider_accounts::Column::Provider.eq(new.provider.as_str()))
                    .filter(provider_accounts::Column::IsDefault.eq(true))
                    .count(txn)
                    .await?
                    > 0;
                let a = MerchantProviderAccount {
                    id: new.id,
                    merchant_id: scope.merchant_id,
                    livemode: scope.livemode,
                    provider: new.provider,
                    base_url: new.base_url,
                    credentials_sealed: new.credentials_sealed,
                    credential_keys: new.credential_keys,
                    is_default: new.is_default.unwrap_or(!has_default),
                    status: AccountStatus::Active,
                    description: new.description,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                if a.is_default {
                    clear_other_defaults(txn, &a).await?;
                }
                provider_accounts::Entity::insert(to_row(&a))
                    .exec_without_returning(txn)
                    .await?;
                Ok(a)
            })
        });
        self.writer().submit_audited(w, idem, Some(spec)).await
    }

    /// The caller's accounts in its mode, oldest first.
    pub async fn provider_accounts(&self, scope: &Scope) -> Result<Vec<MerchantProviderAccount>, StoreError> {
        self.accounts_of(&scope.merchant_id, Some(scope.livemode)).await
    }

    /// Every account of a merchant in both modes (the server builds its adapters from them).
    pub async fn merchant_provider_accounts(
        &self,
        merchant: &MerchantId,
    ) -> Result<Vec<MerchantProviderAccount>, StoreError> {
        self.accounts_of(merchant, None).await
    }

    async fn accounts_of(
        &self,
        merchant: &MerchantId,
        livemode: Option<bool>,
    ) -> Result<Vec<MerchantProviderAccount>, StoreError> {
        let mut q =
            provider_accounts::Entity::find().filter(provider_accounts::Column::MerchantId.eq(merchant.as_str()));
        if let Some(live) = livemode {
            q = q.filter(provider_accounts::Column::Livemode.eq(live));
        }
        q.order_by_asc(provider_accounts::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(from_row)
            .collect()
    }

    /// One account in the caller's scope.
    pub async fn provider_account(
        &self,
        scope: &Scope,
        id: &ProviderAccountId,
    ) -> Result<Option<MerchantProviderAccount>, StoreError> {
        crate::error::found(load(self.read(), Some(scope), id.as_str()).await)?
            .map(from_row)
            .transpose()
    }

    /// One account, whoever owns it (a notification names only the account).
    pub async fn provider_account_unscoped(
        &self,
        id: &ProviderAccountId,
    ) -> Result<Option<MerchantProviderAccount>, StoreError> {
        crate::error::found(load(self.read(), None, id.as_str()).await)?
            .map(from_row)
            .transpose()
    }

    /// Whether any merchant has a live account (the server then refuses to start without
    /// `JINLIU_MASTER_KEY`).
    pub async fn has_live_provider_accounts(&self) -> Result<bool, StoreError> {
        Ok(provider_accounts::Entity::find()
            .filter(provider_accounts::Column::Livemode.eq(true))
            .count(self.read())
            .await?
            > 0)
    }

    /// Changes an account. Disabling a default account leaves its provider and mode without a
    /// merchant default (payments then use the platform's account, if any).
    pub async fn update_provider_account(
        &self,
        scope: &Scope,
        id: &ProviderAccountId,
        patch: AccountPatch,
        now: Timestamp,
    ) -> Result<MerchantProviderAccount, StoreError> {
        let spec = AuditSpec::new(
            "provider_account.update",
            |a: &MerchantProviderAccount| Some(AuditTarget::provider_account(a)),
            AuditTarget::id_only("provider_account", id.as_str()),
        );
        let (scope, id) = (scope.clone(), id.clone());
        let w = work(move |txn, _sink| {
            let (scope, id, patch) = (scope.clone(), id.clone(), patch.clone());
            Box::pin(async move {
                lock_merchant(txn, &scope.merchant_id).await?;
                let mut a = from_row(load(txn, Some(&scope), id.as_str()).await?)?;
                let version = a.version;
                if let Some((sealed, keys)) = patch.credentials {
                    a.credentials_sealed = sealed;
                    a.credential_keys = keys;
                }
                if let Some(base_url) = patch.base_url {
                    a.base_url = base_url;
                }
                if let Some(d) = patch.description {
                    a.description = d;
                }
                if let Some(status) = patch.status {
                    a.status = status;
                }
                if let Some(d) = patch.is_default {
                    a.is_default = d;
                }
                if a.status == AccountStatus::Disabled {
                    a.is_default = false;
                }
                if a.is_default {
                    clear_other_defaults(txn, &a).await?;
                }
                a.version += 1;
                a.updated_at = now;
                crate::persist::compare_and_set(
                    txn,
                    to_row(&a),
                    (provider_accounts::Column::Id, a.id.as_str()),
                    (provider_accounts::Column::Version, version),
                )
                .await?;
                Ok(a)
            })
        });
        self.writer().submit_audited(w, None, Some(spec)).await
    }
}
