//! ECPay AIO wire types: the forms jinliu sends and the answers and notifications it reads, with
//! ECPay's own field names. Nothing here signs or decides; [`super::sign`] signs, the adapter maps
//! these to jinliu's types.

use serde::Deserialize;

/// The `MerchantTradeDate` / `PaymentDate` format (Taipei time).
pub const DATE_FORMAT: &str = "%Y/%m/%d %H:%M:%S";

/// ECPay's `ItemName` limit; longer names are cut by ECPay, which then breaks the checksum.
pub const ITEM_NAME_MAX_BYTES: usize = 400;
/// ECPay's `TradeDesc` limit.
pub const TRADE_DESC_MAX_BYTES: usize = 200;

/// Form fields (urlencoded body or answer) in the order received.
pub type Fields = Vec<(String, String)>;

/// Decodes an `application/x-www-form-urlencoded` body; never fails (bad escapes are kept
/// lossily, like browsers do), so a garbled body fails the checksum instead.
pub fn parse_fields(body: &[u8]) -> Fields {
    serde_urlencoded::from_bytes::<Fields>(body).unwrap_or_default()
}

/// Encodes fields as a form body.
pub fn encode_fields(fields: &[(String, String)]) -> String {
    serde_urlencoded::to_string(fields).unwrap_or_default()
}

/// A field's value by exact name.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Cuts `s` to at most `max` UTF-8 bytes on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `POST /Cashier/AioCheckOut/V5`, the browser form that starts a payment (p=2862).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AioCheckOut {
    /// `MerchantID`.
    pub merchant_id: String,
    /// `MerchantTradeNo`: jinliu's provider reference.
    pub merchant_trade_no: String,
    /// `MerchantTradeDate`, `yyyy/MM/dd HH:mm:ss` Taipei time.
    pub merchant_trade_date: String,
    /// `TotalAmount`, whole TWD.
    pub total_amount: i64,
    /// `TradeDesc`.
    pub trade_desc: String,
    /// `ItemName`.
    pub item_name: String,
    /// `ReturnURL`: where ECPay's server posts the result (jinliu's notify URL).
    pub return_url: String,
    /// `ChoosePayment` (`Credit`, `ATM`, …).
    pub choose_payment: String,
    /// `ClientBackURL`: the "back to the shop" link on ECPay's result page.
    pub client_back_url: Option<String>,
}

impl AioCheckOut {
    /// The unsigned fields in the order ECPay's documentation lists them.
    pub fn fields(&self) -> Fields {
        let mut f: Fields = vec![
            ("MerchantID".into(), self.merchant_id.clone()),
            ("MerchantTradeNo".into(), self.merchant_trade_no.clone()),
            ("MerchantTradeDate".into(), self.merchant_trade_date.clone()),
            ("PaymentType".into(), "aio".into()),
            ("TotalAmount".into(), self.total_amount.to_string()),
            ("TradeDesc".into(), self.trade_desc.clone()),
            ("ItemName".into(), self.item_name.clone()),
            ("ReturnURL".into(), self.return_url.clone()),
            ("ChoosePayment".into(), self.choose_payment.clone()),
            ("EncryptType".into(), "1".into()),
        ];
        if let Some(url) = &self.client_back_url {
            f.push(("ClientBackURL".into(), url.clone()));
        }
        f
    }
}

/// The payment result ECPay posts to `ReturnURL` (p=2878); every field sent enters the checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnNotification {
    /// `MerchantID`.
    pub merchant_id: String,
    /// `MerchantTradeNo`.
    pub merchant_trade_no: String,
    /// `RtnCode`: `1` paid, anything else abnormal.
    pub rtn_code: String,
    /// `RtnMsg`.
    pub rtn_msg: String,
    /// `TradeNo`: ECPay's trade number.
    pub trade_no: String,
    /// `TradeAmt`, whole TWD.
    pub trade_amt: Option<i64>,
    /// `PaymentType` (`Credit_CreditCard`, `ATM_LAND`, …).
    pub payment_type: String,
    /// `SimulatePaid`: `1` when paid with the stage back office's "simulate payment".
    pub simulate_paid: bool,
}

impl ReturnNotification {
    /// Reads the fields; `None` when one that identifies the payment is missing.
    pub fn from_fields(f: &[(String, String)]) -> Option<ReturnNotification> {
        Some(ReturnNotification {
            merchant_id: field(f, "MerchantID")?.to_owned(),
            merchant_trade_no: field(f, "MerchantTradeNo")?.to_owned(),
            rtn_code: field(f, "RtnCode")?.to_owned(),
            rtn_msg: field(f, "RtnMsg").unwrap_or_default().to_owned(),
            trade_no: field(f, "TradeNo").unwrap_or_default().to_owned(),
            trade_amt: field(f, "TradeAmt").and_then(|v| v.trim().parse().ok()),
            payment_type: field(f, "PaymentType").unwrap_or_default().to_owned(),
            simulate_paid: field(f, "SimulatePaid") == Some("1"),
        })
    }
}

