//! `api_keys` rows: a key's keyed hash (never the key), its visible prefix, kind, mode,
//! optional permission list, expiry and revocation.
use sea_orm::entity::prelude::*;

/// One API key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub merchant_id: String,
    pub kind: String,
    pub livemode: bool,
    pub prefix: String,
    pub key_hash: String,
    pub permissions: Option<String>,
    pub description: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
