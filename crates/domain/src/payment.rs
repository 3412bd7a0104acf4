//! The payment state machine.
//!
//! pending → processing → completed | failed | expired | cancelled (pending may skip processing);
//! completed → partially_refunded → refunded. failed is terminal. The one way back from a final
//! state is money that really moved: a provider-confirmed success after jinliu expired or
//! cancelled the payment completes it with `late_success` set, so it can be refunded rather than
//! lost.

use serde::{Deserialize, Serialize};

use crate::event::{EventDraft, EventType};
use crate::money::Currency;
use crate::{MerchantId, Money, OrderId, PaymentId, Timestamp, TransitionError};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum PaymentStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Expired,
    Cancelled,
    PartiallyRefunded,
    Refunded,
}

impl PaymentStatus {
    /// Every status.
    pub const ALL: [PaymentStatus; 8] = [
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::Completed,
        PaymentStatus::Failed,
        PaymentStatus::Expired,
        PaymentStatus::Cancelled,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Refunded,
    ];

    /// The status word used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// Parses a status word.
    pub fn parse(s: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Still waiting for the customer or the provider.
    pub fn is_open(self) -> bool {
        matches!(self, PaymentStatus::Pending | PaymentStatus::Processing)
    }

    /// Money was captured (possibly refunded since).
    pub fn is_captured(self) -> bool {
        matches!(
            self,
            PaymentStatus::Completed | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
        )
    }
}

/// A payment attempt for an order through one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    /// `pay_…`
    pub id: PaymentId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// The order it pays.
    pub order_id: OrderId,
    /// Provider id (`kpay`, `tpay`, `octopus`, `ecpay`, …).
    pub provider: String,
    /// Which of the merchant's accounts at that provider (empty = the default one).
    pub provider_account: String,
    /// Payment method, e.g. `octopus_qr`.
    pub method: String,
    /// The amount asked of the customer.
    pub amount: Money,
    /// Current status.
    pub status: PaymentStatus,
    /// The provider's id for this payment; unique per provider account.
    pub provider_reference: Option<String>,
    /// The provider's id for the money movement, once it confirmed one (seed 004's
    /// `octopusTransactionId`).
    pub provider_transaction_id: Option<String>,
    /// Token the customer can type into the provider's app.
    pub payment_token: Option<String>,
    /// JSON text with at least `url`: what the QR code encodes.
    pub qr_code_data: Option<String>,
    /// Unlocks the public view of this one payment.
    pub client_secret: String,
    /// Where the hosted page sends the customer after success.
    pub success_url: Option<String>,
    /// Where the hosted page sends the customer after failure.
    pub failure_url: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Contact (personal data).
    pub customer_email: Option<String>,
    /// Contact (personal data).
    pub customer_phone: Option<String>,
    /// JSON text.
    pub metadata: Option<String>,
    /// Refunds that succeeded, minor units.
    pub refunded_minor: i64,
    /// Refunds created and not yet settled, minor units: reserved so that concurrent refunds
    /// can never together exceed what was captured.
    pub refund_pending_minor: i64,
    /// Completed after jinliu had expired or cancelled it.
    pub late_success: bool,
    /// Completed while another attempt had already paid the order.
    pub duplicate: bool,
    /// Test or live.
    pub livemode: bool,
    /// Starts at 1; +1 on every change.
    pub version: i64,
    /// When the customer can no longer pay.
    pub expires_at: Timestamp,
    /// When the provider confirmed the money.
    pub completed_at: Option<Timestamp>,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}

/// Why a refund cannot be reserved on a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRejected {
    /// Nothing was captured (or it is all refunded).
    #[error("a payment that is {0} cannot be refunded")]
    NotRefundable(&'static str),
    /// The amount is more than what is left.
    #[error("refund amount exceeds the remaining refundable amount")]
    ExceedsRemaining {
        /// What can still be refunded, minor units.
        remaining_minor: i64,
        /// Its currency.
        currency: Currency,
    },
    /// Another refund of this payment is still pending, and the provider cannot tell two
    /// refunds apart (no refund id of ours), so a second one must wait.
    #[error("another refund of this payment is still pending")]
    InProgress,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentEventData<'a> {
    id: &'a PaymentId,
    order_id: &'a OrderId,
    provider: &'a str,
    status: &'static str,
    #[serde(serialize_with = "crate::money::serialize_amount")]
    amount: (i64, Currency),
    currency: Currency,
    #[serde(serialize_with = "crate::money::serialize_amount")]
    refunded_amount: (i64, Currency),
    late_success: bool,
    duplicate: bool,
    version: i64,
}

impl Payment {
    /// What can still be refunded: captured minus succeeded minus pending refunds.
    pub fn refundable_minor(&self) -> i64 {
        if !matches!(self.status, PaymentStatus::Completed | PaymentStatus::PartiallyRefunded) {
            return 0;
        }
        self.amount.minor() - self.refunded_minor - self.refund_pending_minor
    }

