//! `audit_seals` rows: the sealer's chain, one per sealed `audit_log` row (its number and MAC).
//! Kept apart from the audit rows so that sealing inserts narrow rows instead of rewriting wide
//! ones.
use sea_orm::entity::prelude::*;

/// One link of the chain.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_seals")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub audit_id: String,
    /// The row's hash the MAC covers; `None` for links sealed before migration m0012, whose MAC
    /// covers the fields themselves ([`crate::audit::chain_mac`]).
    pub row_hash: Option<String>,
    pub mac: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
