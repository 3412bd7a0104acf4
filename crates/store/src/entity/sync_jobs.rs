//! `sync_jobs` rows: payments and refunds whose outcome jinliu must fetch from the provider, with
//! the lease that lets exactly one node work on each at a time.
use sea_orm::entity::prelude::*;

/// One status-sync job. `lease_until` is 0 when nobody holds it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_jobs")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub object_id: String,
    pub kind: String,
    pub next_at: i64,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
