//! 客樂得 KPay (統一客樂得, brand 黑貓PAY): the adapter.
//!
//! KPay has no public spec; the protocol is the one its own WooCommerce plugin speaks (see
//! docs/providers/kpay.md for what is taken from it and what is ours). In short: an OAuth2
//! password grant gives a bearer token; every business call is a JSON `POST {base}/api/Collect`
//! whose `cmd` names the command; card orders are authorised (`B`) and must be captured
//! (`CocsCashRequest`) to complete (`E`); APN notifications carry an MD5 checksum without any
//! secret, so they are never trusted on their own.
//!
//! This module speaks the protocol and reports what KPay says; it never decides a transition.

pub mod sandbox;
pub mod sign;
pub mod wire;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jinliu_domain::{Currency, Money, Timestamp};
use serde::Serialize;

use crate::account::AccountError;
use crate::outbound::{Reply, Retry};
use crate::{
    CreatePayment, CreatedPayment, InboundNotification, Outbound, PaymentProvider, ProviderAccount, ProviderError,
    ProviderStatus, RefundOutcome, RefundRequest, VerifiedNotification,
};
use wire::CollectReply;

/// The sandbox's test merchant credentials (the default test-mode account uses them).
pub const SANDBOX_CREDENTIALS: &[(&str, &str)] =
    &[("merchant_id", "KPAYSANDBOX01"), ("api_key", "kpay-sandbox-api-key")];

/// Credential keys: `merchant_id` and `api_key` are required; `acquirer_type` is optional.
pub const CREDENTIAL_KEYS: [&str; 3] = ["merchant_id", "api_key", "acquirer_type"];

/// The acquirer used when the account names none: 玉山 (E.SUN), the plugin's card default.
pub const DEFAULT_ACQUIRER: &str = "esun";

/// Smallest order, whole TWD (our assumption).
pub const MIN_TWD: i64 = 1;
/// Largest order, whole TWD (our assumption: KPay publishes no limit).
pub const MAX_TWD: i64 = 200_000;

/// The acknowledgement KPay expects for an APN: HTTP 200 with this body.
pub const ACK: &str = "OK";

/// How long before its expiry a cached token is replaced, so a call never starts with a token
/// that dies in flight.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The 客樂得 KPay adapter.
pub struct KPay {
    account: ProviderAccount,
    out: Outbound,
    merchant_id: String,
    api_key: String,
    acquirer: String,
    token: Mutex<Option<CachedToken>>,
}

#[derive(Clone)]
struct CachedToken {
    value: String,
    refresh_at: Instant,
}

impl std::fmt::Debug for KPay {
    // The API key and the bearer token never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KPay")
            .field("account", &self.account)
            .field("merchant_id", &self.merchant_id)
            .field("acquirer", &self.acquirer)
            .finish_non_exhaustive()
    }
}

/// What an order query says, in KPay's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrderInfo {
    status: String,
    trans_id: Option<String>,
    order_amount: i64,
    refunded: i64,
}

impl KPay {
    /// The adapter for `account`; fails when `merchant_id` or `api_key` is missing.
    pub fn new(account: ProviderAccount, out: Outbound) -> Result<KPay, AccountError> {
        let merchant_id = account.credential("merchant_id")?.to_owned();
        let api_key = account.credential("api_key")?.to_owned();
        let acquirer = account
            .credentials
            .get("acquirer_type")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| DEFAULT_ACQUIRER.to_owned());
        Ok(KPay {
            account,
            out,
            merchant_id,
            api_key,
            acquirer,
            token: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.account.base_url.trim_end_matches('/'))
    }

    fn cached_token(&self) -> Option<String> {
        let guard = self.token.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| t.value.clone())
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A valid bearer token: the cached one, or a new one from the password grant. Two calls
    /// racing for a new token both fetch one; KPay hands out several, so that is only waste.
    async fn token(&self) -> Result<String, ProviderError> {
        if let Some(t) = self.cached_token() {
            return Ok(t);
        }
        let form = wire::TokenForm {
            grant_type: "password".into(),
            username: self.merchant_id.clone(),
            password: self.api_key.clone(),
        };
        let url = self.url("token");
        let reply = self
            .out
            .call("token", Retry::Safe, |c| c.post(&url).form(&form))
            .await?;
        let parsed: wire::TokenReply = serde_json::from_slice(&reply.body)
            .map_err(|_| ProviderError::Unavailable(format!("token: unreadable answer (HTTP {})", reply.status)))?;
        match (reply.status, parsed.access_token) {
            (200, Some(token)) if !token.is_empty() => {
                let life = Duration::from_secs(parsed.expires_in.unwrap_or(0));
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(CachedToken {
                    value: token.clone(),
                    refresh_at: Instant::now() + life.saturating_sub(TOKEN_MARGIN),
                });
                Ok(token)
            }
            (status, _) => Err(ProviderError::Refused(format!(
                "token: {} (HTTP {status})",
                parsed
                    .error_description
                    .or(parsed.error)
                    .unwrap_or_else(|| "no token".into())
            ))),
        }
    }

