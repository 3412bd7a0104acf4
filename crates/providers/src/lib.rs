//! Payment providers: the [`PaymentProvider`] trait every adapter implements, the registry that
//! maps provider ids to adapters, and the built-in test provider with its sandbox.
//!
//! An adapter speaks one provider's protocol and nothing else: it never touches the store and
//! never decides a state transition; it reports what the provider says, and the server applies
//! it through the domain. Each provider lives in its own folder (`mod.rs` adapter, `wire.rs`
//! its request/response types, `sign.rs`, `sandbox.rs`).

pub mod test;

use std::collections::HashMap;
use std::sync::Arc;

use jinliu_domain::{Currency, Money, PaymentId, RefundId, Timestamp};

/// What a provider adapter can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered garbage; the outcome is unknown.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request.
    #[error("provider refused: {0}")]
    Refused(String),
    /// The provider does not know this payment.
    #[error("unknown at the provider")]
    NotFound,
    /// A notification's signature or shape is wrong.
    #[error("notification rejected: {0}")]
    BadNotification(String),
}

/// Asks the provider to start a payment.
#[derive(Debug, Clone)]
pub struct CreatePayment {
    /// jinliu's payment id (the provider's merchant order number).
    pub payment_id: PaymentId,
    /// What to charge.
    pub amount: Money,
    /// Shown to the customer.
    pub description: String,
    /// Where the provider posts its notifications.
    pub notify_url: String,
    /// Where the provider sends the customer's browser afterwards.
    pub return_url: Option<String>,
    /// After this the customer can no longer pay.
    pub expires_at: Timestamp,
}

/// The provider accepted the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPayment {
    /// The provider's id for it.
    pub reference: String,
    /// A short token the customer can type in the provider's app.
    pub payment_token: Option<String>,
    /// The page the customer opens or scans (the QR code's content).
    pub pay_url: String,
    /// App deep link, when the provider has an app.
    pub deep_link: Option<String>,
}

/// Where the provider says a payment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Waiting for the customer.
    Pending,
    /// The customer started paying.
    Processing,
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
    /// Cancelled at the provider.
    Cancelled,
}

/// Asks the provider to refund.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The payment's provider reference.
    pub payment_reference: String,
    /// jinliu's refund id (the provider's refund number).
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
    /// The amount the provider says moved, when the notification carries one; the server refuses
    /// a notification whose amount differs from the payment's.
    pub amount: Option<jinliu_domain::Money>,
    /// Whether the notification alone may change the payment; `false` for providers whose
    /// notifications prove nothing (the server then queries the provider first).
    pub trusted: bool,
    /// The exact body the provider expects back (`OK`, `1|OK`, …).
    pub ack: String,
}

/// One payment provider's protocol.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider id used in the API (`kpay`, `tpay`, `octopus`, `ecpay`).
    fn id(&self) -> &str;
    /// Whether it takes this currency.
    fn supports(&self, currency: Currency) -> bool;
    /// Starts a payment.
    async fn create_payment(&self, req: &CreatePayment) -> Result<CreatedPayment, ProviderError>;
    /// Asks where a payment stands.
    async fn query_payment(&self, reference: &str) -> Result<ProviderStatus, ProviderError>;
    /// Refunds (part of) a captured payment.
    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError>;
    /// Cancels a payment that has not been paid.
    async fn cancel(&self, reference: &str) -> Result<(), ProviderError>;
    /// Checks a notification's signature and reads it.
    fn verify_notification(&self, n: &InboundNotification) -> Result<VerifiedNotification, ProviderError>;
}

/// Provider ids the API accepts.
pub const PROVIDER_IDS: [&str; 4] = ["kpay", "tpay", "octopus", "ecpay"];

/// The adapters by provider id.
#[derive(Clone, Default)]
pub struct Registry {
    providers: HashMap<String, Arc<dyn PaymentProvider>>,
}

impl Registry {
    /// Adds (or replaces) an adapter under its id.
    pub fn register(&mut self, p: Arc<dyn PaymentProvider>) {
        self.providers.insert(p.id().to_owned(), p);
    }

    /// The adapter for `id`.
    pub fn get(&self, id: &str) -> Option<Arc<dyn PaymentProvider>> {
        self.providers.get(id).cloned()
    }

    /// Registered ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.providers.keys().cloned().collect();
        ids.sort();
        ids
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("providers", &self.ids()).finish()
    }
}
