//! `audit_log` rows: one per mutation, written once and never updated; the sealer chains them
//! after they commit (`audit_seals`).
use sea_orm::entity::prelude::*;

/// One audit row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub at: i64,
    pub merchant_id: Option<String>,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub digest: String,
    pub detail: String,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
