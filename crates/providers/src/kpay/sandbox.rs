//! The 客樂得 KPay sandbox: a local server that speaks KPay's protocol as the adapter sees it.
//!
//! Routes under its prefix (the lead nests it at `/sandbox/kpay`):
//! - `POST /token` — OAuth2 password grant for the merchants it knows ([`SANDBOX_CREDENTIALS`]);
//! - `POST /api/Collect` — the JSON command bus (`CocsOrderAppend`, `CocsOrderQuery`,
//!   `CocsCashRequest`, `CocsOrderCancel`, `CocsOrderRefund`) behind a bearer token;
//! - the shared `/control`, `/simulate` and `/pay/{reference}` from [`Kit`].
//!
//! Orders live in memory, keyed by `cust_order_no` (jinliu's provider reference). APN
//! notifications go to the order's `apn_url`: on Pay (`B`), Decline (`F`), expiry (`D`), capture
//! (`E`) and cancel (`M`). It owns no jinliu state and never calls jinliu except to notify.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jinliu_domain::{Currency, Money};
use serde::de::DeserializeOwned;

use super::wire::{self, CollectReply};
use super::{ACK, MAX_TWD, MIN_TWD, SANDBOX_CREDENTIALS, sign};
use crate::sandbox::{Kit, Notification, Outcome, PageView, SandboxPayments, SimError};

/// How long a token lives, in seconds (our assumption; the plugin reads it from the answer).
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// The body of a 401 on `api/Collect`: ASP.NET Web API's default (our assumption, since the
/// OWIN-style `.expires` in KPay's token answer points at that stack).
pub const UNAUTHORIZED_MESSAGE: &str = "Authorization has been denied for this request.";

/// The sandbox's state: merchants, tokens and orders.
pub struct KPaySandbox {
    kit: Arc<Kit>,
    merchants: HashMap<String, String>,
    state: Mutex<Books>,
}

#[derive(Default)]
struct Books {
    tokens: HashMap<String, Grant>,
    orders: HashMap<String, Order>,
}

struct Grant {
    merchant: String,
    expires: Instant,
}

struct Order {
    merchant: String,
    amount: i64,
    detail: String,
    apn_url: String,
    success_url: Option<String>,
    trans_id: String,
    status: &'static str,
    captured: i64,
    refunded: i64,
}

/// The sandbox's routes, nested under its prefix.
pub fn router(kit: Arc<Kit>) -> Router {
    routes(Arc::new(KPaySandbox::new(kit)))
}

/// The routes of an existing sandbox (tests keep a handle on its state).
pub fn routes(sandbox: Arc<KPaySandbox>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/api/Collect", post(collect))
        .with_state(sandbox.clone())
        .merge(sandbox.kit.clone().routes(sandbox))
}

