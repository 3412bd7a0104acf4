//! `idempotency_keys` rows: the first response to a POST, kept per caller and key.
use sea_orm::entity::prelude::*;

/// One idempotency record. `state` is `in_flight` while a multi-step request (a refund waiting
/// for its provider) is still running, `complete` once `status_code` and `body` are final.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub idem_key: String,
    pub request_hash: String,
    pub state: String,
    pub status_code: i32,
    pub body: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
