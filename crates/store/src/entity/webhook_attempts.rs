//! `webhook_attempts` rows: the log of every delivery attempt.
use sea_orm::entity::prelude::*;

/// One attempt: what came back (status, first 20 kB of the body) or what went wrong.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub message_id: String,
    pub endpoint_id: String,
    pub attempted_at: i64,
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub succeeded: bool,
    pub next_attempt_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
