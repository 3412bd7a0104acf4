//! The Octopus-like API's wire types: request and response bodies of `/v1/payments` and
//! `/v1/refunds`, the notification body, the error envelope, header names, and the amount's text
//! form.
//!
//! These are the provider's shapes, kept apart from jinliu's domain types: the adapter converts at
//! its edge and nothing outside `octopus/` sees them. Amounts travel as JSON strings with exactly
//! two decimals (`"100.00"`), the same text that is signed, so no float ever touches them.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use jinliu_domain::{Currency, money::format_minor};
use serde::{Deserialize, Serialize};

/// Merchant id request header.
pub const H_MERCHANT: &str = "x-octopus-merchant-id";
/// Unix-seconds timestamp header (requests and notifications).
pub const H_TIMESTAMP: &str = "x-octopus-timestamp";
/// Single-use nonce request header.
pub const H_NONCE: &str = "x-octopus-nonce";
/// Signature header: on body-less requests (over method + path + timestamp + nonce) and on
/// notifications (over the raw body).
pub const H_SIGNATURE: &str = "x-octopus-signature";

/// What jinliu answers (HTTP 200) to acknowledge a notification; anything else is re-sent.
pub const ACK: &str = r#"{"received":true}"#;

/// The only currency, with its code as sent.
pub const CURRENCY: &str = "HKD";

/// Accepted distance between a signing timestamp and the receiver's clock, in seconds.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

/// Payment statuses as the provider spells them.
pub mod status {
    /// Created, waiting for the customer.
    pub const PENDING: &str = "PENDING";
    /// The customer scanned the QR code / opened the app and is paying.
    pub const PROCESSING: &str = "PROCESSING";
    /// Paid.
    pub const SUCCESS: &str = "SUCCESS";
    /// Declined or failed.
    pub const FAILED: &str = "FAILED";
    /// Not paid before `expiresAt`.
    pub const EXPIRED: &str = "EXPIRED";
    /// Cancelled by the merchant before payment.
    pub const CANCELLED: &str = "CANCELLED";
}

/// `POST /v1/payments` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePaymentRequest {
    /// The merchant's order number (jinliu's provider reference); unique per merchant.
    pub order_id: String,
    /// Major units, two decimals: `"100.00"`.
    pub amount: String,
    /// `HKD`.
    pub currency: String,
    /// Shown to the customer.
    pub description: String,
    /// Where notifications go.
    pub notify_url: String,
    /// Where the customer's browser goes afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// RFC 3339 in Hong Kong time (`+08:00`).
    pub expires_at: String,
    /// Hex HMAC-SHA256 of orderId + amount + currency + timestamp + nonce.
    pub signature: String,
}

/// A payment as the provider returns it (create, query, cancel).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResource {
    /// The provider's payment id (`opay_…`).
    pub id: String,
    /// The merchant's order number.
    pub order_id: String,
    /// The merchant.
    pub merchant_id: String,
    /// One of [`status`].
    pub status: String,
    /// Major units, two decimals.
    pub amount: String,
    /// `HKD`.
    pub currency: String,
    /// The payment token.
    pub token: String,
    /// `{host}/oos/payment/?token=<t>`: the QR code's content and the desktop landing page.
    pub landing_url: String,
    /// `octopus://payment?token=<t>`.
    pub deep_link: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The receipt number once paid.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Refunded so far, major units, two decimals.
    pub refunded_amount: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/refunds` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequestBody {
    /// The merchant's refund id; the provider deduplicates on it.
    pub refund_id: String,
    /// The payment's order number.
    pub order_id: String,
    /// Major units, two decimals.
    pub amount: String,
    /// `HKD`.
    pub currency: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Hex HMAC-SHA256 of refundId + orderId + amount + currency + timestamp + nonce.
    pub signature: String,
}

/// A refund as the provider returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundResource {
    /// The merchant's refund id.
    pub refund_id: String,
    /// The payment's order number.
    pub order_id: String,
    /// The provider's payment id.
    pub payment_id: String,
    /// This refund, major units.
    pub amount: String,
    /// `HKD`.
    pub currency: String,
    /// `SUCCESS` (refunds to the Octopus wallet complete at once) or `PENDING`.
    pub status: String,
    /// The payment's refunded total after this refund, major units.
    pub refunded_amount: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A notification's JSON body; `X-Octopus-Signature` covers its raw bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationBody {
    /// Unique per notification (a re-send of the same notification keeps it).
    pub event_id: String,
    /// The merchant.
    pub merchant_id: String,
    /// The provider's payment id.
    pub payment_id: String,
    /// The merchant's order number (jinliu's reference).
    pub order_id: String,
    /// One of [`status`].
    pub status: String,
    /// Major units, two decimals.
    pub amount: String,
    /// `HKD`.
    pub currency: String,
    /// The receipt number once paid.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Unix seconds when signed; equals the `X-Octopus-Timestamp` header.
    pub timestamp: i64,
}

/// The error envelope of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code (`INVALID_SIGNATURE`, `REFUND_EXCEEDS_AVAILABLE`, …).
    pub code: String,
    /// Human text.
    pub message: String,
}

/// Minor units as the wire's amount text: `"100.00"`.
pub fn amount_text(minor: i64) -> String {
    format_minor(minor, Currency::Hkd)
}

/// The wire's amount text back to minor units. Only the canonical form (digits, a dot, exactly
/// two digits) is accepted: the signed text must have one spelling, or `100.0` and `100.00`
/// would sign differently for the same money.
pub fn parse_amount(text: &str) -> Option<i64> {
    let (whole, cents) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || whole.len() > 12 || cents.len() != 2 || !digits(cents) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = cents.parse().ok()?;
    whole.checked_mul(100)?.checked_add(cents)
}

/// Hong Kong time (UTC+8, no daylight saving), the zone the provider writes times in.
pub fn hong_kong() -> FixedOffset {
    match FixedOffset::east_opt(8 * 3600) {
        Some(offset) => offset,
        None => unreachable!("8 hours is inside FixedOffset's ±24 h range"),
    }
}

/// An instant as the wire's RFC 3339 text in Hong Kong time.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.with_timezone(&hong_kong())
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The wire's RFC 3339 text back to an instant.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_two_decimals_and_read_back_only_in_that_form() {
        assert_eq!(amount_text(10_000), "100.00");
        assert_eq!(amount_text(10), "0.10");
        assert_eq!(parse_amount("100.00"), Some(10_000));
        assert_eq!(parse_amount("0.10"), Some(10));
        for bad in [
            "100",
            "100.0",
            "100.000",
            "-1.00",
            "+1.00",
            "1e2.00",
            ".50",
            "1.5a",
            "",
            "9999999999999.00",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_are_written_in_hong_kong_time_and_read_back_to_the_same_instant() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        assert_eq!(time_text(t), "2023-11-15T06:13:20+08:00");
        assert_eq!(parse_time(&time_text(t)), Some(t));
    }
}
