//! The test provider's notification body.

use serde::{Deserialize, Serialize};

/// What the sandbox posts to jinliu's notify URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Which provider id the sandbox answered as.
    pub provider: String,
    /// The payment's provider reference.
    pub reference: String,
    /// jinliu's payment id, as the merchant order number.
    pub payment_id: String,
    /// `succeeded`, `failed` or `processing`.
    pub status: String,
    /// The provider's transaction id.
    pub transaction_id: String,
    /// Decline reason, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Amount in major units as text.
    pub amount: String,
    /// ISO currency.
    pub currency: String,
    /// Unix seconds when sent.
    pub timestamp: i64,
}