    /// Sends one `api/Collect` command. A 401 means the token was refused before the command ran,
    /// so it is sent once more with a fresh token even when `retry` is [`Retry::Never`].
    async fn collect<B: Serialize + Sync>(
        &self,
        op: &'static str,
        retry: Retry,
        body: &B,
    ) -> Result<CollectReply, ProviderError> {
        let url = self.url("api/Collect");
        let mut reply: Option<Reply> = None;
        for _ in 0..2 {
            let token = self.token().await?;
            let r = self
                .out
                .call(op, retry, |c| c.post(&url).bearer_auth(&token).json(body))
                .await?;
            if r.status != 401 {
                reply = Some(r);
                break;
            }
            self.forget_token();
        }
        let Some(reply) = reply else {
            return Err(ProviderError::Refused(format!("{op}: bearer token refused twice")));
        };
        match (reply.status, serde_json::from_slice::<CollectReply>(&reply.body)) {
            (200, Ok(parsed)) => Ok(parsed),
            // A 4xx carrying KPay's error body is a refusal the caller reads like any other.
            (_, Ok(parsed)) if parsed.status == wire::STATUS_ERROR => Ok(parsed),
            // A 200 that is not KPay's JSON: whatever happened there is unknown.
            (200, Err(_)) => Err(ProviderError::Unavailable(format!("{op}: unreadable answer"))),
            (status, _) => Err(ProviderError::Refused(format!(
                "{op}: HTTP {status}: {}",
                reply.text().chars().take(200).collect::<String>()
            ))),
        }
    }

    async fn query_order(&self, reference: &str) -> Result<OrderInfo, ProviderError> {
        let body = wire::OrderQuery {
            cmd: wire::CMD_QUERY.into(),
            cust_id: self.merchant_id.clone(),
            cust_order_no: reference.to_owned(),
            send_time: send_time(),
        };
        let reply = self.collect("query", Retry::Safe, &body).await?;
        if reply.status != wire::STATUS_OK {
            return Err(refusal("query", reply));
        }
        match (reply.order_status, reply.order_amount) {
            (Some(status), Some(order_amount)) => Ok(OrderInfo {
                status,
                trans_id: reply.trans_id.filter(|t| !t.is_empty()),
                order_amount,
                refunded: reply.refund_amount.unwrap_or(0),
            }),
            _ => Err(ProviderError::Unavailable(
                "query: answer without order_status or order_amount".into(),
            )),
        }
    }

    async fn cancel_order(&self, reference: &str, order_amount: i64) -> Result<(), ProviderError> {
        let body = wire::OrderCancel {
            cmd: wire::CMD_CANCEL.into(),
            cust_id: self.merchant_id.clone(),
            cust_order_no: reference.to_owned(),
            order_amount,
            acquirer_type: self.acquirer.clone(),
            send_time: send_time(),
        };
        // Safe to repeat: cancelling a cancelled order answers OK (docs: our assumption).
        let reply = self.collect("cancel", Retry::Safe, &body).await?;
        if reply.status == wire::STATUS_OK {
            Ok(())
        } else {
            Err(refusal("cancel", reply))
        }
    }
}

