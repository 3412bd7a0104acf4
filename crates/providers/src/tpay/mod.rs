//! 台灣里 TPay: the adapter (placeholder until its adapter lands).

pub mod sandbox;

use jinliu_domain::{Currency, Money, Timestamp};

use crate::account::AccountError;
use crate::{
    CreatePayment, CreatedPayment, InboundNotification, Outbound, PaymentProvider, ProviderAccount, ProviderError,
    ProviderStatus, RefundOutcome, RefundRequest, VerifiedNotification,
};

/// The sandbox's test merchant credentials (the default test-mode account uses them).
pub const SANDBOX_CREDENTIALS: &[(&str, &str)] = &[
    ("mid", "TPAYSANDBOX01"),
    ("key1", "tpay-sandbox-key1"),
    ("key2", "tpay-sandbox-key2"),
];

/// The 台灣里 TPay adapter.
#[derive(Debug)]
pub struct TPay {
    account: ProviderAccount,
    #[allow(dead_code)]
    out: Outbound,
}

impl TPay {
    /// The adapter for `account`.
    pub fn new(account: ProviderAccount, out: Outbound) -> Result<TPay, AccountError> {
        Ok(TPay { account, out })
    }
}

fn not_built() -> ProviderError {
    ProviderError::Unavailable("adapter not built yet".into())
}

#[async_trait::async_trait]
impl PaymentProvider for TPay {
    fn id(&self) -> &'static str {
        "tpay"
    }
    fn account(&self) -> &ProviderAccount {
        &self.account
    }
    fn supports(&self, _currency: Currency) -> bool {
        false
    }
    fn check_amount(&self, _amount: Money) -> Result<(), String> {
        Err("not built".into())
    }
    async fn create_payment(&self, _req: &CreatePayment) -> Result<CreatedPayment, ProviderError> {
        Err(not_built())
    }
    async fn query_payment(&self, _reference: &str) -> Result<ProviderStatus, ProviderError> {
        Err(not_built())
    }
    async fn refund(&self, _req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        Err(not_built())
    }
    fn refund_is_idempotent(&self) -> bool {
        false
    }
    async fn refunded_total(&self, _reference: &str) -> Result<i64, ProviderError> {
        Err(not_built())
    }
    async fn cancel(&self, _reference: &str) -> Result<(), ProviderError> {
        Err(not_built())
    }
    fn verify_notification(
        &self,
        _n: &InboundNotification,
        _now: Timestamp,
    ) -> Result<VerifiedNotification, ProviderError> {
        Err(ProviderError::BadNotification("not built".into()))
    }
}
