//! The built-in test provider: one adapter type that can stand in for any provider id until the
//! real adapters arrive, backed by an in-process [`sandbox::Sandbox`] that keeps payment state,
//! shows the customer a pay page and sends signed notifications back over real HTTP.
//!
//! Protocol (ours, documented in docs/providers/test.md): notifications are JSON POSTs signed
//! with `X-Signature: hex(HMAC-SHA256(secret, raw body))` — the seed-000 scheme — and carry a
//! unix `timestamp` that must be within five minutes, so a captured notification cannot be
//! replayed later.

pub mod sandbox;
pub mod sign;
pub mod wire;

use std::sync::Arc;

use jinliu_domain::Currency;

use crate::{
    CreatePayment, CreatedPayment, InboundNotification, PaymentProvider, ProviderError, ProviderStatus, RefundOutcome,
    RefundRequest, VerifiedNotification,
};
use sandbox::Sandbox;

/// How far a notification's timestamp may be from now.
const NOTIFICATION_TOLERANCE_SECS: i64 = 300;

/// The test provider, registered under any provider id.
pub struct TestProvider {
    id: String,
    sandbox: Arc<Sandbox>,
}

impl TestProvider {
    /// A test provider answering as `id`, backed by `sandbox`.
    pub fn new(id: impl Into<String>, sandbox: Arc<Sandbox>) -> TestProvider {
        TestProvider { id: id.into(), sandbox }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for TestProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn supports(&self, _currency: Currency) -> bool {
        true
    }

    async fn create_payment(&self, req: &CreatePayment) -> Result<CreatedPayment, ProviderError> {
        Ok(self.sandbox.create(&self.id, req))
    }

    async fn query_payment(&self, reference: &str) -> Result<ProviderStatus, ProviderError> {
        self.sandbox.status(reference).ok_or(ProviderError::NotFound)
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        self.sandbox.refund(req)
    }

    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        self.sandbox.cancel(reference)
    }

    fn verify_notification(&self, n: &InboundNotification) -> Result<VerifiedNotification, ProviderError> {
        let signature = n
            .header("x-signature")
            .ok_or_else(|| ProviderError::BadNotification("missing X-Signature".into()))?;
        if !sign::verify(self.sandbox.secret(), &n.body, signature) {
            return Err(ProviderError::BadNotification("signature mismatch".into()));
        }
        let body: wire::Notification =
            serde_json::from_slice(&n.body).map_err(|e| ProviderError::BadNotification(format!("body: {e}")))?;
        let age = (chrono::Utc::now().timestamp() - body.timestamp).abs();
        if age > NOTIFICATION_TOLERANCE_SECS {
            return Err(ProviderError::BadNotification(
                "timestamp outside the five-minute window".into(),
            ));
        }
        if body.provider != self.id {
            return Err(ProviderError::BadNotification(
                "notification is for another provider".into(),
            ));
        }
        let status = match body.status.as_str() {
            "succeeded" => ProviderStatus::Succeeded {
                transaction_id: Some(body.transaction_id),
            },
            "failed" => ProviderStatus::Failed {
                reason: body.reason.unwrap_or_else(|| "declined".into()),
            },
            "processing" => ProviderStatus::Processing,
            other => return Err(ProviderError::BadNotification(format!("unknown status {other:?}"))),
        };
        let currency: jinliu_domain::Currency = body
            .currency
            .parse()
            .map_err(|e| ProviderError::BadNotification(format!("currency: {e}")))?;
        let amount = jinliu_domain::Money::parse_major(&body.amount, currency, i64::MAX / 1000)
            .map_err(|e| ProviderError::BadNotification(format!("amount: {e}")))?;
        Ok(VerifiedNotification {
            reference: body.reference,
            status,
            amount: Some(amount),
            trusted: true,
            ack: "OK".into(),
        })
    }
}