impl KPaySandbox {
    /// A sandbox that knows the test merchant of [`SANDBOX_CREDENTIALS`].
    pub fn new(kit: Arc<Kit>) -> KPaySandbox {
        let get = |k: &str| {
            SANDBOX_CREDENTIALS
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_default()
        };
        let merchants = HashMap::from([(get("merchant_id"), get("api_key"))]);
        KPaySandbox {
            kit,
            merchants,
            state: Mutex::new(Books::default()),
        }
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        // Each operation leaves the books consistent before it can panic, so a poisoned lock
        // still holds usable data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every token, as a KPay restart would; the next call with an old token gets 401.
    pub fn revoke_tokens(&self) {
        self.books().tokens.clear();
    }

    /// An order's refunded total in whole TWD, for tests.
    pub fn refunded(&self, reference: &str) -> Option<i64> {
        self.books().orders.get(reference).map(|o| o.refunded)
    }

    fn grant(&self, body: &[u8]) -> Response {
        let oauth_error = |code: &str, text: &str| {
            let reply = wire::TokenReply {
                error: Some(code.into()),
                error_description: Some(text.into()),
                ..wire::TokenReply::default()
            };
            (StatusCode::BAD_REQUEST, Json(reply)).into_response()
        };
        let Ok(form) = serde_urlencoded::from_bytes::<wire::TokenForm>(body) else {
            return oauth_error("invalid_request", "grant_type, username and password are required.");
        };
        if form.grant_type != "password" {
            return oauth_error("unsupported_grant_type", "Only the password grant is supported.");
        }
        let known = self
            .merchants
            .get(&form.username)
            .is_some_and(|key| same(key.as_bytes(), form.password.as_bytes()));
        if !known {
            return oauth_error("invalid_grant", "The user name or password is incorrect.");
        }
        let token = hex::encode(rand::random::<[u8; 24]>());
        self.books().tokens.insert(
            token.clone(),
            Grant {
                merchant: form.username,
                expires: Instant::now() + Duration::from_secs(TOKEN_LIFETIME_SECS),
            },
        );
        Json(wire::TokenReply {
            access_token: Some(token),
            token_type: Some("bearer".into()),
            expires_in: Some(TOKEN_LIFETIME_SECS),
            ..wire::TokenReply::default()
        })
        .into_response()
    }

    fn merchant_of(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let books = self.books();
        let grant = books.tokens.get(token.trim())?;
        (Instant::now() < grant.expires).then(|| grant.merchant.clone())
    }

    /// Runs one `api/Collect` command; notifications it causes are pushed onto `notes`.
    fn command(&self, headers: &HeaderMap, body: &[u8], notes: &mut Vec<Notification>) -> Response {
        let Some(merchant) = self.merchant_of(headers) else {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "Message": UNAUTHORIZED_MESSAGE })),
            )
                .into_response();
        };
        let reply = match serde_json::from_slice::<wire::Command>(body).map(|c| c.cmd) {
            Ok(cmd) => match cmd.as_str() {
                wire::CMD_APPEND => parse(body).and_then(|r| self.append(&merchant, r)),
                wire::CMD_QUERY => parse(body).and_then(|r| self.query(&merchant, r)),
                wire::CMD_CAPTURE => parse(body).and_then(|r| self.capture(&merchant, r, notes)),
                wire::CMD_CANCEL => parse(body).and_then(|r| self.cancel(&merchant, r, notes)),
                wire::CMD_REFUND => parse(body).and_then(|r| self.refund(&merchant, r)),
                other => Err(refuse(wire::CODE_INVALID, format!("unknown cmd {other:?}"))),
            },
            Err(e) => Err(refuse(wire::CODE_INVALID, format!("not a command: {e}"))),
        };
        Json(reply.unwrap_or_else(|e| CollectReply::error(e.code, e.msg))).into_response()
    }

    fn append(&self, merchant: &str, r: wire::OrderAppend) -> Result<CollectReply, Refusal> {
        common(merchant, &r.cust_id, &r.send_time)?;
        let no = &r.cust_order_no;
        if no.is_empty() || no.len() > 20 || !no.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("cust_order_no must be 1 to 20 letters and digits"));
        }
        if !(MIN_TWD..=MAX_TWD).contains(&r.order_amount) {
            return Err(refuse(
                wire::CODE_AMOUNT,
                format!("order_amount must be {MIN_TWD} to {MAX_TWD}"),
            ));
        }
        if !(r.apn_url.starts_with("http://") || r.apn_url.starts_with("https://")) {
            return Err(invalid("apn_url must be an http(s) URL"));
        }
        let mut books = self.books();
        match books.orders.get(no) {
            // A repeated create of the same order is the same order (our assumption), so a
            // client whose answer was lost can ask again.
            Some(o) if o.merchant == merchant && o.amount == r.order_amount => {}
            Some(_) => {
                return Err(refuse(
                    wire::CODE_STATE,
                    "cust_order_no already used with another amount",
                ));
            }
            None => {
                books.orders.insert(
                    no.clone(),
                    Order {
                        merchant: merchant.to_owned(),
                        amount: r.order_amount,
                        detail: r.order_detail,
                        apn_url: r.apn_url,
                        success_url: r.success_url.filter(|u| !u.is_empty()),
                        trans_id: format!("KT{:016}", rand::random::<u64>() % 10_u64.pow(16)),
                        status: "A",
                        captured: 0,
                        refunded: 0,
                    },
                );
            }
        }
        Ok(CollectReply {
            url: Some(self.kit.pay_url(no)),
            ..CollectReply::ok(no)
        })
    }

    fn query(&self, merchant: &str, r: wire::OrderQuery) -> Result<CollectReply, Refusal> {
        common(merchant, &r.cust_id, &r.send_time)?;
        let books = self.books();
        let o = find(&books, merchant, &r.cust_order_no)?;
        Ok(CollectReply {
            trans_id: Some(o.trans_id.clone()),
            order_status: Some(o.status.into()),
            order_amount: Some(o.amount),
            cr_amount: Some(o.captured),
            refund_amount: Some(o.refunded),
            ..CollectReply::ok(&r.cust_order_no)
        })
    }

    fn capture(
        &self,
        merchant: &str,
        r: wire::CashRequest,
        notes: &mut Vec<Notification>,
    ) -> Result<CollectReply, Refusal> {
        common(merchant, &r.cust_id, &r.send_time)?;
        let mut books = self.books();
        let o = find_mut(&mut books, merchant, &r.cust_order_no)?;
        same_amount(o, r.order_amount)?;
        if r.cr_amount != o.amount {
            // Our assumption: the sandbox captures whole orders only.
            return Err(refuse(wire::CODE_AMOUNT, "cr_amount must equal order_amount"));
        }
        match o.status {
            "B" => {
                o.status = "E";
                o.captured = o.amount;
                notes.push(self.apn(&r.cust_order_no, o));
            }
            // Already captured: the same answer again, so a lost answer can be asked for again.
            "E" => {}
            other => return Err(wrong_state("capture", other)),
        }
        Ok(CollectReply::ok(&r.cust_order_no))
    }

    fn cancel(
        &self,
        merchant: &str,
        r: wire::OrderCancel,
        notes: &mut Vec<Notification>,
    ) -> Result<CollectReply, Refusal> {
        common(merchant, &r.cust_id, &r.send_time)?;
        let mut books = self.books();
        let o = find_mut(&mut books, merchant, &r.cust_order_no)?;
        same_amount(o, r.order_amount)?;
        match o.status {
            "A" | "B" => {
                o.status = "M";
                notes.push(self.apn(&r.cust_order_no, o));
            }
            "M" => {}
            other => return Err(wrong_state("cancel", other)),
        }
        Ok(CollectReply::ok(&r.cust_order_no))
    }

    fn refund(&self, merchant: &str, r: wire::OrderRefund) -> Result<CollectReply, Refusal> {
        common(merchant, &r.cust_id, &r.send_time)?;
        let mut books = self.books();
        let o = find_mut(&mut books, merchant, &r.cust_order_no)?;
        same_amount(o, r.order_amount)?;
        if o.status != "E" {
            return Err(wrong_state("refund", o.status));
        }
        let left = o.captured - o.refunded;
        if r.refund_amount < 1 || r.refund_amount > left {
            return Err(refuse(
                wire::CODE_AMOUNT,
                format!("refund_amount must be 1 to {left} (the refundable amount)"),
            ));
        }
        o.refunded += r.refund_amount;
        Ok(CollectReply {
            refund_amount: Some(o.refunded),
            ..CollectReply::ok(&r.cust_order_no)
        })
    }

    /// The APN for an order's current status, checksummed KPay's way.
    fn apn(&self, reference: &str, o: &Order) -> Notification {
        let nonce = hex::encode(rand::random::<[u8; 8]>());
        let amount = o.amount.to_string();
        let merchant = o.merchant.as_str();
        let checksum = sign::checksum(merchant, &o.trans_id, &amount, o.status, &nonce);
        let body = wire::ApnOut {
            api_id: merchant,
            trans_id: &o.trans_id,
            order_no: reference,
            amount: o.amount,
            status: o.status,
            nonce: &nonce,
            checksum: &checksum,
        };
        Notification {
            url: o.apn_url.clone(),
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
            ack: ACK.into(),
        }
    }
}

