//! Live payment status for browsers and merchant dashboards: the event bus, the SSE stream and
//! the Socket.IO server.
//!
//! Flow: the store's committed-event feed ([`jinliu_store::Store::subscribe_events`]) → [`relay`]
//! turns each `payment.*` outbox row into a [`PaymentUpdate`] → [`bus::Bus`] delivers it to this
//! node's subscribers of that payment and, with Redis configured, to every other node → each
//! subscriber (an SSE stream, a Socket.IO join) forwards it to its client. Who may watch which
//! payment is decided by the watcher rule in `http::watch`, not here. Nothing in this module
//! writes to the database.

pub mod bus;
pub mod socketio;
pub mod sse;

use jinliu_domain::{Payment, PaymentStatus, format_time};
use jinliu_store::OutboxEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::broadcast::error::RecvError;

pub use bus::{Bus, Notice, Subscription};

/// What a watcher receives on every change of a payment: exactly
/// `{ paymentId, orderId, status, amount, currency, version, updatedAt }` (seed 004's
/// `paymentUpdate`), the same for merchant credentials and a client secret: no personal data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentUpdate {
    /// `pay_…`
    pub payment_id: String,
    /// `ord_…`
    pub order_id: String,
    /// The payment's status after the change.
    pub status: String,
    /// Major units, as a JSON number (`68.00`), exactly as the API renders amounts.
    pub amount: Box<RawValue>,
    /// ISO 4217.
    pub currency: String,
    /// The payment's version after the change (the SSE event id).
    pub version: i64,
    /// When it changed, RFC 3339 UTC.
    pub updated_at: String,
}

impl PaymentUpdate {
    /// The update for a payment as it stands.
    pub fn of(p: &Payment) -> PaymentUpdate {
        #[derive(Serialize)]
        struct Amount(
            #[serde(serialize_with = "jinliu_domain::money::serialize_amount")] (i64, jinliu_domain::Currency),
        );
        let cur = p.amount.currency();
        PaymentUpdate {
            payment_id: p.id.to_string(),
            order_id: p.order_id.to_string(),
            status: p.status.as_str().to_owned(),
            // Serialising a number cannot fail; `null` rather than a panic if it ever did.
            amount: serde_json::value::to_raw_value(&Amount((p.amount.minor(), cur)))
                .unwrap_or_else(|_| RawValue::NULL.to_owned()),
            currency: cur.to_string(),
            version: p.version,
            updated_at: format_time(p.updated_at),
        }
    }

    /// The update a committed `payment.*` outbox row describes (`None` for other objects).
    pub fn from_event(e: &OutboxEvent) -> Option<PaymentUpdate> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            created_at: String,
            data: Data,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            id: String,
            order_id: String,
            status: String,
            amount: Box<RawValue>,
            currency: String,
            version: i64,
        }
        if !e.event_type.starts_with("payment.") {
            return None;
        }
        let p: Payload = serde_json::from_str(&e.payload)
            .map_err(|err| tracing::warn!(event = %e.id, error = %err, "unreadable payment event payload"))
            .ok()?;
        Some(PaymentUpdate {
            payment_id: p.data.id,
            order_id: p.data.order_id,
            status: p.data.status,
            amount: p.data.amount,
            currency: p.data.currency,
            version: p.data.version,
            updated_at: p.created_at,
        })
    }

    /// Whether the payment can change no more in a way a waiting customer cares about:
    /// completed, failed, expired or cancelled (and the refund states that follow completion).
    pub fn is_final(&self) -> bool {
        PaymentStatus::parse(&self.status).is_some_and(|s| !s.is_open())
    }
}

/// Forwards the store's committed payment events (`feed`, from
/// [`Store::subscribe_events`], subscribed before the server takes requests) to the bus until the
/// store closes. A lagging feed lost events it cannot name, so every watcher everywhere is told
/// to resync from the database.
pub async fn relay(mut feed: tokio::sync::broadcast::Receiver<OutboxEvent>, bus: Bus) {
    loop {
        match feed.recv().await {
            Ok(e) => {
                if let Some(u) = PaymentUpdate::from_event(&e) {
                    bus.publish(u);
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "the realtime relay fell behind the event feed; resyncing watchers"
                );
                bus.resync_everywhere();
            }
            Err(RecvError::Closed) => return,
        }
    }
}
