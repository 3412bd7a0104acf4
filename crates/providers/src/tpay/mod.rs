//! 台灣里 TPay (TWV OpenPay): the adapter.
//!
//! A TPay payment starts in the customer's browser: jinliu's page auto-posts the signed
//! [`checkout_form`](PaymentProvider::checkout_form) to `{base}/openpay/pay.php`, so
//! [`create_payment`](PaymentProvider::create_payment) makes no call and TPay learns of the
//! payment only when the form arrives. Results come back as form-encoded notifications signed with
//! the two-key MD5 `verify`; that check is weak, so notifications are reported untrusted and the
//! server queries back before acting. Query, refund and cancel are not public: they are defined in
//! the same style in [`wire`] (docs/providers/tpay.md lists every assumption).
//!
//! This module turns jinliu requests into TPay messages and TPay answers into [`ProviderStatus`]
//! and friends; it never decides a state transition.

pub mod sandbox;
pub mod sign;
pub mod wire;

#[cfg(test)]
mod tests;

use jinliu_domain::{Currency, Money, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::account::AccountError;
use crate::outbound::{Reply, Retry};
use crate::{
    CheckoutForm, CreatePayment, CreatedPayment, InboundNotification, Outbound, PaymentProvider, ProviderAccount,
    ProviderError, ProviderStatus, RefundOutcome, RefundRequest, VerifiedNotification,
};

use wire::status;

/// The sandbox's test merchant credentials (the default test-mode account uses them).
pub const SANDBOX_CREDENTIALS: &[(&str, &str)] = &[
    ("mid", "TPAYSANDBOX01"),
    ("key1", "tpay-sandbox-key1"),
    ("key2", "tpay-sandbox-key2"),
];

/// The credential keys a TPay account needs: merchant id and the two MD5 salts.
pub const CREDENTIAL_KEYS: [&str; 3] = ["mid", "key1", "key2"];

/// The longest description sent in the form (our assumption; TPay's limit is not public).
const DESCRIPTION_MAX_CHARS: usize = 100;

/// The 台灣里 TPay adapter.
pub struct TPay {
    account: ProviderAccount,
    out: Outbound,
    base: String,
    mid: String,
    key1: String,
    key2: String,
}

impl std::fmt::Debug for TPay {
    // The keys never reach a log; the account's own Debug shows only credential names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TPay")
            .field("account", &self.account)
            .field("mid", &self.mid)
            .finish_non_exhaustive()
    }
}

