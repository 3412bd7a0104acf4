//! `events` rows: the transactional outbox. Written with the state change they describe and with
//! their webhook messages (so already dispatched); the relay dispatches rows an older jinliu left
//! undispatched.
use sea_orm::entity::prelude::*;

/// One domain event with its rendered payload.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub event_type: String,
    pub object_id: String,
    pub object_version: i64,
    pub payload: String,
    pub created_at: i64,
    /// Whether the event's webhook messages exist: true from the insert on; false only in rows an
    /// older jinliu wrote, until the relay makes their messages.
    pub webhooks_dispatched: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
