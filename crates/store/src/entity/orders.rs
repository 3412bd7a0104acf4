//! `orders` rows.
use sea_orm::entity::prelude::*;

/// One order. Times are UTC unix milliseconds; amounts are minor units.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub order_number: String,
    pub description: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub items: Option<String>,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
    pub metadata: Option<String>,
    pub status: String,
    pub paid_by: Option<String>,
    pub refunded_minor: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
