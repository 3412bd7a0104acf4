//! `audit_pending` rows: the ids and hashes of committed audit rows the sealer has not chained
//! yet, written in the audit row's own transaction and deleted by the pass that seals it.
use sea_orm::entity::prelude::*;

/// One audit row waiting for its seal.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_pending")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub audit_id: String,
    /// [`crate::audit::row_hash`] of the row; `None` only for rows queued by migration m0012
    /// (the sealer then reads the row).
    pub row_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
