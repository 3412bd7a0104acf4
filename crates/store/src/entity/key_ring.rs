//! `key_ring` rows: data-encryption and JWT signing keys, each wrapped (AES-256-GCM) under a key
//! derived from the master key, which is never in the database.
use sea_orm::entity::prelude::*;

/// One key. `purpose` is `data` or `jwt`; the newest key of a purpose is the one in use.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "key_ring")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    pub purpose: String,
    pub seq: i64,
    pub wrapped: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