impl SandboxPayments for KPaySandbox {
    fn settle(&self, reference: &str, outcome: Outcome) -> Result<Vec<Notification>, SimError> {
        let mut books = self.books();
        let o = books.orders.get_mut(reference).ok_or(SimError::UnknownPayment)?;
        if o.status != "A" {
            return Err(SimError::NotOpen);
        }
        o.status = match outcome {
            Outcome::Paid => "B",
            Outcome::Declined => "F",
            Outcome::Expired => "D",
        };
        Ok(vec![self.apn(reference, o)])
    }

    fn page(&self, reference: &str) -> Option<PageView> {
        let books = self.books();
        let o = books.orders.get(reference)?;
        let status = match o.status {
            "A" => "open",
            "B" => "authorized",
            "E" if o.refunded >= o.captured => "refunded",
            "E" => "paid",
            "F" => "declined",
            "D" => "expired",
            "M" => "cancelled",
            other => other,
        };
        Some(PageView {
            provider_title: "黑貓PAY 客樂得 KPay".into(),
            merchant: o.merchant.clone(),
            description: o.detail.clone(),
            amount: Money::from_minor(o.amount.saturating_mul(100), Currency::Twd).ok()?,
            status: status.into(),
            return_url: o.success_url.clone(),
        })
    }
}

