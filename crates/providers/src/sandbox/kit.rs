//! What every provider sandbox shares: fault injection, notification delivery with retries, the
//! `simulate` helper and the pay page's Pay / Decline action.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use jinliu_domain::PaymentId;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::page::{self, PageView};

/// Fault injection settings (`PUT {prefix}/control`); every field optional, camelCase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every API answer.
    pub latency_ms: u64,
    /// Share of API calls answered 503 without taking effect (0.0 – 1.0).
    pub error_rate: f64,
    /// Share of API calls that take effect but answer only after `timeout_ms`.
    pub timeout_rate: f64,
    /// The next N API calls answer 503 without taking effect.
    pub fail_next: u32,
    /// The next N API calls take effect, then answer after `timeout_ms` (the caller times out
    /// and cannot know it happened — the case that must never refund twice).
    pub timeout_next: u32,
    /// How long a "timed out" answer is held.
    pub timeout_ms: u64,
    /// Operations the faults above apply to (`create`, `query`, `refund`, `cancel`, `capture`,
    /// `token`); empty = all.
    pub ops: Vec<String>,
    /// Send every notification twice.
    pub duplicate_notifications: bool,
    /// Send a payment's notifications newest first.
    pub reorder_notifications: bool,
    /// Send no notifications at all (status sync must rescue the payment).
    pub drop_notifications: bool,
    /// First wait before re-sending an unacknowledged notification; doubles per attempt.
    pub notify_retry_base_ms: u64,
    /// Most delivery attempts per notification.
    pub notify_max_attempts: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            error_rate: 0.0,
            timeout_rate: 0.0,
            fail_next: 0,
            timeout_next: 0,
            timeout_ms: 30_000,
            ops: Vec::new(),
            duplicate_notifications: false,
            reorder_notifications: false,
            drop_notifications: false,
            notify_retry_base_ms: 1_000,
            notify_max_attempts: 8,
        }
    }
}

/// A notification ready to send, signed the provider's way.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Where to (jinliu's notify URL for the account).
    pub url: String,
    /// `application/json` or `application/x-www-form-urlencoded`.
    pub content_type: String,
    /// Extra headers (signatures, timestamps).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The exact answer that counts as acknowledged (`OK`, `1|OK`…).
    pub ack: String,
}

/// What happened to the notifications of one customer action.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryReport {
    /// Whether the last notification sent was acknowledged on its first attempt.
    pub acknowledged: bool,
    /// Notifications were withheld by the `dropNotifications` fault.
    pub dropped: bool,
    /// How many notifications were sent (duplicates included).
    pub sent: u32,
    /// The HTTP status jinliu answered the last one with.
    pub status: Option<u16>,
    /// jinliu's answer body (first 200 characters).
    pub response: Option<String>,
    /// Why the last delivery failed, when it did.
    pub error: Option<String>,
}

/// The customer's (or a test's) choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The customer paid.
    Paid,
    /// The customer (or the card issuer) declined.
    Declined,
    /// The payment window passed without payment.
    Expired,
}

/// Why a simulated action could not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No such payment in this sandbox.
    #[error("unknown payment")]
    UnknownPayment,
    /// Already paid, declined, expired or cancelled.
    #[error("the payment is no longer open")]
    NotOpen,
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            SimError::UnknownPayment => StatusCode::NOT_FOUND,
            SimError::NotOpen => StatusCode::CONFLICT,
            SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}

/// The part of a provider sandbox the shared routes need.
pub trait SandboxPayments: Send + Sync + 'static {
    /// Applies `outcome` to the payment known by `reference`, and returns the notifications the
    /// provider would send for it, in the order it would send them.
    fn settle(&self, reference: &str, outcome: Outcome) -> Result<Vec<Notification>, SimError>;
    /// What the pay page shows for `reference`.
    fn page(&self, reference: &str) -> Option<PageView>;
}

/// One sandbox's shared machinery.
#[derive(Debug)]
pub struct Kit {
    provider: &'static str,
    base_url: String,
    faults: Mutex<Faults>,
    http: reqwest::Client,
}

