//! `webhook_messages` rows: one event for one endpoint, with its delivery state and the lease
//! that lets one node at a time send it.
use sea_orm::entity::prelude::*;

/// One message. `lease_until` is 0 when nobody holds it; `next_attempt_at` is NULL once it
/// succeeded or was given up.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_messages")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub endpoint_id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub series_attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
