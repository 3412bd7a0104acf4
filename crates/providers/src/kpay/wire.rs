//! KPay's wire types: the token grant, the `api/Collect` command bodies and replies, and the APN
//! notification body. Shared by the adapter and the sandbox; nothing here is a domain type, and
//! nothing here decides what a status means (see `mod.rs` for that).
//!
//! Field names follow the ccat-for-woocommerce plugin where it shows them; `CocsOrderQuery` and
//! the error `code` are ours (see docs/providers/kpay.md).

use serde::{Deserialize, Deserializer, Serialize};

/// `cmd` of the card order create.
pub const CMD_APPEND: &str = "CocsOrderAppend";
/// `cmd` of the capture ("請款").
pub const CMD_CAPTURE: &str = "CocsCashRequest";
/// `cmd` of the void of an authorisation or an unpaid order.
pub const CMD_CANCEL: &str = "CocsOrderCancel";
/// `cmd` of the refund after capture.
pub const CMD_REFUND: &str = "CocsOrderRefund";
/// `cmd` of the order query (our assumption: the plugin shows no query command).
pub const CMD_QUERY: &str = "CocsOrderQuery";

/// `status` of a successful `api/Collect` reply.
pub const STATUS_OK: &str = "OK";
/// `status` of a refused `api/Collect` reply (our assumption: the plugin only tests for `OK`).
pub const STATUS_ERROR: &str = "ERROR";

/// Error `code` for an order the provider does not know (our assumption).
pub const CODE_NOT_FOUND: &str = "E404";
/// Error `code` for a malformed or out-of-rule request (our assumption).
pub const CODE_INVALID: &str = "E400";
/// Error `code` for an order in the wrong state for the command (our assumption).
pub const CODE_STATE: &str = "E409";
/// Error `code` for an amount the order cannot take (our assumption).
pub const CODE_AMOUNT: &str = "E422";

/// The JSON answer of `POST {base}/token` (OAuth2 password grant, RFC 6749 §5.1 / §5.2).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenReply {
    /// The bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// `bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Seconds until the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// OAuth2 error code (`invalid_grant`, `unsupported_grant_type`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Human-readable error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The form of `POST {base}/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenForm {
    /// `password`.
    pub grant_type: String,
    /// The merchant id.
    pub username: String,
    /// The API key.
    pub password: String,
}

/// Only the `cmd` of an `api/Collect` body, read first to pick the command's full type.
#[derive(Debug, Clone, Deserialize)]
pub struct Command {
    /// The command name.
    pub cmd: String,
}

/// `CocsOrderAppend`: creates a card order and returns the pay page URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderAppend {
    /// [`CMD_APPEND`].
    pub cmd: String,
    /// The merchant id.
    pub cust_id: String,
    /// The merchant's order number: jinliu's provider reference.
    pub cust_order_no: String,
    /// Whole TWD.
    pub order_amount: i64,
    /// Shown to the customer.
    pub order_detail: String,
    /// The acquiring bank (`esun` = 玉山).
    pub acquirer_type: String,
    /// `Y-m-d H:i:s`, Asia/Taipei.
    pub send_time: String,
    /// Where the customer's browser goes after paying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_url: Option<String>,
    /// Where the APN notifications go: jinliu's notify URL for the account.
    pub apn_url: String,
    /// `0`: no B2C e-invoice through KPay.
    pub b2c: String,
}

/// `CocsCashRequest`: captures an authorised order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CashRequest {
    /// [`CMD_CAPTURE`].
    pub cmd: String,
    /// The merchant id.
    pub cust_id: String,
    /// The order number.
    pub cust_order_no: String,
    /// The order's amount, whole TWD.
    pub order_amount: i64,
    /// The amount to capture, whole TWD.
    pub cr_amount: i64,
    /// `Y-m-d H:i:s`, Asia/Taipei.
    pub send_time: String,
}

/// `CocsOrderCancel`: voids an unpaid or authorised, not yet captured order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderCancel {
    /// [`CMD_CANCEL`].
    pub cmd: String,
    /// The merchant id.
    pub cust_id: String,
    /// The order number.
    pub cust_order_no: String,
    /// The order's amount, whole TWD.
    pub order_amount: i64,
    /// The acquiring bank.
    pub acquirer_type: String,
    /// `Y-m-d H:i:s`, Asia/Taipei.
    pub send_time: String,
}

