//! The Octopus sandbox: a local server that speaks the Octopus-like API of
//! `docs/providers/octopus.md` under its prefix (`/sandbox/octopus`).
//!
//! It serves `POST /v1/payments`, `GET /v1/payments/{id}`, `POST /v1/payments/{id}/cancel`,
//! `POST /v1/refunds` and the customer landing page `GET /oos/payment/?token=<t>`, checks every
//! request as the provider would (known merchant, bearer API key, ±300 s timestamp, single-use
//! nonce, HMAC signature) and answers failures in the provider's error envelope. Payments live in
//! memory, keyed by the merchant's orderId (jinliu's provider reference), so the shared
//! `/simulate` helper finds them. On Pay / Decline / Expire it builds the notifications the
//! provider would send — signed with the merchant's webhook secret — to the `notifyUrl` given at
//! create; delivery, retries and fault injection are the shared [`Kit`]'s.
//!
//! It must not hold its lock across an `.await`: every operation runs synchronously inside
//! [`Kit::api`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use jinliu_domain::{Currency, Money};
use rand::Rng;
use serde::Deserialize;

use super::wire::{self, H_MERCHANT, H_NONCE, H_SIGNATURE, H_TIMESTAMP, status};
use super::{SANDBOX_CREDENTIALS, sign};
use crate::sandbox::Kit;
use crate::sandbox::kit::{Notification, Outcome, SandboxPayments, SimError};
use crate::sandbox::page::{self, PageView};

/// The longest payment window the sandbox grants; a later `expiresAt` is shortened to this.
const MAX_WINDOW_HOURS: i64 = 24;
/// Refunds are accepted this long after payment (Antom's published Octopus rule).
const REFUND_WINDOW_DAYS: i64 = 90;

/// A merchant the sandbox knows.
#[derive(Debug, Clone)]
struct Merchant {
    id: String,
    api_key: String,
    signing_secret: String,
    webhook_secret: String,
}

#[derive(Debug, Clone)]
struct Payment {
    id: String,
    order_id: String,
    merchant_id: String,
    amount: i64,
    description: String,
    notify_url: String,
    return_url: Option<String>,
    token: String,
    status: &'static str,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    transaction_id: Option<String>,
    failure_reason: Option<String>,
    refunded: i64,
}

impl Payment {
    fn is_open(&self) -> bool {
        matches!(self.status, status::PENDING | status::PROCESSING)
    }

    /// The provider expires a payment when its window passes; the sandbox does it when the
    /// payment is next looked at.
    fn expire_if_due(&mut self, now: DateTime<Utc>) {
        if self.is_open() && now >= self.expires_at {
            self.status = status::EXPIRED;
        }
    }

    fn resource(&self, base_url: &str) -> wire::PaymentResource {
        wire::PaymentResource {
            id: self.id.clone(),
            order_id: self.order_id.clone(),
            merchant_id: self.merchant_id.clone(),
            status: self.status.into(),
            amount: wire::amount_text(self.amount),
            currency: wire::CURRENCY.into(),
            token: self.token.clone(),
            landing_url: landing_url(base_url, &self.token),
            deep_link: format!("octopus://payment?token={}", self.token),
            expires_at: wire::time_text(self.expires_at),
            transaction_id: self.transaction_id.clone(),
            failure_reason: self.failure_reason.clone(),
            refunded_amount: wire::amount_text(self.refunded),
            created_at: wire::time_text(self.created_at),
        }
    }
}

