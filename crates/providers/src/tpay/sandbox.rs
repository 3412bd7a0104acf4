//! The 台灣里 TPay sandbox: `pay.php` takes the browser's checkout form, `query.php`,
//! `refund.php` and `cancel.php` answer the calls we defined in TPay's style, and the customer's
//! Pay / Decline sends form-encoded results signed with the two-key MD5, the way TPay would.
//!
//! It knows exactly the merchants in [`super::SANDBOX_CREDENTIALS`], checks every `verify` and
//! answers a bad one with TPay-style error `101`. Payments live in memory, keyed by `txid` (jinliu's
//! provider reference), and exist only once the checkout form was posted — like at TPay. The
//! notify URL comes from the form's extra `notify_url` field (real merchants set it in TPay's back
//! office). Shared machinery (faults, delivery, `/simulate`, the pay page) is the [`Kit`]'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use jinliu_domain::{Currency, Money};
use serde::Serialize;

use super::wire::{self, error, status};
use super::{SANDBOX_CREDENTIALS, sign};
use crate::sandbox::{Kit, Notification, Outcome, PageView, SandboxPayments, SimError, page};

/// What the sandbox reports as `pay_type` when the customer pays (a virtual ATM account, which
/// is why a "waiting" result comes first) or is declined (a card).
const PAY_TYPE_PAID: &str = "2";
const PAY_TYPE_DECLINED: &str = "1";
/// The longest `txid` / `refund_no` the sandbox takes (our assumption).
const MAX_ID_LEN: usize = 40;

/// A merchant's two salts.
#[derive(Debug, Clone)]
struct Keys {
    key1: String,
    key2: String,
}

/// A recorded refund, kept so a retried `refund_no` answers the same without refunding again.
#[derive(Debug, Clone)]
struct RefundRecord {
    amount: i64,
    reply: wire::RefundReply,
}

/// One payment as the sandbox holds it.
#[derive(Debug, Clone)]
struct Payment {
    mid: String,
    /// Whole TWD; 0 for a tombstone (cancelled before the form was ever posted).
    amount: i64,
    description: String,
    return_url: Option<String>,
    notify_url: Option<String>,
    status: &'static str,
    pay_type: &'static str,
    tid: String,
    refunded: i64,
    refunds: HashMap<String, RefundRecord>,
}

impl Payment {
    fn is_open(&self) -> bool {
        self.status == status::OPEN || self.status == status::WAITING
    }
}

#[derive(Debug, Default)]
struct Book {
    payments: HashMap<String, Payment>,
    /// Numbers TPay-side transaction ids.
    next_id: u64,
}

/// The sandbox's state.
#[derive(Debug)]
struct Sandbox {
    kit: Arc<Kit>,
    merchants: HashMap<String, Keys>,
    book: Mutex<Book>,
}

impl Sandbox {
    fn new(kit: Arc<Kit>) -> Sandbox {
        let cred = |k: &str| {
            SANDBOX_CREDENTIALS
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_default()
        };
        let merchants = HashMap::from([(
            cred("mid"),
            Keys {
                key1: cred("key1"),
                key2: cred("key2"),
            },
        )]);
        Sandbox {
            kit,
            merchants,
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Plain maps updated in one step each; a panic elsewhere cannot leave them half-written.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The merchant's keys after checking `verify` over `parts`, or the TPay error to answer.
    fn authenticate(&self, mid: &str, parts: &[&str], verify: &str) -> Result<&Keys, Refusal> {
        let keys = self
            .merchants
            .get(mid)
            .ok_or_else(|| Refusal::new(error::UNKNOWN_MERCHANT, "unknown merchant id"))?;
        if !sign::matches(&keys.key1, parts, &keys.key2, verify) {
            return Err(Refusal::new(error::BAD_VERIFY, "verify check failed"));
        }
        Ok(keys)
    }

    /// The signed result form TPay posts for `p` in status `code`, when it has a notify URL.
    fn result_note(&self, txid: &str, p: &Payment, code: &str) -> Option<Notification> {
        let url = p.notify_url.clone()?;
        let keys = self.merchants.get(&p.mid)?;
        let amount = p.amount.to_string();
        let parts = sign::result_parts(txid, &amount, p.pay_type, code, &p.tid);
        let result = wire::PayResult {
            txid: txid.to_owned(),
            verify: sign::check_value(&keys.key1, &parts, &keys.key2),
            amount,
            pay_type: p.pay_type.to_owned(),
            status: code.to_owned(),
            tid: p.tid.clone(),
            error_code: None,
            error_desc: None,
        };
        Some(Notification {
            url,
            content_type: wire::FORM_CONTENT_TYPE.to_owned(),
            headers: Vec::new(),
            body: serde_urlencoded::to_string(&result).ok()?.into_bytes(),
            ack: wire::ACK.to_owned(),
        })
    }
}

/// A TPay-style refusal: `error_code` and `error_desc`.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    desc: String,
}

impl Refusal {
    fn new(code: &'static str, desc: impl Into<String>) -> Refusal {
        Refusal {
            code,
            desc: desc.into(),
        }
    }