impl Kit {
    /// A kit for `provider`'s sandbox, whose pages live at `base_url`.
    pub fn new(provider: &'static str, base_url: impl Into<String>) -> Arc<Kit> {
        Arc::new(Kit {
            provider,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            faults: Mutex::new(Faults::default()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        })
    }

    /// The provider id.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Where this sandbox is reachable, e.g. `http://127.0.0.1:8080/sandbox/kpay`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        // Settings only; a panic elsewhere cannot leave them half-written in a harmful way.
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current fault settings.
    pub fn fault_settings(&self) -> Faults {
        self.faults().clone()
    }

    /// Runs one API operation under the fault settings: added latency; an injected 503 instead
    /// of the operation; or the operation followed by an answer held past the caller's timeout.
    pub async fn api(&self, op: &str, run: impl FnOnce() -> Response) -> Response {
        let (latency, fail, hold) = {
            let mut f = self.faults();
            if !f.ops.is_empty() && !f.ops.iter().any(|o| o == op) {
                (0, false, None)
            } else {
                let mut rng = rand::rng();
                let fail = if f.fail_next > 0 {
                    f.fail_next -= 1;
                    true
                } else {
                    f.error_rate > 0.0 && rng.random::<f64>() < f.error_rate
                };
                let hold = if fail {
                    None
                } else if f.timeout_next > 0 {
                    f.timeout_next -= 1;
                    Some(f.timeout_ms)
                } else if f.timeout_rate > 0.0 && rng.random::<f64>() < f.timeout_rate {
                    Some(f.timeout_ms)
                } else {
                    None
                };
                (f.latency_ms, fail, hold)
            }
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if fail {
            return (StatusCode::SERVICE_UNAVAILABLE, "sandbox: injected failure").into_response();
        }
        let response = run();
        if let Some(ms) = hold {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        response
    }

    /// Sends a customer action's notifications (reversed, duplicated or withheld as the faults
    /// say). Each is awaited once; one that is not acknowledged is re-sent in the background with
    /// doubling waits, like a provider, up to `notifyMaxAttempts`.
    pub async fn deliver(self: &Arc<Self>, mut notes: Vec<Notification>) -> DeliveryReport {
        let f = self.fault_settings();
        if f.drop_notifications {
            return DeliveryReport {
                dropped: true,
                ..DeliveryReport::default()
            };
        }
        if f.reorder_notifications {
            notes.reverse();
        }
        let mut report = DeliveryReport::default();
        let copies = if f.duplicate_notifications { 2 } else { 1 };
        for note in notes {
            for _ in 0..copies {
                let sent = report.sent + 1;
                report = self.send(&note).await;
                report.sent = sent;
                if !report.acknowledged {
                    let kit = self.clone();
                    let note = note.clone();
                    let (base, max) = (f.notify_retry_base_ms, f.notify_max_attempts);
                    tokio::spawn(async move { kit.resend(note, base, max).await });
                }
            }
        }
        report
    }

    async fn resend(&self, note: Notification, base_ms: u64, max_attempts: u32) {
        for attempt in 1..max_attempts {
            let wait = base_ms.saturating_mul(1_u64 << (attempt - 1).min(16));
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if self.send(&note).await.acknowledged {
                return;
            }
        }
        tracing::warn!(provider = self.provider, url = %note.url, "sandbox gave up delivering a notification");
    }

    async fn send(&self, note: &Notification) -> DeliveryReport {
        let mut req = self
            .http
            .post(&note.url)
            .header("content-type", &note.content_type)
            .body(note.body.clone());
        for (k, v) in &note.headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                DeliveryReport {
                    acknowledged: status == 200 && body.trim() == note.ack,
                    status: Some(status),
                    response: Some(body.chars().take(200).collect()),
                    ..DeliveryReport::default()
                }
            }
            Err(e) => DeliveryReport {
                error: Some(e.to_string()),
                ..DeliveryReport::default()
            },
        }
    }

    /// The shared routes: `GET|PUT /control`, `POST /simulate`, `GET|POST /pay/{reference}`.
    pub fn routes(self: Arc<Self>, payments: Arc<dyn SandboxPayments>) -> Router {
        Router::new()
            .route("/control", get(get_control).put(put_control))
            .route("/simulate", post(simulate))
            .route("/pay/{reference}", get(pay_page).post(pay_action))
            .with_state(Shared { kit: self, payments })
    }

    /// The URL of the generic pay page for `reference`.
    pub fn pay_url(&self, reference: &str) -> String {
        format!("{}/pay/{reference}", self.base_url)
    }
}

#[derive(Clone)]
struct Shared {
    kit: Arc<Kit>,
    payments: Arc<dyn SandboxPayments>,
}

async fn get_control(State(s): State<Shared>) -> Json<Faults> {
    Json(s.kit.fault_settings())
}

async fn put_control(State(s): State<Shared>, Json(f): Json<Faults>) -> Response {
    if !(0.0..=1.0).contains(&f.error_rate) || !(0.0..=1.0).contains(&f.timeout_rate) {
        return SimError::Invalid("errorRate and timeoutRate are shares between 0 and 1".into()).into_response();
    }
    *s.kit.faults() = f.clone();
    Json(f).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Simulate {
    payment_id: Option<String>,
    reference: Option<String>,
    outcome: Outcome,
}

async fn simulate(State(s): State<Shared>, Json(req): Json<Simulate>) -> Response {
    let reference = match (req.reference, req.payment_id) {
        (Some(r), _) => r,
        (None, Some(p)) => match PaymentId::parse(&p) {
            Some(id) => jinliu_domain::provider_reference(&id),
            None => return SimError::Invalid("paymentId is not a pay_ id".into()).into_response(),
        },
        (None, None) => return SimError::Invalid("give paymentId or reference".into()).into_response(),
    };
    match s.payments.settle(&reference, req.outcome) {
        Ok(notes) => {
            let report = s.kit.deliver(notes).await;
            Json(serde_json::json!({ "reference": reference, "outcome": req.outcome, "delivery": report }))
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn pay_page(State(s): State<Shared>, Path(reference): Path<String>) -> Response {
    match s.payments.page(&reference) {
        Some(view) => page::render(&view, &s.kit.pay_url(&reference)).into_response(),
        None => page::unknown().into_response(),
    }
}

#[derive(Deserialize)]
struct Choice {
    outcome: Outcome,
}

async fn pay_action(State(s): State<Shared>, Path(reference): Path<String>, Form(c): Form<Choice>) -> Response {
    match s.payments.settle(&reference, c.outcome) {
        Ok(notes) => {
            let report = s.kit.deliver(notes).await;
            let view = s.payments.page(&reference);
            page::done(view.as_ref(), c.outcome, &report).into_response()
        }
        Err(e) => e.into_response(),
    }
}
