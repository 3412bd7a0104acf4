//! The 綠界 ECPay sandbox: ECPay's AIO paths under the sandbox prefix, for ECPay's public stage
//! merchants (3002607 and 2000132 with their published HashKey/HashIV).
//!
//! - `POST /Cashier/AioCheckOut/V5`: checks the form and its CheckMacValue and answers the pay
//!   page directly (as ECPay answers its cashier page); the trade is known from then on, keyed
//!   by `MerchantTradeNo` (jinliu's provider reference). Re-posting the identical form shows the
//!   page again; a different form with a used `MerchantTradeNo` is refused.
//! - `POST /Cashier/QueryTradeInfo/V5`: signed urlencoded answer; `TimeStamp` must be within 3
//!   minutes.
//! - `POST /CreditDetail/QueryTrade/V2` and `POST /CreditDetail/DoAction`: card trades. ECPay's
//!   stage has no DoAction, so settlement is modelled here like ECPay's automatic settlement: a
//!   paid card trade is `要關帳` (settlement requested) until the daily batch at 20:30 Taipei
//!   time, then `已關帳`; `R` refunds up to what is left, `C`/`E`/`N` follow ECPay's state
//!   machine (a full refund before the batch is `E` then `N`).
//! - Pay / Decline posts the result to the form's `ReturnURL`, signed, until answered `1|OK`.
//!   An expired trade sends nothing (ECPay does not notify abandoned orders).
//!
//! State lives in memory; locks are never held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use jinliu_domain::{Currency, Money};

use super::wire::{self, Action, Fields, card_status, field, trade_status};
use super::{ACK, sign, taipei_time, valid_trade_no};
use crate::sandbox::{Kit, Notification, Outcome, PageView, SandboxPayments, SimError, page};

/// The merchants the sandbox knows: ECPay's public stage test merchants, `(MerchantID, HashKey,
/// HashIV)`.
pub const MERCHANTS: &[(&str, &str, &str)] = &[
    ("3002607", "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"),
    ("2000132", "5294y06JbISpM5x9", "v77hoKGq4kWxNNIS"),
];

/// ECPay's error for a wrong checksum.
pub const CHECK_MAC_ERROR: &str = "CheckMacValue Error";

/// The `RtnCode` the sandbox sends for a declined card (our choice; see the docs).
pub const DECLINED_RTN_CODE: &str = "10100058";

/// The `RtnCode` the sandbox answers a refused DoAction with (our choice; see the docs).
pub const ACTION_REFUSED_RTN_CODE: &str = "10100050";

/// When ECPay's daily automatic settlement runs, Taipei time (it asks merchants to avoid
/// DoAction from 20:15 to 20:30).
const BATCH_HOUR: u32 = 20;
const BATCH_MINUTE: u32 = 30;

/// The first settlement batch after `t`: 20:30 Taipei on the same day, or the next day's.
fn settlement_batch_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&super::taipei());
    let batch_time = chrono::NaiveTime::from_hms_opt(BATCH_HOUR, BATCH_MINUTE, 0).unwrap_or_default();
    let mut day = local.date_naive();
    if local.time() >= batch_time {
        day = day.succ_opt().unwrap_or(day);
    }
    day.and_time(batch_time)
        .and_local_timezone(super::taipei())
        .single()
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(t)
}

/// How long a QueryTradeInfo `TimeStamp` stays valid (ECPay: 3 minutes).
const TIMESTAMP_WINDOW_SECS: i64 = 180;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TradeState {
    Open,
    Paid,
    Declined,
    Expired,
}

#[derive(Debug, Clone)]
struct CloseEntry {
    status: &'static str,
    sno: u64,
    amount: i64,
    datetime: String,
}

#[derive(Debug, Clone)]
struct Card {
    gwsr: String,
    status: &'static str,
    clsamt: i64,
    close: Vec<CloseEntry>,
    authtime: String,
    authorised_at: DateTime<Utc>,
}