async fn token(State(sb): State<Arc<KPaySandbox>>, body: Bytes) -> Response {
    sb.kit.clone().api("token", || sb.grant(&body)).await
}

async fn collect(State(sb): State<Arc<KPaySandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    // The fault-injection op follows the command, so `ops: ["refund"]` hits refunds only.
    let op = match serde_json::from_slice::<wire::Command>(&body).map(|c| c.cmd) {
        Ok(cmd) => match cmd.as_str() {
            wire::CMD_APPEND => "create",
            wire::CMD_QUERY => "query",
            wire::CMD_CAPTURE => "capture",
            wire::CMD_CANCEL => "cancel",
            wire::CMD_REFUND => "refund",
            _ => "collect",
        },
        Err(_) => "collect",
    };
    let mut notes = Vec::new();
    let response = sb.kit.api(op, || sb.command(&headers, &body, &mut notes)).await;
    if !notes.is_empty() {
        // KPay notifies on its own schedule, not inside the API answer.
        let kit = sb.kit.clone();
        tokio::spawn(async move {
            kit.deliver(notes).await;
        });
    }
    response
}

/// A command refused: KPay's `status: ERROR` reply, built at the end so the `Err` stays small.
struct Refusal {
    code: &'static str,
    msg: String,
}

fn refuse(code: &'static str, msg: impl Into<String>) -> Refusal {
    Refusal { code, msg: msg.into() }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| invalid(format!("bad request: {e}")))
}

fn invalid(msg: impl Into<String>) -> Refusal {
    refuse(wire::CODE_INVALID, msg)
}

fn wrong_state(what: &str, status: &str) -> Refusal {
    refuse(wire::CODE_STATE, format!("cannot {what} an order in status {status}"))
}

/// Checks every command shares: the body's merchant is the token's, and `send_time` has KPay's
/// format (no window: it is not a signature).
fn common(merchant: &str, cust_id: &str, send_time: &str) -> Result<(), Refusal> {
    if cust_id != merchant {
        return Err(invalid("cust_id does not match the token"));
    }
    if chrono::NaiveDateTime::parse_from_str(send_time, "%Y-%m-%d %H:%M:%S").is_err() {
        return Err(invalid("send_time must be Y-m-d H:i:s"));
    }
    Ok(())
}

fn not_found() -> Refusal {
    refuse(wire::CODE_NOT_FOUND, "order not found")
}

fn find<'a>(books: &'a Books, merchant: &str, no: &str) -> Result<&'a Order, Refusal> {
    books
        .orders
        .get(no)
        .filter(|o| o.merchant == merchant)
        .ok_or_else(not_found)
}

fn find_mut<'a>(books: &'a mut Books, merchant: &str, no: &str) -> Result<&'a mut Order, Refusal> {
    books
        .orders
        .get_mut(no)
        .filter(|o| o.merchant == merchant)
        .ok_or_else(not_found)
}

fn same_amount(o: &Order, order_amount: i64) -> Result<(), Refusal> {
    if order_amount == o.amount {
        Ok(())
    } else {
        Err(refuse(wire::CODE_AMOUNT, "order_amount does not match the order"))
    }
}

/// Constant-time equality, so the sandbox does not teach timing attacks by example.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
