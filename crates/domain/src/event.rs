//! Domain events: one per state transition, rendered once when created.
//!
//! An event's payload is the thin, stable JSON that later becomes the webhook body
//! (`{ id, type, createdAt, livemode, data }`): ids, statuses, amounts and versions only, never an
//! email or phone number, so personal data can be erased without rewriting history.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::{EventId, Timestamp};

/// Every event type jinliu emits, one per transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum EventType {
    OrderCreated,
    OrderPaid,
    OrderPartiallyRefunded,
    OrderRefunded,
    OrderCancelled,
    OrderExpired,
    PaymentCreated,
    PaymentProcessing,
    PaymentCompleted,
    PaymentFailed,
    PaymentExpired,
    PaymentCancelled,
    PaymentPartiallyRefunded,
    PaymentRefunded,
    RefundCreated,
    RefundSucceeded,
    RefundFailed,
    /// jinliu turned off one of the merchant's webhook endpoints (it answered 410, or failed for
    /// five days); the merchant's other endpoints hear of it.
    WebhookEndpointDisabled,
}

impl EventType {
    /// The dotted name used in payloads and webhook subscriptions.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderPaid => "order.paid",
            EventType::OrderPartiallyRefunded => "order.partially_refunded",
            EventType::OrderRefunded => "order.refunded",
            EventType::OrderCancelled => "order.cancelled",
            EventType::OrderExpired => "order.expired",
            EventType::PaymentCreated => "payment.created",
            EventType::PaymentProcessing => "payment.processing",
            EventType::PaymentCompleted => "payment.completed",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentExpired => "payment.expired",
            EventType::PaymentCancelled => "payment.cancelled",
            EventType::PaymentPartiallyRefunded => "payment.partially_refunded",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::RefundCreated => "refund.created",
            EventType::RefundSucceeded => "refund.succeeded",
            EventType::RefundFailed => "refund.failed",
            EventType::WebhookEndpointDisabled => "webhook_endpoint.disabled",
        }
    }

    /// Every type, in the order of the docs (webhook subscriptions are checked against it).
    pub const ALL: [EventType; 18] = [
        EventType::OrderCreated,
        EventType::OrderPaid,
        EventType::OrderPartiallyRefunded,
        EventType::OrderRefunded,
        EventType::OrderCancelled,
        EventType::OrderExpired,
        EventType::PaymentCreated,
        EventType::PaymentProcessing,
        EventType::PaymentCompleted,
        EventType::PaymentFailed,
        EventType::PaymentExpired,
        EventType::PaymentCancelled,
        EventType::PaymentPartiallyRefunded,
        EventType::PaymentRefunded,
        EventType::RefundCreated,
        EventType::RefundSucceeded,
        EventType::RefundFailed,
        EventType::WebhookEndpointDisabled,
    ];

    /// The type named `name` (`payment.completed`), if jinliu emits it.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// An event decided by a transition, not yet stored. The store gives it an id and a time and
/// writes it in the same transaction as the state it describes.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// What happened.
    pub event_type: EventType,
    /// The id of the object that changed (`ord_…`, `pay_…`, `re_…`).
    pub object_id: String,
    /// The object's version after the transition.
    pub version: i64,
    /// The thin `data` part of the payload, already JSON.
    pub data: Box<RawValue>,
}

impl EventDraft {
    pub(crate) fn new<T: Serialize>(event_type: EventType, object_id: &str, version: i64, data: &T) -> EventDraft {
        // Serialising a plain struct of strings and integers cannot fail; fall back to `null`
        // rather than panic so a bug here can never take a payment down with it.
        let data = serde_json::value::to_raw_value(data).unwrap_or_else(|_| RawValue::NULL.to_owned());
        EventDraft {
            event_type,
            object_id: object_id.to_owned(),
            version,
            data,
        }
    }

    /// The full payload `{ id, type, createdAt, livemode, data }` as stored in the outbox.
    pub fn render(&self, id: &EventId, created_at: Timestamp, livemode: bool) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload<'a> {
            id: &'a EventId,
            #[serde(rename = "type")]
            kind: &'static str,
            created_at: String,
            livemode: bool,
            data: &'a RawValue,
        }
        serde_json::to_string(&Payload {
            id,
            kind: self.event_type.as_str(),
            created_at: crate::format_time(created_at),
            livemode,
            data: &self.data,
        })
        .unwrap_or_default()
    }
}