/// Maps a KPay card status letter to jinliu's view. `trans_id` is KPay's transaction id.
///
/// `A` (open) is ours; the others are the plugin's card letters. A failed capture (`P`) and a
/// failed void (`N`, `R`) leave the authorisation standing, so they read as `Authorized`; the
/// invoice events (`I`, `J`) come only after capture.
pub fn map_status(letter: &str, trans_id: Option<String>) -> Option<ProviderStatus> {
    Some(match letter {
        "A" => ProviderStatus::Pending,
        "O" => ProviderStatus::Processing,
        "B" | "P" | "N" | "R" => ProviderStatus::Authorized,
        "E" | "I" | "J" => ProviderStatus::Succeeded {
            transaction_id: trans_id,
        },
        "F" => ProviderStatus::Failed {
            reason: "authorisation failed (KPay F)".into(),
        },
        "D" => ProviderStatus::Expired,
        "M" | "Q" => ProviderStatus::Cancelled,
        _ => return None,
    })
}

/// `send_time`: now in Asia/Taipei (UTC+8 all year, no DST), `Y-m-d H:i:s`.
fn send_time() -> String {
    (chrono::Utc::now() + chrono::TimeDelta::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Whole TWD of an amount already checked by [`KPay::check_amount`].
fn whole_twd(amount: Money) -> i64 {
    amount.minor() / 100
}

fn refusal(op: &str, reply: CollectReply) -> ProviderError {
    if reply.code.as_deref() == Some(wire::CODE_NOT_FOUND) {
        return ProviderError::NotFound;
    }
    ProviderError::Refused(format!(
        "{op}: {}",
        reply.msg.unwrap_or_else(|| format!("status {}", reply.status))
    ))
}

fn bad(msg: impl Into<String>) -> ProviderError {
    ProviderError::BadNotification(msg.into())
}

#[async_trait::async_trait]
impl PaymentProvider for KPay {
    fn id(&self) -> &'static str {
        "kpay"
    }

    fn account(&self) -> &ProviderAccount {
        &self.account
    }

    fn supports(&self, currency: Currency) -> bool {
        currency == Currency::Twd
    }

    fn check_amount(&self, amount: Money) -> Result<(), String> {
        crate::whole_twd("KPay", amount, MIN_TWD, MAX_TWD).map(|_| ())
    }

    async fn create_payment(&self, req: &CreatePayment) -> Result<CreatedPayment, ProviderError> {
        self.check_amount(req.amount).map_err(ProviderError::Refused)?;
        let body = wire::OrderAppend {
            cmd: wire::CMD_APPEND.into(),
            cust_id: self.merchant_id.clone(),
            cust_order_no: req.reference.clone(),
            order_amount: whole_twd(req.amount),
            order_detail: req.description.clone(),
            acquirer_type: self.acquirer.clone(),
            send_time: send_time(),
            success_url: req.return_url.clone(),
            apn_url: self.account.notify_url.clone(),
            b2c: "0".into(),
        };
        // Safe to repeat: the same order number with the same amount is the same order
        // (docs: our assumption), so a create whose answer was lost is simply asked again.
        let reply = self.collect("create", Retry::Safe, &body).await?;
        if reply.status != wire::STATUS_OK {
            return Err(refusal("create", reply));
        }
        match reply.url.filter(|u| !u.is_empty()) {
            Some(url) => Ok(CreatedPayment {
                pay_url: Some(url),
                ..CreatedPayment::default()
            }),
            None => Err(ProviderError::Unavailable("create: OK without a url".into())),
        }
    }

    async fn query_payment(&self, reference: &str) -> Result<ProviderStatus, ProviderError> {
        let info = self.query_order(reference).await?;
        map_status(&info.status, info.trans_id)
            .ok_or_else(|| ProviderError::Unavailable(format!("query: unknown status {:?}", info.status)))
    }

    async fn capture(&self, reference: &str, amount: Money) -> Result<(), ProviderError> {
        self.check_amount(amount).map_err(ProviderError::Refused)?;
        let twd = whole_twd(amount);
        let body = wire::CashRequest {
            cmd: wire::CMD_CAPTURE.into(),
            cust_id: self.merchant_id.clone(),
            cust_order_no: reference.to_owned(),
            order_amount: twd,
            cr_amount: twd,
            send_time: send_time(),
        };
        // Safe to repeat: capturing a captured order for the same amount answers OK (docs: our
        // assumption).
        let reply = self.collect("capture", Retry::Safe, &body).await?;
        if reply.status == wire::STATUS_OK {
            Ok(())
        } else {
            Err(refusal("capture", reply))
        }
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        if let Err(msg) = self.check_amount(req.amount) {
            return Ok(RefundOutcome::Failed(msg));
        }
        let info = self.query_order(&req.payment_reference).await?;
        let twd = whole_twd(req.amount);
        match info.status.as_str() {
            // Captured; I and J (invoice issued, allowance) come only after capture.
            "E" | "I" | "J" => {}
            // Before capture nothing has moved: giving everything back is a void.
            "B" if twd == info.order_amount => {
                return match self.cancel_order(&req.payment_reference, info.order_amount).await {
                    Ok(()) => Ok(RefundOutcome::Succeeded(None)),
                    Err(ProviderError::Refused(msg)) => Ok(RefundOutcome::Failed(msg)),
                    Err(e) => Err(e),
                };
            }
            "B" => {
                return Ok(RefundOutcome::Failed(
                    "KPay cannot refund part of a payment that is not captured yet".into(),
                ));
            }
            other => {
                return Ok(RefundOutcome::Failed(format!(
                    "KPay order is in status {other:?}, not captured: nothing to refund"
                )));
            }
        }
        let body = wire::OrderRefund {
            cmd: wire::CMD_REFUND.into(),
            cust_id: self.merchant_id.clone(),
            cust_order_no: req.payment_reference.clone(),
            order_amount: info.order_amount,
            refund_amount: twd,
            acquirer_type: self.acquirer.clone(),
            send_time: send_time(),
        };
        // Never repeated here: the command carries no refund number, so KPay could refund twice.
        // `refund_safely` checks `refunded_total` before any retry instead.
        match self.collect("refund", Retry::Never, &body).await {
            Ok(reply) if reply.status == wire::STATUS_OK => Ok(RefundOutcome::Succeeded(None)),
            Ok(reply) => match refusal("refund", reply) {
                ProviderError::Refused(msg) => Ok(RefundOutcome::Failed(msg)),
                e => Err(e),
            },
            Err(ProviderError::Refused(msg)) => Ok(RefundOutcome::Failed(msg)),
            Err(e) => Err(e),
        }
    }

    fn refund_is_idempotent(&self) -> bool {
        // CocsOrderRefund has no refund number to deduplicate on.
        false
    }

    async fn refunded_total(&self, reference: &str) -> Result<i64, ProviderError> {
        let info = self.query_order(reference).await?;
        let twd = match info.status.as_str() {
            // A voided authorisation gave everything back (that is how `refund` voids).
            "M" | "Q" => info.order_amount,
            _ => info.refunded,
        };
        Ok(twd.saturating_mul(100))
    }

    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        let info = self.query_order(reference).await?;
        self.cancel_order(reference, info.order_amount).await
    }

    fn verify_notification(
        &self,
        n: &InboundNotification,
        _now: Timestamp,
    ) -> Result<VerifiedNotification, ProviderError> {
        // No timestamp window: an APN carries no signing time, and KPay re-sends for hours.
        let apn: wire::Apn = serde_json::from_slice(&n.body).map_err(|e| bad(format!("not a KPay APN body: {e}")))?;
        if !sign::checksum_matches(
            &apn.checksum,
            &apn.api_id,
            &apn.trans_id,
            &apn.amount,
            &apn.status,
            &apn.nonce,
        ) {
            return Err(bad("checksum mismatch"));
        }
        if apn.api_id != self.merchant_id {
            return Err(bad("api_id is not this account's merchant"));
        }
        let reference_ok = !apn.order_no.is_empty()
            && apn.order_no.len() <= 20
            && apn.order_no.bytes().all(|b| b.is_ascii_alphanumeric());
        if !reference_ok {
            return Err(bad("order_no is not a provider reference"));
        }
        let twd: i64 = apn.amount.parse().map_err(|_| bad("amount is not whole TWD"))?;
        let amount = twd
            .checked_mul(100)
            .and_then(|minor| Money::from_minor(minor, Currency::Twd).ok())
            .ok_or_else(|| bad("amount is out of range"))?;
        let trans_id = Some(apn.trans_id.clone()).filter(|t| !t.is_empty());
        let status =
            map_status(&apn.status, trans_id).ok_or_else(|| bad(format!("unknown status {:?}", apn.status)))?;
        Ok(VerifiedNotification {
            reference: apn.order_no,
            status,
            status_code: apn.status,
            amount: Some(amount),
            // The checksum has no secret in it: anyone can forge one.
            trusted: false,
            ack: ACK.into(),
        })
    }
}

#[cfg(test)]
mod tests;