#[derive(Debug, Clone)]
struct RefundRecord {
    order_id: String,
    amount: i64,
    refunded_after: i64,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Book {
    /// By orderId (jinliu's provider reference).
    payments: HashMap<String, Payment>,
    /// Provider payment id → orderId.
    by_id: HashMap<String, String>,
    /// Token → orderId.
    by_token: HashMap<String, String>,
    /// By refundId: the provider deduplicates refunds on it.
    refunds: HashMap<String, RefundRecord>,
    /// (merchant, nonce) → timestamp, remembered for twice the window.
    nonces: HashMap<(String, String), i64>,
}

impl Book {
    fn find(&mut self, id: &str) -> Option<&mut Payment> {
        let order_id = if self.payments.contains_key(id) {
            id.to_owned()
        } else {
            self.by_id.get(id)?.clone()
        };
        self.payments.get_mut(&order_id)
    }
}

/// The Octopus sandbox's state.
#[derive(Debug)]
pub struct OctopusSandbox {
    kit: Arc<Kit>,
    merchants: HashMap<String, Merchant>,
    book: Mutex<Book>,
}

/// A provider-format error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "PAYMENT_NOT_FOUND",
            "no such payment for this merchant",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = wire::ErrorBody {
            error: wire::ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn landing_url(base_url: &str, token: &str) -> String {
    format!("{base_url}/oos/payment/?token={token}")
}

fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0_u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl OctopusSandbox {
    /// A sandbox that knows the merchant of [`SANDBOX_CREDENTIALS`].
    pub fn new(kit: Arc<Kit>) -> OctopusSandbox {
        let cred = |key: &str| {
            SANDBOX_CREDENTIALS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_default()
        };
        let merchant = Merchant {
            id: cred("merchant_id"),
            api_key: cred("api_key"),
            signing_secret: cred("signing_secret"),
            webhook_secret: cred("webhook_secret"),
        };
        OctopusSandbox {
            kit,
            merchants: HashMap::from([(merchant.id.clone(), merchant)]),
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Plain maps updated in single statements; a panic elsewhere cannot leave them torn.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks who is calling and that the request is fresh and signed. `payload` builds the
    /// signed text from the request's timestamp and nonce. The nonce is remembered only once the
    /// signature checks out, so unsigned traffic cannot fill the replay cache.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        signature: Option<&str>,
        payload: impl FnOnce(&str, &str) -> String,
    ) -> Result<&Merchant, ApiError> {
        let merchant = header(headers, H_MERCHANT)
            .and_then(|id| self.merchants.get(id))
            .ok_or_else(|| ApiError::unauthorized("UNAUTHORIZED", "unknown merchant in X-Octopus-Merchant-ID"))?;
        let bearer = header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
        if bearer != Some(merchant.api_key.as_str()) {
            return Err(ApiError::unauthorized("UNAUTHORIZED", "missing or wrong API key"));
        }
        let stamp_text = header(headers, H_TIMESTAMP)
            .ok_or_else(|| ApiError::unauthorized("TIMESTAMP_INVALID", "missing X-Octopus-Timestamp"))?;
        let stamp: i64 = stamp_text
            .parse()
            .map_err(|_| ApiError::unauthorized("TIMESTAMP_INVALID", "X-Octopus-Timestamp is not unix seconds"))?;
        let now = Utc::now().timestamp();
        if now.abs_diff(stamp) > wire::TIMESTAMP_WINDOW_SECS.unsigned_abs() {
            return Err(ApiError::unauthorized(
                "TIMESTAMP_OUT_OF_RANGE",
                "timestamp is more than 300 s away",
            ));
        }
        let nonce = header(headers, H_NONCE)
            .filter(|n| !n.is_empty() && n.len() <= 64)
            .ok_or_else(|| ApiError::unauthorized("NONCE_INVALID", "X-Octopus-Nonce must be 1 to 64 characters"))?;
        let signature = signature.ok_or_else(|| ApiError::unauthorized("INVALID_SIGNATURE", "missing signature"))?;
        let text = payload(stamp_text, nonce);
        if !sign::verify(&merchant.signing_secret, text.as_bytes(), signature) {
            return Err(ApiError::unauthorized("INVALID_SIGNATURE", "signature does not match"));
        }
        let mut book = self.book();
        let horizon = now - 2 * wire::TIMESTAMP_WINDOW_SECS;
        book.nonces.retain(|_, t| *t >= horizon);
        let key = (merchant.id.clone(), nonce.to_owned());
        if book.nonces.contains_key(&key) {
            return Err(ApiError::unauthorized("NONCE_REPLAYED", "this nonce was already used"));
        }
        book.nonces.insert(key, stamp);
        Ok(merchant)
    }

    fn create(&self, headers: &HeaderMap, body: &[u8]) -> ApiResult {
        let req: wire::CreatePaymentRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("INVALID_REQUEST", format!("unreadable body: {e}")))?;
        let merchant = self.authenticate(headers, Some(&req.signature), |ts, nonce| {
            sign::create_payload(&req.order_id, &req.amount, &req.currency, ts, nonce)
        })?;
        if req.order_id.is_empty()
            || req.order_id.len() > 64
            || !req.order_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ApiError::bad_request(
                "INVALID_REQUEST",
                "orderId must be 1 to 64 letters and digits",
            ));
        }
        if req.currency != wire::CURRENCY {
            return Err(ApiError::bad_request("UNSUPPORTED_CURRENCY", "Octopus takes HKD only"));
        }
        let amount = wire::parse_amount(&req.amount)
            .ok_or_else(|| ApiError::bad_request("INVALID_AMOUNT", "amount must be text like \"100.00\""))?;
        super::money_rule(Currency::Hkd, amount).map_err(|m| ApiError::bad_request("INVALID_AMOUNT", m))?;
        if !(req.notify_url.starts_with("http://") || req.notify_url.starts_with("https://")) {
            return Err(ApiError::bad_request(
                "INVALID_REQUEST",
                "notifyUrl must be an http(s) URL",
            ));
        }
        let now = Utc::now();
        let expires_at = wire::parse_time(&req.expires_at)
            .filter(|t| *t > now)
            .ok_or_else(|| ApiError::bad_request("INVALID_REQUEST", "expiresAt must be a future RFC 3339 time"))?
            .min(now + Duration::hours(MAX_WINDOW_HOURS));

        let mut book = self.book();
        if let Some(existing) = book.payments.get_mut(&req.order_id) {
            // A repeated create (the merchant's retry after a lost answer) returns the payment
            // already made; the same orderId for other money is a conflict.
            if existing.merchant_id != merchant.id || existing.amount != amount {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "DUPLICATE_ORDER",
                    "orderId already used for a different payment",
                ));
            }
            existing.expire_if_due(now);
            return Ok((StatusCode::OK, axum::Json(existing.resource(self.kit.base_url()))).into_response());
        }
        let payment = Payment {
            id: format!("opay_{}", random_hex(12)),
            order_id: req.order_id.clone(),
            merchant_id: merchant.id.clone(),
            amount,
            description: req.description,
            notify_url: req.notify_url,
            return_url: req.return_url,
            token: random_alnum(32),
            status: status::PENDING,
            expires_at,
            created_at: now,
            paid_at: None,
            transaction_id: None,
            failure_reason: None,
            refunded: 0,
        };
        let resource = payment.resource(self.kit.base_url());
        book.by_id.insert(payment.id.clone(), payment.order_id.clone());
        book.by_token.insert(payment.token.clone(), payment.order_id.clone());
        book.payments.insert(payment.order_id.clone(), payment);
        Ok((StatusCode::CREATED, axum::Json(resource)).into_response())
    }

    fn query(&self, headers: &HeaderMap, id: &str) -> ApiResult {
        let path = format!("/v1/payments/{id}");
        let merchant = self.authenticate(headers, header(headers, H_SIGNATURE), |ts, nonce| {
            sign::path_payload("GET", &path, ts, nonce)
        })?;
        let mut book = self.book();
        let payment = book
            .find(id)
            .filter(|p| p.merchant_id == merchant.id)
            .ok_or_else(ApiError::not_found)?;
        payment.expire_if_due(Utc::now());
        Ok(axum::Json(payment.resource(self.kit.base_url())).into_response())
    }

    fn cancel(&self, headers: &HeaderMap, id: &str) -> ApiResult {
        let path = format!("/v1/payments/{id}/cancel");
        let merchant = self.authenticate(headers, header(headers, H_SIGNATURE), |ts, nonce| {
            sign::path_payload("POST", &path, ts, nonce)
        })?;
        let mut book = self.book();
        let payment = book
            .find(id)
            .filter(|p| p.merchant_id == merchant.id)
            .ok_or_else(ApiError::not_found)?;
        payment.expire_if_due(Utc::now());
        match payment.status {
            status::PENDING | status::PROCESSING => payment.status = status::CANCELLED,
            // Cancelling again answers like the first time, so a retried cancel is harmless.
            status::CANCELLED => {}
            other => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "PAYMENT_NOT_CANCELLABLE",
                    format!("the payment is {other}"),
                ));
            }
        }
        Ok(axum::Json(payment.resource(self.kit.base_url())).into_response())
    }

    fn refund(&self, headers: &HeaderMap, body: &[u8]) -> ApiResult {
        let req: wire::RefundRequestBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("INVALID_REQUEST", format!("unreadable body: {e}")))?;
        let merchant = self.authenticate(headers, Some(&req.signature), |ts, nonce| {
            sign::refund_payload(&req.refund_id, &req.order_id, &req.amount, &req.currency, ts, nonce)
        })?;
        if req.refund_id.is_empty() || req.refund_id.len() > 64 {
            return Err(ApiError::bad_request(
                "INVALID_REQUEST",
                "refundId must be 1 to 64 characters",
            ));
        }
        if req.currency != wire::CURRENCY {
            return Err(ApiError::bad_request("UNSUPPORTED_CURRENCY", "Octopus takes HKD only"));
        }
        let amount = wire::parse_amount(&req.amount)
            .filter(|a| *a > 0 && a % super::STEP_MINOR == 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_AMOUNT",
                    "refund amounts are positive, in 10-cent steps, like \"10.00\"",
                )
            })?;
        let now = Utc::now();
        let mut book = self.book();
        if let Some(done) = book.refunds.get(&req.refund_id).cloned() {
            // The provider deduplicates on refundId: a retry gets the first answer back.
            if done.order_id != req.order_id || done.amount != amount {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "REFUND_ID_CONFLICT",
                    "refundId already used for a different refund",
                ));
            }
            let payment = book
                .find(&req.order_id)
                .filter(|p| p.merchant_id == merchant.id)
                .ok_or_else(ApiError::not_found)?;
            return Ok(axum::Json(refund_resource(&req.refund_id, &done, payment)).into_response());
        }
        let payment = book
            .find(&req.order_id)
            .filter(|p| p.merchant_id == merchant.id)
            .ok_or_else(ApiError::not_found)?;
        payment.expire_if_due(now);
        if payment.status != status::SUCCESS {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "PAYMENT_NOT_REFUNDABLE",
                format!("the payment is {}", payment.status),
            ));
        }
        if payment
            .paid_at
            .is_some_and(|t| now - t > Duration::days(REFUND_WINDOW_DAYS))
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "REFUND_WINDOW_CLOSED",
                "refunds are accepted for 90 days after payment",
            ));
        }
        let available = payment.amount - payment.refunded;
        if amount > available {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "REFUND_EXCEEDS_AVAILABLE",
                format!(
                    "refund of HKD {} exceeds the refundable balance of HKD {}",
                    wire::amount_text(amount),
                    wire::amount_text(available)
                ),
            ));
        }
        payment.refunded += amount;
        let record = RefundRecord {
            order_id: req.order_id.clone(),
            amount,
            refunded_after: payment.refunded,
            created_at: now,
        };
        let resource = refund_resource(&req.refund_id, &record, payment);
        book.refunds.insert(req.refund_id.clone(), record);
        Ok((StatusCode::CREATED, axum::Json(resource)).into_response())
    }

    fn landing(&self, token: &str) -> Response {
        let order_id = self.book().by_token.get(token).cloned();
        match order_id
            .as_deref()
            .and_then(|r| self.page(r).map(|v| (r.to_owned(), v)))
        {
            Some((reference, view)) => page::render(&view, &self.kit.pay_url(&reference)).into_response(),
            None => page::unknown().into_response(),
        }
    }

    fn notification(&self, payment: &Payment, status_word: &str) -> Notification {
        let secret = self
            .merchants
            .get(&payment.merchant_id)
            .map(|m| m.webhook_secret.as_str())
            .unwrap_or_default();
        let timestamp = Utc::now().timestamp();
        let body = wire::NotificationBody {
            event_id: format!("oevt_{}", random_hex(12)),
            merchant_id: payment.merchant_id.clone(),
            payment_id: payment.id.clone(),
            order_id: payment.order_id.clone(),
            status: status_word.into(),
            amount: wire::amount_text(payment.amount),
            currency: wire::CURRENCY.into(),
            transaction_id: (status_word == status::SUCCESS)
                .then(|| payment.transaction_id.clone())
                .flatten(),
            failure_reason: (status_word == status::FAILED)
                .then(|| payment.failure_reason.clone())
                .flatten(),
            timestamp,
        };
        // Serialising a struct of strings and integers cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        Notification {
            url: payment.notify_url.clone(),
            content_type: "application/json".into(),
            headers: vec![
                ("X-Octopus-Signature".into(), sign::sign(secret, &bytes)),
                ("X-Octopus-Timestamp".into(), timestamp.to_string()),
            ],
            body: bytes,
            ack: wire::ACK.into(),
        }
    }
}

