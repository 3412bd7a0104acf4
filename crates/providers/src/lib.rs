//! Payment providers: the [`PaymentProvider`] trait every adapter implements, provider accounts,
//! the registry that maps accounts to adapters, resilient outbound calls, and a sandbox per
//! provider that speaks its protocol.
//!
//! An adapter speaks one provider's protocol and nothing else: it never touches the store and
//! never decides a state transition; it reports what the provider says, and the server applies
//! it through the domain. Each provider lives in its own folder: `mod.rs` (the adapter),
//! `wire.rs` (its request/response types, kept apart from domain types), `sign.rs` (its
//! signature scheme) and `sandbox.rs` (a local server that behaves like the provider).

pub mod account;
pub mod ecpay;
pub mod kpay;
pub mod octopus;
pub mod outbound;
pub mod sandbox;
pub mod tpay;

use std::collections::HashMap;
use std::sync::Arc;

use jinliu_domain::{Currency, Money, PaymentId, RefundId, Timestamp};

pub use account::{ProviderAccount, Registry};
pub use outbound::{CallPolicy, Outbound};

/// What a provider adapter can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, timed out, answered 5xx or garbage: the outcome is
    /// unknown, so the caller must not assume the call had no effect.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request; nothing happened there.
    #[error("provider refused: {0}")]
    Refused(String),
    /// The provider does not know this payment.
    #[error("unknown at the provider")]
    NotFound,
    /// A notification's signature, timestamp or shape is wrong.
    #[error("notification rejected: {0}")]
    BadNotification(String),
}

/// Asks the provider to start a payment.
#[derive(Debug, Clone)]
pub struct CreatePayment {
    /// jinliu's payment id.
    pub payment_id: PaymentId,
    /// The provider reference ([`jinliu_domain::provider_reference`]): the provider's merchant
    /// order number, the same on every retry of this attempt.
    pub reference: String,
    /// What to charge.
    pub amount: Money,
    /// The payment method (`ecpay_credit`, `octopus_qr`, …).
    pub method: String,
    /// Shown to the customer.
    pub description: String,
    /// Where the provider sends the customer's browser afterwards.
    pub return_url: Option<String>,
    /// When jinliu created the attempt (ECPay's MerchantTradeDate comes from it, so a form built
    /// again later is byte-identical).
    pub created_at: Timestamp,
    /// After this the customer can no longer pay.
    pub expires_at: Timestamp,
}

/// The provider accepted the payment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreatedPayment {
    /// The page the customer opens or scans (the QR code's content). `None` for providers started
    /// by a browser form POST ([`PaymentProvider::checkout_form`]): jinliu then hands out its own
    /// page that posts the form.
    pub pay_url: Option<String>,
    /// A short token the customer can type in the provider's app.
    pub payment_token: Option<String>,
    /// App deep link, when the provider has an app.
    pub deep_link: Option<String>,
    /// The provider's own expiry, when it sets one.
    pub expires_at: Option<Timestamp>,
}

/// A signed HTML form the customer's browser posts to the provider (ECPay, TPay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutForm {
    /// The provider URL the form posts to.
    pub action: String,
    /// Field names and values, in the order they are rendered.
    pub fields: Vec<(String, String)>,
}

/// Where the provider says a payment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Waiting for the customer.
    Pending,
    /// The customer started paying.
    Processing,
    /// Authorised but not captured (KPay `B`): jinliu captures, then the payment completes.
    Authorized,
    /// The money moved; the provider's transaction id.
    Succeeded {
        /// The provider's transaction id.
        transaction_id: Option<String>,
    },
    /// Declined.
    Failed {
        /// The provider's reason.
        reason: String,
    },
    /// Timed out at the provider.
    Expired,
    /// Cancelled (voided) at the provider.
    Cancelled,
}

impl ProviderStatus {
    /// Whether the provider will not change its mind any more.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            ProviderStatus::Pending | ProviderStatus::Processing | ProviderStatus::Authorized
        )
    }
}

