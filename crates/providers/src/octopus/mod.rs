//! Octopus ("O! ePay" / Online Payment Service), Octopus-like: the adapter.
//!
//! Octopus publishes no merchant API, so this speaks the JSON API described in seed 004 and pinned
//! in `docs/providers/octopus.md`: `POST /v1/payments`, `GET /v1/payments/{orderId}`,
//! `POST /v1/payments/{orderId}/cancel`, `POST /v1/refunds`, each authenticated by a bearer API
//! key plus an HMAC-SHA256 signature over a timestamp and a single-use nonce. The real product's
//! facts it honours: HKD only, HKD 0.10 – 30,000.00 per payment in 10-cent steps, a payment token
//! shown as a QR code of `…/oos/payment/?token=<t>` and the app link `octopus://payment?token=<t>`.
//!
//! The adapter reports what the provider says and decides nothing: no store, no state transition.
//! Its wire types live in [`wire`], the signature scheme in [`sign`], the local stand-in in
//! [`sandbox`].

pub mod sandbox;
pub mod sign;
pub mod wire;

#[cfg(test)]
mod tests;

use chrono::Utc;
use jinliu_domain::{Currency, Money, Timestamp};
use rand::Rng;

use crate::account::AccountError;
use crate::outbound::{Reply, Retry};
use crate::{
    CreatePayment, CreatedPayment, InboundNotification, Outbound, PaymentProvider, ProviderAccount, ProviderError,
    ProviderStatus, RefundOutcome, RefundRequest, VerifiedNotification,
};

use wire::{H_MERCHANT, H_NONCE, H_SIGNATURE, H_TIMESTAMP};

/// The sandbox's test merchant credentials (the default test-mode account uses them).
pub const SANDBOX_CREDENTIALS: &[(&str, &str)] = &[
    ("merchant_id", "OCTSANDBOX01"),
    ("api_key", "oct-sandbox-api-key"),
    ("signing_secret", "oct-sandbox-signing-secret"),
    ("webhook_secret", "oct-sandbox-webhook-secret"),
];

/// The credential keys an Octopus account needs.
pub const CREDENTIAL_KEYS: [&str; 4] = ["merchant_id", "api_key", "signing_secret", "webhook_secret"];

/// Smallest payment, in cents (HKD 0.10).
pub const MIN_MINOR: i64 = 10;
/// Largest payment, in cents (HKD 30,000.00).
pub const MAX_MINOR: i64 = 3_000_000;
/// Amounts move in 10-cent steps.
pub const STEP_MINOR: i64 = 10;

/// The Octopus adapter for one provider account.
pub struct Octopus {
    account: ProviderAccount,
    out: Outbound,
    merchant_id: String,
    api_key: String,
    signing_secret: String,
    webhook_secret: String,
}

impl std::fmt::Debug for Octopus {
    // The secrets never reach a log; the account's Debug shows only credential keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Octopus")
            .field("account", &self.account)
            .field("merchant_id", &self.merchant_id)
            .finish_non_exhaustive()
    }
}