/// `CocsOrderRefund`: refunds (part of) a captured order. It carries no refund number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderRefund {
    /// [`CMD_REFUND`].
    pub cmd: String,
    /// The merchant id.
    pub cust_id: String,
    /// The order number.
    pub cust_order_no: String,
    /// The order's amount, whole TWD.
    pub order_amount: i64,
    /// The amount to refund now, whole TWD.
    pub refund_amount: i64,
    /// The acquiring bank.
    pub acquirer_type: String,
    /// `Y-m-d H:i:s`, Asia/Taipei.
    pub send_time: String,
}

/// `CocsOrderQuery` (ours): where an order stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderQuery {
    /// [`CMD_QUERY`].
    pub cmd: String,
    /// The merchant id.
    pub cust_id: String,
    /// The order number.
    pub cust_order_no: String,
    /// `Y-m-d H:i:s`, Asia/Taipei.
    pub send_time: String,
}

/// Every `api/Collect` reply: `status` is `OK` or `ERROR`; the other fields depend on the command.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectReply {
    /// `OK` or `ERROR`.
    pub status: String,
    /// Why, when not `OK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// A machine-readable error code, when not `OK` (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The order number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cust_order_no: Option<String>,
    /// Create: the pay page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Query: KPay's transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trans_id: Option<String>,
    /// Query: the order's status letter (`A` open, `B`, `E`, `F`, `D`, `M`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
    /// Query: the order's amount, whole TWD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_amount: Option<i64>,
    /// Query: the captured amount, whole TWD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cr_amount: Option<i64>,
    /// Query and refund: the refunded total so far, whole TWD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_amount: Option<i64>,
}

impl CollectReply {
    /// A refusal in KPay's shape.
    pub fn error(code: &str, msg: impl Into<String>) -> CollectReply {
        CollectReply {
            status: STATUS_ERROR.into(),
            msg: Some(msg.into()),
            code: Some(code.into()),
            ..CollectReply::default()
        }
    }

    /// A bare success.
    pub fn ok(order_no: &str) -> CollectReply {
        CollectReply {
            status: STATUS_OK.into(),
            cust_order_no: Some(order_no.into()),
            ..CollectReply::default()
        }
    }
}

/// An APN notification, as KPay POSTs it (JSON) to the order's `apn_url`.
///
/// Scalars are read as text whether they arrive as JSON strings or numbers, because the checksum
/// covers their text (`amount` `100` and `"100"` both hash as `100`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Apn {
    /// The merchant's API id (ours: the merchant id).
    #[serde(deserialize_with = "text")]
    pub api_id: String,
    /// KPay's transaction id.
    #[serde(deserialize_with = "text")]
    pub trans_id: String,
    /// The merchant's order number.
    #[serde(deserialize_with = "text")]
    pub order_no: String,
    /// Whole TWD, as text.
    #[serde(deserialize_with = "text")]
    pub amount: String,
    /// The status letter.
    #[serde(deserialize_with = "text")]
    pub status: String,
    /// A random value per notification.
    #[serde(deserialize_with = "text")]
    pub nonce: String,
    /// `md5(api_id:trans_id:amount:status:nonce)`, lower-case hex.
    #[serde(deserialize_with = "text")]
    pub checksum: String,
}

/// What the sandbox sends: `amount` as a JSON number, everything else as strings (our assumption
/// about the real encoding; the adapter accepts both).
#[derive(Debug, Clone, Serialize)]
pub struct ApnOut<'a> {
    /// See [`Apn::api_id`].
    pub api_id: &'a str,
    /// See [`Apn::trans_id`].
    pub trans_id: &'a str,
    /// See [`Apn::order_no`].
    pub order_no: &'a str,
    /// See [`Apn::amount`].
    pub amount: i64,
    /// See [`Apn::status`].
    pub status: &'a str,
    /// See [`Apn::nonce`].
    pub nonce: &'a str,
    /// See [`Apn::checksum`].
    pub checksum: &'a str,
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apn_reads_numbers_and_strings_alike() {
        let a: Apn = serde_json::from_str(
            r#"{"api_id":"M1","trans_id":7,"order_no":"J1","amount":100,"status":"E","nonce":"n","checksum":"c"}"#,
        )
        .expect("parses");
        assert_eq!(a.amount, "100");
        assert_eq!(a.trans_id, "7");
    }

    #[test]
    fn an_apn_with_a_nested_value_is_refused() {
        let r: Result<Apn, _> = serde_json::from_str(
            r#"{"api_id":"M1","trans_id":"7","order_no":"J1","amount":{"x":1},"status":"E","nonce":"n","checksum":"c"}"#,
        );
        assert!(r.is_err());
    }
}
