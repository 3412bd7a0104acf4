//! The order state machine: pending → paid → partially_refunded → refunded, and
//! pending → cancelled | expired.

use serde::{Deserialize, Serialize};

use crate::event::{EventDraft, EventType};
use crate::money::Currency;
use crate::{MerchantId, Money, OrderId, PaymentId, Timestamp, TransitionError};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum OrderStatus {
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Cancelled,
    Expired,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    /// The status word used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    /// Parses a status word.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One line of a seed-000 order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// What was bought.
    pub name: String,
    /// How many (at least 1).
    pub quantity: i64,
    /// Price of one, in minor units of the order's currency, when the client gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price_minor: Option<i64>,
}

/// An order: what the customer owes, paid by one or more payment attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// `ord_…`
    pub id: OrderId,
    /// The merchant that owns it.
    pub merchant_id: MerchantId,
    /// Human number `ORD-XXXXXXXX`.
    pub order_number: String,
    /// Free text shown to the customer.
    pub description: Option<String>,
    /// The total due.
    pub amount: Money,
    /// Seed-000 line items (may be empty).
    pub items: Vec<OrderItem>,
    /// Customer contact (personal data: never in events or logs).
    pub customer_email: Option<String>,
    /// Customer contact (personal data: never in events or logs).
    pub customer_phone: Option<String>,
    /// The merchant's own key/values, stored as JSON text.
    pub metadata: Option<String>,
    /// Current status.
    pub status: OrderStatus,
    /// The payment that paid it, once paid.
    pub paid_by: Option<PaymentId>,
    /// Minor units refunded from that payment so far.
    pub refunded_minor: i64,
    /// Test or live object.
    pub livemode: bool,
    /// Starts at 1; +1 on every change.
    pub version: i64,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}

/// Everything a new order needs; amounts already parsed.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Owner.
    pub merchant_id: MerchantId,
    /// Free text.
    pub description: Option<String>,
    /// Total due.
    pub amount: Money,
    /// Line items.
    pub items: Vec<OrderItem>,
    /// Contact.
    pub customer_email: Option<String>,
    /// Contact.
    pub customer_phone: Option<String>,
    /// JSON text.
    pub metadata: Option<String>,
    /// Test or live.
    pub livemode: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderEventData<'a> {
    id: &'a OrderId,
    order_number: &'a str,
    status: &'static str,
    #[serde(serialize_with = "crate::money::serialize_amount")]
    amount: (i64, Currency),
    currency: Currency,
    #[serde(serialize_with = "crate::money::serialize_amount")]
    refunded_amount: (i64, Currency),
    #[serde(skip_serializing_if = "Option::is_none")]
    paid_by: Option<&'a PaymentId>,
    version: i64,
}

impl Order {
    /// Creates a pending order and its `order.created` event.
    pub fn create(new: NewOrder, order_number: String, now: Timestamp) -> (Order, EventDraft) {
        let order = Order {
            id: OrderId::generate(),
            merchant_id: new.merchant_id,
            order_number,
            description: new.description,
            amount: new.amount,
            items: new.items,
            customer_email: new.customer_email,
            customer_phone: new.customer_phone,
            metadata: new.metadata,
            status: OrderStatus::Pending,
            paid_by: None,
            refunded_minor: 0,
            livemode: new.livemode,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let event = order.event(EventType::OrderCreated);
        (order, event)
    }

    /// Whether a new payment attempt may be started.
    pub fn is_payable(&self) -> bool {
        self.status == OrderStatus::Pending
    }

    /// The event describing the order as it is now.
    pub fn event(&self, event_type: EventType) -> EventDraft {
        let cur = self.amount.currency();
        EventDraft::new(
            event_type,
            self.id.as_str(),
            self.version,
            &OrderEventData {
                id: &self.id,
                order_number: &self.order_number,
                status: self.status.as_str(),
                amount: (self.amount.minor(), cur),
                currency: cur,
                refunded_amount: (self.refunded_minor, cur),
                paid_by: self.paid_by.as_ref(),
                version: self.version,
            },
        )
    }

    fn transition(&mut self, to: OrderStatus, event_type: EventType, now: Timestamp) -> EventDraft {
        self.status = to;
        self.version += 1;
        self.updated_at = now;
        self.event(event_type)
    }

    fn refuse(&self, action: &'static str) -> TransitionError {
        TransitionError {
            object: "order",
            action,
            from: self.status.as_str(),
        }
    }

    /// pending → paid, by `payment`.
    pub fn mark_paid(&mut self, payment: &PaymentId, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if self.status != OrderStatus::Pending {
            return Err(self.refuse("pay"));
        }
        self.paid_by = Some(payment.clone());
        Ok(self.transition(OrderStatus::Paid, EventType::OrderPaid, now))
    }

    /// pending → cancelled.
    pub fn cancel(&mut self, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if self.status != OrderStatus::Pending {
            return Err(self.refuse("cancel"));
        }
        Ok(self.transition(OrderStatus::Cancelled, EventType::OrderCancelled, now))
    }

    /// pending → expired.
    pub fn expire(&mut self, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if self.status != OrderStatus::Pending {
            return Err(self.refuse("expire"));
        }
        Ok(self.transition(OrderStatus::Expired, EventType::OrderExpired, now))
    }

    /// paid | partially_refunded → partially_refunded | refunded after `minor` units of the paying
    /// payment were refunded.
    pub fn apply_refund(&mut self, minor: i64, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if !matches!(self.status, OrderStatus::Paid | OrderStatus::PartiallyRefunded) {
            return Err(self.refuse("refund"));
        }
        let refunded = self.refunded_minor.saturating_add(minor);
        if minor <= 0 || refunded > self.amount.minor() {
            return Err(self.refuse("over-refund"));
        }
        self.refunded_minor = refunded;
        Ok(if refunded == self.amount.minor() {
            self.transition(OrderStatus::Refunded, EventType::OrderRefunded, now)
        } else {
            self.transition(OrderStatus::PartiallyRefunded, EventType::OrderPartiallyRefunded, now)
        })
    }
}