    /// As an API answer: HTTP 200 with the form-encoded error, as PHP-era gateways answer.
    fn api(self) -> Response {
        form_reply(&wire::ErrorReply {
            error_code: self.code.to_owned(),
            error_desc: self.desc,
        })
    }

    /// As the browser sees it after posting the checkout form: an error page.
    fn page(self) -> Response {
        let body = format!(
            "<!doctype html><html lang=\"zh-Hant\"><head><meta charset=\"utf-8\"><title>TPay error</title></head>\
             <body><h1>台灣里 TPay <small>sandbox</small></h1><p>error_code=<span id=\"error_code\">{}</span></p>\
             <p id=\"error_desc\">{}</p></body></html>",
            self.code,
            page::escape(&self.desc)
        );
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

fn form_reply(reply: &impl Serialize) -> Response {
    match serde_urlencoded::to_string(reply) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn parse_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_urlencoded::from_bytes(body).map_err(|e| Refusal::new(error::BAD_FIELD, format!("bad form: {e}")))
}

/// A positive whole-TWD amount as TPay writes it.
fn parse_amount(text: &str) -> Result<i64, Refusal> {
    let bad = || Refusal::new(error::BAD_FIELD, "amount must be a positive whole TWD number");
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<i64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(bad()),
    }
}

/// A `txid` or `refund_no`: 1–40 of `[A-Za-z0-9_-]`, so no value can contain the `|` separator.
fn check_id(field: &str, value: &str) -> Result<(), Refusal> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Refusal::new(
            error::BAD_FIELD,
            format!("{field} must be 1-{MAX_ID_LEN} of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// The sandbox's routes (TPay's paths plus the kit's), to be nested under its prefix.
pub fn router(kit: Arc<Kit>) -> axum::Router {
    let sandbox = Arc::new(Sandbox::new(kit.clone()));
    axum::Router::new()
        .route(wire::PAY_PATH, post(pay))
        .route(wire::QUERY_PATH, post(query))
        .route(wire::REFUND_PATH, post(refund))
        .route(wire::CANCEL_PATH, post(cancel))
        .with_state(sandbox.clone())
        .merge(kit.routes(sandbox))
}

/// The checkout form: records the payment and sends the browser to the pay page.
async fn pay(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let kit = s.kit.clone();
    kit.api("create", || match open_payment(&s, &body) {
        Ok(txid) => Redirect::to(&s.kit.pay_url(&txid)).into_response(),
        Err(r) => r.page(),
    })
    .await
}

fn open_payment(s: &Sandbox, body: &[u8]) -> Result<String, Refusal> {
    let f: wire::CheckoutRequest = parse_form(body)?;
    s.authenticate(&f.mid, &[&f.mid, &f.txid, &f.amount], &f.verify)?;
    check_id("txid", &f.txid)?;
    let amount = parse_amount(&f.amount)?;
    if let Some(url) = f.notify_url.as_deref().filter(|u| !u.is_empty())
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(Refusal::new(error::BAD_FIELD, "notify_url must be an http(s) URL"));
    }
    let mut book = s.book();
    if let Some(p) = book.payments.get(&f.txid) {
        // The customer reopened the page: same order, same page; anything else is a clash.
        // Closed comes first: a tombstone (cancelled before any form) has no amount to compare.
        if !p.is_open() {
            return Err(Refusal::new(error::CLOSED, "this order is closed"));
        }
        if p.mid != f.mid || p.amount != amount {
            return Err(Refusal::new(
                error::AMOUNT_MISMATCH,
                "txid was posted before with another amount",
            ));
        }
        return Ok(f.txid);
    }
    book.next_id += 1;
    let tid = format!("TWV{:09}", book.next_id);
    book.payments.insert(
        f.txid.clone(),
        Payment {
            mid: f.mid,
            amount,
            description: f.description.unwrap_or_default(),
            return_url: f.return_url.filter(|u| !u.is_empty()),
            notify_url: f.notify_url.filter(|u| !u.is_empty()),
            status: status::OPEN,
            pay_type: "0",
            tid,
            refunded: 0,
            refunds: HashMap::new(),
        },
    );
    Ok(f.txid)
}

async fn query(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let kit = s.kit.clone();
    kit.api("query", || run_query(&s, &body).unwrap_or_else(Refusal::api))
        .await
}

fn run_query(s: &Sandbox, body: &[u8]) -> Result<Response, Refusal> {
    let c: wire::QueryCall = parse_form(body)?;
    let keys = s.authenticate(&c.mid, &[&c.mid, &c.txid], &c.verify)?;
    let book = s.book();
    let p = book
        .payments
        .get(&c.txid)
        .filter(|p| p.mid == c.mid)
        .ok_or_else(|| Refusal::new(error::NOT_FOUND, "no such txid"))?;
    let (amount, refunded) = (p.amount.to_string(), p.refunded.to_string());
    let parts = [&*c.txid, &amount, p.pay_type, p.status, &p.tid, &refunded];
    Ok(form_reply(&wire::QueryReply {
        verify: sign::check_value(&keys.key1, &parts, &keys.key2),
        txid: c.txid.clone(),
        amount,
        pay_type: p.pay_type.to_owned(),
        status: p.status.to_owned(),
        tid: p.tid.clone(),
        refunded,
    }))
}

async fn refund(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let kit = s.kit.clone();
    kit.api("refund", || run_refund(&s, &body).unwrap_or_else(Refusal::api))
        .await
}

fn run_refund(s: &Sandbox, body: &[u8]) -> Result<Response, Refusal> {
    let c: wire::RefundCall = parse_form(body)?;
    let keys = s.authenticate(&c.mid, &[&c.mid, &c.txid, &c.amount, &c.refund_no], &c.verify)?;
    check_id("refund_no", &c.refund_no)?;
    let amount = parse_amount(&c.amount)?;
    let mut book = s.book();
    book.next_id += 1;
    let seq = book.next_id;
    let p = book
        .payments
        .get_mut(&c.txid)
        .filter(|p| p.mid == c.mid)
        .ok_or_else(|| Refusal::new(error::NOT_FOUND, "no such txid"))?;
    if let Some(done) = p.refunds.get(&c.refund_no) {
        // A retried refund number answers what it answered the first time and refunds nothing.
        if done.amount != amount {
            return Err(Refusal::new(
                error::REFUND_NO_REUSED,
                "refund_no was used with another amount",
            ));
        }
        return Ok(form_reply(&done.reply));
    }
    if p.status != status::PAID {
        return Err(Refusal::new(error::NOT_PAID, "only paid orders can be refunded"));
    }
    let left = p.amount - p.refunded;
    if amount > left {
        return Err(Refusal::new(
            error::OVER_REFUND,
            format!("refund {amount} exceeds the {left} TWD left to refund"),
        ));
    }
    p.refunded += amount;
    let (amount_text, refunded) = (amount.to_string(), p.refunded.to_string());
    let rtid = format!("TWR{seq:09}");
    let parts = [&*c.txid, &c.refund_no, &amount_text, &rtid, &refunded];
    let reply = wire::RefundReply {
        verify: sign::check_value(&keys.key1, &parts, &keys.key2),
        txid: c.txid.clone(),
        refund_no: c.refund_no.clone(),
        amount: amount_text,
        rtid,
        refunded,
    };
    p.refunds.insert(
        c.refund_no,
        RefundRecord {
            amount,
            reply: reply.clone(),
        },
    );
    Ok(form_reply(&reply))
}

async fn cancel(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let kit = s.kit.clone();
    kit.api("cancel", || run_cancel(&s, &body).unwrap_or_else(Refusal::api))
        .await
}

fn run_cancel(s: &Sandbox, body: &[u8]) -> Result<Response, Refusal> {
    let c: wire::CancelCall = parse_form(body)?;
    let keys = s.authenticate(&c.mid, &[&c.mid, &c.txid, &c.action], &c.verify)?;
    if c.action != wire::CANCEL_ACTION {
        return Err(Refusal::new(error::BAD_FIELD, "action must be cancel"));
    }
    check_id("txid", &c.txid)?;
    let mut book = s.book();
    let p = book.payments.entry(c.txid.clone()).or_insert_with(|| Payment {
        // Cancelled before the browser ever posted the form: remember it, so a late form post
        // for this txid is refused instead of taking money for a cancelled payment.
        mid: c.mid.clone(),
        amount: 0,
        description: String::new(),
        return_url: None,
        notify_url: None,
        status: status::CANCELLED,
        pay_type: "0",
        tid: String::new(),
        refunded: 0,
        refunds: HashMap::new(),
    });
    if p.mid != c.mid {
        return Err(Refusal::new(error::NOT_FOUND, "no such txid"));
    }
    if p.status == status::PAID {
        return Err(Refusal::new(
            error::ALREADY_PAID,
            "a paid order cannot be cancelled; refund it",
        ));
    }
    if p.is_open() {
        p.status = status::CANCELLED;
    }
    Ok(form_reply(&wire::CancelReply {
        verify: sign::check_value(&keys.key1, &[&c.txid, p.status], &keys.key2),
        txid: c.txid.clone(),
        status: p.status.to_owned(),
    }))
}

impl SandboxPayments for Sandbox {
    fn settle(&self, reference: &str, outcome: Outcome) -> Result<Vec<Notification>, SimError> {
        let mut book = self.book();
        let p = book.payments.get_mut(reference).ok_or(SimError::UnknownPayment)?;
        if !p.is_open() {
            return Err(SimError::NotOpen);
        }
        // Results for each status are built from the payment as it stands after the change.
        let codes: &[&'static str] = match outcome {
            Outcome::Paid => {
                p.status = status::PAID;
                p.pay_type = PAY_TYPE_PAID;
                &[status::WAITING, status::PAID]
            }
            Outcome::Declined => {
                p.status = status::FAILED;
                p.pay_type = PAY_TYPE_DECLINED;
                &[status::FAILED]
            }
            // TPay sends nothing when a payment window lapses; a query shows status 4.
            Outcome::Expired => {
                p.status = status::EXPIRED;
                &[]
            }
        };
        let p = p.clone();
        drop(book);
        Ok(codes
            .iter()
            .filter_map(|code| self.result_note(reference, &p, code))
            .collect())
    }

    fn page(&self, reference: &str) -> Option<PageView> {
        let book = self.book();
        let p = book.payments.get(reference)?;
        let amount = Money::from_minor(p.amount.checked_mul(100)?, Currency::Twd).ok()?;
        let word = match p.status {
            status::OPEN | status::WAITING => "open",
            status::PAID if p.refunded >= p.amount => "refunded",
            status::PAID => "paid",
            status::FAILED => "declined",
            status::EXPIRED => "expired",
            _ => "cancelled",
        };
        Some(PageView {
            provider_title: "台灣里 TPay".into(),
            merchant: p.mid.clone(),
            description: p.description.clone(),
            amount,
            status: word.into(),
            return_url: p.return_url.clone(),
        })
    }
}