impl Card {
    /// What went back to the customer: everything once the authorisation is abandoned.
    fn refunded(&self, amount: i64) -> i64 {
        if self.status == card_status::ABANDONED {
            return amount;
        }
        self.close
            .iter()
            .filter(|e| e.status == card_status::REFUNDED)
            .map(|e| e.amount)
            .sum()
    }
}

#[derive(Debug, Clone)]
struct Trade {
    merchant_id: String,
    /// The form as posted (checksum included), to recognise an identical re-post.
    form: Fields,
    amount: i64,
    money: Money,
    item_name: String,
    return_url: String,
    client_back_url: Option<String>,
    choose_payment: String,
    trade_no: String,
    trade_date: String,
    state: TradeState,
    payment_date: String,
    card: Option<Card>,
}

impl Trade {
    fn payment_type(&self) -> &'static str {
        match self.choose_payment.as_str() {
            "ATM" => "ATM_LAND",
            "CVS" => "CVS_CVS",
            "BARCODE" => "BARCODE_BARCODE",
            "WebATM" => "WebATM_TAISHIN",
            // `ALL`: the sandbox's customer always picks a card.
            _ => "Credit_CreditCard",
        }
    }

    fn trade_status(&self) -> &'static str {
        match self.state {
            TradeState::Open => trade_status::UNPAID,
            TradeState::Paid => trade_status::PAID,
            TradeState::Declined | TradeState::Expired => trade_status::NOT_ESTABLISHED,
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    trades: HashMap<String, Trade>,
    seq: u64,
}

/// The ECPay sandbox's state.
#[derive(Debug)]
pub struct EcPaySandbox {
    kit: Arc<Kit>,
    book: Mutex<Book>,
}

fn merchant(id: &str) -> Option<(&'static str, &'static str)> {
    MERCHANTS.iter().find(|(m, _, _)| *m == id).map(|(_, k, iv)| (*k, *iv))
}

/// The merchant's keys when the request names a known merchant and its checksum is right.
fn authenticate(fields: &[(String, String)]) -> Option<(String, &'static str, &'static str)> {
    let id = field(fields, "MerchantID")?;
    let (key, iv) = merchant(id)?;
    sign::verify(fields, key, iv).then(|| (id.to_owned(), key, iv))
}

fn signed(mut fields: Fields, key: &str, iv: &str) -> Fields {
    sign::sign(&mut fields, key, iv);
    fields
}

fn owned(pairs: &[(&str, String)]) -> Fields {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn form_response(fields: &[(String, String)]) -> Response {
    (
        [("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
        wire::encode_fields(fields),
    )
        .into_response()
}

fn error_page(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>綠界 ECPay (sandbox)</title></head>\
             <body><p id=\"error\">{} {}</p></body></html>",
            page::escape(code),
            page::escape(message)
        )),
    )
        .into_response()
}

impl EcPaySandbox {
    fn new(kit: Arc<Kit>) -> EcPaySandbox {
        EcPaySandbox {
            kit,
            book: Mutex::new(Book::default()),
        }
    }