fn refund_resource(refund_id: &str, r: &RefundRecord, payment: &Payment) -> wire::RefundResource {
    wire::RefundResource {
        refund_id: refund_id.to_owned(),
        order_id: r.order_id.clone(),
        payment_id: payment.id.clone(),
        amount: wire::amount_text(r.amount),
        currency: wire::CURRENCY.into(),
        status: status::SUCCESS.into(),
        refunded_amount: wire::amount_text(r.refunded_after),
        created_at: wire::time_text(r.created_at),
    }
}

impl SandboxPayments for OctopusSandbox {
    fn settle(&self, reference: &str, outcome: Outcome) -> Result<Vec<Notification>, SimError> {
        let mut book = self.book();
        let payment = book.payments.get_mut(reference).ok_or(SimError::UnknownPayment)?;
        payment.expire_if_due(Utc::now());
        if !payment.is_open() {
            return Err(SimError::NotOpen);
        }
        Ok(match outcome {
            Outcome::Paid => {
                // The customer scans first (PROCESSING), then the wallet pays (SUCCESS): the
                // provider reports both.
                payment.status = status::PROCESSING;
                let scanned = payment.clone();
                payment.status = status::SUCCESS;
                payment.paid_at = Some(Utc::now());
                payment.transaction_id = Some(format!("R{}", random_hex(6).to_uppercase()));
                let paid = payment.clone();
                drop(book);
                vec![
                    self.notification(&scanned, status::PROCESSING),
                    self.notification(&paid, status::SUCCESS),
                ]
            }
            Outcome::Declined => {
                payment.status = status::FAILED;
                payment.failure_reason = Some("DECLINED".into());
                let p = payment.clone();
                drop(book);
                vec![self.notification(&p, status::FAILED)]
            }
            Outcome::Expired => {
                payment.status = status::EXPIRED;
                let p = payment.clone();
                drop(book);
                vec![self.notification(&p, status::EXPIRED)]
            }
        })
    }

