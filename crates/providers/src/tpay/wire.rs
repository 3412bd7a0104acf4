//! TPay's wire format: paths, field sets and codes, kept apart from jinliu's domain types.
//!
//! Every message is `application/x-www-form-urlencoded` and every value is text, as the PHP-era
//! protocol sends it; nothing here interprets amounts or statuses (the adapter does). The
//! checkout form and the payment result come from public material; the query, refund and cancel
//! calls and their error replies are ours, defined in the same style (see docs/providers/tpay.md).

use serde::{Deserialize, Serialize};

/// The checkout form's target (public material).
pub const PAY_PATH: &str = "/openpay/pay.php";
/// Where a payment's status is asked (our definition).
pub const QUERY_PATH: &str = "/openpay/query.php";
/// Where a refund is asked (our definition).
pub const REFUND_PATH: &str = "/openpay/refund.php";
/// Where an unpaid payment is cancelled (our definition).
pub const CANCEL_PATH: &str = "/openpay/cancel.php";

/// The protocol version sent in every request.
pub const VERSION: &str = "2.1";
/// The answer that acknowledges a result notification (our assumption).
pub const ACK: &str = "OK";
/// The `action` value of a cancel call; it is covered by the check so that a query's check value
/// (same `mid|txid`) cannot be replayed as a cancel.
pub const CANCEL_ACTION: &str = "cancel";
/// The notification's content type.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Payment status codes. `1`–`3` are public; `0`, `4` and `5` are ours (query answers only).
pub mod status {
    /// Known to TPay (the form was posted), nothing chosen or paid yet.
    pub const OPEN: &str = "0";
    /// Paid.
    pub const PAID: &str = "1";
    /// Failed (declined).
    pub const FAILED: &str = "2";
    /// Waiting: an ATM account or store code was issued, the money has not arrived.
    pub const WAITING: &str = "3";
    /// The payment window passed unpaid.
    pub const EXPIRED: &str = "4";
    /// Cancelled by the merchant before payment.
    pub const CANCELLED: &str = "5";
}

/// Error codes of the query / refund / cancel calls and the checkout form (all ours).
pub mod error {
    /// The `verify` check value is wrong.
    pub const BAD_VERIFY: &str = "101";
    /// The `mid` is not a known merchant.
    pub const UNKNOWN_MERCHANT: &str = "102";
    /// A field is missing or malformed.
    pub const BAD_FIELD: &str = "103";
    /// No payment with this `txid`.
    pub const NOT_FOUND: &str = "201";
    /// The `txid` was posted before with another amount.
    pub const AMOUNT_MISMATCH: &str = "202";
    /// The payment is closed (paid, failed, expired or cancelled) and cannot be paid again.
    pub const CLOSED: &str = "203";
    /// The refund exceeds what is left to refund.
    pub const OVER_REFUND: &str = "301";
    /// Only paid payments can be refunded.
    pub const NOT_PAID: &str = "302";
    /// A paid payment cannot be cancelled (refund it).
    pub const ALREADY_PAID: &str = "303";
    /// The `refund_no` was used before with another amount.
    pub const REFUND_NO_REUSED: &str = "304";
}

/// The checkout form as the browser posts it (what the sandbox reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// `2.1`.
    pub version: String,
    /// Merchant id.
    pub mid: String,
    /// The merchant's order number: jinliu's provider reference.
    pub txid: String,
    /// Integer TWD.
    pub amount: String,
    /// `0` (public material; meaning undocumented).
    #[serde(default)]
    pub iid: String,
    /// `md5(key1|mid|txid|amount|key2)`.
    pub verify: String,
    /// Where the browser returns.
    #[serde(default)]
    pub return_url: Option<String>,
    /// `UTF-8`.
    #[serde(default)]
    pub charset: String,
    /// `tchinese`.
    #[serde(default)]
    pub language: String,
    /// `1`.
    #[serde(default)]
    pub mode: String,
    /// Method code; `0` lets the customer choose (our assumption).
    #[serde(default)]
    pub select_paymethod: String,
    /// Shown to the customer.
    #[serde(default)]
    pub description: Option<String>,
    /// Where results are posted (our addition; real merchants set it in TPay's back office).
    #[serde(default)]
    pub notify_url: Option<String>,
}

/// A payment result: the server notification and the browser return carry the same fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayResult {
    /// The merchant's order number.
    pub txid: String,
    /// Integer TWD.
    pub amount: String,
    /// The method the customer used.
    pub pay_type: String,
    /// `1` paid, `2` failed, `3` waiting.
    pub status: String,
    /// TPay's transaction id.
    pub tid: String,
    /// `md5(key1|txid|amount|pay_type|status|tid|key2)`.
    pub verify: String,
    /// Sent by some versions on failure; not covered by the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Sent by some versions on failure; not covered by the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_desc: Option<String>,
}

/// `POST /openpay/query.php`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryCall {
    /// `2.1`.
    pub version: String,
    /// Merchant id.
    pub mid: String,
    /// The merchant's order number.
    pub txid: String,
    /// `md5(key1|mid|txid|key2)`.
    pub verify: String,
}

/// The query's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryReply {
    /// The merchant's order number.
    pub txid: String,
    /// Integer TWD.
    pub amount: String,
    /// The method used; `0` while none was chosen.
    pub pay_type: String,
    /// One of [`status`].
    pub status: String,
    /// TPay's transaction id.
    pub tid: String,
    /// Integer TWD refunded so far.
    pub refunded: String,
    /// `md5(key1|txid|amount|pay_type|status|tid|refunded|key2)`.
    pub verify: String,
}

/// `POST /openpay/refund.php`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefundCall {
    /// `2.1`.
    pub version: String,
    /// Merchant id.
    pub mid: String,
    /// The payment's order number.
    pub txid: String,
    /// Integer TWD to refund.
    pub amount: String,
    /// The merchant's refund number (jinliu's refund id).
    pub refund_no: String,
    /// `md5(key1|mid|txid|amount|refund_no|key2)`.
    pub verify: String,
}

/// The refund's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefundReply {
    /// The payment's order number.
    pub txid: String,
    /// The merchant's refund number.
    pub refund_no: String,
    /// Integer TWD refunded by this refund.
    pub amount: String,
    /// TPay's refund transaction id.
    pub rtid: String,
    /// Integer TWD refunded so far, this refund included.
    pub refunded: String,
    /// `md5(key1|txid|refund_no|amount|rtid|refunded|key2)`.
    pub verify: String,
}

/// `POST /openpay/cancel.php`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelCall {
    /// `2.1`.
    pub version: String,
    /// Merchant id.
    pub mid: String,
    /// The merchant's order number.
    pub txid: String,
    /// [`CANCEL_ACTION`].
    pub action: String,
    /// `md5(key1|mid|txid|action|key2)`.
    pub verify: String,
}

/// The cancel's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelReply {
    /// The merchant's order number.
    pub txid: String,
    /// The status after the call: `5`, or `2` / `4` when it was already closed unpaid.
    pub status: String,
    /// `md5(key1|txid|status|key2)`.
    pub verify: String,
}

/// What every call answers instead when it is refused (HTTP 200, PHP style).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReply {
    /// One of [`error`].
    pub error_code: String,
    /// Human-readable reason (read as empty when a reply leaves it out).
    #[serde(default)]
    pub error_desc: String,
}