    /// The state, after running any nightly settlement batch that is due.
    fn book(&self) -> MutexGuard<'_, Book> {
        // Plain data; a panic elsewhere leaves at worst one trade half-updated in a test sandbox.
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        for card in book.trades.values_mut().filter_map(|t| t.card.as_mut()) {
            if card.status == card_status::SETTLING && now >= settlement_batch_after(card.authorised_at) {
                card.status = card_status::SETTLED;
                for e in card.close.iter_mut().filter(|e| e.status == card_status::SETTLING) {
                    e.status = card_status::SETTLED;
                }
            }
        }
        book
    }

    fn view(&self, trade: &Trade, reference: &str) -> PageView {
        let refunded = trade
            .card
            .as_ref()
            .map(|c| c.refunded(trade.amount))
            .unwrap_or_default();
        let status = match trade.state {
            TradeState::Open => "open",
            TradeState::Paid if refunded > 0 && refunded >= trade.amount => "refunded",
            TradeState::Paid if refunded > 0 => "partially refunded",
            TradeState::Paid => "paid",
            TradeState::Declined => "declined",
            TradeState::Expired => "expired",
        };
        PageView {
            provider_title: "綠界 ECPay".into(),
            merchant: format!("Merchant {} · order {reference}", trade.merchant_id),
            description: trade.item_name.clone(),
            amount: trade.money,
            status: status.into(),
            return_url: trade.client_back_url.clone(),
        }
    }

    /// AioCheckOut: validates and stores the trade, then renders the pay page.
    fn checkout(&self, fields: Fields) -> Response {
        let Some((merchant_id, _, _)) = authenticate(&fields) else {
            return error_page("10200073", CHECK_MAC_ERROR);
        };
        let get = |k: &str| field(&fields, k).unwrap_or_default().to_owned();
        let reference = get("MerchantTradeNo");
        if !valid_trade_no(&reference) {
            return error_page("10200052", "MerchantTradeNo Error");
        }
        if chrono::NaiveDateTime::parse_from_str(&get("MerchantTradeDate"), wire::DATE_FORMAT).is_err() {
            return error_page("10200052", "MerchantTradeDate Error");
        }
        let (amount, money) = match get("TotalAmount").parse::<i64>() {
            Ok(a) => match a.checked_mul(100).map(|m| Money::from_minor(m, Currency::Twd)) {
                Some(Ok(money)) => (a, money),
                _ => return error_page("10200052", "TotalAmount Error"),
            },
            Err(_) => return error_page("10200052", "TotalAmount Error"),
        };
        if get("PaymentType") != "aio" || get("EncryptType") != "1" {
            return error_page("10200052", "PaymentType or EncryptType Error");
        }
        let choose = get("ChoosePayment");
        if !["Credit", "ATM", "CVS", "BARCODE", "WebATM", "ALL"].contains(&choose.as_str()) {
            return error_page("10200052", "ChoosePayment Error");
        }
        let return_url = get("ReturnURL");
        if !(return_url.starts_with("http://") || return_url.starts_with("https://")) {
            return error_page("10200052", "ReturnURL Error");
        }
        if get("TradeDesc").is_empty() || get("ItemName").is_empty() {
            return error_page("10200052", "TradeDesc or ItemName Error");
        }
        let mut book = self.book();
        if let Some(existing) = book.trades.get(&reference) {
            // The same form posted again (the customer reopened the page) shows the same trade.
            if existing.form == fields {
                let view = self.view(existing, &reference);
                return page::render(&view, &self.kit.pay_url(&reference)).into_response();
            }
            return error_page("10200052", "MerchantTradeNo is already used");
        }
        book.seq += 1;
        let now = chrono::Utc::now();
        let trade = Trade {
            merchant_id,
            form: fields.clone(),
            amount,
            money,
            item_name: get("ItemName"),
            return_url,
            client_back_url: field(&fields, "ClientBackURL").map(str::to_owned),
            choose_payment: choose,
            trade_no: format!(
                "{}{:04}",
                now.with_timezone(&super::taipei()).format("%y%m%d%H%M%S"),
                book.seq % 10_000
            ),
            trade_date: taipei_time(now),
            state: TradeState::Open,
            payment_date: String::new(),
            card: None,
        };
        let view = self.view(&trade, &reference);
        book.trades.insert(reference.clone(), trade);
        page::render(&view, &self.kit.pay_url(&reference)).into_response()
    }

    fn query_trade_info(&self, fields: Fields) -> Response {
        let Some((merchant_id, key, iv)) = authenticate(&fields) else {
            return (StatusCode::BAD_REQUEST, CHECK_MAC_ERROR).into_response();
        };
        let fresh = field(&fields, "TimeStamp")
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= TIMESTAMP_WINDOW_SECS);
        if !fresh {
            return (StatusCode::BAD_REQUEST, "TimeStamp Error").into_response();
        }
        let reference = field(&fields, "MerchantTradeNo").unwrap_or_default().to_owned();
        let book = self.book();
        let Some(t) = book.trades.get(&reference).filter(|t| t.merchant_id == merchant_id) else {
            let answer = owned(&[
                ("MerchantID", merchant_id),
                ("MerchantTradeNo", reference),
                ("TradeStatus", trade_status::NOT_FOUND.into()),
                ("TradeNo", String::new()),
            ]);
            return form_response(&signed(answer, key, iv));
        };
        let mut answer = owned(&[
            ("MerchantID", merchant_id),
            ("MerchantTradeNo", reference),
            ("StoreID", String::new()),
            ("TradeNo", t.trade_no.clone()),
            ("TradeAmt", t.amount.to_string()),
            ("PaymentDate", t.payment_date.clone()),
            (
                "PaymentType",
                if t.state == TradeState::Paid {
                    t.payment_type().into()
                } else {
                    String::new()
                },
            ),
            ("HandlingCharge", "0".into()),
            ("PaymentTypeChargeFee", "0".into()),
            ("TradeDate", t.trade_date.clone()),
            ("TradeStatus", t.trade_status().into()),
            ("ItemName", t.item_name.clone()),
            ("CustomField1", String::new()),
            ("CustomField2", String::new()),
            ("CustomField3", String::new()),
            ("CustomField4", String::new()),
        ]);
        if let Some(card) = &t.card {
            answer.extend(owned(&[
                ("gwsr", card.gwsr.clone()),
                ("process_date", t.payment_date.clone()),
                ("auth_code", "777777".into()),
                ("amount", t.amount.to_string()),
                ("card4no", "2222".into()),
                ("card6no", "431195".into()),
            ]));
        }
        form_response(&signed(answer, key, iv))
    }

    fn credit_detail(&self, fields: Fields) -> Response {
        let refuse = |msg: &str| Json(serde_json::json!({ "RtnMsg": msg, "RtnValue": null })).into_response();
        let Some((merchant_id, _, _)) = authenticate(&fields) else {
            return refuse(CHECK_MAC_ERROR);
        };
        let gwsr = field(&fields, "CreditRefundId").unwrap_or_default();
        let amount = field(&fields, "CreditAmount").and_then(|a| a.parse::<i64>().ok());
        let book = self.book();
        let found = book.trades.values().find(|t| {
            t.merchant_id == merchant_id && t.card.as_ref().is_some_and(|c| c.gwsr == gwsr && !gwsr.is_empty())
        });
        let Some((t, card)) = found.and_then(|t| t.card.as_ref().map(|c| (t, c))) else {
            return refuse("Data Not Found");
        };
        if amount != Some(t.amount) {
            return refuse("CreditAmount Error");
        }
        let close: Vec<serde_json::Value> = card
            .close
            .iter()
            .map(|e| {
                serde_json::json!({
                    "status": e.status, "sno": e.sno.to_string(), "amount": e.amount.to_string(), "datetime": e.datetime
                })
            })
            .collect();
        Json(serde_json::json!({
            "RtnMsg": "",
            "RtnValue": {
                "TradeID": card.gwsr,
                "amount": t.amount.to_string(),
                "clsamt": card.clsamt.to_string(),
                "authtime": card.authtime,
                "status": card.status,
                "close_data": close,
            }
        }))
        .into_response()
    }

    fn do_action(&self, fields: Fields) -> Response {
        let reference = field(&fields, "MerchantTradeNo").unwrap_or_default().to_owned();
        let trade_no = field(&fields, "TradeNo").unwrap_or_default().to_owned();
        let reply = |code: &str, msg: &str, merchant: &str| {
            form_response(&owned(&[
                ("MerchantID", merchant.to_owned()),
                ("MerchantTradeNo", reference.clone()),
                ("TradeNo", trade_no.clone()),
                ("RtnCode", code.to_owned()),
                ("RtnMsg", msg.to_owned()),
            ]))
        };
        let Some((merchant_id, _, _)) = authenticate(&fields) else {
            return reply(
                "10200073",
                CHECK_MAC_ERROR,
                field(&fields, "MerchantID").unwrap_or_default(),
            );
        };
        let refuse = |msg: &str| reply(ACTION_REFUSED_RTN_CODE, msg, &merchant_id);
        let Some(action) = field(&fields, "Action").and_then(Action::parse) else {
            return refuse("Action Error");
        };
        let amount = match field(&fields, "TotalAmount").and_then(|a| a.parse::<i64>().ok()) {
            Some(a) if a > 0 => a,
            _ => return refuse("TotalAmount Error"),
        };
        let mut book = self.book();
        book.seq += 1;
        let sno = book.seq;
        let Some(t) = book.trades.get_mut(&reference).filter(|t| t.merchant_id == merchant_id) else {
            return refuse("Trade not found");
        };
        if t.trade_no != trade_no {
            return refuse("TradeNo Error");
        }
        let full = t.amount;
        let Some(card) = t.card.as_mut().filter(|_| t.state == TradeState::Paid) else {
            return refuse("Not a paid credit card trade");
        };
        let now = taipei_time(chrono::Utc::now());
        match (action, card.status) {
            (Action::Settle, card_status::AUTHORISED) if amount <= full => {
                card.status = card_status::SETTLING;
                card.clsamt = amount;
                card.authorised_at = Utc::now();
                card.close.push(CloseEntry {
                    status: card_status::SETTLING,
                    sno,
                    amount,
                    datetime: now,
                });
            }
            (Action::Refund, card_status::SETTLED | card_status::SETTLING) => {
                let left = full - card.refunded(full);
                if amount > left {
                    return refuse(&format!("Refund amount {amount} exceeds the refundable {left}"));
                }
                card.close.push(CloseEntry {
                    status: card_status::REFUNDED,
                    sno,
                    amount,
                    datetime: now,
                });
            }
            (Action::CancelSettlement, card_status::SETTLING) => {
                card.status = card_status::AUTHORISED;
                card.clsamt = 0;
                card.close.retain(|e| e.status != card_status::SETTLING);
            }
            (Action::Abandon, card_status::AUTHORISED) if card.refunded(full) == 0 => {
                card.status = card_status::ABANDONED;
            }
            (action, status) => {
                return refuse(&format!("Action {} is not allowed in state {status}", action.code()));
            }
        }
        reply("1", "", &merchant_id)
    }
}

