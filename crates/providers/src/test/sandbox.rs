//! The test provider's sandbox: an in-process stand-in for a payment provider.
//!
//! It keeps each payment's state, serves the customer a pay page (`GET /pay/{reference}`), takes
//! the customer's choice (`POST /pay/{reference}` with `outcome=success|fail`) and then posts a
//! signed notification to jinliu's notify URL over real HTTP, the way a provider would. Test
//! controls let a test make the next refund fail. State lives in memory: the sandbox is for
//! development and tests, never for live mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use jinliu_domain::Money;
use rand::Rng;
use serde::Deserialize;

use super::{sign, wire};
use crate::{CreatePayment, CreatedPayment, ProviderError, ProviderStatus, RefundOutcome, RefundRequest};

struct SandboxPayment {
    provider: String,
    payment_id: String,
    amount: Money,
    description: String,
    status: ProviderStatus,
    notify_url: String,
    refunded_minor: i64,
}

/// The sandbox's state, shared by the adapter and the sandbox's HTTP routes.
pub struct Sandbox {
    base_url: String,
    secret: [u8; 32],
    payments: Mutex<HashMap<String, SandboxPayment>>,
    fail_next_refund: AtomicBool,
    sequence: AtomicU64,
    http: reqwest::Client,
}

impl Sandbox {
    /// A sandbox whose pages are served at `base_url` (e.g. `http://127.0.0.1:8080/sandbox/test`).
    pub fn new(base_url: impl Into<String>) -> Arc<Sandbox> {
        let mut secret = [0_u8; 32];
        rand::rng().fill(&mut secret);
        Arc::new(Sandbox {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            secret,
            payments: Mutex::new(HashMap::new()),
            fail_next_refund: AtomicBool::new(false),
            sequence: AtomicU64::new(0),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        })
    }

    /// The notification signing secret (random per process).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, SandboxPayment>> {
        // A poisoned lock only means another thread panicked mid-update of a test sandbox; the
        // map itself is still usable.
        self.payments.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn create(&self, provider: &str, req: &CreatePayment) -> CreatedPayment {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let reference = format!("sbx_{}_{n}", req.payment_id.as_str().trim_start_matches("pay_"));
        let token: String = {
            const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
            let mut rng = rand::rng();
            (0..7)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        self.lock().insert(
            reference.clone(),
            SandboxPayment {
                provider: provider.to_owned(),
                payment_id: req.payment_id.to_string(),
                amount: req.amount,
                description: req.description.clone(),
                status: ProviderStatus::Pending,
                notify_url: req.notify_url.clone(),
                refunded_minor: 0,
            },
        );
        CreatedPayment {
            pay_url: format!("{}/pay/{reference}?token={token}", self.base_url),
            deep_link: Some(format!("jinliu-sandbox://pay?token={token}")),
            payment_token: Some(token),
            reference,
        }
    }

    pub(crate) fn status(&self, reference: &str) -> Option<ProviderStatus> {
        self.lock().get(reference).map(|p| p.status.clone())
    }

    pub(crate) fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        if self.fail_next_refund.swap(false, Ordering::SeqCst) {
            return Ok(RefundOutcome::Failed("sandbox: refund declined".into()));
        }
        let mut map = self.lock();
        let p = map.get_mut(&req.payment_reference).ok_or(ProviderError::NotFound)?;
        if !matches!(p.status, ProviderStatus::Succeeded { .. }) {
            return Ok(RefundOutcome::Failed("sandbox: payment not paid".into()));
        }
        if p.refunded_minor + req.amount.minor() > p.amount.minor() {
            return Ok(RefundOutcome::Failed("sandbox: refund exceeds payment".into()));
        }
        p.refunded_minor += req.amount.minor();
        Ok(RefundOutcome::Succeeded(Some(format!(
            "sbx_re_{}",
            req.refund_id.as_str().trim_start_matches("re_")
        ))))
    }