impl Octopus {
    /// The adapter for `account`; every credential in [`CREDENTIAL_KEYS`] must be present.
    pub fn new(account: ProviderAccount, out: Outbound) -> Result<Octopus, AccountError> {
        let merchant_id = account.credential("merchant_id")?.to_owned();
        let api_key = account.credential("api_key")?.to_owned();
        let signing_secret = account.credential("signing_secret")?.to_owned();
        let webhook_secret = account.credential("webhook_secret")?.to_owned();
        // The merchant id travels in a header: refuse what a header cannot carry now, not on
        // the first payment.
        if !merchant_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AccountError::Invalid {
                account: account.id.clone(),
                message: "merchant_id must be printable ASCII without spaces".into(),
            });
        }
        Ok(Octopus {
            account,
            out,
            merchant_id,
            api_key,
            signing_secret,
            webhook_secret,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.account.base_url.trim_end_matches('/'))
    }

    /// Adds the authentication headers of one attempt.
    fn authed(&self, rb: reqwest::RequestBuilder, timestamp: &str, nonce: &str) -> reqwest::RequestBuilder {
        rb.bearer_auth(&self.api_key)
            .header(H_MERCHANT, &self.merchant_id)
            .header(H_TIMESTAMP, timestamp)
            .header(H_NONCE, nonce)
    }

    /// A body-less request to `path`, signed over method + path + timestamp + nonce in
    /// `X-Octopus-Signature`. Each attempt gets its own timestamp and nonce, since the provider
    /// refuses a nonce it has seen.
    async fn call_path(&self, op: &'static str, method: reqwest::Method, path: &str) -> Result<Reply, ProviderError> {
        let url = self.url(path);
        self.out
            .call(op, Retry::Safe, |client| {
                let (timestamp, nonce) = fresh_stamp();
                let payload = sign::path_payload(method.as_str(), path, &timestamp, &nonce);
                let signature = sign::sign(&self.signing_secret, payload.as_bytes());
                self.authed(client.request(method.clone(), &url), &timestamp, &nonce)
                    .header(H_SIGNATURE, signature)
            })
            .await
    }

    async fn fetch_payment(&self, reference: &str) -> Result<wire::PaymentResource, ProviderError> {
        check_reference(reference)?;
        let reply = self
            .call_path("query", reqwest::Method::GET, &format!("/v1/payments/{reference}"))
            .await?;
        match reply.status {
            200 => parse_json(&reply),
            _ => Err(error_of(&reply)),
        }
    }
}

/// A unix-seconds timestamp and a 128-bit random nonce.
fn fresh_stamp() -> (String, String) {
    let mut bytes = [0_u8; 16];
    rand::rng().fill(&mut bytes);
    (Utc::now().timestamp().to_string(), hex::encode(bytes))
}

/// References go into URL paths; jinliu's are 20 alphanumerics, and anything else is not a
/// payment this provider can know.
fn check_reference(reference: &str) -> Result<(), ProviderError> {
    if reference.is_empty() || reference.len() > 64 || !reference.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ProviderError::NotFound);
    }
    Ok(())
}

fn parse_json<T: serde::de::DeserializeOwned>(reply: &Reply) -> Result<T, ProviderError> {
    serde_json::from_slice(&reply.body)
        .map_err(|e| ProviderError::Unavailable(format!("octopus: unreadable answer (HTTP {}): {e}", reply.status)))
}

/// The provider's error envelope as `CODE: message`, or the raw text when it is not one.
fn error_text(reply: &Reply) -> String {
    match serde_json::from_slice::<wire::ErrorBody>(&reply.body) {
        Ok(e) => format!("{}: {}", e.error.code, e.error.message),
        Err(_) => format!(
            "HTTP {}: {}",
            reply.status,
            reply.text().chars().take(200).collect::<String>()
        ),
    }
}

/// A non-success answer as an error: 404 means the provider does not know the payment; any other
/// 4xx is a refusal with nothing done.
fn error_of(reply: &Reply) -> ProviderError {
    match reply.status {
        404 => ProviderError::NotFound,
        _ => ProviderError::Refused(format!("octopus: {}", error_text(reply))),
    }
}

/// The provider's status word as jinliu's status; `None` for a word it does not know.
pub fn map_status(status: &str, transaction_id: Option<&str>, failure_reason: Option<&str>) -> Option<ProviderStatus> {
    Some(match status {
        wire::status::PENDING => ProviderStatus::Pending,
        wire::status::PROCESSING => ProviderStatus::Processing,
        wire::status::SUCCESS => ProviderStatus::Succeeded {
            transaction_id: transaction_id.map(str::to_owned),
        },
        wire::status::FAILED => ProviderStatus::Failed {
            reason: failure_reason.unwrap_or("FAILED").to_owned(),
        },
        wire::status::EXPIRED => ProviderStatus::Expired,
        wire::status::CANCELLED => ProviderStatus::Cancelled,
        _ => return None,
    })
}

