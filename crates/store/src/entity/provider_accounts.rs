//! `provider_accounts` rows: a merchant's own provider contracts, with sealed credentials.
use sea_orm::entity::prelude::*;

/// One account. `credentials` is a JSON object sealed by the server (AES-256-GCM), never plain
/// text; `credential_keys` is the comma-separated list of the names that are set.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_accounts")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub provider: String,
    pub base_url: Option<String>,
    pub credentials: String,
    pub credential_keys: String,
    pub is_default: bool,
    pub status: String,
    pub description: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