    fn page(&self, reference: &str) -> Option<PageView> {
        let mut book = self.book();
        let p = book.payments.get_mut(reference)?;
        p.expire_if_due(Utc::now());
        let shown = match p.status {
            status::PENDING | status::PROCESSING => "open",
            status::SUCCESS if p.refunded >= p.amount => "refunded",
            status::SUCCESS => "paid",
            status::FAILED => "declined",
            status::EXPIRED => "expired",
            _ => "cancelled",
        };
        Some(PageView {
            provider_title: "Octopus".into(),
            merchant: p.merchant_id.clone(),
            description: p.description.clone(),
            amount: Money::from_minor(p.amount, Currency::Hkd).ok()?,
            status: shown.into(),
            return_url: p.return_url.clone(),
        })
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

async fn create(State(s): State<Arc<OctopusSandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    let kit = s.kit.clone();
    kit.api("create", || {
        s.create(&headers, &body).unwrap_or_else(IntoResponse::into_response)
    })
    .await
}

async fn query(State(s): State<Arc<OctopusSandbox>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let kit = s.kit.clone();
    kit.api("query", || {
        s.query(&headers, &id).unwrap_or_else(IntoResponse::into_response)
    })
    .await
}

async fn cancel(State(s): State<Arc<OctopusSandbox>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let kit = s.kit.clone();
    kit.api("cancel", || {
        s.cancel(&headers, &id).unwrap_or_else(IntoResponse::into_response)
    })
    .await
}

async fn refund(State(s): State<Arc<OctopusSandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    let kit = s.kit.clone();
    kit.api("refund", || {
        s.refund(&headers, &body).unwrap_or_else(IntoResponse::into_response)
    })
    .await
}

async fn landing(State(s): State<Arc<OctopusSandbox>>, Query(q): Query<TokenQuery>) -> Response {
    s.landing(&q.token)
}

/// The sandbox's routes, nested under its prefix: the provider API, the landing page, and the
/// shared `/control`, `/simulate` and `/pay/{reference}`.
pub fn router(kit: Arc<Kit>) -> Router {
    let state = Arc::new(OctopusSandbox::new(kit.clone()));
    Router::new()
        .route("/v1/payments", post(create))
        .route("/v1/payments/{id}", get(query))
        .route("/v1/payments/{id}/cancel", post(cancel))
        .route("/v1/refunds", post(refund))
        .route("/oos/payment/", get(landing))
        .route("/oos/payment", get(landing))
        .with_state(state.clone())
        .merge(kit.routes(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_knows_exactly_the_test_merchant() {
        let s = OctopusSandbox::new(Kit::new("octopus", "http://127.0.0.1:1"));
        assert_eq!(s.merchants.len(), 1);
        let m = s.merchants.get("OCTSANDBOX01").expect("test merchant");
        assert_eq!(m.api_key, "oct-sandbox-api-key");
        assert_eq!(m.signing_secret, "oct-sandbox-signing-secret");
        assert_eq!(m.webhook_secret, "oct-sandbox-webhook-secret");
    }
}
