//! `payments` rows.
use sea_orm::entity::prelude::*;

/// One payment attempt. Times are UTC unix milliseconds; amounts are minor units.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub order_id: String,
    pub provider: String,
    pub provider_account: String,
    pub method: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub provider_reference: Option<String>,
    pub provider_transaction_id: Option<String>,
    pub payment_token: Option<String>,
    pub qr_code_data: Option<String>,
    pub client_secret: String,
    pub success_url: Option<String>,
    pub failure_url: Option<String>,
    pub description: Option<String>,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
    pub metadata: Option<String>,
    pub refunded_minor: i64,
    pub refund_pending_minor: i64,
    pub late_success: bool,
    pub duplicate: bool,
    pub version: i64,
    pub expires_at: i64,
    pub completed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
