//! The jinliu domain: money, typed ids, the order / payment / refund state machines and the events
//! their transitions emit.
//!
//! This crate owns the rules of the business and nothing else: it performs no I/O, knows no HTTP,
//! no SQL and no provider protocol. The store persists what these types decide; the server turns
//! wire input into these types and back.

pub mod access;
pub mod audit;
pub mod event;
pub mod id;
pub mod money;
pub mod order;
pub mod payment;
pub mod provider_account;
pub mod refund;
pub mod settle;
pub mod webhook;

pub use access::{ApiKey, ApiKeyKind, Merchant, MerchantSettings, Permission, Role, User};
pub use audit::{AuditActor, AuditContext, AuditTarget};
pub use event::{EventDraft, EventType};
pub use id::{
    ApiKeyId, AttemptId, AuditId, EndpointId, EventId, MerchantId, MessageId, OrderId, PaymentId, ProviderAccountId,
    RefundId, UserId, new_client_secret, new_order_number, provider_reference,
};
pub use money::{AmountError, Currency, MajorAmount, Money};
pub use order::{NewOrder, Order, OrderItem, OrderStatus};
pub use payment::{Payment, PaymentStatus};
pub use provider_account::{AccountStatus, MerchantProviderAccount};
pub use refund::{Refund, RefundStatus};

/// Timestamps are UTC instants with millisecond precision everywhere in jinliu.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A transition that the state machine does not allow from the object's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} the {object}: it is {from}")]
pub struct TransitionError {
    /// "order", "payment" or "refund".
    pub object: &'static str,
    /// The attempted action, e.g. "cancel".
    pub action: &'static str,
    /// The current status word.
    pub from: &'static str,
}

/// Formats a timestamp the way every API response and event does: RFC 3339, UTC, milliseconds.
pub fn format_time(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