/// Asks the provider to refund.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The payment's provider reference.
    pub payment_reference: String,
    /// The payment method (some providers refund only some methods).
    pub method: String,
    /// The payment's full amount.
    pub payment_amount: Money,
    /// jinliu's refund id (the provider's refund number where the protocol has one).
    pub refund_id: RefundId,
    /// How much.
    pub amount: Money,
    /// Why.
    pub reason: Option<String>,
}

/// The provider's answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Done; the provider's refund reference.
    Succeeded(Option<String>),
    /// Accepted, result later (a notification or a query settles it).
    Pending(Option<String>),
    /// Refused; the provider's reason.
    Failed(String),
}

/// A notification as received: headers (lower-case names) and the raw body.
#[derive(Debug, Clone, Default)]
pub struct InboundNotification {
    /// Lower-case header names with their values.
    pub headers: Vec<(String, String)>,
    /// The body exactly as received (signatures cover these bytes).
    pub body: Vec<u8>,
}

impl InboundNotification {
    /// A header's value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A notification whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNotification {
    /// The payment's provider reference.
    pub reference: String,
    /// What the provider says happened.
    pub status: ProviderStatus,
    /// The provider's own status word or code as sent (`E`, `1`, `SUCCESS`…): with the reference
    /// it is the deduplication key, so a re-sent notification changes nothing twice while a new
    /// status (waiting → paid) still gets through.
    pub status_code: String,
    /// The amount the provider says moved, when the notification carries one; the server refuses
    /// a notification whose amount differs from the payment's.
    pub amount: Option<Money>,
    /// Whether the notification alone may change the payment; `false` for providers whose
    /// notifications prove nothing (the server then queries the provider first).
    pub trusted: bool,
    /// The exact body the provider expects back (`OK`, `1|OK`, …).
    pub ack: String,
}

/// One provider account's view of one payment provider's protocol. An adapter instance is bound
/// to one [`ProviderAccount`] (merchant × provider × mode), so its credentials, base URL and
/// notify URL are fixed.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider id used in the API (`kpay`, `tpay`, `octopus`, `ecpay`).
    fn id(&self) -> &'static str;
    /// The account this adapter acts for.
    fn account(&self) -> &ProviderAccount;
    /// Whether it takes this currency.
    fn supports(&self, currency: Currency) -> bool;
    /// The provider's own money rules (whole TWD, Octopus' 10-cent steps and limits…); the
    /// message is shown to the API client in a 422 `invalid_amount`.
    fn check_amount(&self, amount: Money) -> Result<(), String>;
    /// Whether payments made with `method` can be refunded through the provider's API.
    fn can_refund(&self, _method: &str) -> bool {
        true
    }
    /// Starts a payment. Safe to call again with the same request: the reference is the same,
    /// and adapters of API-created providers retry on it.
    async fn create_payment(&self, req: &CreatePayment) -> Result<CreatedPayment, ProviderError>;
    /// For providers started by a browser form POST: the signed form. Deterministic in `req`, so
    /// jinliu can build it again whenever the customer opens the page.
    fn checkout_form(&self, _req: &CreatePayment) -> Option<CheckoutForm> {
        None
    }
    /// Asks where a payment stands.
    async fn query_payment(&self, reference: &str) -> Result<ProviderStatus, ProviderError>;
    /// Captures an authorised payment (KPay); a no-op for providers that capture by themselves.
    async fn capture(&self, _reference: &str, _amount: Money) -> Result<(), ProviderError> {
        Ok(())
    }
    /// Refunds (part of) a captured payment.
    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError>;
    /// Whether the provider deduplicates refunds on an id jinliu sends, so that retrying a refund
    /// whose answer was lost is safe. When not, a retry is preceded by
    /// [`refunded_total`](PaymentProvider::refunded_total).
    fn refund_is_idempotent(&self) -> bool;
    /// How much of the payment the provider has refunded so far, in minor units.
    async fn refunded_total(&self, reference: &str) -> Result<i64, ProviderError>;
    /// Cancels (voids) a payment that has not been paid.
    async fn cancel(&self, reference: &str) -> Result<(), ProviderError>;
    /// Checks a notification's signature and reads it; `now` bounds signing timestamps.
    fn verify_notification(
        &self,
        n: &InboundNotification,
        now: Timestamp,
    ) -> Result<VerifiedNotification, ProviderError>;
}

