//! SeaORM entities: the store's row types, one module per table. They never leave the store;
//! `convert` turns them into domain types.

pub mod api_keys;
pub mod audit_log;
pub mod audit_pending;
pub mod audit_seals;
pub mod events;
pub mod idempotency;
pub mod key_ring;
pub mod merchants;
pub mod orders;
pub mod payments;
pub mod provider_accounts;
pub mod provider_notifications;
pub mod refresh_tokens;
pub mod refunds;
pub mod sync_jobs;
pub mod users;
pub mod webhook_attempts;
pub mod webhook_endpoints;
pub mod webhook_messages;
pub mod worker_leases;
