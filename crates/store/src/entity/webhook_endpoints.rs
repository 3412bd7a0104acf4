//! `webhook_endpoints` rows: where a merchant wants its events, with the sealed signing secrets.
use sea_orm::entity::prelude::*;

/// One endpoint. `event_types` is a comma-separated list, NULL for every type; the secrets are
/// sealed by the server (AES-256-GCM) and never stored in plain text.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Option<String>,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
