//! The refund state machine: pending → succeeded | failed (Stripe's words).

use serde::{Deserialize, Serialize};

use crate::event::{EventDraft, EventType};
use crate::money::Currency;
use crate::{MerchantId, Money, PaymentId, RefundId, Timestamp, TransitionError};

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    /// The status word.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    /// Parses a status word.
    pub fn parse(s: &str) -> Option<RefundStatus> {
        [RefundStatus::Pending, RefundStatus::Succeeded, RefundStatus::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A refund of part or all of a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    /// `re_…`
    pub id: RefundId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// The refunded payment.
    pub payment_id: PaymentId,
    /// How much.
    pub amount: Money,
    /// Current status.
    pub status: RefundStatus,
    /// Why (merchant's words).
    pub reason: Option<String>,
    /// The provider's id for the refund.
    pub provider_reference: Option<String>,
    /// Why the provider refused, when it did.
    pub failure_reason: Option<String>,
    /// Test or live.
    pub livemode: bool,
    /// Starts at 1.
    pub version: i64,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundEventData<'a> {
    id: &'a RefundId,
    payment_id: &'a PaymentId,
    status: &'static str,
    #[serde(serialize_with = "crate::money::serialize_amount")]
    amount: (i64, Currency),
    currency: Currency,
    version: i64,
}

impl Refund {
    /// A new pending refund and its `refund.created` event. The caller must have reserved the
    /// amount on the payment ([`crate::Payment::reserve_refund`]) in the same unit of work.
    pub fn create(
        merchant_id: MerchantId,
        payment_id: PaymentId,
        amount: Money,
        reason: Option<String>,
        livemode: bool,
        now: Timestamp,
    ) -> (Refund, EventDraft) {
        let refund = Refund {
            id: RefundId::generate(),
            merchant_id,
            payment_id,
            amount,
            status: RefundStatus::Pending,
            reason,
            provider_reference: None,
            failure_reason: None,
            livemode,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let event = refund.event(EventType::RefundCreated);
        (refund, event)
    }

    /// The event describing the refund as it is now.
    pub fn event(&self, event_type: EventType) -> EventDraft {
        let cur = self.amount.currency();
        EventDraft::new(
            event_type,
            self.id.as_str(),
            self.version,
            &RefundEventData {
                id: &self.id,
                payment_id: &self.payment_id,
                status: self.status.as_str(),
                amount: (self.amount.minor(), cur),
                currency: cur,
                version: self.version,
            },
        )
    }

    fn transition(
        &mut self,
        to: RefundStatus,
        event_type: EventType,
        now: Timestamp,
    ) -> Result<EventDraft, TransitionError> {
        if self.status != RefundStatus::Pending {
            return Err(TransitionError {
                object: "refund",
                action: "settle",
                from: self.status.as_str(),
            });
        }
        self.status = to;
        self.version += 1;
        self.updated_at = now;
        Ok(self.event(event_type))
    }

    /// pending → succeeded.
    pub fn succeed(
        &mut self,
        provider_reference: Option<String>,
        now: Timestamp,
    ) -> Result<EventDraft, TransitionError> {
        if provider_reference.is_some() {
            self.provider_reference = provider_reference;
        }
        self.transition(RefundStatus::Succeeded, EventType::RefundSucceeded, now)
    }

    /// pending → failed.
    pub fn fail(&mut self, reason: String, now: Timestamp) -> Result<EventDraft, TransitionError> {
        self.failure_reason = Some(reason);
        self.transition(RefundStatus::Failed, EventType::RefundFailed, now)
    }
}