impl SandboxPayments for EcPaySandbox {
    fn settle(&self, reference: &str, outcome: Outcome) -> Result<Vec<Notification>, SimError> {
        let mut book = self.book();
        book.seq += 1;
        let seq = book.seq;
        let t = book.trades.get_mut(reference).ok_or(SimError::UnknownPayment)?;
        if t.state != TradeState::Open {
            return Err(SimError::NotOpen);
        }
        let (key, iv) = merchant(&t.merchant_id).ok_or(SimError::UnknownPayment)?;
        let now = taipei_time(chrono::Utc::now());
        let (rtn_code, rtn_msg) = match outcome {
            Outcome::Expired => {
                t.state = TradeState::Expired;
                return Ok(Vec::new());
            }
            Outcome::Declined => {
                t.state = TradeState::Declined;
                (DECLINED_RTN_CODE, "付款失敗")
            }
            Outcome::Paid => {
                t.state = TradeState::Paid;
                t.payment_date = now.clone();
                if t.payment_type().starts_with("Credit") {
                    t.card = Some(Card {
                        gwsr: (10_000_000 + seq).to_string(),
                        status: card_status::SETTLING,
                        clsamt: t.amount,
                        close: vec![CloseEntry {
                            status: card_status::SETTLING,
                            sno: seq,
                            amount: t.amount,
                            datetime: now.clone(),
                        }],
                        authtime: now.clone(),
                        authorised_at: Utc::now(),
                    });
                }
                ("1", "交易成功")
            }
        };
        let fields = owned(&[
            ("MerchantID", t.merchant_id.clone()),
            ("MerchantTradeNo", reference.to_owned()),
            ("StoreID", String::new()),
            ("RtnCode", rtn_code.into()),
            ("RtnMsg", rtn_msg.into()),
            ("TradeNo", t.trade_no.clone()),
            ("TradeAmt", t.amount.to_string()),
            ("PaymentDate", now),
            ("PaymentType", t.payment_type().into()),
            ("PaymentTypeChargeFee", "0".into()),
            ("TradeDate", t.trade_date.clone()),
            ("SimulatePaid", "0".into()),
            ("CustomField1", String::new()),
            ("CustomField2", String::new()),
            ("CustomField3", String::new()),
            ("CustomField4", String::new()),
        ]);
        Ok(vec![Notification {
            url: t.return_url.clone(),
            content_type: "application/x-www-form-urlencoded".into(),
            headers: Vec::new(),
            body: wire::encode_fields(&signed(fields, key, iv)).into_bytes(),
            ack: ACK.into(),
        }])
    }