/// The money rule of the providers that take whole New Taiwan dollars (KPay, TPay, ECPay): TWD,
/// no cents, `min` to `max` dollars. Returns the amount in dollars, as their wire formats want.
pub fn whole_twd(provider: &str, amount: Money, min: i64, max: i64) -> Result<i64, String> {
    if amount.currency() != Currency::Twd {
        return Err(format!("{provider} takes TWD only, not {}", amount.currency()));
    }
    if amount.minor() % 100 != 0 {
        return Err(format!(
            "{provider} takes whole TWD only: {} TWD has cents",
            amount.major_string()
        ));
    }
    let twd = amount.minor() / 100;
    if !(min..=max).contains(&twd) {
        return Err(if max == i64::MAX {
            format!("{provider} takes at least {min} TWD, not {twd}")
        } else {
            format!("{provider} takes {min} to {max} TWD per payment, not {twd}")
        });
    }
    Ok(twd)
}

/// Provider ids the API accepts.
pub const PROVIDER_IDS: [&str; 4] = ["kpay", "tpay", "octopus", "ecpay"];

/// Builds the adapter for an account.
pub fn adapter(account: ProviderAccount) -> Result<Arc<dyn PaymentProvider>, account::AccountError> {
    adapter_with(account, None)
}

/// Builds the adapter for an account whose calls resolve host names through `resolver` (the
/// server passes its address guard for base URLs a merchant chose, so a merchant cannot point
/// jinliu's provider calls at the private network).
pub fn adapter_with(
    account: ProviderAccount,
    resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
) -> Result<Arc<dyn PaymentProvider>, account::AccountError> {
    let out =
        Outbound::with_resolver(account.provider.clone(), account.policy.clone(), resolver).for_account(&account.id);
    Ok(match account.provider.as_str() {
        "kpay" => Arc::new(kpay::KPay::new(account, out)?),
        "tpay" => Arc::new(tpay::TPay::new(account, out)?),
        "octopus" => Arc::new(octopus::Octopus::new(account, out)?),
        "ecpay" => Arc::new(ecpay::EcPay::new(account, out)?),
        other => return Err(account::AccountError::UnknownProvider(other.to_owned())),
    })
}

/// The credential names a provider's accounts may carry (which of them are required is the
/// adapter's check when it is built).
pub fn credential_keys(provider: &str) -> &'static [&'static str] {
    match provider {
        "kpay" => &kpay::CREDENTIAL_KEYS,
        "tpay" => &tpay::CREDENTIAL_KEYS,
        "octopus" => &octopus::CREDENTIAL_KEYS,
        "ecpay" => ecpay::CREDENTIAL_KEYS,
        _ => &[],
    }
}

/// The providers' own test and staging hosts (reference/providers.md): a live account may not
/// point at any of them, so real money never goes to a test system.
pub const TEST_HOSTS: &[&str] = &[
    "test.4128888card.com.tw",
    "web-test.online.octopus.com.hk",
    "integration.online.octopus.com.hk",
    "payment-stage.ecpay.com.tw",
    "ecpayment-stage.ecpay.com.tw",
    "vendor-stage.ecpay.com.tw",
];

/// The credentials of each provider's sandbox test merchant, by provider id.
pub fn sandbox_credentials(provider: &str) -> HashMap<String, String> {
    let pairs: &[(&str, &str)] = match provider {
        "kpay" => kpay::SANDBOX_CREDENTIALS,
        "tpay" => tpay::SANDBOX_CREDENTIALS,
        "octopus" => octopus::SANDBOX_CREDENTIALS,
        "ecpay" => ecpay::SANDBOX_CREDENTIALS,
        _ => &[],
    };
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}