/// `POST /Cashier/QueryTradeInfo/V5` (p=2890).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTradeInfo {
    /// `MerchantID`.
    pub merchant_id: String,
    /// `MerchantTradeNo`.
    pub merchant_trade_no: String,
    /// `TimeStamp`: Unix seconds; ECPay refuses it after 3 minutes.
    pub timestamp: i64,
}

impl QueryTradeInfo {
    /// The unsigned fields.
    pub fn fields(&self) -> Fields {
        vec![
            ("MerchantID".into(), self.merchant_id.clone()),
            ("MerchantTradeNo".into(), self.merchant_trade_no.clone()),
            ("TimeStamp".into(), self.timestamp.to_string()),
        ]
    }
}

/// `TradeStatus` values of QueryTradeInfo.
pub mod trade_status {
    /// Created, not paid.
    pub const UNPAID: &str = "0";
    /// Paid.
    pub const PAID: &str = "1";
    /// Not established: the customer abandoned the order or the payment failed.
    pub const NOT_ESTABLISHED: &str = "10200095";
    /// No such trade (the message ECPay answers is "Cant not find the trade data.").
    pub const NOT_FOUND: &str = "10200047";
}

/// QueryTradeInfo's answer (urlencoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeInfo {
    /// `MerchantTradeNo`.
    pub merchant_trade_no: String,
    /// `TradeStatus`.
    pub trade_status: String,
    /// `TradeNo`.
    pub trade_no: String,
    /// `TradeAmt`, whole TWD.
    pub trade_amt: Option<i64>,
    /// `PaymentType`.
    pub payment_type: String,
    /// `gwsr`: the card authorisation number, for CreditDetail/QueryTrade.
    pub gwsr: Option<String>,
}

impl TradeInfo {
    /// Reads the answer; `None` without a `TradeStatus` (an error text instead of a trade).
    pub fn from_fields(f: &[(String, String)]) -> Option<TradeInfo> {
        Some(TradeInfo {
            merchant_trade_no: field(f, "MerchantTradeNo").unwrap_or_default().to_owned(),
            trade_status: field(f, "TradeStatus")?.to_owned(),
            trade_no: field(f, "TradeNo").unwrap_or_default().to_owned(),
            trade_amt: field(f, "TradeAmt").and_then(|v| v.trim().parse().ok()),
            payment_type: field(f, "PaymentType").unwrap_or_default().to_owned(),
            gwsr: field(f, "gwsr").filter(|v| !v.is_empty()).map(str::to_owned),
        })
    }
}

/// DoAction's `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `C` 關帳: settle (capture) an authorisation.
    Settle,
    /// `R` 退刷: refund after settlement (partial allowed).
    Refund,
    /// `E` 取消: undo a pending settlement.
    CancelSettlement,
    /// `N` 放棄: abandon an authorisation that is not being settled.
    Abandon,
}

impl Action {
    /// The letter ECPay expects.
    pub fn code(self) -> &'static str {
        match self {
            Action::Settle => "C",
            Action::Refund => "R",
            Action::CancelSettlement => "E",
            Action::Abandon => "N",
        }
    }

    /// The action for a letter.
    pub fn parse(code: &str) -> Option<Action> {
        Some(match code {
            "C" => Action::Settle,
            "R" => Action::Refund,
            "E" => Action::CancelSettlement,
            "N" => Action::Abandon,
            _ => return None,
        })
    }
}

/// `POST /CreditDetail/DoAction` (p=2885).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoAction {
    /// `MerchantID`.
    pub merchant_id: String,
    /// `MerchantTradeNo`.
    pub merchant_trade_no: String,
    /// `TradeNo`: ECPay's trade number (from QueryTradeInfo).
    pub trade_no: String,
    /// `Action`.
    pub action: Action,
    /// `TotalAmount`, whole TWD.
    pub total_amount: i64,
}

impl DoAction {
    /// The unsigned fields.
    pub fn fields(&self) -> Fields {
        vec![
            ("MerchantID".into(), self.merchant_id.clone()),
            ("MerchantTradeNo".into(), self.merchant_trade_no.clone()),
            ("TradeNo".into(), self.trade_no.clone()),
            ("Action".into(), self.action.code().into()),
            ("TotalAmount".into(), self.total_amount.to_string()),
        ]
    }
}