    /// The event describing the payment as it is now.
    pub fn event(&self, event_type: EventType) -> EventDraft {
        let cur = self.amount.currency();
        EventDraft::new(
            event_type,
            self.id.as_str(),
            self.version,
            &PaymentEventData {
                id: &self.id,
                order_id: &self.order_id,
                provider: &self.provider,
                status: self.status.as_str(),
                amount: (self.amount.minor(), cur),
                currency: cur,
                refunded_amount: (self.refunded_minor, cur),
                late_success: self.late_success,
                duplicate: self.duplicate,
                version: self.version,
            },
        )
    }

    fn transition(&mut self, to: PaymentStatus, event_type: EventType, now: Timestamp) -> EventDraft {
        self.status = to;
        self.version += 1;
        self.updated_at = now;
        self.event(event_type)
    }

    fn refuse(&self, action: &'static str) -> TransitionError {
        TransitionError {
            object: "payment",
            action,
            from: self.status.as_str(),
        }
    }

    /// pending → processing (the customer started paying at the provider).
    pub fn mark_processing(&mut self, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if self.status != PaymentStatus::Pending {
            return Err(self.refuse("start processing"));
        }
        Ok(self.transition(PaymentStatus::Processing, EventType::PaymentProcessing, now))
    }

    /// pending | processing → completed; expired | cancelled → completed with `late_success`.
    /// `duplicate` says whether another attempt already paid the order; `order_closed` whether
    /// the order was cancelled or expired meanwhile (also a late success: money nobody expects).
    pub fn complete(
        &mut self,
        duplicate: bool,
        order_closed: bool,
        transaction_id: Option<String>,
        now: Timestamp,
    ) -> Result<EventDraft, TransitionError> {
        match self.status {
            PaymentStatus::Pending | PaymentStatus::Processing => self.late_success = order_closed,
            PaymentStatus::Expired | PaymentStatus::Cancelled => self.late_success = true,
            _ => return Err(self.refuse("complete")),
        }
        self.duplicate = duplicate;
        self.completed_at = Some(now);
        if transaction_id.is_some() {
            self.provider_transaction_id = transaction_id;
        }
        Ok(self.transition(PaymentStatus::Completed, EventType::PaymentCompleted, now))
    }

    /// pending | processing → failed.
    pub fn fail(&mut self, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if !self.status.is_open() {
            return Err(self.refuse("fail"));
        }
        Ok(self.transition(PaymentStatus::Failed, EventType::PaymentFailed, now))
    }

    /// pending | processing → expired.
    pub fn expire(&mut self, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if !self.status.is_open() {
            return Err(self.refuse("expire"));
        }
        Ok(self.transition(PaymentStatus::Expired, EventType::PaymentExpired, now))
    }

    /// pending | processing → cancelled.
    pub fn cancel(&mut self, now: Timestamp) -> Result<EventDraft, TransitionError> {
        if !self.status.is_open() {
            return Err(self.refuse("cancel"));
        }
        Ok(self.transition(PaymentStatus::Cancelled, EventType::PaymentCancelled, now))
    }

    /// Reserves `minor` units for a new refund. Not a status transition, so no event (the refund
    /// itself emits `refund.created`), but the version moves so concurrent writers notice.
    pub fn reserve_refund(&mut self, minor: i64, now: Timestamp) -> Result<(), RefundRejected> {
        if !matches!(self.status, PaymentStatus::Completed | PaymentStatus::PartiallyRefunded) {
            return Err(RefundRejected::NotRefundable(self.status.as_str()));
        }
        let remaining = self.refundable_minor();
        if minor <= 0 || minor > remaining {
            return Err(RefundRejected::ExceedsRemaining {
                remaining_minor: remaining,
                currency: self.amount.currency(),
            });
        }
        self.refund_pending_minor += minor;
        self.version += 1;
        self.updated_at = now;
        Ok(())
    }

    /// Settles a reserved refund. On success the payment becomes partially_refunded or refunded
    /// (one event); on failure the reservation is released (no status change, no event).
    pub fn settle_refund(
        &mut self,
        minor: i64,
        succeeded: bool,
        now: Timestamp,
    ) -> Result<Option<EventDraft>, TransitionError> {
        if minor <= 0 || minor > self.refund_pending_minor {
            return Err(self.refuse("settle a refund not reserved on"));
        }
        self.refund_pending_minor -= minor;
        if !succeeded {
            self.version += 1;
            self.updated_at = now;
            return Ok(None);
        }
        self.refunded_minor += minor;
        Ok(Some(if self.refunded_minor == self.amount.minor() {
            self.transition(PaymentStatus::Refunded, EventType::PaymentRefunded, now)
        } else {
            self.transition(
                PaymentStatus::PartiallyRefunded,
                EventType::PaymentPartiallyRefunded,
                now,
            )
        }))
    }
}