/// Octopus' money rules, shared by the adapter and the sandbox: HKD only, 0.10 – 30,000.00, in
/// 10-cent steps.
pub fn money_rule(currency: Currency, minor: i64) -> Result<(), String> {
    if currency != Currency::Hkd {
        return Err(format!("Octopus takes HKD only, not {currency}"));
    }
    if minor < MIN_MINOR {
        return Err("Octopus payments are at least HKD 0.10".into());
    }
    if minor > MAX_MINOR {
        return Err("Octopus payments are at most HKD 30,000.00".into());
    }
    if minor % STEP_MINOR != 0 {
        return Err(format!(
            "Octopus amounts move in 10-cent steps: HKD {} is not a multiple of HKD 0.10",
            wire::amount_text(minor)
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl PaymentProvider for Octopus {
    fn id(&self) -> &'static str {
        "octopus"
    }

    fn account(&self) -> &ProviderAccount {
        &self.account
    }

    fn supports(&self, currency: Currency) -> bool {
        currency == Currency::Hkd
    }

    fn check_amount(&self, amount: Money) -> Result<(), String> {
        money_rule(amount.currency(), amount.minor())
    }

    async fn create_payment(&self, req: &CreatePayment) -> Result<CreatedPayment, ProviderError> {
        self.check_amount(req.amount).map_err(ProviderError::Refused)?;
        let url = self.url("/v1/payments");
        let amount = wire::amount_text(req.amount.minor());
        let expires_at = wire::time_text(req.expires_at);
        // Safe to repeat: the provider answers a repeated orderId with the same amount with the
        // payment it already made, so a lost answer cannot create a second one.
        let reply = self
            .out
            .call("create", Retry::Safe, |client| {
                let (timestamp, nonce) = fresh_stamp();
                let payload = sign::create_payload(&req.reference, &amount, wire::CURRENCY, &timestamp, &nonce);
                let body = wire::CreatePaymentRequest {
                    order_id: req.reference.clone(),
                    amount: amount.clone(),
                    currency: wire::CURRENCY.into(),
                    description: req.description.clone(),
                    notify_url: self.account.notify_url.clone(),
                    return_url: req.return_url.clone(),
                    expires_at: expires_at.clone(),
                    signature: sign::sign(&self.signing_secret, payload.as_bytes()),
                };
                self.authed(client.post(&url), &timestamp, &nonce).json(&body)
            })
            .await?;
        if !matches!(reply.status, 200 | 201) {
            return Err(error_of(&reply));
        }
        let p: wire::PaymentResource = parse_json(&reply)?;
        if p.order_id != req.reference || wire::parse_amount(&p.amount) != Some(req.amount.minor()) {
            return Err(ProviderError::Unavailable(format!(
                "octopus answered a create for {} with payment {} of {} for {}",
                req.reference, p.id, p.amount, p.order_id
            )));
        }
        Ok(CreatedPayment {
            pay_url: Some(p.landing_url),
            payment_token: Some(p.token),
            deep_link: Some(p.deep_link),
            expires_at: wire::parse_time(&p.expires_at),
        })
    }

    async fn query_payment(&self, reference: &str) -> Result<ProviderStatus, ProviderError> {
        let p = self.fetch_payment(reference).await?;
        map_status(&p.status, p.transaction_id.as_deref(), p.failure_reason.as_deref())
            .ok_or_else(|| ProviderError::Unavailable(format!("octopus: unknown payment status {:?}", p.status)))
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        if req.amount.currency() != Currency::Hkd || req.amount.minor() % STEP_MINOR != 0 {
            return Ok(RefundOutcome::Failed(format!(
                "Octopus refunds are HKD in 10-cent steps; {} {} is not",
                req.amount.major_string(),
                req.amount.currency()
            )));
        }
        check_reference(&req.payment_reference)?;
        let url = self.url("/v1/refunds");
        let amount = wire::amount_text(req.amount.minor());
        let refund_id = req.refund_id.as_str().to_owned();
        // Safe to repeat: the provider deduplicates on refundId.
        let reply = self
            .out
            .call("refund", Retry::Safe, |client| {
                let (timestamp, nonce) = fresh_stamp();
                let payload = sign::refund_payload(
                    &refund_id,
                    &req.payment_reference,
                    &amount,
                    wire::CURRENCY,
                    &timestamp,
                    &nonce,
                );
                let body = wire::RefundRequestBody {
                    refund_id: refund_id.clone(),
                    order_id: req.payment_reference.clone(),
                    amount: amount.clone(),
                    currency: wire::CURRENCY.into(),
                    reason: req.reason.clone(),
                    signature: sign::sign(&self.signing_secret, payload.as_bytes()),
                };
                self.authed(client.post(&url), &timestamp, &nonce).json(&body)
            })
            .await?;
        match reply.status {
            200 | 201 => {
                let r: wire::RefundResource = parse_json(&reply)?;
                Ok(match r.status.as_str() {
                    wire::status::SUCCESS => RefundOutcome::Succeeded(Some(r.refund_id)),
                    wire::status::FAILED => RefundOutcome::Failed("octopus: refund failed".into()),
                    _ => RefundOutcome::Pending(Some(r.refund_id)),
                })
            }
            // Authentication problems are configuration errors, not a verdict on this refund.
            401 | 403 => Err(error_of(&reply)),
            404 => Err(ProviderError::NotFound),
            _ => Ok(RefundOutcome::Failed(format!("octopus: {}", error_text(&reply)))),
        }
    }

    fn refund_is_idempotent(&self) -> bool {
        true
    }

    async fn refunded_total(&self, reference: &str) -> Result<i64, ProviderError> {
        let p = self.fetch_payment(reference).await?;
        wire::parse_amount(&p.refunded_amount).ok_or_else(|| {
            ProviderError::Unavailable(format!("octopus: unreadable refundedAmount {:?}", p.refunded_amount))
        })
    }

    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        check_reference(reference)?;
        let reply = self
            .call_path(
                "cancel",
                reqwest::Method::POST,
                &format!("/v1/payments/{reference}/cancel"),
            )
            .await?;
        match reply.status {
            200 => Ok(()),
            _ => Err(error_of(&reply)),
        }
    }

    fn verify_notification(
        &self,
        n: &InboundNotification,
        now: Timestamp,
    ) -> Result<VerifiedNotification, ProviderError> {
        let bad = |m: &str| ProviderError::BadNotification(format!("octopus: {m}"));
        let signature = n
            .header(H_SIGNATURE)
            .ok_or_else(|| bad("no X-Octopus-Signature header"))?;
        let stamp = n
            .header(H_TIMESTAMP)
            .ok_or_else(|| bad("no X-Octopus-Timestamp header"))?;
        if !sign::verify(&self.webhook_secret, &n.body, signature) {
            return Err(bad("signature mismatch"));
        }
        let stamp: i64 = stamp
            .trim()
            .parse()
            .map_err(|_| bad("X-Octopus-Timestamp is not unix seconds"))?;
        if now.timestamp().abs_diff(stamp) > wire::TIMESTAMP_WINDOW_SECS.unsigned_abs() {
            return Err(bad("X-Octopus-Timestamp outside ±300 s"));
        }
        let body: wire::NotificationBody =
            serde_json::from_slice(&n.body).map_err(|e| bad(&format!("unreadable body: {e}")))?;
        // The header is not signed; the body's copy is, so the window above means something only
        // when the two agree.
        if body.timestamp != stamp {
            return Err(bad("body timestamp differs from X-Octopus-Timestamp"));
        }
        if body.merchant_id != self.merchant_id {
            return Err(bad("notification for another merchant"));
        }
        if body.currency != wire::CURRENCY {
            return Err(bad("currency is not HKD"));
        }
        let amount = wire::parse_amount(&body.amount)
            .and_then(|minor| Money::from_minor(minor, Currency::Hkd).ok())
            .ok_or_else(|| bad("unreadable amount"))?;
        let status = map_status(
            &body.status,
            body.transaction_id.as_deref(),
            body.failure_reason.as_deref(),
        )
        .ok_or_else(|| bad(&format!("unknown status {:?}", body.status)))?;
        Ok(VerifiedNotification {
            reference: body.order_id,
            status,
            status_code: body.status,
            amount: Some(amount),
            trusted: true,
            ack: wire::ACK.into(),
        })
    }
}
