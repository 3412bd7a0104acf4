//! `provider_notifications` rows: one per (provider, account, reference, provider status) that
//! jinliu has applied, written in the transaction of the change it caused, so a re-sent
//! notification changes nothing twice.
use sea_orm::entity::prelude::*;

/// One applied notification.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_notifications")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub account: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub reference: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub status_code: String,
    pub payment_id: String,
    pub received_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