impl TPay {
    /// The adapter for `account`; fails when `mid`, `key1` or `key2` is missing.
    pub fn new(account: ProviderAccount, out: Outbound) -> Result<TPay, AccountError> {
        let mid = account.credential("mid")?.to_owned();
        let key1 = account.credential("key1")?.to_owned();
        let key2 = account.credential("key2")?.to_owned();
        Ok(TPay {
            base: account.base_url.trim_end_matches('/').to_owned(),
            account,
            out,
            mid,
            key1,
            key2,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a form-encoded call and reads the answer; refusals come back as errors.
    async fn post<T: DeserializeOwned>(
        &self,
        op: &'static str,
        retry: Retry,
        path: &str,
        form: &impl Serialize,
    ) -> Result<T, ProviderError> {
        let body = serde_urlencoded::to_string(form)
            .map_err(|e| ProviderError::Refused(format!("could not encode the request: {e}")))?;
        let url = self.url(path);
        let reply = self
            .out
            .call(op, retry, |c| {
                c.post(&url)
                    .header("content-type", wire::FORM_CONTENT_TYPE)
                    .body(body.clone())
            })
            .await?;
        read_reply(&reply)
    }

    /// Asks TPay where `reference` stands and checks the answer's `verify`.
    async fn query(&self, reference: &str) -> Result<wire::QueryReply, ProviderError> {
        let call = wire::QueryCall {
            version: wire::VERSION.into(),
            mid: self.mid.clone(),
            txid: reference.to_owned(),
            verify: sign::check_value(&self.key1, &[&self.mid, reference], &self.key2),
        };
        let r: wire::QueryReply = self.post("query", Retry::Safe, wire::QUERY_PATH, &call).await?;
        let parts = [&*r.txid, &r.amount, &r.pay_type, &r.status, &r.tid, &r.refunded];
        // A reply that fails its check is not TPay's word; its outcome is unknown, not a refusal.
        if !sign::matches(&self.key1, &parts, &self.key2, &r.verify) || r.txid != reference {
            return Err(ProviderError::Unavailable(
                "query answer failed its verify check".into(),
            ));
        }
        Ok(r)
    }
}

/// Reads a TPay answer: an `error_code` other than `0` is a refusal (`201` = unknown payment),
/// anything else must parse as `T`.
fn read_reply<T: DeserializeOwned>(reply: &Reply) -> Result<T, ProviderError> {
    if reply.status != 200 {
        let text: String = reply.text().chars().take(200).collect();
        return Err(ProviderError::Refused(format!("HTTP {}: {text}", reply.status)));
    }
    if let Ok(err) = serde_urlencoded::from_bytes::<wire::ErrorReply>(&reply.body)
        && err.error_code != "0"
    {
        return Err(match err.error_code.as_str() {
            wire::error::NOT_FOUND => ProviderError::NotFound,
            code => ProviderError::Refused(format!("TPay error {code}: {}", err.error_desc)),
        });
    }
    serde_urlencoded::from_bytes(&reply.body)
        .map_err(|e| ProviderError::Unavailable(format!("unreadable TPay answer: {e}")))
}

/// Whole TWD as TPay writes it, or why not.
fn twd_text(amount: Money) -> Result<String, String> {
    crate::whole_twd("TPay", amount, 1, i64::MAX).map(|twd| twd.to_string())
}

/// Integer TWD text (digits only, as TPay sends it) in minor units.
fn parse_twd_minor(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()?.checked_mul(100)
}

/// The `select_paymethod` code for a jinliu method. Codes differ between TWV's own plugins, so
/// only "let the customer choose" is sent for `tpay_redirect` (our assumption: `0` = any).
fn paymethod(method: &str) -> &'static str {
    match method {
        "tpay_card" => "1",
        "tpay_atm" => "2",
        "tpay_webatm" => "3",
        "tpay_cvs" => "8",
        _ => "0",
    }
}

/// A payment result's status code as jinliu reads it.
fn result_status(code: &str, tid: &str, reason: Option<&str>) -> Option<ProviderStatus> {
    Some(match code {
        status::OPEN => ProviderStatus::Pending,
        status::PAID => ProviderStatus::Succeeded {
            transaction_id: (!tid.is_empty()).then(|| tid.to_owned()),
        },
        status::FAILED => ProviderStatus::Failed {
            reason: reason
                .filter(|r| !r.is_empty())
                .unwrap_or("TPay status 2 (payment failed)")
                .to_owned(),
        },
        status::WAITING => ProviderStatus::Processing,
        status::EXPIRED => ProviderStatus::Expired,
        status::CANCELLED => ProviderStatus::Cancelled,
        _ => return None,
    })
}

#[async_trait::async_trait]
impl PaymentProvider for TPay {
    fn id(&self) -> &'static str {
        "tpay"
    }

    fn account(&self) -> &ProviderAccount {
        &self.account
    }

    fn supports(&self, currency: Currency) -> bool {
        currency == Currency::Twd
    }

    fn check_amount(&self, amount: Money) -> Result<(), String> {
        twd_text(amount).map(|_| ())
    }

    async fn create_payment(&self, req: &CreatePayment) -> Result<CreatedPayment, ProviderError> {
        // Nothing to call: TPay learns of the payment when the browser posts the checkout form.
        self.check_amount(req.amount).map_err(ProviderError::Refused)?;
        Ok(CreatedPayment::default())
    }

    fn checkout_form(&self, req: &CreatePayment) -> Option<CheckoutForm> {
        let amount = twd_text(req.amount).ok()?;
        let verify = sign::form(&self.key1, &self.key2, &self.mid, &req.reference, &amount);
        let mut fields: Vec<(&str, String)> = vec![
            ("version", wire::VERSION.into()),
            ("mid", self.mid.clone()),
            ("txid", req.reference.clone()),
            ("amount", amount),
            ("iid", "0".into()),
            ("verify", verify),
        ];
        if let Some(url) = &req.return_url {
            fields.push(("return_url", url.clone()));
        }
        fields.extend([
            ("charset", "UTF-8".into()),
            ("language", "tchinese".into()),
            ("mode", "1".into()),
            ("select_paymethod", paymethod(&req.method).into()),
            (
                "description",
                req.description.chars().take(DESCRIPTION_MAX_CHARS).collect(),
            ),
            // Our addition, outside `verify`: real merchants set the notify URL in TPay's back
            // office; the sandbox learns it from here.
            ("notify_url", self.account.notify_url.clone()),
        ]);
        Some(CheckoutForm {
            action: self.url(wire::PAY_PATH),
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
    }

    async fn query_payment(&self, reference: &str) -> Result<ProviderStatus, ProviderError> {
        let r = self.query(reference).await?;
        result_status(&r.status, &r.tid, None)
            .ok_or_else(|| ProviderError::Unavailable(format!("unknown TPay status {:?}", r.status)))
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        let amount = twd_text(req.amount).map_err(ProviderError::Refused)?;
        let refund_no = req.refund_id.as_str().to_owned();
        let call = wire::RefundCall {
            version: wire::VERSION.into(),
            mid: self.mid.clone(),
            txid: req.payment_reference.clone(),
            verify: sign::check_value(
                &self.key1,
                &[&self.mid, &req.payment_reference, &amount, &refund_no],
                &self.key2,
            ),
            amount,
            refund_no,
        };
        // One attempt only: whether TPay deduplicates on refund_no is not public, so a lost
        // answer is resolved by refund_safely through the refunded total, never by resending.
        let r: wire::RefundReply = match self.post("refund", Retry::Never, wire::REFUND_PATH, &call).await {
            Ok(r) => r,
            Err(ProviderError::Refused(reason)) => return Ok(RefundOutcome::Failed(reason)),
            Err(e) => return Err(e),
        };
        let parts = [&*r.txid, &r.refund_no, &r.amount, &r.rtid, &r.refunded];
        if !sign::matches(&self.key1, &parts, &self.key2, &r.verify)
            || r.txid != call.txid
            || r.refund_no != call.refund_no
            || r.amount != call.amount
        {
            return Err(ProviderError::Unavailable(
                "refund answer failed its verify check".into(),
            ));
        }
        Ok(RefundOutcome::Succeeded((!r.rtid.is_empty()).then_some(r.rtid)))
    }

    fn refund_is_idempotent(&self) -> bool {
        // The sandbox deduplicates on refund_no, but the real refund API is not public: money
        // safety must not rest on an assumption, so retries go through refunded_total.
        false
    }

    async fn refunded_total(&self, reference: &str) -> Result<i64, ProviderError> {
        let r = self.query(reference).await?;
        parse_twd_minor(&r.refunded)
            .ok_or_else(|| ProviderError::Unavailable(format!("unreadable refunded total {:?}", r.refunded)))
    }

    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        let call = wire::CancelCall {
            version: wire::VERSION.into(),
            mid: self.mid.clone(),
            txid: reference.to_owned(),
            action: wire::CANCEL_ACTION.into(),
            verify: sign::check_value(&self.key1, &[&self.mid, reference, wire::CANCEL_ACTION], &self.key2),
        };
        let r: wire::CancelReply = self.post("cancel", Retry::Safe, wire::CANCEL_PATH, &call).await?;
        if !sign::matches(&self.key1, &[&r.txid, &r.status], &self.key2, &r.verify) || r.txid != reference {
            return Err(ProviderError::Unavailable(
                "cancel answer failed its verify check".into(),
            ));
        }
        match r.status.as_str() {
            status::CANCELLED | status::FAILED | status::EXPIRED => Ok(()),
            other => Err(ProviderError::Refused(format!(
                "TPay left the payment in status {other}"
            ))),
        }
    }

    fn verify_notification(
        &self,
        n: &InboundNotification,
        _now: Timestamp,
    ) -> Result<VerifiedNotification, ProviderError> {
        // TPay signs no timestamp (and re-sends for hours), so `now` bounds nothing here.
        let bad = |m: &str| ProviderError::BadNotification(m.to_owned());
        let r: wire::PayResult = serde_urlencoded::from_bytes(&n.body).map_err(|_| bad("not a TPay result form"))?;
        let parts = sign::result_parts(&r.txid, &r.amount, &r.pay_type, &r.status, &r.tid);
        if !sign::matches(&self.key1, &parts, &self.key2, &r.verify) {
            return Err(bad("verify check failed"));
        }
        if r.txid.is_empty() {
            return Err(bad("empty txid"));
        }
        let amount = parse_twd_minor(&r.amount)
            .and_then(|minor| Money::from_minor(minor, Currency::Twd).ok())
            .ok_or_else(|| bad("amount is not a positive whole TWD number"))?;
        let status = match r.status.as_str() {
            // A result reports what the customer did; the query-only codes have no place here.
            status::PAID | status::FAILED | status::WAITING => {
                result_status(&r.status, &r.tid, r.error_desc.as_deref()).ok_or_else(|| bad("unknown status"))?
            }
            _ => return Err(bad("unknown status")),
        };
        Ok(VerifiedNotification {
            reference: r.txid,
            status,
            status_code: r.status,
            amount: Some(amount),
            trusted: false,
            ack: wire::ACK.into(),
        })
    }
}