    fn page(&self, reference: &str) -> Option<PageView> {
        let book = self.book();
        book.trades.get(reference).map(|t| self.view(t, reference))
    }
}

async fn checkout(State(sb): State<Arc<EcPaySandbox>>, body: Bytes) -> Response {
    let fields = wire::parse_fields(&body);
    sb.kit.api("create", || sb.checkout(fields)).await
}

async fn query_trade_info(State(sb): State<Arc<EcPaySandbox>>, body: Bytes) -> Response {
    let fields = wire::parse_fields(&body);
    sb.kit.api("query", || sb.query_trade_info(fields)).await
}

async fn credit_detail(State(sb): State<Arc<EcPaySandbox>>, body: Bytes) -> Response {
    let fields = wire::parse_fields(&body);
    sb.kit.api("query", || sb.credit_detail(fields)).await
}

async fn do_action(State(sb): State<Arc<EcPaySandbox>>, body: Bytes) -> Response {
    let fields = wire::parse_fields(&body);
    let op = match field(&fields, "Action") {
        Some("C") => "capture",
        _ => "refund",
    };
    sb.kit.api(op, || sb.do_action(fields)).await
}

/// The sandbox's routes (ECPay's paths plus the shared `/control`, `/simulate`, `/pay/…`),
/// nested by the caller under its prefix.
pub fn router(kit: Arc<Kit>) -> Router {
    let sb = Arc::new(EcPaySandbox::new(kit.clone()));
    Router::new()
        .route("/Cashier/AioCheckOut/V5", post(checkout))
        .route("/Cashier/QueryTradeInfo/V5", post(query_trade_info))
        .route("/CreditDetail/QueryTrade/V2", post(credit_detail))
        .route("/CreditDetail/DoAction", post(do_action))
        .with_state(sb.clone())
        .merge(kit.routes(sb))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn card_trades_settle_at_the_next_2030_taipei_batch() {
        let at = |h, m| Utc.with_ymd_and_hms(2026, 3, 12, h, m, 0).single().expect("valid");
        // 15:30 Taipei (07:30 UTC) settles the same evening at 20:30 Taipei (12:30 UTC).
        assert_eq!(settlement_batch_after(at(7, 30)), at(12, 30));
        // 20:30 Taipei itself already missed that batch: the next evening's.
        let next = Utc.with_ymd_and_hms(2026, 3, 13, 12, 30, 0).single().expect("valid");
        assert_eq!(settlement_batch_after(at(12, 30)), next);
        // 23:00 Taipei is 15:00 UTC.
        assert_eq!(settlement_batch_after(at(15, 0)), next);
    }
}