/// DoAction's answer (urlencoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoActionReply {
    /// `RtnCode`: `1` success.
    pub rtn_code: String,
    /// `RtnMsg`.
    pub rtn_msg: String,
    /// `TradeNo`.
    pub trade_no: String,
}

impl DoActionReply {
    /// Reads the answer; `None` without an `RtnCode`.
    pub fn from_fields(f: &[(String, String)]) -> Option<DoActionReply> {
        Some(DoActionReply {
            rtn_code: field(f, "RtnCode")?.to_owned(),
            rtn_msg: field(f, "RtnMsg").unwrap_or_default().to_owned(),
            trade_no: field(f, "TradeNo").unwrap_or_default().to_owned(),
        })
    }
}

/// `POST /CreditDetail/QueryTrade/V2` (p=2894): a card trade's authorisation, settlement and
/// refunds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditDetailQuery {
    /// `MerchantID`.
    pub merchant_id: String,
    /// `CreditRefundId`: the `gwsr` of the trade.
    pub credit_refund_id: String,
    /// `CreditAmount`: the trade's amount, whole TWD.
    pub credit_amount: i64,
    /// `CreditCheckCode`: the merchant's check code from ECPay's back office.
    pub credit_check_code: String,
}

impl CreditDetailQuery {
    /// The unsigned fields.
    pub fn fields(&self) -> Fields {
        vec![
            ("MerchantID".into(), self.merchant_id.clone()),
            ("CreditRefundId".into(), self.credit_refund_id.clone()),
            ("CreditAmount".into(), self.credit_amount.to_string()),
            ("CreditCheckCode".into(), self.credit_check_code.clone()),
        ]
    }
}

/// Card states in CreditDetail answers (ECPay answers them in Chinese).
pub mod card_status {
    /// Authorised, no settlement requested.
    pub const AUTHORISED: &str = "已授權";
    /// Settlement requested (today's batch).
    pub const SETTLING: &str = "要關帳";
    /// Settled.
    pub const SETTLED: &str = "已關帳";
    /// Authorisation abandoned (`N`).
    pub const ABANDONED: &str = "已放棄";
    /// A refund entry in `close_data`.
    pub const REFUNDED: &str = "已退款";
}

/// CreditDetail/QueryTrade's JSON answer.
#[derive(Debug, Clone, Deserialize)]
pub struct CreditDetailReply {
    /// Empty on success, the error otherwise.
    #[serde(rename = "RtnMsg", default)]
    pub rtn_msg: String,
    /// The trade, on success.
    #[serde(rename = "RtnValue", default)]
    pub rtn_value: Option<CreditDetail>,
}

/// One card trade.
#[derive(Debug, Clone, Deserialize)]
pub struct CreditDetail {
    /// The authorised amount.
    #[serde(default)]
    pub amount: serde_json::Value,
    /// The settled amount.
    #[serde(default)]
    pub clsamt: serde_json::Value,
    /// The card state (see [`card_status`]).
    #[serde(default)]
    pub status: String,
    /// Settlements and refunds.
    #[serde(default)]
    pub close_data: Vec<CloseEntry>,
}

/// One settlement or refund of a card trade.
#[derive(Debug, Clone, Deserialize)]
pub struct CloseEntry {
    /// What it is (`已關帳`, `已退款`, …).
    #[serde(default)]
    pub status: String,
    /// How much, whole TWD.
    #[serde(default)]
    pub amount: serde_json::Value,
}

/// An amount ECPay sends either as a JSON number or as a string of digits.
pub fn json_amount(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_a_character() {
        assert_eq!(truncate_bytes("綠界", 4), "綠");
        assert_eq!(truncate_bytes("abc", 4), "abc");
        assert_eq!(truncate_bytes("綠界", 2), "");
    }

    #[test]
    fn credit_detail_amounts_are_read_from_numbers_or_strings() {
        let r: CreditDetailReply = serde_json::from_str(
            r#"{"RtnMsg":"","RtnValue":{"TradeID":"1","amount":"100","clsamt":100,"status":"已關帳",
                "close_data":[{"status":"已退款","sno":"1","amount":"30","datetime":"x"}]}}"#,
        )
        .expect("parses");
        let v = r.rtn_value.expect("value");
        assert_eq!(json_amount(&v.amount), Some(100));
        assert_eq!(json_amount(&v.clsamt), Some(100));
        assert_eq!(json_amount(&v.close_data[0].amount), Some(30));
    }
}