    pub(crate) fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        let mut map = self.lock();
        let p = map.get_mut(reference).ok_or(ProviderError::NotFound)?;
        match p.status {
            ProviderStatus::Pending | ProviderStatus::Processing => {
                p.status = ProviderStatus::Cancelled;
                Ok(())
            }
            ProviderStatus::Cancelled => Ok(()),
            _ => Err(ProviderError::Refused("sandbox: payment is no longer open".into())),
        }
    }

    /// The customer pays (`success`) or is declined. Updates the state, then posts the signed
    /// notification and returns the HTTP status jinliu answered with.
    pub async fn pay(&self, reference: &str, success: bool) -> Result<u16, SandboxError> {
        let (body, url) = {
            let mut map = self.lock();
            let p = map.get_mut(reference).ok_or(SandboxError::UnknownPayment)?;
            if !matches!(p.status, ProviderStatus::Pending | ProviderStatus::Processing) {
                return Err(SandboxError::NotOpen);
            }
            let transaction_id = format!("sbx_tx_{}", reference.trim_start_matches("sbx_"));
            p.status = if success {
                ProviderStatus::Succeeded {
                    transaction_id: Some(transaction_id.clone()),
                }
            } else {
                ProviderStatus::Failed {
                    reason: "sandbox: declined by the customer".into(),
                }
            };
            let note = wire::Notification {
                provider: p.provider.clone(),
                reference: reference.to_owned(),
                payment_id: p.payment_id.clone(),
                status: if success { "succeeded" } else { "failed" }.into(),
                transaction_id,
                reason: (!success).then(|| "sandbox: declined by the customer".into()),
                amount: p.amount.major_string(),
                currency: p.amount.currency().code().into(),
                timestamp: chrono::Utc::now().timestamp(),
            };
            (
                serde_json::to_vec(&note).map_err(|e| SandboxError::Notify(e.to_string()))?,
                p.notify_url.clone(),
            )
        };
        let signature = sign::sign(&self.secret, &body);
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| SandboxError::Notify(e.to_string()))?;
        Ok(resp.status().as_u16())
    }

    /// The sandbox's routes, to be nested under the path of `base_url`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/pay/{reference}", get(pay_page).post(pay_action))
            .route("/control/fail-next-refund", post(fail_next_refund))
            .with_state(self)
    }
}

/// Why a sandbox action failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No such payment in the sandbox.
    #[error("unknown payment")]
    UnknownPayment,
    /// Already paid, failed or cancelled.
    #[error("the payment is no longer open")]
    NotOpen,
    /// The notification could not be delivered.
    #[error("notification failed: {0}")]
    Notify(String),
}

async fn pay_page(State(sb): State<Arc<Sandbox>>, Path(reference): Path<String>) -> Response {
    let map = sb.lock();
    let Some(p) = map.get(&reference) else {
        return (StatusCode::NOT_FOUND, Html("<h1>Unknown payment</h1>".to_owned())).into_response();
    };
    let status = match &p.status {
        ProviderStatus::Pending | ProviderStatus::Processing => "open",
        ProviderStatus::Succeeded { .. } => "paid",
        ProviderStatus::Failed { .. } => "declined",
        ProviderStatus::Expired => "expired",
        ProviderStatus::Cancelled => "cancelled",
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>jinliu sandbox</title><body style=\"font-family:sans-serif;max-width:28em;margin:2em auto\">\
         <h1>Sandbox payment ({provider})</h1><p>{desc}</p><p><strong>{amount} {currency}</strong></p><p>Status: {status}</p>\
         <form method=\"post\"><button name=\"outcome\" value=\"success\">Pay</button> \
         <button name=\"outcome\" value=\"fail\">Decline</button></form></body></html>",
        provider = escape(&p.provider),
        desc = escape(&p.description),
        amount = p.amount.major_string(),
        currency = p.amount.currency(),
    );
    Html(page).into_response()
}

#[derive(Deserialize)]
struct Outcome {
    outcome: String,
}

async fn pay_action(State(sb): State<Arc<Sandbox>>, Path(reference): Path<String>, Form(o): Form<Outcome>) -> Response {
    let success = match o.outcome.as_str() {
        "success" => true,
        "fail" => false,
        _ => return (StatusCode::BAD_REQUEST, "outcome must be success or fail").into_response(),
    };
    match sb.pay(&reference, success).await {
        Ok(notified) => Json(serde_json::json!({
            "reference": reference,
            "outcome": o.outcome,
            "notificationStatus": notified,
        }))
        .into_response(),
        Err(SandboxError::UnknownPayment) => (StatusCode::NOT_FOUND, "unknown payment").into_response(),
        Err(e @ SandboxError::NotOpen) => (StatusCode::CONFLICT, e.to_string()).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn fail_next_refund(State(sb): State<Arc<Sandbox>>) -> StatusCode {
    sb.fail_next_refund.store(true, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
