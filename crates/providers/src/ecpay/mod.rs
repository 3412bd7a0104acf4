//! 綠界 ECPay: the adapter (placeholder until its adapter lands).

pub mod sandbox;

use jinliu_domain::{Currency, Money, Timestamp};

use crate::account::AccountError;
use crate::{
    CreatePayment, CreatedPayment, InboundNotification, Outbound, PaymentProvider, ProviderAccount, ProviderError,
    ProviderStatus, RefundOutcome, RefundRequest, VerifiedNotification,
};

/// The sandbox's test merchant credentials (the default test-mode account uses them).
pub const SANDBOX_CREDENTIALS: &[(&str, &str)] = &[
    ("merchant_id", "3002607"),
    ("hash_key", "pwFHCqoQZGmho4w6"),
    ("hash_iv", "EkRm7iFT261dpevs"),
];

/// The 綠界 ECPay adapter.
#[derive(Debug)]
pub struct EcPay {
    account: ProviderAccount,
    #[allow(dead_code)]
    out: Outbound,
}

impl EcPay {
    /// The adapter for `account`.
    pub fn new(account: ProviderAccount, out: Outbound) -> Result<EcPay, AccountError> {
        Ok(EcPay { account, out })
    }
}

fn not_built() -> ProviderError {
    ProviderError::Unavailable("adapter not built yet".into())
}

#[async_trait::async_trait]
impl PaymentProvider for EcPay {
    fn id(&self) -> &'static str {
        "ecpay"
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
